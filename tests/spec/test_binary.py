"""refquant.spec.binary: hand tables (spec-anchors V18, V19), the unmasked-padding trap, exact-mean scaling, XNOR
products against the integer matmul for K around every multiple of 64, binary conv2d against a direct loop for each
padding value, the scaled output's operation order, the STE windows, and every error condition."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refquant import SpecError
from refquant.spec.binary import (
    BinaryPadding,
    SignZero,
    SteWindow,
    binarize,
    binarize_stochastic,
    binary_conv2d,
    binary_matmul_scaled,
    binary_scale,
    pack_bits,
    ste_grad,
    ste_mask,
    unpack_bits,
    xnor_matmul,
)

K_EDGES = [0, 1, 2, 63, 64, 65, 127, 128, 129, 191, 192, 193]
U64_MAX = 2**64 - 1


def condition(call: Callable[[], Any]) -> str:
    with pytest.raises(SpecError) as info:
        call()
    return info.value.condition


def bits32(x: Any) -> Any:
    """float32 bit patterns (as Python ints), so that results are compared exactly, signed zeros included."""
    return np.asarray(x, np.float32).view(np.uint32).tolist()


def pm_one(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.choice(np.array([-1, 1], np.int8), size=shape)


def int_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The +-1 integer dot of rows of a with rows of b, exact in int64."""
    return a.astype(np.int64) @ b.astype(np.int64).T


# ---------------------------------------------------------------------------------------------------------------
# binarize: V18, worked by hand from the definition (x > 0 -> +1, x < 0 -> -1, +-0 -> the policy's value).


def test_v18_sign_of_zero_under_each_policy() -> None:
    x = np.array([0.0, -0.0, 1e-30, -1e-30], np.float32)
    assert binarize(x).tolist() == [1, 1, 1, -1]  # BinaryConnect / BNN / ggml Q1_0: x >= 0 (and -0.0 >= 0)
    assert binarize(x, sign_zero=SignZero.POSITIVE).tolist() == [1, 1, 1, -1]
    assert binarize(x, sign_zero=SignZero.NEGATIVE).tolist() == [-1, -1, 1, -1]  # 2 * (x > 0) - 1
    assert binarize(x, sign_zero=SignZero.ZERO).tolist() == [0, 0, 1, -1]  # torch.sign / Lua sign (XNOR-Net)


def test_binarize_table_inf_subnormal_and_integers() -> None:
    # Worked by hand: the sign of each value; the smallest subnormals are not zero.
    tiny = np.float32(2**-149)
    x = np.array([np.inf, -np.inf, tiny, -tiny, 3.5, -2.0], np.float32)
    assert binarize(x).dtype == np.int8
    assert binarize(x).tolist() == [1, -1, 1, -1, 1, -1]
    assert binarize(np.array([-3, 0, 7], np.int16), sign_zero=SignZero.NEGATIVE).tolist() == [-1, -1, 1]
    assert binarize(np.array([0, 200], np.uint8), sign_zero=SignZero.ZERO).tolist() == [0, 1]
    assert binarize(np.float64(-0.0)).shape == ()
    assert binarize(np.float64(-0.0)).tolist() == 1
    assert binarize(np.zeros((2, 0, 3), np.float16)).shape == (2, 0, 3)


@settings(max_examples=150)
@given(
    hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3, max_side=5), elements=st.floats(width=32)),
    st.sampled_from(list(SignZero)),
)
def test_binarize_matches_a_scalar_oracle(x: np.ndarray, policy: SignZero) -> None:
    x = np.where(np.isnan(x), np.float32(0), x)
    zero = {SignZero.POSITIVE: 1, SignZero.NEGATIVE: -1, SignZero.ZERO: 0}[policy]
    expected = [1 if v > 0 else -1 if v < 0 else zero for v in x.reshape(-1).tolist()]
    np.testing.assert_array_equal(binarize(x, sign_zero=policy).reshape(-1), np.array(expected, np.int8))


