"""choose_qparams / choose_qparams_from_range / nudge_quantization_range: hand tables (spec-anchors V3, V4,
V12, V13), properties, peers (torch observers, onnxruntime, the ONNX reference), and every error condition."""

from __future__ import annotations

import warnings
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refquant import (
    INT4,
    INT8,
    INT16,
    UINT4,
    UINT8,
    UINT16,
    IntFormat,
    PerAxis,
    PerBlock,
    PerTensor,
    Precision,
    QuantParams,
    RoundingMode,
    SpecError,
    dequantize,
    profiles,
    quantize,
)
from refquant.spec.qparams import (
    FLOAT32_EPS,
    FLT_MIN,
    NudgedRange,
    ReduceRange,
    SymmetricDenominator,
    ZeroRange,
    choose_qparams,
    choose_qparams_from_range,
    nudge_quantization_range,
)

F32 = np.float32
HALF_RANGE = SymmetricDenominator.HALF_RANGE
QMAX = SymmetricDenominator.QMAX


def bits(p: QuantParams) -> Any:
    return p.scale.view(np.uint32).tolist()


def sz(p: QuantParams) -> tuple[Any, Any]:
    """(scale bit pattern(s), zero point(s))."""
    return bits(p), p.zero_point.tolist()


# ---------------------------------------------------------------------------------------------------------------
# Hand tables, worked by hand from the definition in refquant/spec/qparams.py (float32 values derived from the
# exact quotient and rounded half to even on the 24-bit significand; the working is in each comment).


def test_v3_zero_point_tie_half_to_even_vs_tf_nudge() -> None:
    # min = -2.5, max = 252.5, uint8: scale = 255 / 255 = 1.0 exactly (0x3F800000).
    # PyTorch (2): 0 - round_half_to_even(-2.5 / 1) = 0 - (-2) = 2.
    p = choose_qparams_from_range(-2.5, 252.5, UINT8)
    assert sz(p) == (0x3F800000, 2)
    # zero_point_rounding HALF_AWAY_FROM_ZERO: 0 - (-3) = 3.
    p = choose_qparams_from_range(-2.5, 252.5, UINT8, zero_point_rounding=RoundingMode.HALF_AWAY_FROM_ZERO)
    assert sz(p) == (0x3F800000, 3)
    # TF NudgeQuantizationRange: zero_point_from_min = 0 - (-2.5 / 1) = 2.5 -> away -> 3;
    # nudged_min = (0 - 3) * 1 = -3, nudged_max = (255 - 3) * 1 = 252.
    r = nudge_quantization_range(-2.5, 252.5, UINT8)
    assert sz(r.params) == (0x3F800000, 3)
    assert (float(r.nudged_min), float(r.nudged_max)) == (-3.0, 252.0)
    # The same range through choose_qparams on data.
    assert sz(choose_qparams(np.array([10.0, -2.5, 252.5], F32), UINT8)) == (0x3F800000, 2)


def test_v4_symmetric_denominators() -> None:
    # amax = 1.0.  HALF_RANGE: 1 / 127.5 = 2/255 = 2**-7 * 256/255; 2**23 * 256/255 = 8421504.502 -> 8421505
    # = 0x808081, so the bits are 0x3C000000 + 0x008081 = 0x3C008081 (= torch's 0.007843138).
    # QMAX: 1 / 127 = 2**-7 * 128/127; 2**23 * 128/127 = 8454660.031 -> 8454660 = 0x810204 -> 0x3C010204.
    x = np.array([1.0, -1.0, 0.5, -0.00392], F32)
    half = choose_qparams(x, INT8, symmetric=True)
    qmax = choose_qparams(x, INT8, symmetric=True, symmetric_denominator=QMAX)
    assert sz(half) == (0x3C008081, 0)
    assert sz(qmax) == (0x3C010204, 0)
    # Codes (ONNX quantize, float32 x / s, half to even):
    #   HALF_RANGE: 1/s = 127.5 * (8421504.502/8421505) = 127.4999925 -> float32 127.49999 -> 127; 0.5/s =
    #   63.74999 -> 64; -0.00392/s = -0.4998 -> 0.
    #   QMAX: 1/s = 127 * (1 + 3.7e-9) -> float32 127.0 -> 127; 0.5/s = 63.5 * (1 + 3.7e-9) is within half an ulp
    #   (3.8e-6) of 63.5 -> float32 63.5 -> half to even 64; -0.00392/s = -0.4978 -> 0.
    assert quantize(x, half).tolist() == [127, -127, 64, 0]
    assert quantize(x, qmax).tolist() == [127, -127, 64, 0]
    # On a narrow-range format the two denominators agree: (127 - (-127)) / 2 = 127 = qmax.
    int8n = IntFormat(8, True, narrow_range=True)
    assert sz(choose_qparams(x, int8n, symmetric=True)) == (0x3C010204, 0)
    assert sz(choose_qparams(x, int8n, symmetric=True, symmetric_denominator=QMAX)) == (0x3C010204, 0)


