"""INT8 conv2d benchmark: refquant.fast.conv2d_int (implicit GEMM on NHWC) against the runtimes.

Usage: ``python bench/conv.py [--quick] [--runs N] [--no-write] [--no-compile]``

Cases: 3x3 64->64 at 56x56 (padding 1) with N=1 and N=8, and 1x1 256->64 at 56x56 (N=1).  For each it
prints GOP/s (2*N*OC*OH*OW*C*KH*KW operations per call) of every implementation on 2 threads, checks
every result bit for bit before timing, and the ratio to the best exact peer of the same run.  Peers:
onnxruntime ConvInteger (u8u8: its fast path) and QLinearConv (u8s8) with the weight as an
initializer, torch's quantized conv2d (fbgemm and oneDNN engines) with NHWC (channels_last) input and
prepacked weight.  Peers that are not installed are listed as skipped.  Without ``--quick`` /
``--no-write`` it regenerates the conv section of docs/performance.md.
"""

from __future__ import annotations

import sys
import textwrap
import time
import warnings
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

import refquant.fast as fast  # noqa: E402
from refquant.kernels._jit import KernelPath, host_has_avx512vnni, set_kernel_path  # noqa: E402
from refquant.spec.integer_ops import Layout  # noqa: E402

# (N, C, H, W, OC, KH, KW, pad)
CASES = [(1, 64, 56, 56, 64, 3, 3, 1), (8, 64, 56, 56, 64, 3, 3, 1), (1, 256, 56, 56, 64, 1, 1, 0)]
QUICK_CASES = [(1, 64, 28, 28, 64, 3, 3, 1)]

CONV_KERNELS = textwrap.dedent(
    """
    import time, numpy as np
    import refquant.fast as fast
    from refquant.kernels._jit import KernelPath, host_has_avx512vnni, set_kernel_path
    from refquant.spec.integer_ops import Accumulator, Layout
    t0 = time.perf_counter()
    for path in [KernelPath.PORTABLE] + ([KernelPath.VNNI] if host_has_avx512vnni() else []):
        set_kernel_path(path)
        for dx in (np.int8, np.uint8):
            for dw in (np.int8, np.uint8):
                for layout in Layout:
                    x = np.ones((1, 8, 9, 9), dx) if layout is Layout.NCHW else np.ones((1, 9, 9, 8), dx)
                    w = np.ones((64, 8, 3, 3), dw) if layout is Layout.NCHW else np.ones((64, 3, 3, 8), dw)
                    for acc in Accumulator:
                        fast.conv2d_int(x, w, padding=(1, 1, 1, 1), layout=layout, accumulator=acc)
    print(time.perf_counter() - t0)
    """
)

FIRST_CALL = textwrap.dedent(
    """
    import time, numpy as np
    import refquant.fast as fast
    from refquant.spec.integer_ops import Layout
    x = np.ones((1, 14, 14, 64), np.uint8); w = np.ones((64, 3, 3, 64), np.int8)
    t0 = time.perf_counter()
    fast.conv2d_int(x, w, x_zero_point=128, padding=(1, 1, 1, 1), layout=Layout.NHWC)
    print(numba_start, time.perf_counter() - t0)
    """
)


def _ort_models(w: np.ndarray, pad: int, sx: float, sw: float, sy: float) -> tuple[Any, Any]:
    """ConvInteger u8u8 (weight + 128, zero point 128) and QLinearConv u8s8 models, weights as initializers."""
    from onnx import TensorProto, helper, numpy_helper

    pads = [pad] * 4
    x_info = helper.make_tensor_value_info("X", TensorProto.UINT8, [None, w.shape[1], None, None])
    wu = (w.astype(np.int16) + 128).astype(np.uint8)
    inits = [
        numpy_helper.from_array(wu, "W"),
        numpy_helper.from_array(np.array(128, np.uint8), "x_zp"),
        numpy_helper.from_array(np.array(128, np.uint8), "w_zp"),
    ]
    node = helper.make_node("ConvInteger", ["X", "W", "x_zp", "w_zp"], ["Y"], pads=pads)
    y_info = helper.make_tensor_value_info("Y", TensorProto.INT32, [None, None, None, None])
    m1 = helper.make_model(
        helper.make_graph([node], "ci", [x_info], [y_info], initializer=inits),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(np.array(sx, np.float32), "x_s"),
        numpy_helper.from_array(np.array(128, np.uint8), "x_zp"),
        numpy_helper.from_array(np.array(sw, np.float32), "w_s"),
        numpy_helper.from_array(np.array(0, np.int8), "w_zp"),
        numpy_helper.from_array(np.array(sy, np.float32), "y_s"),
        numpy_helper.from_array(np.array(128, np.uint8), "y_zp"),
    ]
    node = helper.make_node("QLinearConv", ["X", "x_s", "x_zp", "W", "w_s", "w_zp", "y_s", "y_zp"], ["Y"], pads=pads)
    y_info = helper.make_tensor_value_info("Y", TensorProto.UINT8, [None, None, None, None])
    m2 = helper.make_model(
        helper.make_graph([node], "qc", [x_info], [y_info], initializer=inits),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    return m1, m2


def _reference(x: np.ndarray, w: np.ndarray, pad: int) -> np.ndarray:
    """Exact int64 conv (NCHW out) of int8 ``x`` NCHW and ``w`` OIHW through a float64 im2col product."""
    n, c = x.shape[:2]
    o, _, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))  # n, c, oh, ow, kh, kw
    patches = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * win.shape[2] * win.shape[3], c * kh * kw)
    acc = patches @ w.reshape(o, -1).T.astype(np.float64)  # exact: |sums| < 2**53
    return acc.reshape(n, win.shape[2], win.shape[3], o).transpose(0, 3, 1, 2).astype(np.int64)


