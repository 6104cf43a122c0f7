"""Peers of refquant.spec.dynamic: the ONNX reference evaluator (onnx 1.23.2) and onnxruntime 1.32's
DynamicQuantizeLinear, bit for bit; the all-zero input of each (1/255 against 1.0); what each peer does with the
inputs refquant refuses (recorded, docs/spec/dynamic.md §2-§3); torch 2.13's per-token quantized_decomposed
ops against dynamic_quantize_per_row; and onnxruntime's DynamicQuantizeMatMul, whose activation quantization is
dynamic_quantize_linear."""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refquant.spec.affine import ScaleApplication
from refquant.spec.dynamic import dynamic_quantize_linear, dynamic_quantize_per_row
from refquant.spec.qparams import ZeroRange

F32 = np.float32
FLT_MIN = F32(2.0**-126)


def bits32(x: Any) -> Any:
    return np.asarray(x, F32).view(np.uint32).tolist()


def _model() -> Any:
    from onnx import TensorProto, helper

    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "s", "z"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [
            helper.make_tensor_value_info("y", TensorProto.UINT8, None),
            helper.make_tensor_value_info("s", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("z", TensorProto.UINT8, None),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.fixture(scope="module")
def onnx_ref() -> Any:
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    evaluator = ReferenceEvaluator(_model())

    def run(x: np.ndarray) -> list[np.ndarray]:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return [np.asarray(v) for v in evaluator.run(None, {"x": x})]

    return run


@pytest.fixture(scope="module")
def ort_run() -> Any:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(_model().SerializeToString(), providers=["CPUExecutionProvider"])

    def run(x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(v) for v in session.run(None, {"x": x})]

    return run


def _assert_same(mine: tuple[np.ndarray, np.ndarray, np.ndarray], peer: list[np.ndarray]) -> None:
    np.testing.assert_array_equal(mine[0], peer[0])
    assert bits32(mine[1]) == bits32(peer[1])
    assert int(mine[2]) == int(peer[2])


# Tie-dense inputs: small integers and half-integers times a power of two put x / scale and lo / scale on or
# next to .5; wide floats cover many binades. No subnormals (their scales are the documented divergence).
tie_elements = st.builds(lambda k, e: F32(k / 2.0 * 2.0**e), st.integers(-600, 600), st.integers(-10, 10))
wide_elements = st.floats(-(2.0**60), 2.0**60, width=32, allow_subnormal=False).filter(
    lambda v: v == 0 or abs(v) > 2**-60
)
inputs = hnp.arrays(
    F32, hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=8), elements=tie_elements | wide_elements
)


@settings(max_examples=120)
@given(x=inputs)
def test_onnx_reference_bit_for_bit(onnx_ref: Any, x: np.ndarray) -> None:
    if not np.any(x):
        return  # the all-zero input: its own test below
    _assert_same(dynamic_quantize_linear(x), onnx_ref(x))


@settings(max_examples=120)
@given(x=inputs)
def test_onnxruntime_bit_for_bit(ort_run: Any, x: np.ndarray) -> None:
    if not np.any(x):
        return
    _assert_same(dynamic_quantize_linear(x, zero_range=ZeroRange.SCALE_ONE), ort_run(x))
    # Away from the zero range the two zero-range rules give identical results.
    _assert_same(dynamic_quantize_linear(x), ort_run(x))


@pytest.mark.parametrize("k", range(1, 64))
def test_zero_point_ties_against_both_peers(onnx_ref: Any, ort_run: Any, k: int) -> None:
    x = np.array([-k / 2.0, 255 - k / 2.0, 0.25 * k], F32)
    _assert_same(dynamic_quantize_linear(x), onnx_ref(x))
    _assert_same(dynamic_quantize_linear(x), ort_run(x))


@pytest.mark.parametrize("shape", [(1,), (3,), (2, 3)])
def test_all_zero_onnx_reference_gives_one_over_255(onnx_ref: Any, shape: tuple[int, ...]) -> None:
    x = np.zeros(shape, F32)
    peer = onnx_ref(x)
    assert bits32(peer[1]) == bits32(F32(1) / F32(255))
    _assert_same(dynamic_quantize_linear(x), peer)


@pytest.mark.parametrize("shape", [(1,), (3,), (2, 3)])
def test_all_zero_onnxruntime_gives_one(ort_run: Any, shape: tuple[int, ...]) -> None:
    x = np.zeros(shape, F32)
    peer = ort_run(x)
    assert float(peer[1]) == 1.0
    _assert_same(dynamic_quantize_linear(x, zero_range=ZeroRange.SCALE_ONE), peer)


def test_recorded_peer_answers_on_refused_inputs(onnx_ref: Any, ort_run: Any) -> None:
    """docs/spec/dynamic.md §2-§3: what each peer returns where refquant raises or applies the zero-range rule."""
    # A subnormal scale (range 6.82044e-40 / 255) in both peers: code 255.
    for run in (onnx_ref, ort_run):
        y, s, z = run(np.array([6.82044e-40], F32))
        assert 0 < float(s) < FLT_MIN
        assert y.tolist() == [255]
        assert int(z) == 0
    # The scale underflows to 0: both return scale 0 and zero point 255.
    for run in (onnx_ref, ort_run):
        y, s, z = run(np.array([3e-45], F32))
        assert float(s) == 0.0
        assert int(z) == 255
    # NaN: the reference propagates it into the scale; onnxruntime leaves it out of the range.
    y, s, z = onnx_ref(np.array([np.nan, 1.0], F32))
    assert np.isnan(s)
    assert int(z) == 255
    assert y.tolist() == [0, 0]
    y, s, z = ort_run(np.array([np.nan, 1.0], F32))
    assert bits32(s) == bits32(F32(1) / F32(255))
    assert int(z) == 0
    assert y.tolist() == [0, 255]
    # An infinity: both return an infinite scale and codes 0.
    for run in (onnx_ref, ort_run):
        y, s, z = run(np.array([np.inf, 1.0], F32))
        assert np.isinf(s)
        assert y.tolist() == [0, 0]


# ---------------------------------------------------------------------------------------------------------------
# torch 2.13 quantized_decomposed per-token ops


def _torch_per_token(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    torch = pytest.importorskip("torch")
    importlib.import_module("torch.ao.quantization.fx._decomposed")  # registers the quantized_decomposed ops

    t = torch.from_numpy(x)
    scales, zps = torch.ops.quantized_decomposed.choose_qparams_per_token(t, torch.int8)
    q = torch.ops.quantized_decomposed.quantize_per_token(t, scales, zps, -128, 127, torch.int8)
    return q.numpy(), scales.numpy().reshape(-1)


row_elements = st.builds(lambda k, e: F32(k / 4.0 * 2.0**e), st.integers(-520, 520), st.integers(-8, 8))


@settings(max_examples=80)
@given(x=hnp.arrays(F32, st.tuples(st.integers(1, 6), st.integers(1, 9)), elements=row_elements))
def test_torch_per_token_matches_rows_above_the_floor(x: np.ndarray) -> None:
    """torch clamps amax at 1e-5 before dividing by 127 and multiplies by the float32 reciprocal: for every row with
    amax >= 1e-5 that is dynamic_quantize_per_row with RECIPROCAL_MULTIPLY, bit for bit."""
    keep = np.max(np.abs(x), axis=1) >= F32(1e-5)
    if not np.any(keep):
        return
    x = np.ascontiguousarray(x[keep])
    q_torch, s_torch = _torch_per_token(x)
    q, p = dynamic_quantize_per_row(x, scale_application=ScaleApplication.RECIPROCAL_MULTIPLY)
    np.testing.assert_array_equal(q, q_torch)
    assert bits32(p.scale) == bits32(s_torch)


def test_torch_per_token_zero_row_scale_differs() -> None:
    """A zero row: torch's floor comes before the division (scale 1e-5 / 127), refquant's zero-range rule gives 1.0;
    the codes are 0 in both."""
    x = np.array([[0.0, 0.0, 0.0], [0.5, -1.0, 0.25]], F32)
    q_torch, s_torch = _torch_per_token(x)
    q, p = dynamic_quantize_per_row(x, scale_application=ScaleApplication.RECIPROCAL_MULTIPLY)
    np.testing.assert_array_equal(q, q_torch)
    assert bits32(s_torch[0]) == bits32(F32(1e-5) / F32(127))
    assert float(p.scale[0]) == 1.0
    assert bits32(p.scale[1]) == bits32(s_torch[1])


# ---------------------------------------------------------------------------------------------------------------
# onnxruntime com.microsoft DynamicQuantizeMatMul: its activation quantization is dynamic_quantize_linear


def _dynamic_quantize_matmul(a: np.ndarray, b: np.ndarray, b_scale: np.ndarray, b_zp: np.ndarray) -> np.ndarray:
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node("DynamicQuantizeMatMul", ["A", "B", "b_scale", "b_zp"], ["Y"], domain="com.microsoft")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        initializer=[
            numpy_helper.from_array(b, "B"),
            numpy_helper.from_array(b_scale, "b_scale"),
            numpy_helper.from_array(b_zp, "b_zp"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"A": a})[0])


@pytest.mark.parametrize("seed", range(24))
def test_onnxruntime_dynamic_quantize_matmul(seed: int) -> None:
    """Y = float32(acc) * (a_scale * b_scale[n]) with acc = sum_k (qa - za) * (qb - zb) exactly and (qa, a_scale, za)
    = dynamic_quantize_linear(A): bit for bit, per-tensor and per-column b_scale, int8 and uint8 B."""
    rng = np.random.default_rng(seed)
    m, k, n = int(rng.integers(1, 6)), int(rng.integers(1, 300)), int(rng.integers(1, 6))
    a = (rng.integers(-40, 40, (m, k)) / 2 * 2.0 ** int(rng.integers(-5, 5))).astype(F32)  # tie-dense
    if seed % 2:
        b = rng.integers(0, 256, (k, n)).astype(np.uint8)
        b_zp = rng.integers(0, 256, n).astype(np.uint8)
    else:
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
        b_zp = rng.integers(-128, 128, n).astype(np.int8)
    b_scale = rng.uniform(0.001, 0.1, n).astype(F32)
    if seed % 3 == 0:
        b_scale, b_zp = b_scale[:1], b_zp[:1]
    peer = _dynamic_quantize_matmul(a, b, b_scale, b_zp)
    qa, sa, za = dynamic_quantize_linear(a)
    acc = (qa.astype(np.int64) - int(za)) @ (b.astype(np.int64) - b_zp.astype(np.int64))
    mine = np.asarray(acc.astype(F32) * (F32(sa) * b_scale), F32)
    assert bits32(mine) == bits32(peer)
