"""Binary (1-bit) quantization: sign with a named sign(0), scaling, bit packing, XNOR-popcount products, STE windows.

Definition
----------
``binarize(x)``: ``+1`` where ``x > 0``, ``-1`` where ``x < 0``; a zero (``+0.0`` or ``-0.0``) becomes the value
named by ``SignZero``: ``POSITIVE`` (``+1``: BinaryConnect / BNN ``x >= 0``, larq ``ste_sign``, ggml Q1_0),
``NEGATIVE`` (``-1``: the ``2 * (x > 0) - 1`` idiom) or ``ZERO`` (``0``: ``torch.sign``, Lua Torch ``sign`` in the
official XNOR-Net code).  int8 out.  NaN is ``SpecError("nan_input")``; ``+-inf`` give ``+-1``.

``binarize_stochastic(x, uniform=u)`` (BinaryConnect's stochastic rule with the caller's draws):
``p = min(max(fl64(fl64(x) + 1) / 2, 0), 1)`` in float64 (the hard sigmoid), then ``+1`` where ``u < p`` and ``-1``
otherwise.  ``u`` has ``x``'s shape and lies in ``[0, 1)``; it is converted to float64 exactly.

``binary_scale(w, axis=None)`` (XNOR-Net's ``alpha``): the mean of ``|w|`` over the whole tensor, or for each index
of ``axis`` over all other axes.  The sum of ``|w|`` is the correctly rounded float64 value of the exact sum
(``math.fsum``, independent of summation order), divided by the element count in float64, then rounded once to
float32.  Every implementation can therefore reproduce it bit for bit.

``pack_bits(b)``: ``b`` of shape ``(..., K)`` in ``{-1, +1}`` becomes ``(..., W)`` uint64 words, ``W = ceil(K / 64)``:
element ``k`` is bit ``k % 64`` (value ``2**(k % 64)``) of word ``k // 64``, ``+1 -> 1`` and ``-1 -> 0``; the
``64 * W - K`` padding bits of the last word are 0.  ``unpack_bits(words, k)`` is the exact inverse.

``xnor_matmul(lhs_bits, rhs_bits, k)``: ``lhs_bits`` ``(M, W)`` holds the rows of a ``{-1, +1}`` matrix ``A`` and
``rhs_bits`` ``(N, W)`` the columns of ``B`` (the packed transpose).  With ``mask`` the ``k`` valid bits::

    out[m, n] = k - 2 * popcount((lhs_bits[m] XOR rhs_bits[n]) AND mask)  =  sum_k A[m, k] * B[k, n]

exactly, for every ``k``.  Padding bits are masked: whatever they hold, they never reach the result (an unmasked
XNOR count would add one match per padding bit).  int32 out.

``binary_conv2d(x, w)``: the 2-D cross-correlation of ``{-1, +1}`` int8 ``x`` (NCHW) and ``w`` (OIHW), groups 1,
with the geometry of ``conv2d_int`` (``padding = (top, bottom, left, right)``).  ``BinaryPadding`` names the value of
a padded tap: ``ZERO`` (the tap contributes 0: the sum runs over valid taps only; a bit encoding cannot hold 0, so
a bit-domain kernel computes ``n_valid - 2 * popcount((x XOR w) AND valid)``, or pads with one of the two codes and
subtracts the padded taps' contribution, as larq compute-engine's zero-padding correction does), ``MINUS_ONE`` or
``PLUS_ONE`` (the tap holds that value and is multiplied like any other; larq's one-padding is ``PLUS_ONE``).

``binary_matmul_scaled(dot, alpha, beta)``: ``out[m, n] = fl32(fl32(float32(dot[m, n]) * alpha[n]) * beta[m])``:
the int32 dot converted to float32 (exact while ``|dot| <= 2**24``, else round half to even), multiplied by the
float32 per-column ``alpha``, then (if given) by the float32 per-row ``beta``, each product one IEEE float32
rounding, in that order.  An overflow gives ``+-inf`` as IEEE float32 does.

STE windows (the gradient that a straight-through estimator passes back through the sign):
``SteWindow.CLOSED`` keeps ``|x| <= 1`` (BNN, larq ``ste_sign``, the gradient of ``torch.clamp(x, -1, 1)``);
``SteWindow.OPEN`` keeps ``|x| < 1`` (the official XNOR-Net ``BinActiveZ``, the gradient of
``torch.nn.functional.hardtanh``).  ``ste_grad`` returns ``grad`` inside the window and ``+0.0`` outside.

Errors
------
``SpecError``: ``"nan_input"``, ``"unsupported_dtype"``, ``"invalid_option"``, ``"shape_mismatch"``,
``"uniform_not_finite"``, ``"uniform_out_of_range"``, ``"empty_input"`` (a mean over no elements),
``"scale_not_finite"`` (an infinite element in a mean, a mean or scale that overflows float32, a non-finite
``alpha`` / ``beta``), ``"scale_shape_mismatch"``, ``"axis_out_of_range"``, ``"binary_zero_not_encodable"`` (a 0
where only ``-1`` / ``+1`` can be encoded), ``"code_out_of_range"`` (any other value), ``"invalid_count"``,
``"count_exceeds_packed"``, ``"packed_too_long"``, ``"nonzero_padding"``, and ``binary_conv2d``'s geometry
conditions shared with ``conv2d_int`` (``"invalid_stride"``, ``"invalid_padding"``, ``"invalid_dilation"``,
``"empty_output"``).  ``UnpredictableError("accumulator_overflow")`` for a dot product outside int32 (``k > 2**31``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import Enum, unique
from typing import Any

import numpy as np
import numpy.typing as npt

from refquant.errors import SpecError
from refquant.spec._checks import first_index
from refquant.spec.granularity import normalize_axis
from refquant.spec.integer_ops import Accumulator, Layout, _conv_args, _finish, conv2d_int

__all__ = [
    "BinaryPadding",
    "SignZero",
    "SteWindow",
    "binarize",
    "binarize_stochastic",
    "binary_conv2d",
    "binary_matmul_scaled",
    "binary_scale",
    "pack_bits",
    "ste_grad",
    "ste_mask",
    "unpack_bits",
    "xnor_matmul",
]

WORD_BITS = 64
I8Array = npt.NDArray[np.int8]
U64Array = npt.NDArray[np.uint64]
F32Array = npt.NDArray[np.float32]
_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


@unique
class SignZero(Enum):
    """What ``binarize`` makes of a zero (``+0.0`` and ``-0.0`` alike)."""

    POSITIVE = "positive"
    NEGATIVE = "negative"
    ZERO = "zero"


@unique
class BinaryPadding(Enum):
    """The value of a padded tap in ``binary_conv2d``."""

    ZERO = "zero"
    MINUS_ONE = "minus_one"
    PLUS_ONE = "plus_one"


@unique
class SteWindow(Enum):
    """Where the straight-through estimator passes the gradient: ``|x| <= 1`` (CLOSED) or ``|x| < 1`` (OPEN)."""

    CLOSED = "closed"
    OPEN = "open"


# --- input checks (shared with ternary) -------------------------------------------------------------------------


def _real_array(x: npt.ArrayLike, what: str) -> npt.NDArray[Any]:
    """A float or integer array in native byte order, NaN-free (``nan_input``)."""
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise SpecError("unsupported_dtype", f"{what} must be a float or integer array, got dtype {arr.dtype}")
    arr = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    if np.issubdtype(arr.dtype, np.floating):
        nan = np.isnan(arr)
        if np.any(nan):
            raise SpecError("nan_input", f"{what} holds NaN at index {first_index(nan)}")
    return arr


def _float_array(x: npt.ArrayLike, what: str) -> npt.NDArray[np.floating[Any]]:
    """A float16/float32/float64 array in native byte order, NaN-free (``nan_input``)."""
    arr = np.asarray(x)
    if arr.dtype.newbyteorder("=") not in _FLOAT_DTYPES:
        raise SpecError(
            "unsupported_dtype", f"{what} must be a float16, float32 or float64 array, got dtype {arr.dtype}"
        )
    return _real_array(arr, what)


def _finite_array(x: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    """A float array without NaN or infinity (an infinite element has no finite mean), as float64 (exact)."""
    arr = _float_array(x, what)
    inf = np.isinf(arr)
    if np.any(inf):
        idx = first_index(inf)
        raise SpecError(
            "scale_not_finite", f"{what} holds {arr[idx]!r} at index {idx}: its mean |{what}| is not finite"
        )
    return arr.astype(np.float64)


def _axis(axis: object, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise SpecError("axis_out_of_range", f"axis must be an int or None, got {axis!r}")
    return normalize_axis(int(axis), ndim)


def _groups(w: npt.NDArray[np.float64], axis: object | None, what: str) -> list[npt.NDArray[np.float64]]:
    """The groups of elements that share a parameter: the whole tensor, or one per index of ``axis``."""
    if axis is None:
        groups = [w.reshape(-1)]
    else:
        if w.ndim == 0:
            raise SpecError("axis_out_of_range", f"axis {axis} given for a 0-d {what}")
        ax = _axis(axis, w.ndim)
        moved = np.moveaxis(w, ax, 0)
        groups = [moved[c].reshape(-1) for c in range(moved.shape[0])]
    for c, g in enumerate(groups):
        if g.size == 0:
            where = f"index {c} of axis {axis}" if axis is not None else "the tensor"
            raise SpecError(
                "empty_input", f"{what} of shape {w.shape} has no element for {where}: its mean is undefined"
            )
    return groups


def _exact_sum(values: npt.NDArray[np.float64], what: str) -> float:
    """The exact sum of finite float64 values, correctly rounded to float64 (order-independent)."""
    try:
        return math.fsum(values.tolist())
    except OverflowError:
        raise SpecError("scale_not_finite", f"the sum of |{what}| overflows float64") from None


def _to_float32(value: float, what: str) -> np.float32:
    """Round a finite float64 to float32 (half to even); an overflow is ``scale_not_finite``."""
    with np.errstate(over="ignore"):
        f = np.float32(value)
    if not np.isfinite(f):
        raise SpecError("scale_not_finite", f"{what} = {value!r} overflows float32")
    return f


def _mean_abs(values: npt.NDArray[np.float64], what: str) -> float:
    """``fl64(fsum(|values|)) / len(values)`` in float64 (values finite, not empty)."""
    return _exact_sum(np.abs(values), what) / values.size


def _count(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise SpecError("invalid_count", f"k must be an int >= 0, got {k!r}")
    return int(k)


def _words(k: int) -> int:
    return -(-k // WORD_BITS)


def _u64(value: npt.ArrayLike, what: str) -> U64Array:
    arr = np.asarray(value)
    if arr.dtype.kind != "u" or arr.dtype.itemsize != 8:
        raise SpecError("unsupported_dtype", f"{what} must be a uint64 array, got dtype {arr.dtype}")
    return arr.astype(np.uint64, copy=False)


def _valid_mask(k: int) -> U64Array:
    """One word per packed word: all ones, except the last word of a ``k`` that is not a multiple of 64."""
    mask = np.full(_words(k), np.iinfo(np.uint64).max, np.uint64)
    if k % WORD_BITS:
        mask[-1] = np.uint64((1 << (k % WORD_BITS)) - 1)
    return mask


def _pack_mask(bits: npt.NDArray[np.bool_]) -> U64Array:
    """Pack booleans ``(..., K)`` LSB first into ``(..., ceil(K / 64))`` uint64 words, padding bits 0."""
    k = bits.shape[-1]
    w = _words(k)
    padded = np.zeros((*bits.shape[:-1], w * WORD_BITS), np.bool_)
    padded[..., :k] = bits
    packed = np.packbits(padded, axis=-1, bitorder="little")  # byte j holds elements 8j .. 8j+7, first in bit 0
    return np.ascontiguousarray(packed).view(np.dtype("<u8")).astype(np.uint64)


def _pm_one(value: npt.ArrayLike, what: str) -> I8Array:
    """An int8 array of -1 / +1 (``binary_zero_not_encodable`` for a 0, ``code_out_of_range`` for anything else)."""
    arr = np.asarray(value)
    if arr.dtype != np.dtype(np.int8):
        raise SpecError("unsupported_dtype", f"{what} must be an int8 array of -1 / +1, got dtype {arr.dtype}")
    zero = arr == 0
    if np.any(zero):
        raise SpecError(
            "binary_zero_not_encodable",
            f"{what} holds 0 at index {first_index(zero)}: a bit encodes only -1 or +1",
        )
    bad = (arr != 1) & (arr != -1)
    if np.any(bad):
        idx = first_index(bad)
        raise SpecError("code_out_of_range", f"{what} holds {int(arr[idx])} at index {idx}, not -1 or +1")
    return arr


# --- binarization -----------------------------------------------------------------------------------------------


def binarize(x: npt.ArrayLike, /, *, sign_zero: SignZero = SignZero.POSITIVE) -> I8Array:
    """``+1`` where ``x > 0``, ``-1`` where ``x < 0``, and ``sign_zero``'s value at ``+-0`` (int8, ``x``'s shape).

    >>> import numpy as np
    >>> x = np.array([0.0, -0.0, 1e-30, -1e-30], np.float32)
    >>> binarize(x).tolist(), binarize(x, sign_zero=SignZero.ZERO).tolist()
    ([1, 1, 1, -1], [0, 0, 1, -1])
    """
    if not isinstance(sign_zero, SignZero):
        raise SpecError("invalid_option", f"sign_zero must be a SignZero, got {sign_zero!r}")
    xa = _real_array(x, "x")
    zero_value = {SignZero.POSITIVE: 1, SignZero.NEGATIVE: -1, SignZero.ZERO: 0}[sign_zero]
    out = np.where(xa > 0, 1, np.where(xa < 0, -1, zero_value))
    return np.asarray(out, dtype=np.int8)


def binarize_stochastic(x: npt.ArrayLike, /, *, uniform: npt.ArrayLike) -> I8Array:
    """``+1`` where ``uniform < p``, ``p = clip((x + 1) / 2, 0, 1)`` in float64, else ``-1`` (int8).

    >>> import numpy as np
    >>> x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0], np.float32)  # p = 0, 0.25, 0.5, 0.75, 1
    >>> binarize_stochastic(x, uniform=np.full(5, 0.5)).tolist()
    [-1, -1, -1, 1, 1]
    """
    xa = _real_array(x, "x")
    u = np.asarray(uniform)
    if not np.issubdtype(u.dtype, np.floating):
        raise SpecError("unsupported_dtype", f"uniform must be a float array, got dtype {u.dtype}")
    if u.shape != xa.shape:
        raise SpecError("shape_mismatch", f"uniform has shape {u.shape}, x has shape {xa.shape}: they must be equal")
    u64 = u.astype(np.float64)
    if not np.all(np.isfinite(u64)):
        raise SpecError(
            "uniform_not_finite", f"uniform holds a non-finite draw at index {first_index(~np.isfinite(u64))}"
        )
    outside = (u64 < 0) | (u64 >= 1)
    if np.any(outside):
        idx = first_index(outside)
        raise SpecError("uniform_out_of_range", f"uniform holds {u64[idx]!r} at index {idx}, outside [0, 1)")
    with np.errstate(over="ignore", invalid="ignore"):
        p = np.clip((xa.astype(np.float64) + 1.0) / 2.0, 0.0, 1.0)
    return np.asarray(np.where(u64 < p, 1, -1), dtype=np.int8)


def binary_scale(w: npt.ArrayLike, /, *, axis: int | None = None) -> F32Array:
    """XNOR-Net's ``alpha``: ``float32(fsum(|w|) / n)`` over the tensor (0-d) or per index of ``axis`` (1-D).

    >>> import numpy as np
    >>> w = np.array([[1.0, -3.0], [0.5, 0.0]], np.float32)
    >>> binary_scale(w).tolist(), binary_scale(w, axis=0).tolist()
    (1.125, [2.0, 0.25])
    """
    wa = _finite_array(w, "w")
    means = [_to_float32(_mean_abs(g, "w"), "mean |w|") for g in _groups(wa, axis, "w")]
    if axis is None:
        return np.asarray(means[0], dtype=np.float32)
    return np.asarray(means, dtype=np.float32).reshape(-1)


# --- bit packing and the XNOR-popcount product --------------------------------------------------------------------


def pack_bits(b: npt.ArrayLike, /) -> U64Array:
    """Pack ``{-1, +1}`` int8 ``(..., K)`` into ``(..., ceil(K / 64))`` uint64: element k in bit k % 64, ``+1 -> 1``.

    >>> import numpy as np
    >>> pack_bits(np.array([1, -1, 1, 1, -1], np.int8)).tolist()  # bits 0, 2, 3: 1 + 4 + 8
    [13]
    """
    arr = _pm_one(b, "b")
    if arr.ndim == 0:
        raise SpecError("shape_mismatch", "b must have at least one dimension (the packed axis K is the last)")
    return _pack_mask(arr == 1)


def unpack_bits(words: npt.ArrayLike, k: int, /) -> I8Array:
    """The inverse of ``pack_bits``: ``(..., ceil(k / 64))`` uint64 words to ``(..., k)`` int8 ``{-1, +1}``.

    The word count must be exactly ``ceil(k / 64)`` and the padding bits 0 (it never guesses).

    >>> import numpy as np
    >>> unpack_bits(np.array([13], np.uint64), 5).tolist()
    [1, -1, 1, 1, -1]
    """
    arr = _u64(words, "words")
    if arr.ndim == 0:
        raise SpecError("shape_mismatch", "words must have at least one dimension (the word axis is the last)")
    n = _count(k)
    need = _words(n)
    have = arr.shape[-1]
    if have < need:
        raise SpecError("count_exceeds_packed", f"k = {n} needs {need} words, words has {have}")
    if have > need:
        raise SpecError("packed_too_long", f"k = {n} needs {need} words, words has {have}")
    if n % WORD_BITS:
        pad = arr[..., -1] & ~np.uint64((1 << (n % WORD_BITS)) - 1)
        if np.any(pad != 0):
            idx = first_index(pad != 0)
            raise SpecError("nonzero_padding", f"the last word at index {idx} has padding bits set beyond k = {n}")
    as_bytes = np.ascontiguousarray(arr.astype(np.dtype("<u8"))).view(np.uint8)
    bits = np.unpackbits(as_bytes, axis=-1, bitorder="little")[..., :n]
    return np.asarray(np.where(bits == 1, 1, -1), dtype=np.int8)


def _packed_operands(lhs: npt.ArrayLike, rhs: npt.ArrayLike, k: object, what: str) -> tuple[U64Array, U64Array, int]:
    """The checks of ``xnor_matmul`` in order: dtypes, ranks, ``k``, word counts."""
    a = _u64(lhs, f"{what} lhs")
    b = _u64(rhs, f"{what} rhs")
    if a.ndim != 2 or b.ndim != 2:
        raise SpecError("shape_mismatch", f"{what} needs 2-D packed operands, got shapes {a.shape} and {b.shape}")
    n = _count(k)
    need = _words(n)
    if a.shape[1] != need or b.shape[1] != need:
        raise SpecError(
            "shape_mismatch",
            f"k = {n} packs into {need} words per row, lhs has {a.shape[1]} and rhs has {b.shape[1]}",
        )
    return a, b, n


def _masked_popcount(a: U64Array, b: U64Array, mask: U64Array, op: np.ufunc) -> npt.NDArray[np.int64]:
    """``out[m, n] = popcount(op(a[m], b[n]) AND mask)`` summed over the words, exact in int64."""
    out = np.zeros((a.shape[0], b.shape[0]), np.int64)
    for m in range(a.shape[0]):
        out[m] = np.bitwise_count(op(a[m], b) & mask).sum(axis=1, dtype=np.int64)
    return out


def xnor_matmul(lhs_bits: npt.ArrayLike, rhs_bits: npt.ArrayLike, k: int, /) -> npt.NDArray[np.int32]:
    """The ``{-1, +1}`` dot products ``k - 2 * popcount((a XOR b) AND mask)`` of packed rows, int32 ``(M, N)``.

    >>> import numpy as np
    >>> a = pack_bits(np.array([[1, -1, 1, 1, -1]], np.int8))
    >>> b = pack_bits(np.array([[1, 1, -1, 1, -1]], np.int8))
    >>> xnor_matmul(a, b, 5).tolist()  # 1 - 1 - 1 + 1 + 1
    [[1]]
    """
    a, b, n = _packed_operands(lhs_bits, rhs_bits, k, "xnor_matmul")
    differ = _masked_popcount(a, b, _valid_mask(n), np.bitwise_xor)
    return np.asarray(_finish(n - 2 * differ, Accumulator.INT32, "xnor_matmul"), dtype=np.int32)


# --- binary convolution and scaling -------------------------------------------------------------------------------


def binary_conv2d(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    /,
    *,
    stride: Sequence[int] = (1, 1),
    padding: Sequence[int] = (0, 0, 0, 0),
    dilation: Sequence[int] = (1, 1),
    padding_value: BinaryPadding = BinaryPadding.ZERO,
) -> npt.NDArray[np.int32]:
    """2-D cross-correlation of ``{-1, +1}`` int8 NCHW ``x`` and OIHW ``w``; padded taps hold ``padding_value``.

    Geometry as ``conv2d_int`` (``padding = (top, bottom, left, right)``), groups 1; int32 NCHW out.  Checks in
    order: ``padding_value``, the dtypes of ``x`` and ``w``, the geometry (``conv2d_int``'s checks), then the
    values of ``x`` and of ``w``.

    >>> import numpy as np
    >>> x = np.ones((1, 1, 2, 2), np.int8)
    >>> w = np.ones((1, 1, 2, 2), np.int8)
    >>> binary_conv2d(x, w, padding=(1, 0, 1, 0)).tolist()  # top-left output sees one valid tap
    [[[[1, 2], [2, 4]]]]
    >>> binary_conv2d(x, w, padding=(1, 0, 1, 0), padding_value=BinaryPadding.MINUS_ONE).tolist()
    [[[[-2, 0], [0, 4]]]]
    """
    if not isinstance(padding_value, BinaryPadding):
        raise SpecError("invalid_option", f"padding_value must be a BinaryPadding, got {padding_value!r}")
    for arr, what in ((np.asarray(x), "x"), (np.asarray(w), "w")):
        if arr.dtype != np.dtype(np.int8):
            raise SpecError("unsupported_dtype", f"{what} must be an int8 array of -1 / +1, got dtype {arr.dtype}")
    args = _conv_args(x, w, 0, 0, stride, padding, dilation, 1, Layout.NCHW, Accumulator.INT32)
    xa = _pm_one(args.x, "x")
    wa = _pm_one(args.w, "w")
    if padding_value is BinaryPadding.ZERO:
        # conv2d_int pads with the zero point, 0 here: a padded tap contributes exactly 0.
        out = conv2d_int(xa, wa, stride=args.stride, padding=args.padding, dilation=args.dilation)
    else:
        pt, pb, pl, pr = args.padding
        fill = 1 if padding_value is BinaryPadding.PLUS_ONE else -1
        xp = np.pad(xa, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
        out = conv2d_int(xp, wa, stride=args.stride, dilation=args.dilation)
    return np.asarray(out, dtype=np.int32)


def _scale_vector(value: npt.ArrayLike, size: int, what: str, per: str) -> F32Array:
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.floating):
        raise SpecError("unsupported_dtype", f"{what} must be a float array, got dtype {arr.dtype}")
    if arr.shape not in ((), (size,)):
        raise SpecError(
            "scale_shape_mismatch", f"{what} must be a scalar or one per {per} (shape ({size},)), got shape {arr.shape}"
        )
    with np.errstate(over="ignore"):
        f = arr.astype(np.float32)
    if not np.all(np.isfinite(f)):
        raise SpecError("scale_not_finite", f"{what} holds a value that is not finite in float32: {arr!r}")
    return f


def binary_matmul_scaled(dot: npt.ArrayLike, alpha: npt.ArrayLike, beta: npt.ArrayLike | None = None, /) -> F32Array:
    """``fl32(fl32(float32(dot) * alpha[n]) * beta[m])``: float32 multiplies, alpha first, beta (if given) second.

    ``dot``: int32 ``(M, N)``; ``alpha``: a scalar or ``(N,)`` (per output column / channel); ``beta``: a scalar or
    ``(M,)`` (per row: XNOR-Net's activation scale).  Float inputs are rounded to float32 first (half to even).

    >>> import numpy as np
    >>> dot = np.array([[3, -1], [5, 0]], np.int32)
    >>> binary_matmul_scaled(dot, np.array([0.5, 2.0], np.float32)).tolist()
    [[1.5, -2.0], [2.5, 0.0]]
    """
    d = np.asarray(dot)
    if d.dtype.newbyteorder("=") != np.dtype(np.int32):
        raise SpecError("unsupported_dtype", f"dot must be an int32 array, got dtype {d.dtype}")
    if d.ndim != 2:
        raise SpecError("shape_mismatch", f"dot must be 2-D (M, N), got shape {d.shape}")
    m, n = d.shape
    a32 = _scale_vector(alpha, n, "alpha", "column")
    out = d.astype(np.float32)
    with np.errstate(over="ignore"):
        out = out * a32.reshape(1, -1) if a32.ndim else out * a32
        if beta is not None:
            b32 = _scale_vector(beta, m, "beta", "row")
            out = out * b32.reshape(-1, 1) if b32.ndim else out * b32
    return np.asarray(out, dtype=np.float32)


# --- straight-through estimator windows ---------------------------------------------------------------------------


def ste_mask(x: npt.ArrayLike, /, *, window: SteWindow = SteWindow.CLOSED) -> npt.NDArray[np.bool_]:
    """``|x| <= 1`` (``CLOSED``) or ``|x| < 1`` (``OPEN``): where the STE passes the gradient.

    >>> import numpy as np
    >>> x = np.array([-1.5, -1.0, 0.0, 1.0], np.float32)
    >>> ste_mask(x).tolist(), ste_mask(x, window=SteWindow.OPEN).tolist()
    ([False, True, True, True], [False, False, True, False])
    """
    if not isinstance(window, SteWindow):
        raise SpecError("invalid_option", f"window must be a SteWindow, got {window!r}")
    xa = _real_array(x, "x")
    inside = np.abs(xa) <= 1 if window is SteWindow.CLOSED else np.abs(xa) < 1
    return np.asarray(inside, dtype=np.bool_)


def ste_grad(
    x: npt.ArrayLike, grad: npt.ArrayLike, /, *, window: SteWindow = SteWindow.CLOSED
) -> npt.NDArray[np.floating[Any]]:
    """``grad`` where ``ste_mask(x, window)`` holds, ``+0.0`` elsewhere (``grad``'s float dtype and shape).

    >>> import numpy as np
    >>> x = np.array([-1.0, 0.5, 1.0, 2.0], np.float32)
    >>> ste_grad(x, np.full(4, 3.0, np.float32), window=SteWindow.OPEN).tolist()
    [0.0, 3.0, 0.0, 0.0]
    """
    mask = ste_mask(x, window=window)
    g = np.asarray(grad)
    if g.dtype.newbyteorder("=") not in _FLOAT_DTYPES:
        raise SpecError("unsupported_dtype", f"grad must be a float16, float32 or float64 array, got dtype {g.dtype}")
    g = g.astype(g.dtype.newbyteorder("="), copy=False)
    if g.shape != mask.shape:
        raise SpecError("shape_mismatch", f"grad has shape {g.shape}, x has shape {mask.shape}: they must be equal")
    return np.where(mask, g, np.zeros((), g.dtype))
