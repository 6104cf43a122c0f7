"""Shared by the kernel tests: every test that takes ``path`` runs once per kernel path this CPU has."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from refquant.errors import SpecError, UnpredictableError
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


def outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, or the SpecError / UnpredictableError it raised."""
    try:
        return fn(*args, **kwargs)
    except (SpecError, UnpredictableError) as exc:
        return exc


def assert_same(expected: Any, got: Any) -> None:
    """The spec's and the kernel's outcomes agree: the same error (type, condition, message), or arrays of the same
    dtype and shape equal exactly (float arrays compared as bit patterns)."""
    if isinstance(expected, Exception):
        assert isinstance(got, Exception), f"spec raised {expected!r}, fast returned {got!r}"
        assert type(got) is type(expected)
        assert (got.condition, str(got)) == (expected.condition, str(expected))
        return
    assert not isinstance(got, Exception), f"spec returned a result, fast raised {got!r}"
    assert isinstance(got, np.ndarray)
    assert (got.dtype, got.shape) == (expected.dtype, expected.shape)
    if expected.dtype.kind == "f":
        bits = np.dtype(f"uint{8 * expected.dtype.itemsize}")
        np.testing.assert_array_equal(got.view(bits), expected.view(bits))
    else:
        np.testing.assert_array_equal(got, expected)


def garbage(shape: tuple[int, ...], dtype: np.dtype[Any]) -> np.ndarray:
    """An array whose every byte is 0xA5: an ``out=`` buffer that a kernel must overwrite completely."""
    out = np.empty(shape, dtype)
    out.reshape(-1).view(np.uint8)[...] = 0xA5
    return out
