"""refquant.spec.dynamic: DynamicQuantizeLinear against the operator's own order of operations (clip, then round
the zero point), the all-zero input under each zero-range rule, per-row quantization against a row-by-row
per-tensor computation, and every error condition."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refquant import SpecError
from refquant.spec.affine import QuantParams, ScaleApplication, quantize
from refquant.spec.dynamic import dynamic_quantize_linear, dynamic_quantize_per_row
from refquant.spec.formats import INT4, INT8, UINT8
from refquant.spec.granularity import PerAxis
from refquant.spec.qparams import SymmetricDenominator, ZeroRange, choose_qparams
from refquant.spec.rounding import RoundingMode, round_to_int

F32 = np.float32


def condition(call: Callable[[], Any]) -> str:
    with pytest.raises(SpecError) as info:
        call()
    return info.value.condition


def bits32(x: Any) -> Any:
    return np.asarray(x, F32).view(np.uint32).tolist()


def operator_scale(x: np.ndarray) -> np.float32:
    lo = min(F32(0), F32(np.min(x)))
    hi = max(F32(0), F32(np.max(x)))
    return F32(F32(hi - lo) / F32(255))


def operator_order(x: np.ndarray) -> tuple[np.ndarray, np.float32, int]:
    """DynamicQuantizeLinear written out in the operator's order, one float32 operation at a time (a scale of at
    least 2**-126)."""
    lo = min(F32(0), F32(np.min(x)))
    scale = operator_scale(x)
    inter = F32(F32(0) - F32(lo / scale))
    zp = int(round_to_int(np.clip(np.asarray(inter, F32), F32(0), F32(255)), RoundingMode.HALF_TO_EVEN))
    y = np.clip(round_to_int(np.asarray(x / scale, F32), RoundingMode.HALF_TO_EVEN).astype(np.int64) + zp, 0, 255)
    return y.astype(np.uint8), scale, zp


# Ranges across binades, ties of the zero point (lo = -k/2 * scale), zeros; no range so small that the
# scale falls below 2**-126 (the zero-range rule, tested separately).
finite_f32 = st.floats(-(2.0**100), 2.0**100, width=32, allow_subnormal=False).filter(
    lambda v: v == 0 or abs(v) > 1e-30
)
arrays = hnp.arrays(F32, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6), elements=finite_f32)


@settings(max_examples=150)
@given(x=arrays)
def test_dynamic_quantize_linear_equals_the_operator_order(x: np.ndarray) -> None:
    if operator_scale(x) < F32(2.0**-126):
        assert not np.any(x), "only an all-zero x has a scale below 2**-126 among these inputs"
        return  # the zero-range rule: tested below
    y_ref, s_ref, z_ref = operator_order(x)
    y, s, z = dynamic_quantize_linear(x)
    np.testing.assert_array_equal(y, y_ref)
    assert bits32(s) == bits32(s_ref)
    assert int(z) == z_ref
    assert y.dtype == np.uint8
    assert s.dtype == F32
    assert z.dtype == np.uint8
    assert s.shape == ()
    assert z.shape == ()


@pytest.mark.parametrize("k", range(1, 40))
def test_zero_point_ties_clip_then_round_equals_round_then_clip(k: int) -> None:
    """lo = -k * scale / 2 puts qmin - lo / scale on (or one rounding from) a tie for odd k."""
    x = np.array([-k / 2.0, 255 - k / 2.0], F32)
    y_ref, s_ref, z_ref = operator_order(x)
    y, s, z = dynamic_quantize_linear(x)
    np.testing.assert_array_equal(y, y_ref)
    assert (bits32(s), int(z)) == (bits32(s_ref), z_ref)


def test_hand_worked_examples() -> None:
    # Worked by hand from the definition: x = [1, 2]: scale = float32(2 / 255); 1 / scale = 127.49999 in float32
    # -> 127; 2 / scale = 255. x = [0.5, -0.5]: scale = float32(1 / 255), 0.5 / scale = 127.49999 -> zp 127,
    # codes 127 + 127 = 254 and -127 + 127 = 0.
    y, s, z = dynamic_quantize_linear(np.array([1.0, 2.0], F32))
    np.testing.assert_array_equal(y, np.array([127, 255], np.uint8))
    assert bits32(s) == bits32(F32(2) / F32(255))
    assert int(z) == 0
    y, s, z = dynamic_quantize_linear(np.array([0.5, -0.5], F32))
    np.testing.assert_array_equal(y, np.array([254, 0], np.uint8))
    assert bits32(s) == bits32(F32(1) / F32(255))
    assert int(z) == 127


def test_all_positive_and_all_negative_ranges_are_widened_to_include_zero() -> None:
    # Worked by hand: [2, 4] -> range [0, 4], zp 0; [-4, -2] -> range [-4, 0]. scale = float32(4 / 255) is
    # 0.015686275, a little above 4 / 255, so 2 / scale = 127.49999 -> 127 (not 128), -4 / scale = -254.99998,
    # zp = round(clip(254.99998)) = 255, and -2 -> -127 + 255 = 128.
    y, s, z = dynamic_quantize_linear(np.array([2.0, 4.0], F32))
    assert (y.tolist(), bits32(s), int(z)) == ([127, 255], bits32(F32(4) / F32(255)), 0)
    y, s, z = dynamic_quantize_linear(np.array([-4.0, -2.0], F32))
    assert (y.tolist(), bits32(s), int(z)) == ([0, 128], bits32(F32(4) / F32(255)), 255)


def test_equals_choose_qparams_then_quantize() -> None:
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((7, 5)) * 3 + 1).astype(F32)
    p = choose_qparams(x, UINT8, zero_range=ZeroRange.SCALE_ONE_OVER_QRANGE)
    y, s, z = dynamic_quantize_linear(x)
    np.testing.assert_array_equal(y, quantize(x, p))
    assert bits32(s) == bits32(p.scale)
    assert int(z) == int(p.zero_point)


@pytest.mark.parametrize(
    ("zero_range", "scale"),
    [(ZeroRange.SCALE_ONE_OVER_QRANGE, F32(1) / F32(255)), (ZeroRange.SCALE_ONE, F32(1))],
)
@pytest.mark.parametrize("shape", [(1,), (3,), (2, 2)])
def test_all_zero_input(zero_range: ZeroRange, scale: np.float32, shape: tuple[int, ...]) -> None:
    x = np.zeros(shape, F32)
    x.flat[0] = -0.0
    y, s, z = dynamic_quantize_linear(x, zero_range=zero_range)
    np.testing.assert_array_equal(y, np.zeros(shape, np.uint8))
    assert bits32(s) == bits32(scale)
    assert int(z) == 0


def test_subnormal_range_takes_the_zero_range_rule() -> None:
    y, s, z = dynamic_quantize_linear(np.array([6.82044e-40, 0.0], F32))
    assert (y.tolist(), bits32(s), int(z)) == ([0, 0], bits32(F32(1) / F32(255)), 0)


def test_byte_swapped_float32_is_accepted() -> None:
    x = np.array([-1.0, 0.3, 2.5, 7.0], F32)
    y, s, z = dynamic_quantize_linear(x.astype(">f4"))
    y2, s2, z2 = dynamic_quantize_linear(x)
    np.testing.assert_array_equal(y, y2)
    assert bits32(s) == bits32(s2)
    assert int(z) == int(z2)


def test_dynamic_quantize_linear_errors() -> None:
    assert condition(lambda: dynamic_quantize_linear(np.array([np.nan, 1.0], F32))) == "nan_input"
    assert condition(lambda: dynamic_quantize_linear(np.array([1.0, -np.inf], F32))) == "range_not_finite"
    assert condition(lambda: dynamic_quantize_linear(np.array([1.0, 2.0]))) == "unsupported_dtype"
    assert condition(lambda: dynamic_quantize_linear(np.array([1, 2], np.int32))) == "unsupported_dtype"
    assert condition(lambda: dynamic_quantize_linear(np.zeros(0, F32))) == "empty_input"
    assert condition(lambda: dynamic_quantize_linear(np.zeros(2, F32), zero_range=ZeroRange.RAISE)) == "zero_range"
    assert condition(lambda: dynamic_quantize_linear(np.ones(2, F32), zero_range="onnx")) == "invalid_option"  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------
# Per row


def per_row_oracle(x: np.ndarray, **options: Any) -> tuple[np.ndarray, list[int], list[int]]:
    """Each row quantized on its own with per-tensor parameters (the definition, one row at a time)."""
    rounding = options.pop("rounding", RoundingMode.HALF_TO_EVEN)
    scale_application = options.pop("scale_application", ScaleApplication.DIVIDE)
    fmt = options.pop("fmt", INT8)
    rows = []
    scales = []
    zps = []
    for row in x:
        p = choose_qparams(row, fmt, **options)
        rows.append(quantize(row, p, rounding=rounding, scale_application=scale_application))
        scales.append(bits32(p.scale))
        zps.append(int(p.zero_point))
    return np.stack(rows), scales, zps


row_arrays = hnp.arrays(
    F32,
    st.tuples(st.integers(1, 5), st.integers(1, 6)),
    elements=st.floats(-1e4, 1e4, width=32, allow_subnormal=False),
)


@settings(max_examples=80)
@given(x=row_arrays, symmetric=st.booleans(), half_range=st.booleans(), away=st.booleans(), reciprocal=st.booleans())
def test_per_row_equals_each_row_per_tensor(
    x: np.ndarray, symmetric: bool, half_range: bool, away: bool, reciprocal: bool
) -> None:
    denominator = SymmetricDenominator.HALF_RANGE if half_range else SymmetricDenominator.QMAX
    rounding = RoundingMode.HALF_AWAY_FROM_ZERO if away else RoundingMode.HALF_TO_EVEN
    application = ScaleApplication.RECIPROCAL_MULTIPLY if reciprocal else ScaleApplication.DIVIDE
    q, p = dynamic_quantize_per_row(
        x, symmetric=symmetric, symmetric_denominator=denominator, rounding=rounding, scale_application=application
    )
    ref, scales, zps = per_row_oracle(
        x,
        symmetric=symmetric,
        symmetric_denominator=denominator,
        zero_range=ZeroRange.SCALE_ONE,
        rounding=rounding,
        scale_application=application,
    )
    np.testing.assert_array_equal(q, ref)
    assert bits32(p.scale) == scales
    assert p.zero_point.tolist() == zps
    assert p.granularity == PerAxis(0)
    assert p.fmt == INT8


def test_per_row_hand_example_amax_over_127() -> None:
    # Worked by hand: row 0 amax 1.27 -> scale float32(1.27 / 127) = float32(0.01); 0.5 / 0.01 = 50,
    # -1.27 / 0.01 = -127, 0.01 / 0.01 = 1. Row 1 is all zero -> scale 1.0, codes 0. Row 2 amax 2 ->
    # scale float32(2 / 127); 1 / scale = 63.5 (float32) -> 64 (half to even), -0.5 / scale = -31.75 -> -32.
    x = np.array([[0.5, -1.27, 0.01], [0.0, 0.0, 0.0], [1.0, 2.0, -0.5]], F32)
    q, p = dynamic_quantize_per_row(x)
    np.testing.assert_array_equal(q, np.array([[50, -127, 1], [0, 0, 0], [64, 127, -32]], np.int8))
    assert bits32(p.scale) == bits32([F32(1.27) / F32(127), 1.0, F32(2) / F32(127)])
    assert p.zero_point.tolist() == [0, 0, 0]


def test_per_row_codes_never_reach_minus_128_with_qmax_denominator() -> None:
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((50, 33)) * 10).astype(F32)
    q, _ = dynamic_quantize_per_row(x)
    assert int(q.min()) >= -127
    np.testing.assert_array_equal(np.max(np.abs(q.astype(np.int64)), axis=1), np.full(50, 127))


def test_per_row_axis_zero_is_the_transpose() -> None:
    rng = np.random.default_rng(12)
    x = rng.standard_normal((4, 9)).astype(F32)
    q, p = dynamic_quantize_per_row(x)
    qt, pt = dynamic_quantize_per_row(np.ascontiguousarray(x.T), axis=0)
    np.testing.assert_array_equal(qt, q.T)
    assert bits32(pt.scale) == bits32(p.scale)
    assert pt.granularity == PerAxis(1)
    q2, _ = dynamic_quantize_per_row(np.ascontiguousarray(x.T), axis=-2)
    np.testing.assert_array_equal(q2, qt)


def test_per_row_zero_rows_and_scale_floor() -> None:
    x = np.array([[0.0, -0.0], [1.0, -2.0]], F32)
    q, p = dynamic_quantize_per_row(x)
    assert q.tolist() == [[0, 0], [64, -127]]
    assert bits32(p.scale) == bits32([1.0, F32(2) / F32(127)])
    q, p = dynamic_quantize_per_row(x, scale_floor=1e-5, scale_application=ScaleApplication.RECIPROCAL_MULTIPLY)
    assert q.tolist() == [[0, 0], [64, -127]]
    assert bits32(p.scale) == bits32([F32(1e-5), F32(2) / F32(127)])
    assert condition(lambda: dynamic_quantize_per_row(x, zero_range=ZeroRange.RAISE)) == "zero_range"


def test_per_row_other_formats_and_dtypes() -> None:
    x = np.array([[0.7, -0.35, 0.1]], np.float64)
    q, p = dynamic_quantize_per_row(x, fmt=INT4)
    # Worked by hand: scale = float32(float32(0.7) / 7) = 0.1 (float32); codes 7, -3.5 -> -4 (half to even), 1.
    assert q.tolist() == [[7, -4, 1]]
    assert p.fmt == INT4
    q16, _ = dynamic_quantize_per_row(x.astype(np.float16), fmt=INT4)
    assert q16.shape == (1, 3)
    empty_rows, p0 = dynamic_quantize_per_row(np.zeros((0, 3), F32))
    assert empty_rows.shape == (0, 3)
    assert p0.scale.shape == (0,)


def test_per_row_errors() -> None:
    x = np.ones((2, 3), F32)
    assert condition(lambda: dynamic_quantize_per_row(np.ones(3, F32))) == "shape_mismatch"
    assert condition(lambda: dynamic_quantize_per_row(np.ones((1, 2, 3), F32))) == "shape_mismatch"
    assert condition(lambda: dynamic_quantize_per_row(np.ones((2, 3), np.int32))) == "unsupported_dtype"
    assert condition(lambda: dynamic_quantize_per_row(np.array([[np.nan, 1.0]], F32))) == "nan_input"
    assert condition(lambda: dynamic_quantize_per_row(np.array([[np.inf, 1.0]], F32))) == "range_not_finite"
    assert condition(lambda: dynamic_quantize_per_row(np.ones((2, 0), F32))) == "empty_input"
    assert condition(lambda: dynamic_quantize_per_row(x, axis=2)) == "axis_out_of_range"
    assert condition(lambda: dynamic_quantize_per_row(x, axis=1.0)) == "axis_out_of_range"  # type: ignore[arg-type]
    assert condition(lambda: dynamic_quantize_per_row(x, symmetric=1)) == "invalid_option"  # type: ignore[arg-type]
    assert condition(lambda: dynamic_quantize_per_row(x, rounding=RoundingMode.STOCHASTIC)) == "invalid_option"
    assert condition(lambda: dynamic_quantize_per_row(x, scale_application="divide")) == "invalid_option"  # type: ignore[arg-type]
    assert condition(lambda: dynamic_quantize_per_row(x, fmt="int8")) == "invalid_format"  # type: ignore[arg-type]


def test_per_row_params_roundtrip_through_quantparams() -> None:
    x = np.array([[0.25, -0.5], [3.0, 1.5]], F32)
    q, p = dynamic_quantize_per_row(x)
    again = QuantParams(p.scale, p.zero_point, INT8, PerAxis(0))
    np.testing.assert_array_equal(quantize(x, again), q)