def test_binarize_errors() -> None:
    assert condition(lambda: binarize(np.array([1.0, np.nan]))) == "nan_input"
    assert condition(lambda: binarize(np.array([1.0]), sign_zero="positive")) == "invalid_option"  # type: ignore[arg-type]
    assert condition(lambda: binarize(np.array([True]))) == "unsupported_dtype"
    assert condition(lambda: binarize(np.array(["a"]))) == "unsupported_dtype"


# ---------------------------------------------------------------------------------------------------------------
# binarize_stochastic: p = clip((x + 1) / 2, 0, 1) in float64; +1 where u < p. Worked by hand.


def test_stochastic_hand_table() -> None:
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0, 2.0, -3.0], np.float32)  # p = 0, 0.25, 0.5, 0.75, 1, 1, 0
    assert binarize_stochastic(x, uniform=np.zeros(7)).tolist() == [-1, 1, 1, 1, 1, 1, -1]  # u = 0 < p unless p = 0
    below_one = np.nextafter(1.0, 0.0)
    assert binarize_stochastic(x, uniform=np.full(7, below_one)).tolist() == [-1, -1, -1, -1, 1, 1, -1]
    # At u == p exactly the draw is not below p: -1; one float64 ulp below p: +1.
    assert binarize_stochastic(x, uniform=np.full(7, 0.75)).tolist() == [-1, -1, -1, -1, 1, 1, -1]
    u = np.full(7, np.nextafter(0.75, 0.0))
    assert binarize_stochastic(x, uniform=u).tolist() == [-1, -1, -1, 1, 1, 1, -1]
    inf = np.array([np.inf, -np.inf])
    assert binarize_stochastic(inf, uniform=np.array([0.999, 0.0])).tolist() == [1, -1]


@settings(max_examples=150)
@given(st.lists(st.tuples(st.floats(-3, 3, width=32), st.floats(0, 1, exclude_max=True)), min_size=1, max_size=20))
def test_stochastic_matches_a_float64_oracle(pairs: list[tuple[float, float]]) -> None:
    x = np.array([p[0] for p in pairs], np.float32)
    u = np.array([p[1] for p in pairs], np.float64)
    expected = [
        1 if ui < min(max((float(xi) + 1.0) / 2.0, 0.0), 1.0) else -1 for xi, ui in zip(x.tolist(), u, strict=False)
    ]
    assert binarize_stochastic(x, uniform=u).tolist() == expected


def test_stochastic_errors() -> None:
    x = np.zeros(3, np.float32)
    assert condition(lambda: binarize_stochastic(x, uniform=np.zeros(2))) == "shape_mismatch"
    assert condition(lambda: binarize_stochastic(x, uniform=np.zeros(3, np.int32))) == "unsupported_dtype"
    assert condition(lambda: binarize_stochastic(x, uniform=np.array([0.0, 1.0, 0.5]))) == "uniform_out_of_range"
    assert condition(lambda: binarize_stochastic(x, uniform=np.array([0.0, -0.1, 0.5]))) == "uniform_out_of_range"
    assert condition(lambda: binarize_stochastic(x, uniform=np.array([0.0, np.nan, 0.5]))) == "uniform_not_finite"
    assert condition(lambda: binarize_stochastic(np.array([np.nan]), uniform=np.zeros(1))) == "nan_input"


# ---------------------------------------------------------------------------------------------------------------
# binary_scale: float32(fl64(exact sum of |w|) / n).


def oracle_mean_abs(values: list[float]) -> np.float32:
    exact = sum((Fraction(abs(v)) for v in values), Fraction(0))
    return np.float32(float(exact) / len(values))  # float(Fraction) rounds correctly, then the float64 division


