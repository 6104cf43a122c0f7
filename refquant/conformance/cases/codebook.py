"""Cases of the codebook chapter: nearest-level ``codebook_encode`` with exact ties under both ``LevelTie`` rules,
``codebook_decode``, and the fitted tables ``codebook_quantiles`` and ``codebook_kmeans`` (docs/spec/codebook.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.conformance.cases import Builder, Draws
from refquant.conformance.format import Record
from refquant.spec.codebook import CodebookInit, LevelTie

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
        b.add(  # every code of the level table: the saturation_edge tag's "every code of a format"
            "codebook_decode",
            "codebook_decode",
            "saturation_edge",
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
    _fits(b)
    return b.records


def _fit_data() -> list[tuple[str, np.ndarray[Any, np.dtype[Any]]]]:
    """Data whose fits sit on edges: ties between quantile positions, repeated values (empty clusters), one value,
    fewer values than levels, -0.0 and subnormals, float16 / float64 inputs, the ends of float32."""
    return [
        ("arange8", np.arange(8, dtype=F32)),
        ("arange7", np.arange(7, dtype=F32)),
        ("constant", np.full(6, 2.5, F32)),
        ("single", np.array([-3.0], F32)),
        ("few", np.array([1.0, -1.0, 0.5], F32)),
        ("repeated", np.array([0.0, 0.0, 0.0, 0.0, 1.0, 10.0], F32)),
        ("zeros", np.array([-0.0, 0.0, 1e-45, -1e-45, 1.1754942e-38], F32)),
        ("huge", np.array([-3.4e38, 3.4e38, 0.0, 1.0], F32)),
        ("float16", np.array([0.1, 0.2, 0.3, 0.7, 65504.0, -65504.0], np.float16)),
        ("float64", np.array([0.1, 0.2, 0.3, 0.7, 1e-300, 3.4e38], np.float64)),
    ]


def _fits(b: Builder) -> None:
    for label, x in _fit_data():
        for bits in (1, 2, 3):
            b.add("codebook_quantiles", "codebook_quantiles", "degenerate_range", label, {"bits": bits}, {"x": x})
            for init in CodebookInit:
                params = {"bits": bits, "init": init.value}
                b.add("codebook_kmeans", "codebook_kmeans", "degenerate_range", label, params, {"x": x})
    for bits in (1, 2, 4):

        def data(r: Draws) -> dict[str, Any]:
            return {"x": (r.standard_normal((5, 7)) * 2).astype(F32)}

        b.add("codebook_quantiles", "codebook_quantiles", "random", f"b{bits}", {"bits": bits}, data)
        for init in CodebookInit:
            for iterations in (1, 3, 100):
                params = {"bits": bits, "init": init.value, "iterations": iterations}
                b.add("codebook_kmeans", "codebook_kmeans", "random", f"b{bits}", params, data)

            def with_tol(r: Draws) -> dict[str, Any]:
                return {"x": (r.standard_normal((5, 7)) * 2).astype(F32), "tol": np.array(0.05, np.float64)}

            params = {"bits": bits, "init": init.value}
            b.add("codebook_kmeans", "codebook_kmeans", "random", f"b{bits}_tol", params, with_tol)
    bad: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("nan", {"bits": 2}, {"x": np.array([np.nan, 1.0], F32)}),
        ("inf", {"bits": 2}, {"x": np.array([np.inf, 1.0], F32)}),
        ("float64_beyond_float32", {"bits": 2}, {"x": np.array([1e39, 1.0], np.float64)}),
        ("empty", {"bits": 2}, {"x": np.zeros(0, F32)}),
        ("ints", {"bits": 2}, {"x": np.arange(4, dtype=np.int32)}),
        ("bits_zero", {"bits": 0}, {"x": np.arange(4, dtype=F32)}),
        ("bits_large", {"bits": 99}, {"x": np.arange(4, dtype=F32)}),
    ]
    for label, params, inputs in bad:
        b.add("codebook_quantiles", "codebook_quantiles", "bad_input", label, params, inputs)
        b.add("codebook_kmeans", "codebook_kmeans", "bad_input", label, params, inputs)
    x4 = {"x": np.arange(4, dtype=F32)}
    for label, kparams, kinputs in (
        ("iterations_zero", {"bits": 1, "iterations": 0}, x4),
        ("tol_negative", {"bits": 1}, {**x4, "tol": np.array(-1.0, np.float64)}),
        ("tol_inf", {"bits": 1}, {**x4, "tol": np.array(np.inf, np.float64)}),
    ):
        b.add("codebook_kmeans", "codebook_kmeans", "bad_input", label, kparams, kinputs)