def test_v12_degenerate_all_zero_range() -> None:
    zeros = np.zeros(3, F32)
    # Default ZeroRange.SCALE_ONE: scale 1.0, zero point 0 (onnxruntime; the PyTorch observer docstring).
    assert sz(choose_qparams(zeros, UINT8)) == (0x3F800000, 0)
    assert sz(choose_qparams(zeros, INT8)) == (0x3F800000, 0)
    assert sz(choose_qparams(zeros, UINT8, symmetric=True)) == (0x3F800000, 0)
    # PyTorch: scale = max(0, eps) = 2**-23 (0x34000000); zero point (2): qmin - round(0 / eps) = qmin,
    # i.e. 0 for quint8 and -128 for qint8; symmetric: 0 (qint8) and 128 (quint8).
    eps = {"scale_floor": FLOAT32_EPS}
    assert sz(choose_qparams(zeros, UINT8, **eps)) == (0x34000000, 0)  # type: ignore[arg-type]
    assert sz(choose_qparams(zeros, INT8, **eps)) == (0x34000000, -128)  # type: ignore[arg-type]
    assert sz(choose_qparams(zeros, INT8, symmetric=True, **eps)) == (0x34000000, 0)  # type: ignore[arg-type]
    assert sz(choose_qparams(zeros, UINT8, symmetric=True, **eps)) == (0x34000000, 128)  # type: ignore[arg-type]
    # ONNX reference DynamicQuantizeLinear: 1/255 = 2**-8 * 256/255 -> significand 0x808081 -> 0x3B808081;
    # zero point (2): 0 - round(0) = 0.
    assert sz(choose_qparams(zeros, UINT8, zero_range=ZeroRange.SCALE_ONE_OVER_QRANGE)) == (0x3B808081, 0)
    with pytest.raises(SpecError) as e:
        choose_qparams(zeros, UINT8, zero_range=ZeroRange.RAISE)
    assert e.value.condition == "zero_range"


def test_degenerate_single_value_ranges() -> None:
    # min == max == 3: widened to [0, 3]; 3/255 = 1/85 = 2**-7 * 128/85, 2**23 * 128/85 = 12632256.75 -> 12632257
    # = 0xC0C0C1 -> 0x3C40C0C1; zero point 0 - round(0) = 0.
    assert sz(choose_qparams(np.array([3.0, 3.0]), UINT8)) == (0x3C40C0C1, 0)
    # min == max == -3 on int8: widened to [-3, 0]; same scale; -3/s = -255 (to float32) -> zp = -128 + 255 = 127.
    assert sz(choose_qparams(np.array([-3.0]), INT8)) == (0x3C40C0C1, 127)
    # A subnormal range: 1e-40 / 255 is below FLT_MIN, so the zero-range rule applies (scale 1.0, zp 0).
    assert sz(choose_qparams_from_range(0.0, 1e-40, UINT8)) == (0x3F800000, 0)
    with pytest.raises(SpecError) as e:
        choose_qparams_from_range(0.0, 1e-40, UINT8, zero_range=ZeroRange.RAISE)
    assert e.value.condition == "zero_range"


def test_v13_reduced_ranges() -> None:
    x = np.array([1.0, -1.0], F32)
    # PyTorch int8 reduce_range: [-64, 63] = IntFormat(7, signed); symmetric d = 127/2 = 63.5, 1/63.5 = 2/127 =
    # 2**-6 * 128/127 -> significand 0x810204 -> 0x3C810204; zero point 0.
    p = choose_qparams(x, INT8, symmetric=True, reduce_range=ReduceRange.HALVE)
    assert sz(p) == (0x3C810204, 0)
    assert p.fmt == IntFormat(7, True)
    # quint8 reduce_range asymmetric: [0, 127]; scale 2/127 (0x3C810204); -1/s = -63.5 * (1 - 3.7e-9) rounds to
    # float32 -63.5 (within half an ulp) -> half to even -64 -> zero point 0 + 64 = 64.
    p = choose_qparams(x, UINT8, reduce_range=ReduceRange.HALVE)
    assert sz(p) == (0x3C810204, 64)
    assert p.fmt == IntFormat(7, False)
    # onnxruntime int8 reduce_range: [-64, 64]; symmetric d = 128/2 = 64 -> 1/64 = 2**-6 exactly (0x3C800000).
    p = choose_qparams(x, INT8, symmetric=True, reduce_range=ReduceRange.HALVE_SYMMETRIC)
    assert sz(p) == (0x3C800000, 0)
    assert p.fmt == INT8  # [-64, 64] is no IntFormat; the codes stay in int8
    assert quantize(np.array([1.0, -1.0, 2.0], F32), p).tolist() == [64, -64, 127]
    # onnxruntime uint8 reduce_range: [0, 127], the same as HALVE.
    p = choose_qparams(x, UINT8, reduce_range=ReduceRange.HALVE_SYMMETRIC)
    assert sz(p) == (0x3C810204, 64)
    assert p.fmt == IntFormat(7, False)
    # int4 HALVE: [-4, 3] (PyTorch custom range [-8, 7] halved by floor division).
    assert choose_qparams(x, INT4, reduce_range=ReduceRange.HALVE).fmt == IntFormat(3, True)
    # A narrow format halves to the narrow (bits - 1)-bit format: [-127, 127] -> [-63, 63].
    assert choose_qparams(x, IntFormat(8, True, True), reduce_range=ReduceRange.HALVE).fmt == IntFormat(7, True, True)


