"""ResNet-50 conv layers: INT8 through refquant.fast against float32 (torch, numpy) and onnxruntime QLinearConv.

Usage: ``python bench/resnet50.py [--quick] [--runs N] [--markdown] [--no-spec-check]``

The 53 convolution layers of ResNet-50 v1.5 (torchvision's layout: the stride on the 3x3 of each
bottleneck, the 7x7/2 stem on 3x224x224, the 1x1 downsample convolutions) at batch 1 and 224x224, each
with its real input shape and its own random He-initialised weights (fixed seed; no downloads, no
torchvision).  Every layer is timed on its own input, the median of repeats after a warm-up call, and
the medians are summed:

* torch float32 ``conv2d`` (+ bias, + ReLU where ResNet has one), NCHW and channels_last input;
* numpy float32: ``sliding_window_view`` im2col of the padded NHWC input (one copy), one OpenBLAS sgemm
  against the ``(KH*KW*C, O)`` weight matrix, bias and ReLU in place (a 1x1 stride-1 layer is the sgemm
  alone on the NHWC input);
* refquant.fast INT8 ``qlinear_conv``: uint8 activations, int8 weights with per-output-channel scales
  (symmetric, zero point 0), int32 bias, float32 requantization (``RequantRounding.FLOAT32`` with the
  multiplier computed in float32, onnxruntime's arithmetic) to uint8, the ReLU fused as
  ``activation_min`` = the output zero point; weights packed once, outputs into a preallocated ``out=``;
  NHWC (the fast layout) and NCHW;
* onnxruntime ``QLinearConv`` u8s8 with the same quantization parameters, one single-node model per
  layer (weights and bias as initializers), NCHW.

2 threads for everyone (``torch.set_num_threads(2)``, ORT ``intra_op_num_threads=2``, numba and
OpenBLAS 2 threads).  Before timing: refquant.fast is compared bit for bit with the spec
(``refquant.spec.integer_ops.qlinear_conv``) on every layer with the input cropped spatially (kernel,
stride, padding and channels kept), and in full on the small layers; its NHWC and NCHW results are
compared with each other in full, and the number of onnxruntime output codes equal to refquant's is
counted per layer.  ``--markdown`` prints the section for docs/performance.md (it never writes the file).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    BACKGROUND,
    QUIET,
    THREADS,
    Case,
    Target,
    environment,
    have,
    ort_session,
    run_cases,
    setup_threads,
    targets_table,
    torch_or_none,
)

setup_threads()

import numpy as np  # noqa: E402

import refquant.fast as fast  # noqa: E402
from refquant.spec.affine import Precision, QuantParams, quantize  # noqa: E402
from refquant.spec.fixed_point import RequantRounding  # noqa: E402
from refquant.spec.formats import INT8, UINT8  # noqa: E402
from refquant.spec.granularity import PerAxis  # noqa: E402
from refquant.spec.integer_ops import Layout  # noqa: E402
from refquant.spec.integer_ops import qlinear_conv as spec_qlinear_conv  # noqa: E402

SEED = 20261123
SPEC_FULL_MACS = 60_000_000  # layers up to this many MACs are also checked against the spec uncropped
SPEC_CROP_OUT = 4  # the cropped check keeps about this many output rows and columns


# --------------------------------------------------------------------------------------------------
# the layer table


@dataclass(frozen=True)
class Layer:
    """One convolution of ResNet-50 v1.5 at batch 1: ``c`` x ``h`` x ``w`` in, ``o`` out, square kernel."""

    name: str
    c: int
    h: int
    w: int
    o: int
    k: int
    stride: int
    pad: int
    relu: bool

    @property
    def oh(self) -> int:
        return (self.h + 2 * self.pad - self.k) // self.stride + 1

    @property
    def ow(self) -> int:
        return (self.w + 2 * self.pad - self.k) // self.stride + 1

    @property
    def macs(self) -> int:
        return self.oh * self.ow * self.o * self.c * self.k * self.k

    @property
    def params(self) -> int:
        return self.o * self.c * self.k * self.k

    @property
    def kind(self) -> str:
        return f"{self.k}x{self.k}/{self.stride} {self.c}->{self.o} @{self.h}x{self.w}"


def resnet50_layers() -> list[Layer]:
    """The 53 conv layers of torchvision's ResNet-50 (v1.5) for a 3x224x224 input, in execution order."""
    layers = [Layer("conv1", 3, 224, 224, 64, 7, 2, 3, True)]
    size, c_in = 56, 64  # after the 3x3/2 max pool
    for stage, (width, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1):
        for b in range(blocks):
            s = stride if b == 0 else 1
            name = f"layer{stage}.{b}"
            layers.append(Layer(f"{name}.conv1", c_in, size, size, width, 1, 1, 0, True))
            layers.append(Layer(f"{name}.conv2", width, size, size, width, 3, s, 1, True))
            out = size // s
            layers.append(Layer(f"{name}.conv3", width, out, out, 4 * width, 1, 1, 0, False))
            if b == 0:
                layers.append(Layer(f"{name}.downsample", c_in, size, size, 4 * width, 1, s, 0, False))
            c_in, size = 4 * width, out
    return layers


