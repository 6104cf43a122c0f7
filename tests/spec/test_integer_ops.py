"""refquant.spec.integer_ops: matmul_int, conv2d_int and the QLinear pipelines.

1. Hand tables worked from the definition (each says so).
2. Accumulator edges crafted exactly: sums of exactly INT32_MAX / INT32_MIN and one past them, for every
   ``Accumulator``, in matmul_int and conv2d_int; the saturation order (increasing k; (ky, kx, c)).
3. Hypothesis properties against independent formulations written here: per-row / per-column zero points
   equal the per-tensor result on each row / column; conv2d equals an im2col + int64 matmul; depthwise
   equals a per-channel 2-D correlation; NCHW and NHWC agree up to the transposition.
4. Every error condition, one at a time.
5. Peers (skipped when not installed): the onnx backend node tests test_matmulinteger,
   test_convinteger_*, test_qlinearmatmul_*, test_qlinearconv (exact); onnx's ReferenceEvaluator on random
   and tie-dense data (MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv); onnxruntime QLinearMatMul /
   QLinearConv on random and tie-dense data.  Where a peer computes differently (the reference evaluator adds
   the output zero point before rounding; both compute the multiplier in float32; onnxruntime requantizes in
   float32) the test pins both answers (/tmp/divergences_integer_ops.md, docs/spec/integer_ops.md section 6).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant import (
    INT8,
    UINT8,
    Accumulator,
    IntFormat,
    Layout,
    PerAxis,
    PerTensor,
    Precision,
    QuantParams,
    SpecError,
    UnpredictableError,
    conv2d_int,
    matmul_int,
    qlinear_conv,
    qlinear_matmul,
)
from refquant.spec.fixed_point import RequantRounding, requantize

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
DTYPES = (np.int8, np.uint8)


def _codes(data: st.DataObject, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    info = np.iinfo(dtype)
    flat = data.draw(
        st.lists(st.integers(int(info.min), int(info.max)), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))
    )
    return np.array(flat, dtype=np.int64).reshape(shape).astype(dtype)


def _zp(data: st.DataObject, dtype: Any, shape: tuple[int, ...] = ()) -> np.ndarray:
    """Zero points, biased towards both ends of the operand's range."""
    info = np.iinfo(dtype)
    ends = st.sampled_from([int(info.min), int(info.min) + 1, 0, int(info.max) - 1, int(info.max)])
    value = st.one_of(ends, st.integers(int(info.min), int(info.max)))
    n = int(np.prod(shape))
    return np.array(data.draw(st.lists(value, min_size=n, max_size=n)), dtype=np.int64).reshape(shape)


# --- 1. hand tables --------------------------------------------------------------------------------------------


def test_matmul_hand_table_per_tensor_per_row_per_column() -> None:
    # Worked by hand from the definition: out[m, n] = sum_k (lhs[m, k] - zl[m]) * (rhs[k, n] - zr[n]).
    lhs = np.array([[0, 255, 7], [128, 1, 2]], np.uint8)
    rhs = np.array([[-128, 127], [1, -1], [0, 5]], np.int8)
    # per tensor, zl = 1, zr = -1: lhs - 1 = [[-1, 254, 6], [127, 0, 1]], rhs + 1 = [[-127, 128], [2, 0], [1, 6]]
    # row 0: [-1*-127 + 254*2 + 6*1, -1*128 + 0 + 6*6] = [127 + 508 + 6, -128 + 36] = [641, -92]
    # row 1: [127*-127 + 0 + 1*1, 127*128 + 0 + 6] = [-16129 + 1, 16256 + 6] = [-16128, 16262]
    np.testing.assert_array_equal(
        matmul_int(lhs, rhs, lhs_zero_point=1, rhs_zero_point=-1), np.array([[641, -92], [-16128, 16262]], np.int32)
    )
    # per row zl = [0, 128], per column zr = [0, 5]: lhs - zl = [[0, 255, 7], [0, -127, -126]],
    # rhs - zr = [[-128, 122], [1, -6], [0, 0]]
    # row 0: [255, 255*-6] = [255, -1530]; row 1: [-127, -127*-6] = [-127, 762]
    out = matmul_int(lhs, rhs, lhs_zero_point=np.array([0, 128]), rhs_zero_point=np.array([0, 5]))
    np.testing.assert_array_equal(out, np.array([[255, -1530], [-127, 762]], np.int32))
    assert out.dtype == np.int32


def test_matmul_one_dimensional_operands_follow_np_matmul() -> None:
    # Worked by hand: [1, 2, 3] . [4, 5, 6] = 4 + 10 + 18 = 32; with lhs zero point 1: [0, 1, 2] . [4, 5, 6] = 17.
    v = np.array([1, 2, 3], np.int8)
    u = np.array([4, 5, 6], np.uint8)
    out = matmul_int(v, u)
    assert out.shape == ()
    assert out.dtype == np.int32
    assert int(out) == 32
    assert int(matmul_int(v, u, lhs_zero_point=1)) == 17
    mat = np.array([[1, 0], [0, 1], [1, 1]], np.uint8)  # (3, 2)
    np.testing.assert_array_equal(matmul_int(v, mat), np.array([4, 5], np.int32))  # [1 + 3, 2 + 3]
    np.testing.assert_array_equal(matmul_int(mat.T.copy(), v), np.array([4, 5], np.int32))
    # batched lhs (2, 1, 3) with a 1-D rhs: shape (2, 1)
    assert matmul_int(np.stack([v[None], v[None]]), u).shape == (2, 1)


def test_matmul_batch_broadcast_and_per_row_zero_point_with_batch() -> None:
    # Worked by hand: lhs (2, 1, 2) broadcast against rhs (3, 2, 1) gives shape (2, 3, 1, 1)... per batch pair
    # out[i, j] = lhs[i] . rhs[j].
    lhs = np.array([[[1, 2]], [[3, 4]]], np.int8)  # (2, 1, 2)
    rhs = np.array([[[1], [0]], [[0], [1]], [[1], [1]]], np.int8)[:, None]  # (3, 1, 2, 1)
    out = matmul_int(lhs, rhs)
    assert out.shape == (3, 2, 1, 1)
    np.testing.assert_array_equal(out[..., 0, 0], np.array([[1, 3], [2, 4], [3, 7]], np.int32))
    # per-row zero point of shape (2, 1, 1): batch 0 subtracts 1, batch 1 subtracts 3:
    # lhs - zl = [[0, 1]], [[0, 1]] -> every batch pair gives rhs[j][1]: [0, 1, 1]
    out = matmul_int(lhs, rhs, lhs_zero_point=np.array([[[1]], [[3]]]))
    np.testing.assert_array_equal(out[..., 0, 0], np.array([[0, 0], [1, 1], [1, 1]], np.int32))


def test_conv2d_hand_table_padding_holds_the_zero_point() -> None:
    # Worked by hand from the definition.  x - 5 = [[-5, -4, -3], [-2, -1, 0], [1, 2, 3]] for x = 0..8, zx = 5.
    # Kernel [[1, 2], [3, 4]] (w - zw with zw = 0), padding (top 1, bottom 0, left 0, right 1), so the padded
    # input (in x - zx units) is
    #   [[0, 0, 0, 0], [-5, -4, -3, 0], [-2, -1, 0, 0], [1, 2, 3, 0]]; OH = (3 + 1 - 1 - 1) // 1 + 1 = 3, OW = 3.
    # out[0, 0] = 0 + 0 + 3*-5 + 4*-4 = -31;  out[0, 1] = 3*-4 + 4*-3 = -24;  out[0, 2] = 3*-3 + 0 = -9
    # out[1, 0] = -5 + 2*-4 + 3*-2 + 4*-1 = -23;  out[1, 1] = -4 - 6 - 3 + 0 = -13;  out[1, 2] = -3 + 0 + 0 + 0 = -3
    # out[2, 0] = -2 - 2 + 3 + 8 = 7;  out[2, 1] = -1 + 0 + 6 + 12 = 17;  out[2, 2] = 0 + 0 + 9 + 0 = 9
    x = np.arange(9, dtype=np.uint8).reshape(1, 1, 3, 3)
    w = np.array([[1, 2], [3, 4]], np.int8).reshape(1, 1, 2, 2)
    expected = np.array([[-31, -24, -9], [-23, -13, -3], [7, 17, 9]], np.int32)
    out = conv2d_int(x, w, x_zero_point=5, padding=(1, 0, 0, 1))
    np.testing.assert_array_equal(out[0, 0], expected)
    out_nhwc = conv2d_int(
        x.reshape(1, 3, 3, 1), w.reshape(1, 2, 2, 1), x_zero_point=5, padding=(1, 0, 0, 1), layout=Layout.NHWC
    )
    np.testing.assert_array_equal(out_nhwc[0, :, :, 0], expected)


def test_conv2d_hand_table_stride_dilation_groups_per_channel_weight_zero_point() -> None:
    # Worked by hand.  x: 1 x 2 x 1 x 5, channel 0 = [1, 2, 3, 4, 5], channel 1 = [10, 20, 30, 40, 50], zx = 0.
    # groups 2, 2 output channels, kernel 1 x 2, dilation (1, 2), stride (1, 2):
    # OW = (5 - 2*(2 - 1) - 1) // 2 + 1 = 2, taps at columns (0, 2) and (2, 4).
    # w = [[3, 4]] for channel 0 with zw[0] = 2 -> [1, 2]; w = [[0, 1]] for channel 1 with zw[1] = -1 -> [1, 2].
    # out[0] = [1*1 + 2*3, 1*3 + 2*5] = [7, 13]; out[1] = [10 + 60, 30 + 100] = [70, 130]
    x = np.array([[1, 2, 3, 4, 5], [10, 20, 30, 40, 50]], np.int8).reshape(1, 2, 1, 5)
    w = np.array([[3, 4], [0, 1]], np.int8).reshape(2, 1, 1, 2)
    out = conv2d_int(x, w, w_zero_point=np.array([2, -1]), stride=(1, 2), dilation=(1, 2), groups=2)
    np.testing.assert_array_equal(out, np.array([[[[7, 13]], [[70, 130]]]], np.int32))


