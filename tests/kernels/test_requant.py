"""refquant.fast.requantize against the specification (refquant.spec.fixed_point.requantize), bit for bit.

Every check computes the specification's result (or its error: ``SpecError`` or ``UnpredictableError``, with
the same ``condition`` and message) and the fast function's, and requires the same codes (same dtype and
shape, ``assert_array_equal``); each successful call is repeated with ``out=`` (a preallocated array filled
with garbage), which must be returned and hold the same codes.

Inputs: accumulators at the int32 limits and around them, values whose scaled result lies next to a tie
(``acc ~ (k + 1/2) / M``), int64 accumulators beyond int32 (an error under DOUBLE/SINGLE, exact under the
float roundings), every accumulator dtype; multipliers 0, below 2**-31 (flushed), exact powers of two,
``1 - 2**-40`` (which rounds up to ``(2**30, 1)``), 1, above 1, ``2**31`` (an unpredictable left shift),
random; per tensor and per channel along any axis (negative too); output formats of 1..32 bits, output zero
points at both ends, fused activation bounds.  The work split is tested by shrinking ``refquant.fast._CHUNK``
and forcing the parallel kernel (``refquant.fast._serial_elements``), and once past the real threshold.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refquant.fast as fast
from refquant.errors import SpecError, UnpredictableError
from refquant.kernels import requant as kr
from refquant.spec import fixed_point as fp
from refquant.spec.fixed_point import RequantRounding
from refquant.spec.formats import INT8, INT16, INT32, UINT8, UINT16, IntFormat
from refquant.spec.granularity import PER_TENSOR, Granularity, PerAxis, PerBlock
from tests.kernels.conftest import assert_same, garbage, outcome

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
ACC_DTYPES = [np.dtype(t) for t in (np.int32, np.int64, np.int8, np.uint8, np.int16, np.uint16, np.uint32)]
LIMITS = [INT32_MIN, INT32_MIN + 1, -(2**30), -1, 0, 1, 2**30, INT32_MAX - 1, INT32_MAX]
EDGE_MULTIPLIERS = [
    0.0,
    2.0**-40,  # below 2**-31: flushed to (0, 0)
    2.0**-32,
    2.0**-31,
    2.0**-31 * 1.5,
    1.5e-10,
    1e-6,
    2.0**-20,
    0.0072,
    0.25,
    0.3,
    0.5,
    0.999999,
    1 - 2**-31,
    1 - 2**-40,  # q * 2**31 rounds to 2**31: (2**30, 1)
    1.0,
    1 + 2**-30,
    1.5,
    2.0,
    3.0,
    2.0**10,
    2.0**30,
    2.0**31,  # DOUBLE: the factor 1 << 32 does not fit int32 (unpredictable); SINGLE clamps it
    2.0**31 * 1.5,
]
FORMATS = st.builds(
    lambda bits, signed, narrow: IntFormat(bits, signed, narrow and signed and bits > 1),
    st.integers(1, 32),
    st.booleans(),
    st.integers(0, 4).map(lambda v: v == 0),
)


# --- comparison helpers ------------------------------------------------------------------------------------------


def _check(acc: Any, multiplier: Any, **kwargs: Any) -> Any:
    """Spec against fast, then fast with ``out=``; returns the spec outcome."""
    before = np.array(acc, copy=True) if isinstance(acc, np.ndarray) else None
    expected = outcome(fp.requantize, acc, multiplier, **kwargs)
    assert_same(expected, outcome(fast.requantize, acc, multiplier, **kwargs))
    if isinstance(expected, np.ndarray):
        out = garbage(expected.shape, expected.dtype)
        assert fast.requantize(acc, multiplier, out=out, **kwargs) is out
        assert_same(expected, out)
    if before is not None:  # the accumulators are never written
        assert np.asarray(acc).tobytes() == before.tobytes()
    return expected


@contextmanager
def _work_split(chunk: int, parallel: bool) -> Iterator[None]:
    """Work items of ``chunk`` elements; with ``parallel`` every call takes the parallel kernel."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fast, "_CHUNK", chunk)
        if parallel:
            mp.setattr(fast, "_serial_elements", lambda: 0)
        yield


