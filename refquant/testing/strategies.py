"""Hypothesis strategies for property-testing quantizers against refquant: the inputs where implementations differ.

Conventions are Hypothesis's own: every bound is keyword-only, flags are ``allow_nan`` / ``allow_infinity`` /
``allow_subnormal``, and an invalid argument raises ``hypothesis.errors.InvalidArgument`` naming it, when the
strategy is built.  Arrays come out as numpy arrays (float32 for real values, the format's storage dtype or
int8/int32 for integers).

- ``int_formats``: ``IntFormat`` values (edges of the width range, both signednesses, narrow range).
- ``scales``: positive float32 scales, mixing powers of two and short significands (on which exact ties
  exist at many integers) with arbitrary float32 values.
- ``distinct_shapes``: tensor shapes whose dimensions are pairwise distinct, so a parameter vector applied
  along the wrong axis cannot broadcast silently.
- ``granularities`` and ``quant_params``: valid ``QuantParams`` for a shape, per tensor, per axis or per block
  (ragged last blocks included), zero points dense at both ends of the format.
- ``tie_values``: float32 tensors whose every element is exactly on a rounding tie ``x / s = k + 1/2`` of its
  own scale, or ``ulps`` float32 ulps from one.
- ``saturation_edge_values``: elements whose ``x / s + z`` sits at, half a step beyond and past the ends of the
  format (and +-inf when allowed).
- ``quantize_inputs``: a mix of all of the above with signed zeros, subnormals and (when allowed) NaN.
- ``codes``: integer codes of a format, dense at its ends and at the zero point.
- ``multipliers`` and ``fixed_point_multipliers``: real requantization multipliers dense near 1 and near 0,
  at powers of two and at the ties of TFLite's ``quantize_multiplier``; and their fixed-point form.
- ``accumulators``: int32 accumulators dense at INT32_MIN, INT32_MAX and powers of two.
- ``accumulation_edge_matmuls``: int8 matrices ``lhs``, ``rhs`` whose product's element ``[0, 0]``
  accumulates to within ``max_distance`` of the int32 bound (beyond it too, when ``allow_overflow``).
- ``value_ranges``: ``(min_val, max_val)`` for qparams choosers: degenerate, one-sided, subnormal, and ranges
  whose zero point is exactly a tie.
- ``packable_codes`` and ``packed_bytes``: codes for ``pack`` (partial last bytes, sign bits to mask) and
  bytes with a count for ``unpack``.
- ``log_edge_values``: powers of two, the log-domain threshold ``sqrt(2) * 2**k`` and the linear tie
  ``1.5 * 2**k``, one ulp either side, for a ``LogFormat``.
- ``sign_edge_values``: signed zeros, subnormals and infinities for ``binarize``; ``packed_sign_matrices``:
  packed +-1 rows with ``k`` not a multiple of 64 and set padding bits for ``xnor_matmul``.
- ``ternary_weights``: weights with elements exactly on the TWN / TTQ / BitNet threshold (``TernaryMethod``,
  ``plant_threshold_ties``, ``ternary_threshold``).
"""

from __future__ import annotations

import functools
import math
from enum import Enum, unique
from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from refquant.spec.affine import QuantParams
from refquant.spec.fixed_point import FixedPointMultiplier, quantize_multiplier
from refquant.spec.formats import IntFormat
from refquant.spec.granularity import Granularity, PerAxis, PerBlock, PerTensor, param_shape
from refquant.spec.log import LogFormat
from refquant.spec.ternary import bitnet_ternarize, ttq_ternarize, twn_ternarize

__all__ = [
    "TernaryMethod",
    "accumulation_edge_matmuls",
    "accumulators",
    "clear_padding",
    "codes",
    "distinct_shapes",
    "fixed_point_multipliers",
    "granularities",
    "int_formats",
    "log_edge_values",
    "multipliers",
    "packable_codes",
    "packed_bytes",
    "packed_sign_matrices",
    "plant_threshold_ties",
    "quant_params",
    "quantize_inputs",
    "saturation_edge_values",
    "scales",
    "sign_edge_values",
    "ternary_threshold",
    "ternary_weights",
    "tie_point",
    "tie_values",
    "value_ranges",
]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
F32 = np.float32
F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)


# --- argument checks ------------------------------------------------------------------------------------------


