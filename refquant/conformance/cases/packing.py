"""Cases of the packing chapter: ``pack`` and ``unpack`` of sub-byte codes (docs/spec/packing.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from refquant.conformance.cases import Builder, Draws
from refquant.conformance.format import Record
from refquant.spec.formats import IntFormat
from refquant.spec.packing import pack


def cases() -> list[Record]:
    """Every record of the packing chapter."""
    b = Builder("packing")
    for name in ("int4", "uint4", "int2", "uint2", "int4n", "int8", "uint8"):
        fmt = IntFormat.from_name(name)
        every = np.arange(fmt.qmin, fmt.qmax + 1).astype(fmt.storage_dtype)
        b.add("pack", "pack", "saturation_edge", name, {"fmt": name}, {"q": every})
        for count in (0, 1, 2, 3, 4, 5, 7, 9):

            def codes(r: Draws, count: int = count, fmt: IntFormat = fmt) -> dict[str, Any]:
                return {"q": r.integers(fmt.qmin, fmt.qmax + 1, count).astype(fmt.storage_dtype)}

            rec = b.add("pack", "pack", "padding", name, {"fmt": name}, codes)
            q = rec.inputs["q"].data
            b.add("unpack", "unpack", "padding", name, {"fmt": name, "count": count}, {"packed": pack(q, fmt)})
        b.add(
            "pack",
            "pack",
            "distinct_dims",
            name,
            {"fmt": name},
            {"q": np.resize(every, (2, 3)).astype(fmt.storage_dtype)},
        )
    for label, name, count, packed in (
        ("padding_set", "int4", 3, np.array([0x21, 0xF3], np.uint8)),
        ("padding_set", "int2", 5, np.array([0x00, 0x0C], np.uint8)),
        ("too_short", "int4", 5, np.array([0x21, 0x43], np.uint8)),
        ("too_long", "int4", 2, np.array([0x21, 0x00], np.uint8)),
        ("negative_count", "int4", -1, np.array([], np.uint8)),
        ("not_uint8", "int4", 2, np.array([0x21], np.int16)),
    ):
        b.add("unpack", "unpack", "bad_input", label, {"fmt": name, "count": count}, {"packed": packed})
    b.add("pack", "pack", "bad_input", "code_above", {"fmt": "int4"}, {"q": np.array([8, 0], np.int8)})
    b.add("pack", "pack", "bad_input", "code_below", {"fmt": "uint2"}, {"q": np.array([-1], np.int8)})
    b.add("pack", "pack", "bad_input", "narrow", {"fmt": "int4n"}, {"q": np.array([-8], np.int8)})
    return b.records
