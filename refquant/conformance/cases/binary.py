"""Cases of the binary chapter: ``binarize`` under every sign(0) policy, ``binarize_stochastic``, the STE's
``ste_mask`` / ``ste_grad`` under both windows, ``pack_bits``, the masked ``xnor_matmul`` (docs/spec/binary.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.conformance.cases import Builder, Draws
from refquant.conformance.format import Record
from refquant.spec.binary import BinaryPadding, SignZero, SteWindow, pack_bits

F32 = np.float32


def cases() -> list[Record]:
    """Every record of the binary chapter."""
    b = Builder("binary")
    x = np.array([0.0, -0.0, 1e-45, -1e-45, 1.0, -1.0, np.inf, -np.inf, 3.4e38, -3.4e38], F32)
    for sz in SignZero:
        b.add("binarize", "binarize", "sign_zero", "float32", {"sign_zero": sz.value}, {"x": x})
        b.add("binarize", "binarize", "sign_zero", "float64", {"sign_zero": sz.value}, {"x": x.astype(np.float64)})
    b.add("binarize", "binarize", "bad_input", "nan", {}, {"x": np.array([np.nan], F32)})
    _stochastic(b)
    _ste(b)
    for k in (1, 5, 63, 64, 65, 130):

        def signs(r: Draws, k: int = k) -> dict[str, Any]:
            return {"b": r.choice(np.array([-1, 1], np.int8), (3, k))}

        b.add("pack_bits", "pack_bits", "padding", f"k{k}", {}, signs)

        def operands(r: Draws, k: int = k) -> dict[str, Any]:
            lhs = pack_bits(r.choice(np.array([-1, 1], np.int8), (2, k)))
            rhs = pack_bits(r.choice(np.array([-1, 1], np.int8), (3, k)))
            return {"lhs_bits": lhs, "rhs_bits": rhs}

        b.add("xnor_matmul", "xnor_matmul", "padding", f"k{k}", {"k": k}, operands)
    b.add("pack_bits", "pack_bits", "bad_input", "zero", {}, {"b": np.array([1, 0, -1], np.int8)})
    # Set padding bits are masked: the result is the +-1 dot product of the first k bits.
    ones = np.array([[0xFFFF_FFFF_FFFF_FFFF]], np.uint64)
    b.add(
        "xnor_matmul",
        "xnor_matmul",
        "padding",
        "set_bits",
        {"k": 5},
        {"lhs_bits": ones, "rhs_bits": np.zeros((1, 1), np.uint64)},
    )
    words = np.array([[1]], np.uint64)
    b.add("xnor_matmul", "xnor_matmul", "bad_input", "words", {"k": 65}, {"lhs_bits": words, "rhs_bits": words})
    for padding_value in BinaryPadding:
        for xs, ws, stride, padding, dilation in (
            ((1, 3, 5, 6), (2, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
            ((2, 70, 4, 3), (3, 70, 2, 2), (2, 1), (0, 1, 2, 0), (1, 2)),
        ):

            def sign_images(r: Draws, xs: tuple[int, ...] = xs, ws: tuple[int, ...] = ws) -> dict[str, Any]:
                pm = np.array([-1, 1], np.int8)
                return {"x": r.choice(pm, xs), "w": r.choice(pm, ws)}

            params = {"stride": list(stride), "padding": list(padding), "dilation": list(dilation)}
            b.add(
                "binary_conv2d",
                "binary_conv2d",
                "padding",
                padding_value.value,
                {**params, "padding_value": padding_value.value},
                sign_images,
            )
    b.add(
        "binary_conv2d",
        "binary_conv2d",
        "bad_input",
        "zero",
        {},
        {"x": np.zeros((1, 1, 2, 2), np.int8), "w": np.ones((1, 1, 1, 1), np.int8)},
    )
    return b.records


def _stochastic(b: Builder) -> None:
    g = o = "binarize_stochastic"
    # p = clip((x + 1) / 2, 0, 1): draws exactly on p and one float32 ulp either side (p = 0.25, 0.5, 0.75), p at
    # 0 and 1 (x at and beyond -1 / +1), -0.0, +-inf.
    x = np.array(
        [-0.5, -0.5, -0.5, 0.0, 0.0, 0.0, -0.0, 0.5, 0.5, 0.5, -1.0, -1.0, 1.0, 1.0, -2.0, 2.0, -np.inf, np.inf]
    )
    p = np.array([0.25, 0.5, 0.75], F32)
    below, above = np.nextafter(p, F32(0)), np.nextafter(p, F32(1))
    u = np.array(
        [
            *(below[0], p[0], above[0], below[1], p[1], above[1], p[1], below[2], p[2], above[2]),
            *(0.0, 0.5, 0.0, 0.99999994, 0.0, 0.99999994, 0.0, 0.99999994),
        ],
        F32,
    )
    for dtype in (np.float32, np.float64, np.float16):
        b.add(g, o, "tie", np.dtype(dtype).name, {}, {"x": x.astype(dtype), "uniform": u})
    b.add(g, o, "tie", "uniform64", {}, {"x": x.astype(F32), "uniform": u.astype(np.float64)})
    for n in (7, 24):

        def rand(r: Draws, n: int = n) -> dict[str, Any]:
            return {"x": (r.standard_normal(n) * 0.8).astype(F32), "uniform": r.random(n).astype(F32)}

        b.add(g, o, "rounding_mode", f"n{n}", {}, rand)
    ones = np.ones(3, F32)
    for label, inputs in (
        ("nan", {"x": np.array([np.nan, 0.0, 0.0], F32), "uniform": np.zeros(3, F32)}),
        ("uniform_one", {"x": ones, "uniform": np.array([0.0, 1.0, 0.5], F32)}),
        ("uniform_negative", {"x": ones, "uniform": np.array([-1e-45, 0.0, 0.5], F32)}),
        ("uniform_nan", {"x": ones, "uniform": np.array([np.nan, 0.0, 0.5], F32)}),
        ("uniform_int", {"x": ones, "uniform": np.zeros(3, np.int32)}),
        ("shape", {"x": ones, "uniform": np.zeros(2, F32)}),
    ):
        b.add(g, o, "bad_input", label, {}, inputs)


def _ste(b: Builder) -> None:
    # |x| = 1 exactly and one ulp either side (both signs), -0.0, subnormals, +-inf, integer inputs.
    one = np.array([-1.0, 1.0], F32)
    x = np.concatenate(
        [
            np.nextafter(one, F32(-np.inf)),
            one,
            np.nextafter(one, F32(np.inf)),
            np.array([0.0, -0.0, 1e-45, -1e-45, 0.5, -0.5, 2.0, -2.0, np.inf, -np.inf], F32),
        ]
    )
    for window in SteWindow:
        params = {"window": window.value}
        for dtype in (np.float32, np.float64, np.float16):
            xd = x.astype(dtype)
            b.add("ste_mask", "ste_mask", "tie", np.dtype(dtype).name, params, {"x": xd})
            grad = np.linspace(-3.0, 3.0, x.size).astype(dtype)
            grad[0] = -0.0
            b.add("ste_grad", "ste_grad", "tie", np.dtype(dtype).name, params, {"x": xd, "grad": grad})
        xi = np.array([-2, -1, 0, 1, 2], np.int8)
        b.add("ste_mask", "ste_mask", "tie", "int8", params, {"x": xi})
        b.add("ste_grad", "ste_grad", "tie", "int8", params, {"x": xi, "grad": np.full(5, 1.5, F32)})
    b.add("ste_mask", "ste_mask", "bad_input", "nan", {}, {"x": np.array([np.nan], F32)})
    b.add("ste_mask", "ste_mask", "bad_input", "bool", {}, {"x": np.array([True])})
    b.add("ste_grad", "ste_grad", "bad_input", "shape", {}, {"x": np.zeros(3, F32), "grad": np.zeros(2, F32)})
    b.add("ste_grad", "ste_grad", "bad_input", "grad_int", {}, {"x": np.zeros(3, F32), "grad": np.zeros(3, np.int32)})
    b.add("ste_grad", "ste_grad", "bad_input", "nan", {}, {"x": np.array([np.nan], F32), "grad": np.zeros(1, F32)})
