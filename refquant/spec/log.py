"""Logarithmic (power-of-two) quantization, shift-only products, and additive powers of two (APoT).

Definition: power-of-two values (Miyashita, Lee, Murmann 2016, arXiv:1603.01025)
---------------------------------------------------------------------------------
A ``LogFormat(bits, fsr, *, signed, underflow, top)`` holds the values ``0`` and ``+-2**e`` for the
integer exponents ``e_min <= e <= e_max`` (only ``+2**e`` when unsigned).  With ``m`` exponent-field bits
(``bits - 1`` when signed, ``bits`` when unsigned) there are ``2**m - 1`` exponents:

- ``top=LogTop.CLAMP_TO_FSR``: ``e_max = fsr`` (the full-scale range ``2**fsr`` is the largest value);
- ``top=LogTop.PAPER_MAX_MINUS_ONE``: ``e_max = fsr - 1`` (the paper's ``Clip(x, min, max)`` gives
  ``max - 1`` for ``x >= max``, so the exponent ``fsr`` itself is never produced);
- ``e_min = e_max - (2**m - 2)``.  (Miyashita: ``Clip(Round(log2|x|), fsr - 2**m, fsr)`` with
  ``x <= min -> 0``: the exponents ``fsr - 2**m + 1 .. fsr - 1``, which is ``PAPER_MAX_MINUS_ONE``.)

**Code layout.**  A code is an unsigned ``bits``-bit integer (uint8 storage up to 8 bits, uint16 up to 16).
The low ``m`` bits are the exponent field ``f``: ``f = 0`` is the value zero, ``f = e - e_min + 1``
(1 .. ``2**m - 1``) is ``2**e``.  When signed, bit ``m`` (the MSB) is the sign (1 = negative).  The code
with the sign bit set and ``f = 0`` (a "negative zero") is never produced and is not a code of the format.

**Quantize** (``log_quantize``), per element, ``a = |x|`` (exact):

1. NaN is ``SpecError("nan_input")``.  ``0`` (either sign) is code 0.  ``+-inf`` take the top exponent.
2. The unbounded exponent ``r``: ``k = floor(log2 a)`` and ``f = a / 2**k`` in ``[1, 2)`` are exact
   (``frexp``).  ``r = k + 1`` when ``f`` is at or past the threshold of the rounding, else ``r = k``:

   - ``LogRounding.LOG_DOMAIN`` (Miyashita's ``Round(log2|x|)``): ``f >= sqrt(2)``, i.e.
     ``a >= sqrt(2) * 2**k``, i.e. ``a**2 >= 2**(2k+1)``.  Decided exactly, never through a float
     ``log2`` (which misrounds near ``sqrt(2) * 2**k``): ``f >= sqrt(2)`` iff ``f >= SQRT2_UP``, the
     smallest float64 above ``sqrt(2)`` (``0x1.6a09e667f3bcdp+0``), because no float64 lies between
     ``sqrt(2)`` and ``SQRT2_UP``.  ``sqrt(2)`` is irrational, so no finite float is a tie.
   - ``LINEAR_DOMAIN_*``: the nearest power of two, threshold ``f = 1.5`` (``a = 1.5 * 2**k``, the
     midpoint of ``2**k`` and ``2**(k+1)``); the tie ``f == 1.5`` is named: ``HALF_AWAY_FROM_ZERO`` takes
     ``2**(k+1)`` (caffe-twns ``p_up >= 0.5``), ``HALF_TOWARD_ZERO`` takes ``2**k``,
     ``HALF_TO_EVEN_EXPONENT`` takes the even one of ``k``, ``k + 1``.

3. The window: ``r > e_max`` gives ``e_max`` (both top rules clamp); ``r < e_min`` gives zero under
   ``LogUnderflow.TO_ZERO`` (Miyashita) and ``e_min`` under ``LogUnderflow.CLAMP_TO_MIN``.  The underflow is
   decided on the rounded exponent ``r``, as the paper's ``Clip(Round(...))``: with LOG_DOMAIN the
   threshold between 0 and ``2**e_min`` is ``sqrt(2) * 2**(e_min - 1)``.
4. Unsigned formats hold no negative value: a negative ``x`` (``-inf`` included) saturates to the
   smallest value, zero (as affine unsigned formats saturate to ``qmin``).

**Dequantize**: ``sign * 2**e`` in float32, exact (the window is checked to lie in float32's
``[2**-149, 2**127]`` when the format is made); field 0 is ``0.0``.

**Shift-only products** (``shift_matmul``): ``lhs`` (M, K) integers of at most 32 bits, ``w_codes``
(K, N) codes of the format.  With ``F = fmt.fraction_bits = max(0, -e_min)``, every product
``x * (+-2**e)`` equals ``+-(x << (e + F)) * 2**-F`` with a non-negative shift, so the result is the
exact integer ``acc[i, j] = sum_k +-(lhs[i, k] << (e[k, j] + F))`` (zero codes contribute 0), whose real
value is ``acc * 2**-F``.  The accumulator is int64; a sum outside int64 raises
``UnpredictableError("accumulator_overflow")``.  Nothing is rounded, so ``acc * 2**-F`` equals the exact
product of ``lhs`` with the dequantized weights (and the float64 matmul whenever that one is exact).

Definition: additive powers of two (Li, Dong, Wang 2019, arXiv:1909.13144)
---------------------------------------------------------------------------
``apot_levels(bits, k, alpha)`` with ``n = bits / k`` (``k`` divides ``bits``; bits in 1..8): the unit
levels are the sums ``u = p_0 + ... + p_(n-1)`` with ``p_i`` in ``{0, 2**-i, 2**-(i+n), ...,
2**-(i + (2**k - 2) n)}``, ``2**bits`` distinct values in ``[0, P]`` with ``P = sum_i 2**-i``; the levels are
``gamma * u`` with ``gamma = alpha / P``, so the top level is ``alpha``.  Each level is the exact rational
``alpha * u / P`` rounded once to float32 (half to even); the top level is exactly ``alpha``.  (PyTorch's
experimental observer rounds ``gamma`` to float32 first, then ``gamma * u``: see docs/spec/log.md.)
Levels that coincide in float32 (``alpha`` tiny, or ``k = 8``) are ``invalid_format``.

``apot_quantize(x, levels)`` is the index of the nearest level, ties to the lower level
(``refquant.spec.codebook.codebook_encode`` with ``LevelTie.TO_LOWER``); values beyond ``[0, alpha]`` clamp
to the end levels.  ``apot_dequantize`` reads the table.

Errors
------
``SpecError``: ``"invalid_format"`` (bad ``bits``, ``fsr``, ``signed``, ``k``, an exponent window outside
float32, or APoT levels that coincide), ``"invalid_option"`` (a mode of the wrong type), ``"nan_input"``,
``"unsupported_dtype"``, ``"code_out_of_range"`` (a code that is not a code of the format), ``"shape_mismatch"``
(``shift_matmul`` operands that are not (M, K) and (K, N)), ``"invalid_alpha"`` (``alpha`` not a finite
float32 > 0), the codebook's ``"invalid_levels"``; ``UnpredictableError``: ``"accumulator_overflow"``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from enum import Enum, unique
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from refquant.errors import SpecError, UnpredictableError
from refquant.spec._checks import first_index
from refquant.spec.codebook import LevelTie, codebook_decode, codebook_encode, round_fraction_to_float32
from refquant.spec.formats import IntFormat

__all__ = [
    "SQRT2_UP",
    "LogFormat",
    "LogRounding",
    "LogTop",
    "LogUnderflow",
    "apot_dequantize",
    "apot_levels",
    "apot_quantize",
    "log_dequantize",
    "log_exponents",
    "log_fake_quantize",
    "log_quantize",
    "shift_matmul",
]

SQRT2_UP = float.fromhex("0x1.6a09e667f3bcdp+0")  # the smallest float64 above sqrt(2)
FLOAT32_MIN_EXP = -149  # 2**-149: the smallest float32 (subnormal)
FLOAT32_MAX_EXP = 127
MAX_LOG_BITS = 16
MAX_APOT_BITS = 8

F32Array = npt.NDArray[np.float32]
Codes = npt.NDArray[np.unsignedinteger[Any]]


@unique
class LogRounding(Enum):
    """How ``|x|`` becomes a power of two: in the log domain (threshold ``sqrt(2) * 2**k``) or the linear one."""

    LOG_DOMAIN = "log_domain"
    LINEAR_DOMAIN_HALF_AWAY_FROM_ZERO = "linear_domain_half_away_from_zero"
    LINEAR_DOMAIN_HALF_TOWARD_ZERO = "linear_domain_half_toward_zero"
    LINEAR_DOMAIN_HALF_TO_EVEN_EXPONENT = "linear_domain_half_to_even_exponent"


@unique
class LogUnderflow(Enum):
    """What a rounded exponent below ``e_min`` becomes."""

    TO_ZERO = "to_zero"
    CLAMP_TO_MIN = "clamp_to_min"


@unique
class LogTop(Enum):
    """Whether the top exponent is ``fsr`` or, as Miyashita's ``Clip`` gives, ``fsr - 1``."""

    CLAMP_TO_FSR = "clamp_to_fsr"
    PAPER_MAX_MINUS_ONE = "paper_max_minus_one"