QUICK_LAYERS = ("conv1", "layer2.0.conv2", "layer2.0.downsample", "layer4.0.conv1", "layer4.1.conv2")
"""The ``--quick`` subset: one layer of each class the issue names (stem, 3x3/2, 1x1/2, 1x1 and 3x3 at 7x7)."""


def weight_sizes(layers: list[Layer]) -> list[tuple[str, int, str]]:
    """(format, bytes, what is stored) of all conv weights: FP32, FP16, INT8 and INT4 (+ float32 scales)."""
    params = sum(la.params for la in layers)
    scales = 4 * sum(la.o for la in layers)  # one float32 scale per output channel
    int4 = sum(la.o * math.ceil(la.c * la.k * la.k / 2) for la in layers)  # two per byte, rows padded to a byte
    return [
        ("FP32", 4 * params, "float32 weights"),
        ("FP16", 2 * params, "float16 weights"),
        ("INT8", params + scales, "int8 codes + one float32 scale per output channel"),
        (
            "INT4",
            int4 + scales,
            "int4 codes two per byte (each output channel's row padded to a byte) + float32 scales",
        ),
    ]


# --------------------------------------------------------------------------------------------------
# one layer's data: float weights, their int8 codes, activations and quantization parameters


@dataclass
class LayerData:
    layer: Layer
    w_f32: np.ndarray  # OIHW float32 (the dequantized int8 weights: every implementation computes the same conv)
    b_f32: np.ndarray  # (O,) float32, the dequantized int32 bias
    x_f32: np.ndarray  # NCHW float32, the dequantized uint8 input
    wq: np.ndarray  # OIHW int8
    bias: np.ndarray  # (O,) int32
    xq: np.ndarray  # NCHW uint8
    x_params: QuantParams
    w_params: QuantParams
    y_params: QuantParams = field(init=False)
    notes: list[str] = field(default_factory=list)


