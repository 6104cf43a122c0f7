"""Cases of the codebook chapter: nearest-level ``codebook_encode`` with exact ties under both ``LevelTie`` rules,
and ``codebook_decode`` (docs/spec/codebook.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.conformance.cases import Builder, Draws
from refquant.conformance.format import Record
from refquant.spec.codebook import LevelTie

F32 = np.float32
LEVELS = (
    np.array([-1.0, -0.25, 0.0, 0.5, 2.0], F32),
    np.array([-3.0, -1.0, 1.0, 3.0], F32),
    np.array([0.0, 0.0, 1.0], F32),
    np.array([0.1, 0.2, 0.3, 0.7], F32),
)


def cases() -> list[Record]:
    """Every record of the codebook chapter."""
    b = Builder("codebook")
    for i, levels in enumerate(LEVELS):
        lv = levels.astype(np.float64)
        mids = ((lv[:-1] + lv[1:]) / 2).astype(F32)  # exact for these levels except the 0.1 ... family
        x = np.concatenate([np.nextafter(mids, F32(-np.inf)), mids, np.nextafter(mids, F32(np.inf)), levels])
        x = np.concatenate([x, np.array([-np.inf, np.inf, -0.0, 1e30, -1e30], F32)])
        exact = bool(np.all(mids.astype(np.float64) == (lv[:-1] + lv[1:]) / 2))
        for tie in LevelTie:
            b.add(
                "codebook_encode",
                "codebook_encode",
                "tie" if exact else "near_tie",
                f"l{i}",
                {"tie": tie.value},
                {"x": x, "levels": levels},
            )
        b.add(
            "codebook_decode",
            "codebook_decode",
            "random",
            f"l{i}",
            {},
            {"codes": np.arange(levels.size, dtype=np.uint8), "levels": levels},
        )

    def rand(r: Draws) -> dict[str, Any]:
        return {"x": r.standard_normal((3, 5)).astype(F32), "levels": np.sort(r.standard_normal(16)).astype(F32)}

    b.add("codebook_encode", "codebook_encode", "distinct_dims", "l16", {}, rand)
    b.add(
        "codebook_encode",
        "codebook_encode",
        "bad_input",
        "nan",
        {},
        {"x": np.array([np.nan], F32), "levels": LEVELS[0]},
    )
    b.add(
        "codebook_encode",
        "codebook_encode",
        "bad_input",
        "unsorted",
        {},
        {"x": np.array([0.0], F32), "levels": np.array([1.0, 0.0], F32)},
    )
    b.add(
        "codebook_decode",
        "codebook_decode",
        "bad_input",
        "code",
        {},
        {"codes": np.array([5], np.uint8), "levels": LEVELS[0]},
    )
    return b.records
