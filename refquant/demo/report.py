"""The demo end to end: every table row, the layer-by-layer code check, the mixed-precision choice, QAT.

``run_demo`` computes, ``format_report`` prints, ``plot_accuracy`` draws accuracy against weight bits
(matplotlib, optional).  Rows (docs/demo.md states the same):

- ``FP32``: the float32 model (numpy); ``FP16``: weights and activations stored in float16 after every layer,
  the arithmetic in float32;
- ``INT8 (<observer>)``: weights int8 per channel, activations uint8 calibrated by that observer;
- ``INT4 weights``, ``ternary (TWN)``, ``binary (XNOR-Net)``: those weights in every layer (first and last
  included), activations uint8 (min/max observer), through the same integer pipeline;
- ``mixed``: each layer's scheme from ``choose_mixed`` (its measured sensitivity under a budget);
- ``ternary + QAT``, ``binary + QAT``: the FP32 weights fine-tuned with the STE (``refquant.demo.train``), then
  the same post-training pipeline.

Size: float rows count 4 (2) bytes per parameter; quantized rows the packed weight codes at their width, the float32
weight scales, the int32 biases and the activation scales and zero points (``QModel.nbytes``).  Accuracy and
latency on the whole test split; latency is the median of ``repeats`` timed runs after untimed runs for at least
``WARMUP_SECONDS``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from refquant.demo.model import LAYERS, Split, Weights, accuracy, forward
from refquant.demo.ptq import (
    Mismatch,
    Observer,
    QModel,
    WeightScheme,
    build_qmodel,
    calibrate,
    compare_traces,
    dequantized_weights,
    quantize_weight,
    run_fake_quant,
    run_integer,
)
from refquant.demo.train import train
from refquant.spec.calibration import (
    EntropyObserver,
    EntropyVariant,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MseObserver,
    PercentileObserver,
)

__all__ = [
    "DEFAULT_BUDGET_PP",
    "DEFAULT_QAT_EPOCHS",
    "DEFAULT_REPEATS",
    "MIXED_CANDIDATES",
    "DemoResult",
    "MixedChoice",
    "Row",
    "choose_mixed",
    "format_report",
    "observers",
    "plot_accuracy",
    "run_demo",
]

DEFAULT_REPEATS: Final = 7
DEFAULT_QAT_EPOCHS: Final = 3
DEFAULT_BUDGET_PP: Final = 1.0
QAT_LR: Final = 0.001
QAT_SEED: Final = 1
MIXED_CANDIDATES: Final = (WeightScheme.INT8, WeightScheme.INT4, WeightScheme.TERNARY, WeightScheme.BINARY)
FLOAT_PARAMS: Final = sum(int(np.prod(layer.w_shape)) + layer.out_channels for layer in LAYERS)

Log = Callable[[str], None]


def observers() -> list[tuple[str, Observer]]:
    """The activation observers of ``refquant.spec.calibration``, one INT8 row each (the first is min/max)."""
    return [
        ("min/max", MinMaxObserver()),
        ("moving average min/max 0.01", MovingAverageMinMaxObserver(averaging_constant=0.01)),
        ("percentile 99.99", PercentileObserver(percentile=99.99)),
        ("MSE", MseObserver()),
        ("entropy (TensorRT)", EntropyObserver(variant=EntropyVariant.TENSORRT)),
    ]


@dataclass(frozen=True)
class Row:
    """One table row: accuracy as a fraction, drop in percentage points against FP32, latency in milliseconds.

    ``check``: ``None`` for float rows, else the first mismatch between the integer pipeline and the fake-quantized
    model (``Mismatch``) or the string ``"equal"``."""

    name: str
    weights: str
    size_bytes: int
    accuracy: float
    drop_pp: float
    latency_ms: float
    check: Mismatch | str | None
    bits: float


@dataclass(frozen=True)
class MixedChoice:
    """The mixed-precision choice: each layer's scheme, the single-layer drops (pp), the greedy steps, the budget.

    ``steps``: ``(layer, scheme, measured drop of the combination tried in pp, accepted)`` in the order tried."""

    schemes: dict[str, WeightScheme]
    drops: dict[tuple[str, WeightScheme], float]
    steps: tuple[tuple[str, WeightScheme, float, bool], ...]
    budget_pp: float
    reference_accuracy: float

    def describe(self) -> list[str]:
        lines = [
            f"mixed precision (training split; all-int8 accuracy {100 * self.reference_accuracy:.2f}%, budget "
            f"{self.budget_pp:g} pp): drop when one layer alone takes the scheme, the others int8:"
        ]
        for layer in LAYERS:
            cells = ", ".join(f"{s.value} {self.drops[(layer.name, s)]:+.2f}" for s in MIXED_CANDIDATES[1:])
            lines.append(f"  {layer.name:<5} {cells}")
        tried = "; ".join(f"{n} {s.value} {d:+.2f} {'kept' if ok else 'undone'}" for n, s, d, ok in self.steps)
        lines.append(f"  greedy, least sensitive first (drop of the whole combination): {tried}")
        chosen = ", ".join(f"{name} {scheme.value}" for name, scheme in self.schemes.items())
        lines.append(f"  choice: {chosen}")
        return lines


@dataclass(frozen=True)
class DemoResult:
    """Everything the demo prints: the rows, the mixed-precision choice, and where it ran."""

    rows: tuple[Row, ...]
    mixed: MixedChoice
    machine: str
    test_size: int


WARMUP_SECONDS = 0.15
"""Untimed calls before the timed ones, for at least this long: past the spin-wait of the BLAS worker threads of
the float rows and the calibration before (OpenBLAS's threads busy-wait for on the order of 0.1 s after a call,
taking both cores from Numba's threads; timed at once, an INT8 row measured up to four times slower)."""


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    start = time.perf_counter()
    fn()
    while time.perf_counter() - start < WARMUP_SECONDS:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def _all(scheme: WeightScheme) -> dict[str, WeightScheme]:
    return {layer.name: scheme for layer in LAYERS}


def _qmodel(
    weights: Weights, schemes: Mapping[str, WeightScheme], x_calib: npt.NDArray[np.float32], obs: Any
) -> QModel:
    return build_qmodel(weights, schemes, calibrate(dequantized_weights(weights, schemes), x_calib, obs))


def choose_mixed(
    weights: Weights,
    split: Split,
    *,
    budget_pp: float,
    observer: Observer | None,
) -> MixedChoice:
    """Per-layer schemes chosen by measured sensitivity, under an accuracy budget.

    Sensitivity: each layer alone takes each scheme of ``MIXED_CANDIDATES[1:]`` (the other layers int8); its
    accuracy drop against the all-int8 model is measured through the integer pipeline on the training split
    (never on the test split).  Then, from all-int8, the moves (layer, scheme) are tried in the order of
    increasing single-layer drop (then more bytes saved first); a move that lowers its layer's width is kept when
    the whole combination, measured again, stays within ``budget_pp`` percentage points of all-int8.
    """
    x, y = split.x_train, split.y_train

    def measure(schemes: Mapping[str, WeightScheme]) -> float:
        return accuracy(run_integer(_qmodel(weights, schemes, split.x_calib, observer), x).logits, y)

    reference = measure(_all(WeightScheme.INT8))
    drops: dict[tuple[str, WeightScheme], float] = {}
    saved: dict[tuple[str, WeightScheme], int] = {}
    for layer in LAYERS:
        int8_bytes = quantize_weight(weights[f"{layer.name}.w"], WeightScheme.INT8).nbytes
        for scheme in MIXED_CANDIDATES[1:]:
            drops[(layer.name, scheme)] = 100.0 * (reference - measure(_all(WeightScheme.INT8) | {layer.name: scheme}))
            saved[(layer.name, scheme)] = int8_bytes - quantize_weight(weights[f"{layer.name}.w"], scheme).nbytes
    chosen = _all(WeightScheme.INT8)
    steps: list[tuple[str, WeightScheme, float, bool]] = []
    for name, scheme in sorted(drops, key=lambda k: (drops[k], -saved[k])):
        if scheme.bits >= chosen[name].bits:
            continue
        trial = chosen | {name: scheme}
        drop = 100.0 * (reference - measure(trial))
        ok = drop <= budget_pp + 1e-9
        steps.append((name, scheme, drop, ok))
        if ok:
            chosen = trial
    return MixedChoice(chosen, drops, tuple(steps), budget_pp, reference)


def _qrow(name: str, qm: QModel, split: Split, fp32: float, repeats: int, bits: float) -> Row:
    trace = run_integer(qm, split.x_test)
    mismatch = compare_traces(trace, run_fake_quant(qm, split.x_test))
    acc = accuracy(trace.logits, split.y_test)
    latency = _median_ms(lambda: run_integer(qm, split.x_test), repeats)
    label = "/".join(dict.fromkeys(s.value for s in qm.schemes.values())) + " w, uint8 a"
    return Row(name, label, qm.nbytes, acc, 100.0 * (fp32 - acc), latency, mismatch or "equal", bits)


def _machine() -> str:
    from refquant.fast import kernel_path

    numba: Any = importlib.import_module("numba")
    cpu = platform.processor() or platform.machine()
    blas = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or "default"
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}, numpy {np.__version__}, refquant.fast kernels {kernel_path().value}, "
        f"Numba threads {numba.get_num_threads()}, BLAS threads {blas}"
    )


