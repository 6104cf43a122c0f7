"""Run the conformance suite through every installed peer and write the divergence report (docs/divergences.md).

    python bench/divergences.py [--suite conformance/v1] [--peers onnx,onnxruntime,torch,ml_dtypes]
                                [--out docs/divergences.md] [--max-examples 5]

Each peer is an adapter module of ``bench.peer_adapters`` in the ``--impl`` protocol (docs/conformance.md section
8), checked with ``refquant.conformance.check``.  Every record lands in one of four columns:

- **agree**: the peer gives the expected outputs bit for bit (or raises the record's own condition id);
- **both refuse**: the record expects an error and the peer raised one too (the peer's exception carries none
  of refquant's condition ids, so the conditions are not compared);
- **differ**: any other outcome of a covered record: another value (explained by ``check.explain``), a value
  where the spec raises, or an exception where the spec gives a value;
- **not covered**: the peer lacks the op, or the adapter raised ``NotCovered`` (an option, format or input type
  the peer cannot express; see bench/peer_adapters/__init__.py).

Disagreements are grouped by peer, op and cause (the checker's explained causes, or the kind of outcome), with one
minimal reproducing record per group and a link to the section of docs/spec/divergences.md that documents it.
A peer whose distribution is not installed is reported as skipped.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.metadata
import json
import platform
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

ROOT: Final = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere: the bench package and refquant of this checkout
    sys.path.insert(0, str(ROOT))

import refquant  # noqa: E402
from bench.peer_adapters import PEERS, NotCovered, PeerError, installed  # noqa: E402
from refquant.conformance import check, load_suite  # noqa: E402
from refquant.conformance.format import Record, Tensor, encode_tensor  # noqa: E402

COLUMNS: Final = ("agree", "both refuse", "differ", "not covered")
SPEC_DIVERGENCES: Final = ROOT / "docs" / "spec" / "divergences.md"
TABLE_HEAD: Final = "| peer | op | records | agree | both refuse | differ | not covered |"


@dataclass
class Result:
    """One record through one peer: its column, the checker's outcome, and the peer's message when it raised."""

    record: Record
    column: str
    outcome: check.Outcome
    message: str = ""
    returned: dict[str, Any] | None = None


@dataclass
class Group:
    """Disagreements of one peer and op with the same cause."""

    peer: str
    op: str
    cause: str
    lines: list[str]
    section: int | None
    results: list[Result] = field(default_factory=list)
    minimal: dict[str, Any] = field(default_factory=dict)
    explained: bool = True


@dataclass
class PeerRun:
    """One peer's results (``skipped`` says why there are none)."""

    peer: str
    version: str
    results: list[Result] = field(default_factory=list)
    skipped: str = ""


# --- running -----------------------------------------------------------------------------------------------------


def run_peer(peer: str, records: Sequence[Record]) -> PeerRun:
    """Every record through ``peer``'s adapter (``skipped`` when the peer is not installed)."""
    dist, module_name = PEERS[peer]
    if not installed(peer):
        return PeerRun(peer, "", skipped=f"not installed ({dist} cannot be imported)")
    version = importlib.metadata.version(dist)
    adapter = check.module_adapter(module_name)
    said: dict[str, BaseException] = {}
    returned: dict[str, Any] = {}

    def tracked(run: check.Runner) -> check.Runner:
        def wrapper(params: Any, inputs: Any) -> Any:
            try:
                out = run(params, inputs)
            except (NotCovered, PeerError) as error:
                said["last"] = error
                raise
            returned["last"] = out
            return out

        return wrapper

    wrapped = {op: tracked(run) for op, run in adapter.items()}
    out = PeerRun(peer, version)
    for r in records:
        said.clear()
        returned.clear()
        outcome = check.check_adapter([r], wrapped)[0]
        error = said.get("last")
        if outcome.status is check.Status.NOT_COVERED or isinstance(error, NotCovered):
            out.results.append(Result(r, "not covered", outcome, str(error) if error else "no adapter for the op"))
        elif outcome.status is check.Status.PASSED:
            out.results.append(Result(r, "agree", outcome))
        elif isinstance(error, PeerError) and r.error is not None:
            out.results.append(Result(r, "both refuse", outcome, str(error)))
        else:
            value = returned.get("last")
            out.results.append(Result(r, "differ", outcome, str(error) if error else "", value))
    return out


# --- documented divergences ----------------------------------------------------------------------------------------


def spec_sections(path: Path = SPEC_DIVERGENCES) -> dict[int, tuple[str, str]]:
    """The numbered sections of docs/spec/divergences.md: number -> (title, GitHub anchor)."""
    out: dict[int, tuple[str, str]] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^## (\d+)\. (.*)$", line)
        if m:
            heading = f"{m.group(1)}. {m.group(2)}"
            anchor = re.sub(r"[^\w\- ]", "", heading.lower().replace("`", "")).replace(" ", "-")
            out[int(m.group(1))] = (m.group(2).replace("`", ""), anchor)
    return out


