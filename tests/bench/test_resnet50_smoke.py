"""Smoke test of bench/resnet50.py: the layer table, and one small layer checked end to end (exactness only)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def resnet50() -> ModuleType:
    saved = dict(os.environ)  # the script fixes thread counts in os.environ when imported
    spec = importlib.util.spec_from_file_location("bench_resnet50", BENCH / "resnet50.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return module


def test_layer_table(resnet50: ModuleType) -> None:
    layers = resnet50.resnet50_layers()
    assert len(layers) == 53
    assert len({la.name for la in layers}) == 53
    kinds = [(la.k, la.stride) for la in layers]
    # worked by hand from torchvision's resnet50 (v1.5): the 7x7/2 stem, 16 bottlenecks (3 + 4 + 6 + 3) of
    # 1x1, 3x3 (stride 2 in the first block of stages 2-4) and 1x1, and 4 downsample 1x1 convs (stride 1, 2, 2, 2)
    assert kinds.count((7, 2)) == 1
    assert kinds.count((3, 1)) == 13
    assert kinds.count((3, 2)) == 3
    assert kinds.count((1, 1)) == 33
    assert kinds.count((1, 2)) == 3
    assert (layers[0].oh, layers[0].ow, layers[0].o) == (112, 112, 64)
    assert (layers[-1].oh, layers[-1].ow, layers[-1].o) == (7, 7, 2048)
    # torchvision lists 25,557,032 parameters for resnet50; without the fc layer (2048 * 1000 + 1000) and the
    # two batch-norm parameters of each of the 26,560 conv output channels that leaves 23,454,912 conv weights
    assert sum(la.o for la in layers) == 26_560
    assert sum(la.params for la in layers) == 25_557_032 - (2048 * 1000 + 1000) - 2 * 26_560
    sizes = {name: nbytes for name, nbytes, _ in resnet50.weight_sizes(layers)}
    assert sizes["FP32"] == 4 * 23_454_912
    assert sizes["FP16"] == 2 * 23_454_912
    assert sizes["INT8"] == 23_454_912 + 4 * 26_560
    # int4: each output channel's c * k * k codes two per byte, the row padded to a whole byte (only the stem,
    # 3 * 7 * 7 = 147 codes, needs the padding)
    assert sizes["INT4"] == sum(la.o * ((la.c * la.k * la.k + 1) // 2) for la in layers) + 4 * 26_560


def test_one_small_layer_end_to_end(resnet50: ModuleType) -> None:
    la = resnet50.Layer("tiny", 8, 9, 9, 64, 3, 2, 1, True)
    data = resnet50.make_layer_data(la, 1, None)
    case, checks = resnet50.build(data, None, True)
    assert checks.spec_crop is True
    assert checks.spec_full is True
    assert checks.layouts_equal is True
    names = [row.name for row in case.rows]
    assert "refquant.fast INT8 NHWC" in names
    assert "refquant.fast INT8 NCHW" in names
    for row in case.rows:
        if row.kind == "refquant" or row.name.startswith("ORT"):
            assert row.exact is True, row.name
    if checks.ort_equal is not None:
        assert checks.ort_equal == checks.size == 64 * 5 * 5
    y = resnet50.numpy_conv_nchw(data)
    assert y.shape == (1, 64, 5, 5)
    assert np.all(y >= 0)  # the layer's ReLU
