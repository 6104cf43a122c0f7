"""Calibration: observers that turn the values seen on calibration data into a range for ``choose_qparams``.

Every observer is an immutable (frozen) dataclass holding its configuration and its state.  Three methods:

``obs.observe(x)``
    a new observer with the values of ``x`` added (``x`` a float16/float32/float64 array of any shape).  Every
    value is first converted to float32 (exact for float16 and float32; float64 rounds half to even, as PyTorch
    observers convert their input to float32) and ``-0.0`` is recorded as ``+0.0``.  An empty ``x`` adds nothing.
``obs.merge(other)``
    the observer of both observations (same kind and configuration, else ``SpecError("observer_mismatch")``).
``obs.range()``
    ``(lo, hi)`` as Python floats, every one a float32 value, ready for
    ``choose_qparams_from_range(lo, hi, fmt, symmetric=...)``; methods over ``|x|`` return ``(-amax, amax)``.

Partition invariance: for every observer but ``MovingAverageMinMaxObserver`` the state after any sequence of
``observe`` and ``merge`` depends only on the multiset of the values observed (bit for bit), so calibration
can be split over batches, processes or a map-reduce engine.  The moving average is order dependent by
definition and cannot be merged (``SpecError("not_mergeable")``).

The histogram (``HistogramObserver``)
-------------------------------------
``bins`` bins of width ``w = 2**e`` over ``|x|`` anchored at 0, counted separately for ``x >= 0`` and
``x < 0`` (the signed histogram has ``2 * bins`` bins).  ``e`` is the smallest integer ``>= HISTOGRAM_MIN_EXPONENT = -148``
such that ``max|x| < bins * 2**e``; ``|x|`` falls in bin ``k = floor(|x| / 2**e)``, exactly, since the
division by a power of two is exact.  When new values need a larger ``e``, bins merge exactly
(``k -> k >> (e_new - e_old)``, counts add): ``floor(floor(a / 2**e) / 2**d) == floor(a / 2**(e + d))``,
so the counts equal those computed directly at the final ``e``, which depends only on ``max|x|``.
``HISTOGRAM_MIN_EXPONENT = -148`` keeps every bin edge and half edge a float32 (all-zero data lands in bin 0 at ``e = -148``).
The histogram also records the exact minimum and maximum.

Per channel: ``PerChannelMinMaxObserver(axis)`` keeps the exact min/max of each index along ``axis``; its
``range()`` returns two float32 arrays for ``granularity=PerAxis(axis)``.

Calibrators on the histogram (each documented at its class):
``PercentileObserver``, ``MseObserver`` (PyTorch ``HistogramObserver._non_linear_param_search``),
``EntropyObserver`` with ``EntropyVariant.TENSORRT`` / ``PYTORCH_QUANTIZATION`` / ``ONNXRUNTIME``.

Errors
------
``SpecError``: ``"nan_input"``, ``"range_not_finite"`` (an infinite value, or a float64 beyond float32's
range, or a derived bound that overflows float32), ``"unsupported_dtype"``, ``"no_data"`` (``range()`` of an
observer that has seen no value), ``"observer_mismatch"``, ``"not_mergeable"``, ``"invalid_option"``,
``"invalid_histogram"`` (``non_linear_param_search``), ``"shape_mismatch"`` and ``"axis_out_of_range"`` (per
channel).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from enum import Enum, unique
from fractions import Fraction
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from refquant.errors import SpecError
from refquant.spec._checks import first_index
from refquant.spec.granularity import normalize_axis

__all__ = [
    "HISTOGRAM_MIN_EXPONENT",
    "BinEdge",
    "EntropyObserver",
    "EntropyVariant",
    "HistogramObserver",
    "MinMaxObserver",
    "MovingAverageMinMaxObserver",
    "MseObserver",
    "PerChannelMinMaxObserver",
    "PercentileObserver",
    "non_linear_param_search",
]

HISTOGRAM_MIN_EXPONENT: Final = -148
"""The smallest bin-width exponent of ``HistogramObserver``: every edge ``k * 2**e`` and half edge is a float32."""

I64Array = npt.NDArray[np.int64]
F32Array = npt.NDArray[np.float32]


@unique
class BinEdge(Enum):
    """Which edge of the crossing bin ``PercentileObserver`` returns."""

    UPPER = "upper"
    LOWER = "lower"


@unique
class EntropyVariant(Enum):
    """The entropy (KL divergence) calibration algorithms that differ, each named after its source."""

    TENSORRT = "tensorrt"
    PYTORCH_QUANTIZATION = "pytorch_quantization"
    ONNXRUNTIME = "onnxruntime"


# --------------------------------------------------------------------------------------------------------------
# Input and option checks


def _as_float32(x: npt.ArrayLike, name: str = "x") -> F32Array:
    """``x`` as a flat float32 array with ``-0.0`` turned into ``+0.0``; NaN and infinities are errors."""
    arr = np.asarray(x)
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (2, 4, 8):
        raise SpecError("unsupported_dtype", f"{name} must be a float16/float32/float64 array, got dtype {arr.dtype}")
    nan = np.isnan(arr)
    if np.any(nan):
        raise SpecError("nan_input", f"{name} holds NaN at index {first_index(nan)}")
    with np.errstate(over="ignore"):
        out = arr.astype(np.float32).reshape(-1)
    bad = ~np.isfinite(out)
    if np.any(bad):
        i = int(np.argmax(bad))
        value = arr.reshape(-1)[i]
        raise SpecError(
            "range_not_finite",
            f"{name} element {first_index(bad.reshape(arr.shape))} is {value!r}, not a finite float32: observers "
            f"refuse infinities and values beyond float32's range (PyTorch's HistogramObserver drops infinities)",
        )
    return np.asarray(out + np.float32(0.0))  # -0.0 + 0.0 == +0.0 (round half to even)


def _positive_int(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise SpecError("invalid_option", f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _readonly(arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    arr.setflags(write=False)
    return arr


def _finite32(lo: float, hi: float, what: str) -> tuple[float, float]:
    """``(lo, hi)`` checked to be float32 values (a bin edge can reach ``bins * 2**e`` beyond float32's range)."""
    for v in (lo, hi):
        with np.errstate(over="ignore"):
            f = np.float32(v)
        if not np.isfinite(f) or float(f) != v:
            raise SpecError("range_not_finite", f"the {what} bound {v!r} is not a finite float32")
    return lo, hi


def _check_bounds(obj: Any) -> None:
    """A directly constructed min/max state: both bounds or neither, float32 values, ``min_val <= max_val``."""
    lo, hi = obj.min_val, obj.max_val
    if (lo is None) != (hi is None):
        raise SpecError("invalid_option", f"min_val and max_val must both be set or both be None, got {lo!r}, {hi!r}")
    if lo is None or hi is None:
        return
    for name, v in (("min_val", lo), ("max_val", hi)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise SpecError("invalid_option", f"{name} must be a real number, got {v!r}")
        with np.errstate(over="ignore"):
            f = np.float32(v)
        if not np.isfinite(f) or float(f) != float(v):
            raise SpecError("invalid_option", f"{name} must be a finite float32 value, got {v!r}")
    if lo > hi:
        raise SpecError("invalid_option", f"min_val {lo!r} > max_val {hi!r}")
    object.__setattr__(obj, "min_val", float(lo) + 0.0)
    object.__setattr__(obj, "max_val", float(hi) + 0.0)


def _check_same(a: object, b: object) -> None:
    if type(a) is not type(b):
        raise SpecError(
            "observer_mismatch", f"cannot merge a {type(a).__name__} with a {type(b).__name__}: same kind needed"
        )


# --------------------------------------------------------------------------------------------------------------
# Min / max


@dataclass(frozen=True)
class MinMaxObserver:
    """The exact minimum and maximum of every value observed (PyTorch ``MinMaxObserver``).

    >>> import numpy as np
    >>> obs = MinMaxObserver().observe(np.array([0.5, -2.0], np.float32)).observe(np.array([3.0], np.float32))
    >>> obs.range()
    (-2.0, 3.0)
    """

    min_val: float | None = None
    max_val: float | None = None

    def __post_init__(self) -> None:
        _check_bounds(self)

    def observe(self, x: npt.ArrayLike, /) -> MinMaxObserver:
        v = _as_float32(x)
        if v.size == 0:
            return self
        lo, hi = float(np.min(v)), float(np.max(v))
        if self.min_val is not None and self.max_val is not None:
            lo, hi = min(lo, self.min_val), max(hi, self.max_val)
        return MinMaxObserver(lo, hi)

    def merge(self, other: MinMaxObserver, /) -> MinMaxObserver:
        _check_same(self, other)
        if other.min_val is None or other.max_val is None:
            return self
        if self.min_val is None or self.max_val is None:
            return other
        return MinMaxObserver(min(self.min_val, other.min_val), max(self.max_val, other.max_val))

    def range(self) -> tuple[float, float]:
        if self.min_val is None or self.max_val is None:
            raise SpecError("no_data", "range() of a MinMaxObserver that has observed no value")
        return self.min_val, self.max_val


@dataclass(frozen=True)
class MovingAverageMinMaxObserver:
    """PyTorch's ``MovingAverageMinMaxObserver``: an exponential moving average of each batch's min and max.

    The first non-empty batch sets ``(min_val, max_val)``; each later batch ``X`` updates, every operation one
    float32 rounding (``c`` is ``averaging_constant`` rounded to float32)::

        min_val <- min_val + c * (min(X) - min_val)        max_val <- max_val + c * (max(X) - max_val)

    The result depends on how the data is split into batches and on their order, so ``merge`` raises
    ``SpecError("not_mergeable")``.

    >>> import numpy as np
    >>> obs = MovingAverageMinMaxObserver(averaging_constant=0.5)
    >>> obs = obs.observe(np.array([-1.0, 1.0], np.float32)).observe(np.array([-3.0, 2.0], np.float32))
    >>> obs.range()
    (-2.0, 1.5)
    """

    averaging_constant: float = 0.01
    min_val: float | None = None
    max_val: float | None = None

    def __post_init__(self) -> None:
        c = self.averaging_constant
        if isinstance(c, bool) or not isinstance(c, (int, float, np.integer, np.floating)) or not (0.0 < c <= 1.0):
            raise SpecError("invalid_option", f"averaging_constant must be a real number in (0, 1], got {c!r}")
        _check_bounds(self)

    def observe(self, x: npt.ArrayLike, /) -> MovingAverageMinMaxObserver:
        v = _as_float32(x)
        if v.size == 0:
            return self
        cur_lo, cur_hi = np.min(v), np.max(v)
        if self.min_val is None or self.max_val is None:
            return MovingAverageMinMaxObserver(self.averaging_constant, float(cur_lo), float(cur_hi))
        c = np.float32(self.averaging_constant)
        lo, hi = np.float32(self.min_val), np.float32(self.max_val)
        with np.errstate(over="ignore"):
            new_lo = np.float32(lo + np.float32(c * np.float32(cur_lo - lo)))
            new_hi = np.float32(hi + np.float32(c * np.float32(cur_hi - hi)))
        lo_f, hi_f = _finite32(float(new_lo), float(new_hi), "moving-average")
        return MovingAverageMinMaxObserver(self.averaging_constant, lo_f, hi_f)

    def merge(self, other: MovingAverageMinMaxObserver, /) -> MovingAverageMinMaxObserver:
        raise SpecError(
            "not_mergeable",
            "MovingAverageMinMaxObserver depends on the order and split of its batches and cannot be merged; "
            "use MinMaxObserver or a histogram observer for partitioned calibration",
        )

    def range(self) -> tuple[float, float]:
        if self.min_val is None or self.max_val is None:
            raise SpecError("no_data", "range() of a MovingAverageMinMaxObserver that has observed no value")
        return self.min_val, self.max_val


@dataclass(frozen=True, eq=False)
class PerChannelMinMaxObserver:
    """The exact minimum and maximum of each index along ``axis`` (PyTorch ``PerChannelMinMaxObserver``).

    ``range()`` returns two float32 arrays of shape ``(channels,)`` for
    ``choose_qparams_from_range(lo, hi, fmt, granularity=PerAxis(axis))``.  Every batch must have the same
    number of channels (``SpecError("shape_mismatch")``); the axis is normalised per batch, so a negative axis
    counts from each batch's last dimension.

    >>> import numpy as np
    >>> w = np.array([[1.0, -2.0, 0.5], [4.0, 3.0, -1.0]], np.float32)
    >>> lo, hi = PerChannelMinMaxObserver(axis=0).observe(w).range()
    >>> lo.tolist(), hi.tolist()
    ([-2.0, -1.0], [1.0, 4.0])
    """

    axis: int = 0
    min_vals: F32Array | None = field(default=None, repr=False)
    max_vals: F32Array | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.axis, bool) or not isinstance(self.axis, (int, np.integer)):
            raise SpecError("axis_out_of_range", f"axis must be an integer, got {self.axis!r}")
        if (self.min_vals is None) != (self.max_vals is None):
            raise SpecError("invalid_option", "min_vals and max_vals must both be set or both be None")
        if self.min_vals is not None and self.max_vals is not None:
            lo = np.asarray(self.min_vals)
            hi = np.asarray(self.max_vals)
            ok = lo.dtype == np.float32 and hi.dtype == np.float32 and lo.ndim == 1 and lo.shape == hi.shape
            if not ok or not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo <= hi)):
                raise SpecError("invalid_option", "min_vals and max_vals must be finite 1-D float32 arrays, min <= max")
            object.__setattr__(self, "min_vals", _readonly(lo + np.float32(0.0)))
            object.__setattr__(self, "max_vals", _readonly(hi + np.float32(0.0)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PerChannelMinMaxObserver):
            return NotImplemented
        return (
            self.axis == other.axis
            and _same_counts(self.min_vals, other.min_vals)
            and _same_counts(self.max_vals, other.max_vals)
        )

    __hash__ = None  # type: ignore[assignment]

    def observe(self, x: npt.ArrayLike, /) -> PerChannelMinMaxObserver:
        arr = np.asarray(x)
        flat = _as_float32(arr)
        if arr.ndim == 0:
            raise SpecError("axis_out_of_range", f"axis {self.axis} is out of range for a 0-d x")
        v = flat.reshape(arr.shape)
        ax = normalize_axis(int(self.axis), v.ndim)
        channels = int(v.shape[ax])
        if v.size == 0:  # adds nothing, whatever its shape
            return self
        if self.min_vals is not None and channels != self.min_vals.size:
            raise SpecError(
                "shape_mismatch", f"x has {channels} channels along axis {ax}, the observer {self.min_vals.size}"
            )
        moved = np.moveaxis(v, ax, 0).reshape(channels, -1)
        lo, hi = moved.min(axis=1), moved.max(axis=1)
        if self.min_vals is not None and self.max_vals is not None:
            lo, hi = np.minimum(lo, self.min_vals), np.maximum(hi, self.max_vals)
        return PerChannelMinMaxObserver(self.axis, lo, hi)

    def merge(self, other: PerChannelMinMaxObserver, /) -> PerChannelMinMaxObserver:
        _check_same(self, other)
        if other.axis != self.axis:
            raise SpecError("observer_mismatch", f"cannot merge axis {self.axis} with axis {other.axis}")
        if other.min_vals is None or other.max_vals is None:
            return self
        if self.min_vals is None or self.max_vals is None:
            return other
        if other.min_vals.size != self.min_vals.size:
            raise SpecError(
                "observer_mismatch", f"cannot merge {self.min_vals.size} channels with {other.min_vals.size}"
            )
        lo = np.minimum(self.min_vals, other.min_vals)
        hi = np.maximum(self.max_vals, other.max_vals)
        return PerChannelMinMaxObserver(self.axis, lo, hi)

    def range(self) -> tuple[F32Array, F32Array]:
        if self.min_vals is None or self.max_vals is None:
            raise SpecError("no_data", "range() of a PerChannelMinMaxObserver that has observed no value")
        return self.min_vals, self.max_vals


# --------------------------------------------------------------------------------------------------------------
# The histogram


def _exponent_for(amax: float, bins: int) -> int:
    """The smallest ``e >= HISTOGRAM_MIN_EXPONENT`` with ``amax < bins * 2**e``."""
    if amax == 0.0:
        return HISTOGRAM_MIN_EXPONENT
    e = max(HISTOGRAM_MIN_EXPONENT, math.frexp(amax)[1] - bins.bit_length() - 1)
    while amax >= bins * 2.0**e:
        e += 1
    return e


def _rebin(counts: I64Array, shift: int) -> I64Array:
    """Counts of bin ``k`` moved to bin ``k >> shift`` (exact integer additions)."""
    if shift == 0:
        return counts
    groups = np.arange(counts.size, dtype=np.int64) >> min(shift, 62)
    out = np.zeros(counts.size, dtype=np.int64)
    np.add.at(out, groups, counts)
    return out


def _counts_at(absx: F32Array, e: int, bins: int) -> I64Array:
    idx = np.floor(np.ldexp(absx.astype(np.float64), -e)).astype(np.int64)
    return np.bincount(idx, minlength=bins).astype(np.int64)


@dataclass(frozen=True, eq=False)
class HistogramObserver:
    """Partition-invariant histogram of ``|x|`` with power-of-two bin widths (see the module documentation).

    State: ``exponent`` (``e``, the bin width is ``2**e``), ``pos_counts`` (values ``x >= 0``; bin ``k`` holds
    ``k * w <= x < (k + 1) * w``), ``neg_counts`` (values ``x < 0``; bin ``k`` holds ``k * w <= -x < (k + 1) * w``),
    and the exact ``min_val`` / ``max_val``.  ``range()`` is ``(min_val, max_val)``.

    >>> import numpy as np
    >>> h = HistogramObserver(bins=4).observe(np.array([0.25, -1.5, 3.0], np.float32))
    >>> h.exponent, h.bin_width, h.counts().tolist()
    (0, 1.0, [1, 1, 0, 1])
    """

    bins: int = 2048
    exponent: int | None = None
    pos_counts: I64Array | None = field(default=None, repr=False)
    neg_counts: I64Array | None = field(default=None, repr=False)
    min_val: float | None = None
    max_val: float | None = None

    def __post_init__(self) -> None:
        bins = _positive_int(self.bins, "bins", 1)
        _check_bounds(self)
        state = (self.exponent, self.pos_counts, self.neg_counts, self.min_val)
        if all(v is None for v in state):
            return
        if any(v is None for v in state):
            raise SpecError("invalid_option", "a HistogramObserver state needs exponent, both counts and the bounds")
        e = self.exponent
        if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e < HISTOGRAM_MIN_EXPONENT:
            raise SpecError("invalid_option", f"exponent must be an integer >= {HISTOGRAM_MIN_EXPONENT}, got {e!r}")
        for name in ("pos_counts", "neg_counts"):
            arr = np.asarray(getattr(self, name))
            if arr.dtype.kind not in "iu" or arr.shape != (bins,) or np.any(arr < 0):
                raise SpecError("invalid_option", f"{name} must be {bins} non-negative integer counts, got {arr!r}")
            object.__setattr__(self, name, _readonly(arr.astype(np.int64)))
        object.__setattr__(self, "exponent", int(e))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HistogramObserver):
            return NotImplemented
        return (
            self.bins == other.bins
            and self.exponent == other.exponent
            and self.min_val == other.min_val
            and self.max_val == other.max_val
            and _same_counts(self.pos_counts, other.pos_counts)
            and _same_counts(self.neg_counts, other.neg_counts)
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def total(self) -> int:
        """The number of values observed."""
        if self.pos_counts is None or self.neg_counts is None:
            return 0
        return int(self.pos_counts.sum() + self.neg_counts.sum())

    @property
    def bin_width(self) -> float:
        """``2**exponent`` (``SpecError("no_data")`` before any value)."""
        return 2.0 ** self._state()[0]

    def _state(self) -> tuple[int, I64Array, I64Array, float, float]:
        if (
            self.exponent is None
            or self.pos_counts is None
            or self.neg_counts is None
            or self.min_val is None
            or self.max_val is None
        ):
            raise SpecError("no_data", "a HistogramObserver that has observed no value has no histogram")
        return self.exponent, self.pos_counts, self.neg_counts, self.min_val, self.max_val

    def counts(self) -> I64Array:
        """The histogram of ``|x|``: ``bins`` counts, bin ``k`` = ``[k * w, (k + 1) * w)``."""
        _, pos, neg, _, _ = self._state()
        return np.asarray(pos + neg)

    def edges(self) -> npt.NDArray[np.float64]:
        """The ``bins + 1`` edges ``k * w`` of ``counts()`` (float64; every edge below ``2**128`` is a float32)."""
        return np.arange(self.bins + 1, dtype=np.float64) * self.bin_width

    def signed_counts(self) -> tuple[I64Array, npt.NDArray[np.float64]]:
        """The signed histogram: ``2 * bins`` counts over edges ``(j - bins) * w``, ``j = 0 .. 2 * bins``.

        Bin ``bins + k`` holds ``x >= 0`` with ``floor(x / w) == k``; bin ``bins - 1 - k`` holds ``x < 0`` with
        ``floor(-x / w) == k``, i.e. ``-(k + 1) * w < x <= -k * w`` (closed at its upper edge).
        """
        _, pos, neg, _, _ = self._state()
        edges = (np.arange(2 * self.bins + 1, dtype=np.float64) - self.bins) * self.bin_width
        return np.concatenate([neg[::-1], pos]), edges

    def observe(self, x: npt.ArrayLike, /) -> HistogramObserver:
        v = _as_float32(x)
        if v.size == 0:
            return self
        a = np.abs(v)
        lo, hi, amax = float(np.min(v)), float(np.max(v)), float(np.max(a))
        e = _exponent_for(amax, self.bins)
        if self.exponent is not None:
            e0, p0, n0, lo0, hi0 = self._state()
            e = max(e, e0)
            pos0, neg0 = _rebin(p0, e - e0), _rebin(n0, e - e0)
            lo, hi = min(lo, lo0), max(hi, hi0)
        else:
            pos0 = neg0 = np.zeros(self.bins, dtype=np.int64)
        negative = v < 0
        pos = pos0 + _counts_at(a[~negative], e, self.bins)
        neg = neg0 + _counts_at(a[negative], e, self.bins)
        return HistogramObserver(self.bins, e, _readonly(pos), _readonly(neg), lo, hi)

    def merge(self, other: HistogramObserver, /) -> HistogramObserver:
        _check_same(self, other)
        if other.bins != self.bins:
            raise SpecError("observer_mismatch", f"cannot merge histograms of {self.bins} and {other.bins} bins")
        if other.exponent is None:
            return self
        if self.exponent is None:
            return other
        e1, p1, n1, lo1, hi1 = self._state()
        e2, p2, n2, lo2, hi2 = other._state()
        e = max(e1, e2)
        pos = _rebin(p1, e - e1) + _rebin(p2, e - e2)
        neg = _rebin(n1, e - e1) + _rebin(n2, e - e2)
        return HistogramObserver(self.bins, e, _readonly(pos), _readonly(neg), min(lo1, lo2), max(hi1, hi2))

    def range(self) -> tuple[float, float]:
        _, _, _, lo, hi = self._state()
        return lo, hi

    @property
    def amax(self) -> float:
        """``max(|min_val|, |max_val|)``."""
        _, _, _, lo, hi = self._state()
        return max(-lo, hi)

    def percentile_range(self, percentile: float = 99.99, *, edge: BinEdge = BinEdge.UPPER) -> tuple[float, float]:
        """``PercentileObserver(percentile, bins, edge, histogram=self).range()``."""
        return PercentileObserver(percentile, self.bins, edge, self).range()

    def mse_range(self, *, dst_bins: int = 256) -> tuple[float, float]:
        """``MseObserver(bins, dst_bins, histogram=self).range()``."""
        return MseObserver(self.bins, dst_bins, self).range()

    def entropy_range(
        self, variant: EntropyVariant = EntropyVariant.TENSORRT, *, levels: int = 128, quantized_bins: int = 128
    ) -> tuple[float, float]:
        """``EntropyObserver(variant, bins, levels, quantized_bins, histogram=self).range()``."""
        return EntropyObserver(variant, self.bins, levels, quantized_bins, self).range()


def _same_counts(a: npt.NDArray[Any] | None, b: npt.NDArray[Any] | None) -> bool:
    """Bit-for-bit equality of two state arrays (dtype, shape and bytes)."""
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _histogram_for(obj: Any, bins: int) -> HistogramObserver:
    hist = obj.histogram
    if hist is None:
        return HistogramObserver(bins)
    if not isinstance(hist, HistogramObserver) or hist.bins != bins:
        raise SpecError("invalid_option", f"histogram must be a HistogramObserver of {bins} bins, got {hist!r}")
    return hist


# --------------------------------------------------------------------------------------------------------------
# Percentile


def _percentile_index(counts: I64Array, percentile: float) -> int:
    """The smallest ``i`` with ``sum(counts[: i + 1]) >= percentile / 100 * total``, exactly (rational)."""
    total = int(counts.sum())
    num, den = Fraction(percentile).as_integer_ratio()
    need = -((-num * total) // (100 * den))  # ceil(p / 100 * total), an integer; cumsum is integral
    cum = np.cumsum(counts)
    return int(np.searchsorted(cum, need, side="left"))


@dataclass(frozen=True, eq=False)
class PercentileObserver:
    """Symmetric percentile of ``|x|`` on the histogram: ``range() = (-amax, amax)``.

    With ``N`` values and ``c_i`` the cumulative count of bins ``0..i``, the crossing bin ``i`` is the smallest
    with ``c_i >= percentile / 100 * N``, compared exactly (rational arithmetic, no float cdf).
    ``edge=UPPER`` (default): ``amax = min((i + 1) * w, max|x|)``: at least ``percentile`` % of the values lie
    in ``[-amax, amax]``.  ``edge=LOWER``: ``amax = min(i * w, max|x|)``, the left edge of the crossing bin as
    pytorch-quantization ``_compute_amax_percentile`` and onnxruntime ``compute_percentile`` (symmetric) return
    it (they compare a float64 cdf, which can pick a neighbouring bin when ``p / 100 * N`` is within rounding
    of a cumulative count).

    >>> import numpy as np
    >>> x = np.arange(1, 101, dtype=np.float32)  # 1, 2, ..., 100
    >>> PercentileObserver(percentile=90.0, bins=128).observe(x).range()
    (-91.0, 91.0)
    >>> PercentileObserver(percentile=90.0, bins=128, edge=BinEdge.LOWER).observe(x).range()
    (-90.0, 90.0)
    """

    percentile: float = 99.99
    bins: int = 2048
    edge: BinEdge = BinEdge.UPPER
    histogram: HistogramObserver | None = None

    def __post_init__(self) -> None:
        p = self.percentile
        if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) or not (0.0 < p <= 100.0):
            raise SpecError("invalid_option", f"percentile must be a real number in (0, 100], got {p!r}")
        if not isinstance(self.edge, BinEdge):
            raise SpecError("invalid_option", f"edge must be a BinEdge, got {self.edge!r}")
        object.__setattr__(self, "histogram", _histogram_for(self, _positive_int(self.bins, "bins")))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PercentileObserver):
            return NotImplemented
        return (self.percentile, self.bins, self.edge) == (other.percentile, other.bins, other.edge) and (
            self.histogram == other.histogram
        )

    __hash__ = None  # type: ignore[assignment]

    def _with(self, hist: HistogramObserver) -> PercentileObserver:
        return PercentileObserver(self.percentile, self.bins, self.edge, hist)

    def observe(self, x: npt.ArrayLike, /) -> PercentileObserver:
        return self._with(_histogram_for(self, self.bins).observe(x))

    def merge(self, other: PercentileObserver, /) -> PercentileObserver:
        _check_same(self, other)
        if (self.percentile, self.bins, self.edge) != (other.percentile, other.bins, other.edge):
            raise SpecError("observer_mismatch", f"cannot merge {self!r} with {other!r}: configurations differ")
        return self._with(_histogram_for(self, self.bins).merge(_histogram_for(other, other.bins)))

    def range(self) -> tuple[float, float]:
        hist = _histogram_for(self, self.bins)
        counts = hist.counts()
        i = _percentile_index(counts, float(self.percentile))
        k = i + 1 if self.edge is BinEdge.UPPER else i
        amax = min(k * hist.bin_width, hist.amax)
        return _finite32(-amax, amax, "percentile")