def run_demo(
    split: Split,
    weights: Weights,
    /,
    *,
    repeats: int = DEFAULT_REPEATS,
    qat_epochs: int = DEFAULT_QAT_EPOCHS,
    budget_pp: float = DEFAULT_BUDGET_PP,
    log: Log = print,
) -> DemoResult:
    """All rows of the table for ``weights`` on ``split`` (see the module documentation); progress through ``log``."""
    t_start = time.perf_counter()
    # glibc's malloc serves large blocks with fresh mmap pages (a page fault every 4 KiB) until a freed large block
    # raises its dynamic threshold; one 24 MiB block allocated and freed first gives every row the same allocator.
    del_block = np.empty(3 << 20, np.float64)
    del del_block

    def step(text: str) -> None:
        log(f"[{time.perf_counter() - t_start:5.1f} s] {text}")

    x, y = split.x_test, split.y_test
    fp32 = accuracy(forward(weights, x), y)

    def add(row: Row) -> None:
        rows.append(row)
        if isinstance(row.check, Mismatch):
            log(f"  {row.name}: integer pipeline and fake-quant differ, first at {row.check.describe()}")

    rows = [
        Row("FP32", "float32", 4 * FLOAT_PARAMS, fp32, 0.0, _median_ms(lambda: forward(weights, x), repeats), None, 32),
    ]
    fp16 = accuracy(forward(weights, x, dtype=np.float16), y)
    rows.append(
        Row(
            "FP16",
            "float16",
            2 * FLOAT_PARAMS,
            fp16,
            100.0 * (fp32 - fp16),
            _median_ms(lambda: forward(weights, x, dtype=np.float16), repeats),
            None,
            16,
        )
    )
    step(
        "float rows done; refquant.fast compiles its kernels on first use (a minute or more with an empty Numba cache)"
    )
    obs_list = observers()
    for name, obs in obs_list:
        qm = _qmodel(weights, _all(WeightScheme.INT8), split.x_calib, obs)
        add(_qrow(f"INT8 ({name})", qm, split, fp32, repeats, 8))
        step(f"INT8 with the {name} observer done")
    minmax = obs_list[0][1]
    for name, scheme in (
        ("INT4 weights", WeightScheme.INT4),
        ("ternary (TWN)", WeightScheme.TERNARY),
        ("binary (XNOR-Net)", WeightScheme.BINARY),
    ):
        add(_qrow(name, _qmodel(weights, _all(scheme), split.x_calib, minmax), split, fp32, repeats, scheme.bits))
    step(
        "low-bit weight rows done; measuring each layer's sensitivity on the training split (more kernels compile here on a first run)"
    )
    mixed = choose_mixed(weights, split, budget_pp=budget_pp, observer=minmax)
    for line in mixed.describe():
        log(line)
    qm = _qmodel(weights, mixed.schemes, split.x_calib, minmax)
    mean_bits = sum(
        s.bits * int(np.prod(layer.w_shape)) for layer, s in zip(LAYERS, mixed.schemes.values(), strict=True)
    ) / sum(int(np.prod(layer.w_shape)) for layer in LAYERS)
    add(_qrow("mixed", qm, split, fp32, repeats, mean_bits))
    for name, scheme in (("ternary + QAT", WeightScheme.TERNARY), ("binary + QAT", WeightScheme.BINARY)):
        step(f"{name}: {qat_epochs} epochs of STE fine-tuning")

        def fake(layer_name: str, w: npt.NDArray[np.float32], scheme: WeightScheme = scheme) -> npt.NDArray[np.float32]:
            return quantize_weight(w, scheme).dequantized()

        tuned, _losses = train(
            weights,
            split.x_train,
            split.y_train,
            epochs=qat_epochs,
            seed=QAT_SEED,
            lr=QAT_LR,
            weight_quantizer=fake,
            progress=lambda line: log(f"  {line}"),
        )
        add(_qrow(name, _qmodel(tuned, _all(scheme), split.x_calib, minmax), split, fp32, repeats, scheme.bits))
    step("done")
    return DemoResult(tuple(rows), mixed, _machine(), int(x.shape[0]))


