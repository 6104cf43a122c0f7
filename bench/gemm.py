"""INT8 GEMM benchmark: refquant.fast.matmul_int (VNNI and portable kernels) against the runtimes.

Usage: ``python bench/gemm.py [--quick] [--runs N] [--no-write] [--no-compile]``

For every shape (M, N, K) it prints GOP/s (2*M*N*K operations per call) of each implementation on
2 threads, checks every result bit for bit before timing it, and gives the ratio of each row to the
best exact peer measured in the same run.  Peers: numpy float32 matmul (OpenBLAS sgemm; exact only
while partial sums stay below 2**24), numpy int32 matmul (no BLAS; timed only where one call takes
well under a second, i.e. M*N*K <= 2**25), onnxruntime MatMulInteger and QLinearMatMul u8s8 with the
weight as an initializer (prepacked by ORT), ``torch._int_mm`` and torch's quantized linear (fbgemm
and oneDNN engines, prepacked weight).  Peers that are not installed are listed as skipped.

For the weight-streaming shapes (M <= 16) an anchor row times one read of the weight's K*N bytes on
2 threads (an XOR reduction, no arithmetic to speak of): no kernel that reads the weight once can
take less time, so its GOP/s is the ceiling of every implementation there.

It also measures the machine's VNNI peak (independent ``vpdpbusd`` on registers, 2 threads), the
cold compile time of every refquant kernel (fresh ``NUMBA_CACHE_DIR``, new process) and the first
call in a new process with a warm cache.  Without ``--quick`` / ``--no-write`` it regenerates the
GEMM section of docs/performance.md.
"""

from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    THREADS,
    Case,
    MaxTarget,
    Target,
    compile_times,
    fmt_time,
    have,
    ort_session,
    parse_args,
    publish,
    run_cases,
    setup_threads,
    torch_or_none,
)

setup_threads()

import numpy as np  # noqa: E402
from numba import prange  # noqa: E402

import refquant.fast as fast  # noqa: E402
from refquant.kernels._jit import KernelPath, host_has_avx512vnni, njit_parallel, set_kernel_path  # noqa: E402

SHAPES = [(256, 256, 256), (1024, 1024, 1024), (1, 4096, 4096), (16, 4096, 4096), (128, 768, 3072)]
QUICK_SHAPES = [(256, 256, 256), (16, 1024, 1024)]
INT32_MATMUL_LIMIT = 2**25  # M*N*K above which numpy's int32 matmul (seconds per call) is not timed
COMPUTE_BOUND = [(1024, 1024, 1024), (128, 768, 3072)]  # 256**3 is bound by per-call overhead
READ_ANCHOR = "read the weight once (XOR of its bytes)"


