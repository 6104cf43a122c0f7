"""Ternary quantization: TWN, TTQ and BitNet b1.58 thresholds, and the two-bitplane ternary matmul.

Definition
----------
Every mean below is the one of ``refquant.spec.binary``: the correctly rounded float64 value of the exact sum
(``math.fsum``, so the order of summation does not matter), divided by the element count in float64.  A group is the
whole tensor (``axis=None``) or, for each index of ``axis``, the elements at that index along ``axis`` (all other
axes: per output channel for ``axis=0`` of OIHW / (out, in) weights).  Comparisons are exact: ``w`` and the float32
threshold are compared as real numbers (both convert to float64 exactly).

TWN (Li, Zhang, Liu 2016, arXiv:1605.04711; the authors' Caffe code ``caffe-twns``), per group::

    delta = float32(fl64(factor * mean|w|))             factor = 0.7 by default, multiplied in float64
    code  = +1 if w > delta, -1 if w < -delta, else 0   strict on both sides: |w| == delta gives 0
    alpha = float32(fsum(|w_i| : |w_i| > delta) / count)  0 if no element is above delta (only all-zero groups)

TTQ (Zhu, Han, Mao, Dally 2016, arXiv:1612.01064), per group: ``delta = float32(fl64(t * max|w|))`` (``max|w|`` is
exact; TTQ's ``t`` times the maximum of the weights normalised by ``max|w|``), codes as TWN with that ``delta``,
and the ternary values ``+wp`` / ``0`` / ``-wn`` with the two float32 scales ``wp``, ``wn`` (learned, > 0).

BitNet b1.58 (Ma et al. 2024, arXiv:2402.17764, "absmean"), per tensor::

    gamma = float32(mean|w|);  scale = fl32(gamma + float32(eps))
    code  = clip(round_half_to_even(fl32(float32(w) / scale)), -1, 1)      the division in float32

(the paper's ``W / (gamma + eps)``; the released training code computes ``round(w * (1 / max(gamma, eps)))``
instead, which differs at near-ties: docs/spec/ternary.md §4).  ``torch.round`` rounds half to even, so
``|w| / scale == 0.5`` gives code 0.

Two bitplanes: ``ternary_bitplanes(t)`` packs ``t == +1`` and ``t == -1`` along the last axis exactly as
``pack_bits`` packs ``+1`` (element ``k`` in bit ``k % 64`` of word ``k // 64``, padding bits 0).
``ternary_matmul((P_a, M_a), (P_b, M_b), k)``: with ``&`` restricted to the ``k`` valid bits::

    out[m, n] = pc(P_a & P_b) + pc(M_a & M_b) - pc(P_a & M_b) - pc(M_a & P_b)  =  sum_k t_a[m, k] * t_b[n, k]

Padding bits are masked whatever they hold; a valid bit set in both planes of one operand is not a ternary code.

Errors
------
``SpecError``: ``"nan_input"``, ``"unsupported_dtype"``, ``"empty_input"``, ``"scale_not_finite"`` (an infinite
weight, or a threshold or scale that overflows float32), ``"scale_not_positive"`` (``wp`` / ``wn`` <= 0),
``"scale_shape_mismatch"``, ``"axis_out_of_range"``, ``"invalid_threshold"`` (``factor`` / ``t`` not a finite
number >= 0), ``"invalid_eps"`` (``eps`` not a finite number whose float32 is > 0), ``"code_out_of_range"``,
``"shape_mismatch"``, ``"invalid_count"``, ``"ternary_planes_overlap"``; ``UnpredictableError("accumulator_overflow")``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from refquant.errors import SpecError
from refquant.spec._checks import first_index
from refquant.spec.binary import (
    _count,
    _exact_sum,
    _finite_array,
    _groups,
    _mean_abs,
    _pack_mask,
    _packed_operands,
    _to_float32,
    _u64,
    _valid_mask,
)
from refquant.spec.granularity import normalize_axis
from refquant.spec.integer_ops import Accumulator, _finish

__all__ = [
    "TernaryWeights",
    "TtqWeights",
    "bitnet_ternarize",
    "ternary_bitplanes",
    "ternary_matmul",
    "ttq_ternarize",
    "twn_ternarize",
]

I8Array = npt.NDArray[np.int8]
U64Array = npt.NDArray[np.uint64]
F32Array = npt.NDArray[np.float32]


@dataclass(frozen=True, eq=False)
class TernaryWeights:
    """TWN result: ``codes`` int8 in {-1, 0, 1} (``w``'s shape); ``alpha`` and ``delta`` float32, 0-d or ``(C,)``."""

    codes: I8Array
    alpha: F32Array
    delta: F32Array


@dataclass(frozen=True, eq=False)
class TtqWeights:
    """TTQ result: ``codes``; ``values`` float32 ``+wp`` / ``0`` / ``-wn`` (``w``'s shape); ``delta``, ``wp``, ``wn``."""

    codes: I8Array
    values: F32Array
    delta: F32Array
    wp: F32Array
    wn: F32Array


def _threshold(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SpecError("invalid_threshold", f"{what} must be a real number, got {value!r}")
    f = float(value)
    if not math.isfinite(f) or f < 0:
        raise SpecError("invalid_threshold", f"{what} must be finite and >= 0, got {value!r}")
    return f


def _broadcast(param: npt.NDArray[Any], shape: tuple[int, ...], axis: int | None) -> npt.NDArray[Any]:
    """A 0-d or per-``axis`` parameter reshaped to broadcast against a tensor of ``shape``."""
    if axis is None:
        return param
    ax = normalize_axis(int(axis), len(shape))
    view = [1] * len(shape)
    view[ax] = -1
    return param.reshape(view)


def _codes(wa: npt.NDArray[np.float64], delta: F32Array, axis: int | None) -> I8Array:
    d = _broadcast(delta.astype(np.float64), wa.shape, axis)
    return np.asarray(np.where(wa > d, 1, np.where(wa < -d, -1, 0)), dtype=np.int8)


def _per_group(values: list[np.float32], axis: int | None) -> F32Array:
    if axis is None:
        return np.asarray(values[0], dtype=np.float32)
    return np.asarray(values, dtype=np.float32).reshape(-1)


def twn_ternarize(w: npt.ArrayLike, /, *, axis: int | None = None, factor: float = 0.7) -> TernaryWeights:
    """TWN: ``delta = float32(factor * mean|w|)``, codes by strict ``>``, ``alpha`` = mean |w| above ``delta``.

    >>> import numpy as np
    >>> t = twn_ternarize(np.array([1.0, 0.5, -0.5, 0.0], np.float32))  # mean 0.5, delta 0.35
    >>> t.codes.tolist(), float(t.alpha), float(t.delta)
    ([1, 1, -1, 0], 0.6666666865348816, 0.3499999940395355)
    """
    f = _threshold(factor, "factor")
    wa = _finite_array(w, "w")
    groups = _groups(wa, axis, "w")
    deltas = [_to_float32(f * _mean_abs(g, "w"), "delta") for g in groups]
    alphas = []
    for g, d in zip(groups, deltas, strict=True):
        above = np.abs(g)[np.abs(g) > np.float64(d)]
        mean = _exact_sum(above, "w") / above.size if above.size else 0.0
        alphas.append(_to_float32(mean, "alpha"))
    delta = _per_group(deltas, axis)
    return TernaryWeights(_codes(wa, delta, axis), _per_group(alphas, axis), delta)


def _positive_scale(value: npt.ArrayLike, shape: tuple[int, ...], what: str) -> F32Array:
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise SpecError("unsupported_dtype", f"{what} must be a real array, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise SpecError("scale_shape_mismatch", f"{what} must have shape {shape}, got shape {arr.shape}")
    with np.errstate(over="ignore"):
        f = arr.astype(np.float32)
    if not np.all(np.isfinite(f)):
        raise SpecError("scale_not_finite", f"{what} holds a value that is not finite in float32: {arr!r}")
    if np.any(f <= 0):
        idx = first_index(np.asarray(f <= 0))
        raise SpecError("scale_not_positive", f"{what} holds {arr[idx]!r} at index {idx}: it must be > 0 in float32")
    return f


def ttq_ternarize(
    w: npt.ArrayLike, /, *, t: float = 0.05, wp: npt.ArrayLike, wn: npt.ArrayLike, axis: int | None = None
) -> TtqWeights:
    """TTQ: ``delta = float32(t * max|w|)``, codes by strict ``>``, values ``+wp`` / ``0`` / ``-wn`` (float32).

    ``wp`` and ``wn``: scalars (``axis=None``) or one per index of ``axis``, > 0.

    >>> import numpy as np
    >>> r = ttq_ternarize(np.array([1.0, 0.05, -0.06, -0.5], np.float32), wp=2.0, wn=0.5)
    >>> r.codes.tolist(), r.values.tolist()  # delta = float32(0.05 * 1.0): 0.05 itself stays 0
    ([1, 0, -1, -1], [2.0, 0.0, -0.5, -0.5])
    """
    tf = _threshold(t, "t")
    wa = _finite_array(w, "w")
    groups = _groups(wa, axis, "w")
    shape: tuple[int, ...] = () if axis is None else (len(groups),)
    wp32 = _positive_scale(wp, shape, "wp")
    wn32 = _positive_scale(wn, shape, "wn")
    delta = _per_group([_to_float32(tf * float(np.max(np.abs(g))), "delta") for g in groups], axis)
    codes = _codes(wa, delta, axis)
    pos = _broadcast(wp32, wa.shape, axis)
    neg = _broadcast(wn32, wa.shape, axis)
    values = np.where(codes > 0, pos, np.where(codes < 0, -neg, np.float32(0)))
    return TtqWeights(codes, np.asarray(values, dtype=np.float32), delta, wp32, wn32)


def bitnet_ternarize(w: npt.ArrayLike, /, *, eps: float = 1e-5) -> tuple[I8Array, F32Array]:
    """BitNet b1.58 absmean: ``scale = fl32(float32(mean|w|) + float32(eps))``, codes in {-1, 0, 1}; per tensor.

    ``codes = clip(round_half_to_even(fl32(float32(w) / scale)), -1, 1)``; returns ``(codes, scale)``.

    >>> import numpy as np
    >>> codes, scale = bitnet_ternarize(np.array([2.0, -1.0, 0.5, 0.4], np.float32))  # mean 0.975
    >>> codes.tolist(), float(scale)  # 0.5 / 0.97501 = 0.51 rounds to 1; 0.4 / 0.97501 to 0
    ([1, -1, 1, 0], 0.9750100374221802)
    """
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.integer, np.floating)):
        raise SpecError("invalid_eps", f"eps must be a real number, got {eps!r}")
    eps32 = np.float32(eps) if math.isfinite(float(eps)) else np.float32(np.nan)
    if not (np.isfinite(eps32) and eps32 > 0):
        raise SpecError("invalid_eps", f"eps must be finite with float32(eps) > 0, got {eps!r}")
    wa = _finite_array(w, "w")
    (group,) = _groups(wa, None, "w")
    gamma = _to_float32(_mean_abs(group, "w"), "mean |w|")
    with np.errstate(over="ignore"):
        scale = np.float32(gamma + eps32)
        if not np.isfinite(scale):
            raise SpecError("scale_not_finite", f"mean |w| + eps = {gamma!r} + {eps32!r} overflows float32")
        v = wa.astype(np.float32) / scale
    codes = np.clip(np.rint(v), -1, 1)  # np.rint: round half to even
    return np.asarray(codes, dtype=np.int8), np.asarray(scale, dtype=np.float32)


def ternary_bitplanes(t: npt.ArrayLike, /) -> tuple[U64Array, U64Array]:
    """``(plus_bits, minus_bits)``: ``t == +1`` and ``t == -1`` packed along the last axis as ``pack_bits`` packs.

    >>> import numpy as np
    >>> plus, minus = ternary_bitplanes(np.array([1, 0, -1, 1], np.int8))
    >>> plus.tolist(), minus.tolist()  # bits 0 and 3; bit 2
    ([9], [4])
    """
    arr = np.asarray(t)
    if arr.dtype != np.dtype(np.int8):
        raise SpecError("unsupported_dtype", f"t must be an int8 array of -1 / 0 / +1, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise SpecError("shape_mismatch", "t must have at least one dimension (the packed axis K is the last)")
    bad = (arr < -1) | (arr > 1)
    if np.any(bad):
        idx = first_index(bad)
        raise SpecError("code_out_of_range", f"t holds {int(arr[idx])} at index {idx}, not -1, 0 or +1")
    return _pack_mask(arr == 1), _pack_mask(arr == -1)


def _planes(value: object, what: str) -> tuple[U64Array, U64Array]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise SpecError("shape_mismatch", f"{what} must be a pair (plus_bits, minus_bits), got {type(value).__name__}")
    plus = _u64(value[0], f"{what} plus_bits")
    minus = _u64(value[1], f"{what} minus_bits")
    if plus.shape != minus.shape:
        raise SpecError("shape_mismatch", f"{what} plus_bits {plus.shape} and minus_bits {minus.shape} differ in shape")
    return plus, minus


def ternary_matmul(lhs_planes: object, rhs_planes: object, k: int, /) -> npt.NDArray[np.int32]:
    """Ternary dot products from bitplanes, int32 ``(M, N)``: lhs planes ``(M, W)``, rhs planes ``(N, W)``.

    >>> import numpy as np
    >>> a = ternary_bitplanes(np.array([[1, 0, -1, 1]], np.int8))
    >>> b = ternary_bitplanes(np.array([[1, 1, 1, -1]], np.int8))
    >>> ternary_matmul(a, b, 4).tolist()  # 1 + 0 - 1 - 1
    [[-1]]
    """
    pa, ma = _planes(lhs_planes, "lhs_planes")
    pb, mb = _planes(rhs_planes, "rhs_planes")
    pa, pb, n = _packed_operands(pa, pb, k, "ternary_matmul")
    ma, mb, _ = _packed_operands(ma, mb, _count(k), "ternary_matmul")
    mask = _valid_mask(n)
    for plus, minus, what in ((pa, ma, "lhs_planes"), (pb, mb, "rhs_planes")):
        both = np.bitwise_and(plus, minus) & mask
        if np.any(both != 0):
            idx = first_index(both != 0)
            raise SpecError(
                "ternary_planes_overlap",
                f"{what}: word {idx} has a valid bit set in both plus_bits and minus_bits (not a ternary code)",
            )
    out = np.zeros((pa.shape[0], pb.shape[0]), np.int64)
    for m in range(pa.shape[0]):
        same = np.bitwise_count((pa[m] & pb) & mask).sum(axis=1, dtype=np.int64)
        same += np.bitwise_count((ma[m] & mb) & mask).sum(axis=1, dtype=np.int64)
        cross = np.bitwise_count((pa[m] & mb) & mask).sum(axis=1, dtype=np.int64)
        cross += np.bitwise_count((ma[m] & pb) & mask).sum(axis=1, dtype=np.int64)
        out[m] = same - cross
    return np.asarray(_finish(out, Accumulator.INT32, "ternary_matmul"), dtype=np.int32)