def _check_cell(check: Mismatch | str | None) -> str:
    if check is None:
        return "-"
    return "equal" if isinstance(check, str) else f"differs at {check.layer}"


def format_report(result: DemoResult, /) -> str:
    """The table (Markdown) and the verification lines."""
    lines = [
        f"refquant demo: sklearn digits, {result.test_size} test images; latency = whole test set, median",
        f"machine: {result.machine}",
        "",
        "| row | weights / activations | size (bytes) | accuracy | drop vs FP32 (pp) | latency (ms) | codes = fake-quant |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in result.rows:
        lines.append(
            f"| {r.name} | {r.weights} | {r.size_bytes} | {100 * r.accuracy:.2f}% | {r.drop_pp:+.2f} | "
            f"{r.latency_ms:.2f} | {_check_cell(r.check)} |"
        )
    lines.append("")
    lines.extend(result.mixed.describe())
    lines.append("")
    checked = [r for r in result.rows if r.check is not None]
    bad = [(r.name, r.check) for r in checked if isinstance(r.check, Mismatch)]
    lines.append(
        f"layer-by-layer check (integer pipeline vs float64 fake-quantized model, input/conv1/conv2 codes and fc int32 "
        f"accumulators): {len(checked) - len(bad)} of {len(checked)} quantized rows identical"
    )
    for name, mismatch in bad:
        lines.append(f"  {name}: first difference at {mismatch.describe()}")
    return "\n".join(lines)


def plot_accuracy(result: DemoResult, path: str, /) -> None:
    """Accuracy against mean weight bits, post-training and QAT points (needs matplotlib)."""
    matplotlib: Any = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    plt: Any = importlib.import_module("matplotlib.pyplot")
    fig, ax = plt.subplots(figsize=(6, 4))
    for qat in (False, True):
        rows = [r for r in result.rows if r.name.endswith("QAT") == qat]
        ax.plot(
            [r.bits for r in rows],
            [100 * r.accuracy for r in rows],
            "o" if not qat else "s",
            label="QAT" if qat else "PTQ",
        )
        labels: dict[float, list[Row]] = {}
        for r in rows:
            labels.setdefault(r.bits, []).append(r)
        for bits, same in labels.items():  # one label per width: the INT8 rows (one per observer) share theirs
            top = max(same, key=lambda r: r.accuracy)
            name = top.name if len(same) == 1 else f"{top.name.split(' (')[0]} ({len(same)} rows)"
            ax.annotate(name, (bits, 100 * top.accuracy), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("weight bits (mean over weights)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_cli(*, repeats: int, qat_epochs: int, budget_pp: float, retrain: bool, plot: str | None) -> int:
    """``refquant demo``: check the arguments and the optional dependencies first, then run and print."""
    from refquant.cli import CliError
    from refquant.demo.model import load_split, load_weights
    from refquant.demo.train import train_default

    if repeats < 1:
        raise CliError(f"--repeats must be >= 1, got {repeats}")
    if qat_epochs < 0:
        raise CliError(f"--qat-epochs must be >= 0, got {qat_epochs}")
    if not (np.isfinite(budget_pp) and budget_pp >= 0):
        raise CliError(f"--budget must be a finite number >= 0 (percentage points), got {budget_pp}")
    if importlib.util.find_spec("sklearn") is None:
        raise CliError("refquant demo needs scikit-learn (pip install 'refquant[demo]')")
    if plot is not None and importlib.util.find_spec("matplotlib") is None:
        raise CliError("--plot needs matplotlib, which is not installed (pip install matplotlib)")

    def log(line: str) -> None:
        print(line, flush=True)

    split = load_split()
    if retrain:
        log("retraining the float model (refquant.demo.train settings)")
        weights, _ = train_default(progress=lambda line: log(f"  {line}"))
    else:
        weights = load_weights()
    result = run_demo(split, weights, repeats=repeats, qat_epochs=qat_epochs, budget_pp=budget_pp, log=log)
    print()
    print(format_report(result))
    if plot is not None:
        plot_accuracy(result, plot)
        print(f"wrote {plot}")
    return 0