def test_power_of_two_scales() -> None:
    x = np.array([3.0, -1.0], F32)
    # scale 4/255 = 0.01569 lies in (2**-6, 2**-5): TOWARD_POSITIVE -> 2**-5 (0x3D000000); zero point
    # -128 - round(-1 / 2**-5) = -128 + 32 = -96.
    assert sz(choose_qparams(x, INT8, power_of_two_scale=RoundingMode.TOWARD_POSITIVE)) == (0x3D000000, -96)
    # TOWARD_NEGATIVE -> 2**-6 (0x3C800000); zero point -128 + 64 = -64.
    assert sz(choose_qparams(x, INT8, power_of_two_scale=RoundingMode.TOWARD_NEGATIVE)) == (0x3C800000, -64)
    # Q0.7-style symmetric: amax = 1, 1/127.5 = 0.00784 in (2**-7, 2**-6) -> 2**-6 up, 2**-7 down.
    one = np.array([1.0, -1.0], F32)
    up = choose_qparams(one, INT8, symmetric=True, power_of_two_scale=RoundingMode.TOWARD_POSITIVE)
    down = choose_qparams(one, INT8, symmetric=True, power_of_two_scale=RoundingMode.TOWARD_NEGATIVE)
    assert sz(up) == (0x3C800000, 0)
    assert sz(down) == (0x3C000000, 0)
    # An exact power of two stays: range 255 * 2**-3 on uint8 gives scale 2**-3 both ways.
    for direction in (RoundingMode.TOWARD_POSITIVE, RoundingMode.TOWARD_NEGATIVE):
        assert sz(choose_qparams_from_range(0.0, 255 / 8, UINT8, power_of_two_scale=direction)) == (0x3E000000, 0)


def test_tf_nudge_hand_cases() -> None:
    # All with scale (max - min) / 255 = 1.0 exactly.
    cases = [
        # min, max -> zero point, nudged_min, nudged_max   (worked from the TF formula in the docstring)
        (1.0, 256.0, 0, 0.0, 255.0),  # from_min = 0 - 1 = -1 < 0 -> qmin 0: the range slides down to [0, 255]
        (-300.0, -45.0, 255, -255.0, 0.0),  # from_min = 300 > 255 -> qmax 255
        (-0.5, 254.5, 1, -1.0, 254.0),  # from_min = 0.5, a tie -> away from zero -> 1 (PyTorch: 0)
        (-1.5, 253.5, 2, -2.0, 253.0),  # 1.5 -> 2
    ]
    for lo, hi, zp, nmin, nmax in cases:
        r = nudge_quantization_range(lo, hi, UINT8)
        assert isinstance(r, NudgedRange)
        assert (sz(r.params), float(r.nudged_min), float(r.nudged_max)) == ((0x3F800000, zp), nmin, nmax)
    assert choose_qparams_from_range(-0.5, 254.5, UINT8).zero_point.tolist() == 0
    # Per channel: arrays in, arrays out.
    r = nudge_quantization_range(np.array([-2.5, -0.5]), np.array([252.5, 254.5]), UINT8, granularity=PerAxis(0))
    assert r.params.zero_point.tolist() == [3, 1]
    assert r.nudged_min.tolist() == [-3.0, -1.0]


def test_granularities_hand_table() -> None:
    x = np.array([[-3.0, -2.0, -1.0, 0.0, 1.0], [2.0, 3.0, 4.0, 5.0, 6.0]], F32)
    # Per block along axis 1, block 2 (last block ragged: one column).  Row 0 blocks: [-3, -2] -> [-3, 0]:
    # 3/255 (0x3C40C0C1), zp -128 + 255 = 127; [-1, 0] -> 1/255 (0x3B808081), zp 127; [1] -> [0, 1]: 1/255,
    # zp -128.  Row 1: [2, 3] -> [0, 3]: 3/255, zp -128; [4, 5] -> 5/255 = 1/51 = 2**-6 * 64/51: 2**23 * 64/51
    # = 10527195.29 -> 0xA0A0A1 -> 0x3CA0A0A1, zp -128; [6] -> 6/255 = 2/85 = 2**-6 * 128/85 -> 0x3CC0C0C1, zp -128.
    p = choose_qparams(x, INT8, granularity=PerBlock(axis=1, block_size=2))
    assert p.scale.shape == (2, 3)
    assert sz(p) == (
        [[0x3C40C0C1, 0x3B808081, 0x3B808081], [0x3C40C0C1, 0x3CA0A0A1, 0x3CC0C0C1]],
        [[127, 127, -128], [-128, -128, -128]],
    )
    # Per axis 0: row ranges [-3, 1] -> 4/255, zp -128 + round(3 / (4/255)) = -128 + 191 (191.25) = 63;
    # [2, 6] -> [0, 6]: 6/255, zp -128.  4/255 = 2**-6 * 256/255 -> significand 0x808081 -> 0x3C808081.
    p = choose_qparams(x, INT8, granularity=PerAxis(0))
    assert sz(p) == ([0x3C808081, 0x3CC0C0C1], [63, -128])
    # Negative axis counts from the back.
    assert sz(choose_qparams(x, INT8, granularity=PerAxis(-1))) == sz(choose_qparams(x, INT8, granularity=PerAxis(1)))


