"""Check an implementation against the conformance suite, and explain each mismatch.

An *adapter* is a mapping from op names (``refquant.conformance.ops.OPS``) to functions
``run(params, inputs) -> {output name: array}`` with exactly the calling convention of the registry's runners:
``params`` is the record's JSON params, ``inputs`` its input arrays by name.  The spec runners
(``spec_adapter()``) and the ``refquant.fast`` runners (``fast_adapter()``) are adapters; ``module_adapter(name)``
takes the functions of a Python module that are named after ops.  An op the adapter lacks is *not covered*, never
a failure.

A value record passes when the outputs have the expected names and are equal bit for bit (dtype, shape, bit
pattern).  A record that expects an error passes when the implementation raises an exception whose
``.condition`` is the record's condition id (``SpecError`` or ``UnpredictableError``); any other exception, or a
value, fails.  ``check_results`` reads the outputs of a non-Python implementation from one file per record id
(docs/conformance.md, "Checking an implementation").

For a failing value record of ``quantize``, ``dequantize``, ``requantize``, ``matmul_int``, ``xnor_matmul`` or
``binary_conv2d`` the record is
re-evaluated under the alternative semantics of ``refquant.conformance.causes`` and the ones that reproduce the
observed output are named; the minimal reproducing record is the record cut down to its first mismatching
element, in the suite's own JSON encoding.  Other ops say ``no cause model for this op`` and show the first
mismatching element.  Importing this module does not import numba (only ``fast_adapter`` does).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum, unique
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from refquant.conformance import causes
from refquant.conformance.format import WHY_TAGS, JSONValue, Record, Tensor, decode_tensor, encode_tensor
from refquant.conformance.load import MAX_FILE_BYTES, Suite
from refquant.conformance.ops import OPS, Arrays, Params, decode, fast_runner
from refquant.errors import SpecError, UnpredictableError
from refquant.spec.affine import DEFAULT_PROFILE, QuantParams
from refquant.spec.granularity import PerAxis

__all__ = [
    "Adapter",
    "Explanation",
    "Outcome",
    "Status",
    "Summary",
    "check_adapter",
    "check_results",
    "default_suite",
    "explain",
    "fast_adapter",
    "module_adapter",
    "render",
    "select",
    "spec_adapter",
    "summarize",
    "write_results",
]

Runner = Callable[[Params, Arrays], Mapping[str, npt.ArrayLike]]
Adapter = Mapping[str, Runner]

_MAIN_OUTPUT: Final = {
    "quantize": "q",
    "dequantize": "x",
    "requantize": "q",
    "matmul_int": "acc",
    "xnor_matmul": "dot",
    "binary_conv2d": "y",
}


@unique
class Status(Enum):
    """The outcome of one record."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_COVERED = "not_covered"


@dataclass(frozen=True, eq=False)
class Outcome:
    """One record's outcome; ``reason`` says why it failed; ``observed`` holds the outputs of a failing value."""

    record: Record
    status: Status
    reason: str = ""
    observed: Mapping[str, Tensor] | None = None


# --- adapters and the suite --------------------------------------------------------------------------------------


def spec_adapter() -> dict[str, Runner]:
    """The spec's own runners (every op): the reference, which passes every record by construction."""
    return {name: entry.run for name, entry in OPS.items()}


def fast_adapter() -> dict[str, Runner]:
    """The ``refquant.fast`` runners (the ops that have a Numba kernel; imports numba)."""
    out: dict[str, Runner] = {}
    for name, entry in OPS.items():
        run = fast_runner(entry)
        if run is not None:
            out[name] = run
    return out


def module_adapter(module_name: str, /) -> dict[str, Runner]:
    """The functions of module ``module_name`` named after ops; ``SpecError("adapter_not_found")`` when it fails
    to import or defines none."""
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any import failure of a user's module is reported, not raised through
        raise SpecError(
            "adapter_not_found", f"--impl {module_name!r} cannot be imported: {type(error).__name__}: {error}"
        ) from None
    out = {name: getattr(module, name) for name in OPS if callable(getattr(module, name, None))}
    if not out:
        raise SpecError(
            "adapter_not_found",
            f"--impl {module_name!r} defines no function named after an op (such as quantize, requantize)",
        )
    return out


