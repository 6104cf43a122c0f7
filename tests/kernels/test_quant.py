"""refquant.fast.quantize / dequantize against the specification (refquant.spec.affine), bit for bit.

Every check computes the specification's result (or its error) and the fast function's, and requires the
same codes (``assert_array_equal``, same dtype and shape), the same float32 bit patterns for dequantize,
or the same exception type, ``condition`` and message.  Each successful call is repeated with ``out=``
(a preallocated array filled with garbage), which must be returned and hold the same result.

Inputs are tie-dense: with ``s`` and ``z`` an element's scale and zero point, the values are
``(k + 0.5) * s`` (a tie of every round-to-nearest mode, also after adding an integer zero point), its
float neighbours, ``k * s``, the two values just outside the format (``(qmin - z - 0.5) * s`` and
``(qmax - z + 0.5) * s``), huge values, +-0, +-inf and NaN.  Hypothesis chooses a seed and every option
(format of 1..32 bits signed/unsigned/narrow, granularity with any axis, block sizes with a short last
block, rounding mode including STOCHASTIC with draws, scale application, zero-point order, overflow,
NaN policy, precision, input dtype, memory layout); the arrays are generated from the seed.

The work split is tested by shrinking ``refquant.fast._CHUNK`` (elements per work item, so that rows
cross chunk and block boundaries on small arrays) and by forcing the parallel kernels
(``refquant.fast._serial_elements``), and once on an array past the real parallel threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refquant.fast as fast
from refquant import profiles
from refquant.errors import SpecError
from refquant.kernels import quant as kq
from refquant.spec import affine
from refquant.spec.affine import NanPolicy, Precision, QuantParams, ScaleApplication, ZeroPointOrder
from refquant.spec.formats import INT4, INT8, INT16, INT32, UINT2, UINT4, UINT8, UINT16, IntFormat
from refquant.spec.granularity import PER_TENSOR, Granularity, PerAxis, PerBlock
from refquant.spec.rounding import RoundingMode
from refquant.spec.saturation import Overflow
from tests.kernels.conftest import assert_same, garbage, outcome

FLOAT_DTYPES = [np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)]
CODE_DTYPES = [np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64)]
SCALES = [1.0, 0.5, 2.0**-10, 0.1, 0.00214854861, 3.7, 1e-3, 1e-20, 1e20, 2.0**-126, 1e-40, 65504.0]
VIEWS = ["contiguous", "strided", "fortran", "reversed", "byteswapped"]
UINT_OF = {2: np.uint16, 4: np.uint32, 8: np.uint64}


# --- comparison helpers ------------------------------------------------------------------------------------------


def _check(spec_fn: Callable[..., Any], fast_fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Spec against fast on the same arguments, then fast again with ``out=``; returns the spec outcome."""
    before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in args]
    expected = outcome(spec_fn, *args, **kwargs)
    assert_same(expected, outcome(fast_fn, *args, **kwargs))
    if isinstance(expected, np.ndarray):
        out = garbage(expected.shape, expected.dtype)
        returned = fast_fn(*args, out=out, **kwargs)
        assert returned is out
        assert_same(expected, out)
    for a, copy in zip(args, before, strict=True):  # inputs are never written
        if copy is not None:
            assert np.asarray(a).tobytes() == copy.tobytes()
    return expected


def _check_quantize(x: Any, params: QuantParams, **kwargs: Any) -> Any:
    return _check(affine.quantize, fast.quantize, x, params, **kwargs)


def _check_dequantize(q: Any, params: QuantParams) -> Any:
    return _check(affine.dequantize, fast.dequantize, q, params)


