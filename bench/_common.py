"""Timing and reporting helpers shared by the benchmark scripts (bench/gemm.py, bench/conv.py, ...).

Method (the same for every script):

* 2 threads everywhere: ``setup_threads()`` must run before numpy, numba, torch or onnxruntime are
  imported (it sets OMP/OpenBLAS/MKL/Numba thread counts); torch and onnxruntime sessions are
  configured for 2 intra-op threads by the scripts.
* Results are checked bit for bit against a reference before anything is timed; an inexact
  implementation is still timed but marked, and it never counts as the best peer.
* ``measure()``: one untimed warm-up call, then ``repeats`` (>= 3) repeats, each a loop of as many
  calls as fit in ``budget`` seconds (at least one); the per-call time of a repeat is the loop time
  divided by its calls.  A run reports the median over its repeats (and its fastest repeat).  Scripts
  take ``--runs`` rounds (default 3) through all implementations of a case, interleaved, and report
  the median of the round medians, with the fastest repeat of all rounds beside it.  A short sleep
  before each implementation lets other runtimes' spinning worker threads go idle.
* Ratios are against the best exact peer measured in the same run; targets are evaluated on the
  medians and, separately, on the fastest repeats (the latter is what the machine can do when no
  other process competes for its CPUs; ``run_cases`` records that background load from /proc/stat).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

THREADS = 2
ROOT = Path(__file__).resolve().parents[1]
PERFORMANCE_MD = ROOT / "docs" / "performance.md"


def setup_threads(threads: int = THREADS) -> None:
    """Fix every runtime's thread count (call before importing numpy, numba, torch, onnxruntime)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(threads)


QUIET = {"threshold": 0.25, "max_wait": 10.0, "budget": 240.0, "waited": 0.0, "loud": 0, "measured": 0}
"""``wait_quiet`` settings and counters: the CPUs other processes may keep busy, the longest wait per
measurement and per script (seconds), the total waited, and how many measurements started under load."""


def wait_quiet() -> bool:
    """Wait (bounded by ``QUIET``) until other processes keep less than ``QUIET["threshold"]`` CPUs busy.

    On a shared machine another process's burst makes every 2-thread parallel region wait for a
    descheduled thread; waiting for a quiet moment before each measurement (the same rule for every
    implementation) keeps such bursts out of the figures.  Returns False if it gave up.
    """
    start = time.perf_counter()
    while True:
        a = _cpu_seconds()
        time.sleep(0.1)
        b = _cpu_seconds()
        if a is None or b is None:
            return True
        if ((b[0] - a[0]) - (b[1] - a[1])) / 0.1 < QUIET["threshold"]:
            return True
        waited = time.perf_counter() - start
        if waited > QUIET["max_wait"] or QUIET["waited"] + waited > QUIET["budget"]:
            return False
        time.sleep(0.4)


def measure(
    fn: Callable[[], Any], *, repeats: int = 5, budget: float = 0.1, settle: float = 0.05
) -> tuple[float, float]:
    """(median, minimum) seconds per call of ``fn`` over ``repeats`` timed loops (after one warm-up call).

    Starts at a quiet moment of the machine when one comes soon enough (``wait_quiet``).
    """
    if repeats < 3:
        raise ValueError("repeats must be >= 3")
    t0 = time.perf_counter()
    quiet = wait_quiet()
    QUIET["waited"] += time.perf_counter() - t0
    QUIET["measured"] += 1
    QUIET["loud"] += 0 if quiet else 1
    time.sleep(settle)
    fn()
    per_call = []
    for _ in range(repeats):
        calls = 0
        start = time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= budget:
                break
        per_call.append(elapsed / calls)
    return statistics.median(per_call), min(per_call)


@dataclass
class Row:
    """One implementation of one case: its per-run medians and what it is."""

    name: str
    kind: str  # "refquant", "peer" or "anchor"
    exact: bool | None  # None: not applicable (timed without a bit-exact reference)
    note: str = ""
    times: list[float] = field(default_factory=list)  # per-run medians
    bests: list[float] = field(default_factory=list)  # per-run fastest repeat
    work: float | None = None  # this row's own work per call when it differs from its case's

    @property
    def seconds(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.bests)


