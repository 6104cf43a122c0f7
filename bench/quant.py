"""quantize / dequantize benchmark: refquant.fast against onnxruntime and a plain copy's bandwidth.

Usage: ``python bench/quant.py [--quick] [--runs N] [--no-write] [--no-compile]``

Cases on a large float32 tensor (4096 x 4096 = 16M elements, 64 MB; 1024 x 1024 with ``--quick``):
quantize float32 -> int8 per tensor and per channel (axis 0), dequantize int8 -> float32 per tensor
and per channel.  Rates are GB/s of memory traffic (bytes read + bytes written per call: 5 bytes per
element for quantize and dequantize, 8 for a float32 copy), so a kernel can be compared with the
bandwidth of a plain copy (``np.copyto``, the anchor of every case).  Every result is checked bit for
bit against the spec (``refquant.quantize`` / ``refquant.dequantize``, ONNX profile) before timing.
Peers: onnxruntime QuantizeLinear / DequantizeLinear (scale and zero point as initializers), the
plain numpy expression, torch's quantize_per_tensor / quantize_per_channel / dequantize (listed as
inexact where they differ).  Without ``--quick`` / ``--no-write`` it regenerates the quant section of
docs/performance.md.
"""

from __future__ import annotations

import sys
import textwrap
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

import refquant  # noqa: E402
import refquant.fast as fast  # noqa: E402
from refquant.spec.affine import QuantParams  # noqa: E402
from refquant.spec.formats import INT8  # noqa: E402
from refquant.spec.granularity import PerAxis  # noqa: E402

QUANT_KERNELS = textwrap.dedent(
    """
    import time, numpy as np
    import refquant.fast as fast
    from refquant.spec.affine import QuantParams
    from refquant.spec.formats import INT8, UINT8, INT4
    from refquant.spec.granularity import PerAxis, PerBlock
    from refquant.spec.fixed_point import RequantRounding
    t0 = time.perf_counter()
    for dt in (np.float32, np.float64):
        x = np.linspace(-3, 3, 1 << 20, dtype=dt).reshape(1024, 1024)
        for fmt in (INT8, UINT8, INT4):
            z = 0 if fmt.signed else 8
            fast.quantize(x, QuantParams(0.05, z, fmt))
            fast.quantize(x, QuantParams(np.full(1024, 0.05), z, fmt, PerAxis(0)))
            fast.quantize(x, QuantParams(np.full((1024, 32), 0.05), z, fmt, PerBlock(1, 32)))
    for dt in (np.int8, np.uint8, np.int32):
        q = np.ones((1024, 1024), dt)
        fmt = INT8 if dt is np.int8 else UINT8
        fast.dequantize(q, QuantParams(0.05, 1, fmt))
        fast.dequantize(q, QuantParams(np.full(1024, 0.05), 1, fmt, PerAxis(0)))
    acc = np.arange(-(1 << 19), 1 << 19, dtype=np.int32)
    for r in RequantRounding:
        fast.requantize(acc, 0.0123, rounding=r)
    print(time.perf_counter() - t0)
    """
)

FIRST_CALL = textwrap.dedent(
    """
    import time, numpy as np
    import refquant.fast as fast
    from refquant.spec.affine import QuantParams
    from refquant.spec.formats import INT8
    x = np.linspace(-3, 3, 4096, dtype=np.float32)
    t0 = time.perf_counter()
    fast.quantize(x, QuantParams(0.05, 0, INT8))
    print(numba_start, time.perf_counter() - t0)
    """
)


