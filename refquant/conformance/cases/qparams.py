"""Cases of the qparams chapter: ``choose_qparams_from_range``, ``choose_qparams`` from data and
``nudge_quantization_range`` (docs/spec/qparams.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from refquant.conformance.cases import Builder, Draws
from refquant.conformance.format import Record
from refquant.conformance.ops import granularity_params, op
from refquant.errors import SpecError
from refquant.spec.affine import Precision
from refquant.spec.formats import IntFormat
from refquant.spec.granularity import PerAxis, PerBlock
from refquant.spec.qparams import ReduceRange, SymmetricDenominator, ZeroRange
from refquant.spec.rounding import RoundingMode

F32 = np.float32
RANGES = (
    (-1.0, 1.0),
    (-2.5, 252.5),
    (0.0, 1.0),
    (-1.0, 0.0),
    (0.5, 3.0),
    (-3.0, -0.5),
    (-1.0, 0.5),
    (-0.1, 25.4),
    (-1e-3, 7.0),
    (-3.4e38, 3.4e38),
)
DEGENERATE = ((0.0, 0.0), (-0.0, 0.0), (1e-45, 1e-45), (-1e-40, 1e-40), (2.0, 2.0), (-1e-38, 1e-38))


def _range(lo: float, hi: float) -> dict[str, Any]:
    return {"min_val": np.array(lo, F32), "max_val": np.array(hi, F32)}


def _why(op_name: str, params: Mapping[str, Any], inputs: dict[str, Any]) -> str:
    """The edge a record of a fixed range sits on, read off the reference's own output.

    ``saturation_edge``: the scale leaves float32 (the spec refuses: ``scale_not_finite``) or is beyond 2**100;
    ``zero_point_edge``: a range on one side of zero, or a chosen zero point at ``qmin`` or ``qmax``; ``tie``: the zero point's quotient ``min(min_val, 0) / scale`` is exactly half an integer (asymmetric,
    float32 precision: the quotient the spec rounds); ``random`` otherwise: an ordinary range sweeping the
    options (``docs/conformance.md``, section 4).
    """
    lo = np.asarray(inputs["x"] if "x" in inputs else inputs["min_val"])
    hi = np.asarray(inputs["x"] if "x" in inputs else inputs["max_val"])
    if lo.size and (np.min(lo) >= 0 or np.max(hi) <= 0):
        return "zero_point_edge"  # a range on one side of zero: the chooser widens it to hold 0
    try:
        out = op(op_name).run(params, inputs)
    except SpecError as error:
        return "saturation_edge" if error.condition == "scale_not_finite" else "random"
    scale = np.asarray(out["scale"], F32)
    zp = np.asarray(out["zero_point"])
    fmt = IntFormat.from_name(str(params["fmt"]))
    if np.any(scale > F32(2.0**100)):
        return "saturation_edge"
    if np.any((zp == fmt.qmin) | (zp == fmt.qmax)):
        return "zero_point_edge"
    low = np.minimum(np.asarray(np.min(lo), F32), F32(0))
    if not params.get("symmetric") and params.get("precision", "float32") == "float32":
        with np.errstate(all="ignore"):
            ratio = np.asarray(low / scale, np.float64)
        if np.any(np.abs(ratio - np.floor(ratio)) == 0.5):
            return "tie"
    return "random"


def cases() -> list[Record]:
    """Every record of the qparams chapter."""
    b = Builder("qparams")
    g, o = "choose_qparams_from_range", "choose_qparams_from_range"
    for name in ("int8", "uint8", "int4", "uint4", "int16", "int8n"):
        for lo, hi in RANGES:
            for sym in (False, True):
                for den in SymmetricDenominator:
                    if not sym and den is SymmetricDenominator.QMAX:
                        continue
                    params = {"fmt": name, "symmetric": sym, "symmetric_denominator": den.value}
                    b.add(g, o, _why(o, params, _range(lo, hi)), name, params, _range(lo, hi))
        for lo, hi in DEGENERATE:
            for zr in ZeroRange:
                why = "subnormal" if 0 < abs(hi) < 1.2e-38 else "degenerate_range"
                b.add(g, o, why, name, {"fmt": name, "zero_range": zr.value}, _range(lo, hi))
    for name in ("int8", "uint8", "int16"):
        for rr in ReduceRange:
            for prec in Precision:
                for lo, hi in RANGES[:8]:
                    params = {"fmt": name, "reduce_range": rr.value, "precision": prec.value}
                    b.add(g, o, _why(o, params, _range(lo, hi)), name, params, _range(lo, hi))
    # Zero point on a tie: min / scale lands on k + 1/2 (scale 1, min -2.5 / -3.5 ...), every rounding mode.
    for mode in RoundingMode:
        if mode is RoundingMode.STOCHASTIC:
            continue
        for lo in (-2.5, -3.5, -0.5, -127.5):
            b.add(g, o, "tie", "uint8", {"fmt": "uint8", "zero_point_rounding": mode.value}, _range(lo, lo + 255.0))
    for p2 in (RoundingMode.TOWARD_POSITIVE, RoundingMode.TOWARD_NEGATIVE):
        for lo, hi in RANGES:
            params = {"fmt": "int8", "power_of_two_scale": p2.value}
            b.add(g, o, _why(o, params, _range(lo, hi)), "int8", params, _range(lo, hi))
    # Per-axis ranges (the parameters' own shape).
    for n in (3, 5):

        def per_axis(r: Draws, n: int = n) -> dict[str, Any]:
            lo = -np.abs(r.standard_normal(n)).astype(F32)
            return {"min_val": lo, "max_val": (np.abs(r.standard_normal(n)) * 4).astype(F32)}

        b.add(g, o, "distinct_dims", "int8", {"fmt": "int8", "granularity": "per_axis", "axis": 0}, per_axis)
    for label, lo, hi, extra in (
        ("inverted", 1.0, -1.0, {}),
        ("nan", float("nan"), 1.0, {}),
        ("inf", -float("inf"), 1.0, {}),
        ("zero_range_raise", 0.0, 0.0, {"zero_range": "raise"}),
    ):
        b.add(g, o, "bad_input", label, {"fmt": "int8", **extra}, _range(lo, hi))
    _choose_qparams(b)
    _nudge(b)
    return b.records


def _choose_qparams(b: Builder) -> None:
    g = o = "choose_qparams"
    # The range is the data's own min and max: each RANGES pair placed among values strictly inside it.
    for name in ("int8", "uint8", "int4", "int8n"):
        for lo, hi in RANGES:
            for sym in (False, True):
                x = np.array([lo, (lo + hi) / 2, hi, lo / 2, hi / 2, -0.0], F32)
                params: dict[str, Any] = {"fmt": name, "symmetric": sym}
                b.add(g, o, _why(o, params, {"x": x}), name, params, {"x": x})
        for lo, hi in DEGENERATE:
            for zr in ZeroRange:
                why = "subnormal" if 0 < abs(hi) < 1.2e-38 else "degenerate_range"
                b.add(g, o, why, name, {"fmt": name, "zero_range": zr.value}, {"x": np.array([lo, hi, hi], F32)})
    for mode in (RoundingMode.HALF_TO_EVEN, RoundingMode.HALF_AWAY_FROM_ZERO, RoundingMode.TOWARD_ZERO):
        for lo in (-2.5, -3.5, -0.5):
            x = np.array([lo, 0.0, lo + 255.0], F32)
            b.add(g, o, "tie", "uint8", {"fmt": "uint8", "zero_point_rounding": mode.value}, {"x": x})
    # Integer and float16 / float64 data.
    for dtype in (np.int8, np.int32, np.float16, np.float64):

        def typed(r: Draws, dtype: Any = dtype) -> dict[str, Any]:
            return {"x": (r.standard_normal(20) * 50).astype(dtype)}

        b.add(g, o, "random", "uint8", {"fmt": "uint8"}, typed)
    # Per axis (each axis of a shape with pairwise-distinct dimensions) and per block with a ragged last block.
    shape = (2, 3, 5)
    for axis in range(-3, 3):

        def data(r: Draws) -> dict[str, Any]:
            return {"x": (r.standard_normal(shape) * 3).astype(F32)}

        for sym in (False, True):
            params = {"fmt": "int8", "symmetric": sym, **granularity_params(PerAxis(axis))}
            b.add(g, o, "distinct_dims", "int8", params, data)
    for axis, block in ((2, 2), (1, 2), (0, 1), (-1, 3)):

        def blocks(r: Draws) -> dict[str, Any]:
            return {"x": (r.standard_normal(shape) * 3).astype(F32)}

        b.add(g, o, "ragged_block", "int4", {"fmt": "int4", **granularity_params(PerBlock(axis, block))}, blocks)
    for label, x, extra in (
        ("nan", np.array([np.nan, 1.0], F32), {}),
        ("inf", np.array([-np.inf, 1.0], F32), {}),
        ("empty", np.zeros(0, F32), {}),
        ("zero_range_raise", np.zeros(3, F32), {"zero_range": "raise"}),
        ("axis", np.ones((2, 3), F32), {"granularity": "per_axis", "axis": 2}),
        ("bool", np.array([True, False]), {}),
    ):
        b.add(g, o, "bad_input", label, {"fmt": "int8", **extra}, {"x": x})


def _nudge(b: Builder) -> None:
    g = o = "nudge_quantization_range"
    for name in ("uint8", "int8", "uint4", "int4", "int16", "int8n"):
        for lo, hi in (*RANGES[:-1], (0.0, 6.0), (-6.0, 0.0), (1e-40, 1.0), (-1.0, -1e-40)):
            b.add(g, o, _why(o, {"fmt": name}, _range(lo, hi)), name, {"fmt": name}, _range(lo, hi))
    # zero_point_from_min on a tie: scale 1 and min = -k - 1/2 (TF rounds half away from zero).
    for lo in (-2.5, -3.5, -0.5, -127.5, -254.5):
        b.add(g, o, "tie", "uint8", {"fmt": "uint8"}, _range(lo, lo + 255.0))
    for lo in (-1.5, -2.5, 0.5 - 256.0):
        b.add(g, o, "tie", "int8", {"fmt": "int8"}, _range(lo, lo + 255.0))
    for lo, hi in ((1e-45, 2e-45), (-1.1754942e-38, 1.1754942e-38)):
        b.add(g, o, "subnormal", "uint8", {"fmt": "uint8"}, _range(lo, hi))
    for n in (3, 5):

        def per_axis(r: Draws, n: int = n) -> dict[str, Any]:
            lo = -np.abs(r.standard_normal(n)).astype(F32)
            return {"min_val": lo, "max_val": (np.abs(r.standard_normal(n)) * 4).astype(F32)}

        b.add(g, o, "distinct_dims", "uint8", {"fmt": "uint8", "granularity": "per_axis", "axis": 0}, per_axis)
    for label, lo, hi in (
        ("inverted", 1.0, -1.0),
        ("nan", float("nan"), 1.0),
        ("inf", -float("inf"), 1.0),
        ("zero_range", 2.0, 2.0),
        ("scale_overflow", -3.4e38, 3.4e38),
    ):
        b.add(g, o, "bad_input", label, {"fmt": "uint8"}, _range(lo, hi))
    b.add(g, o, "bad_input", "shape", {"fmt": "uint8"}, {"min_val": np.zeros(2, F32), "max_val": np.ones(3, F32)})