# --------------------------------------------------------------------------------------------------------------
# MSE: PyTorch HistogramObserver._non_linear_param_search


def _l2_error(counts: npt.NDArray[np.float64], w: float, start: int, end: int, dst_bins: int) -> float:
    """PyTorch ``_compute_quantization_error`` in float64, the per-bin terms summed exactly (``math.fsum``)."""
    dst_w = w * (end - start + 1) / dst_bins
    if dst_w == 0.0:
        return 0.0
    n = counts.size
    src_begin = (np.arange(n, dtype=np.float64) - start) * w
    src_end = src_begin + w
    top = float(dst_bins - 1)
    db = np.clip(np.floor_divide(src_begin, dst_w), 0.0, top)
    de = np.clip(np.floor_divide(src_end, dst_w), 0.0, top)
    density = counts / w
    half = dst_w / 2
    begin = src_begin - (db + 0.5) * dst_w
    finish = src_end - (de * dst_w + half)
    terms = (
        density * ((half * half * half - begin * begin * begin) / 3)
        + (de - db - 1) * (density * ((half * half * half - (-half) * (-half) * (-half)) / 3))
        + density * ((finish * finish * finish - (-half) * (-half) * (-half)) / 3)
    )
    return math.fsum(terms.tolist())


def non_linear_param_search(
    counts: npt.ArrayLike, lo_edge: float, bin_width: float, /, *, dst_bins: int = 256
) -> tuple[float, float]:
    """PyTorch ``HistogramObserver._non_linear_param_search`` (from caffe2 ``NormMinimization``) on a histogram.

    ``counts`` are ``n`` bins of width ``bin_width`` starting at ``lo_edge``.  ``alpha`` (lower quantile) and
    ``beta`` (upper) start at 0 and 1 and step by ``1e-5`` (float64 additions, as in PyTorch).  Each step
    finds ``l`` (the first bin from ``start`` whose cumulative count is not below ``(alpha + 1e-5) * N``) and
    ``r`` (the last bin down to ``end`` whose cumulative count is not above ``(beta - 1e-5) * N``), both
    thresholds rounded to float32 as PyTorch compares them with its float32 cumulative sum; it moves the side
    that moved further (the end bin on a tie), computes the L2 error of quantizing into ``dst_bins`` bins over
    ``[start, end]`` (uniform density per source bin; float64 terms, summed exactly), and stops at the first
    error strictly greater than the best so far.  Returns ``(lo_edge + w * start, lo_edge + w * (end + 1))``.
    """
    c = np.asarray(counts)
    if c.ndim != 1 or c.size == 0 or c.dtype.kind not in "iu" or np.any(c < 0):
        raise SpecError(
            "invalid_histogram", f"counts must be a non-empty 1-D array of non-negative integers, got {c!r}"
        )
    c = c.astype(np.int64)
    lo_f, w_f = float(lo_edge), float(bin_width)
    if not (math.isfinite(lo_f) and math.isfinite(w_f) and w_f > 0.0):
        raise SpecError(
            "invalid_histogram", f"lo_edge {lo_edge!r} and bin_width {bin_width!r} must be finite, width > 0"
        )
    dst = _positive_int(dst_bins, "dst_bins")
    n = c.size
    cum = np.cumsum(c).tolist()
    total = cum[-1] if n else 0
    cf = c.astype(np.float64)
    alpha, beta = 0.0, 1.0
    start, end = 0, n - 1
    norm_min = math.inf
    while alpha < beta:
        next_alpha = alpha + 1e-5
        next_beta = beta - 1e-5
        t_lo = float(np.float32(next_alpha * total))
        t_hi = float(np.float32(next_beta * total))
        l_bin = min(end, max(start, bisect.bisect_left(cum, t_lo)))
        r_bin = max(start, min(end, bisect.bisect_right(cum, t_hi) - 1))
        next_start, next_end = start, end
        if (l_bin - start) > (end - r_bin):
            next_start = l_bin
            alpha = next_alpha
        else:
            next_end = r_bin
            beta = next_beta
        if next_start == start and next_end == end:
            continue
        norm = _l2_error(cf, w_f, next_start, next_end, dst)
        if norm > norm_min:
            break
        norm_min = norm
        start, end = next_start, next_end
    return lo_f + w_f * start, lo_f + w_f * (end + 1)


