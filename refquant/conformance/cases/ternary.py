"""Cases of the ternary chapter: TWN and BitNet ternarization at their strict thresholds and ties, and the
two-bitplane ``ternary_matmul`` (docs/spec/ternary.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.conformance.cases import Builder, Draws
from refquant.conformance.format import Record
from refquant.spec.ternary import ternary_bitplanes

F32 = np.float32


def cases() -> list[Record]:
    """Every record of the ternary chapter."""
    b = Builder("ternary")
    g = "ternarize"
    one = np.array(1.0)
    # factor 1: delta = mean|w| exactly, and +-0.5 sit on it: the strict > keeps them at 0.
    on_delta = np.array([1.0, 0.5, -0.5, 0.0], F32)
    b.add(g, "twn_ternarize", "tie", "on_delta", {}, {"w": on_delta, "factor": one})
    b.add(
        g,
        "twn_ternarize",
        "near_tie",
        "ulp",
        {},
        {"w": np.array([1.0, np.nextafter(F32(0.5), F32(1)), -0.5, 0.0], F32), "factor": one},
    )
    b.add(
        g,
        "twn_ternarize",
        "negative_zero",
        "zeros",
        {},
        {"w": np.array([-0.0, 0.0, 1.0, -1.0], F32), "factor": np.array(0.7)},
    )
    b.add(
        g,
        "twn_ternarize",
        "subnormal",
        "tiny",
        {},
        {"w": np.array([1e-45, -1e-45, 3e-45, 0.0], F32), "factor": np.array(0.7)},
    )
    for shape in ((3, 5), (5, 3), (2, 3, 4)):
        for axis in range(len(shape)):

            def weights(r: Draws, shape: tuple[int, ...] = shape) -> dict[str, Any]:
                return {"w": r.standard_normal(shape).astype(F32), "factor": np.array(0.7)}

            b.add(g, "twn_ternarize", "distinct_dims", f"axis{axis}", {"axis": axis}, weights)
    for label, inputs, params in (
        ("nan", {"w": np.array([np.nan, 1.0], F32), "factor": np.array(0.7)}, {}),
        ("factor", {"w": np.array([1.0], F32), "factor": np.array(-1.0)}, {}),
        ("axis", {"w": np.ones((2, 3), F32), "factor": np.array(0.7)}, {"axis": 2}),
        ("empty", {"w": np.zeros((0,), F32), "factor": np.array(0.7)}, {}),
    ):
        b.add(g, "twn_ternarize", "bad_input", label, params, inputs)
    # BitNet: mean|w| = 1 and eps tiny, so w / scale sits near +-0.5 and +-1.5: half to even, then the clip.
    for eps in (1e-5, 2.0**-149):
        for w in ([0.5, -0.5, 1.5, -1.5, 1.0, 0.5], [2.0, -1.0, 0.5, 0.4], [0.0, -0.0, 0.0, 0.0]):
            arr = np.array(w, F32)
            why = "degenerate_range" if not np.any(arr) else "tie"
            b.add(g, "bitnet_ternarize", why, "absmean", {}, {"w": arr, "eps": np.array(eps)})
    b.add(g, "bitnet_ternarize", "bad_input", "eps", {}, {"w": np.ones(2, F32), "eps": np.array(0.0)})
    b.add(g, "bitnet_ternarize", "bad_input", "inf", {}, {"w": np.array([np.inf], F32), "eps": np.array(1e-5)})
    for k in (1, 4, 63, 64, 65, 130):

        def planes(r: Draws, k: int = k) -> dict[str, Any]:
            lp, lm = ternary_bitplanes(r.integers(-1, 2, (2, k)).astype(np.int8))
            rp, rm = ternary_bitplanes(r.integers(-1, 2, (3, k)).astype(np.int8))
            return {"lhs_plus": lp, "lhs_minus": lm, "rhs_plus": rp, "rhs_minus": rm}

        b.add("ternary_matmul", "ternary_matmul", "padding", f"k{k}", {"k": k}, planes)
    both = np.array([[1]], np.uint64)
    zero = np.zeros((1, 1), np.uint64)
    inputs = {"lhs_plus": both, "lhs_minus": both, "rhs_plus": zero, "rhs_minus": zero}
    b.add("ternary_matmul", "ternary_matmul", "bad_input", "overlap", {"k": 3}, inputs)
    return b.records