# --- input generation --------------------------------------------------------------------------------------------


def _multipliers(rng: np.random.Generator, n: int | None, kind: str) -> Any:
    """One multiplier (``n is None``) or ``n`` of them: edge values, random ones, or a mixture."""
    size = 1 if n is None else n
    edge = rng.choice(np.array(EDGE_MULTIPLIERS), size)
    if kind == "edge":
        m = edge
    else:
        small = np.exp(rng.uniform(np.log(1e-9), np.log(1.0), size))
        large = rng.uniform(1.0, 200.0, size)
        pow2 = 2.0 ** rng.integers(-31, 31, size).astype(np.float64)
        m = np.where(rng.integers(0, 2, size) == 1, small, np.where(rng.integers(0, 4, size) == 0, large, pow2))
        if kind == "mixed":
            m = np.where(rng.integers(0, 3, size) == 0, edge, m)
    return float(m[0]) if n is None else m


def _accumulators(
    rng: np.random.Generator, shape: tuple[int, ...], m_full: np.ndarray, fmt: IntFormat, zp: int, dtype: np.dtype[Any]
) -> np.ndarray:
    """Accumulators of ``dtype``: limits, near-ties ``(k + 1/2) / M`` with the result inside the format, random."""
    info = np.iinfo(dtype)
    lo = int(info.min) if dtype != np.int64 else INT32_MIN - 3
    hi = int(info.max) if dtype != np.int64 else INT32_MAX + 3
    k = rng.integers(fmt.qmin, fmt.qmax, shape, endpoint=True) - zp
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        near = np.round((k + 0.5) / m_full) + rng.integers(-1, 2, shape)
    near = np.where(np.isfinite(near), np.clip(near, lo, hi), 0).astype(np.int64)
    kind = rng.integers(0, 5, shape)
    acc = np.where(kind == 0, rng.choice(np.array(LIMITS), shape), near)
    acc = np.where(kind == 1, rng.integers(lo, hi, shape, endpoint=True), acc)
    acc = np.where(kind == 2, rng.choice(np.array([lo, hi, 0, -1, 1]), shape), acc)
    if dtype == np.int64 and rng.integers(0, 4) == 0:  # far beyond int32: exact int64 under the float roundings
        acc = np.where(kind == 3, rng.choice(np.array([-(2**63), 2**63 - 1, 2**53 + 1, -(2**40)]), shape), acc)
    return np.asarray(np.clip(acc, int(info.min), int(info.max)).astype(dtype))


def _view(arr: np.ndarray, how: str) -> Any:
    if arr.ndim == 0 or arr.size == 0:
        return arr
    if how == "strided":
        big = np.zeros((*arr.shape[:-1], arr.shape[-1] * 2), arr.dtype)
        big[..., ::2] = arr
        return big[..., ::2]
    if how == "fortran":
        return np.asfortranarray(arr)
    if how == "reversed":
        return np.ascontiguousarray(arr[..., ::-1])[..., ::-1]
    if how == "byteswapped":
        return arr.astype(arr.dtype.newbyteorder(">"))
    if how == "list":
        return arr.tolist()
    return arr


@st.composite
def _layouts(draw: st.DrawFn) -> tuple[tuple[int, ...], Granularity]:
    per_axis = draw(st.booleans())
    ndim = draw(st.integers(1 if per_axis else 0, 3))
    shape = tuple(draw(st.lists(st.integers(1, 7) | st.just(0), min_size=ndim, max_size=ndim)))
    if not per_axis:
        return shape, PER_TENSOR
    return shape, PerAxis(draw(st.integers(-ndim, ndim - 1)))