@njit_parallel
def _xor_read(words, parts):  # type: ignore[no-untyped-def]
    """XOR of all ``words`` (uint64), ``parts`` contiguous ranges on Numba's threads: a pure read."""
    n = words.shape[0]
    acc = np.zeros(parts, np.uint64)
    for p in prange(parts):
        seg = words[p * n // parts : (p + 1) * n // parts]  # a loop over a slice vectorizes
        x = np.uint64(0)
        for i in range(seg.shape[0]):
            x ^= seg[i]
        acc[p] = x
    return acc


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

ALL_KERNELS = textwrap.dedent(
    """
    import time, numpy as np
    import refquant.fast as fast
    from refquant.kernels._jit import KernelPath, host_has_avx512vnni, set_kernel_path
    from refquant.spec.integer_ops import Accumulator, Layout
    from refquant.spec.affine import QuantParams
    from refquant.spec.formats import INT8, UINT8, INT4
    from refquant.spec.granularity import PerAxis, PerBlock
    from refquant.spec.fixed_point import RequantRounding
    t0 = time.perf_counter()
    paths = [KernelPath.PORTABLE] + ([KernelPath.VNNI] if host_has_avx512vnni() else [])
    for path in paths:
        set_kernel_path(path)
        for da in (np.int8, np.uint8):
            for db in (np.int8, np.uint8):
                for m, n, k in ((5, 70, 9), (70, 130, 300)):
                    a = np.ones((m, k), da); b = np.ones((k, n), db)
                    for acc in Accumulator:
                        fast.matmul_int(a, b, accumulator=acc)
                    fast.matmul_int(np.ones((m, 2 * k), da)[:, ::2], b)
                for layout in Layout:
                    x = np.ones((1, 8, 9, 9), da) if layout is Layout.NCHW else np.ones((1, 9, 9, 8), da)
                    w = np.ones((64, 8, 3, 3), db) if layout is Layout.NCHW else np.ones((64, 3, 3, 8), db)
                    for acc in Accumulator:
                        fast.conv2d_int(x, w, padding=(1, 1, 1, 1), layout=layout, accumulator=acc)
                    fast.conv2d_int(x, w[:8, :4] if layout is Layout.NCHW else w[:8, :, :, :4], groups=2, layout=layout)
        fast.matmul_int(np.ones((600, 600), np.int8), np.ones((600, 64), np.int8))  # the parallel lhs shift
        big = np.full((2, 40000), 255, np.uint8)
        fast.matmul_int(big, np.full((40000, 3), 255, np.uint8), accumulator=Accumulator.INT64)
        fast.matmul_int(big, np.full((40000, 3), 255, np.uint8), accumulator=Accumulator.INT32_SATURATE)
        fast.pack_rhs(np.ones((8, 8), np.int8)).unpack()
    set_kernel_path(None)
    for dt in (np.float32, np.float64):
        x = np.linspace(-3, 3, 4096, dtype=dt).reshape(64, 64)
        for fmt in (INT8, UINT8, INT4):
            fast.quantize(x, QuantParams(0.05, 0 if fmt.signed else 8, fmt))
            fast.quantize(x, QuantParams(np.full(64, 0.05), 0 if fmt.signed else 8, fmt, PerAxis(0)))
            fast.quantize(x, QuantParams(np.full((64, 2), 0.05), 0 if fmt.signed else 8, fmt, PerBlock(1, 32)))
    for dt in (np.int8, np.uint8, np.int32):
        q = np.ones((64, 64), dt)
        fast.dequantize(q, QuantParams(0.05, 1, INT8 if dt is np.int8 else UINT8))
        fast.dequantize(q, QuantParams(np.full(64, 0.05), 1, INT8 if dt is np.int8 else UINT8, PerAxis(1)))
    acc32 = np.arange(-5000, 5000, dtype=np.int32)
    for r in RequantRounding:
        fast.requantize(acc32, 0.0123, rounding=r)
    for layout in Layout:  # qlinear_conv with the requantization fused into the VNNI conv kernel
        x = np.ones((1, 8, 9, 9), np.uint8) if layout is Layout.NCHW else np.ones((1, 9, 9, 8), np.uint8)
        w = np.ones((64, 8, 3, 3), np.int8) if layout is Layout.NCHW else np.ones((64, 3, 3, 8), np.int8)
        for r in (RequantRounding.FLOAT32, RequantRounding.FLOAT64):
            for y in (QuantParams(0.5, 3, UINT8), QuantParams(0.5, 3, INT8)):
                fast.qlinear_conv(x, w, x_params=QuantParams(0.1, 2, UINT8), w_params=QuantParams(0.1, 0, INT8),
                                  y_params=y, bias=np.ones(64, np.int32), padding=(1, 1, 1, 1), layout=layout,
                                  rounding=r)
    print(time.perf_counter() - t0)
    """
)

FIRST_CALL = textwrap.dedent(
    """
    import time, numpy as np
    import refquant.fast as fast
    a = np.ones((64, 64), np.int8); b = np.ones((64, 64), np.int8)
    t0 = time.perf_counter()
    fast.matmul_int(a, b)
    print(numba_start, time.perf_counter() - t0)
    """
)


# --------------------------------------------------------------------------------------------------
# implementations


def _ort_model(kind: str, b: np.ndarray, sa: float, sb: float, sy: float) -> Any:
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
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def build_case(m: int, n: int, k: int, quick: bool) -> Case:
    """Every implementation of one shape, each result checked against the exact product first."""
    case = Case(f"M={m}, N={n}, K={k}", 2.0 * m * n * k)
    rng = np.random.default_rng(m * 7919 + n * 31 + k)
    a = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-128, 128, (k, n)).astype(np.int8)
    au = a.view(np.uint8) ^ np.uint8(0x80)  # = a + 128, zero point 128
    ref = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)  # exact: |sums| < 2**53
    sa, sb = 0.05, 0.02
    sy = float(sa * sb * 4 * float(np.std(ref)) / 127) or 1.0
    mult = np.float32(np.float32(sa) * np.float32(sb) / np.float32(sy))
    ref_q = np.clip(np.rint(ref.astype(np.float32) * mult) + 128, 0, 255).astype(np.uint8)

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
        case.add("refquant.fast VNNI s8s8", "refquant", lambda: fast.matmul_int(a, pv, out=out), eq,
                 f"int8 lhs (shifted to u8 in the call); pack_rhs once: {fmt_time(pack_v)}")  # fmt: skip
        case.add("refquant.fast VNNI u8s8", "refquant", lambda: fast.matmul_int(au, pv, lhs_zero_point=128, out=out),
                 eq, "uint8 lhs, zero point 128 (ORT's input)")  # fmt: skip
    else:
        case.skip("refquant.fast VNNI", "refquant", "no AVX-512 VNNI on this CPU")
    set_kernel_path(KernelPath.PORTABLE)
    pp = fast.pack_rhs(b)
    set_kernel_path(None)
    case.add("refquant.fast portable s8s8", "refquant", lambda: fast.matmul_int(a, pp, out=out), eq,
             "REFQUANT_KERNELS=portable kernels")  # fmt: skip

    if m <= 16:
        words = np.ascontiguousarray(b).reshape(-1)[: (k * n // 8) * 8].view(np.uint64)
        case.add(READ_ANCHOR, "anchor", lambda: _xor_read(words, THREADS), None,
                 f"{k * n / 2**20:.0f} MiB, {THREADS} threads: the least time any kernel reading it can take")  # fmt: skip

    af, bf = a.astype(np.float32), b.astype(np.float32)
    outf = np.empty((m, n), np.float32)
    case.add("numpy float32 matmul", "peer", lambda: np.matmul(af, bf, out=outf), eq, "OpenBLAS sgemm")
    if m * n * k <= INT32_MATMUL_LIMIT and not quick:
        a32, b32 = a.astype(np.int32), b.astype(np.int32)
        out32 = np.empty((m, n), np.int32)
        case.add("numpy int32 matmul", "peer", lambda: np.matmul(a32, b32, out=out32), eq, "no BLAS")
    else:
        case.skip("numpy int32 matmul", "peer", "not timed: M*N*K > 2**25 takes seconds per call")
    if have("onnxruntime") and have("onnx"):
        s1 = ort_session(_ort_model("MatMulInteger", b, sa, sb, sy))
        s2 = ort_session(_ort_model("QLinearMatMul", b, sa, sb, sy))
        case.add("ORT MatMulInteger u8s8", "peer", lambda: s1.run(None, {"A": au})[0], eq,
                 "B initializer, a_zero_point 128")  # fmt: skip
        case.add("ORT QLinearMatMul u8s8", "peer", lambda: s2.run(None, {"A": au})[0], eq_q,
                 "B initializer; requantized uint8 out")  # fmt: skip
    else:
        case.skip("onnxruntime", "peer", "onnxruntime/onnx not installed")
    torch = torch_or_none()
    if torch is not None:
        import warnings

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        case.add("torch._int_mm", "peer", lambda: torch._int_mm(ta, tb), lambda r: eq(r.numpy()))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch 2.13 deprecates quantized tensors
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

            case.add(f"torch quantized linear ({engine})", "peer", run_linear, lambda r: eq_q(r.int_repr().numpy()),
                     "prepacked weight, quint8 out")  # fmt: skip
    else:
        case.skip("torch", "peer", "torch not installed")
    return case


# --------------------------------------------------------------------------------------------------
# report


def main() -> None:
    args = parse_args(__doc__ or "")
    shapes = QUICK_SHAPES if args.quick else SHAPES
    peak = vnni_peak()
    print(f"VNNI peak (vpdpbusd zmm, {THREADS} threads): " + (f"{peak:.0f} GOP/s" if peak else "no AVX-512 VNNI"))
    cases = [build_case(*shape, quick=args.quick) for shape in shapes]
    run_cases(cases, runs=args.runs, repeats=args.repeats, budget=args.budget)

    targets: list[Target] = []
    for shape, case in zip(shapes, cases, strict=True):
        vnni = case.row("refquant.fast VNNI s8s8")
        peers = [r for r in case.rows if r.kind == "peer"]
        label = f"({shape[0]},{shape[1]},{shape[2]})"
        if shape == (1024, 1024, 1024):
            med, best = case.versus(vnni, peers)
            targets.append(Target(f"{label} VNNI s8s8 / best peer", med, 1.0, best_value=best))
            med, best = case.versus(case.row("refquant.fast portable s8s8"), peers)
            targets.append(Target(f"{label} portable / best peer", med, 0.15, best_value=best))
        if shape[0] in (1, 16):
            ort = [r for r in peers if r.name.startswith("ORT")]
            med, best = case.versus(vnni, ort)
            targets.append(Target(f"{label} VNNI s8s8 / best ORT", med, 1.2, best_value=best))
            read = case.row(READ_ANCHOR)
            med, best = case.versus(read, ort)
            if med is not None:
                targets.append(
                    Target(f"{label} ceiling: weight read once / best ORT", med, 1.2, best_value=best)
                )  # fmt: skip
        if shape in COMPUTE_BOUND and peak and vnni is not None:
            targets.append(
                Target(f"{label} VNNI s8s8 / measured VNNI peak", case.rate(vnni) / peak, 0.75,
                       best_value=case.rate(vnni, True) / peak)
            )  # fmt: skip
    extra = ""
    if not args.no_compile:
        print("compile: measuring in fresh processes ...", flush=True)
        cold, start, first = compile_times(ALL_KERNELS, FIRST_CALL)
        targets.append(MaxTarget("cold compile of all kernels (s)", cold, 60.0, "{:.1f}"))
        targets.append(
            MaxTarget("first matmul_int call, warm cache, after Numba's start-up (ms)", first * 1e3, 50.0, "{:.1f}")
        )
        targets.append(
            MaxTarget("Numba start-up + first matmul_int call, warm cache (ms)", (start + first) * 1e3, 50.0, "{:.1f}")
        )
        extra = (
            f"Compile: every kernel signature the API uses (GEMM and conv on both kernel paths, 4 dtype pairs, every "
            f"accumulator, quantize/dequantize/requantize, qlinear_conv's fused requantization) compiled in {cold:.1f} s in a fresh process with an empty "
            f"`NUMBA_CACHE_DIR`; the first 64x64x64 `matmul_int` in a new process with that warm cache took "
            f"{first * 1e3:.1f} ms (median of 3; import of refquant.fast not included), after Numba's one-time start-up in the process, "
            f"which took {start * 1e3:.1f} ms (measured on a trivial cached kernel: typing and target contexts)."
        )
    extra = (
        f"VNNI peak measured on this machine (24 independent `vpdpbusd` zmm chains on registers, {THREADS} threads): "
        + (f"{peak:.0f} GOP/s." if peak else "no AVX-512 VNNI.")
        + ("\n\n" + extra if extra else "")
    )
    method = (
        f"`python bench/gemm.py` ({args.runs} runs x {args.repeats} repeats; each figure is the median over runs of "
        "the per-run median, see bench/_common.py). "
        f"{THREADS} threads for every implementation (numba {THREADS} threads, `torch.set_num_threads({THREADS})`, "
        f"ORT `intra_op_num_threads={THREADS}`, OpenBLAS {THREADS} threads). Every result was checked bit for bit "
        "before timing: int32 outputs against the exact product, requantizing peers against "
        "`clip(rint(float32(acc) * float32(sa*sb/sy)) + 128)`. Weights constant, as in inference: refquant gets "
        "them packed once with `pack_rhs` and writes into a preallocated `out=`; ORT has them as initializers; "
        "torch prepacks. u8 activations are the int8 ones XOR 0x80 with zero point 128, so every u8s8 and s8s8 "
        "implementation computes the same int32 product. GOP/s = 2*M*N*K / time. Ratios are against the best "
        "exact peer of the same run. numpy's int32 matmul is timed only where M*N*K <= 2**25."
    )
    publish("gemm", "INT8 GEMM (`bench/gemm.py`)", method, targets, cases, args, extra)


if __name__ == "__main__":
    main()
