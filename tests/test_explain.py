"""refquant.explain: which option makes two profiles disagree, on hand cases worked from the definition."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from refquant import (
    INT8,
    INT16,
    UINT8,
    NanPolicy,
    Overflow,
    PerAxis,
    PerBlock,
    Profile,
    QuantParams,
    RoundingMode,
    ScaleApplication,
    SpecError,
    ZeroPointOrder,
    profiles,
    quantize,
)
from refquant.explain import (
    NEAR_TIE_ULPS,
    Option,
    Refused,
    Swap,
    SwapOutcome,
    evaluate,
    explain_codes,
    explain_profiles,
    intermediates,
)

F32 = np.float32


def bits(value: float) -> int:
    """The float32 bit pattern of ``value`` (which must be a float32 value)."""
    assert F32(value) == value or np.isnan(value)
    return int(np.array(value, np.float32).view(np.uint32))


def single(option: Option, value: object) -> tuple[tuple[Swap, ...], ...]:
    return ((Swap(option, value),),)  # type: ignore[arg-type]


def test_zero_point_order_onnx_vs_fbgemm_legacy() -> None:
    # Worked by hand from the definition: s = 1, z = 1, uint8, x = [0.5, 1.5, 2.5].
    # ONNX: rint(x) + 1 = [0, 2, 2] + 1 = [1, 3, 3].  FBGEMM_LEGACY: rint(float32(x * (1/1)) + 1) =
    # rint([1.5, 2.5, 3.5]) = [2, 2, 4].  Swapping only the scale application (x * 1.0 = x / 1.0) gives
    # ONNX's codes again; swapping only the zero-point order gives FBGEMM's: it alone is the cause.
    x = np.array([0.5, 1.5, 2.5], np.float32)
    e = explain_profiles(x, QuantParams(1.0, 1, UINT8), a=profiles.ONNX, b=profiles.FBGEMM_LEGACY)
    assert (e.size, e.count) == (3, 3)
    assert [(el.index, el.code_a, el.code_b) for el in e.elements] == [((0,), 1, 2), ((1,), 3, 2), ((2,), 3, 4)]
    for el, onnx_code, fbgemm_code in zip(e.elements, [1, 3, 3], [2, 2, 4], strict=True):
        assert el.causes == single(Option.ZERO_POINT_ORDER, ZeroPointOrder.BEFORE_ROUNDING)
        assert el.tried == (
            SwapOutcome((Swap(Option.SCALE_APPLICATION, ScaleApplication.RECIPROCAL_MULTIPLY),), onnx_code),
            SwapOutcome((Swap(Option.ZERO_POINT_ORDER, ZeroPointOrder.BEFORE_ROUNDING),), fbgemm_code),
        )
        assert el.intermediates.tie
        assert not el.intermediates.near_tie
        assert el.intermediates.zero_point == 1
        assert el.options == frozenset({Option.ZERO_POINT_ORDER})


def test_rounding_onnx_vs_tflite_on_2_5() -> None:
    # Worked by hand: s = 1, z = 0.  1.5 -> 2 under both half to even and half away from zero (agree);
    # 2.5 -> 2 (half to even, ONNX) vs 3 (half away from zero, TFLite): the rounding mode is the cause.
    x = np.array([1.5, 2.5], np.float32)
    e = explain_profiles(x, QuantParams(1.0, 0, INT8), a=profiles.ONNX, b=profiles.TFLITE)
    assert [(el.index, el.code_a, el.code_b) for el in e.elements] == [((1,), 2, 3)]
    (el,) = e.elements
    assert el.causes == single(Option.ROUNDING, RoundingMode.HALF_AWAY_FROM_ZERO)
    i = el.intermediates
    assert i.quotient == Fraction(5, 2)
    assert i.nearest_half == Fraction(5, 2)
    assert i.tie
    assert i.divided_is_half
    assert i.multiplied_is_half
    assert bits(i.divided) == bits(2.5)
    assert bits(i.multiplied) == bits(2.5)


def test_reciprocal_near_tie_is_the_scale_application() -> None:
    # The FBGEMM source comment's case (spec-anchors V2, [run] there): s = 0.00214854861f,
    # x = -0.273939937f, int8, z = 0.  float32(x / s) = -127.49999237060547 -> -127 (ONNX);
    # float32(1 / s) = 465.4250183105469 and float32(x * that) = -127.5 -> half to even -128 (PyTorch).
    s, x = F32(0.00214854861), F32(-0.273939937)
    e = explain_profiles(np.array([x]), QuantParams(s, 0, INT8), a=profiles.ONNX, b=profiles.TORCH)
    (el,) = e.elements
    assert (el.code_a, el.code_b) == (-127, -128)
    assert Swap(Option.SCALE_APPLICATION, ScaleApplication.RECIPROCAL_MULTIPLY) in {c[0] for c in el.causes}
    i = el.intermediates
    assert bits(i.divided) == bits(-127.49999237060547)
    assert bits(i.reciprocal) == bits(float(F32(1) / s))
    assert bits(i.multiplied) == bits(-127.5)
    assert not i.tie
    assert i.near_tie
    assert i.nearest_half == Fraction(-255, 2)
    # The exact quotient lies above -127.5 (toward zero), within a float32 ulp (2**-17 at 127.5).
    assert i.quotient is not None
    assert Fraction(-255, 2) < i.quotient < Fraction(-255, 2) + Fraction(1, 2**17)
    assert i.ulps_from_half is not None
    assert 0 < i.ulps_from_half < 1
    assert i.multiplied_is_half
    assert not i.divided_is_half


def test_two_single_swaps_each_reproduce_b_both_named() -> None:
    # Worked by hand: s = 1, z = 1, uint8, x = 0.5.  A = ONNX: rint(0.5) + 1 = 1.
    # B = half away from zero with the zero point before rounding: round_away(0.5 + 1) = 2.
    # Rounding alone: round_away(0.5) + 1 = 2 = B.  Zero-point order alone: rint(1.5) = 2 = B.
    b = Profile(
        "away_before",
        rounding=RoundingMode.HALF_AWAY_FROM_ZERO,
        zero_point_order=ZeroPointOrder.BEFORE_ROUNDING,
    )
    e = explain_profiles(np.array([0.5], np.float32), QuantParams(1.0, 1, UINT8), a=profiles.ONNX, b=b)
    (el,) = e.elements
    assert (el.code_a, el.code_b) == (1, 2)
    assert el.causes == (
        (Swap(Option.ROUNDING, RoundingMode.HALF_AWAY_FROM_ZERO),),
        (Swap(Option.ZERO_POINT_ORDER, ZeroPointOrder.BEFORE_ROUNDING),),
    )
    assert el.options == frozenset({Option.ROUNDING, Option.ZERO_POINT_ORDER})


def test_options_that_only_act_together_are_named_as_a_set() -> None:
    # s = 0.1f, x = 0.65f, int8, z = 0.  float32 arithmetic (checked below): x / s = 6.4999995 and
    # x * float32(1/s) = 6.5.  Worked by hand from those: ONNX rint(6.4999995) = 6; GGML_Q8_0
    # round_away(6.5) = 7; rounding alone round_away(6.4999995) = 6; scale alone rint(6.5) = 6.
    # No single swap gives 7: only the pair does.
    s, x = F32(0.1), F32(0.65)
    assert bits(float(x / s)) == bits(6.4999995231628418)
    assert bits(float(x * (F32(1) / s))) == bits(6.5)
    e = explain_profiles(np.array([x]), QuantParams(s, 0, INT8), a=profiles.ONNX, b=profiles.GGML_Q8_0)
    (el,) = e.elements
    assert (el.code_a, el.code_b) == (6, 7)
    assert [o.code for o in el.tried] == [6, 6]
    assert el.causes == (
        (
            Swap(Option.ROUNDING, RoundingMode.HALF_AWAY_FROM_ZERO),
            Swap(Option.SCALE_APPLICATION, ScaleApplication.RECIPROCAL_MULTIPLY),
        ),
    )


def test_nan_policy_difference_is_explained_not_raised() -> None:
    # ONNX refuses NaN (nan_policy RAISE); ORT gives qmin.  The other elements agree.
    x = np.array([1.0, np.nan, -1.0], np.float32)
    e = explain_profiles(x, QuantParams(1.0, 0, INT8), a=profiles.ONNX, b=profiles.ORT)
    (el,) = e.elements
    assert el.index == (1,)
    assert el.code_a == Refused("nan_input")
    assert el.code_b == -128
    assert el.causes == single(Option.NAN_POLICY, NanPolicy.TO_QMIN)
    assert el.intermediates.quotient is None
    assert not el.intermediates.tie
    assert not el.intermediates.near_tie


def test_evaluate_marks_refused_elements_and_matches_quantize_elsewhere() -> None:
    x = np.array([0.5, np.nan, 2.5, -3.0], np.float32)
    params = QuantParams(1.0, 1, UINT8)
    codes, refused = evaluate(x, params, profile=profiles.ONNX)
    np.testing.assert_array_equal(refused, [False, True, False, False])
    np.testing.assert_array_equal(codes[~refused], quantize(x[~refused], params).astype(np.int64))


def test_per_block_params_report_each_element_s_own_parameters() -> None:
    # Worked by hand: x = [[0.5, 0.5, 0.5]] along axis 1 in blocks of 2 (the last block has one element),
    # scales [[1, 0.5]], zero points [[1, 2]].  Element (0, 2) is in block 1: x / s = 1.0, no tie, all
    # agree.  Elements (0, 0), (0, 1): x / s = 0.5 with z = 1 odd: ONNX 0 + 1 = 1, FBGEMM_LEGACY
    # rint(1.5) = 2.
    x = np.array([[0.5, 0.5, 0.5]], np.float32)
    params = QuantParams(np.array([[1.0, 0.5]]), np.array([[1, 2]]), UINT8, PerBlock(axis=1, block_size=2))
    e = explain_profiles(x, params, a=profiles.ONNX, b=profiles.FBGEMM_LEGACY)
    assert [(el.index, el.code_a, el.code_b) for el in e.elements] == [((0, 0), 1, 2), ((0, 1), 1, 2)]
    assert all(el.intermediates.zero_point == 1 and el.intermediates.scale == 1.0 for el in e.elements)


def test_per_axis_params() -> None:
    # Worked by hand: axis 0, scales [1, 2], zero point 0: row 0 is x / 1, row 1 is x / 2.
    # x = [[2.5, 1.0], [5.0, 1.0]] -> quotients [[2.5, 1.0], [2.5, 0.5]]: ties at (0,0), (1,0), (1,1).
    # ONNX [[2, 1], [2, 0]]; TFLITE [[3, 1], [3, 1]].
    x = np.array([[2.5, 1.0], [5.0, 1.0]], np.float32)
    params = QuantParams(np.array([1.0, 2.0]), 0, INT16, PerAxis(0))
    e = explain_profiles(x, params, a=profiles.ONNX, b=profiles.TFLITE)
    assert [(el.index, el.code_a, el.code_b) for el in e.elements] == [((0, 0), 2, 3), ((1, 0), 2, 3), ((1, 1), 0, 1)]
    assert [el.intermediates.scale for el in e.elements] == [1.0, 2.0, 2.0]


def test_zero_dimensional_input() -> None:
    e = explain_profiles(np.float32(2.5), QuantParams(1.0, 0, INT8), a=profiles.ONNX, b=profiles.TFLITE)
    assert [(el.index, el.code_a, el.code_b) for el in e.elements] == [((), 2, 3)]


def test_identical_profiles_have_nothing_to_explain() -> None:
    x = np.array([0.5, 1.5, -2.5], np.float32)
    e = explain_profiles(x, QuantParams(1.0, 1, UINT8), a=profiles.ONNX, b=profiles.ONNX)
    assert e.elements == ()
    assert e.alternatives == ()


def test_invalid_single_swap_is_reported_as_refused() -> None:
    # B uses a fused multiply-add (which needs the reciprocal multiply).  From ONNX the single swap of the
    # zero-point order alone is not a valid profile; the scale swap alone is valid; the pair is B.
    b = Profile(
        "fused",
        scale_application=ScaleApplication.RECIPROCAL_MULTIPLY,
        zero_point_order=ZeroPointOrder.FUSED_MULTIPLY_ADD,
    )
    # Worked by hand: s = 1, z = 1, x = 0.5: ONNX rint(0.5) + 1 = 1; fused rint(fma(0.5, 1, 1)) = rint(1.5) = 2.
    e = explain_profiles(np.array([0.5], np.float32), QuantParams(1.0, 1, UINT8), a=profiles.ONNX, b=b)
    (el,) = e.elements
    assert el.tried == (
        SwapOutcome((Swap(Option.SCALE_APPLICATION, ScaleApplication.RECIPROCAL_MULTIPLY),), 1),
        SwapOutcome(
            (Swap(Option.ZERO_POINT_ORDER, ZeroPointOrder.FUSED_MULTIPLY_ADD),),
            Refused("unsupported_option_combination"),
        ),
    )
    assert el.causes == (
        (
            Swap(Option.SCALE_APPLICATION, ScaleApplication.RECIPROCAL_MULTIPLY),
            Swap(Option.ZERO_POINT_ORDER, ZeroPointOrder.FUSED_MULTIPLY_ADD),
        ),
    )


def test_explain_codes_searches_every_option_value() -> None:
    # Observed codes from "a device" that wraps instead of saturating: s = 1, z = 0, int8, x = 130 -> -126.
    # Worked by hand: ONNX saturates 130 to 127; two's-complement wrap of 130 is 130 - 256 = -126.
    x = np.array([1.0, 130.0], np.float32)
    e = explain_codes(x, QuantParams(1.0, 0, INT8), np.array([1, -126], np.int8), profile=profiles.ONNX)
    (el,) = e.elements
    assert (el.index, el.code_a, el.code_b) == ((1,), 127, -126)
    assert el.causes == single(Option.OVERFLOW, Overflow.WRAP)
    assert e.b is None


def test_explain_codes_names_every_rounding_that_fits() -> None:
    # Observed 3 for x = 2.5 (s = 1, z = 0); ONNX gives 2.  Worked by hand from the rounding table:
    # 2.5 -> 3 under HALF_AWAY_FROM_ZERO, HALF_TOWARD_POSITIVE, HALF_TO_ODD, TOWARD_POSITIVE, AWAY_FROM_ZERO.
    e = explain_codes(
        np.array([2.5], np.float32),
        QuantParams(1.0, 0, INT8),
        np.array([3]),
        profile=profiles.ONNX,
        alternatives={Option.ROUNDING: list(RoundingMode)},
    )
    (el,) = e.elements
    assert {c[0].value for c in el.causes} == {
        RoundingMode.HALF_AWAY_FROM_ZERO,
        RoundingMode.HALF_TOWARD_POSITIVE,
        RoundingMode.HALF_TO_ODD,
        RoundingMode.TOWARD_POSITIVE,
        RoundingMode.AWAY_FROM_ZERO,
    }
    # STOCHASTIC is skipped without draws; ONNX's own HALF_TO_EVEN is never an alternative.
    assert dict(e.alternatives)[Option.ROUNDING] == tuple(
        m for m in RoundingMode if m not in (RoundingMode.HALF_TO_EVEN, RoundingMode.STOCHASTIC)
    )


def test_explain_codes_unexplained_element_has_no_cause() -> None:
    # 50 for x = 1.0 is not one rounding or overflow away from ONNX's 1: nothing tried reproduces it.
    e = explain_codes(
        np.array([1.0], np.float32), QuantParams(1.0, 0, INT8), np.array([50]), profile=profiles.ONNX, max_swaps=1
    )
    (el,) = e.elements
    assert el.causes == ()


@pytest.mark.parametrize(
    ("codes", "condition"),
    [(np.array([1.0, 2.0]), "unsupported_dtype"), (np.array([1, 2, 3]), "shape_mismatch")],
)
def test_explain_codes_rejects_bad_codes(codes: np.ndarray, condition: str) -> None:
    with pytest.raises(SpecError) as info:
        explain_codes(np.array([1.0, 2.0], np.float32), QuantParams(1.0, 0, INT8), codes, profile=profiles.ONNX)
    assert info.value.condition == condition


def test_explain_codes_rejects_bad_alternatives() -> None:
    with pytest.raises(SpecError) as info:
        explain_codes(
            np.array([1.0], np.float32),
            QuantParams(1.0, 0, INT8),
            np.array([1]),
            profile=profiles.ONNX,
            alternatives={Option.ROUNDING: [Overflow.WRAP]},  # type: ignore[list-item]
        )
    assert info.value.condition == "invalid_option"


def test_intermediates_ties_and_near_ties() -> None:
    # Worked by hand: 0.75 / 0.5 = 3/2 exactly: a tie.  1.0 / 0.5 = 2: an integer, no tie, and the
    # nearest half-integer is 2.5 (floor + 1/2), far away.
    tie = intermediates(0.75, 0.5, 3)
    assert tie.tie
    assert tie.quotient == Fraction(3, 2)
    assert tie.ulps_from_half == 0.0
    integer = intermediates(1.0, 0.5, 0)
    assert not integer.tie
    assert not integer.near_tie
    assert integer.nearest_half == Fraction(5, 2)
    # One float32 ulp below the tie 1.5 * 1: near (1 ulp <= NEAR_TIE_ULPS), not a tie.
    below = intermediates(float(np.nextafter(F32(1.5), F32(0))), 1.0, 0)
    assert below.near_tie
    assert below.ulps_from_half == -1.0
    assert NEAR_TIE_ULPS >= 1
    # Infinity: no quotient.
    inf = intermediates(float("inf"), 1.0, 0)
    assert inf.quotient is None
    assert not inf.near_tie


def test_limit_explains_the_first_elements_and_counts_all() -> None:
    # Worked by hand: s = 1, z = 0; x = 0.5, 2.5, 4.5, 6.5 are ties whose half-to-even and half-away
    # results differ (0/1, 2/3, 4/5, 6/7); 1.5 agrees (2 under both).
    x = np.array([0.5, 1.5, 2.5, 4.5, 6.5], np.float32)
    e = explain_profiles(x, QuantParams(1.0, 0, INT8), a=profiles.ONNX, b=profiles.TFLITE, limit=2)
    assert e.count == 4
    assert [el.index for el in e.elements] == [(0,), (2,)]
    with pytest.raises(SpecError) as info:
        explain_profiles(x, QuantParams(1.0, 0, INT8), a=profiles.ONNX, b=profiles.TFLITE, limit=-1)
    assert info.value.condition == "invalid_option"


def test_intermediates_of_a_quotient_beyond_float64() -> None:
    """A float64 element over a subnormal float32 scale: the exact quotient 1e300 / fl32(1e-40) exceeds every float;
    worked by hand: it is a whole number times 2**149 / (the scale's integer mantissa), far above 2**127, so there is
    no float32 ulp to measure in and ``ulps_from_half`` is None; the float32 operations overflow to +inf."""
    i = intermediates(1e300, 1e-40, 0)
    assert i.quotient is not None
    assert i.quotient > 2**1000
    assert i.ulps_from_half is None
    assert not i.tie
    assert not i.near_tie
    assert i.divided == float("inf")
    assert i.multiplied == float("inf")