def _int_arg(value: object, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidArgument(f"{name}={value!r} must be an int")
    if not lo <= int(value) <= hi:
        raise InvalidArgument(f"{name}={value!r} must lie in [{lo}, {hi}]")
    return int(value)


def _bool_arg(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgument(f"{name}={value!r} must be a bool")
    return value


def _float_arg(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidArgument(f"{name}={value!r} must be a real number")
    v = float(value)
    if not math.isfinite(v):
        raise InvalidArgument(f"{name}={value!r} must be finite")
    return v


def _order(lo: float, hi: float, lo_name: str, hi_name: str) -> None:
    if lo > hi:
        raise InvalidArgument(f"{lo_name}={lo!r} must not exceed {hi_name}={hi!r}")


def _params_arg(params: object) -> QuantParams:
    if not isinstance(params, QuantParams):
        raise InvalidArgument(f"params={params!r} must be a refquant QuantParams")
    return params


def _shape_arg(shape: object) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or not all(
        not isinstance(d, bool) and isinstance(d, (int, np.integer)) and d >= 0 for d in shape
    ):
        raise InvalidArgument(f"shape={shape!r} must be a tuple of ints >= 0")
    return tuple(int(d) for d in shape)


# --- formats, scales, shapes, params -----------------------------------------------------------------------------


def int_formats(
    *, min_bits: int = 1, max_bits: int = 16, signed: bool | None = None, allow_narrow_range: bool = True
) -> st.SearchStrategy[IntFormat]:
    """``IntFormat(bits, signed, narrow_range)`` with ``min_bits <= bits <= max_bits`` (1 to 32).

    ``signed=None`` draws both signednesses; narrow range (signed, at least 2 bits) only when
    ``allow_narrow_range``.  Shrinks toward ``min_bits``, unsigned, full range.
    """
    lo = _int_arg(min_bits, "min_bits", 1, 32)
    hi = _int_arg(max_bits, "max_bits", 1, 32)
    _order(lo, hi, "min_bits", "max_bits")
    if signed is not None:
        _bool_arg(signed, "signed")
    narrow_ok = _bool_arg(allow_narrow_range, "allow_narrow_range")
    bits = st.one_of(
        st.sampled_from(sorted({lo, hi, *(b for b in (2, 4, 8, 16) if lo <= b <= hi)})), st.integers(lo, hi)
    )
    signs = st.booleans() if signed is None else st.just(signed)

    @st.composite
    def build(draw: st.DrawFn) -> IntFormat:
        b = draw(bits)
        s = draw(signs)
        narrow = narrow_ok and s and b >= 2 and draw(st.booleans())
        return IntFormat(b, s, narrow_range=narrow)

    return build()


def scales(
    *, min_value: float = 2.0**-16, max_value: float = 2.0**8, allow_subnormal: bool = False
) -> st.SearchStrategy[float]:
    """Positive float32 scales in ``[min_value, max_value]`` (as Python floats holding float32 values exactly).

    A third are powers of two, a third have significands of at most 8 bits (exact ties ``(k + 1/2) * s``
    exist in float32 for many ``k``), a third are arbitrary float32 values.  Subnormal scales only when
    ``allow_subnormal``.
    """
    lo = _float_arg(min_value, "min_value")
    hi = _float_arg(max_value, "max_value")
    sub = _bool_arg(allow_subnormal, "allow_subnormal")
    if lo <= 0:
        raise InvalidArgument(f"min_value={min_value!r} must be > 0 (a scale is positive)")
    _order(lo, hi, "min_value", "max_value")
    if hi > F32_MAX:
        raise InvalidArgument(f"max_value={max_value!r} must be a finite float32 (at most {F32_MAX!r})")
    lo32, hi32 = float(np.nextafter(F32(lo), F32(np.inf))) if float(F32(lo)) < lo else float(F32(lo)), float(F32(hi))
    if float(F32(hi)) > hi:
        hi32 = float(np.nextafter(F32(hi), F32(0)))
    if lo32 > hi32:
        raise InvalidArgument(f"no float32 lies in [min_value={min_value!r}, max_value={max_value!r}]")
    if not sub and hi32 < F32_TINY:
        raise InvalidArgument(f"max_value={max_value!r} is subnormal in float32 and allow_subnormal=False")
    if not sub:
        lo32 = max(lo32, F32_TINY)
    e_lo, e_hi = math.frexp(lo32)[1] - 1, math.frexp(hi32)[1]
    inside = lambda s: lo32 <= s <= hi32  # noqa: E731
    pow2 = st.integers(e_lo, e_hi).map(lambda e: float(F32(math.ldexp(1.0, e)))).filter(inside)
    short = st.tuples(st.integers(1, 255), st.integers(e_lo - 8, e_hi)).map(
        lambda me: float(F32(math.ldexp(2 * me[0] + 1, me[1] - 1)))
    )
    wide = st.floats(lo32, hi32, width=32, allow_subnormal=sub)
    return st.one_of(pow2, short.filter(inside), wide)


def distinct_shapes(
    *, min_dims: int = 1, max_dims: int = 3, min_side: int = 1, max_side: int = 6
) -> st.SearchStrategy[tuple[int, ...]]:
    """Shapes of ``min_dims`` to ``max_dims`` dimensions, each in ``[min_side, max_side]``, pairwise distinct."""
    lo_d = _int_arg(min_dims, "min_dims", 0, 32)
    hi_d = _int_arg(max_dims, "max_dims", 0, 32)
    _order(lo_d, hi_d, "min_dims", "max_dims")
    lo_s = _int_arg(min_side, "min_side", 0, 2**31)
    hi_s = _int_arg(max_side, "max_side", 0, 2**31)
    _order(lo_s, hi_s, "min_side", "max_side")
    if hi_s - lo_s + 1 < lo_d:
        raise InvalidArgument(
            f"min_dims={min_dims!r} pairwise distinct sides do not fit in [min_side={min_side!r}, max_side={max_side!r}]"
        )
    top = min(hi_d, hi_s - lo_s + 1)

    @st.composite
    def build(draw: st.DrawFn) -> tuple[int, ...]:
        n = draw(st.integers(lo_d, top))
        sides = draw(st.lists(st.integers(lo_s, hi_s), min_size=n, max_size=n, unique=True))
        return tuple(sides)

    return build()


def granularities(shape: tuple[int, ...], /) -> st.SearchStrategy[Granularity]:
    """``PerTensor()``, ``PerAxis(axis)`` or ``PerBlock(axis, block_size)`` valid for a tensor of ``shape``.

    Axes are drawn in ``[-ndim, ndim - 1]``; block sizes in ``[1, D_axis + 1]`` (ragged last blocks
    included).  A 0-d shape gets ``PerTensor()`` only.
    """
    dims = _shape_arg(shape)
    if not dims:
        return st.just(PerTensor())
    n = len(dims)
    axes = st.integers(-n, n - 1)
    per_axis = axes.map(PerAxis)
    per_block = axes.flatmap(lambda a: st.integers(1, max(1, dims[a] + 1)).map(lambda b: PerBlock(a, b)))
    return st.one_of(st.just(PerTensor()), per_axis, per_block)


def _zero_points(fmt: IntFormat) -> st.SearchStrategy[int]:
    ends = sorted({fmt.qmin, fmt.qmax, *([0] if fmt.qmin <= 0 <= fmt.qmax else [])})
    return st.one_of(st.sampled_from(ends), st.integers(fmt.qmin, fmt.qmax))


def quant_params(
    *,
    shape: tuple[int, ...],
    fmt: IntFormat | None = None,
    granularity: Granularity | None = None,
    min_scale: float = 2.0**-16,
    max_scale: float = 2.0**8,
    symmetric: bool = False,
) -> st.SearchStrategy[QuantParams]:
    """Valid ``QuantParams`` for a tensor of ``shape``: one scale and zero point per parameter slot.

    ``fmt=None`` draws a format (``int_formats()``), ``granularity=None`` one of ``granularities(shape)``.
    Zero points are dense at ``qmin``, ``qmax`` and 0; ``symmetric=True`` makes every zero point 0 (the
    format must hold 0).  Scales come from ``scales(min_value=min_scale, max_value=max_scale)``.
    """
    dims = _shape_arg(shape)
    if fmt is not None and not isinstance(fmt, IntFormat):
        raise InvalidArgument(f"fmt={fmt!r} must be an IntFormat or None")
    if granularity is not None:
        if not isinstance(granularity, (PerTensor, PerAxis, PerBlock)):
            raise InvalidArgument(f"granularity={granularity!r} must be PerTensor, PerAxis, PerBlock or None")
        if not isinstance(granularity, PerTensor) and not -len(dims) <= granularity.axis < len(dims):
            raise InvalidArgument(f"granularity={granularity!r} has no axis in a tensor of shape={dims!r}")
    sym = _bool_arg(symmetric, "symmetric")
    if sym and fmt is not None and not fmt.qmin <= 0 <= fmt.qmax:
        raise InvalidArgument(f"symmetric=True needs a format that holds 0, got fmt={fmt!r}")
    scale_values = scales(min_value=min_scale, max_value=max_scale)
    formats = st.just(fmt) if fmt is not None else int_formats()
    grans = st.just(granularity) if granularity is not None else granularities(dims)

    @st.composite
    def build(draw: st.DrawFn) -> QuantParams:
        f = draw(formats)
        g = draw(grans)
        pshape = param_shape(g, dims)
        size = int(np.prod(pshape, dtype=np.int64))
        s = draw(st.lists(scale_values, min_size=size, max_size=size))
        z = [0] * size if sym else draw(st.lists(_zero_points(f), min_size=size, max_size=size))
        return QuantParams(
            np.array(s, dtype=np.float32).reshape(pshape), np.array(z, dtype=np.int64).reshape(pshape), f, g
        )

    return build()


# --- values for given params -------------------------------------------------------------------------------------


def _expanded(params: QuantParams, shape: tuple[int, ...]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    try:
        return params.expand(shape)
    except ValueError as error:  # SpecError: the params do not fit the shape
        raise InvalidArgument(f"params={params!r} do not fit shape={shape!r}: {error}") from None


def tie_point(k: int, scale: float, /) -> float:
    """``(k + 1/2) * scale`` when it is a float32 value exactly; otherwise the exact tie ``+-scale / 2``."""
    x = (k + 0.5) * float(scale)  # exact in float64: |k| < 2**28 and a 24-bit significand
    if abs(k) < 2**28 and float(F32(x)) == x and math.isfinite(x):
        return x
    half = float(scale) / 2
    return half if k >= 0 else -half


def _nudge(x: float, ulps: int) -> float:
    v = F32(x)
    direction = F32(np.inf) if ulps > 0 else F32(-np.inf)
    for _ in range(abs(ulps)):
        v = np.nextafter(v, direction)
    return float(v)


def tie_values(
    params: QuantParams, /, *, shape: tuple[int, ...], ulps: int = 1, span: int = 3
) -> st.SearchStrategy[npt.NDArray[np.float32]]:
    """float32 tensors of ``shape`` whose elements sit on a rounding tie of their own scale, or near one.

    Element ``i`` with scale ``s`` and zero point ``z`` is ``(k + 1/2) * s`` (an exact float32 value, so
    ``x / s`` is exactly ``k + 1/2``) moved by ``d`` float32 ulps, ``-ulps <= d <= ulps``; ``k`` is drawn so
    that ``k + z`` runs from ``span`` steps below ``qmin`` to ``span`` steps above ``qmax``.  When
    ``(k + 1/2) * s`` is not a float32 value the tie ``+-s / 2`` is used (it always is one, for normal
    scales).  Shrinks toward the exact tie at ``k = 0``.
    """
    p = _params_arg(params)
    dims = _shape_arg(shape)
    n_ulps = _int_arg(ulps, "ulps", 0, 2**20)
    n_span = _int_arg(span, "span", 0, 2**20)
    scale, zp = _expanded(p, dims)
    flat_s = scale.reshape(-1).tolist()
    flat_z = zp.reshape(-1).tolist()
    fmt = p.fmt

    def element(s: float, z: int) -> st.SearchStrategy[float]:
        lo = max(fmt.qmin - z - n_span, -(2**27))
        hi = min(fmt.qmax - z + n_span, 2**27)
        k = st.integers(lo, hi)
        d = st.integers(-n_ulps, n_ulps)
        return st.tuples(k, d).map(lambda kd: _nudge(tie_point(kd[0], s), kd[1]))

    return st.tuples(*(element(s, z) for s, z in zip(flat_s, flat_z, strict=True))).map(
        lambda xs: np.array(xs, dtype=np.float32).reshape(dims)
    )


def saturation_edge_values(
    params: QuantParams, /, *, shape: tuple[int, ...], allow_infinity: bool = True
) -> st.SearchStrategy[npt.NDArray[np.float32]]:
    """float32 tensors of ``shape`` whose elements sit at the saturation edges of the format for their own params.

    Each element is ``float32((e - z + d) * s)`` with ``e`` in ``{qmin, qmax}`` and ``d`` in ``{-1, -1/2, 0,
    1/2, 1, 2}``, or the largest finite float32 of either sign, or (when ``allow_infinity``) +-inf.
    """
    p = _params_arg(params)
    dims = _shape_arg(shape)
    inf_ok = _bool_arg(allow_infinity, "allow_infinity")
    scale, zp = _expanded(p, dims)
    fmt = p.fmt
    extremes = [F32_MAX, -F32_MAX, *([math.inf, -math.inf] if inf_ok else [])]

    def element(s: float, z: int) -> st.SearchStrategy[float]:
        near = st.tuples(st.sampled_from([fmt.qmax, fmt.qmin]), st.sampled_from([0.5, 1.0, 0.0, -0.5, -1.0, 2.0]))

        def value(ed: tuple[int, float]) -> float:
            e, d = ed
            towards = d if e == fmt.qmax else -d
            with np.errstate(over="ignore"):
                return float(F32((e - z + towards) * s))

        return st.one_of(near.map(value), st.sampled_from(extremes))

    flat = zip(scale.reshape(-1).tolist(), zp.reshape(-1).tolist(), strict=True)
    return st.tuples(*(element(s, z) for s, z in flat)).map(lambda xs: np.array(xs, dtype=np.float32).reshape(dims))


def quantize_inputs(
    params: QuantParams,
    /,
    *,
    shape: tuple[int, ...],
    allow_nan: bool = False,
    allow_infinity: bool = True,
    allow_subnormal: bool = True,
) -> st.SearchStrategy[npt.NDArray[np.float32]]:
    """float32 tensors of ``shape`` for quantizing with ``params``: dense in the inputs where quantizers differ.

    Each element is a tie or a value one ulp from one (as ``tie_values``), a saturation edge (as
    ``saturation_edge_values``), a signed zero or (when ``allow_subnormal``) a subnormal, NaN when
    ``allow_nan``, or any float32 within four steps of the format's range.
    """
    p = _params_arg(params)
    dims = _shape_arg(shape)
    nan_ok = _bool_arg(allow_nan, "allow_nan")
    inf_ok = _bool_arg(allow_infinity, "allow_infinity")
    sub_ok = _bool_arg(allow_subnormal, "allow_subnormal")
    scale, zp = _expanded(p, dims)
    fmt = p.fmt

    def element(s: float, z: int) -> st.SearchStrategy[float]:
        return _input_element(s, z, fmt, nan_ok, inf_ok, sub_ok)

    flat = zip(scale.reshape(-1).tolist(), zp.reshape(-1).tolist(), strict=True)
    return st.tuples(*(element(s, z) for s, z in flat)).map(lambda xs: np.array(xs, dtype=np.float32).reshape(dims))


# --- fixed point and integer operations --------------------------------------------------------------------------


def multipliers(*, min_value: float = 0.0, max_value: float = 1.0) -> st.SearchStrategy[float]:
    """Real requantization multipliers in ``[min_value, max_value]`` (``min_value >= 0``), as Python floats.

    Dense where fixed-point requantization has its edges: near 1 (``1 - 2**-k``, a few ulps either side of
    1), near 0 (around ``2**-31`` and ``2**-32``, where ``quantize_multiplier`` flushes to zero), exact
    powers of two, and values whose ``q * 2**31`` is exactly half an integer (the tie of
    ``quantize_multiplier``'s rounding); plus arbitrary floats.
    """
    lo = _float_arg(min_value, "min_value")
    hi = _float_arg(max_value, "max_value")
    if lo < 0:
        raise InvalidArgument(f"min_value={min_value!r} must be >= 0 (a multiplier is not negative)")
    _order(lo, hi, "min_value", "max_value")
    one = [1.0 - 2.0**-k for k in (1, 2, 8, 24, 31, 32, 40, 53)] + [1.0, 1.0 + 2.0**-52, 1.0 + 2.0**-31]
    zero = [2.0**-31, 2.0**-32, 2.0**-32 * (1 - 2.0**-53), 2.0**-33, 1.5e-10, 2.0**-31 * (1 - 2.0**-40)]
    special = [v for v in sorted(set(one + zero)) if lo <= v <= hi]
    pow2 = st.integers(-40, 31).map(lambda e: math.ldexp(1.0, e))
    ties = st.tuples(st.integers(2**30, 2**31 - 1), st.integers(-40, 8)).map(
        lambda me: math.ldexp(2 * me[0] + 1, me[1] - 32)
    )
    options: list[st.SearchStrategy[float]] = []
    if special:
        options.append(st.sampled_from(special))
    inside = lambda v: lo <= v <= hi  # noqa: E731
    options += [pow2.filter(inside), ties.filter(inside), st.floats(lo, hi, allow_nan=False, allow_infinity=False)]
    return st.one_of(*options)


def fixed_point_multipliers(
    *, min_value: float = 0.0, max_value: float = 1.0, single_rounding: bool = False
) -> st.SearchStrategy[FixedPointMultiplier]:
    """TFLite fixed-point multipliers: ``quantize_multiplier`` of ``multipliers(min_value=..., max_value=...)``."""
    single = _bool_arg(single_rounding, "single_rounding")
    return multipliers(min_value=min_value, max_value=max_value).map(
        lambda m: quantize_multiplier(m, single_rounding=single)
    )


def accumulators(
    *, shape: tuple[int, ...], min_value: int = INT32_MIN, max_value: int = INT32_MAX
) -> st.SearchStrategy[npt.NDArray[np.int32]]:
    """int32 arrays of ``shape`` in ``[min_value, max_value]``, dense at the bounds, 0, +-1 and +-2**k (+-1)."""
    dims = _shape_arg(shape)
    lo = _int_arg(min_value, "min_value", INT32_MIN, INT32_MAX)
    hi = _int_arg(max_value, "max_value", INT32_MIN, INT32_MAX)
    _order(lo, hi, "min_value", "max_value")
    edges = {lo, hi, 0, 1, -1, INT32_MIN, INT32_MAX, INT32_MIN + 1, INT32_MAX - 1}
    for k in (1, 2, 7, 8, 15, 16, 23, 24, 30):
        edges.update({2**k, 2**k - 1, 2**k + 1, -(2**k), -(2**k) + 1, -(2**k) - 1})
    special = sorted(v for v in edges if lo <= v <= hi)
    size = int(np.prod(dims, dtype=np.int64))
    element = st.one_of(st.sampled_from(special), st.integers(lo, hi))
    return st.lists(element, min_size=size, max_size=size).map(lambda v: np.array(v, dtype=np.int32).reshape(dims))


def _pairs_for(total: int) -> list[tuple[int, int]]:
    """int8 pairs ``(a, b)`` whose products sum to ``total`` exactly: full steps of the largest product, then squares."""
    pairs: list[tuple[int, int]] = []
    sign = 1 if total >= 0 else -1
    r = abs(total)
    big = 128 * 128 if sign > 0 else 128 * 127  # (-128)(-128) = 16384; (-128)(127) = -16256
    step = (-128, -128) if sign > 0 else (-128, 127)
    pairs += [step] * (r // big)
    r -= (r // big) * big
    while r > 0:
        a = min(127, math.isqrt(r))
        b = min(127, r // a)
        pairs.append((a, sign * b))
        r -= a * b
    return pairs


def accumulation_edge_matmuls(
    *, max_distance: int = 64, allow_overflow: bool = True, max_rows: int = 3, max_cols: int = 3
) -> st.SearchStrategy[tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]]:
    """int8 ``(lhs, rhs)`` of shapes ``(M, K)``, ``(K, N)`` whose product's ``[0, 0]`` sits at the int32 bound.

    ``(lhs @ rhs)[0, 0]`` is ``INT32_MAX + d`` or ``INT32_MIN + d`` with ``|d| <= max_distance`` (``K`` is
    about 131 thousand); without ``allow_overflow`` it stays inside int32.  The other rows and columns are
    small pseudo-random codes (seeded by a drawn integer) whose sums stay far from the bound.
    """
    dist = _int_arg(max_distance, "max_distance", 0, 2**24)
    over = _bool_arg(allow_overflow, "allow_overflow")
    rows = _int_arg(max_rows, "max_rows", 1, 64)
    cols = _int_arg(max_cols, "max_cols", 1, 64)

    @st.composite
    def build(draw: st.DrawFn) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
        top = draw(st.booleans())
        if top:
            d = draw(st.integers(-dist, dist if over else 0))
            target = INT32_MAX + d
        else:
            d = draw(st.integers(0 if not over else -dist, dist))
            target = INT32_MIN + d
        pairs = _pairs_for(target)
        m = draw(st.integers(1, rows))
        n = draw(st.integers(1, cols))
        k = len(pairs)
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        lhs = rng.integers(-3, 4, size=(m, k), dtype=np.int8)
        rhs = rng.integers(-3, 4, size=(k, n), dtype=np.int8)
        lhs[0, :] = [a for a, _ in pairs]
        rhs[:, 0] = [b for _, b in pairs]
        return lhs, rhs

    return build()


def codes(params: QuantParams, /, *, shape: tuple[int, ...]) -> st.SearchStrategy[npt.NDArray[Any]]:
    """Integer codes of ``params.fmt`` (its storage dtype) of ``shape``, dense at ``qmin``, ``qmax``, ``z`` and ``z +- 1``."""
    p = _params_arg(params)
    dims = _shape_arg(shape)
    _, zp = _expanded(p, dims)
    fmt = p.fmt

    def element(z: int) -> st.SearchStrategy[int]:
        edges = sorted({v for v in (fmt.qmin, fmt.qmax, z, z - 1, z + 1, 0) if fmt.qmin <= v <= fmt.qmax})
        return st.one_of(st.sampled_from(edges), st.integers(fmt.qmin, fmt.qmax))

    return st.tuples(*(element(z) for z in zp.reshape(-1).tolist())).map(
        lambda v: np.array(v, dtype=np.int64).astype(fmt.storage_dtype).reshape(dims)
    )


@functools.lru_cache(maxsize=4096)
def _input_element(
    s: float, z: int, fmt: IntFormat, nan_ok: bool, inf_ok: bool, sub_ok: bool
) -> st.SearchStrategy[float]:
    """One element of ``quantize_inputs`` (cached: building float strategies is slow and shrinking repeats them)."""
    specials = [0.0, -0.0]
    if sub_ok:
        smallest = float(np.finfo(np.float32).smallest_subnormal)
        specials += [smallest, -smallest, F32_TINY - smallest]
    if nan_ok:
        specials.append(math.nan)
    ties = st.tuples(st.integers(fmt.qmin - z - 2, fmt.qmax - z + 1), st.integers(-1, 1)).map(
        lambda kd: _nudge(tie_point(kd[0], s), kd[1])
    )
    edges = st.tuples(st.sampled_from([fmt.qmax, fmt.qmin]), st.sampled_from([0.5, 1.0, 0.0, -0.5, 2.0])).map(
        lambda ed: float(F32((ed[0] - z + (ed[1] if ed[0] == fmt.qmax else -ed[1])) * s))
    )
    with np.errstate(over="ignore"):
        lo = float(F32((fmt.qmin - z - 4) * s))
        hi = float(F32((fmt.qmax - z + 4) * s))
    lo, hi = max(lo, -F32_MAX), min(hi, F32_MAX)
    anywhere = st.floats(lo, hi, width=32, allow_subnormal=sub_ok)
    extreme = st.sampled_from([F32_MAX, -F32_MAX, *([math.inf, -math.inf] if inf_ok else [])])
    return st.one_of(ties, edges, st.sampled_from(specials), anywhere, extreme)


# --- the other chapters: qparams, packing, log, binary, ternary --------------------------------------------------


def value_ranges(
    *, fmt: IntFormat | None = None, max_magnitude: float = 2.0**20, allow_subnormal: bool = True
) -> st.SearchStrategy[tuple[float, float]]:
    """``(min_val, max_val)`` float32 pairs (as Python floats) with ``min_val <= max_val``, for choosing qparams.

    Dense in the ranges where qparams choosers differ: degenerate ranges (``min_val == max_val``, ``(0, 0)``
    included), ranges on one side of zero (the chooser must widen them to hold 0), tiny and (when
    ``allow_subnormal``) subnormal ranges, and, for ``fmt``, ranges ``[-(k + 1/2) * s, -(k + 1/2) * s +
    (qmax - qmin) * s]`` whose zero point ``-min_val / s`` is exactly the tie ``k + 1/2``; plus arbitrary pairs
    within ``+-max_magnitude``.
    """
    if fmt is not None and not isinstance(fmt, IntFormat):
        raise InvalidArgument(f"fmt={fmt!r} must be an IntFormat or None")
    top = _float_arg(max_magnitude, "max_magnitude")
    if not 0 < top <= F32_MAX:
        raise InvalidArgument(f"max_magnitude={max_magnitude!r} must be > 0 and a finite float32")
    sub = _bool_arg(allow_subnormal, "allow_subnormal")
    top = float(F32(top)) if float(F32(top)) <= top else float(np.nextafter(F32(top), F32(0)))
    value = st.floats(-top, top, width=32, allow_subnormal=sub)

    def ordered(pair: tuple[float, float]) -> tuple[float, float]:
        return (min(pair), max(pair))

    options: list[st.SearchStrategy[tuple[float, float]]] = [
        st.tuples(value, value).map(ordered),
        value.map(lambda v: (v, v)),
        st.tuples(value, value).map(lambda p: ordered((abs(p[0]), abs(p[1])))),
        st.tuples(value, value).map(lambda p: ordered((-abs(p[0]), -abs(p[1])))),
        st.sampled_from([(0.0, 0.0), (-0.0, 0.0), (F32_TINY, F32_TINY), (-F32_TINY, F32_TINY)]),
    ]
    if sub:
        smallest = float(np.finfo(np.float32).smallest_subnormal)
        options.append(st.integers(1, 2**10).map(lambda n: (-n * smallest, n * smallest)))
    if fmt is not None:
        span = fmt.qmax - fmt.qmin

        def tie(sk: tuple[float, int]) -> tuple[float, float]:
            s, k = sk
            lo = -(k + 0.5) * s
            return (float(F32(lo)), float(F32(lo + span * s)))

        short = st.tuples(st.integers(1, 15), st.integers(-10, 4)).map(lambda me: math.ldexp(me[0], me[1]))
        options.append(st.tuples(short, st.integers(0, max(0, span - 1))).map(tie).filter(lambda p: p[0] <= p[1]))
    return st.one_of(*options)


def packable_codes(
    *, fmt: IntFormat, min_size: int = 0, max_size: int = 40
) -> st.SearchStrategy[npt.NDArray[np.integer[Any]]]:
    """1-D codes of ``fmt`` (its storage dtype) for ``refquant.pack``: odd and even lengths, dense at ``qmin``,
    ``qmax``, ``0`` and ``-1``, so a partial last byte and sign bits that must be masked both occur."""
    if not isinstance(fmt, IntFormat):
        raise InvalidArgument(f"fmt={fmt!r} must be an IntFormat")
    lo = _int_arg(min_size, "min_size", 0, 2**20)
    hi = _int_arg(max_size, "max_size", 0, 2**20)
    _order(lo, hi, "min_size", "max_size")
    edges = sorted({v for v in (fmt.qmin, fmt.qmax, 0, -1, 1) if fmt.qmin <= v <= fmt.qmax})
    element = st.one_of(st.sampled_from(edges), st.integers(fmt.qmin, fmt.qmax))
    return st.lists(element, min_size=lo, max_size=hi).map(
        lambda v: np.array(v, dtype=np.int64).astype(fmt.storage_dtype)
    )


def packed_bytes(*, fmt: IntFormat, max_count: int = 40) -> st.SearchStrategy[tuple[npt.NDArray[np.uint8], int]]:
    """``(packed, count)`` for ``refquant.unpack``: ``ceil(count * bits / 8)`` arbitrary bytes, dense at 0x00,
    0xff, 0x0f, 0xf0, 0x80, 0x7f and 0x88, with the padding bits of the last byte clear (``unpack`` refuses set
    ones: ``nonzero_padding``)."""
    if not isinstance(fmt, IntFormat):
        raise InvalidArgument(f"fmt={fmt!r} must be an IntFormat")
    top = _int_arg(max_count, "max_count", 0, 2**20)
    byte = st.one_of(st.sampled_from([0x00, 0xFF, 0x0F, 0xF0, 0x80, 0x7F, 0x88]), st.integers(0, 255))

    @st.composite
    def build(draw: st.DrawFn) -> tuple[npt.NDArray[np.uint8], int]:
        count = draw(st.integers(0, top))
        size = -(-count * fmt.bits // 8)
        return clear_padding(
            np.array(draw(st.lists(byte, min_size=size, max_size=size)), dtype=np.uint8), fmt, count
        ), count

    return build()


def clear_padding(packed: npt.NDArray[np.uint8], fmt: IntFormat, count: int, /) -> npt.NDArray[np.uint8]:
    """``packed`` with the bits beyond ``count`` codes of ``fmt`` (the last byte's padding) cleared."""
    out = np.array(packed, dtype=np.uint8)
    used = count * fmt.bits - 8 * (out.size - 1)
    if out.size and 0 < used < 8:
        out[-1] &= np.uint8((1 << used) - 1)
    return out


SQRT2 = math.sqrt(2.0)


def log_edge_values(
    fmt: LogFormat, /, *, shape: tuple[int, ...], allow_infinity: bool = True
) -> st.SearchStrategy[npt.NDArray[np.float32]]:
    """float32 tensors of ``shape`` at the edges of the log format ``fmt``, either sign.

    Each element is ``2**k``, the float32 nearest ``sqrt(2) * 2**k`` (the log-domain threshold) or ``1.5 *
    2**k`` (the linear-domain tie), or one ulp either side of them, for ``k`` from two below ``e_min`` to one
    above ``e_max``; or a signed zero, or (when ``allow_infinity``) +-inf.
    """
    if not isinstance(fmt, LogFormat):
        raise InvalidArgument(f"fmt={fmt!r} must be a refquant LogFormat")
    dims = _shape_arg(shape)
    inf_ok = _bool_arg(allow_infinity, "allow_infinity")
    values = _log_edges(fmt, inf_ok)
    size = int(np.prod(dims, dtype=np.int64))
    return st.lists(st.sampled_from(values), min_size=size, max_size=size).map(
        lambda v: np.array(v, dtype=np.float32).reshape(dims)
    )


def _log_edges(fmt: LogFormat, inf_ok: bool) -> list[float]:
    out: list[float] = []
    for k in range(max(fmt.e_min - 2, -149), min(fmt.e_max + 2, 127) + 1):
        for base in (math.ldexp(1.0, k), float(F32(SQRT2 * math.ldexp(1.0, k))), 1.5 * math.ldexp(1.0, k)):
            b = F32(base)
            for v in (b, np.nextafter(b, F32(np.inf)), np.nextafter(b, F32(0))):
                out += [float(v), -float(v)]
    out += [0.0, -0.0, *([math.inf, -math.inf] if inf_ok else [])]
    return list(dict.fromkeys(out))


def sign_edge_values(
    *, shape: tuple[int, ...], allow_infinity: bool = True, allow_subnormal: bool = True
) -> st.SearchStrategy[npt.NDArray[np.float32]]:
    """float32 tensors of ``shape`` for binarizing: dense at ``+0.0`` and ``-0.0``, the smallest subnormals and
    normals of either sign, +-1, (when ``allow_infinity``) +-inf; plus arbitrary finite float32 values."""
    dims = _shape_arg(shape)
    inf_ok = _bool_arg(allow_infinity, "allow_infinity")
    sub_ok = _bool_arg(allow_subnormal, "allow_subnormal")
    special = [0.0, -0.0, F32_TINY, -F32_TINY, 1.0, -1.0]
    if sub_ok:
        smallest = float(np.finfo(np.float32).smallest_subnormal)
        special += [smallest, -smallest]
    if inf_ok:
        special += [math.inf, -math.inf]
    element = st.one_of(
        st.sampled_from(special), st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=sub_ok)
    )
    size = int(np.prod(dims, dtype=np.int64))
    return st.lists(element, min_size=size, max_size=size).map(lambda v: np.array(v, dtype=np.float32).reshape(dims))


def packed_sign_matrices(
    *, max_k: int = 200, max_rows: int = 3, garbage_padding: bool = True
) -> st.SearchStrategy[tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], int]]:
    """``(lhs_bits, rhs_bits, k)`` for ``refquant.xnor_matmul``: ``(M, W)`` and ``(N, W)`` uint64 rows packing
    ``k`` elements each (``W = ceil(k / 64)``, ``k`` dense at 1, 63, 64, 65 and 127), and, with
    ``garbage_padding``, padding bits of the last word set at random (the reference masks them out)."""
    top = _int_arg(max_k, "max_k", 1, 2**16)
    rows = _int_arg(max_rows, "max_rows", 1, 64)
    garbage = _bool_arg(garbage_padding, "garbage_padding")
    ks = st.one_of(st.sampled_from(sorted({k for k in (1, 63, 64, 65, 127) if k <= top} | {top})), st.integers(1, top))

    @st.composite
    def build(draw: st.DrawFn) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64], int]:
        k = draw(ks)
        m, n = draw(st.integers(1, rows)), draw(st.integers(1, rows))
        words = -(-k // 64)

        def matrix(r: int) -> npt.NDArray[np.uint64]:
            bits = draw(st.lists(st.integers(0, 2**64 - 1), min_size=r * words, max_size=r * words))
            out = np.array(bits, dtype=np.uint64).reshape(r, words)
            if k % 64 and not (garbage and draw(st.booleans())):
                out[:, -1] &= np.uint64((1 << (k % 64)) - 1)
            return out

        return matrix(m), matrix(n), k

    return build()


@unique
class TernaryMethod(Enum):
    """The ternarizers of ``refquant.spec.ternary`` (``check_ternarize``, ``ternary_weights``)."""

    TWN = "twn"
    TTQ = "ttq"
    BITNET = "bitnet"


def ternary_threshold(
    w: npt.NDArray[np.float32], method: TernaryMethod, /, *, factor: float = 0.7, t: float = 0.05, eps: float = 1e-5
) -> float:
    """The magnitude where ``method`` changes code on ``w``: ``delta`` (TWN, TTQ), ``scale / 2`` (BitNet)."""
    if method is TernaryMethod.TWN:
        return float(twn_ternarize(w, factor=factor).delta)
    if method is TernaryMethod.TTQ:
        return float(ttq_ternarize(w, t=t, wp=1.0, wn=1.0).delta)
    return float(F32(bitnet_ternarize(w, eps=eps)[1]) / F32(2))


def plant_threshold_ties(
    w: npt.NDArray[np.float32], method: TernaryMethod, /, *, factor: float = 0.7, t: float = 0.05, eps: float = 1e-5
) -> npt.NDArray[np.float32]:
    """``w`` with its last two elements replaced by ``+d`` and ``-d``, ``d`` exactly ``method``'s threshold on the
    result (a fixed point of ``d = threshold(w with +-d)``, iterated); ``w`` unchanged when none is reached."""
    if w.size < 3:
        return w
    flat = w.astype(np.float32).reshape(-1)
    d = 0.0
    for _ in range(40):
        trial = flat.copy()
        trial[-2], trial[-1] = d, -d
        try:
            new = ternary_threshold(trial, method, factor=factor, t=t, eps=eps)
        except ValueError:  # SpecError: the spec refuses the weights
            return w
        if new == d:
            return trial.reshape(w.shape)
        d = new
    return w


def ternary_weights(
    *,
    method: TernaryMethod,
    shape: tuple[int, ...],
    factor: float = 0.7,
    t: float = 0.05,
    eps: float = 1e-5,
    max_magnitude: float = 4.0,
) -> st.SearchStrategy[npt.NDArray[np.float32]]:
    """Finite float32 weights of ``shape`` (at least 3 elements) whose last two elements sit exactly on
    ``method``'s threshold (``plant_threshold_ties``) when a fixed point exists; the others dense at 0 and at
    equal magnitudes."""
    if not isinstance(method, TernaryMethod):
        raise InvalidArgument(f"method={method!r} must be a TernaryMethod")
    dims = _shape_arg(shape)
    size = int(np.prod(dims, dtype=np.int64))
    if size < 3:
        raise InvalidArgument(f"shape={shape!r} must hold at least 3 elements (two of them carry the planted ties)")
    top = _float_arg(max_magnitude, "max_magnitude")
    if top <= 0:
        raise InvalidArgument(f"max_magnitude={max_magnitude!r} must be > 0")
    opts = {"factor": _float_arg(factor, "factor"), "t": _float_arg(t, "t"), "eps": _float_arg(eps, "eps")}
    for name in ("factor", "t"):
        if opts[name] < 0:
            raise InvalidArgument(f"{name}={opts[name]!r} must be >= 0")
    if not opts["eps"] > 0:
        raise InvalidArgument(f"eps={eps!r} must be > 0")
    element = st.one_of(
        st.sampled_from([0.0, -0.0, 0.5, -0.5, 1.0, -1.0]), st.floats(-top, top, width=32, allow_subnormal=False)
    )
    return st.lists(element, min_size=size, max_size=size).map(
        lambda v: plant_threshold_ties(np.array(v, dtype=np.float32).reshape(dims), method, **opts)
    )