@contextmanager
def _work_split(chunk: int, parallel: bool) -> Iterator[None]:
    """Work items of ``chunk`` elements (small rows then cross chunk and block boundaries); with ``parallel``
    every call takes the parallel kernels, its work items spread over several ranges."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fast, "_CHUNK", chunk)
        if parallel:
            mp.setattr(fast, "_serial_elements", lambda: 0)
        yield


# --- input generation --------------------------------------------------------------------------------------------


def _params(
    rng: np.random.Generator, fmt: IntFormat, shape: tuple[int, ...], gran: Granularity, scale: float, zp_kind: str
) -> QuantParams:
    """Parameters for ``shape``: scale around ``scale``, zero points at the ends of the range or random."""
    if isinstance(gran, PerAxis):
        pshape: tuple[int, ...] = (shape[gran.axis],)
    elif isinstance(gran, PerBlock):
        ax = gran.axis % len(shape)
        pshape = (*shape[:ax], -(-shape[ax] // gran.block_size), *shape[ax + 1 :])
    else:
        pshape = ()
    factors = rng.choice(np.array([1.0, 1.0, 0.5, 2.0, 1.1, 0.7]), pshape)
    s = np.asarray(scale * factors, np.float64)
    if zp_kind == "min":
        z = np.full(pshape, fmt.qmin, np.int64)
    elif zp_kind == "max":
        z = np.full(pshape, fmt.qmax, np.int64)
    elif zp_kind == "ends":
        z = np.where(rng.integers(0, 2, pshape) == 1, fmt.qmax, fmt.qmin).astype(np.int64)
    elif zp_kind == "zero":
        z = np.full(pshape, max(fmt.qmin, 0), np.int64)
    else:
        z = rng.integers(fmt.qmin, fmt.qmax, pshape, endpoint=True)
    return QuantParams(s, z, fmt, gran)


def _tie_dense(rng: np.random.Generator, params: QuantParams, shape: tuple[int, ...], dtype: Any, nan: bool) -> Any:
    """Values of ``dtype`` around the ties ``(k + 0.5) * s`` of every element, with specials."""
    s_full, z_full = params.expand(shape)
    s64 = s_full.astype(np.float64)
    z = z_full.astype(np.float64)
    fmt = params.fmt
    k = rng.integers(-3, 4, shape) + np.floor(rng.uniform(fmt.qmin, fmt.qmax + 1.0, shape)) - z
    kind = rng.integers(0, 11, shape)
    k = np.where(kind == 6, fmt.qmin - z - 1, k)  # (k + 0.5) = qmin - z - 0.5
    k = np.where(kind == 7, fmt.qmax - z, k)  # (k + 0.5) = qmax - z + 0.5
    base = np.where(kind == 3, k, k + 0.5) * s64
    work = np.float64 if np.dtype(dtype) == np.float64 else np.float32
    with np.errstate(over="ignore"):
        v = base.astype(work)
        v = np.where(kind == 1, np.nextafter(v, work(np.inf)), v)
        v = np.where(kind == 2, np.nextafter(v, work(-np.inf)), v)
        if work is np.float64:  # float64 inputs also sit on float32 neighbours of the tie
            v32 = base.astype(np.float32)
            v = np.where(kind == 8, np.nextafter(v32, np.float32(np.inf)).astype(np.float64), v)
        specials = np.array([np.inf, -np.inf, 1e30, -1e30, 3e38, -3e38, 0.0, -0.0, 2.0**31, -(2.0**33)], work)
        if work is np.float64:
            specials = np.concatenate([specials, np.array([1e300, -1e300, 2.0**62, -(2.0**63), 2.0**70])])
        v = np.where(kind == 9, rng.choice(specials, shape), v)
        if nan:
            v = np.where((kind == 10) & (rng.integers(0, 3, shape) == 0), np.nan, v)
        return np.asarray(v.astype(dtype))


def _view(rng: np.random.Generator, arr: np.ndarray, how: str) -> Any:
    """The values of ``arr`` through a view of another memory layout (or as a list)."""
    if arr.ndim == 0 or arr.size == 0:
        return arr
    if how == "strided":
        big = np.zeros((*arr.shape[:-1], arr.shape[-1] * 3), arr.dtype)
        big[..., 1::3] = arr
        return big[..., 1::3]
    if how == "fortran":
        return np.asfortranarray(arr)
    if how == "reversed":
        return np.ascontiguousarray(arr[..., ::-1])[..., ::-1]
    if how == "byteswapped":
        return arr.astype(arr.dtype.newbyteorder(">"))
    if how == "list" and arr.dtype == np.float64:
        return arr.tolist()
    return arr


FORMATS = st.builds(
    lambda bits, signed, narrow: IntFormat(bits, signed, narrow and signed and bits > 1),
    st.integers(1, 32),
    st.booleans(),
    st.integers(0, 4).map(lambda v: v == 0),  # narrow range one time in five
)


@st.composite
def _layouts(draw: st.DrawFn) -> tuple[tuple[int, ...], Granularity]:
    """A shape (0-d, empty and odd sizes included) and a granularity that fits it (negative axes too)."""
    kind = draw(st.sampled_from(["tensor", "axis", "block"]))
    ndim = draw(st.integers(0 if kind == "tensor" else 1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 7) | st.just(0), min_size=ndim, max_size=ndim)))
    if kind == "tensor":
        return shape, PER_TENSOR
    axis = draw(st.integers(-ndim, ndim - 1))
    if kind == "axis":
        return shape, PerAxis(axis)
    return shape, PerBlock(axis, draw(st.integers(1, 4)))


@st.composite
def _options(draw: st.DrawFn) -> dict[str, Any]:
    """A valid option set (the fused order needs RECIPROCAL_MULTIPLY and FLOAT32)."""
    opts: dict[str, Any] = {
        "rounding": draw(st.sampled_from(list(RoundingMode))),
        "scale_application": draw(st.sampled_from(list(ScaleApplication))),
        "zero_point_order": draw(st.sampled_from(list(ZeroPointOrder))),
        "overflow": draw(st.sampled_from(list(Overflow))),
        "nan_policy": draw(st.sampled_from(list(NanPolicy))),
        "precision": draw(st.sampled_from(list(Precision))),
    }
    if opts["zero_point_order"] is ZeroPointOrder.FUSED_MULTIPLY_ADD:
        opts["scale_application"] = ScaleApplication.RECIPROCAL_MULTIPLY
        opts["precision"] = Precision.FLOAT32
    return opts


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], how: str) -> Any:
    """STOCHASTIC draws in [0, 1) of float32 (valid at either precision), full shape or broadcast."""
    u = rng.uniform(0.0, 1.0, shape).astype(np.float32)
    u = np.where(rng.integers(0, 4, shape) == 0, np.float32(0.5), u)
    u = np.where(rng.integers(0, 8, shape) == 0, np.nextafter(np.float32(1), np.float32(0)), u)
    u = np.where(rng.integers(0, 8, shape) == 0, np.float32(0), u)
    if how == "scalar":
        return float(u.flat[0]) if u.size else 0.25
    return u


# --- quantize ----------------------------------------------------------------------------------------------------


@settings(max_examples=1000)
@given(
    seed=st.integers(0, 2**32 - 1),
    fmt=FORMATS,
    layout=_layouts(),
    opts=_options(),
    scale=st.sampled_from(SCALES),
    zp_kind=st.sampled_from(["min", "max", "ends", "zero", "random"]),
    dtype=st.sampled_from(FLOAT_DTYPES),
    view=st.sampled_from([*VIEWS, "list"]),
    with_nan=st.booleans(),
    uniform_how=st.sampled_from(["full", "scalar"]),
)
def test_quantize_matches_spec(
    seed: int,
    fmt: IntFormat,
    layout: tuple[tuple[int, ...], Granularity],
    opts: dict[str, Any],
    scale: float,
    zp_kind: str,
    dtype: np.dtype[Any],
    view: str,
    with_nan: bool,
    uniform_how: str,
) -> None:
    rng = np.random.default_rng(seed)
    shape, gran = layout
    params = _params(rng, fmt, shape, gran, scale, zp_kind)
    # A NaN under RAISE is an error (checked too); mostly let the values through.
    nan = with_nan and (opts["nan_policy"] is not NanPolicy.RAISE or rng.integers(0, 4) == 0)
    x = _view(rng, _tie_dense(rng, params, shape, dtype, nan), view)
    if opts["rounding"] is RoundingMode.STOCHASTIC:
        opts = {**opts, "uniform": _uniform(rng, shape, uniform_how)}
    _check_quantize(x, params, **opts)


@settings(max_examples=300)
@given(
    seed=st.integers(0, 2**32 - 1),
    fmt=FORMATS,
    layout=_layouts(),
    opts=_options(),
    scale=st.sampled_from(SCALES),
    dtype=st.sampled_from(FLOAT_DTYPES),
)
def test_quantize_matches_spec_across_chunks(
    seed: int,
    fmt: IntFormat,
    layout: tuple[tuple[int, ...], Granularity],
    opts: dict[str, Any],
    scale: float,
    dtype: np.dtype[Any],
) -> None:
    rng = np.random.default_rng(seed)
    shape, gran = layout
    params = _params(rng, fmt, shape, gran, scale, "random")
    x = _tie_dense(rng, params, shape, dtype, opts["nan_policy"] is not NanPolicy.RAISE)
    if opts["rounding"] is RoundingMode.STOCHASTIC:
        opts = {**opts, "uniform": _uniform(rng, shape, "full")}
    with _work_split(3, parallel=False):
        _check_quantize(x, params, **opts)


@settings(max_examples=200)
@given(
    seed=st.integers(0, 2**32 - 1),
    fmt=FORMATS,
    layout=_layouts(),
    opts=_options(),
    scale=st.sampled_from(SCALES),
    dtype=st.sampled_from(FLOAT_DTYPES),
)
def test_quantize_matches_spec_on_the_parallel_kernels(
    seed: int,
    fmt: IntFormat,
    layout: tuple[tuple[int, ...], Granularity],
    opts: dict[str, Any],
    scale: float,
    dtype: np.dtype[Any],
) -> None:
    rng = np.random.default_rng(seed)
    shape, gran = layout
    shape = (*shape[:-1], shape[-1] * 9) if shape else shape  # longer rows: several work items per row
    params = _params(rng, fmt, shape, gran, scale, "random")
    x = _tie_dense(rng, params, shape, dtype, opts["nan_policy"] is not NanPolicy.RAISE)
    if opts["rounding"] is RoundingMode.STOCHASTIC:
        opts = {**opts, "uniform": _uniform(rng, shape, "full")}
    with _work_split(5, parallel=True):
        _check_quantize(x, params, **opts)


GRANULARITIES: list[tuple[tuple[int, ...], Granularity]] = [
    ((3, 17), PER_TENSOR),
    ((4, 9), PerAxis(0)),
    ((5, 3, 7), PerAxis(-1)),
    ((2, 5, 6), PerAxis(1)),
    ((3, 17), PerBlock(-1, 4)),  # short last block
    ((10, 3), PerBlock(0, 4)),
    ((2, 7, 3), PerBlock(1, 3)),
]
PROFILE_FORMATS = [INT8, UINT8, INT16, UINT16, INT32, INT4, UINT4, UINT2, IntFormat(8, True, True), IntFormat(3, False)]


@pytest.mark.parametrize("profile", profiles.ALL, ids=lambda p: p.name)
@pytest.mark.parametrize("layout", GRANULARITIES, ids=lambda lay: f"{lay[1]}-{lay[0]}")
def test_quantize_profiles(profile: affine.Profile, layout: tuple[tuple[int, ...], Granularity]) -> None:
    """Every profile (with its cases: TORCH's fused order per tensor, separate roundings per axis/block)."""
    shape, gran = layout
    rng = np.random.default_rng(len(profile.name) * 1000 + len(shape))
    for fmt in PROFILE_FORMATS:
        for scale in (0.5, 0.00214854861, 0.1):
            params = _params(rng, fmt, shape, gran, scale, "ends")
            for dtype in FLOAT_DTYPES:
                nan = profile.nan_policy is not NanPolicy.RAISE
                _check_quantize(_tie_dense(rng, params, shape, dtype, nan), params, profile=profile)
        # and the profile with its NaN policy replaced, NaN included
        params = _params(rng, fmt, shape, gran, 0.25, "random")
        x = _tie_dense(rng, params, shape, np.float32, True)
        for policy in NanPolicy:
            _check_quantize(x, params, profile=profile, nan_policy=policy)


@pytest.mark.parametrize("rounding", [m for m in RoundingMode if m is not RoundingMode.STOCHASTIC])
@pytest.mark.parametrize("precision", list(Precision))
def test_quantize_exact_ties_every_rounding_mode(rounding: RoundingMode, precision: Precision) -> None:
    """``(k + 0.5) * 2**-3`` is exact, so every element is a tie: every mode's tie rule is exercised."""
    k = np.arange(-140, 140, dtype=np.float64)
    x = np.concatenate([(k + 0.5) / 8, k / 8, np.nextafter((k + 0.5) / 8, np.inf)]).astype(np.float32)
    for fmt, zp in ((INT8, 0), (INT8, -128), (INT8, 127), (UINT8, 0), (UINT8, 255), (UINT8, 1)):
        for order in ZeroPointOrder:
            opts: dict[str, Any] = {"rounding": rounding, "precision": precision, "zero_point_order": order}
            if order is ZeroPointOrder.FUSED_MULTIPLY_ADD:
                opts.update(precision=Precision.FLOAT32, scale_application=ScaleApplication.RECIPROCAL_MULTIPLY)
            for overflow in Overflow:
                _check_quantize(x, QuantParams(0.125, zp, fmt), overflow=overflow, **opts)


def test_quantize_scale_application_near_tie() -> None:
    """The module's example: x / s = 127.49999 but x * (1/s) = 127.5 (worked by hand in affine's docs)."""
    params = QuantParams(0.00214854861, 0, INT8)
    x = np.array([0.273939937, -0.273939937], np.float32)
    for sapp in ScaleApplication:
        for rounding in (RoundingMode.HALF_TO_EVEN, RoundingMode.HALF_AWAY_FROM_ZERO, RoundingMode.HALF_TO_ODD):
            _check_quantize(x, params, scale_application=sapp, rounding=rounding)
    got = fast.quantize(x, params, rounding=RoundingMode.HALF_AWAY_FROM_ZERO)
    got_rm = fast.quantize(
        x, params, rounding=RoundingMode.HALF_AWAY_FROM_ZERO, scale_application=ScaleApplication.RECIPROCAL_MULTIPLY
    )
    np.testing.assert_array_equal(got, [127, -127])
    np.testing.assert_array_equal(got_rm, [127, -128])


# --- the branch-free loops ------------------------------------------------------------------------------------------

# Every option set with a vectorised loop in refquant.kernels.quant (kinds 0, 1, 2): saturation into at most
# 16 bits, rounding half to even or half away from zero, each scale application and zero-point order, both
# precisions.  Every other option set runs the element-by-element loop (kind 3).
FAST_OPTIONS = [
    (ScaleApplication.DIVIDE, ZeroPointOrder.AFTER_ROUNDING, Precision.FLOAT32, 4),
    (ScaleApplication.DIVIDE, ZeroPointOrder.BEFORE_ROUNDING, Precision.FLOAT32, 0),
    (ScaleApplication.DIVIDE, ZeroPointOrder.AFTER_ROUNDING, Precision.FLOAT64, 4),
    (ScaleApplication.DIVIDE, ZeroPointOrder.BEFORE_ROUNDING, Precision.FLOAT64, 0),
    (ScaleApplication.RECIPROCAL_MULTIPLY, ZeroPointOrder.AFTER_ROUNDING, Precision.FLOAT32, 1),
    (ScaleApplication.RECIPROCAL_MULTIPLY, ZeroPointOrder.BEFORE_ROUNDING, Precision.FLOAT32, 1),
    (ScaleApplication.RECIPROCAL_MULTIPLY, ZeroPointOrder.AFTER_ROUNDING, Precision.FLOAT64, 1),
    (ScaleApplication.RECIPROCAL_MULTIPLY, ZeroPointOrder.BEFORE_ROUNDING, Precision.FLOAT64, 1),
    (ScaleApplication.RECIPROCAL_MULTIPLY, ZeroPointOrder.FUSED_MULTIPLY_ADD, Precision.FLOAT32, 2),
]
FAST_FORMATS = [INT8, UINT8, INT16, UINT16, INT4, UINT4, UINT2, IntFormat(8, True, True), IntFormat(1, False)]
# Layouts longer than a code buffer (refquant.kernels.quant.BUF = 1024 elements): scalar rows whose parameter
# changes per row or per block (short last blocks), vector rows along the last axis and per block.
FAST_LAYOUTS: list[tuple[tuple[int, ...], Granularity]] = [
    ((5, 2100), PER_TENSOR),
    ((5, 2100), PerAxis(0)),
    ((7, 1500), PerAxis(1)),
    ((2, 3, 1100), PerAxis(1)),
    ((4, 1100), PerBlock(1, 64)),
    ((5, 1030), PerBlock(0, 2)),
]


def _kinds_seen(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the loop kind (``tail[0]``) of every quantize kernel call."""
    kinds: list[int] = []
    original = kq.quantize_rows
    n_head = 16  # arguments before the work range (w0, w1)

    def spy(*args: Any) -> Any:
        kinds.append(int(args[n_head + 2]))
        return original(*args)

    monkeypatch.setattr(kq, "quantize_rows", spy)
    return kinds


@pytest.mark.parametrize("rounding", [RoundingMode.HALF_TO_EVEN, RoundingMode.HALF_AWAY_FROM_ZERO])
@pytest.mark.parametrize(("sapp", "zorder", "precision", "kind"), FAST_OPTIONS)
def test_quantize_branch_free_loops(
    monkeypatch: pytest.MonkeyPatch,
    rounding: RoundingMode,
    sapp: ScaleApplication,
    zorder: ZeroPointOrder,
    precision: Precision,
    kind: int,
) -> None:
    """The vectorised loops on tie-dense values (ties, their float neighbours, qmin - 1/2 and qmax + 1/2 after
    the zero point, +-inf, +-0, huge values, NaN) for every output width, layout and NaN policy; each call is
    checked to run the expected loop."""
    kinds = _kinds_seen(monkeypatch)
    rng = np.random.default_rng(
        FAST_OPTIONS.index((sapp, zorder, precision, kind)) * 2 + int(rounding.value == "half_to_even")
    )
    opts = {"rounding": rounding, "scale_application": sapp, "zero_point_order": zorder, "precision": precision}
    dtype = np.dtype(np.float64) if precision is Precision.FLOAT64 else np.dtype(np.float32)
    for i, fmt in enumerate(FAST_FORMATS):
        for j, (shape, gran) in enumerate(FAST_LAYOUTS):
            zp_kind = ["min", "max", "ends", "zero", "random"][(i + j) % 5]
            params = _params(rng, fmt, shape, gran, SCALES[(3 * i + j) % 7], zp_kind)
            x = _tie_dense(rng, params, shape, dtype, nan=True)
            for nan_policy in NanPolicy:
                kinds.clear()
                got = _check_quantize(x, params, nan_policy=nan_policy, **opts)
                assert isinstance(got, SpecError) == (nan_policy is NanPolicy.RAISE and bool(np.isnan(x).any()))
                assert kinds
                assert set(kinds) == {kind}
            kinds.clear()
            _check_quantize(np.where(np.isnan(x), 0, x), params, **opts)  # no NaN: RAISE passes
            assert set(kinds) == {kind}


def test_quantize_branch_free_loops_exact_edges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hand-picked values at the edges of the float clip, per tensor, every fast option set."""
    kinds = _kinds_seen(monkeypatch)
    for fmt in (INT8, UINT8, INT16, UINT16, INT4):
        for z in (fmt.qmin, 0 if fmt.signed else 1, fmt.qmax):
            for s in (1.0, 0.5, 2.0**-10, 0.1):
                lo, hi = fmt.qmin - z, fmt.qmax - z  # the codes' range before the zero point
                base = np.array(
                    [lo - 0.5, lo - 1.5, lo - 0.5 + 2**-20, lo, hi, hi + 0.5, hi + 0.5 - 2**-20, hi + 1.5, 0.5, -0.5,
                     1.5, -1.5, 2.5, -2.5, 2.0**23 + 1, -(2.0**23) - 1, 2.0**24, 2.0**31, -(2.0**31), 2.0**40,
                     -(2.0**40), 1e30, -1e30, 3.4e38, -3.4e38, np.inf, -np.inf, 0.0, -0.0, np.nan]
                )  # fmt: skip
                for sapp, zorder, precision, kind in FAST_OPTIONS:
                    dtype = np.float64 if precision is Precision.FLOAT64 else np.float32
                    with np.errstate(over="ignore"):
                        x = (base * s).astype(dtype)
                    for rounding in (RoundingMode.HALF_TO_EVEN, RoundingMode.HALF_AWAY_FROM_ZERO):
                        kinds.clear()
                        _check_quantize(
                            x,
                            QuantParams(s, z, fmt),
                            rounding=rounding,
                            scale_application=sapp,
                            zero_point_order=zorder,
                            precision=precision,
                            nan_policy=NanPolicy.TO_QMIN,
                        )
                        assert kinds == [kind, kind]  # the plain call and the call with out=


@pytest.mark.parametrize("precision", [Precision.FLOAT32, Precision.FLOAT64])
def test_quantize_checked_reciprocal_around_its_threshold(
    monkeypatch: pytest.MonkeyPatch, precision: Precision
) -> None:
    """DIVIDE with the zero point after rounding multiplies by the reciprocal and divides only the vectors with a
    lane within ``NEAR * |v|`` of a half-integer (kind 4).  Quotients placed at relative distances from 0 to
    ``64 * NEAR`` either side of half-integers, one per vector lane so that flagged and unflagged vectors mix,
    over many scales (whose reciprocals round up and down), must give the spec's codes."""
    kinds = _kinds_seen(monkeypatch)
    rng = np.random.default_rng(41)
    dtype = np.float64 if precision is Precision.FLOAT64 else np.float32
    n = 16 * 400 + 7  # whole vectors and a tail
    for fmt in (INT8, UINT16, INT4):
        for s in np.concatenate([rng.uniform(1e-3, 10.0, 12), [0.1, 0.3, 3.0, 2.0**-126]]):
            half = rng.integers(fmt.qmin, fmt.qmax + 1, n) + 0.5 - (0 if fmt.signed else fmt.qmax // 2)
            rel = rng.choice([0.0, 0.25, 0.5, 0.9, 1.0, 1.1, 2.0, 4.0, 64.0], n) * kq.NEAR
            sign = rng.choice([-1.0, 1.0], n)
            x = (half * (1.0 + sign * rel) * s).astype(dtype)
            x[rng.integers(0, n, 20)] = np.nan
            params = QuantParams(s, 0 if fmt.signed else fmt.qmax // 2, fmt)
            for rounding in (RoundingMode.HALF_TO_EVEN, RoundingMode.HALF_AWAY_FROM_ZERO):
                kinds.clear()
                _check_quantize(x, params, rounding=rounding, precision=precision, nan_policy=NanPolicy.TO_ZERO_POINT)
                assert set(kinds) == {4}


@pytest.mark.parametrize("scale", [1e-40, 2.0**-129, 1e38, 3.0e38])
def test_quantize_divide_without_a_normal_reciprocal_divides(scale: float) -> None:
    """A float32 scale whose reciprocal overflows (subnormal scales) or is subnormal (scales above 2**126) has no
    reciprocal with a relative error of at most 2**-24: float32 DIVIDE then runs the dividing loop (kind 0), and
    the codes still match the spec."""
    params = QuantParams(scale, 3, INT8)
    with np.errstate(over="ignore"):  # beyond float32 for the largest scales: +-inf, which saturate
        x = (np.arange(-200, 200, dtype=np.float64) * 0.5 * params.scale.astype(np.float64)).astype(np.float32)
    with pytest.MonkeyPatch.context() as mp:
        kinds = _kinds_seen(mp)
        _check_quantize(x, params)
        assert set(kinds) == {0}


def test_quantize_other_options_run_the_generic_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """WRAP, 32-bit formats and the other rounding modes run the element-by-element loop (kind 3)."""
    kinds = _kinds_seen(monkeypatch)
    x = _tie_dense(np.random.default_rng(9), QuantParams(0.5, 3, INT8), (3, 1500), np.float32, nan=True)
    for fmt, opts in (
        (INT8, {"overflow": Overflow.WRAP}),
        (INT32, {}),
        (UINT8, {"rounding": RoundingMode.HALF_TO_ODD}),
        (INT16, {"rounding": RoundingMode.TOWARD_ZERO, "nan_policy": NanPolicy.TO_QMIN}),
    ):
        kinds.clear()
        _check_quantize(x, QuantParams(0.5, 3, fmt), **{"nan_policy": NanPolicy.TO_ZERO_POINT, **opts})
        assert kinds == [3, 3]


# --- the fused multiply-add ----------------------------------------------------------------------------------------


def _round_to_float32(v: Fraction) -> np.float32:
    """The float32 nearest to the exact rational ``v`` (ties to even), by comparing exact candidates."""
    if abs(v) >= Fraction(2**128 - 2**103):  # at or beyond the midpoint between the largest float32 and 2**128
        return np.float32(np.inf if v > 0 else -np.inf)
    guess = np.float32(float(v))  # within one float32 step of the answer
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    finite = [c for c in candidates if np.isfinite(c)]
    best = min(finite, key=lambda c: (abs(Fraction(float(c)) - v), int(np.array(c, np.float32).view(np.uint32)) & 1))
    return np.float32(best)


@settings(max_examples=300)
@given(
    a=st.floats(width=32, allow_nan=False, allow_infinity=False),
    b=st.floats(width=32, min_value=2.0**-30, max_value=2.0**30),
    k=st.integers(-(2**25), 2**25),
    c=st.just(0) | st.integers(-(2**31), 2**32 - 1),
    nudge=st.integers(-2, 2),
)
def test_fma32_is_correctly_rounded(a: float, b: float, k: int, c: int, nudge: int) -> None:
    """The kernel's fma32 and the spec's _fma_float32 round a*b + c once, to the nearest float32 (ties to even).

    ``a2`` is chosen so that ``a2 * b`` lies next to ``k + 1/2`` minus ``c``: exactly where one fused
    rounding and two separate roundings differ.
    """
    b32 = np.float32(b)
    a2 = np.float32((k + 0.5 - c) / float(b32))
    for _ in range(abs(nudge)):
        a2 = np.nextafter(a2, np.float32(np.inf if nudge > 0 else -np.inf))
    c32 = np.float32(c)  # the zero point enters as float32 (round half to even), as in the spec
    for x in (np.float32(a), a2):
        exact = Fraction(float(x)) * Fraction(float(b32)) + Fraction(float(c32))
        want = _round_to_float32(exact)
        got = np.float32(kq.fma32(x, b32, c32))  # returned as a Python float (exactly the float32 value)
        spec = affine._fma_float32(np.array([x]), np.array([b32]), np.array([c32]))[0]
        assert np.array([got, spec], np.float32).view(np.uint32).tolist() == [np.array(want).view(np.uint32)] * 2


@settings(max_examples=200)
@given(
    seed=st.integers(0, 2**32 - 1),
    fmt=st.sampled_from([INT8, UINT8, INT16, UINT16, INT32, IntFormat(32, False), IntFormat(24, True)]),
    scale=st.sampled_from([0.1, 0.00214854861, 3.7, 1e-3, 0.3, 1.0 / 3.0]),
    rounding=st.sampled_from([m for m in RoundingMode if m is not RoundingMode.STOCHASTIC]),
    overflow=st.sampled_from(list(Overflow)),
    dtype=st.sampled_from(FLOAT_DTYPES),
    per_axis=st.booleans(),
)
def test_quantize_fused_multiply_add_near_ties(
    seed: int,
    fmt: IntFormat,
    scale: float,
    rounding: RoundingMode,
    overflow: Overflow,
    dtype: np.dtype[Any],
    per_axis: bool,
) -> None:
    """FUSED_MULTIPLY_ADD where it matters: x * (1/s) + z next to a tie, large zero points (inexact in float32)."""
    rng = np.random.default_rng(seed)
    shape = (4, 64)
    gran: Granularity = PerAxis(0) if per_axis else PER_TENSOR
    params = _params(rng, fmt, shape, gran, scale, "random")
    s_full, z_full = params.expand(shape)
    inv = np.float32(1) / s_full.astype(np.float32)
    k = rng.integers(fmt.qmin, fmt.qmax, shape, endpoint=True).astype(np.float64)
    x = ((k + 0.5 - z_full) / inv.astype(np.float64)).astype(np.float32)
    steps = rng.integers(-2, 3, shape)  # up to two float32 steps either side of the tie
    for _ in range(2):
        up, down = np.nextafter(x, np.float32(np.inf)), np.nextafter(x, np.float32(-np.inf))
        x = np.where(steps > 0, up, np.where(steps < 0, down, x))
        steps = steps - np.sign(steps)
    opts: dict[str, Any] = {
        "rounding": rounding,
        "overflow": overflow,
        "zero_point_order": ZeroPointOrder.FUSED_MULTIPLY_ADD,
        "scale_application": ScaleApplication.RECIPROCAL_MULTIPLY,
        "precision": Precision.FLOAT32,
    }
    if overflow is Overflow.WRAP and fmt.narrow_range:
        opts["overflow"] = Overflow.SATURATE
    with np.errstate(over="ignore"):
        x = x.astype(dtype)
    _check_quantize(x, params, **opts)


def test_fused_multiply_add_needs_float32_reciprocal() -> None:
    """FMA with FLOAT64 precision or DIVIDE is an error in both (the same condition and message)."""
    params = QuantParams(0.1, 3, INT8)
    x = np.array([0.25, 1.5], np.float64)
    fma = ZeroPointOrder.FUSED_MULTIPLY_ADD
    for kw in (
        {
            "zero_point_order": fma,
            "precision": Precision.FLOAT64,
            "scale_application": ScaleApplication.RECIPROCAL_MULTIPLY,
        },
        {"zero_point_order": fma, "scale_application": ScaleApplication.DIVIDE},
        {"zero_point_order": fma},
        {"profile": profiles.TORCH, "precision": Precision.FLOAT64},
    ):
        got = _check_quantize(x, params, **kw)
        assert isinstance(got, SpecError)
        assert got.condition == "unsupported_option_combination"


# --- specials, layouts, sizes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [INT8, UINT8, INT32, IntFormat(32, False), IntFormat(1, False), IntFormat(1, True)])
@pytest.mark.parametrize("precision", list(Precision))
def test_quantize_nan_and_infinities(fmt: IntFormat, precision: Precision) -> None:
    x = np.array([0.0, np.nan, np.inf, -np.inf, 1.0, -np.nan, 1e30], np.float32)
    for zp in {fmt.qmin, fmt.qmax, max(fmt.qmin, 0)}:
        params = QuantParams(0.5, zp, fmt)
        for policy in NanPolicy:
            for overflow in Overflow:
                for sapp in ScaleApplication:
                    got = _check_quantize(
                        x, params, nan_policy=policy, overflow=overflow, precision=precision, scale_application=sapp
                    )
                    if policy is NanPolicy.RAISE:  # the error names the first NaN's index
                        assert isinstance(got, SpecError)
                        assert got.condition == "nan_input"
                        assert "(1,)" in str(got)
        # infinities saturate under WRAP too (a wrap of an infinity has no residue)
        inf = np.array([np.inf, -np.inf], np.float64)
        np.testing.assert_array_equal(
            fast.quantize(inf, params, overflow=Overflow.WRAP, precision=precision), [fmt.qmax, fmt.qmin]
        )


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_quantize_huge_values_wrap_and_saturate(dtype: np.dtype[Any]) -> None:
    """Values far beyond the format (and beyond int64 after scaling) wrap by their exact residue or saturate."""
    big = [1e30, -1e30, 3e38, -3e38, 2.0**62, -(2.0**62), 2.0**63, 2.0**64 + 2.0**12, 1e300, 65504.0, -65504.0]
    with np.errstate(over="ignore"):
        x = np.array(big, np.float64).astype(dtype)
    for fmt in (INT8, UINT8, INT16, INT32, IntFormat(32, False), IntFormat(13, True), IntFormat(1, False)):
        for scale in (1.0, 0.5, 2.0**-20, 1e-30):
            for precision in Precision:
                for rounding in (RoundingMode.HALF_TO_EVEN, RoundingMode.TOWARD_ZERO, RoundingMode.HALF_TO_ODD):
                    for overflow in Overflow:
                        _check_quantize(
                            x,
                            QuantParams(scale, fmt.qmax, fmt),
                            precision=precision,
                            rounding=rounding,
                            overflow=overflow,
                        )


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_quantize_views(view: str, dtype: np.dtype[Any]) -> None:
    rng = np.random.default_rng(7)
    for shape, gran in GRANULARITIES:
        params = _params(rng, INT8, shape, gran, 0.0625, "random")
        x = _view(rng, _tie_dense(rng, params, shape, dtype, True), view)
        for rounding in (RoundingMode.HALF_TO_EVEN, RoundingMode.HALF_AWAY_FROM_ZERO, RoundingMode.TOWARD_NEGATIVE):
            _check_quantize(x, params, rounding=rounding, nan_policy=NanPolicy.TO_ZERO_POINT)
    # a transposed view with per-axis parameters along either axis
    base = _tie_dense(rng, QuantParams(0.0625, 0, INT8), (6, 5), dtype, False)
    for axis in (0, 1, -1, -2):
        params = _params(rng, UINT8, base.T.shape, PerAxis(axis), 0.0625, "random")
        _check_quantize(base.T, params)


def test_quantize_zero_d_and_empty() -> None:
    for value in (0.75, -0.5, np.inf, 1e9):
        for dtype in FLOAT_DTYPES:
            with np.errstate(over="ignore"):
                x = np.array(value, dtype)
            got = _check_quantize(x, QuantParams(0.5, 1, INT8))
            assert got.shape == ()
        _check_quantize(value, QuantParams(0.5, 1, INT8))  # a Python float
    _check_quantize(np.array(np.nan, np.float32), QuantParams(0.5, 1, INT8), nan_policy=NanPolicy.TO_QMIN)
    _check_quantize(np.array(np.nan, np.float32), QuantParams(0.5, 1, INT8))  # nan_input at index ()
    for shape in ((0,), (3, 0), (0, 4, 2)):
        x = np.zeros(shape, np.float32)
        _check_quantize(x, QuantParams(0.5, 1, UINT8))
        _check_quantize(x, QuantParams(np.ones(shape[-1], np.float32), 1, UINT8, PerAxis(-1)))
        _check_quantize(x, QuantParams(np.ones((*shape[:-1], -(-shape[-1] // 2))), 1, UINT8, PerBlock(-1, 2)))
    # per axis on a 0-d tensor is an axis error in both
    got = _check_quantize(np.array(1.0, np.float32), QuantParams([0.5], 0, INT8, PerAxis(0)))
    assert isinstance(got, SpecError)
    assert got.condition == "axis_out_of_range"


def test_quantize_integer_inputs() -> None:
    """Integer inputs convert exactly (or fail with inexact_input) as in the spec."""
    params = QuantParams(0.5, 0, INT16)
    for arr in (
        np.arange(-5, 5, dtype=np.int8),
        np.array([2**24, -(2**24), 3], np.int32),
        np.array([2**24 + 1], np.int32),  # inexact in float32, exact in float64
        np.array([2**53 + 1], np.int64),  # inexact in both
        np.array([2**63 - 1], np.int64),
        np.array([2**64 - 1], np.uint64),
        np.array([7, 9], np.uint8),
    ):
        for precision in Precision:
            _check_quantize(arr, params, precision=precision)


def test_quantize_large_array_takes_the_parallel_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """An array past the real serial threshold (not lowered): every layout runs a parallel kernel."""
    calls: list[str] = []
    for name in ("quantize_rows_par", "dequantize_rows_par"):
        original = getattr(kq, name)
        monkeypatch.setattr(kq, name, lambda *a, _f=original, _n=name: calls.append(_n) or _f(*a))
    n = fast._serial_elements() + 12345
    rng = np.random.default_rng(3)
    x = (rng.integers(-300, 300, n) + 0.5).astype(np.float32) * np.float32(0.25)
    x[::97] = np.nextafter(x[::97], np.float32(np.inf))
    x[5::1001] = np.nan
    for shape, gran, pshape in (
        ((n,), PER_TENSOR, ()),
        ((n // 5, 5), PerAxis(1), (5,)),
        ((5, n // 5), PerAxis(0), (5,)),
        ((n // 6, 6), PerBlock(1, 4), (n // 6, 2)),
        ((6, n // 6), PerBlock(0, 4), (2, n // 6)),
    ):
        m = int(np.prod(shape))
        params = QuantParams(np.full(pshape, 0.25), np.full(pshape, 3), INT8, gran)
        _check_quantize(x[:m].reshape(shape), params, profile=profiles.TORCH, nan_policy=NanPolicy.TO_QMIN)
        _check_quantize(
            x[:m].reshape(shape),
            params,
            rounding=RoundingMode.HALF_TO_ODD,
            overflow=Overflow.WRAP,
            nan_policy=NanPolicy.TO_ZERO_POINT,
        )
        got = _check_quantize(x[:m].reshape(shape), params)  # NaN under RAISE, found by the parallel kernel
        assert isinstance(got, SpecError)
        assert got.condition == "nan_input"
    _check_dequantize(rng.integers(-128, 128, n).astype(np.int8), QuantParams(0.25, -3, INT8))
    assert set(calls) == {"quantize_rows_par", "dequantize_rows_par"}
    assert len(calls) == 5 * (2 + 2 + 1) + 2  # a successful check calls fast twice (once with out=)


# --- errors and out= -------------------------------------------------------------------------------------------------


def test_quantize_errors_match_spec() -> None:
    x = np.array([[0.5, 1.5], [2.5, 3.5]], np.float32)
    p = QuantParams(0.5, 0, INT8)
    cases: list[tuple[Any, Any, dict[str, Any], str]] = [
        (x, "params", {}, "invalid_option"),
        (x, p, {"profile": "onnx"}, "invalid_option"),
        (x, p, {"rounding": "half_to_even"}, "invalid_option"),
        (x, p, {"overflow": "wrap"}, "invalid_option"),
        (x.astype(np.complex64), p, {}, "unsupported_dtype"),
        (x.astype(bool), p, {}, "unsupported_dtype"),
        (np.array(["a"]), p, {}, "unsupported_dtype"),
        (x, QuantParams([0.5, 0.25, 1.0], 0, INT8, PerAxis(0)), {}, "scale_shape_mismatch"),
        (x, QuantParams([0.5, 0.25], 0, INT8, PerAxis(2)), {}, "axis_out_of_range"),
        (x, QuantParams([0.5, 0.25], 0, INT8, PerAxis(-3)), {}, "axis_out_of_range"),
        (x, QuantParams(np.ones((2, 2)), 0, INT8, PerBlock(1, 2)), {}, "scale_shape_mismatch"),
        (x, QuantParams(np.ones((2, 1)), 0, INT8, PerBlock(3, 2)), {}, "axis_out_of_range"),
        (
            x,
            QuantParams(1e-40, 0, INT8),
            {"scale_application": ScaleApplication.RECIPROCAL_MULTIPLY},
            "reciprocal_not_finite",
        ),
        (x, QuantParams([1.0, 1e-40], 0, INT8, PerAxis(1)), {"profile": profiles.TORCH}, "reciprocal_not_finite"),
        (x, QuantParams(0.5, 0, IntFormat(8, True, True)), {"overflow": Overflow.WRAP}, "wrap_narrow_range"),
        (x, p, {"rounding": RoundingMode.STOCHASTIC}, "uniform_missing"),
        (x, p, {"uniform": np.zeros(2)}, "uniform_unexpected"),
        (x, p, {"rounding": RoundingMode.STOCHASTIC, "uniform": np.ones((2, 2))}, "uniform_out_of_range"),
        (x, p, {"rounding": RoundingMode.STOCHASTIC, "uniform": np.zeros(3)}, "shape_mismatch"),
        (x, p, {"rounding": RoundingMode.STOCHASTIC, "uniform": np.full(2, np.nan)}, "uniform_not_finite"),
        (x, p, {"rounding": RoundingMode.STOCHASTIC, "uniform": np.array(["a"])}, "unsupported_dtype"),
        (np.array([1, np.nan, 2, np.nan], np.float32), p, {}, "nan_input"),
    ]
    # subnormal scale: the reciprocal overflows float32 but not float64
    ok = _check_quantize(
        x,
        QuantParams(1e-40, 0, INT8),
        scale_application=ScaleApplication.RECIPROCAL_MULTIPLY,
        precision=Precision.FLOAT64,
    )
    assert isinstance(ok, np.ndarray)
    for arr, params, kw, condition in cases:
        got = _check_quantize(arr, params, **kw)
        assert isinstance(got, SpecError), (kw, got)
        assert got.condition == condition, (kw, got)


def _bad_outs(shape: tuple[int, ...], dtype: Any) -> list[Any]:
    wrong_shape = np.zeros((*shape, 1), dtype)
    other = np.int16 if np.dtype(dtype) != np.int16 else np.int32
    strided = np.zeros((*shape[:-1], shape[-1] * 2), dtype)[..., ::2]
    readonly = np.zeros(shape, dtype)
    readonly.setflags(write=False)
    return [wrong_shape, np.zeros(shape, other), strided, readonly, np.zeros(shape, dtype).tolist()]


@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"rounding": RoundingMode.TOWARD_POSITIVE, "overflow": Overflow.WRAP},
        {"rounding": RoundingMode.STOCHASTIC, "uniform": 0.5},  # runs the spec function: out= checked the same way
    ],
    ids=["kernel", "generic-kernel", "spec-fallback"],
)
@pytest.mark.parametrize("fmt", [INT8, UINT8, INT16, UINT16, INT32, IntFormat(32, False), UINT4])
def test_quantize_out(opts: dict[str, Any], fmt: IntFormat) -> None:
    x = np.array([[0.5, -1.5, 300.0, -2.25], [1e9, -1e9, 0.0, 7.75]], np.float32)
    params = QuantParams(0.25, fmt.qmin, fmt)
    expected = affine.quantize(x, params, **opts)
    out = garbage(x.shape, fmt.storage_dtype)
    assert fast.quantize(x, params, out=out, **opts) is out
    assert_same(expected, out)
    # a signed code in an unsigned out (or the reverse) is the wrong dtype, not a reinterpretation
    twin = np.dtype(f"{'u' if fmt.signed else ''}int{fmt.storage_dtype.itemsize * 8}")
    for bad in [*_bad_outs(x.shape, fmt.storage_dtype), np.zeros(x.shape, twin)]:
        with pytest.raises(SpecError) as info:
            fast.quantize(x, params, out=bad, **opts)
        assert info.value.condition == "invalid_out"
    # with a valid out, an input the spec rejects raises the spec's error
    with pytest.raises(SpecError) as info:
        fast.quantize(np.array([np.nan], np.float32), params, out=np.zeros(1, fmt.storage_dtype), **opts)
    assert info.value.condition == "nan_input"


def test_quantize_out_must_not_alias_the_input() -> None:
    x = np.array([0.5, 1.5, -2.5, 4.0], np.float32)
    for opts in ({}, {"rounding": RoundingMode.STOCHASTIC, "uniform": 0.5}):
        with pytest.raises(SpecError, match="invalid_out"):
            fast.quantize(x, QuantParams(0.5, 0, INT32), out=x.view(np.int32), **opts)
    np.testing.assert_array_equal(x, np.array([0.5, 1.5, -2.5, 4.0], np.float32))  # and x is untouched


def test_quantize_out_zero_d_and_empty() -> None:
    params = QuantParams(0.5, 0, INT8)
    out0 = np.zeros((), np.int8)
    assert fast.quantize(np.float32(1.5), params, out=out0) is out0
    assert int(out0) == 3
    oute = np.zeros((0, 3), np.int8)
    assert fast.quantize(np.zeros((0, 3), np.float32), params, out=oute) is oute
    for bad in (np.zeros((1,), np.int8), np.zeros((), np.uint8)):
        with pytest.raises(SpecError, match="invalid_out"):
            fast.quantize(np.float32(1.5), params, out=bad)


# --- dequantize ----------------------------------------------------------------------------------------------------


def _codes(rng: np.random.Generator, fmt: IntFormat, shape: tuple[int, ...], dtype: np.dtype[Any], bad: bool) -> Any:
    info = np.iinfo(dtype)
    lo, hi = max(int(info.min), fmt.qmin), min(int(info.max), fmt.qmax)
    q = rng.integers(lo, hi, shape, endpoint=True, dtype=np.int64 if dtype != np.uint64 else np.uint64)
    pick = rng.integers(0, 4, shape)
    q = np.where(pick == 1, lo, np.where(pick == 2, hi, q))
    if bad:  # one code outside the format (where the dtype can hold one)
        outside = [v for v in (fmt.qmin - 1, fmt.qmax + 1) if int(info.min) <= v <= int(info.max)]
        if outside and q.size:
            q = q.astype(dtype)
            q.flat[rng.integers(0, q.size)] = rng.choice(outside)
    return np.asarray(q).astype(dtype)


@settings(max_examples=500)
@given(
    seed=st.integers(0, 2**32 - 1),
    fmt=FORMATS,
    layout=_layouts(),
    scale=st.sampled_from(SCALES),
    zp_kind=st.sampled_from(["min", "max", "ends", "zero", "random"]),
    dtype=st.sampled_from(CODE_DTYPES),
    view=st.sampled_from(VIEWS),
    bad=st.integers(0, 9).map(lambda v: v == 0),
    chunk=st.sampled_from([1, 3, 16384]),
    parallel=st.booleans(),
)
def test_dequantize_matches_spec(
    seed: int,
    fmt: IntFormat,
    layout: tuple[tuple[int, ...], Granularity],
    scale: float,
    zp_kind: str,
    dtype: np.dtype[Any],
    view: str,
    bad: bool,
    chunk: int,
    parallel: bool,
) -> None:
    rng = np.random.default_rng(seed)
    shape, gran = layout
    if int(np.iinfo(dtype).max) < fmt.qmin or int(np.iinfo(dtype).min) > fmt.qmax:
        dtype = np.dtype(np.int64)
    params = _params(rng, fmt, shape, gran, scale, zp_kind)
    q = _view(rng, _codes(rng, fmt, shape, dtype, bad), view)
    with _work_split(chunk, parallel):
        _check_dequantize(q, params)


def test_dequantize_rounds_wide_codes_half_to_even() -> None:
    """Codes beyond 2**24 convert to float32 with one rounding (then the product is a second one)."""
    fmt = IntFormat(32, False)
    q = np.array([2**24 + 1, 2**24 + 3, 2**32 - 1, 2**31, 0, 2**25 + 2], np.uint32)
    with np.errstate(over="ignore"):  # products overflow to inf in both
        for scale in (1.0, 0.1, 3e-39, 1e30):
            for zp in (0, 1, 2**31 + 1, 2**32 - 1):
                _check_dequantize(q, QuantParams(scale, zp, fmt))
                _check_dequantize(q.astype(np.int64), QuantParams(scale, zp, fmt))
        _check_dequantize(np.array([-(2**31), 2**31 - 1], np.int32), QuantParams(1e30, 2**31 - 1, INT32))


def test_dequantize_errors_and_fallbacks() -> None:
    p = QuantParams(0.5, 0, INT4)
    for q in (
        np.array([1.0, 2.0]),  # not integer codes
        np.array([True, False]),
        np.array([-9, 0], np.int8),  # code_out_of_range, index (0,)
        np.array([[0, 1], [2, 8]], np.int16),  # index (1, 1)
        np.array([2**64 - 1], np.uint64),
        np.array([3, 7], np.uint64),  # a dtype without a kernel: the spec computes it
        np.array([3, 7], np.dtype(">u8")),
        [1, 2, -8],  # a list
        np.int8(3),
    ):
        _check_dequantize(q, p)
    _check_dequantize(np.array([1, 2]), "params")
    _check_dequantize(np.array([[1, 2]]), QuantParams([0.5, 0.5], 0, INT4, PerAxis(0)))  # scale_shape_mismatch
    _check_dequantize(np.array([[1, 99]]), QuantParams([0.5, 0.5], 0, INT4, PerAxis(0)))  # the code is checked first
    _check_dequantize(np.array([1, 2]), QuantParams([0.5], 0, INT4, PerAxis(1)))  # axis_out_of_range


def test_dequantize_out() -> None:
    q = np.array([[1, -2, 127, -128], [0, 5, 6, 7]], np.int8)
    params = QuantParams([0.5, 0.25], [1, -1], INT8, PerAxis(0))
    out = garbage(q.shape, np.dtype(np.float32))
    assert fast.dequantize(q, params, out=out) is out
    assert_same(affine.dequantize(q, params), out)
    for bad in [*_bad_outs(q.shape, np.float32), np.zeros(q.shape, np.float64)]:
        with pytest.raises(SpecError) as info:
            fast.dequantize(q, params, out=bad)
        assert info.value.condition == "invalid_out"
    aliased = np.zeros(8, np.int32)
    with pytest.raises(SpecError, match="invalid_out"):
        fast.dequantize(aliased.reshape(2, 4), QuantParams(0.5, 0, INT32), out=aliased.view(np.float32).reshape(2, 4))
    out0 = np.zeros((), np.float32)
    assert fast.dequantize(np.array(3, np.int8), QuantParams(0.5, 1, INT8), out=out0) is out0
    assert float(out0) == 1.0
    # the spec fallback (uint64 codes) writes into out too
    out64 = garbage((2,), np.dtype(np.float32))
    assert fast.dequantize(np.array([3, 7], np.uint64), QuantParams(0.5, 1, UINT4), out=out64) is out64
    assert out64.tolist() == [1.0, 3.0]