@dataclass(frozen=True, eq=False)
class MseObserver:
    """L2-error range search of PyTorch's ``HistogramObserver`` on the refquant histogram.

    The search (``non_linear_param_search``) runs on the signed histogram trimmed to its non-empty bins (the
    first to the last bin holding a value); the result is clipped to the observed ``[min_val, max_val]``.
    ``dst_bins`` is PyTorch's ``dst_nbins``, ``2**bits`` of the target (256 for 8 bits, also under
    ``reduce_range``).  PyTorch's own histogram is not this one: it spans ``[min, max]`` with ``bins`` equal
    bins and merges batches by upsampling, which depends on batch order (docs/spec/calibration.md).

    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal(100000).astype(np.float32)
    >>> float(x.min()), float(x.max())
    (-4.494117259979248, 4.731957912445068)
    >>> MseObserver().observe(x).range()
    (-4.494117259979248, 4.08203125)
    """

    bins: int = 2048
    dst_bins: int = 256
    histogram: HistogramObserver | None = None

    def __post_init__(self) -> None:
        _positive_int(self.dst_bins, "dst_bins")
        object.__setattr__(self, "histogram", _histogram_for(self, _positive_int(self.bins, "bins")))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MseObserver):
            return NotImplemented
        return (self.bins, self.dst_bins) == (other.bins, other.dst_bins) and self.histogram == other.histogram

    __hash__ = None  # type: ignore[assignment]

    def _with(self, hist: HistogramObserver) -> MseObserver:
        return MseObserver(self.bins, self.dst_bins, hist)

    def observe(self, x: npt.ArrayLike, /) -> MseObserver:
        return self._with(_histogram_for(self, self.bins).observe(x))

    def merge(self, other: MseObserver, /) -> MseObserver:
        _check_same(self, other)
        if (self.bins, self.dst_bins) != (other.bins, other.dst_bins):
            raise SpecError("observer_mismatch", f"cannot merge {self!r} with {other!r}: configurations differ")
        return self._with(_histogram_for(self, self.bins).merge(_histogram_for(other, other.bins)))

    def trimmed_histogram(self) -> tuple[I64Array, float, float]:
        """``(counts, lo_edge, bin_width)``: the signed histogram from its first to its last non-empty bin."""
        hist = _histogram_for(self, self.bins)
        counts, edges = hist.signed_counts()
        nz = np.flatnonzero(counts)
        a, b = int(nz[0]), int(nz[-1])
        return np.asarray(counts[a : b + 1]), float(edges[a]), hist.bin_width

    def range(self) -> tuple[float, float]:
        hist = _histogram_for(self, self.bins)
        lo_val, hi_val = hist.range()
        counts, lo_edge, w = self.trimmed_histogram()
        lo, hi = non_linear_param_search(counts, lo_edge, w, dst_bins=self.dst_bins)
        return _finite32(max(lo, lo_val), min(hi, hi_val), "MSE")