def make_layer_data(layer: Layer, index: int, torch: Any) -> LayerData:
    """Random He-initialised weights (fixed seed per layer), quantized per output channel; a random input.

    The input codes are uniform uint8: zero point 0 after a ReLU (every layer but the stem), 128 for the
    stem's normalised image.  The output scale is calibrated on the layer's float32 result (min/max):
    ``[0, max]`` onto uint8 with zero point 0 after a ReLU, ``max|y|`` onto uint8 around 128 otherwise.
    """
    la = layer
    rng = np.random.default_rng([SEED, index])
    fan_in = la.c * la.k * la.k
    w = (rng.standard_normal((la.o, la.c, la.k, la.k)) * math.sqrt(2.0 / fan_in)).astype(np.float32)
    sw = (np.abs(w).reshape(la.o, -1).max(axis=1) / 127).astype(np.float32)
    w_params = QuantParams(sw, np.zeros(la.o, np.int64), INT8, PerAxis(0))
    wq = quantize(w, w_params)
    zx = 128 if index == 0 else 0
    sx = np.float32(4.0 / 255) if index == 0 else np.float32(1.0 / 64)
    x_params = QuantParams(sx, zx, UINT8)
    xq = rng.integers(0, 256, (1, la.c, la.h, la.w), dtype=np.uint8)
    bias_scale = (sx * sw).astype(np.float64)
    bias = np.rint(rng.standard_normal(la.o) * 0.1 / bias_scale).astype(np.int32)
    data = LayerData(
        la,
        (wq.astype(np.float32) * sw[:, None, None, None]).astype(np.float32),
        (bias.astype(np.float64) * bias_scale).astype(np.float32),
        ((xq.astype(np.float32) - np.float32(zx)) * sx).astype(np.float32),
        wq,
        bias,
        xq,
        x_params,
        w_params,
    )
    y = torch_conv(data, torch) if torch is not None else numpy_conv_nchw(data)
    if la.relu:
        data.y_params = QuantParams(np.float32(max(float(y.max()), 1e-6) / 255), 0, UINT8)
    else:
        data.y_params = QuantParams(np.float32(max(float(np.abs(y).max()), 1e-6) / 127), 128, UINT8)
    return data


def torch_conv(d: LayerData, torch: Any) -> np.ndarray:
    t = torch.nn.functional.conv2d(
        torch.from_numpy(d.x_f32), torch.from_numpy(d.w_f32), torch.from_numpy(d.b_f32), d.layer.stride, d.layer.pad
    )
    return np.asarray((t.relu_() if d.layer.relu else t).numpy())


def numpy_conv_nchw(d: LayerData) -> np.ndarray:
    x = np.ascontiguousarray(d.x_f32.transpose(0, 2, 3, 1))
    wmat = np.ascontiguousarray(d.w_f32.transpose(2, 3, 1, 0).reshape(-1, d.layer.o))
    y = numpy_conv(x, wmat, d.b_f32, d.layer)
    return y.reshape(1, d.layer.oh, d.layer.ow, d.layer.o).transpose(0, 3, 1, 2)


def numpy_conv(x: np.ndarray, wmat: np.ndarray, bias: np.ndarray, la: Layer) -> np.ndarray:
    """float32 conv of NHWC ``x`` with ``wmat`` ``(KH*KW*C, O)``: im2col (one copy) + sgemm, bias, ReLU."""
    if la.k == 1 and la.stride == 1:
        cols = x.reshape(-1, la.c)
    else:
        xp = np.pad(x, ((0, 0), (la.pad, la.pad), (la.pad, la.pad), (0, 0))) if la.pad else x
        win = np.lib.stride_tricks.sliding_window_view(xp, (la.k, la.k), axis=(1, 2))  # n, oh', ow', c, kh, kw
        win = win[:, :: la.stride, :: la.stride][:, : la.oh, : la.ow]
        cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(-1, la.k * la.k * la.c)  # the im2col copy
    y = cols @ wmat
    y += bias
    if la.relu:
        np.maximum(y, 0, out=y)
    return y


# --------------------------------------------------------------------------------------------------
# refquant and onnxruntime


def _qconv_kwargs(d: LayerData) -> dict[str, Any]:
    """The QLinearConv parameters of this layer, for refquant.fast and the spec alike."""
    la = d.layer
    return {
        "x_params": d.x_params,
        "w_params": d.w_params,
        "y_params": d.y_params,
        "bias": d.bias,
        "stride": (la.stride, la.stride),
        "padding": (la.pad,) * 4,
        "rounding": RequantRounding.FLOAT32,
        "multiplier_precision": Precision.FLOAT32,
        "activation_min": int(d.y_params.zero_point) if la.relu else None,
    }


def qconv(d: LayerData, x: np.ndarray, w: Any, layout: Layout, out: np.ndarray | None = None) -> Any:
    """refquant.fast.qlinear_conv of this layer (``x``, ``w`` in ``layout``; ``w`` may be packed)."""
    return fast.qlinear_conv(x, w, layout=layout, out=out, **_qconv_kwargs(d))