def test_conv2d_output_size_formula() -> None:
    # Worked by hand: H = 7, pads 2 + 1, kernel 3, dilation 2, stride 3: (7 + 3 - 4 - 1) // 3 + 1 = 5 // 3 + 1 = 2;
    # W = 4, pads 0 + 0, kernel 1, dilation 1, stride 2: (4 - 1) // 2 + 1 = 2.
    x = np.zeros((2, 3, 7, 4), np.uint8)
    w = np.zeros((4, 3, 3, 1), np.uint8)
    assert conv2d_int(x, w, stride=(3, 2), padding=(2, 1, 0, 0), dilation=(2, 1)).shape == (2, 4, 2, 2)


# --- 2. accumulator edges --------------------------------------------------------------------------------------


def _dot_operands(target: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 lhs and uint8 rhs codes, with lhs zero point 127 (lhs - 127 in [-255, 0]) and rhs zero point 0,
    whose dot product is exactly ``target`` (<= 0), built from products -255 * 255 and a small remainder.
    For a positive target, negate with the lhs zero point -128 instead (see _signed_dot_operands)."""
    assert target <= 0
    remaining = -target
    a_terms: list[int] = []
    b_terms: list[int] = []
    while remaining:
        a = min(255, remaining // 255) if remaining >= 255 else 1
        b = 255 if remaining >= 255 else remaining
        a_terms.append(-a)
        b_terms.append(b)
        remaining -= a * b
    lhs = (np.array(a_terms, np.int64) + 127).astype(np.int8)
    rhs = np.array(b_terms, np.int64).astype(np.uint8)
    return lhs, rhs


def _signed_dot_operands(target: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(lhs int8, rhs uint8, lhs zero point) with sum_k (lhs - zp) * rhs == target exactly."""
    lhs, rhs = _dot_operands(-abs(target))
    if target <= 0:
        return lhs, rhs, 127
    # lhs - 127 = -a  <=>  (-(lhs - 127) - 128) ... reflect: lhs' = -1 - lhs, then lhs' - (-128) = 127 - lhs = a.
    return (-1 - lhs.astype(np.int64)).astype(np.int8), rhs, -128


@pytest.mark.parametrize("target", [INT32_MAX, INT32_MAX + 1, INT32_MIN, INT32_MIN - 1, INT32_MAX + 255 * 255])
def test_matmul_accumulators_at_the_int32_bound(target: int) -> None:
    lhs, rhs, zl = _signed_dot_operands(target)
    assert len(lhs) > 33025  # K * 255 * 255 near 2**31
    exact = int(((lhs.astype(np.int64) - zl) * rhs.astype(np.int64)).sum())
    assert exact == target
    # two rows: row 0 is the crafted one, row 1 sums to 0 (lhs at its zero point)
    a = np.stack([lhs, np.full_like(lhs, zl)])
    b = rhs[:, None]
    in_range = INT32_MIN <= target <= INT32_MAX
    wrapped = (target - INT32_MIN) % 2**32 + INT32_MIN
    np.testing.assert_array_equal(
        matmul_int(a, b, lhs_zero_point=zl, accumulator=Accumulator.INT64), np.array([[target], [0]], np.int64)
    )
    np.testing.assert_array_equal(
        matmul_int(a, b, lhs_zero_point=zl, accumulator=Accumulator.INT32_WRAP), np.array([[wrapped], [0]], np.int32)
    )
    # all terms of one row have the same sign, so sequential saturation gives the clamped exact sum
    np.testing.assert_array_equal(
        matmul_int(a, b, lhs_zero_point=zl, accumulator=Accumulator.INT32_SATURATE),
        np.array([[min(max(target, INT32_MIN), INT32_MAX)], [0]], np.int32),
    )
    if in_range:
        np.testing.assert_array_equal(matmul_int(a, b, lhs_zero_point=zl), np.array([[target], [0]], np.int32))
    else:
        with pytest.raises(UnpredictableError) as info:
            matmul_int(a[::-1], b, lhs_zero_point=zl)  # the overflowing row is row 1 here
        assert info.value.condition == "accumulator_overflow"
        assert "(1, 0)" in info.value.message
        assert str(target) in info.value.message


def test_int32_accumulator_checks_only_the_final_value_and_saturation_is_sequential() -> None:
    # Worked from the definition.  lhs int8 (zero point 0) and rhs uint8 (zero point 0); in increasing k: k_pos
    # terms 127 * 255 whose running sum passes INT32_MAX, then n_neg terms -128 * 255 that bring the exact sum
    # back into int32.  INT32, INT32_WRAP and INT64 give the exact sum (only the final value is checked).
    # INT32_SATURATE clamps after every multiply-add: it sticks at INT32_MAX during the positive run, then the
    # negative terms give INT32_MAX - n_neg * 128 * 255.
    k_pos = 2**31 // (127 * 255) + 2
    positive = k_pos * 127 * 255
    n_neg = (positive - INT32_MAX) // (128 * 255) + 1
    a_codes = np.concatenate([np.full(k_pos, 127), np.full(n_neg, -128)]).astype(np.int8)
    b_codes = np.full(k_pos + n_neg, 255, np.uint8)
    exact = positive - n_neg * 128 * 255
    assert INT32_MIN <= exact <= INT32_MAX < positive
    out = {acc: int(matmul_int(a_codes, b_codes, accumulator=acc)) for acc in Accumulator}
    assert out == {
        Accumulator.INT32: exact,
        Accumulator.INT32_WRAP: exact,
        Accumulator.INT32_SATURATE: INT32_MAX - n_neg * 128 * 255,
        Accumulator.INT64: exact,
    }
    # reversed order of k: the negative terms come first and stay above INT32_MIN, nothing saturates
    rev = {acc: int(matmul_int(a_codes[::-1], b_codes[::-1], accumulator=acc)) for acc in Accumulator}
    assert set(rev.values()) == {exact}


def test_conv2d_accumulators_at_the_int32_bound_and_saturation_order() -> None:
    # Worked from the definition.  K = C * kh * kw with C = 33200 channels and a 3 x 1 kernel.  Order (ky, kx, c):
    # every channel of kernel row ky = 0, then of ky = 1, then of ky = 2.  Rows 0 and 1 carry factors 127 * 255
    # (x int8 zero point 0, w uint8 zero point 0) on all channels, together past INT32_MAX; row 2 carries
    # -128 * 255 on the first n_neg channels (enough to bring the exact sum back into int32) and 0 elsewhere.
    c = 33200
    tap0 = c * 127 * 255  # one kernel row of positive factors: just over INT32_MAX / 2
    x = np.zeros((1, c, 3, 1), np.int8)
    x[0, :, 0, 0] = 127
    x[0, :, 1, 0] = 127
    w = np.zeros((1, c, 3, 1), np.uint8)
    w[0, :, 0, 0] = 255
    w[0, :, 1, 0] = 255
    positive = 2 * tap0
    assert positive > INT32_MAX
    n_neg = (positive - INT32_MAX) // (128 * 255) + 1
    x[0, :n_neg, 2, 0] = -128
    w[0, :n_neg, 2, 0] = 255
    exact = positive - n_neg * 128 * 255
    assert INT32_MIN <= exact <= INT32_MAX
    out = {acc: int(conv2d_int(x, w, accumulator=acc)[0, 0, 0, 0]) for acc in Accumulator}
    assert out == {
        Accumulator.INT32: exact,
        Accumulator.INT32_WRAP: exact,
        Accumulator.INT32_SATURATE: INT32_MAX - n_neg * 128 * 255,  # ky = 0, 1 saturate, then ky = 2 subtracts
        Accumulator.INT64: exact,
    }
    # the same in NHWC: the order is (ky, kx, c) whatever the layout
    nhwc = {
        acc: int(
            conv2d_int(x.transpose(0, 2, 3, 1), w.transpose(0, 2, 3, 1), layout=Layout.NHWC, accumulator=acc)[
                0, 0, 0, 0
            ]
        )
        for acc in Accumulator
    }
    assert nhwc == out
    # kernel rows reversed: the negative taps come first, nothing saturates (all four give the exact sum)
    rev = {acc: int(conv2d_int(x[:, :, ::-1], w[:, :, ::-1], accumulator=acc)[0, 0, 0, 0]) for acc in Accumulator}
    assert set(rev.values()) == {exact}
    # without the negative taps the exact sum overflows: INT32 raises naming the output index, WRAP wraps
    x2 = x[:, :, :2].copy()
    w2 = w[:, :, :2].copy()
    x2b = np.concatenate([np.zeros_like(x2), x2])  # batch 1 is the overflowing one
    with pytest.raises(UnpredictableError) as info:
        conv2d_int(x2b, w2)
    assert info.value.condition == "accumulator_overflow"
    assert "(1, 0, 0, 0)" in info.value.message
    assert int(conv2d_int(x2b, w2, accumulator=Accumulator.INT32_WRAP)[1, 0, 0, 0]) == positive - 2**32
    assert int(conv2d_int(x2b, w2, accumulator=Accumulator.INT32_SATURATE)[1, 0, 0, 0]) == INT32_MAX
    assert int(conv2d_int(x2b, w2, accumulator=Accumulator.INT64)[1, 0, 0, 0]) == positive


def test_output_dtypes() -> None:
    a = np.ones((2, 3), np.int8)
    for acc in Accumulator:
        expected = np.int64 if acc is Accumulator.INT64 else np.int32
        assert matmul_int(a, a.T, accumulator=acc).dtype == expected
        assert conv2d_int(a.reshape(1, 1, 2, 3), a.reshape(1, 1, 2, 3), accumulator=acc).dtype == expected


# --- 3. properties ---------------------------------------------------------------------------------------------


@settings(max_examples=60)
@given(st.data())
def test_per_row_and_per_column_zero_points_equal_per_tensor_rows_and_columns(data: st.DataObject) -> None:
    ldt = data.draw(st.sampled_from(DTYPES))
    rdt = data.draw(st.sampled_from(DTYPES))
    batch = data.draw(st.sampled_from([(), (2,), (3, 1)]))
    m, k, n = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 6)), data.draw(st.integers(1, 5))
    lhs = _codes(data, (*batch, m, k), ldt)
    rhs = _codes(data, (k, n), rdt)
    zl = _zp(data, ldt, (m,))
    zr = _zp(data, rdt, (n,))
    acc = data.draw(st.sampled_from(list(Accumulator)))
    out = matmul_int(lhs, rhs, lhs_zero_point=zl, rhs_zero_point=zr, accumulator=acc)
    assert out.shape == (*batch, m, n)
    for i in range(m):
        for j in range(n):
            one = matmul_int(
                lhs[..., i : i + 1, :], rhs[:, j : j + 1], lhs_zero_point=zl[i], rhs_zero_point=zr[j], accumulator=acc
            )
            np.testing.assert_array_equal(out[..., i : i + 1, j : j + 1], one)
    # the (..., M, 1) form of the per-row zero point is the same as (M,)
    np.testing.assert_array_equal(
        out, matmul_int(lhs, rhs, lhs_zero_point=zl[:, None], rhs_zero_point=zr, accumulator=acc)
    )
    # and everything equals the plain int64 formula
    exact = (lhs.astype(np.int64) - zl[:, None]) @ (rhs.astype(np.int64) - zr)
    np.testing.assert_array_equal(out, exact)


