"""Cases of the qparams chapter: ``choose_qparams_from_range`` (docs/spec/qparams.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.conformance.cases import Builder, Draws
from refquant.conformance.format import Record
from refquant.spec.affine import Precision
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
                    b.add(g, o, "zero_point_edge" if lo >= 0 or hi <= 0 else "random", name, params, _range(lo, hi))
        for lo, hi in DEGENERATE:
            for zr in ZeroRange:
                why = "subnormal" if 0 < abs(hi) < 1.2e-38 else "degenerate_range"
                b.add(g, o, why, name, {"fmt": name, "zero_range": zr.value}, _range(lo, hi))
    for name in ("int8", "uint8", "int16"):
        for rr in ReduceRange:
            for prec in Precision:
                for lo, hi in RANGES[:8]:
                    params = {"fmt": name, "reduce_range": rr.value, "precision": prec.value}
                    b.add(g, o, "random", name, params, _range(lo, hi))
    # Zero point on a tie: min / scale lands on k + 1/2 (scale 1, min -2.5 / -3.5 ...), every rounding mode.
    for mode in RoundingMode:
        if mode is RoundingMode.STOCHASTIC:
            continue
        for lo in (-2.5, -3.5, -0.5, -127.5):
            b.add(g, o, "tie", "uint8", {"fmt": "uint8", "zero_point_rounding": mode.value}, _range(lo, lo + 255.0))
    for p2 in (RoundingMode.TOWARD_POSITIVE, RoundingMode.TOWARD_NEGATIVE):
        for lo, hi in RANGES:
            b.add(g, o, "random", "int8", {"fmt": "int8", "power_of_two_scale": p2.value}, _range(lo, hi))
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
    return b.records
