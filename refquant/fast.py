"""Accelerated integer arithmetic: the spec functions on Numba kernels, bit-identical to the spec.

``refquant.fast`` mirrors the specification functions that have kernels, with the same signatures,
the same ``SpecError`` / ``UnpredictableError`` (it validates with the spec's own checks) and an extra
keyword ``out=``: a preallocated C-contiguous output of the exact result shape and dtype, written in
place and returned (allocating a large output on every call costs more than the arithmetic).  Any
other ``out`` raises ``SpecError("invalid_out")``.

Importing this module imports Numba (``import refquant`` never does).  Kernels are compiled on first
use and cached in ``NUMBA_CACHE_DIR``.

Kernel dispatch (``refquant.kernels._jit``): the AVX-512 VNNI micro-kernel (``vpdpbusd``) when
llvmlite reports ``avx512vnni`` for the host CPU, a portable register-tiled kernel otherwise;
``REFQUANT_KERNELS=portable`` forces the portable kernels.  Problems below about 2**21
multiply-accumulates (2**27 under Numba's ``workqueue`` threading layer) run on the calling thread.

Sections, in order: matmul (``pack_rhs``, ``PackedRhs``, ``matmul_int``); quantize, dequantize and
requantize; conv (``pack_conv_weight``, ``PackedConvWeight``, ``conv2d_int``); the QLinear pipelines
(``qlinear_matmul``, ``qlinear_conv``); the low-bit products (``xnor_matmul``, ``binary_conv2d``,
``ternary_matmul``, ``shift_matmul``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

import numba as _numba
import numpy as np
import numpy.typing as npt

from refquant.errors import SpecError
from refquant.kernels import conv as _conv
from refquant.kernels import gemm as _gemm
from refquant.kernels import lowbit as _lowbit
from refquant.kernels import quant as _kq
from refquant.kernels import requant as _kr
from refquant.kernels._jit import KernelPath, kernel_path, parallel_threshold
from refquant.kernels.fma import PMR, PW
from refquant.kernels.vnni import MR, NR
from refquant.spec import affine as _affine
from refquant.spec import binary as _bin
from refquant.spec import fixed_point as _fp
from refquant.spec import integer_ops as _qops
from refquant.spec import log as _log
from refquant.spec import ternary as _ter
from refquant.spec.affine import (
    NanPolicy,
    Precision,
    Profile,
    QuantParams,
    ScaleApplication,
    ZeroPointOrder,
)
from refquant.spec.binary import BinaryPadding
from refquant.spec.fixed_point import RequantRounding
from refquant.spec.formats import INT8, IntFormat
from refquant.spec.granularity import (
    PER_TENSOR,
    Granularity,
    PerAxis,
    PerBlock,
    PerTensor,
    normalize_axis,
    param_shape,
)
from refquant.spec.integer_ops import (
    Accumulator,
    Layout,
    _check_accumulator,
    _finish,
    _lhs_zero_point,
    _operand,
    _rhs_zero_point,
)
from refquant.spec.log import LogFormat
from refquant.spec.rounding import RoundingMode
from refquant.spec.saturation import Overflow

__all__ = [
    "KernelPath",
    "Layout",
    "PackedConvWeight",
    "PackedRhs",
    "binary_conv2d",
    "conv2d_int",
    "dequantize",
    "kernel_path",
    "matmul_int",
    "pack_conv_weight",
    "pack_rhs",
    "qlinear_conv",
    "qlinear_matmul",
    "quantize",
    "requantize",
    "shift_matmul",
    "ternary_matmul",
    "xnor_matmul",
]

_INT32_MAX = 2**31 - 1
_I64 = npt.NDArray[np.int64]


# ==================================================================================================
# shared helpers (usable by every section)


def _check_out(
    out: object, shape: tuple[int, ...], dtype: type[np.generic], inputs: tuple[Any, ...]
) -> npt.NDArray[Any]:
    """``out`` if it is a writable C-contiguous array of ``shape`` and ``dtype`` sharing no memory with ``inputs``."""
    if not isinstance(out, np.ndarray):
        raise SpecError("invalid_out", f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != shape or out.dtype != np.dtype(dtype):
        raise SpecError(
            "invalid_out",
            f"out must have shape {shape} and dtype {np.dtype(dtype)}, got shape {out.shape} and dtype {out.dtype}",
        )
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise SpecError("invalid_out", "out must be a writable C-contiguous array")
    for x in inputs:
        if isinstance(x, np.ndarray) and np.may_share_memory(out, x):
            raise SpecError("invalid_out", "out must not share memory with an input")
    return out


def _new_or_out(
    out: object, shape: tuple[int, ...], dtype: type[np.generic], inputs: tuple[Any, ...]
) -> npt.NDArray[Any]:
    if out is None:
        return np.empty(shape, dtype)
    return _check_out(out, shape, dtype, inputs)


# ==================================================================================================
# matmul: pack_rhs, PackedRhs, matmul_int


@dataclass(frozen=True, eq=False)
class PackedRhs:
    """A matmul rhs (weights) packed once for the kernels and reused across calls.

    Attributes
    ----------
    data:
        The packed signed bytes ``Bs = rhs - 128 * (dtype is uint8)``: 48-column panels
        ``[K/4][48][4]`` per batch for ``KernelPath.VNNI``, 32-column panels ``[K][32]`` (zero in
        the padding columns) for ``KernelPath.PORTABLE``.  Read-only.
    colsum:
        ``sum_k Bs[..., k, n]`` per batch and column, int64 ``(batch, N)``.
    shape, dtype:
        The original rhs shape (1-D, 2-D or batched) and dtype (int8 or uint8).
    zero_point:
        The validated rhs zero point, int64, shape ``()`` or ``(N,)``.
    layout:
        The kernel family the data is packed for; a call runs on that family.
    max_deviation:
        ``max |rhs - zero_point|`` over all elements (0 for an empty rhs): the bound the int32
        overflow check uses.
    """

    data: npt.NDArray[np.int8]
    colsum: _I64
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    zero_point: _I64
    layout: KernelPath
    max_deviation: int
    _beta: _I64
    _tcol: _I64
    _need_rsum: bool
    _beta32: npt.NDArray[np.int32]
    _tcol32: npt.NDArray[np.int32]

    @property
    def k(self) -> int:
        """The reduction length K."""
        return self.shape[0] if len(self.shape) == 1 else self.shape[-2]

    @property
    def n(self) -> int:
        """The number of columns N (1 for a 1-D rhs)."""
        return 1 if len(self.shape) == 1 else self.shape[-1]

    def unpack(self) -> npt.NDArray[np.int8]:
        """``Bs`` as int8 ``(batch, K, N)``: the signed bytes the kernels multiply."""
        nb = self.colsum.shape[0]
        bs = np.empty((nb, self.k, self.n), np.int8)
        if self.layout is KernelPath.VNNI:
            _gemm.unpack_vnni(self.data, self.k, self.n, bs)
        else:
            _gemm.unpack_portable(self.data, self.k, self.n, bs)
        return bs


def _readonly(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    a.setflags(write=False)
    return a


def _aligned_empty(shape: tuple[int, ...], dtype: type[np.generic], align: int = 64) -> npt.NDArray[Any]:
    """An uninitialized C-contiguous array whose data starts on an ``align``-byte boundary."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + align, np.uint8)
    offset = (-raw.ctypes.data) % align
    return raw[offset : offset + nbytes].view(dtype).reshape(shape)


_SCRATCH = __import__("threading").local()