def test_float64_precision_and_inputs() -> None:
    # Integer inputs: exact extremes, converted once.
    assert choose_qparams(np.array([0, 255], np.int64), UINT8) == choose_qparams_from_range(0.0, 255.0, UINT8)
    # float16 inputs give the same as their float32 values.
    h = np.array([-1.5, 0.25, 3.0], np.float16)
    assert choose_qparams(h, INT8) == choose_qparams(h.astype(F32), INT8)
    # FLOAT64: the scale is rounded to float32 once, at the end.  2/255 in float64 rounded to float32 equals the
    # float32 quotient here (0x3C008081); the zero point uses the float64 scale: -1 / (2/255) = -127.5 exactly,
    # half to even -128 -> zp 128.  In float32 -1/fl32(2/255) = -127.49999 -> -127 -> zp 127.
    p64 = choose_qparams_from_range(-1.0, 1.0, UINT8, precision=Precision.FLOAT64)
    p32 = choose_qparams_from_range(-1.0, 1.0, UINT8)
    assert sz(p64) == (0x3C008081, 128)
    assert sz(p32) == (0x3C008081, 127)


# ---------------------------------------------------------------------------------------------------------------
# Properties

finite32 = st.floats(
    min_value=-(2.0**100), max_value=2.0**100, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=32
)
FORMATS = [INT4, INT8, INT16, UINT4, UINT8, UINT16, IntFormat(8, True, True), IntFormat(2, True), IntFormat(1, False)]


@st.composite
def ranges(draw: st.DrawFn) -> tuple[float, float]:
    a, b = draw(finite32), draw(finite32)
    return (min(a, b), max(a, b))


option_sets = st.fixed_dictionaries(
    {
        "symmetric": st.booleans(),
        "symmetric_denominator": st.sampled_from(list(SymmetricDenominator)),
        "reduce_range": st.sampled_from(list(ReduceRange)),
        "zero_point_rounding": st.sampled_from([RoundingMode.HALF_TO_EVEN, RoundingMode.HALF_AWAY_FROM_ZERO]),
        "power_of_two_scale": st.sampled_from([None, RoundingMode.TOWARD_POSITIVE, RoundingMode.TOWARD_NEGATIVE]),
        "scale_floor": st.sampled_from([None, FLOAT32_EPS]),
        "zero_range": st.sampled_from([ZeroRange.SCALE_ONE, ZeroRange.SCALE_ONE_OVER_QRANGE]),
        "precision": st.sampled_from(list(Precision)),
    }
)


@given(rng=ranges(), fmt=st.sampled_from(FORMATS), opts=option_sets)
def test_zero_is_exactly_representable(rng: tuple[float, float], fmt: IntFormat, opts: dict[str, Any]) -> None:
    """Whatever the options, the real value 0 quantizes to the zero point and dequantizes to exactly 0.0."""
    if opts["reduce_range"] is not ReduceRange.NONE:
        assume(fmt.bits >= 3)
    if opts["symmetric"] and opts["symmetric_denominator"] is QMAX:
        assume(fmt.bits >= 2)  # a 1-bit format has no positive qmax - zero_point
    p = choose_qparams_from_range(rng[0], rng[1], fmt, **opts)
    assert float(p.scale) > 0
    assert np.isfinite(p.scale)
    code = quantize(np.zeros(1, F32), p)
    assert code.tolist() == [int(p.zero_point)]
    back = dequantize(code, p)
    assert back.view(np.uint32).tolist() == [0]  # +0.0, bit for bit


@given(rng=ranges(), fmt=st.sampled_from(FORMATS), precision=st.sampled_from(list(Precision)))
def test_asymmetric_range_is_covered_within_half_a_step(
    rng: tuple[float, float], fmt: IntFormat, precision: Precision
) -> None:
    """[(qmin - z) s, (qmax - z) s] covers [min(lo, 0), max(hi, 0)] up to half a step (and float slack)."""
    lo, hi = rng
    p = choose_qparams_from_range(lo, hi, fmt, precision=precision)
    s, z = Fraction(float(p.scale)), int(p.zero_point)
    min_neg, max_pos = Fraction(min(lo, 0.0)), Fraction(max(hi, 0.0))
    assume(max_pos - min_neg >= Fraction(FLT_MIN) * (fmt.qmax - fmt.qmin))  # not the zero-range rule
    slack = (max_pos - min_neg) * Fraction(1, 2**20)  # a few float32 roundings of the range
    assert (fmt.qmin - z) * s <= min_neg + s / 2 + slack
    assert (fmt.qmax - z) * s >= max_pos - s / 2 - slack