def _is_int(v: object) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


@dataclass(frozen=True)
class LogFormat:
    """A power-of-two format: ``bits`` in total, exponents ending at ``fsr`` (or ``fsr - 1``); see the module.

    >>> f = LogFormat(4, 0)
    >>> f.exponent_bits, f.e_min, f.e_max, f.fraction_bits
    (3, -6, 0, 6)
    """

    bits: int
    fsr: int
    signed: bool = True
    underflow: LogUnderflow = LogUnderflow.TO_ZERO
    top: LogTop = LogTop.CLAMP_TO_FSR

    def __init__(
        self,
        bits: int,
        fsr: int,
        *,
        signed: bool = True,
        underflow: LogUnderflow = LogUnderflow.TO_ZERO,
        top: LogTop = LogTop.CLAMP_TO_FSR,
    ) -> None:
        if not isinstance(signed, bool):
            raise SpecError("invalid_format", f"signed must be a bool, got {signed!r}")
        low = 2 if signed else 1
        if not _is_int(bits) or not low <= bits <= MAX_LOG_BITS:
            raise SpecError(
                "invalid_format",
                f"bits must be an int in {low}..{MAX_LOG_BITS} for a {'signed' if signed else 'unsigned'} "
                f"log format (one sign bit plus an exponent field of at least one bit), got {bits!r}",
            )
        if not _is_int(fsr):
            raise SpecError("invalid_format", f"fsr must be an int (the log2 of the full-scale range), got {fsr!r}")
        if not isinstance(underflow, LogUnderflow):
            raise SpecError("invalid_option", f"underflow must be a LogUnderflow, got {underflow!r}")
        if not isinstance(top, LogTop):
            raise SpecError("invalid_option", f"top must be a LogTop, got {top!r}")
        object.__setattr__(self, "bits", int(bits))
        object.__setattr__(self, "fsr", int(fsr))
        object.__setattr__(self, "signed", signed)
        object.__setattr__(self, "underflow", underflow)
        object.__setattr__(self, "top", top)
        if self.e_min < FLOAT32_MIN_EXP or self.e_max > FLOAT32_MAX_EXP:
            raise SpecError(
                "invalid_format",
                f"exponents {self.e_min}..{self.e_max} of {self!r} leave float32's 2**-149 .. 2**127",
            )

    @property
    def exponent_bits(self) -> int:
        """``m``: the width of the exponent field (``bits - 1`` when signed)."""
        return self.bits - 1 if self.signed else self.bits

    @property
    def e_max(self) -> int:
        return self.fsr if self.top is LogTop.CLAMP_TO_FSR else self.fsr - 1

    @property
    def e_min(self) -> int:
        return self.e_max - ((1 << self.exponent_bits) - 2)

    @property
    def fraction_bits(self) -> int:
        """``F = max(0, -e_min)``: the fractional bits of ``shift_matmul``'s exact fixed-point result."""
        return max(0, -self.e_min)

    @property
    def storage_dtype(self) -> np.dtype[np.unsignedinteger[Any]]:
        return np.dtype(np.uint8) if self.bits <= 8 else np.dtype(np.uint16)

    @property
    def code_format(self) -> IntFormat:
        """The unsigned integer format of the codes (for ``refquant.spec.packing``)."""
        return IntFormat(self.bits, False)