# (peer or "*", op or "*", a regular expression on the cause) -> section of docs/spec/divergences.md
# (peer or "*", op prefix or "*", a regular expression on "<cause> [<why tag of the first record>]") -> section
SECTION_RULES: Final[list[tuple[str, str, str, int]]] = [
    ("*", "*", r"raises (scale_not_positive|scale_not_finite|empty_output)", 20),
    ("onnx", "matmul_int", r"refuses a record", 20),
    ("ml_dtypes", "*", r"overflow=wrap", 20),
    ("torch", "fake_quantize", r"\[subnormal\]", 20),
    ("*", "*", r"nan_input|reciprocal_not_finite", 5),
    ("torch", "quantize", r"zero_point_order=|scale_application=|no alternative", 4),
    ("*", "fake_quantize", r"scale_application=reciprocal_multiply", 2),
    ("*", "*", r"zero_point_order=", 3),
    ("onnx", "quantize", r"overflow=wrap|no alternative", 7),
    ("onnx", "fake_quantize", r"no cause model .*\[(saturation_edge|nan_inf)\]", 7),
    ("*", "quantize", r"rounding=", 1),
    ("*", "*", r"accumulator_overflow|accumulator=", 14),
    ("onnxruntime", "qlinear_", r".", 10),
    ("onnx", "qlinear_", r"no alternative|no cause model", 12),
    ("torch", "binarize", r"sign_zero|no cause model", 18),
]


def section_for(peer: str, op: str, cause: str, why: str) -> int | None:
    """The section of docs/spec/divergences.md that documents this cause, if a rule names one."""
    text = f"{cause} [{why}]"
    for p, o, pattern, number in SECTION_RULES:
        if p in ("*", peer) and (o == "*" or op.startswith(o)) and re.search(pattern, text):
            return number
    return None


# --- grouping ------------------------------------------------------------------------------------------------------


MAX_SHOWN: Final = 16


def _abbreviated(value: Any) -> Any:
    """``value`` with the data of every tensor of more than ``MAX_SHOWN`` elements cut to its first 8."""
    if isinstance(value, dict):
        if set(value) == {"dtype", "shape", "data"} and isinstance(value["data"], list):
            data = value["data"]
            if len(data) > MAX_SHOWN:
                return {**value, "data": [*data[:8], f"... {len(data) - 8} more"]}
            return value
        return {k: _abbreviated(v) for k, v in value.items()}
    return value


def _short(value: Any) -> str:
    return json.dumps(_abbreviated(value), separators=(",", ":"))


def _record_json(r: Record) -> dict[str, Any]:
    out: dict[str, Any] = {"id": r.id, "op": r.op, "params": dict(r.params)}
    out["inputs"] = {k: encode_tensor(v) for k, v in r.inputs.items()}
    if r.expected is not None:
        out["expected"] = {k: encode_tensor(v) for k, v in r.expected.items()}
    else:
        out["error"] = r.error
    return out


def classify(peer: str, res: Result) -> Group:
    """The group of one disagreement (its cause, explanation lines and minimal record)."""
    r, o = res.record, res.outcome
    if r.expected is None:
        cause = f"returns a value where the spec raises {r.error}"
        minimal = _record_json(r)
        if res.returned is not None:
            try:
                minimal["observed"] = {k: encode_tensor(Tensor.of(np.asarray(v))) for k, v in res.returned.items()}
            except (TypeError, ValueError):  # SpecError is a ValueError: not a tensor of a suite dtype
                minimal["observed"] = "not a tensor of a suite dtype"
        return Group(
            peer, r.op, cause, [f"the checker: {o.reason}"], section_for(peer, r.op, cause, r.why), minimal=minimal
        )
    if o.observed is None:
        cause = "refuses a record the spec accepts"
        minimal = {**_record_json(r), "peer_error": res.message or o.reason}
        return Group(
            peer,
            r.op,
            cause,
            [f"the peer: {res.message or o.reason}"],
            section_for(peer, r.op, cause, r.why),
            minimal=minimal,
        )
    e = check.explain(o)
    if e.causes:
        exact = [c for c in e.causes if c.exact] or list(e.causes)
        cause = ", ".join(c.name + (" (exact)" if c.exact else "") for c in exact)
        lines = [f"`{c.name}`{' (exact)' if c.exact else ''}: {c.description}" for c in e.causes]
        minimal = dict(e.minimal)
        return Group(peer, r.op, cause, lines, section_for(peer, r.op, cause, r.why), minimal=minimal)
    cause = e.note or o.reason
    minimal = dict(e.minimal) if e.minimal else {"id": r.id}
    if "first_mismatch" in minimal or len(minimal) <= 1:
        minimal = {**_record_json(r), **{k: v for k, v in minimal.items() if k != "id"}}
    explained = not cause.startswith("no alternative")
    lines = [f"the checker: {o.reason}; {cause}"]
    return Group(peer, r.op, cause, lines, section_for(peer, r.op, cause, r.why), minimal=minimal, explained=explained)