def build_case(n: int, c: int, h: int, wd: int, oc: int, kh: int, kw: int, pad: int) -> Case:
    oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    case = Case(f"{kh}x{kw} {c}->{oc}, N={n}, {h}x{wd}, pad {pad}", 2.0 * n * oc * oh * ow * c * kh * kw)
    rng = np.random.default_rng(n * 1000 + c * 10 + kh)
    x = rng.integers(-128, 128, (n, c, h, wd)).astype(np.int8)
    w = rng.integers(-128, 128, (oc, c, kh, kw)).astype(np.int8)
    xu = x.view(np.uint8) ^ np.uint8(0x80)  # = x + 128, zero point 128
    xu_nhwc = np.ascontiguousarray(xu.transpose(0, 2, 3, 1))
    w_ohwi = np.ascontiguousarray(w.transpose(0, 2, 3, 1))
    ref = _reference(x, w, pad)
    sx, sw = 0.05, 0.02
    sy = float(sx * sw * 4 * float(np.std(ref)) / 127) or 1.0
    mult = np.float32(np.float32(sx) * np.float32(sw) / np.float32(sy))
    ref_q = np.clip(np.rint(ref.astype(np.float32) * mult) + 128, 0, 255).astype(np.uint8)
    pads = (pad, pad, pad, pad)

    def eq_nchw(r: Any) -> bool:
        return bool(np.array_equal(np.asarray(r).astype(np.int64), ref))

    def eq_nhwc(r: Any) -> bool:
        return bool(np.array_equal(np.asarray(r).transpose(0, 3, 1, 2).astype(np.int64), ref))

    out_nhwc = np.empty((n, oh, ow, oc), np.int32)
    out_nchw = np.empty((n, oc, oh, ow), np.int32)
    paths = ([KernelPath.VNNI] if host_has_avx512vnni() else []) + [KernelPath.PORTABLE]
    for path in paths:
        set_kernel_path(path)
        t = time.perf_counter()
        pw_nhwc = fast.pack_conv_weight(w_ohwi, layout=Layout.NHWC)
        pw_nchw = fast.pack_conv_weight(w, layout=Layout.NCHW)
        if path is KernelPath.VNNI:
            pw_nhwc.vnni_panels()
            pw_nchw.vnni_panels()
        else:
            pw_nhwc.portable_matrix()
            pw_nchw.portable_matrix()
        pack = time.perf_counter() - t

        def run_nhwc(path: KernelPath = path, pw: Any = pw_nhwc) -> Any:
            set_kernel_path(path)
            return fast.conv2d_int(xu_nhwc, pw, x_zero_point=128, padding=pads, layout=Layout.NHWC, out=out_nhwc)

        def run_nchw(path: KernelPath = path, pw: Any = pw_nchw) -> Any:
            set_kernel_path(path)
            return fast.conv2d_int(x, pw, padding=pads, layout=Layout.NCHW, out=out_nchw)

        case.add(f"refquant.fast {path.value} u8 NHWC", "refquant", run_nhwc, eq_nhwc,
                 f"NHWC uint8 in, zero point 128, NHWC int32 out; weights packed once ({fmt_time(pack)} for both)")  # fmt: skip
        case.add(f"refquant.fast {path.value} s8 NCHW", "refquant", run_nchw, eq_nchw,
                 "NCHW int8 in (converted to NHWC in the call), NCHW int32 out")  # fmt: skip
    set_kernel_path(None)

    if have("onnxruntime") and have("onnx"):
        m1, m2 = _ort_models(w, pad, sx, sw, sy)
        s1, s2 = ort_session(m1), ort_session(m2)
        case.add("ORT ConvInteger u8u8", "peer", lambda: s1.run(None, {"X": xu})[0], eq_nchw,
                 "NCHW in, W + 128 initializer with zero point 128 (ORT's fast path)")  # fmt: skip
        case.add("ORT QLinearConv u8s8", "peer", lambda: s2.run(None, {"X": xu})[0],
                 lambda r: bool(np.array_equal(r, ref_q)), "NCHW in, W initializer; requantized uint8 out")  # fmt: skip
    else:
        case.skip("onnxruntime", "peer", "onnxruntime/onnx not installed")
    torch = torch_or_none()
    if torch is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch 2.13 deprecates quantized tensors
            qx = torch._make_per_tensor_quantized_tensor(torch.from_numpy(xu), sx, 128)
            qx = qx.contiguous(memory_format=torch.channels_last)
            qw = torch._make_per_tensor_quantized_tensor(torch.from_numpy(w), sw, 0)
        for engine in ("fbgemm", "onednn"):
            if engine not in torch.backends.quantized.supported_engines:
                continue
            torch.backends.quantized.engine = engine
            packed = torch.ops.quantized.conv2d_prepack(qw, None, [1, 1], [pad, pad], [1, 1], 1)

            def run_conv(packed: Any = packed, engine: str = engine) -> Any:
                torch.backends.quantized.engine = engine
                return torch.ops.quantized.conv2d(qx, packed, sy, 128)

            case.add(f"torch quantized conv2d ({engine})", "peer", run_conv,
                     lambda r: bool(np.array_equal(r.int_repr().numpy(), ref_q)),
                     "NHWC (channels_last) in, prepacked weight, quint8 out")  # fmt: skip
    else:
        case.skip("torch", "peer", "torch not installed")
    return case