# --------------------------------------------------------------------------------------------------------------
# Entropy (KL divergence)


def _kl_float64(p: npt.NDArray[np.float64], q: npt.NDArray[np.float64]) -> float:
    """``KL(P || Q)`` of the normalised ``p`` and ``q``: float64 terms, summed exactly; ``inf`` where Q is 0 < P."""
    pn = p / math.fsum(p.tolist())
    qn = q / math.fsum(q.tolist())
    if np.any((pn > 0) & (qn <= 0)):
        return math.inf
    m = pn > 0
    return math.fsum((pn[m] * np.log(pn[m] / qn[m])).tolist())


def _expand_nonzero(src: npt.NDArray[np.float64], levels: int) -> npt.NDArray[np.float64]:
    """Q of the TensorRT / pytorch-quantization algorithm over the ``i = src.size`` source bins.

    Source bin ``j`` belongs to level ``(levels * j) // i`` (``np.digitize(j, np.linspace(0, i, levels + 1)) - 1``
    in pytorch-quantization, exact because ``i / levels`` is dyadic for a power-of-two ``levels``); each level's
    total is spread equally over its non-empty source bins; empty source bins stay 0.
    """
    i = src.size
    group = (levels * np.arange(i, dtype=np.int64)) // i
    nonzero = src != 0
    sums = np.bincount(group[nonzero], weights=src[nonzero], minlength=levels)
    cnt = np.bincount(group[nonzero], minlength=levels)
    q = np.zeros(i, dtype=np.float64)
    q[nonzero] = sums[group[nonzero]] / cnt[group[nonzero]]
    return q