def _im2col_conv(
    x: np.ndarray,
    w: np.ndarray,
    zx: int,
    zw: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int],
    groups: int,
) -> np.ndarray:
    """An independent NCHW conv: explicit im2col columns (index arithmetic, bounds checks) and an int64 matmul."""
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    sh, sw = stride
    pt, pb, pl, pr = padding
    dh, dw = dilation
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    out = np.zeros((n, o, oh, ow), np.int64)
    wz = w.astype(np.int64) - np.broadcast_to(zw, (o,))[:, None, None, None]
    for g in range(groups):
        cols = np.zeros((n, oh * ow, cg * kh * kw), np.int64)
        for oy in range(oh):
            for ox in range(ow):
                col = 0
                for ci in range(cg):
                    for ky in range(kh):
                        for kx in range(kw):
                            iy = oy * sh - pt + ky * dh
                            ix = ox * sw - pl + kx * dw
                            if 0 <= iy < h and 0 <= ix < wd:
                                cols[:, oy * ow + ox, col] = x[:, g * cg + ci, iy, ix].astype(np.int64) - zx
                            col += 1
        wmat = wz[g * og : (g + 1) * og].reshape(og, cg * kh * kw)  # rows in (c, ky, kx) order, as the columns
        out[:, g * og : (g + 1) * og] = (cols @ wmat.T).transpose(0, 2, 1).reshape(n, og, oh, ow)
    return out


@st.composite
def conv_cases(draw: st.DrawFn) -> dict[str, Any]:
    data = draw(st.data())
    groups = draw(st.integers(1, 3))
    cg = draw(st.integers(1, 3))
    og = draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pads = tuple(draw(st.integers(0, 3)) for _ in range(4))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - pads[0] - pads[1]), 7))
    wd = draw(st.integers(max(1, dw * (kw - 1) + 1 - pads[2] - pads[3]), 7))
    xdt, wdt = draw(st.sampled_from(DTYPES)), draw(st.sampled_from(DTYPES))
    o = groups * og
    x = _codes(data, (draw(st.integers(1, 2)), groups * cg, h, wd), xdt)
    w = _codes(data, (o, cg, kh, kw), wdt)
    per_channel = draw(st.booleans())
    return {
        "x": x,
        "w": w,
        "zx": int(_zp(data, xdt)),
        "zw": _zp(data, wdt, (o,)) if per_channel else _zp(data, wdt),
        "stride": (sh, sw),
        "padding": pads,
        "dilation": (dh, dw),
        "groups": groups,
    }


@settings(max_examples=80)
@given(conv_cases(), st.sampled_from(list(Accumulator)))
def test_conv2d_equals_im2col_matmul_and_nhwc_is_the_transposition(case: dict[str, Any], acc: Accumulator) -> None:
    kwargs = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])
    out = conv2d_int(case["x"], case["w"], x_zero_point=case["zx"], w_zero_point=case["zw"], accumulator=acc, **kwargs)
    expected = _im2col_conv(case["x"], case["w"], case["zx"], case["zw"], **kwargs)
    np.testing.assert_array_equal(out, expected)  # no overflow possible at these sizes: all accumulators agree
    nhwc = conv2d_int(
        case["x"].transpose(0, 2, 3, 1),
        case["w"].transpose(0, 2, 3, 1),
        x_zero_point=case["zx"],
        w_zero_point=case["zw"],
        layout=Layout.NHWC,
        accumulator=acc,
        **kwargs,
    )
    np.testing.assert_array_equal(nhwc, out.transpose(0, 2, 3, 1))
    assert out.dtype == nhwc.dtype == (np.int64 if acc is Accumulator.INT64 else np.int32)


def _correlate2d(img: np.ndarray, ker: np.ndarray) -> np.ndarray:
    """Valid 2-D cross-correlation of one channel, by windows."""
    kh, kw = ker.shape
    oh, ow = img.shape[0] - kh + 1, img.shape[1] - kw + 1
    return np.array([[int((img[i : i + kh, j : j + kw] * ker).sum()) for j in range(ow)] for i in range(oh)], np.int64)


