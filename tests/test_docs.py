"""The documentation is executed: every ``>>>`` example in docs/**/*.md and README.md, and every docstring example
in refquant/, runs under doctest and must print exactly what the page shows.

Also checked here: one docs/spec chapter per refquant/spec module (same stem); every spec chapter holds at least
one executed example (a chapter with none is a failure, not a pass; other pages without examples are reported as
skipped); no ``>>>`` line sits outside a ```python fence (it would silently not run); the mode table of
docs/spec/rounding.md agrees cell by cell with ``round_to_int`` for every ``RoundingMode`` member; and the registry
of docs/spec/errors.md lists exactly the condition ids that refquant/ raises.
"""

from __future__ import annotations

import doctest
import importlib
import io
import re
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from refquant import RoundingMode, round_to_int

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SPEC_DOCS = DOCS / "spec"
PACKAGE = ROOT / "refquant"
SPEC_PACKAGE = PACKAGE / "spec"

# Exact comparison: no ELLIPSIS (it would hide numbers); only runs of whitespace are normalised.
OPTIONFLAGS = doctest.NORMALIZE_WHITESPACE

# Third-party modules behind optional extras: a refquant module that needs one of them and cannot import it is
# skipped. The specification itself (refquant, refquant.errors, refquant.profiles, refquant.spec.*) never skips.
OPTIONAL_EXTRAS = frozenset({"numba", "llvmlite", "hypothesis", "torch", "onnx", "onnxruntime", "ml_dtypes", "scipy"})

_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([A-Za-z0-9_+-]*)")
_EXECUTABLE_FENCES = frozenset({"python", "py", "pycon", "python3"})
_PROMPT = re.compile(r"^\s*>>>")


def _markdown_files() -> list[Path]:
    files = sorted(DOCS.rglob("*.md")) if DOCS.is_dir() else []
    readme = ROOT / "README.md"
    if readme.is_file():
        files.append(readme)
    return files


def _is_spec_chapter(path: Path) -> bool:
    return path.parent == SPEC_DOCS


def _split_markdown(text: str) -> tuple[str, list[int]]:
    """The text of the executable fences, other lines blanked (line numbers kept); and the 1-based numbers of
    ``>>>`` lines found outside an executable fence."""
    kept: list[str] = []
    stray: list[int] = []
    fence: str | None = None  # the opening marker while inside a fence
    executable = False
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is None and match:
            fence, executable = match.group(1), match.group(2).lower() in _EXECUTABLE_FENCES
            kept.append("")
        elif fence is not None and match and match.group(1).startswith(fence[0] * len(fence)) and not match.group(2):
            fence, executable = None, False
            kept.append("")
        elif fence is not None and executable:
            kept.append(line)
        else:
            if _PROMPT.match(line):
                stray.append(number)
            kept.append("")
    return "\n".join(kept) + "\n", stray


