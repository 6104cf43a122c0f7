"""The conformance record format (DESIGN.md section 4; documented for C and HDL consumers in docs/conformance.md).

A record is one call of one spec operation: its ``op``, its ``params`` (JSON scalars: enum values by their
``.value``, format names such as ``"int8"``, plain ints), its ``inputs`` and either its ``expected`` outputs or
the condition id of the error it must raise.  Tensors are ``{dtype, shape, data}`` with ``data`` flattened in C
order: float data as IEEE-754 bit patterns in lower-case hex strings of the dtype's width (``"0x3f800000"``),
integer data as decimal JSON numbers, except that 64-bit values outside ``[-(2**53 - 1), 2**53 - 1]`` are decimal
strings (a JSON reader that parses numbers as doubles would round them), and bool as 0/1.

Decoding checks every field and raises ``SpecError("malformed_record")`` naming what is wrong; it never returns a
half-read record.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from refquant.errors import SpecError

__all__ = [
    "DTYPES",
    "FLOAT_DTYPES",
    "FORMAT_VERSION",
    "INT_DTYPES",
    "MATCHES",
    "SAFE_INT",
    "WHY_TAGS",
    "JSONValue",
    "Record",
    "Tensor",
    "decode_record",
    "decode_tensor",
    "encode_record",
    "encode_tensor",
]

FORMAT_VERSION: Final = "1"

JSONValue = str | int | float | bool | None | list[Any] | dict[str, Any]

FLOAT_DTYPES: Final = {"float16": np.float16, "float32": np.float32, "float64": np.float64}
"""Float dtypes and their bit-pattern widths: 16, 32, 64 bits (4, 8, 16 hex digits)."""
_FLOAT_BITS: Final = {"float16": np.uint16, "float32": np.uint32, "float64": np.uint64}
INT_DTYPES: Final[dict[str, type[np.integer[Any]]]] = {
    "int8": np.int8,
    "int16": np.int16,
    "int32": np.int32,
    "int64": np.int64,
    "uint8": np.uint8,
    "uint16": np.uint16,
    "uint32": np.uint32,
    "uint64": np.uint64,
}
DTYPES: Final = (*FLOAT_DTYPES, *INT_DTYPES, "bool")
SAFE_INT: Final = 2**53 - 1
"""Integers with ``|v| <= SAFE_INT`` are JSON numbers; larger 64-bit values are decimal strings."""

WHY_TAGS: Final = (
    "tie",
    "near_tie",
    "saturation_edge",
    "zero_point_edge",
    "nan_inf",
    "subnormal",
    "negative_zero",
    "ragged_block",
    "distinct_dims",
    "rounding_mode",
    "profile",
    "degenerate_range",
    "fixed_point_edge",
    "double_vs_single",
    "accumulator_edge",
    "sign_zero",
    "padding",
    "random",
    "bad_input",
)
"""Why a record exists: the edge it sits on (docs/conformance.md lists what each tag means)."""

MATCHES: Final = ("exact",)
"""How outputs are compared: ``exact`` is bit for bit (integers equal, floats equal as bit patterns)."""

_ID: Final = re.compile(r"^[a-z0-9_]+(/[a-z0-9_.+-]+){2,}$")
_HEX: Final = {"float16": re.compile(r"^0x[0-9a-f]{4}$"), "float32": re.compile(r"^0x[0-9a-f]{8}$")}
_HEX["float64"] = re.compile(r"^0x[0-9a-f]{16}$")
_DECIMAL: Final = re.compile(r"^-?[0-9]+$")


def _bad(message: str) -> SpecError:
    return SpecError("malformed_record", message)


@dataclass(frozen=True, eq=False)
class Tensor:
    """A tensor of a record: ``dtype`` (one of ``DTYPES``), ``shape`` and the data as a read-only numpy array."""

    dtype: str
    shape: tuple[int, ...]
    data: npt.NDArray[Any] = field(repr=False)

    @classmethod
    def of(cls, array: npt.ArrayLike) -> Tensor:
        """A tensor holding ``array`` (its dtype must be one of ``DTYPES``)."""
        a = np.array(array, copy=True)
        name = a.dtype.name
        if name not in DTYPES:
            raise _bad(f"tensor dtype {name!r} is not one of {list(DTYPES)}")
        a.setflags(write=False)
        return cls(name, tuple(int(d) for d in a.shape), a)

    def equals(self, other: Tensor) -> bool:
        """Bit-for-bit equality: same dtype, shape and bit pattern (so NaN payloads and -0.0 count)."""
        if self.dtype != other.dtype or self.shape != other.shape:
            return False
        if self.dtype in _FLOAT_BITS:
            bits = _FLOAT_BITS[self.dtype]
            return bool(np.array_equal(self.data.view(bits), other.data.view(bits)))
        return bool(np.array_equal(self.data, other.data))


@dataclass(frozen=True, eq=False)
class Record:
    """One conformance record (see the module documentation)."""

    id: str
    op: str
    params: Mapping[str, JSONValue]
    inputs: Mapping[str, Tensor]
    expected: Mapping[str, Tensor] | None
    error: str | None
    why: str
    match: str = "exact"

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.match(self.id):
            raise _bad(f"record id {self.id!r} is not a path-like id such as 'affine/quantize/tie/int8/0003'")
        if self.why not in WHY_TAGS:
            raise _bad(f"record {self.id}: why {self.why!r} is not one of {list(WHY_TAGS)}")
        if self.match not in MATCHES:
            raise _bad(f"record {self.id}: match {self.match!r} is not one of {list(MATCHES)}")
        if (self.expected is None) == (self.error is None):
            raise _bad(f"record {self.id}: exactly one of expected and error must be given")

    @property
    def expect(self) -> str:
        """``"value"`` for a record with expected outputs, ``"error"`` for a negative record."""
        return "error" if self.error is not None else "value"


def encode_tensor(t: Tensor, /) -> dict[str, JSONValue]:
    """The JSON object of a tensor."""
    flat = t.data.reshape(-1)
    data: list[JSONValue]
    if t.dtype in _FLOAT_BITS:
        width = np.dtype(_FLOAT_BITS[t.dtype]).itemsize * 2
        data = [f"0x{int(b):0{width}x}" for b in flat.view(_FLOAT_BITS[t.dtype]).tolist()]
    elif t.dtype == "bool":
        data = [int(v) for v in flat.tolist()]
    else:
        data = [v if -SAFE_INT <= v <= SAFE_INT else str(v) for v in (int(x) for x in flat.tolist())]
    return {"dtype": t.dtype, "shape": list(t.shape), "data": data}


def decode_tensor(obj: object, /, *, where: str = "tensor") -> Tensor:
    """The tensor of a JSON object; ``SpecError("malformed_record")`` on any inconsistency."""
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        raise _bad(f"{where}: a tensor is an object with exactly the keys dtype, shape, data")
    dtype, shape, data = obj["dtype"], obj["shape"], obj["data"]
    if dtype not in DTYPES:
        raise _bad(f"{where}: dtype {dtype!r} is not one of {list(DTYPES)}")
    if not isinstance(shape, list) or not all(type(d) is int and 0 <= d <= 2**31 for d in shape) or len(shape) > 8:
        raise _bad(f"{where}: shape {shape!r} is not a list of at most 8 non-negative ints")
    if not isinstance(data, list):
        raise _bad(f"{where}: data is not a list")
    size = 1
    for d in shape:
        size *= d
    if len(data) != size:
        raise _bad(f"{where}: shape {shape} needs {size} elements, data holds {len(data)}")
    if dtype in _FLOAT_BITS:
        pattern = _HEX[dtype]
        if not all(isinstance(v, str) and pattern.match(v) for v in data):
            raise _bad(f"{where}: {dtype} data must be lower-case hex bit patterns such as '0x3f800000'")
        bits = np.array([int(v, 16) for v in data], dtype=_FLOAT_BITS[dtype])
        arr = bits.view(FLOAT_DTYPES[dtype])
    elif dtype == "bool":
        if not all(type(v) is int and v in (0, 1) for v in data):
            raise _bad(f"{where}: bool data must be 0 or 1")
        arr = np.array(data, dtype=np.bool_)
    else:
        info = np.iinfo(INT_DTYPES[dtype])
        values: list[int] = []
        for v in data:
            if type(v) is int and -SAFE_INT <= v <= SAFE_INT:
                values.append(v)
            elif isinstance(v, str) and _DECIMAL.match(v) and len(v) <= 21 and abs(int(v)) > SAFE_INT:
                values.append(int(v))
            else:
                raise _bad(f"{where}: {dtype} element {v!r} is not a decimal integer in the format's encoding")
            if not info.min <= values[-1] <= info.max:
                raise _bad(f"{where}: {values[-1]} is outside {dtype}")
        arr = np.array(values, dtype=INT_DTYPES[dtype])
    arr = arr.reshape(tuple(shape))
    arr.setflags(write=False)
    return Tensor(dtype, tuple(shape), arr)


def _check_params(params: object, where: str) -> dict[str, JSONValue]:
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise _bad(f"{where}: params is not an object")
    for key, value in params.items():
        items = value if isinstance(value, list) else [value]
        if not all(v is None or isinstance(v, (str, int, bool)) for v in items):
            raise _bad(f"{where}: param {key!r} must be a string, int, bool, null or a list of them")
    return dict(params)


def encode_record(r: Record, /) -> dict[str, JSONValue]:
    """The JSON object of a record (keys sort; ``expected`` or ``error`` by ``expect``)."""
    obj: dict[str, JSONValue] = {
        "id": r.id,
        "op": r.op,
        "params": dict(r.params),
        "inputs": {k: encode_tensor(v) for k, v in r.inputs.items()},
        "expect": r.expect,
        "why": r.why,
        "match": r.match,
    }
    if r.expected is not None:
        obj["expected"] = {k: encode_tensor(v) for k, v in r.expected.items()}
    else:
        obj["error"] = r.error
    return obj


_KEYS: Final = {"id", "op", "params", "inputs", "expect", "why", "match"}


def decode_record(obj: object, /) -> Record:
    """The record of a JSON object; ``SpecError("malformed_record")`` on any inconsistency."""
    if not isinstance(obj, dict):
        raise _bad("a record is a JSON object")
    rid = obj.get("id")
    where = f"record {rid!r}"
    expect = obj.get("expect")
    extra = "expected" if expect == "value" else "error"
    if expect not in ("value", "error") or set(obj) != _KEYS | {extra}:
        raise _bad(
            f"{where}: keys must be {sorted(_KEYS)} plus 'expected' (expect 'value') or 'error' (expect 'error')"
        )
    if not isinstance(rid, str) or not isinstance(obj["op"], str) or not isinstance(obj["why"], str):
        raise _bad(f"{where}: id, op and why must be strings")
    if not isinstance(obj["match"], str):
        raise _bad(f"{where}: match must be a string")
    params = _check_params(obj["params"], where)

    def tensors(value: object, what: str) -> dict[str, Tensor]:
        if not isinstance(value, dict):
            raise _bad(f"{where}: {what} is not an object")
        return {str(k): decode_tensor(v, where=f"{where} {what}.{k}") for k, v in value.items()}

    inputs = tensors(obj["inputs"], "inputs")
    if expect == "value":
        return Record(
            rid, obj["op"], params, inputs, tensors(obj["expected"], "expected"), None, obj["why"], obj["match"]
        )
    error = obj["error"]
    if not isinstance(error, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", error):
        raise _bad(f"{where}: error must be a snake_case condition id, got {error!r}")
    return Record(rid, obj["op"], params, inputs, None, error, obj["why"], obj["match"])
