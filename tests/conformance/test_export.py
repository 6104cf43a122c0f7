"""Exports read back: .npy with allow_pickle=False, $readmemh words parsed by hand, the C header compiled."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from refquant.conformance.export import ExportFormat, c_name, export, hex_lines
from refquant.conformance.format import Tensor
from refquant.conformance.load import Suite, load_suite

SUITE = Path(__file__).resolve().parents[2] / "conformance" / "v1"


@pytest.fixture(scope="module")
def suite() -> Suite:
    return load_suite(SUITE)


def _subset(suite: Suite) -> Suite:
    """Every 25th record and every negative one: enough for each dtype and both kinds of record."""
    records = tuple(r for i, r in enumerate(suite.records) if i % 25 == 0 or r.error)
    return Suite(suite.root, suite.format_version, suite.spec_version, records)


def test_hex_words_worked_by_hand() -> None:
    # Worked by hand: int8 -1 = ff, -128 = 80; int32 -2 = fffffffe; float32 1.0 = 3f800000, -0.0 = 80000000;
    # uint16 65535 = ffff; bool as one digit.
    assert hex_lines(Tensor.of(np.array([-1, -128, 5], np.int8))) == ["ff", "80", "05"]
    assert hex_lines(Tensor.of(np.array([-2], np.int32))) == ["fffffffe"]
    assert hex_lines(Tensor.of(np.array([1.0, -0.0], np.float32))) == ["3f800000", "80000000"]
    assert hex_lines(Tensor.of(np.array([65535], np.uint16))) == ["ffff"]
    assert hex_lines(Tensor.of(np.array([True, False]))) == ["1", "0"]
    assert c_name("affine/quantize/tie/int8/0003", "inputs", "x") == "rq_affine_quantize_tie_int8_0003_inputs_x"


def test_npy_export_reads_back_bit_for_bit(suite: Suite, tmp_path: Path) -> None:
    sub = _subset(suite)
    export(sub, tmp_path, fmt=ExportFormat.NPY)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [m["id"] for m in manifest["records"]] == [r.id for r in sub]
    for r, m in zip(sub, manifest["records"], strict=True):
        assert m["error"] == r.error
        for role, tensors in (("inputs", r.inputs), ("expected", r.expected or {})):
            for name, t in tensors.items():
                entry = m["tensors"][f"{role}/{name}"]
                back = np.load(tmp_path / entry["file"], allow_pickle=False)
                assert Tensor.of(back).equals(t), (r.id, role, name)
                assert entry["shape"] == list(t.shape)


def test_hex_export_parses_back(suite: Suite, tmp_path: Path) -> None:
    sub = _subset(suite)
    export(sub, tmp_path, fmt=ExportFormat.HEX)
    for r in sub:
        for name, t in r.inputs.items():
            words = (tmp_path / r.id / "inputs" / f"{name}.hex").read_text().split()
            assert len(words) == t.data.size
            if t.dtype == "bool":
                back = np.array([int(w) for w in words], np.bool_)
            else:
                unsigned = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[t.data.dtype.itemsize]
                assert all(len(w) == 2 * t.data.dtype.itemsize for w in words)
                back = np.array([int(w, 16) for w in words], unsigned).view(t.data.dtype)
            assert Tensor.of(back.reshape(t.shape)).equals(t), (r.id, name)


def test_c_header_compiles(suite: Suite, tmp_path: Path) -> None:
    export(suite, tmp_path, fmt=ExportFormat.C)  # the whole suite: distinct C names for every tensor
    header = tmp_path / "refquant_vectors.h"
    text = header.read_text()
    assert "static const refquant_record refquant_records[]" in text
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: the header was written but not compiled")
    main = tmp_path / "main.c"
    main.write_text('#include "refquant_vectors.h"\nint main(void) { return refquant_record_count > 0 ? 0 : 1; }\n')
    assert text.count('{"') == len(suite)  # one table row per record
    subprocess.run([gcc, "-std=c99", "-Wall", "-Werror", "-fsyntax-only", str(main)], check=True, cwd=tmp_path)