def _case(
    seed: int,
    fmt: IntFormat,
    layout: tuple[tuple[int, ...], Granularity],
    m_kind: str,
    zp_kind: str,
    dtype: np.dtype[Any],
    activation: str,
) -> tuple[np.ndarray, Any, dict[str, Any]]:
    rng = np.random.default_rng(seed)
    shape, gran = layout
    if isinstance(gran, PerAxis):
        m: Any = _multipliers(rng, shape[gran.axis], m_kind)
        view = [1] * len(shape)
        view[gran.axis] = shape[gran.axis]
        m_full = np.broadcast_to(np.asarray(m).reshape(view), shape)
    else:
        m = _multipliers(rng, None, m_kind)
        m_full = np.full(shape, m)
    zp = {"min": fmt.qmin, "max": fmt.qmax, "zero": max(fmt.qmin, 0)}.get(
        zp_kind, int(rng.integers(fmt.qmin, fmt.qmax, endpoint=True))
    )
    kwargs: dict[str, Any] = {"out_fmt": fmt, "out_zero_point": zp, "granularity": gran}
    if activation != "none":
        a, b = sorted(int(v) for v in rng.integers(fmt.qmin, fmt.qmax, 2, endpoint=True))
        if activation in ("min", "both"):
            kwargs["activation_min"] = a
        if activation in ("max", "both"):
            kwargs["activation_max"] = b
        if activation == "reversed" and a < b:
            kwargs.update(activation_min=b, activation_max=a)  # an error in both
    return _accumulators(rng, shape, m_full, fmt, zp, dtype), m, kwargs


# --- requantize against the spec ------------------------------------------------------------------------------------


CASE = {
    "seed": st.integers(0, 2**32 - 1),
    "fmt": FORMATS,
    "layout": _layouts(),
    "m_kind": st.sampled_from(["edge", "random", "mixed"]),
    "zp_kind": st.sampled_from(["min", "max", "zero", "random"]),
    "dtype": st.sampled_from([*ACC_DTYPES, np.dtype(np.int32), np.dtype(np.int64)]),  # int32/int64 weighted
    "activation": st.sampled_from(["none", "none", "min", "max", "both", "reversed"]),
    "rounding": st.sampled_from(list(RequantRounding)),
}


@settings(max_examples=1000)
@given(**CASE, view=st.sampled_from(["contiguous", "strided", "fortran", "reversed", "byteswapped", "list"]))
def test_requantize_matches_spec(
    seed: int,
    fmt: IntFormat,
    layout: tuple[tuple[int, ...], Granularity],
    m_kind: str,
    zp_kind: str,
    dtype: np.dtype[Any],
    activation: str,
    rounding: RequantRounding,
    view: str,
) -> None:
    acc, m, kwargs = _case(seed, fmt, layout, m_kind, zp_kind, dtype, activation)
    _check(_view(acc, view), m, rounding=rounding, **kwargs)


@settings(max_examples=300)
@given(**CASE, chunk=st.sampled_from([1, 3, 5]), parallel=st.booleans())
def test_requantize_matches_spec_across_work_items(
    seed: int,
    fmt: IntFormat,
    layout: tuple[tuple[int, ...], Granularity],
    m_kind: str,
    zp_kind: str,
    dtype: np.dtype[Any],
    activation: str,
    rounding: RequantRounding,
    chunk: int,
    parallel: bool,
) -> None:
    shape, gran = layout
    if shape:
        shape = (*shape[:-1], shape[-1] * 7)  # longer rows: several work items per row
    acc, m, kwargs = _case(seed, fmt, (shape, gran), m_kind, zp_kind, dtype, activation)
    with _work_split(chunk, parallel):
        _check(acc, m, rounding=rounding, **kwargs)