def test_binary_scale_hand_table() -> None:
    # Worked by hand: |w| sums 1 + 3 + 0.5 + 0 = 4.5 over 4 -> 1.125; per axis 0: (1 + 3) / 2, (0.5 + 0) / 2.
    w = np.array([[1.0, -3.0], [0.5, 0.0]], np.float32)
    assert binary_scale(w).shape == ()
    assert binary_scale(w).dtype == np.float32
    assert bits32(binary_scale(w)) == bits32(1.125)
    assert bits32(binary_scale(w, axis=0)) == bits32([2.0, 0.25])
    assert bits32(binary_scale(w, axis=-1)) == bits32([0.75, 1.5])  # columns: (1 + 0.5) / 2, (3 + 0) / 2


def test_binary_scale_is_the_exact_sum_not_a_float32_loop() -> None:
    # Worked by hand: |w| = [2**24, 1, 1]. Exact sum 2**24 + 2 = 16777218, / 3 = 5592406 (exact in float32).
    # A sequential float32 loop loses both 1s (2**24 + 1 rounds to 2**24, half to even): 16777216 / 3 -> 5592405.5.
    w = np.array([2.0**24, 1.0, -1.0], np.float32)
    assert bits32(binary_scale(w)) == bits32(5592406.0)
    acc = np.float32(0)
    for v in np.abs(w):
        acc = np.float32(acc + v)
    assert np.float32(acc / np.float32(3)) == np.float32(5592405.5)


@settings(max_examples=100)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 6)),
        elements=st.floats(-(2.0**100), 2.0**100, width=32),
    ),
    st.sampled_from([None, 0, 1, 2, -1]),
    st.randoms(use_true_random=False),
)
def test_binary_scale_exact_and_order_independent(w: np.ndarray, axis: int | None, rnd: Any) -> None:
    got = binary_scale(w, axis=axis)
    if axis is None:
        assert got.view(np.uint32) == oracle_mean_abs(w.reshape(-1).tolist()).view(np.uint32)
        perm = w.reshape(-1).copy()
        rnd.shuffle(perm)
        assert binary_scale(perm).view(np.uint32) == got.view(np.uint32)
    else:
        moved = np.moveaxis(w, axis, 0)
        expected = np.array([oracle_mean_abs(moved[c].reshape(-1).tolist()) for c in range(moved.shape[0])])
        np.testing.assert_array_equal(got.view(np.uint32), expected.astype(np.float32).view(np.uint32))


def test_binary_scale_errors() -> None:
    assert condition(lambda: binary_scale(np.zeros(0, np.float32))) == "empty_input"
    assert condition(lambda: binary_scale(np.zeros((3, 0), np.float32), axis=0)) == "empty_input"
    assert condition(lambda: binary_scale(np.array([1.0, np.inf], np.float32))) == "scale_not_finite"
    assert condition(lambda: binary_scale(np.array([1e300, 1.0]))) == "scale_not_finite"  # overflows float32
    assert condition(lambda: binary_scale(np.array([1.7e308, 1.7e308]))) == "scale_not_finite"  # sum overflows float64
    assert condition(lambda: binary_scale(np.array([1.0, np.nan], np.float32))) == "nan_input"
    assert condition(lambda: binary_scale(np.ones((2, 3), np.float32), axis=2)) == "axis_out_of_range"
    assert condition(lambda: binary_scale(np.ones((2, 3), np.float32), axis=True)) == "axis_out_of_range"  # type: ignore[arg-type]
    assert condition(lambda: binary_scale(np.float32(1.0), axis=0)) == "axis_out_of_range"
    assert condition(lambda: binary_scale(np.ones(3, np.int32))) == "unsupported_dtype"
    assert binary_scale(np.ones((2, 0), np.float32), axis=1).shape == (0,)  # no channel, no mean to take


# ---------------------------------------------------------------------------------------------------------------
# pack_bits / unpack_bits: element k in bit k % 64 of word k // 64, +1 -> 1. Worked by hand.


