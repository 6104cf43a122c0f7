"""Peer adapter: onnxruntime's CPU execution provider, on the same single-node models as the ONNX reference evaluator.

The models are those of ``bench.peer_adapters.onnx_reference`` (``OnnxPeer``), run by an ``InferenceSession`` with
graph optimizations disabled, so that each record meets the operator's kernel as written (no constant folding, no
QDQ fusion).  onnxruntime cannot feed sub-byte arrays: those inputs are initializers.

Native semantics (docs/spec/divergences.md): quantize as the ONNX schema with NaN -> qmin (so an explicit
``nan_policy=to_qmin`` and the ``ort`` profile are covered, section 5); MatMulInteger and ConvInteger take only
per-tensor zero points (section 14: per-row / per-channel ones are not covered); QLinearMatMul and QLinearConv
requantize with ``rounding=float32, multiplier_precision=float32`` (sections 10 and 11) and wrap the int32
accumulator (section 14).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from bench.peer_adapters import NotCovered, guarded
from bench.peer_adapters.onnx_reference import OnnxPeer

__all__ = ["conv2d_int", "dequantize", "fake_quantize", "matmul_int", "qlinear_conv", "qlinear_matmul", "quantize"]


def _run(model: Any, feeds: dict[str, npt.NDArray[Any]]) -> npt.NDArray[Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4  # the peer's refusals are reported as PeerError, not logged
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except ort.capi.onnxruntime_pybind11_state.NotImplemented as error:  # no kernel for this type combination
        raise NotCovered(f"onnxruntime has no kernel for this node: {error}") from None
    return np.asarray(session.run(None, feeds)[0])


PEER: Final = OnnxPeer(
    name="onnxruntime",
    execute=_run,
    feedable=("float32", "float16", "uint8", "int8", "uint16", "int16", "int32"),
    nan_native=("to_qmin",),
    profiles=("onnx", "ort"),
    requant_native={"rounding": ("float32",), "multiplier_precision": ("float32",)},
    scalar_zero_points_only=True,
)

quantize = guarded(PEER.quantize)
dequantize = guarded(PEER.dequantize)
fake_quantize = guarded(PEER.fake_quantize)
matmul_int = guarded(PEER.matmul_int)
conv2d_int = guarded(PEER.conv2d_int)
qlinear_matmul = guarded(PEER.qlinear_matmul)
qlinear_conv = guarded(PEER.qlinear_conv)