def default_suite(path: str | Path | None = None, /) -> Path:
    """The suite folder: ``path`` when given, else ``conformance/v1`` next to the package (a source checkout), else
    ``conformance/v1`` in the current folder; ``SpecError("suite_not_found")`` when none holds ``index.json``."""
    if path is not None:
        candidates = [Path(path)]
    else:
        candidates = [Path(__file__).resolve().parents[2] / "conformance" / "v1", Path.cwd() / "conformance" / "v1"]
    for candidate in candidates:
        if (candidate / "index.json").is_file():
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    hint = "" if path is not None else "the installed package does not ship the suite: "
    raise SpecError(
        "suite_not_found",
        f"no conformance suite (index.json) found at {tried}; {hint}pass --suite DIR, the conformance/v1 folder "
        "of a refquant clone",
    )


def select(suite: Suite, /, *, ops: Sequence[str] = (), whys: Sequence[str] = ()) -> list[Record]:
    """The suite's records of the given ops and why tags (empty: all); unknown names raise ``SpecError``."""
    for name in ops:
        if name not in OPS:
            raise SpecError("unknown_op", f"--op {name!r} is not one of {sorted(OPS)}")
    for why in whys:
        if why not in WHY_TAGS:
            raise SpecError("invalid_option", f"--why {why!r} is not one of {list(WHY_TAGS)}")
    return [r for r in suite if (not ops or r.op in ops) and (not whys or r.why in whys)]


# --- comparing ---------------------------------------------------------------------------------------------------


def _compare(record: Record, outputs: Mapping[str, Tensor]) -> Outcome:
    if record.expected is None:
        return Outcome(record, Status.FAILED, f"returned a value; expected the error {record.error}")
    if sorted(outputs) != sorted(record.expected):
        return Outcome(
            record, Status.FAILED, f"outputs {sorted(outputs)}, expected {sorted(record.expected)}", dict(outputs)
        )
    for name, want in record.expected.items():
        got = outputs[name]
        if got.dtype != want.dtype or got.shape != want.shape:
            reason = f"output {name}: {got.dtype}{list(got.shape)}, expected {want.dtype}{list(want.shape)}"
            return Outcome(record, Status.FAILED, reason, dict(outputs))
        if not got.equals(want):
            return Outcome(record, Status.FAILED, f"output {name} differs", dict(outputs))
    return Outcome(record, Status.PASSED)


def _run(record: Record, run: Runner) -> Outcome:
    arrays = {k: v.data for k, v in record.inputs.items()}
    try:
        with np.errstate(all="ignore"):
            raw = run(record.params, arrays)
    except Exception as error:  # an implementation's exception is an outcome, never a crash of the checker
        if getattr(error, "not_covered", False) is True:  # the adapter cannot express this record's options
            return Outcome(record, Status.NOT_COVERED, f"{type(error).__name__}: {error}")
        condition = getattr(error, "condition", None)
        if record.error is not None and condition == record.error:
            return Outcome(record, Status.PASSED)
        said = f"{type(error).__name__}" + (f" [{condition}]" if condition else "") + f": {error}"
        expected = f"expected the error {record.error}" if record.error is not None else "expected a value"
        return Outcome(record, Status.FAILED, f"raised {said}; {expected}")
    if record.error is not None:
        return Outcome(record, Status.FAILED, f"returned a value; expected the error {record.error}")
    try:
        outputs = {str(k): Tensor.of(np.asarray(v)) for k, v in dict(raw).items()}
    except (SpecError, TypeError, ValueError) as error:
        return Outcome(record, Status.FAILED, f"returned outputs that are not tensors of a suite dtype: {error}")
    return _compare(record, outputs)


def check_adapter(records: Iterable[Record], adapter: Adapter, /) -> list[Outcome]:
    """Run every record through ``adapter`` (a record whose op it lacks is not covered)."""
    return [_run(r, adapter[r.op]) if r.op in adapter else Outcome(r, Status.NOT_COVERED) for r in records]