@given(rng=ranges(), fmt=st.sampled_from([INT4, INT8, INT16, IntFormat(8, True, True), UINT8]))
def test_symmetric_qmax_covers_amax(rng: tuple[float, float], fmt: IntFormat) -> None:
    """QMAX: amax maps to at most qmax - z (up to float32 slack); HALF_RANGE: to at most half a step more."""
    lo, hi = rng
    amax = max(-min(lo, 0.0), max(hi, 0.0))
    assume(amax > 1e-30)
    for den, extra in ((QMAX, Fraction(0)), (HALF_RANGE, Fraction(1, 2))):
        p = choose_qparams_from_range(lo, hi, fmt, symmetric=True, symmetric_denominator=den)
        s, z = Fraction(float(p.scale)), int(p.zero_point)
        assert (fmt.qmax - z + extra) * s * (1 + Fraction(1, 2**22)) >= Fraction(amax)
        assert (z - fmt.qmin) * s * (1 + Fraction(1, 2**22)) >= Fraction(amax)


@st.composite
def distinct_shape_arrays(draw: st.DrawFn, min_ndim: int = 1) -> tuple[np.ndarray, int]:
    ndim = draw(st.integers(min_ndim, 3))
    dims = draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim, unique=True))
    x = draw(hnp.arrays(F32, tuple(dims), elements=st.floats(-100, 100, width=32)))
    axis = draw(st.integers(-ndim, ndim - 1))
    return x, axis


@given(data=distinct_shape_arrays(), symmetric=st.booleans(), fmt=st.sampled_from([INT8, UINT8, INT4]))
def test_per_axis_equals_per_tensor_on_each_slice(
    data: tuple[np.ndarray, int], symmetric: bool, fmt: IntFormat
) -> None:
    x, axis = data
    p = choose_qparams(x, fmt, symmetric=symmetric, granularity=PerAxis(axis))
    assert p.scale.shape == (x.shape[axis],)
    for i in range(x.shape[axis]):
        one = choose_qparams(np.take(x, i, axis=axis), fmt, symmetric=symmetric)
        assert p.scale[i].view(np.uint32) == one.scale.view(np.uint32)
        assert p.zero_point[i] == one.zero_point


@given(data=distinct_shape_arrays(), block=st.integers(1, 4), fmt=st.sampled_from([INT8, UINT4]))
def test_per_block_equals_per_tensor_on_each_block(data: tuple[np.ndarray, int], block: int, fmt: IntFormat) -> None:
    x, axis = data
    p = choose_qparams(x, fmt, granularity=PerBlock(axis, block))
    ax = axis % x.ndim
    moved = np.moveaxis(x, ax, -1)
    scale = np.moveaxis(p.scale, ax, -1)
    zp = np.moveaxis(p.zero_point, ax, -1)
    for index in np.ndindex(*moved.shape[:-1]):
        for b in range(scale.shape[-1]):
            one = choose_qparams(moved[index][b * block : (b + 1) * block], fmt)
            assert scale[index][b].view(np.uint32) == one.scale.view(np.uint32)
            assert zp[index][b] == one.zero_point


@given(rng=ranges())
def test_float32_default_follows_the_stated_operation_order(rng: tuple[float, float]) -> None:
    """Equations (1)-(4) written out with numpy float32 scalars, one IEEE operation at a time."""
    lo, hi = F32(rng[0]), F32(rng[1])
    min_neg, max_pos = min(lo, F32(0)), max(hi, F32(0))
    with np.errstate(over="ignore"):
        s = (max_pos - min_neg) / F32(255)
    assume(np.isfinite(s) and s >= FLT_MIN)
    zp = int(np.clip(0 - int(np.rint(min_neg / s)), 0, 255))
    assert sz(choose_qparams_from_range(lo, hi, UINT8)) == (int(s.view(np.uint32)), zp)
    amax = max(-min_neg, max_pos)
    assert bits(choose_qparams_from_range(lo, hi, INT8, symmetric=True)) == int((amax / F32(127.5)).view(np.uint32))
    assert bits(choose_qparams_from_range(lo, hi, INT8, symmetric=True, symmetric_denominator=QMAX)) == int(
        (amax / F32(127)).view(np.uint32)
    )