@pytest.mark.parametrize("rounding", list(RequantRounding))
@pytest.mark.parametrize("fmt", [INT8, UINT8, INT16, UINT16, INT32, IntFormat(32, False), IntFormat(8, True, True)])
def test_requantize_int32_limits_and_edge_multipliers(rounding: RequantRounding, fmt: IntFormat) -> None:
    """Every accumulator limit against every edge multiplier, zero points at both ends, with and without bounds."""
    acc = np.array(LIMITS, np.int32)
    for m in EDGE_MULTIPLIERS:
        for zp in sorted({fmt.qmin, fmt.qmax, max(fmt.qmin, 0)}):
            _check(acc, m, rounding=rounding, out_fmt=fmt, out_zero_point=zp)
            _check(acc.astype(np.int64), m, rounding=rounding, out_fmt=fmt, out_zero_point=zp)
            # the zero-point addition in isolation: elements one at a time, so that one overflow does not hide others
            for a in LIMITS[::2]:
                _check(np.array([a], np.int32), m, rounding=rounding, out_fmt=fmt, out_zero_point=zp)
        mid = (fmt.qmin + fmt.qmax) // 2
        _check(acc, m, rounding=rounding, out_fmt=fmt, activation_min=mid, activation_max=mid + 1)
        _check(acc, m, rounding=rounding, out_fmt=fmt, activation_min=fmt.qmin + 1)


@pytest.mark.parametrize("rounding", list(RequantRounding))
def test_requantize_exact_ties(rounding: RequantRounding) -> None:
    """``acc * 2**-s`` with odd ``acc``: every element is a tie (DOUBLE: away from zero, SINGLE: toward +inf,
    float roundings: to even)."""
    acc = np.arange(-1025, 1026, 2, dtype=np.int32)
    for s in range(1, 12):
        for fmt, zp in ((INT8, 0), (INT8, -128), (UINT8, 255), (INT16, 7), (INT32, 0)):
            _check(acc, 2.0**-s, rounding=rounding, out_fmt=fmt, out_zero_point=zp)
            _check(acc + 1, 2.0**-s * 3, rounding=rounding, out_fmt=fmt, out_zero_point=zp)
    # hand-worked from the definition: M = 1/4, acc = -10 -6 -2 2 6 10 (ties at -2.5 -1.5 -0.5 0.5 1.5 2.5)
    want = {
        RequantRounding.DOUBLE: [-3, -2, -1, 1, 2, 3],  # rounding_divide_by_pot: ties away from zero
        RequantRounding.SINGLE: [-2, -1, 0, 1, 2, 3],  # (acc * m + 2**(30 - e)) >> (31 - e): ties toward +inf
        RequantRounding.FLOAT32: [-2, -2, 0, 0, 2, 2],  # half to even
        RequantRounding.FLOAT64: [-2, -2, 0, 0, 2, 2],
    }[rounding]
    np.testing.assert_array_equal(fast.requantize(np.array([-10, -6, -2, 2, 6, 10]), 0.25, rounding=rounding), want)


@pytest.mark.parametrize("rounding", list(RequantRounding))
def test_requantize_per_channel(rounding: RequantRounding) -> None:
    """Per-channel multipliers with every edge value in one vector, along each axis (negative ones too)."""
    rng = np.random.default_rng(11)
    m = np.array(EDGE_MULTIPLIERS[:-2])  # without 2**31 and above, which make DOUBLE unpredictable everywhere
    c = m.size
    for shape, axis in (
        ((c,), 0),
        ((3, c), 1),
        ((3, c), -1),
        ((c, 5), 0),
        ((c, 5), -2),
        ((2, c, 3), 1),
        ((2, 3, c), -1),
    ):
        acc = rng.choice(np.array([*LIMITS[1:-1], 12345, -777, 2**20 + 1]), shape).astype(np.int32)
        for fmt, zp in ((INT8, -128), (INT8, 127), (UINT8, 0), (INT32, 0), (IntFormat(32, False), 2**31)):
            _check(acc, m, rounding=rounding, out_fmt=fmt, out_zero_point=zp, granularity=PerAxis(axis))
    # the unpredictable channel is found (and named) whichever channel it is
    acc = np.ones((2, 3), np.int32)
    _check(acc, [0.5, 2.0**31, 0.5], rounding=rounding, granularity=PerAxis(1))


