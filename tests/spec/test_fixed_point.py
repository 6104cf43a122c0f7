"""Tests of refquant.spec.fixed_point: hand tables, an independent exact oracle, the TFLite/TOSA equivalence, errors.

The oracle below is written with Python ints and ``Fraction`` from the definitions (the net-effect formulas of
gemmlowp's primitives, TFLite's QuantizeMultiplier without ``frexp``, exact float rounding through
tests/spec/oracle.py's ``to_float``); it shares no code with refquant.spec.fixed_point.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant import (
    INT8,
    INT16,
    INT32,
    UINT4,
    UINT8,
    FixedPointMultiplier,
    IntFormat,
    PerAxis,
    PerBlock,
    RequantRounding,
    SpecError,
    UnpredictableError,
    apply_scale_16,
    apply_scale_32,
    quantize_multiplier,
    requantize,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from tests.spec.oracle import to_float

MIN = -(2**31)
MAX = 2**31 - 1
DOUBLE, SINGLE, FLOAT32, FLOAT64 = (
    RequantRounding.DOUBLE,
    RequantRounding.SINGLE,
    RequantRounding.FLOAT32,
    RequantRounding.FLOAT64,
)


# --- the oracle ------------------------------------------------------------------------------------------------


def o_quantize_multiplier(d: float, single: bool = False) -> tuple[int, int]:
    """TFLite QuantizeMultiplier from its definition, with exact fractions (no frexp)."""
    v = Fraction(d)
    if v == 0:
        return 0, 0
    e = 0
    while v >= Fraction(2) ** e:
        e += 1
    while v < Fraction(2) ** (e - 1):
        e -= 1
    q = v / Fraction(2) ** e  # in [1/2, 1)
    m = math.floor(q * 2**31 + Fraction(1, 2))  # q > 0: half away from zero is half toward +inf
    if m == 2**31:
        m, e = 2**30, e + 1
    if e < -31:
        return 0, 0
    if single and e > 30:
        return 2**31 - 1, 30
    return m, e


def o_srdhm(a: int, b: int) -> int:
    """Net effect of SaturatingRoundingDoublingHighMul: floor((a*b + 2**30) / 2**31), saturating MIN * MIN."""
    if a == b == MIN:
        return MAX
    return (a * b + 2**30) // 2**31


def o_rdbpot(x: int, e: int) -> int:
    """x / 2**e rounded half away from zero."""
    v = Fraction(x, 2**e)
    magnitude = math.floor(abs(v) + Fraction(1, 2))
    return magnitude if v >= 0 else -magnitude


def o_apply_scale(v: int, m: int, s: int, double_round: bool) -> int:
    rnd = 2 ** (s - 1)
    if double_round and s > 31:
        rnd += 2**30 if v >= 0 else -(2**30)
    return (v * m + rnd) // 2**s


# ``o_requant`` returns an int, or the name of the first stage whose precondition fails.
_STAGES = ("left_shift_overflow", "scaled_value_overflow", "zero_point_add_overflow")


def o_requant(acc: int, real: float, rounding: RequantRounding, zp: int, lo: int, hi: int) -> int | str:
    if rounding is DOUBLE:
        m, e = o_quantize_multiplier(real)
        if e > 30 or not MIN <= acc * 2 ** max(e, 0) <= MAX:
            return "left_shift_overflow"
        r = o_rdbpot(o_srdhm(acc * 2 ** max(e, 0), m), max(-e, 0))
    elif rounding is SINGLE:
        m, e = o_quantize_multiplier(real, single=True)
        r = math.floor(Fraction(acc * m, 2 ** (31 - e)) + Fraction(1, 2))
        if not MIN <= r <= MAX:
            return "scaled_value_overflow"
    else:
        dt = np.float32 if rounding is FLOAT32 else np.float64
        product = to_float(Fraction(to_float(Fraction(acc), dt)) * Fraction(to_float(Fraction(real), dt)), dt)
        if math.isinf(product):
            return hi if product > 0 else lo
        r = round(Fraction(product))  # Python rounds a Fraction half to even
        return min(max(r + zp, lo), hi)
    if not MIN <= r + zp <= MAX:
        return "zero_point_add_overflow"
    return min(max(r + zp, lo), hi)


def expected_requant(accs: list[int], real: float, rounding: RequantRounding, zp: int, lo: int, hi: int) -> object:
    results = [o_requant(a, real, rounding, zp, lo, hi) for a in accs]
    failures = [r for r in results if isinstance(r, str)]
    if failures:
        return min(failures, key=_STAGES.index)
    return results


# --- strategies ------------------------------------------------------------------------------------------------

int32s = st.one_of(
    st.integers(MIN, MAX),
    st.sampled_from([MIN, MIN + 1, -1, 0, 1, MAX - 1, MAX, 2**30, -(2**30), 2**15, -(2**15)]),
    st.integers(-1000, 1000),
)

fixed_point_reals = st.builds(lambda m, s: m * 2.0 ** (s - 31), st.integers(2**30, 2**31 - 1), st.integers(-31, 30))
reals = st.one_of(
    st.floats(0, 8, allow_nan=False, allow_subnormal=True),
    st.builds(lambda k: 2.0**k, st.integers(-40, 33)),
    fixed_point_reals,
    st.builds(lambda k: 1 - 2.0**-k, st.integers(1, 53)),
    st.builds(lambda k: 1 + 2.0**-k, st.integers(1, 52)),
    st.builds(lambda k: 2.0**-32 * (1 - 2.0**-k), st.integers(1, 53)),
    st.floats(1e-12, 1e-8),
    st.just(0.0),
)


# --- quantize_multiplier ---------------------------------------------------------------------------------------


# Worked by hand from the definition (frexp, round half away from zero, the 2**31 carry, the flush, the clamp);
# the V6 values of spec-anchors §8 are among them.
QM_TABLE = [
    (0.0, False, 0, 0),
    (-0.0, False, 0, 0),
    (0.5, False, 2**30, 0),
    (1.0, False, 2**30, 1),
    (0.25, False, 2**30, -1),
    (3.0, False, 1610612736, 2),  # 3 = 0.75 * 2**2, 0.75 * 2**31 = 1610612736
    (1 - 2**-40, False, 2**30, 1),  # q * 2**31 = 2**31 - 2**-9 rounds to 2**31: carry
    (2.0**-31, False, 2**30, -30),
    (2.0**-32, False, 2**30, -31),
    ((1 - 2.0**-32) * 2.0**-32, False, 2**30, -31),  # q * 2**31 = 2**31 - 1/2 rounds away to 2**31: kept
    (1.5e-10, False, 0, 0),  # < 2**-32: shift -32, flushed
    (0.0005, False, 1099511628, -10),  # 0.512 * 2**31 = 1099511627.776
    (0.5 + 2.0**-32, False, 2**30 + 1, 0),  # q * 2**31 = 2**30 + 1/2: a tie, away from zero
    (0.5 + 5 * 2.0**-32, False, 2**30 + 3, 0),  # 2**30 + 5/2: away gives +3 (half to even would give +2)
    (2.0**29, True, 2**30, 30),  # shift 30: kept under single rounding
    (2.0**30, False, 2**30, 31),
    (2.0**30, True, 2**31 - 1, 30),  # shift 31 > 30: clamped
    (2.0**31, True, 2**31 - 1, 30),
    (1e300, False, 1603334688, 997),  # 1e300 = 0.74661089... * 2**997; * 2**31 = 1603334688.007
    (1e300, True, 2**31 - 1, 30),
]


@pytest.mark.parametrize(("real", "single", "multiplier", "shift"), QM_TABLE)
def test_quantize_multiplier_table(real: float, single: bool, multiplier: int, shift: int) -> None:
    assert quantize_multiplier(real, single_rounding=single) == FixedPointMultiplier(multiplier, shift)


def test_quantize_multiplier_flush_threshold_is_exact() -> None:
    kept = (1 - 2.0**-32) * 2.0**-32
    assert quantize_multiplier(kept) == FixedPointMultiplier(2**30, -31)
    assert quantize_multiplier(math.nextafter(kept, 0.0)) == FixedPointMultiplier(0, 0)
    assert quantize_multiplier(5e-324) == FixedPointMultiplier(0, 0)  # the smallest subnormal


def test_quantize_multiplier_accepts_numpy_scalars_and_ints() -> None:
    assert quantize_multiplier(np.float32(0.25)) == FixedPointMultiplier(2**30, -1)
    assert quantize_multiplier(np.float64(3.0)) == FixedPointMultiplier(1610612736, 2)
    assert quantize_multiplier(3) == FixedPointMultiplier(1610612736, 2)
    assert quantize_multiplier(np.int64(1)) == FixedPointMultiplier(2**30, 1)


@given(reals, st.booleans())
def test_quantize_multiplier_matches_oracle(real: float, single: bool) -> None:
    got = quantize_multiplier(real, single_rounding=single)
    assert (got.multiplier, got.shift) == o_quantize_multiplier(real, single)


@given(st.floats(2.0**-32, 2.0**29, allow_nan=False))
def test_quantize_multiplier_is_within_half_a_unit(real: float) -> None:
    got = quantize_multiplier(real)
    assert 2**30 <= got.multiplier < 2**31
    represented = Fraction(got.multiplier) * Fraction(2) ** (got.shift - 31)
    assert abs(represented - Fraction(real)) <= Fraction(2) ** (got.shift - 32)


# --- saturating_rounding_doubling_high_mul and rounding_divide_by_pot ------------------------------------------

# Worked by hand: floor((a*b + 2**30) / 2**31), MIN * MIN saturating (spec-anchors §3.4).
SRDHM_TABLE = [
    (MIN, MIN, MAX),
    (MIN, MAX, -2147483647),  # -(2**31 - 1) + 1/2 -> floor -> -(2**31 - 1)
    (MAX, MAX, 2147483646),  # 2**31 - 2 + 2**-31 + 1/2 -> 2**31 - 2
    (MIN, 1, -1),  # -1/2 + 1/2 = 0 ... floor((-2**31 + 2**30) / 2**31) = floor(-1/2) = -1
    (MIN, -1, 1),
    (-(2**15), 2**15, 0),  # -0.5: tie toward +inf
    (-3 * 2**15, 2**15, -1),  # -1.5 -> -1
    (2**15, 2**15, 1),  # 0.5 -> 1
    (3 * 2**15, 2**15, 2),  # 1.5 -> 2
    (0, MIN, 0),
]


def test_srdhm_table() -> None:
    a, b, want = (np.array(col) for col in zip(*SRDHM_TABLE, strict=True))
    got = saturating_rounding_doubling_high_mul(a, b)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(saturating_rounding_doubling_high_mul(b, a), want)  # symmetric


# Worked by hand: x / 2**e rounded half away from zero (spec-anchors §3.4 and §8 V5).
RDBPOT_TABLE = [
    (-3, 1, -2),
    (-1, 1, -1),
    (3, 1, 2),
    (-5, 1, -3),
    (1, 1, 1),
    (5, 1, 3),
    (-2, 1, -1),
    (7, 0, 7),
    (MIN, 0, MIN),
    (MAX, 0, MAX),
    (MIN, 31, -1),
    (MAX, 31, 1),
    (2**30, 31, 1),  # 1/2 -> 1
    (-(2**30), 31, -1),  # -1/2 -> -1
    (2**30 - 1, 31, 0),
    (-(2**30) + 1, 31, 0),
    (-6, 2, -2),  # -1.5 -> -2
    (-7, 2, -2),  # -1.75 -> -2
    (6, 2, 2),
]


def test_rdbpot_table() -> None:
    x, e, want = (np.array(col) for col in zip(*RDBPOT_TABLE, strict=True))
    got = rounding_divide_by_pot(x, e)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


@given(st.lists(st.tuples(int32s, int32s), min_size=1, max_size=20))
def test_srdhm_matches_oracle(pairs: list[tuple[int, int]]) -> None:
    a = np.array([p[0] for p in pairs], dtype=np.int32)
    b = np.array([p[1] for p in pairs], dtype=np.int32)
    np.testing.assert_array_equal(saturating_rounding_doubling_high_mul(a, b), [o_srdhm(*p) for p in pairs])


@given(st.lists(st.tuples(int32s, st.integers(0, 31)), min_size=1, max_size=20))
def test_rdbpot_matches_oracle(pairs: list[tuple[int, int]]) -> None:
    x = np.array([p[0] for p in pairs], dtype=np.int64)
    e = np.array([p[1] for p in pairs], dtype=np.int8)
    np.testing.assert_array_equal(rounding_divide_by_pot(x, e), [o_rdbpot(*p) for p in pairs])


def test_primitives_broadcast() -> None:
    x = np.array([[-5], [5]], dtype=np.int32)
    np.testing.assert_array_equal(rounding_divide_by_pot(x, np.array([0, 1, 2])), [[-5, -3, -1], [5, 3, 1]])
    got = saturating_rounding_doubling_high_mul(np.array([2**15, 3 * 2**15]), np.array([[2**15], [-(2**15)]]))
    np.testing.assert_array_equal(got, [[1, 2], [0, -1]])
    assert saturating_rounding_doubling_high_mul(MIN, MIN).shape == ()
    assert rounding_divide_by_pot(np.zeros((0, 3), np.int32), 1).shape == (0, 3)


# --- TOSA apply_scale ------------------------------------------------------------------------------------------


def test_apply_scale_32_v5_table() -> None:
    # Worked by hand (spec-anchors §8 V5): multiplier 0.25 = 2**30 / 2**32.
    acc = np.array([-10, -6, -2, 1, 2, 5, 10])
    np.testing.assert_array_equal(apply_scale_32(acc, 2**30, 32, double_round=True), [-3, -2, -1, 1, 1, 2, 3])
    np.testing.assert_array_equal(apply_scale_32(acc, 2**30, 32, double_round=False), [-2, -1, 0, 0, 1, 1, 3])


def test_apply_scale_32_limits() -> None:
    # Worked by hand from (v*m + round) >> s.
    assert int(apply_scale_32(MAX, MAX, 62, double_round=True)) == 1  # (2**62 - 2**32 + 1 + 2**61 + 2**30) >> 62
    assert int(apply_scale_32(MIN, MAX, 62, double_round=True)) == -1
    assert int(apply_scale_32(MIN, MAX, 62, double_round=False)) == -1  # floor(-1/2 + 2**-31) = -1
    assert int(apply_scale_32(1, 1, 2, double_round=True)) == 0  # (1 + 2) >> 2
    assert int(apply_scale_32(-2, MAX, 2, double_round=False)) == -(2**30) + 1  # (-(2**32) + 2 + 2) >> 2
    assert int(apply_scale_32(1, MAX, 2, double_round=False)) == 2**29  # (2**31 - 1 + 2) >> 2
    assert int(apply_scale_32(-(2**30), 2**30, 31, double_round=True)) == -(2**29)  # lower bound of the REQUIRE
    assert int(apply_scale_32(2**30 - 1, 0, 31, double_round=True)) == 0
    got = apply_scale_32(np.array([[1], [-1]]), np.array([2**30, 2**30 + 1]), 31, double_round=False)
    assert got.dtype == np.int32
    # 1/2 -> 1 and -1/2 -> 0 (ties toward +inf); 1/2 + 2**-31 -> 1 and -1/2 - 2**-31 -> -1 (not ties).
    np.testing.assert_array_equal(got, [[1, 1], [0, -1]])


@given(int32s, st.integers(0, MAX), st.integers(2, 62), st.booleans())
def test_apply_scale_32_matches_oracle(v: int, m: int, s: int, double_round: bool) -> None:
    v = v >> max(32 - s, 0)  # inside the REQUIRE range [-2**(s-1), 2**(s-1))
    assert int(apply_scale_32(v, m, s, double_round=double_round)) == o_apply_scale(v, m, s, double_round)


@given(st.integers(-(2**47), 2**47 - 1), st.integers(0, 2**15 - 1), st.integers(2, 62))
def test_apply_scale_16_matches_oracle(v: int, m: int, s: int) -> None:
    want = o_apply_scale(v, m, s, False)
    if MIN <= want <= MAX:
        assert int(apply_scale_16(v, m, s)) == want
    else:
        with pytest.raises(UnpredictableError) as info:
            apply_scale_16(v, m, s)
        assert info.value.condition == "scaled_value_overflow"


@given(int32s, st.integers(0, 2**15 - 1), st.integers(2, 62))
def test_apply_scale_16_equals_single_round_apply_scale_32(v: int, m: int, s: int) -> None:
    v = v >> max(32 - s, 0)
    assert int(apply_scale_16(v, m, s)) == int(apply_scale_32(v, m, s, double_round=False))


def test_apply_scale_16_limits() -> None:
    # Worked by hand from (v*m + 2**(s-1)) >> s.
    assert int(apply_scale_16(2**47 - 1, 2**14, 31)) == 2**30  # (2**61 - 2**14 + 2**30) >> 31
    with pytest.raises(UnpredictableError):  # (2**61 - 2**14 + 2**29) >> 30 = 2**31: outside int32
        apply_scale_16(2**47 - 1, 2**14, 30)
    assert int(apply_scale_16(-(2**47), 2**14, 30)) == MIN  # -2**61 / 2**30 = -2**31 exactly
    assert int(apply_scale_16(-(2**47), 2**15 - 1, 62)) == -1  # -(2**62 - 2**47) / 2**62 + 1/2 -> floor(-0.49998) = -1
    assert int(apply_scale_16(5, 3, 2)) == 4  # (15 + 2) >> 2


# --- the TFLite / TOSA equivalence: shift_tosa = 31 - shift_tflite ---------------------------------------------


def _equivalence_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    m = rng.integers(2**30, 2**31, n)
    s = rng.integers(-31, 30, n)  # TFLite shifts -31..29, i.e. TOSA shifts 2..62
    raw = rng.integers(MIN, MAX + 1, n)
    x = raw >> np.maximum(32 - (31 - s), 0)  # inside TOSA's REQUIRE on value (TFLite's left shift then fits too)
    x[:50] = np.array([MIN, MAX, -1, 0, 1] * 10) >> np.maximum(32 - (31 - s[:50]), 0)
    return x, m, s


def test_tflite_double_equals_tosa_double_round_and_single_equals_single_round() -> None:
    x, m, s = _equivalence_sample(100_000, seed=20260)
    real = m * np.exp2(s - 31.0)  # exact: m has 31 bits
    for rounding, double_round in ((DOUBLE, True), (SINGLE, False)):
        tflite = requantize(x, real, out_fmt=INT32, rounding=rounding, granularity=PerAxis(0))
        tosa = apply_scale_32(x, m, 31 - s, double_round=double_round)
        np.testing.assert_array_equal(tflite, tosa, err_msg=rounding.name)


@settings(max_examples=300)
@given(int32s, st.integers(2**30, 2**31 - 1), st.integers(-31, 29))
def test_tflite_tosa_equivalence_property(x: int, m: int, s: int) -> None:
    x = x >> max(32 - (31 - s), 0)
    real = m * 2.0 ** (s - 31)
    assert quantize_multiplier(real) == FixedPointMultiplier(m, s)
    assert int(requantize(x, real, out_fmt=INT32)) == int(apply_scale_32(x, m, 31 - s, double_round=True))
    assert int(requantize(x, real, out_fmt=INT32, rounding=SINGLE)) == int(
        apply_scale_32(x, m, 31 - s, double_round=False)
    )


def test_where_tosa_is_stricter_than_tflite() -> None:
    # TFLite shift 0 <-> TOSA shift 31: TOSA requires |value| < 2**30, TFLite defines every int32 (spec-anchors §2.1).
    assert int(requantize(2**30, 0.5, out_fmt=INT32)) == 2**29
    with pytest.raises(UnpredictableError) as info:
        apply_scale_32(2**30, 2**30, 31, double_round=True)
    assert info.value.condition == "scale_value_out_of_range"
    # TFLite shift 30 (a multiplier in [2**29, 2**30)) <-> TOSA shift 1, below TOSA's minimum of 2.
    assert int(requantize(1, 2.0**29, out_fmt=INT32)) == 2**29
    with pytest.raises(UnpredictableError) as info:
        apply_scale_32(1, 2**30, 1, double_round=True)
    assert info.value.condition == "scale_shift_out_of_range"


# --- requantize: hand tables -----------------------------------------------------------------------------------

# Worked by hand (spec-anchors §8 V5): multiplier 0.25 = (2**30, TFLite shift -1).
V5_ACC = [-10, -6, -2, 1, 2, 5, 10]
V5 = {
    DOUBLE: [-3, -2, -1, 1, 1, 2, 3],
    SINGLE: [-2, -1, 0, 0, 1, 1, 3],
    FLOAT32: [-2, -2, 0, 0, 0, 1, 2],
    FLOAT64: [-2, -2, 0, 0, 0, 1, 2],
}


@pytest.mark.parametrize("rounding", list(RequantRounding), ids=lambda r: r.value)
def test_requantize_v5_table(rounding: RequantRounding) -> None:
    got = requantize(np.array(V5_ACC, dtype=np.int32), 0.25, rounding=rounding)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, V5[rounding])


@pytest.mark.parametrize("rounding", list(RequantRounding), ids=lambda r: r.value)
def test_requantize_multiplier_one_half(rounding: RequantRounding) -> None:
    # Worked by hand (spec-anchors §8 V5): at 0.5 double and single agree (ties toward +inf); RNE differs.
    want = [-1, 1, 3] if rounding in (DOUBLE, SINGLE) else [-2, 0, 2]
    np.testing.assert_array_equal(requantize(np.array([-3, 1, 5]), 0.5, rounding=rounding), want)


@pytest.mark.parametrize(("rounding", "want"), [(DOUBLE, 1), (SINGLE, 1), (FLOAT32, 0), (FLOAT64, 1)])
def test_requantize_v27_precision(rounding: RequantRounding, want: int) -> None:
    # Worked by hand (spec-anchors §8 V27): (2**24 + 1) * 2**-25 = 0.50000003; float32(2**24 + 1) = 2**24 -> 0.5 -> 0.
    np.testing.assert_array_equal(requantize(np.array([2**24 + 1]), 2.0**-25, rounding=rounding), [want])


def test_requantize_zero_point_clamp_and_activation() -> None:
    acc = np.array([-1000, -10, 0, 10, 1000])
    # Worked by hand: 0.25 * acc = -250, -2.5, 0, 2.5, 250; DOUBLE gives -250, -3, 0, 3, 250; + 5; clamp.
    np.testing.assert_array_equal(requantize(acc, 0.25, out_zero_point=5), [-128, 2, 5, 8, 127])
    np.testing.assert_array_equal(
        requantize(acc, 0.25, out_zero_point=5, activation_min=5, activation_max=11), [5, 5, 5, 8, 11]
    )
    np.testing.assert_array_equal(requantize(acc, 0.25, out_fmt=UINT8, out_zero_point=128), [0, 125, 128, 131, 255])
    got = requantize(acc, 0.25, out_fmt=UINT4, out_zero_point=8, rounding=FLOAT64)  # -2.5 -> -2, 2.5 -> 2
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, [0, 6, 8, 10, 15])
    assert requantize(acc, 0.25, out_fmt=INT16).dtype == np.int16
    np.testing.assert_array_equal(requantize(acc, 0.25, activation_min=0), [0, 0, 0, 3, 127])  # ReLU
    np.testing.assert_array_equal(requantize(acc, 0.25, out_fmt=IntFormat(8, True, True)), [-127, -3, 0, 3, 127])


def test_requantize_multiplier_zero_and_large() -> None:
    acc = np.array([MIN, -1, 0, 1, MAX])
    for rounding in RequantRounding:
        np.testing.assert_array_equal(requantize(acc, 0.0, out_zero_point=-7, rounding=rounding), [-7] * 5)
    # 3.0 = (1610612736, 2): left shift by 2, then SRDHM; 3 * 10 = 30.
    np.testing.assert_array_equal(requantize(np.array([10, -10]), 3.0), [30, -30])
    np.testing.assert_array_equal(requantize(np.array([MAX, MIN]), 2.0**20, rounding=FLOAT32), [127, -128])


def test_requantize_int64_accumulators_under_float_roundings() -> None:
    acc = np.array([2**40 + 2**20, -(2**53) - 2])  # float64(-(2**53) - 2) is exact; * 2**-30
    np.testing.assert_array_equal(requantize(acc, 2.0**-30, out_fmt=INT32, rounding=FLOAT64), [1024, -(2**23)])
    # Worked by hand: 1024.0009765625 -> 1024; -(2**53 + 2) / 2**30 = -8388608.0000000019 -> -8388608.


def test_requantize_per_axis_equals_per_tensor_slices() -> None:
    rng = np.random.default_rng(7)
    acc = rng.integers(-(2**20), 2**20, size=(2, 3, 5)).astype(np.int32)
    mult = np.array([0.00123, 0.5, 0.031])
    for rounding in RequantRounding:
        for gran in (PerAxis(1), PerAxis(-2)):
            got = requantize(acc, mult, rounding=rounding, granularity=gran, out_zero_point=3)
            for c in range(3):
                want = requantize(acc[:, c, :], mult[c], rounding=rounding, out_zero_point=3)
                np.testing.assert_array_equal(got[:, c, :], want)
    got = requantize(acc, rng.uniform(0, 0.01, 5), granularity=PerAxis(-1))
    assert got.shape == (2, 3, 5)


def test_requantize_shapes() -> None:
    assert requantize(np.int32(8), 0.25).shape == ()
    assert int(requantize(np.int32(8), np.array([0.25]))) == 2
    assert requantize(np.zeros((0, 4), np.int32), np.ones(4) * 0.5, granularity=PerAxis(1)).shape == (0, 4)
    assert requantize([1, 2, 3], 1.0).tolist() == [1, 2, 3]


# --- requantize: properties against the oracle -----------------------------------------------------------------

formats = st.sampled_from([INT8, UINT8, INT16, INT32, UINT4, IntFormat(8, True, True)])


@st.composite
def requant_cases(draw: st.DrawFn) -> tuple[list[int], float, RequantRounding, IntFormat, int, int, int]:
    rounding = draw(st.sampled_from(list(RequantRounding)))
    fmt = draw(formats)
    wide = rounding in (FLOAT32, FLOAT64) and draw(st.booleans())
    accs = draw(st.lists(st.integers(-(2**62), 2**62) if wide else int32s, min_size=1, max_size=8))
    real = draw(reals)
    if draw(st.booleans()):  # acc * real lands on a tie
        k = draw(st.integers(1, 30))
        real = 2.0**-k
        accs = [(2 * draw(st.integers(-(2**20), 2**20)) + 1) * 2 ** (k - 1) for _ in accs]
        accs = [a for a in accs if MIN <= a <= MAX] or [1]
    zp = draw(st.integers(fmt.qmin, fmt.qmax))
    lo = draw(st.integers(fmt.qmin, fmt.qmax))
    hi = draw(st.integers(lo, fmt.qmax))
    return accs, real, rounding, fmt, zp, lo, hi


@settings(max_examples=400)
@given(requant_cases(), st.booleans())
def test_requantize_matches_oracle(
    case: tuple[list[int], float, RequantRounding, IntFormat, int, int, int], bounds: bool
) -> None:
    accs, real, rounding, fmt, zp, lo, hi = case
    if not bounds:
        lo, hi = fmt.qmin, fmt.qmax
    want = expected_requant(accs, real, rounding, zp, lo, hi)
    kwargs = {"activation_min": lo, "activation_max": hi} if bounds else {}
    acc = np.array(accs, dtype=np.int64)
    if isinstance(want, str):
        with pytest.raises(UnpredictableError) as info:
            requantize(acc, real, out_fmt=fmt, out_zero_point=zp, rounding=rounding, **kwargs)
        assert info.value.condition == want
    else:
        got = requantize(acc, real, out_fmt=fmt, out_zero_point=zp, rounding=rounding, **kwargs)
        assert got.dtype == fmt.storage_dtype
        np.testing.assert_array_equal(got, np.array(want, dtype=np.int64))


@given(st.lists(int32s, min_size=1, max_size=8), st.floats(0, 2.0**30, allow_nan=False))
def test_double_equals_rdbpot_of_srdhm(accs: list[int], real: float) -> None:
    fp = quantize_multiplier(real)
    left, right = max(fp.shift, 0), max(-fp.shift, 0)
    x = [a * 2**left for a in accs]
    if fp.shift > 30 or not all(MIN <= v <= MAX for v in x):
        return  # covered by test_requantize_matches_oracle's unpredictable branch
    want = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(np.array(x), fp.multiplier), right)
    np.testing.assert_array_equal(requantize(np.array(accs), real, out_fmt=INT32), want)


@given(st.lists(int32s, min_size=1, max_size=8), st.floats(0, 2.0**29, allow_nan=False))
def test_single_is_one_floor_division(accs: list[int], real: float) -> None:
    fp = quantize_multiplier(real, single_rounding=True)
    s = 31 - fp.shift
    want = [(a * fp.multiplier + 2 ** (s - 1)) // 2**s for a in accs]
    if not all(MIN <= w <= MAX for w in want):
        return
    np.testing.assert_array_equal(requantize(np.array(accs), real, out_fmt=INT32, rounding=SINGLE), want)


# --- errors ----------------------------------------------------------------------------------------------------


def _condition(kind: type[Exception], fn: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(kind) as info:
        fn(*args, **kwargs)  # type: ignore[operator]
    return str(info.value.condition)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("real", "condition"),
    [
        (-0.5, "multiplier_negative"),
        (-(2.0**-1074), "multiplier_negative"),
        (math.nan, "multiplier_not_finite"),
        (math.inf, "multiplier_not_finite"),
        (-math.inf, "multiplier_not_finite"),
        (10**400, "multiplier_not_finite"),
        ("0.5", "unsupported_dtype"),
        (True, "unsupported_dtype"),
        (np.array([0.5]), "unsupported_dtype"),
    ],
)
def test_quantize_multiplier_errors(real: object, condition: str) -> None:
    assert _condition(SpecError, quantize_multiplier, real) == condition


def test_quantize_multiplier_single_rounding_must_be_bool() -> None:
    assert _condition(SpecError, quantize_multiplier, 0.5, single_rounding=1) == "invalid_option"


@pytest.mark.parametrize(("multiplier", "shift"), [(2**31, 0), (-1, 0), (1.5, 0), (True, 0), (2**30, 1.0)])
def test_fixed_point_multiplier_validation(multiplier: object, shift: object) -> None:
    assert _condition(SpecError, FixedPointMultiplier, multiplier, shift) == "invalid_fixed_point_multiplier"


def test_primitive_operand_errors() -> None:
    srdhm, rdbpot = saturating_rounding_doubling_high_mul, rounding_divide_by_pot
    assert _condition(SpecError, srdhm, 2**31, 1) == "operand_out_of_range"
    assert _condition(SpecError, srdhm, 1, np.array([0, MIN - 1])) == "operand_out_of_range"
    assert _condition(SpecError, srdhm, np.array([2**63], dtype=np.uint64), 1) == "operand_out_of_range"
    assert _condition(SpecError, srdhm, 2**70, 1) == "operand_out_of_range"
    assert _condition(SpecError, srdhm, np.array([1.0]), 1) == "unsupported_dtype"
    assert _condition(SpecError, srdhm, np.array([True]), 1) == "unsupported_dtype"
    assert _condition(SpecError, srdhm, [1, "a"], 1) == "unsupported_dtype"
    assert _condition(SpecError, srdhm, np.zeros(2, np.int32), np.zeros(3, np.int32)) == "shape_mismatch"
    assert _condition(SpecError, rdbpot, 1, 32) == "exponent_out_of_range"
    assert _condition(SpecError, rdbpot, 1, np.array([0, -1])) == "exponent_out_of_range"
    assert _condition(SpecError, rdbpot, 2**31, 1) == "operand_out_of_range"
    assert _condition(SpecError, rdbpot, 1, 1.0) == "unsupported_dtype"
    assert isinstance(SpecError("x", "y"), ValueError)


def test_apply_scale_type_errors_are_spec_errors() -> None:
    assert _condition(SpecError, apply_scale_32, 2**31, 1, 31, double_round=True) == "operand_out_of_range"
    assert _condition(SpecError, apply_scale_32, 1, 2**31, 31, double_round=True) == "operand_out_of_range"
    assert _condition(SpecError, apply_scale_32, 1, 1, 128, double_round=True) == "operand_out_of_range"
    assert _condition(SpecError, apply_scale_32, 1.0, 1, 31, double_round=True) == "unsupported_dtype"
    assert _condition(SpecError, apply_scale_32, 1, 1, 31, double_round=1) == "invalid_option"
    assert _condition(SpecError, apply_scale_32, [1, 2], [1, 2, 3], 31, double_round=False) == "shape_mismatch"
    assert _condition(SpecError, apply_scale_16, 2**47, 1, 31) == "operand_out_of_range"
    assert _condition(SpecError, apply_scale_16, 1, 2**15, 31) == "operand_out_of_range"
    assert _condition(SpecError, apply_scale_16, 1, 1, -129) == "operand_out_of_range"
    with pytest.raises(TypeError):
        apply_scale_32(1, 1, 31)  # type: ignore[call-arg]  # double_round has no default: the caller names it


def test_apply_scale_requires_are_unpredictable() -> None:
    u = UnpredictableError
    assert _condition(u, apply_scale_32, 1, -1, 31, double_round=True) == "scale_multiplier_negative"
    assert _condition(u, apply_scale_32, 1, 1, 1, double_round=True) == "scale_shift_out_of_range"
    assert _condition(u, apply_scale_32, 1, 1, 63, double_round=False) == "scale_shift_out_of_range"
    assert _condition(u, apply_scale_32, 2**30, 1, 31, double_round=False) == "scale_value_out_of_range"
    assert _condition(u, apply_scale_32, -(2**30) - 1, 1, 31, double_round=False) == "scale_value_out_of_range"
    assert _condition(u, apply_scale_32, 2, 1, 2, double_round=False) == "scale_value_out_of_range"
    assert _condition(u, apply_scale_16, 1, -1, 31) == "scale_multiplier_negative"
    assert _condition(u, apply_scale_16, 1, 1, 0) == "scale_shift_out_of_range"
    assert _condition(u, apply_scale_16, 2**47 - 1, 2**15 - 1, 2) == "scaled_value_overflow"
    assert not issubclass(UnpredictableError, SpecError)


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
        ({"activation_min": 128}, "activation_out_of_range"),
        ({"activation_max": -129}, "activation_out_of_range"),
        ({"activation_min": -1, "out_fmt": UINT8}, "activation_out_of_range"),
        ({"activation_max": 1.5}, "activation_not_integer"),
        ({"activation_min": 10, "activation_max": 5}, "activation_min_above_max"),
        ({"granularity": PerAxis(2)}, "axis_out_of_range"),
    ],
)
def test_requantize_option_errors(kwargs: dict[str, object], condition: str) -> None:
    assert _condition(SpecError, requantize, np.array([1, 2, 3]), 0.5, **kwargs) == condition


def test_requantize_input_errors() -> None:
    acc = np.array([1, 2, 3], dtype=np.int32)
    assert _condition(SpecError, requantize, acc.astype(np.float32), 0.5) == "unsupported_dtype"
    assert _condition(SpecError, requantize, acc, "0.5") == "unsupported_dtype"
    assert _condition(SpecError, requantize, acc, True) == "unsupported_dtype"
    assert _condition(SpecError, requantize, acc, -0.5) == "multiplier_negative"
    assert _condition(SpecError, requantize, acc, np.nan) == "multiplier_not_finite"
    assert _condition(SpecError, requantize, acc, 1e39, rounding=FLOAT32) == "multiplier_not_finite"
    assert _condition(SpecError, requantize, acc, [0.5, 0.5]) == "scale_shape_mismatch"
    assert _condition(SpecError, requantize, acc, [0.5, 0.5], granularity=PerAxis(0)) == "scale_shape_mismatch"
    big = np.array([2**31])
    assert _condition(SpecError, requantize, big, 0.5) == "operand_out_of_range"
    assert _condition(SpecError, requantize, big, 0.5, rounding=SINGLE) == "operand_out_of_range"
    assert requantize(big, 0.5, rounding=FLOAT64, out_fmt=INT32).tolist() == [2**30]  # float roundings take int64
    assert _condition(SpecError, requantize, np.array([2**64 - 1], np.uint64), 0.5, rounding=FLOAT64) == (
        "operand_out_of_range"
    )


def test_requantize_unpredictable_conditions() -> None:
    u = UnpredictableError
    # 4.0 = (2**30, 3): TFLite computes acc * 8 in int32.
    assert _condition(u, requantize, np.array([1, 2**28]), 4.0) == "left_shift_overflow"
    np.testing.assert_array_equal(requantize(np.array([1, 2**28 - 1]), 4.0, out_fmt=INT32), [4, 2**30 - 4])
    # SINGLE has no int32 left shift: (2**28 * 2**30 + 2**27) >> 28 = 2**30 is defined.
    np.testing.assert_array_equal(requantize(np.array([2**28]), 4.0, out_fmt=INT32, rounding=SINGLE), [2**30])
    # 2**31 = (2**30, 32): the factor 1 << 32 itself is outside int32, even for acc 0.
    assert _condition(u, requantize, np.array([0]), 2.0**31) == "left_shift_overflow"
    # Single rounding clamps 2**31 to (2**31 - 1, 30): 8 * (2**31 - 1) / 2 is outside int32.
    assert _condition(u, requantize, np.array([8]), 2.0**31, rounding=SINGLE) == "scaled_value_overflow"
    # The zero point addition is int32 (TFLite) / apply_add_s (TOSA).
    for rounding in (DOUBLE, SINGLE):
        assert _condition(
            u, requantize, np.array([1000]), 1.0, out_fmt=INT32, out_zero_point=MAX, rounding=rounding
        ) == ("zero_point_add_overflow")
    for rounding in (FLOAT32, FLOAT64):  # exact in the float pipelines: saturates
        got = requantize(np.array([1000]), 1.0, out_fmt=INT32, out_zero_point=MAX, rounding=rounding)
        assert got.tolist() == [MAX]