@given(rng=ranges())
def test_nudge_matches_choose_for_ranges_containing_zero_on_uint8(rng: tuple[float, float]) -> None:
    """With qmin = 0 and min <= 0 <= max the TF nudge equals choose with HALF_AWAY_FROM_ZERO zero points."""
    lo, hi = min(rng[0], 0.0), max(rng[1], 0.0)
    assume(F32(hi) - F32(lo) >= FLT_MIN * 255)
    r = nudge_quantization_range(lo, hi, UINT8)
    p = choose_qparams_from_range(lo, hi, UINT8, zero_point_rounding=RoundingMode.HALF_AWAY_FROM_ZERO)
    assert r.params == p
    # The nudged range is exactly representable: its ends are the codes qmin and qmax.
    assert dequantize(np.array([0, 255], np.uint8), p).tolist() == [float(r.nudged_min), float(r.nudged_max)]


# ---------------------------------------------------------------------------------------------------------------
# Peers: torch 2.13 observers, onnxruntime's compute_scale_zp, the ONNX reference.

data_arrays = hnp.arrays(
    F32,
    st.integers(1, 12),
    elements=st.one_of(st.floats(-1e4, 1e4, width=32), st.sampled_from([0.0, -0.0, 1.0, -2.5, 252.5])),
)

TORCH_CASES = [
    # (torch dtype name, qscheme name, reduce_range, quant_min/max or None, refquant fmt, symmetric)
    ("quint8", "per_tensor_affine", False, None, UINT8, False),
    ("qint8", "per_tensor_affine", False, None, INT8, False),
    ("qint8", "per_tensor_symmetric", False, None, INT8, True),
    ("quint8", "per_tensor_symmetric", False, None, UINT8, True),
    ("quint8", "per_tensor_affine", True, None, UINT8, False),
    ("qint8", "per_tensor_affine", True, None, INT8, False),
    ("qint8", "per_tensor_symmetric", True, None, INT8, True),
    ("qint8", "per_tensor_affine", False, (-8, 7), INT4, False),
    ("qint8", "per_tensor_symmetric", False, (-8, 7), INT4, True),
    ("quint8", "per_tensor_affine", False, (0, 15), UINT4, False),
]


@pytest.mark.parametrize("case", TORCH_CASES, ids=lambda c: f"{c[0]}-{c[1]}-rr{int(c[2])}-{c[4].name}")
@settings(max_examples=60)
@given(x=data_arrays)
def test_torch_minmax_observer_bit_exact(case: tuple[Any, ...], x: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import MinMaxObserver

    dtype_name, qscheme_name, reduce, qrange, fmt, symmetric = case
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dtype_name), "qscheme": getattr(torch, qscheme_name)}
    if qrange is not None:
        kwargs["quant_min"], kwargs["quant_max"] = qrange
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = MinMaxObserver(reduce_range=reduce, **kwargs)
        obs(torch.from_numpy(x.copy()))
        ts, tz = obs.calculate_qparams()
    p = choose_qparams(
        x,
        fmt,
        symmetric=symmetric,
        reduce_range=ReduceRange.HALVE if reduce else ReduceRange.NONE,
        scale_floor=FLOAT32_EPS,
    )
    assert bits(p) == ts.numpy().view(np.uint32).tolist()[0]
    assert p.zero_point.tolist() == int(tz.item())
    assert (p.fmt.qmin, p.fmt.qmax) == (obs.quant_min, obs.quant_max)


@pytest.mark.parametrize("qscheme_name", ["per_channel_affine", "per_channel_symmetric"])
@pytest.mark.parametrize("dtype_name", ["qint8", "quint8"])
@settings(max_examples=40)
@given(data=distinct_shape_arrays(min_ndim=2))  # the torch observer needs a 2-D input or more
def test_torch_per_channel_observer_bit_exact(qscheme_name: str, dtype_name: str, data: tuple[np.ndarray, int]) -> None:
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import PerChannelMinMaxObserver

    x, axis = data
    ax = axis % x.ndim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = PerChannelMinMaxObserver(
            ch_axis=ax, dtype=getattr(torch, dtype_name), qscheme=getattr(torch, qscheme_name)
        )
        obs(torch.from_numpy(x.copy()))
        ts, tz = obs.calculate_qparams()
    fmt = INT8 if dtype_name == "qint8" else UINT8
    p = choose_qparams(
        x, fmt, symmetric=qscheme_name.endswith("symmetric"), granularity=PerAxis(axis), scale_floor=FLOAT32_EPS
    )
    assert bits(p) == ts.numpy().view(np.uint32).tolist()
    assert p.zero_point.tolist() == tz.tolist()


