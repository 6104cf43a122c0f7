"""`refquant check`: the default run on refquant.fast, adapter modules, results folders, causes, bad arguments."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from refquant.cli import main
from refquant.conformance import check
from refquant.conformance.check import Status
from refquant.conformance.load import Suite, load_suite
from refquant.conformance.ops import OPS
from refquant.errors import SpecError

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "conformance" / "v1"


@pytest.fixture(scope="module")
def suite() -> Suite:
    return load_suite(SUITE)


def _adapter_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, body: str) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_default_run_checks_refquant_fast_and_passes(suite: Suite, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("numba")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("refquant.fast against ")
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in out.splitlines() if line.startswith(tuple(OPS))}
    # every op with a kernel has all of its records passed; the ops without one are not covered, never failed
    for (op, _why), (records, passed, failed, not_covered) in rows.items():
        assert failed == "0", (op, _why)
        if OPS[op].fast is not None:
            assert (passed, not_covered) == (records, "0"), (op, _why)
        else:
            assert (passed, not_covered) == ("0", records), (op, _why)
    assert {op for op, _ in rows} == set(OPS)
    assert out.rstrip().splitlines()[-1].startswith("PASS: ")
    without_kernel = sum(1 for r in suite if OPS[r.op].fast is None)
    assert out.rstrip().endswith(f" 0 failed, {without_kernel} not covered")


def test_the_spec_adapter_passes_every_record(suite: Suite) -> None:
    outcomes = check.check_adapter(suite, check.spec_adapter())
    assert check.summarize(outcomes).total == {Status.PASSED: len(suite)}


def test_quantize_rounding_ties_away_from_zero_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _adapter_module(
        tmp_path,
        monkeypatch,
        "tie_bug_adapter",
        """
        from refquant.conformance.ops import OPS

        def quantize(params, inputs):  # the classic bug: ties away from zero whatever the record says
            return OPS["quantize"].run({**params, "rounding": "half_away_from_zero"}, inputs)
        """,
    )
    argv = ["check", "--impl", name, "--op", "quantize", "--op", "requantize", "--why", "tie", "--max-failures", "1"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "cause: rounding=half_away_from_zero (exact)" in out
    assert "requantize" not in out.split("\n\n")[0]  # the adapter lacks requantize, and it has no tie records
    minimal = json.loads(next(line for line in out.splitlines() if "minimal record: " in line).split(": ", 1)[1])
    assert minimal["op"] == "quantize"
    assert minimal["inputs"]["x"]["shape"] == [1]  # cut to one element
    assert minimal["expected"]["q"]["data"] != minimal["observed"]["q"]["data"]
    assert "FAIL: " in out
    assert out.count("\nFAILED ") == 1  # --max-failures 1


def test_requantize_with_single_rounding_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _adapter_module(
        tmp_path,
        monkeypatch,
        "single_rounding_adapter",
        """
        from refquant.conformance.ops import OPS

        def requantize(params, inputs):
            return OPS["requantize"].run({**params, "rounding": "single"}, inputs)
        """,
    )
    suite = load_suite(SUITE)
    records = check.select(suite, ops=["requantize"], whys=["double_vs_single"])
    outcomes = check.check_adapter(records, check.module_adapter(name))
    failed = [o for o in outcomes if o.status is Status.FAILED and o.record.error is None]
    assert len(failed) > 50, "the double_vs_single records must catch single rounding"
    for o in failed[:8]:
        e = check.explain(o)
        assert "rounding=single" in [c.name for c in e.causes], o.record.id
    # the records where a double-rounding record's two roundings agree pass
    assert all(o.status is not Status.NOT_COVERED for o in outcomes)


def test_quantize_multiplying_by_the_scale_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = _adapter_module(
        tmp_path,
        monkeypatch,
        "scale_bug_adapter",
        """
        import numpy as np
        from refquant.spec.formats import IntFormat

        def quantize(params, inputs):  # x * scale instead of x / scale (per-tensor records only)
            fmt = IntFormat.from_name(params["fmt"])
            x, s = inputs["x"].astype(np.float32), np.float32(inputs["scale"])
            q = np.rint(x * s) + inputs["zero_point"]
            return {"q": np.clip(q, fmt.qmin, fmt.qmax).astype(fmt.storage_dtype)}
        """,
    )
    assert main(["check", "--impl", name, "--op", "quantize", "--why", "random", "--max-failures", "3"]) == 1
    out = capsys.readouterr().out
    assert out.count("cause: scale_multiplied (exact)") == 3


def test_error_records_need_the_same_condition(suite: Suite) -> None:
    records = [r for r in suite if r.op == "quantize" and r.error is not None]

    def wrong_condition(params: object, inputs: object) -> dict[str, np.ndarray]:
        raise SpecError("some_other_condition", "no")

    def foreign(params: object, inputs: object) -> dict[str, np.ndarray]:
        raise RuntimeError("boom")

    for run, said in ((wrong_condition, "SpecError [some_other_condition]"), (foreign, "RuntimeError: boom")):
        outcomes = check.check_adapter(records, {"quantize": run})
        assert {o.status for o in outcomes} == {Status.FAILED}
        assert all(said in o.reason and o.record.error in o.reason for o in outcomes)


def test_results_folder_written_from_the_spec_passes_then_a_corrupted_file_fails(
    suite: Suite, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ops = ["quantize", "dequantize", "pack", "apply_scale_32"]
    records = check.select(suite, ops=ops)
    written = check.write_results(records, check.spec_adapter(), tmp_path)
    assert written == len(records)
    filters = [arg for op in ops for arg in ("--op", op)]
    assert main(["check", "--results", str(tmp_path), *filters]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"{len(records)} passed, 0 failed, 0 not covered")

    # one value changed in one file: that record fails, by id, with its cause
    victim = next(r for r in records if r.id == "affine/quantize/tie/int8/0000")
    path = tmp_path / f"{victim.id}.json"
    doc = json.loads(path.read_text())
    doc["q"]["data"][0] += 1
    path.write_text(json.dumps(doc))
    # one file removed: not covered; one file that is not JSON: fails
    removed = next(r for r in records if r.op == "pack" and r.error is None)
    (tmp_path / f"{removed.id}.json").unlink()
    broken = next(r for r in records if r.op == "apply_scale_32" and r.error is None)
    (tmp_path / f"{broken.id}.json").write_text("{not json")
    assert main(["check", "--results", str(tmp_path), *filters]) == 1
    out = capsys.readouterr().out
    assert f"FAILED {victim.id}: output q differs" in out
    assert f"FAILED {broken.id}: unreadable results file" in out
    assert out.rstrip().endswith(f"{len(records) - 3} passed, 2 failed, 1 not covered")


def test_results_error_files(suite: Suite, tmp_path: Path) -> None:
    r = next(r for r in suite if r.op == "quantize" and r.error is not None)
    v = next(r for r in suite if r.op == "quantize" and r.error is None)
    for record in (r, v):
        (tmp_path / record.id).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f"{record.id}.error").write_text(f"{r.error}\n")
    passed, failed = check.check_results([r, v], tmp_path)
    assert passed.status is Status.PASSED
    assert failed.status is Status.FAILED
    assert "expected a value" in failed.reason


def test_no_cause_model_for_other_ops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _adapter_module(
        tmp_path,
        monkeypatch,
        "pack_bug_adapter",
        """
        from refquant.conformance.ops import OPS

        def unpack(params, inputs):
            out = OPS["unpack"].run(params, inputs)
            return {"q": out["q"] ^ 1}
        """,
    )
    records = [r for r in load_suite(SUITE) if r.op == "unpack" and r.error is None and r.params["count"]][:3]
    assert len(records) == 3
    outcomes = check.check_adapter(records, check.module_adapter(name))
    for o in outcomes:
        assert o.status is Status.FAILED
        e = check.explain(o)
        assert (e.causes, e.note) == ((), "no cause model for this op")
        first = e.minimal["first_mismatch"]
        assert isinstance(first, dict)
        assert first["output"] == "q"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["check", "--suite", "/no/such/suite"], "[suite_not_found]"),
        (["check", "--op", "no_such_op"], "[unknown_op]"),
        (["check", "--why", "no_such_tag"], "[invalid_option]"),
        (["check", "--impl", "refquant_no_such_module"], "[adapter_not_found]"),
        (["check", "--impl", "json"], "[adapter_not_found]"),
        (["check", "--impl", "x", "--results", "y"], "not allowed with argument"),
        (["check", "--max-failures", "-1"], "--max-failures must be >= 0"),
        (["check", "--results", "/no/such/folder"], "[results_not_found]"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("refquant: error: ")
    assert words in lines[0]


def test_default_suite_is_found_from_a_clone_or_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert check.default_suite() == SUITE
    assert check.default_suite(SUITE) == SUITE
    monkeypatch.chdir(tmp_path)
    assert check.default_suite() == SUITE  # next to the package (this checkout) comes first


def test_an_installed_package_finds_the_suite_in_the_current_folder_or_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an installed (not editable) package has no conformance/v1 next to it: the current folder is tried next
    site = tmp_path / "site" / "refquant" / "conformance"
    site.mkdir(parents=True)
    monkeypatch.setattr(check, "__file__", str(site / "check.py"))
    clone = tmp_path / "clone"
    (clone / "conformance").mkdir(parents=True)
    (clone / "conformance" / "v1").symlink_to(SUITE, target_is_directory=True)
    monkeypatch.chdir(clone)
    assert check.default_suite() == clone / "conformance" / "v1"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match="does not ship the suite: pass --suite DIR") as info:
        check.default_suite()
    assert info.value.condition == "suite_not_found"


# --- the public decoder -------------------------------------------------------------------------------------------


def test_decode_covers_the_ops_with_a_kernel_and_the_checker_imports_nothing_private() -> None:
    import ast

    from refquant.conformance import ops

    assert {name for name, entry in OPS.items() if entry.fast is not None} == ops.DECODABLE
    for module in ("check.py", "causes.py"):
        tree = ast.parse((ROOT / "refquant" / "conformance" / module).read_text(encoding="utf-8"))
        private = [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("refquant")
            for alias in node.names
            if alias.name.startswith("_")
        ]
        assert private == [], module


def test_decode_gives_the_spec_enums_and_refuses_what_does_not_decode(suite: Suite) -> None:
    from refquant.conformance.ops import decode
    from refquant.spec.affine import QuantParams
    from refquant.spec.granularity import PerAxis
    from refquant.spec.rounding import RoundingMode

    x = np.float32([0.5, 1.5])
    call = decode(
        "quantize",
        {"fmt": "uint8", "granularity": "per_axis", "axis": 0, "rounding": "half_away_from_zero"},
        {"x": x, "scale": np.float32([1.0, 2.0]), "zero_point": np.int64([0, 3])},
    )
    assert call.function == "quantize"
    assert call.args[0] is x
    params = call.args[1]
    assert isinstance(params, QuantParams)
    assert params.granularity == PerAxis(0)
    assert params.fmt.name == "uint8"
    assert call.kwargs["rounding"] is RoundingMode.HALF_AWAY_FROM_ZERO
    assert call.kwargs["overflow"] is None
    with pytest.raises(SpecError) as error:
        decode("quantize", {"fmt": "int8", "rounding": "nearest"}, {"x": x, "scale": x[:1], "zero_point": 0})
    assert error.value.condition == "malformed_record"
    with pytest.raises(SpecError) as error:
        decode("requantize", {"out_fmt": "int8"}, {"multiplier": np.float64(0.5)})
    assert error.value.condition == "malformed_record"
    assert "acc" in str(error.value)
    with pytest.raises(SpecError) as error:
        decode("pack", {"fmt": "int4"}, {"q": np.int8([1])})
    assert error.value.condition == "unknown_op"
    # the registry's runners of the decodable ops are the decoded call on the spec module
    record = suite.by_id("fixed_point/requantize/double_vs_single/int16/0002")
    arrays = {k: v.data for k, v in record.inputs.items()}
    from refquant.spec import fixed_point

    got = OPS["requantize"].run(record.params, arrays)["q"]
    np.testing.assert_array_equal(got, decode("requantize", record.params, arrays).on(fixed_point))
    np.testing.assert_array_equal(got, record.expected["q"].data if record.expected else None)


def test_an_adapter_can_leave_single_records_not_covered(suite: Suite) -> None:
    """An exception whose class says ``not_covered = True`` makes that record not covered (docs/conformance.md
    section 8); any other exception on a value record still fails."""

    class NotCovered(Exception):
        not_covered = True

    spec = check.spec_adapter()["quantize"]

    def quantize(params: dict[str, object], inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if params.get("rounding") not in (None, "half_to_even"):
            raise NotCovered(f"rounding {params['rounding']} is not expressible")
        if params.get("fmt") == "int2":
            raise RuntimeError("a real failure")
        return spec(params, inputs)

    records = [r for r in suite if r.op == "quantize"]
    outcomes = check.check_adapter(records, {"quantize": quantize})
    by_status = {s: [o for o in outcomes if o.status is s] for s in check.Status}
    skipped = by_status[check.Status.NOT_COVERED]
    assert skipped
    assert all("is not expressible" in o.reason for o in skipped)
    assert all(o.record.params.get("rounding") not in (None, "half_to_even") for o in skipped)
    failed = by_status[check.Status.FAILED]
    assert failed
    assert all(o.record.params.get("fmt") == "int2" for o in failed)
    assert all("RuntimeError: a real failure" in o.reason for o in failed)
