"""Quantization-aware training: the backward passes of fake quantization, as named policies.

The forward is ``refquant.spec.affine.fake_quantize``.  Rounding has zero derivative almost everywhere, so
every training stack replaces it with a straight-through estimator (STE); they differ in where the gradient
is cut and in what the learnable parameters receive.

Straight-through mask: ``fake_quantize_grad``
---------------------------------------------
``u`` is the forward's code *before saturation*: ``round(x / s) + z`` (or whatever the profile and options
name: reciprocal multiply, the zero point before rounding, a fused multiply-add) as an exact integer::

    PYTORCH:  mask = qmin <= u <= qmax      the rounded, unclamped code (torch fake_quantize_* kernels)
    TORCHAO:  mask = true                   the code after clamping is always in range (torchao
                                            fake_quantize_affine_cachemask), so nothing is cut
    grad_x = grad_out * float(mask)         one IEEE multiplication in grad_out's dtype

Under PYTORCH an ``x`` just outside the range that rounds back onto ``qmin`` or ``qmax`` keeps its gradient:
with ``s = 1, z = 0`` and uint8, ``x = -0.5`` (a tie, rounded half to even to 0) and ``x = 255.5`` (rounded
to 256) are the boundary cases: the first passes, the second is cut.  The multiplication, not a selection,
is the definition (it is what torch computes): a cut negative gradient is ``-0.0``, and a cut infinite or
NaN gradient is NaN.  ``u`` is computed in a signed format two bits wider than ``fmt``, so formats up to
30 bits are supported (``SpecError("invalid_format")`` beyond).

LSQ: ``lsq_grads`` (Esser et al. 2019, "Learned Step Size Quantization", arXiv:1902.08153)
----------------------------------------------------------------------------------------
Gradients of ``x_hat = (clamp(round(x / s) + z, qmin, qmax) - z) * s`` for ``x``, the step size ``s`` and
the (learned, LSQ+ style) zero point, with the STE for the rounding.  The zero point is held as a float
and used as the integer ``z = clamp(round_half_to_even(zero_point), qmin, qmax)``.  With ``v = x / s``,
``u = round(v) + z``, ``g`` the gradient scale and ``dy`` the incoming gradient, per element in float32
(``LsqVariant.REFQUANT``)::

                      qmin <= u <= qmax            u < qmin                    u > qmax
    grad_x            dy                           0 (dy * 0.0)                0 (dy * 0.0)
    d(scale) term     fl(fl(dy * (round(v) - v)) * g)   fl(fl(dy * (qmin - z)) * g)   fl(fl(dy * (qmax - z)) * g)
    d(zero point)     +0.0                         fl(fl(-dy * s) * g)         fl(fl(-dy * s) * g)

``v = fl(x / s)``; ``round(v) - v`` is exact in float32 (Sterbenz).  The paper's
``d x_hat / d s = round(v) - v`` inside and ``-Q_N`` / ``Q_P`` outside is the ``z = 0`` case.

``LsqVariant.TORCH`` is torch 2.13.0+cpu's ``_fake_quantize_learnable_per_tensor_affine`` /
``_per_channel_affine`` backward as measured on x86-64 (AVX2/AVX512 kernels, where the compiler contracts
multiply-adds), ``inv = fl(1 / s)``::

    z_b = per tensor: trunc(clamp(fl(zero_point + 0.5), qmin, qmax))   (not the forward's rounding)
          per channel: clamp(round_half_to_even(zero_point), qmin, qmax)
    u   = round_half_to_even(fma(x, inv, z_b))                          (one rounding of x * inv + z_b)
    inside:  d(scale) term = fl(fl(fl(dy * fma(clamp(u) - z_b, s, -x)) * inv) * g)
    outside: d(scale) term = fl(fl(dy * (qmin or qmax - z_b)) * g);  d(zero point) = fl(fl(-dy * s) * g)

so its backward can disagree with its own forward (``round(x * inv) + round(zero_point)``) at ties and for
zero points ending in .5 or negative.

Reductions.  ``grad_scale`` and ``grad_zero_point`` sum their terms over each parameter's elements (the
whole tensor, or each index along ``axis``).  The sum is the exact sum of the float32 terms rounded once to
float32, half to even (``+0.0`` when the exact sum is 0, unless every term is ``-0.0``): independent of the
order, so any implementation can reproduce it (torch's float32 ``sum`` order is unspecified; tests compare
torch within a bound).

Gradient scale.  ``grad_scale=None`` gives ``g = float32(1 / sqrt(N * qmax))`` (float64 operations, one
final rounding) with ``N = x.size``, the whole tensor (LSQ's ``1 / sqrt(N_W * Q_P)``; torch
``_LearnableFakeQuantize`` uses ``X.numel()`` for per-channel scales too).  Pass ``1.0`` for no scaling.

Ternary STE: ``ttq_grads`` (Zhu, Han, Mao, Dally 2016, "Trained Ternary Quantization", arXiv:1612.01064)
-----------------------------------------------------------------------------------------------------
The ternary values are ``+wp`` (``w > delta``), ``0`` and ``-wn`` (``w < -delta``) as in
``refquant.spec.ternary.ttq_ternarize``.  Gradients, per element in float32::

    grad_w   = fl(wp * dy) if w > delta,  dy if |w| <= delta,  fl(wn * dy) if w < -delta
    grad_wp  = sum of dy over w > delta               (exact sum, one rounding, as above)
    grad_wn  = -(sum of dy over w < -delta)           (the value there is -wn)

The binary STE is ``refquant.spec.binary.ste_grad`` (windows ``|x| <= 1`` / ``|x| < 1``).

Errors
------
``SpecError``: ``"unsupported_dtype"``, ``"shape_mismatch"``, ``"nan_input"`` (a NaN ``x``; for ``lsq_grads``
and ``ttq_grads`` also ``grad_out``), ``"range_not_finite"`` (an infinite input where LSQ/TTQ need finite ones),
``"empty_input"``, ``"invalid_option"``, ``"invalid_format"``, ``"invalid_grad_scale"``, ``"gradient_not_finite"``
(an LSQ term that overflows float32), ``"invalid_threshold"`` (a negative TTQ ``delta``), ``"axis_out_of_range"``,
and those of ``QuantParams`` (``"scale_not_finite"``, ``"scale_not_positive"``,
``"scale_shape_mismatch"``, ``"zero_point_shape_mismatch"``) and of ``quantize``.
"""

