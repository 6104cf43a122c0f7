"""Peer adapter: torch 2.13 (CPU) quantization functions.

- quantize: ``torch.quantize_per_tensor`` (quint8, qint8, qint32, quint4x2, quint2x4) and
  ``torch.quantize_per_channel`` (quint8, qint8, qint32), codes read with ``int_repr`` (sub-byte codes unpacked,
  first element in the low bits).  Native (docs/spec/divergences.md sections 2 to 4): half to even, the float32
  reciprocal of the float32 scale, saturate, float32; the zero point enters fused (8-bit per tensor), before
  rounding (qint32, per channel) or after rounding (sub-byte).  A record that names another option, a NaN policy
  (torch's NaN codes are undefined behaviour, section 5), per-block parameters or a non-float32 input is not covered.
- dequantize: a quantized tensor made from the codes (``torch._make_per_tensor_quantized_tensor``,
  ``torch._make_per_channel_quantized_tensor``), then ``.dequantize()``; quint8, qint8, qint32.
- fake_quantize: ``torch.fake_quantize_per_tensor_affine`` / ``torch.fake_quantize_per_channel_affine`` with
  ``quant_min, quant_max`` of the format (narrow range included); native: half to even, reciprocal multiply, zero
  point after rounding.
- matmul_int: ``torch._int_mm`` (uint8 or int8 lhs, int8 rhs, no zero points; the int32 sum wraps, section 14).
- binarize: ``torch.sign`` cast to int8, which is ``sign_zero=zero`` (section 18.1).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from bench.peer_adapters import NotCovered, check_options, fits, fmt_of, guarded
from refquant.spec.formats import IntFormat

__all__ = ["binarize", "dequantize", "fake_quantize", "matmul_int", "quantize"]

Array = npt.NDArray[Any]
Params = Mapping[str, Any]
Inputs = Mapping[str, Array]
PEER: Final = "torch"


def _torch() -> Any:
    import torch

    return torch


def _qdtype(fmt: IntFormat, per_channel: bool) -> Any:
    torch = _torch()
    table = {(8, False): torch.quint8, (8, True): torch.qint8, (32, True): torch.qint32}
    if not per_channel:
        table.update({(4, False): torch.quint4x2, (2, False): torch.quint2x4})
    dtype = table.get((fmt.bits, fmt.signed))
    if dtype is None or fmt.narrow_range:
        where = "quantize_per_channel" if per_channel else "quantize_per_tensor"
        raise NotCovered(f"torch {where} has no dtype for {fmt.name}")
    return dtype


def _zero_point_order(fmt: IntFormat, per_channel: bool) -> str:
    if per_channel or fmt.bits == 32:
        return "before_rounding"
    return "fused_multiply_add" if fmt.bits == 8 else "after_rounding"


def _axis(params: Params, ndim: int) -> int:
    axis = int(params["axis"])
    return axis + ndim if -ndim <= axis < 0 else axis


def _per_channel(params: Params) -> bool:
    kind = params.get("granularity", "per_tensor")
    if kind not in ("per_tensor", "per_axis"):
        raise NotCovered(f"torch has no {kind} quantization")
    return bool(kind == "per_axis")


def _float32_input(inputs: Inputs) -> Array:
    x = inputs["x"]
    if x.dtype != np.float32:
        raise NotCovered(f"x of dtype {x.dtype}: torch quantizes float32 tensors only")
    return x


def _unpack(codes: Array, bits: int, n: int) -> Array:
    per = 8 // bits
    b = codes.astype(np.int64).reshape(-1)
    return np.stack([(b >> (bits * i)) & ((1 << bits) - 1) for i in range(per)], -1).reshape(-1)[:n]


def _quantize(params: Params, inputs: Inputs) -> dict[str, Array]:
    fmt = fmt_of(params)
    per_channel = _per_channel(params)
    native = {
        "rounding": ("half_to_even",),
        "scale_application": ("reciprocal_multiply",),
        "zero_point_order": (_zero_point_order(fmt, per_channel),),
        "overflow": ("saturate",),
        "precision": ("float32",),
        "nan_policy": (),
        "profile": ("torch",),
    }
    check_options(params, native, PEER)
    if "uniform" in inputs:
        raise NotCovered("torch has no stochastic rounding in quantize")
    x = _float32_input(inputs)
    torch = _torch()
    qdtype = _qdtype(fmt, per_channel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xt = torch.from_numpy(np.array(x))
        if per_channel:
            scales = torch.from_numpy(inputs["scale"].astype(np.float64))
            zps = torch.from_numpy(inputs["zero_point"].astype(np.int64))
            q = torch.quantize_per_channel(xt, scales, zps, _axis(params, x.ndim), qdtype)
        else:
            if inputs["scale"].size != 1 or inputs["zero_point"].size != 1:
                raise NotCovered("per-tensor parameters of more than one element")
            q = torch.quantize_per_tensor(xt, float(inputs["scale"]), int(inputs["zero_point"]), qdtype)
        codes = np.asarray(q.int_repr().numpy())
    if fmt.bits < 8:
        codes = _unpack(codes, fmt.bits, x.size).reshape(x.shape)
    return {"q": codes.astype(fmt.storage_dtype)}


def _dequantize(params: Params, inputs: Inputs) -> dict[str, Array]:
    fmt = fmt_of(params)
    per_channel = _per_channel(params)
    _qdtype(fmt, per_channel)
    if fmt.bits < 8:
        raise NotCovered("torch has no constructor for sub-byte quantized tensors from codes")
    q = inputs["q"]
    if q.dtype.kind not in "iu" or not fits(q, fmt):
        raise NotCovered(f"codes that {fmt.name} cannot hold")
    torch = _torch()
    t = torch.from_numpy(np.array(q.astype(fmt.storage_dtype)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        made = _make(torch, t, params, inputs, per_channel, q.ndim)
    return {"x": np.asarray(made.dequantize().numpy()).astype(np.float32)}


def _make(torch: Any, t: Any, params: Params, inputs: Inputs, per_channel: bool, ndim: int) -> Any:
    if per_channel:
        scales = torch.from_numpy(inputs["scale"].astype(np.float64))
        zps = torch.from_numpy(inputs["zero_point"].astype(np.int64))
        return torch._make_per_channel_quantized_tensor(t, scales, zps, _axis(params, ndim))
    if inputs["scale"].size != 1 or inputs["zero_point"].size != 1:
        raise NotCovered("per-tensor parameters of more than one element")
    return torch._make_per_tensor_quantized_tensor(t, float(inputs["scale"]), int(inputs["zero_point"]))


def _fake_quantize(params: Params, inputs: Inputs) -> dict[str, Array]:
    native = {
        "rounding": ("half_to_even",),
        "scale_application": ("reciprocal_multiply",),
        "zero_point_order": ("after_rounding",),
        "overflow": ("saturate",),
        "precision": ("float32",),
        "nan_policy": (),
        "profile": (),
    }
    check_options(params, native, PEER)
    if "uniform" in inputs:
        raise NotCovered("torch has no stochastic rounding in fake_quantize")
    fmt = fmt_of(params)
    per_channel = _per_channel(params)
    x = _float32_input(inputs)
    torch = _torch()
    xt = torch.from_numpy(np.array(x))
    if per_channel:
        scales = torch.from_numpy(inputs["scale"].astype(np.float32))
        zps = torch.from_numpy(inputs["zero_point"].astype(np.int32))
        y = torch.fake_quantize_per_channel_affine(xt, scales, zps, _axis(params, x.ndim), fmt.qmin, fmt.qmax)
    else:
        if inputs["scale"].size != 1 or inputs["zero_point"].size != 1:
            raise NotCovered("per-tensor parameters of more than one element")
        y = torch.fake_quantize_per_tensor_affine(
            xt, float(inputs["scale"]), int(inputs["zero_point"]), fmt.qmin, fmt.qmax
        )
    return {"y": np.asarray(y.numpy()).astype(np.float32)}


def _matmul_int(params: Params, inputs: Inputs) -> dict[str, Array]:
    check_options(params, {"accumulator": ("int32", "int32_wrap")}, PEER)
    for name in ("lhs_zero_point", "rhs_zero_point"):  # only an absent or a scalar zero zero point is expressible
        if name in inputs and (inputs[name].shape not in ((), (1,)) or np.any(inputs[name] != 0)):
            raise NotCovered(f"torch._int_mm has no {name}")
    lhs, rhs = inputs["lhs"], inputs["rhs"]
    if lhs.dtype.name not in ("int8", "uint8") or rhs.dtype.name != "int8":
        raise NotCovered(f"torch._int_mm takes int8 or uint8 lhs and int8 rhs, not {lhs.dtype} x {rhs.dtype}")
    torch = _torch()
    acc = torch._int_mm(torch.from_numpy(np.array(lhs)), torch.from_numpy(np.array(rhs)))
    return {"acc": np.asarray(acc.numpy()).astype(np.int32)}


def _binarize(params: Params, inputs: Inputs) -> dict[str, Array]:
    check_options(params, {"sign_zero": ("zero",)}, PEER)
    x = inputs["x"]
    if x.dtype.kind != "f":
        raise NotCovered(f"x of dtype {x.dtype}")
    torch = _torch()
    s = torch.sign(torch.from_numpy(np.array(x)))
    return {"b": np.asarray(s.to(torch.int8).numpy())}


quantize = guarded(_quantize)
dequantize = guarded(_dequantize)
fake_quantize = guarded(_fake_quantize)
matmul_int = guarded(_matmul_int)
binarize = guarded(_binarize)
