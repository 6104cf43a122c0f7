"""Cases of the binary chapter: ``binarize`` under every sign(0) policy, ``pack_bits``, the masked ``xnor_matmul``
(docs/spec/binary.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.conformance.cases import Builder, Draws
from refquant.conformance.format import Record
from refquant.spec.binary import BinaryPadding, SignZero, pack_bits

F32 = np.float32


def cases() -> list[Record]:
    """Every record of the binary chapter."""
    b = Builder("binary")
    x = np.array([0.0, -0.0, 1e-45, -1e-45, 1.0, -1.0, np.inf, -np.inf, 3.4e38, -3.4e38], F32)
    for sz in SignZero:
        b.add("binarize", "binarize", "sign_zero", "float32", {"sign_zero": sz.value}, {"x": x})
        b.add("binarize", "binarize", "sign_zero", "float64", {"sign_zero": sz.value}, {"x": x.astype(np.float64)})
    b.add("binarize", "binarize", "bad_input", "nan", {}, {"x": np.array([np.nan], F32)})
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