def _check_fmt(fmt: object) -> LogFormat:
    if not isinstance(fmt, LogFormat):
        raise SpecError("invalid_format", f"fmt must be a LogFormat, got {fmt!r}")
    return fmt


def _real(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    arr = np.asarray(x)
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (2, 4, 8):
        raise SpecError("unsupported_dtype", f"x must be a float16/float32/float64 array, got dtype {arr.dtype}")
    nan = np.isnan(arr)
    if np.any(nan):
        raise SpecError("nan_input", f"x holds NaN at index {first_index(nan)}")
    return arr.astype(np.float64)


def log_exponents(
    x: npt.ArrayLike, fmt: LogFormat, /, *, rounding: LogRounding = LogRounding.LOG_DOMAIN
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int32], npt.NDArray[np.bool_]]:
    """``(sign, exponent, is_zero)`` of each element: the value is ``sign * 2**exponent``, or 0 where ``is_zero``.

    ``sign`` is +1 or -1 (+1 at zeros), ``exponent`` is ``e_min`` at zeros.  Steps 1 to 4 of the module.

    >>> s, e, z = log_exponents(np.array([1.41, 1.42, -3.0, 0.0], np.float32), LogFormat(4, 2))
    >>> s.tolist(), e.tolist(), z.tolist()
    ([1, 1, -1, 1], [0, 1, 2, -4], [False, False, False, True])
    """
    f = _check_fmt(fmt)
    if not isinstance(rounding, LogRounding):
        raise SpecError("invalid_option", f"rounding must be a LogRounding, got {rounding!r}")
    xa = _real(x)
    negative = xa < 0
    a = np.abs(xa)
    finite_nonzero = np.isfinite(a) & (a > 0)
    mant, exp2 = np.frexp(np.where(finite_nonzero, a, 1.0))  # a = mant * 2**exp2, mant in [0.5, 1)
    k = exp2.astype(np.int64) - 1
    frac = mant * 2.0  # exact: in [1, 2)
    if rounding is LogRounding.LOG_DOMAIN:
        up = frac >= SQRT2_UP
    elif rounding is LogRounding.LINEAR_DOMAIN_HALF_AWAY_FROM_ZERO:
        up = frac >= 1.5
    elif rounding is LogRounding.LINEAR_DOMAIN_HALF_TOWARD_ZERO:
        up = frac > 1.5
    else:
        up = (frac > 1.5) | ((frac == 1.5) & (k % 2 != 0))
    r = k + up.astype(np.int64)
    r = np.where(np.isinf(a), f.e_max, r)
    r = np.minimum(r, f.e_max)
    underflow = r < f.e_min
    is_zero = ~(np.isinf(a) | (a > 0))
    if f.underflow is LogUnderflow.TO_ZERO:
        is_zero = is_zero | underflow
    if not f.signed:
        is_zero = is_zero | negative
    e = np.where(is_zero, f.e_min, np.maximum(r, f.e_min)).astype(np.int32)
    sign = np.where(negative & ~is_zero, -1, 1).astype(np.int8)
    return sign, e, is_zero