from __future__ import annotations

import math
from enum import Enum, unique
from typing import Any

import numpy as np
import numpy.typing as npt

from refquant.errors import SpecError
from refquant.spec._checks import first_index
from refquant.spec.affine import (
    DEFAULT_PROFILE,
    NanPolicy,
    Precision,
    Profile,
    QuantParams,
    ScaleApplication,
    ZeroPointOrder,
    _fma_float32,
    quantize,
)
from refquant.spec.formats import IntFormat
from refquant.spec.granularity import normalize_axis
from refquant.spec.rounding import RoundingMode, round_to_int
from refquant.spec.saturation import Overflow

__all__ = [
    "LsqVariant",
    "SteMask",
    "exact_sum_float32",
    "fake_quantize_grad",
    "fake_quantize_mask",
    "lsq_grad_scale",
    "lsq_grad_terms",
    "lsq_grads",
    "ttq_grads",
]

F32Array = npt.NDArray[np.float32]
_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


@unique
class SteMask(Enum):
    """Where the fake-quantize STE passes the gradient."""

    PYTORCH = "pytorch"
    TORCHAO = "torchao"


@unique
class LsqVariant(Enum):
    """Which LSQ backward ``lsq_grads`` computes."""

    REFQUANT = "refquant"
    TORCH = "torch"


# --- exact sums ------------------------------------------------------------------------------------------------


def _round_units_to_float32(total: int) -> float:
    """``total * 2**-149`` rounded once to float32 (half to even), as a float64 (overflow: +-inf)."""
    if total == 0:
        return 0.0
    a = abs(total)
    n = a.bit_length()
    shift = 0
    if n > 24:
        shift = n - 24
        q = a >> shift
        rem = a - (q << shift)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and q & 1):
            q += 1
        a = q
    value = math.ldexp(float(a), shift - 149)  # exact: a <= 2**24
    if value >= 2.0**128:
        value = math.inf
    return -value if total < 0 else value


