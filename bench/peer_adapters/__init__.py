"""Peer adapters: other stacks (onnx's ReferenceEvaluator, onnxruntime, torch, ml_dtypes) in the ``--impl`` protocol.

Each module of this package defines one function per conformance op that its peer has a counterpart for, with the
calling convention of docs/conformance.md section 8 (``run(params, inputs) -> {output name: array}``), so that
``python -m refquant check --impl bench.peer_adapters.onnxruntime_`` (from the repository root) checks the peer
against the suite, and ``bench/divergences.py`` writes docs/divergences.md from the same functions.

How a peer is driven (the rules every adapter follows):

- **The peer's own arithmetic.**  An option the record leaves out runs the peer's native semantics (that is where
  the divergences are).  An option the record names explicitly is honoured only when it *is* what the peer does
  (or the peer has a switch for it); otherwise the adapter raises ``NotCovered``: the record is not covered by this
  peer, never a failure, and the adapter never forces the peer into semantics it lacks.
- **Inputs the peer's interface cannot take** (a zero point outside the output type, a float16 input where the peer
  wants float32, a format the peer has no type for, narrow range) are ``NotCovered`` as well.
- **Errors.**  An exception the peer raises is re-raised as ``PeerError`` (``condition == "peer_error"``): the peer
  refused the input.  The checker compares condition ids, and the peer's exception has none of refquant's, so a
  record that expects an error fails under ``refquant check`` with the peer's message; ``bench/divergences.py``
  counts "both refuse" apart, as neither agreement nor a divergence of value.
- Outputs have the record's dtypes (``IntFormat.storage_dtype`` for codes), so that only values are compared.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from refquant.spec.formats import IntFormat

__all__ = [
    "PEERS",
    "NotCovered",
    "PeerError",
    "Runner",
    "check_options",
    "fits",
    "fmt_of",
    "guarded",
    "installed",
]

Runner = Callable[[Mapping[str, Any], Mapping[str, npt.NDArray[Any]]], dict[str, npt.NDArray[Any]]]

PEERS: Final[dict[str, tuple[str, str]]] = {
    "onnx": ("onnx", "bench.peer_adapters.onnx_reference"),
    "onnxruntime": ("onnxruntime", "bench.peer_adapters.onnxruntime_"),
    "torch": ("torch", "bench.peer_adapters.torch_"),
    "ml_dtypes": ("ml_dtypes", "bench.peer_adapters.ml_dtypes_"),
}
"""Peer name -> (the distribution that must be installed, the adapter module)."""


class NotCovered(Exception):
    """The peer cannot express this record (an option, a format, an input type): not covered, never a failure.

    ``not_covered = True`` is the flag of docs/conformance.md section 8: ``refquant check --impl`` and
    ``bench/divergences.py`` count such a record as not covered, with this exception's message."""

    not_covered = True


class PeerError(Exception):
    """The peer raised an exception on this record (its type and message are kept in the text)."""

    condition = "peer_error"


def installed(peer: str, /) -> bool:
    """Whether the distribution of ``peer`` (a key of ``PEERS``) can be imported."""
    return importlib.util.find_spec(PEERS[peer][0]) is not None


def guarded(run: Runner) -> Runner:
    """``run`` with the peer's exceptions re-raised as ``PeerError`` (``NotCovered`` passes through)."""

    @functools.wraps(run)
    def wrapper(params: Mapping[str, Any], inputs: Mapping[str, npt.NDArray[Any]]) -> dict[str, npt.NDArray[Any]]:
        try:
            return run(params, inputs)
        except (NotCovered, PeerError):
            raise
        except Exception as error:  # the peer's own exception, whatever its type
            raise PeerError(f"{type(error).__name__}: {error}") from error

    return wrapper


def fmt_of(params: Mapping[str, Any], key: str = "fmt") -> IntFormat:
    """The record's integer format (``NotCovered`` when the param is not a format name)."""
    name = params.get(key)
    if not isinstance(name, str):
        raise NotCovered(f"param {key}={name!r} is not a format name")
    try:
        return IntFormat.from_name(name)
    except ValueError:
        raise NotCovered(f"param {key}={name!r} is not a format refquant names") from None


def check_options(params: Mapping[str, Any], native: Mapping[str, tuple[object, ...]], peer: str) -> None:
    """``NotCovered`` unless every option of ``native`` that the record names is one the peer does natively."""
    for key, values in native.items():
        value = params.get(key)
        if value is not None and value not in values:
            raise NotCovered(f"{peer} has no {key}={value!r} (it does {', '.join(map(str, values)) or 'none'})")


def fits(values: npt.ArrayLike, fmt: IntFormat) -> bool:
    """Whether every value lies in ``[fmt.qmin, fmt.qmax]``."""
    a = np.asarray(values)
    return bool(a.size == 0 or (int(a.min()) >= fmt.qmin and int(a.max()) <= fmt.qmax))