@settings(max_examples=40)
@given(st.data())
def test_depthwise_equals_per_channel_correlation(data: st.DataObject) -> None:
    c, mult = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    kh, kw = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3))
    h, wd = data.draw(st.integers(kh, 6)), data.draw(st.integers(kw, 6))
    xdt, wdt = data.draw(st.sampled_from(DTYPES)), data.draw(st.sampled_from(DTYPES))
    x = _codes(data, (1, c, h, wd), xdt)
    w = _codes(data, (c * mult, 1, kh, kw), wdt)
    zx = int(_zp(data, xdt))
    zw = _zp(data, wdt, (c * mult,))
    out = conv2d_int(x, w, x_zero_point=zx, w_zero_point=zw, groups=c)
    for o in range(c * mult):
        expected = _correlate2d(x[0, o // mult].astype(np.int64) - zx, w[o, 0].astype(np.int64) - zw[o])
        np.testing.assert_array_equal(out[0, o], expected)


# --- 4. errors -------------------------------------------------------------------------------------------------


def _raises(condition: str, fn: Any, *args: Any, **kwargs: Any) -> SpecError:
    with pytest.raises(SpecError) as info:
        fn(*args, **kwargs)
    assert info.value.condition == condition, info.value
    return info.value


def test_matmul_errors() -> None:
    a8 = np.zeros((2, 3), np.int8)
    b8 = np.zeros((3, 4), np.uint8)
    _raises("unsupported_dtype", matmul_int, a8.astype(np.int16), b8)
    _raises("unsupported_dtype", matmul_int, a8, b8.astype(np.int32))
    _raises("unsupported_dtype", matmul_int, [[1, 2]], b8)  # a list becomes int64
    _raises("shape_mismatch", matmul_int, np.int8(1), b8)
    _raises("shape_mismatch", matmul_int, a8, np.zeros((4, 3), np.uint8))
    _raises("shape_mismatch", matmul_int, np.zeros((2, 2, 3), np.int8), np.zeros((3, 3, 4), np.int8))
    _raises("zero_point_out_of_range", matmul_int, a8, b8, lhs_zero_point=128)
    _raises("zero_point_out_of_range", matmul_int, a8, b8, lhs_zero_point=-129)
    _raises("zero_point_out_of_range", matmul_int, a8, b8, rhs_zero_point=-1)
    _raises("zero_point_out_of_range", matmul_int, a8, b8, rhs_zero_point=np.array([0, 0, 256, 0]))
    _raises("zero_point_not_integer", matmul_int, a8, b8, lhs_zero_point=0.5)
    _raises("zero_point_not_integer", matmul_int, a8, b8, lhs_zero_point=np.nan)
    _raises("zero_point_not_integer", matmul_int, a8, b8, rhs_zero_point=True)
    _raises("zero_point_shape_mismatch", matmul_int, a8, b8, lhs_zero_point=np.zeros(3, np.int64))
    _raises("zero_point_shape_mismatch", matmul_int, a8, b8, lhs_zero_point=np.zeros((2, 2), np.int64))
    _raises("zero_point_shape_mismatch", matmul_int, a8, b8, lhs_zero_point=np.zeros((3, 2, 1), np.int64))
    _raises("zero_point_shape_mismatch", matmul_int, a8, b8, rhs_zero_point=np.zeros(3, np.int64))
    _raises("zero_point_shape_mismatch", matmul_int, a8, b8, rhs_zero_point=np.zeros((1, 4), np.int64))
    _raises("invalid_option", matmul_int, a8, b8, accumulator="int32")
    # accepted: integral floats and 1-element 1-D zero points (per tensor)
    np.testing.assert_array_equal(
        matmul_int(a8, b8, lhs_zero_point=2.0, rhs_zero_point=np.array([3])),
        matmul_int(a8, b8, lhs_zero_point=2, rhs_zero_point=3),
    )


def test_conv2d_errors() -> None:
    x = np.zeros((1, 4, 5, 5), np.uint8)
    w = np.zeros((2, 4, 3, 3), np.int8)
    _raises("invalid_option", conv2d_int, x, w, layout="nchw")
    _raises("invalid_option", conv2d_int, x, w, accumulator=Accumulator.INT32.value)
    _raises("unsupported_dtype", conv2d_int, x.astype(np.int16), w)
    _raises("unsupported_dtype", conv2d_int, x, w.astype(np.float32))
    _raises("shape_mismatch", conv2d_int, x[0], w)
    _raises("shape_mismatch", conv2d_int, x, w[0])
    _raises("invalid_stride", conv2d_int, x, w, stride=(0, 1))
    _raises("invalid_stride", conv2d_int, x, w, stride=(1,))
    _raises("invalid_stride", conv2d_int, x, w, stride=(1.0, 1))
    _raises("invalid_stride", conv2d_int, x, w, stride=1)
    _raises("invalid_dilation", conv2d_int, x, w, dilation=(1, 0))
    _raises("invalid_dilation", conv2d_int, x, w, dilation=(True, 1))
    _raises("invalid_padding", conv2d_int, x, w, padding=(0, 0, -1, 0))
    _raises("invalid_padding", conv2d_int, x, w, padding=(1, 1))
    _raises("invalid_groups", conv2d_int, x, w, groups=0)
    _raises("invalid_groups", conv2d_int, x, w, groups=3)  # divides neither 4 nor 2... 3 does not divide 4
    _raises("invalid_groups", conv2d_int, x, np.zeros((3, 1, 3, 3), np.int8), groups=4)  # 4 does not divide O = 3
    _raises("invalid_groups", conv2d_int, x, w, groups=2.0)
    _raises("shape_mismatch", conv2d_int, x, np.zeros((2, 3, 3, 3), np.int8))  # 3 in-channels for C = 4
    _raises("shape_mismatch", conv2d_int, x, w, groups=2)  # w has 4 in-channels, groups of 2 need 2
    _raises("shape_mismatch", conv2d_int, x, np.zeros((2, 4, 0, 3), np.int8))
    _raises("zero_point_shape_mismatch", conv2d_int, x, w, x_zero_point=np.zeros(4, np.int64))
    _raises("zero_point_shape_mismatch", conv2d_int, x, w, w_zero_point=np.zeros(3, np.int64))
    _raises("zero_point_out_of_range", conv2d_int, x, w, x_zero_point=-1)
    _raises("zero_point_out_of_range", conv2d_int, x, w, w_zero_point=np.array([0, 128]))
    _raises("zero_point_not_integer", conv2d_int, x, w, w_zero_point=1.5)
    _raises("empty_output", conv2d_int, x[:, :, :2], w)  # kernel 3 on height 2
    _raises("empty_output", conv2d_int, x, w, dilation=(3, 1))  # effective kernel 7 on height 5
    # padding rescues the same kernel: (2 + 1 + 0 - 2 - 1) // 1 + 1 = 1
    assert conv2d_int(x[:, :, :2], w, padding=(1, 0, 0, 0)).shape == (1, 2, 1, 3)
    # NHWC checks its own shapes: w OHWI with 4 in-channels
    _raises("shape_mismatch", conv2d_int, x.transpose(0, 2, 3, 1), w, layout=Layout.NHWC)
    assert conv2d_int(x.transpose(0, 2, 3, 1), w.transpose(0, 2, 3, 1), layout=Layout.NHWC).shape == (1, 3, 3, 2)


# --- 5. peers --------------------------------------------------------------------------------------------------


@functools.cache
def _node_cases() -> dict[str, Any]:
    pytest.importorskip("onnx")
    from onnx.backend.test.loader import load_model_tests

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some unrelated generators divide by zero on purpose
        cases = load_model_tests(kind="node")
    wanted = ("test_matmulinteger", "test_convinteger", "test_qlinearmatmul", "test_qlinearconv")
    return {c.name: c for c in cases if c.name.startswith(wanted)}


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _conv_kwargs(attrs: dict[str, Any]) -> dict[str, Any]:
    """ONNX Conv attributes (pads = [top, left, bottom, right]) as conv2d_int options."""
    assert attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    return {
        "stride": tuple(attrs.get("strides", [1, 1])),
        "padding": (pads[0], pads[2], pads[1], pads[3]),
        "dilation": tuple(attrs.get("dilations", [1, 1])),
        "groups": int(attrs.get("group", 1)),
    }


def test_onnx_node_test_matmulinteger() -> None:
    case = _node_cases()["test_matmulinteger"]
    ((inputs, outputs),) = case.data_sets
    a, b, za, zb = (np.asarray(v) for v in inputs)
    out = matmul_int(a, b, lhs_zero_point=za, rhs_zero_point=zb)
    assert out.dtype == outputs[0].dtype
    np.testing.assert_array_equal(out, outputs[0])


@pytest.mark.parametrize("name", ["test_convinteger_with_padding", "test_convinteger_without_padding"])
def test_onnx_node_tests_convinteger(name: str) -> None:
    case = _node_cases()[name]
    ((inputs, outputs),) = case.data_sets
    node = case.model.graph.node[0]
    x, w, *zps = (np.asarray(v) for v in inputs)
    zx = zps[0] if len(zps) > 0 else 0
    zw = zps[1] if len(zps) > 1 else 0
    out = conv2d_int(x, w, x_zero_point=zx, w_zero_point=zw, **_conv_kwargs(_attrs(node)))
    assert out.dtype == outputs[0].dtype
    np.testing.assert_array_equal(out, outputs[0])


def _run_reference(op: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any] | None = None) -> np.ndarray:
    onnx = pytest.importorskip("onnx")
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    node = helper.make_node(op, list(inputs), ["y"], **(attrs or {}))
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for k, v in inputs.items()
        ],
        [helper.make_tensor_value_info("y", onnx.TensorProto.UNDEFINED, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    return np.asarray(ReferenceEvaluator(model).run(None, inputs)[0])


@settings(max_examples=40)
@given(st.data())
def test_matmulinteger_against_onnx_reference_evaluator(data: st.DataObject) -> None:
    ldt, rdt = data.draw(st.sampled_from(DTYPES)), data.draw(st.sampled_from(DTYPES))
    m, k, n = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 8)), data.draw(st.integers(1, 5))
    batch = data.draw(st.sampled_from([(), (2,), (2, 3)]))
    a = _codes(data, (*batch, m, k), ldt)
    b = _codes(data, (k, n), rdt)
    per_row, per_col = data.draw(st.booleans()), data.draw(st.booleans())
    za = _zp(data, ldt, (*batch, m, 1) if per_row else ()).astype(ldt)
    zb = _zp(data, rdt, (n,) if per_col else ()).astype(rdt)
    expected = _run_reference("MatMulInteger", {"a": a, "b": b, "a_zero_point": za, "b_zero_point": zb})
    out = matmul_int(a, b, lhs_zero_point=za, rhs_zero_point=zb)
    assert out.dtype == expected.dtype == np.int32
    np.testing.assert_array_equal(out, expected)


@settings(max_examples=40)
@given(conv_cases())
def test_convinteger_against_onnx_reference_evaluator(case: dict[str, Any]) -> None:
    kwargs = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])
    x, w = case["x"], case["w"]
    pt, pb, pl, pr = case["padding"]
    attrs = {
        "strides": list(case["stride"]),
        "pads": [pt, pl, pb, pr],
        "dilations": list(case["dilation"]),
        "group": case["groups"],
        "kernel_shape": list(w.shape[2:]),
    }
    inputs = {
        "x": x,
        "w": w,
        "x_zero_point": np.array(case["zx"]).astype(x.dtype),
        "w_zero_point": np.asarray(case["zw"]).astype(w.dtype),
    }
    expected = _run_reference("ConvInteger", inputs, attrs)
    out = conv2d_int(x, w, x_zero_point=case["zx"], w_zero_point=case["zw"], **kwargs)
    np.testing.assert_array_equal(out, expected)


# --- 6. QLinear pipelines --------------------------------------------------------------------------------------


def _params(scale: Any, zero_point: Any, dtype: Any, granularity: Any = None) -> QuantParams:
    fmt = INT8 if np.dtype(dtype) == np.int8 else UINT8
    return QuantParams(scale, zero_point, fmt, granularity or PerTensor())


def test_qlinear_matmul_hand_table_every_rounding() -> None:
    # Worked by hand from the definitions (docs/spec/fixed_point.md for DOUBLE / SINGLE).  acc = 2 * b =
    # [-10, -6, -2, 2, 6, 10]; M = 0.5 * 0.5 / 1 = 0.25, so acc * M = [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]: all ties.
    # FLOAT32 / FLOAT64 (half to even): [-2, -2, 0, 0, 2, 2]
    # DOUBLE: quantize_multiplier(0.25) = (2**30, -1); SRDHM = floor((acc + 1) / 2) = [-5, -3, -1, 1, 3, 5],
    #   then rounding_divide_by_pot(., 1), ties away from zero: [-3, -2, -1, 1, 2, 3]
    # SINGLE: (acc * 2**30 + 2**31) >> 32 = floor((acc + 2) / 4) = [-2, -1, 0, 1, 2, 3] (ties toward +inf)
    # plus the output zero point 3 (after rounding).
    a = np.array([[2]], np.int8)
    b = np.array([[-5, -3, -1, 1, 3, 5]], np.int8)
    expected = {
        RequantRounding.FLOAT64: [1, 1, 3, 3, 5, 5],
        RequantRounding.FLOAT32: [1, 1, 3, 3, 5, 5],
        RequantRounding.DOUBLE: [0, 1, 2, 4, 5, 6],
        RequantRounding.SINGLE: [1, 2, 3, 4, 5, 6],
    }
    for rounding, row in expected.items():
        out = qlinear_matmul(
            a,
            b,
            a_params=_params(0.5, 0, np.int8),
            b_params=_params(0.5, 0, np.int8),
            y_params=_params(1.0, 3, np.int8),
            rounding=rounding,
        )
        np.testing.assert_array_equal(out, np.array([row], np.int8), err_msg=rounding.name)
    # the default is FLOAT64
    out = qlinear_matmul(
        a, b, a_params=_params(0.5, 0, np.int8), b_params=_params(0.5, 0, np.int8), y_params=_params(1.0, 3, np.int8)
    )
    np.testing.assert_array_equal(out, np.array([expected[RequantRounding.FLOAT64]], np.int8))