def log_quantize(x: npt.ArrayLike, fmt: LogFormat, /, *, rounding: LogRounding = LogRounding.LOG_DOMAIN) -> Codes:
    """The codes of ``x`` in ``fmt`` (``fmt.storage_dtype``, ``x``'s shape); see the module.

    >>> fmt = LogFormat(4, 2)  # signed: sign bit 3, exponent field 3 bits, exponents -4..2
    >>> log_quantize(np.array([0.0, 1.0, -1.0, 1.45, 100.0, 0.03], np.float32), fmt).tolist()
    [0, 5, 13, 6, 7, 0]
    >>> log_quantize(np.array([1.45], np.float32), fmt, rounding=LogRounding.LINEAR_DOMAIN_HALF_AWAY_FROM_ZERO).tolist()
    [5]
    """
    f = _check_fmt(fmt)
    sign, e, is_zero = log_exponents(x, f, rounding=rounding)
    field = np.where(is_zero, 0, e.astype(np.int64) - f.e_min + 1)
    code = field | np.where(sign < 0, 1 << f.exponent_bits, 0)
    return np.asarray(code.astype(f.storage_dtype))


def _decode_fields(codes: npt.ArrayLike, f: LogFormat) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """(field, negative) of each code, validated: every code inside ``bits`` bits, no negative zero."""
    qa = np.asarray(codes)
    if qa.dtype.kind not in "iu":
        raise SpecError("unsupported_dtype", f"codes must be an integer array, got dtype {qa.dtype}")
    top = (1 << f.bits) - 1
    if qa.dtype == np.uint64:
        out = qa > np.uint64(top)
        wide = np.where(out, 0, qa).astype(np.int64)
    else:
        wide = qa.astype(np.int64)
        out = (wide < 0) | (wide > top)
    if np.any(out):
        raise SpecError(
            "code_out_of_range", f"code {qa[out].flat[0]!r} at index {first_index(out)} is outside [0, {top}] of {f!r}"
        )
    mask = (1 << f.exponent_bits) - 1
    field = wide & mask
    negative = (wide >> f.exponent_bits) != 0 if f.signed else np.zeros(wide.shape, dtype=bool)
    bad = negative & (field == 0)
    if np.any(bad):
        raise SpecError(
            "code_out_of_range",
            f"code {int(wide[bad].flat[0])} at index {first_index(bad)} is a negative zero, not a code of {f!r}",
        )
    return field, negative