def _entropy_nvidia(counts: I64Array, levels: int, variant: EntropyVariant) -> int:
    """The chosen ``i`` (number of bins kept) of the TensorRT / pytorch-quantization algorithms."""
    bins = counts.astype(np.float64)
    if variant is EntropyVariant.PYTORCH_QUANTIZATION:
        bins = bins.copy()
        bins[0] = bins[1]  # pytorch-quantization's quirk: the zero bin takes bin 1's count
        candidates = range(levels, counts.size + 1)
    else:
        candidates = range(levels, counts.size)
    tail = np.concatenate([np.cumsum(bins[::-1])[::-1], [0.0]])  # tail[i] = sum(bins[i:])
    divergences: list[float] = []
    for i in candidates:
        p = bins[:i].copy()
        p[-1] += tail[i]
        q = _expand_nonzero(bins[:i], levels)
        divergences.append(_kl_float64(p, q) if p.sum() > 0 and q.sum() > 0 else math.inf)
    d = np.asarray(divergences)
    last = variant is EntropyVariant.PYTORCH_QUANTIZATION  # last argmin there, first argmin in TENSORRT
    pick = len(d) - 1 - int(np.argmin(d[::-1])) if last else int(np.argmin(d))
    return candidates[pick]


def _smooth32(p: npt.NDArray[Any], eps: float = 1e-4) -> F32Array | None:
    """onnxruntime ``smooth_distribution`` (quant_utils.py), float32 as there."""
    is_zeros = (p == 0).astype(np.float32)
    is_nonzeros = (p != 0).astype(np.float32)
    n_zeros = is_zeros.sum()
    n_nonzeros = p.size - n_zeros
    if not n_nonzeros:
        return None
    eps1 = eps * float(n_zeros) / float(n_nonzeros)
    hist = p.astype(np.float32)
    hist += np.float32(eps) * is_zeros + np.float32(-eps1) * is_nonzeros
    return hist


