"""INT8 GEMM benchmark: refquant.fast.matmul_int (VNNI and portable kernels) against the runtimes.

Usage: ``python bench/gemm.py [--quick] [--runs N] [--no-write]``

For every shape (M, N, K) it prints GOP/s (2*M*N*K operations per call) of each implementation on
2 threads, checks every result bit for bit before timing it, and gives the ratio of each refquant row
to the best exact peer measured in the same run.  Peers: numpy float32 matmul (OpenBLAS sgemm; exact
only while partial sums stay below 2**24), numpy int32 matmul (no BLAS; timed only where one call
takes well under a second, i.e. M*N*K <= 2**25), onnxruntime MatMulInteger and QLinearMatMul u8s8 with
the weight as an initializer (prepacked by ORT), ``torch._int_mm`` and torch's quantized linear
(fbgemm and oneDNN engines, prepacked weight).  Weights are constant, as in inference: refquant gets
them packed once with ``pack_rhs``.  u8 activations are the int8 ones XOR 0x80 with zero point 128,
so every u8s8 and s8s8 implementation computes the same int32 product.  Requantizing peers
(QLinearMatMul, torch quantized linear) are checked against ``clip(rint(float32(acc) *
float32(sa * sb / sy)) + zy)``.

It also measures the machine's VNNI peak (an L1-free loop of independent ``vpdpbusd``, 2 threads),
the cold compile time of the GEMM kernels (fresh ``NUMBA_CACHE_DIR``) and the first call in a new
process with a warm cache.  Without ``--quick`` / ``--no-write`` it regenerates the GEMM section of
docs/performance.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    ROOT,
    THREADS,
    Row,
    best_peer,
    fmt_time,
    git_revision,
    machine,
    measure,
    setup_threads,
    today,
    write_section,
)

setup_threads()

import numpy as np  # noqa: E402

import refquant.fast as fast  # noqa: E402
from refquant.kernels._jit import KernelPath, host_has_avx512vnni, set_kernel_path, threading_layer  # noqa: E402

SHAPES = [(256, 256, 256), (1024, 1024, 1024), (1, 4096, 4096), (16, 4096, 4096), (128, 768, 3072)]
INT32_MATMUL_LIMIT = 2**25  # M*N*K above which numpy's int32 matmul (seconds per call) is not timed


# --------------------------------------------------------------------------------------------------
# peak: independent vpdpbusd on registers


def vnni_peak(seconds: float = 0.3) -> float | None:
    """Measured int8 GOP/s of back-to-back ``vpdpbusd`` zmm on ``THREADS`` threads (None without VNNI)."""
    if not host_has_avx512vnni():
        return None
    import numba
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    i32 = ir.IntType(32)
    v16 = ir.VectorType(i32, 16)
    chains = 24

    @intrinsic
    def dpbusd_loop(typingctx: Any, iters: Any, seed: Any) -> Any:
        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(v16, [v16, v16, v16]), "llvm.x86.avx512.vpdpbusd.512"
            )
            s = builder.trunc(args[1], i32)
            x = builder.insert_element(ir.Constant(v16, ir.Undefined), s, ir.Constant(i32, 0))
            x = builder.shuffle_vector(x, ir.Constant(v16, ir.Undefined), ir.Constant(v16, [0] * 16))
            slots = []
            for c in range(chains):
                slot = cgutils.alloca_once(builder, v16)
                builder.store(builder.add(x, ir.Constant(v16, [c] * 16)), slot)
                slots.append(slot)
            with cgutils.for_range(builder, args[0]):
                for slot in slots:
                    builder.store(builder.call(fn, [builder.load(slot), x, x]), slot)
            total = builder.load(slots[0])
            for slot in slots[1:]:
                total = builder.add(total, builder.load(slot))
            return builder.sext(builder.extract_element(total, ir.Constant(i32, 0)), ir.IntType(64))

        return types.int64(iters, seed), codegen

    @numba.njit(parallel=True, cache=True)
    def run(iters: int) -> int:
        acc = 0
        for t in numba.prange(THREADS):
            acc += dpbusd_loop(iters, t + 1)
        return acc

    run(10)
    iters = 200_000
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        run(iters)
        dt = time.perf_counter() - start
        rates.append(THREADS * iters * chains * 16 * 4 * 2 / dt / 1e9)
        if dt < seconds / 5:
            iters *= 2
    return max(rates)


# --------------------------------------------------------------------------------------------------
# compile and first-call times (fresh processes)

_WARM = textwrap.dedent(
    """
    import time, numpy as np
    t0 = time.perf_counter()
    import refquant.fast as fast
    from refquant.kernels._jit import KernelPath, host_has_avx512vnni, set_kernel_path
    from refquant.spec.integer_ops import Accumulator
    t1 = time.perf_counter()
    mode = {mode!r}
    if mode == "first":
        a = np.ones((64, 64), np.int8); b = np.ones((64, 64), np.int8)
        fast.matmul_int(a, b)
        print(t1 - t0, time.perf_counter() - t1)
    else:
        paths = [KernelPath.PORTABLE] + ([KernelPath.VNNI] if host_has_avx512vnni() else [])
        for path in paths:
            set_kernel_path(path)
            for da in (np.int8, np.uint8):
                for db in (np.int8, np.uint8):
                    for m, n, k in ((5, 70, 9), (70, 130, 300)):
                        a = np.ones((m, k), da); b = np.ones((k, n), db)
                        for acc in Accumulator:
                            fast.matmul_int(a, b, accumulator=acc)
                        fast.matmul_int(a[:, ::2], b, accumulator=acc) if False else None
                        fast.matmul_int(np.ones((m, 2 * k), da)[:, ::2], b)
            big = np.full((2, 40000), 255, np.uint8)
            fast.matmul_int(big, np.full((40000, 3), 255, np.uint8), accumulator=Accumulator.INT64)
            fast.matmul_int(big, np.full((40000, 3), 255, np.uint8), accumulator=Accumulator.INT32_SATURATE)
            fast.pack_rhs(np.ones((8, 8), np.int8)).unpack()
        print(t1 - t0, time.perf_counter() - t1)
    """
)


def compile_times() -> dict[str, float]:
    """Cold compile of every GEMM kernel signature the API uses, then a cached first call, in fresh processes."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**__import__("os").environ, "NUMBA_CACHE_DIR": cache}

        def run(mode: str) -> tuple[float, float]:
            out = subprocess.run(
                [sys.executable, "-c", _WARM.format(mode=mode)], env=env, capture_output=True, text=True, check=True
            )
            imp, work = out.stdout.split()
            return float(imp), float(work)

        imp_cold, cold = run("all")
        firsts = [run("first") for _ in range(3)]
    return {
        "import": statistics.median([imp_cold, *(f[0] for f in firsts)]),
        "cold": cold,
        "first": statistics.median(f[1] for f in firsts),
    }