def _run(test: doctest.DocTest) -> tuple[doctest.TestResults, str]:
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS, verbose=False)
    runner.run(test, out=out.write, clear_globs=True)
    return doctest.TestResults(runner.failures, runner.tries), out.getvalue()


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_markdown_examples(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    code, stray = _split_markdown(text)
    name = path.relative_to(ROOT).as_posix()
    assert not stray, f"{name}: '>>>' outside a ```python fence (not executed) at line(s) {stray}"
    test = doctest.DocTestParser().get_doctest(code, {"__name__": "__main__"}, name, str(path), 0)
    if not test.examples:
        # A generated or prose-only page (docs/performance.md): no stray prompt (checked above) is all it owes.
        assert not _is_spec_chapter(path), f"{name}: a spec chapter must hold at least one executed >>> example"
        return
    results, report = _run(test)
    assert results.failed == 0, f"{name}: {results.failed} of {results.attempted} examples failed\n{report}"
    assert results.attempted == len(test.examples)


def _modules_with_examples() -> list[str]:
    """Dotted names of the refquant modules whose source holds a ``>>>`` line (found without importing them)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py" or "__pycache__" in path.parts:
            continue
        if not any(_PROMPT.match(line) for line in path.read_text(encoding="utf-8").splitlines()):
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


def _is_specification(name: str) -> bool:
    return name in ("refquant", "refquant.errors", "refquant.profiles") or name.startswith("refquant.spec")


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing in OPTIONAL_EXTRAS and not _is_specification(name):
            pytest.skip(f"{name} needs the optional dependency {missing!r}, which is not installed")
        raise


@pytest.mark.parametrize("name", _modules_with_examples())
def test_docstring_examples(name: str) -> None:
    module = _import(name)
    tests = [t for t in doctest.DocTestFinder(exclude_empty=True).find(module, name) if t.examples]
    assert tests, f"{name} has '>>>' lines in its source but doctest found no examples in its docstrings"
    failures = []
    for test in tests:
        results, report = _run(test)
        if results.failed:
            failures.append(report)
    assert not failures, "\n".join(failures)


def _spec_modules() -> list[str]:
    return sorted(p.stem for p in SPEC_PACKAGE.glob("*.py") if not p.stem.startswith("_"))  # private helpers have none


@pytest.mark.parametrize("stem", _spec_modules())
def test_every_spec_module_has_a_chapter(stem: str) -> None:
    chapter = SPEC_DOCS / f"{stem}.md"
    assert chapter.is_file(), f"refquant/spec/{stem}.py has no chapter docs/spec/{stem}.md"


# --- the mode table of docs/spec/rounding.md -------------------------------------------------------------------

STOCHASTIC_U = 0.25  # the draw the STOCHASTIC row of the table is worked with; the row must say "u = 0.25"


def _table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|") and stripped.endswith("|"):
            cells = re.split(r"(?<!\\)\|", stripped[1:-1])  # a pipe escaped as \| stays inside its cell
            rows.append([cell.strip() for cell in cells])
    return rows


def _number(cell: str) -> float | None:
    try:
        return float(cell.replace("−", "-"))
    except ValueError:
        return None


def _mode_table() -> tuple[list[float], dict[str, list[str]], list[str]]:
    """Inputs (the numeric header cells), the cells of each mode row by member name, and the full first cells."""
    text = (SPEC_DOCS / "rounding.md").read_text(encoding="utf-8")
    rows = _table_rows(text)
    header_index = next(
        (i for i, row in enumerate(rows) if all(f"{v:g}" in row for v in (-2.5, -1.5, -0.5, 0.5, 1.5, 2.5))),
        None,
    )
    assert header_index is not None, "docs/spec/rounding.md has no table whose header holds -2.5 ... 2.5"
    header = rows[header_index]
    columns = [(j, v) for j, cell in enumerate(header) if (v := _number(cell)) is not None]
    by_mode: dict[str, list[str]] = {}
    first_cells = []
    for row in rows[header_index + 2 :]:  # skip the |---| separator
        if len(row) != len(header):
            break
        first_cells.append(row[0])
        found = re.findall(r"`([A-Z_]+)`", row[0])
        for member in found:
            by_mode[member] = [row[j] for j, _ in columns]
    return [v for _, v in columns], by_mode, first_cells


def test_rounding_mode_table_has_every_member_and_nothing_else() -> None:
    _, by_mode, _ = _mode_table()
    assert set(by_mode) == {m.name for m in RoundingMode}


@pytest.mark.parametrize("mode", list(RoundingMode), ids=lambda m: m.value)
def test_rounding_mode_table_row_matches_round_to_int(mode: RoundingMode) -> None:
    inputs, by_mode, first_cells = _mode_table()
    assert {-2.5, -1.5, -0.5, 0.5, 1.5, 2.5} <= set(inputs)
    cells = by_mode[mode.name]
    shown = [_number(c) for c in cells]
    assert None not in shown, f"row {mode.name}: non-numeric result cell in {cells}"
    uniform = None
    if mode is RoundingMode.STOCHASTIC:
        row_label = next(c for c in first_cells if f"`{mode.name}`" in c)
        assert f"u = {STOCHASTIC_U:g}" in row_label, f"the STOCHASTIC row must state u = {STOCHASTIC_U:g}"
        uniform = np.float64(STOCHASTIC_U)
    computed = round_to_int(np.array(inputs, dtype=np.float64), mode, uniform=uniform)
    expected = np.array(shown, dtype=np.float64)
    np.testing.assert_array_equal(computed, expected, err_msg=f"row {mode.name} of docs/spec/rounding.md")
    # -0 in the table means a negative zero: the sign of a zero result is part of the definition.
    np.testing.assert_array_equal(np.signbit(computed), np.signbit(expected), err_msg=f"signs of zeros, {mode.name}")


# --- the registry of condition ids in docs/spec/errors.md -------------------------------------------------------

_RAISE = re.compile(r"\b(?:SpecError|UnpredictableError)\(\s*\"([a-z][a-z0-9_]*)\"")


def _raised_conditions() -> dict[str, list[str]]:
    """Condition ids written as a string literal at a raise site in refquant/ (an id that only ever reaches
    ``SpecError`` through a variable is not seen here)."""
    found: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for match in _RAISE.finditer(text):
            found.setdefault(match.group(1), []).append(path.relative_to(ROOT).as_posix())
    return found


def _registered_conditions() -> set[str]:
    rows = _table_rows((SPEC_DOCS / "errors.md").read_text(encoding="utf-8"))
    return {m.group(1) for row in rows if (m := re.fullmatch(r"`([a-z][a-z0-9_]*)`", row[0]))}


def test_every_raised_condition_is_registered_in_errors_chapter() -> None:
    missing = {c: files for c, files in _raised_conditions().items() if c not in _registered_conditions()}
    assert not missing, f"condition ids raised but not in the registry of docs/spec/errors.md: {missing}"


def test_every_registered_condition_is_raised_somewhere() -> None:
    stale = _registered_conditions() - set(_raised_conditions())
    assert not stale, f"docs/spec/errors.md registers condition ids that refquant/ never raises: {sorted(stale)}"


# --- the Markdown reader itself ---------------------------------------------------------------------------------


def test_split_markdown_runs_only_python_fences_and_reports_stray_prompts() -> None:
    text = "intro\n>>> 1 + 1\n2\n\n```python\n>>> 2 + 2\n4\n```\n```text\n>>> 3\n```\ntail\n"
    code, stray = _split_markdown(text)
    assert stray == [2, 10]
    test = doctest.DocTestParser().get_doctest(code, {}, "t", "t.md", 0)
    assert [(e.source, e.want, e.lineno) for e in test.examples] == [("2 + 2\n", "4\n", 5)]


def test_a_wrong_number_in_a_page_fails() -> None:
    code, _ = _split_markdown("```python\n>>> 0.1 + 0.2\n0.3\n```\n")
    results, report = _run(doctest.DocTestParser().get_doctest(code, {}, "t", "t.md", 0))
    assert (results.failed, results.attempted) == (1, 1)
    assert "0.30000000000000004" in report


def test_import_skips_only_modules_that_miss_an_optional_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rq_uses_extra.py").write_text("import rq_absent_extra\n", encoding="utf-8")
    (tmp_path / "rq_broken.py").write_text("import rq_absent_other\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(f"{__name__}.OPTIONAL_EXTRAS", frozenset({"rq_absent_extra"}))
    with pytest.raises(pytest.skip.Exception):
        _import("rq_uses_extra")
    with pytest.raises(ModuleNotFoundError):
        _import("rq_broken")
    assert _is_specification("refquant.spec.rounding")
    assert _is_specification("refquant.errors")
    assert not _is_specification("refquant.fast")
    assert not _is_specification("refquant.testing")


def test_a_spec_chapter_without_examples_fails_and_another_page_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tmp_path / "docs" / "spec"
    spec.mkdir(parents=True)
    for page in (spec / "empty.md", tmp_path / "docs" / "notes.md"):
        page.write_text("# A page\n\n```python\nprint('not a doctest')\n```\n", encoding="utf-8")
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    monkeypatch.setattr(f"{__name__}.SPEC_DOCS", spec)
    with pytest.raises(AssertionError, match="at least one executed"):
        test_markdown_examples(spec / "empty.md")
    test_markdown_examples(tmp_path / "docs" / "notes.md")  # no examples and no stray prompt: passes
