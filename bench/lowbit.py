"""Low-bit products benchmark: refquant.fast XNOR-popcount and ternary matmul against float32 sgemm of the same values.

Usage: ``python bench/lowbit.py [--quick] [--runs N] [--no-write] [--no-compile]``

Cases (M = N = 1024; 256 with ``--quick``): ``xnor_matmul`` with K = 1024 and K = 4096 (random {-1, +1} matrices,
packed by ``refquant.pack_bits``), ``ternary_matmul`` with K = 4096 (random {-1, 0, +1}, two bitplanes each).  The
peers multiply the same values as float32 matrices: numpy's ``@`` (OpenBLAS sgemm) and ``torch.mm``; every float32
sum of K values in {-1, 0, +1} with K <= 2**24 is exact, so the peers are checked bit for bit too.  Every result is
checked against the spec (``refquant.xnor_matmul`` / ``refquant.ternary_matmul``) before timing.  The rate column
counts 2 * M * N * K operations per call (one multiply and one add per term), for every implementation.  Without
``--quick`` / ``--no-write`` it regenerates the lowbit section of docs/performance.md.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    THREADS,
    Case,
    Target,
    compile_times,
    parse_args,
    publish,
    run_cases,
    setup_threads,
    torch_or_none,
)

setup_threads()

import numpy as np  # noqa: E402

import refquant  # noqa: E402
import refquant.fast as fast  # noqa: E402

LOWBIT_KERNELS = textwrap.dedent(
    """
    import time, numpy as np
    import refquant.fast as fast
    from refquant.spec.log import LogFormat
    t0 = time.perf_counter()
    a = np.ones((64, 2), np.uint64)
    for m in (4, 64):  # serial and parallel variants
        fast.xnor_matmul(a[:m], a, 100)
        fast.ternary_matmul((a[:m], a[:m] * 0), (a, a * 0), 100)
        fast.shift_matmul(np.ones((m, 64), np.int8), np.ones((64, 64), np.uint8), LogFormat(4, 0))
    x = np.ones((2, 3, 8, 8), np.int8)
    fast.binary_conv2d(x[:1, :, :1], np.ones((2, 3, 1, 1), np.int8))
    fast.binary_conv2d(np.ones((64, 64, 32, 32), np.int8), np.ones((64, 64, 3, 3), np.int8))
    print(time.perf_counter() - t0)
    """
)

FIRST_CALL = textwrap.dedent(
    """
    import time, numpy as np
    import refquant.fast as fast
    a = np.ones((4, 2), np.uint64)
    t0 = time.perf_counter()
    fast.xnor_matmul(a, a, 100)
    print(numba_start, time.perf_counter() - t0)
    """
)


def _pm_one(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return np.where(rng.integers(0, 2, shape).astype(bool), 1, -1).astype(np.int8)


def _add_sgemm_peers(case: Case, lhs: np.ndarray, rhs_rows: np.ndarray, ref: np.ndarray) -> None:
    """numpy and torch float32 matmul of the same values (``rhs_rows`` holds the columns of the rhs as rows)."""
    af = lhs.astype(np.float32)
    bf = np.ascontiguousarray(rhs_rows.T.astype(np.float32))  # (K, N), the layout sgemm reads best

    def eq(r: Any) -> bool:
        return bool(np.array_equal(np.asarray(r), ref.astype(np.float32)))

    case.add("numpy float32 matmul (sgemm)", "peer", lambda: af @ bf, eq, "OpenBLAS sgemm of the same values")
    torch = torch_or_none()
    if torch is None:
        case.skip("torch.mm float32", "peer", "torch not installed")
        return
    ta, tb = torch.from_numpy(af), torch.from_numpy(bf)
    case.add("torch.mm float32", "peer", lambda: torch.mm(ta, tb), lambda r: eq(r.numpy()), "same values")


def xnor_case(m: int, n: int, k: int) -> Case:
    rng = np.random.default_rng(11 + k)
    lhs, rhs = _pm_one(rng, (m, k)), _pm_one(rng, (n, k))
    a, b = refquant.pack_bits(lhs), refquant.pack_bits(rhs)
    ref = refquant.xnor_matmul(a, b, k)
    case = Case(f"XNOR matmul {m}x{n}, K={k}", 2.0 * m * n * k)
    out = np.empty((m, n), np.int32)
    case.add(
        "refquant.fast xnor_matmul", "refquant", lambda: fast.xnor_matmul(a, b, k, out=out),
        lambda r: bool(np.array_equal(r, ref)), "packed operands, out=",
    )  # fmt: skip
    _add_sgemm_peers(case, lhs, rhs, ref)
    return case


def ternary_case(m: int, n: int, k: int) -> Case:
    rng = np.random.default_rng(23 + k)
    lhs = rng.integers(-1, 2, (m, k)).astype(np.int8)
    rhs = rng.integers(-1, 2, (n, k)).astype(np.int8)
    pa, pb = refquant.ternary_bitplanes(lhs), refquant.ternary_bitplanes(rhs)
    ref = refquant.ternary_matmul(pa, pb, k)
    case = Case(f"ternary matmul {m}x{n}, K={k}", 2.0 * m * n * k)
    out = np.empty((m, n), np.int32)
    case.add(
        "refquant.fast ternary_matmul", "refquant", lambda: fast.ternary_matmul(pa, pb, k, out=out),
        lambda r: bool(np.array_equal(r, ref)), "two bitplanes per operand, out=",
    )  # fmt: skip
    _add_sgemm_peers(case, lhs, rhs, ref)
    return case


def _versus_sgemm(case: Case) -> tuple[float | None, float | None]:
    mine = next((r for r in case.rows if r.kind == "refquant" and r.times), None)
    return case.versus(mine, [r for r in case.rows if r.kind == "peer"])


def main() -> None:
    args = parse_args(__doc__ or "")
    size = 256 if args.quick else 1024
    cases = [xnor_case(size, size, 1024), xnor_case(size, size, 4096), ternary_case(size, size, 4096)]
    run_cases(cases, runs=args.runs, repeats=args.repeats, budget=args.budget)
    targets: list[Target] = []
    for case, text, goal in zip(
        cases,
        ["XNOR K=1024: refquant / best float32 sgemm", "XNOR K=4096: refquant / best float32 sgemm",
         "ternary K=4096: refquant / best float32 sgemm"],
        [10.0, 25.0, 5.0],
        strict=True,
    ):  # fmt: skip
        med, best = _versus_sgemm(case)
        targets.append(Target(text, med, goal, best_value=best))
    extra = (
        "Ceiling (an estimate from the instruction mix, not a measurement): the XNOR kernel's inner loop spends "
        "three 512-bit instructions (`vpxorq`, `vpopcntq`, `vpaddq`) per vector of eight 64-bit words, the ternary "
        "kernel six (`vpandq`, `vpternlogq`, two `vpopcntq`, two `vpaddq`), all on the two 512-bit ALU ports of "
        "this core (`vpopcntq` on one of them).  That is at most 8 * 64 / 1.5 = 341 binary multiply-adds per cycle "
        "and core for XNOR and 171 for ternary, against 32 float32 multiply-adds per cycle for sgemm (two 512-bit "
        "FMA units): ratios of about 10.7x (XNOR) and 5.3x (ternary) at equal clock and equal efficiency, whatever "
        "K is.  A 25x ratio would need fewer instructions per word than a popcount kernel has (for instance AMX "
        "`tdpbssd` on int8 +-1 values; this machine's CPU flags list no AMX)."
    )
    if not args.no_compile:
        print("compile: measuring in fresh processes ...", flush=True)
        cold, start, first = compile_times(LOWBIT_KERNELS, FIRST_CALL)
        extra += (
            f" Compile: every low-bit kernel (XNOR, ternary, shift-only products and binary conv2d, serial and "
            f"parallel) compiled in {cold:.1f} s in a fresh process with an empty `NUMBA_CACHE_DIR`; the first "
            f"`xnor_matmul` in a new process with that warm cache took {first * 1e3:.1f} ms (median of 3; import "
            f"not included), after Numba's one-time start-up of {start * 1e3:.1f} ms."
        )
    method = (
        f"`python bench/lowbit.py` ({args.runs} runs x {args.repeats} repeats; median over runs of the per-run "
        f"median, see bench/_common.py). {THREADS} threads for every implementation (numba, OpenBLAS, "
        f"`torch.set_num_threads({THREADS})`). Rates count 2 * M * N * K operations per call for every row (the "
        "XNOR and ternary kernels do 64 terms per popcount of a 64-bit word). The operands are packed before "
        "timing (refquant) or converted to float32 before timing (peers); refquant writes into a preallocated "
        "`out=` (its per-call copies of the packed operands, the rhs transposed, are timed). Every result was "
        "checked bit for bit against the spec before timing; float32 sums of K <= 4096 terms in {-1, 0, +1} are "
        "exact, so the peers are exact too."
    )
    publish("lowbit", "XNOR and ternary matmul (`bench/lowbit.py`)", method, targets, cases, args, extra)


if __name__ == "__main__":
    main()
