"""The single place where refquant imports Numba, and the fixed compile options of every kernel.

Every kernel is compiled with ``cache=True`` (compiled code is kept in ``NUMBA_CACHE_DIR`` and reused
across processes) and with Numba's default IEEE floating-point semantics: no fast-math flags, ever,
because a reference implementation must not let the compiler reassociate or contract arithmetic.

This module also answers the two run-time questions the dispatch needs:

* which kernel family to use (``kernel_path()``): the AVX-512 VNNI micro-kernel when the host CPU
  reports ``avx512vnni`` (llvmlite's host features), the portable register-tiled kernels otherwise;
  the environment variable ``REFQUANT_KERNELS=portable`` or ``set_kernel_path(KernelPath.PORTABLE)``
  forces the portable family whatever the CPU;
* from how much work a parallel call pays for itself (``parallel_threshold()``): Numba's ``omp``
  threading layer costs a few microseconds per parallel region, ``workqueue`` about a hundred, so
  small problems run serially and the threshold depends on the layer actually in use.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from typing import Any

import numba
from llvmlite import binding as _llvm_binding
from numba.core import types as _types
from numba.extending import intrinsic as _intrinsic

__all__ = [
    "KernelPath",
    "host_has_avx512",
    "host_has_avx512vnni",
    "kernel_path",
    "njit",
    "njit_inline",
    "njit_parallel",
    "parallel_threshold",
    "prefer_wide_vectors",
    "set_kernel_path",
    "threading_layer",
    "tile_intrinsic",
]

_OPTIONS: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy", "boundscheck": False}


def njit(func: Callable[..., Any]) -> Any:
    """Compile ``func`` serially with the fixed options (``cache=True``, IEEE semantics)."""
    return numba.njit(**_OPTIONS)(func)


def njit_inline(func: Callable[..., Any]) -> Any:
    """``njit`` for a small helper of a kernel loop, inlined into its callers at Numba IR level."""
    return numba.njit(inline="always", **_OPTIONS)(func)


def njit_parallel(func: Callable[..., Any]) -> Any:
    """Compile ``func`` with ``parallel=True`` (its ``prange`` loops run on Numba's thread pool)."""
    return numba.njit(parallel=True, **_OPTIONS)(func)


def _prefer_wide_vectors_typer(typingctx: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        # A string attribute that llvmlite's checked ``attributes.add`` does not list; LLVM reads it as written.
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return _types.void(), codegen


prefer_wide_vectors: Any = _intrinsic(_prefer_wide_vectors_typer)
"""Called first in a kernel: its loops may be vectorised with 512-bit vectors (LLVM's function attribute
``"prefer-vector-width"="512"``).  On AVX-512 hosts LLVM otherwise prefers 256-bit vectors; elsewhere the
attribute changes nothing.  It is a tuning hint only: the arithmetic, and so the results, are the same."""


def tile_intrinsic(name: str, emit: Callable[[Any, Any, list[Any]], None]) -> Any:
    """An intrinsic ``tile(a_addr, lda, b_addr, k, c_addr, ldc, rs_addr, al_addr, beta_addr, tcol_addr)``: a GEMM
    micro-kernel of ten integer arguments (addresses, strides, counts), each cast to ``intp``, and no result.
    ``emit(context, builder, values)`` writes its LLVM IR; the VNNI and portable tiles are built this way."""

    def typer(
        typingctx: Any,
        a_addr: Any,
        lda: Any,
        b_addr: Any,
        k: Any,
        c_addr: Any,
        ldc: Any,
        rs_addr: Any,
        al_addr: Any,
        beta_addr: Any,
        tcol_addr: Any,
    ) -> Any:
        args = (a_addr, lda, b_addr, k, c_addr, ldc, rs_addr, al_addr, beta_addr, tcol_addr)
        if not all(isinstance(t, _types.Integer) for t in args):
            return None

        def codegen(context: Any, builder: Any, signature: Any, llargs: Any) -> Any:
            values = [context.cast(builder, v, t, _types.intp) for v, t in zip(llargs, signature.args, strict=True)]
            emit(context, builder, values)
            return context.get_dummy_value()

        return _types.void(*args), codegen

    typer.__name__ = name
    return _intrinsic(typer)


class KernelPath(enum.Enum):
    """The kernel family a call runs on."""

    VNNI = "vnni"
    PORTABLE = "portable"


_FEATURES: dict[str, bool] | None = None


def _host_feature(name: str) -> bool:
    global _FEATURES
    if _FEATURES is None:
        _FEATURES = {k: bool(v) for k, v in _llvm_binding.get_host_cpu_features().items()}
    return _FEATURES.get(name, False)


def host_has_avx512vnni() -> bool:
    """True when llvmlite reports ``avx512vnni`` (and ``avx512bw``) for the host CPU."""
    return _host_feature("avx512vnni") and _host_feature("avx512bw")


def host_has_avx512() -> bool:
    """True when llvmlite reports ``avx512f`` (32 vector registers of 512 bits) for the host CPU."""
    return _host_feature("avx512f")


_FORCED: KernelPath | None = None


def set_kernel_path(path: KernelPath | None, /) -> None:
    """Force a kernel family for the rest of the process (``None`` returns to automatic dispatch).

    Forcing ``KernelPath.VNNI`` on a CPU without AVX-512 VNNI raises ``RuntimeError``.
    """
    global _FORCED
    if path is KernelPath.VNNI and not host_has_avx512vnni():
        raise RuntimeError("this CPU has no AVX-512 VNNI (llvmlite host features)")
    _FORCED = path


def kernel_path() -> KernelPath:
    """The kernel family in use: forced by ``set_kernel_path``, then ``REFQUANT_KERNELS``, then the CPU."""
    if _FORCED is not None:
        return _FORCED
    env = os.environ.get("REFQUANT_KERNELS", "").strip().lower()
    if env == KernelPath.PORTABLE.value:
        return KernelPath.PORTABLE
    if env not in ("", "auto", KernelPath.VNNI.value):
        raise RuntimeError(f"REFQUANT_KERNELS must be 'portable', 'vnni' or 'auto', got {env!r}")
    return KernelPath.VNNI if host_has_avx512vnni() else KernelPath.PORTABLE


def threading_layer() -> str | None:
    """Numba's threading layer once a parallel kernel has run in this process (``None`` before)."""
    try:
        return str(numba.threading_layer())  # type: ignore[attr-defined]
    except ValueError:
        return None


def parallel_threshold() -> int:
    """Multiply-accumulate count below which a GEMM runs serially.

    With ``omp`` (or ``tbb``) a parallel region costs about 3 microseconds, the time of about
    2**22 int8 multiply-accumulates on the VNNI kernel; with ``workqueue`` it costs about 120
    microseconds, so only problems 32 times larger are worth splitting.  Before the first parallel
    call the layer is unknown and the ``omp`` figure is used.
    """
    layer = threading_layer()
    return 1 << 27 if layer == "workqueue" else 1 << 21