def group(runs: Sequence[PeerRun]) -> list[Group]:
    """Every disagreement, grouped by peer, op and cause (groups in the order peer, op, size)."""
    groups: dict[tuple[str, str, str], Group] = {}
    for run in runs:
        for res in run.results:
            if res.column != "differ":
                continue
            g = classify(run.peer, res)
            key = (g.peer, g.op, g.cause)
            if key not in groups:
                groups[key] = g
            groups[key].results.append(res)
    order = {p: i for i, p in enumerate(PEERS)}
    return sorted(groups.values(), key=lambda g: (order.get(g.peer, 99), g.op, -len(g.results), g.cause))


# --- the page ------------------------------------------------------------------------------------------------------


def counts(run: PeerRun) -> dict[str, dict[str, int]]:
    """Per op: records and the four columns."""
    out: dict[str, dict[str, int]] = {}
    for res in run.results:
        row = out.setdefault(res.record.op, {"records": 0, **dict.fromkeys(COLUMNS, 0)})
        row["records"] += 1
        row[res.column] += 1
    return dict(sorted(out.items()))


def table(runs: Sequence[PeerRun]) -> list[str]:
    """The summary table: one row per peer and op whose records the peer covers at least in part, a total per peer,
    and one row per skipped peer."""
    lines = [TABLE_HEAD, "|---|---|---:|---:|---:|---:|---:|"]
    for run in runs:
        if run.skipped:
            lines.append(f"| {run.peer} | skipped: {run.skipped} | 0 | 0 | 0 | 0 | 0 |")
            continue
        total = {"records": 0, **dict.fromkeys(COLUMNS, 0)}
        uncovered_ops = 0
        for op, row in counts(run).items():
            for k, v in row.items():
                total[k] += v
            if row["not covered"] == row["records"]:
                uncovered_ops += 1
                continue
            cells = " | ".join(str(row[k]) for k in ("records", *COLUMNS))
            lines.append(f"| {run.peer} | {op} | {cells} |")
        cells = " | ".join(str(total[k]) for k in ("records", *COLUMNS))
        lines.append(f"| {run.peer} | **total** ({uncovered_ops} ops not covered at all) | {cells} |")
    return lines


PEER_APIS: Final = {
    "onnx": "`onnx.reference.ReferenceEvaluator` on single-node models (QuantizeLinear / DequantizeLinear opset 21, "
    "25 for 2-bit; MatMulInteger, ConvInteger, QLinearConv opset 10; QLinearMatMul opset 21)",
    "onnxruntime": "`InferenceSession`, CPU execution provider, graph optimizations disabled, the same models",
    "torch": "`quantize_per_tensor` / `quantize_per_channel`, `_make_per_*_quantized_tensor(...).dequantize()`, "
    "`fake_quantize_per_tensor_affine` / `fake_quantize_per_channel_affine`, `_int_mm`, `sign`",
    "ml_dtypes": "`astype` to and from `int4`, `uint4`, `int2`, `uint2` (quantize / dequantize at scale 1, zero point 0)",
}


def versions(runs: Sequence[PeerRun]) -> list[str]:
    """The versions the page was produced with."""
    try:
        own = importlib.metadata.version("refquant") + " "
    except importlib.metadata.PackageNotFoundError:
        own = ""
    lines = [
        f"- refquant {own}(SPEC_VERSION {refquant.SPEC_VERSION}), numpy {np.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()} {platform.system()}",
    ]
    for run in runs:
        said = run.skipped if run.skipped else f"{run.version}: {PEER_APIS.get(run.peer, '')}"
        lines.append(f"- {run.peer} {said}")
    return lines


def _ids(results: Sequence[Result], cap: int) -> str:
    ids = [f"`{res.record.id}`" for res in results[:cap]]
    more = len(results) - cap
    return ", ".join(ids) + (f" and {more} more" if more > 0 else "")