def _result_path(root: Path, record_id: str, suffix: str) -> Path:
    path = (root / (record_id + suffix)).resolve()
    if not path.is_relative_to(root):
        raise SpecError("path_outside_suite", f"record id {record_id!r} leads outside the results folder")
    return path


def _read_result(path: Path, record: Record) -> Outcome:
    if path.stat().st_size > MAX_FILE_BYTES:
        return Outcome(record, Status.FAILED, f"{path.name} is larger than {MAX_FILE_BYTES} bytes")
    text = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix == ".error":
        condition = text.strip()
        if record.error is not None and condition == record.error:
            return Outcome(record, Status.PASSED)
        expected = f"expected the error {record.error}" if record.error is not None else "expected a value"
        return Outcome(record, Status.FAILED, f"results file says the error {condition!r}; {expected}")
    if record.error is not None:
        return Outcome(record, Status.FAILED, f"results file holds a value; expected the error {record.error}")

    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    try:
        obj = json.loads(text, parse_constant=no_constants)
        if not isinstance(obj, dict):
            raise SpecError("malformed_record", "a results file is a JSON object {output name: tensor}")
        outputs = {str(k): decode_tensor(v, where=f"{path.name} {k}") for k, v in obj.items()}
    except (ValueError, RecursionError) as error:  # SpecError is a ValueError
        message = error.message if isinstance(error, SpecError) else str(error)
        return Outcome(record, Status.FAILED, f"unreadable results file {path.name}: {message}")
    return _compare(record, outputs)


def check_results(records: Iterable[Record], results: str | Path, /) -> list[Outcome]:
    """Compare the outputs a non-Python implementation wrote under ``results``: ``<record id>.json`` holding
    ``{output name: tensor}`` in the suite's encoding, or ``<record id>.error`` holding a condition id; a record
    with neither file is not covered."""
    root = Path(results).resolve()
    if not root.is_dir():
        raise SpecError("results_not_found", f"--results {str(results)!r} is not a folder")
    out: list[Outcome] = []
    for r in records:
        value, error = _result_path(root, r.id, ".json"), _result_path(root, r.id, ".error")
        if value.is_file() and error.is_file():
            out.append(Outcome(r, Status.FAILED, f"both {r.id}.json and {r.id}.error exist"))
        elif value.is_file() or error.is_file():
            out.append(_read_result(value if value.is_file() else error, r))
        else:
            out.append(Outcome(r, Status.NOT_COVERED))
    return out


def write_results(records: Iterable[Record], adapter: Adapter, out_dir: str | Path, /) -> int:
    """Write the outputs of ``adapter`` in the ``--results`` layout (what a foreign implementation writes); return
    the number of files.  A record whose op the adapter lacks gets no file; a raised condition id goes to
    ``<record id>.error``."""
    root = Path(out_dir)
    count = 0
    for r in records:
        run = adapter.get(r.op)
        if run is None:
            continue
        path = root / r.id
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with np.errstate(all="ignore"):
                raw = run(r.params, {k: v.data for k, v in r.inputs.items()})
        except (SpecError, UnpredictableError) as error:
            path.with_name(path.name + ".error").write_text(error.condition + "\n", encoding="utf-8")
        else:
            doc = {str(k): encode_tensor(Tensor.of(np.asarray(v))) for k, v in dict(raw).items()}
            path.with_name(path.name + ".json").write_text(json.dumps(doc) + "\n", encoding="utf-8")
        count += 1
    return count


# --- explaining --------------------------------------------------------------------------------------------------