def test_requantize_zero_d_and_empty() -> None:
    for rounding in RequantRounding:
        for acc in (np.array(1000, np.int32), np.int32(-77), 5, np.array(INT32_MAX, np.int64)):
            got = _check(acc, 0.01, rounding=rounding)
            assert got.shape == ()
        for shape in ((0,), (2, 0), (0, 3)):
            _check(np.zeros(shape, np.int32), 0.5, rounding=rounding)
            _check(np.zeros(shape, np.int32), np.full(shape[-1], 0.5), rounding=rounding, granularity=PerAxis(-1))
        out = np.zeros((), np.int8)
        assert fast.requantize(np.array(1000, np.int32), 0.01, rounding=rounding, out=out) is out
        assert int(out) == 10


def test_requantize_large_array_takes_the_parallel_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """An array past the real serial threshold (not lowered) runs the parallel kernel."""
    calls: list[int] = []
    original = kr.requantize_bytes_par
    monkeypatch.setattr(kr, "requantize_bytes_par", lambda *a: calls.append(1) or original(*a))
    n = fast._serial_elements() + 4321
    rng = np.random.default_rng(5)
    acc = rng.integers(-(2**20), 2**20, n).astype(np.int32)
    acc[::101] = INT32_MAX
    acc[7::103] = INT32_MIN
    m = rng.uniform(1e-6, 0.01, 7)
    for rounding in RequantRounding:
        _check(acc, 0.0037, rounding=rounding, out_zero_point=-5)
        _check(acc[: n - n % 7].reshape(-1, 7), m, rounding=rounding, granularity=PerAxis(1), out_fmt=UINT8)
        _check(acc[: n - n % 7].reshape(7, -1), m, rounding=rounding, granularity=PerAxis(0), out_fmt=INT16)
    # an unpredictable element deep in the array is found by the parallel kernel too
    _check(acc, 2.0**31, rounding=RequantRounding.DOUBLE)
    big = acc.astype(np.int64)
    big[-1] = 2**31
    _check(big, 0.5, rounding=RequantRounding.SINGLE)  # operand_out_of_range
    assert len(calls) >= 8


# --- errors and out= -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "condition"),
    [
        ({"rounding": "double"}, "invalid_option"),
        ({"out_fmt": "int8"}, "invalid_format"),
        ({"granularity": PerBlock(0, 2)}, "invalid_option"),
        ({"out_zero_point": 128}, "zero_point_out_of_range"),
        ({"out_zero_point": -1, "out_fmt": UINT8}, "zero_point_out_of_range"),
        ({"out_zero_point": 1.0}, "zero_point_not_integer"),
        ({"out_zero_point": True}, "zero_point_not_integer"),
        ({"out_zero_point": np.int64(2**40), "out_fmt": INT32}, "zero_point_out_of_range"),
        ({"activation_min": 128}, "activation_out_of_range"),
        ({"activation_max": -129}, "activation_out_of_range"),
        ({"activation_min": -1, "out_fmt": UINT8}, "activation_out_of_range"),
        ({"activation_max": 1.5}, "activation_not_integer"),
        ({"activation_min": False}, "activation_not_integer"),
        ({"activation_min": 10, "activation_max": 5}, "activation_min_above_max"),
        ({"granularity": PerAxis(2)}, "axis_out_of_range"),
        ({"granularity": PerAxis(-2)}, "axis_out_of_range"),
    ],
)
def test_requantize_option_errors(kwargs: dict[str, Any], condition: str) -> None:
    got = _check(np.array([1, 2, 3], np.int32), 0.5, **kwargs)
    assert isinstance(got, SpecError)
    assert got.condition == condition