def test_qlinear_matmul_hand_table_per_row_and_per_column() -> None:
    # Worked by hand: a - za = [[4], [2]] (uint8 codes [14, 12], per-row zero points [10, 10], per-row scales
    # [1, 0.5]); b - zb = [[3, -3]] (int8 codes [2, -4], per-column zero points [-1, -1], scales [0.25, 1]);
    # acc = [[12, -12], [6, -6]]; M[m, n] = sa[m] * sb[n] / 2 = [[0.125, 0.5], [0.0625, 0.25]];
    # acc * M = [[1.5, -6], [0.375, -1.5]] -> half to even [[2, -6], [0, -2]]; + y zero point 100, uint8.
    a = np.array([[14], [12]], np.uint8)
    b = np.array([[2, -4]], np.int8)
    out = qlinear_matmul(
        a,
        b,
        a_params=_params([1.0, 0.5], [10, 10], np.uint8, PerAxis(-2)),
        b_params=_params([0.25, 1.0], [-1, -1], np.int8, PerAxis(-1)),
        y_params=_params(2.0, 100, np.uint8),
    )
    np.testing.assert_array_equal(out, np.array([[102, 94], [100, 98]], np.uint8))


def test_qlinear_conv_hand_table_bias_per_channel_activation() -> None:
    # Worked by hand.  x (NCHW 1 x 1 x 1 x 3) codes [7, 9, 11], zero point 5 -> [2, 4, 6]; two 1 x 1 output channels
    # with w codes [2, -1], w zero points 0, w scales [0.25, 0.5]; bias [2, -1]; x scale 0.5, y scale 0.5, zp 0.
    # acc: channel 0: 2 * [2, 4, 6] + 2 = [6, 10, 14]; channel 1: -[2, 4, 6] - 1 = [-3, -5, -7]
    # M = 0.5 * [0.25, 0.5] / 0.5 = [0.25, 0.5]: channel 0 [1.5, 2.5, 3.5] -> [2, 2, 4]; channel 1 [-1.5, -2.5, -3.5]
    # -> [-2, -2, -4].  With activation_min = 0 (a fused ReLU), channel 1 becomes [0, 0, 0].
    x = np.array([7, 9, 11], np.uint8).reshape(1, 1, 1, 3)
    w = np.array([2, -1], np.int8).reshape(2, 1, 1, 1)
    kwargs: dict[str, Any] = {
        "x_params": _params(0.5, 5, np.uint8),
        "w_params": _params([0.25, 0.5], [0, 0], np.int8, PerAxis(0)),
        "y_params": _params(0.5, 0, np.int8),
        "bias": np.array([2, -1], np.int32),
    }
    out = qlinear_conv(x, w, **kwargs)
    np.testing.assert_array_equal(out, np.array([[[[2, 2, 4]], [[-2, -2, -4]]]], np.int8))
    np.testing.assert_array_equal(
        qlinear_conv(x, w, activation_min=0, **kwargs), np.array([[[[2, 2, 4]], [[0, 0, 0]]]], np.int8)
    )
    # NHWC with OHWI weights: the same numbers, transposed
    nhwc = qlinear_conv(x.transpose(0, 2, 3, 1), w.transpose(0, 2, 3, 1), layout=Layout.NHWC, **kwargs)
    np.testing.assert_array_equal(nhwc, out.transpose(0, 2, 3, 1))


def test_multiplier_precision_float32_is_what_onnx_and_onnxruntime_compute() -> None:
    # Found by search with onnx's ReferenceEvaluator and onnxruntime 1.32 (the probe is recorded in
    # /tmp/divergences_integer_ops.md): acc = 3232, scales a = 0.012335569597780704, b = 0.054970622062683105,
    # y = 0.009508023969829082 (float32 values).  acc * M lies so close to 230.5 that the float32 multiplier
    # f32(f32(a * b) / y) and the float64 one round to different sides.
    sa, sb, sy = (np.float32(v) for v in (0.012335569597780704, 0.054970622062683105, 0.009508023969829082))
    m64 = float(np.float64(sa) * np.float64(sb) / np.float64(sy))
    m32 = float(np.float32(np.float32(sa * sb) / sy))
    assert 3232 * m64 > 230.5 > 3232 * m32
    a = np.ones((1, 3232), np.uint8)
    b = np.ones((3232, 1), np.uint8)
    kwargs: dict[str, Any] = {
        "a_params": _params(sa, 0, np.uint8),
        "b_params": _params(sb, 0, np.uint8),
        "y_params": _params(sy, 0, np.uint8),
    }
    assert int(qlinear_matmul(a, b, **kwargs)[0, 0]) == 231
    assert int(qlinear_matmul(a, b, multiplier_precision=Precision.FLOAT32, **kwargs)[0, 0]) == 230
    assert (
        int(
            qlinear_matmul(a, b, multiplier_precision=Precision.FLOAT32, rounding=RequantRounding.FLOAT32, **kwargs)[
                0, 0
            ]
        )
        == 230
    )
    onnx_inputs = {
        "a": a,
        "a_scale": np.array(sa),
        "a_zero_point": np.array(0, np.uint8),
        "b": b,
        "b_scale": np.array(sb),
        "b_zero_point": np.array(0, np.uint8),
        "y_scale": np.array(sy),
        "y_zero_point": np.array(0, np.uint8),
    }
    assert int(_run_reference("QLinearMatMul", onnx_inputs)[0, 0]) == 230
    ort_out = _run_ort("QLinearMatMul", onnx_inputs)
    if ort_out is not None:
        assert int(ort_out[0, 0]) == 230


def test_float32_requantization_loses_accumulator_bits_above_2_to_the_24() -> None:
    # spec-anchors V27: acc = 2**24 + 1 and M = 2**-25, exact value 0.50000003.  f32(acc) = 2**24, times 2**-25 =
    # 0.5, half to even -> 0; FLOAT64 -> 1; DOUBLE / SINGLE -> 1 (quantize_multiplier(2**-25) = (2**30, -24)).
    target = 2**24 + 1
    a_terms, b_terms = [], []
    remaining = target
    while remaining:  # uint8 factors: 255 * 255 blocks and a small remainder
        f = 255 if remaining >= 255 * 255 else max(1, remaining // 255)
        g = 255 if remaining >= 255 else remaining
        if f * g > remaining:
            f, g = 1, remaining
        a_terms.append(f)
        b_terms.append(g)
        remaining -= f * g
    a = np.array([a_terms], np.uint8)
    b = np.array(b_terms, np.uint8).reshape(-1, 1)
    assert int(matmul_int(a, b)[0, 0]) == target
    kwargs: dict[str, Any] = {
        "a_params": _params(2.0**-12, 0, np.uint8),
        "b_params": _params(2.0**-13, 0, np.uint8),
        "y_params": _params(1.0, 0, np.uint8),
    }
    got = {r: int(qlinear_matmul(a, b, rounding=r, **kwargs)[0, 0]) for r in RequantRounding}
    assert got == {
        RequantRounding.FLOAT32: 0,
        RequantRounding.FLOAT64: 1,
        RequantRounding.DOUBLE: 1,
        RequantRounding.SINGLE: 1,
    }
    onnx_inputs = {
        "a": a,
        "a_scale": np.array(np.float32(2.0**-12)),
        "a_zero_point": np.array(0, np.uint8),
        "b": b,
        "b_scale": np.array(np.float32(2.0**-13)),
        "b_zero_point": np.array(0, np.uint8),
        "y_scale": np.array(np.float32(1.0)),
        "y_zero_point": np.array(0, np.uint8),
    }
    assert int(_run_reference("QLinearMatMul", onnx_inputs)[0, 0]) == 1
    ort_out = _run_ort("QLinearMatMul", onnx_inputs)
    if ort_out is not None:
        assert int(ort_out[0, 0]) == 0


@settings(max_examples=40)
@given(st.data())
def test_qlinear_matmul_per_row_per_column_equals_per_tensor_on_each_row_and_column(data: st.DataObject) -> None:
    adt, bdt = data.draw(st.sampled_from(DTYPES)), data.draw(st.sampled_from(DTYPES))
    m, k, n = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 6)), data.draw(st.integers(1, 4))
    a = _codes(data, (2, m, k), adt)
    b = _codes(data, (k, n), bdt)
    scales = st.floats(2.0**-10, 2.0, allow_subnormal=False).map(np.float32)
    sa = np.array(data.draw(st.lists(scales, min_size=m, max_size=m)), np.float32)
    sb = np.array(data.draw(st.lists(scales, min_size=n, max_size=n)), np.float32)
    za, zb = _zp(data, adt, (m,)), _zp(data, bdt, (n,))
    ydt = data.draw(st.sampled_from(DTYPES))
    yp = _params(data.draw(scales), int(_zp(data, ydt)), ydt)
    rounding = data.draw(st.sampled_from(list(RequantRounding)))
    precision = data.draw(st.sampled_from(list(Precision)))
    out = qlinear_matmul(
        a,
        b,
        a_params=_params(sa, za, adt, PerAxis(-2)),
        b_params=_params(sb, zb, bdt, PerAxis(-1)),
        y_params=yp,
        rounding=rounding,
        multiplier_precision=precision,
    )
    for i in range(m):
        for j in range(n):
            one = qlinear_matmul(
                a[:, i : i + 1],
                b[:, j : j + 1],
                a_params=_params(sa[i], za[i], adt),
                b_params=_params(sb[j], zb[j], bdt),
                y_params=yp,
                rounding=rounding,
                multiplier_precision=precision,
            )
            np.testing.assert_array_equal(out[:, i : i + 1, j : j + 1], one)


