"""The conformance suite: record format, op registry, case definitions, generator, safe loader, exports.

Importing this package does not import numba (only ``ops.fast_runner`` does, on demand).
"""

from __future__ import annotations

from refquant.conformance.format import FORMAT_VERSION, WHY_TAGS, Record, Tensor, decode_record, encode_record
from refquant.conformance.generate import generate
from refquant.conformance.load import Suite, load_suite
from refquant.conformance.ops import OPS, Op

__all__ = [
    "FORMAT_VERSION",
    "OPS",
    "WHY_TAGS",
    "Op",
    "Record",
    "Suite",
    "Tensor",
    "decode_record",
    "encode_record",
    "generate",
    "load_suite",
]
