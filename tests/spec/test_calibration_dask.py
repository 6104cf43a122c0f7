"""Calibration on a map-reduce engine: a dask array, one observer per chunk, reduced with ``merge``.

The result is identical, bit for bit, to observing the whole array in memory, whatever the chunking and the
shape of the reduction tree (the observers' partition invariance, docs/spec/calibration.md).  Local schedulers
only (synchronous and threads); skipped when dask is not installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from refquant.spec.calibration import (
    EntropyObserver,
    EntropyVariant,
    HistogramObserver,
    MinMaxObserver,
    MseObserver,
    PercentileObserver,
)

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

FACTORIES: list[Any] = [
    MinMaxObserver,
    lambda: HistogramObserver(bins=2048),
    lambda: PercentileObserver(percentile=99.9, bins=2048),
    lambda: MseObserver(bins=512),
    lambda: EntropyObserver(variant=EntropyVariant.TENSORRT, bins=512),
    lambda: EntropyObserver(variant=EntropyVariant.PYTORCH_QUANTIZATION, bins=512),
    lambda: EntropyObserver(variant=EntropyVariant.ONNXRUNTIME, bins=256),
]


def _data() -> np.ndarray:
    rng = np.random.default_rng(11)
    x = rng.standard_normal((64, 300)) * np.linspace(0.1, 4.0, 300)
    x[3, 7] = 55.0  # an outlier in one chunk only
    return x.astype(np.float32)


def _tree(items: list[Any], fanout: int) -> Any:
    """A delayed reduction tree of ``merge`` with the given fan-in."""
    while len(items) > 1:
        groups = [items[i : i + fanout] for i in range(0, len(items), fanout)]
        items = [dask.delayed(_merge_all)(*g) for g in groups]
    return items[0]


def _merge_all(*observers: Any) -> Any:
    out = observers[0]
    for o in observers[1:]:
        out = out.merge(o)
    return out


@pytest.mark.parametrize("factory", FACTORIES)
@pytest.mark.parametrize(("chunks", "fanout", "scheduler"), [((16, 100), 2, "sync"), ((7, 45), 3, "threads")])
def test_dask_delayed_tree_equals_in_memory(factory: Any, chunks: tuple[int, int], fanout: int, scheduler: str) -> None:
    x = _data()
    arr = da.from_array(x, chunks=chunks)
    blocks = list(arr.to_delayed().ravel())
    partial = [dask.delayed(lambda b, f=factory: f().observe(b))(b) for b in blocks]
    merged = _tree(partial, fanout).compute(scheduler=scheduler)
    in_memory = factory().observe(x)
    assert merged == in_memory
    ours = np.array(merged.range(), np.float32).view(np.uint32)
    np.testing.assert_array_equal(ours, np.array(in_memory.range(), np.float32).view(np.uint32))


def test_dask_array_reduction_of_histogram() -> None:
    # dask.array.reduction: chunk -> observer (kept in a 0-d object array), combine/aggregate -> merge.
    x = _data()
    arr = da.from_array(x, chunks=(10, 60))

    def chunk(block: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
        out = np.empty((1, 1), dtype=object)
        out[0, 0] = HistogramObserver(bins=1024).observe(block)
        return out

    def combine(parts: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
        out = np.empty((1, 1), dtype=object)
        out[0, 0] = _merge_all(*np.asarray(parts, dtype=object).ravel().tolist())
        return out

    def aggregate(parts: np.ndarray, axis: Any, keepdims: bool) -> Any:
        return combine(parts, axis, keepdims)[0, 0]

    result = da.reduction(
        arr,
        chunk,
        aggregate,
        combine=combine,
        axis=(0, 1),
        dtype=object,
        concatenate=False,
        split_every=4,
        meta=np.empty((0, 0), dtype=object),
    ).compute(scheduler="sync")
    obs = result.item() if isinstance(result, np.ndarray) else result
    assert obs == HistogramObserver(bins=1024).observe(x)
