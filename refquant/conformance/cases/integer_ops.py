"""Cases of the integer-operations chapter: ``matmul_int`` and its accumulators (docs/spec/integer_ops.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.conformance.cases import Builder, Draws
from refquant.conformance.format import Record
from refquant.spec.affine import Precision
from refquant.spec.fixed_point import RequantRounding
from refquant.spec.integer_ops import Accumulator, Layout


def cases() -> list[Record]:
    """Every record of the integer-operations chapter."""
    b = Builder("integer_ops")
    g = "matmul_int"
    # (255 - 0) * (255 - 0) = 65025 per term: 33025 terms sit below the int32 bound, 33026 pass it (the fewest
    # terms that can: int8 / uint8 operands never give a product above 65025 in magnitude).
    for k in (33025, 33026):
        for acc in Accumulator:
            inputs = {
                "lhs": np.full((1, k), 255, np.uint8),
                "rhs": np.full((k, 1), 255, np.uint8),
                "lhs_zero_point": np.array(0, np.uint8),
                "rhs_zero_point": np.array(0, np.uint8),
            }
            b.add(g, "matmul_int", "accumulator_edge", f"k{k}", {"accumulator": acc.value}, inputs)
    for acc in Accumulator:
        lhs = np.full((2, 1000), 255, np.uint8)
        lhs[1] = 0
        rhs = np.full((1000, 3), 255, np.uint8)
        zps = {"lhs_zero_point": np.array(255, np.uint8), "rhs_zero_point": np.array(0, np.uint8)}
        b.add(g, "matmul_int", "zero_point_edge", "zp255", {"accumulator": acc.value}, {"lhs": lhs, "rhs": rhs, **zps})
    for m, k, n in ((2, 3, 5), (5, 7, 3), (1, 1, 1), (3, 64, 4)):
        for dt in (np.int8, np.uint8):

            def rand(r: Draws, m: int = m, k: int = k, n: int = n, dt: Any = dt) -> dict[str, Any]:
                info = np.iinfo(dt)
                return {
                    "lhs": r.integers(info.min, info.max, (m, k), endpoint=True).astype(dt),
                    "rhs": r.integers(info.min, info.max, (k, n), endpoint=True).astype(dt),
                    "lhs_zero_point": r.integers(info.min, info.max, m, endpoint=True).astype(dt),
                    "rhs_zero_point": r.integers(info.min, info.max, n, endpoint=True).astype(dt),
                }

            b.add(g, "matmul_int", "distinct_dims", np.dtype(dt).name, {}, rand)
    bad: tuple[tuple[str, dict[str, Any]], ...] = (
        ("shape", {"lhs": np.zeros((2, 3), np.int8), "rhs": np.zeros((4, 2), np.int8)}),
        ("dtype", {"lhs": np.zeros((2, 3), np.int16), "rhs": np.zeros((3, 2), np.int8)}),
        (
            "zp_shape",
            {
                "lhs": np.zeros((2, 3), np.int8),
                "rhs": np.zeros((3, 2), np.int8),
                "rhs_zero_point": np.zeros(3, np.int8),
            },
        ),
    )
    for label, inputs in bad:
        b.add(g, "matmul_int", "bad_input", label, {}, inputs)
    _conv(b)
    _qlinear(b)
    _qlinear_conv(b)
    return b.records


def _conv(b: Builder) -> None:
    g = "conv2d_int"
    # (N, C, H, W), (O, C/groups, kh, kw), stride, padding, dilation, groups: pairwise-distinct sizes, ragged
    # strides, padding on one side only, depthwise.
    geometries = (
        ((1, 2, 5, 7), (3, 2, 3, 2), (1, 1), (0, 0, 0, 0), (1, 1), 1),
        ((2, 3, 6, 5), (4, 3, 2, 3), (2, 3), (1, 0, 2, 1), (1, 1), 1),
        ((1, 4, 7, 6), (4, 1, 3, 3), (1, 2), (1, 1, 1, 1), (2, 1), 4),
        ((1, 4, 5, 5), (6, 2, 1, 2), (2, 1), (0, 3, 0, 0), (1, 2), 2),
    )
    for xs, ws, stride, padding, dilation, groups in geometries:
        for dt in (np.int8, np.uint8):
            for layout in Layout:

                def operands(
                    r: Draws, xs: tuple[int, ...] = xs, ws: tuple[int, ...] = ws, dt: Any = dt, layout: Layout = layout
                ) -> dict[str, Any]:
                    info = np.iinfo(dt)
                    x = r.integers(info.min, info.max, xs, endpoint=True).astype(dt)
                    w = r.integers(-128, 127, ws, endpoint=True).astype(np.int8)
                    if layout is Layout.NHWC:
                        x, w = x.transpose(0, 2, 3, 1).copy(), w.transpose(0, 2, 3, 1).copy()
                    return {
                        "x": x,
                        "w": w.astype(dt),
                        "x_zero_point": np.array(r.integers(info.min, info.max, endpoint=True), dt),
                        "w_zero_point": r.integers(info.min, info.max, ws[0], endpoint=True).astype(dt),
                    }

                params = {
                    "stride": list(stride),
                    "padding": list(padding),
                    "dilation": list(dilation),
                    "groups": groups,
                    "layout": layout.value,
                }
                b.add(
                    g, "conv2d_int", "padding" if any(padding) else "distinct_dims", np.dtype(dt).name, params, operands
                )
    # The int32 bound: 33026 taps of 255 * 255 (uint8, zero points 0) pass it; 33025 stay below.
    for c in (33025, 33026):
        for acc in Accumulator:
            inputs = {"x": np.full((1, c, 1, 1), 255, np.uint8), "w": np.full((1, c, 1, 1), 255, np.uint8)}
            b.add(g, "conv2d_int", "accumulator_edge", f"c{c}", {"accumulator": acc.value}, inputs)
    bad = {"x": np.zeros((1, 3, 4, 4), np.int8), "w": np.zeros((2, 2, 1, 1), np.int8)}
    b.add(g, "conv2d_int", "bad_input", "channels", {}, bad)
    bad = {"x": np.zeros((1, 2, 2, 2), np.int8), "w": np.zeros((1, 2, 3, 3), np.int8)}
    b.add(g, "conv2d_int", "bad_input", "empty_output", {}, bad)


def _qp(prefix: str, fmt: str, scale: Any, zp: Any, dt: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {f"{prefix}_fmt": fmt, f"{prefix}_per_axis": np.ndim(scale) == 1},
        {f"{prefix}_scale": np.asarray(scale, np.float32), f"{prefix}_zero_point": np.asarray(zp, dt)},
    )


def _qlinear(b: Builder) -> None:
    g = "qlinear_matmul"
    for rounding in RequantRounding:
        for prec in Precision:
            for dt, fmt in ((np.uint8, "uint8"), (np.int8, "int8")):

                def operands(r: Draws, dt: Any = dt, fmt: str = fmt) -> dict[str, Any]:
                    info = np.iinfo(dt)
                    inputs = {
                        "a": r.integers(info.min, info.max, (3, 5), endpoint=True).astype(dt),
                        "b": r.integers(info.min, info.max, (5, 4), endpoint=True).astype(dt),
                    }
                    for prefix, scale, zp in (
                        ("a", 0.02, r.integers(info.min, info.max, endpoint=True)),
                        ("b", r.uniform(0.001, 0.01, 4), r.integers(info.min, info.max, 4, endpoint=True)),
                        ("y", 0.05, r.integers(info.min, info.max, endpoint=True)),
                    ):
                        inputs.update(_qp(prefix, fmt, scale, zp, dt)[1])
                    return inputs

                params: dict[str, Any] = {"rounding": rounding.value, "multiplier_precision": prec.value}
                for prefix, per_axis in (("a", False), ("b", True), ("y", False)):
                    params.update({f"{prefix}_fmt": fmt, f"{prefix}_per_axis": per_axis})
                b.add(g, "qlinear_matmul", "double_vs_single", fmt, params, operands)
        # Requantization ties: a_s * b_s / y_s = 1/2 exactly, products 2k + 1 land on k + 1/2.
        a = np.arange(-6, 7, dtype=np.int8).reshape(-1, 1)
        ones = np.ones((1, 1), np.int8)
        params = {"rounding": rounding.value, "a_fmt": "int8", "b_fmt": "int8", "y_fmt": "int8"}
        params.update({"a_per_axis": False, "b_per_axis": False, "y_per_axis": False})
        inputs = {"a": a, "b": ones}
        for prefix, scale in (("a", 0.5), ("b", 0.25), ("y", 0.25)):
            inputs.update(_qp(prefix, "int8", scale, 0, np.int8)[1])
        b.add(g, "qlinear_matmul", "tie", "half", params, inputs)
    inputs = {"a": np.zeros((2, 3), np.uint8), "b": np.zeros((3, 2), np.uint8)}
    for prefix, fmt in (("a", "uint8"), ("b", "int8"), ("y", "uint8")):
        inputs.update(_qp(prefix, fmt, 1.0, 0, np.uint8)[1])
    params = {
        "a_fmt": "uint8",
        "b_fmt": "int8",
        "y_fmt": "uint8",
        "a_per_axis": False,
        "b_per_axis": False,
        "y_per_axis": False,
    }
    b.add(g, "qlinear_matmul", "bad_input", "format", params, inputs)


def _qlinear_conv(b: Builder) -> None:
    g = o = "qlinear_conv"
    # Small geometries (pairwise-distinct sizes, padding on one side, grouped), every rounding, multiplier precision
    # and layout; per-output-channel weight scales and a bias.
    geometries = (
        ((1, 2, 4, 5), (3, 2, 2, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),
        ((1, 4, 5, 3), (2, 2, 3, 1), (2, 1), (1, 0, 0, 2), (1, 1), 2),
    )
    for gi, (xs, ws, stride, padding, dilation, groups) in enumerate(geometries):
        for rounding in RequantRounding:
            for prec in Precision:
                for layout in Layout:
                    for dt, fmt in ((np.uint8, "uint8"), (np.int8, "int8")):

                        def operands(
                            r: Draws,
                            xs: tuple[int, ...] = xs,
                            ws: tuple[int, ...] = ws,
                            dt: Any = dt,
                            fmt: str = fmt,
                            layout: Layout = layout,
                        ) -> dict[str, Any]:
                            info = np.iinfo(dt)
                            x = r.integers(info.min, info.max, xs, endpoint=True).astype(dt)
                            w = r.integers(-128, 127, ws, endpoint=True).astype(np.int8)
                            if layout is Layout.NHWC:
                                x, w = x.transpose(0, 2, 3, 1).copy(), w.transpose(0, 2, 3, 1).copy()
                            inputs = {"x": x, "w": w, "bias": r.integers(-500, 500, ws[0]).astype(np.int32)}
                            inputs.update(_qp("x", fmt, 0.02, r.integers(info.min, info.max, endpoint=True), dt)[1])
                            inputs.update(_qp("w", "int8", r.uniform(0.001, 0.01, ws[0]), 0, np.int8)[1])
                            inputs.update(_qp("y", fmt, 0.05, r.integers(info.min, info.max, endpoint=True), dt)[1])
                            return inputs

                        params: dict[str, Any] = {
                            "x_fmt": fmt,
                            "w_fmt": "int8",
                            "y_fmt": fmt,
                            "w_per_axis": True,
                            "rounding": rounding.value,
                            "multiplier_precision": prec.value,
                            "layout": layout.value,
                            "stride": list(stride),
                            "padding": list(padding),
                            "dilation": list(dilation),
                            "groups": groups,
                        }
                        b.add(g, o, "double_vs_single", f"g{gi}_{fmt}", params, operands)
    # Requantization ties: x_s * w_s / y_s = 1/2 exactly, so odd accumulators land on k + 1/2, every rounding.
    xt = np.arange(-6, 7, dtype=np.int8).reshape(1, 1, 1, -1)
    for rounding in RequantRounding:
        params = {"rounding": rounding.value, "x_fmt": "int8", "w_fmt": "int8", "y_fmt": "int8"}
        inputs: dict[str, Any] = {"x": xt, "w": np.ones((1, 1, 1, 1), np.int8)}
        for prefix, scale in (("x", 0.5), ("w", 0.25), ("y", 0.25)):
            inputs.update(_qp(prefix, "int8", scale, 0, np.int8)[1])
        b.add(g, o, "tie", "half", params, inputs)
    # The int32 bound reached through the bias (conv2d_int's records cover the tap sums): one tap of
    # (255 - 0) * 255 or (0 - 255) * 255 = +-65025, plus a bias that lands the sum on the bound or one past it;
    # every accumulator.  Multiplier 2**-25: a sum at 2**31 gives 64, a wrapped one -64.
    for sign, x_zp in ((1, 0), (-1, 255)):
        for past in (0, 1):
            bias = sign * (2**31 - 65025 - (1 if sign > 0 else 0)) + sign * past
            for acc in Accumulator:
                inputs = {"x": np.full((1, 1, 1, 1), 255 if sign > 0 else 0, np.uint8)}
                inputs.update({"w": np.full((1, 1, 1, 1), 255, np.uint8), "bias": np.array([bias], np.int32)})
                for prefix, fmt, scale, zp, dt in (
                    ("x", "uint8", 1.0, x_zp, np.uint8),
                    ("w", "uint8", 2.0**-20, 0, np.uint8),
                    ("y", "int8", 2.0**5, 0, np.int8),
                ):
                    inputs.update(_qp(prefix, fmt, scale, zp, dt)[1])
                params = {"accumulator": acc.value, "x_fmt": "uint8", "w_fmt": "uint8", "y_fmt": "int8"}
                label = ("max" if sign > 0 else "min") + ("_past" if past else "")
                b.add(g, o, "accumulator_edge", label, params, inputs)
    for act in ((None, None), (-10, 10), (0, 127)):
        inputs = {"x": xt, "w": np.full((1, 1, 1, 1), 7, np.int8)}
        for prefix, scale in (("x", 0.5), ("w", 0.25), ("y", 0.25)):
            inputs.update(_qp(prefix, "int8", scale, 0, np.int8)[1])
        params = {"x_fmt": "int8", "w_fmt": "int8", "y_fmt": "int8", "activation_min": act[0], "activation_max": act[1]}
        b.add(g, o, "saturation_edge", "act", params, inputs)
    base: dict[str, Any] = {"x": np.zeros((1, 2, 3, 3), np.int8), "w": np.zeros((2, 2, 1, 1), np.int8)}
    for prefix in ("x", "w", "y"):
        base.update(_qp(prefix, "int8", 1.0, 0, np.int8)[1])
    fmts = {"x_fmt": "int8", "w_fmt": "int8", "y_fmt": "int8"}
    b.add(g, o, "bad_input", "channels", fmts, {**base, "w": np.zeros((2, 3, 1, 1), np.int8)})
    b.add(g, o, "bad_input", "bias_shape", fmts, {**base, "bias": np.zeros(3, np.int32)})
    b.add(g, o, "bad_input", "format", {**fmts, "x_fmt": "uint8"}, base)
    b.add(g, o, "bad_input", "activation", {**fmts, "activation_min": 5, "activation_max": 4}, base)