def log_dequantize(codes: npt.ArrayLike, fmt: LogFormat, /) -> F32Array:
    """``sign * 2**e`` of each code as float32 (exact); field 0 is 0.0.

    >>> log_dequantize(np.array([0, 5, 13, 6, 7, 1], np.uint8), LogFormat(4, 2)).tolist()
    [0.0, 1.0, -1.0, 2.0, 4.0, 0.0625]
    """
    f = _check_fmt(fmt)
    field, negative = _decode_fields(codes, f)
    e = field + (f.e_min - 1)
    mag = np.where(field == 0, np.float32(0), np.ldexp(np.float32(1), np.where(field == 0, 0, e).astype(np.int32)))
    return np.asarray(np.where(negative, -mag, mag), dtype=np.float32)


def log_fake_quantize(
    x: npt.ArrayLike, fmt: LogFormat, /, *, rounding: LogRounding = LogRounding.LOG_DOMAIN
) -> F32Array:
    """``log_dequantize(log_quantize(x, fmt, ...), fmt)``.

    >>> log_fake_quantize(np.array([0.7, -5.0, 3.0], np.float32), LogFormat(4, 2)).tolist()
    [0.5, -4.0, 4.0]
    """
    return log_dequantize(log_quantize(x, fmt, rounding=rounding), fmt)


def shift_matmul(lhs: npt.ArrayLike, w_codes: npt.ArrayLike, fmt: LogFormat, /) -> npt.NDArray[np.int64]:
    """The exact product of integer ``lhs`` (M, K) and log-coded weights (K, N), scaled by ``2**fmt.fraction_bits``.

    Computed with shifts, negations and additions only; see the module.  The real product is
    ``result * 2**-fmt.fraction_bits``.

    >>> fmt = LogFormat(4, 2)  # exponents -4..2, fraction_bits 4
    >>> w = log_quantize(np.array([[0.25], [-4.0]], np.float32), fmt)
    >>> shift_matmul(np.array([[3, 1]], np.int8), w, fmt).tolist()  # 3 * 0.25 - 1 * 4 = -3.25 = -52 / 16
    [[-52]]
    """
    f = _check_fmt(fmt)
    la = np.asarray(lhs)
    if la.dtype.kind not in "iu" or la.dtype.itemsize > 4:
        raise SpecError("unsupported_dtype", f"lhs must be an integer array of at most 32 bits, got dtype {la.dtype}")
    field, negative = _decode_fields(w_codes, f)
    if la.ndim != 2 or field.ndim != 2 or la.shape[1] != field.shape[0]:
        raise SpecError(
            "shape_mismatch",
            f"lhs (M, K) and w_codes (K, N) must be 2-D with equal K, got {la.shape} and {field.shape}",
        )
    shift = np.where(field == 0, 0, field + (f.e_min - 1 + f.fraction_bits))  # e + F >= 0
    weight_sign = np.where(field == 0, 0, np.where(negative, -1, 1))
    x = la.astype(np.int64)
    k = la.shape[1]
    max_x = int(np.max(np.abs(x))) if x.size else 0
    max_shift = int(np.max(shift)) if shift.size else 0
    if k == 0 or max_x == 0 or max_x.bit_length() + max_shift + k.bit_length() <= 62:
        terms = (x[:, :, None] << shift[None, :, :]) * weight_sign[None, :, :]  # every |term| < 2**62 / K
        return np.asarray(terms.sum(axis=1, dtype=np.int64), dtype=np.int64)
    # Python integers (exact), then the int64 accumulator's range is checked.
    xs, ss, ws = x.tolist(), shift.tolist(), weight_sign.tolist()
    n = field.shape[1]
    exact = [[sum(ws[t][j] * (xs[i][t] << ss[t][j]) for t in range(k)) for j in range(n)] for i in range(la.shape[0])]
    for i, row in enumerate(exact):
        for j, v in enumerate(row):
            if not -(2**63) <= v < 2**63:
                raise UnpredictableError(
                    "accumulator_overflow",
                    f"output ({i}, {j}) = {v} * 2**-{f.fraction_bits} leaves the int64 accumulator",
                )
    return np.array(exact, dtype=np.int64).reshape(la.shape[0], n)