def _scratch(name: str, shape: tuple[int, ...], dtype: type[np.generic]) -> npt.NDArray[Any]:
    """A reusable, uninitialized, 64-byte aligned temporary of this thread (never returned to a caller).

    Kernel temporaries (the shifted lhs, the padded NHWC input, ...) are kept per thread and name and
    grown when needed, instead of being allocated on every call: a fresh multi-megabyte ``np.empty`` is
    new memory from the OS each time, and its page faults cost as much as a small GEMM.
    """
    pool: dict[str, npt.NDArray[np.uint8]] | None = getattr(_SCRATCH, "pool", None)
    if pool is None:
        pool = _SCRATCH.pool = {}
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    buf = pool.get(name)
    if buf is None or buf.nbytes < nbytes:
        buf = pool[name] = _aligned_empty((max(nbytes, 64),), np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def pack_rhs(rhs: npt.ArrayLike, /, *, rhs_zero_point: npt.ArrayLike = 0) -> PackedRhs:
    """Pack ``rhs`` (int8 or uint8, 1-D, 2-D or batched ``(..., K, N)``) for ``matmul_int``.

    ``rhs_zero_point`` is validated exactly as ``refquant.matmul_int`` does (scalar or per column,
    shape ``(N,)``) and stored in the result.  The packing targets the kernel family in use now
    (``kernel_path()``); the result is immutable and can be reused for any number of calls.
    """
    b = _operand(rhs, "rhs")
    if b.ndim == 0:
        raise SpecError("shape_mismatch", f"matmul_int needs operands of rank >= 1, got rhs shape {b.shape}")
    b2 = b.reshape(b.shape[0], 1) if b.ndim == 1 else b
    zb = _rhs_zero_point(rhs_zero_point, b2, b.dtype)
    k, n = b2.shape[-2:]
    b3 = b2.reshape(math.prod(b2.shape[:-2]), k, n).view(np.uint8)
    nb = b3.shape[0]
    flip = 128 if b.dtype == np.uint8 else 0
    layout = kernel_path()
    colsum = np.empty((nb, n), np.int64)
    if layout is KernelPath.VNNI:
        data = _aligned_empty((nb, (n + NR - 1) // NR, ((k + 3) // 4) * 4 * NR), np.int8)
        _gemm.pack_rhs_vnni(b3, flip, data, colsum)
    else:
        data = _aligned_empty((nb, (n + PW - 1) // PW, k * PW), np.int8)
        _gemm.pack_rhs_portable(b3, flip, data, colsum)
    beta = np.broadcast_to(flip - zb, (nb, n)).astype(np.int64)  # cb - zb
    tcol = colsum + beta * k
    width = NR if layout is KernelPath.VNNI else PW
    if b.size:
        lo, hi = int(b.min()), int(b.max())
        zlo, zhi = int(zb.min()), int(zb.max())
        dev = max(hi - zlo, zhi - lo)
    else:
        dev = 0
    return PackedRhs(
        data=_readonly(data),
        colsum=_readonly(colsum),
        shape=tuple(b.shape),
        dtype=b.dtype,
        zero_point=_readonly(zb.copy()),
        layout=layout,
        max_deviation=dev,
        _beta=_readonly(beta),
        _tcol=_readonly(tcol),
        _need_rsum=bool(np.any(beta)),
        _beta32=_readonly(_panel_padded32(beta, width)),  # modulo 2**32: the tiles' column terms
        _tcol32=_readonly(_panel_padded32(tcol, width)),
    )


def _groups_per_task(nb: int, m: int, n: int, rows: int, width: int) -> int:
    """Row groups per task of the VNNI and portable drivers (tiles of ``rows`` x ``width``): tasks are
    (batch, panel, chunk of row groups), and the row groups of a panel are split into chunks only when
    there are too few panels (fewer than 8) to give every thread several tasks."""
    mg = -(-m // rows)
    chunks = min(mg, max(1, -(-8 // (nb * -(-n // width)))))
    return -(-mg // chunks)


_FUSED_ROWS = 64
_FUSED_BYTES = 1 << 19


def _vnni_fused_split(nb: int, m: int, n: int, k: int, serial: bool) -> tuple[int, int]:
    """Rows and panels per task of ``gemm_vnni_fused``.

    An lhs of up to ``_FUSED_BYTES`` (padded) is one row block, so B streams once and the panels are
    split over the threads (M = 16 and 128 x 3072: splitting the rows instead streamed B twice, up to 18%
    slower); a larger lhs goes in blocks of ``_FUSED_ROWS`` rows, each against every panel (1024**3: 5%
    faster than the panel-major order of ``gemm_vnni``).  Each task shifts its rows once.
    """
    mr = -(-m // MR) * MR
    rpt = mr if mr * (k + 3) <= _FUSED_BYTES else _FUSED_ROWS
    panels = -(-n // NR)
    if serial:
        return rpt, panels
    chunks = min(panels, max(1, -(-_numba.get_num_threads() // (nb * -(-m // rpt)))))
    return rpt, -(-panels // chunks)


def _panel_padded32(v: _I64, width: int) -> npt.NDArray[np.int32]:
    """``v`` (batch, N) modulo 2**32 as int32, zero-padded to whole ``width``-column panels."""
    out = np.zeros((v.shape[0], -(-v.shape[1] // width) * width), np.int32)
    out[:, : v.shape[1]] = v.astype(np.int32)  # C cast of int64 to int32: the value modulo 2**32
    return out


_CODE_RANGE = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}
_NO_BATCH = np.zeros(1, np.int64)
_NO_BATCH.setflags(write=False)


def _max_deviation(a: npt.NDArray[Any], z: _I64, data: bool) -> int:
    """An upper bound of ``|a - z|``: from the dtype's range, or (``data=True``) from the values."""
    lo, hi = (int(a.min()), int(a.max())) if data else _CODE_RANGE[a.dtype]
    if z.ndim == 0:
        return max(hi - int(z), int(z) - lo)
    return max(hi - int(z.min()), int(z.max()) - lo)


_CONST_ROWS32: dict[tuple[int, int, int], npt.NDArray[np.int32]] = {}


def _const_rows32(value: int, nb: int, m: int) -> npt.NDArray[np.int32]:
    """A read-only int32 ``(nb, m)`` array filled with ``value``, cached (the VNNI tile's per-row terms:
    ``alpha`` for a scalar lhs zero point, zero row sums when no column needs them)."""
    if nb * m > 1 << 16:  # large ones are not kept
        return np.full((nb, m), value, np.int32)
    key = (value, nb, m)
    z = _CONST_ROWS32.get(key)
    if z is None:
        if len(_CONST_ROWS32) >= 64:
            _CONST_ROWS32.clear()
        z = _CONST_ROWS32[key] = _readonly(np.full((nb, m), value, np.int32))
    return z


def _zero_rows32(nb: int, m: int) -> npt.NDArray[np.int32]:
    return _const_rows32(0, nb, m)


def _batch_index(batch_shape: tuple[int, ...], batch: tuple[int, ...]) -> npt.NDArray[np.int64]:
    """For every output batch (C order), the flat index of the operand batch it reads."""
    if not batch:
        return _NO_BATCH
    idx = np.arange(math.prod(batch_shape), dtype=np.int64).reshape(batch_shape)
    return np.ascontiguousarray(np.broadcast_to(idx, batch)).reshape(-1)


def matmul_int(
    lhs: npt.ArrayLike,
    rhs: npt.ArrayLike | PackedRhs,
    /,
    *,
    lhs_zero_point: npt.ArrayLike = 0,
    rhs_zero_point: npt.ArrayLike = 0,
    accumulator: Accumulator = Accumulator.INT32,
    out: npt.NDArray[Any] | None = None,
) -> npt.NDArray[np.signedinteger[Any]]:
    """``refquant.matmul_int`` on the kernels: bit-identical results, the same errors, plus ``out=``.

    ``rhs`` may be a ``PackedRhs`` from ``pack_rhs``; its zero point is the one given to ``pack_rhs``,
    and ``rhs_zero_point`` must then be left at 0 or equal that zero point.

    Method: the exact sum modulo 2**32 comes from the int32 kernels (zero points and the int8/uint8
    offsets folded into per-row and per-column corrections); it is the exact sum, and so the result of
    every accumulator, whenever ``K * max|lhs - zl| * max|rhs - zr| <= 2**31 - 1`` (checked from the
    dtype ranges, then from the data).  Past that bound ``INT32_WRAP`` still uses the int32 kernels,
    and the other accumulators sum term by term in int64 (saturating for ``INT32_SATURATE``), so
    ``INT32`` raises ``UnpredictableError("accumulator_overflow")`` exactly where the spec does.
    """
    _check_accumulator(accumulator)
    a = _operand(lhs, "lhs")
    if isinstance(rhs, PackedRhs):
        packed = rhs
        if not (type(rhs_zero_point) is int and rhs_zero_point == 0) and not (
            np.ndim(rhs_zero_point) == 0 and np.asarray(rhs_zero_point) == 0
        ):
            zgiven = _rhs_zero_point(rhs_zero_point, np.empty((packed.k, packed.n), packed.dtype), packed.dtype)
            if not np.array_equal(
                np.broadcast_to(zgiven, (packed.n,)), np.broadcast_to(packed.zero_point, (packed.n,))
            ):
                raise SpecError(
                    "zero_point_shape_mismatch",
                    "rhs_zero_point differs from the zero point the PackedRhs was packed with",
                )
        b_shape = packed.shape
    else:
        packed = None
        b = _operand(rhs, "rhs")
        b_shape = tuple(b.shape)
    if a.ndim == 0 or len(b_shape) == 0:
        raise SpecError("shape_mismatch", f"matmul_int needs operands of rank >= 1, got shapes {a.shape} and {b_shape}")
    a2 = a.reshape(1, a.shape[0]) if a.ndim == 1 else a
    b2_shape = (b_shape[0], 1) if len(b_shape) == 1 else b_shape
    m, k = a2.shape[-2:]
    k2, n = b2_shape[-2:]
    if k != k2:
        raise SpecError(
            "shape_mismatch", f"inner dimensions differ: lhs shape {a.shape} has K={k}, rhs shape {b_shape} has K={k2}"
        )
    try:
        batch = tuple(np.broadcast_shapes(a2.shape[:-2], b2_shape[:-2])) if a2.ndim > 2 or len(b2_shape) > 2 else ()
    except ValueError:
        raise SpecError(
            "shape_mismatch", f"batch dimensions of lhs {a.shape} and rhs {b_shape} do not broadcast"
        ) from None
    if type(lhs_zero_point) is int and _CODE_RANGE[a.dtype][0] <= lhs_zero_point <= _CODE_RANGE[a.dtype][1]:
        za = np.array(lhs_zero_point, np.int64)  # the common scalar case, valid: skip the general checks
    else:
        za = _lhs_zero_point(lhs_zero_point, a2, a.dtype)
    if packed is None:
        packed = pack_rhs(b, rhs_zero_point=rhs_zero_point)  # validates rhs_zero_point

    out_shape = (*batch, m, n)
    if a.ndim == 1:
        out_shape = (*batch, n)
    if len(b_shape) == 1:
        out_shape = out_shape[:-1]
    dtype = np.int64 if accumulator is Accumulator.INT64 else np.int32
    res = _new_or_out(out, out_shape, dtype, (a, packed.data))
    nb = math.prod(batch)
    if res.size == 0:
        return res
    if k == 0:
        res[...] = 0
        return res

    # Is the exact sum guaranteed to fit int32?  (Every partial sum is bounded by the same figure.)
    dev_b = packed.max_deviation
    fits = k * _max_deviation(a, za, data=False) * dev_b <= _INT32_MAX
    if not fits and accumulator is not Accumulator.INT32_WRAP:
        fits = k * _max_deviation(a, za, data=True) * dev_b <= _INT32_MAX

    a_batch = a2.shape[:-2]
    b_batch = b2_shape[:-2]
    ai = _batch_index(a_batch, batch)
    bi = _batch_index(b_batch, batch)
    a3 = a2.reshape(math.prod(a_batch), m, k).view(np.uint8)
    flip = 128 if a.dtype == np.int8 else 0
    vnni = packed.layout is KernelPath.VNNI
    exact_path = not fits and accumulator is not Accumulator.INT32_WRAP
    # alpha = za + oa per output row: int32 for the tiles (|alpha| <= 383, exact), int64 for the exact path
    alpha_dtype = np.int64 if exact_path else np.int32
    alpha: npt.NDArray[Any]
    if za.ndim == 0 and alpha_dtype is np.int32:
        alpha = _const_rows32(int(za) + flip, nb, m)
    elif za.ndim == 0:
        alpha = np.full((nb, m), int(za) + flip, alpha_dtype)
    else:
        alpha = np.ascontiguousarray(np.broadcast_to(za + flip, (*batch, m, 1)), dtype=alpha_dtype).reshape(nb, m)
    beta = packed._beta

    if exact_path:
        au = np.empty((a3.shape[0], m, k), np.uint8)
        rsum = np.empty((a3.shape[0], m), np.int64)
        _gemm.prepare_lhs(a3, flip, k, au, rsum, False)
        exact = np.empty((nb, m, n), np.int64)
        _gemm.centered_gemm(au, packed.unpack(), ai, bi, alpha, beta, accumulator is Accumulator.INT32_SATURATE, exact)
        result = _finish(exact.reshape(out_shape), accumulator, "matmul_int")
        res[...] = result
        return res

    kp = ((k + 3) // 4) * 4 if vnni else k
    need_rsum = packed._need_rsum
    serial = nb * m * n * k < parallel_threshold()
    acc = res.reshape(nb, m, n) if dtype is np.int32 else _scratch("gemm_acc", (nb, m, n), np.int32)
    if vnni and flip == 0 and kp == k and not need_rsum and a3.flags.c_contiguous:
        # the lhs already is the tile's unsigned bytes and no row sum is needed: read in place
        kern = _gemm.gemm_vnni_serial if serial else _gemm.gemm_vnni
        gpt = _groups_per_task(nb, m, n, MR, NR)
        kern(a3, packed.data, ai, bi, _zero_rows32(a3.shape[0], m), alpha, packed._beta32, packed._tcol32, gpt, acc)
    elif vnni:
        # each task shifts (XOR 0x80 for int8), pads and sums its own rows inside the GEMM's parallel
        # region: no separate lhs pass, and the rows a thread multiplies were written by that thread
        rpt, ppt = _vnni_fused_split(nb, m, n, k, serial)
        kern = _gemm.gemm_vnni_fused_serial if serial else _gemm.gemm_vnni_fused
        kern(a3, flip, need_rsum, packed.data, ai, bi, alpha, packed._beta32, packed._tcol32, rpt, ppt, acc)
    else:
        # the lhs as float32 (the portable tile's operand) and its row sums; a large lhs is prepared on all
        # threads (serially it cost ~10% of a 1024**3 GEMM on 2 threads)
        par_prep = a3.size >= 1 << 18 and not serial
        af = _scratch("gemm_lhs_f32", (a3.shape[0], m, k), np.float32)
        rsum = _scratch("gemm_rsum", (a3.shape[0], m), np.int32)
        (_gemm.prepare_lhs_f32_par if par_prep else _gemm.prepare_lhs_f32)(a3, flip, af, rsum, need_rsum)
        kern = _gemm.gemm_portable_serial if serial else _gemm.gemm_portable
        gpt = _groups_per_task(nb, m, n, PMR, PW)
        kern(af, packed.data, ai, bi, rsum, alpha, packed._beta32, packed._tcol32, gpt, acc)
    if dtype is not np.int32:
        res[...] = acc.reshape(out_shape)
    return res


# ==================================================================================================
# quantize, dequantize, requantize (kernels in refquant.kernels.quant and refquant.kernels.requant)
#
# Validation: the options are resolved and the input converted by the spec's own helpers; whenever
# a call would raise (a NaN under NanPolicy.RAISE, a reciprocal that overflows, a parameter shape
# that does not fit, a code outside the format, an unpredictable requantization), or uses an option
# without a kernel, the spec function itself is called with the same arguments: it raises the
# spec's error, or (for the options without a kernel) computes the result, bit-identical by
# construction.  On an error ``out`` may have been partly written.


_ROUNDING_CODE = {
    RoundingMode.HALF_TO_EVEN: 0,
    RoundingMode.HALF_AWAY_FROM_ZERO: 1,
    RoundingMode.HALF_TOWARD_POSITIVE: 2,
    RoundingMode.HALF_TOWARD_NEGATIVE: 3,
    RoundingMode.HALF_TOWARD_ZERO: 4,
    RoundingMode.TOWARD_ZERO: 5,
    RoundingMode.TOWARD_POSITIVE: 6,
    RoundingMode.TOWARD_NEGATIVE: 7,
    RoundingMode.AWAY_FROM_ZERO: 8,
    RoundingMode.HALF_TO_ODD: 9,
}
_ZORDER_CODE = {
    ZeroPointOrder.AFTER_ROUNDING: 0,
    ZeroPointOrder.BEFORE_ROUNDING: 1,
    ZeroPointOrder.FUSED_MULTIPLY_ADD: 2,
}
_NAN_CODE = {NanPolicy.RAISE: 0, NanPolicy.TO_QMIN: 1, NanPolicy.TO_ZERO_POINT: 2}
_REQUANT_CODE = {
    RequantRounding.DOUBLE: 0,
    RequantRounding.SINGLE: 1,
    RequantRounding.FLOAT32: 2,
    RequantRounding.FLOAT64: 3,
}
_CHUNK = 16384  # elements per work item
_PARTS = 16  # parallel ranges per call
_KERNEL_CODE_DTYPES = frozenset(
    np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64)
)


def _serial_elements() -> int:
    """Element count below which an elementwise kernel runs on the calling thread."""
    return parallel_threshold() // 32


def _signed_view(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``a`` (integer codes) viewed as the signed integer type of the same width."""
    return a.view(np.dtype(f"int{a.dtype.itemsize * 8}"))


@dataclass(frozen=True)
class _Plan:
    """How a tensor of some shape is cut into rows and chunks and where each chunk finds its parameters."""

    vector: bool  # parameters vary along a row (2-D parameter rows) instead of per chunk
    rows: int
    length: int
    chunk: int
    a: int  # scalar: pr;  vector: dv
    b: int  # scalar: pc;  vector: nb
    c: int  # scalar: block_chunks (0/1);  vector: bsz
    param_shape: tuple[int, ...]  # the parameters reshaped for the kernel


def _plan(shape: tuple[int, ...], granularity: Granularity) -> _Plan | None:
    """The kernel layout for ``shape`` under ``granularity`` (``None``: not a kernel case)."""
    n = math.prod(shape)
    if isinstance(granularity, PerTensor):
        return _Plan(False, 1, n, _CHUNK, 1, 1, 0, (1,))
    ax = normalize_axis(granularity.axis, len(shape))
    outer = math.prod(shape[:ax])
    d = shape[ax]
    inner = math.prod(shape[ax + 1 :])
    if isinstance(granularity, PerAxis):
        if inner > 1:
            return _Plan(False, outer * d, inner, _CHUNK, d, 1, 0, (d,))
        return _Plan(True, outer, d, _CHUNK, 1, 0, 1, (1, d))
    if isinstance(granularity, PerBlock):
        bs = granularity.block_size
        nb = -(-d // bs)
        if inner > 1:
            return _Plan(True, outer * d, inner, _CHUNK, d, nb, bs, (outer * nb, inner))
        return _Plan(False, outer, d, max(1, min(bs, d)), outer, nb, 1, (outer * nb,))
    return None


def _shape_fits(params_shape: tuple[int, ...], granularity: Granularity, shape: tuple[int, ...]) -> bool:
    """Whether parameters of ``params_shape`` fit a tensor of ``shape`` (as ``expand_to`` checks)."""
    try:
        expected = param_shape(granularity, shape)
    except SpecError:
        return False
    if isinstance(granularity, PerTensor):
        return math.prod(params_shape) == 1 and len(params_shape) <= 1
    return params_shape == expected


def _spec_result(result: npt.NDArray[Any], out: npt.NDArray[Any] | None, inputs: tuple[Any, ...]) -> npt.NDArray[Any]:
    """A spec function's result, returned as is or written into a checked ``out``."""
    if out is None:
        return result
    target = _check_out(out, result.shape, result.dtype.type, inputs)
    target[...] = result
    return target


def quantize(
    x: npt.ArrayLike,
    params: QuantParams,
    /,
    *,
    profile: Profile | None = None,
    rounding: RoundingMode | None = None,
    scale_application: ScaleApplication | None = None,
    zero_point_order: ZeroPointOrder | None = None,
    overflow: Overflow | None = None,
    nan_policy: NanPolicy | None = None,
    precision: Precision | None = None,
    uniform: npt.ArrayLike | None = None,
    out: npt.NDArray[Any] | None = None,
) -> npt.NDArray[np.integer[Any]]:
    """``refquant.quantize`` on the kernels: bit-identical codes, the same errors, plus ``out=``.

    Kernels cover per tensor, per axis and per block; both scale applications, every zero-point
    order (the fused one as an exactly rounded float32 fma), every deterministic rounding mode,
    saturation and wrap, every NaN policy, float32 and float64 precision, on float32 and float64
    inputs (other dtypes are converted once, exactly as the spec converts them).  Calls with
    ``RoundingMode.STOCHASTIC`` or ``uniform`` draws, and WRAP into a narrow-range format (an error),
    run the spec function itself.  Profiles with cases resolve as in the spec (``Profile.resolve``).
    """
    overrides: dict[str, Any] = {
        "rounding": rounding,
        "scale_application": scale_application,
        "zero_point_order": zero_point_order,
        "overflow": overflow,
        "nan_policy": nan_policy,
        "precision": precision,
    }

    def spec() -> npt.NDArray[Any]:
        return _spec_result(_affine.quantize(x, params, profile=profile, uniform=uniform, **overrides), out, (x,))

    if not isinstance(params, QuantParams):
        return spec()
    opts = _affine._resolve(profile, overrides, params)
    fmt = params.fmt
    if (
        uniform is not None
        or opts.rounding not in _ROUNDING_CODE
        or (opts.overflow is Overflow.WRAP and fmt.narrow_range)
    ):
        return spec()
    cdt = opts.precision.dtype
    arr = np.asarray(x)
    # One compiled kernel per compute precision: x is converted to it (float16 and float32 widen exactly).
    xa = arr if arr.dtype == cdt and arr.dtype.isnative else _affine._real_input(arr, cdt)
    shape = tuple(xa.shape)
    if not _shape_fits(params.scale.shape, params.granularity, shape):
        return spec()
    plan = _plan(shape, params.granularity)
    if plan is None:
        return spec()
    s = params.scale.astype(cdt)
    recip = opts.scale_application is ScaleApplication.RECIPROCAL_MULTIPLY
    with np.errstate(over="ignore", divide="ignore"):
        inv = cdt.type(1) / s
    if recip and not np.all(np.isfinite(inv)):
        return spec()
    # the checked reciprocal (kind 4) needs a normal reciprocal: its relative error is then at most 2**-24
    inv_normal = bool(np.all((np.abs(inv) >= np.finfo(cdt).tiny) & np.isfinite(inv)))
    zi = params.zero_point.astype(np.int64)
    fused = opts.zero_point_order is ZeroPointOrder.FUSED_MULTIPLY_ADD
    zf = zi.astype(np.float32 if fused else cdt)
    res = _new_or_out(out, shape, fmt.storage_dtype.type, (x,))
    if res.size == 0:
        return res
    # kinds 0/1/2: the branch-free loops for DIVIDE / RECIPROCAL_MULTIPLY / FUSED_MULTIPLY_ADD (saturation into
    # <= 16 bits, rounding half to even or half away from zero); kind 3: any option, element by element.
    # kind 4: DIVIDE with the zero point after rounding, by the checked reciprocal (kernels/quant.py, NEAR).
    after = opts.zero_point_order is ZeroPointOrder.AFTER_ROUNDING
    if opts.overflow is Overflow.SATURATE and fmt.bits <= 16 and _ROUNDING_CODE[opts.rounding] <= 1:
        kind = 2 if fused else 1 if recip else 4 if after and inv_normal else 0
    else:
        kind = 3
    zb = np.zeros_like(s) if after else zf
    za = zi.astype(cdt) if after else np.zeros_like(s)
    xc = np.ascontiguousarray(xa).reshape(plan.rows, plan.length)
    o8 = res.reshape(plan.rows, plan.length).view(np.int8)
    pshape = plan.param_shape if plan.vector else (1, *plan.param_shape)

    def prm(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
        return np.ascontiguousarray(a.reshape(pshape))

    head = (
        xc,
        o8,
        res.dtype.itemsize,
        prm(s),
        prm(inv),
        prm(zf),
        prm(zi),
        prm(s),
        prm(zb),
        prm(za),
        np.array([0.0, 0.5, 1.0, fmt.qmin, fmt.qmax, _kq.NEAR], dtype=cdt),
        plan.vector,
        plan.a,
        plan.b,
        plan.c,
        plan.chunk,
    )
    tail = (
        kind,
        0 if opts.scale_application is ScaleApplication.DIVIDE else 1,
        _ZORDER_CODE[opts.zero_point_order],
        _ROUNDING_CODE[opts.rounding],
        0 if opts.overflow is Overflow.SATURATE else 1,
        _NAN_CODE[opts.nan_policy],
        fmt.qmin,
        fmt.qmax,
        fmt.bits,
    )
    nw = plan.rows * -(-plan.length // plan.chunk)
    if res.size < _serial_elements():
        nans = _kq.quantize_rows(*head, 0, nw, *tail)
    else:
        nans = _kq.quantize_rows_par(*head, min(nw, _PARTS), *tail)
    if nans and opts.nan_policy is NanPolicy.RAISE:
        return spec()
    return res


def dequantize(
    q: npt.ArrayLike, params: QuantParams, /, *, out: npt.NDArray[Any] | None = None
) -> npt.NDArray[np.float32]:
    """``refquant.dequantize`` on the kernels: bit-identical float32 values, the same errors, plus ``out=``.

    Kernels cover every granularity and the code dtypes int8, uint8, int16, uint16, int32, uint32 and
    int64 (any byte order and layout, made native and C-contiguous once); other dtypes run the spec.
    """

    def spec() -> npt.NDArray[Any]:
        return _spec_result(_affine.dequantize(q, params), out, (q,))

    if not isinstance(params, QuantParams):
        return spec()
    qa = np.asarray(q)
    if qa.dtype.kind not in "iu" or qa.dtype.newbyteorder("=") not in _KERNEL_CODE_DTYPES:
        return spec()
    shape = tuple(qa.shape)
    if not _shape_fits(params.scale.shape, params.granularity, shape):
        return spec()
    plan = _plan(shape, params.granularity)
    if plan is None:
        return spec()
    res = _new_or_out(out, shape, np.float32, (q,))
    if res.size == 0:
        return res
    # codes of 8 and 16 bits are read as they are, wider ones as int64 (exact): five compiled kernels in all
    kdt = qa.dtype.newbyteorder("=") if qa.dtype.itemsize <= 2 else np.dtype(np.int64)
    qc = np.ascontiguousarray(qa, dtype=kdt).reshape(plan.rows, plan.length)
    o2 = res.reshape(plan.rows, plan.length)
    pshape = plan.param_shape if plan.vector else (1, *plan.param_shape)
    s = np.ascontiguousarray(params.scale.reshape(pshape))
    zi = np.ascontiguousarray(params.zero_point.astype(np.int64).reshape(pshape))
    fmt = params.fmt
    head = (qc, o2, s, zi, plan.vector, plan.a, plan.b, plan.c, plan.chunk)
    tail = (fmt.qmin, fmt.qmax)
    nw = plan.rows * -(-plan.length // plan.chunk)
    if res.size < _serial_elements():
        bad = _kq.dequantize_rows(*head, 0, nw, *tail)
    else:
        bad = _kq.dequantize_rows_par(*head, min(nw, _PARTS), *tail)
    if bad:
        return spec()
    return res


def requantize(
    acc: npt.ArrayLike,
    multiplier: npt.ArrayLike,
    /,
    *,
    out_fmt: IntFormat = INT8,
    out_zero_point: int = 0,
    rounding: RequantRounding = RequantRounding.DOUBLE,
    granularity: Granularity = PER_TENSOR,
    activation_min: int | None = None,
    activation_max: int | None = None,
    out: npt.NDArray[Any] | None = None,
) -> npt.NDArray[np.integer[Any]]:
    """``refquant.spec.fixed_point.requantize`` on the kernels: bit-identical codes, the same errors, plus ``out=``.

    Kernels cover every ``RequantRounding``, per tensor and per axis, for accumulators of dtype
    int8, uint8, int16, uint16, int32, uint32 or int64; other inputs run the spec function.  The
    fixed-point multipliers come from the spec's ``quantize_multiplier``.
    """

    def spec() -> npt.NDArray[Any]:
        result = _fp.requantize(
            acc,
            multiplier,
            out_fmt=out_fmt,
            out_zero_point=out_zero_point,
            rounding=rounding,
            granularity=granularity,
            activation_min=activation_min,
            activation_max=activation_max,
        )
        return _spec_result(result, out, (acc,))

    if not (
        isinstance(rounding, RequantRounding)
        and isinstance(out_fmt, IntFormat)
        and isinstance(granularity, (PerTensor, PerAxis))
    ):
        return spec()
    a = np.asarray(acc)
    if a.dtype.kind not in "iu" or a.dtype.newbyteorder("=") not in _KERNEL_CODE_DTYPES:
        return spec()
    m = _fp._real_multipliers(multiplier)
    shape = tuple(a.shape)
    if not _shape_fits(m.shape, granularity, shape):
        return spec()
    bounds: list[int] = []
    for value in (out_zero_point, activation_min, activation_max):
        if value is None:
            bounds.append(0)
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, np.integer))
            or not out_fmt.qmin <= int(value) <= out_fmt.qmax
        ):
            return spec()
        bounds.append(int(value))
    zp = bounds[0]
    lo = out_fmt.qmin if activation_min is None else max(out_fmt.qmin, bounds[1])
    hi = out_fmt.qmax if activation_max is None else min(out_fmt.qmax, bounds[2])
    if lo > hi:
        return spec()
    plan = _plan(shape, granularity)
    if plan is None:
        return spec()
    mflat = m.reshape(-1)
    if rounding in (RequantRounding.DOUBLE, RequantRounding.SINGLE):
        single = rounding is RequantRounding.SINGLE
        pairs = [_fp.quantize_multiplier(float(v), single_rounding=single) for v in mflat]
        qm = np.array([p.multiplier for p in pairs], dtype=np.int64)
        em = np.array([p.shift for p in pairs], dtype=np.int64)
        mf = np.zeros(mflat.shape, np.float64)
    else:
        ftype = np.float32 if rounding is RequantRounding.FLOAT32 else np.float64
        with np.errstate(over="ignore"):
            mf = mflat.astype(ftype).astype(np.float64)
        if not np.all(np.isfinite(mf)):
            return spec()
        qm = np.zeros(mflat.shape, np.int64)
        em = np.zeros(mflat.shape, np.int64)
    res = _new_or_out(out, shape, out_fmt.storage_dtype.type, (acc,))
    if res.size == 0:
        return res
    # accumulators are read as int32 (int8..uint16, int32) or int64 (uint32, int64), both exact: two kernels
    kdt = np.dtype(np.int32) if a.dtype.itemsize <= 2 or (a.dtype.kind == "i" and a.dtype.itemsize == 4) else np.int64
    ac = np.ascontiguousarray(a, dtype=kdt).reshape(plan.rows, plan.length)
    o8 = res.reshape(plan.rows, plan.length).view(np.int8)
    nw = plan.rows * -(-plan.length // plan.chunk)
    head = (ac, o8, res.dtype.itemsize, qm, em, mf, plan.vector, plan.a, plan.chunk)
    tail = (_REQUANT_CODE[rounding], zp, lo, hi)
    if res.size < _serial_elements():
        bad = _kr.requantize_bytes(*head, 0, nw, *tail)
    else:
        bad = _kr.requantize_bytes_par(*head, min(nw, _PARTS), *tail)
    if bad:
        return spec()
    return res


# ==================================================================================================
# conv2d: pack_conv_weight, PackedConvWeight, conv2d_int (kernels in refquant.kernels.conv)
#
# Implicit GEMM on a padded NHWC copy of the input (made once; NCHW input is transposed during that
# copy, an uint8 NHWC input without padding is read in place); no im2col buffer: the VNNI tile walks
# the kh*kw tap offsets itself.  The result is computed as NHWC int32 and written once to the
# caller's layout.  Validation repeats the spec's conv2d_int checks in its order with its helpers.


def _conv_wrap32(v: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
    """int64 values reduced modulo 2**32 into int32."""
    return v.astype(np.int64).astype(np.uint64).astype(np.uint32).view(np.int32)


# --- conv2d_int (implicit GEMM on NHWC; refquant.kernels.conv) ---------------------------------------------------


class PackedConvWeight:
    """Convolution weights packed once for ``conv2d_int`` (built by ``pack_conv_weight``).

    Holds a private copy of the weight codes (so later changes to the caller's array do not leak in),
    the layout and ``groups`` they were packed for, and the kernel operands: the VNNI panels
    ``[groups, panels, K/4, 64, 4]`` int8 and the portable ``[groups, K, O/groups]`` int32 matrix, each
    built on first use.  The zero point is not part of the packing: ``conv2d_int`` takes
    ``w_zero_point`` as usual.  A ``PackedRhs`` from ``pack_rhs`` is a 2-D matrix without kernel size
    or groups, so ``conv2d_int`` does not take one.
    """

    __slots__ = ("_bp", "_cache", "_wt", "groups", "layout", "w", "wsum")

    def __init__(self, w: npt.NDArray[Any], layout: Layout, groups: int) -> None:
        self.w = w
        self.layout = layout
        self.groups = groups
        self._bp: npt.NDArray[np.int8] | None = None
        self._wt: npt.NDArray[np.int32] | None = None
        self._cache: dict[tuple[Any, ...], tuple[Any, ...]] = {}  # per-call operands, keyed by geometry and zero points
        ohwi = w if layout is Layout.NHWC else w.transpose(0, 2, 3, 1)
        shifted = ohwi.astype(np.int64) - (128 if w.dtype == np.uint8 else 0)
        self.wsum: npt.NDArray[np.int64] = shifted.reshape(w.shape[0], -1).sum(axis=1)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the weight codes, in ``layout``."""
        return tuple(self.w.shape)

    def _matrix(self) -> npt.NDArray[np.int8]:
        """``[groups, KH*KW*Cg4, O/groups]`` int8: ``w'`` (weights as signed bytes), k ordered (kh, kw, c)."""
        w = self.w
        ohwi = w if self.layout is Layout.NHWC else w.transpose(0, 2, 3, 1)
        o, kh, kw, cg = ohwi.shape
        g = self.groups
        ocg = o // g
        cg4 = -(-cg // 4) * 4
        shifted = (ohwi.astype(np.int16) - (128 if w.dtype == np.uint8 else 0)).astype(np.int8)
        mat = np.zeros((g, kh, kw, cg4, ocg), np.int8)
        mat[:, :, :, :cg, :] = shifted.reshape(g, ocg, kh, kw, cg).transpose(0, 2, 3, 4, 1)
        return mat.reshape(g, kh * kw * cg4, ocg)

    def vnni_panels(self) -> npt.NDArray[np.int8]:
        """The VNNI operand ``[groups, panels, K/4, 64, 4]`` (built once)."""
        if self._bp is None:
            mat = self._matrix()
            g, kp, ocg = mat.shape
            panels = -(-ocg // 64)
            wide = np.zeros((g, kp, panels * 64), np.int8)
            wide[:, :, :ocg] = mat
            bp = _aligned_empty((g, panels, kp // 4, 64, 4), np.int8)  # 64-byte aligned: no split loads
            bp[...] = wide.reshape(g, kp // 4, 4, panels, 64).transpose(0, 3, 1, 4, 2)
            self._bp = bp
        return self._bp

    def portable_matrix(self) -> npt.NDArray[np.int32]:
        """The portable and exact-path operand ``[groups, K, O/groups]`` int32 (built once)."""
        if self._wt is None:
            self._wt = np.ascontiguousarray(self._matrix().astype(np.int32))
        return self._wt


def pack_conv_weight(w: npt.ArrayLike, /, *, groups: int = 1, layout: Layout = Layout.NCHW) -> PackedConvWeight:
    """Pack convolution weights (OIHW for ``Layout.NCHW``, OHWI for ``Layout.NHWC``) for ``conv2d_int``.

    The packed weight replaces ``w`` in ``conv2d_int`` calls with the same ``groups``; the call's
    ``layout`` may differ from the packing layout.  Checks are those of ``conv2d_int`` on ``w``.
    """
    if not isinstance(layout, Layout):
        raise SpecError("invalid_option", f"layout must be a Layout, got {layout!r}")
    wa = _qops._operand(w, "w")
    if wa.ndim != 4:
        raise SpecError("shape_mismatch", f"conv2d_int needs a 4-D w, got shape {wa.shape}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise SpecError("invalid_groups", f"groups must be an int >= 1, got {groups!r}")
    if wa.shape[0] % int(groups):
        raise SpecError("invalid_groups", f"groups={groups} must divide the output channels ({wa.shape[0]})")
    return PackedConvWeight(np.array(wa, copy=True, order="C"), layout, int(groups))


_CONV_ARGS_MEMO: dict[tuple[Any, ...], Any] = {}
_NO_ARRAY = np.empty(0, np.int8)


def _zero_point_key(v: Any) -> Any:
    """A memo key for a zero point the checks see only by value, dtype and shape (None: not memoised)."""
    if type(v) is int:
        return v
    if isinstance(v, np.integer):
        return (v.dtype.str, int(v))
    if type(v) is np.ndarray and v.dtype.kind in "iu" and v.ndim <= 1:
        return (v.dtype.str, v.shape, v.tobytes())
    return None


def _conv_args(
    x: Any,
    w: Any,
    x_zero_point: Any,
    w_zero_point: Any,
    stride: Any,
    padding: Any,
    dilation: Any,
    groups: Any,
    layout: Any,
    accumulator: Any,
) -> Any:
    """``refquant.spec.integer_ops._conv_args``, remembered for calls that passed it before.

    The checks depend only on the operands' dtypes and shapes and on the options, so when all of
    those are plain ints, tuples of ints and arrays, a call identical in them to one that passed
    reuses its result (with this call's arrays); anything else, and every call that raises, runs
    the spec's checks.  Zero points count as plain ints when they are ints, numpy integer scalars or
    integer arrays of at most one dimension (keyed by dtype, shape and values).  This saves about 25
    microseconds per call.
    """
    key: tuple[Any, ...] | None = None
    zx_key, zw_key = _zero_point_key(x_zero_point), _zero_point_key(w_zero_point)
    if (
        type(x) is np.ndarray
        and type(w) is np.ndarray
        and zx_key is not None
        and zw_key is not None
        and type(groups) is int
        and all(type(t) is tuple and all(type(v) is int for v in t) for t in (stride, padding, dilation))
        and isinstance(layout, Layout)
        and isinstance(accumulator, Accumulator)
    ):
        key = (x.dtype, x.shape, w.dtype, w.shape, zx_key, zw_key, stride, padding, dilation)
        key += (groups, layout, accumulator)
        hit = _CONV_ARGS_MEMO.get(key)
        if hit is not None:
            return hit._replace(x=x, w=w)
    p = _qops._conv_args(x, w, x_zero_point, w_zero_point, stride, padding, dilation, groups, layout, accumulator)
    if key is not None:
        if len(_CONV_ARGS_MEMO) >= 256:
            _CONV_ARGS_MEMO.clear()
        _CONV_ARGS_MEMO[key] = p._replace(x=_NO_ARRAY, w=_NO_ARRAY)  # keep no reference to the caller's arrays
    return p


def _conv_chunks(work: int, items: int) -> int:
    """How many parallel chunks a conv call is split into (1 below the parallel threshold)."""
    if work < parallel_threshold():
        return 1
    return max(1, min(items, 8 * int(_numba.get_num_threads())))


# Output channels per group from which a conv runs on the VNNI kernels (their panels are 64 channels wide).  Measured
# with conv2d_int, NHWC, 2 threads, VNNI vs portable: 3x3 64->8 at 56x56 274 vs 3938 us; 1x1 256->8 at 14x14 32 vs
# 206 us; 3x3 16->12 at 32x32 67 vs 797 us; 3x3 32->16 in two groups at 28x28 88 vs 900 us; 7x7 3->8 at 112x112 431
# vs 3813 us.  Narrower groups (depthwise) stay portable.
_VNNI_MIN_CHANNELS = 8


def _conv_operands(p: Any, packed: PackedConvWeight, vnni_path: bool) -> tuple[Any, ...]:
    """The operands of the conv kernels that depend only on the weights, dtypes, zero points and geometry.

    ``p``: the checked arguments (``_conv_args``); ``vnni_path``: whether the VNNI kernel family is in
    use.  Returns ``(vnni, zx', zw', bound, taps_h, taps_w, segs, use_rs, init, wzp)``: whether the
    VNNI kernel applies, the shifted zero points, the bound of ``|acc|`` (``K * max|x - zx| *
    max|w - zw|``), and the tap and column operands; built once per packed weight and key.
    """
    o, cg, kh, kw = p.oihw
    g = p.groups
    ocg = o // g
    dh, dw = p.dilation
    _pt, _pb, pl, pr = p.padding
    cg4 = -(-cg // 4) * 4
    wp = p.nchw[3] + pl + pr
    cpix = g * cg4
    vnni = vnni_path and ocg >= _VNNI_MIN_CHANNELS
    key = (vnni, p.x.dtype, p.w.dtype, p.zx, p.zw.tobytes(), p.zw.shape[0], kh, kw, dh, dw, wp, cpix)
    cached = packed._cache.get(key)
    if cached is not None:
        return cached
    # x' = x XOR 0x80 for int8 (x + 128), zero point shifted alike; w' = w - 128 for uint8.
    ox = 128 if p.x.dtype == np.int8 else 0
    ow_shift = 128 if p.w.dtype == np.uint8 else 0
    zx = int(p.zx) + ox
    zw = np.broadcast_to(p.zw, (o,)).astype(np.int64) - ow_shift
    k_real = cg * kh * kw
    x_lo, x_hi = _CODE_RANGE[p.x.dtype]
    w_lo, w_hi = _CODE_RANGE[p.w.dtype]
    mx = max(int(p.zx) - x_lo, x_hi - int(p.zx))
    zw_orig = zw + ow_shift
    mw = max(int(zw_orig.max()) - w_lo, w_hi - int(zw_orig.min()))
    taps_h = np.repeat(np.arange(kh, dtype=np.int64) * dh, kw)
    taps_w = np.tile(np.arange(kw, dtype=np.int64) * dw, kh)
    segs = (taps_h * wp + taps_w) * cpix
    if vnni and g == 1 and dw == 1:  # a kernel row's taps are adjacent runs: one segment per row for the tile
        segs = np.arange(kh, dtype=np.int64) * dh * wp * cpix
    use_rs = bool(np.any(zw != 0))
    colinit = _conv_wrap32(k_real * zx * zw - zx * packed.wsum)
    if vnni:
        width = packed.vnni_panels().shape[1] * 64
        init = np.zeros((g, width), np.int32)
        init[:, :ocg] = colinit.reshape(g, ocg)
        wzp = np.zeros((g, width), np.int32)
        wzp[:, :ocg] = zw.reshape(g, ocg)
    else:
        init = colinit.reshape(g, ocg)
        wzp = zw.astype(np.int32).reshape(g, ocg)
    cached = (vnni, zx, zw, k_real * mx * mw, taps_h, taps_w, segs, use_rs, init, wzp)
    if len(packed._cache) >= 16:
        packed._cache.clear()
    packed._cache[key] = cached
    return cached


def _conv_input(p: Any, layout: Layout, zx: int) -> npt.NDArray[np.uint8]:
    """The padded NHWC input bytes ``x'`` of the kernels (``zx``: the shifted zero point, the border fill)."""
    xa = p.x
    n_, _c, h, wd = p.nchw
    _o, cg, _kh, _kw = p.oihw
    g = p.groups
    pt, pb, pl, pr = p.padding
    ox = 128 if xa.dtype == np.int8 else 0
    cg4 = -(-cg // 4) * 4
    hp, wp = h + pt + pb, wd + pl + pr
    xu = xa.view(np.uint8)
    if layout is Layout.NHWC and cg == cg4 and ox == 0 and hp == h and wp == wd and xu.flags.c_contiguous:
        return xu  # type: ignore[no-any-return]  # already the padded NHWC operand: read in place
    xp = _scratch("conv_x", (n_, hp, wp, g * cg4), np.uint8)
    if cg == cg4 and xu.flags.c_contiguous:
        dense = _conv.pad_nhwc_dense if layout is Layout.NHWC else _conv.pad_nchw_dense
        dense(xu, ox, pt, pl, zx, xp)
    elif g == 1 and cg4 == 4 and xu.flags.c_contiguous:
        _conv.pad_contiguous(xu, layout is Layout.NCHW, ox, pt, pl, zx, cg, xp)
    else:
        xv = xu.transpose(0, 2, 3, 1) if layout is Layout.NCHW else xu
        _conv.to_padded_nhwc(xv, np.uint8(ox), pt, pl, np.uint8(zx), g, cg, cg4, xp)
    return xp


def conv2d_int(
    x: npt.ArrayLike,
    w: npt.ArrayLike | PackedConvWeight,
    /,
    *,
    x_zero_point: npt.ArrayLike = 0,
    w_zero_point: npt.ArrayLike = 0,
    stride: Sequence[int] = (1, 1),
    padding: Sequence[int] = (0, 0, 0, 0),
    dilation: Sequence[int] = (1, 1),
    groups: int = 1,
    layout: Layout = Layout.NCHW,
    accumulator: Accumulator = Accumulator.INT32,
    out: npt.NDArray[Any] | None = None,
) -> npt.NDArray[Any]:
    """``refquant.conv2d_int`` on the kernels: same arguments, result and errors, plus ``out=``.

    ``w`` may be a ``PackedConvWeight`` (``pack_conv_weight``) packed with the same ``groups``.
    ``out``: a C-contiguous array of the result's shape and dtype (int32, int64 for ``INT64``).

    Dispatch: when ``K * max|x - zx| * max|w - zw| <= 2**31 - 1`` (``K = C/groups * kh * kw``) no sum
    or partial sum can leave int32, so every accumulator equals the wrapping int32 implicit GEMM;
    INT32_WRAP always uses it.  Otherwise INT64 and INT32 use an exact int64 kernel (INT32 then raises
    where the spec raises) and INT32_SATURATE a kernel that saturates after every multiply-add in
    the spec's (kh, kw, c) order.
    """
    packed = w if isinstance(w, PackedConvWeight) else None
    if packed is not None:
        if not isinstance(layout, Layout):
            raise SpecError("invalid_option", f"layout must be a Layout, got {layout!r}")
        if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or int(groups) != packed.groups:
            raise SpecError(
                "invalid_groups", f"groups={groups!r} differs from the packed weight's groups={packed.groups}"
            )
        wv = packed.w
        if packed.layout is not layout:
            wv = wv.transpose(0, 2, 3, 1) if layout is Layout.NHWC else wv.transpose(0, 3, 1, 2)
    else:
        wv = w  # type: ignore[assignment]
    p = _conv_args(x, wv, x_zero_point, w_zero_point, stride, padding, dilation, groups, layout, accumulator)
    wa = p.w
    n_ = p.nchw[0]
    o, cg, kh, kw = p.oihw
    g = p.groups
    ocg = o // g
    sh, sw = p.stride
    oh, ow = p.out_hw
    out_shape = (n_, o, oh, ow) if layout is Layout.NCHW else (n_, oh, ow, o)
    out_dtype = np.dtype(np.int64) if accumulator is Accumulator.INT64 else np.dtype(np.int32)
    if out is not None:
        _check_out(out, out_shape, out_dtype.type, (x, packed.w if packed is not None else wa))
    if packed is None:
        packed = PackedConvWeight(np.ascontiguousarray(wa), layout, g)
    ops = _conv_operands(p, packed, kernel_path() is KernelPath.VNNI)
    vnni, zx, zw, bound, taps_h, taps_w, segs, use_rs, init, wzp = ops
    fits = bound <= _INT32_MAX
    xp = _conv_input(p, layout, zx)
    hp, wp = xp.shape[1], xp.shape[2]
    cg4 = -(-cg // 4) * 4
    pixels = oh * ow
    k_real = cg * kh * kw

    if fits or accumulator is Accumulator.INT32_WRAP:
        cs = np.zeros((n_, hp, wp, g) if use_rs else (1, 1, 1, 1), np.int32)
        if use_rs:
            _conv.channel_sums(xp, g, cg4, cs)
        direct = layout is Layout.NHWC and out_dtype == np.int32
        res = out if direct and out is not None else _aligned_empty((n_, oh, ow, o), np.int32) if direct else None
        acc = res.reshape(n_, pixels, o) if res is not None else _scratch("conv_acc", (n_, pixels, o), np.int32)
        macs = n_ * pixels * o * k_real
        if vnni:
            bp = packed.vnni_panels()
            items = n_ * g * bp.shape[1] * (-(-pixels // _conv.TILE_ROWS_VNNI))
            nchunks = _conv_chunks(macs, items)
            _conv.conv_vnni(
                xp, bp, segs, taps_h, taps_w, oh, ow, sh, sw, g, cg4, ocg, init, wzp, cs, use_rs, nchunks, acc
            )
        else:
            wt = packed.portable_matrix()
            items = n_ * g * (-(-pixels // _conv.TILE_ROWS_PORTABLE))
            nchunks = _conv_chunks(macs, items)
            _conv.conv_portable(
                xp, wt, segs, taps_h, taps_w, oh, ow, sh, sw, g, cg, cg4, init, wzp, cs, use_rs, nchunks, acc
            )
        if res is not None:
            return res
        result = out if out is not None else _aligned_empty(out_shape, out_dtype.type)
        if layout is Layout.NCHW and out_dtype == np.int32 and result.flags.c_contiguous:
            _conv.nhwc_to_nchw(acc, result.reshape(n_, o, pixels))
            return result
        dst = (
            result.reshape(n_, pixels, o) if layout is Layout.NHWC else result.reshape(n_, o, pixels).transpose(0, 2, 1)
        )
        _conv.nhwc_to_out(acc, dst)
        return result

    exact = np.empty((n_, pixels, o), np.int64)
    saturate = accumulator is Accumulator.INT32_SATURATE
    wt = packed.portable_matrix()
    _conv.conv_exact(xp, wt, taps_h, taps_w, oh, ow, sh, sw, g, cg, cg4, zx, zw.reshape(g, ocg), False, saturate, exact)
    full = exact.reshape(n_, oh, ow, o)
    if layout is Layout.NCHW:
        full = full.transpose(0, 3, 1, 2)
    finished = _qops._finish(np.ascontiguousarray(full), accumulator, "conv2d_int")
    if out is None:
        return finished
    np.copyto(out, finished)
    return out


# ==================================================================================================
# QLinear pipelines: qlinear_matmul, qlinear_conv (the GEMM / conv kernels, then the requantize kernels)
#
# Validation: the spec's own checks run in the spec's order up to the integer product and raise
# directly.  The checks the spec makes only after the product (bias dtype and shape, multipliers,
# activation bounds) are tested without raising; a call that fails one of them is handed to the spec
# function itself, which raises whatever the spec raises first (an accumulator overflow can precede
# them).  Then ``out`` is checked, the accumulators come from ``matmul_int`` / ``conv2d_int``
# above under the call's ``accumulator`` (bit-identical to the spec, same overflow errors), the bias is
# added in place under the same rule (in int32 after an int32 bound check; modulo 2**32 for INT32_WRAP;
# clamped for INT32_SATURATE; in int64 for INT64), and the requantize kernel writes the codes straight
# into the result.  INT64 accumulators that leave int32 are requantized by the spec's step (which also
# raises its error for DOUBLE / SINGLE).  Where the kernel finds a requantization unpredictable, the
# spec's requantization step runs on the same accumulators and raises the spec's error (``out`` may then have been partly written).  So an
# invalid ``out`` is reported after every argument error and before any arithmetic (overflow) error.


def _fixed_point_multipliers(m: npt.NDArray[np.float64], single: bool) -> tuple[_I64, _I64]:
    """``refquant.spec.fixed_point.quantize_multiplier`` of every element of ``m`` (finite, >= 0), vectorised.

    Returns the multipliers and shifts as int64 arrays of ``m``'s shape.  ``frexp`` splits
    ``m = f * 2**e`` with ``f`` in ``[1/2, 1)`` exactly; ``f * 2**31 < 2**31`` has at most 22 fraction
    bits, so adding 1/2 and taking the floor is exact: round half away from zero, as ``std::round``.
    """
    frac, exp = np.frexp(np.asarray(m, np.float64))
    q = np.floor(frac * 2.0**31 + 0.5).astype(np.int64)
    e = exp.astype(np.int64)
    carry = q == 2**31
    q = np.where(carry, 2**30, q)
    e = e + carry
    flush = (frac == 0) | (e < -31)
    q = np.where(flush, 0, q)
    e = np.where(flush, 0, e)
    if single:
        clamp = e > 30
        q = np.where(clamp, _INT32_MAX, q)
        e = np.where(clamp, 30, e)
    return np.ascontiguousarray(q), np.ascontiguousarray(e)


def _multipliers_ok(m: npt.NDArray[np.float64], rounding: RequantRounding) -> bool:
    """Whether the spec's ``requantize`` accepts the real multipliers ``m`` under ``rounding``."""
    if not (np.all(np.isfinite(m)) and np.all(m >= 0)):
        return False
    if rounding is RequantRounding.FLOAT32:
        with np.errstate(over="ignore"):
            return bool(np.all(np.isfinite(m.astype(np.float32))))
    return True


def _activation_bounds(fmt: IntFormat, activation_min: object, activation_max: object) -> tuple[int, int] | None:
    """The clamp bounds ``(lo, hi)`` the spec's ``requantize`` derives, or ``None`` where it would raise."""
    lo, hi = fmt.qmin, fmt.qmax
    for is_min, bound in ((True, activation_min), (False, activation_max)):
        if bound is None:
            continue
        if isinstance(bound, bool) or not isinstance(bound, (int, np.integer)):
            return None
        b = int(bound)
        if not fmt.qmin <= b <= fmt.qmax:
            return None
        lo, hi = (b, hi) if is_min else (lo, b)
    return (lo, hi) if lo <= hi else None


def _requantize_into(
    acc: npt.NDArray[np.int32],
    res: npt.NDArray[Any],
    m: npt.NDArray[np.float64],
    vector: bool,
    rounding: RequantRounding,
    zp: int,
    lo: int,
    hi: int,
) -> int:
    """Requantize the int32 rows ``acc`` (2-D, C-contiguous) into ``res`` (integer codes, the same 2-D shape).

    ``m``: the real multipliers, one per row (cycled: row ``r`` uses ``m[r % len(m)]``) or, with
    ``vector``, one per column.  Returns the number of elements the definition leaves unpredictable.
    """
    mflat = np.ascontiguousarray(m, dtype=np.float64).reshape(-1)
    if rounding in (RequantRounding.DOUBLE, RequantRounding.SINGLE):
        qm, em = _fixed_point_multipliers(mflat, rounding is RequantRounding.SINGLE)
        mf = np.zeros(mflat.shape, np.float64)
    else:
        ftype = np.float32 if rounding is RequantRounding.FLOAT32 else np.float64
        mf = mflat.astype(ftype).astype(np.float64)
        qm = np.zeros(mflat.shape, np.int64)
        em = np.zeros(mflat.shape, np.int64)
    rows, length = acc.shape
    o2 = _signed_view(res)
    nw = rows * -(-length // _CHUNK)
    mode = _REQUANT_CODE[rounding]
    pr = 1 if vector else mflat.shape[0]
    if res.size < _serial_elements():
        return int(_kr.requantize_rows(acc, o2, qm, em, mf, vector, pr, _CHUNK, 0, nw, mode, zp, lo, hi))
    return int(_kr.requantize_rows_par(acc, o2, qm, em, mf, vector, pr, _CHUNK, min(nw, _PARTS), mode, zp, lo, hi))


def _packed_rhs_codes(packed: PackedRhs) -> npt.NDArray[Any]:
    """The rhs codes a ``PackedRhs`` was packed from (its original shape and dtype)."""
    bs = packed.unpack()  # rhs - 128 for uint8 codes, as signed bytes
    codes = (bs.view(np.uint8) ^ np.uint8(0x80)) if packed.dtype == np.uint8 else bs
    return codes.reshape(packed.shape)


def qlinear_matmul(
    a: npt.ArrayLike,
    b: npt.ArrayLike | PackedRhs,
    /,
    *,
    a_params: QuantParams,
    b_params: QuantParams,
    y_params: QuantParams,
    rounding: RequantRounding = RequantRounding.FLOAT64,
    multiplier_precision: Precision = Precision.FLOAT64,
    accumulator: Accumulator = Accumulator.INT32,
    out: npt.NDArray[Any] | None = None,
) -> npt.NDArray[np.integer[Any]]:
    """``refquant.qlinear_matmul`` on the kernels: bit-identical codes, the same errors, plus ``out=``.

    ``b`` may be a ``PackedRhs`` from ``pack_rhs``.  Its zero point is part of the packing, so
    ``b_params.zero_point`` must equal it (per column after broadcasting; else
    ``SpecError("zero_point_shape_mismatch")``), and ``b_params.fmt`` must fit its dtype as for ``b``.
    ``out``: a C-contiguous array of the result's shape and ``y_params.fmt.storage_dtype``.
    """
    _qops._check_rounding_options(rounding, multiplier_precision, accumulator)
    ap = _qops._check_params(a_params, "a_params")
    bp = _qops._check_params(b_params, "b_params")
    yp = _qops._check_params(y_params, "y_params")
    ac = _qops._operand(a, "a")
    packed = b if isinstance(b, PackedRhs) else None
    if not isinstance(b, PackedRhs):
        bc = _qops._operand(b, "b")
        b_memory: Any = bc
    else:  # a stand-in of the packed rhs's shape and dtype that holds no memory
        bc = np.broadcast_to(np.zeros((), b.dtype), b.shape)
        b_memory = b.data
    _qops._operand_params(ac, ap, "a", "a_params")
    _qops._operand_params(bc, bp, "b", "b_params")
    _qops._per_tensor(yp, "y_params")
    per_row = _qops._is_per_axis(ap, ac.ndim, ac.ndim - 2, ac.shape[-2] if ac.ndim >= 2 else 0, "a_params", "row of a")
    per_col = _qops._is_per_axis(bp, bc.ndim, bc.ndim - 1, bc.shape[-1] if bc.ndim else 0, "b_params", "column of b")
    # matmul_int's checks, in its order: shapes, then the zero points
    batch, m, _k, n = _qops._matmul_shapes(ac.shape, bc.shape)
    a2 = ac.reshape(1, ac.shape[0]) if ac.ndim == 1 else ac
    b2 = bc.reshape(bc.shape[0], 1) if bc.ndim == 1 else bc
    za = _qops._scalar(ap.zero_point)
    zb = _qops._scalar(bp.zero_point)
    _qops._lhs_zero_point(za, a2, ac.dtype)
    zb_checked = _qops._rhs_zero_point(zb, b2, bc.dtype)
    if packed is not None and not np.array_equal(
        np.broadcast_to(zb_checked, (n,)), np.broadcast_to(packed.zero_point, (n,))
    ):
        raise SpecError(
            "zero_point_shape_mismatch",
            f"b_params.zero_point {bp.zero_point.tolist()!r} differs from the zero point the PackedRhs was packed "
            f"with ({packed.zero_point.tolist()!r})",
        )

    mult = _qops._real_multiplier(
        ap.scale.reshape(-1, 1) if per_row else _qops._scalar(ap.scale),
        bp.scale if per_col else _qops._scalar(bp.scale),
        _qops._scalar(yp.scale),
        multiplier_precision,
    )
    if not _multipliers_ok(mult, rounding):  # the spec raises, after any accumulator overflow
        b_codes = bc if packed is None else _packed_rhs_codes(packed)
        result = _qops.qlinear_matmul(
            ac,
            b_codes,
            a_params=ap,
            b_params=bp,
            y_params=yp,
            rounding=rounding,
            multiplier_precision=multiplier_precision,
            accumulator=accumulator,
        )
        return _spec_result(result, out, (ac, b_memory))

    out_shape = (*batch, m, n) if ac.ndim >= 2 else (*batch, n)
    if bc.ndim == 1:
        out_shape = out_shape[:-1]
    fmt = yp.fmt
    res = _new_or_out(out, out_shape, fmt.storage_dtype.type, (ac, b_memory))
    acc = np.empty(out_shape, np.int64 if accumulator is Accumulator.INT64 else np.int32)
    matmul_int(
        ac,
        packed if packed is not None else bc,
        lhs_zero_point=za,
        rhs_zero_point=0 if packed is not None else zb,
        accumulator=accumulator,
        out=acc,
    )
    if res.size == 0:
        return res
    zp = int(_qops._scalar(yp.zero_point))
    if acc.dtype == np.int64:  # Accumulator.INT64: the kernels take int32 accumulators
        if int(acc.min()) < -(2**31) or int(acc.max()) > _INT32_MAX:  # the spec's step: its codes or its error
            options64: dict[str, Any] = {"out_fmt": fmt, "out_zero_point": zp, "rounding": rounding}
            res[...] = _qops._requantize_matmul(acc, mult, per_row, per_col, bc.ndim, options64)
            return res
        acc = acc.astype(np.int32)
    if per_row and per_col:  # (..., M, N) with one multiplier per (row, column)
        acc2, mv, vector = acc.reshape(-1, m * n), mult.reshape(-1), True
    elif per_row and bc.ndim >= 2:  # (..., M, N): one multiplier per row of N
        acc2, mv, vector = acc.reshape(-1, n), mult.reshape(-1), False
    elif per_row or per_col:  # the last axis (M of a 1-D-b product, or N)
        acc2, mv, vector = acc.reshape(-1, acc.shape[-1]), mult.reshape(-1), True
    else:
        acc2, mv, vector = acc.reshape(1, -1), mult.reshape(-1), False
    bad = _requantize_into(acc2, res.reshape(acc2.shape), mv, vector, rounding, zp, fmt.qmin, fmt.qmax)
    if bad:  # the spec's requantization step on the same accumulators raises the spec's error
        options: dict[str, Any] = {"out_fmt": fmt, "out_zero_point": zp, "rounding": rounding}
        res[...] = _qops._requantize_matmul(acc, mult, per_row, per_col, bc.ndim, options)
    return res


def qlinear_conv(
    x: npt.ArrayLike,
    w: npt.ArrayLike | PackedConvWeight,
    /,
    *,
    x_params: QuantParams,
    w_params: QuantParams,
    y_params: QuantParams,
    bias: npt.ArrayLike | None = None,
    stride: Sequence[int] = (1, 1),
    padding: Sequence[int] = (0, 0, 0, 0),
    dilation: Sequence[int] = (1, 1),
    groups: int = 1,
    layout: Layout = Layout.NCHW,
    rounding: RequantRounding = RequantRounding.FLOAT64,
    activation_min: int | None = None,
    activation_max: int | None = None,
    multiplier_precision: Precision = Precision.FLOAT64,
    accumulator: Accumulator = Accumulator.INT32,
    out: npt.NDArray[Any] | None = None,
) -> npt.NDArray[np.integer[Any]]:
    """``refquant.qlinear_conv`` on the kernels: bit-identical codes, the same errors, plus ``out=``.

    ``w`` may be a ``PackedConvWeight`` (``pack_conv_weight``) packed with the same ``groups``; its codes
    stand for ``w`` (``w_params`` gives their scale and zero point, as for an array).  ``out``: a
    C-contiguous array of the result's shape (the input's layout) and ``y_params.fmt.storage_dtype``.

    On the VNNI path the bias and the FLOAT32 / FLOAT64 requantization run inside the conv kernel, tile by
    tile, where that cannot change a code or an error (``_fused_conv_plan``); otherwise the int32
    accumulators are computed whole, biased and requantized as described above.
    """
    args: tuple[Any, ...] = (x_params, w_params, y_params, stride, padding, dilation, groups, layout, rounding)
    args += (activation_min, activation_max, multiplier_precision, accumulator)
    plan_key = _qconv_plan_key(x, w, bias, args)
    hit = None if plan_key is None else _QCONV_PLANS.get(plan_key)
    if hit is not None:  # this call passes every check that a previous one passed: only out and the bias remain
        hit_plan, (out_shape, code_type, w_memory) = hit[0], hit[1][:3]
        xa: npt.NDArray[Any] = x  # type: ignore[assignment]  # an ndarray (the key says so)
        ba: npt.NDArray[np.int32] | None = bias  # type: ignore[assignment]
        res = _new_or_out(out, out_shape, code_type, (xa, w_memory) if ba is None else (xa, w_memory, ba))
        if _fused_bias_fits(hit_plan, ba):
            _run_fused_conv(hit_plan, xa, ba, res)
            return res
    _qops._check_rounding_options(rounding, multiplier_precision, accumulator)
    _qops._check_layout(layout)
    xp = _qops._check_params(x_params, "x_params")
    wp = _qops._check_params(w_params, "w_params")
    yp = _qops._check_params(y_params, "y_params")
    xc = _qops._operand(x, "x")
    packed = w if isinstance(w, PackedConvWeight) else None
    if packed is not None:  # the packed codes, seen in the call's layout (as conv2d_int sees them)
        wv: Any = packed.w
        if packed.layout is not layout:
            wv = wv.transpose(0, 2, 3, 1) if layout is Layout.NHWC else wv.transpose(0, 3, 1, 2)
    else:
        wv = w
    wc = _qops._operand(wv, "w")
    _qops._operand_params(xc, xp, "x", "x_params")
    _qops._operand_params(wc, wp, "w", "w_params")
    _qops._per_tensor(xp, "x_params")
    _qops._per_tensor(yp, "y_params")
    o = wc.shape[0] if wc.ndim else 0
    per_channel = _qops._is_per_axis(wp, max(wc.ndim, 2), 0, o, "w_params", "output channel of w")
    # conv2d_int's checks, in its order (for a packed weight, conv2d_int's groups check first)
    if packed is not None and (
        isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or int(groups) != packed.groups
    ):
        raise SpecError("invalid_groups", f"groups={groups!r} differs from the packed weight's groups={packed.groups}")
    zx = _qops._scalar(xp.zero_point)
    zw = _qops._scalar(wp.zero_point)
    p = _conv_args(xc, wc, zx, zw, stride, padding, dilation, groups, layout, accumulator)

    # The checks the spec makes after the convolution: handed to the spec when one would fail.
    bias_arr = None if bias is None else np.asarray(bias)
    bias_ok = bias_arr is None or (bias_arr.dtype == np.int32 and bias_arr.shape == (o,))
    mult = _qops._real_multiplier(
        _qops._scalar(xp.scale),
        wp.scale if per_channel else _qops._scalar(wp.scale),
        _qops._scalar(yp.scale),
        multiplier_precision,
    )
    fmt = yp.fmt
    bounds = _activation_bounds(fmt, activation_min, activation_max)
    w_memory = packed.w if packed is not None else wc
    inputs = (xc, w_memory) if bias_arr is None else (xc, w_memory, bias_arr)
    if not bias_ok or bounds is None or not _multipliers_ok(mult, rounding):
        result = _qops.qlinear_conv(
            xc,
            wc,
            x_params=xp,
            w_params=wp,
            y_params=yp,
            bias=bias,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            layout=layout,
            rounding=rounding,
            activation_min=activation_min,
            activation_max=activation_max,
            multiplier_precision=multiplier_precision,
            accumulator=accumulator,
        )
        return _spec_result(result, out, inputs)

    n_ = p.nchw[0]
    oh, ow = p.out_hw
    out_shape = (n_, o, oh, ow) if layout is Layout.NCHW else (n_, oh, ow, o)
    res = _new_or_out(out, out_shape, fmt.storage_dtype.type, inputs)
    zp = int(_qops._scalar(yp.zero_point))
    lo, hi = bounds
    plan = _fused_conv_plan(p, layout, packed, mult, rounding, accumulator, zp, lo, hi, res.dtype) if res.size else None
    if plan is not None and _fused_bias_fits(plan, bias_arr):
        _run_fused_conv(plan, xc, bias_arr, res)
        if plan_key is not None:
            if len(_QCONV_PLANS) >= 64:
                _QCONV_PLANS.clear()
            _QCONV_PLANS[plan_key] = (plan, (out_shape, fmt.storage_dtype.type, w_memory, args, w))
        return res
    acc = np.empty(out_shape, np.int64 if accumulator is Accumulator.INT64 else np.int32)
    conv2d_int(
        xc,
        packed if packed is not None else wc,
        x_zero_point=zx,
        w_zero_point=zw,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        layout=layout,
        accumulator=accumulator,
        out=acc,
    )
    if res.size == 0:
        return res
    channel_axis = 1 if layout is Layout.NCHW else 3
    if bias_arr is not None:
        view = [1, 1, 1, 1]
        view[channel_axis] = o
        bias_view = bias_arr.reshape(view)
        if accumulator is Accumulator.INT64:
            np.add(acc, bias_view.astype(np.int64), out=acc)  # exact
        elif accumulator is Accumulator.INT32_WRAP or _bias_fits(acc, bias_arr, p):
            np.add(acc, bias_view, out=acc)  # exact where every sum lies in int32, else modulo 2**32 (INT32_WRAP)
        else:  # INT32: the spec's error where a sum leaves int32; INT32_SATURATE: clamped
            acc[...] = _qops._add_bias(acc, bias_view.astype(np.int64), accumulator)
    if acc.dtype == np.int64:  # Accumulator.INT64: the kernels take int32 accumulators
        if int(acc.min()) < -(2**31) or int(acc.max()) > _INT32_MAX:  # the spec's step: its codes or its error
            res[...] = _fp.requantize(
                acc,
                mult,
                out_fmt=fmt,
                out_zero_point=zp,
                rounding=rounding,
                granularity=PerAxis(channel_axis) if per_channel else PER_TENSOR,
                activation_min=activation_min,
                activation_max=activation_max,
            )
            return res
        acc = acc.astype(np.int32)
    if per_channel and layout is Layout.NCHW:  # rows (n, o) of OH*OW, multiplier per row
        acc2, vector = acc.reshape(n_ * o, oh * ow), False
    elif per_channel:  # NHWC: rows of O channels, multiplier per column
        acc2, vector = acc.reshape(-1, o), True
    else:
        acc2, vector = acc.reshape(1, -1), False
    bad = _requantize_into(acc2, res.reshape(acc2.shape), mult.reshape(-1), vector, rounding, zp, lo, hi)
    if bad:  # the spec's requantize on the same accumulators raises the spec's error
        res[...] = _fp.requantize(
            acc,
            mult,
            out_fmt=fmt,
            out_zero_point=zp,
            rounding=rounding,
            granularity=PerAxis(channel_axis) if per_channel else PER_TENSOR,
            activation_min=activation_min,
            activation_max=activation_max,
        )
    return res


def _bias_bound_fits(bias: npt.NDArray[np.int32] | None, p: Any) -> bool:
    """Whether every ``acc + bias`` lies in int32 by the accumulator bound alone (``bias=None``: ``acc`` itself)."""
    b_lo, b_hi = (0, 0) if bias is None or bias.size == 0 else (int(bias.min()), int(bias.max()))
    _o, cg, kh, kw = p.oihw
    x_info, w_info = np.iinfo(p.x.dtype), np.iinfo(p.w.dtype)
    mx = max(int(p.zx) - int(x_info.min), int(x_info.max) - int(p.zx))
    zw = p.zw.astype(np.int64)
    mw = int(np.max(np.maximum(zw - int(w_info.min), int(w_info.max) - zw)))
    bound = cg * kh * kw * mx * mw  # |acc| <= bound
    return bool(-bound + b_lo >= -(2**31) and bound + b_hi <= _INT32_MAX)


def _bias_fits(acc: npt.NDArray[np.int32], bias: npt.NDArray[np.int32], p: Any) -> bool:
    """Whether ``acc + bias`` certainly lies in int32: from the accumulator bound, else from ``acc``'s range."""
    if bias.size == 0 or _bias_bound_fits(bias, p):
        return True
    b_lo, b_hi = int(bias.min()), int(bias.max())
    return int(acc.min()) + b_lo >= -(2**31) and int(acc.max()) + b_hi <= _INT32_MAX


_UNSIGNED_VIEW = {np.dtype(np.int8): np.uint8, np.dtype(np.int16): np.uint16}
_FUSED_CODE_DTYPES = frozenset(np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16))


class _FusedConv(NamedTuple):
    """What a fused QLinearConv call needs beyond its input, bias and output: fixed by the weights, the
    parameters, the options and the input's dtype and shape (``_fused_conv_plan``)."""

    p: Any  # the checked conv arguments, with a placeholder for x
    layout: Layout
    wrap: bool  # Accumulator.INT32_WRAP: the bias is added modulo 2**32 whatever its range
    bound: int  # the accumulator bound: |acc| <= bound
    operands: tuple[Any, ...]  # (zx', taps_h, taps_w, segs, use_rs, init, wzp) of _conv_operands
    panels: npt.NDArray[np.int8]
    m32: npt.NDArray[np.float32]
    m64: npt.NDArray[np.float64]
    float64: bool
    zp: int
    lo: int
    hi: int
    nchunks: int


def _fused_conv_plan(
    p: Any,
    layout: Layout,
    packed: PackedConvWeight | None,
    mult: npt.NDArray[np.float64],
    rounding: RequantRounding,
    accumulator: Accumulator,
    zp: int,
    lo: int,
    hi: int,
    res_dtype: np.dtype[Any],
) -> _FusedConv | None:
    """The plan of a QLinearConv with the bias and the requantization fused into the VNNI conv kernel; None where
    fusing does not apply.

    Applies on the VNNI path (at least 8 output channels per group) for the FLOAT32 and FLOAT64
    roundings into 8- or 16-bit codes, when the accumulator is INT32_WRAP (the int32 sums and the bias
    addition wrap, as the definition says) or when the accumulator bound plus the bias range lies in
    int32 (``_fused_bias_fits``, checked per call: then every accumulator gives the exact sum and no
    error is possible).  The kernel computes each int32 tile as ``conv2d_int`` does and requantizes it in
    place with the arithmetic of the requantize kernels: the codes are those of the unfused pipeline.
    """
    if rounding not in (RequantRounding.FLOAT32, RequantRounding.FLOAT64) or res_dtype not in _FUSED_CODE_DTYPES:
        return None
    o, cg, kh, kw = p.oihw
    g = p.groups
    if o // g < _VNNI_MIN_CHANNELS or kernel_path() is not KernelPath.VNNI:
        return None
    if packed is None:
        packed = PackedConvWeight(np.ascontiguousarray(p.w), layout, g)
    _vnni, zx, _zw, bound, taps_h, taps_w, segs, use_rs, init, wzp = _conv_operands(p, packed, True)
    m64 = np.asarray(mult, np.float64).reshape(-1)
    m64 = np.full(o, m64[0]) if m64.shape[0] != o else np.ascontiguousarray(m64)
    n_ = p.nchw[0]
    oh, ow = p.out_hw
    bp = packed.vnni_panels()
    items = n_ * g * bp.shape[1] * (-(-(oh * ow) // _conv.TILE_ROWS_VNNI))
    nchunks = _conv_chunks(n_ * oh * ow * o * cg * kh * kw, items)
    return _FusedConv(
        p._replace(x=_NO_ARRAY), layout, accumulator is Accumulator.INT32_WRAP, bound,
        (zx, taps_h, taps_w, segs, use_rs, init, wzp), bp, m64.astype(np.float32), m64,
        rounding is RequantRounding.FLOAT64, zp, lo, hi, nchunks,
    )  # fmt: skip


def _fused_bias_fits(plan: _FusedConv, bias: npt.NDArray[np.int32] | None) -> bool:
    """Whether the fused kernel may add ``bias``: always under INT32_WRAP, else when bound + bias lies in int32."""
    if plan.wrap:
        return True
    b_lo, b_hi = (0, 0) if bias is None or bias.size == 0 else (int(bias.min()), int(bias.max()))
    return -plan.bound + b_lo >= -(2**31) and plan.bound + b_hi <= _INT32_MAX


def _run_fused_conv(plan: _FusedConv, x: npt.NDArray[Any], bias: npt.NDArray[np.int32] | None, res: Any) -> None:
    """The fused QLinearConv of ``x`` into ``res`` (the caller checked ``_fused_bias_fits``)."""
    p = plan.p._replace(x=x)
    zx, taps_h, taps_w, segs, use_rs, init, wzp = plan.operands
    o, cg, _kh, _kw = p.oihw
    g = p.groups
    n_ = p.nchw[0]
    oh, ow = p.out_hw
    sh, sw = p.stride
    xp = _conv_input(p, plan.layout, zx)
    cg4 = -(-cg // 4) * 4
    cs = np.zeros((n_, xp.shape[1], xp.shape[2], g) if use_rs else (1, 1, 1, 1), np.int32)
    if use_rs:
        _conv.channel_sums(xp, g, cg4, cs)
    bias32 = np.zeros(o, np.int32) if bias is None else np.ascontiguousarray(bias, np.int32)
    pixels = oh * ow
    # Signed codes are written through an unsigned view of the same width (the kernel's store truncates to the
    # width, and every value lies in the format's range, so the bytes are the signed codes): one compiled kernel
    # per width and layout instead of two.
    codes = res.view(_UNSIGNED_VIEW[res.dtype]) if res.dtype.kind == "i" else res
    # NCHW 8-bit codes: written NHWC into a scratch (contiguous stores), then transposed in 16 x 16 blocks
    # (64->256 1x1 at 56x56: 540 -> ~270 us; the kernel's own strided stores wrote one byte at a time)
    nchw8 = plan.layout is Layout.NCHW and codes.itemsize == 1 and codes.flags.c_contiguous
    if plan.layout is Layout.NHWC:
        dst = codes.reshape(n_, pixels, o)
    elif nchw8:
        dst = _scratch("qconv_codes", (n_, pixels, o), codes.dtype.type)
    else:
        dst = codes.reshape(n_, o, pixels).transpose(0, 2, 1)
    _conv.conv_vnni_requant(
        xp, plan.panels, segs, taps_h, taps_w, oh, ow, sh, sw, g, cg4, o // g, init, wzp, cs, use_rs, plan.nchunks,
        bias32, plan.m32, plan.m64, plan.float64, plan.zp, plan.lo, plan.hi, dst,
    )  # fmt: skip
    if nchw8:
        _conv.nhwc_to_nchw(dst, codes.reshape(n_, o, pixels))


# The fused plans of calls with a packed weight, keyed by the identities of the (immutable) parameter objects and
# the packed weight, the input's and bias's dtypes and shapes, and the options: a call that matches one passed
# every check before (none of which depends on anything else) and goes straight to the kernel.  Each entry holds
# the keyed objects, so their ids stay theirs while the entry lives.
_QCONV_PLANS: dict[tuple[Any, ...], tuple[_FusedConv, tuple[Any, ...]]] = {}


def _qconv_plan_key(x: object, w: object, bias: object, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The memo key of a qlinear_conv call, or None when the call is not of the plain kind the memo takes.

    ``args``: (x_params, w_params, y_params, stride, padding, dilation, groups, layout, rounding, activation_min,
    activation_max, multiplier_precision, accumulator) as passed."""
    if type(x) is not np.ndarray or type(w) is not PackedConvWeight:
        return None
    if bias is not None and type(bias) is not np.ndarray:
        return None
    xq, wq, yq, stride, padding, dilation, groups, *options = args
    if type(xq) is not QuantParams or type(wq) is not QuantParams or type(yq) is not QuantParams:
        return None
    if (
        type(groups) is not int
        or type(stride) is not tuple
        or type(padding) is not tuple
        or type(dilation) is not tuple
    ):
        return None
    for v in (*stride, *padding, *dilation, *options):  # ints, enums and None only: no 1.0 standing for 1
        if type(v) is not int and v is not None and not isinstance(v, Enum):
            return None
    bias_key = None if bias is None else (bias.dtype, bias.shape)
    key = (id(xq), id(wq), id(yq), id(w), x.dtype, x.shape, bias_key, stride, padding, dilation, groups, *options)
    return (*key, kernel_path(), _numba.get_num_threads())  # the plan holds the kernel family and the chunking


# ==================================================================================================
# low-bit products: xnor_matmul, binary_conv2d, ternary_matmul, shift_matmul (kernels in
# refquant.kernels.lowbit)
#
# Validation: the spec's own checks, in the spec's order; where the spec would raise from a check that
# is not a plain helper (overlapping ternary planes, an exact sum that may leave the accumulator), the
# spec function itself is called and raises its own error (or computes the result).

_LOWBIT_SERIAL_WORDS = 1 << 16  # word operations below which a low-bit kernel runs on the calling thread


def _lowbit_serial(words: int) -> bool:
    return words < max(_LOWBIT_SERIAL_WORDS, parallel_threshold() >> 5)


def _last_word_mask(k: int) -> np.uint64:
    return np.uint64((1 << (k % 64)) - 1) if k % 64 else np.uint64(2**64 - 1)


def _cleared(words: npt.NDArray[np.uint64], k: int, transpose: bool) -> npt.NDArray[np.uint64]:
    """A C-contiguous copy of packed words (R, W) (transposed to (W, R) if asked) with the padding bits cleared.

    The copy is a per-thread scratch buffer (``_scratch``): valid until the next call with the same ``transpose``.
    """
    rows, nw = words.shape
    copy = _scratch(f"lowbit_cleared_{transpose}", (nw, rows) if transpose else (rows, nw), np.uint64)
    _lowbit.clear_padding(words, _last_word_mask(k), transpose, copy)
    return copy


def xnor_matmul(
    lhs_bits: npt.ArrayLike, rhs_bits: npt.ArrayLike, k: int, /, *, out: npt.NDArray[Any] | None = None
) -> npt.NDArray[np.int32]:
    """``refquant.xnor_matmul`` on the kernels: bit-identical int32 ``(M, N)``, the same errors, plus ``out=``.

    The padding bits of both operands are cleared on copies (the rhs is copied transposed, word-major), so
    ``popcount(a XOR b)`` is the spec's masked count whatever the padding bits held.
    """
    a, b, n = _bin._packed_operands(lhs_bits, rhs_bits, k, "xnor_matmul")
    if n > _INT32_MAX:  # k - 2 * popcount may leave int32: the spec decides
        return _spec_result(_bin.xnor_matmul(a, b, n), out, (lhs_bits, rhs_bits, a, b))
    res = _new_or_out(out, (a.shape[0], b.shape[0]), np.int32, (lhs_bits, rhs_bits, a, b))
    if res.size == 0:
        return res
    if n == 0:
        res[...] = 0
        return res
    ac = _cleared(a, n, False) if n % 64 else np.ascontiguousarray(a)  # the kernel never writes it
    bt = _cleared(b, n, True)
    serial = _lowbit_serial(res.size * a.shape[1]) or a.shape[0] <= _lowbit.RB
    (_lowbit.xnor_gemm_serial if serial else _lowbit.xnor_gemm)(ac, bt, n, res)
    return res


def ternary_matmul(
    lhs_planes: object, rhs_planes: object, k: int, /, *, out: npt.NDArray[Any] | None = None
) -> npt.NDArray[np.int32]:
    """``refquant.ternary_matmul`` on the kernels: bit-identical int32 ``(M, N)``, the same errors, plus ``out=``.

    Each operand becomes a non-zero plane ``plus | minus`` (padding cleared) and its minus plane; the product of
    two codes is non-zero where both non-zero bits are set, and negative where the minus bits differ.
    """
    pa, ma = _ter._planes(lhs_planes, "lhs_planes")
    pb, mb = _ter._planes(rhs_planes, "rhs_planes")
    pa, pb, n = _bin._packed_operands(pa, pb, k, "ternary_matmul")
    ma, mb, _ = _bin._packed_operands(ma, mb, _bin._count(k), "ternary_matmul")
    (m, nw), nn = pa.shape, pb.shape[0]
    nza, sa = _scratch("lowbit_nza", (m, nw), np.uint64), _scratch("lowbit_sa", (m, nw), np.uint64)
    nzbt, sbt = _scratch("lowbit_nzbt", (nw, nn), np.uint64), _scratch("lowbit_sbt", (nw, nn), np.uint64)
    overlap = _lowbit.ternary_planes(pa, ma, _last_word_mask(n), False, nza, sa) if nw else 0
    overlap += _lowbit.ternary_planes(pb, mb, _last_word_mask(n), True, nzbt, sbt) if nw else 0
    if overlap or n > _INT32_MAX:  # the spec raises ternary_planes_overlap (or decides the accumulator)
        result = _ter.ternary_matmul(lhs_planes, rhs_planes, k)
        return _spec_result(result, out, (pa, ma, pb, mb))
    res = _new_or_out(out, (m, nn), np.int32, (pa, ma, pb, mb))
    if res.size == 0:
        return res
    if n == 0:
        res[...] = 0
        return res
    serial = _lowbit_serial(3 * res.size * pa.shape[1]) or pa.shape[0] <= _lowbit.RB
    (_lowbit.ternary_gemm_serial if serial else _lowbit.ternary_gemm)(nza, sa, nzbt, sbt, res)
    return res


def binary_conv2d(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    /,
    *,
    stride: Sequence[int] = (1, 1),
    padding: Sequence[int] = (0, 0, 0, 0),
    dilation: Sequence[int] = (1, 1),
    padding_value: BinaryPadding = BinaryPadding.ZERO,
    out: npt.NDArray[Any] | None = None,
) -> npt.NDArray[np.int32]:
    """``refquant.binary_conv2d`` on the kernels: bit-identical int32 NCHW, the same errors, plus ``out=``.

    The channels of every input pixel and weight tap are
    packed into words; a tap inside the input contributes ``C - 2 * popcount(x XOR w)``, a padded tap the value
    it holds times the exact channel sum of its weights.
    """
    pv = padding_value
    if not isinstance(pv, BinaryPadding):
        raise SpecError("invalid_option", f"padding_value must be a BinaryPadding, got {pv!r}")
    for arr, what in ((np.asarray(x), "x"), (np.asarray(w), "w")):
        if arr.dtype != np.dtype(np.int8):
            raise SpecError("unsupported_dtype", f"{what} must be an int8 array of -1 / +1, got dtype {arr.dtype}")
    args = _qops._conv_args(x, w, 0, 0, stride, padding, dilation, 1, Layout.NCHW, Accumulator.INT32)
    xa = _bin._pm_one(args.x, "x")
    wa = _bin._pm_one(args.w, "w")
    batch, c, _h, _w = args.nchw
    o, _cg, kh, kw = args.oihw
    oh, ow = args.out_hw
    if c * kh * kw > _INT32_MAX:  # a sum may leave int32: the spec decides
        result = _bin.binary_conv2d(xa, wa, stride=stride, padding=padding, dilation=dilation, padding_value=pv)
        return _spec_result(result, out, (x, w))
    res = _new_or_out(out, (batch, o, oh, ow), np.int32, (x, w))
    if res.size == 0:
        return res
    xb = np.ascontiguousarray(_bin._pack_mask(np.transpose(xa == 1, (0, 2, 3, 1))))  # (B, H, W, Wc)
    wbt = np.ascontiguousarray(np.transpose(_bin._pack_mask(np.transpose(wa == 1, (0, 2, 3, 1))), (1, 2, 3, 0)))
    wsum = np.ascontiguousarray(np.transpose(wa.sum(axis=1, dtype=np.int64), (1, 2, 0)))  # (KH, KW, O)
    fill = {BinaryPadding.ZERO: 0, BinaryPadding.PLUS_ONE: 1, BinaryPadding.MINUS_ONE: -1}[pv]
    (sh, sw), (pt, _pb, pl, _pr), (dh, dw) = args.stride, args.padding, args.dilation
    geom = np.array([sh, sw, pt, pl, dh, dw], np.int64)
    serial = _lowbit_serial(res.size * kh * kw * xb.shape[3]) or batch * oh < 2
    (_lowbit.binary_conv_serial if serial else _lowbit.binary_conv)(xb, wbt, wsum, c, fill, geom, res)
    return res


def shift_matmul(
    lhs: npt.ArrayLike, w_codes: npt.ArrayLike, fmt: LogFormat, /, *, out: npt.NDArray[Any] | None = None
) -> npt.NDArray[np.int64]:
    """``refquant.shift_matmul`` on the kernels: bit-identical int64 ``(M, N)``, the same errors, plus ``out=``.

    The kernel runs where the spec's own bound proves every term and partial sum inside int64
    (``bit_length(max |lhs|) + max shift + bit_length(K) <= 62``); past it the spec computes (exactly, with
    Python integers) or raises ``accumulator_overflow``.
    """
    f = _log._check_fmt(fmt)
    la = np.asarray(lhs)
    if la.dtype.kind not in "iu" or la.dtype.itemsize > 4:
        return _spec_result(_log.shift_matmul(lhs, w_codes, f), out, (lhs, w_codes))  # raises unsupported_dtype
    field, negative = _log._decode_fields(w_codes, f)
    if la.ndim != 2 or field.ndim != 2 or la.shape[1] != field.shape[0]:
        return _spec_result(_log.shift_matmul(lhs, w_codes, f), out, (lhs, w_codes))  # raises shape_mismatch
    m, kk = la.shape
    n = field.shape[1]
    shift = np.where(field == 0, 0, field + (f.e_min - 1 + f.fraction_bits)).astype(np.int64)
    sign = np.where(field == 0, 0, np.where(negative, -1, 1)).astype(np.int64)
    x = np.ascontiguousarray(la, dtype=np.int64)
    max_x = int(np.max(np.abs(x))) if x.size else 0
    max_shift = int(np.max(shift)) if shift.size else 0
    if kk != 0 and max_x != 0 and max_x.bit_length() + max_shift + kk.bit_length() > 62:
        return _spec_result(_log.shift_matmul(lhs, w_codes, f), out, (lhs, w_codes))
    res = _new_or_out(out, (m, n), np.int64, (lhs, w_codes))
    if res.size == 0:
        return res
    if kk == 0 or max_x == 0:
        res[...] = 0
        return res
    serial = _lowbit_serial(res.size * kk) or m < 2
    (_lowbit.shift_gemm_serial if serial else _lowbit.shift_gemm)(x, shift, sign, res)
    return res
