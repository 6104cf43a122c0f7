"""Codebook (look-up-table) quantization: levels from the data, nearest-level codes, decode through the table.

Definition
----------
A codebook is a 1-D float32 table ``levels`` of ``L`` values (``1 <= L <= 256``), sorted non-decreasing.
A real value is coded as the index of its nearest level; a code is decoded by reading the table::

    code   = argmin_j |x - levels[j]|          ties named by ``LevelTie`` (default TO_LOWER)
    value  = levels[code]                      exact (a table read)

**Nearest level, exactly.**  The comparison is made on exact real numbers, never on rounded distances:
for ``levels[j] < x <= levels[j+1]`` the code is ``j + 1`` when ``x`` is above the exact midpoint
``(levels[j] + levels[j+1]) / 2``, ``j`` when below, and the tie rule decides when ``x`` equals it.
The midpoint is held as an unevaluated float64 pair ``mh + ml`` (Knuth's TwoSum of the two levels, halved:
both exact), so ``x > midpoint`` is ``x > mh or (x == mh and ml < 0)``.  ``x`` at or below ``levels[0]``
codes 0; above ``levels[-1]`` codes ``L - 1`` (``+-inf`` included).  Among equal levels the lowest index
is the code (equal levels arise when the data have fewer distinct values than ``L``).

``LevelTie``: ``TO_LOWER`` (the smaller level: numpy ``argmin`` of distances keeps the first index; PyTorch's
experimental APoT ``float_to_apot`` replaces its candidate only on a strictly smaller distance, scanning
ascending levels), ``TO_HIGHER`` (the larger level).

**Levels from data** (``codebook_quantiles``, ``codebook_kmeans``).  The data are converted to float32
(round half to even; NaN is ``nan_input``, a value infinite in float32 is ``non_finite_input``) and
flattened; ``L = 2**bits`` with ``bits`` in 1..8.

- ``codebook_quantiles``: the equal-probability levels.  With ``v`` the ``n`` sorted values (0-based),
  level ``j`` is the quantile at probability ``p_j = (2j + 1) / (2L)`` (the midpoint of the ``j``-th of
  ``L`` equal-probability bins) by the "linear" rule (numpy ``method="linear"``, Hyndman and Fan type 7):
  ``h = (n - 1) * p_j``, ``i = floor(h)``, ``g = h - i``, level ``= v[i] + g * (v[i+1] - v[i])``
  (``v[i]`` alone when ``g = 0``).  ``h``, ``g`` and the level are evaluated as exact rationals and the
  level is rounded once to float32 (round half to even).
- ``codebook_kmeans``: Lloyd's algorithm (1-D k-means, the MSE-optimal Lloyd-Max conditions), float64
  inside.  Initial centroids ``CodebookInit.LINEAR``: ``c_j = lo + ((hi - lo) * j) / (L - 1)``, each
  operation one float64 rounding, ``lo``/``hi`` the data's minimum and maximum (Deep Compression's linear
  initialisation); ``CodebookInit.QUANTILE``: the ``codebook_quantiles`` levels.  Each iteration: (1) sort
  the centroids ascending; (2) assign every value to its nearest centroid by the exact rule above, tie to
  the lower; (3) each non-empty cluster's centroid becomes ``math.fsum(members) / count`` (a correctly
  rounded sum, then one float64 division: independent of summation order); **an empty cluster keeps its
  centroid**.  Stop after ``iterations`` iterations, or earlier when no centroid moved by more than
  ``tol`` (``tol = 0``: stop at a fixed point, when no centroid changed at all).  The levels are the final
  centroids rounded to float32 (half to even) and sorted.  The result is a function of the data and the
  options only.

``codebook_format(levels)`` is the unsigned ``IntFormat`` of the code width ``max(1, ceil(log2 L))`` at
which ``refquant.spec.packing.pack`` stores the codes.

Errors
------
``SpecError``: ``"nan_input"``, ``"non_finite_input"``, ``"empty_input"``, ``"unsupported_dtype"``,
``"invalid_format"`` (bits not an int in 1..8), ``"invalid_option"`` (an option of the wrong type, a negative
or non-finite ``tol``, ``iterations`` not an int >= 1), ``"invalid_levels"`` (a table that is not 1-D float,
of 1..256 finite float32 values, sorted non-decreasing), ``"code_out_of_range"`` (decode of an index
outside the table).
"""