def test_requantize_input_errors() -> None:
    acc = np.array([1, 2, 3], dtype=np.int32)
    f32, f64, single = RequantRounding.FLOAT32, RequantRounding.FLOAT64, RequantRounding.SINGLE
    cases: list[tuple[Any, Any, dict[str, Any], str]] = [
        (acc.astype(np.float32), 0.5, {}, "unsupported_dtype"),
        (acc.astype(bool), 0.5, {}, "unsupported_dtype"),
        ([1, 2**70], 0.5, {}, "operand_out_of_range"),  # a Python int beyond int64
        ([1, "a"], 0.5, {}, "unsupported_dtype"),
        (acc, "0.5", {}, "unsupported_dtype"),
        (acc, True, {}, "unsupported_dtype"),
        (acc, -0.5, {}, "multiplier_negative"),
        (acc, [0.5, -0.0, -1e-300], {"granularity": PerAxis(0)}, "multiplier_negative"),
        (acc, np.nan, {}, "multiplier_not_finite"),
        (acc, np.inf, {"rounding": f64}, "multiplier_not_finite"),
        (acc, 1e39, {"rounding": f32}, "multiplier_not_finite"),  # overflows float32 only
        (acc, [0.5, 0.5], {}, "scale_shape_mismatch"),
        (acc, [0.5, 0.5], {"granularity": PerAxis(0)}, "scale_shape_mismatch"),
        (acc, [[0.5, 0.5, 0.5]], {"granularity": PerAxis(0)}, "scale_shape_mismatch"),
        (np.array([2**31]), 0.5, {}, "operand_out_of_range"),
        (np.array([-(2**31) - 1]), 0.5, {"rounding": single}, "operand_out_of_range"),
        (np.array([2**32 - 1], np.uint32), 0.5, {}, "operand_out_of_range"),
        (np.array([2**64 - 1], np.uint64), 0.5, {"rounding": f64}, "operand_out_of_range"),
        (np.array([1, 2], np.uint64), 0.5, {"rounding": f64}, ""),  # no kernel for uint64: the spec computes it
        (np.array([2**62, -(2**63)]), 0.5, {"rounding": f64, "out_fmt": INT32}, ""),  # exact int64 in the floats
        (np.array([2**62, -(2**63)]), 1e30, {"rounding": f32, "out_fmt": INT32}, ""),  # the product overflows to inf
    ]
    for a, m, kw, condition in cases:
        got = _check(a, m, **kw)
        if condition:
            assert isinstance(got, SpecError), (a, m, kw)
            assert got.condition == condition
        else:
            assert isinstance(got, np.ndarray)


def test_requantize_unpredictable_conditions() -> None:
    double, single = RequantRounding.DOUBLE, RequantRounding.SINGLE
    cases: list[tuple[Any, Any, dict[str, Any], str]] = [
        # 4.0 = (2**30, 3): TFLite computes acc * 8 in int32
        (np.array([1, 2**28]), 4.0, {}, "left_shift_overflow"),
        (np.array([1, -(2**28) - 1]), 4.0, {}, "left_shift_overflow"),
        # 2**31 = (2**30, 32): the factor 1 << 32 itself is outside int32, even for acc 0
        (np.array([0]), 2.0**31, {}, "left_shift_overflow"),
        # single rounding clamps 2**31 to (2**31 - 1, 30): 8 * (2**31 - 1) / 2 is outside int32
        (np.array([8]), 2.0**31, {"rounding": single}, "scaled_value_overflow"),
        (np.array([INT32_MIN]), 1.0 + 2**-30, {"rounding": single}, "scaled_value_overflow"),
        (np.array([1000]), 1.0, {"out_fmt": INT32, "out_zero_point": INT32_MAX}, "zero_point_add_overflow"),
        (
            np.array([1000]),
            1.0,
            {"out_fmt": INT32, "out_zero_point": INT32_MAX, "rounding": single},
            "zero_point_add_overflow",
        ),
        (
            np.array([-5, 10]),
            1.0,
            {"out_fmt": IntFormat(32, False), "out_zero_point": 2**32 - 1},
            "zero_point_add_overflow",
        ),
        # 1 - 2**-31 = (2**31 - 1, 0): INT32_MIN scales to -(2**31 - 1), and -2 more is outside int32
        (np.array([INT32_MIN]), 1 - 2**-31, {"out_fmt": INT32, "out_zero_point": -2}, "zero_point_add_overflow"),
        (np.array([INT32_MIN]), 1.0, {"out_fmt": INT32, "out_zero_point": -1}, "left_shift_overflow"),  # (2**30, 1)
    ]
    for a, m, kw, condition in cases:
        got = _check(a, m, **kw)
        assert isinstance(got, UnpredictableError), (a, m, kw)
        assert got.condition == condition
    # the same values are defined where the definition allows them
    for rounding in (RequantRounding.FLOAT32, RequantRounding.FLOAT64):
        got = _check(np.array([1000]), 1.0, out_fmt=INT32, out_zero_point=INT32_MAX, rounding=rounding)
        np.testing.assert_array_equal(got, [INT32_MAX])
    np.testing.assert_array_equal(_check(np.array([2**28]), 4.0, out_fmt=INT32, rounding=single), [2**30])
    np.testing.assert_array_equal(_check(np.array([1, 2**28 - 1]), 4.0, out_fmt=INT32, rounding=double), [4, 2**30 - 4])