def test_torch_degenerate_observers() -> None:
    """V12 against the peer: all-zero data gives eps and qmin (quint8 0, qint8 -128)."""
    torch = pytest.importorskip("torch")
    from torch.ao.quantization import MinMaxObserver

    for dtype, fmt in ((torch.quint8, UINT8), (torch.qint8, INT8)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obs = MinMaxObserver(dtype=dtype)
            obs(torch.zeros(4))
            ts, tz = obs.calculate_qparams()
        p = choose_qparams(np.zeros(4, F32), fmt, scale_floor=FLOAT32_EPS)
        assert sz(p) == (ts.numpy().view(np.uint32).tolist()[0], int(tz.item()))


ORT_CASES = [
    # (ORT qType name, symmetric, reduce_range, refquant fmt, reduce option)
    ("UINT8", False, False, UINT8, ReduceRange.NONE),
    ("INT8", False, False, INT8, ReduceRange.NONE),
    ("INT8", True, False, IntFormat(8, True, True), ReduceRange.NONE),  # ORT symmetric int8 is [-127, 127]
    ("UINT8", True, False, UINT8, ReduceRange.NONE),
    ("INT8", True, True, INT8, ReduceRange.HALVE_SYMMETRIC),  # [-64, 64]
    ("INT8", False, True, INT8, ReduceRange.HALVE_SYMMETRIC),
    ("UINT8", False, True, UINT8, ReduceRange.HALVE_SYMMETRIC),  # [0, 127]
    ("INT16", False, False, INT16, ReduceRange.NONE),
    ("UINT16", True, False, UINT16, ReduceRange.NONE),
    ("INT16", True, True, INT16, ReduceRange.HALVE_SYMMETRIC),  # [-16384, 16384]
]


@pytest.mark.parametrize("case", ORT_CASES, ids=lambda c: f"{c[0]}-sym{int(c[1])}-rr{int(c[2])}")
@settings(max_examples=60)
@given(x=data_arrays)
def test_onnxruntime_compute_scale_zp_bit_exact(case: tuple[Any, ...], x: np.ndarray) -> None:
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto
    from onnxruntime.quantization.quant_utils import compute_scale_zp, get_qmin_qmax_for_qType

    qtype, symmetric, reduce, fmt, reduce_option = case
    qmin, qmax = get_qmin_qmax_for_qType(getattr(TensorProto, qtype), reduce_range=reduce, symmetric=symmetric)
    zp, scale = compute_scale_zp(np.min(x), np.max(x), qmin, qmax, symmetric=symmetric)
    p = choose_qparams(x, fmt, symmetric=symmetric, reduce_range=reduce_option, precision=Precision.FLOAT64)
    assert bits(p) == int(np.asarray(scale, F32).view(np.uint32))
    assert p.zero_point.tolist() == int(zp)


# DynamicQuantizeLinear (choose_qparams for UINT8 plus quantize) against the ONNX reference and onnxruntime,
# including the zero-range and subnormal-scale divergences: tests/spec/test_peers_dynamic.py.


def test_torch_profile_quantizes_with_chosen_params_like_torch() -> None:
    """The chosen params plugged into quantize under the TORCH profile give torch.quantize_per_tensor's codes."""
    torch = pytest.importorskip("torch")
    x = np.linspace(-3.3, 7.9, 101, dtype=F32)
    p = choose_qparams(x, UINT8, scale_floor=FLOAT32_EPS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = torch.quantize_per_tensor(torch.from_numpy(x), float(p.scale), int(p.zero_point), torch.quint8)
    np.testing.assert_array_equal(quantize(x, p, profile=profiles.TORCH), t.int_repr().numpy())


# ---------------------------------------------------------------------------------------------------------------
# Errors: every condition raised by qparams.py


@pytest.mark.parametrize(
    ("call", "condition"),
    [
        (lambda: choose_qparams(np.array([1.0, np.nan]), INT8), "nan_input"),
        (lambda: choose_qparams_from_range(np.nan, 1.0, INT8), "nan_input"),
        (lambda: choose_qparams_from_range(0.0, np.nan, INT8), "nan_input"),
        (lambda: choose_qparams(np.array([1.0, np.inf]), INT8), "range_not_finite"),
        (lambda: choose_qparams(np.array([-np.inf, 0.0], F32), INT8), "range_not_finite"),
        (lambda: choose_qparams_from_range(-np.inf, 1.0, INT8), "range_not_finite"),
        (lambda: choose_qparams_from_range(0.0, 1e300, INT8), "range_not_finite"),  # overflows float32
        (lambda: choose_qparams_from_range(2.0, 1.0, INT8), "invalid_range"),
        (
            lambda: choose_qparams_from_range(np.array([0.0, 2.0]), np.array([1.0, 1.0]), INT8, granularity=PerAxis(0)),
            "invalid_range",
        ),
        (lambda: choose_qparams(np.zeros(0, F32), INT8), "empty_input"),
        (lambda: choose_qparams(np.zeros((3, 0), F32), INT8, granularity=PerAxis(0)), "empty_input"),
        (lambda: choose_qparams(np.zeros((0, 3), F32), INT8, granularity=PerBlock(1, 2)), "empty_input"),
        (lambda: choose_qparams(np.zeros(3, F32), INT8, zero_range=ZeroRange.RAISE), "zero_range"),
        (lambda: choose_qparams_from_range(-3e38, 3e38, INT8), "scale_not_finite"),  # max - min overflows float32
        (
            lambda: choose_qparams_from_range(
                0.0, 3e38, IntFormat(1, False), power_of_two_scale=RoundingMode.TOWARD_POSITIVE
            ),
            "scale_not_finite",
        ),  # 2**128
        (lambda: choose_qparams_from_range(np.zeros(2), np.ones(3), INT8), "shape_mismatch"),
        (lambda: choose_qparams(np.array([True, False]), INT8), "unsupported_dtype"),
        (lambda: choose_qparams(np.array([1 + 1j]), INT8), "unsupported_dtype"),
        (lambda: choose_qparams_from_range("0", "1", INT8), "unsupported_dtype"),
        (lambda: choose_qparams(np.zeros(2), "int8"), "invalid_format"),  # type: ignore[arg-type]
        (lambda: choose_qparams(np.zeros(2), INT8, symmetric=1), "invalid_option"),  # type: ignore[arg-type]
        (lambda: choose_qparams(np.zeros(2), INT8, granularity="tensor"), "invalid_option"),  # type: ignore[arg-type]
        (lambda: choose_qparams_from_range(0.0, 1.0, INT8, granularity=None), "invalid_option"),  # type: ignore[arg-type]
        (lambda: choose_qparams(np.ones(2), INT8, symmetric_denominator="qmax"), "invalid_option"),  # type: ignore[arg-type]
        (lambda: choose_qparams(np.ones(2), INT8, reduce_range=True), "invalid_option"),  # type: ignore[arg-type]
        (lambda: choose_qparams(np.ones(2), INT8, zero_point_rounding=RoundingMode.STOCHASTIC), "invalid_option"),
        (lambda: choose_qparams(np.ones(2), INT8, power_of_two_scale=RoundingMode.HALF_TO_EVEN), "invalid_option"),
        (lambda: choose_qparams(np.ones(2), INT8, scale_floor=0.0), "invalid_option"),
        (lambda: choose_qparams(np.ones(2), INT8, scale_floor=1e-50), "invalid_option"),  # 0 in float32
        (lambda: choose_qparams(np.ones(2), INT8, scale_floor=float("inf")), "invalid_option"),
        (lambda: choose_qparams(np.ones(2), INT8, scale_floor=True), "invalid_option"),  # bool is not a number here
        (lambda: choose_qparams(np.ones(2), INT8, scale_floor="eps"), "invalid_option"),  # type: ignore[arg-type]
        (lambda: choose_qparams(np.ones(2), INT8, zero_range=None), "invalid_option"),  # type: ignore[arg-type]
        (lambda: choose_qparams(np.ones(2), INT8, precision="float32"), "invalid_option"),  # type: ignore[arg-type]
        (lambda: choose_qparams(np.ones(2), IntFormat(1, False), reduce_range=ReduceRange.HALVE), "invalid_option"),
        (
            lambda: choose_qparams(np.ones(2), IntFormat(2, True, True), reduce_range=ReduceRange.HALVE),
            "invalid_option",
        ),
        (
            lambda: choose_qparams(np.ones(2), IntFormat(1, False), symmetric=True, symmetric_denominator=QMAX),
            "invalid_option",
        ),
        (lambda: choose_qparams(np.ones(2), INT8, granularity=PerAxis(1)), "axis_out_of_range"),
        (
            lambda: choose_qparams_from_range(np.zeros((2, 2)), np.ones((2, 2)), INT8, granularity=PerAxis(0)),
            "scale_shape_mismatch",
        ),
        (lambda: nudge_quantization_range(np.nan, 1.0, UINT8), "nan_input"),
        (lambda: nudge_quantization_range(0.0, np.inf, UINT8), "range_not_finite"),
        (lambda: nudge_quantization_range(1.0, 0.0, UINT8), "invalid_range"),
        (lambda: nudge_quantization_range(2.0, 2.0, UINT8), "zero_range"),
        (lambda: nudge_quantization_range(-3e38, 3e38, UINT8), "scale_not_finite"),
        (lambda: nudge_quantization_range(np.zeros(2), np.ones(3), UINT8), "shape_mismatch"),
        (lambda: nudge_quantization_range(0.0, 1.0, "uint8"), "invalid_format"),  # type: ignore[arg-type]
    ],
)
def test_errors(call: Any, condition: str) -> None:
    with pytest.raises(SpecError) as e:
        call()
    assert e.value.condition == condition


def test_empty_axis_gives_empty_parameters() -> None:
    """A zero-length quantization axis has no parameters, so nothing is empty: the result has shape (0,)."""
    p = choose_qparams(np.zeros((0, 3), F32), INT8, granularity=PerAxis(0))
    assert p.scale.shape == (0,)
    assert p.zero_point.shape == (0,)
    p = choose_qparams(np.zeros((2, 0), F32), INT8, granularity=PerBlock(1, 4))
    assert p.scale.shape == (2, 0)


def test_results_are_validated_quant_params() -> None:
    p = choose_qparams(np.array([-1.0, 2.0]), INT8, granularity=PerTensor())
    assert isinstance(p, QuantParams)
    assert p.scale.dtype == np.float32
    assert p.zero_point.dtype == np.int64
    assert p.granularity == PerTensor()
