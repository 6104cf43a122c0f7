"""Post-training quantization of the demo CNN: weight schemes, activation calibration, the integer pipeline
on ``refquant.fast``, and the float64 fake-quantized model it is checked against code for code.

Weights, per output channel (axis 0 of OIHW and of the (out, in) fc weight), held as int8 codes:

- ``INT8`` / ``INT4``: symmetric, narrow range (``[-127, 127]`` / ``[-7, 7]``, zero point 0), the scale from
  ``choose_qparams(w, fmt, symmetric=True, granularity=PerAxis(0))`` and the codes from ``refquant.quantize``;
- ``TERNARY``: TWN, ``refquant.spec.ternary.twn_ternarize(w, axis=0)`` (codes -1/0/+1, scale alpha);
- ``BINARY``: XNOR-Net, ``refquant.spec.binary.binarize(w)`` (sign(0) = +1) with ``binary_scale(w, axis=0)``.

Activations (the input and the two ReLU outputs): uint8, asymmetric, ``choose_qparams_from_range(lo, hi, UINT8)``
with ``(lo, hi)`` from an observer run over the calibration subset in batches of 64 (the float32 model, its
weights replaced by the dequantized quantized weights); ``lo`` is raised to 0 where an observer over ``|x|``
returns ``(-amax, amax)``, since every calibrated tensor is non-negative (pixels and ReLU outputs).  Biases: int32, ``round_half_to_even(b / (s_x * s_w[o]))``
in float64, zero point 0.

The integer pipeline (``run_integer``) runs entirely on ``refquant.fast``: ``quantize`` of the input;
``qlinear_conv`` for conv1 and conv2 with the int32 bias, ``RequantRounding.FLOAT64`` (multiplier
``f64(s_x) * f64(s_w[o]) / f64(s_y)``, ``round_half_to_even(acc * m)``) and the ReLU fused as
``activation_min = y zero point``; ``matmul_int`` for fc plus the int32 bias; ``dequantize`` of those int32
accumulators (scale ``float32(s_x * s_w[o])``) gives the logits, the only float step after the input.

The fake-quantized model (``run_fake_quant``) is float64: the same input codes from the spec's ``quantize``
(float32 division, as ``fast.quantize``), dequantization ``(q - z) * s`` (exact in float64), a float64
convolution with the dequantized weights and bias ``b_q * s_x * s_w``, ReLU, and the spec's ``quantize`` with
``precision=Precision.FLOAT64``; for fc, ``round_half_to_even(y / (s_x * s_w[o]))``, which must equal the
integer accumulators.  ``compare_traces`` names the first layer and element where the two disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from refquant.demo.model import LAYERS, Layer, Weights, conv_forward
from refquant.errors import SpecError, UnpredictableError
from refquant.spec.affine import Precision, QuantParams
from refquant.spec.affine import quantize as spec_quantize
from refquant.spec.binary import binarize, binary_scale
from refquant.spec.fixed_point import RequantRounding
from refquant.spec.formats import INT8, INT32, UINT8, IntFormat
from refquant.spec.granularity import PerAxis
from refquant.spec.qparams import choose_qparams, choose_qparams_from_range
from refquant.spec.rounding import RoundingMode, round_to_int
from refquant.spec.ternary import twn_ternarize

__all__ = [
    "ACTIVATION_FORMAT",
    "CALIBRATION_BATCH",
    "REQUANT_ROUNDING",
    "TRACE_NAMES",
    "Mismatch",
    "Observer",
    "QLayer",
    "QModel",
    "QuantWeights",
    "Trace",
    "WeightScheme",
    "build_qmodel",
    "calibrate",
    "compare_traces",
    "dequantized_weights",
    "quantize_weight",
    "run_fake_quant",
    "run_integer",
]

ACTIVATION_FORMAT: Final = UINT8
REQUANT_ROUNDING: Final = RequantRounding.FLOAT64
CALIBRATION_BATCH: Final = 64
TRACE_NAMES: Final = ("input", "conv1", "conv2", "fc")
"""The layers whose codes the traces hold: uint8 codes, and for fc the int32 accumulators (bias included)."""
_ACT_PARAM_BYTES: Final = 5  # a float32 scale and a one-byte zero point per activation tensor


class WeightScheme(Enum):
    """How a layer's weights are quantized (per output channel); the value is the row name."""

    INT8 = "int8"
    INT4 = "int4"
    TERNARY = "ternary"
    BINARY = "binary"

    @property
    def bits(self) -> int:
        return {"int8": 8, "int4": 4, "ternary": 2, "binary": 1}[self.value]