def test_qlinear_conv_bias_overflow_and_errors() -> None:
    x = np.full((1, 1, 1, 1), 127, np.int8)
    w = np.full((1, 1, 1, 1), 127, np.int8)
    p = _params(1.0, 0, np.int8)
    big = np.array([INT32_MAX - 127 * 127 + 1], np.int32)
    with pytest.raises(UnpredictableError) as info:
        qlinear_conv(x, w, x_params=p, w_params=p, y_params=p, bias=big)
    assert info.value.condition == "accumulator_overflow"
    assert "(0, 0, 0, 0)" in info.value.message
    assert int(qlinear_conv(x, w, x_params=p, w_params=p, y_params=p, bias=big - 1)[0, 0, 0, 0]) == 127
    _raises("unsupported_dtype", qlinear_conv, x, w, x_params=p, w_params=p, y_params=p, bias=np.array([1]))
    _raises("shape_mismatch", qlinear_conv, x, w, x_params=p, w_params=p, y_params=p, bias=np.array([1, 2], np.int32))
    _raises("invalid_format", qlinear_conv, x, w, x_params=_params(1.0, 0, np.uint8), w_params=p, y_params=p)
    _raises(
        "invalid_format",
        qlinear_conv,
        x,
        w,
        x_params=p,
        w_params=QuantParams(1.0, 0, IntFormat(8, True, narrow_range=True)),
        y_params=p,
    )
    _raises(
        "scale_shape_mismatch",
        qlinear_conv,
        x,
        w,
        x_params=_params([1.0], [0], np.int8, PerAxis(1)),
        w_params=p,
        y_params=p,
    )
    _raises(
        "scale_shape_mismatch",
        qlinear_conv,
        x,
        w,
        x_params=p,
        w_params=_params([1.0], [0], np.int8, PerAxis(1)),
        y_params=p,
    )
    _raises(
        "scale_shape_mismatch",
        qlinear_conv,
        x,
        w,
        x_params=p,
        w_params=_params([1.0, 1.0], [0, 0], np.int8, PerAxis(0)),
        y_params=p,
    )
    _raises(
        "scale_shape_mismatch",
        qlinear_conv,
        x,
        w,
        x_params=p,
        w_params=p,
        y_params=_params([1.0], [0], np.int8, PerAxis(0)),
    )
    _raises("invalid_option", qlinear_conv, x, w, x_params=p, w_params=p, y_params=(1.0, 0))
    _raises("invalid_option", qlinear_conv, x, w, x_params=p, w_params=p, y_params=p, rounding="float64")
    _raises("invalid_option", qlinear_conv, x, w, x_params=p, w_params=p, y_params=p, multiplier_precision="float32")
    _raises("invalid_option", qlinear_conv, x, w, x_params=p, w_params=p, y_params=p, layout="nhwc")
    _raises("activation_out_of_range", qlinear_conv, x, w, x_params=p, w_params=p, y_params=p, activation_min=-200)
    # y in another integer format: int16 codes
    y16 = QuantParams(1.0, 0, IntFormat(16, True))
    assert qlinear_conv(x, w, x_params=p, w_params=p, y_params=y16).dtype == np.int16


def test_qlinear_matmul_accumulator_option_hand_table() -> None:
    # Worked by hand from the definition: a (1 x 33026) and b (33026 x 1) uint8, every code 255, zero points 0:
    # the exact sum is 33026 * 65025 = 2147515650 = 2**31 + 32002, past int32.  Scales 2**-12, 2**-13, 1:
    # M = 2**-25.  INT32_WRAP: 2147515650 - 2**32 = -2147451646, times M = -63.999046 -> -64 (every rounding);
    # INT32_SATURATE: 2**31 - 1, times M = 63.99999997 -> 64; INT64: 2147515650 (float32: 2**31 + 32000),
    # times M = 64.00095 -> 64 under FLOAT32 / FLOAT64, while DOUBLE / SINGLE take only an int32 accumulator:
    # SpecError("operand_out_of_range"); INT32: UnpredictableError("accumulator_overflow") at index (0, 0).
    k = 33026
    a = np.full((1, k), 255, np.uint8)
    b = np.full((k, 1), 255, np.uint8)
    kwargs: dict[str, Any] = {
        "a_params": _params(2.0**-12, 0, np.uint8),
        "b_params": _params(2.0**-13, 0, np.uint8),
        "y_params": _params(1.0, 0, np.int8),
    }
    expected = {Accumulator.INT32_WRAP: -64, Accumulator.INT32_SATURATE: 64, Accumulator.INT64: 64}
    for rounding in RequantRounding:
        for accumulator, code in expected.items():
            if accumulator is Accumulator.INT64 and rounding in (RequantRounding.DOUBLE, RequantRounding.SINGLE):
                err = _raises(
                    "operand_out_of_range", qlinear_matmul, a, b, rounding=rounding, accumulator=accumulator, **kwargs
                )
                assert "2147515650" in err.message
                continue
            out = qlinear_matmul(a, b, rounding=rounding, accumulator=accumulator, **kwargs)
            np.testing.assert_array_equal(
                out, np.array([[code]], np.int8), err_msg=f"{rounding.name} {accumulator.name}"
            )
        with pytest.raises(UnpredictableError) as info:
            qlinear_matmul(a, b, rounding=rounding, **kwargs)  # the default is INT32
        assert info.value.condition == "accumulator_overflow"
        assert "(0, 0)" in info.value.message
        with pytest.raises(UnpredictableError):
            qlinear_matmul(a, b, rounding=rounding, accumulator=Accumulator.INT32, **kwargs)
    # One code less (K = 33025): 2147450625 lies in int32, every accumulator gives it (x 2**-25 = 63.998 -> 64).
    for accumulator in Accumulator:
        assert qlinear_matmul(a[:, 1:], b[1:], accumulator=accumulator, **kwargs).tolist() == [[64]]
    _raises("invalid_option", qlinear_matmul, a, b, accumulator="int32_wrap", **kwargs)


def test_qlinear_conv_bias_under_every_accumulator_hand_table() -> None:
    # Worked by hand from the definition: x = w = 127 (int8, zero points 0, 1 x 1): acc = 16129; bias = 2**31 - 1,
    # so acc + bias = 2147499776 = 2**31 + 16128.  Scales 1, 1, 256 (M = 2**-8, exact), y in INT32, zero point 0.
    # INT32_WRAP: 2147499776 - 2**32 = -2147467520, / 256 = -8388545 (exact); INT32_SATURATE: clamp to 2**31 - 1,
    # / 256 = 8388607.996 -> 8388608; INT64: 2147499776 / 256 = 8388671 (exact) under FLOAT32 / FLOAT64 (float32
    # holds 2**31 + 16128 = 2**31 + 63 * 256 exactly), SpecError("operand_out_of_range") under DOUBLE / SINGLE;
    # INT32: UnpredictableError("accumulator_overflow"), the message of the default.
    x = np.full((1, 1, 1, 1), 127, np.int8)
    w = np.full((1, 1, 1, 1), 127, np.int8)
    p = _params(1.0, 0, np.int8)
    kwargs: dict[str, Any] = {
        "x_params": p,
        "w_params": p,
        "y_params": QuantParams(256.0, 0, IntFormat(32, True)),
        "bias": np.array([INT32_MAX], np.int32),
    }
    expected = {Accumulator.INT32_WRAP: -8388545, Accumulator.INT32_SATURATE: 8388608, Accumulator.INT64: 8388671}
    for rounding in RequantRounding:
        for accumulator, code in expected.items():
            if accumulator is Accumulator.INT64 and rounding in (RequantRounding.DOUBLE, RequantRounding.SINGLE):
                _raises(
                    "operand_out_of_range", qlinear_conv, x, w, rounding=rounding, accumulator=accumulator, **kwargs
                )
                continue
            out = qlinear_conv(x, w, rounding=rounding, accumulator=accumulator, **kwargs)
            assert out.dtype == np.int32
            assert out.ravel().tolist() == [code], (rounding.name, accumulator.name)
        for accumulator in (None, Accumulator.INT32):
            extra = {} if accumulator is None else {"accumulator": accumulator}
            with pytest.raises(UnpredictableError) as info:
                qlinear_conv(x, w, rounding=rounding, **kwargs, **extra)
            assert str(info.value) == (
                "[accumulator_overflow] qlinear_conv output at index (0, 0, 0, 0): accumulator plus bias is "
                "2147499776, outside int32 [-2147483648, 2147483647]"
            )
    _raises("invalid_option", qlinear_conv, x, w, accumulator="int64", **kwargs)


def test_qlinear_conv_bias_after_the_accumulation_hand_table() -> None:
    # Worked by hand from the definition: a 1 x 1 convolution over C = 33026 uint8 channels, x = w = 255, zero points
    # 0: the exact sum 33026 * 65025 = 2147515650 leaves int32; bias -100000; M = 1 * 1 / 256; y INT32.
    # INT32: the accumulation itself overflows (conv2d_int's error), though sum + bias would fit.
    # INT32_WRAP: (2147515650 mod 2**32) - 100000 = -2147451646 - 100000 = -2147551646, mod 2**32 = 2147415650: the
    #   exact value again, / 256 = 8388342.38 -> 8388342.
    # INT32_SATURATE: the accumulation sticks at 2**31 - 1, then the bias: 2147383647, / 256 = 8388217.37 -> 8388217.
    # INT64: 2147415650 -> 8388342 (also under DOUBLE: the sum with the bias lies in int32).
    c = 33026
    x = np.full((1, c, 1, 1), 255, np.uint8)
    w = np.full((1, c, 1, 1), 255, np.uint8)
    p = _params(1.0, 0, np.uint8)
    kwargs: dict[str, Any] = {
        "x_params": p,
        "w_params": p,
        "y_params": QuantParams(256.0, 0, IntFormat(32, True)),
        "bias": np.array([-100000], np.int32),
    }
    with pytest.raises(UnpredictableError) as info:
        qlinear_conv(x, w, **kwargs)
    assert str(info.value).startswith(
        "[accumulator_overflow] conv2d_int output at index (0, 0, 0, 0) accumulates to 2147515650"
    )
    expected = {Accumulator.INT32_WRAP: 8388342, Accumulator.INT32_SATURATE: 8388217, Accumulator.INT64: 8388342}
    for accumulator, code in expected.items():
        for rounding in (RequantRounding.FLOAT64, RequantRounding.DOUBLE):
            out = qlinear_conv(x, w, rounding=rounding, accumulator=accumulator, **kwargs)
            assert out.ravel().tolist() == [code], (rounding.name, accumulator.name)


