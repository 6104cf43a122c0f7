"""Cases of the fixed-point chapter (docs/spec/fixed_point.md): gemmlowp's two primitives, TFLite's
``quantize_multiplier``, TOSA ``apply_scale_32`` and ``requantize`` under every ``RequantRounding``."""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.conformance.cases import Builder, Draws
from refquant.conformance.format import Record
from refquant.spec.fixed_point import RequantRounding

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
EDGES = np.array([I32_MIN, I32_MIN + 1, -(2**30), -3, -2, -1, 0, 1, 2, 3, 2**30, I32_MAX - 1, I32_MAX], np.int32)
MULTIPLIERS = (
    0.0,
    1e-12,
    2.0**-31,
    2.0**-32 * 3,
    1e-6,
    0.0078125,
    0.3,
    0.5,
    0.4999999999,
    0.999999999,
    1.0,
    1.0000001,
    1.5,
    2.0**30,
    1.9999999,
)


def cases() -> list[Record]:
    """Every record of the fixed-point chapter."""
    b = Builder("fixed_point")
    g = "primitives"
    a, bb = np.meshgrid(EDGES, EDGES, indexing="ij")
    b.add(g, "saturating_rounding_doubling_high_mul", "fixed_point_edge", "edges", {}, {"a": a, "b": bb})

    def rand_pair(r: Draws) -> dict[str, Any]:
        return {
            "a": r.integers(I32_MIN, I32_MAX, 64, endpoint=True).astype(np.int32),
            "b": r.integers(I32_MIN, I32_MAX, 64, endpoint=True).astype(np.int32),
        }

    for _ in range(4):
        b.add(g, "saturating_rounding_doubling_high_mul", "random", "int32", {}, rand_pair)
    b.add(
        g,
        "saturating_rounding_doubling_high_mul",
        "bad_input",
        "a_range",
        {},
        {"a": np.array([2**31], np.int64), "b": np.array([1], np.int32)},
    )
    tie_values = np.array([-5, -3, -1, 1, 3, 5, 6, -6, 7, -7, 2**30 + 2**29, -(2**30) - 2**29], np.int32)
    for e in (0, 1, 2, 3, 30, 31):
        b.add(
            g,
            "rounding_divide_by_pot",
            "tie",
            f"e{e}",
            {},
            {"x": np.concatenate([tie_values, EDGES]), "exponent": np.array(e, np.int64)},
        )
    b.add(
        g,
        "rounding_divide_by_pot",
        "fixed_point_edge",
        "broadcast",
        {},
        {"x": EDGES[:, None], "exponent": np.arange(32)[None, :]},
    )
    for e in (-1, 32):
        b.add(g, "rounding_divide_by_pot", "bad_input", "exponent", {}, {"x": EDGES, "exponent": np.array(e, np.int64)})
    b.add(
        g,
        "rounding_divide_by_pot",
        "bad_input",
        "x_range",
        {},
        {"x": np.array([2**31], np.int64), "exponent": np.array(1)},
    )
    # quantize_multiplier: near 0, near 1 and where the rounded mantissa carries into 2**31.
    reals = (*MULTIPLIERS, 0.99999999997, 1.0 - 2.0**-33, 2.0**-100, 2.0**31, 2.0**40, 1e-300)
    for real in reals:
        for single in (False, True):
            b.add(
                "quantize_multiplier",
                "quantize_multiplier",
                "fixed_point_edge",
                "single" if single else "double",
                {"single_rounding": single},
                {"real": np.array(real, np.float64)},
            )
    for label, real in (("negative", -0.5), ("nan", float("nan")), ("inf", float("inf"))):
        b.add(
            "quantize_multiplier",
            "quantize_multiplier",
            "bad_input",
            label,
            {"single_rounding": False},
            {"real": np.array(real, np.float64)},
        )
    # TOSA apply_scale_32 at its shift limits.
    vals = np.array([-10, -6, -2, -1, 0, 1, 2, 5, 10, 2**20, -(2**20)], np.int32)
    for shift in (2, 3, 31, 32, 40, 62):
        for dr in (False, True):
            b.add(
                "apply_scale",
                "apply_scale_32",
                "fixed_point_edge",
                f"s{shift}",
                {"double_round": dr},
                {"value": vals, "multiplier": np.array(2**30, np.int32), "shift": np.array(shift, np.int8)},
            )
    for shift in (1, 63):
        b.add(
            "apply_scale",
            "apply_scale_32",
            "bad_input",
            f"s{shift}",
            {"double_round": True},
            {"value": vals, "multiplier": np.array(2**30, np.int32), "shift": np.array(shift, np.int8)},
        )
    # TOSA apply_scale_16: int48 values at their ends, int16 multipliers 0 / 1 / 2**14 / INT16_MAX, shifts 2 .. 62.
    v48 = np.array([-(2**47), -(2**47) + 1, -(2**31), -6, -3, -2, -1, 0, 1, 2, 3, 6, 2**31 - 1, 2**47 - 1], np.int64)
    for mult in (0, 1, 2**14, 2**15 - 1):
        for shift in (2, 3, 15, 16, 32, 47, 48, 62):
            # Only the values whose result fits int32 (the overflow is a negative record below).
            fits = [v for v in v48.tolist() if I32_MIN <= (v * mult + (1 << (shift - 1))) >> shift <= I32_MAX]
            value = np.array(fits, np.int64)
            inputs = {"value": value, "multiplier": np.array(mult, np.int16), "shift": np.array(shift, np.int8)}
            b.add("apply_scale", "apply_scale_16", "fixed_point_edge", f"m{mult}_s{shift}", {}, inputs)
    ties = np.array([-7, -5, -3, -1, 1, 3, 5, 7, -2, 2, -4, 4], np.int64)
    for shift in (2, 3, 4):
        inputs = {"value": ties, "multiplier": np.array(2 ** (shift - 1), np.int16), "shift": np.array(shift, np.int8)}
        b.add("apply_scale", "apply_scale_16", "tie", f"s{shift}", {}, inputs)
    for label, value, mult, shift in (
        ("s1", v48, 2**14, 1),
        ("s63", v48, 2**14, 63),
        ("negative_multiplier", v48, -1, 16),
        ("overflow", np.array([2**47 - 1], np.int64), 2**15 - 1, 2),
        ("value_int48", np.array([2**47], np.int64), 1, 2),
    ):
        inputs = {"value": value, "multiplier": np.array(mult, np.int16), "shift": np.array(shift, np.int8)}
        b.add("apply_scale", "apply_scale_16", "bad_input", label, {}, inputs)
    # requantize: every rounding, multipliers near 0 and near 1, accumulators at the int32 bounds and on ties.
    accs = np.concatenate(
        [EDGES, np.array([-255, -128, -127, -1, 1, 127, 128, 255, 256, 383, -383, 1 << 20], np.int32)]
    )
    for rounding in RequantRounding:
        for m in MULTIPLIERS:
            for name, zp in (("int8", 0), ("int8", -128), ("uint8", 128), ("int16", 0)):
                params: dict[str, Any] = {"out_fmt": name, "out_zero_point": zp, "rounding": rounding.value}
                b.add(
                    "requantize",
                    "requantize",
                    "double_vs_single",
                    f"{name}",
                    params,
                    {"acc": accs, "multiplier": np.array(m)},
                )
        b.add(
            "requantize",
            "requantize",
            "saturation_edge",
            "act",
            {"out_fmt": "int8", "rounding": rounding.value, "activation_min": -100, "activation_max": 50},
            {"acc": accs, "multiplier": np.array(0.5)},
        )

        def per_axis(r: Draws) -> dict[str, Any]:
            return {"acc": r.integers(-(2**20), 2**20, (4, 3)).astype(np.int32), "multiplier": r.uniform(1e-5, 0.01, 3)}

        b.add(
            "requantize",
            "requantize",
            "distinct_dims",
            "int8",
            {"out_fmt": "int8", "rounding": rounding.value, "granularity": "per_axis", "axis": 1},
            per_axis,
        )
    # Double vs single rounding: x * m exactly on a tie after the first rounding.
    for rounding in RequantRounding:
        for m in (0.5 + 2.0**-31, 2.0**-8 * (1 + 2.0**-30), 0.75 * 2.0**-4, 0.3333333333):

            def on_ties(r: Draws, m: float = m) -> dict[str, Any]:
                k = np.arange(-40, 41)
                acc = np.round((k + 0.5) / m).astype(np.int64)
                return {"acc": np.concatenate([acc - 1, acc, acc + 1]).astype(np.int32), "multiplier": np.array(m)}

            b.add(
                "requantize",
                "requantize",
                "double_vs_single",
                "ties",
                {"out_fmt": "int16", "rounding": rounding.value},
                on_ties,
            )
    bad: tuple[tuple[str, dict[str, Any], dict[str, Any]], ...] = (
        ("negative_multiplier", {"out_fmt": "int8"}, {"acc": np.array([1], np.int32), "multiplier": np.array(-0.5)}),
        (
            "zp_out",
            {"out_fmt": "int8", "out_zero_point": 200},
            {"acc": np.array([1], np.int32), "multiplier": np.array(0.5)},
        ),
        (
            "acc_range",
            {"out_fmt": "int8", "rounding": "double"},
            {"acc": np.array([2**31], np.int64), "multiplier": np.array(0.5)},
        ),
        (
            "big_multiplier",
            {"out_fmt": "int8", "rounding": "double"},
            {"acc": np.array([1], np.int32), "multiplier": np.array(2.0**40)},
        ),
    )
    for label, params, inputs in bad:
        b.add("requantize", "requantize", "bad_input", label, params, inputs)
    return b.records
