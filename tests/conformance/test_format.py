"""The record format: encoding rules worked by hand from docs/conformance.md, round trips, and rejections."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refquant.conformance.format import (
    DTYPES,
    SAFE_INT,
    WHY_TAGS,
    Record,
    Tensor,
    decode_record,
    decode_tensor,
    encode_record,
    encode_tensor,
)
from refquant.errors import SpecError


def test_float_data_are_bit_patterns_and_integers_decimal() -> None:
    # Worked by hand from the format: 1.0f = 0x3f800000, -0.0f = 0x80000000, 1.0 (f16) = 0x3c00,
    # 1.0 (f64) = 0x3ff0000000000000; int64 beyond 2**53 - 1 becomes a decimal string.
    assert encode_tensor(Tensor.of(np.array([1.0, -0.0], np.float32)))["data"] == ["0x3f800000", "0x80000000"]
    assert encode_tensor(Tensor.of(np.array([1.0], np.float16)))["data"] == ["0x3c00"]
    assert encode_tensor(Tensor.of(np.array([1.0], np.float64)))["data"] == ["0x3ff0000000000000"]
    big = Tensor.of(np.array([SAFE_INT, SAFE_INT + 1, -(2**63)], np.int64))
    assert encode_tensor(big)["data"] == [SAFE_INT, str(SAFE_INT + 1), str(-(2**63))]
    assert encode_tensor(Tensor.of(np.array([[True], [False]])))["data"] == [1, 0]
    assert encode_tensor(Tensor.of(np.array(-3, np.int8))) == {"dtype": "int8", "shape": [], "data": [-3]}


def test_a_worked_record_round_trips() -> None:
    r = Record(
        "affine/quantize/tie/int8/0000",
        "quantize",
        {"fmt": "int8", "granularity": "per_tensor", "rounding": "half_to_even"},
        {"x": Tensor.of(np.array([0.5, 1.5], np.float32)), "scale": Tensor.of(np.array(1.0, np.float32))},
        {"q": Tensor.of(np.array([0, 2], np.int8))},
        None,
        "tie",
    )
    obj = encode_record(r)
    assert obj["expect"] == "value"
    assert obj["expected"] == {"q": {"dtype": "int8", "shape": [2], "data": [0, 2]}}
    back = decode_record(json.loads(json.dumps(obj)))
    assert back.id == r.id
    assert back.expected is not None
    assert back.expected["q"].equals(r.expected["q"])  # type: ignore[index]
    assert back.inputs["x"].data.view(np.uint32).tolist() == [0x3F000000, 0x3FC00000]


@st.composite
def tensors(draw: st.DrawFn) -> Tensor:
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    return Tensor.of(draw(hnp.arrays(np.dtype(dtype), shape)))


@settings(max_examples=150)
@given(tensors())
def test_every_tensor_round_trips_bit_for_bit(t: Tensor) -> None:
    back = decode_tensor(json.loads(json.dumps(encode_tensor(t))))
    assert back.equals(t)
    assert back.shape == t.shape


@pytest.mark.parametrize(
    "obj",
    [
        {"dtype": "float32", "shape": [2], "data": ["0x3f800000"]},  # shape needs 2 elements
        {"dtype": "float32", "shape": [1], "data": ["0x3F800000"]},  # upper-case hex
        {"dtype": "float32", "shape": [1], "data": ["0x3f80000"]},  # 7 digits
        {"dtype": "float32", "shape": [1], "data": [1.0]},  # a decimal float
        {"dtype": "int8", "shape": [1], "data": [128]},  # outside int8
        {"dtype": "int64", "shape": [1], "data": ["5"]},  # a small value as a string
        {"dtype": "int8", "shape": [1], "data": [True]},
        {"dtype": "bool", "shape": [1], "data": [2]},
        {"dtype": "object", "shape": [1], "data": [0]},
        {"dtype": "int8", "shape": [-1], "data": []},
        {"dtype": "int8", "shape": [1], "data": [0], "extra": 1},
    ],
)
def test_malformed_tensors_are_refused(obj: object) -> None:
    with pytest.raises(SpecError) as info:
        decode_tensor(obj)
    assert info.value.condition == "malformed_record"


def test_record_fields_are_validated() -> None:
    x = {"x": Tensor.of(np.zeros(1, np.float32))}
    q = {"q": Tensor.of(np.zeros(1, np.int8))}
    for kwargs in (
        {"id": "no slash", "why": "tie"},
        {"id": "a/b", "why": "tie"},
        {"id": "affine/quantize/tie/0", "why": "because"},
    ):
        with pytest.raises(SpecError, match="malformed_record"):
            Record(kwargs["id"], "quantize", {}, x, q, None, kwargs["why"])
    with pytest.raises(SpecError, match="exactly one"):
        Record("affine/quantize/tie/0", "quantize", {}, x, q, "nan_input", "tie")
    assert "bad_input" in WHY_TAGS


def test_the_schema_file_lists_the_code_s_enumerations() -> None:
    from pathlib import Path

    from refquant.conformance.format import MATCHES
    from refquant.conformance.ops import OPS

    schema = json.loads((Path(__file__).resolve().parents[2] / "conformance" / "record.schema.json").read_text())
    record = schema["$defs"]["record"]["properties"]
    assert record["why"]["enum"] == list(WHY_TAGS)
    assert all(re.fullmatch(record["op"]["pattern"], name) for name in OPS)
    assert record["match"]["enum"] == list(MATCHES)
    assert schema["$defs"]["tensor"]["properties"]["dtype"]["enum"] == list(DTYPES)
    assert schema["properties"]["format_version"]["const"] == "1"


def test_every_op_has_a_row_in_the_parameter_table_of_docs_conformance() -> None:
    from pathlib import Path

    from refquant.conformance.ops import OPS

    text = (Path(__file__).resolve().parents[2] / "docs" / "conformance.md").read_text()
    rows = {m.group(1) for m in re.finditer(r"^\| `([a-z0-9_]+)`", text, re.MULTILINE)}
    named = set()
    for row in re.findall(r"^\| (`[a-z0-9_]+`(?:, `[a-z0-9_]+`)*)", text, re.MULTILINE):
        named.update(re.findall(r"`([a-z0-9_]+)`", row))
    assert set(OPS) <= named | rows, sorted(set(OPS) - named - rows)