def _ort_model(op: str, shape: tuple[int, int], scale: np.ndarray, zp: np.ndarray, axis: int | None) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(scale.astype(np.float32), "s"), numpy_helper.from_array(zp.astype(np.int8), "z")]
    attrs = {} if axis is None else {"axis": axis}
    node = helper.make_node(op, ["X", "s", "z"], ["Y"], **attrs)
    t_in, t_out = (
        (TensorProto.FLOAT, TensorProto.INT8) if op == "QuantizeLinear" else (TensorProto.INT8, TensorProto.FLOAT)
    )
    graph = helper.make_graph(
        [node],
        "q",
        [helper.make_tensor_value_info("X", t_in, list(shape))],
        [helper.make_tensor_value_info("Y", t_out, list(shape))],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def build_case(kind: str, per_channel: bool, rows: int, cols: int) -> Case:
    n = rows * cols
    label = "per channel (axis 0)" if per_channel else "per tensor"
    rng = np.random.default_rng(7 + per_channel)
    x = (rng.standard_normal((rows, cols)) * 3).astype(np.float32)
    if per_channel:
        scale = (rng.random(rows) * 0.05 + 0.01).astype(np.float32)
        zp = rng.integers(-10, 10, rows).astype(np.int8)
        params = QuantParams(scale, zp, INT8, PerAxis(0))
        s_b, z_b = scale[:, None], zp.astype(np.float32)[:, None]
    else:
        scale = np.array(0.023, np.float32)
        zp = np.array(3, np.int8)
        params = QuantParams(scale, zp, INT8)
        s_b, z_b = scale, np.float32(zp)
    axis = 0 if per_channel else None
    # the plain copy's bandwidth: 8 bytes per float32 element (read + write)
    copy_dst = np.empty_like(x)
    if kind == "quantize":
        case = Case(f"quantize float32 -> int8, {label}, {rows}x{cols}", 5.0 * n, "GB/s")
        ref = refquant.quantize(x, params)
        out = np.empty((rows, cols), np.int8)

        def eq(r: Any) -> bool:
            return bool(np.array_equal(np.asarray(r), ref))

        case.add(
            "refquant.fast quantize", "refquant", lambda: fast.quantize(x, params, out=out), eq, "ONNX profile, out="
        )
        case.add(
            "numpy expression", "peer",
            lambda: np.clip(np.rint(x / s_b) + z_b, -128, 127).astype(np.int8), eq, "clip(rint(x / s) + z)",
        )  # fmt: skip
        src = x
    else:
        q = refquant.quantize(x, params)
        case = Case(f"dequantize int8 -> float32, {label}, {rows}x{cols}", 5.0 * n, "GB/s")
        ref = refquant.dequantize(q, params)
        out = np.empty((rows, cols), np.float32)

        def eq(r: Any) -> bool:
            return bool(np.array_equal(np.asarray(r, np.float32).view(np.uint32), ref.view(np.uint32)))

        case.add("refquant.fast dequantize", "refquant", lambda: fast.dequantize(q, params, out=out), eq, "out=")
        case.add("numpy expression", "peer", lambda: (q.astype(np.float32) - z_b) * s_b, eq, "(float32(q) - z) * s")
        src = q
    case.add(
        "np.copyto float32 (plain copy)", "anchor", lambda: np.copyto(copy_dst, x), None,
        "the bandwidth anchor: 8 bytes moved per element; numpy, 1 thread", work=8.0 * n,
    )  # fmt: skip
    if have("onnxruntime") and have("onnx"):
        op = "QuantizeLinear" if kind == "quantize" else "DequantizeLinear"
        sess = ort_session(_ort_model(op, (rows, cols), scale, zp, axis))
        case.add(f"ORT {op}", "peer", lambda: sess.run(None, {"X": src})[0], eq, "scale, zero point initializers")
    else:
        case.skip("onnxruntime", "peer", "onnxruntime/onnx not installed")
    torch = torch_or_none()
    if torch is not None:
        tx = torch.from_numpy(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch 2.13 deprecates quantized tensors
            if per_channel:
                ts, tz = torch.from_numpy(scale.astype(np.float64)), torch.from_numpy(zp.astype(np.int64))

                def tq() -> Any:
                    return torch.quantize_per_channel(tx, ts, tz, 0, torch.qint8)
            else:

                def tq() -> Any:
                    return torch.quantize_per_tensor(tx, float(scale), int(zp), torch.qint8)

            if kind == "quantize":
                case.add("torch quantize", "peer", lambda: tq().int_repr(), lambda r: eq(r.numpy()),
                         "multiplies by a float32 reciprocal of the scale")  # fmt: skip
            else:  # torch's dequantize of refquant's exact codes
                tq_codes = torch.from_numpy(q)
                if per_channel:
                    tqx = torch._make_per_channel_quantized_tensor(tq_codes, ts, tz, 0)
                else:
                    tqx = torch._make_per_tensor_quantized_tensor(tq_codes, float(scale), int(zp))
                case.add("torch dequantize", "peer", lambda: tqx.dequantize(), lambda r: eq(r.numpy()))
    else:
        case.skip("torch", "peer", "torch not installed")
    return case


def main() -> None:
    args = parse_args(__doc__ or "")
    rows, cols = (1024, 1024) if args.quick else (4096, 4096)
    specs = [("quantize", False), ("quantize", True), ("dequantize", False), ("dequantize", True)]
    cases = [build_case(k, pc, rows, cols) for k, pc in specs]
    run_cases(cases, runs=args.runs, repeats=args.repeats, budget=args.budget)
    targets: list[Target] = []
    for (kind, pc), case in zip(specs, cases, strict=True):
        label = f"{kind} {'per channel' if pc else 'per tensor'}"
        mine = next((r for r in case.rows if r.kind == "refquant" and r.times), None)
        med, best = case.versus(mine, [r for r in case.rows if r.name.startswith("ORT")])
        targets.append(Target(f"{label}: refquant / ORT", med, 1.0, best_value=best))
        med, best = case.versus(mine, [r for r in case.rows if r.kind == "anchor"])
        targets.append(Target(f"{label}: refquant traffic / copy traffic", med, 0.8, best_value=best))
    extra = ""
    if not args.no_compile:
        print("compile: measuring in fresh processes ...", flush=True)
        cold, start, first = compile_times(QUANT_KERNELS, FIRST_CALL)
        targets.append(
            MaxTarget("cold compile of the quantize/dequantize/requantize kernels (s)", cold, 60.0, "{:.1f}")
        )
        targets.append(
            MaxTarget("first quantize call, warm cache, after Numba's start-up (ms)", first * 1e3, 50.0, "{:.1f}")
        )
        targets.append(
            MaxTarget("Numba start-up + first quantize call, warm cache (ms)", (start + first) * 1e3, 50.0, "{:.1f}")
        )
        extra = (
            f"Compile: the quantize, dequantize and requantize kernels (float32/float64 inputs, int8/uint8/int4, "
            f"per tensor/axis/block, every requantize rounding) compiled in {cold:.1f} s in a fresh process with an "
            f"empty `NUMBA_CACHE_DIR`; the first `quantize` of 4096 elements in a new process with that warm cache "
            f"took {first * 1e3:.1f} ms (median of 3; import not included), after Numba's one-time start-up in the process, "
            f"which took {start * 1e3:.1f} ms (measured on a trivial cached kernel: typing and target contexts)."
        )
    method = (
        f"`python bench/quant.py` ({args.runs} runs x {args.repeats} repeats; median over runs of the per-run "
        f"median, see bench/_common.py). {THREADS} threads for refquant (numba), torch and ORT "
        f"(`intra_op_num_threads={THREADS}`); numpy and `np.copyto` run on 1 thread. GB/s = bytes read + bytes "
        "written per call / time (5 bytes per element for quantize and dequantize, 8 for the float32 copy). "
        "Every result was checked bit for bit against the spec (ONNX profile: `saturate(rint(x / s) + z)`; "
        "dequantize `float32(q - z) * s`) before timing; refquant writes into a preallocated `out=`, the peers "
        "allocate their outputs."
    )
    publish("quant", "quantize / dequantize (`bench/quant.py`)", method, targets, cases, args, extra)


if __name__ == "__main__":
    main()
