"""refquant demo: training, the shipped weights, the integer pipeline against the fake-quantized model, the table,
the mixed-precision choice, and the command line (docs/demo.md)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

pytest.importorskip("sklearn")

from refquant.cli import main
from refquant.demo.model import (
    LAYERS,
    Split,
    accuracy,
    forward,
    init_weights,
    load_split,
    load_weights,
    loss_and_grads,
    save_weights,
)
from refquant.demo.ptq import (
    TRACE_NAMES,
    Trace,
    WeightScheme,
    build_qmodel,
    calibrate,
    compare_traces,
    dequantized_weights,
    quantize_weight,
    run_fake_quant,
    run_integer,
)
from refquant.demo.report import (
    DEFAULT_BUDGET_PP,
    DEFAULT_QAT_EPOCHS,
    DEFAULT_REPEATS,
    DemoResult,
    format_report,
    observers,
    plot_accuracy,
    run_demo,
)
from refquant.demo.train import train
from refquant.errors import SpecError

# The FP32 test accuracy docs/demo.md states for the shipped weights: 496 of the 500 test images.
STATED_FP32_CORRECT = 496
# The INT8 (min/max) row may lose at most this much accuracy against FP32 on the full test split (percentage points).
INT8_BOUND_PP = 0.5


@pytest.fixture(scope="module")
def split() -> Split:
    return load_split()


@pytest.fixture(scope="module")
def small(split: Split) -> Split:
    """A subset that keeps the end-to-end test short: 300 training images (the calibration subset inside), 120 test."""
    return Split(split.x_train[:300], split.y_train[:300], split.x_test[:120], split.y_test[:120])


def _all(scheme: WeightScheme) -> dict[str, WeightScheme]:
    return {layer.name: scheme for layer in LAYERS}


def test_split_is_fixed(split: Split) -> None:
    assert split.x_train.shape == (1297, 1, 8, 8)
    assert split.x_test.shape == (500, 1, 8, 8)
    assert split.x_calib.shape == (256, 1, 8, 8)
    assert split.x_train.dtype == np.float32
    assert float(split.x_train.max()) == 1.0
    # recorded from load_split() (scikit-learn 1.9.1; numpy's default_rng permutation is stable across versions):
    # another split would change them, and with them every figure of docs/demo.md
    np.testing.assert_array_equal(split.y_train[:10], [6, 6, 6, 2, 5, 6, 6, 2, 2, 1])
    np.testing.assert_array_equal(split.y_test[:10], [1, 7, 6, 5, 2, 2, 9, 1, 8, 5])
    assert int(split.y_test.sum()) == 2169
    np.testing.assert_array_equal(load_split().x_test.view(np.uint32), split.x_test.view(np.uint32))


def test_training_lowers_the_loss(split: Split) -> None:
    w0 = init_weights(0)
    x, y = split.x_train[:256], split.y_train[:256]
    before, _ = loss_and_grads(w0, x, y)
    w1, losses = train(w0, x, y, epochs=2, seed=0, lr=0.005)
    after, _ = loss_and_grads(w1, x, y)
    assert len(losses) == 2
    assert after < before - 0.5, (before, after)


def test_shipped_weights_reach_the_stated_fp32_accuracy(split: Split) -> None:
    weights = load_weights()
    correct = int(np.sum(np.argmax(forward(weights, split.x_test), axis=1) == split.y_test))
    assert correct == STATED_FP32_CORRECT


def test_weights_round_trip_and_bad_file(tmp_path: Path) -> None:
    weights = init_weights(3)
    loaded = load_weights(save_weights(weights, tmp_path / "w.npz"))
    for name, value in weights.items():
        np.testing.assert_array_equal(loaded[name].view(np.uint32), value.view(np.uint32))
    np.savez(tmp_path / "bad.npz", **{"conv1.w": np.zeros((8, 1, 3, 3), np.float64)})
    with pytest.raises(SpecError) as info:
        load_weights(tmp_path / "bad.npz")
    assert info.value.condition == "shape_mismatch"


def test_weight_schemes_codes_and_sizes() -> None:
    w = load_weights()["conv1.w"]  # (8, 1, 3, 3): 72 weights, 8 channels
    limits = {WeightScheme.INT8: {*range(-127, 128)}, WeightScheme.INT4: {*range(-7, 8)}}
    limits |= {WeightScheme.TERNARY: {-1, 0, 1}, WeightScheme.BINARY: {-1, 1}}
    # sizes worked by hand: ceil(72 * bits / 8) code bytes + 8 float32 scales (32 bytes)
    sizes = {WeightScheme.INT8: 72 + 32, WeightScheme.INT4: 36 + 32, WeightScheme.TERNARY: 18 + 32}
    sizes |= {WeightScheme.BINARY: 9 + 32}
    for scheme in WeightScheme:
        q = quantize_weight(w, scheme)
        assert q.codes.dtype == np.int8
        assert q.codes.shape == w.shape
        assert q.scale.shape == (8,)
        assert set(np.unique(q.codes).tolist()) <= limits[scheme]
        assert q.nbytes == sizes[scheme]


@pytest.mark.parametrize("scheme", list(WeightScheme), ids=lambda s: s.value)
def test_integer_pipeline_equals_fake_quant_code_for_code(split: Split, scheme: WeightScheme) -> None:
    weights = load_weights()
    for _name, obs in observers():
        qm = build_qmodel(
            weights, _all(scheme), calibrate(dequantized_weights(weights, _all(scheme)), split.x_calib, obs)
        )
        integer, fake = run_integer(qm, split.x_test), run_fake_quant(qm, split.x_test)
        for layer, a, b in zip(TRACE_NAMES, integer.codes, fake.codes, strict=True):
            np.testing.assert_array_equal(a.astype(np.int64), b.astype(np.int64), err_msg=layer)
        assert compare_traces(integer, fake) is None
        np.testing.assert_array_equal(np.argmax(integer.logits, axis=1), np.argmax(fake.logits, axis=1))


def test_int8_accuracy_within_the_bound_of_fp32(split: Split) -> None:
    weights = load_weights()
    fp32 = accuracy(forward(weights, split.x_test), split.y_test)
    qm = build_qmodel(weights, _all(WeightScheme.INT8), calibrate(weights, split.x_calib, observers()[0][1]))
    int8 = accuracy(run_integer(qm, split.x_test).logits, split.y_test)
    assert 100 * (fp32 - int8) <= INT8_BOUND_PP


def test_compare_traces_names_the_first_difference() -> None:
    a = tuple(np.zeros((2, 3), np.int64) for _ in TRACE_NAMES)
    b = list(a)
    b[2] = np.array([[0, 0, 0], [0, 5, 7]])  # conv2 differs at (1, 1) first, and at (1, 2)
    b[3] = np.ones((2, 3), np.int64)
    found = compare_traces(Trace(a, np.zeros(1)), Trace(tuple(b), np.zeros(1)))
    assert found is not None
    assert (found.layer, found.index, found.integer, found.fake_quant, found.count) == ("conv2", (1, 1), 0, 5, 2)
    assert "layer conv2, element (1, 1): integer pipeline 0, fake-quant 5" in found.describe()


@pytest.fixture(scope="module")
def small_run(small: Split) -> tuple[DemoResult, list[str]]:
    lines: list[str] = []
    result = run_demo(small, load_weights(), repeats=1, qat_epochs=1, budget_pp=DEFAULT_BUDGET_PP, log=lines.append)
    return result, lines


def test_run_demo_on_a_subset(small: Split, small_run: tuple[DemoResult, list[str]]) -> None:
    result, lines = small_run
    names = [r.name for r in result.rows]
    expected = ["FP32", "FP16", *(f"INT8 ({n})" for n, _ in observers())]
    expected += ["INT4 weights", "ternary (TWN)", "binary (XNOR-Net)", "mixed", "ternary + QAT", "binary + QAT"]
    assert names == expected
    assert [r.size_bytes for r in result.rows[:2]] == [
        4 * 3818,
        2 * 3818,
    ]  # by hand: 72+8 + 1152+16 + 2560+10 = 3818 parameters
    fp32 = result.rows[0].accuracy
    assert fp32 == accuracy(forward(load_weights(), small.x_test), small.y_test)
    for r in result.rows:
        assert 0.0 <= r.accuracy <= 1.0
        assert r.latency_ms > 0
        assert r.drop_pp == pytest.approx(100 * (fp32 - r.accuracy))
        assert (r.check is None) == r.name.startswith("FP")
        assert r.check in (None, "equal")
    sizes = {r.name: r.size_bytes for r in result.rows}
    assert sizes["binary (XNOR-Net)"] < sizes["ternary (TWN)"] < sizes["INT4 weights"] < sizes["INT8 (min/max)"]
    assert set(result.mixed.schemes) == {layer.name for layer in LAYERS}
    assert all(ok == (drop <= DEFAULT_BUDGET_PP) for _n, _s, drop, ok in result.mixed.steps)
    text = format_report(result)
    assert text.count("\n| ") == 1 + len(expected)  # header row and one row per line of the table
    assert f"{len(expected) - 2} of {len(expected) - 2} quantized rows identical" in text
    assert any("choice:" in line for line in lines)
    assert lines[-1].endswith("done")


def test_cli_demo_help_states_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    assert f"(default {DEFAULT_REPEATS})" in out
    assert f"(default {DEFAULT_QAT_EPOCHS})" in out
    assert f"(default {DEFAULT_BUDGET_PP})" in out
    assert "--retrain" in out
    assert "--plot" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--repeats", "0"], "--repeats must be >= 1, got 0"),
        (["demo", "--qat-epochs", "-1"], "--qat-epochs must be >= 0, got -1"),
        (["demo", "--budget", "nan"], "--budget must be a finite number >= 0"),
        (["demo", "--repeats", "x"], "argument --repeats: invalid int value: 'x'"),
    ],
)
def test_cli_demo_bad_argument_exits_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("refquant: error: ")
    assert message in err


def test_importing_refquant_and_the_cli_stays_light() -> None:
    code = (
        "import sys, refquant, refquant.cli, refquant.demo, refquant.demo.report, refquant.demo.train; "
        "print(sorted(m for m in ('sklearn', 'numba') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert out == "[]"


def test_qat_recovers_ternary_accuracy(split: Split) -> None:
    weights = load_weights()
    obs = observers()[0][1]

    def ternary_accuracy(w: dict[str, np.ndarray]) -> float:
        schemes = _all(WeightScheme.TERNARY)
        qm = build_qmodel(w, schemes, calibrate(dequantized_weights(w, schemes), split.x_calib, obs))
        return accuracy(run_integer(qm, split.x_test).logits, split.y_test)

    def fake(_name: str, w: np.ndarray) -> np.ndarray:
        return quantize_weight(w, WeightScheme.TERNARY).dequantized()

    tuned, _ = train(
        weights, split.x_train, split.y_train, epochs=DEFAULT_QAT_EPOCHS, seed=1, lr=0.001, weight_quantizer=fake
    )
    before, after = ternary_accuracy(weights), ternary_accuracy(tuned)
    assert after > before + 0.02, (before, after)


@pytest.mark.parametrize(
    ("missing", "argv", "message"),
    [
        ("sklearn", ["demo"], "refquant demo needs scikit-learn (pip install 'refquant[demo]')"),
        ("matplotlib", ["demo", "--plot", "out.png"], "--plot needs matplotlib, which is not installed"),
    ],
)
def test_cli_demo_missing_optional_dependency_exits_2(
    missing: str, argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == missing else real(name, *a))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("refquant: error: ")
    assert message in err


def test_plot_accuracy_draws_every_row(
    small_run: tuple[DemoResult, list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # matplotlib is optional: a recording stand-in checks what the demo asks of it
    pyplot = mock.MagicMock()
    fig, ax = mock.MagicMock(), mock.MagicMock()
    pyplot.subplots.return_value = (fig, ax)
    package = mock.MagicMock(pyplot=pyplot)
    monkeypatch.setitem(sys.modules, "matplotlib", package)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", pyplot)
    result = small_run[0]
    plot_accuracy(result, str(tmp_path / "acc.png"))
    package.use.assert_called_once_with("Agg")
    fig.savefig.assert_called_once_with(str(tmp_path / "acc.png"), dpi=120)
    plotted = sum(len(c.args[0]) for c in ax.plot.call_args_list)
    assert plotted == len(result.rows)


def test_all_zero_channel() -> None:
    w = np.zeros((2, 1, 3, 3), np.float32)
    w[1] = 0.5
    t = quantize_weight(w, WeightScheme.TERNARY)  # channel 0: zero codes, any positive scale is exact
    np.testing.assert_array_equal(t.codes[0], np.zeros((1, 3, 3), np.int8))
    np.testing.assert_array_equal(t.dequantized().view(np.uint32), w.view(np.uint32))
    with pytest.raises(SpecError) as info:
        quantize_weight(w, WeightScheme.BINARY)  # +-alpha cannot be 0
    assert info.value.condition == "scale_not_positive"


def test_plot_accuracy_writes_a_png(small_run: tuple[DemoResult, list[str]], tmp_path: Path) -> None:
    """With matplotlib itself (the demo extra installs it): a PNG file, one label per weight width."""
    pytest.importorskip("matplotlib")
    path = tmp_path / "acc.png"
    plot_accuracy(small_run[0], str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
