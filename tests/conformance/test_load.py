"""The loader refuses every corrupted suite with a documented condition and nothing else (fuzzed with Hypothesis)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refquant.conformance.cases import evaluate
from refquant.conformance.generate import dumps_group, dumps_index
from refquant.conformance.load import LOAD_CONDITIONS, load_suite
from refquant.errors import SpecError


def _small_suite(folder: Path) -> None:
    """A valid two-file suite written with the generator's own writers."""
    records = [
        evaluate(
            "affine/quantize/tie/int8/0000",
            "quantize",
            {"fmt": "int8"},
            {"x": np.array([0.5, 1.5], np.float32), "scale": np.array(1.0, np.float32), "zero_point": np.array(0)},
            "tie",
        ),
        evaluate(
            "affine/quantize/nan_inf/int8/0000",
            "quantize",
            {"fmt": "int8"},
            {"x": np.array([np.nan], np.float32), "scale": np.array(1.0, np.float32), "zero_point": np.array(0)},
            "nan_inf",
        ),
        evaluate(
            "packing/pack/padding/int4/0000", "pack", {"fmt": "int4"}, {"q": np.array([-8, 7, 1], np.int8)}, "padding"
        ),
    ]
    files = []
    for rel, group in (("affine/quantize.json", records[:2]), ("packing/pack.json", records[2:])):
        data = dumps_group(group).encode()
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
        files.append({"path": rel, "records": len(group), "sha256": hashlib.sha256(data).hexdigest()})
    (folder / "index.json").write_text(dumps_index(files, "1.0"))


@pytest.fixture
def small(tmp_path: Path) -> Path:
    folder = tmp_path / "suite"
    _small_suite(folder)
    return folder


def _index(folder: Path) -> dict[str, object]:
    return json.loads((folder / "index.json").read_text())  # type: ignore[no-any-return]


def _write_index(folder: Path, index: object) -> None:
    (folder / "index.json").write_text(json.dumps(index))


def _condition(folder: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_suite(folder)
    return info.value.condition


def test_a_valid_suite_loads(small: Path) -> None:
    suite = load_suite(small)
    assert [r.id for r in suite] == sorted(r.id for r in suite)
    assert len(suite) == 3
    assert suite.by_id("affine/quantize/nan_inf/int8/0000").error == "nan_input"
    assert suite.by_id("affine/quantize/tie/int8/0000").expected["q"].data.tolist() == [0, 2]  # type: ignore[index]


def test_unknown_format_version(small: Path) -> None:
    index = _index(small)
    index["format_version"] = "2"
    _write_index(small, index)
    assert _condition(small) == "unknown_format_version"


def test_checksum_mismatch(small: Path) -> None:
    path = small / "packing" / "pack.json"
    path.write_bytes(path.read_bytes().replace(b'"padding"', b'"random"'))
    assert _condition(small) == "checksum_mismatch"


@pytest.mark.parametrize("rel", ["/etc/passwd", "../outside.json", "affine/../../outside.json", "C:/x.json"])
def test_paths_that_leave_the_suite(small: Path, rel: str) -> None:
    (small.parent / "outside.json").write_text("{}")
    index = _index(small)
    index["files"][0]["path"] = rel  # type: ignore[index]
    _write_index(small, index)
    assert _condition(small) == "path_outside_suite"


def test_a_symlink_out_of_the_suite(small: Path) -> None:
    outside = small.parent / "elsewhere"
    outside.mkdir()
    shutil.copy(small / "packing" / "pack.json", outside / "pack.json")
    os.symlink(outside, small / "link")
    index = _index(small)
    index["files"][1]["path"] = "link/pack.json"  # type: ignore[index]
    _write_index(small, index)
    assert _condition(small) == "path_outside_suite"


def test_a_shape_that_does_not_match_its_data(small: Path) -> None:
    path = small / "packing" / "pack.json"
    data = path.read_bytes().replace(b'"shape":[3]', b'"shape":[4]', 1)
    path.write_bytes(data)
    index = _index(small)
    index["files"][1]["sha256"] = hashlib.sha256(data).hexdigest()  # type: ignore[index]
    _write_index(small, index)
    assert _condition(small) == "malformed_record"


def test_a_missing_suite(tmp_path: Path) -> None:
    assert _condition(tmp_path / "nothing") == "malformed_record"


def test_the_loader_never_unpickles() -> None:
    source = Path(load_suite.__code__.co_filename).read_text()
    assert "pickle" not in source.replace("no pickle", "")
    assert "np.load" not in source.replace("no ``np.load``", "")


@st.composite
def corruptions(draw: st.DrawFn) -> tuple[str, int, bytes, bool]:
    target = draw(st.sampled_from(["index.json", "affine/quantize.json", "packing/pack.json"]))
    position = draw(st.integers(0, 10_000))
    payload = draw(
        st.binary(min_size=0, max_size=6)
        | st.sampled_from([b"..", b"/", b"-1", b"null", b"[]", b"{}", b'"', b"1e999", b"NaN"])
    )
    fix_checksum = draw(st.booleans())
    return target, position, payload, fix_checksum


@settings(max_examples=120, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(corruptions())
def test_fuzzed_corruptions_give_only_documented_conditions(
    small: Path, corruption: tuple[str, int, bytes, bool]
) -> None:
    target, position, payload, fix_checksum = corruption
    work = small.parent / "fuzz"
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(small, work)
    path = work / target
    data = path.read_bytes()
    at = position % (len(data) + 1)
    cut = min(len(payload), len(data) - at)
    path.write_bytes(data[:at] + payload + data[at + cut :])
    if fix_checksum and target != "index.json":
        index = _index(work)
        for entry in index["files"]:  # type: ignore[attr-defined]
            if entry["path"] == target:
                entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        _write_index(work, index)
    outcome: str | int
    try:
        outcome = len(load_suite(work))
    except SpecError as error:
        outcome = error.condition
    # Either a documented condition, or an edit that left valid JSON of the right shape (all three records load).
    assert outcome in (*LOAD_CONDITIONS, 3), outcome


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_records(draw: st.DrawFn) -> object:
    """A valid encoded record with one key replaced by arbitrary JSON, deleted, or one tensor field changed."""
    obj = json.loads(
        '{"expect":"value","expected":{"q":{"data":[0,2],"dtype":"int8","shape":[2]}},"id":"affine/quantize/tie/int8/0000",'
        '"inputs":{"x":{"data":["0x3f000000","0x3fc00000"],"dtype":"float32","shape":[2]}},"match":"exact",'
        '"op":"quantize","params":{"fmt":"int8"},"why":"tie"}'
    )
    where = draw(st.sampled_from([obj, obj["inputs"]["x"], obj["expected"]["q"], obj["params"]]))
    key = draw(st.sampled_from(sorted(where)))
    if draw(st.booleans()):
        del where[key]
    else:
        where[key] = draw(_JSON)
    return obj


@settings(max_examples=200)
@given(mutated_records())
def test_fuzzed_records_decode_or_raise_malformed_record(obj: object) -> None:
    from refquant.conformance.format import decode_record

    outcome: str
    try:
        decode_record(obj)
        outcome = "decoded"
    except SpecError as error:
        outcome = error.condition
    assert outcome in ("decoded", "malformed_record")