def fmt_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def best_peer(rows: list[Row], best: bool = False) -> Row | None:
    """The fastest exact peer (anchors and refquant rows excluded), by median or by fastest repeat."""
    peers = [r for r in rows if r.kind == "peer" and r.exact and r.times]
    return min(peers, key=lambda r: r.best if best else r.seconds) if peers else None


def machine() -> str:
    """One line describing the CPU, core count and OS of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = re.findall(r"^model name\s*:\s*(.+)$", f.read(), re.MULTILINE)
        if names:
            cpu = names[0]
    except OSError:
        pass
    try:
        from llvmlite import binding

        cpu += f" (LLVM: {binding.get_host_cpu_name()})"
    except ImportError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def today() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True)
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_section(name: str, markdown: str, path: Path = PERFORMANCE_MD) -> None:
    """Replace the section between ``<!-- BEGIN name -->`` and ``<!-- END name -->`` of docs/performance.md."""
    begin, end = f"<!-- BEGIN {name} (generated by bench/, do not edit) -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.rstrip()}\n{end}\n"
    if path.exists():
        text = path.read_text()
    else:
        text = (
            "# Performance\n\n"
            "Measured by the scripts in `bench/`; every section below is regenerated by its script "
            "(`python bench/gemm.py`, ...), never edited by hand.  Figures are medians of at least 3 runs on "
            "2 threads; compare the ratios within a table, not absolute figures across machines or days.\n\n"
        )
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    path.write_text(text)


# --------------------------------------------------------------------------------------------------
# cases: implementations of one shape, checked, timed, tabulated


@dataclass
class Case:
    """One benchmark case (a shape): its implementations, their checks and their timed callables.

    ``work`` is the amount the rate column divides by the time: operations (``unit`` "GOP/s") or
    bytes moved (``unit`` "GB/s").
    """

    title: str
    work: float
    unit: str = "GOP/s"
    rows: list[Row] = field(default_factory=list)
    fns: list[Callable[[], Any] | None] = field(default_factory=list)

    def add(
        self,
        name: str,
        kind: str,
        fn: Callable[[], Any],
        check: Callable[[Any], bool] | None,
        note: str = "",
        work: float | None = None,
    ) -> None:
        """Run ``fn`` once, check its result (``check=None``: not checkable, e.g. an anchor), keep it for timing.

        ``work``: the row's own work per call (e.g. the bytes a copy anchor moves) if not the case's.
        """
        try:
            result = fn()
            exact = None if check is None else bool(check(result))
        except Exception as exc:  # a peer that cannot run this case is listed, not fatal
            self.skip(name, kind, f"not run: {type(exc).__name__}: {str(exc)[:100]}")
            return
        self.rows.append(Row(name, kind, exact, note, work=work))
        self.fns.append(fn)

    def skip(self, name: str, kind: str, note: str) -> None:
        self.rows.append(Row(name, kind, None, note))
        self.fns.append(None)

    def row(self, name: str) -> Row | None:
        for r in self.rows:
            if r.name == name and r.times:
                return r
        return None

    def rate(self, row: Row, best: bool = False) -> float:
        """Work per second (1e9 units) from the median time, or from the fastest repeat (``best``)."""
        return (self.work if row.work is None else row.work) / (row.best if best else row.seconds) / 1e9

    def ratio(self, row: Row | None, other: Row | None, best: bool = False) -> float | None:
        """``row``'s rate over ``other``'s (None when either was not timed); ``best``: fastest repeats."""
        if row is None or other is None or not row.times or not other.times:
            return None
        return self.rate(row, best) / self.rate(other, best)

    def versus(self, row: Row | None, candidates: list[Row]) -> tuple[float | None, float | None]:
        """``row`` against the fastest exact, timed row of ``candidates``: (ratio of medians, ratio of fastest repeats)."""
        ok = [r for r in candidates if r.exact is not False and r.times]  # exact, or nothing to check (anchors)
        if row is None or not row.times or not ok:
            return None, None
        by_median = min(ok, key=lambda r: r.seconds)
        by_best = min(ok, key=lambda r: r.best)
        return self.ratio(row, by_median), self.ratio(row, by_best, True)

    def table(self) -> str:
        best = best_peer(self.rows)
        lines = [
            f"#### {self.title}" + (f" (best peer: {best.name})" if best else ""),
            "",
            f"| implementation | kind | time | {self.unit} | x best peer | best-repeat {self.unit} | exact | note |",
            "|---|---|---:|---:|---:|---:|---|---|",
        ]
        for r in self.rows:
            exact = "-" if r.exact is None else ("yes" if r.exact else "NO")
            if not r.times:
                lines.append(f"| {r.name} | {r.kind} | - | - | - | - | {exact} | {r.note} |")
                continue
            ratio = self.ratio(r, best)
            digits = 1 if self.unit == "GB/s" else 0
            lines.append(
                f"| {r.name} | {r.kind} | {fmt_time(r.seconds)} | {self.rate(r):.{digits}f} | "
                f"{'-' if ratio is None else f'{ratio:.2f}'} | {self.rate(r, True):.{digits}f} | {exact} | {r.note} |"
            )
        return "\n".join(lines)


def _cpu_seconds() -> tuple[float, float] | None:
    """(busy CPU seconds of the whole machine from /proc/stat, CPU seconds of this process and its children)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    busy = (sum(fields[:8]) - fields[3] - fields[4]) / hz  # all but idle and iowait
    t = os.times()
    return busy, t.user + t.system + t.children_user + t.children_system


