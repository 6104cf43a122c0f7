"""Meta-tests of refquant.testing.strategies: what they promise is what they generate; bad arguments are refused."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from refquant import (
    INT8,
    UINT8,
    Accumulator,
    IntFormat,
    PerAxis,
    PerBlock,
    PerTensor,
    QuantParams,
    RoundingMode,
    matmul_int,
    quantize,
)
from refquant.spec.granularity import param_shape
from refquant.testing import strategies as rs

EXAMPLES = settings(max_examples=60, deadline=None)
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _params_and_shape() -> st.SearchStrategy[tuple[QuantParams, tuple[int, ...]]]:
    return rs.distinct_shapes(max_dims=3, max_side=5).flatmap(
        lambda shape: rs.quant_params(shape=shape).map(lambda p: (p, shape))
    )


def _tie_distance(x: float, scale: float) -> Fraction:
    """|x / s - (k + 1/2)| for the nearest half-integer, exactly."""
    q = Fraction(x) / Fraction(scale)
    half = Fraction(math.floor(q)) + Fraction(1, 2)
    return abs(q - half)


# --- formats, scales, shapes, params -------------------------------------------------------------------------------


@EXAMPLES
@given(rs.int_formats(min_bits=2, max_bits=9))
def test_int_formats_stay_in_bounds(fmt: IntFormat) -> None:
    assert 2 <= fmt.bits <= 9
    assert fmt.qmin < fmt.qmax


@EXAMPLES
@given(rs.scales(min_value=2.0**-10, max_value=3.0))
def test_scales_are_positive_float32_values_in_bounds(scale: float) -> None:
    assert float(np.float32(scale)) == scale
    assert 2.0**-10 <= scale <= 3.0


@EXAMPLES
@given(rs.distinct_shapes(min_dims=2, max_dims=4, min_side=1, max_side=6))
def test_distinct_shapes_have_pairwise_distinct_sides(shape: tuple[int, ...]) -> None:
    assert 2 <= len(shape) <= 4
    assert len(set(shape)) == len(shape)
    assert all(1 <= d <= 6 for d in shape)


@EXAMPLES
@given(_params_and_shape())
def test_every_generated_param_is_valid_for_its_shape(case: tuple[QuantParams, tuple[int, ...]]) -> None:
    params, shape = case
    assert params.scale.shape == param_shape(params.granularity, shape)
    assert np.all(params.scale > 0)
    assert np.all(np.isfinite(params.scale))
    assert np.all((params.zero_point >= params.fmt.qmin) & (params.zero_point <= params.fmt.qmax))
    # Rebuilding validates everything again, and the params fit the shape.
    QuantParams(params.scale, params.zero_point, params.fmt, params.granularity).expand(shape)


def test_every_granularity_kind_and_ragged_blocks_are_generated() -> None:
    kinds: set[str] = set()
    ragged = False

    @settings(max_examples=150, deadline=None, database=None)
    @given(_params_and_shape())
    def collect(case: tuple[QuantParams, tuple[int, ...]]) -> None:
        nonlocal ragged
        params, shape = case
        kinds.add(type(params.granularity).__name__)
        g = params.granularity
        if isinstance(g, PerBlock) and shape[g.axis] % g.block_size:
            ragged = True

    collect()
    assert kinds == {"PerTensor", "PerAxis", "PerBlock"}
    assert ragged


# --- ties, edges, inputs -------------------------------------------------------------------------------------------


@EXAMPLES
@given(_params_and_shape().flatmap(lambda ps: st.tuples(st.just(ps[0]), rs.tie_values(ps[0], shape=ps[1]))))
def test_tie_values_are_ties_or_one_ulp_from_one(case: tuple[QuantParams, npt.NDArray[np.float32]]) -> None:
    params, x = case
    scale, _ = params.expand(x.shape)
    for v, s in zip(x.ravel().tolist(), scale.ravel().tolist(), strict=True):
        neighbours = [
            v,
            float(np.nextafter(np.float32(v), np.float32(np.inf))),
            float(np.nextafter(np.float32(v), np.float32(-np.inf))),
        ]
        assert any(_tie_distance(n, s) == 0 for n in neighbours), (v, s)


def test_exact_ties_are_really_generated_and_round_differently() -> None:
    params = QuantParams(np.float32(0.1), 0, INT8)  # a 24-bit significand: only +-s/2 are exact ties
    exact: list[float] = []

    @settings(max_examples=80, deadline=None, database=None)
    @given(rs.tie_values(params, shape=(4,)))
    def collect(x: npt.NDArray[np.float32]) -> None:
        for v in x.tolist():
            if _tie_distance(v, float(params.scale)) == 0:
                exact.append(v)

    collect()
    assert exact
    ties = np.array(exact, np.float32)
    away = quantize(ties, params, rounding=RoundingMode.HALF_AWAY_FROM_ZERO)
    even = quantize(ties, params)
    assert np.any(away != even)  # on an exact tie the tie rule decides


def test_ties_at_many_integers_exist_for_short_significand_scales() -> None:
    params = QuantParams(np.float32(0.375), 3, UINT8)
    x = np.array([rs.tie_point(k, 0.375) for k in range(-5, 6)], np.float32)
    np.testing.assert_array_equal(x.astype(np.float64), (np.arange(-5, 6) + 0.5) * 0.375)
    np.testing.assert_array_equal(np.float32(x) / np.float32(0.375) % 1, np.full(11, 0.5, np.float32))
    assert quantize(x, params).shape == (11,)


@EXAMPLES
@given(_params_and_shape().flatmap(lambda ps: st.tuples(st.just(ps[0]), rs.saturation_edge_values(ps[0], shape=ps[1]))))
def test_saturation_edges_sit_at_the_ends_of_the_format(case: tuple[QuantParams, npt.NDArray[np.float32]]) -> None:
    params, x = case
    codes = quantize(x, params).astype(np.int64)
    fmt = params.fmt
    finite_near = np.isfinite(x) & (np.abs(x) < np.float32(3e38))
    # Near edges land within two codes of an end; the extremes saturate.
    near_end = (np.abs(codes - fmt.qmin) <= 2) | (np.abs(codes - fmt.qmax) <= 2)
    assert np.all(near_end[finite_near])
    assert np.all(np.isin(codes[~finite_near], [fmt.qmin, fmt.qmax]))


@EXAMPLES
@given(_params_and_shape().flatmap(lambda ps: st.tuples(st.just(ps[0]), rs.quantize_inputs(ps[0], shape=ps[1]))))
def test_quantize_inputs_quantize_without_error(case: tuple[QuantParams, npt.NDArray[np.float32]]) -> None:
    params, x = case
    assert x.dtype == np.float32
    assert not np.any(np.isnan(x))
    codes = quantize(x, params)
    assert codes.shape == x.shape


def test_quantize_inputs_cover_signed_zero_subnormals_nan_and_infinities() -> None:
    params = QuantParams(np.float32(0.5), 0, INT8)
    seen: set[str] = set()

    @settings(max_examples=100, deadline=None, database=None)
    @given(rs.quantize_inputs(params, shape=(6,), allow_nan=True))
    def collect(x: npt.NDArray[np.float32]) -> None:
        for v in x.tolist():
            if math.isnan(v):
                seen.add("nan")
            elif math.isinf(v):
                seen.add("inf")
            elif v == 0 and math.copysign(1, v) < 0:
                seen.add("-0")
            elif v != 0 and abs(v) < float(np.finfo(np.float32).tiny):
                seen.add("subnormal")
            elif _tie_distance(v, 0.5) == 0:
                seen.add("tie")

    collect()
    assert seen == {"nan", "inf", "-0", "subnormal", "tie"}


# --- fixed point and integer operations ----------------------------------------------------------------------------


@EXAMPLES
@given(rs.multipliers(min_value=2.0**-33, max_value=1.0))
def test_multipliers_stay_in_bounds(m: float) -> None:
    assert 2.0**-33 <= m <= 1.0


def test_multipliers_reach_near_one_near_zero_and_the_rounding_tie() -> None:
    seen: set[str] = set()

    @settings(max_examples=200, deadline=None, database=None)
    @given(rs.multipliers())
    def collect(m: float) -> None:
        if 1 - 2.0**-20 < m < 1:
            seen.add("near_one")
        if 0 < m < 2.0**-30:
            seen.add("near_zero")
        if m > 0:
            q, _ = math.frexp(m)
            if Fraction(q) * 2**31 % 1 == Fraction(1, 2):
                seen.add("tie")

    collect()
    assert seen == {"near_one", "near_zero", "tie"}


@EXAMPLES
@given(rs.fixed_point_multipliers(single_rounding=True))
def test_fixed_point_multipliers_are_tflite_normalised(fp: Any) -> None:
    assert fp.multiplier == 0 or 2**30 <= fp.multiplier < 2**31
    assert fp.shift <= 30


@EXAMPLES
@given(rs.accumulators(shape=(3, 2), min_value=-1000, max_value=2**31 - 1))
def test_accumulators_are_int32_in_bounds(acc: npt.NDArray[np.int32]) -> None:
    assert acc.dtype == np.int32
    assert acc.shape == (3, 2)
    assert acc.min() >= -1000


@settings(max_examples=12, deadline=None)
@given(rs.accumulation_edge_matmuls(max_distance=8))
def test_edge_matmuls_accumulate_at_the_int32_bound(pair: tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]) -> None:
    lhs, rhs = pair
    out = matmul_int(lhs, rhs, accumulator=Accumulator.INT64)
    corner = int(out[0, 0])
    assert min(abs(corner - INT32_MAX), abs(corner - INT32_MIN)) <= 8
    assert np.all(np.abs(out[1:, :]) < 2**30)
    assert np.all(np.abs(out[:, 1:]) < 2**30)


def test_edge_matmuls_without_overflow_stay_inside_int32() -> None:
    @settings(max_examples=10, deadline=None, database=None)
    @given(rs.accumulation_edge_matmuls(max_distance=8, allow_overflow=False))
    def check(pair: tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]) -> None:
        out = matmul_int(pair[0], pair[1])  # Accumulator.INT32 raises on an overflow
        assert out.dtype == np.int32

    check()


# --- invalid arguments ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "name"),
    [
        (lambda: rs.int_formats(min_bits=0), "min_bits=0"),
        (lambda: rs.int_formats(min_bits=9, max_bits=8), "min_bits=9"),
        (lambda: rs.int_formats(signed="yes"), "signed='yes'"),
        (lambda: rs.scales(min_value=0.0), "min_value=0.0"),
        (lambda: rs.scales(min_value=2.0, max_value=1.0), "min_value=2.0"),
        (lambda: rs.scales(max_value=math.inf), "max_value=inf"),
        (lambda: rs.distinct_shapes(min_dims=4, min_side=1, max_side=3), "min_dims=4"),
        (lambda: rs.quant_params(shape=(2, 3), granularity=PerAxis(2)), "granularity=PerAxis(axis=2)"),
        (lambda: rs.quant_params(shape=(2,), fmt="int8"), "fmt='int8'"),  # type: ignore[arg-type]
        (lambda: rs.quant_params(shape=[2]), "shape=[2]"),  # type: ignore[arg-type]
        (lambda: rs.tie_values(QuantParams(1.0, 0, INT8), shape=(2,), ulps=-1), "ulps=-1"),
        (lambda: rs.tie_values("p", shape=(2,)), "params='p'"),  # type: ignore[arg-type]
        (lambda: rs.tie_values(QuantParams([1.0, 2.0], 0, INT8, PerAxis(0)), shape=(3,)), "do not fit shape=(3,)"),
        (lambda: rs.quantize_inputs(QuantParams(1.0, 0, INT8), shape=(2,), allow_nan=1), "allow_nan=1"),
        (lambda: rs.multipliers(min_value=-1.0), "min_value=-1.0"),
        (lambda: rs.accumulators(shape=(2,), min_value=2**31), "min_value=2147483648"),
        (lambda: rs.accumulation_edge_matmuls(max_rows=0), "max_rows=0"),
        (lambda: rs.value_ranges(fmt="uint8"), "fmt='uint8'"),  # type: ignore[arg-type]
        (lambda: rs.value_ranges(max_magnitude=0.0), "max_magnitude=0.0"),
        (lambda: rs.packable_codes(fmt=INT8, min_size=5, max_size=2), "min_size=5"),
        (lambda: rs.packed_bytes(fmt=INT8, max_count=-1), "max_count=-1"),
        (lambda: rs.log_edge_values("fmt", shape=(2,)), "fmt='fmt'"),  # type: ignore[arg-type]
        (lambda: rs.sign_edge_values(shape=(2,), allow_infinity=None), "allow_infinity=None"),  # type: ignore[arg-type]
        (lambda: rs.packed_sign_matrices(max_k=0), "max_k=0"),
        (lambda: rs.ternary_weights(method="twn", shape=(4,)), "method='twn'"),  # type: ignore[arg-type]
        (lambda: rs.ternary_weights(method=rs.TernaryMethod.TWN, shape=(2,)), "shape=(2,)"),
    ],
)
def test_invalid_arguments_are_rejected_with_their_name(build: Any, name: str) -> None:
    with pytest.raises(
        InvalidArgument, match=name.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")
    ):
        build()


@EXAMPLES
@given(rs.granularities(()))
def test_a_0d_shape_gets_per_tensor_only(granularity: Any) -> None:
    assert granularity == PerTensor()


# --- the other chapters ----------------------------------------------------------------------------------------------


@EXAMPLES
@given(rs.value_ranges(fmt=UINT8))
def test_value_ranges_are_ordered_float32_pairs_that_choose_valid_qparams(pair: tuple[float, float]) -> None:
    from refquant import choose_qparams_from_range

    lo, hi = pair
    assert lo <= hi
    assert float(np.float32(lo)) == lo
    assert float(np.float32(hi)) == hi
    p = choose_qparams_from_range(np.float32(lo), np.float32(hi), UINT8)
    assert 0 <= int(p.zero_point) <= 255


def test_value_ranges_generate_zero_point_ties_degenerate_and_one_sided_ranges() -> None:
    seen = {"tie": False, "degenerate": False, "positive": False, "negative": False}

    @settings(max_examples=300, deadline=None, derandomize=True, database=None)
    @given(rs.value_ranges(fmt=UINT8))
    def collect(pair: tuple[float, float]) -> None:
        lo, hi = pair
        seen["degenerate"] |= lo == hi
        seen["positive"] |= 0 < lo < hi
        seen["negative"] |= lo < hi < 0
        if lo < 0 < hi:
            ratio = Fraction(-lo) / (Fraction(hi) - Fraction(lo)) * 255  # the zero point's quotient -lo / scale
            seen["tie"] |= ratio.denominator == 2

    collect()
    assert all(seen.values()), seen


@EXAMPLES
@given(
    st.sampled_from([IntFormat(4, True), IntFormat(2, False), IntFormat(3, True)]).flatmap(
        lambda f: st.tuples(st.just(f), rs.packable_codes(fmt=f), rs.packed_bytes(fmt=f))
    )
)
def test_packing_strategies_give_valid_codes_and_bytes(case: tuple[IntFormat, Any, Any]) -> None:
    from refquant import pack, unpack

    fmt, q, (packed, count) = case
    assert q.dtype == fmt.storage_dtype
    assert bool(np.all((q >= fmt.qmin) & (q <= fmt.qmax)))
    np.testing.assert_array_equal(unpack(pack(q, fmt), fmt, q.size), q)
    assert packed.size == -(-count * fmt.bits // 8)
    unpack(packed, fmt, count)  # the padding bits are clear: the reference takes it


def test_log_edge_values_hold_both_thresholds_and_their_neighbours() -> None:
    from refquant import LogFormat

    values = rs._log_edges(LogFormat(4, 0), True)
    near_sqrt2 = float(np.float32(math.sqrt(2.0)))
    for v in (1.0, near_sqrt2, 1.5, -1.5, float(np.nextafter(np.float32(1.5), np.float32(2))), 0.0, math.inf):
        assert v in values


@EXAMPLES
@given(rs.packed_sign_matrices(max_k=130))
def test_packed_sign_matrices_have_the_words_of_k(case: tuple[Any, Any, int]) -> None:
    from refquant import xnor_matmul

    lhs, rhs, k = case
    assert lhs.dtype == rhs.dtype == np.uint64
    assert lhs.shape[1] == rhs.shape[1] == -(-k // 64)
    xnor_matmul(lhs, rhs, k)


def test_packed_sign_matrices_set_padding_bits() -> None:
    found = []

    @settings(max_examples=100, deadline=None, derandomize=True, database=None)
    @given(rs.packed_sign_matrices(max_k=100))
    def collect(case: tuple[Any, Any, int]) -> None:
        lhs, _, k = case
        if k % 64:
            found.append(bool(np.any(lhs[:, -1] >> np.uint64(k % 64))))

    collect()
    assert any(found)
    assert not all(found)


@pytest.mark.parametrize("method", list(rs.TernaryMethod), ids=lambda m: m.value)
def test_ternary_weights_sit_exactly_on_the_threshold(method: Any) -> None:
    planted = []

    @settings(max_examples=40, deadline=None, derandomize=True, database=None)
    @given(rs.ternary_weights(method=method, shape=(6,)))
    def collect(w: npt.NDArray[np.float32]) -> None:
        assert w.dtype == np.float32
        assert w.shape == (6,)
        d = rs.ternary_threshold(w, method)
        planted.append(float(w[-2]) == d and float(w[-1]) == -d and d > 0)

    collect()
    assert sum(planted) >= 10
