"""Peer adapter: onnx's ``onnx.reference.ReferenceEvaluator`` (the ONNX reference implementation, in numpy).

One single-node ONNX model per record (QuantizeLinear, DequantizeLinear, MatMulInteger, ConvInteger,
QLinearMatMul, QLinearConv; fake_quantize is QuantizeLinear then DequantizeLinear), built with ``onnx.helper``.
The record's main data input is fed, every other input is an initializer (ONNX wants the zero point in the
output's type: a zero point the type cannot hold is not covered).  Sub-byte codes leave the graph through a
Cast to int8.  ``OnnxPeer`` is shared with the onnxruntime adapter, which runs the same models.

What is covered (docs/spec/divergences.md gives the measurements behind each native choice):

- quantize / fake_quantize: uint8, int8, uint16, int16, uint4, int4 (opset 21), uint2, int2 (opset 25); per
  tensor, per axis, blocked; float32 input.  Native: half to even, divide, zero point after rounding, saturate,
  float32.  No narrow range, no int32 output, no stochastic rounding, no NaN policy for the evaluator.
- dequantize: the same formats and int32.
- matmul_int / conv2d_int: uint8 and int8 operands; NHWC records are transposed to NCHW and back (exact).  The
  accumulation is int32; the records' ``int32`` and ``int32_wrap`` accumulators are covered.
- qlinear_matmul / qlinear_conv: 8-bit operands, per-tensor activations, per-column / per-output-channel weights.
  Native requantization of the evaluator: ``rounding=float64, multiplier_precision=float32`` (section 12).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from bench.peer_adapters import NotCovered, check_options, fits, fmt_of, guarded
from refquant.spec.formats import IntFormat

__all__ = ["OnnxPeer", "conv2d_int", "dequantize", "fake_quantize", "matmul_int", "qlinear_conv", "qlinear_matmul"]

Array = npt.NDArray[Any]
Params = Mapping[str, Any]
Inputs = Mapping[str, Array]

QUANTIZE_NATIVE: Final[dict[str, tuple[object, ...]]] = {
    "rounding": ("half_to_even",),
    "scale_application": ("divide",),
    "zero_point_order": ("after_rounding",),
    "overflow": ("saturate",),
    "precision": ("float32",),
}
ACCUMULATORS: Final = ("int32", "int32_wrap")


def _onnx() -> Any:
    import onnx

    return onnx


def onnx_type(fmt: IntFormat) -> int:
    """The ONNX element type of a (not narrow) format; ``NotCovered`` for one ONNX has no type for."""
    tp = _onnx().TensorProto
    table = {
        (8, True): tp.INT8,
        (8, False): tp.UINT8,
        (16, True): tp.INT16,
        (16, False): tp.UINT16,
        (4, True): tp.INT4,
        (4, False): tp.UINT4,
        (2, True): tp.INT2,
        (2, False): tp.UINT2,
        (32, True): tp.INT32,
    }
    if fmt.narrow_range:
        raise NotCovered(f"ONNX has no narrow-range type ({fmt.name})")
    code = table.get((fmt.bits, fmt.signed))
    if code is None:
        raise NotCovered(f"ONNX has no element type for {fmt.name}")
    return int(code)


def dtype_type(dtype: np.dtype[Any]) -> int:
    """The ONNX element type of a numpy dtype the graphs here use."""
    tp = _onnx().TensorProto
    table = {"float32": tp.FLOAT, "uint8": tp.UINT8, "int8": tp.INT8, "int32": tp.INT32, "float16": tp.FLOAT16}
    if dtype.name not in table:
        raise NotCovered(f"ONNX operand of dtype {dtype.name} is not taken here")
    return int(table[dtype.name])


@dataclass(frozen=True)
class Tensor:
    """One graph input: its name, values and ONNX element type; ``feed`` when the peer is to be fed it."""

    name: str
    value: Array
    code: int
    feed: bool = False


def _initializer(t: Tensor) -> Any:
    onnx = _onnx()
    if t.value.dtype.kind == "f":
        proto = onnx.numpy_helper.from_array(np.ascontiguousarray(t.value), t.name)  # raw bytes: bit patterns kept
        return proto
    values = np.asarray(t.value, np.int64).ravel().tolist()
    return onnx.helper.make_tensor(t.name, t.code, list(t.value.shape), values)


@dataclass(frozen=True)
class OnnxPeer:
    """An ONNX runtime (the reference evaluator or onnxruntime) behind the adapter functions."""

    name: str
    execute: Callable[[Any, dict[str, Array]], Array]
    feedable: tuple[str, ...]
    nan_native: tuple[str, ...]
    profiles: tuple[str, ...]
    requant_native: Mapping[str, tuple[object, ...]]
    scalar_zero_points_only: bool = False

    # --- graphs ----------------------------------------------------------------------------------------------

    def run_node(
        self,
        op: str,
        tensors: list[Tensor | None],
        out_code: int,
        opset: int,
        attrs: Mapping[str, Any] | None = None,
        extra: list[Any] | None = None,
    ) -> Array:
        """Run one node ``op`` with attributes ``attrs`` on ``tensors`` (``None``: an omitted optional input) and
        return its output; a sub-byte output goes through a Cast to int8.  ``extra`` nodes follow the first (they
        read ``y0``)."""
        onnx = _onnx()
        h = onnx.helper
        names = [t.name if t is not None else "" for t in tensors]
        nodes = [h.make_node(op, names, ["y0"], **(attrs or {})), *(extra or [])]
        last = nodes[-1].output[0]
        tp = onnx.TensorProto
        if out_code in (tp.INT4, tp.UINT4, tp.INT2, tp.UINT2):
            nodes.append(h.make_node("Cast", [last], ["y"], to=tp.INT8))
            out_code = tp.INT8
        else:
            nodes.append(h.make_node("Identity", [last], ["y"]))
        present = [t for t in tensors if t is not None]
        feeds = {
            t.name: np.ascontiguousarray(t.value) for t in present if t.feed and t.value.dtype.name in self.feedable
        }
        graph = h.make_graph(
            nodes,
            "record",
            [h.make_tensor_value_info(t.name, t.code, list(t.value.shape)) for t in present if t.name in feeds],
            [h.make_tensor_value_info("y", out_code, None)],
            initializer=[_initializer(t) for t in present if t.name not in feeds],
        )
        model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
        model.ir_version = 10 if opset < 25 else 11
        return np.asarray(self.execute(model, feeds))

    # --- quantize, dequantize, fake_quantize -----------------------------------------------------------------

    def _affine_attrs(self, params: Params) -> dict[str, int]:
        kind = params.get("granularity", "per_tensor")
        if kind == "per_tensor":
            return {}
        if kind == "per_axis":
            return {"axis": int(params["axis"])}
        if kind == "per_block":
            if int(params["block_size"]) < 1:  # ONNX reads block_size 0 as "not blocked", not as an invalid block
                raise NotCovered(f"block_size={params['block_size']!r}: ONNX has no invalid block size to refuse")
            return {"axis": int(params["axis"]), "block_size": int(params["block_size"])}
        raise NotCovered(f"granularity {kind!r}")

    def _quantize_checks(self, params: Params, inputs: Inputs) -> IntFormat:
        check_options(params, {**QUANTIZE_NATIVE, "nan_policy": self.nan_native, "profile": self.profiles}, self.name)
        if "uniform" in inputs:
            raise NotCovered(f"{self.name} has no stochastic rounding")
        fmt = fmt_of(params)
        if fmt.bits == 32:
            raise NotCovered("QuantizeLinear has no int32 output")
        if inputs["x"].dtype != np.float32:
            raise NotCovered(f"x of dtype {inputs['x'].dtype} (the scale would have to be converted to it)")
        return fmt

    def _zero_point(self, inputs: Inputs, fmt: IntFormat) -> Tensor:
        zp = inputs["zero_point"]
        if not fits(zp, fmt):
            raise NotCovered(f"a zero point outside {fmt.name} cannot be given in the output type")
        return Tensor("z", zp, onnx_type(fmt))

    def _opset(self, fmt: IntFormat) -> int:
        return 25 if fmt.bits == 2 else 21

    def quantize(self, params: Params, inputs: Inputs) -> dict[str, Array]:
        fmt = self._quantize_checks(params, inputs)
        code = onnx_type(fmt)
        tensors = [
            Tensor("x", inputs["x"], dtype_type(inputs["x"].dtype), feed=True),
            Tensor("s", inputs["scale"], dtype_type(inputs["scale"].dtype)),
            self._zero_point(inputs, fmt),
        ]
        q = self.run_node("QuantizeLinear", list(tensors), code, self._opset(fmt), self._affine_attrs(params))
        return {"q": q.astype(fmt.storage_dtype)}

    def fake_quantize(self, params: Params, inputs: Inputs) -> dict[str, Array]:
        fmt = self._quantize_checks(params, inputs)
        attrs = self._affine_attrs(params)
        dq = _onnx().helper.make_node("DequantizeLinear", ["y0", "s", "z"], ["y1"], **attrs)
        tensors: list[Tensor | None] = [
            Tensor("x", inputs["x"], dtype_type(inputs["x"].dtype), feed=True),
            Tensor("s", inputs["scale"], dtype_type(inputs["scale"].dtype)),
            self._zero_point(inputs, fmt),
        ]
        y = self.run_node("QuantizeLinear", tensors, _onnx().TensorProto.FLOAT, self._opset(fmt), attrs, [dq])
        return {"y": y.astype(np.float32)}

    def dequantize(self, params: Params, inputs: Inputs) -> dict[str, Array]:
        check_options(params, {"profile": ()}, self.name)
        fmt = fmt_of(params)
        code = onnx_type(fmt)
        q = inputs["q"]
        if q.dtype.kind not in "iu" or not fits(q, fmt):
            raise NotCovered(f"codes that {fmt.name} cannot hold")
        tensors: list[Tensor | None] = [
            Tensor("q", q.astype(fmt.storage_dtype), code, feed=fmt.bits >= 8),
            Tensor("s", inputs["scale"], dtype_type(inputs["scale"].dtype)),
            self._zero_point(inputs, fmt),
        ]
        x = self.run_node(
            "DequantizeLinear", tensors, _onnx().TensorProto.FLOAT, self._opset(fmt), self._affine_attrs(params)
        )
        return {"x": x.astype(np.float32)}

    # --- integer operations ----------------------------------------------------------------------------------

    def _operand(self, name: str, value: Array, feed: bool = False) -> Tensor:
        if value.dtype.name not in ("uint8", "int8"):
            raise NotCovered(f"operand {name} of dtype {value.dtype} (ONNX takes uint8 and int8)")
        return Tensor(name, value, dtype_type(value.dtype), feed)

    def _zp(self, name: str, inputs: Inputs, like: str) -> Tensor | None:
        if name not in inputs:
            return None
        z = inputs[name]
        if z.dtype != inputs[like].dtype:
            raise NotCovered(f"{name} of dtype {z.dtype} (ONNX wants the operand's type {inputs[like].dtype})")
        if self.scalar_zero_points_only and z.size != 1:
            raise NotCovered(f"{self.name} takes only a per-tensor {name}")
        return Tensor(name, z, dtype_type(z.dtype))

    def matmul_int(self, params: Params, inputs: Inputs) -> dict[str, Array]:
        check_options(params, {"accumulator": ACCUMULATORS}, self.name)
        lhs, rhs = inputs["lhs"], inputs["rhs"]
        tensors = [
            self._operand("lhs", lhs, feed=True),
            self._operand("rhs", rhs),
            self._zp("lhs_zero_point", inputs, "lhs"),
            self._zp("rhs_zero_point", inputs, "rhs"),
        ]
        while tensors[-1] is None:
            tensors.pop()
        acc = self.run_node("MatMulInteger", tensors, _onnx().TensorProto.INT32, 10)
        return {"acc": acc.astype(np.int32)}

    def _conv_attrs(self, params: Params, w: Array) -> dict[str, Any]:
        top, bottom, left, right = params.get("padding", [0, 0, 0, 0])
        return {
            "strides": list(params.get("stride", [1, 1])),
            "pads": [top, left, bottom, right],
            "dilations": list(params.get("dilation", [1, 1])),
            "group": int(params.get("groups", 1)),
            "kernel_shape": list(w.shape[2:]),
        }

    @staticmethod
    def _nchw(params: Params, x: Array, w: Array) -> tuple[Array, Array, bool]:
        layout = params.get("layout", "nchw")
        if layout == "nhwc":  # x NHWC -> NCHW, w OHWI -> OIHW: an exact transposition
            return x.transpose(0, 3, 1, 2), w.transpose(0, 3, 1, 2), True
        if layout != "nchw":
            raise NotCovered(f"layout {layout!r}")
        return x, w, False

    def conv2d_int(self, params: Params, inputs: Inputs) -> dict[str, Array]:
        check_options(params, {"accumulator": ACCUMULATORS}, self.name)
        if inputs["x"].ndim != 4 or inputs["w"].ndim != 4:
            raise NotCovered("ConvInteger here takes 4-D x and w")
        x, w, back = self._nchw(params, inputs["x"], inputs["w"])
        tensors = [
            self._operand("x", x, feed=True),
            self._operand("w", w),
            self._zp("x_zero_point", inputs, "x"),
            self._zp("w_zero_point", inputs, "w"),
        ]
        while tensors[-1] is None:
            tensors.pop()
        acc = self.run_node("ConvInteger", tensors, _onnx().TensorProto.INT32, 10, self._conv_attrs(params, w))
        return {"acc": (acc.transpose(0, 2, 3, 1) if back else acc).astype(np.int32)}

    def _requant_checks(self, params: Params) -> None:
        check_options(params, {**self.requant_native, "accumulator": ACCUMULATORS}, self.name)

    def _quantized_operand(
        self, params: Params, inputs: Inputs, name: str, value: Array, per_axis_ok: bool
    ) -> list[Tensor]:
        fmt = fmt_of(params, f"{name}_fmt")
        if fmt.bits != 8:
            raise NotCovered(f"{name}_fmt={fmt.name} (the QLinear ops take 8-bit codes)")
        code = onnx_type(fmt)
        if bool(params.get(f"{name}_per_axis", False)) and not per_axis_ok:
            raise NotCovered(f"{self.name}: no per-axis {name} parameters")
        zp = inputs[f"{name}_zero_point"]
        if not fits(zp, fmt):
            raise NotCovered(f"{name}_zero_point outside {fmt.name}")
        out = [
            Tensor(f"{name}_scale", inputs[f"{name}_scale"], dtype_type(inputs[f"{name}_scale"].dtype)),
            Tensor(f"{name}_zero_point", zp.astype(fmt.storage_dtype), code),
        ]
        if value.size:
            if value.dtype != fmt.storage_dtype:
                raise NotCovered(f"{name} of dtype {value.dtype} for {fmt.name}")
            out.insert(0, Tensor(name, value, code, feed=name in ("a", "x")))
        return out

    def qlinear_matmul(self, params: Params, inputs: Inputs) -> dict[str, Array]:
        self._requant_checks(params)
        a = self._quantized_operand(params, inputs, "a", inputs["a"], per_axis_ok=False)
        b = self._quantized_operand(params, inputs, "b", inputs["b"], per_axis_ok=True)
        y = self._quantized_operand(params, inputs, "y", np.zeros(0), per_axis_ok=False)
        y_fmt = fmt_of(params, "y_fmt")
        out = self.run_node("QLinearMatMul", [*a, *b, *y], onnx_type(y_fmt), 21)
        return {"y": out.astype(y_fmt.storage_dtype)}

    def qlinear_conv(self, params: Params, inputs: Inputs) -> dict[str, Array]:
        self._requant_checks(params)
        if params.get("activation_min") is not None or params.get("activation_max") is not None:
            raise NotCovered("QLinearConv has no fused activation bounds")
        x, w, back = self._nchw(params, inputs["x"], inputs["w"])
        xs = self._quantized_operand(params, inputs, "x", x, per_axis_ok=False)
        ws = self._quantized_operand(params, inputs, "w", w, per_axis_ok=True)
        ys = self._quantized_operand(params, inputs, "y", np.zeros(0), per_axis_ok=False)
        tensors: list[Tensor | None] = [*xs, *ws, *ys]
        if "bias" in inputs:
            if inputs["bias"].dtype != np.int32:
                raise NotCovered("QLinearConv takes an int32 bias")
            tensors.append(Tensor("bias", inputs["bias"], dtype_type(inputs["bias"].dtype)))
        y_fmt = fmt_of(params, "y_fmt")
        out = self.run_node("QLinearConv", tensors, onnx_type(y_fmt), 10, self._conv_attrs(params, w))
        return {"y": (out.transpose(0, 2, 3, 1) if back else out).astype(y_fmt.storage_dtype)}


def _evaluate(model: Any, feeds: dict[str, Array]) -> Array:
    from onnx.reference import ReferenceEvaluator

    evaluator: Any = ReferenceEvaluator(model)
    return np.asarray(evaluator.run(None, feeds)[0])


PEER: Final = OnnxPeer(
    name="onnx ReferenceEvaluator",
    execute=_evaluate,
    feedable=("float32", "float16", "uint8", "int8", "uint16", "int16", "int32"),
    nan_native=(),
    profiles=("onnx",),
    requant_native={"rounding": ("float64",), "multiplier_precision": ("float32",)},
)

quantize = guarded(PEER.quantize)
dequantize = guarded(PEER.dequantize)
fake_quantize = guarded(PEER.fake_quantize)
matmul_int = guarded(PEER.matmul_int)
conv2d_int = guarded(PEER.conv2d_int)
qlinear_matmul = guarded(PEER.qlinear_matmul)
qlinear_conv = guarded(PEER.qlinear_conv)
