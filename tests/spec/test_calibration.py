"""refquant.spec.calibration: hand tables, errors, immutability, and partition invariance (Hypothesis)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant.errors import SpecError
from refquant.spec.calibration import (
    HISTOGRAM_MIN_EXPONENT,
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
from refquant.spec.formats import INT8
from refquant.spec.qparams import choose_qparams_from_range

f32 = np.float32


def _bits(r: tuple[float, float]) -> list[int]:
    return np.array(r, np.float32).view(np.uint32).tolist()


# ---------------------------------------------------------------------------------------------------------------
# Min / max and the moving average


def test_minmax_hand_table() -> None:
    # Worked by hand from the definition: the exact minimum and maximum over both batches.
    obs = MinMaxObserver().observe(np.array([0.5, -2.0], f32)).observe(np.array([[3.0]], f32))
    assert obs.range() == (-2.0, 3.0)
    # float64 input is rounded to float32 (half to even): 0.1 -> 0.100000001490116...
    assert MinMaxObserver().observe(np.array([0.1])).range() == (float(f32(0.1)), float(f32(0.1)))
    # -0.0 is recorded as +0.0, so the result does not depend on which zero came first.
    lo, hi = MinMaxObserver().observe(np.array([-0.0], f32)).range()
    assert _bits((lo, hi)) == [0, 0]
    # An empty batch adds nothing.
    assert MinMaxObserver().observe(np.zeros(0, f32)) == MinMaxObserver()


def test_moving_average_hand_table_and_order() -> None:
    # Worked by hand: c = 0.25; [-4, 2] then [0, 1]: min = -4 + 0.25 * (0 - -4) = -3, max = 2 + 0.25 * (1 - 2) = 1.75.
    a, b = np.array([-4.0, 2.0], f32), np.array([0.0, 1.0], f32)
    obs = MovingAverageMinMaxObserver(averaging_constant=0.25)
    assert obs.observe(a).observe(b).range() == (-3.0, 1.75)
    # The other order: min = 0 + 0.25 * (-4 - 0) = -1, max = 1 + 0.25 * (2 - 1) = 1.25.
    assert obs.observe(b).observe(a).range() == (-1.0, 1.25)
    # One batch of all four values: the first batch initialises, so (-4, 2).
    assert obs.observe(np.concatenate([a, b])).range() == (-4.0, 2.0)
    # Empty batches are skipped (PyTorch returns early on numel() == 0).
    assert obs.observe(a).observe(np.zeros(0, f32)).observe(b).range() == (-3.0, 1.75)
    with pytest.raises(SpecError) as err:
        obs.observe(a).merge(obs.observe(b))
    assert err.value.condition == "not_mergeable"


def test_per_channel_hand_table() -> None:
    # Worked by hand: channels along axis 1 of a (2, 3) array: columns [1, 4], [-2, 3], [0.5, -1].
    w = np.array([[1.0, -2.0, 0.5], [4.0, 3.0, -1.0]], f32)
    obs = PerChannelMinMaxObserver(axis=1).observe(w)
    lo, hi = obs.range()
    np.testing.assert_array_equal(lo.view(np.uint32), np.array([1.0, -2.0, -1.0], f32).view(np.uint32))
    np.testing.assert_array_equal(hi.view(np.uint32), np.array([4.0, 3.0, 0.5], f32).view(np.uint32))
    # A second batch widens channel 2 only; axis -1 means the last axis of each batch.
    obs2 = PerChannelMinMaxObserver(axis=-1).observe(w).observe(np.array([[0.0, 0.0, 9.0]], f32))
    np.testing.assert_array_equal(obs2.range()[1], np.array([4.0, 3.0, 9.0], f32))
    assert obs2 == PerChannelMinMaxObserver(axis=-1).observe(np.array([[0.0, 0.0, 9.0]], f32)).merge(
        PerChannelMinMaxObserver(axis=-1).observe(w)
    )
    for bad, condition in [
        (np.zeros((2, 4), f32), "shape_mismatch"),
        (np.float32(1.0), "axis_out_of_range"),
    ]:
        with pytest.raises(SpecError) as err:
            obs.observe(bad)
        assert err.value.condition == condition
    with pytest.raises(SpecError) as err:
        PerChannelMinMaxObserver(axis=3).observe(w)
    assert err.value.condition == "axis_out_of_range"
    with pytest.raises(SpecError) as err:
        obs.merge(PerChannelMinMaxObserver(axis=0).observe(w))
    assert err.value.condition == "observer_mismatch"
    with pytest.raises(SpecError) as err:
        PerChannelMinMaxObserver().range()
    assert err.value.condition == "no_data"


# ---------------------------------------------------------------------------------------------------------------
# The histogram


def test_histogram_hand_table_and_growth() -> None:
    # Worked by hand: bins = 4, max|x| = 3: e = 0 (3 < 4 * 2**0 and 3 >= 4 * 2**-1); |x| -> floor(|x|).
    h = HistogramObserver(bins=4).observe(np.array([0.25, -1.5, 3.0], f32))
    assert h.exponent == 0
    assert h.bin_width == 1.0
    np.testing.assert_array_equal(h.pos_counts, [1, 0, 0, 1])
    np.testing.assert_array_equal(h.neg_counts, [0, 1, 0, 0])
    np.testing.assert_array_equal(h.counts(), [1, 1, 0, 1])
    assert h.range() == (-1.5, 3.0)
    assert h.total == 3
    # 5.0 needs e = 1 (5 < 8): old bins k -> k >> 1, 5 -> floor(5 / 2) = 2.
    h2 = h.observe(np.array([5.0], f32))
    assert h2.exponent == 1
    np.testing.assert_array_equal(h2.pos_counts, [1, 1, 1, 0])
    np.testing.assert_array_equal(h2.neg_counts, [1, 0, 0, 0])
    counts, edges = h2.signed_counts()
    np.testing.assert_array_equal(counts, [0, 0, 0, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(edges, [-8.0, -6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0, 8.0])
    # A value equal to bins * 2**e does not fit: 4.0 with 4 bins gives e = 1 and bin 2.
    h3 = HistogramObserver(bins=4).observe(np.array([4.0], f32))
    assert h3.exponent == 1
    np.testing.assert_array_equal(h3.counts(), [0, 0, 1, 0])
    # All zeros: e = HISTOGRAM_MIN_EXPONENT, everything in bin 0.
    hz = HistogramObserver(bins=4).observe(np.zeros(5, f32))
    assert hz.exponent == HISTOGRAM_MIN_EXPONENT == -148
    np.testing.assert_array_equal(hz.counts(), [5, 0, 0, 0])
    # The smallest float32 subnormal 2**-149 lands in bin 0 at e = -148.
    hs = HistogramObserver(bins=4).observe(np.array([2.0**-149, 2.0**-147], f32))
    assert hs.exponent == HISTOGRAM_MIN_EXPONENT
    np.testing.assert_array_equal(hs.counts(), [1, 0, 1, 0])


def test_histogram_negative_bin_is_closed_at_its_upper_edge() -> None:
    # Worked by hand: x = -1.0 with w = 1 has |x| = 1 -> negative bin 1, the interval (-2, -1].
    h = HistogramObserver(bins=4).observe(np.array([-1.0, 3.0], f32))
    counts, edges = h.signed_counts()
    np.testing.assert_array_equal(counts, [0, 0, 1, 0, 0, 0, 0, 1])
    assert (edges[2], edges[3]) == (-2.0, -1.0)


def test_state_is_immutable() -> None:
    h = HistogramObserver(bins=8).observe(np.array([1.0, -2.0], f32))
    assert h.pos_counts is not None
    assert not h.pos_counts.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        h.pos_counts[0] = 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.bins = 3  # type: ignore[misc]
    m = MinMaxObserver()
    m2 = m.observe(np.array([1.0], f32))
    assert m.min_val is None
    assert m2.min_val == 1.0


# ---------------------------------------------------------------------------------------------------------------
# Percentile, MSE and entropy


def test_percentile_hand_table() -> None:
    # Worked by hand: x = 1..100, bins = 128, e = 0 (100 < 128, 100 >= 64): value k sits alone in bin k.
    # p = 90: the first bin whose cumulative count reaches 90 is bin 90; upper edge 91, lower edge 90.
    x = np.arange(1, 101, dtype=f32)
    assert PercentileObserver(percentile=90.0, bins=128).observe(x).range() == (-91.0, 91.0)
    assert PercentileObserver(percentile=90.0, bins=128, edge=BinEdge.LOWER).observe(x).range() == (-90.0, 90.0)
    # p = 100: the bin of the largest value; the upper edge 101 is clipped to max|x| = 100.
    assert PercentileObserver(percentile=100.0, bins=128).observe(x).range() == (-100.0, 100.0)
    # p = 0.5: 0.5 / 100 * 100 = 0.5, so the first non-empty bin (bin 1) crosses.
    assert PercentileObserver(percentile=0.5, bins=128).observe(x).range() == (-2.0, 2.0)
    # The comparison is exact: p = 99.99 of 10000 values needs 9999 of them.
    y = np.arange(1, 10001, dtype=f32)
    h = PercentileObserver(percentile=99.99, bins=16384, edge=BinEdge.LOWER).observe(y)
    assert h.range() == (-9999.0, 9999.0)


def test_entropy_hand_table_tensorrt_vs_pytorch_quantization() -> None:
    # Worked by hand. bins = 4, levels = 2, x = [0, 0.5, 1, 3]: e = 0, counts [2, 1, 0, 1].
    # TENSORRT, i in [2, 4):
    #   i = 2: P = [2, 1 + 0 + 1] = [2, 2], Q = [2, 1] (one bin per level): KL = 0.5 ln(1.125) > 0
    #   i = 3: P = [2, 1, 1]; levels (2j)//3 = [0, 0, 1]; level 1 holds only the empty bin 2, so Q[2] = 0 < P[2]: inf
    #   first argmin i = 2: amax = 2.5 * w.
    # PYTORCH_QUANTIZATION: bins[0] = bins[1] gives [1, 1, 0, 1]; i in [2, 4]:
    #   i = 2: P = [1, 2], Q = [1, 1]: KL > 0;  i = 3: inf as above;
    #   i = 4: levels [0, 0, 1, 1], Q = [1, 1, 0, 1] = P: KL = 0; amax = bin edge 4 * w.
    x = np.array([0.0, 0.5, 1.0, 3.0], f32)
    trt = EntropyObserver(variant=EntropyVariant.TENSORRT, bins=4, levels=2).observe(x)
    np.testing.assert_array_equal(trt.histogram.counts() if trt.histogram else [], [2, 1, 0, 1])
    assert trt.range() == (-2.5, 2.5)
    pq = EntropyObserver(variant=EntropyVariant.PYTORCH_QUANTIZATION, bins=4, levels=2).observe(x)
    assert pq.range() == (-4.0, 4.0)


@settings(max_examples=25)
@given(st.lists(st.floats(-1e3, 1e3, width=32), min_size=1, max_size=300))
def test_onnxruntime_defaults_degenerate_to_min_max(values: list[float]) -> None:
    # onnxruntime's Entropy defaults: num_bins = 128 (bins = 64 per side here), num_quantized_bins = 128: the loop
    # has the single candidate i = 64, the whole histogram, and the clip returns the observed min and max.
    x = np.array(values, f32)
    ent = EntropyObserver(variant=EntropyVariant.ONNXRUNTIME, bins=64, quantized_bins=128).observe(x)
    assert ent.range() == MinMaxObserver().observe(x).range()


def test_mse_on_clean_data_and_with_an_outlier() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal(20000).astype(f32)
    lo, hi = MseObserver(bins=2048).observe(x).range()
    # Clipped to the data: never wider than the observed range, and both ends are float32 values.
    mn, mx = MinMaxObserver().observe(x).range()
    assert mn <= lo < 0.0 < hi <= mx
    assert float(f32(lo)) == lo
    assert float(f32(hi)) == hi


def test_non_linear_param_search_hand_table() -> None:
    # Worked by hand from the definition (PyTorch's search), counts [0, 5, 0], w = 1, lo_edge = -1.5, N = 5,
    # cumulative [0, 5, 5].  Step 1: l = first bin with cum >= 5e-5 -> 1; r = last bin with cum <= 4.99995 -> 0;
    # l - start = 1 is not > end - r = 2, so the end bin moves to 0 (first error, accepted).  From then on
    # l = r = 0 and nothing moves until alpha >= beta: the range is bin 0 alone, [-1.5, -0.5], which holds no value.
    # PyTorch does the same on this histogram (tests/spec/test_peers_calibration.py); MseObserver trims empty
    # edge bins first and clips to the data.
    assert non_linear_param_search(np.array([0, 5, 0]), -1.5, 1.0) == (-1.5, -0.5)
    # One bin: nothing can move; the range is that bin.
    assert non_linear_param_search(np.array([5]), -0.5, 1.0) == (-0.5, 0.5)
    assert MseObserver(bins=4).observe(np.full(3, 0.75, f32)).range() == (0.75, 0.75)


def test_ranges_feed_choose_qparams() -> None:
    x = np.linspace(-1.0, 2.0, 301).astype(f32)
    for obs in (MinMaxObserver(), PercentileObserver(bins=64), MseObserver(bins=64), EntropyObserver(bins=512)):
        lo, hi = obs.observe(x).range()
        params = choose_qparams_from_range(
            lo, hi, INT8, symmetric=isinstance(obs, (PercentileObserver, EntropyObserver))
        )
        assert float(params.scale) > 0.0


# ---------------------------------------------------------------------------------------------------------------
# Errors


ALL_FACTORIES: list[Any] = [
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    lambda: HistogramObserver(bins=8),
    lambda: PercentileObserver(bins=8),
    lambda: MseObserver(bins=8),
    lambda: EntropyObserver(bins=8, levels=4),
    lambda: EntropyObserver(variant=EntropyVariant.ONNXRUNTIME, bins=8, quantized_bins=4),
]


@pytest.mark.parametrize("factory", ALL_FACTORIES)
def test_errors_of_every_observer(factory: Any) -> None:
    obs = factory()
    cases: list[tuple[Any, str]] = [
        (np.array([1.0, np.nan], f32), "nan_input"),
        (np.array([np.inf], f32), "range_not_finite"),
        (np.array([-np.inf], np.float16), "range_not_finite"),
        (np.array([1e300]), "range_not_finite"),  # float64 beyond float32's range
        (np.array([1, 2], np.int32), "unsupported_dtype"),
    ]
    for x, condition in cases:
        with pytest.raises(SpecError) as err:
            obs.observe(x)
        assert err.value.condition == condition
    with pytest.raises(SpecError) as err:
        obs.range()
    assert err.value.condition == "no_data"
    with pytest.raises(SpecError) as err:
        obs.merge(MinMaxObserver() if not isinstance(obs, MinMaxObserver) else HistogramObserver(bins=8))
    assert err.value.condition in ("observer_mismatch", "not_mergeable")


def test_merge_needs_the_same_configuration() -> None:
    pairs: list[tuple[Any, Any]] = [
        (HistogramObserver(bins=8), HistogramObserver(bins=16)),
        (PercentileObserver(percentile=99.0), PercentileObserver(percentile=99.9)),
        (MseObserver(dst_bins=256), MseObserver(dst_bins=16)),
        (EntropyObserver(), EntropyObserver(variant=EntropyVariant.PYTORCH_QUANTIZATION)),
    ]
    for a, b in pairs:
        with pytest.raises(SpecError) as err:
            a.merge(b)
        assert err.value.condition == "observer_mismatch"


@pytest.mark.parametrize(
    "make",
    [
        lambda: HistogramObserver(bins=0),
        lambda: HistogramObserver(bins=True),
        lambda: MovingAverageMinMaxObserver(averaging_constant=0.0),
        lambda: MovingAverageMinMaxObserver(averaging_constant=1.5),
        lambda: PercentileObserver(percentile=0.0),
        lambda: PercentileObserver(percentile=100.5),
        lambda: PercentileObserver(edge="upper"),
        lambda: MseObserver(dst_bins=0),
        lambda: EntropyObserver(variant="tensorrt"),
        lambda: EntropyObserver(levels=100),
        lambda: EntropyObserver(bins=128, levels=128),
        lambda: EntropyObserver(variant=EntropyVariant.ONNXRUNTIME, bins=32, quantized_bins=128),
        lambda: EntropyObserver(variant=EntropyVariant.ONNXRUNTIME, bins=8192),
        lambda: PercentileObserver(bins=8, histogram=HistogramObserver(bins=16)),
        lambda: EntropyObserver(variant=EntropyVariant.PYTORCH_QUANTIZATION, bins=1, levels=1),
        # directly constructed states that the definition cannot produce
        lambda: MinMaxObserver(min_val=1.0),
        lambda: MinMaxObserver(min_val=2.0, max_val=1.0),
        lambda: MinMaxObserver(min_val=0.1, max_val=1.0),  # 0.1 is no float32
        lambda: MovingAverageMinMaxObserver(min_val=float("inf"), max_val=float("inf")),
        lambda: HistogramObserver(bins=4, exponent=0),
        lambda: HistogramObserver(
            bins=4,
            exponent=-149,
            pos_counts=np.zeros(4, np.int64),
            neg_counts=np.zeros(4, np.int64),
            min_val=0.0,
            max_val=0.0,
        ),
        lambda: HistogramObserver(
            bins=4,
            exponent=0,
            pos_counts=np.zeros(3, np.int64),
            neg_counts=np.zeros(4, np.int64),
            min_val=0.0,
            max_val=0.0,
        ),
        lambda: HistogramObserver(
            bins=2, exponent=0, pos_counts=np.array([-1, 0]), neg_counts=np.zeros(2, np.int64), min_val=0.0, max_val=0.0
        ),
        lambda: PerChannelMinMaxObserver(min_vals=np.zeros(2, f32)),
        lambda: PerChannelMinMaxObserver(min_vals=np.ones(2, f32), max_vals=np.zeros(2, f32)),
    ],
)
def test_invalid_options(make: Any) -> None:
    with pytest.raises(SpecError) as err:
        make()
    assert err.value.condition == "invalid_option"


@pytest.mark.parametrize(
    ("counts", "lo_edge", "width"),
    [
        (np.array([1.0, 2.0]), 0.0, 1.0),
        (np.array([[1, 2]]), 0.0, 1.0),
        (np.zeros(0, np.int64), 0.0, 1.0),
        (np.array([1, -1]), 0.0, 1.0),
        (np.array([1, 1]), float("nan"), 1.0),
        (np.array([1, 1]), 0.0, 0.0),
    ],
)
def test_search_rejects_invalid_histograms(counts: np.ndarray, lo_edge: float, width: float) -> None:
    with pytest.raises(SpecError) as err:
        non_linear_param_search(counts, lo_edge, width)
    assert err.value.condition == "invalid_histogram"


def test_derived_bound_beyond_float32_raises() -> None:
    # max|x| near FLT_MAX: e = 117 with 2048 bins; pytorch-quantization's candidate i = bins returns the edge
    # 2048 * 2**117 = 2**128, which is no float32.
    x = np.array([3.0e38] * 10, f32)
    obs = EntropyObserver(variant=EntropyVariant.PYTORCH_QUANTIZATION, bins=256).observe(x)
    with pytest.raises(SpecError) as err:
        obs.range()
    assert err.value.condition == "range_not_finite"


# ---------------------------------------------------------------------------------------------------------------
# Partition invariance: any split, any order, any merge tree, bit for bit


def _tree_merge(observers: list[Any], shape: list[int]) -> Any:
    """Merge by repeatedly combining the pair at position ``shape[k] % (len - 1)``: any binary tree."""
    items = list(observers)
    k = 0
    while len(items) > 1:
        j = shape[k % len(shape)] % (len(items) - 1) if shape else 0
        items[j : j + 2] = [items[j].merge(items[j + 1])]
        k += 1
    return items[0]


finite32 = st.floats(allow_nan=False, allow_infinity=False, width=32)
values32 = st.one_of(finite32, st.sampled_from([0.0, -0.0, 2.0**-149, -(2.0**-149), 1.0, -1.0, 3.0e38]))


@st.composite
def partitions(draw: st.DrawFn) -> tuple[np.ndarray, list[np.ndarray], list[int]]:
    data = np.array(draw(st.lists(values32, min_size=1, max_size=60)), f32)
    perm = np.array(draw(st.permutations(range(data.size))), dtype=np.int64)
    shuffled = data[perm]
    cuts = sorted(draw(st.lists(st.integers(0, data.size), max_size=6)))
    chunks = np.split(shuffled, cuts)
    shape = draw(st.lists(st.integers(0, 100), max_size=8))
    return data, chunks, shape


def _range_or_condition(obs: Any) -> list[int] | str:
    try:
        return _bits(obs.range())
    except SpecError as err:  # a bound beyond float32 (data near FLT_MAX): the same error whatever the split
        return err.condition


def _invariant(factory: Any, data: np.ndarray, chunks: list[np.ndarray], shape: list[int]) -> None:
    whole = factory().observe(data)
    sequential = factory()
    for c in chunks:
        sequential = sequential.observe(c)
    tree = _tree_merge([factory().observe(c) for c in chunks], shape)
    assert whole == sequential == tree
    assert _range_or_condition(whole) == _range_or_condition(sequential) == _range_or_condition(tree)


@settings(max_examples=60)
@given(partitions())
def test_partition_invariance_minmax_and_histogram(p: tuple[np.ndarray, list[np.ndarray], list[int]]) -> None:
    data, chunks, shape = p
    _invariant(MinMaxObserver, data, chunks, shape)
    _invariant(lambda: HistogramObserver(bins=8), data, chunks, shape)
    _invariant(lambda: HistogramObserver(bins=2048), data, chunks, shape)


@settings(max_examples=40)
@given(partitions(), st.integers(1, 3))
def test_partition_invariance_per_channel(p: tuple[np.ndarray, list[np.ndarray], list[int]], channels: int) -> None:
    # Channels along axis 1, batches split along axis 0 (rows): the same min/max per channel, bit for bit.
    data, _, shape = p
    rows = np.resize(data, (max(1, data.size // channels) * channels,)).reshape(-1, channels)
    chunks = np.array_split(rows[::-1], 1 + len(shape) % 4, axis=0)
    whole = PerChannelMinMaxObserver(axis=1).observe(rows)
    tree = _tree_merge([PerChannelMinMaxObserver(axis=-1).observe(c) for c in chunks], shape)
    assert whole.range()[0].tobytes() == tree.range()[0].tobytes()
    assert whole.range()[1].tobytes() == tree.range()[1].tobytes()


@settings(max_examples=15)  # the MSE search can run its 10**5 steps on tiny data: keep this moderate
@given(partitions())
def test_partition_invariance_of_derived_ranges(p: tuple[np.ndarray, list[np.ndarray], list[int]]) -> None:
    data, chunks, shape = p
    _invariant(lambda: PercentileObserver(percentile=90.0, bins=16), data, chunks, shape)
    _invariant(lambda: MseObserver(bins=16, dst_bins=8), data, chunks, shape)
    for variant in EntropyVariant:
        _invariant(
            lambda v=variant: EntropyObserver(variant=v, bins=16, levels=4, quantized_bins=4), data, chunks, shape
        )


@settings(max_examples=60)
@given(st.lists(values32, min_size=1, max_size=80), st.sampled_from([1, 3, 8, 2048]))
def test_histogram_equals_direct_count_at_final_exponent(values: list[float], bins: int) -> None:
    # The definition, computed directly: e the smallest >= HISTOGRAM_MIN_EXPONENT with max|x| < bins * 2**e, bin floor(|x| / 2**e).
    x = np.array(values, f32) + f32(0.0)
    h = HistogramObserver(bins=bins)
    for v in x:
        h = h.observe(np.array([v], f32))
    amax = float(np.max(np.abs(x)))
    e = HISTOGRAM_MIN_EXPONENT
    while amax >= bins * 2.0**e:
        e += 1
    assert h.exponent == e
    assert e == HISTOGRAM_MIN_EXPONENT or amax >= bins * 2.0 ** (e - 1)
    idx = [int(abs(float(v)) // 2.0**e) for v in x]
    pos = np.bincount([i for i, v in zip(idx, x, strict=True) if v >= 0], minlength=bins)
    neg = np.bincount([i for i, v in zip(idx, x, strict=True) if v < 0], minlength=bins)
    np.testing.assert_array_equal(h.pos_counts, pos)
    np.testing.assert_array_equal(h.neg_counts, neg)
    assert h.range() == (float(np.min(x)), float(np.max(x)))


def test_histogram_shorthands_equal_the_calibrators() -> None:
    x = (np.random.default_rng(9).standard_normal(3000) * 2).astype(f32)
    h = HistogramObserver(bins=256).observe(x)
    assert h.percentile_range(99.0) == PercentileObserver(99.0, bins=256).observe(x).range()
    assert (
        h.percentile_range(99.0, edge=BinEdge.LOWER) == PercentileObserver(99.0, 256, BinEdge.LOWER).observe(x).range()
    )
    assert h.mse_range(dst_bins=16) == MseObserver(bins=256, dst_bins=16).observe(x).range()
    for variant in EntropyVariant:
        expected = EntropyObserver(variant, bins=256, levels=64, quantized_bins=64).observe(x).range()
        assert h.entropy_range(variant, levels=64, quantized_bins=64) == expected