BACKGROUND: list[float] = []
"""CPUs kept busy by other processes during each ``run_cases`` call (average over its wall time)."""


def run_cases(cases: list[Case], *, runs: int, repeats: int, budget: float) -> None:
    """``runs`` interleaved rounds through every implementation of every case (a median per round).

    Also records in ``BACKGROUND`` how many CPUs other processes kept busy meanwhile (/proc/stat).
    """
    start, wall = _cpu_seconds(), time.perf_counter()
    for run in range(runs):
        for case in cases:
            for row, fn in zip(case.rows, case.fns, strict=True):
                if fn is not None:
                    median, best = measure(fn, repeats=repeats, budget=budget)
                    row.times.append(median)
                    row.bests.append(best)
        print(f"run {run + 1}/{runs} done", flush=True)
    end = _cpu_seconds()
    if start is not None and end is not None:
        BACKGROUND.append(max(0.0, ((end[0] - start[0]) - (end[1] - start[1])) / (time.perf_counter() - wall)))


def parse_args(doc: str, default_runs: int = 3) -> argparse.Namespace:
    """The options every script takes: ``--quick``, ``--runs``, ``--no-write``, ``--no-compile``."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small cases, 1 run, short loops, no docs")
    parser.add_argument("--runs", type=int, default=default_runs, help="rounds through all implementations (median)")
    parser.add_argument("--no-write", action="store_true", help="do not regenerate docs/performance.md")
    parser.add_argument("--no-compile", action="store_true", help="skip the compile-time measurements")
    args = parser.parse_args()
    args.runs = 1 if args.quick else max(1, args.runs)
    args.repeats, args.budget = (3, 0.02) if args.quick else (5, 0.1)
    return args


# --------------------------------------------------------------------------------------------------
# peers' sessions


def ort_session(model: Any) -> Any:
    """An onnxruntime CPU session for an onnx ``ModelProto`` on ``THREADS`` intra-op threads."""
    import onnx
    import onnxruntime as ort

    model.ir_version = 8  # onnxruntime may reject the newest IR version onnx writes
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def torch_or_none() -> Any:
    """torch with ``THREADS`` intra-op threads, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(THREADS)
    return torch