def test_qlinear_matmul_errors() -> None:
    a = np.zeros((2, 3), np.uint8)
    b = np.zeros((3, 4), np.int8)
    pa, pb = _params(1.0, 0, np.uint8), _params(1.0, 0, np.int8)
    _raises("invalid_format", qlinear_matmul, a, b, a_params=pb, b_params=pb, y_params=pb)
    _raises("invalid_format", qlinear_matmul, a, b, a_params=pa, b_params=pa, y_params=pb)
    _raises("unsupported_dtype", qlinear_matmul, a.astype(np.int16), b, a_params=pa, b_params=pb, y_params=pb)
    _raises(
        "scale_shape_mismatch",
        qlinear_matmul,
        a,
        b,
        a_params=_params([1.0] * 3, [0] * 3, np.uint8, PerAxis(-1)),
        b_params=pb,
        y_params=pb,
    )
    _raises(
        "scale_shape_mismatch",
        qlinear_matmul,
        a,
        b,
        a_params=_params([1.0] * 3, [0] * 3, np.uint8, PerAxis(0)),
        b_params=pb,
        y_params=pb,
    )
    _raises(
        "scale_shape_mismatch",
        qlinear_matmul,
        a,
        b,
        a_params=pa,
        b_params=_params([1.0] * 3, [0] * 3, np.int8, PerAxis(0)),
        y_params=pb,
    )
    _raises(
        "scale_shape_mismatch",
        qlinear_matmul,
        a,
        b[:, 0],
        a_params=pa,
        b_params=_params([1.0] * 3, [0] * 3, np.int8, PerAxis(-1)),
        y_params=pb,
    )
    _raises(
        "scale_shape_mismatch",
        qlinear_matmul,
        a,
        b,
        a_params=pa,
        b_params=pb,
        y_params=_params([1.0] * 4, [0] * 4, np.int8, PerAxis(-1)),
    )
    _raises(
        "invalid_option",
        qlinear_matmul,
        a,
        b,
        a_params=pa,
        b_params=pb,
        y_params=pb,
        rounding=RequantRounding.FLOAT64.value,
    )
    _raises("invalid_option", qlinear_matmul, a, b, a_params=1.0, b_params=pb, y_params=pb)
    _raises("shape_mismatch", qlinear_matmul, a, b[:2], a_params=pa, b_params=pb, y_params=pb)
    # per axis given with a positive axis works the same as the negative one
    pr = _params([1.0, 2.0], [0, 1], np.uint8, PerAxis(0))
    np.testing.assert_array_equal(
        qlinear_matmul(a, b, a_params=pr, b_params=pb, y_params=pb),
        qlinear_matmul(a, b, a_params=_params([1.0, 2.0], [0, 1], np.uint8, PerAxis(-2)), b_params=pb, y_params=pb),
    )
    # a 1-D b (one column) with per-row a: the rows are the last axis of the result
    out = qlinear_matmul(np.array([[3], [5]], np.uint8), np.array([2], np.int8), a_params=pr, b_params=pb, y_params=pb)
    np.testing.assert_array_equal(out, np.array([6, 16], np.int8))  # worked by hand: [3 * 2 * 1, (5 - 1) * 2 * 2]


@pytest.mark.parametrize(
    "name",
    [
        "test_qlinearconv",
        *(
            f"test_qlinearmatmul_{d}_{t}_{s}"
            for d in ("2D", "3D")
            for t in ("int8", "uint8")
            for s in ("float16", "float32")
        ),
    ],
)
def test_onnx_node_tests_qlinear(name: str) -> None:
    case = _node_cases()[name]
    ((inputs, outputs),) = case.data_sets
    x, sx, zx, w, sw, zw, sy, zy = (np.asarray(v) for v in inputs)
    node = case.model.graph.node[0]

    def params(s: np.ndarray, z: np.ndarray, codes: np.ndarray, axis: int) -> QuantParams:
        fmt = INT8 if z.dtype == np.int8 else UINT8
        if s.size > 1:
            return QuantParams(s.astype(np.float32).reshape(-1), z.reshape(-1), fmt, PerAxis(axis))
        return QuantParams(s.astype(np.float32).reshape(()), z.reshape(()), fmt)

    for precision in Precision:  # the node data has no near-ties: both multipliers give the expected codes
        if name == "test_qlinearconv":
            out = qlinear_conv(
                x,
                w,
                x_params=params(sx, zx, x, 0),
                w_params=params(sw, zw, w, 0),
                y_params=params(sy, zy, x, 0),
                multiplier_precision=precision,
                **_conv_kwargs(_attrs(node)),
            )
        else:
            out = qlinear_matmul(
                x,
                w,
                a_params=params(sx, zx, x, -2),
                b_params=params(sw, zw, w, -1),
                y_params=params(sy, zy, x, 0),
                multiplier_precision=precision,
            )
        assert out.dtype == outputs[0].dtype
        np.testing.assert_array_equal(out, outputs[0])


def _ref_divergence_check(
    ours: np.ndarray, ref: np.ndarray, acc: np.ndarray, m: np.ndarray, zy: int, fmt: IntFormat
) -> None:
    """The reference evaluator computes clip(rint(acc * M + zy)) (zero point added before the rounding): it equals
    refquant's FLOAT64 requantization except at an exact tie with an odd zero point, where the pinned value is the
    evaluator's.  Everywhere else the comparison is exact."""
    v = acc.astype(np.float64) * m
    tie_odd = (v - np.floor(v) == 0.5) & (zy % 2 == 1)
    np.testing.assert_array_equal(ours[~tie_odd], ref[~tie_odd])
    evaluator = np.clip(np.rint(v + zy), fmt.qmin, fmt.qmax)
    np.testing.assert_array_equal(ref[tie_odd], evaluator[tie_odd])


@settings(max_examples=60)
@given(st.data())
def test_qlinear_matmul_against_onnx_reference_evaluator(data: st.DataObject) -> None:
    adt, bdt, ydt = (data.draw(st.sampled_from(DTYPES)) for _ in range(3))
    m, k, n = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 8)), data.draw(st.integers(1, 4))
    batch = data.draw(st.sampled_from([(), (2,)]))
    tie = data.draw(st.booleans())  # power-of-two scales and codes near the zero points: exact ties are common
    per_row, per_col = data.draw(st.booleans()), data.draw(st.booleans())
    za = _zp(data, adt, (m,) if per_row else ())
    zb = _zp(data, bdt, (n,) if per_col else ())
    if tie:
        pow2 = st.integers(-3, 0).map(lambda e: np.float32(2.0**e))
        sa = np.array([data.draw(pow2) for _ in range(m if per_row else 1)], np.float32)
        sb = np.array([data.draw(pow2) for _ in range(n if per_col else 1)], np.float32)
        sy = np.float32(2.0 ** data.draw(st.integers(0, 2)))
        ia, ib = np.iinfo(adt), np.iinfo(bdt)
        a = np.clip(
            np.broadcast_to(za.reshape(-1, 1), (m, 1)) + _codes(data, (*batch, m, k), np.int8) // 32, ia.min, ia.max
        ).astype(adt)
        b = np.clip(
            np.broadcast_to(zb.reshape(1, -1), (1, n)) + _codes(data, (k, n), np.int8) // 32, ib.min, ib.max
        ).astype(bdt)
    else:
        scales = st.floats(2.0**-8, 1.0, allow_subnormal=False).map(np.float32)
        sa = np.array([data.draw(scales) for _ in range(m if per_row else 1)], np.float32)
        sb = np.array([data.draw(scales) for _ in range(n if per_col else 1)], np.float32)
        sy = np.float32(data.draw(st.floats(0.5, 64.0)))
        a = _codes(data, (*batch, m, k), adt)
        b = _codes(data, (k, n), bdt)
    zy = int(_zp(data, ydt))
    inputs = {
        "a": a,
        "a_scale": sa.reshape(m, 1) if per_row else sa.reshape(()),
        "a_zero_point": (za.reshape(m, 1) if per_row else za.reshape(())).astype(adt),
        "b": b,
        "b_scale": sb if per_col else sb.reshape(()),
        "b_zero_point": (zb if per_col else zb.reshape(())).astype(bdt),
        "y_scale": np.array(sy),
        "y_zero_point": np.array(zy).astype(ydt),
    }
    ref = _run_reference("QLinearMatMul", inputs)
    ap = _params(sa, za, adt, PerAxis(-2)) if per_row else _params(sa[0], za, adt)
    bp = _params(sb, zb, bdt, PerAxis(-1)) if per_col else _params(sb[0], zb, bdt)
    yp = _params(sy, zy, ydt)
    ours = qlinear_matmul(a, b, a_params=ap, b_params=bp, y_params=yp, multiplier_precision=Precision.FLOAT32)
    assert ours.dtype == ref.dtype
    acc = matmul_int(a, b, lhs_zero_point=za[:, None] if per_row else za, rhs_zero_point=zb)
    mult = np.float32(sa.reshape(-1, 1) * sb.reshape(1, -1)) / sy  # float32, as the evaluator computes it
    _ref_divergence_check(ours, ref, acc, mult.astype(np.float64), zy, yp.fmt)