def spec_conv(d: LayerData, x_nchw: np.ndarray) -> np.ndarray:
    return spec_qlinear_conv(x_nchw, d.wq, layout=Layout.NCHW, **_qconv_kwargs(d))


def crop(la: Layer) -> int:
    """Input rows/columns kept by the cropped spec check: about ``SPEC_CROP_OUT`` outputs, never more than the layer."""
    return min(la.h, (SPEC_CROP_OUT - 1) * la.stride + la.k)


def ort_model(d: LayerData) -> Any:
    """A single-node QLinearConv u8s8 model of the layer: weights, scales, zero points and bias as initializers."""
    from onnx import TensorProto, helper, numpy_helper

    la = d.layer
    inits = [
        numpy_helper.from_array(np.asarray(d.x_params.scale, np.float32).reshape(()), "x_s"),
        numpy_helper.from_array(np.asarray(d.x_params.zero_point).astype(np.uint8).reshape(()), "x_zp"),
        numpy_helper.from_array(d.wq, "W"),
        numpy_helper.from_array(np.asarray(d.w_params.scale, np.float32), "w_s"),
        numpy_helper.from_array(np.zeros(la.o, np.int8), "w_zp"),
        numpy_helper.from_array(np.asarray(d.y_params.scale, np.float32).reshape(()), "y_s"),
        numpy_helper.from_array(np.asarray(d.y_params.zero_point).astype(np.uint8).reshape(()), "y_zp"),
        numpy_helper.from_array(d.bias, "B"),
    ]
    node = helper.make_node(
        "QLinearConv",
        ["X", "x_s", "x_zp", "W", "w_s", "w_zp", "y_s", "y_zp", "B"],
        ["Y"],
        pads=[la.pad] * 4,
        strides=[la.stride] * 2,
        kernel_shape=[la.k] * 2,
    )
    x_info = helper.make_tensor_value_info("X", TensorProto.UINT8, [1, la.c, la.h, la.w])
    y_info = helper.make_tensor_value_info("Y", TensorProto.UINT8, [1, la.o, la.oh, la.ow])
    graph = helper.make_graph([node], la.name.replace(".", "_"), [x_info], [y_info], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


# --------------------------------------------------------------------------------------------------
# building the cases: checks before timing


IMPLS = (
    "torch fp32 NCHW",
    "torch fp32 channels_last",
    "numpy fp32",
    "refquant.fast INT8 NHWC",
    "refquant.fast INT8 NCHW",
    "ORT QLinearConv INT8",
)


@dataclass
class Checks:
    """What was verified before timing, per layer."""

    spec_crop: bool | None = None  # fast == spec on the cropped input (NHWC and NCHW)
    spec_full: bool | None = None  # fast == spec on the whole input (small layers only)
    layouts_equal: bool | None = None  # fast NHWC == fast NCHW (transposed)
    ort_equal: int | None = None  # ORT codes equal to refquant's
    size: int = 0
    fp32_rel: float | None = None  # max |numpy - torch| / max |torch|


def build(d: LayerData, torch: Any, spec_check: bool) -> tuple[Case, Checks]:
    la = d.layer
    case = Case(la.name, 2.0 * la.macs)
    chk = Checks(size=la.o * la.oh * la.ow)
    x_nchw = d.xq
    x_nhwc = np.ascontiguousarray(d.xq.transpose(0, 2, 3, 1))
    w_ohwi = np.ascontiguousarray(d.wq.transpose(0, 2, 3, 1))
    pw_nhwc = fast.pack_conv_weight(w_ohwi, layout=Layout.NHWC)
    pw_nchw = fast.pack_conv_weight(d.wq, layout=Layout.NCHW)
    out_nhwc = np.empty((1, la.oh, la.ow, la.o), np.uint8)
    out_nchw = np.empty((1, la.o, la.oh, la.ow), np.uint8)
    ref_nchw = qconv(d, x_nchw, pw_nchw, Layout.NCHW).copy()
    ref_nhwc = qconv(d, x_nhwc, pw_nhwc, Layout.NHWC).copy()
    chk.layouts_equal = bool(np.array_equal(ref_nhwc.transpose(0, 3, 1, 2), ref_nchw))
    if spec_check:
        hc = crop(la)
        xc = np.ascontiguousarray(x_nchw[:, :, :hc, :hc])
        want = spec_conv(d, xc)
        got_nchw = qconv(d, xc, pw_nchw, Layout.NCHW)
        got_nhwc = qconv(d, np.ascontiguousarray(xc.transpose(0, 2, 3, 1)), pw_nhwc, Layout.NHWC)
        chk.spec_crop = bool(np.array_equal(got_nchw, want) and np.array_equal(got_nhwc.transpose(0, 3, 1, 2), want))
        if la.macs <= SPEC_FULL_MACS:
            chk.spec_full = bool(np.array_equal(spec_conv(d, x_nchw), ref_nchw))
    spec_ok = chk.layouts_equal and chk.spec_crop is not False and chk.spec_full is not False

    if torch is not None:
        xt = torch.from_numpy(d.x_f32)
        xt_cl = xt.contiguous(memory_format=torch.channels_last)
        wt, bt = torch.from_numpy(d.w_f32), torch.from_numpy(d.b_f32)
        wt_cl = wt.contiguous(memory_format=torch.channels_last)
        conv = torch.nn.functional.conv2d

        def run_torch(x: Any = xt, w: Any = wt) -> Any:
            with torch.inference_mode():
                y = conv(x, w, bt, la.stride, la.pad)
                return y.relu_() if la.relu else y

        def run_torch_cl(x: Any = xt_cl, w: Any = wt_cl) -> Any:
            return run_torch(x, w)

        case.add("torch fp32 NCHW", "peer", run_torch, None, "torch.nn.functional.conv2d, NCHW contiguous")
        case.add("torch fp32 channels_last", "peer", run_torch_cl, None, "the same with channels_last input and weight")
        y_torch = torch_conv(d, torch)
    else:
        case.skip("torch fp32 NCHW", "peer", "torch not installed")
        case.skip("torch fp32 channels_last", "peer", "torch not installed")
        y_torch = None

    x_f_nhwc = np.ascontiguousarray(d.x_f32.transpose(0, 2, 3, 1))
    wmat = np.ascontiguousarray(d.w_f32.transpose(2, 3, 1, 0).reshape(-1, la.o))
    case.add("numpy fp32", "peer", lambda: numpy_conv(x_f_nhwc, wmat, d.b_f32, la), None, "NHWC im2col + sgemm")
    if y_torch is not None:
        y_np = numpy_conv(x_f_nhwc, wmat, d.b_f32, la).reshape(1, la.oh, la.ow, la.o).transpose(0, 3, 1, 2)
        chk.fp32_rel = float(np.abs(y_np - y_torch).max() / max(float(np.abs(y_torch).max()), 1e-30))

    case.add(
        "refquant.fast INT8 NHWC",
        "refquant",
        lambda: qconv(d, x_nhwc, pw_nhwc, Layout.NHWC, out_nhwc),
        lambda r: spec_ok and bool(np.array_equal(r, ref_nhwc)),
        "prepacked, out=",
    )
    case.add(
        "refquant.fast INT8 NCHW",
        "refquant",
        lambda: qconv(d, x_nchw, pw_nchw, Layout.NCHW, out_nchw),
        lambda r: spec_ok and bool(np.array_equal(r, ref_nchw)),
        "prepacked, out=",
    )
    if have("onnxruntime") and have("onnx"):
        sess = ort_session(ort_model(d))
        feed = {"X": x_nchw}
        y_ort = sess.run(None, feed)[0]
        chk.ort_equal = int(np.count_nonzero(y_ort == ref_nchw))

        def ort_check(r: Any) -> bool:
            return bool(np.array_equal(r, ref_nchw))

        case.add("ORT QLinearConv INT8", "peer", lambda: sess.run(None, feed)[0], ort_check, "single-node model")
    else:
        case.skip("ORT QLinearConv INT8", "peer", "onnxruntime/onnx not installed")
    return case, chk


# --------------------------------------------------------------------------------------------------
# report


def _t(case: Case, name: str) -> float | None:
    row = case.row(name)
    return row.seconds if row is not None else None


def _best(case: Case, name: str) -> float | None:
    row = case.row(name)
    return row.best if row is not None else None


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e3:.3f}"


