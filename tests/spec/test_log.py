"""Tests of refquant.spec.log: power-of-two formats, exact thresholds, codes, shift-only products, APoT levels.

The oracles here use Python ints and ``Fraction`` only (exponents found by exact comparison with powers of two,
thresholds by squaring), so they share no arithmetic with the frexp / SQRT2_UP method of the module.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant import SpecError, UnpredictableError
from refquant.spec.log import (
    SQRT2_UP,
    LogFormat,
    LogRounding,
    LogTop,
    LogUnderflow,
    apot_dequantize,
    apot_levels,
    apot_quantize,
    log_dequantize,
    log_exponents,
    log_fake_quantize,
    log_quantize,
    shift_matmul,
)
from refquant.spec.packing import pack, unpack
from tests.spec.oracle import to_float

LOG = LogRounding.LOG_DOMAIN
AWAY = LogRounding.LINEAR_DOMAIN_HALF_AWAY_FROM_ZERO
TOWARD = LogRounding.LINEAR_DOMAIN_HALF_TOWARD_ZERO
EVEN = LogRounding.LINEAR_DOMAIN_HALF_TO_EVEN_EXPONENT
WIDE = LogFormat(9, 127)  # exponents -126..127: every normal float32 magnitude rounds inside the window


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def condition(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError) as info:
        call()
    return info.value.condition


# --- the oracle ------------------------------------------------------------------------------------------------


def o_floor_log2(a: Fraction) -> int:
    k = 0
    while Fraction(2) ** k > a:
        k -= 1
    while Fraction(2) ** (k + 1) <= a:
        k += 1
    return k


def o_round_exponent(x: float, rounding: LogRounding) -> int:
    """The unbounded rounded exponent of |x| > 0, from the definition with exact rationals."""
    a = abs(Fraction(x))
    k = o_floor_log2(a)
    if rounding is LOG:
        return k + 1 if a * a >= Fraction(2) ** (2 * k + 1) else k  # a >= sqrt(2) * 2**k, squared
    mid = Fraction(3, 2) * Fraction(2) ** k
    if a != mid:
        return k + 1 if a > mid else k
    return {AWAY: k + 1, TOWARD: k, EVEN: k if k % 2 == 0 else k + 1}[rounding]


def o_value(x: float, fmt: LogFormat, rounding: LogRounding) -> float:
    """The value log_fake_quantize gives, from the definition."""
    if x == 0 or (not fmt.signed and x < 0):
        return 0.0
    r = fmt.e_max if math.isinf(x) else min(o_round_exponent(x, rounding), fmt.e_max)
    if r < fmt.e_min:
        if fmt.underflow is LogUnderflow.TO_ZERO:
            return 0.0
        r = fmt.e_min
    return math.copysign(2.0**r, x)


# --- hand tables ------------------------------------------------------------------------------------------------


def test_hand_table_signed_4_bit() -> None:
    # Worked by hand from the definition: LogFormat(4, 2) has m = 3 exponent bits, exponents 2 - 6 = -4 .. 2,
    # field f = e + 5 (f = 0 is zero), sign bit 8.  0.05 = 1.6 * 2**-5 rounds (1.6 >= sqrt 2) to 2**-4 (field 1);
    # 0.04 = 1.28 * 2**-5 rounds to 2**-5 < 2**-4: zero.  1.4142 < sqrt 2 stays at 2**0; 5.7 = 1.425 * 4 -> 8 -> 4.
    fmt = LogFormat(4, 2)
    x = f32(0.0, -0.0, 1.0, -1.0, 0.05, 0.04, 1.4142, 1.4143, 5.7, -300.0, np.inf, -np.inf)
    np.testing.assert_array_equal(log_quantize(x, fmt), [0, 0, 5, 13, 1, 0, 5, 6, 7, 15, 7, 15])
    assert log_quantize(x, fmt).dtype == np.uint8
    got = log_fake_quantize(x, fmt)
    want = f32(0, 0, 1, -1, 0.0625, 0, 1, 2, 4, -4, 4, -4)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def test_v20_log_domain_against_linear_domain() -> None:
    # spec-anchors V20, worked by hand: thresholds sqrt(2) * 2**k (log domain) and 1.5 * 2**k (linear, ties up).
    x = f32(1.42, 1.45, 1.5, 2.9, 3.0)
    fmt = LogFormat(5, 4)
    np.testing.assert_array_equal(log_fake_quantize(x, fmt, rounding=LOG), f32(2, 2, 2, 4, 4))
    np.testing.assert_array_equal(log_fake_quantize(x, fmt, rounding=AWAY), f32(1, 1, 2, 2, 4))
    np.testing.assert_array_equal(log_fake_quantize(x, fmt, rounding=TOWARD), f32(1, 1, 1, 2, 2))
    np.testing.assert_array_equal(log_fake_quantize(x, fmt, rounding=EVEN), f32(1, 1, 1, 2, 4))


def test_window_rules_by_hand() -> None:
    # Worked by hand: 3 bits signed -> 2 exponent bits, 3 exponents.  fsr 0: CLAMP_TO_FSR gives -2..0,
    # PAPER_MAX_MINUS_ONE gives -3..-1 (Miyashita: exponents fsr - 2**m + 1 .. fsr - 1).
    x = f32(8.0, 1.0, 0.5, 0.25, 0.125, 0.0625, 0.0)
    clamp = LogFormat(3, 0)
    paper = LogFormat(3, 0, top=LogTop.PAPER_MAX_MINUS_ONE)
    assert (clamp.e_min, clamp.e_max, paper.e_min, paper.e_max) == (-2, 0, -3, -1)
    np.testing.assert_array_equal(log_fake_quantize(x, clamp), f32(1, 1, 0.5, 0.25, 0, 0, 0))
    np.testing.assert_array_equal(log_fake_quantize(x, paper), f32(0.5, 0.5, 0.5, 0.25, 0.125, 0, 0))
    to_min = LogFormat(3, 0, underflow=LogUnderflow.CLAMP_TO_MIN)
    np.testing.assert_array_equal(log_fake_quantize(x, to_min), f32(1, 1, 0.5, 0.25, 0.25, 0.25, 0))
    # The underflow is decided on the rounded exponent: 0.18 = 1.44 * 2**-3 rounds to 2**-2 and stays.
    np.testing.assert_array_equal(log_fake_quantize(f32(0.18, 0.17), clamp), f32(0.25, 0))


def test_unsigned_format() -> None:
    # Worked by hand: unsigned 2 bits, fsr 1: exponents -1..1, field = e + 2; negatives saturate to zero.
    fmt = LogFormat(2, 1, signed=False)
    assert (fmt.exponent_bits, fmt.e_min, fmt.e_max) == (2, -1, 1)
    np.testing.assert_array_equal(log_quantize(f32(-5.0, -np.inf, 0.0, 0.5, 1.0, 2.0, 9.0), fmt), [0, 0, 0, 1, 2, 3, 3])
    np.testing.assert_array_equal(log_dequantize(np.arange(4, dtype=np.uint8), fmt), f32(0, 0.5, 1, 2))


def test_log_exponents_fields() -> None:
    sign, e, zero = log_exponents(f32(-0.3, 0.0, 2.5), LogFormat(4, 2))
    # Worked by hand: 0.3 = 1.2 * 2**-2 -> -2; 2.5 = 1.25 * 2 -> 1; zero reports e_min.
    assert (sign.tolist(), e.tolist(), zero.tolist()) == ([-1, 1, 1], [-2, -4, 1], [False, True, False])
    assert (sign.dtype, e.dtype, zero.dtype) == (np.int8, np.int32, np.bool_)


# --- exact thresholds --------------------------------------------------------------------------------------------


def test_sqrt2_up_is_the_float64_just_above_sqrt2() -> None:
    c = Fraction(SQRT2_UP)
    below = Fraction(math.nextafter(SQRT2_UP, 0.0))
    assert c * c > 2 > below * below


@pytest.mark.parametrize("k", [-126, -40, -1, 0, 1, 5, 20, 60, 126])
def test_log_threshold_one_ulp_either_side_float32(k: int) -> None:
    # Largest float32 below sqrt(2) * 2**k and the smallest above (found by exact squaring).
    t = np.float32(math.sqrt(2.0) * 2.0**k)
    while Fraction(float(t)) ** 2 >= 2 * Fraction(4) ** k:
        t = np.nextafter(t, np.float32(0))
    below, above = t, np.nextafter(t, np.float32(np.inf))
    assert Fraction(float(above)) ** 2 > 2 * Fraction(4) ** k
    _, e, _ = log_exponents(np.array([below, above, -below, -above]), WIDE)
    assert e.tolist() == [k, k + 1, k, k + 1]


def test_float_log2_misrounds_where_the_exact_rule_does_not() -> None:
    # float32(45.254833) is the largest float32 below sqrt(2) * 32, so its exponent is 5; float32 log2 rounds
    # it to 5.5 exactly, which any round-half rule of the float log sends to 6.
    x = np.float32(45.254833)
    assert Fraction(float(x)) ** 2 < 2 * 32**2
    assert np.log2(x) == np.float32(5.5)
    assert log_exponents(np.array([x]), WIDE)[1].tolist() == [5]


def test_float64_inputs_at_the_threshold() -> None:
    below = math.nextafter(SQRT2_UP, 0.0)
    x = np.array([below, SQRT2_UP, below * 2.0**-30, SQRT2_UP * 2.0**40])
    assert log_exponents(x, WIDE)[1].tolist() == [0, 1, -30, 41]


@pytest.mark.parametrize("k", [-20, -1, 0, 1, 2, 3, 30])
def test_linear_ties_at_one_and_a_half(k: int) -> None:
    tie = np.float32(1.5 * 2.0**k)
    x = np.array([np.nextafter(tie, np.float32(0)), tie, np.nextafter(tie, np.float32(np.inf))])
    even = k if k % 2 == 0 else k + 1
    assert log_exponents(x, WIDE, rounding=AWAY)[1].tolist() == [k, k + 1, k + 1]
    assert log_exponents(x, WIDE, rounding=TOWARD)[1].tolist() == [k, k, k + 1]
    assert log_exponents(x, WIDE, rounding=EVEN)[1].tolist() == [k, even, k + 1]
    assert log_exponents(x, WIDE, rounding=LOG)[1].tolist() == [k + 1] * 3  # 1.5 > sqrt 2


finite_f32 = st.floats(width=32, allow_nan=False, allow_infinity=True)
FORMATS = [
    LogFormat(4, 2),
    LogFormat(3, 0, top=LogTop.PAPER_MAX_MINUS_ONE),
    LogFormat(5, -3, underflow=LogUnderflow.CLAMP_TO_MIN),
    LogFormat(4, 7, signed=False),
    LogFormat(8, 20),
    LogFormat(2, -149 + 0, signed=True),
]


@settings(max_examples=200)
@given(st.lists(finite_f32, min_size=1, max_size=20), st.sampled_from(FORMATS), st.sampled_from(list(LogRounding)))
def test_matches_the_exact_oracle(xs: list[float], fmt: LogFormat, rounding: LogRounding) -> None:
    x = np.array(xs, dtype=np.float32)
    got = log_fake_quantize(x, fmt, rounding=rounding)
    want = np.array([o_value(float(v), fmt, rounding) for v in x], dtype=np.float32)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


@settings(max_examples=100)
@given(st.floats(min_value=2.0**-100, max_value=2.0**100), st.sampled_from(list(LogRounding)))
def test_float64_magnitudes_match_the_oracle(x: float, rounding: LogRounding) -> None:
    assert log_exponents(np.array([x]), WIDE, rounding=rounding)[1].tolist() == [o_round_exponent(x, rounding)]


# --- properties ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [*FORMATS, LogFormat(9, 105), LogFormat(1, 3, signed=False)])
@pytest.mark.parametrize("rounding", list(LogRounding))
def test_every_code_round_trips(fmt: LogFormat, rounding: LogRounding) -> None:
    codes = np.arange(1 << fmt.bits)
    if fmt.signed:
        codes = codes[codes != 1 << fmt.exponent_bits]  # the negative zero is not a code
    values = log_dequantize(codes, fmt)
    np.testing.assert_array_equal(log_quantize(values, fmt, rounding=rounding), codes)
    if fmt.bits <= 8:
        packed = pack(codes, fmt.code_format)
        np.testing.assert_array_equal(unpack(packed, fmt.code_format, codes.size), codes)


@settings(max_examples=150)
@given(st.lists(finite_f32, min_size=2, max_size=30), st.sampled_from(FORMATS), st.sampled_from(list(LogRounding)))
def test_monotone_and_sign_symmetric(xs: list[float], fmt: LogFormat, rounding: LogRounding) -> None:
    x = np.sort(np.array(xs, dtype=np.float32))
    v = log_fake_quantize(x, fmt, rounding=rounding)
    assert np.all(np.diff(v.astype(np.float64)) >= 0)
    if fmt.signed:
        np.testing.assert_array_equal(log_fake_quantize(-x, fmt, rounding=rounding), -v)


def test_dtypes_and_shapes() -> None:
    fmt = LogFormat(9, 110)  # the widest: 255 exponents, -144..110
    x = np.array([[1.0, -3.0], [0.0, 100.0]], np.float16)
    q = log_quantize(x, fmt)
    assert q.dtype == np.uint16
    assert q.shape == (2, 2)
    np.testing.assert_array_equal(log_dequantize(q, fmt), f32(1, -4, 0, 128).reshape(2, 2))
    assert log_quantize(np.float32(2.0), LogFormat(4, 2)).shape == ()
    assert log_quantize(np.zeros((0, 3), np.float32), LogFormat(4, 2)).shape == (0, 3)


# --- shift-only products -----------------------------------------------------------------------------------------


def o_shift_matmul(lhs: np.ndarray, w: np.ndarray, fmt: LogFormat) -> list[list[Fraction]]:
    vals = [[Fraction(float(v)) for v in row] for row in log_dequantize(w, fmt)]
    return [
        [sum((int(lhs[i, t]) * vals[t][j] for t in range(lhs.shape[1])), Fraction(0)) for j in range(w.shape[1])]
        for i in range(lhs.shape[0])
    ]


@settings(max_examples=100)
@given(
    st.integers(1, 5),
    st.integers(0, 9),
    st.integers(1, 4),
    st.sampled_from([np.int8, np.uint8, np.int16, np.int32]),
    st.sampled_from([LogFormat(4, 2), LogFormat(5, -3), LogFormat(3, 5, signed=False), LogFormat(8, 40)]),
    st.randoms(use_true_random=False),
)
def test_shift_matmul_is_exact(m: int, k: int, n: int, dtype: type, fmt: LogFormat, rnd) -> None:  # type: ignore[no-untyped-def]
    info = np.iinfo(dtype)
    lhs = np.array([[rnd.randint(info.min, info.max) for _ in range(k)] for _ in range(m)], dtype=dtype).reshape(m, k)
    codes = [c for c in range(1 << fmt.bits) if not (fmt.signed and c == 1 << fmt.exponent_bits)]
    w = np.array([[rnd.choice(codes) for _ in range(n)] for _ in range(k)], dtype=fmt.storage_dtype).reshape(k, n)
    exact = o_shift_matmul(lhs, w, fmt)
    scale = Fraction(2) ** fmt.fraction_bits
    if any(not -(2**63) <= v * scale < 2**63 for row in exact for v in row):
        with pytest.raises(UnpredictableError):
            shift_matmul(lhs, w, fmt)
        return
    acc = shift_matmul(lhs, w, fmt)
    assert acc.dtype == np.int64
    assert acc.shape == (m, n)
    assert [[Fraction(int(v)) for v in row] for row in acc] == [[v * scale for v in row] for row in exact]


def test_shift_matmul_equals_the_float64_product_when_that_is_exact() -> None:
    # int8 activations, 4-bit weights (exponents -4..2): every partial sum is a multiple of 2**-4 below 2**20,
    # so the float64 matmul is exact and must agree bit for bit.
    rng = np.random.default_rng(7)
    fmt = LogFormat(4, 2)
    lhs = rng.integers(-128, 128, size=(16, 64), dtype=np.int8)
    w = log_quantize(rng.standard_normal((64, 8)).astype(np.float32), fmt)
    acc = shift_matmul(lhs, w, fmt)
    product = lhs.astype(np.float64) @ log_dequantize(w, fmt).astype(np.float64)
    np.testing.assert_array_equal(np.ldexp(acc.astype(np.float64), -fmt.fraction_bits), product)


def test_shift_matmul_wide_shifts_and_overflow() -> None:
    fmt = LogFormat(8, 60)  # exponents -66..60, fraction_bits 66: shifts up to 126, the Python-int path
    w = log_quantize(np.array([[2.0**-66], [2.0**-60]], np.float32), fmt)
    assert shift_matmul(np.array([[3, -5]], np.int32), w, fmt).tolist() == [[3 - 5 * 2**6]]
    big = log_quantize(np.array([[2.0**-3]], np.float32), fmt)  # shift 63: 1 << 63 leaves int64
    with pytest.raises(UnpredictableError) as info:
        shift_matmul(np.array([[1]], np.int8), big, fmt)
    assert info.value.condition == "accumulator_overflow"
    assert shift_matmul(np.array([[-1]], np.int8), big, fmt).tolist() == [[-(2**63)]]
    assert shift_matmul(np.zeros((2, 0), np.int8), np.zeros((0, 3), np.uint8), fmt).tolist() == [[0] * 3] * 2


# --- APoT -----------------------------------------------------------------------------------------------------


def test_apot_levels_by_hand() -> None:
    # Worked by hand from Li et al.'s definition.  k = 1 (n = bits): every binary fraction, i.e. uniform levels
    # alpha * j / 7 for bits 3 (P = 7/4).  k = bits (n = 1): {0} U {2**-j, j = 0..2**k - 2}, pure powers of two.
    np.testing.assert_array_equal(apot_levels(3, 1, 7.0), f32(0, 1, 2, 3, 4, 5, 6, 7))
    np.testing.assert_array_equal(apot_levels(3, 3, 1.0), f32(0, 2**-6, 2**-5, 2**-4, 2**-3, 2**-2, 2**-1, 1))
    # bits 6, k 2 (n 3): p_i in {0, 2**-i, 2**-(i+3), 2**-(i+6)}, P = 7/4; the 64 sums are distinct; the
    # smallest non-zero is 2**-8 and the second largest 1 + 1/2 + 1/32 (p_2 below 1/4 is 1/32).
    lv = apot_levels(6, 2, 1.75)
    assert lv.size == 64
    assert lv[-1] == np.float32(1.75)
    assert lv[0] == 0
    assert lv[1] == np.float32(2.0**-8)
    assert lv[-2] == np.float32(1.53125)


def o_apot_units(bits: int, k: int) -> list[Fraction]:
    n = bits // k
    sets = [[Fraction(0)] + [Fraction(1, 2 ** (i + j * n)) for j in range(2**k - 1)] for i in range(n)]
    units = [Fraction(0)]
    for s in sets:
        units = [u + p for u in units for p in s]
    return sorted(units)


@settings(max_examples=60)
@given(
    st.sampled_from([(b, k) for b in range(1, 9) for k in range(1, b + 1) if b % k == 0 and k != 8]),
    st.floats(min_value=2.0**-10, max_value=2.0**20, width=32),
)
def test_apot_levels_match_the_exact_definition(bk: tuple[int, int], alpha: float) -> None:
    bits, k = bk
    n = bits // k
    total = sum((Fraction(1, 2**i) for i in range(n)), Fraction(0))
    want = [to_float(Fraction(alpha) * u / total, np.float32) for u in o_apot_units(bits, k)]
    if len(set(want)) < len(want):  # e.g. bits 8, k 4: 1/4 + 2**-29 and 1/4 are one float32
        assert condition(lambda: apot_levels(bits, k, alpha)) == "invalid_format"
        return
    lv = apot_levels(bits, k, alpha)
    np.testing.assert_array_equal(lv, np.array(want, np.float32))
    assert lv.dtype == np.float32
    assert lv.size == 2**bits
    assert lv[-1] == np.float32(alpha)
    assert np.all(np.diff(lv) > 0)


def test_apot_quantize_ties_to_the_lower_level() -> None:
    lv = apot_levels(4, 2, 1.5)
    mids = (lv[:-1].astype(np.float64) + lv[1:]) / 2  # exact here: dyadic levels of small span
    x = mids.astype(np.float32)
    assert np.all(x.astype(np.float64) == mids)
    np.testing.assert_array_equal(apot_quantize(x, lv), np.arange(15))
    up = np.nextafter(x, np.float32(np.inf))
    np.testing.assert_array_equal(apot_quantize(up, lv), np.arange(1, 16))
    np.testing.assert_array_equal(apot_dequantize(apot_quantize(lv, lv), lv), lv)
    np.testing.assert_array_equal(apot_quantize(f32(-1.0, 0.0, 100.0, np.inf), lv), [0, 0, 15, 15])


def test_apot_errors() -> None:
    assert condition(lambda: apot_levels(4, 3, 1.0)) == "invalid_format"
    assert condition(lambda: apot_levels(0, 1, 1.0)) == "invalid_format"
    assert condition(lambda: apot_levels(9, 3, 1.0)) == "invalid_format"
    assert condition(lambda: apot_levels(4, 2, 0.0)) == "invalid_alpha"
    assert condition(lambda: apot_levels(4, 2, float("nan"))) == "invalid_alpha"
    assert condition(lambda: apot_levels(4, 2, 1e39)) == "invalid_alpha"
    assert condition(lambda: apot_levels(4, 2, [1.0])) == "invalid_alpha"
    assert condition(lambda: apot_levels(8, 8, 1.0)) == "invalid_format"  # 2**-254 is 0 in float32
    assert condition(lambda: apot_quantize(f32(np.nan), apot_levels(2, 1, 1.0))) == "nan_input"
    assert condition(lambda: apot_dequantize(np.array([4]), apot_levels(2, 1, 1.0))) == "code_out_of_range"


# --- errors ---------------------------------------------------------------------------------------------------


def test_format_errors() -> None:
    assert condition(lambda: LogFormat(1, 0)) == "invalid_format"  # signed needs a sign bit and a field
    assert condition(lambda: LogFormat(0, 0, signed=False)) == "invalid_format"
    assert condition(lambda: LogFormat(17, 0)) == "invalid_format"
    assert condition(lambda: LogFormat(True, 0)) == "invalid_format"  # type: ignore[arg-type]
    assert condition(lambda: LogFormat(4, 1.5)) == "invalid_format"  # type: ignore[arg-type]
    assert condition(lambda: LogFormat(4, 128)) == "invalid_format"  # 2**128 is not a float32
    assert condition(lambda: LogFormat(4, -144)) == "invalid_format"  # e_min -150
    assert LogFormat(4, -143).e_min == -149
    assert condition(lambda: LogFormat(4, 0, signed=1)) == "invalid_format"  # type: ignore[arg-type]
    assert condition(lambda: LogFormat(4, 0, top="clamp_to_fsr")) == "invalid_option"  # type: ignore[arg-type]
    assert condition(lambda: LogFormat(4, 0, underflow="to_zero")) == "invalid_option"  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        LogFormat(4, 0).bits = 5  # type: ignore[misc]


def test_quantize_and_dequantize_errors() -> None:
    fmt = LogFormat(4, 2)
    assert condition(lambda: log_quantize(f32(1.0, np.nan), fmt)) == "nan_input"
    assert condition(lambda: log_quantize(np.array([1, 2]), fmt)) == "unsupported_dtype"
    assert condition(lambda: log_quantize(f32(1.0), fmt, rounding="log_domain")) == "invalid_option"  # type: ignore[arg-type]
    assert condition(lambda: log_quantize(f32(1.0), "fmt")) == "invalid_format"  # type: ignore[arg-type]
    assert condition(lambda: log_dequantize(np.array([16]), fmt)) == "code_out_of_range"
    assert condition(lambda: log_dequantize(np.array([-1]), fmt)) == "code_out_of_range"
    assert condition(lambda: log_dequantize(np.array([8], np.uint64), fmt)) == "code_out_of_range"  # negative zero
    assert condition(lambda: log_dequantize(np.array([2**64 - 1], np.uint64), fmt)) == "code_out_of_range"
    assert condition(lambda: log_dequantize(f32(1.0), fmt)) == "unsupported_dtype"
    w = np.zeros((3, 2), np.uint8)
    assert condition(lambda: shift_matmul(np.zeros((2, 2), np.int8), w, fmt)) == "shape_mismatch"
    assert condition(lambda: shift_matmul(np.zeros(3, np.int8), w, fmt)) == "shape_mismatch"
    assert condition(lambda: shift_matmul(np.zeros((2, 3), np.int64), w, fmt)) == "unsupported_dtype"
    assert condition(lambda: shift_matmul(np.zeros((2, 3), np.float32), w, fmt)) == "unsupported_dtype"
    assert condition(lambda: shift_matmul(np.zeros((2, 3), np.int8), w + 8, fmt)) == "code_out_of_range"