def _kl_float32(p: F32Array, q: F32Array) -> np.float32:
    """onnxruntime ``calibrate.entropy``: float32 normalisation, float32 ``p * log(p / q)``, ``np.sum``."""
    pk = np.float32(1.0) * p / np.sum(p)
    qk = np.float32(1.0) * q / np.sum(q)
    with np.errstate(divide="ignore", invalid="ignore"):
        vec = pk * np.log(pk / qk)
    vec[~((pk > 0) & (qk > 0))] = np.inf
    return np.float32(np.sum(vec))


def _entropy_ort(hist: I64Array, quantized_bins: int) -> tuple[int, int]:
    """onnxruntime ``HistogramCollector.get_entropy_threshold``: ``(start, end)`` edge indices of the minimum."""
    num_bins = hist.size
    zero = num_bins // 2
    half = quantized_bins // 2
    best = math.inf
    best_pair = (zero - half, min(zero + half + 1, num_bins))
    first = True
    cum = np.concatenate([[0], np.cumsum(hist)])
    for i in range(half, zero + 1):
        start, end = zero - i, min(zero + i + 1, num_bins)
        sliced = hist[start:end]
        p = sliced.copy()
        p[0] += cum[start]
        p[-1] += cum[-1] - cum[end]
        nonzeros = (p != 0).astype(np.int64)
        merged = sliced.size // quantized_bins
        body = quantized_bins * merged
        qbins = (
            sliced[:body].reshape(quantized_bins, merged).sum(axis=1) if merged else np.zeros(quantized_bins, np.int64)
        )
        qbins[-1] += sliced[body:].sum()
        norm = (
            nonzeros[:body].reshape(quantized_bins, merged).sum(axis=1)
            if merged
            else np.zeros(quantized_bins, np.int64)
        )
        q = np.zeros(p.size, dtype=np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            per = np.where(norm != 0, qbins / np.where(norm != 0, norm, 1), 0.0)
        q[:body] = np.repeat(per.astype(np.int64), merged)
        ps, qs = _smooth32(p), _smooth32(q)
        div = math.inf if ps is None or qs is None else float(_kl_float32(ps, qs))
        if first or div < best:
            best, best_pair, first = div, (start, end), False
    return best_pair


@dataclass(frozen=True, eq=False)
class EntropyObserver:
    """Entropy (KL divergence) calibration on the refquant histogram; ``variant`` names the algorithm.

    ``TENSORRT`` (GTC 2017 s7310 pseudocode): on the ``bins`` counts of ``|x|``, for each ``i`` in
    ``[levels, bins)``: ``P`` = the first ``i`` counts with the count of every later bin added to ``P[i-1]``;
    ``Q`` = the first ``i`` counts merged into ``levels`` groups (bin ``j`` in group ``(levels * j) // i``) and
    spread back equally over each group's non-empty bins; ``KL(P || Q)`` of the normalised distributions
    (float64 terms ``p * log(p / q)`` over ``p > 0``, summed exactly; ``inf`` where ``q = 0 < p``); first argmin;
    ``amax = (i + 0.5) * w``.  ``PYTORCH_QUANTIZATION`` (``_compute_amax_entropy``): the same with the zero bin's
    count replaced by bin 1's, ``i`` in ``[levels, bins]``, the last argmin, and ``amax = i * w`` (the bin edge).
    Both return ``(-amax, amax)``.  ``ONNXRUNTIME`` (``get_entropy_threshold``): on the signed histogram of
    ``2 * bins`` bins with ``quantized_bins`` levels, float32 arithmetic and smoothing as there, first argmin,
    the range ``(edges[start], edges[end])`` clipped to ``[min_val, max_val]`` (``levels`` is not used).

    >>> import numpy as np
    >>> x = np.linspace(-1, 1, 101).astype(np.float32)
    >>> EntropyObserver(variant=EntropyVariant.ONNXRUNTIME, bins=64, quantized_bins=128).observe(x).range()
    (-1.0, 1.0)
    """

    variant: EntropyVariant = EntropyVariant.TENSORRT
    bins: int = 2048
    levels: int = 128
    quantized_bins: int = 128
    histogram: HistogramObserver | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.variant, EntropyVariant):
            raise SpecError("invalid_option", f"variant must be an EntropyVariant, got {self.variant!r}")
        bins = _positive_int(self.bins, "bins")
        levels = _positive_int(self.levels, "levels")
        qbins = _positive_int(self.quantized_bins, "quantized_bins", 2)
        if self.variant is EntropyVariant.ONNXRUNTIME:
            if qbins > 2 * bins or bins > 4096:
                raise SpecError(
                    "invalid_option",
                    f"the ONNXRUNTIME variant needs quantized_bins <= 2 * bins and bins <= 4096, got quantized_bins={qbins}, "
                    f"bins={bins}",
                )
        elif (
            levels & (levels - 1)
            or levels > bins
            or bins < 2
            or (self.variant is EntropyVariant.TENSORRT and levels == bins)
        ):
            raise SpecError(
                "invalid_option",
                f"levels must be a power of two below bins (at most bins for PYTORCH_QUANTIZATION), got levels={levels}, "
                f"bins={bins}",
            )
        object.__setattr__(self, "histogram", _histogram_for(self, bins))

    def _config(self) -> tuple[EntropyVariant, int, int, int]:
        return self.variant, self.bins, self.levels, self.quantized_bins

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EntropyObserver):
            return NotImplemented
        return self._config() == other._config() and self.histogram == other.histogram

    __hash__ = None  # type: ignore[assignment]

    def _with(self, hist: HistogramObserver) -> EntropyObserver:
        return EntropyObserver(self.variant, self.bins, self.levels, self.quantized_bins, hist)

    def observe(self, x: npt.ArrayLike, /) -> EntropyObserver:
        return self._with(_histogram_for(self, self.bins).observe(x))

    def merge(self, other: EntropyObserver, /) -> EntropyObserver:
        _check_same(self, other)
        if self._config() != other._config():
            raise SpecError("observer_mismatch", f"cannot merge {self!r} with {other!r}: configurations differ")
        return self._with(_histogram_for(self, self.bins).merge(_histogram_for(other, other.bins)))

    def range(self) -> tuple[float, float]:
        hist = _histogram_for(self, self.bins)
        w = hist.bin_width
        if self.variant is EntropyVariant.ONNXRUNTIME:
            counts, edges = hist.signed_counts()
            start, end = _entropy_ort(counts, self.quantized_bins)
            lo_val, hi_val = hist.range()
            return _finite32(max(float(edges[start]), lo_val), min(float(edges[end]), hi_val), "entropy")
        i = _entropy_nvidia(hist.counts(), self.levels, self.variant)
        amax = (i + 0.5) * w if self.variant is EntropyVariant.TENSORRT else i * w
        return _finite32(-amax, amax, "entropy")