def _exact_sums(terms: npt.NDArray[np.float32]) -> F32Array:
    """Row sums of a 2-D float32 array: exact sum of each row, rounded once to float32 (half to even)."""
    rows = terms.shape[0]
    wide = terms.astype(np.float64)
    mant, expo = np.frexp(wide)  # wide = mant * 2**expo, 0.5 <= |mant| < 1 (0 for zeros)
    ints = np.ldexp(mant, 24).astype(np.int64)  # |ints| < 2**24: every float32 (subnormals too) is ints * 2**(expo-24)
    acc: list[int] = [0] * rows
    for e in np.unique(expo[ints != 0]).tolist():
        part = np.where(expo == e, ints, 0).sum(axis=1)  # |part| < 2**24 * columns: exact in int64
        shift = int(e) - 24 + 149  # units of 2**-149
        for i in range(rows):
            p = int(part[i])
            if p:
                acc[i] += p << shift if shift >= 0 else p >> -shift  # exact: the low bits are zero
    out = np.empty(rows, dtype=np.float32)
    all_neg_zero = np.all((terms == 0) & np.signbit(terms), axis=1) & (terms.shape[1] > 0)
    with np.errstate(over="ignore"):
        for i in range(rows):
            out[i] = np.float32(_round_units_to_float32(acc[i]))
            if acc[i] == 0 and all_neg_zero[i]:
                out[i] = np.float32(-0.0)
    return out


def exact_sum_float32(values: npt.ArrayLike, /, *, axis: int | None = None) -> F32Array:
    """The exact sum of float32 ``values`` rounded once to float32 (half to even), over all or all but ``axis``.

    ``axis=None``: one sum (a 0-d array).  ``axis=k``: one sum per index along ``k`` (a 1-D array).  The
    result does not depend on the order of the terms; an exact sum of 0 is ``+0.0`` unless every term is
    ``-0.0``; a sum beyond float32's range is +-inf.

    >>> import numpy as np
    >>> v = np.array([1e8, 1.0, -1e8, 1.0], np.float32)
    >>> float(exact_sum_float32(v)), float(((v[0] + v[1]) + v[2]) + v[3])  # exact, then left to right in float32
    (2.0, 1.0)
    """
    arr = np.asarray(values)
    if arr.dtype.newbyteorder("=") != np.dtype(np.float32):
        raise SpecError("unsupported_dtype", f"values must be a float32 array, got dtype {arr.dtype}")
    if np.any(np.isnan(arr)):
        raise SpecError("nan_input", f"values holds NaN at index {first_index(np.isnan(arr))}")
    if np.any(np.isinf(arr)):
        raise SpecError("range_not_finite", f"values holds an infinity at index {first_index(np.isinf(arr))}")
    arr = arr.astype(np.float32)
    if axis is None:
        return np.asarray(_exact_sums(arr.reshape(1, -1))[0])
    k = _axis(axis, arr.ndim)
    return _exact_sums(np.moveaxis(arr, k, 0).reshape(arr.shape[k], -1))