from __future__ import annotations

import math
from enum import Enum, unique
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from refquant.errors import SpecError
from refquant.spec._checks import first_index
from refquant.spec.formats import IntFormat

__all__ = [
    "CodebookInit",
    "LevelTie",
    "codebook_decode",
    "codebook_encode",
    "codebook_format",
    "codebook_kmeans",
    "codebook_quantiles",
]

MAX_LEVELS = 256
MAX_CODEBOOK_BITS = 8
F32Array = npt.NDArray[np.float32]


@unique
class LevelTie(Enum):
    """Which level a value exactly halfway between two levels is coded as."""

    TO_LOWER = "to_lower"
    TO_HIGHER = "to_higher"


@unique
class CodebookInit(Enum):
    """The initial centroids of ``codebook_kmeans``."""

    LINEAR = "linear"
    QUANTILE = "quantile"


def round_fraction_to_float32(value: Fraction, /) -> np.float32:
    """The float32 nearest to the exact rational ``value`` (round half to even; subnormals kept; overflow -> inf).

    >>> bool(round_fraction_to_float32(Fraction(1, 3)) == np.float32(1) / np.float32(3))
    True
    """
    if value == 0:
        return np.float32(0.0)
    sign = -1 if value < 0 else 1
    mag = abs(value)
    # e = floor(log2(mag)), found exactly from the bit lengths and corrected by one comparison.
    e = mag.numerator.bit_length() - mag.denominator.bit_length()
    if Fraction(2) ** e > mag:
        e -= 1
    quantum_exp = max(e, -126) - 23  # float32: 24 significant bits, subnormal quantum 2**-149
    scaled = mag / Fraction(2) ** quantum_exp
    m = round(scaled)  # Python rounds a Fraction half to even
    if m == 0:
        return np.float32(0.0 if sign > 0 else -0.0)
    if m * 2.0**quantum_exp > float(np.finfo(np.float32).max):
        return np.float32(sign * np.inf)
    return np.float32(sign * math.ldexp(m, quantum_exp))  # exact: m < 2**25 and the exponent in range


def _check_bits(bits: object) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= MAX_CODEBOOK_BITS:
        raise SpecError("invalid_format", f"bits must be an int in 1..{MAX_CODEBOOK_BITS}, got {bits!r}")
    return int(bits)


def _float_array(x: npt.ArrayLike, name: str) -> npt.NDArray[np.floating[Any]]:
    arr = np.asarray(x)
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (2, 4, 8):
        raise SpecError("unsupported_dtype", f"{name} must be a float16/float32/float64 array, got dtype {arr.dtype}")
    return arr


