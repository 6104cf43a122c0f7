"""Peer adapter: ml_dtypes 0.6 integer types (``int4``, ``uint4``, ``int2``, ``uint2``).

ml_dtypes has no quantizer: what it expresses is the cast of a float array to a narrow integer type and back.  That
is ``quantize`` / ``dequantize`` with scale 1 and zero point 0, per tensor, so only those records are covered.
Measured here (ml_dtypes 0.6.0): the float-to-int4 cast rounds toward zero, wraps modulo ``2**bits`` and sends NaN
and +-inf to 0; so the options a record may name and still be covered are ``rounding=toward_zero``,
``overflow=wrap`` and ``nan_policy=to_zero_point``; scale application, zero-point order and precision are all
equivalent at scale 1 and zero point 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from bench.peer_adapters import NotCovered, check_options, fits, fmt_of, guarded
from refquant.spec.formats import IntFormat

__all__ = ["dequantize", "quantize"]

Array = npt.NDArray[Any]
Params = Mapping[str, Any]
Inputs = Mapping[str, Array]
PEER: Final = "ml_dtypes"
ANY: Final = (
    "divide",
    "reciprocal_multiply",
    "after_rounding",
    "before_rounding",
    "fused_multiply_add",
    "float32",
    "float64",
)


def _dtype(fmt: IntFormat) -> Any:
    import ml_dtypes

    table = {
        (4, True): ml_dtypes.int4,
        (4, False): ml_dtypes.uint4,
        (2, True): ml_dtypes.int2,
        (2, False): ml_dtypes.uint2,
    }
    dtype = table.get((fmt.bits, fmt.signed))
    if dtype is None or fmt.narrow_range:
        raise NotCovered(f"ml_dtypes has no type for {fmt.name} here (int4, uint4, int2, uint2)")
    return dtype


def _unit_params(params: Params, inputs: Inputs) -> None:
    if params.get("granularity", "per_tensor") != "per_tensor":
        raise NotCovered("a cast has no per-axis or per-block parameters")
    scale, zp = inputs["scale"], inputs["zero_point"]
    if scale.size != 1 or zp.size != 1 or float(scale.reshape(-1)[0]) != 1.0 or int(zp.reshape(-1)[0]) != 0:
        raise NotCovered("a cast is quantization with scale 1 and zero point 0 only")


def _quantize(params: Params, inputs: Inputs) -> dict[str, Array]:
    native = {
        "rounding": ("toward_zero",),
        "overflow": ("wrap",),
        "nan_policy": ("to_zero_point",),
        "scale_application": ANY,
        "zero_point_order": ANY,
        "precision": ANY,
        "profile": (),
    }
    check_options(params, native, PEER)
    if "uniform" in inputs:
        raise NotCovered("a cast has no stochastic rounding")
    fmt = fmt_of(params)
    dtype = _dtype(fmt)
    _unit_params(params, inputs)
    x = inputs["x"]
    if x.dtype.kind != "f":
        raise NotCovered(f"x of dtype {x.dtype}")
    return {"q": x.astype(dtype).astype(fmt.storage_dtype)}


def _dequantize(params: Params, inputs: Inputs) -> dict[str, Array]:
    fmt = fmt_of(params)
    dtype = _dtype(fmt)
    _unit_params(params, inputs)
    q = inputs["q"]
    if q.dtype.kind not in "iu" or not fits(q, fmt):
        raise NotCovered(f"codes that {fmt.name} cannot hold")
    return {"x": q.astype(dtype).astype(np.float32)}


quantize = guarded(_quantize)
dequantize = guarded(_dequantize)