def _check_alpha(alpha: object) -> np.float32:
    raw = np.asarray(alpha)
    if raw.ndim != 0 or raw.dtype.kind not in "fiu" or raw.dtype == np.bool_:
        raise SpecError("invalid_alpha", f"alpha must be a real scalar, got {alpha!r}")
    with np.errstate(over="ignore"):
        a = raw.astype(np.float32)
    if not (np.isfinite(a) and a > 0):
        raise SpecError("invalid_alpha", f"alpha must be a finite float32 > 0, got {alpha!r}")
    return np.float32(a)


def _apot_unit_levels(bits: int, k: int) -> list[Fraction]:
    """The unit levels ``u`` (exact, sorted): sums of one term of each ``p_i``."""
    n = bits // k
    terms = [[Fraction(0)] + [Fraction(1, 2 ** (i + j * n)) for j in range(2**k - 1)] for i in range(n)]
    return sorted(sum(choice, Fraction(0)) for choice in itertools.product(*terms))


def apot_levels(bits: int, k: int, alpha: float, /) -> F32Array:
    """The ``2**bits`` APoT levels with base bitwidth ``k`` and top level ``alpha`` (float32, ascending).

    Worked by hand, bits 4, k 2 (n 2): ``p_0`` in {0, 1, 1/4, 1/16}, ``p_1`` in {0, 1/2, 1/8, 1/32}, P = 3/2:

    >>> (apot_levels(4, 2, 1.5) * 32).tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 9.0, 12.0, 16.0, 18.0, 24.0, 32.0, 33.0, 36.0, 48.0]
    """
    for name, value in (("bits", bits), ("k", k)):
        if not _is_int(value) or not 1 <= value <= MAX_APOT_BITS:
            raise SpecError("invalid_format", f"{name} must be an int in 1..{MAX_APOT_BITS}, got {value!r}")
    if bits % k:
        raise SpecError("invalid_format", f"k = {k} must divide bits = {bits} (n = bits / k terms)")
    a = _check_alpha(alpha)
    n = int(bits) // int(k)
    total = sum((Fraction(1, 2**i) for i in range(n)), Fraction(0))
    alpha_q = Fraction(float(a))
    levels = np.array([round_fraction_to_float32(alpha_q * u / total) for u in _apot_unit_levels(int(bits), int(k))])
    same = np.diff(levels) <= 0
    if np.any(same):
        raise SpecError(
            "invalid_format",
            f"APoT levels of bits={bits}, k={k}, alpha={float(a)!r} coincide in float32 "
            f"(at {levels[:-1][same][0]!r}): the codes would not be distinct",
        )
    return np.asarray(levels, dtype=np.float32)


def apot_quantize(x: npt.ArrayLike, levels: npt.ArrayLike, /) -> npt.NDArray[np.uint8]:
    """The index of the nearest APoT level (uint8), ties to the lower level; beyond the ends, the end levels.

    >>> lv = apot_levels(4, 2, 1.5)  # index 10: 0.5625, 11: 0.75, 12: 1.0, 13: 1.03125
    >>> apot_quantize(np.array([0.65625, 0.65626, 1.015625, -3.0, 7.0], np.float32), lv).tolist()
    [10, 11, 12, 0, 15]
    """
    return codebook_encode(x, levels, tie=LevelTie.TO_LOWER)


def apot_dequantize(codes: npt.ArrayLike, levels: npt.ArrayLike, /) -> F32Array:
    """``levels[codes]`` as float32.

    >>> apot_dequantize(np.array([0, 12, 15], np.uint8), apot_levels(4, 2, 1.5)).tolist()
    [0.0, 1.0, 1.5]
    """
    return codebook_decode(codes, levels)