def _data(x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The data of a codebook fit: float32 values (as float64), flattened, sorted, all finite."""
    arr = _float_array(x, "x")
    nan = np.isnan(arr)
    if np.any(nan):
        raise SpecError("nan_input", f"x holds NaN at index {first_index(nan)}")
    with np.errstate(over="ignore"):
        f32 = arr.astype(np.float32)
    inf = np.isinf(f32)
    if np.any(inf):
        raise SpecError(
            "non_finite_input",
            f"x holds {arr[inf].flat[0]!r} at index {first_index(inf)}, infinite in float32: a codebook needs finite data",
        )
    if f32.size == 0:
        raise SpecError("empty_input", "x is empty: a codebook needs at least one value")
    return np.sort(f32.astype(np.float64).ravel())


def _levels(levels: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """A validated table as float64 (each value exactly a float32)."""
    arr = np.asarray(levels)
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (2, 4, 8) or arr.ndim != 1:
        raise SpecError("invalid_levels", f"levels must be a 1-D float array, got dtype {arr.dtype}, shape {arr.shape}")
    if not 1 <= arr.size <= MAX_LEVELS:
        raise SpecError("invalid_levels", f"levels must hold 1 to {MAX_LEVELS} values, got {arr.size}")
    wide = arr.astype(np.float64)
    if not np.all(np.isfinite(wide)):
        raise SpecError("invalid_levels", f"levels must be finite, got {arr.tolist()!r}")
    with np.errstate(over="ignore"):
        exact = wide.astype(np.float32).astype(np.float64) == wide
    if not np.all(exact):
        raise SpecError(
            "invalid_levels", f"level {arr[~exact][0]!r} is not exactly a float32 value (levels are float32 tables)"
        )
    if np.any(np.diff(wide) < 0):
        raise SpecError("invalid_levels", f"levels must be sorted non-decreasing, got {arr.tolist()!r}")
    return wide


def _nearest(x: npt.NDArray[np.float64], table: npt.NDArray[np.float64], to_higher: bool) -> npt.NDArray[np.intp]:
    """Index of the nearest entry of the sorted ``table`` for each ``x`` (exact midpoint rule; see the module)."""
    count = table.size
    if count == 1:
        return np.zeros(x.shape, dtype=np.intp)
    above = np.searchsorted(table, x, side="left")  # table[above - 1] < x <= table[above]
    hi = np.clip(above, 1, count - 1)
    lo = hi - 1
    a, b = table[lo], table[hi]
    s = a + b  # TwoSum: s + err == a + b exactly (no overflow for float32-range values)
    bb = s - a
    err = (a - (s - bb)) + (b - bb)
    mh, ml = s * 0.5, err * 0.5  # midpoint = mh + ml exactly
    above_mid = (x > mh) | ((x == mh) & (ml < 0))
    at_mid = (x == mh) & (ml == 0)
    choose_hi = above_mid | (at_mid & to_higher)
    idx = np.where(choose_hi, hi, lo)
    idx = np.where(above == 0, 0, np.where(above == count, count - 1, idx))
    return np.searchsorted(table, table[idx], side="left")  # the lowest index among equal levels


def codebook_format(levels: npt.ArrayLike, /) -> IntFormat:
    """The unsigned format of the codes of ``levels``: ``max(1, ceil(log2(len(levels))))`` bits.

    >>> codebook_format(np.zeros(5, np.float32)).name
    'uint3'
    """
    table = _levels(levels)
    return IntFormat(max(1, (table.size - 1).bit_length()), False)


def codebook_encode(
    x: npt.ArrayLike, levels: npt.ArrayLike, /, *, tie: LevelTie = LevelTie.TO_LOWER
) -> npt.NDArray[np.uint8]:
    """The index of the nearest level for each element of ``x`` (uint8, ``x``'s shape); ties by ``tie``.

    >>> lv = np.array([-1.0, 0.0, 2.0], np.float32)
    >>> codebook_encode(np.array([-0.5, 1.0, 1.5, 9.0], np.float32), lv).tolist()
    [0, 1, 2, 2]
    >>> codebook_encode(np.array([-0.5, 1.0], np.float32), lv, tie=LevelTie.TO_HIGHER).tolist()
    [1, 2]
    """
    if not isinstance(tie, LevelTie):
        raise SpecError("invalid_option", f"tie must be a LevelTie, got {tie!r}")
    table = _levels(levels)
    arr = _float_array(x, "x")
    nan = np.isnan(arr)
    if np.any(nan):
        raise SpecError("nan_input", f"x holds NaN at index {first_index(nan)}")
    idx = _nearest(arr.astype(np.float64), table, tie is LevelTie.TO_HIGHER)
    return np.asarray(idx.astype(np.uint8).reshape(arr.shape))


def codebook_decode(codes: npt.ArrayLike, levels: npt.ArrayLike, /) -> F32Array:
    """``levels[codes]`` as float32 (a table read: exact).

    >>> codebook_decode(np.array([2, 0], np.uint8), np.array([-1.0, 0.0, 2.0], np.float32)).tolist()
    [2.0, -1.0]
    """
    table = _levels(levels)
    qa = np.asarray(codes)
    if qa.dtype.kind not in "iu":
        raise SpecError("unsupported_dtype", f"codes must be an integer array, got dtype {qa.dtype}")
    if qa.dtype == np.uint64:
        out = qa >= np.uint64(table.size)
        wide = np.where(out, 0, qa).astype(np.int64)
    else:
        wide = qa.astype(np.int64)
        out = (wide < 0) | (wide >= table.size)
    if np.any(out):
        raise SpecError(
            "code_out_of_range",
            f"code {qa[out].flat[0]!r} at index {first_index(out)} is outside [0, {table.size - 1}] of the table",
        )
    return np.asarray(table.astype(np.float32)[wide], dtype=np.float32)


def _quantile_levels(v: npt.NDArray[np.float64], count: int) -> list[Fraction]:
    n = v.size
    out = []
    for j in range(count):
        i, rem = divmod((n - 1) * (2 * j + 1), 2 * count)  # h = (n - 1)(2j + 1) / (2L) = i + rem / (2L)
        level = Fraction(float(v[i]))
        if rem:
            level += Fraction(rem, 2 * count) * (Fraction(float(v[i + 1])) - level)
        out.append(level)
    return out


def codebook_quantiles(x: npt.ArrayLike, bits: int, /) -> F32Array:
    """The ``2**bits`` equal-probability levels of the data ``x`` (float32, sorted); see the module.

    Worked by hand: 0..7, two levels, ``h = 7/4`` and ``7 * 3/4 = 21/4``:

    >>> codebook_quantiles(np.arange(8, dtype=np.float32), 1).tolist()
    [1.75, 5.25]
    """
    b = _check_bits(bits)
    v = _data(x)
    levels = [round_fraction_to_float32(f) for f in _quantile_levels(v, 1 << b)]
    return np.array(levels, dtype=np.float32)


def codebook_kmeans(
    x: npt.ArrayLike,
    bits: int,
    /,
    *,
    init: CodebookInit = CodebookInit.LINEAR,
    iterations: int = 100,
    tol: float = 0.0,
) -> F32Array:
    """The ``2**bits`` Lloyd (1-D k-means) levels of the data ``x`` (float32, sorted); see the module.

    Worked by hand: centroids start at 0 and 10, the clusters {0, 1} and {9, 10} give 0.5 and 9.5, which
    assign the same clusters again (a fixed point):

    >>> codebook_kmeans(np.array([0.0, 1.0, 9.0, 10.0], np.float32), 1).tolist()
    [0.5, 9.5]
    """
    b = _check_bits(bits)
    if not isinstance(init, CodebookInit):
        raise SpecError("invalid_option", f"init must be a CodebookInit, got {init!r}")
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise SpecError("invalid_option", f"iterations must be an int >= 1, got {iterations!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating, np.integer)) or not 0 <= tol < math.inf:
        raise SpecError("invalid_option", f"tol must be a finite number >= 0, got {tol!r}")
    v = _data(x)
    count = 1 << b
    if init is CodebookInit.LINEAR:
        lo, hi = v[0], v[-1]
        centroids = lo + ((hi - lo) * np.arange(count, dtype=np.float64)) / np.float64(count - 1)
    else:
        centroids = np.array([float(round_fraction_to_float32(f)) for f in _quantile_levels(v, count)])
    for _ in range(int(iterations)):
        centroids = np.sort(centroids)
        assign = _nearest(v, centroids, False)
        # _nearest maps equal centroids to the lowest index: those duplicates are empty clusters and keep their value.
        bounds = np.searchsorted(assign, np.arange(count + 1), side="left")  # v is sorted, so clusters are runs
        updated = centroids.copy()
        for j in range(count):
            members = v[bounds[j] : bounds[j + 1]]
            if members.size:
                updated[j] = math.fsum(members.tolist()) / members.size
        moved = float(np.max(np.abs(updated - centroids)))
        centroids = updated
        if moved <= tol:
            break
    return np.sort(centroids.astype(np.float32))