def _cause_inputs(record: Record) -> tuple[causes.Operation, causes.Params, tuple[npt.NDArray[Any], ...], Any] | str:
    """The record in the terms of ``refquant.conformance.causes``, or why it has no cause model."""
    if record.op not in _MAIN_OUTPUT:
        return "no cause model for this op"
    call = decode(record.op, record.params, {k: v.data for k, v in record.inputs.items()})
    if record.op == "dequantize":
        q, qp = call.args
        return causes.Operation.DEQUANTIZE, qp, (q,), None
    if record.op == "quantize":
        x, qp = call.args
        kwargs = dict(call.kwargs)
        if "uniform" in kwargs:
            return "no cause model for stochastic rounding"
        base = kwargs.pop("profile", None) or DEFAULT_PROFILE
        flat = base.resolve(granularity=qp.granularity, fmt=qp.fmt)
        changes = {k: v for k, v in kwargs.items() if v is not None}
        return causes.Operation.QUANTIZE, qp, (x,), dataclasses.replace(flat, **changes)
    if record.op == "requantize":
        acc, multiplier = call.args
        return causes.Operation.REQUANTIZE, causes.RequantizeParams(multiplier, **call.kwargs), (acc,), None
    if record.op == "xnor_matmul":
        lhs, rhs, k = call.args
        return causes.Operation.XNOR_MATMUL, causes.XnorParams(k), (lhs, rhs), None
    if record.op == "binary_conv2d":
        return causes.Operation.BINARY_CONV2D, causes.BinaryConvParams(**call.kwargs), call.args, None
    zps = [np.asarray(call.kwargs[k]) for k in ("lhs_zero_point", "rhs_zero_point")]
    if any(z.shape != () for z in zps):
        return "no cause model for per-axis zero points"
    mp = causes.MatmulParams(int(zps[0]), int(zps[1]), call.kwargs["accumulator"])
    return causes.Operation.MATMUL_INT, mp, call.args, None


def _first_mismatch(record: Record, observed: Mapping[str, Tensor]) -> dict[str, JSONValue]:
    for name, want in (record.expected or {}).items():
        got = observed.get(name)
        if got is None or got.dtype != want.dtype or got.shape != want.shape:
            continue
        if want.dtype.startswith("float"):
            bits = {"float16": np.uint16, "float32": np.uint32, "float64": np.uint64}[want.dtype]
            differ = want.data.view(bits) != got.data.view(bits)
        else:
            differ = want.data != got.data
        index = tuple(int(i) for i in np.argwhere(np.asarray(differ))[0])
        one = tuple(slice(i, i + 1) for i in index)
        return {
            "output": name,
            "index": list(index),
            "expected": encode_tensor(Tensor.of(want.data[one].reshape(-1))),
            "observed": encode_tensor(Tensor.of(got.data[one].reshape(-1))),
        }
    return {}


def _minimal(record: Record, m: causes.MinimalRecord) -> dict[str, JSONValue]:
    """The minimal record in the suite's encoding (params and inputs of the original, cut down)."""
    params = dict(record.params)
    inputs: dict[str, JSONValue] = {k: encode_tensor(v) for k, v in record.inputs.items()}
    names = causes.input_names(m.op)
    for name, a in zip(names, m.inputs, strict=True):
        inputs[name] = encode_tensor(Tensor.of(np.asarray(a).astype(record.inputs[name].data.dtype)))
    if isinstance(m.params, QuantParams) and not isinstance(m.params.granularity, PerAxis):
        for key in ("axis", "block_size"):
            params.pop(key, None)
        params["granularity"] = "per_tensor"
        for key, value in (("scale", m.params.scale), ("zero_point", m.params.zero_point)):
            inputs[key] = encode_tensor(Tensor.of(np.asarray(value).astype(record.inputs[key].data.dtype)))
    out = _MAIN_OUTPUT[m.op.value]
    dtype = record.expected[out].data.dtype if record.expected is not None else np.asarray(m.expected).dtype
    return {
        "id": record.id,
        "op": record.op,
        "params": params,
        "inputs": inputs,
        "expected": {out: encode_tensor(Tensor.of(np.asarray(m.expected).astype(dtype)))},
        "observed": {out: encode_tensor(Tensor.of(np.asarray(m.observed).astype(dtype)))},
        "index": list(m.index),
    }


@dataclass(frozen=True)
class Explanation:
    """A failing record explained: the causes' names (``note`` when there is no cause model) and a minimal record."""

    causes: tuple[causes.Cause, ...]
    note: str
    minimal: dict[str, JSONValue]