def render(runs: Sequence[PeerRun], groups: Sequence[Group], *, command: str, suite: str, total: int, cap: int) -> str:
    """docs/divergences.md."""
    sections = spec_sections()
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Divergences measured: refquant against its peers",
        "",
        "Generated by `bench/divergences.py` (do not edit by hand; rerun it). Every record of the conformance suite",
        "is run through each installed peer by an adapter of `bench/peer_adapters/` in the `--impl` protocol",
        "(docs/conformance.md section 8) and checked with `refquant.conformance.check`; each disagreement is",
        "explained by re-evaluating the record under alternative semantics. The divergences found by hand, with",
        "their measurements and the refquant option that reproduces each stack, are in",
        "[Divergences between stacks](spec/divergences.md).",
        "",
        "## How this page was produced",
        "",
        f"- command: `{command}`",
        f"- date: {today}; suite `{suite}`, {total} records",
        *versions(runs),
        "",
        "How a peer meets a record: an option the record leaves out runs the peer's own arithmetic (that is where the",
        "divergences are); an option the record names is honoured only when the peer does exactly that, and otherwise",
        "the record is **not covered**, as are formats, granularities and input types the peer has no counterpart for.",
        "A record that expects an error and meets an exception of the peer is counted under **both refuse** (the",
        "peer's exception carries no refquant condition id, so the conditions are not compared). **differ** holds",
        "every other outcome of a covered record. Ops a peer covers nowhere are left out of its rows.",
        "",
        "One peer alone: `python -m refquant check --impl bench.peer_adapters.onnxruntime_` from the repository root",
        "(likewise `onnx_reference`, `torch_`, `ml_dtypes_`); the records the peer cannot express are counted as",
        "not covered there too (the adapters raise `NotCovered`, whose `not_covered = True` the checker honours).",
        "",
        "## Records per peer and op",
        "",
        *table(runs),
        "",
        "## Disagreements, by peer, op and cause",
        "",
        "Each group: the cause the checker names (every alternative that reproduces the peer's output; `(exact)`:",
        "it reproduces the whole output), the section of docs/spec/divergences.md that documents it, the records (at",
        f"most {cap} ids shown) and one minimal reproducing record in the suite's encoding (floats as bit patterns),",
        f"with the peer's output as `observed`; a tensor of more than {MAX_SHOWN} elements shows its first 8 (the",
        "whole record is in the suite under its id).",
    ]
    if not groups:
        out += ["", "No disagreement."]
    current = ""
    for g in groups:
        if g.peer != current:
            current = g.peer
            out += ["", f"### {g.peer}"]
        names = g.cause.split(", ")
        title = ", ".join(names[:2]) + (f" and {len(names) - 2} more" if len(names) > 2 else "")
        out += ["", f"#### {g.op}: {title} ({len(g.results)} record{'s' if len(g.results) != 1 else ''})", ""]
        out += [f"- {line}" for line in g.lines[:6]]
        if len(g.lines) > 6:
            out.append(f"- ... {len(g.lines) - 6} more alternatives")
        if g.section is not None and g.section in sections:
            title, anchor = sections[g.section]
            out.append(f"- documented: [divergences §{g.section}, {title}](spec/divergences.md#{anchor})")
        else:
            out.append("- documented: not yet in docs/spec/divergences.md")
        if not g.explained and g.section is not None:
            out.append(
                "- no alternative semantics of the checker reproduces this output; the section above explains it"
            )
        elif not g.explained:
            out.append("- **unexplained**: no alternative semantics of the checker reproduces this output")
        out.append(f"- records: {_ids(g.results, cap)}")
        out += ["", "```json", _short(g.minimal), "```"]
    return "\n".join(out) + "\n"


def parse_table(text: str) -> list[dict[str, str]]:
    """The rows of the summary table of a generated page, by column name (used by the tests)."""
    lines = text.splitlines()
    start = lines.index(TABLE_HEAD)
    head = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(head, (c.strip() for c in line.strip("|").split("|")), strict=True)))
    return rows


def main(argv: Sequence[str] | None = None, *, write: Callable[[str], object] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--suite", default=str(ROOT / "conformance" / "v1"))
    parser.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, of {', '.join(PEERS)}")
    parser.add_argument("--out", default=str(ROOT / "docs" / "divergences.md"))
    parser.add_argument("--max-examples", type=int, default=5, help="record ids shown per group")
    args = parser.parse_args(argv)
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        parser.error(f"unknown peers {unknown}; known: {list(PEERS)}")
    suite_path = Path(args.suite)
    records = list(load_suite(suite_path))
    runs = [run_peer(p, records) for p in peers]
    groups = group(runs)
    shown_suite = suite_path.resolve()
    suite = shown_suite.relative_to(ROOT).as_posix() if shown_suite.is_relative_to(ROOT) else str(shown_suite)
    command = "python bench/divergences.py" + ("" if argv is None else " " + " ".join(argv)).rstrip()
    if argv is None:
        command = "python bench/divergences.py " + " ".join(sys.argv[1:])
    page = render(runs, groups, command=command.strip(), suite=suite, total=len(records), cap=args.max_examples)
    Path(args.out).write_text(page, encoding="utf-8")
    for line in table(runs):
        write(line)
    write(f"{len(groups)} disagreement groups; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