def _axis(axis: object, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise SpecError("axis_out_of_range", f"axis must be an integer, got {axis!r}")
    return normalize_axis(int(axis), ndim)


# --- fake-quantize STE -----------------------------------------------------------------------------------------


def _float_array(value: npt.ArrayLike, name: str) -> npt.NDArray[np.floating[Any]]:
    arr = np.asarray(value)
    if arr.dtype.newbyteorder("=") not in _FLOAT_DTYPES:
        raise SpecError("unsupported_dtype", f"{name} must be a float16, float32 or float64 array, got {arr.dtype}")
    return arr.astype(arr.dtype.newbyteorder("="), copy=False)


def _wide(fmt: IntFormat) -> IntFormat:
    if fmt.bits > 30:
        raise SpecError("invalid_format", f"the STE mask supports formats up to 30 bits, got {fmt.name}")
    return IntFormat(fmt.bits + 2, True)


def fake_quantize_mask(
    x: npt.ArrayLike,
    params: QuantParams,
    /,
    *,
    mask: SteMask = SteMask.PYTORCH,
    profile: Profile | None = None,
    rounding: RoundingMode | None = None,
    scale_application: ScaleApplication | None = None,
    zero_point_order: ZeroPointOrder | None = None,
    precision: Precision | None = None,
) -> npt.NDArray[np.bool_]:
    """Where the fake-quantize STE passes the gradient (see the module documentation).

    The options are ``quantize``'s: they name how the forward computes its code ``u``.

    >>> import numpy as np
    >>> from refquant.spec.formats import UINT8
    >>> x = np.array([-0.6, -0.5, 255.4, 255.5], np.float32)
    >>> fake_quantize_mask(x, QuantParams(1.0, 0, UINT8)).tolist()
    [False, True, True, False]
    >>> fake_quantize_mask(x, QuantParams(1.0, 0, UINT8), mask=SteMask.TORCHAO).tolist()
    [True, True, True, True]
    """
    if not isinstance(mask, SteMask):
        raise SpecError("invalid_option", f"mask must be a SteMask, got {mask!r}")
    if not isinstance(params, QuantParams):
        raise SpecError("invalid_option", f"params must be QuantParams, got {params!r}")
    base = DEFAULT_PROFILE if profile is None else profile
    if not isinstance(base, Profile):
        raise SpecError("invalid_option", f"profile must be a Profile, got {base!r}")
    flat = base.resolve(granularity=params.granularity, fmt=params.fmt)
    wide = QuantParams(params.scale, params.zero_point, _wide(params.fmt), params.granularity)
    u = quantize(
        x,
        wide,
        profile=flat,
        rounding=rounding,
        scale_application=scale_application,
        zero_point_order=zero_point_order,
        overflow=Overflow.SATURATE,
        nan_policy=NanPolicy.RAISE,
        precision=precision,
    ).astype(np.int64)
    if mask is SteMask.TORCHAO:
        return np.ones(u.shape, dtype=np.bool_)
    return np.asarray((u >= params.fmt.qmin) & (u <= params.fmt.qmax), dtype=np.bool_)


def fake_quantize_grad(
    x: npt.ArrayLike,
    grad_out: npt.ArrayLike,
    params: QuantParams,
    /,
    *,
    mask: SteMask = SteMask.PYTORCH,
    profile: Profile | None = None,
    rounding: RoundingMode | None = None,
    scale_application: ScaleApplication | None = None,
    zero_point_order: ZeroPointOrder | None = None,
    precision: Precision | None = None,
) -> npt.NDArray[np.floating[Any]]:
    """``grad_out * float(mask)``: the STE gradient of ``fake_quantize`` with respect to ``x``.

    ``grad_out``: float16/float32/float64 of ``x``'s shape; the result has its dtype.

    >>> import numpy as np
    >>> from refquant.spec.formats import UINT8
    >>> x = np.array([-0.6, -0.5, 255.4, 255.5], np.float32)
    >>> fake_quantize_grad(x, np.full(4, -2.0, np.float32), QuantParams(1.0, 0, UINT8)).tolist()
    [-0.0, -2.0, -2.0, -0.0]
    """
    g = _float_array(grad_out, "grad_out")
    m = fake_quantize_mask(
        x,
        params,
        mask=mask,
        profile=profile,
        rounding=rounding,
        scale_application=scale_application,
        zero_point_order=zero_point_order,
        precision=precision,
    )
    if g.shape != m.shape:
        raise SpecError("shape_mismatch", f"grad_out has shape {g.shape}, x has shape {m.shape}: they must be equal")
    with np.errstate(invalid="ignore"):
        return np.asarray(g * m.astype(g.dtype), dtype=g.dtype)


# --- LSQ -------------------------------------------------------------------------------------------------------


def lsq_grad_scale(n: int, fmt: IntFormat, /) -> np.float32:
    """LSQ's gradient scale ``float32(1 / sqrt(n * qmax))`` (float64 operations, one final rounding).

    >>> from refquant.spec.formats import INT8
    >>> float(lsq_grad_scale(1000, INT8))
    0.0028060676995664835
    """
    if not isinstance(fmt, IntFormat):
        raise SpecError("invalid_format", f"fmt must be an IntFormat, got {fmt!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise SpecError("invalid_grad_scale", f"n must be a positive integer element count, got {n!r}")
    if fmt.qmax <= 0:
        raise SpecError("invalid_grad_scale", f"1 / sqrt(n * qmax) needs qmax > 0; {fmt.name} has qmax {fmt.qmax}")
    return np.float32(1.0 / math.sqrt(float(int(n) * fmt.qmax)))


def _f32_input(value: npt.ArrayLike, name: str) -> F32Array:
    arr = np.asarray(value)
    if arr.dtype.newbyteorder("=") != np.dtype(np.float32):
        raise SpecError("unsupported_dtype", f"{name} must be a float32 array, got dtype {arr.dtype}")
    return arr.astype(np.float32)


def _finite(arr: npt.NDArray[Any], name: str) -> None:
    if np.any(np.isnan(arr)):
        raise SpecError("nan_input", f"{name} holds NaN at index {first_index(np.isnan(arr))}")
    if np.any(np.isinf(arr)):
        bad = np.isinf(arr)
        raise SpecError("range_not_finite", f"{name} holds {arr[bad].flat[0]!r} at index {first_index(bad)}")


def _grad_factor(grad_scale: float | None, n: int, fmt: IntFormat) -> np.float32:
    if grad_scale is None:
        return lsq_grad_scale(n, fmt)
    if isinstance(grad_scale, bool) or not isinstance(grad_scale, (int, float, np.integer, np.floating)):
        raise SpecError("invalid_grad_scale", f"grad_scale must be a real number or None, got {grad_scale!r}")
    with np.errstate(over="ignore"):
        g = np.float32(grad_scale)
    if not np.isfinite(g):
        raise SpecError("invalid_grad_scale", f"grad_scale must be finite in float32, got {grad_scale!r}")
    return g


def _params_like(
    value: npt.ArrayLike, name: str, condition: str, x_shape: tuple[int, ...], axis: int | None
) -> tuple[F32Array, tuple[int, ...]]:
    """A float32 parameter broadcast to ``x_shape`` and its own shape (0-d or (1,) per tensor, (C,) per axis)."""
    arr = _f32_input(value, name)
    _finite(arr, name)
    if axis is None:
        if arr.size != 1 or arr.ndim > 1:
            raise SpecError(condition, f"a per-tensor {name} must be a scalar, got shape {arr.shape}")
        return np.broadcast_to(arr.reshape(()), x_shape), arr.shape
    if arr.ndim != 1 or arr.shape[0] != x_shape[axis]:
        raise SpecError(
            condition,
            f"a per-axis {name} must have shape ({x_shape[axis]},) for x of shape {x_shape} and axis {axis}, "
            f"got {arr.shape}",
        )
    shape = [1] * len(x_shape)
    shape[axis] = x_shape[axis]
    return np.broadcast_to(arr.reshape(shape), x_shape), arr.shape


def _group_sums(terms: F32Array, axis: int | None, out_shape: tuple[int, ...]) -> F32Array:
    if axis is None:
        return exact_sum_float32(terms).reshape(out_shape)
    return exact_sum_float32(terms, axis=axis).reshape(out_shape)


def lsq_grads(
    x: npt.ArrayLike,
    grad_out: npt.ArrayLike,
    scale: npt.ArrayLike,
    zero_point: npt.ArrayLike,
    fmt: IntFormat,
    /,
    *,
    axis: int | None = None,
    grad_scale: float | None = None,
    variant: LsqVariant = LsqVariant.REFQUANT,
) -> tuple[F32Array, F32Array, F32Array]:
    """LSQ gradients ``(grad_x, grad_scale, grad_zero_point)`` of fake quantization (see the module documentation).

    ``x``, ``grad_out``: float32 of one shape (at least one element).  ``scale`` (float32, > 0) and
    ``zero_point`` (float32, learned as a float): scalars, or 1-D of length ``x.shape[axis]`` with ``axis``
    given.  ``grad_scale``: the gradient scale ``g`` (default ``1 / sqrt(x.size * qmax)``).  The parameter
    gradients have the parameters' shapes: the exact sums of ``lsq_grad_terms``' terms, rounded once.

    >>> import numpy as np
    >>> from refquant.spec.formats import UINT8
    >>> x = np.array([0.5, 1.5, -3.0, 300.0], np.float32)
    >>> gx, gs, gz = lsq_grads(x, np.ones(4, np.float32), np.float32(1), np.float32(0), UINT8, grad_scale=1.0)
    >>> gx.tolist(), float(gs), float(gz)
    ([1.0, 1.0, 0.0, 0.0], 255.0, -2.0)
    """
    grad_x, s_terms, z_terms = lsq_grad_terms(
        x, grad_out, scale, zero_point, fmt, axis=axis, grad_scale=grad_scale, variant=variant
    )
    k = None if axis is None else _axis(axis, grad_x.ndim)
    s_shape = np.asarray(scale).shape
    z_shape = np.asarray(zero_point).shape
    return grad_x, _group_sums(s_terms, k, s_shape), _group_sums(z_terms, k, z_shape)


def lsq_grad_terms(
    x: npt.ArrayLike,
    grad_out: npt.ArrayLike,
    scale: npt.ArrayLike,
    zero_point: npt.ArrayLike,
    fmt: IntFormat,
    /,
    *,
    axis: int | None = None,
    grad_scale: float | None = None,
    variant: LsqVariant = LsqVariant.REFQUANT,
) -> tuple[F32Array, F32Array, F32Array]:
    """``(grad_x, scale_terms, zero_point_terms)``: the per-element float32 values before the reductions.

    The arguments are ``lsq_grads``'; each output has ``x``'s shape.  An implementation whose reduction
    order differs can still be compared bit for bit on these.

    >>> import numpy as np
    >>> from refquant.spec.formats import UINT8
    >>> x = np.array([0.5, 1.5, -3.0, 300.0], np.float32)
    >>> gx, ts, tz = lsq_grad_terms(x, np.ones(4, np.float32), np.float32(1), np.float32(0), UINT8, grad_scale=1.0)
    >>> ts.tolist(), tz.tolist()
    ([-0.5, 0.5, 0.0, 255.0], [0.0, 0.0, -1.0, -1.0])
    """
    if not isinstance(fmt, IntFormat):
        raise SpecError("invalid_format", f"fmt must be an IntFormat, got {fmt!r}")
    if not isinstance(variant, LsqVariant):
        raise SpecError("invalid_option", f"variant must be a LsqVariant, got {variant!r}")
    xa = _f32_input(x, "x")
    dy = _f32_input(grad_out, "grad_out")
    if xa.shape != dy.shape:
        raise SpecError("shape_mismatch", f"grad_out has shape {dy.shape}, x has shape {xa.shape}: they must be equal")
    _finite(xa, "x")
    if xa.size == 0:
        raise SpecError("empty_input", f"x of shape {xa.shape} is empty")
    k = None if axis is None else _axis(axis, xa.ndim)
    _finite(dy, "grad_out")
    s, _ = _params_like(scale, "scale", "scale_shape_mismatch", xa.shape, k)
    zf, _ = _params_like(zero_point, "zero_point", "zero_point_shape_mismatch", xa.shape, k)
    if np.any(s <= 0):
        raise SpecError("scale_not_positive", f"scale must be > 0, got {np.asarray(scale).tolist()!r}")
    g = _grad_factor(grad_scale, xa.size, fmt)
    qmin, qmax = fmt.qmin, fmt.qmax
    f32 = np.float32

    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if variant is LsqVariant.REFQUANT or k is not None:
            z = np.clip(round_to_int(zf, RoundingMode.HALF_TO_EVEN).astype(np.int64), qmin, qmax)
        else:  # torch per tensor: static_cast<int64_t>(clamp(zero_point + 0.5f)), a truncation
            zb = np.clip(np.asarray(zf + f32(0.5), np.float32), f32(qmin), f32(qmax))
            z = np.trunc(zb).astype(np.int64)
        if variant is LsqVariant.REFQUANT:
            v = np.asarray(xa / s, np.float32)
            r = round_to_int(v, RoundingMode.HALF_TO_EVEN)
            u = np.clip(r.astype(np.float64), -(2.0**40), 2.0**40).astype(np.int64) + z
            inside_term = np.asarray(dy * np.asarray(r - v, np.float32), np.float32)
        else:
            inv = np.asarray(f32(1) / s, np.float32)
            t = _fma_float32(xa, inv, z.astype(np.float32))
            r = round_to_int(t, RoundingMode.HALF_TO_EVEN)
            u = np.clip(r.astype(np.float64), -(2.0**40), 2.0**40).astype(np.int64)
            diff = _fma_float32(np.clip(u, qmin, qmax).astype(np.float32) - z.astype(np.float32), s, -xa)
            inside_term = np.asarray(np.asarray(dy * diff, np.float32) * inv, np.float32)
        below = u < qmin
        above = u > qmax
        inside = ~(below | above)
        grad_x = np.asarray(dy * inside.astype(np.float32), np.float32)
        edge = np.where(below, qmin - z, qmax - z).astype(np.float32)
        s_terms = np.where(inside, inside_term, np.asarray(dy * edge, np.float32))
        s_terms = np.asarray(s_terms * g, np.float32)
        z_out = np.asarray(np.asarray(-dy * s, np.float32) * g, np.float32)
        z_terms = np.where(inside, f32(0), z_out).astype(np.float32)
    for terms, what in ((s_terms, "scale"), (z_terms, "zero-point")):
        if not np.all(np.isfinite(terms)):
            bad = ~np.isfinite(terms)
            raise SpecError(
                "gradient_not_finite",
                f"the {what} gradient term at index {first_index(bad)} overflows float32 (grad_out, scale or grad_scale "
                "too large)",
            )
    return grad_x, np.asarray(s_terms, np.float32), z_terms


# --- ternary STE -----------------------------------------------------------------------------------------------


def ttq_grads(
    w: npt.ArrayLike,
    grad_out: npt.ArrayLike,
    delta: npt.ArrayLike,
    wp: npt.ArrayLike,
    wn: npt.ArrayLike,
    /,
) -> tuple[F32Array, F32Array, F32Array]:
    """TTQ gradients ``(grad_w, grad_wp, grad_wn)`` per tensor (see the module documentation).

    ``w``, ``grad_out``: float32 of one shape; ``delta``, ``wp``, ``wn``: float32 scalars (``wp``, ``wn`` > 0).

    >>> import numpy as np
    >>> w = np.array([0.9, 0.1, -0.1, -0.9], np.float32)
    >>> gw, gp, gn = ttq_grads(w, np.ones(4, np.float32), np.float32(0.5), np.float32(2), np.float32(3))
    >>> gw.tolist(), float(gp), float(gn)
    ([2.0, 1.0, 1.0, 3.0], 1.0, -1.0)
    """
    wa = _f32_input(w, "w")
    dy = _f32_input(grad_out, "grad_out")
    if wa.shape != dy.shape:
        raise SpecError("shape_mismatch", f"grad_out has shape {dy.shape}, w has shape {wa.shape}: they must be equal")
    _finite(wa, "w")
    _finite(dy, "grad_out")
    d, _ = _params_like(delta, "delta", "scale_shape_mismatch", wa.shape, None)
    p, p_shape = _params_like(wp, "wp", "scale_shape_mismatch", wa.shape, None)
    n, n_shape = _params_like(wn, "wn", "scale_shape_mismatch", wa.shape, None)
    if np.any(d < 0):
        raise SpecError("invalid_threshold", f"delta must be >= 0, got {np.asarray(delta).tolist()!r}")
    if np.any(p <= 0) or np.any(n <= 0):
        raise SpecError(
            "scale_not_positive", f"wp and wn must be > 0, got {np.asarray(wp).tolist()!r}, {np.asarray(wn).tolist()!r}"
        )
    pos = wa > d
    neg = wa < -d
    with np.errstate(over="ignore"):
        grad_w = np.where(pos, np.asarray(p * dy, np.float32), np.where(neg, np.asarray(n * dy, np.float32), dy))
    zero = np.float32(0)
    gp = exact_sum_float32(np.where(pos, dy, zero).astype(np.float32)).reshape(p_shape)
    gn = (-exact_sum_float32(np.where(neg, dy, zero).astype(np.float32))).reshape(n_shape)
    return np.asarray(grad_w, np.float32), np.asarray(gp, np.float32), np.asarray(gn, np.float32)
