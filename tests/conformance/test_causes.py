"""refquant.conformance.causes: which alternative semantics reproduce an observed output, on cases worked by hand.

Every expected value below was worked by hand from the definitions (docs/spec/affine.md, fixed_point.md,
integer_ops.md) before running the code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from refquant import (
    INT8,
    UINT8,
    Accumulator,
    Overflow,
    PerAxis,
    PerBlock,
    Precision,
    QuantParams,
    RequantRounding,
    RoundingMode,
    ScaleApplication,
    SpecError,
    UnpredictableError,
    ZeroPointOrder,
    profiles,
    quantize,
)
from refquant.conformance.causes import (
    Cause,
    MatmulParams,
    Operation,
    RequantizeParams,
    alternative,
    explain_mismatch,
    format_record,
    minimal_record,
    same_output,
)
from refquant.testing import strategies as rs

F32 = np.float32


def _named(causes: list[Cause]) -> list[tuple[str, bool]]:
    return [(c.name, c.exact) for c in causes]


# --- quantize ------------------------------------------------------------------------------------------------------


def test_tie_rule_half_away_from_zero_is_the_only_exact_cause() -> None:
    # Worked by hand: x / 1 = 0.5, 1.5, 2.5, -0.5, 1.25.  Half to even: 0, 2, 2, 0, 1.  Half away from zero:
    # 1, 2, 3, -1, 1 (the observed codes).  AWAY_FROM_ZERO gives 1, 2, 3, -1, 2 and HALF_TO_ODD 1, 1, 3, -1, 1:
    # both reproduce the three mismatching elements but not the others.  HALF_TOWARD_POSITIVE gives 0 at -0.5.
    x = F32([0.5, 1.5, 2.5, -0.5, 1.25])
    causes = explain_mismatch(Operation.QUANTIZE, QuantParams(1.0, 0, INT8), (x,), [1, 2, 3, -1, 1])
    assert _named(causes) == [
        ("rounding=half_away_from_zero", True),
        ("rounding=away_from_zero", False),
        ("rounding=half_to_odd", False),
    ]


def test_reciprocal_multiply_at_a_near_tie() -> None:
    # Worked by hand (docs/spec/affine.md): x / s = 127.49999 in float32, x * float32(1 / s) = 127.5 -> 128 (uint8:
    # int8 would saturate both to 127).
    x = F32([0.273939937])
    causes = explain_mismatch(Operation.QUANTIZE, QuantParams(0.00214854861, 0, UINT8), (x,), [128])
    assert ("scale_application=reciprocal_multiply", True) in _named(causes)
    assert ("rounding=half_to_even", True) not in _named(causes)


def test_zero_point_before_rounding() -> None:
    # Worked by hand: x = 0.5, 2.5, 1.5, s = 1, z = 1.  After rounding: 0 + 1, 2 + 1, 2 + 1 = 1, 3, 3.  Before:
    # round(1.5), round(3.5), round(2.5) = 2, 4, 2.  With z odd, half to even of v + z is half to odd of v, plus z, at
    # ties: HALF_TO_ODD gives 1 + 1, 3 + 1, 1 + 1 as well, so both are exact.  Half away from zero gives 3 at 1.5.
    x = F32([0.5, 2.5, 1.5])
    causes = explain_mismatch(Operation.QUANTIZE, QuantParams(1.0, 1, UINT8), (x,), [2, 4, 2])
    # With s = 1 the float32 reciprocal is exact and x + 1 is exact, so the reciprocal-multiply pairs (before rounding
    # and fused multiply-add) give the same codes as the zero-point order alone.
    assert _named(causes) == [
        ("rounding=half_to_odd", True),
        ("zero_point_order=before_rounding", True),
        ("scale_application=reciprocal_multiply+zero_point_order=before_rounding", True),
        ("scale_application=reciprocal_multiply+zero_point_order=fused_multiply_add", True),
    ]


def test_narrow_range_and_wrap_and_scale_multiplied() -> None:
    p = QuantParams(1.0, 0, INT8)
    # Worked by hand: -200 saturates to -128; int8n's lowest code is -127.  200 wraps to 200 - 256 = -56.
    assert ("narrow_range", True) in _named(explain_mismatch(Operation.QUANTIZE, p, (F32([-200.0]),), [-127]))
    assert _named(explain_mismatch(Operation.QUANTIZE, p, (F32([200.0, 3.0]),), [-56, 3])) == [("overflow=wrap", True)]
    # x * s with s = 2: 3 * 2 = 6 instead of 3 / 2 = 1.5 -> 2.
    p2 = QuantParams(2.0, 0, INT8)
    assert ("scale_multiplied", True) in _named(explain_mismatch(Operation.QUANTIZE, p2, (F32([3.0]),), [6]))


def test_wrong_axis_of_equal_length() -> None:
    # Worked by hand: x = all 2, scale [1, 2] along axis 0 -> rows [2, 2], [1, 1]; along axis 1 -> columns: [[2, 1], [2, 1]].
    p = QuantParams([1.0, 2.0], [0, 0], INT8, PerAxis(0))
    x = np.full((2, 2), 2.0, F32)
    causes = explain_mismatch(Operation.QUANTIZE, p, (x,), [[2, 1], [2, 1]])
    assert _named(causes) == [("axis=1", True)]
    # No other axis of that length: the alternative does not apply.
    assert alternative("axis=1", Operation.QUANTIZE, p, (np.full((2, 3), 2.0, F32),)) is None


def test_zero_point_ignored_and_subtracted() -> None:
    p = QuantParams(1.0, 10, INT8)
    x = F32([3.0])  # worked by hand: 3 + 10 = 13; ignored: 3; subtracted: 3 - 10 = -7
    assert ("zero_point_ignored", True) in _named(explain_mismatch(Operation.QUANTIZE, p, (x,), [3]))
    assert ("zero_point_subtracted", True) in _named(explain_mismatch(Operation.QUANTIZE, p, (x,), [-7]))


def test_float64_precision_and_a_profile_reference() -> None:
    # Worked by hand: a float64 input whose float32 rounding is a tie.  x = 2.5 + 2**-30: float32(x) = 2.5 -> 2 half
    # to even; in float64 x / 1 > 2.5 -> 3.
    x = np.array([2.5 + 2.0**-30], np.float64)
    causes = explain_mismatch(Operation.QUANTIZE, QuantParams(1.0, 0, INT8), (x,), [3])
    assert ("precision=float64", True) in _named(causes)
    # The TFLite profile rounds half away from zero: an ONNX-style 2 at 2.5 is explained by half to even.
    tflite = explain_mismatch(
        Operation.QUANTIZE, QuantParams(1.0, 0, INT8), (F32([2.5]),), [2], profile=profiles.TFLITE
    )
    assert ("rounding=half_to_even", True) in _named(tflite)


def test_no_mismatch_gives_no_cause_and_nothing_reproduces_a_wild_code() -> None:
    p = QuantParams(1.0, 0, INT8)
    assert explain_mismatch(Operation.QUANTIZE, p, (F32([1.0, 2.0]),), [1, 2]) == []
    assert explain_mismatch(Operation.QUANTIZE, p, (F32([1.0]),), [77]) == []


# --- dequantize, requantize, matmul --------------------------------------------------------------------------------


def test_dequantize_causes() -> None:
    p = QuantParams(0.5, 2, UINT8)
    q = np.array([0, 10], np.uint8)
    # Worked by hand: (q - 2) * 0.5 = -1, 4.  q * 0.5 = 0, 5.  (q - 2) / 0.5 = -4, 16.  (q - 2) * 0.25 = -0.5, 2.
    assert _named(explain_mismatch(Operation.DEQUANTIZE, p, (q,), F32([0.0, 5.0]))) == [("zero_point_ignored", True)]
    assert _named(explain_mismatch(Operation.DEQUANTIZE, p, (q,), F32([-4.0, 16.0]))) == [("scale_divided", True)]
    assert _named(explain_mismatch(Operation.DEQUANTIZE, p, (q,), F32([-0.5, 2.0]))) == [("scale_applied_twice", True)]
    # float32 bit patterns: -0.0 is not 0.0.
    assert not same_output(Operation.DEQUANTIZE, F32([0.0]), F32([-0.0]))[0]


def test_requantize_rounding_and_zero_point() -> None:
    acc = np.array([-10, -6, -2, 1, 2, 5, 10], np.int32)
    params = RequantizeParams(np.float64(0.25))
    # Worked by hand (docs/spec/fixed_point.md): DOUBLE -3 -2 -1 1 1 2 3; SINGLE -2 -1 0 0 1 1 3;
    # FLOAT32 = FLOAT64 (0.25 is exact in float32) -2 -2 0 0 0 1 2.
    single = [-2, -1, 0, 0, 1, 1, 3]
    floats = [-2, -2, 0, 0, 0, 1, 2]
    assert _named(explain_mismatch(Operation.REQUANTIZE, params, (acc,), single)) == [("rounding=single", True)]
    assert _named(explain_mismatch(Operation.REQUANTIZE, params, (acc,), floats)) == [
        ("rounding=float32", True),
        ("rounding=float64", True),
    ]
    with_zp = RequantizeParams(np.float64(0.25), out_zero_point=5)
    assert ("zero_point_ignored", True) in _named(
        explain_mismatch(Operation.REQUANTIZE, with_zp, (acc,), [-3, -2, -1, 1, 1, 2, 3])
    )
    # 1000 * 0.25 = 250: clamped to 127; wrapped 250 - 256 = -6.
    wrap = explain_mismatch(Operation.REQUANTIZE, params, (np.array([1000], np.int32),), [-6])
    assert _named(wrap) == [("overflow=wrap", True)]


def test_matmul_zero_points_and_accumulator() -> None:
    lhs = np.array([[1, 2], [3, 4]], np.uint8)
    rhs = np.array([[-1, 0], [2, 1]], np.int8)
    # Worked by hand: ([[0, 1], [2, 3]]) @ rhs = [[2, 1], [4, 3]]; without the zero point [[3, 2], [5, 4]].
    causes = explain_mismatch(Operation.MATMUL_INT, MatmulParams(1, 0), (lhs, rhs), [[3, 2], [5, 4]])
    assert _named(causes) == [("zero_points_ignored", True)]
    # 131072 * (-128) * (-128) = 2**31: one past INT32_MAX; wrapped -2**31, saturated 2**31 - 1.
    k = 131072
    big_l = np.full((1, k), -128, np.int8)
    big_r = np.full((k, 1), -128, np.int8)
    with pytest.raises(UnpredictableError):
        explain_mismatch(Operation.MATMUL_INT, MatmulParams(), (big_l, big_r), [[-(2**31)]])
    wrapped = explain_mismatch(
        Operation.MATMUL_INT, MatmulParams(accumulator=Accumulator.INT64), (big_l, big_r), [[-(2**31)]]
    )
    assert _named(wrapped) == [("accumulator=int32_wrap", True)]


# --- minimal records and text --------------------------------------------------------------------------------------


def test_minimal_record_per_axis_keeps_the_line_along_the_axis() -> None:
    p = QuantParams([1.0, 2.0, 4.0], [0, 0, 0], INT8, PerAxis(1))
    x = np.full((2, 3), 4.0, F32)  # reference [[4, 2, 1], [4, 2, 1]]
    observed = np.array([[4, 2, 1], [4, 3, 1]])
    record = minimal_record(Operation.QUANTIZE, p, (x,), observed)
    assert record is not None
    assert record.index == (1, 1)
    np.testing.assert_array_equal(record.inputs[0], np.full((1, 3), 4.0, F32))
    np.testing.assert_array_equal(record.expected, [[4, 2, 1]])
    np.testing.assert_array_equal(record.observed, [[4, 3, 1]])


def test_minimal_record_per_block_is_one_element_with_its_own_params() -> None:
    p = QuantParams([[1.0, 2.0]], [[0, 3]], INT8, PerBlock(1, 2))
    x = np.array([[1.0, 1.0, 5.0]], F32)  # worked by hand: 1, 1, 5 / 2 = 2.5 -> 2, + 3 = 5
    record = minimal_record(Operation.QUANTIZE, p, (x,), [[1, 1, 6]])
    assert record is not None
    assert record.index == (0, 2)
    assert isinstance(record.params, QuantParams)
    assert (float(record.params.scale), int(record.params.zero_point)) == (2.0, 3)
    np.testing.assert_array_equal(record.expected, [5])
    np.testing.assert_array_equal(record.observed, [6])
    assert minimal_record(Operation.QUANTIZE, p, (x,), [[1, 1, 5]]) is None


def test_minimal_matmul_record_is_one_row_times_one_column() -> None:
    lhs = np.array([[1, 2], [3, 4]], np.uint8)
    rhs = np.array([[-1, 0], [2, 1]], np.int8)
    record = minimal_record(Operation.MATMUL_INT, MatmulParams(1, 0), (lhs, rhs), [[2, 1], [4, 4]])
    assert record is not None
    assert record.index == (1, 1)
    np.testing.assert_array_equal(record.inputs[0], [[3, 4]])
    np.testing.assert_array_equal(record.inputs[1], [[0], [1]])
    np.testing.assert_array_equal(record.expected, [[3]])


def test_format_record_shows_bit_patterns() -> None:
    record = minimal_record(Operation.QUANTIZE, QuantParams(1.0, 0, INT8), (F32([0.5]),), [1])
    assert record is not None
    assert format_record(record) == (
        "quantize: scale [1.0 (0x3f800000)], zero_point [0], int8, PerTensor(), profile onnx\n"
        "  x = float32[1] [0.5] (bits 0x3f000000)\n"
        "  expected = int8[1] [0]\n"
        "  observed = int64[1] [1]"
    )


def test_bad_arguments() -> None:
    p = QuantParams(1.0, 0, INT8)
    with pytest.raises(SpecError) as error:
        explain_mismatch("quantize", p, (F32([1.0]),), [1])  # type: ignore[arg-type]
    assert error.value.condition == "invalid_option"
    with pytest.raises(SpecError) as error:
        explain_mismatch(Operation.QUANTIZE, p, (F32([1.0]),), [1, 2])
    assert error.value.condition == "shape_mismatch"
    with pytest.raises(SpecError) as error:
        explain_mismatch(Operation.QUANTIZE, p, (F32([1.0]),), F32([1.0]))
    assert error.value.condition == "unsupported_dtype"
    with pytest.raises(SpecError) as error:
        explain_mismatch(Operation.REQUANTIZE, p, (np.int32([1]),), [1])
    assert error.value.condition == "invalid_option"
    with pytest.raises(SpecError) as error:
        RequantizeParams(np.float64(0.5), rounding="double")  # type: ignore[arg-type]
    assert error.value.condition == "invalid_option"
    with pytest.raises(SpecError) as error:
        MatmulParams(accumulator=RequantRounding.DOUBLE)  # type: ignore[arg-type]
    assert error.value.condition == "invalid_option"


# --- property: the swap that produced the codes is always among the exact causes ------------------------------------

_SWAPS = [
    ("rounding", RoundingMode.HALF_AWAY_FROM_ZERO),
    ("rounding", RoundingMode.TOWARD_ZERO),
    ("rounding", RoundingMode.HALF_TO_ODD),
    ("scale_application", ScaleApplication.RECIPROCAL_MULTIPLY),
    ("zero_point_order", ZeroPointOrder.BEFORE_ROUNDING),
    ("overflow", Overflow.WRAP),
    ("precision", Precision.FLOAT64),
]


@settings(max_examples=40, deadline=None)
@given(
    rs.distinct_shapes(max_dims=2, max_side=4).flatmap(
        lambda shape: rs.quant_params(shape=shape).flatmap(
            lambda p: st.tuples(st.just(p), rs.quantize_inputs(p, shape=shape), st.sampled_from(_SWAPS))
        )
    )
)
def test_the_swap_that_made_the_codes_is_an_exact_cause(case: tuple[QuantParams, Any, tuple[str, Any]]) -> None:
    params, x, (option, value) = case
    assume(not (value is Overflow.WRAP and params.fmt.narrow_range))  # wrap is not defined on a narrow range
    observed = quantize(x, params, **{option: value})
    causes = explain_mismatch(Operation.QUANTIZE, params, (x,), observed)
    if np.array_equal(observed, quantize(x, params)):
        assert causes == []
    else:
        assert (f"{option}={value.value}", True) in _named(causes)


# --- unmasked padding: xnor_matmul and binary_conv2d ----------------------------------------------------------------


def test_unmasked_xnor_padding_is_named_on_a_hand_worked_record() -> None:
    from refquant.conformance.causes import XnorParams

    # Worked by hand from the definition: k = 3; lhs bits 0b1101 hold the elements (+1, -1, +1) in bits 0..2 and a
    # set (garbage) padding bit 3; rhs bits 0b0111 hold (+1, +1, +1).  The reference masks the padding: 1 - 1 + 1 = 1.
    # XOR = 0b1010: popcount 2 (bit 1, an element, and bit 3, padding).  Without the mask, taking all 64 bits as
    # elements: 64 - 2 * 2 = 60; keeping k but not the mask: 3 - 2 * 2 = -1.
    lhs = np.array([[0b1101]], np.uint64)
    rhs = np.array([[0b0111]], np.uint64)
    params = XnorParams(3)
    whole = explain_mismatch(Operation.XNOR_MATMUL, params, (lhs, rhs), np.array([[60]], np.int32))
    assert [(c.name, c.exact) for c in whole] == [("unmasked_padding", True)]
    xor_only = explain_mismatch(Operation.XNOR_MATMUL, params, (lhs, rhs), np.array([[-1]], np.int32))
    assert [(c.name, c.exact) for c in xor_only] == [("unmasked_padding_xor", True)]
    # k a multiple of 64 has no padding: nothing to name
    full = np.array([[2**64 - 1]], np.uint64)
    assert explain_mismatch(Operation.XNOR_MATMUL, XnorParams(64), (full, full), np.array([[0]], np.int32)) == []


def test_planted_unmasked_padding_is_named_by_the_checker() -> None:
    from pathlib import Path

    from refquant.conformance import check
    from refquant.conformance.causes import xnor_unmasked
    from refquant.conformance.load import load_suite

    suite = load_suite(Path(__file__).resolve().parents[2] / "conformance" / "v1")
    spec = check.spec_adapter()

    def xnor(params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:  # the bug: no padding mask
        return {"dot": xnor_unmasked(inputs["lhs_bits"], inputs["rhs_bits"], params["k"]).astype(np.int32)}

    def conv(params: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:  # the bug: padded taps read as -1
        return spec["binary_conv2d"]({**params, "padding_value": "minus_one"}, inputs)

    records = check.select(suite, ops=["xnor_matmul", "binary_conv2d"], whys=["padding"])
    failed = [o for o in check.check_adapter(records, {"xnor_matmul": xnor, "binary_conv2d": conv}) if o.reason]
    assert {o.record.op for o in failed} == {"xnor_matmul", "binary_conv2d"}
    for outcome in failed:
        explanation = check.explain(outcome)
        want = "unmasked_padding" if outcome.record.op == "xnor_matmul" else "unmasked_padding=minus_one"
        assert explanation.causes[0].name == want
        assert explanation.causes[0].exact
        assert explanation.minimal["id"] == outcome.record.id
