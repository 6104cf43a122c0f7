"""Fixed-point requantization: TFLite/gemmlowp multipliers and primitives, TOSA RESCALE scaling, ``requantize``.

An integer pipeline ends with an int32 accumulator ``acc`` that must be brought to the output scale: multiplied
by a real multiplier ``M = in_scale * w_scale / out_scale`` (usually below 1), rounded, offset by the output zero
point and clamped.  Stacks do this in integer arithmetic with a fixed-point multiplier, or in floating point; the
results differ near ties, so refquant names each way (``RequantRounding``).

Definitions (all arithmetic on exact integers; ``>>`` is an arithmetic shift, i.e. ``floor(v / 2**s)``)
------------------------------------------------------------------------------------------------------
``quantize_multiplier(M)`` (TFLite ``QuantizeMultiplier``, quantization_util.cc)
    ``M`` is converted to float64 first.  0 gives ``(0, 0)``.  Otherwise ``M = q * 2**e`` with ``q`` in
    ``[1/2, 1)`` (``frexp``), ``m = round_half_away_from_zero(q * 2**31)`` (``std::round``); if ``m == 2**31``
    then ``m = 2**30, e = e + 1``; if ``e < -31`` the result is flushed to ``(0, 0)``; with
    ``single_rounding`` a shift ``e > 30`` is clamped: ``(2**31 - 1, 30)``.  Meaning: ``M ~ m / 2**31 * 2**e``
    (TFLite shift convention: positive = left shift).
``saturating_rounding_doubling_high_mul(a, b)`` (gemmlowp ``SaturatingRoundingDoublingHighMul``, ARM VQRDMULH)
    ``INT32_MAX`` if ``a == b == INT32_MIN``; otherwise ``trunc((a*b + nudge) / 2**31)`` with
    ``nudge = 2**30`` if ``a*b >= 0`` else ``1 - 2**30`` and C's truncating division.  Net effect:
    ``floor((a*b + 2**30) / 2**31)``, the product doubled, high half, ties toward +inf.
``rounding_divide_by_pot(x, e)`` (gemmlowp ``RoundingDivideByPOT``), ``e`` in 0..31
    ``mask = 2**e - 1``, ``threshold = (mask >> 1) + (1 if x < 0 else 0)``,
    ``(x >> e) + (1 if (x & mask) > threshold else 0)``: ``x / 2**e`` rounded, ties away from zero.
``apply_scale_32(v, m, s, double_round)`` (TOSA ``apply_scale_32``, TOSA shift convention ``M ~ m / 2**s``)
    ``round = 2**(s-1)``, plus ``2**30`` (``v >= 0``) or minus ``2**30`` (``v < 0``) when ``double_round``
    and ``s > 31``; result ``(v*m + round) >> s``.  REQUIREs: ``m >= 0``, ``2 <= s <= 62``,
    ``-2**(s-1) <= v < 2**(s-1)``.
``apply_scale_16(v, m, s)`` (TOSA ``apply_scale_16``): ``(v*m + 2**(s-1)) >> s`` with ``v`` int48, ``m`` int16;
    REQUIREs ``m >= 0``, ``2 <= s <= 62`` and a result that fits int32.
    The two conventions meet at ``s_tosa = 31 - s_tflite`` (same ``m``).
``requantize(acc, M, ...)``, per element with ``M``, ``(m, e)`` the element's multiplier, ``z`` the zero point:
    DOUBLE (TFLite/gemmlowp default, TOSA DOUBLE_ROUND)::

        (m, e) = quantize_multiplier(M)
        y = acc * 2**max(e, 0)                  must fit int32 (TFLite's int32 product; else unpredictable)
        r = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(y, m), max(-e, 0))

    SINGLE (TFLite ``TFLITE_SINGLE_ROUNDING``, TOSA SINGLE_ROUND)::

        (m, e) = quantize_multiplier(M, single_rounding=True)      so -31 <= e <= 30, or (0, 0)
        r = (acc * m + 2**(30 - e)) >> (31 - e)  must fit int32 (else unpredictable)

    FLOAT32 (onnxruntime MLAS ``MlasRequantizeOutput``): ``r = round_half_to_even(f32(f32(acc) * f32(M)))``.
    FLOAT64 (ONNX reference evaluator): ``r = round_half_to_even(f64(f64(acc) * f64(M)))``.
    Then ``out = clamp(r + z, lo, hi)`` with ``lo = max(qmin, activation_min)``, ``hi = min(qmax,
    activation_max)``.  For DOUBLE and SINGLE ``r + z`` is TFLite's int32 addition (TOSA ``apply_add_s``) and
    must fit int32; for the float roundings it is exact.

Errors
------
``SpecError``: ``"unsupported_dtype"``, ``"operand_out_of_range"`` (an integer outside the type the definition
gives it: int32, int16, int48, int8, or an accumulator outside int32 under DOUBLE/SINGLE),
``"exponent_out_of_range"``, ``"multiplier_negative"``, ``"multiplier_not_finite"``, ``"shape_mismatch"``,
``"invalid_option"``, ``"invalid_format"``, ``"invalid_fixed_point_multiplier"``, ``"zero_point_not_integer"``,
``"zero_point_out_of_range"``, ``"activation_not_integer"``, ``"activation_out_of_range"``,
``"activation_min_above_max"``, and granularity's ``"scale_shape_mismatch"`` / ``"axis_out_of_range"``.
``UnpredictableError`` (TOSA REQUIRE, TFLite undefined behaviour): ``"scale_multiplier_negative"``,
``"scale_shift_out_of_range"``, ``"scale_value_out_of_range"``, ``"scaled_value_overflow"``,
``"left_shift_overflow"``, ``"zero_point_add_overflow"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum, unique
from fractions import Fraction
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from refquant.errors import SpecError, UnpredictableError
from refquant.spec._checks import first_index
from refquant.spec.formats import INT8, IntFormat
from refquant.spec.granularity import PER_TENSOR, Granularity, PerAxis, PerTensor, expand_to
from refquant.spec.rounding import RoundingMode, round_to_int

__all__ = [
    "FixedPointMultiplier",
    "RequantRounding",
    "apply_scale_16",
    "apply_scale_32",
    "quantize_multiplier",
    "requantize",
    "rounding_divide_by_pot",
    "saturating_rounding_doubling_high_mul",
]

INT32_MIN: Final = -(2**31)
INT32_MAX: Final = 2**31 - 1
_INT16 = (-(2**15), 2**15 - 1)
_INT8 = (-(2**7), 2**7 - 1)
_INT48 = (-(2**47), 2**47 - 1)
_INT64 = (-(2**63), 2**63 - 1)

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]


# --- input checks ----------------------------------------------------------------------------------------------


def _integers(value: object, name: str, lo: int, hi: int, what: str) -> I64:
    """``value`` as an int64 array whose elements all lie in ``[lo, hi]`` (else ``"operand_out_of_range"``)."""
    arr = np.asarray(value)
    if arr.dtype == np.object_:  # Python ints beyond 64 bits
        items = arr.ravel().tolist()
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise SpecError("unsupported_dtype", f"{name} must hold integers, got {value!r}")
        for i, v in enumerate(items):
            if not lo <= v <= hi:
                index = tuple(int(k) for k in np.unravel_index(i, arr.shape)) if arr.ndim else ()
                raise SpecError(
                    "operand_out_of_range", f"{name} must lie in [{lo}, {hi}] ({what}); element {index} is {v}"
                )
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise SpecError("unsupported_dtype", f"{name} must be an integer array, got dtype {arr.dtype}")
    if arr.dtype == np.uint64:
        over = arr > np.uint64(hi)
        if np.any(over):
            raise SpecError(
                "operand_out_of_range",
                f"{name} must lie in [{lo}, {hi}] ({what}); element {first_index(over)} is {arr[over].flat[0]}",
            )
    wide = arr.astype(np.int64)
    bad = (wide < lo) | (wide > hi)
    if np.any(bad):
        raise SpecError(
            "operand_out_of_range",
            f"{name} must lie in [{lo}, {hi}] ({what}); element {first_index(bad)} is {wide[bad].flat[0]}",
        )
    return wide


def _int32(value: object, name: str) -> I64:
    return _integers(value, name, INT32_MIN, INT32_MAX, "int32")


def _broadcast(*arrays: I64) -> list[I64]:
    try:
        return [np.asarray(a) for a in np.broadcast_arrays(*arrays)]
    except ValueError:
        shapes = ", ".join(str(a.shape) for a in arrays)
        raise SpecError("shape_mismatch", f"operands of shapes {shapes} do not broadcast together") from None


def _check_bool(value: object, name: str) -> None:
    if not isinstance(value, bool):
        raise SpecError("invalid_option", f"{name} must be a bool, got {value!r}")


def _is_int(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _real_multipliers(multiplier: object) -> npt.NDArray[np.float64]:
    raw = np.asarray(multiplier)
    if raw.dtype == np.bool_ or raw.dtype.kind not in "iuf":
        raise SpecError("unsupported_dtype", f"multiplier must be real, got dtype {raw.dtype}")
    with np.errstate(over="ignore"):
        m = raw.astype(np.float64)
    bad = ~np.isfinite(m)
    if np.any(bad):
        raise SpecError(
            "multiplier_not_finite", f"multiplier must be finite; element {first_index(bad)} is {raw[bad].flat[0]!r}"
        )
    neg = m < 0
    if np.any(neg):
        raise SpecError(
            "multiplier_negative", f"multiplier must be >= 0; element {first_index(neg)} is {m[neg].flat[0]!r}"
        )
    return m


# --- TFLite QuantizeMultiplier -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FixedPointMultiplier:
    """A real multiplier in TFLite's convention: ``real ~ multiplier / 2**31 * 2**shift``.

    ``multiplier`` is an int in ``[0, 2**31 - 1]`` (``quantize_multiplier`` gives 0 or a value in
    ``[2**30, 2**31)``); ``shift`` is an int, positive for a left shift.  TOSA's shift for the same
    multiplier is ``31 - shift``.
    """

    multiplier: int
    shift: int

    def __post_init__(self) -> None:
        for field in ("multiplier", "shift"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise SpecError("invalid_fixed_point_multiplier", f"{field} must be an int, got {value!r}")
            object.__setattr__(self, field, int(value))
        if not 0 <= self.multiplier <= INT32_MAX:
            raise SpecError(
                "invalid_fixed_point_multiplier", f"multiplier must lie in [0, 2**31 - 1], got {self.multiplier}"
            )


def _round_half_away_from_zero(v: Fraction) -> int:
    """C/C++ ``std::round`` on an exact value."""
    magnitude = math.floor(abs(v) + Fraction(1, 2))
    return magnitude if v >= 0 else -magnitude


def quantize_multiplier(real: float, /, *, single_rounding: bool = False) -> FixedPointMultiplier:
    """TFLite ``QuantizeMultiplier``: the fixed-point multiplier and shift of a real multiplier ``real >= 0``.

    See the module documentation for the definition.  ``single_rounding`` is TFLite's
    ``TFLITE_SINGLE_ROUNDING`` build, whose clamp keeps ``shift <= 30``.

    Examples
    --------
    >>> quantize_multiplier(0.25)
    FixedPointMultiplier(multiplier=1073741824, shift=-1)
    >>> quantize_multiplier(3.0)
    FixedPointMultiplier(multiplier=1610612736, shift=2)
    >>> quantize_multiplier(1 - 2**-40)  # q * 2**31 rounds to 2**31, so the shift goes up by one
    FixedPointMultiplier(multiplier=1073741824, shift=1)
    >>> quantize_multiplier(1.5e-10)  # below 2**-32: flushed
    FixedPointMultiplier(multiplier=0, shift=0)
    >>> quantize_multiplier(2.0**31, single_rounding=True)
    FixedPointMultiplier(multiplier=2147483647, shift=30)
    """
    _check_bool(single_rounding, "single_rounding")
    if isinstance(real, bool) or not isinstance(real, (int, float, np.integer, np.floating)):
        raise SpecError("unsupported_dtype", f"real must be a real number, got {real!r}")
    try:
        d = float(real)  # to float64, round half to even (exact for float32 and float64 inputs)
    except OverflowError:
        raise SpecError("multiplier_not_finite", f"real {real!r} is beyond float64") from None
    if not math.isfinite(d):
        raise SpecError("multiplier_not_finite", f"real must be finite, got {real!r}")
    if d < 0:
        raise SpecError("multiplier_negative", f"real must be >= 0, got {real!r}")
    if d == 0:  # +0.0 and -0.0
        return FixedPointMultiplier(0, 0)
    q, shift = math.frexp(d)  # d = q * 2**shift, q in [0.5, 1), exact
    q_fixed = _round_half_away_from_zero(Fraction(q) * 2**31)
    if q_fixed == 2**31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return FixedPointMultiplier(0, 0)
    if single_rounding and shift > 30:
        return FixedPointMultiplier(INT32_MAX, 30)
    return FixedPointMultiplier(q_fixed, shift)


# --- gemmlowp primitives -----------------------------------------------------------------------------------------


def _truncating_divide(n: I64, d: int) -> I64:
    """C/C++ integer division ``n / d`` for ``d > 0``: the quotient truncated toward zero."""
    q = np.abs(n) // d
    return np.where(n < 0, -q, q)


def _srdhm(a: I64, b: I64) -> I64:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` on int64 arrays holding int32 values (no checks)."""
    overflow = (a == b) & (a == INT32_MIN)
    ab = a * b  # exact: |a * b| <= 2**62
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    high = _truncating_divide(ab + nudge, 1 << 31)
    return np.where(overflow, np.int64(INT32_MAX), high)


