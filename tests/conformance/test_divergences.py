"""The peer adapters of bench/peer_adapters/ and the divergence report of bench/divergences.py.

Each adapter is checked on a few records where its peer is documented to agree with refquant, and on one where it
is documented to differ, for the cause docs/spec/divergences.md gives.  The records built here are worked by hand
from the definitions quoted beside them (and the peers' documented behaviour).  Each peer's tests skip when the
peer is not installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import divergences
from bench.peer_adapters import PEERS, NotCovered
from refquant.conformance import check, load_suite
from refquant.conformance.cases import evaluate
from refquant.conformance.format import Record

ROOT = Path(__file__).resolve().parents[2]
F32 = np.float32


@pytest.fixture(scope="module")
def suite() -> Any:
    return load_suite(ROOT / "conformance" / "v1")


def tie_record(fmt: str = "int8", **params: Any) -> Record:
    """x = +-0.5, +-1.5, +-2.5 with s = 1, z = 0 (docs/spec/divergences.md section 1): half to even gives 0, 2, 2."""
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5], F32)
    inputs: dict[str, Any] = {"x": x, "scale": np.array(1.0, F32), "zero_point": np.array(0)}
    return evaluate(
        "test/quantize/tie/0000", "quantize", {"fmt": fmt, "granularity": "per_tensor", **params}, inputs, "tie"
    )


def near_tie_record() -> Record:
    """Section 2: s = float32(0.00214854861), x = +-float32(0.273939937): x / s is no tie (127, -127), but x times
    the float32 reciprocal is exactly +-127.5, which half to even sends to +-128 (int8 saturates +128 to 127)."""
    s, x = F32(0.00214854861), F32(0.273939937)
    inputs: dict[str, Any] = {"x": np.array([x, -x], F32), "scale": np.array(s, F32), "zero_point": np.array(0)}
    return evaluate("test/quantize/near_tie/0000", "quantize", {"fmt": "int8"}, inputs, "near_tie")


def run(peer: str, records: list[Record]) -> divergences.PeerRun:
    result = divergences.run_peer(peer, records)
    assert not result.skipped, result.skipped
    return result


def columns(result: divergences.PeerRun) -> list[str]:
    return [r.column for r in result.results]


def causes_of(result: divergences.PeerRun) -> list[divergences.Group]:
    return divergences.group([result])


# --- the ONNX peers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("peer", ["onnx", "onnxruntime"])
def test_onnx_peers_round_ties_to_even_and_dequantize_exactly(peer: str, suite: Any) -> None:
    pytest.importorskip(PEERS[peer][0])
    pytest.importorskip("onnx")
    assert run(peer, [tie_record()]).results[0].outcome.status is check.Status.PASSED
    # Section 8: no dequantize divergence; every covered dequantize value record agrees bit for bit.
    records = [r for r in suite if r.op == "dequantize" and r.expect == "value"]
    result = run(peer, records)
    assert "differ" not in columns(result)
    assert columns(result).count("agree") >= 60


@pytest.mark.parametrize("peer", ["onnx", "onnxruntime"])
def test_onnx_peers_do_not_cover_options_they_lack(peer: str) -> None:
    pytest.importorskip(PEERS[peer][0])
    pytest.importorskip("onnx")
    lacking = [
        tie_record(rounding="half_away_from_zero"),
        tie_record(scale_application="reciprocal_multiply"),
        tie_record("int8n"),
        tie_record(profile="tflite"),
    ]
    assert columns(run(peer, lacking)) == ["not covered"] * 4


def test_onnxruntime_agrees_on_every_covered_quantize_value_record(suite: Any) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    records = [r for r in suite if r.op in ("quantize", "qlinear_matmul") and r.expect == "value"]
    result = run("onnxruntime", records)
    assert "differ" not in columns(result)
    assert columns(result).count("agree") >= 200


def test_onnxruntime_nan_is_the_documented_divergence(suite: Any) -> None:
    # Section 5: onnxruntime gives qmin for NaN where the spec raises nan_input.
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    result = run("onnxruntime", [suite.by_id("affine/quantize/bad_input/nan/0000")])
    (g,) = causes_of(result)
    assert g.cause == "returns a value where the spec raises nan_input"
    assert g.section == 5
    assert g.minimal["observed"]["q"]["data"] == [-128]


def test_onnx_reference_evaluator_int32_cast_is_section_7(suite: Any) -> None:
    # Section 7: the evaluator converts rint(x / s) to int32 before the clip; -inf then wraps with the zero point.
    pytest.importorskip("onnx")
    result = run("onnx", [suite.by_id("affine/quantize/nan_inf/int4/0003")])
    (g,) = causes_of(result)
    assert g.section == 7
    assert g.minimal["expected"]["q"]["data"] == [-8]
    assert g.minimal["observed"]["q"]["data"] == [7]


# --- torch -----------------------------------------------------------------------------------------------------


def test_torch_agrees_on_ties_and_differs_on_the_reciprocal() -> None:
    pytest.importorskip("torch")
    result = run("torch", [tie_record(), tie_record("uint8"), near_tie_record()])
    assert columns(result) == ["agree", "agree", "differ"]
    (g,) = causes_of(result)
    np.testing.assert_array_equal(g.minimal["observed"]["q"]["data"], [-128])  # -127.5 to even: -128
    assert any(name.startswith("scale_application=reciprocal_multiply") for name in g.cause.split(", "))
    assert g.section == 4


def test_torch_per_tensor_fuses_the_zero_point(suite: Any) -> None:
    # Section 4: quantize_per_tensor (qint8) rounds fl32(x * r + z) once: on this near tie the fused form is the cause.
    pytest.importorskip("torch")
    result = run("torch", [suite.by_id("affine/quantize/near_tie/int8/0001")])
    (g,) = causes_of(result)
    assert g.cause == "zero_point_order=fused_multiply_add (exact)"
    assert g.section == 4


def test_torch_sign_is_sign_zero_zero() -> None:
    # Section 18.1: torch.sign(0) = 0, so only sign_zero=zero records are covered and agree.
    pytest.importorskip("torch")
    x: dict[str, Any] = {"x": np.array([-2.0, -0.0, 0.0, 3.0], F32)}
    records = [
        evaluate("test/binarize/sign_zero/0000", "binarize", {"sign_zero": "zero"}, x, "sign_zero"),
        evaluate("test/binarize/sign_zero/0001", "binarize", {"sign_zero": "positive"}, x, "sign_zero"),
    ]
    assert columns(run("torch", records)) == ["agree", "not covered"]


# --- ml_dtypes -------------------------------------------------------------------------------------------------


def test_ml_dtypes_cast_rounds_toward_zero_and_wraps() -> None:
    pytest.importorskip("ml_dtypes")
    # Worked by hand: int4 with toward-zero rounding and wrap: 2.7 -> 2, -2.7 -> -2, 9.0 -> 9 - 16 = -7.
    inputs: dict[str, Any] = {
        "x": np.array([2.7, -2.7, 9.0], F32),
        "scale": np.array(1.0, F32),
        "zero_point": np.array(0),
    }
    native: dict[str, Any] = {"fmt": "int4", "rounding": "toward_zero", "overflow": "wrap"}
    agree = evaluate("test/quantize/cast/0000", "quantize", native, inputs, "saturation_edge")
    ties: dict[str, Any] = {"x": np.array([2.7, -2.7], F32), "scale": np.array(1.0, F32), "zero_point": np.array(0)}
    default = evaluate("test/quantize/cast/0001", "quantize", {"fmt": "int4"}, ties, "tie")
    scaled = evaluate(
        "test/quantize/cast/0002", "quantize", {"fmt": "int4"}, {**ties, "scale": np.array(2.0, F32)}, "tie"
    )
    result = run("ml_dtypes", [agree, default, scaled])
    assert columns(result) == ["agree", "differ", "not covered"]
    (g,) = causes_of(result)
    assert "rounding=toward_zero (exact)" in g.cause.split(", ")


# --- the report ------------------------------------------------------------------------------------------------


def test_a_peer_that_is_not_installed_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PEERS, "absent", ("refquant_no_such_distribution", "bench.peer_adapters.absent"))
    result = divergences.run_peer("absent", [tie_record()])
    assert result.skipped.startswith("not installed")
    assert result.results == []
    page = divergences.render([result], [], command="test", suite="test", total=1, cap=5)
    (row,) = divergences.parse_table(page)
    assert row["peer"] == "absent"
    assert row["op"].startswith("skipped: not installed")
    assert row["records"] == "0"


def test_adapters_raise_not_covered_rather_than_forcing_the_peer() -> None:
    pytest.importorskip("onnx")
    from bench.peer_adapters import onnx_reference

    r = tie_record(rounding="half_away_from_zero")
    with pytest.raises(NotCovered, match="rounding='half_away_from_zero'"):
        onnx_reference.quantize(r.params, {k: v.data for k, v in r.inputs.items()})


def test_the_committed_page_table_parses_and_adds_up() -> None:
    page = (ROOT / "docs" / "divergences.md").read_text(encoding="utf-8")
    rows = divergences.parse_table(page)
    assert rows, "docs/divergences.md has no summary table"
    peers_with_totals = set()
    for row in rows:
        parts = [int(row[k]) for k in ("agree", "both refuse", "differ", "not covered")]
        assert sum(parts) == int(row["records"]), row
        if row["op"].startswith("**total**"):
            peers_with_totals.add(row["peer"])
    assert peers_with_totals | {r["peer"] for r in rows if r["op"].startswith("skipped")} == set(PEERS)


def test_the_report_of_a_small_run_renders_and_parses() -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    result = run("onnxruntime", [tie_record(), tie_record(rounding="half_away_from_zero")])
    page = divergences.render([result], divergences.group([result]), command="t", suite="t", total=2, cap=5)
    rows = divergences.parse_table(page)
    assert rows[0] == {
        "peer": "onnxruntime",
        "op": "quantize",
        "records": "2",
        "agree": "1",
        "both refuse": "0",
        "differ": "0",
        "not covered": "1",
    }
    assert "No disagreement." in page


# --- docs/spec/divergences.md section 20.1: invalid scales are accepted by every peer ------------------------------

# The codes each peer returns for x = [1, 1] into int8 at zero point 0 (measured with the adapters, recorded in
# docs/spec/divergences.md section 20.1); refquant refuses each scale (scale_not_positive / scale_not_finite).
INVALID_SCALE_CODES = {
    "onnx": {-1.0: -1, 0.0: -128, float("inf"): 0, float("nan"): -128},
    "onnxruntime": {-1.0: -1, 0.0: 127, float("inf"): 0, float("nan"): -128},
    "torch": {-1.0: -1, 0.0: 127, float("inf"): 0, float("nan"): 127},
}


@pytest.mark.parametrize("peer", sorted(INVALID_SCALE_CODES))
def test_peers_accept_invalid_scales_as_section_20(peer: str) -> None:
    distribution, module_name = PEERS[peer]
    pytest.importorskip(distribution)
    import importlib

    adapter = importlib.import_module(module_name)
    for scale, code in INVALID_SCALE_CODES[peer].items():
        inputs = {"x": np.ones(2, F32), "scale": np.array(scale, F32), "zero_point": np.array(0)}
        out = adapter.quantize({"fmt": "int8", "granularity": "per_tensor"}, inputs)
        (values,) = out.values()
        np.testing.assert_array_equal(values, np.full(2, code, np.int8), err_msg=f"{peer} scale {scale}")