class Observer(Protocol):
    """The contract of ``refquant.spec.calibration``'s observers: immutable, ``observe`` returns a new one."""

    def observe(self, x: npt.NDArray[Any], /) -> Observer: ...

    def range(self) -> tuple[float, float]: ...


@dataclass(frozen=True, eq=False)
class QuantWeights:
    """Per-output-channel weight codes (int8 storage) and float32 scales ``(O,)``; ``scheme`` names the method."""

    codes: npt.NDArray[np.int8]
    scale: npt.NDArray[np.float32]
    scheme: WeightScheme

    def dequantized(self) -> npt.NDArray[np.float32]:
        """``codes * scale[o]`` (float64, then rounded to float32)."""
        view = (-1,) + (1,) * (self.codes.ndim - 1)
        return (self.codes.astype(np.float64) * self.scale.astype(np.float64).reshape(view)).astype(np.float32)

    @property
    def nbytes(self) -> int:
        """Codes packed at the scheme's width (two int4 / four 2-bit / eight 1-bit codes per byte) plus the scales."""
        return -(-self.codes.size * self.scheme.bits // 8) + 4 * self.scale.size


def quantize_weight(w: npt.ArrayLike, scheme: WeightScheme, /) -> QuantWeights:
    """Quantize one layer's float weights ``w`` per output channel with ``scheme`` (see the module documentation)."""
    wa = np.asarray(w, np.float32)
    if scheme in (WeightScheme.INT8, WeightScheme.INT4):
        fmt = IntFormat(scheme.bits, True, narrow_range=True)
        params = choose_qparams(wa, fmt, symmetric=True, granularity=PerAxis(0))
        codes = spec_quantize(wa, params).astype(np.int8)
        return QuantWeights(codes, params.scale.astype(np.float32), scheme)
    if scheme is WeightScheme.TERNARY:
        t = twn_ternarize(wa, axis=0)
        codes, alpha = t.codes.astype(np.int8), t.alpha.astype(np.float32)
    elif scheme is WeightScheme.BINARY:
        codes, alpha = binarize(wa).astype(np.int8), binary_scale(wa, axis=0).astype(np.float32)
        if np.any(alpha <= 0):
            channel = int(np.argmax(alpha <= 0))
            raise SpecError(
                "scale_not_positive", f"binary weights: output channel {channel} is all zero (alpha 0), not +-alpha"
            )
    else:
        raise SpecError("invalid_option", f"scheme must be a WeightScheme, got {scheme!r}")
    # TWN: a channel whose weights are all zero has alpha 0 and only zero codes, so any positive scale is exact
    return QuantWeights(codes, np.where(alpha > 0, alpha, np.float32(1.0)).astype(np.float32), scheme)


def dequantized_weights(weights: Weights, schemes: Mapping[str, WeightScheme]) -> Weights:
    """``weights`` with each layer's weight replaced by its quantized-then-dequantized value (biases kept)."""
    out = dict(weights)
    for layer in LAYERS:
        out[f"{layer.name}.w"] = quantize_weight(weights[f"{layer.name}.w"], schemes[layer.name]).dequantized()
    return out


def _activations(weights: Weights, x: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
    """The float32 tensors that get activation parameters: the input and every ReLU output."""
    acts = [np.asarray(x, np.float32)]
    h: npt.NDArray[Any] = acts[0]
    for layer in LAYERS:
        if not layer.relu:
            break
        h, _ = conv_forward(h, weights[f"{layer.name}.w"], weights[f"{layer.name}.b"], layer.stride, layer.pad)
        h = np.maximum(h, 0)
        acts.append(h)
    return acts


def calibrate(
    weights: Weights,
    x_calib: npt.NDArray[np.float32],
    observer: Observer | None,
    /,
    *,
    batch: int = CALIBRATION_BATCH,
) -> tuple[QuantParams, ...]:
    """uint8 parameters of the input and of each ReLU output, from ``observer`` fed ``x_calib`` in batches.

    ``observer``: a fresh observer (``refquant.spec.calibration``), copied per tensor by construction (it is
    immutable: ``observe`` returns a new one); ``None``: ``choose_qparams`` on the whole subset (min/max).
    """
    batches = [_activations(weights, x_calib[i : i + batch]) for i in range(0, x_calib.shape[0], batch)]
    params: list[QuantParams] = []
    for t in range(len(batches[0])):
        if observer is None:
            params.append(choose_qparams(np.concatenate([b[t] for b in batches]), ACTIVATION_FORMAT))
            continue
        obs = observer
        for b in batches:
            obs = obs.observe(b[t])
        lo, hi = obs.range()
        # every calibrated tensor is >= 0 (pixels, ReLU outputs): an |x| observer's (-amax, amax) is cut at 0
        params.append(choose_qparams_from_range(max(lo, 0.0), hi, ACTIVATION_FORMAT))
    return tuple(params)


@dataclass(frozen=True, eq=False)
class QLayer:
    """A quantized layer: weights, int32 bias, input parameters, output parameters (``None`` for fc)."""

    layer: Layer
    weights: QuantWeights
    bias: npt.NDArray[np.int32]
    x_params: QuantParams
    y_params: QuantParams | None

    @cached_property
    def w_params(self) -> QuantParams:
        """The weight parameters, built once (``refquant.fast`` recognises parameter objects it has checked)."""
        return QuantParams(self.weights.scale, 0, INT8, PerAxis(0))


@dataclass(frozen=True, eq=False)
class QModel:
    """The quantized model: ``input_params`` and one ``QLayer`` per layer of ``LAYERS``."""

    input_params: QuantParams
    layers: tuple[QLayer, ...]

    @property
    def nbytes(self) -> int:
        """Model size: packed weight codes, float32 weight scales, int32 biases, activation scales and zero points."""
        weights = sum(q.weights.nbytes + 4 * q.bias.size for q in self.layers)
        return weights + _ACT_PARAM_BYTES * (1 + sum(q.y_params is not None for q in self.layers))

    @property
    def schemes(self) -> dict[str, WeightScheme]:
        return {q.layer.name: q.weights.scheme for q in self.layers}

    @cached_property
    def prepared(self) -> _Prepared:
        """The weights packed for ``refquant.fast`` on first use (imports Numba), then reused by every run."""
        return _Prepared(self)


def _bias_codes(b: npt.NDArray[Any], sx: npt.NDArray[Any], sw: npt.NDArray[Any]) -> npt.NDArray[np.int32]:
    real = np.asarray(b, np.float64) / (np.float64(sx) * sw.astype(np.float64))
    r = round_to_int(real, RoundingMode.HALF_TO_EVEN)
    if np.any(np.abs(r) > 2**31 - 1):
        raise UnpredictableError("accumulator_overflow", f"a quantized bias {r.max()} does not fit int32")
    return r.astype(np.int32)


def build_qmodel(weights: Weights, schemes: Mapping[str, WeightScheme], act_params: Sequence[QuantParams]) -> QModel:
    """Quantize every layer's weights with ``schemes[name]`` and its bias to int32 against ``act_params``."""
    layers = []
    for i, layer in enumerate(LAYERS):
        qw = quantize_weight(weights[f"{layer.name}.w"], schemes[layer.name])
        x_params = act_params[i]
        y_params = act_params[i + 1] if layer.relu else None
        bias = _bias_codes(weights[f"{layer.name}.b"], x_params.scale, qw.scale)
        layers.append(QLayer(layer, qw, bias, x_params, y_params))
    return QModel(act_params[0], tuple(layers))


@dataclass(frozen=True, eq=False)
class Trace:
    """Codes layer by layer (``TRACE_NAMES``) and the logits (float32 from the integer run, float64 from fake-quant)."""

    codes: tuple[npt.NDArray[Any], ...]
    logits: npt.NDArray[np.floating[Any]]


class _Prepared:
    """The packed weights of a ``QModel`` for ``refquant.fast`` (packed once, reused by every call)."""

    def __init__(self, qm: QModel) -> None:
        from refquant import fast

        self.conv = [fast.pack_conv_weight(q.weights.codes) for q in qm.layers if q.layer.is_conv]
        fc = qm.layers[-1]
        self.fc = fast.pack_rhs(np.ascontiguousarray(fc.weights.codes.T))
        scale = fc.x_params.scale.astype(np.float32) * fc.weights.scale.astype(np.float32)  # float32 product
        self.logit_params = QuantParams(scale, 0, INT32, PerAxis(1))


def run_integer(qm: QModel, x: npt.NDArray[np.float32], /) -> Trace:
    """The integer pipeline on ``refquant.fast`` (module documentation): codes of every layer and the logits."""
    from refquant import fast

    prep = qm.prepared
    h = fast.quantize(np.asarray(x, np.float32), qm.input_params)
    codes: list[npt.NDArray[Any]] = [h]
    for q, packed in zip(qm.layers[:-1], prep.conv, strict=True):
        y_params = _output_params(q)
        s, p = q.layer.stride, q.layer.pad
        h = fast.qlinear_conv(
            h,
            packed,
            x_params=q.x_params,
            w_params=q.w_params,
            y_params=y_params,
            bias=q.bias,
            stride=(s, s),
            padding=(p, p, p, p),
            rounding=REQUANT_ROUNDING,
            activation_min=int(y_params.zero_point),
        )
        codes.append(h)
    fc = qm.layers[-1]
    acc = fast.matmul_int(h.reshape(h.shape[0], -1), prep.fc, lhs_zero_point=int(fc.x_params.zero_point))
    total = acc.astype(np.int64) + fc.bias.astype(np.int64)
    if np.any(np.abs(total) > 2**31 - 1):
        raise UnpredictableError("accumulator_overflow", "an fc accumulator plus bias does not fit int32")
    acc32 = total.astype(np.int32)
    codes.append(acc32)
    return Trace(tuple(codes), fast.dequantize(acc32, prep.logit_params))


def _deq64(q: npt.NDArray[Any], params: QuantParams) -> npt.NDArray[np.float64]:
    """``(q - z) * s`` in float64: exact (an 8-bit difference times a float32 scale fits 53 bits)."""
    return (q.astype(np.float64) - float(params.zero_point)) * float(params.scale)


def run_fake_quant(qm: QModel, x: npt.NDArray[np.float32], /) -> Trace:
    """The float64 fake-quantized model (module documentation): the codes it implies and its float64 logits."""
    q = spec_quantize(np.asarray(x, np.float32), qm.input_params)
    codes: list[npt.NDArray[Any]] = [q]
    h = _deq64(q, qm.input_params)
    for ql in qm.layers[:-1]:
        y_params = _output_params(ql)
        w, sxw = _weights64(ql)
        y, _ = conv_forward(h, w, ql.bias.astype(np.float64) * sxw, ql.layer.stride, ql.layer.pad)
        q = spec_quantize(np.maximum(y, 0.0), y_params, precision=Precision.FLOAT64)
        codes.append(q)
        h = _deq64(q, y_params)
    fc = qm.layers[-1]
    w, sxw = _weights64(fc)
    y = h.reshape(h.shape[0], -1) @ w.T + fc.bias.astype(np.float64) * sxw
    codes.append(round_to_int(y / sxw, RoundingMode.HALF_TO_EVEN).astype(np.int64))
    return Trace(tuple(codes), y)


def _weights64(ql: QLayer) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The layer's dequantized weights ``code * s_w[o]`` (exact in float64) and ``s_x * s_w[o]`` in float64."""
    sw = ql.weights.scale.astype(np.float64)
    w = ql.weights.codes.astype(np.float64) * sw.reshape((-1,) + (1,) * (ql.weights.codes.ndim - 1))
    return w, float(ql.x_params.scale) * sw


def _output_params(ql: QLayer) -> QuantParams:
    if ql.y_params is None:
        raise SpecError("invalid_option", f"layer {ql.layer.name} has no output parameters: only fc may lack them")
    return ql.y_params


@dataclass(frozen=True)
class Mismatch:
    """The first element where two traces differ: the layer, the element index, both values, and the count there."""

    layer: str
    index: tuple[int, ...]
    integer: int
    fake_quant: int
    count: int

    def describe(self) -> str:
        return (
            f"layer {self.layer}, element {self.index}: integer pipeline {self.integer}, fake-quant {self.fake_quant} "
            f"({self.count} elements differ in that layer)"
        )


def compare_traces(integer: Trace, fake: Trace, /) -> Mismatch | None:
    """``None`` when every layer's codes are equal, else the first layer (in order) and element that differ."""
    for name, a, b in zip(TRACE_NAMES, integer.codes, fake.codes, strict=True):
        diff = a.astype(np.int64) != b.astype(np.int64)
        if np.any(diff):
            where = tuple(int(i) for i in np.argwhere(diff)[0])
            return Mismatch(name, where, int(a[where]), int(b[where]), int(diff.sum()))
    return None