def _ratio(num: float | None, den: float | None) -> float | None:
    return None if num is None or den is None or num == 0 else den / num


def _r(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _yes(v: bool | None) -> str:
    return "-" if v is None else ("yes" if v else "NO")


def totals(cases: list[Case], name: str, best: bool = False) -> float | None:
    vals = [(_best if best else _t)(c, name) for c in cases]
    return None if any(v is None for v in vals) else float(sum(v for v in vals if v is not None))


def torch_best(cases: list[Case], best: bool = False) -> tuple[str, float | None]:
    """The faster torch float32 layout over the whole network (one layout for all layers)."""
    cands = [(n, totals(cases, n, best)) for n in ("torch fp32 NCHW", "torch fp32 channels_last")]
    timed = [(n, v) for n, v in cands if v is not None]
    return min(timed, key=lambda nv: nv[1]) if timed else ("torch fp32", None)


def report(layers: list[Layer], cases: list[Case], checks: list[Checks], args: argparse.Namespace) -> str:
    tname, ttot = torch_best(cases)
    _, ttot_best = torch_best(cases, True)
    q = "refquant.fast INT8 NHWC"
    qn = "refquant.fast INT8 NCHW"
    o = "ORT QLinearConv INT8"
    lines = [
        "## ResNet-50 conv layers, INT8 against float32 (`bench/resnet50.py`)",
        "",
        environment(),
        "",
    ]
    spec_crop = [c.spec_crop for c in checks if c.spec_crop is not None]
    spec_full = [c.spec_full for c in checks if c.spec_full is not None]
    ort_eq = sum(c.ort_equal or 0 for c in checks)
    ort_n = sum(c.size for c in checks if c.ort_equal is not None)
    method = (
        f"Method: `python bench/resnet50.py` ({args.runs} runs x {args.repeats} repeats of loops of at least "
        f"{args.budget * 1e3:.0f} ms; each layer's figure is the median over runs of the per-run median, the totals "
        f"are the sums of those; see bench/_common.py). {len(layers)} conv layers of ResNet-50 v1.5 (torchvision "
        "layout, stride on the 3x3), batch 1, 224x224, each timed on its own input with its own random "
        f"He-initialised weights (seed {SEED}; no downloads). {THREADS} threads for every implementation "
        f"(`torch.set_num_threads({THREADS})`, ORT `intra_op_num_threads={THREADS}`, numba and OpenBLAS "
        f"{THREADS} threads). torch fp32: `conv2d` + bias (+ `relu_`), NCHW or channels_last (the faster over "
        "the network is the reference of the ratios); numpy fp32: NHWC im2col by `sliding_window_view` (one copy) "
        "and one OpenBLAS sgemm, bias and ReLU in place (1x1 stride-1 layers: the sgemm alone). INT8: uint8 "
        "activations (zero point 0 after a ReLU, 128 for the stem input), int8 weights with one scale per output "
        "channel, int32 bias, requantized to uint8 in float32 (`RequantRounding.FLOAT32`, multiplier in float32: "
        "onnxruntime's arithmetic), ReLU fused (`activation_min`); refquant.fast `qlinear_conv` with weights packed "
        "once (`pack_conv_weight`) and a preallocated `out=`, NHWC (the kernels' layout) and NCHW (transposed in "
        "the call); onnxruntime `QLinearConv` u8s8 with the same parameters, one single-node model per layer "
        "(weights and bias as initializers, NCHW). Exactness before timing: refquant.fast against the spec "
        f"(`refquant.spec.integer_ops.qlinear_conv`) on every layer with the input cropped to about "
        f"{SPEC_CROP_OUT}x{SPEC_CROP_OUT} outputs (kernel, stride, padding and channels kept): "
        f"{sum(spec_crop)} of {len(spec_crop)} layers identical; uncropped on the layers of at most "
        f"{SPEC_FULL_MACS / 1e6:.0f}M MACs: {sum(spec_full)} of {len(spec_full)} identical; NHWC and NCHW "
        f"results identical on {sum(bool(c.layouts_equal) for c in checks)} of {len(checks)} layers; onnxruntime's "
        f"codes equal to refquant's: {ort_eq} of {ort_n} ({100.0 * ort_eq / max(ort_n, 1):.4f}%)."
    )
    if BACKGROUND:
        method += (
            f" Background load (shared machine): each measurement waited for a moment when other processes kept "
            f"less than {QUIET['threshold']} CPUs busy (at most {QUIET['max_wait']:.0f} s; {QUIET['waited']:.0f} s "
            f"waited in all, {QUIET['loud']} of {QUIET['measured']} measurements started without one); over the "
            f"timing other processes kept {max(BACKGROUND):.2f} of the {os.cpu_count()} CPUs busy on average."
        )
    lines += [method, ""]
    # weight sizes
    lines += [
        "Weight size of the 53 conv layers:",
        "",
        "| format | bytes | MiB | x FP32 | stored |",
        "|---|---:|---:|---:|---|",
    ]
    sizes = weight_sizes(resnet50_layers())
    for fmt_, nbytes, what in sizes:
        lines.append(f"| {fmt_} | {nbytes} | {nbytes / 2**20:.2f} | {sizes[0][1] / nbytes:.2f} | {what} |")
    lines.append("")
    # targets
    qt, qt_best = totals(cases, q), totals(cases, q, True)
    ot, ot_best = totals(cases, o), totals(cases, o, True)
    targets = [
        Target(f"total: refquant.fast INT8 NHWC speed-up over {tname}", _ratio(qt, ttot), 2.0, best_value=_ratio(qt_best, ttot_best)),
        Target("total: refquant.fast INT8 NHWC speed-up over ORT QLinearConv", _ratio(qt, ot), 1.0, best_value=_ratio(qt_best, ot_best)),
        Target("total: refquant.fast INT8 NCHW speed-up over ORT QLinearConv (both NCHW)", _ratio(totals(cases, qn), ot), 1.0,
               best_value=_ratio(totals(cases, qn, True), ot_best)),
    ]  # fmt: skip
    lines += ["Targets (totals of the per-layer medians; ratios within this run):", "", targets_table(targets), ""]
    # totals
    tot_rows = [
        ("torch fp32 NCHW", "torch fp32 NCHW"),
        ("torch fp32 channels_last", "torch fp32 channels_last"),
        ("numpy fp32", "numpy fp32"),
        (q, q),
        (qn, qn),
        (o, o),
    ]
    macs = sum(la.macs for la in layers)
    lines += [
        f"Totals over the {len(layers)} layers ({macs / 1e9:.2f} G multiply-adds):",
        "",
        f"| implementation | total (ms) | fastest repeats (ms) | GOP/s | x {tname} | x ORT QLinearConv |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, name in tot_rows:
        tt = totals(cases, name)
        lines.append(
            f"| {label} | {_ms(tt)} | {_ms(totals(cases, name, True))} | "
            f"{'-' if tt is None else f'{2 * macs / tt / 1e9:.0f}'} | {_r(_ratio(tt, ttot))} | {_r(_ratio(tt, ot))} |"
        )
    lines.append("")
    # per layer
    lines += [
        "Per layer (milliseconds, medians; the ratios are speed-ups of refquant.fast INT8 NHWC; "
        "`spec`: identical to the spec cropped / uncropped; `ORT eq`: onnxruntime codes equal to refquant's):",
        "",
        "| layer | shape | MMAC | torch NCHW | torch CL | numpy | refquant NHWC | refquant NCHW | ORT | "
        f"x {tname} | x ORT | spec | ORT eq |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for la, c, ch in zip(layers, cases, checks, strict=True):
        tq = _t(c, q)
        spec = f"{_yes(ch.spec_crop)} / {_yes(ch.spec_full)}"
        eq = "-" if ch.ort_equal is None else f"{100.0 * ch.ort_equal / ch.size:.3f}%"
        lines.append(
            f"| {la.name} | {la.kind} | {la.macs / 1e6:.1f} | {_ms(_t(c, 'torch fp32 NCHW'))} | "
            f"{_ms(_t(c, 'torch fp32 channels_last'))} | {_ms(_t(c, 'numpy fp32'))} | {_ms(tq)} | {_ms(_t(c, qn))} | "
            f"{_ms(_t(c, o))} | {_r(_ratio(tq, _t(c, tname)))} | {_r(_ratio(tq, _t(c, o)))} | {spec} | {eq} |"
        )
    lines.append("")
    # worst layers
    worst_t = sorted(((_ratio(_t(c, q), _t(c, tname)), c.title) for c in cases), key=lambda v: v[0] or 0)[:5]
    worst_o = sorted(((_ratio(_t(c, q), _t(c, o)), c.title) for c in cases), key=lambda v: v[0] or 0)[:5]
    lines.append(
        f"Worst layers against {tname}: "
        + ", ".join(f"{n} {_r(v)}" for v, n in worst_t)
        + "; against ORT QLinearConv: "
        + ", ".join(f"{n} {_r(v)}" for v, n in worst_o)
        + "."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 layers, 1 run, short loops")
    parser.add_argument("--runs", type=int, default=3, help="rounds through all implementations (median)")
    parser.add_argument(
        "--markdown", action="store_true", help="print the docs/performance.md section (between markers)"
    )
    parser.add_argument("--no-spec-check", action="store_true", help="skip the comparison with the spec")
    parser.add_argument("--layers", default="", help="comma-separated layer names (default: all 53)")
    args = parser.parse_args()
    args.runs = 1 if args.quick else max(1, args.runs)
    args.repeats, args.budget = (3, 0.02) if args.quick else (5, 0.1)

    torch = torch_or_none()
    layers = resnet50_layers()
    index = {la.name: i for i, la in enumerate(layers)}
    wanted = QUICK_LAYERS if args.quick else tuple(n for n in args.layers.split(",") if n)
    if wanted:
        unknown = [n for n in wanted if n not in index]
        if unknown:
            parser.error(f"unknown layers {unknown}; names: {', '.join(index)}")
        layers = [la for la in layers if la.name in wanted]
    cases: list[Case] = []
    checks: list[Checks] = []
    t0 = time.perf_counter()
    for la in layers:
        d = make_layer_data(la, index[la.name], torch)
        case, chk = build(d, torch, not args.no_spec_check)
        cases.append(case)
        checks.append(chk)
        print(
            f"{la.name:22s} {la.kind:28s} spec {_yes(chk.spec_crop)}/{_yes(chk.spec_full)} layouts "
            f"{_yes(chk.layouts_equal)} ORT equal {chk.ort_equal}/{chk.size} fp32 numpy~torch {chk.fp32_rel}",
            flush=True,
        )
    print(f"built and checked in {time.perf_counter() - t0:.1f} s", flush=True)
    run_cases(cases, runs=args.runs, repeats=args.repeats, budget=args.budget)
    text = report(layers, cases, checks, args)
    if args.markdown:
        print("<!-- BEGIN resnet50 (generated by bench/, do not edit) -->")
        print(text.rstrip())
        print("<!-- END resnet50 -->")
    else:
        print("\n" + text)
    bad = [la.name for la, ch in zip(layers, checks, strict=True) if not ch.layouts_equal or ch.spec_crop is False]
    bad += [la.name for la, ch in zip(layers, checks, strict=True) if ch.spec_full is False]
    if bad:
        print(f"NOT EXACT: {bad}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