@settings(max_examples=40)
@given(conv_cases(), st.booleans(), st.booleans())
def test_qlinear_conv_against_onnx_reference_evaluator(case: dict[str, Any], tie: bool, with_bias: bool) -> None:
    x, w = case["x"], case["w"]
    o = w.shape[0]
    zw = np.asarray(case["zw"])
    per_channel = zw.ndim == 1
    rng = np.random.default_rng((int(x.sum()) + int(w.sum())) % 2**32)  # data-derived, so examples replay exactly
    if tie:
        sx = np.float32(2.0 ** -int(rng.integers(0, 3)))
        sw = (2.0 ** -rng.integers(0, 3, o if per_channel else 1)).astype(np.float32)
        sy = np.float32(2.0 ** int(rng.integers(4, 9)))
    else:
        sx = np.float32(rng.uniform(0.001, 0.1))
        sw = rng.uniform(0.001, 0.1, o if per_channel else 1).astype(np.float32)
        sy = np.float32(rng.uniform(0.01, 4.0))
    ydt = x.dtype.type
    zy = int(rng.integers(np.iinfo(ydt).min, np.iinfo(ydt).max + 1))
    bias = rng.integers(-5000, 5000, o).astype(np.int32) if with_bias else None
    pt, pb, pl, pr = case["padding"]
    attrs = {
        "strides": list(case["stride"]),
        "pads": [pt, pl, pb, pr],
        "dilations": list(case["dilation"]),
        "group": case["groups"],
        "kernel_shape": list(w.shape[2:]),
    }
    inputs = {
        "x": x,
        "x_scale": np.array(sx),
        "x_zero_point": np.array(case["zx"]).astype(x.dtype),
        "w": w,
        "w_scale": sw if per_channel else sw.reshape(()),
        "w_zero_point": zw.astype(w.dtype),
        "y_scale": np.array(sy),
        "y_zero_point": np.array(zy).astype(ydt),
    }
    if bias is not None:
        inputs["B"] = bias
    ref = _run_reference("QLinearConv", inputs, attrs)
    kwargs = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"], groups=case["groups"])
    wp = _params(sw, zw, w.dtype, PerAxis(0)) if per_channel else _params(sw[0], zw, w.dtype)
    yp = _params(sy, zy, ydt)
    ours = qlinear_conv(
        x,
        w,
        x_params=_params(sx, case["zx"], x.dtype),
        w_params=wp,
        y_params=yp,
        bias=bias,
        multiplier_precision=Precision.FLOAT32,
        **kwargs,
    )
    assert ours.dtype == ref.dtype
    acc = conv2d_int(x, w, x_zero_point=case["zx"], w_zero_point=zw, **kwargs).astype(np.int64)
    if bias is not None:
        acc += bias.reshape(1, -1, 1, 1)
    mult = (np.float32(sx * sw) / sy).astype(np.float64).reshape(1, -1, 1, 1)
    _ref_divergence_check(ours, ref, acc, mult, zy, yp.fmt)


# onnxruntime: QLinearMatMul / QLinearConv run for (int8, int8 -> int8), (uint8, int8 -> uint8), (uint8, uint8 -> uint8)
ORT_COMBOS = [(np.int8, np.int8), (np.uint8, np.int8), (np.uint8, np.uint8)]


def _run_ort(op: str, inputs: dict[str, np.ndarray], attrs: dict[str, Any] | None = None) -> np.ndarray | None:
    """onnxruntime's CPU kernel for one node (opset 10), or None when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    from onnx import helper

    node = helper.make_node(op, list(inputs), ["y"], **(attrs or {}))
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
            for k, v in inputs.items()
        ],
        [helper.make_tensor_value_info("y", helper.np_dtype_to_tensor_dtype(inputs[next(iter(inputs))].dtype), None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, inputs)[0])


@settings(max_examples=40)
@given(st.data())
def test_qlinear_matmul_and_conv_against_onnxruntime(data: st.DataObject) -> None:
    pytest.importorskip("onnxruntime")
    xdt, wdt = data.draw(st.sampled_from(ORT_COMBOS))
    tie = data.draw(st.booleans())
    per_col = data.draw(st.booleans())
    conv = data.draw(st.booleans())
    if conv:
        c, o = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
        x = _codes(data, (1, c, 5, 4), xdt)
        w = _codes(data, (o, c, 3, 2), wdt)
    else:
        m, k, o = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 40)), data.draw(st.integers(1, 5))
        x = _codes(data, (m, k), xdt)
        w = _codes(data, (k, o), wdt)
    zx = int(_zp(data, xdt))
    zw = _zp(data, wdt, (o,) if per_col else ())
    zy = int(_zp(data, xdt))
    if tie:
        x = np.clip(zx + x.astype(np.int64) // 64, np.iinfo(xdt).min, np.iinfo(xdt).max).astype(xdt)
        zw_full = np.broadcast_to(zw, (o,))
        near = zw_full.reshape((-1, 1, 1, 1) if conv else (1, -1)) + w.astype(np.int64) // 64
        w = np.clip(near, np.iinfo(wdt).min, np.iinfo(wdt).max).astype(wdt)
        sx, sy = np.float32(0.5), np.float32(2.0 ** data.draw(st.integers(0, 3)))
        sw = np.array([2.0 ** -data.draw(st.integers(0, 2)) for _ in range(o if per_col else 1)], np.float32)
    else:
        sx, sy = np.float32(data.draw(st.floats(0.001, 0.1))), np.float32(data.draw(st.floats(0.01, 4.0)))
        sw = np.array([data.draw(st.floats(0.001, 0.1)) for _ in range(o if per_col else 1)], np.float32)
    names = (
        ("x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point")
        if conv
        else ("a", "a_scale", "a_zero_point", "b", "b_scale", "b_zero_point")
    )
    values = (x, np.array(sx), np.array(zx).astype(xdt), w, sw if per_col else sw.reshape(()), zw.astype(wdt))
    inputs = dict(zip(names, values, strict=True))
    inputs["y_scale"] = np.array(sy)
    inputs["y_zero_point"] = np.array(zy).astype(xdt)
    ort_out = _run_ort("QLinearConv" if conv else "QLinearMatMul", inputs)
    assert ort_out is not None
    wp = _params(sw, zw, wdt, PerAxis(0 if conv else -1)) if per_col else _params(sw[0], zw, wdt)
    kwargs: dict[str, Any] = {"rounding": RequantRounding.FLOAT32, "multiplier_precision": Precision.FLOAT32}
    if conv:
        ours = qlinear_conv(x, w, x_params=_params(sx, zx, xdt), w_params=wp, y_params=_params(sy, zy, xdt), **kwargs)
    else:
        ours = qlinear_matmul(x, w, a_params=_params(sx, zx, xdt), b_params=wp, y_params=_params(sy, zy, xdt), **kwargs)
    assert ours.dtype == ort_out.dtype
    np.testing.assert_array_equal(ours, ort_out)


def test_requantize_is_the_last_step_of_qlinear_conv() -> None:
    # qlinear_conv == requantize(conv2d_int + bias) with the multiplier per output channel, on one NHWC example.
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (2, 5, 6, 3)).astype(np.uint8)
    w = rng.integers(-128, 128, (4, 3, 2, 3)).astype(np.int8)
    bias = rng.integers(-1000, 1000, 4).astype(np.int32)
    sw = np.array([0.01, 0.02, 0.03, 0.04], np.float32)
    xp, wp, yp = (
        _params(0.05, 128, np.uint8),
        _params(sw, [0, 0, 0, 0], np.int8, PerAxis(0)),
        _params(0.7, 10, np.uint8),
    )
    for rounding in RequantRounding:
        out = qlinear_conv(
            x, w, x_params=xp, w_params=wp, y_params=yp, bias=bias, layout=Layout.NHWC, stride=(2, 1), rounding=rounding
        )
        acc = conv2d_int(x, w, x_zero_point=128, layout=Layout.NHWC, stride=(2, 1)) + bias
        m = np.float64(np.float32(0.05)) * sw.astype(np.float64) / np.float64(np.float32(0.7))
        expected = requantize(acc, m, out_fmt=UINT8, out_zero_point=10, rounding=rounding, granularity=PerAxis(3))
        np.testing.assert_array_equal(out, expected)


def test_peers_on_the_tie_table() -> None:
    # The hand table of test_qlinear_matmul_hand_table_every_rounding through the peers: acc * M = [-2.5, -1.5,
    # -0.5, 0.5, 1.5, 2.5], output zero point 3.  onnxruntime (float32, half to even, zero point after rounding)
    # gives refquant's FLOAT32 row [1, 1, 3, 3, 5, 5].  The ONNX reference evaluator computes rint(acc * M + 3) =
    # rint([0.5, 1.5, 2.5, 3.5, 4.5, 5.5]) = [0, 2, 2, 4, 4, 6]: it adds the zero point before rounding, unlike
    # the QLinearMatMul schema ("For (x / y_scale), it is rounding to nearest ties to even", then + y_zero_point)
    # and unlike its own QuantizeLinear (docs/spec/integer_ops.md section 6).
    a = np.array([[2]], np.int8)
    b = np.array([[-5, -3, -1, 1, 3, 5]], np.int8)
    inputs = {
        "a": a,
        "a_scale": np.array(np.float32(0.5)),
        "a_zero_point": np.array(0, np.int8),
        "b": b,
        "b_scale": np.array(np.float32(0.5)),
        "b_zero_point": np.array(0, np.int8),
        "y_scale": np.array(np.float32(1.0)),
        "y_zero_point": np.array(3, np.int8),
    }
    np.testing.assert_array_equal(_run_reference("QLinearMatMul", inputs), np.array([[0, 2, 2, 4, 4, 6]], np.int8))
    ort_out = _run_ort("QLinearMatMul", inputs)
    if ort_out is not None:
        np.testing.assert_array_equal(ort_out, np.array([[1, 1, 3, 3, 5, 5]], np.int8))


def test_qlinear_matmul_per_row_and_per_column_with_no_rows() -> None:
    # M = 0 with one multiplier per (row, column): an empty (0, N) result, not an error.
    a = np.zeros((0, 3), np.uint8)
    b = np.zeros((3, 4), np.int8)
    a_params = QuantParams(np.ones(0, np.float32), np.zeros(0, np.int64), UINT8, PerAxis(-2))
    b_params = QuantParams(np.ones(4, np.float32), np.zeros(4, np.int64), INT8, PerAxis(-1))
    out = qlinear_matmul(a, b, a_params=a_params, b_params=b_params, y_params=QuantParams(1.0, 0, UINT8))
    assert out.shape == (0, 4)
    assert out.dtype == np.uint8


def test_qlinear_matmul_rejects_a_0d_operand() -> None:
    p = QuantParams(1.0, 0, INT8)
    with pytest.raises(SpecError) as err:
        qlinear_matmul(np.zeros((2, 3), np.int8), np.int8(3), a_params=p, b_params=p, y_params=p)
    assert err.value.condition == "shape_mismatch"