def explain(outcome: Outcome, /) -> Explanation:
    """Why a failing value record failed (see the module documentation)."""
    r, observed = outcome.record, outcome.observed
    if r.expected is None or observed is None:
        return Explanation((), "", {})
    first = _first_mismatch(r, observed)
    try:
        model = _cause_inputs(r)
    except (SpecError, UnpredictableError) as error:
        model = f"no cause model: the record does not decode ({error})"
    if isinstance(model, str):
        return Explanation((), model, {"id": r.id, "first_mismatch": first})
    op, params, inputs, profile = model
    got = observed.get(_MAIN_OUTPUT[op.value])
    want = r.expected[_MAIN_OUTPUT[op.value]]
    if got is None or got.shape != want.shape or got.dtype != want.dtype:
        return Explanation((), "no cause evaluated: the output's name, dtype or shape differs", {"id": r.id})
    try:
        with np.errstate(all="ignore"):
            found = causes.explain_mismatch(op, params, inputs, got.data, profile=profile)
            small = causes.minimal_record(op, params, inputs, got.data, profile=profile)
    except (SpecError, UnpredictableError, OverflowError) as error:
        return Explanation(
            (), f"the cause model cannot run on this record ({error})", {"id": r.id, "first_mismatch": first}
        )
    minimal: dict[str, JSONValue] = {"id": r.id, "first_mismatch": first}
    if small is not None:
        minimal = _minimal(r, small)
    note = "" if found else "no alternative semantics reproduces the observed output"
    return Explanation(tuple(found), note, minimal)


# --- the report --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """Counts per (op, why) and in total."""

    rows: dict[tuple[str, str], Counter[Status]]
    total: Counter[Status]

    @property
    def ok(self) -> bool:
        """Nothing failed."""
        return self.total[Status.FAILED] == 0


def summarize(outcomes: Iterable[Outcome], /) -> Summary:
    """The counts of ``outcomes`` per op and why tag."""
    rows: dict[tuple[str, str], Counter[Status]] = {}
    total: Counter[Status] = Counter()
    for o in outcomes:
        rows.setdefault((o.record.op, o.record.why), Counter())[o.status] += 1
        total[o.status] += 1
    return Summary(dict(sorted(rows.items())), total)


def render(outcomes: Sequence[Outcome], /, *, title: str, max_failures: int = 10) -> str:
    """The table per op and why tag, the totals, then up to ``max_failures`` failures explained."""
    summary = summarize(outcomes)
    head = ("op", "why", "records", "passed", "failed", "not covered")
    table = [
        (op, why, str(sum(c.values())), str(c[Status.PASSED]), str(c[Status.FAILED]), str(c[Status.NOT_COVERED]))
        for (op, why), c in summary.rows.items()
    ]
    t = summary.total
    table.append(
        ("total", "", str(sum(t.values())), str(t[Status.PASSED]), str(t[Status.FAILED]), str(t[Status.NOT_COVERED]))
    )
    widths = [max(len(row[i]) for row in [head, *table]) for i in range(len(head))]

    def line(row: Sequence[str]) -> str:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(w) for cell, w in zip(row[2:], widths[2:], strict=True)]
        return "  ".join(cells).rstrip()

    lines = [title, line(head), line(["-" * w for w in widths]), *(line(row) for row in table)]
    failures = [o for o in outcomes if o.status is Status.FAILED]
    for o in failures[:max_failures]:
        lines.append("")
        lines.append(f"FAILED {o.record.id}: {o.reason}")
        if o.observed is None:
            continue
        e = explain(o)
        if e.causes:
            for c in e.causes:
                lines.append(f"  cause: {c.name}{' (exact)' if c.exact else ''}: {c.description}")
        if e.note:
            lines.append(f"  cause: {e.note}")
        if e.minimal:
            lines.append(f"  minimal record: {json.dumps(e.minimal, separators=(',', ':'))}")
    if len(failures) > max_failures:
        lines.append("")
        lines.append(f"... {len(failures) - max_failures} more failures (--max-failures N shows more)")
    verdict = "PASS" if summary.ok else "FAIL"
    lines.append("")
    lines.append(
        f"{verdict}: {t[Status.PASSED]} passed, {t[Status.FAILED]} failed, {t[Status.NOT_COVERED]} not covered"
    )
    return "\n".join(lines)