def _rdbpot(x: I64, exponent: I64) -> I64:
    """gemmlowp ``RoundingDivideByPOT`` on int64 arrays (x in int32, exponent in 0..31; no checks)."""
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).astype(np.int64)
    return (x >> exponent) + (remainder > threshold).astype(np.int64)


def saturating_rounding_doubling_high_mul(a: npt.ArrayLike, b: npt.ArrayLike, /) -> I32:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` (ARM VQRDMULH), elementwise on int32 values.

    ``a`` and ``b`` are integer arrays (broadcast together) whose values lie in int32.

    Examples
    --------
    >>> int(saturating_rounding_doubling_high_mul(-(2**31), -(2**31)))
    2147483647
    >>> saturating_rounding_doubling_high_mul([-3 * 2**15, -(2**15), 2**15], 2**15).tolist()
    [-1, 0, 1]
    """
    a64, b64 = _broadcast(_int32(a, "a"), _int32(b, "b"))
    return np.asarray(_srdhm(a64, b64).astype(np.int32))


def rounding_divide_by_pot(x: npt.ArrayLike, exponent: npt.ArrayLike, /) -> I32:
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded half away from zero, elementwise.

    ``x`` holds int32 values; ``exponent`` holds integers in 0..31 (broadcast with ``x``).

    Examples
    --------
    >>> rounding_divide_by_pot([-5, -3, -1, 1, 3], 1).tolist()
    [-3, -2, -1, 1, 2]
    """
    x64 = _int32(x, "x")
    e64 = _integers(exponent, "exponent", *_INT64, "int64")
    bad = (e64 < 0) | (e64 > 31)
    if np.any(bad):
        raise SpecError(
            "exponent_out_of_range", f"exponent must lie in 0..31; element {first_index(bad)} is {e64[bad].flat[0]}"
        )
    x64, e64 = _broadcast(x64, e64)
    return np.asarray(_rdbpot(x64, e64).astype(np.int32))


# --- TOSA apply_scale --------------------------------------------------------------------------------------------


def _tosa_requires(multiplier: I64, shift: I64) -> None:
    neg = multiplier < 0
    if np.any(neg):
        raise UnpredictableError(
            "scale_multiplier_negative",
            f"TOSA REQUIRE(multiplier >= 0) fails: multiplier at index {first_index(neg)} is {multiplier[neg].flat[0]}",
        )
    bad = (shift < 2) | (shift > 62)
    if np.any(bad):
        raise UnpredictableError(
            "scale_shift_out_of_range",
            f"TOSA REQUIRE(2 <= shift <= 62) fails: shift at index {first_index(bad)} is {shift[bad].flat[0]}",
        )


def apply_scale_32(
    value: npt.ArrayLike, multiplier: npt.ArrayLike, shift: npt.ArrayLike, /, *, double_round: bool
) -> I32:
    """TOSA ``apply_scale_32``: ``(value * multiplier + round) >> shift``, elementwise (arguments broadcast).

    ``value`` and ``multiplier`` hold int32 values and ``shift`` int8 values (else ``SpecError``); the TOSA
    REQUIREs (``multiplier >= 0``, ``2 <= shift <= 62``, ``-2**(shift-1) <= value < 2**(shift-1)``) raise
    ``UnpredictableError``.  TOSA shift convention: the scale is ``multiplier / 2**shift``.

    Examples
    --------
    >>> apply_scale_32([-10, -6, -2, 1, 2, 5, 10], 2**30, 32, double_round=True).tolist()
    [-3, -2, -1, 1, 1, 2, 3]
    >>> apply_scale_32([-10, -6, -2, 1, 2, 5, 10], 2**30, 32, double_round=False).tolist()
    [-2, -1, 0, 0, 1, 1, 3]
    """
    _check_bool(double_round, "double_round")
    v = _int32(value, "value")
    m = _int32(multiplier, "multiplier")
    s = _integers(shift, "shift", *_INT8, "int8")
    v, m, s = _broadcast(v, m, s)
    _tosa_requires(m, s)
    half = np.int64(1) << (s - 1)
    outside = (v < -half) | (v >= half)
    if np.any(outside):
        i = first_index(outside)
        raise UnpredictableError(
            "scale_value_out_of_range",
            f"TOSA REQUIRE(-2**(shift-1) <= value < 2**(shift-1)) fails at index {i}: value {v[i]}, shift {s[i]}",
        )
    rounding = half
    if double_round:
        adjust = np.where(v >= 0, np.int64(1 << 30), np.int64(-(1 << 30)))
        rounding = rounding + np.where(s > 31, adjust, np.int64(0))
    result = (v * m + rounding) >> s  # |v * m| < 2**62 and rounding <= 2**61 + 2**30: exact in int64
    return np.asarray(result.astype(np.int32))


def apply_scale_16(value: npt.ArrayLike, multiplier: npt.ArrayLike, shift: npt.ArrayLike, /) -> I32:
    """TOSA ``apply_scale_16``: ``(value * multiplier + 2**(shift-1)) >> shift``, elementwise.

    ``value`` holds int48 values, ``multiplier`` int16 and ``shift`` int8 (else ``SpecError``); the TOSA REQUIREs
    (``multiplier >= 0``, ``2 <= shift <= 62``, a result within int32) raise ``UnpredictableError``.

    Examples
    --------
    >>> apply_scale_16([-3, -1, 1, 3], 2**14, 16).tolist()  # x / 4, ties toward +inf
    [-1, 0, 0, 1]
    """
    v = _integers(value, "value", *_INT48, "int48")
    m = _integers(multiplier, "multiplier", *_INT16, "int16")
    s = _integers(shift, "shift", *_INT8, "int8")
    v, m, s = _broadcast(v, m, s)
    _tosa_requires(m, s)
    result = (v * m + (np.int64(1) << (s - 1))) >> s  # |v * m| <= 2**62, round <= 2**61: exact in int64
    over = (result < INT32_MIN) | (result > INT32_MAX)
    if np.any(over):
        i = first_index(over)
        raise UnpredictableError(
            "scaled_value_overflow",
            f"TOSA REQUIRE(result fits int32) fails at index {i}: value {v[i]}, multiplier {m[i]}, shift {s[i]} "
            f"give {result[i]}",
        )
    return np.asarray(result.astype(np.int32))


# --- requantize --------------------------------------------------------------------------------------------------


@unique
class RequantRounding(Enum):
    """How ``requantize`` applies the real multiplier and rounds."""

    DOUBLE = "double"
    SINGLE = "single"
    FLOAT32 = "float32"
    FLOAT64 = "float64"


def _fixed_point(
    m: npt.NDArray[np.float64], *, single_rounding: bool, granularity: Granularity, shape: tuple[int, ...]
) -> tuple[I64, I64]:
    """quantize_multiplier of every real multiplier, broadcast to ``shape``: (multipliers, shifts)."""
    pairs = [quantize_multiplier(float(v), single_rounding=single_rounding) for v in m.ravel()]
    q = np.array([p.multiplier for p in pairs], dtype=np.int64).reshape(m.shape)
    e = np.array([p.shift for p in pairs], dtype=np.int64).reshape(m.shape)
    return np.asarray(expand_to(q, granularity, shape)), np.asarray(expand_to(e, granularity, shape))


def _double(acc: I64, q: I64, e: I64) -> I64:
    """TFLite ``MultiplyByQuantizedMultiplier`` (default build), elementwise."""
    left = np.maximum(e, 0)
    right = np.maximum(-e, 0)
    too_far = left > 30
    if np.any(too_far):
        i = first_index(too_far)
        raise UnpredictableError(
            "left_shift_overflow",
            f"multiplier shift {e[i]} at index {i}: TFLite's factor 1 << {e[i]} does not fit int32",
        )
    y = acc << left  # |acc| <= 2**31 and left <= 30: exact in int64
    over = (y < INT32_MIN) | (y > INT32_MAX)
    if np.any(over):
        i = first_index(over)
        raise UnpredictableError(
            "left_shift_overflow",
            f"acc {acc[i]} * 2**{left[i]} at index {i} does not fit int32 (TFLite's int32 product overflows)",
        )
    return _rdbpot(_srdhm(y, q), right)


def _single(acc: I64, q: I64, e: I64) -> I64:
    """TFLite ``MultiplyByQuantizedMultiplier`` (``TFLITE_SINGLE_ROUNDING`` build), elementwise."""
    total = 31 - e  # in 1..62, since -31 <= e <= 30
    r = (acc * q + (np.int64(1) << (total - 1))) >> total  # |acc * q| < 2**62: exact in int64
    over = (r < INT32_MIN) | (r > INT32_MAX)
    if np.any(over):
        i = first_index(over)
        raise UnpredictableError(
            "scaled_value_overflow",
            f"acc {acc[i]} times multiplier {q[i]} / 2**{total[i]} at index {i} gives {r[i]}, outside int32",
        )
    return r


def _float(acc: I64, m: npt.NDArray[np.float64], dtype: type[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """``round_half_to_even(fl(fl(acc) * fl(m)))`` in ``dtype``, returned as float64 (exact)."""
    with np.errstate(over="ignore"):
        mf = m.astype(dtype)
    bad = ~np.isfinite(mf)
    if np.any(bad):
        raise SpecError(
            "multiplier_not_finite",
            f"multiplier {m[bad].flat[0]!r} at index {first_index(bad)} overflows {np.dtype(dtype).name}",
        )
    with np.errstate(over="ignore"):
        product = acc.astype(dtype) * mf
    return round_to_int(product, RoundingMode.HALF_TO_EVEN).astype(np.float64)


def requantize(
    acc: npt.ArrayLike,
    multiplier: npt.ArrayLike,
    /,
    *,
    out_fmt: IntFormat = INT8,
    out_zero_point: int = 0,
    rounding: RequantRounding = RequantRounding.DOUBLE,
    granularity: Granularity = PER_TENSOR,
    activation_min: int | None = None,
    activation_max: int | None = None,
) -> npt.NDArray[np.integer[Any]]:
    """Bring accumulators ``acc`` to output codes: scale by the real ``multiplier``, round, add the zero point, clamp.

    ``acc``: an integer array (values in int32 for DOUBLE and SINGLE; any int64 value for FLOAT32/FLOAT64).
    ``multiplier``: the real multiplier(s) ``>= 0``, a scalar (``PerTensor``) or 1-D along ``PerAxis(axis)``.
    ``rounding`` picks the pipeline (see the module documentation); the result is clamped to
    ``[max(qmin, activation_min), min(qmax, activation_max)]`` and returned in ``out_fmt.storage_dtype``.

    Checks, in this order: the options' types; ``acc``'s dtype; the multipliers; their shape against
    ``acc`` and ``granularity``; the zero point; the activation bounds; ``acc`` within int32 (DOUBLE/SINGLE);
    then the arithmetic preconditions (``UnpredictableError``).

    Examples
    --------
    >>> acc = [-10, -6, -2, 1, 2, 5, 10]
    >>> requantize(acc, 0.25).tolist()
    [-3, -2, -1, 1, 1, 2, 3]
    >>> requantize(acc, 0.25, rounding=RequantRounding.SINGLE).tolist()
    [-2, -1, 0, 0, 1, 1, 3]
    >>> requantize(acc, 0.25, rounding=RequantRounding.FLOAT64).tolist()
    [-2, -2, 0, 0, 0, 1, 2]
    """
    if not isinstance(rounding, RequantRounding):
        raise SpecError("invalid_option", f"rounding must be a RequantRounding, got {rounding!r}")
    if not isinstance(out_fmt, IntFormat):
        raise SpecError("invalid_format", f"out_fmt must be an IntFormat, got {out_fmt!r}")
    if not isinstance(granularity, (PerTensor, PerAxis)):
        raise SpecError("invalid_option", f"granularity must be PerTensor or PerAxis, got {granularity!r}")
    a = _integers(acc, "acc", *_INT64, "int64")
    m = _real_multipliers(multiplier)
    m_full = np.asarray(expand_to(m, granularity, a.shape))
    if not _is_int(out_zero_point):
        raise SpecError("zero_point_not_integer", f"out_zero_point must be an int, got {out_zero_point!r}")
    zp = int(out_zero_point)
    if not out_fmt.qmin <= zp <= out_fmt.qmax:
        raise SpecError(
            "zero_point_out_of_range",
            f"out_zero_point {zp} is outside [{out_fmt.qmin}, {out_fmt.qmax}] of {out_fmt.name}",
        )
    lo, hi = out_fmt.qmin, out_fmt.qmax
    for name, bound in (("activation_min", activation_min), ("activation_max", activation_max)):
        if bound is None:
            continue
        if not _is_int(bound):
            raise SpecError("activation_not_integer", f"{name} must be an int or None, got {bound!r}")
        b = int(bound)
        if not out_fmt.qmin <= b <= out_fmt.qmax:
            raise SpecError(
                "activation_out_of_range", f"{name} {b} is outside [{out_fmt.qmin}, {out_fmt.qmax}] of {out_fmt.name}"
            )
        lo, hi = (b, hi) if name == "activation_min" else (lo, b)
    if lo > hi:
        raise SpecError("activation_min_above_max", f"activation_min {lo} is above activation_max {hi}")

    if rounding in (RequantRounding.DOUBLE, RequantRounding.SINGLE):
        a = _integers(a, "acc", INT32_MIN, INT32_MAX, f"int32 under {rounding.name}")
        single = rounding is RequantRounding.SINGLE
        q, e = _fixed_point(m, single_rounding=single, granularity=granularity, shape=a.shape)
        r = _single(a, q, e) if single else _double(a, q, e)
        total = r + zp
        over = (total < INT32_MIN) | (total > INT32_MAX)
        if np.any(over):
            i = first_index(over)
            raise UnpredictableError(
                "zero_point_add_overflow",
                f"scaled value {r[i]} + out_zero_point {zp} at index {i} does not fit int32",
            )
        out = np.clip(total, lo, hi)
    else:
        dtype = np.float32 if rounding is RequantRounding.FLOAT32 else np.float64
        r_float = _float(a, m_full, dtype)
        # r + zp clamped to [lo, hi] == clamp(r, lo - zp, hi - zp) + zp, which keeps the int64 conversion in range.
        out = np.clip(r_float, float(lo - zp), float(hi - zp)).astype(np.int64) + zp
    return np.asarray(out.astype(out_fmt.storage_dtype))