# --------------------------------------------------------------------------------------------------
# implementations


def _ort_session(kind: str, b: np.ndarray, sa: float, sb: float, sy: float) -> Any:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    k, n = b.shape
    inits = [numpy_helper.from_array(b, "B")]
    if kind == "MatMulInteger":
        inits.append(numpy_helper.from_array(np.array(128, np.uint8), "a_zp"))
        node = helper.make_node("MatMulInteger", ["A", "B", "a_zp"], ["Y"])
        yinfo = helper.make_tensor_value_info("Y", TensorProto.INT32, [None, n])
    else:
        inits += [
            numpy_helper.from_array(np.array(sa, np.float32), "a_s"),
            numpy_helper.from_array(np.array(128, np.uint8), "a_zp"),
            numpy_helper.from_array(np.array(sb, np.float32), "b_s"),
            numpy_helper.from_array(np.array(0, np.int8), "b_zp"),
            numpy_helper.from_array(np.array(sy, np.float32), "y_s"),
            numpy_helper.from_array(np.array(128, np.uint8), "y_zp"),
        ]
        node = helper.make_node("QLinearMatMul", ["A", "a_s", "a_zp", "B", "b_s", "b_zp", "y_s", "y_zp"], ["Y"])
        yinfo = helper.make_tensor_value_info("Y", TensorProto.UINT8, [None, n])
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("A", TensorProto.UINT8, [None, k])], [yinfo], initializer=inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # onnxruntime may reject the newest IR version onnx writes
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def build_case(m: int, n: int, k: int, quick: bool) -> list[tuple[Row, Any]]:
    """Rows with their timed callables, every result checked against the exact int64 product first."""
    rng = np.random.default_rng(m * 7919 + n * 31 + k)
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    au = a.view(np.uint8) ^ np.uint8(0x80)  # = a + 128, zero point 128
    ref = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)  # exact: |sums| < 2**53
    sa, sb = 0.05, 0.02
    sy = float(sa * sb * 4 * float(np.std(ref)) / 127) or 1.0
    mult = np.float32(np.float32(sa) * np.float32(sb) / np.float32(sy))
    ref_q = np.clip(np.rint(ref.astype(np.float32) * mult) + 128, 0, 255).astype(np.uint8)
    cases: list[tuple[Row, Any]] = []

    def add(name: str, kind: str, fn: Any, check: Any, note: str = "") -> None:
        try:
            result = fn()
            exact = bool(check(result))
        except Exception as exc:  # a peer that cannot run this shape
            cases.append((Row(name, kind, None, f"not run: {type(exc).__name__}: {str(exc)[:80]}"), None))
            return
        cases.append((Row(name, kind, exact, note), fn))

    def eq(x: Any) -> bool:
        return bool(np.array_equal(np.asarray(x).astype(np.int64), ref))

    def eq_q(x: Any) -> bool:
        return bool(np.array_equal(np.asarray(x), ref_q))

    out = np.empty((m, n), np.int32)
    if host_has_avx512vnni():
        set_kernel_path(KernelPath.VNNI)
        t = time.perf_counter()
        pv = fast.pack_rhs(b)
        pack_v = time.perf_counter() - t
        add("refquant.fast VNNI s8s8", "refquant", lambda: fast.matmul_int(a, pv, out=out), eq,
            f"int8 lhs (shifted to u8 each call); pack_rhs once: {fmt_time(pack_v)}")  # fmt: skip
        add("refquant.fast VNNI u8s8", "refquant", lambda: fast.matmul_int(au, pv, lhs_zero_point=128, out=out), eq,
            "uint8 lhs, zero point 128 (ORT's input)")  # fmt: skip
    set_kernel_path(KernelPath.PORTABLE)
    pp = fast.pack_rhs(b)
    set_kernel_path(None)
    add("refquant.fast portable s8s8", "refquant", lambda: fast.matmul_int(a, pp, out=out), eq, "REFQUANT_KERNELS=portable")

    af, bf = a.astype(np.float32), b.astype(np.float32)
    outf = np.empty((m, n), np.float32)
    add("numpy float32 matmul", "peer", lambda: np.matmul(af, bf, out=outf), eq, "OpenBLAS sgemm")
    if m * n * k <= INT32_MATMUL_LIMIT and not quick:
        a32, b32 = a.astype(np.int32), b.astype(np.int32)
        add("numpy int32 matmul", "peer", lambda: np.matmul(a32, b32), eq, "no BLAS")
    else:
        cases.append((Row("numpy int32 matmul", "peer", None, f"skipped: M*N*K > 2**25 takes seconds per call"), None))
    try:
        s1 = _ort_session("MatMulInteger", b, sa, sb, sy)
        s2 = _ort_session("QLinearMatMul", b, sa, sb, sy)
        add("ORT MatMulInteger u8s8", "peer", lambda: s1.run(None, {"A": au})[0], eq, "B initializer, a_zero_point 128")
        add("ORT QLinearMatMul u8s8", "peer", lambda: s2.run(None, {"A": au})[0], eq_q, "requantized uint8 out")
    except ImportError:
        cases.append((Row("onnxruntime", "peer", None, "not installed"), None))
    try:
        import torch

        torch.set_num_threads(THREADS)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        add("torch._int_mm", "peer", lambda: torch._int_mm(ta, tb), lambda r: eq(r.numpy()))
        qx = torch._make_per_tensor_quantized_tensor(torch.from_numpy(au), sa, 128)
        qw = torch._make_per_tensor_quantized_tensor(torch.from_numpy(np.ascontiguousarray(b.T)), sb, 0)
        for engine in ("fbgemm", "onednn"):
            if engine not in torch.backends.quantized.supported_engines:
                continue
            torch.backends.quantized.engine = engine
            packed = torch.ops.quantized.linear_prepack(qw, None)

            def run_linear(packed: Any = packed, engine: str = engine) -> Any:
                torch.backends.quantized.engine = engine
                return torch.ops.quantized.linear(qx, packed, sy, 128)

            add(f"torch quantized linear ({engine})", "peer", run_linear, lambda r: eq_q(r.int_repr().numpy()),
                "prepacked weight, quint8 out")  # fmt: skip
    except ImportError:
        cases.append((Row("torch", "peer", None, "not installed"), None))
    return cases


