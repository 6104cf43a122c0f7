"""Peer check: the integer pipeline against onnxruntime's CPU MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv.

Established by experiment (docs/spec/divergences.md, "integer pipelines"):

- MatMulInteger and ConvInteger compute the exact sum and wrap modulo 2**32 when it leaves int32
  (``Accumulator.INT32`` below the bound, ``INT32_WRAP`` past it).  onnxruntime accepts only a per-tensor
  ``a_zero_point`` (MatMulInteger) and a per-tensor ``w_zero_point`` (ConvInteger), so only those are fed.
- QLinearMatMul and QLinearConv requantize as ``rint(fl32(float32(acc + bias) * m)) + y_zp`` with
  ``m = fl32(fl32(x_scale * w_scale) / y_scale)``, i.e. ``rounding=RequantRounding.FLOAT32,
  multiplier_precision=Precision.FLOAT32``.  The requantization tests use tie-dense accumulators:
  ``acc * m`` on or within a few ulps of a half-integer, ``|acc|`` past 2**24, realised exactly by codes.

Without AVX-512 VNNI / AVX-VNNI onnxruntime's mixed-sign kernels use ``vpmaddubsw``, whose int16 pair sums
saturate (documented by onnxruntime); on such CPUs the signed operand of a mixed-sign product is drawn
from 7 bits so that the exact sum is still what is compared.  Models: onnx.helper, IR version 8.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any

import numpy as np
import pytest

from refquant import (
    INT8,
    UINT8,
    Accumulator,
    Layout,
    PerAxis,
    Precision,
    QuantParams,
    RequantRounding,
    UnpredictableError,
    conv2d_int,
    matmul_int,
    qlinear_conv,
    qlinear_matmul,
)

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

F32 = np.float32
IR_VERSION = 8
U8, S8 = np.dtype(np.uint8), np.dtype(np.int8)
ONNX_TYPE = {U8: TensorProto.UINT8, S8: TensorProto.INT8, np.dtype(np.int32): TensorProto.INT32}
ORT_FLOAT = {"rounding": RequantRounding.FLOAT32, "multiplier_precision": Precision.FLOAT32}
PAIRS = [(U8, U8), (U8, S8), (S8, S8), (S8, U8)]  # (lhs / x, rhs / w): all four are implemented by ORT


def _has_vnni() -> bool:
    try:
        flags = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


HAS_VNNI = _has_vnni()


def code_range(dtype: np.dtype[Any], other: np.dtype[Any]) -> tuple[int, int]:
    """Codes drawn for an operand of ``dtype`` multiplied by one of ``other`` (7-bit signed codes without VNNI)."""
    info = np.iinfo(dtype)
    if dtype == S8 and other == U8 and not HAS_VNNI:
        return -64, 63
    return int(info.min), int(info.max)


@functools.cache
def session(op: str, types: tuple[int, ...], out_type: int, opset: int = 13, **attrs: Any) -> Any:
    """One node ``op`` with inputs ``i0, i1, ...`` of the given ONNX types, shapes left dynamic."""
    names = [f"i{k}" for k in range(len(types))]
    attributes = {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()}
    node = helper.make_node(op, names, ["y"], **attributes)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, t, None) for n, t in zip(names, types, strict=True)],
        [helper.make_tensor_value_info("y", out_type, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = IR_VERSION
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(op: str, inputs: list[np.ndarray], out_type: int, opset: int = 13, **attrs: Any) -> np.ndarray:
    types = tuple(ONNX_TYPE.get(a.dtype, TensorProto.FLOAT) for a in inputs)
    sess = session(op, types, out_type, opset, **attrs)
    (y,) = sess.run(None, {f"i{k}": a for k, a in enumerate(inputs)})
    return np.asarray(y)


def codes(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype[Any], other: np.dtype[Any]) -> np.ndarray:
    lo, hi = code_range(dtype, other)
    return rng.integers(lo, hi + 1, shape).astype(dtype)


def zero_point(rng: np.random.Generator, dtype: np.dtype[Any], case: int, size: int | None = None) -> np.ndarray:
    """Zero points at the low end (case 0), the high end (case 1) or random (else)."""
    info = np.iinfo(dtype)
    shape = () if size is None else (size,)
    if case in (0, 1):
        return np.full(shape, info.min if case == 0 else info.max, dtype)
    return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)


def realise(acc: np.ndarray, n: int, weight: int, za: int, zb: int, a_dtype: Any, b_dtype: Any) -> tuple[Any, Any]:
    """Codes ``a`` (len(acc), n + 1) and ``b`` (n + 1, 1) with ``(a - za) @ (b - zb) == acc`` exactly.

    ``b - zb = [weight] * n + [1]`` (``weight`` 63 keeps a signed ``b`` within 7 bits for CPUs without VNNI);
    the centred codes of ``a`` lie in [-128, 127].  Each row spreads ``round(acc / weight)`` over the first
    ``n`` columns and puts the remainder (within [-63, 63]) in the last.  Reach: ``|acc| <= 127 * weight * n``.
    """
    t = np.asarray(acc, np.int64)
    s = np.round(t / weight).astype(np.int64)
    a = np.zeros((t.size, n + 1), np.int64)
    q, rem = np.divmod(s, n)
    a[:, :n] = q[:, None] + (np.arange(n)[None, :] < rem[:, None])
    a[:, n] = t - weight * s
    col = np.r_[np.full(n, weight), 1]
    assert np.array_equal(a @ col, t), "tie-dense target out of reach"
    assert a.min() >= -128, "tie-dense target out of reach"
    assert a.max() <= 127, "tie-dense target out of reach"
    return (a + za).astype(a_dtype), (col + zb).reshape(-1, 1).astype(b_dtype)


def tie_dense_acc(rng: np.random.Generator, m: float, max_acc: int, count: int) -> np.ndarray:
    """Accumulators whose product with ``m`` is on, or a few ulps around, a half-integer; ``|acc| <= max_acc``."""
    k = rng.integers(-int(max_acc * m), int(max_acc * m), count)
    acc = np.round((k + 0.5) / m).astype(np.int64) + rng.integers(-2, 3, count)
    return acc[np.abs(acc) <= max_acc]


# --- MatMulInteger ------------------------------------------------------------------------------------------


def ort_matmul_integer(a: np.ndarray, b: np.ndarray, za: np.ndarray, zb: np.ndarray) -> np.ndarray:
    return run("MatMulInteger", [a, b, za, zb], TensorProto.INT32, opset=10)


@pytest.mark.parametrize(("ta", "tb"), PAIRS, ids=lambda t: str(t))
@pytest.mark.parametrize("per_column", [False, True], ids=["zb_tensor", "zb_column"])
def test_matmul_integer_random(ta: np.dtype[Any], tb: np.dtype[Any], per_column: bool) -> None:
    rng = np.random.default_rng(10 + 3 * PAIRS.index((ta, tb)) + per_column)
    shapes = [(1, 1, 1), (1, 5, 3), (3, 7, 5), (17, 33, 65), (64, 200, 31), (2, 129, 1), (5, 64, 16)]
    for i, (m, k, n) in enumerate(shapes):
        for case in range(3):
            a, b = codes(rng, (m, k), ta, tb), codes(rng, (k, n), tb, ta)
            za = zero_point(rng, ta, case)
            zb = zero_point(rng, tb, (case + i) % 3, n if per_column else None)
            expected = matmul_int(a, b, lhs_zero_point=za, rhs_zero_point=zb)
            assert expected.dtype == np.int32
            np.testing.assert_array_equal(ort_matmul_integer(a, b, za, zb), expected)


def test_matmul_integer_batch_broadcast() -> None:
    rng = np.random.default_rng(20)
    cases = [((2, 3, 4, 5), (5, 6)), ((3, 4, 5), (2, 1, 5, 6)), ((4, 5), (3, 5, 6)), ((5,), (5, 6)), ((4, 5), (5,))]
    for sa, sb in cases:
        a, b = codes(rng, sa, U8, S8), codes(rng, sb, S8, U8)
        za, zb = np.array(255, np.uint8), np.array(-128, np.int8)
        expected = matmul_int(a, b, lhs_zero_point=za, rhs_zero_point=zb)
        assert expected.shape == np.matmul(a, b).shape
        np.testing.assert_array_equal(ort_matmul_integer(a, b, za, zb), expected)


# (lhs dtype, lhs code, lhs zp, rhs dtype, rhs code, rhs zp): constant operands whose every product is
# extreme; K = (2**31 - 1) // |product| is the last K whose sum is exact in int32.
BOUND_CASES = [
    (U8, 255, 0, U8, 255, 0),  # +255 * +255
    (U8, 0, 255, U8, 0, 255),  # -255 * -255
    (U8, 0, 255, S8, 127, -128),  # -255 * +255
    (S8, -128, 0, S8, -128, 0),  # -128 * -128 = 2**14: the bound is K = 2**17 - 1
    (S8, -128, 127, U8, 255, 0),  # -255 * +255
]


@pytest.mark.parametrize("case", BOUND_CASES, ids=lambda c: f"{c[0]}{c[1]}-{c[2]}x{c[3]}{c[4]}-{c[5]}")
def test_matmul_integer_k_at_int32_bound(case: tuple[Any, ...]) -> None:
    ta, va, za, tb, vb, zb = case
    if (ta != tb or ta == S8) and not HAS_VNNI:
        pytest.skip("extreme mixed-sign/int8 codes need a VNNI CPU for onnxruntime's sum to be exact")
    product = (va - za) * (vb - zb)
    k_max = (2**31 - 1) // abs(product)
    zs = (np.array(za, ta), np.array(zb, tb))
    for k in (k_max, k_max + 1):
        a, b = np.full((2, k), va, ta), np.full((k, 3), vb, tb)
        got = ort_matmul_integer(a, b, *zs)
        exact = product * k
        if k == k_max:
            assert got[0, 0] == exact
            np.testing.assert_array_equal(got, matmul_int(a, b, lhs_zero_point=zs[0], rhs_zero_point=zs[1]))
        else:
            assert not -(2**31) <= exact < 2**31
            with pytest.raises(UnpredictableError) as err:
                matmul_int(a, b, lhs_zero_point=zs[0], rhs_zero_point=zs[1])
            assert err.value.condition == "accumulator_overflow"
        wrapped = matmul_int(a, b, lhs_zero_point=zs[0], rhs_zero_point=zs[1], accumulator=Accumulator.INT32_WRAP)
        np.testing.assert_array_equal(got, wrapped)
        assert int(wrapped[0, 0]) == (exact + 2**31) % 2**32 - 2**31


# --- ConvInteger ----------------------------------------------------------------------------------------------

# (N, C, H, W, O, kernel, stride, pads (top, bottom, left, right), dilation, groups)
CONV_CASES = [
    (1, 3, 7, 9, 4, (3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    (2, 4, 8, 6, 6, (3, 2), (2, 1), (1, 2, 0, 1), (2, 1), 2),
    (1, 8, 5, 5, 8, (3, 3), (1, 2), (1, 1, 1, 1), (1, 2), 8),  # depthwise
    (1, 4, 6, 7, 8, (3, 3), (1, 1), (2, 0, 1, 3), (1, 1), 4),  # depthwise, channel multiplier 2
    (1, 16, 6, 6, 32, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    (3, 5, 9, 4, 3, (5, 1), (3, 1), (2, 2, 0, 0), (1, 1), 1),  # odd everything
    (1, 64, 9, 9, 16, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
]


def onnx_pads(padding: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    top, bottom, left, right = padding
    return top, left, bottom, right


def conv_attrs(case: tuple[Any, ...]) -> dict[str, Any]:
    _, _, _, _, _, kernel, stride, pads, dilation, groups = case
    return {"kernel_shape": kernel, "strides": stride, "pads": onnx_pads(pads), "dilations": dilation, "group": groups}


def conv_kwargs(case: tuple[Any, ...]) -> dict[str, Any]:
    _, _, _, _, _, _, stride, pads, dilation, groups = case
    return {"stride": stride, "padding": pads, "dilation": dilation, "groups": groups}


@pytest.mark.parametrize(("tx", "tw"), PAIRS, ids=lambda t: str(t))
def test_conv_integer_random(tx: np.dtype[Any], tw: np.dtype[Any]) -> None:
    rng = np.random.default_rng(30 + PAIRS.index((tx, tw)))
    for i, case in enumerate(CONV_CASES):
        n, c, h, w_, o, kernel = case[:6]
        x = codes(rng, (n, c, h, w_), tx, tw)
        w = codes(rng, (o, c // case[9], *kernel), tw, tx)
        zx, zw = zero_point(rng, tx, i % 3), zero_point(rng, tw, (i + 1) % 3)
        got = run("ConvInteger", [x, w, zx, zw], TensorProto.INT32, opset=10, **conv_attrs(case))
        expected = conv2d_int(x, w, x_zero_point=zx, w_zero_point=zw, **conv_kwargs(case))
        np.testing.assert_array_equal(got, expected)
        # The same convolution in NHWC / OHWI gives the same numbers, transposed.
        nhwc = conv2d_int(
            x.transpose(0, 2, 3, 1),
            w.transpose(0, 2, 3, 1),
            x_zero_point=zx,
            w_zero_point=zw,
            layout=Layout.NHWC,
            **conv_kwargs(case),
        )
        np.testing.assert_array_equal(got.transpose(0, 2, 3, 1), nhwc)


# --- QLinearMatMul ------------------------------------------------------------------------------------------

QLINEAR_MATMUL_TYPES = [(U8, U8, U8), (U8, S8, U8), (S8, S8, S8)]  # what ORT implements (a, b, y)


def ort_qlinear_matmul(
    a: np.ndarray, ap: QuantParams, b: np.ndarray, bp: QuantParams, yp: QuantParams, opset: int
) -> Any:
    def scale(p: QuantParams) -> np.ndarray:
        return p.scale.astype(F32).reshape(-1) if p.scale.size > 1 else p.scale.astype(F32).reshape(())

    def zp(p: QuantParams, dtype: np.dtype[Any]) -> np.ndarray:
        z = p.zero_point.astype(dtype)
        return z.reshape(-1) if z.size > 1 else z.reshape(())

    out = TensorProto.UINT8 if yp.fmt == UINT8 else TensorProto.INT8
    inputs = [a, scale(ap), zp(ap, a.dtype), b, scale(bp), zp(bp, b.dtype), scale(yp), zp(yp, yp.fmt.storage_dtype)]
    return run("QLinearMatMul", inputs, out, opset=opset)


def fmt(dtype: np.dtype[Any]) -> Any:
    return UINT8 if dtype == U8 else INT8


@pytest.mark.parametrize(("ta", "tb", "ty"), QLINEAR_MATMUL_TYPES, ids=lambda t: str(t))
@pytest.mark.parametrize("opset", [10, 21])
@pytest.mark.parametrize("per_column", [False, True], ids=["b_tensor", "b_column"])
def test_qlinear_matmul_tie_dense(
    ta: np.dtype[Any], tb: np.dtype[Any], ty: np.dtype[Any], opset: int, per_column: bool
) -> None:
    rng = np.random.default_rng(40 + 7 * QLINEAR_MATMUL_TYPES.index((ta, tb, ty)) + opset + per_column)
    weight = 127 if HAS_VNNI or ta == tb else 63
    za, zb = (128 if ta == U8 else 0), (128 if tb == U8 else 0)
    n = 1100 if weight == 127 else 4400
    ncol = 3 if per_column else 1
    for trial in range(6):
        max_acc = [2**25 - 1, 2**21, 2**14][trial % 3]
        max_acc = min(max_acc, 127 * weight * n)
        sa = F32(10 ** rng.uniform(-3, 0))
        sb = (10 ** rng.uniform(-3, 0, ncol)).astype(F32)
        y_fmt = fmt(ty)
        zy = 128 if ty == U8 else 0
        sy = F32(float(sa) * float(sb[0]) * max_acc / 120 * 10 ** rng.uniform(0, 0.3))
        acc = tie_dense_acc(rng, float(sa) * float(sb[0]) / float(sy), max_acc, 300)
        a, col = realise(acc, n, weight, za, zb, ta, tb)
        b = np.repeat(col, ncol, axis=1)
        ap = QuantParams(sa, za, fmt(ta))
        bp = QuantParams(sb, np.full(ncol, zb), fmt(tb), PerAxis(-1)) if per_column else QuantParams(sb[0], zb, fmt(tb))
        yp = QuantParams(sy, zy, y_fmt)
        expected = qlinear_matmul(a, b, a_params=ap, b_params=bp, y_params=yp, **ORT_FLOAT)
        np.testing.assert_array_equal(ort_qlinear_matmul(a, ap, b, bp, yp, opset), expected)


@pytest.mark.parametrize(("ta", "tb", "ty"), QLINEAR_MATMUL_TYPES, ids=lambda t: str(t))
def test_qlinear_matmul_random(ta: np.dtype[Any], tb: np.dtype[Any], ty: np.dtype[Any]) -> None:
    rng = np.random.default_rng(50 + QLINEAR_MATMUL_TYPES.index((ta, tb, ty)))
    for i, (m, k, n) in enumerate([(1, 1, 1), (3, 7, 5), (17, 33, 65), (64, 200, 31), (2, 129, 1)]):
        for case in range(3):
            a, b = codes(rng, (m, k), ta, tb), codes(rng, (k, n), tb, ta)
            ap = QuantParams(10 ** rng.uniform(-3, 0), zero_point(rng, ta, case), fmt(ta))
            per_column = (i + case) % 2 == 1
            zb = zero_point(rng, tb, (case + 1) % 3, n if per_column else None)
            if per_column:
                bp = QuantParams((10 ** rng.uniform(-3, 0, n)).astype(F32), zb, fmt(tb), PerAxis(-1))
            else:
                bp = QuantParams(10 ** rng.uniform(-3, 0), zb, fmt(tb))
            acc = matmul_int(a, b, lhs_zero_point=ap.zero_point, rhs_zero_point=bp.zero_point)
            spread = float(np.abs(acc).max()) + 1
            yp = QuantParams(
                float(ap.scale) * float(np.median(bp.scale)) * spread / 150, zero_point(rng, ty, 2), fmt(ty)
            )
            expected = qlinear_matmul(a, b, a_params=ap, b_params=bp, y_params=yp, **ORT_FLOAT)
            np.testing.assert_array_equal(ort_qlinear_matmul(a, ap, b, bp, yp, 10), expected)


# Worked from the float32 scales (fl32 = round to float32).  Columns: onnxruntime / FLOAT32 with the float32-formed
# multiplier; the onnx reference's pipeline (FLOAT64, float32-formed multiplier); FLOAT32 and FLOAT64 with the
# multiplier formed in float64.
# 1. 0.15, 0.195, 0.11, acc 220: m = fl32(fl32(0.15 * 0.195) / 0.11) = 0.26590908; 220 * m = 58.4999967 -> 58 in
#    float32 and float64; fl32(exact m) = 0.26590910, 220 * it = 58.500004 -> 59; exact 58.50000050 -> 59.
# 2. 0.18, 0.161, 0.144, acc 400: m = fl32(...) = 0.20125000179; fl32(400 * m) = 80.5, a tie -> 80; in float64
#    400 * m = 80.50000072 -> 81; fl32(exact m) gives 80.50001 -> 81; exact 80.50000589 -> 81.
MULTIPLIER_VECTORS = [((0.15, 0.195, 0.11), 220, (58, 58, 59, 59)), ((0.18, 0.161, 0.144), 400, (80, 81, 81, 81))]


@pytest.mark.parametrize(("scales", "acc", "expected"), MULTIPLIER_VECTORS)
def test_qlinear_matmul_multiplier_formed_in_float32(
    scales: tuple[float, float, float], acc: int, expected: tuple[int, int, int, int]
) -> None:
    sa, sb, sy = scales
    a, b = np.array([[acc // 2, acc // 2]], np.uint8), np.array([[1], [1]], np.int8)
    ap, bp, yp = QuantParams(sa, 0, UINT8), QuantParams(sb, 0, INT8), QuantParams(sy, 0, UINT8)
    assert ort_qlinear_matmul(a, ap, b, bp, yp, 10).tolist() == [[expected[0]]]
    options = [
        ORT_FLOAT,
        {"rounding": RequantRounding.FLOAT64, "multiplier_precision": Precision.FLOAT32},
        {"rounding": RequantRounding.FLOAT32, "multiplier_precision": Precision.FLOAT64},
        {"rounding": RequantRounding.FLOAT64, "multiplier_precision": Precision.FLOAT64},
    ]
    got = [int(qlinear_matmul(a, b, a_params=ap, b_params=bp, y_params=yp, **o)[0, 0]) for o in options]
    assert got == list(expected)


def test_qlinear_matmul_ties_to_even_not_fixed_point() -> None:
    # spec-anchors V5, worked by hand: multiplier 0.5 * 0.5 / 1 = 0.25; acc = -10, -6, -2, 2, 6, 10 are the
    # ties -2.5, -1.5, -0.5, 0.5, 1.5, 2.5 -> half to even -2, -2, 0, 0, 2, 2 (+ zero point 0); TFLite's
    # double rounding (ties away from zero) gives -3, -2, -1, 1, 2, 3.
    acc = np.array([-10, -6, -2, 2, 6, 10])
    a = (acc + 100).astype(np.uint8).reshape(-1, 1)
    b = np.array([[1]], np.int8)
    ap, bp, yp = QuantParams(0.5, 100, UINT8), QuantParams(0.5, 0, INT8), QuantParams(1.0, 128, UINT8)
    assert (ort_qlinear_matmul(a, ap, b, bp, yp, 10).ravel().astype(np.int64) - 128).tolist() == [-2, -2, 0, 0, 2, 2]
    spec = qlinear_matmul(a, b, a_params=ap, b_params=bp, y_params=yp, **ORT_FLOAT)
    assert (spec.ravel().astype(np.int64) - 128).tolist() == [-2, -2, 0, 0, 2, 2]
    double = qlinear_matmul(a, b, a_params=ap, b_params=bp, y_params=yp, rounding=RequantRounding.DOUBLE)
    assert (double.ravel().astype(np.int64) - 128).tolist() == [-3, -2, -1, 1, 2, 3]


def test_qlinear_matmul_float32_loses_accumulator_bits() -> None:
    # spec-anchors V27, worked by hand: acc = 2**24 + 1, multiplier 2**-25 (scales 2**-12, 2**-13, 1):
    # float32(acc) = 2**24 -> 0.5 -> 0 (onnxruntime); exact 0.50000003 -> 1 (float64, fixed point).
    n = 1100
    a, b = realise(np.array([2**24 + 1]), n, 127, 128, 0, np.uint8, np.int8)
    ap, bp, yp = QuantParams(2.0**-12, 128, UINT8), QuantParams(2.0**-13, 0, INT8), QuantParams(1.0, 0, UINT8)
    assert ort_qlinear_matmul(a, ap, b, bp, yp, 10).tolist() == [[0]]
    assert qlinear_matmul(a, b, a_params=ap, b_params=bp, y_params=yp, **ORT_FLOAT).tolist() == [[0]]
    for rounding in (RequantRounding.FLOAT64, RequantRounding.DOUBLE, RequantRounding.SINGLE):
        assert qlinear_matmul(a, b, a_params=ap, b_params=bp, y_params=yp, rounding=rounding).tolist() == [[1]]


# --- QLinearConv ------------------------------------------------------------------------------------------------

QLINEAR_CONV_TYPES = [(U8, S8), (U8, U8), (S8, S8)]  # (x, w); y has x's type


def ort_qlinear_conv(
    x: np.ndarray, xp: QuantParams, w: np.ndarray, wp: QuantParams, yp: QuantParams, bias: Any, **attrs: Any
) -> Any:
    per_channel = wp.scale.size > 1 or isinstance(wp.granularity, PerAxis)
    sw = wp.scale.astype(F32).reshape(-1) if per_channel else wp.scale.astype(F32).reshape(())
    zw = wp.zero_point.astype(w.dtype).reshape(-1) if per_channel else wp.zero_point.astype(w.dtype).reshape(())
    inputs = [
        x,
        xp.scale.astype(F32).reshape(()),
        xp.zero_point.astype(x.dtype).reshape(()),
        w,
        sw,
        zw,
        yp.scale.astype(F32).reshape(()),
        yp.zero_point.astype(x.dtype).reshape(()),
    ]
    if bias is not None:
        inputs.append(bias)
    out = TensorProto.UINT8 if x.dtype == U8 else TensorProto.INT8
    return run("QLinearConv", inputs, out, opset=10, **attrs)


@pytest.mark.parametrize(("tx", "tw"), QLINEAR_CONV_TYPES, ids=lambda t: str(t))
@pytest.mark.parametrize("per_channel", [False, True], ids=["w_tensor", "w_channel"])
def test_qlinear_conv_random(tx: np.dtype[Any], tw: np.dtype[Any], per_channel: bool) -> None:
    rng = np.random.default_rng(60 + 2 * QLINEAR_CONV_TYPES.index((tx, tw)) + per_channel)
    for i, case in enumerate(CONV_CASES):
        n, c, h, w_, o, kernel = case[:6]
        x = codes(rng, (n, c, h, w_), tx, tw)
        w = codes(rng, (o, c // case[9], *kernel), tw, tx)
        xp = QuantParams(10 ** rng.uniform(-3, 0), zero_point(rng, tx, i % 3), fmt(tx))
        if per_channel:
            wp = QuantParams((10 ** rng.uniform(-3, 0, o)).astype(F32), zero_point(rng, tw, 2, o), fmt(tw), PerAxis(0))
        else:
            wp = QuantParams(10 ** rng.uniform(-3, 0), zero_point(rng, tw, (i + 1) % 3), fmt(tw))
        bias = rng.integers(-(2**16), 2**16, o).astype(np.int32) if i % 2 == 0 else None
        acc = conv2d_int(x, w, x_zero_point=xp.zero_point, w_zero_point=wp.zero_point, **conv_kwargs(case))
        spread = float(np.abs(acc).max()) + 2**16 + 1
        yp = QuantParams(float(xp.scale) * float(np.median(wp.scale)) * spread / 150, zero_point(rng, tx, 2), fmt(tx))
        got = ort_qlinear_conv(x, xp, w, wp, yp, bias, **conv_attrs(case))
        spec = qlinear_conv(x, w, x_params=xp, w_params=wp, y_params=yp, bias=bias, **conv_kwargs(case), **ORT_FLOAT)
        np.testing.assert_array_equal(got, spec)


@pytest.mark.parametrize(("tx", "tw"), QLINEAR_CONV_TYPES, ids=lambda t: str(t))
@pytest.mark.parametrize("per_channel", [False, True], ids=["w_tensor", "w_channel"])
def test_qlinear_conv_tie_dense(tx: np.dtype[Any], tw: np.dtype[Any], per_channel: bool) -> None:
    """1x1 convolutions whose pixels are the rows of ``realise``: every output is a designed accumulator."""
    rng = np.random.default_rng(70 + 2 * QLINEAR_CONV_TYPES.index((tx, tw)) + per_channel)
    weight = 127 if HAS_VNNI or tx == tw else 63
    zx, zw = (128 if tx == U8 else 0), (128 if tw == U8 else 0)
    n = 1000 if weight == 127 else 4000
    o = 3 if per_channel else 1
    for trial in range(6):
        max_acc = min([2**25 - 1, 2**21, 2**14][trial % 3], 127 * weight * n - 2**20)
        sx = F32(10 ** rng.uniform(-3, 0))
        sw = (10 ** rng.uniform(-3, 0, o)).astype(F32)
        sy = F32(float(sx) * float(sw[0]) * max_acc / 120 * 10 ** rng.uniform(0, 0.3))
        acc = tie_dense_acc(rng, float(sx) * float(sw[0]) / float(sy), max_acc, 250)
        bias_value = int(rng.integers(-(2**20), 2**20)) if trial % 2 else 0
        rows, col = realise(acc - bias_value, n, weight, zx, zw, tx, tw)
        x = rows.T.reshape(1, n + 1, 1, rows.shape[0])  # pixel p carries row p
        w = np.repeat(col.reshape(1, n + 1, 1, 1), o, axis=0)
        bias = np.full(o, bias_value, np.int32) if trial % 2 else None
        xp = QuantParams(sx, zx, fmt(tx))
        wp = QuantParams(sw, np.full(o, zw), fmt(tw), PerAxis(0)) if per_channel else QuantParams(sw[0], zw, fmt(tw))
        yp = QuantParams(sy, 128 if tx == U8 else 0, fmt(tx))
        got = ort_qlinear_conv(x, xp, w, wp, yp, bias)
        spec = qlinear_conv(x, w, x_params=xp, w_params=wp, y_params=yp, bias=bias, **ORT_FLOAT)
        np.testing.assert_array_equal(got, spec)


def test_qlinear_conv_multiplier_formed_in_float32() -> None:
    # MULTIPLIER_VECTORS[0] as a 1x1 convolution (worked from the float32 scales): acc + bias = 220 -> 58 in
    # onnxruntime, 59 with a multiplier formed in float64; the first pixel, 240 * m = 63.8 -> 64 in both.
    x = np.array([220, 200], np.uint8).reshape(1, 1, 1, 2)
    w = np.array([1], np.int8).reshape(1, 1, 1, 1)
    xp, wp, yp = QuantParams(0.15, 0, UINT8), QuantParams([0.195], [0], INT8, PerAxis(0)), QuantParams(0.11, 0, UINT8)
    bias = np.array([20], np.int32)
    got = ort_qlinear_conv(x, xp, w, wp, yp, bias)
    assert got.ravel().tolist() == [64, 58]  # 240 -> 63.8 -> 64; 220 -> 58
    assert qlinear_conv(x, w, x_params=xp, w_params=wp, y_params=yp, bias=bias, **ORT_FLOAT).ravel().tolist() == [
        64,
        58,
    ]
    f64 = qlinear_conv(x, w, x_params=xp, w_params=wp, y_params=yp, bias=bias)
    assert f64.ravel().tolist() == [64, 59]


# --- QLinearMatMul / QLinearConv past the int32 bound: onnxruntime wraps (Accumulator.INT32_WRAP) ---------------

WRAP = {**ORT_FLOAT, "accumulator": Accumulator.INT32_WRAP}


def far_codes(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype[Any], sign: int) -> tuple[Any, int]:
    """Codes within 5 of one end of ``dtype`` and the zero point at the other end: deviations of magnitude 250..255
    with the sign ``sign``.  Returns ``(codes, zero_point)``."""
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    if sign > 0:
        return rng.integers(hi - 5, hi + 1, shape).astype(dtype), lo
    return rng.integers(lo, lo + 6, shape).astype(dtype), hi


def thin_out(rng: np.random.Generator, codes: np.ndarray, zp: int, fractions: list[float]) -> np.ndarray:
    """Row ``i`` of ``codes`` (2-D, rows first) keeps about ``fractions[i]`` of its codes; the rest become ``zp``."""
    keep = rng.random(codes.shape) < np.asarray(fractions)[:, None]
    return np.where(keep, codes, np.asarray(zp, codes.dtype)).astype(codes.dtype)


def straddles(exact: np.ndarray) -> bool:
    """Some exact values lie outside int32 and some inside."""
    outside = (exact < -(2**31)) | (exact > 2**31 - 1)
    return bool(outside.any() and not outside.all())


@pytest.mark.skipif(not HAS_VNNI, reason="past the int32 bound the extreme mixed-sign codes need a VNNI CPU")
@pytest.mark.parametrize(("ta", "tb", "ty"), QLINEAR_MATMUL_TYPES, ids=lambda t: str(t))
@pytest.mark.parametrize("opset", [10, 21])
def test_qlinear_matmul_past_int32_bound_wraps(
    ta: np.dtype[Any], tb: np.dtype[Any], ty: np.dtype[Any], opset: int
) -> None:
    """K = 36000 with codes far from their zero points: rows whose exact sums lie past +-2**31 and rows inside.
    onnxruntime's int32 accumulation wraps: it equals ``accumulator=INT32_WRAP`` with the FLOAT32 pipeline, and
    differs from the saturating and int64 results where the sum left int32."""
    rng = np.random.default_rng(80 + 7 * QLINEAR_MATMUL_TYPES.index((ta, tb, ty)) + opset)
    k = 36000
    fractions = [1.0, 0.97, 0.94, 0.9, 0.5, 0.0]
    for a_sign in (1, -1):
        a_full, za = far_codes(rng, (len(fractions), k), ta, a_sign)
        a = thin_out(rng, a_full, za, fractions)
        # column 0 deviates upwards, column 1 downwards (per-column zero points), column 2 like column 0
        b0, zb0 = far_codes(rng, (k, 1), tb, 1)
        b1, zb1 = far_codes(rng, (k, 1), tb, -1)
        b = np.concatenate([b0, b1, far_codes(rng, (k, 1), tb, 1)[0]], axis=1)
        zb = np.array([zb0, zb1, zb0])
        exact = matmul_int(a, b, lhs_zero_point=za, rhs_zero_point=zb, accumulator=Accumulator.INT64)
        assert straddles(exact)
        sa = F32(10 ** rng.uniform(-3, 0))
        sb = (10 ** rng.uniform(-3, 0) * np.array([1.0, 0.9, 0.8])).astype(F32)  # every column reaches +-100
        ap = QuantParams(sa, za, fmt(ta))
        bp = QuantParams(sb, zb, fmt(tb), PerAxis(-1))
        sy = F32(float(sa) * float(sb.max()) * 2**31 / 100)
        yp = QuantParams(sy, 128 if ty == U8 else 0, fmt(ty))
        got = ort_qlinear_matmul(a, ap, b, bp, yp, opset)
        np.testing.assert_array_equal(got, qlinear_matmul(a, b, a_params=ap, b_params=bp, y_params=yp, **WRAP))
        with pytest.raises(UnpredictableError):  # the default names no wrap
            qlinear_matmul(a, b, a_params=ap, b_params=bp, y_params=yp, **ORT_FLOAT)
        int64 = qlinear_matmul(a, b, a_params=ap, b_params=bp, y_params=yp, accumulator=Accumulator.INT64, **ORT_FLOAT)
        outside = (exact < -(2**31)) | (exact > 2**31 - 1)
        assert np.all(got[outside] != int64[outside])  # the wrap flips the sign: no other accumulator gives these
        np.testing.assert_array_equal(got[~outside], int64[~outside])
        # per tensor b (column 0 and 2 share the zero point)
        bt = b[:, [0, 2]]
        bpt = QuantParams(sb[0], zb0, fmt(tb))
        got_t = ort_qlinear_matmul(a, ap, bt, bpt, yp, opset)
        np.testing.assert_array_equal(got_t, qlinear_matmul(a, bt, a_params=ap, b_params=bpt, y_params=yp, **WRAP))


@pytest.mark.skipif(not HAS_VNNI, reason="past the int32 bound the extreme mixed-sign codes need a VNNI CPU")
@pytest.mark.parametrize(("tx", "tw"), QLINEAR_CONV_TYPES, ids=lambda t: str(t))
@pytest.mark.parametrize("per_channel", [False, True], ids=["w_tensor", "w_channel"])
def test_qlinear_conv_past_int32_bound_wraps(tx: np.dtype[Any], tw: np.dtype[Any], per_channel: bool) -> None:
    """K = C * kh * kw past the bound (1 x 1 over 36000 channels; 3 x 3 over 4000 with padding, whose border
    outputs have fewer taps), without and with a bias at the int32 limits: onnxruntime equals INT32_WRAP."""
    rng = np.random.default_rng(90 + 2 * QLINEAR_CONV_TYPES.index((tx, tw)) + per_channel)
    for c, kernel, pads in ((36000, (1, 1), (0, 0, 0, 0)), (4000, (3, 3), (1, 1, 1, 0))):
        x_full, zx = far_codes(rng, (1, c, 4, 3), tx, 1)
        keep = np.linspace(0.85, 1.0, 12).reshape(1, 1, 4, 3)  # pixels keep 85% .. 100% of their far codes
        x = np.where(rng.random((1, c, 4, 3)) < keep, x_full, np.asarray(zx, tx)).astype(tx)
        w0, zw0 = far_codes(rng, (1, c, *kernel), tw, 1)
        w1, zw1 = far_codes(rng, (1, c, *kernel), tw, -1)
        if per_channel:
            w = np.concatenate([w0, w1, far_codes(rng, (1, c, *kernel), tw, 1)[0]])
            zw: Any = np.array([zw0, zw1, zw0])
            sw = (10 ** rng.uniform(-3, 0) * np.array([1.0, 0.9, 0.8])).astype(F32)
            wp = QuantParams(sw, zw, fmt(tw), PerAxis(0))
        else:
            w = np.concatenate([w0, w0[:, ::-1], far_codes(rng, (1, c, *kernel), tw, 1)[0]])
            zw = zw0
            wp = QuantParams(10 ** rng.uniform(-3, 0), zw, fmt(tw))
        kwargs = {"padding": pads}
        exact = conv2d_int(x, w, x_zero_point=zx, w_zero_point=zw, accumulator=Accumulator.INT64, **kwargs)
        assert straddles(exact)
        xp = QuantParams(10 ** rng.uniform(-3, 0), zx, fmt(tx))
        yp = QuantParams(float(xp.scale) * float(wp.scale.max()) * 2**31 / 100, 128 if tx == U8 else 0, fmt(tx))
        attrs = {"kernel_shape": kernel, "pads": onnx_pads(pads)}
        for bias in (None, np.array([2**31 - 1, -(2**31), 12345], np.int32)):
            got = ort_qlinear_conv(x, xp, w, wp, yp, bias, **attrs)
            spec = qlinear_conv(x, w, x_params=xp, w_params=wp, y_params=yp, bias=bias, **kwargs, **WRAP)
            np.testing.assert_array_equal(got, spec)
            int64 = qlinear_conv(
                x,
                w,
                x_params=xp,
                w_params=wp,
                y_params=yp,
                bias=bias,
                accumulator=Accumulator.INT64,
                **kwargs,
                **ORT_FLOAT,
            )
            assert np.any(got != int64)


@pytest.mark.parametrize(("tx", "tw"), QLINEAR_CONV_TYPES, ids=lambda t: str(t))
@pytest.mark.parametrize("groups", [1, 4], ids=["dense", "depthwise"])
def test_qlinear_conv_bias_overflow_wraps(tx: np.dtype[Any], tw: np.dtype[Any], groups: int) -> None:
    """Small K, a bias that takes accumulator plus bias past +-2**31 on some outputs of a channel and not others:
    onnxruntime adds it modulo 2**32 (INT32_WRAP), not saturating (INT32_SATURATE) and not in int64 or float32."""
    rng = np.random.default_rng(100 + 2 * QLINEAR_CONV_TYPES.index((tx, tw)) + groups)
    c = o = 4
    x = codes(rng, (2, c, 6, 5), tx, tw)
    w = codes(rng, (o, c // groups, 3, 3), tw, tx)
    zx, zw = zero_point(rng, tx, 2), zero_point(rng, tw, 2)
    kwargs = {"padding": (1, 1, 1, 1), "groups": groups}
    acc = conv2d_int(x, w, x_zero_point=zx, w_zero_point=zw, **kwargs).astype(np.int64)
    median = np.median(acc, axis=(0, 2, 3)).astype(np.int64)
    # channels 0, 1: the median output lands on INT32_MAX (INT32_MIN if it is negative), so about half of the
    # outputs leave int32; channels 2, 3: the bias at the limits
    edge = np.where(median[:2] >= 0, 2**31 - 1, -(2**31))
    bias = np.array([*(edge - median[:2]), 2**31 - 1, -(2**31)], np.int64).astype(np.int32)
    total = acc + bias.astype(np.int64).reshape(1, o, 1, 1)
    assert straddles(total[:, 0])
    assert straddles(total[:, 1])
    xp = QuantParams(0.5, zx, fmt(tx))
    wp = QuantParams(0.25, zw, fmt(tw))
    yp = QuantParams(2.0**26, 128 if tx == U8 else 0, fmt(tx))  # M = 2**-29: +-2**31 -> +-4
    got = ort_qlinear_conv(x, xp, w, wp, yp, bias, kernel_shape=(3, 3), pads=(1, 1, 1, 1), group=groups)
    spec = qlinear_conv(x, w, x_params=xp, w_params=wp, y_params=yp, bias=bias, **kwargs, **WRAP)
    np.testing.assert_array_equal(got, spec)
    saturate = qlinear_conv(
        x,
        w,
        x_params=xp,
        w_params=wp,
        y_params=yp,
        bias=bias,
        accumulator=Accumulator.INT32_SATURATE,
        **kwargs,
        **ORT_FLOAT,
    )
    outside = (total < -(2**31)) | (total > 2**31 - 1)
    assert np.all(got[outside] != saturate[outside])
    np.testing.assert_array_equal(got[~outside], saturate[~outside])
    with pytest.raises(UnpredictableError) as info:
        qlinear_conv(x, w, x_params=xp, w_params=wp, y_params=yp, bias=bias, **kwargs, **ORT_FLOAT)
    assert info.value.condition == "accumulator_overflow"