@pytest.mark.parametrize("rounding", list(RequantRounding))
@pytest.mark.parametrize("fmt", [INT8, UINT8, INT16, UINT16, INT32, IntFormat(32, False), IntFormat(4, False)])
def test_requantize_out(rounding: RequantRounding, fmt: IntFormat) -> None:
    acc = np.array([[100, -2000, INT32_MAX, INT32_MIN], [0, 7, -7, 12345]], np.int32)
    zp = fmt.qmin if fmt != INT32 else 0  # INT32's qmin plus a negative value overflows (unpredictable)
    kwargs: dict[str, Any] = {"rounding": rounding, "out_fmt": fmt, "out_zero_point": zp}
    expected = fp.requantize(acc, 0.01, **kwargs)
    out = garbage(acc.shape, fmt.storage_dtype)
    assert fast.requantize(acc, 0.01, out=out, **kwargs) is out
    assert_same(expected, out)
    twin = np.dtype(f"{'u' if fmt.signed else ''}int{fmt.storage_dtype.itemsize * 8}")
    readonly = np.zeros(acc.shape, fmt.storage_dtype)
    readonly.setflags(write=False)
    for bad in (
        np.zeros((2, 4, 1), fmt.storage_dtype),
        np.zeros((4, 2), fmt.storage_dtype),
        np.zeros(acc.shape, twin),
        np.zeros(acc.shape, np.int64),
        np.zeros((2, 8), fmt.storage_dtype)[:, ::2],
        np.zeros((4, 2), fmt.storage_dtype).T,
        readonly,
        np.zeros(acc.shape, fmt.storage_dtype).tolist(),
    ):
        with pytest.raises(SpecError) as info:
            fast.requantize(acc, 0.01, out=bad, **kwargs)
        assert info.value.condition == "invalid_out"
    # the spec fallback (uint64 accumulators) checks out= the same way
    with pytest.raises(SpecError, match="invalid_out"):
        fast.requantize(
            np.arange(8, dtype=np.uint64).reshape(2, 4), 0.01, out=np.zeros((2, 8), fmt.storage_dtype)[:, ::2], **kwargs
        )


def test_requantize_out_must_not_alias_the_accumulators() -> None:
    acc = np.array([100, -200, 300, 12345], np.int32)
    with pytest.raises(SpecError, match="invalid_out"):
        fast.requantize(acc, 0.5, out_fmt=INT32, out=acc)
    with pytest.raises(SpecError, match="invalid_out"):
        fast.requantize(acc, 0.5, out_fmt=IntFormat(32, False), out=acc.view(np.uint32))
    np.testing.assert_array_equal(acc, [100, -200, 300, 12345])