def test_pack_hand_table() -> None:
    assert pack_bits(np.array([1, -1, 1, 1, -1], np.int8)).tolist() == [0b01101]  # bits 0, 2, 3
    assert pack_bits(np.ones(64, np.int8)).tolist() == [U64_MAX]
    assert pack_bits(np.ones(65, np.int8)).tolist() == [U64_MAX, 1]  # element 64: bit 0 of word 1
    only_63 = -np.ones(64, np.int8)
    only_63[63] = 1
    assert pack_bits(only_63).tolist() == [2**63]
    assert pack_bits(-np.ones(70, np.int8)).tolist() == [0, 0]
    assert pack_bits(np.ones((2, 3, 0), np.int8)).shape == (2, 3, 0)
    assert pack_bits(np.ones((2, 3, 5), np.int8)).dtype == np.uint64
    assert pack_bits(np.ones((2, 3, 5), np.int8)).tolist() == [[[31]] * 3] * 2


@settings(max_examples=100)
@given(st.sampled_from([*K_EDGES, 255, 256, 257]), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_pack_unpack_round_trip_and_big_integer_oracle(k: int, rows: int, seed: int) -> None:
    b = pm_one(np.random.default_rng(seed), (rows, k))
    words = pack_bits(b)
    assert words.shape == (rows, -(-k // 64))
    for r in range(rows):  # the definition with one Python integer: element i at bit i
        stream = sum(1 << i for i, v in enumerate(b[r].tolist()) if v == 1)
        assert words[r].tolist() == [(stream >> (64 * j)) & U64_MAX for j in range(words.shape[1])]
    np.testing.assert_array_equal(unpack_bits(words, k), b)


def test_pack_unpack_errors() -> None:
    assert condition(lambda: pack_bits(np.array([1, 0, -1], np.int8))) == "binary_zero_not_encodable"
    assert condition(lambda: pack_bits(np.array([1, 2, 0], np.int8))) == "binary_zero_not_encodable"  # 0 checked first
    assert condition(lambda: pack_bits(np.array([1, 2], np.int8))) == "code_out_of_range"
    assert condition(lambda: pack_bits(np.array([1, -1], np.int16))) == "unsupported_dtype"
    assert condition(lambda: pack_bits(np.int8(1))) == "shape_mismatch"
    words = np.array([13], np.uint64)
    assert condition(lambda: unpack_bits(words, 65)) == "count_exceeds_packed"
    assert condition(lambda: unpack_bits(np.array([13, 0], np.uint64), 5)) == "packed_too_long"
    assert condition(lambda: unpack_bits(np.array([13 | 1 << 5], np.uint64), 5)) == "nonzero_padding"
    assert condition(lambda: unpack_bits(words, -1)) == "invalid_count"
    assert condition(lambda: unpack_bits(words, True)) == "invalid_count"  # type: ignore[arg-type]
    assert condition(lambda: unpack_bits(np.array([13], np.int64), 5)) == "unsupported_dtype"
    assert condition(lambda: unpack_bits(np.uint64(13), 5)) == "shape_mismatch"
    assert unpack_bits(np.zeros((2, 0), np.uint64), 0).shape == (2, 0)


# ---------------------------------------------------------------------------------------------------------------
# xnor_matmul


def unmasked_xnor_dot(a: np.ndarray, b: np.ndarray, n: int) -> int:
    """A deliberately WRONG implementation (for the trap test): 2 * popcount(XNOR) - n over whole words."""
    xnor = ~(a ^ b)
    return int(2 * int(np.bitwise_count(xnor).sum()) - n)


def test_v19_hand_example_and_the_unmasked_padding_trap() -> None:
    # Worked by hand: a = [+1, -1, +1, +1, -1], b = [+1, +1, -1, +1, -1]: products 1, -1, -1, 1, 1, dot 1.
    a = np.array([[1, -1, 1, 1, -1]], np.int8)
    b = np.array([[1, 1, -1, 1, -1]], np.int8)
    pa, pb = pack_bits(a), pack_bits(b)
    assert pa.tolist() == [[0b01101]]
    assert pb.tolist() == [[0b01011]]
    assert xnor_matmul(pa, pb, 5).tolist() == [[1]]  # 5 - 2 * popcount(0b00110) = 5 - 4
    # V19 in an 8-bit word (worked by hand): both operands zero-padded, XNOR of the 3 padding bits is 1, so the
    # unmasked count is 3 + 3 = 6 matches: 2 * 6 - 5 = 7 (with n = 5), 2 * 6 - 8 = 4 (with n = 8); both wrong.
    xnor8 = ~(0b01101 ^ 0b01011) & 0xFF
    assert (2 * bin(xnor8).count("1") - 5, 2 * bin(xnor8).count("1") - 8) == (7, 4)
    # In 64-bit words the trap is 59 padding matches: 2 * (3 + 59) - 5 = 119 instead of 1.
    assert unmasked_xnor_dot(pa[0], pb[0], 5) == 119
    assert unmasked_xnor_dot(pa[0], pb[0], 5) != xnor_matmul(pa, pb, 5)[0, 0]


def test_padding_bits_are_ignored_whatever_they_hold() -> None:
    # Worked by hand: the same 5 valid bits as V19 with every padding bit set, in lhs, rhs or both: still 1.
    garbage = np.uint64(U64_MAX ^ 0b11111)
    pa = np.array([[0b01101]], np.uint64) | garbage
    pb = np.array([[0b01011]], np.uint64)
    assert xnor_matmul(pa, pb, 5).tolist() == [[1]]
    assert xnor_matmul(pb | garbage, pa, 5).tolist() == [[1]]
    assert xnor_matmul(pa, pb | garbage, 5).tolist() == [[1]]


def test_all_equal_and_all_opposite() -> None:
    # Worked by hand: k equal +-1 pairs give k, k opposite pairs give -k.
    for k in K_EDGES:
        plus = pack_bits(np.ones((1, k), np.int8))
        minus = pack_bits(-np.ones((1, k), np.int8))
        assert xnor_matmul(plus, plus, k).tolist() == [[k]]
        assert xnor_matmul(minus, minus, k).tolist() == [[k]]
        assert xnor_matmul(plus, minus, k).tolist() == [[-k]]


@settings(max_examples=200)
@given(
    st.one_of(st.sampled_from(K_EDGES), st.integers(0, 400)),
    st.integers(1, 4),
    st.integers(1, 5),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_xnor_matmul_equals_the_integer_matmul(k: int, m: int, n: int, seed: int, dirty: bool) -> None:
    rng = np.random.default_rng(seed)
    a, b = pm_one(rng, (m, k)), pm_one(rng, (n, k))
    pa, pb = pack_bits(a), pack_bits(b)
    if dirty and k % 64:  # random bits in the padding of both operands
        pad = np.uint64(U64_MAX ^ ((1 << (k % 64)) - 1))
        pa[:, -1] |= rng.integers(0, 2**63, size=m, dtype=np.uint64) & pad
        pb[:, -1] |= rng.integers(0, 2**63, size=n, dtype=np.uint64) << np.uint64(1) & pad
    out = xnor_matmul(pa, pb, k)
    assert out.dtype == np.int32
    assert out.shape == (m, n)
    np.testing.assert_array_equal(out, int_dot(a, b))


def test_xnor_matmul_errors() -> None:
    w1 = np.zeros((2, 1), np.uint64)
    assert condition(lambda: xnor_matmul(w1, np.zeros((3, 2), np.uint64), 5)) == "shape_mismatch"
    assert condition(lambda: xnor_matmul(w1, w1, 65)) == "shape_mismatch"
    assert condition(lambda: xnor_matmul(w1, w1, 0)) == "shape_mismatch"
    assert condition(lambda: xnor_matmul(np.zeros(1, np.uint64), w1, 5)) == "shape_mismatch"
    assert condition(lambda: xnor_matmul(w1.astype(np.int64), w1, 5)) == "unsupported_dtype"
    assert condition(lambda: xnor_matmul(w1, w1, -1)) == "invalid_count"
    assert condition(lambda: xnor_matmul(w1, w1, 5.0)) == "invalid_count"  # type: ignore[arg-type]
    assert xnor_matmul(np.zeros((2, 0), np.uint64), np.zeros((3, 0), np.uint64), 0).tolist() == [[0] * 3] * 2


# ---------------------------------------------------------------------------------------------------------------
# binary_conv2d


def direct_conv(
    x: np.ndarray,
    w: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    fill: int | None,
) -> np.ndarray:
    """Direct loops over every output and tap; a padded tap contributes ``fill * w`` (0 when fill is None)."""
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (sh, sw), (pt, pb, pl, pr), (dh, dw) = stride, padding, dilation
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow), np.int64)
    for b_ in range(n):
        for oc in range(o):
            for oy in range(oh):
                for ox in range(ow):
                    total = 0
                    for ci in range(c):
                        for ky in range(kh):
                            for kx in range(kw):
                                iy, ix = oy * sh + ky * dh - pt, ox * sw + kx * dw - pl
                                inside = 0 <= iy < h and 0 <= ix < wd
                                v = int(x[b_, ci, iy, ix]) if inside else (fill or 0)
                                total += v * int(w[oc, ci, ky, kx])
                    out[b_, oc, oy, ox] = total
    return out


def test_binary_conv2d_hand_table() -> None:
    # Worked by hand: x and w all +1, 2x2, padding one row on top and one column on the left. Output (0, 0) sees one
    # valid tap (x[0, 0]) and three padded taps; (0, 1) and (1, 0) see two valid taps; (1, 1) sees four.
    x = np.ones((1, 1, 2, 2), np.int8)
    w = np.ones((1, 1, 2, 2), np.int8)
    pad = (1, 0, 1, 0)
    assert binary_conv2d(x, w, padding=pad).tolist() == [[[[1, 2], [2, 4]]]]  # ZERO: valid taps only
    assert binary_conv2d(x, w, padding=pad, padding_value=BinaryPadding.MINUS_ONE).tolist() == [[[[-2, 0], [0, 4]]]]
    assert binary_conv2d(x, w, padding=pad, padding_value=BinaryPadding.PLUS_ONE).tolist() == [[[[4, 4], [4, 4]]]]
    # (top, bottom, left, right) as conv2d_int: padding one row at the bottom only gives a 2x1 output.
    assert binary_conv2d(x, w, padding=(0, 1, 0, 0)).tolist() == [[[[4], [2]]]]


@settings(max_examples=60)
@given(
    st.integers(1, 2),
    st.integers(1, 3),
    st.integers(1, 3),
    st.tuples(st.integers(1, 3), st.integers(1, 3)),
    st.tuples(st.integers(1, 2), st.integers(1, 2)),
    st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
    st.tuples(st.integers(1, 2), st.integers(1, 2)),
    st.integers(0, 2**32 - 1),
)
def test_binary_conv2d_matches_direct_loops_for_each_padding_value(
    n: int,
    c: int,
    o: int,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    h = dilation[0] * (kernel[0] - 1) + 1 + int(rng.integers(0, 3))
    wd = dilation[1] * (kernel[1] - 1) + 2 + int(rng.integers(0, 3))
    x, w = pm_one(rng, (n, c, h, wd)), pm_one(rng, (o, c, *kernel))
    results = {}
    for pv, fill in ((BinaryPadding.ZERO, None), (BinaryPadding.MINUS_ONE, -1), (BinaryPadding.PLUS_ONE, 1)):
        got = binary_conv2d(x, w, stride=stride, padding=padding, dilation=dilation, padding_value=pv)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, direct_conv(x, w, stride, padding, dilation, fill))
        results[pv] = got.astype(np.int64)
    # The bit-domain correction for ZERO (larq compute-engine's zero_padding_correction): compute with +1 padding,
    # then subtract the weights that met padded taps; likewise ZERO = (PLUS_ONE + MINUS_ONE) / 2.
    padded_w = direct_conv(np.ones_like(x), w, stride, padding, dilation, 1) - direct_conv(
        np.ones_like(x), w, stride, padding, dilation, None
    )
    np.testing.assert_array_equal(results[BinaryPadding.ZERO], results[BinaryPadding.PLUS_ONE] - padded_w)
    np.testing.assert_array_equal(
        2 * results[BinaryPadding.ZERO], results[BinaryPadding.PLUS_ONE] + results[BinaryPadding.MINUS_ONE]
    )


def test_binary_conv2d_errors() -> None:
    x = np.ones((1, 1, 3, 3), np.int8)
    w = np.ones((1, 1, 2, 2), np.int8)
    assert condition(lambda: binary_conv2d(x, w, padding_value="zero")) == "invalid_option"  # type: ignore[arg-type]
    assert condition(lambda: binary_conv2d(x.astype(np.uint8), w)) == "unsupported_dtype"
    assert condition(lambda: binary_conv2d(x, w.astype(np.int16))) == "unsupported_dtype"
    assert condition(lambda: binary_conv2d(x, w, padding=(1, 1, 1))) == "invalid_padding"
    assert condition(lambda: binary_conv2d(x, w, stride=(0, 1))) == "invalid_stride"
    assert condition(lambda: binary_conv2d(x, w, dilation=(1, 0))) == "invalid_dilation"
    assert condition(lambda: binary_conv2d(x, np.ones((1, 1, 4, 4), np.int8))) == "empty_output"
    assert condition(lambda: binary_conv2d(x, np.ones((1, 2, 2, 2), np.int8))) == "shape_mismatch"
    assert condition(lambda: binary_conv2d(x[0], w)) == "shape_mismatch"
    zero_x = x.copy()
    zero_x[0, 0, 1, 1] = 0
    assert condition(lambda: binary_conv2d(zero_x, w)) == "binary_zero_not_encodable"
    assert condition(lambda: binary_conv2d(x, w * 3)) == "code_out_of_range"


# ---------------------------------------------------------------------------------------------------------------
# binary_matmul_scaled: fl32(fl32(float32(dot) * alpha[n]) * beta[m]).


def test_scaled_output_order_of_operations() -> None:
    # Worked by hand in float32: 3 * 0.3f = 0.90000004 (rounded), * 1.1f = 0.99000007; the other order,
    # 3 * fl32(0.3f * 1.1f) = 3 * 0.33000001 = 0.99000001: they differ in the last bit, so the order is part of it.
    dot = np.array([[3]], np.int32)
    out = binary_matmul_scaled(dot, np.array([0.3], np.float32), np.array([1.1], np.float32))
    assert out.view(np.uint32).tolist() == [[np.float32(0.9900000691413879).view(np.uint32)]]
    other = np.float32(3) * np.float32(np.float32(0.3) * np.float32(1.1))
    assert other.view(np.uint32) != out.view(np.uint32)[0, 0]


def test_scaled_output_table() -> None:
    # Worked by hand: per-column alpha, per-row beta, and the float32 conversion of |dot| > 2**24 (half to even).
    dot = np.array([[3, -1], [5, 0], [2**24 + 1, -(2**24 + 3)]], np.int32)
    alpha = np.array([0.5, 2.0], np.float32)
    assert bits32(binary_matmul_scaled(dot, alpha)) == bits32([[1.5, -2.0], [2.5, 0.0], [2.0**23, -(2.0**25 + 8)]])
    beta = np.array([2.0, -1.0, 1.0], np.float32)
    assert bits32(binary_matmul_scaled(dot, alpha, beta)) == bits32(
        [[3.0, -4.0], [-2.5, -0.0], [2.0**23, -(2.0**25 + 8)]]
    )
    assert binary_matmul_scaled(dot, np.float32(0.5)).dtype == np.float32
    assert binary_matmul_scaled(dot, np.float64(0.5), np.float32(2.0)).tolist()[0] == [3.0, -1.0]
    big = binary_matmul_scaled(np.array([[2**31 - 1]], np.int32), np.float32(3e38))
    assert big.tolist() == [[np.inf]]  # IEEE float32 overflow


def test_scaled_output_errors() -> None:
    dot = np.zeros((2, 3), np.int32)
    assert condition(lambda: binary_matmul_scaled(dot.astype(np.int64), np.ones(3))) == "unsupported_dtype"
    assert condition(lambda: binary_matmul_scaled(dot[0], np.ones(3))) == "shape_mismatch"
    assert condition(lambda: binary_matmul_scaled(dot, np.ones(2))) == "scale_shape_mismatch"
    assert condition(lambda: binary_matmul_scaled(dot, np.ones(3), np.ones(3))) == "scale_shape_mismatch"
    assert condition(lambda: binary_matmul_scaled(dot, np.array([1.0, np.inf, 1.0]))) == "scale_not_finite"
    assert condition(lambda: binary_matmul_scaled(dot, np.array([1e39, 1.0, 1.0]))) == "scale_not_finite"
    assert condition(lambda: binary_matmul_scaled(dot, np.ones(3, np.int32))) == "unsupported_dtype"


# ---------------------------------------------------------------------------------------------------------------
# STE windows: CLOSED |x| <= 1 (BNN), OPEN |x| < 1 (XNOR-Net code). V18: at x = +-1.0 they differ.


def test_ste_windows_hand_table() -> None:
    # Worked by hand from the two definitions.
    below = float(np.nextafter(np.float32(1), np.float32(0)))
    above = float(np.nextafter(np.float32(1), np.float32(2)))
    x = np.array([-above, -1.0, -below, -0.0, 0.0, below, 1.0, above, np.inf], np.float32)
    assert ste_mask(x).tolist() == [False, True, True, True, True, True, True, False, False]
    assert ste_mask(x, window=SteWindow.OPEN).tolist() == [False, False, True, True, True, True, False, False, False]
    g = np.full(9, 2.5, np.float32)
    assert bits32(ste_grad(x, g)) == bits32([0, 2.5, 2.5, 2.5, 2.5, 2.5, 2.5, 0, 0])
    assert bits32(ste_grad(x, g, window=SteWindow.OPEN)) == bits32([0, 0, 2.5, 2.5, 2.5, 2.5, 0, 0, 0])
    assert ste_mask(np.array([-2, -1, 0, 1, 2], np.int8)).tolist() == [False, True, True, True, False]


def test_ste_grad_outside_is_positive_zero() -> None:
    # Worked by hand: outside the window the result is +0.0 whatever grad holds (negative, NaN, inf).
    x = np.array([5.0, 5.0, 5.0, 0.5], np.float64)
    g = np.array([-3.0, np.nan, -np.inf, -1.0], np.float64)
    out = ste_grad(x, g)
    assert out.dtype == np.float64
    assert out.view(np.uint64).tolist() == [0, 0, 0, np.float64(-1.0).view(np.uint64)]
    assert ste_grad(np.float32(0.0), np.float16(2.0)).dtype == np.float16


def test_ste_errors() -> None:
    x = np.zeros(3, np.float32)
    assert condition(lambda: ste_mask(np.array([np.nan]))) == "nan_input"
    assert condition(lambda: ste_mask(x, window="closed")) == "invalid_option"  # type: ignore[arg-type]
    assert condition(lambda: ste_grad(x, np.zeros(2, np.float32))) == "shape_mismatch"
    assert condition(lambda: ste_grad(x, np.zeros(3, np.int32))) == "unsupported_dtype"


def test_doc_anchor_math_is_consistent() -> None:
    # Worked by hand: ceil(K / 64) words for the K used in the chapter.
    assert [math.ceil(k / 64) for k in (63, 64, 65, 127, 128, 129)] == [1, 1, 2, 2, 2, 3]
    assert [pack_bits(np.ones(k, np.int8)).shape[0] for k in (63, 64, 65, 127, 128, 129)] == [1, 1, 2, 2, 2, 3]