# --------------------------------------------------------------------------------------------------
# report


def gops(m: int, n: int, k: int, seconds: float) -> float:
    return 2 * m * n * k / seconds / 1e9


def table(shape: tuple[int, int, int], rows: list[Row]) -> str:
    m, n, k = shape
    best = best_peer(rows)
    lines = [
        f"#### M={m}, N={n}, K={k}" + (f": best peer {best.name}" if best else ""),
        "",
        "| implementation | time | GOP/s | x best peer | exact | note |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        if not r.times:
            lines.append(f"| {r.name} | - | - | - | - | {r.note} |")
            continue
        ratio = f"{best.seconds / r.seconds:.2f}" if best else "-"
        lines.append(
            f"| {r.name} | {fmt_time(r.seconds)} | {gops(m, n, k, r.seconds):.0f} | {ratio} | "
            f"{'yes' if r.exact else 'NO'} | {r.note} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: first shape, 1 run, short loops, no docs")
    parser.add_argument("--runs", type=int, default=3, help="rounds through all implementations (median taken)")
    parser.add_argument("--no-write", action="store_true", help="do not regenerate docs/performance.md")
    args = parser.parse_args()
    shapes = SHAPES[:1] if args.quick else SHAPES
    runs = 1 if args.quick else max(1, args.runs)
    repeats, budget = (3, 0.02) if args.quick else (5, 0.1)

    peak = vnni_peak()
    print(f"machine: {machine()}")
    print(f"VNNI peak (vpdpbusd zmm, {THREADS} threads): " + (f"{peak:.0f} GOP/s" if peak else "no AVX-512 VNNI"))
    cases = {shape: build_case(*shape, quick=args.quick) for shape in shapes}
    for run in range(runs):
        for shape, impls in cases.items():
            for row, fn in impls:
                if fn is not None:
                    row.times.append(measure(fn, repeats=repeats, budget=budget))
        print(f"run {run + 1}/{runs} done", flush=True)
    layer = threading_layer()
    tables = []
    summary = []
    for shape, impls in cases.items():
        rows = [r for r, _ in impls]
        text = table(shape, rows)
        tables.append(text)
        print("\n" + text)
        best = best_peer(rows)
        ort_rows = [r for r in rows if r.name.startswith("ORT") and r.exact and r.times]
        best_ort = min(ort_rows, key=lambda r: r.seconds) if ort_rows else None
        for r in rows:
            if r.kind == "refquant" and r.times:
                summary.append(
                    (shape, r.name, gops(*shape, r.seconds), best.seconds / r.seconds if best else None,
                     best_ort.seconds / r.seconds if best_ort else None,
                     gops(*shape, r.seconds) / peak if peak else None)
                )  # fmt: skip
    print("\ncompile: measuring in fresh processes ...", flush=True)
    comp = compile_times()
    comp_text = (
        f"Compile (fresh processes, GEMM kernels only): `import refquant.fast` {comp['import'] * 1e3:.0f} ms; "
        f"cold compile of every GEMM kernel signature the API uses (both paths, 4 dtype pairs, serial and parallel "
        f"drivers, exact and saturating paths) {comp['cold']:.1f} s; first 64x64x64 call in a new process with a "
        f"warm cache {comp['first'] * 1e3:.1f} ms (median of 3)."
    )
    print(comp_text)
    head = [
        f"Machine: {machine()}. Date: {today()}. Revision: {git_revision()}.",
        "",
        f"Method: `python bench/gemm.py` ({runs} runs x {repeats} repeats; each figure is the median over runs of the "
        f"per-run median; see bench/_common.py). {THREADS} threads for every implementation; Numba threading layer "
        f"`{layer}`. Every result was checked bit for bit before timing (exact int64 product; requantizing peers "
        "against the float32-multiplier reference). Ratios are against the best exact peer of the same run. "
        "Weights constant: refquant packs them once with `pack_rhs`, ORT has them as initializers, torch prepacks. "
        "numpy's int32 matmul is timed only where M*N*K <= 2**25: above that one call takes seconds.",
        "",
        f"VNNI peak measured on this machine (independent `vpdpbusd` zmm, {THREADS} threads): "
        + (f"{peak:.0f} GOP/s." if peak else "no AVX-512 VNNI."),
        "",
        comp_text,
        "",
        "Summary (refquant rows):",
        "",
        "| shape (M,N,K) | kernel | GOP/s | x best peer | x best ORT | x VNNI peak |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for shape, name, rate, rb, ro, rp in summary:
        f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        head.append(f"| {shape} | {name} | {rate:.0f} | {f(rb)} | {f(ro)} | {f(rp)} |")
    markdown = "## INT8 GEMM (`bench/gemm.py`)\n\n" + "\n".join(head) + "\n\n" + "\n\n".join(tables) + "\n"
    if not (args.quick or args.no_write):
        write_section("gemm", markdown)
        print(f"\nwrote the GEMM section of {ROOT / 'docs' / 'performance.md'}")


if __name__ == "__main__":
    main()