def have(module: str) -> bool:
    """Whether ``module`` can be imported (peers that are not installed are skipped)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# --------------------------------------------------------------------------------------------------
# machine, compile times, targets, the generated section


def environment() -> str:
    """Machine line: CPU model, cores, Numba threading layer, refquant kernel path, library versions."""
    from refquant.kernels._jit import kernel_path, threading_layer

    versions = []
    for mod in ("numpy", "numba", "onnxruntime", "torch"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            versions.append(f"{mod} not installed")
    return (
        f"Machine: {machine()}. Numba threading layer: `{threading_layer()}`. refquant kernel path: "
        f"`{kernel_path().value}`. {', '.join(versions)}. Date: {today()}. Revision: {git_revision()}."
    )


NUMBA_START = """
import time as _time
import numpy as _np
import refquant.fast
from refquant.kernels import gemm as _gemm
_t = _time.perf_counter()
_gemm.prepare_lhs(_np.zeros((1, 1, 4), _np.uint8), 0, 4, _np.zeros((1, 1, 4), _np.uint8), _np.zeros((1, 1), _np.int64), False)
numba_start = _time.perf_counter() - _t
"""
"""Prefix of every first-call probe: Numba's one-time start-up in a process (typing and target
contexts, paid by the first call of any compiled function) measured on a trivial cached kernel,
so that the first call of the operation itself is measured apart from it."""


def compile_times(warm_code: str, first_code: str, *, firsts: int = 3) -> tuple[float, float, float]:
    """(cold seconds, Numba start-up seconds, cached first-call seconds) measured in fresh interpreters.

    ``warm_code`` runs once with an empty ``NUMBA_CACHE_DIR`` (compiling every kernel it touches) and
    prints the seconds it measured (imports excluded).  ``first_code`` then runs ``firsts`` times with
    that warm cache after ``NUMBA_START`` and prints ``numba_start`` and the seconds of its first call;
    medians are taken.
    """
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}

        def run(code: str) -> list[float]:
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            return [float(v) for v in out.stdout.split()[-2:]]

        cold = run(warm_code)[-1]
        probes = [run(NUMBA_START + first_code) for _ in range(firsts)]
    return cold, statistics.median(p[0] for p in probes), statistics.median(p[1] for p in probes)


@dataclass
class Target:
    """One performance target of the issue and whether this run met it."""

    text: str
    value: float | None
    goal: float
    fmt: str = "{:.2f}"
    best_value: float | None = None  # the same figure from the fastest repeats, when it applies

    def _ok(self, v: float) -> bool:
        return v >= self.goal

    def _goal(self) -> str:
        return self.fmt.format(self.goal)

    def line(self) -> str:
        best = "-" if self.best_value is None else self.fmt.format(self.best_value)
        if self.value is None:
            return f"| {self.text} | - | {best} | {self._goal()} | not measured |"
        met = "met" if self._ok(self.value) else "MISSED"
        if self.best_value is not None and not self._ok(self.value) and self._ok(self.best_value):
            met = "MISSED on medians, met on fastest repeats"
        return f"| {self.text} | {self.fmt.format(self.value)} | {best} | {self._goal()} | {met} |"


def targets_table(targets: list[Target]) -> str:
    lines = ["| target | measured (medians) | fastest repeats | goal | |", "|---|---:|---:|---:|---|"]
    return "\n".join(lines + [t.line() for t in targets])


@dataclass
class MaxTarget(Target):
    """A target that is an upper bound (compile seconds, first-call milliseconds)."""

    def _ok(self, v: float) -> bool:
        return v <= self.goal

    def _goal(self) -> str:
        return "<= " + self.fmt.format(self.goal)


def publish(
    name: str,
    title: str,
    method: str,
    targets: list[Target],
    cases: list[Case],
    args: argparse.Namespace,
    extra: str = "",
) -> None:
    """Print the report and (full runs only) rewrite section ``name`` of docs/performance.md."""
    if BACKGROUND:
        method += (
            f" Background load (this machine is shared): each measurement waited for a moment when other processes "
            f"kept less than {QUIET['threshold']} CPUs busy (at most {QUIET['max_wait']:.0f} s; "
            f"{QUIET['waited']:.0f} s waited in all, {QUIET['loud']} of {QUIET['measured']} measurements started "
            f"without one); over the whole timing other processes still kept {max(BACKGROUND):.2f} of the "
            f"{os.cpu_count()} CPUs busy on average (from /proc/stat). A burst of another process during a "
            "measurement stalls every 2-thread parallel region (numba/OpenMP, torch, OpenBLAS) by a scheduler "
            "time slice, while onnxruntime's thread pool lets the calling thread finish the work alone: medians "
            "taken under load understate the OpenMP-based implementations, which is why the fastest repeats are "
            "shown beside them."
        )
    parts = [f"## {title}", "", environment(), "", f"Method: {method}", ""]
    if extra:
        parts += [extra, ""]
    parts += ["Targets (ratios within this run):", "", targets_table(targets), ""]
    parts += ["\n\n".join(c.table() for c in cases)]
    markdown = "\n".join(parts) + "\n"
    print("\n" + markdown)
    if not (args.quick or args.no_write):
        write_section(name, markdown)
        print(f"wrote the {name} section of {PERFORMANCE_MD}")
