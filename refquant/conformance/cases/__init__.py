"""Case definitions, one module per spec chapter; each exposes ``cases() -> list[Record]``.

``evaluate`` turns a call (op, params, inputs) into a record by running the registered spec adapter
(``refquant.conformance.ops``): the outputs become ``expected``, a ``SpecError`` / ``UnpredictableError`` becomes a
negative record naming its condition.  ``rng(record_id)`` is the only source of random draws: splitmix64 seeded
from the sha256 of the record id, so a record's data never depends on which other records exist.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
from collections.abc import Callable, Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from refquant.conformance.format import JSONValue, Record, Tensor
from refquant.conformance.ops import op
from refquant.errors import SpecError, UnpredictableError

__all__ = ["CHAPTERS", "Builder", "Draws", "all_cases", "evaluate", "rng"]

CHAPTERS: Final = ("affine", "qparams", "packing", "fixed_point", "integer_ops", "binary", "ternary", "log", "codebook")
"""The chapters that have cases, in generation order (a module ``refquant.conformance.cases.<chapter>`` each)."""


_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_MIX1: Final = np.uint64(0xBF58476D1CE4E5B9)
_MIX2: Final = np.uint64(0x94D049BB133111EB)


class Draws:
    """A deterministic source of random draws, independent of numpy's version: splitmix64 over a counter.

    numpy guarantees the streams of its bit generators but not of ``Generator`` methods across versions, so the
    suite derives every value here from 64-bit words with integer and IEEE operations only (no transcendental
    function whose last bit could differ between platforms).  The methods follow ``numpy.random.Generator``'s
    names and argument order.
    """

    def __init__(self, seed: int) -> None:
        self._seed = np.uint64(seed)
        self._count = 0

    def _words(self, n: int) -> npt.NDArray[np.uint64]:
        i = np.arange(self._count + 1, self._count + n + 1, dtype=np.uint64)
        self._count += n
        z = self._seed + i * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        return np.asarray(z ^ (z >> np.uint64(31)), dtype=np.uint64)

    @staticmethod
    def _shape(size: int | tuple[int, ...] | None) -> tuple[int, ...]:
        return () if size is None else (size,) if isinstance(size, int) else tuple(size)

    def random(self, size: int | tuple[int, ...] | None = None) -> npt.NDArray[np.float64]:
        """Uniform floats in [0, 1): the top 53 bits of a word times 2**-53 (exact)."""
        shape = self._shape(size)
        words = self._words(int(np.prod(shape, dtype=np.int64)))
        return ((words >> np.uint64(11)).astype(np.float64) * 2.0**-53).reshape(shape)

    def integers(
        self, low: int, high: int, size: int | tuple[int, ...] | None = None, *, endpoint: bool = False
    ) -> npt.NDArray[np.int64]:
        """Integers in [low, high) (or [low, high] with ``endpoint``): ``low + word % span`` (span <= 2**33)."""
        span = int(high) - int(low) + (1 if endpoint else 0)
        shape = self._shape(size)
        words = self._words(int(np.prod(shape, dtype=np.int64)))
        return (np.asarray(words % np.uint64(span), dtype=np.int64) + int(low)).reshape(shape)

    def uniform(self, low: float, high: float, size: int | tuple[int, ...] | None = None) -> npt.NDArray[np.float64]:
        """``low + (high - low) * random(size)``."""
        return np.asarray(low + (high - low) * self.random(size), dtype=np.float64)

    def standard_normal(self, size: int | tuple[int, ...] | None = None) -> npt.NDArray[np.float64]:
        """Approximately normal (Irwin-Hall: 12 uniforms of 32 bits summed as integers, times 2**-32, minus 6).

        The sum is an exact integer, so the result does not depend on a summation order.
        """
        shape = self._shape(size)
        words = self._words(int(np.prod(shape, dtype=np.int64)) * 12).reshape((*shape, 12)) >> np.uint64(32)
        return np.asarray(words.sum(axis=-1, dtype=np.uint64).astype(np.float64) * 2.0**-32 - 6.0, dtype=np.float64)

    def choice(self, options: npt.ArrayLike, size: int | tuple[int, ...] | None = None) -> npt.NDArray[Any]:
        """Elements of ``options`` picked uniformly."""
        opts = np.asarray(options)
        return np.asarray(opts[self.integers(0, opts.size, size)])


def rng(record_id: str, /) -> Draws:
    """The draws of one record: seeded from the first 8 bytes (little-endian) of sha256(record_id)."""
    return Draws(int.from_bytes(hashlib.sha256(record_id.encode("utf-8")).digest()[:8], "little"))


def evaluate(
    record_id: str,
    op_name: str,
    params: dict[str, JSONValue],
    inputs: dict[str, npt.ArrayLike],
    why: str,
    /,
) -> Record:
    """The record of one call: expected outputs from the spec adapter, or the condition id it raises."""
    tensors = {k: Tensor.of(v) for k, v in inputs.items()}
    arrays = {k: t.data for k, t in tensors.items()}
    try:
        # An IEEE overflow to +-inf is a defined float result of the spec (dequantize of a huge scale), not an error.
        with np.errstate(over="ignore"):
            out = op(op_name).run(params, arrays)
    except (SpecError, UnpredictableError) as error:
        return Record(record_id, op_name, params, tensors, None, error.condition, why)
    return Record(record_id, op_name, params, tensors, {k: Tensor.of(v) for k, v in out.items()}, None, why)


class Builder:
    """Collects the records of one chapter, numbering them per (op, why, label) prefix: ``.../0000``, ``.../0001``."""

    def __init__(self, chapter: str) -> None:
        self.chapter = chapter
        self.records: list[Record] = []
        self._counts: dict[str, int] = {}

    def next_id(self, group: str, why: str, label: str) -> str:
        prefix = f"{self.chapter}/{group}/{why}/{label}"
        n = self._counts.get(prefix, 0)
        self._counts[prefix] = n + 1
        return f"{prefix}/{n:04d}"

    def add(
        self,
        group: str,
        op_name: str,
        why: str,
        label: str,
        params: Mapping[str, Any],
        inputs: dict[str, Any] | Callable[[Draws], dict[str, Any]],
    ) -> Record:
        """Evaluate and keep one record; ``inputs`` may be a function of the record's own generator."""
        rid = self.next_id(group, why, label)
        data = inputs(rng(rid)) if callable(inputs) else inputs
        r = evaluate(rid, op_name, dict(params), data, why)
        self.records.append(r)
        return r


def all_cases() -> list[Record]:
    """Every record of every chapter, sorted by id (ids are unique: a duplicate raises)."""
    records: list[Record] = []
    for chapter in CHAPTERS:
        module = importlib.import_module(f"refquant.conformance.cases.{chapter}")
        records.extend(module.cases())
    records.sort(key=lambda r: r.id)
    for a, b in itertools.pairwise(records):
        if a.id == b.id:
            raise SpecError("duplicate_record_id", f"record id {a.id!r} is defined twice")
    return records