def main() -> None:
    args = parse_args(__doc__ or "")
    shapes = QUICK_CASES if args.quick else CASES
    cases = [build_case(*s) for s in shapes]
    run_cases(cases, runs=args.runs, repeats=args.repeats, budget=args.budget)
    set_kernel_path(None)  # the timed calls force each path in turn; report the automatic dispatch
    main_path = KernelPath.VNNI.value if host_has_avx512vnni() else KernelPath.PORTABLE.value
    targets: list[Target] = []
    for s, case in zip(shapes, cases, strict=True):
        label = f"{s[5]}x{s[6]} N={s[0]}"
        nhwc = case.row(f"refquant.fast {main_path} u8 NHWC")
        nchw = case.row(f"refquant.fast {main_path} s8 NCHW")
        qlc = [r for r in case.rows if r.name == "ORT QLinearConv u8s8"]
        torches = [r for r in case.rows if r.name.startswith("torch quantized")]
        if s[0] == 1 and s[5] == 3:
            med, best = case.versus(nchw, qlc)
            targets.append(Target(f"{label}: NCHW s8 / ORT QLinearConv (both NCHW in)", med, 1.0, best_value=best))
            med, best = case.versus(nhwc, qlc)
            targets.append(Target(f"{label}: NHWC u8 / ORT QLinearConv", med, 1.0, best_value=best))
        med, best = case.versus(nhwc, torches)
        targets.append(
            Target(f"{label}: NHWC u8 / best exact torch quantized conv (NHWC in)", med, 0.8, best_value=best)
        )
        onednn = case.row("torch quantized conv2d (onednn)")
        if onednn is not None and not onednn.exact:  # faster than fbgemm but not bit-exact: shown apart
            targets.append(
                Target(f"{label}: NHWC u8 / torch oneDNN (not bit-exact here)", case.ratio(nhwc, onednn), 0.8,
                       best_value=case.ratio(nhwc, onednn, True))
            )  # fmt: skip
    extra = ""
    if not args.no_compile:
        print("compile: measuring in fresh processes ...", flush=True)
        cold, start, first = compile_times(CONV_KERNELS, FIRST_CALL)
        targets.append(MaxTarget("cold compile of the conv kernels (s)", cold, 60.0, "{:.1f}"))
        targets.append(
            MaxTarget("first conv2d_int call, warm cache, after Numba's start-up (ms)", first * 1e3, 50.0, "{:.1f}")
        )
        targets.append(
            MaxTarget("Numba start-up + first conv2d_int call, warm cache (ms)", (start + first) * 1e3, 50.0, "{:.1f}")
        )
        extra = (
            f"Compile: the conv kernels (both paths, 4 dtype pairs, both layouts, every accumulator) compiled in "
            f"{cold:.1f} s in a fresh process with an empty `NUMBA_CACHE_DIR`; the first 14x14 3x3 `conv2d_int` in "
            f"a new process with that warm cache took {first * 1e3:.1f} ms (median of 3; import not included), after Numba's one-time start-up in the process, "
            f"which took {start * 1e3:.1f} ms (measured on a trivial cached kernel: typing and target contexts)."
        )
    method = (
        f"`python bench/conv.py` ({args.runs} runs x {args.repeats} repeats; median over runs of the per-run "
        f"median, see bench/_common.py). {THREADS} threads for every implementation (numba {THREADS} threads, "
        f"`torch.set_num_threads({THREADS})`, ORT `intra_op_num_threads={THREADS}`). Every result was checked bit "
        "for bit before timing: int32 outputs against an exact im2col product, requantizing peers against "
        "`clip(rint(float32(acc) * float32(sx*sw/sy)) + 128)`. Weights constant: refquant packs them once with "
        "`pack_conv_weight` and writes into a preallocated `out=`; ORT has them as initializers; torch prepacks. "
        "u8 activations are the int8 ones XOR 0x80 with zero point 128. refquant returns the int32 accumulators "
        "(no requantization), QLinearConv and torch return requantized 8-bit codes. "
        "GOP/s = 2*N*OC*OH*OW*C*KH*KW / time."
    )
    publish("conv", "INT8 conv2d (`bench/conv.py`)", method, targets, cases, args, extra)


if __name__ == "__main__":
    main()
