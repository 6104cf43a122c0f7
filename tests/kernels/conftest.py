"""Shared by the kernel tests: every test that takes ``path`` runs once per kernel path this CPU has."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from refquant.kernels._jit import KernelPath, host_has_avx512vnni, set_kernel_path

PATHS = [KernelPath.PORTABLE, *([KernelPath.VNNI] if host_has_avx512vnni() else [])]
DTYPES = [np.dtype(np.int8), np.dtype(np.uint8)]


@pytest.fixture(scope="module", params=PATHS, ids=lambda p: p.value)
def path(request: pytest.FixtureRequest) -> Iterator[KernelPath]:
    set_kernel_path(request.param)
    yield request.param
    set_kernel_path(None)


def codes(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype[Any], fill: str) -> np.ndarray:
    """int8/uint8 codes: all ``min``, all ``max``, random ``extremes``, or uniformly random."""
    info = np.iinfo(dtype)
    if fill == "min":
        return np.full(shape, info.min, dtype)
    if fill == "max":
        return np.full(shape, info.max, dtype)
    if fill == "extremes":
        return np.where(rng.integers(0, 2, shape).astype(bool), info.min, info.max).astype(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)
