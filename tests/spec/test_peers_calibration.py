"""Peer checks of refquant.spec.calibration against torch 2.13 observers and onnxruntime's calibrate.py.

- MinMaxObserver / MovingAverageMinMaxObserver: the same batches give the same float32 ranges, bit for bit.
- ``non_linear_param_search`` against ``torch.ao.quantization.HistogramObserver._non_linear_param_search`` run on
  the same histogram (loaded into the torch observer's state): the same range.
- PyTorch's HistogramObserver itself merges batches by upsampling: its histogram depends on the batch order
  (shown here), which refquant's histogram does not (docs/spec/calibration.md).
- onnxruntime ``HistogramCollector.get_entropy_threshold`` and ``compute_percentile`` called on refquant's
  histogram: the same thresholds (after onnxruntime's clip to the signed min/max for the percentile).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pytest

from refquant.errors import SpecError
from refquant.spec.calibration import (
    BinEdge,
    EntropyObserver,
    EntropyVariant,
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MseObserver,
    PercentileObserver,
    PerChannelMinMaxObserver,
    non_linear_param_search,
)

f32 = np.float32


def _batches(seed: int, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        size = int(rng.integers(1, 400))
        scale = float(rng.uniform(0.01, 20.0))
        shift = float(rng.uniform(-5.0, 5.0))
        out.append((rng.standard_normal(size) * scale + shift).astype(f32))
    return out


# ---------------------------------------------------------------------------------------------------------------
# torch


@pytest.fixture(scope="module")
def torch_observer() -> Any:
    torch = pytest.importorskip("torch")
    return torch, pytest.importorskip("torch.ao.quantization.observer")


@pytest.mark.parametrize("seed", range(4))
def test_minmax_matches_torch(torch_observer: Any, seed: int) -> None:
    torch, tobs = torch_observer
    theirs = tobs.MinMaxObserver()
    ours = MinMaxObserver()
    for b in _batches(seed, 12):
        theirs(torch.from_numpy(b))
        ours = ours.observe(b)
        expected = np.array([theirs.min_val.item(), theirs.max_val.item()], f32)
        np.testing.assert_array_equal(np.array(ours.range(), f32).view(np.uint32), expected.view(np.uint32))


@pytest.mark.parametrize(("seed", "axis"), [(0, 0), (1, 1), (2, -1)])
def test_per_channel_minmax_matches_torch(torch_observer: Any, seed: int, axis: int) -> None:
    torch, tobs = torch_observer
    rng = np.random.default_rng(50 + seed)
    theirs = tobs.PerChannelMinMaxObserver(ch_axis=axis)
    ours = PerChannelMinMaxObserver(axis=axis)
    for _ in range(8):
        b = (rng.standard_normal((5, 6, 3)) * rng.uniform(0.1, 9.0)).astype(f32)
        theirs(torch.from_numpy(b))
        ours = ours.observe(b)
        lo, hi = ours.range()
        np.testing.assert_array_equal(lo.view(np.uint32), theirs.min_val.numpy().view(np.uint32))
        np.testing.assert_array_equal(hi.view(np.uint32), theirs.max_val.numpy().view(np.uint32))


@pytest.mark.parametrize(("seed", "constant"), [(0, 0.01), (1, 0.01), (2, 0.3), (3, 0.9)])
def test_moving_average_matches_torch_sequence(torch_observer: Any, seed: int, constant: float) -> None:
    torch, tobs = torch_observer
    theirs = tobs.MovingAverageMinMaxObserver(averaging_constant=constant)
    ours = MovingAverageMinMaxObserver(averaging_constant=constant)
    for b in _batches(seed, 40):  # every intermediate state, in order
        theirs(torch.from_numpy(b))
        ours = ours.observe(b)
        expected = np.array([theirs.min_val.item(), theirs.max_val.item()], f32)
        np.testing.assert_array_equal(np.array(ours.range(), f32).view(np.uint32), expected.view(np.uint32))


def _torch_search(tobs: Any, torch: Any, counts: np.ndarray, lo_edge: float, width: float) -> tuple[float, float]:
    o = tobs.HistogramObserver(bins=int(counts.size))
    o.histogram = torch.tensor(counts, dtype=torch.float32)
    o.min_val = torch.tensor(lo_edge, dtype=torch.float32)
    o.max_val = torch.tensor(lo_edge + width * counts.size, dtype=torch.float32)
    a, b = o._non_linear_param_search()
    return float(a), float(b)


@pytest.mark.parametrize("seed", range(30))
def test_l2_search_matches_torch_on_the_same_histogram(torch_observer: Any, seed: int) -> None:
    torch, tobs = torch_observer
    rng = np.random.default_rng(100 + seed)
    parts = [rng.standard_normal(int(rng.integers(10, 5000))) * rng.uniform(0.1, 3) for _ in range(2)]
    parts.append(rng.uniform(-50, 50, int(rng.integers(0, 5))))
    data = np.concatenate(parts).astype(f32)
    obs = MseObserver(bins=int(rng.choice([64, 256, 2048]))).observe(data)
    counts, lo_edge, width = obs.trimmed_histogram()
    assert non_linear_param_search(counts, lo_edge, width) == _torch_search(tobs, torch, counts, lo_edge, width)


def test_l2_search_quirks_match_torch(torch_observer: Any) -> None:
    # Hand-checked quirks of the search (tests/spec/test_calibration.py): an interior single bin ends on an
    # empty bin, and [1, 0, 0, 1] cuts off the top value.
    torch, tobs = torch_observer
    for counts, lo in [([0, 5, 0], -1.5), ([5], -0.5), ([1, 0, 0, 1], -2.0), ([3, 1, 0, 0, 0, 2], -3.0)]:
        c = np.array(counts)
        assert non_linear_param_search(c, lo, 1.0) == _torch_search(tobs, torch, c, lo, 1.0)
    assert non_linear_param_search(np.array([1, 0, 0, 1]), -2.0, 1.0) == (-2.0, 1.0)


def test_torch_infinities_as_documented(torch_observer: Any) -> None:
    # refquant raises range_not_finite; torch 2.13 records inf in MinMaxObserver (scale inf) and drops it with a
    # warning in HistogramObserver.
    torch, tobs = torch_observer
    x = torch.tensor([1.0, float("inf"), -2.0])
    mm = tobs.MinMaxObserver()
    mm(x)
    scale, _ = mm.calculate_qparams()
    assert float(mm.max_val) == float("inf")
    assert float(scale[0]) == float("inf")
    hist = tobs.HistogramObserver(bins=8)
    with pytest.warns(UserWarning, match="inf detected in input tensor"):
        hist(x)
    assert (float(hist.min_val), float(hist.max_val), float(hist.histogram.sum())) == (-2.0, 1.0, 2.0)
    with pytest.raises(SpecError) as err:
        MinMaxObserver().observe(x.numpy())
    assert err.value.condition == "range_not_finite"


def test_torch_histogram_observer_depends_on_batch_order(torch_observer: Any) -> None:
    # Divergence: PyTorch's HistogramObserver re-bins by upsampling x128 when the range grows, so two orders of the
    # same batches give different histograms; refquant's histogram is the same for every order and split.
    torch, tobs = torch_observer
    rng = np.random.default_rng(3)
    a = rng.standard_normal(1000).astype(f32)
    b = (rng.standard_normal(1000) * 4).astype(f32)

    def run(batches: list[np.ndarray]) -> np.ndarray:
        o = tobs.HistogramObserver(bins=64)
        for x in batches:
            o(torch.from_numpy(x))
        return np.asarray(o.histogram.numpy(), dtype=np.float64)

    assert not np.array_equal(run([a, b]), run([b, a]))
    ab = HistogramObserver(bins=64).observe(a).observe(b)
    ba = HistogramObserver(bins=64).observe(b).observe(a)
    assert ab == ba
    assert ab == HistogramObserver(bins=64).observe(np.concatenate([b, a]))


# ---------------------------------------------------------------------------------------------------------------
# onnxruntime


@pytest.fixture(scope="module")
def ort_collector() -> Any:
    pytest.importorskip("onnxruntime")
    calibrate = pytest.importorskip("onnxruntime.quantization.calibrate")
    return calibrate.HistogramCollector


def _quiet(fn: Any, *args: Any) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):  # onnxruntime prints progress lines
        return fn(*args)


@pytest.mark.parametrize("seed", range(12))
def test_entropy_onnxruntime_matches_get_entropy_threshold(ort_collector: Any, seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    data = np.concatenate(
        [
            rng.standard_normal(int(rng.integers(10, 5000))) * rng.uniform(0.1, 3) + rng.uniform(-1, 1),
            rng.uniform(-20, 20, int(rng.integers(0, 5))),
        ]
    ).astype(f32)
    bins = int(rng.choice([64, 128, 512]))
    quantized = int(rng.choice([16, 128]))
    obs = EntropyObserver(variant=EntropyVariant.ONNXRUNTIME, bins=bins, quantized_bins=quantized).observe(data)
    assert obs.histogram is not None
    counts, edges = obs.histogram.signed_counts()
    lo, hi = obs.histogram.range()
    collector = ort_collector("entropy", False, 2 * bins, quantized, 99.99, "same")
    state = (counts, edges.astype(f32), f32(lo), f32(hi), f32(obs.histogram.amax))
    theirs = _quiet(collector.get_entropy_threshold, state, quantized)
    assert obs.range() == (float(theirs[0]), float(theirs[1]))


def test_entropy_onnxruntime_defaults_degenerate_to_min_max(ort_collector: Any) -> None:
    # onnxruntime's own collector with its Entropy defaults (num_bins = 128, num_quantized_bins = 128) on its own
    # histogram: the threshold is the observed (min, max); refquant's ONNXRUNTIME variant with bins = 64 agrees.
    data = (np.random.default_rng(5).standard_normal(3000) * 2).astype(f32)
    collector = ort_collector("entropy", False, 128, 128, 99.99, "same")
    _quiet(collector.collect, {"x": data})
    theirs = _quiet(collector.compute_collection_result)["x"]
    expected = (float(data.min()), float(data.max()))
    assert (float(theirs[0]), float(theirs[1])) == expected
    ours = EntropyObserver(variant=EntropyVariant.ONNXRUNTIME, bins=64, quantized_bins=128).observe(data)
    assert ours.range() == expected


@pytest.mark.parametrize("seed", range(12))
def test_percentile_lower_edge_matches_onnxruntime(ort_collector: Any, seed: int) -> None:
    rng = np.random.default_rng(300 + seed)
    data = np.concatenate(
        [rng.standard_normal(int(rng.integers(10, 5000))) * rng.uniform(0.1, 3), rng.uniform(-20, 20, 3)]
    ).astype(f32)
    bins = int(rng.choice([64, 128, 2048]))
    pct = float(rng.choice([99.0, 99.9, 99.99]))
    obs = PercentileObserver(percentile=pct, bins=bins, edge=BinEdge.LOWER).observe(data)
    hist = obs.histogram
    assert hist is not None
    lo, hi = hist.range()
    collector = ort_collector("percentile", True, bins, 128, pct, "same")
    collector.histogram_dict = {"x": (hist.counts(), hist.edges().astype(f32), f32(lo), f32(hi))}
    theirs = _quiet(collector.compute_percentile)["x"]
    # onnxruntime clips (-edge, edge) to the signed (min, max); refquant keeps it symmetric (clips to max|x|).
    amax = obs.range()[1]
    assert (float(theirs[0]), float(theirs[1])) == (max(-amax, lo), min(amax, hi))
