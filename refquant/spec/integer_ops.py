"""Integer matrix multiplication and 2-D convolution on int8/uint8 codes, and the QLinear pipelines.

Definition
----------
Every operand is an int8 or uint8 code array; zero points are integers inside the operand's range.
All arithmetic is exact in int64; only the final step applies the named ``Accumulator``:

- ``matmul_int(lhs, rhs)``: ``out[..., m, n] = sum_k (lhs[..., m, k] - zl) * (rhs[..., k, n] - zr)``,
  with ``zl`` per tensor or per row of ``lhs`` and ``zr`` per tensor or per column of ``rhs`` (ONNX
  MatMulInteger).  Batch dimensions broadcast as in ``np.matmul``; a 1-D ``lhs`` is a single row and a
  1-D ``rhs`` a single column, and those dimensions are removed from the result, as ``np.matmul`` does.
- ``conv2d_int(x, w)``: ``out[n, o, oy, ox] = sum_(ky, kx, c) (xp[n, g*Cg + c, oy*sh + ky*dh, ox*sw + kx*dw]
  - zx) * (w[o, c, ky, kx] - zw[o])`` where ``g = o // (O / groups)``, ``Cg = C / groups`` and ``xp`` is
  ``x`` padded with ``zx`` (a padded tap contributes exactly zero after the zero point is subtracted).
  Output size per spatial dimension: ``floor((H + pad_top + pad_bottom - dh*(kh - 1) - 1) / sh) + 1``.
- The reduction index ``k`` is ordered: for ``matmul_int`` increasing ``k``; for ``conv2d_int``
  ``(ky, kx, c)`` lexicographically (``ky`` slowest, ``c`` fastest; TFLite's and TOSA's loop order),
  whatever the layout.  The order matters only to ``Accumulator.INT32_SATURATE``.

``Accumulator`` (what an int32 accumulator does with a sum outside int32):

- ``INT32``: the exact sum; if an output's exact value lies outside ``[-2**31, 2**31 - 1]`` the result
  is unpredictable and ``UnpredictableError("accumulator_overflow")`` names the first such output index
  (C order).  TOSA makes such an overflow a REQUIRE violation.
- ``INT32_WRAP``: the exact sum reduced modulo ``2**32`` into int32 (ONNX MatMulInteger allows this:
  "the accumulation may overflow if and only if in 32 bits").
- ``INT32_SATURATE``: ``acc = 0``; for each ``k`` in the order above, ``acc = clamp(acc + a_k * b_k,
  -2**31, 2**31 - 1)``: a saturating multiply-add (the product itself is exact, ``|a_k * b_k| <= 255**2``).
- ``INT64``: the exact sum, returned as int64.

Output dtype: int32, or int64 for ``INT64``.

The QLinear pipelines (``qlinear_matmul``, ``qlinear_conv``) follow ONNX QLinearMatMul / QLinearConv:
the integer accumulation above under their ``accumulator`` option (default ``Accumulator.INT32``), plus
(conv) an int32 bias at scale ``x_scale * w_scale`` added under the same rule (INT32: exact, outside int32
unpredictable; INT32_WRAP: modulo ``2**32``; INT32_SATURATE: clamped to int32 after the addition; INT64:
exact in int64), then ``refquant.spec.fixed_point.requantize`` with the real multiplier
``x_scale * w_scale / y_scale`` and the named ``RequantRounding`` (which takes an int64 accumulator
outside int32 under FLOAT32 / FLOAT64 only: under DOUBLE / SINGLE it is ``SpecError("operand_out_of_range")``).

Errors
------
``SpecError``: ``"unsupported_dtype"`` (an operand that is not int8/uint8), ``"shape_mismatch"``
(ranks, inner dimensions, batch dimensions or channels that do not fit), ``"zero_point_not_integer"``,
``"zero_point_out_of_range"``, ``"zero_point_shape_mismatch"``, ``"invalid_stride"``,
``"invalid_dilation"``, ``"invalid_padding"``, ``"invalid_groups"``, ``"empty_output"`` (an output
spatial size ``<= 0``), ``"invalid_option"`` (an option of the wrong type), ``"invalid_format"`` and
``"scale_shape_mismatch"`` (QLinear parameters that do not fit their operand).
``UnpredictableError``: ``"accumulator_overflow"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum, unique
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from refquant.errors import SpecError, UnpredictableError
from refquant.spec._checks import first_index
from refquant.spec.affine import Precision, QuantParams
from refquant.spec.fixed_point import RequantRounding, requantize
from refquant.spec.formats import INT8, UINT8
from refquant.spec.granularity import PER_TENSOR, Granularity, PerAxis, PerTensor, normalize_axis

__all__ = ["Accumulator", "Layout", "conv2d_int", "matmul_int", "qlinear_conv", "qlinear_matmul"]

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

I64Array = npt.NDArray[np.int64]
IntArray = npt.NDArray[np.signedinteger[Any]]


@unique
class Accumulator(Enum):
    """What an int32 accumulator does with a sum outside int32 (see the module docstring)."""

    INT32 = "int32"
    INT32_WRAP = "int32_wrap"
    INT32_SATURATE = "int32_saturate"
    INT64 = "int64"


@unique
class Layout(Enum):
    """Tensor layout of a 2-D convolution: NCHW input with OIHW weights, or NHWC input with OHWI weights."""

    NCHW = "nchw"
    NHWC = "nhwc"


# --- input checks ----------------------------------------------------------------------------------------------


def _check_accumulator(accumulator: object) -> None:
    if not isinstance(accumulator, Accumulator):
        raise SpecError("invalid_option", f"accumulator must be an Accumulator, got {accumulator!r}")


def _check_layout(layout: object) -> None:
    if not isinstance(layout, Layout):
        raise SpecError("invalid_option", f"layout must be a Layout, got {layout!r}")


def _operand(value: npt.ArrayLike, name: str) -> npt.NDArray[np.integer[Any]]:
    arr = np.asarray(value)
    if arr.dtype not in (np.dtype(np.int8), np.dtype(np.uint8)):
        raise SpecError("unsupported_dtype", f"{name} must be an int8 or uint8 array, got dtype {arr.dtype}")
    return arr


def _zero_point(value: npt.ArrayLike, name: str, dtype: np.dtype[Any]) -> I64Array:
    """Integer zero point(s) inside the range of the operand's ``dtype`` (int8 or uint8), as int64."""
    arr = np.asarray(value)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise SpecError("zero_point_not_integer", f"{name} must hold integers, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr) | (np.floor(np.where(np.isfinite(arr), arr, 0)) != arr)
        if np.any(bad):
            idx = first_index(np.asarray(bad))
            raise SpecError("zero_point_not_integer", f"{name} holds {arr[idx]!r} at index {idx}, not an integer")
    info = np.iinfo(dtype)
    outside = (arr < info.min) | (arr > info.max)
    if np.any(outside):
        idx = first_index(np.asarray(outside))
        raise SpecError(
            "zero_point_out_of_range",
            f"{name} holds {arr[idx]!r} at index {idx}, outside [{info.min}, {info.max}] of the {dtype} operand",
        )
    return arr.astype(np.int64)


def _int_tuple(value: object, length: int, minimum: int) -> tuple[int, ...] | None:
    """``value`` as a tuple of ``length`` ints ``>= minimum`` (bools are not ints), or None if it is not one."""
    if not isinstance(value, (tuple, list)) or len(value) != length:
        return None
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum for v in value):
        return None
    return tuple(int(v) for v in value)


# --- the accumulator -------------------------------------------------------------------------------------------


def _finish(exact: I64Array, accumulator: Accumulator, what: str) -> IntArray:
    """Apply ``accumulator`` to exact int64 sums (already saturated step by step for INT32_SATURATE)."""
    if accumulator is Accumulator.INT64:
        return exact
    if accumulator is Accumulator.INT32_WRAP:
        return ((exact - INT32_MIN) % 2**32 + INT32_MIN).astype(np.int32)
    outside = (exact < INT32_MIN) | (exact > INT32_MAX)
    if np.any(outside):  # never for INT32_SATURATE, whose sums were clamped after every step
        idx = first_index(outside)
        raise UnpredictableError(
            "accumulator_overflow",
            f"{what} output at index {idx} accumulates to {int(exact[idx])}, outside int32 "
            f"[{INT32_MIN}, {INT32_MAX}]: unpredictable under Accumulator.INT32 "
            "(name INT32_WRAP, INT32_SATURATE or INT64 to emulate an implementation)",
        )
    return exact.astype(np.int32)


def _saturating_multiply_add(acc: I64Array, a: I64Array, b: I64Array) -> I64Array:
    """One step of Accumulator.INT32_SATURATE: ``clamp(acc + a * b, INT32_MIN, INT32_MAX)`` elementwise."""
    return np.clip(acc + a * b, INT32_MIN, INT32_MAX)


# --- matmul_int ------------------------------------------------------------------------------------------------


def _lhs_zero_point(value: npt.ArrayLike, lhs: npt.NDArray[Any], dtype: np.dtype[Any]) -> I64Array:
    """lhs zero point as an array that broadcasts against ``lhs`` (2-D or more): per tensor or per row."""
    z = _zero_point(value, "lhs_zero_point", dtype)
    m = lhs.shape[-2]
    if z.ndim == 0 or z.shape == (1,):
        return z.reshape(())
    if z.shape == (m,):
        return z.reshape(m, 1)
    if z.ndim >= 2 and z.ndim <= lhs.ndim and z.shape[-2:] == (m, 1):
        target = (*lhs.shape[:-1], 1)
        try:
            fits = np.broadcast_shapes(z.shape, target) == target
        except ValueError:
            fits = False
        if fits:
            return z
    raise SpecError(
        "zero_point_shape_mismatch",
        f"lhs_zero_point of shape {z.shape} is neither a scalar, nor per row of an lhs with {m} rows "
        f"(shape ({m},) or (..., {m}, 1) fitting lhs shape {lhs.shape})",
    )


def _rhs_zero_point(value: npt.ArrayLike, rhs: npt.NDArray[Any], dtype: np.dtype[Any]) -> I64Array:
    """rhs zero point as an array that broadcasts against ``rhs`` (2-D or more): per tensor or per column."""
    z = _zero_point(value, "rhs_zero_point", dtype)
    n = rhs.shape[-1]
    if z.ndim == 0 or z.shape == (1,):
        return z.reshape(())
    if z.shape == (n,):
        return z
    raise SpecError(
        "zero_point_shape_mismatch",
        f"rhs_zero_point of shape {z.shape} is neither a scalar nor per column (shape ({n},)) of an rhs with {n} columns",
    )


def _matmul_shapes(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> tuple[tuple[int, ...], int, int, int]:
    """The shape checks of ``matmul_int`` (shared with ``refquant.fast``), in order: ``(batch, M, K, N)``.

    A 1-D lhs is one row and a 1-D rhs one column (``M = 1`` / ``N = 1``).
    """
    if len(a_shape) == 0 or len(b_shape) == 0:
        raise SpecError("shape_mismatch", f"matmul_int needs operands of rank >= 1, got shapes {a_shape} and {b_shape}")
    a2 = (1, a_shape[0]) if len(a_shape) == 1 else a_shape
    b2 = (b_shape[0], 1) if len(b_shape) == 1 else b_shape
    m, k = a2[-2:]
    k2, n = b2[-2:]
    if k != k2:
        raise SpecError(
            "shape_mismatch", f"inner dimensions differ: lhs shape {a_shape} has K={k}, rhs shape {b_shape} has K={k2}"
        )
    try:
        batch = tuple(np.broadcast_shapes(a2[:-2], b2[:-2]))
    except ValueError:
        raise SpecError(
            "shape_mismatch", f"batch dimensions of lhs {a_shape} and rhs {b_shape} do not broadcast"
        ) from None
    return batch, m, k, n


def matmul_int(
    lhs: npt.ArrayLike,
    rhs: npt.ArrayLike,
    /,
    *,
    lhs_zero_point: npt.ArrayLike = 0,
    rhs_zero_point: npt.ArrayLike = 0,
    accumulator: Accumulator = Accumulator.INT32,
) -> IntArray:
    """``(lhs - lhs_zero_point) @ (rhs - rhs_zero_point)`` on int8/uint8 codes, exact, then ``accumulator``.

    ``lhs_zero_point``: a scalar (per tensor), shape ``(M,)`` or ``(..., M, 1)`` (per row of ``lhs``).
    ``rhs_zero_point``: a scalar, or shape ``(N,)`` (per column of ``rhs``).  A 1-element 1-D zero point
    is per tensor.  Batch dimensions broadcast as in ``np.matmul``.  int32 out (int64 for ``INT64``).

    Examples
    --------
    >>> import numpy as np
    >>> lhs = np.array([[1, 2], [3, 4]], np.uint8)
    >>> rhs = np.array([[-1, 0], [2, 1]], np.int8)
    >>> matmul_int(lhs, rhs, lhs_zero_point=1).tolist()  # [[0, 1], [2, 3]] @ rhs
    [[2, 1], [4, 3]]
    """
    _check_accumulator(accumulator)
    a = _operand(lhs, "lhs")
    b = _operand(rhs, "rhs")
    batch, m, k, n = _matmul_shapes(a.shape, b.shape)
    a2 = a.reshape(1, a.shape[0]) if a.ndim == 1 else a  # a 1-D lhs is one row
    b2 = b.reshape(b.shape[0], 1) if b.ndim == 1 else b  # a 1-D rhs is one column
    za = _lhs_zero_point(lhs_zero_point, a2, a.dtype)
    zb = _rhs_zero_point(rhs_zero_point, b2, b.dtype)
    ad = np.broadcast_to(a2.astype(np.int64) - za, (*batch, m, k))
    bd = np.broadcast_to(b2.astype(np.int64) - zb, (*batch, k, n))

    if accumulator is Accumulator.INT32_SATURATE:
        acc = np.zeros((*batch, m, n), np.int64)
        for kk in range(k):  # increasing k, saturating after every multiply-add
            acc = _saturating_multiply_add(acc, ad[..., :, kk : kk + 1], bd[..., kk : kk + 1, :])
    else:
        # Exact: every product is at most 255 * 255 in magnitude, so int64 cannot overflow for any K that fits in memory.
        acc = np.matmul(ad, bd)
    if a.ndim == 1:
        acc = acc[..., 0, :]
    if b.ndim == 1:
        acc = acc[..., 0]
    return _finish(acc, accumulator, "matmul_int")


# --- conv2d_int ------------------------------------------------------------------------------------------------


def _conv_output_size(size: int, pad_before: int, pad_after: int, kernel: int, dilation: int, stride: int) -> int:
    """``floor((size + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1`` (may be <= 0)."""
    return (size + pad_before + pad_after - dilation * (kernel - 1) - 1) // stride + 1


class _ConvArgs(NamedTuple):
    """The checked arguments of a conv2d_int call (NCHW/OIHW sizes whatever the layout)."""

    x: npt.NDArray[Any]
    w: npt.NDArray[Any]
    nchw: tuple[int, int, int, int]
    oihw: tuple[int, int, int, int]
    zx: int
    zw: npt.NDArray[np.int64]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    out_hw: tuple[int, int]


def _conv_args(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    x_zero_point: npt.ArrayLike,
    w_zero_point: npt.ArrayLike,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    layout: Layout,
    accumulator: Accumulator,
) -> _ConvArgs:
    """The argument checks of ``conv2d_int`` (shared with ``refquant.fast``), in order."""
    _check_accumulator(accumulator)
    _check_layout(layout)
    xa = _operand(x, "x")
    wa = _operand(w, "w")
    if xa.ndim != 4 or wa.ndim != 4:
        raise SpecError("shape_mismatch", f"conv2d_int needs 4-D x and w, got shapes {xa.shape} and {wa.shape}")
    stride_t = _int_tuple(stride, 2, 1)
    if stride_t is None:
        raise SpecError("invalid_stride", f"stride must be a tuple of 2 ints >= 1 (height, width), got {stride!r}")
    dilation_t = _int_tuple(dilation, 2, 1)
    if dilation_t is None:
        raise SpecError(
            "invalid_dilation", f"dilation must be a tuple of 2 ints >= 1 (height, width), got {dilation!r}"
        )
    padding_t = _int_tuple(padding, 4, 0)
    if padding_t is None:
        raise SpecError(
            "invalid_padding", f"padding must be a tuple of 4 ints >= 0 (top, bottom, left, right), got {padding!r}"
        )
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = stride_t, dilation_t, padding_t
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise SpecError("invalid_groups", f"groups must be an int >= 1, got {groups!r}")
    g = int(groups)
    xs = xa.shape if layout is Layout.NCHW else (xa.shape[0], xa.shape[3], xa.shape[1], xa.shape[2])
    ws = wa.shape if layout is Layout.NCHW else (wa.shape[0], wa.shape[3], wa.shape[1], wa.shape[2])
    batch, c, h, wd = xs
    o, cg, kh, kw = ws
    if kh < 1 or kw < 1:
        raise SpecError("shape_mismatch", f"the kernel of w (shape {wa.shape}, {layout.name}) must be at least 1x1")
    if c % g or o % g:
        raise SpecError("invalid_groups", f"groups={g} must divide the input channels ({c}) and output channels ({o})")
    if cg * g != c:
        raise SpecError(
            "shape_mismatch",
            f"w (shape {wa.shape}) has {cg} input channels per group; x has {c} channels = {g} groups of {c // g}",
        )
    zx = _zero_point(x_zero_point, "x_zero_point", xa.dtype)
    if not (zx.ndim == 0 or zx.shape == (1,)):
        raise SpecError("zero_point_shape_mismatch", f"x_zero_point must be a scalar, got shape {zx.shape}")
    zw = _zero_point(w_zero_point, "w_zero_point", wa.dtype)
    if not (zw.ndim == 0 or zw.shape == (1,) or zw.shape == (o,)):
        raise SpecError(
            "zero_point_shape_mismatch",
            f"w_zero_point must be a scalar or one per output channel (shape ({o},)), got shape {zw.shape}",
        )
    oh = _conv_output_size(h, pt, pb, kh, dh, sh)
    ow = _conv_output_size(wd, pl, pr, kw, dw, sw)
    if oh <= 0 or ow <= 0:
        raise SpecError(
            "empty_output",
            f"output size {oh}x{ow} <= 0: input {h}x{wd}, padding {(pt, pb, pl, pr)}, kernel {kh}x{kw}, "
            f"dilation {(dh, dw)}, stride {(sh, sw)}",
        )
    return _ConvArgs(
        xa,
        wa,
        (batch, c, h, wd),
        (o, cg, kh, kw),
        int(zx.reshape(())),
        zw.reshape(-1),
        (sh, sw),
        (pt, pb, pl, pr),
        (dh, dw),
        g,
        (oh, ow),
    )


def conv2d_int(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
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
) -> IntArray:
    """2-D cross-correlation of int8/uint8 codes (ONNX ConvInteger), exact, then ``accumulator``.

    ``x``: ``(N, C, H, W)`` (``Layout.NCHW``) or ``(N, H, W, C)`` (``Layout.NHWC``).
    ``w``: ``(O, C/groups, kh, kw)`` (OIHW) or ``(O, kh, kw, C/groups)`` (OHWI).
    ``x_zero_point``: a scalar; ``w_zero_point``: a scalar or one per output channel (shape ``(O,)``).
    ``stride`` ``(sh, sw)`` and ``dilation`` ``(dh, dw)``: ints >= 1; ``padding`` ``(top, bottom, left,
    right)``: ints >= 0, padded taps hold ``x_zero_point``.  ``groups`` divides ``C`` and ``O``
    (depthwise: ``groups == C``).  Output ``(N, O, OH, OW)`` or ``(N, OH, OW, O)``,
    ``OH = floor((H + top + bottom - dh*(kh - 1) - 1) / sh) + 1`` (likewise ``OW``).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(9, dtype=np.uint8).reshape(1, 1, 3, 3)
    >>> w = np.ones((1, 1, 2, 2), np.int8)
    >>> conv2d_int(x, w, x_zero_point=4).tolist()  # 2x2 window sums of x - 4
    [[[[-8, -4], [4, 8]]]]
    """
    p = _conv_args(x, w, x_zero_point, w_zero_point, stride, padding, dilation, groups, layout, accumulator)
    xa, wa, g = p.x, p.w, p.groups
    xn = xa if layout is Layout.NCHW else xa.transpose(0, 3, 1, 2)
    wn = wa if layout is Layout.NCHW else wa.transpose(0, 3, 1, 2)
    batch = p.nchw[0]
    o, cg, kh, kw = p.oihw
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = p.stride, p.dilation, p.padding
    oh, ow = p.out_hw
    zx, zw = np.asarray(p.zx, np.int64), p.zw

    # Zero points subtracted first, then zero padding: a padded tap contributes exactly 0.
    xd = xn.astype(np.int64) - zx.reshape(())
    xp = np.pad(xd, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    wdiff = wn.astype(np.int64) - zw.reshape(-1, 1, 1, 1) if zw.ndim else wn.astype(np.int64) - zw
    og = o // g
    xg = xp.reshape(batch, g, cg, *xp.shape[2:])  # (N, G, Cg, Hp, Wp)
    wg = wdiff.reshape(g, og, cg, kh, kw)  # (G, Og, Cg, kh, kw)

    acc = np.zeros((batch, g, og, oh, ow), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            taps = xg[:, :, :, y0 : y0 + (oh - 1) * sh + 1 : sh, x0 : x0 + (ow - 1) * sw + 1 : sw]  # (N, G, Cg, OH, OW)
            weights = wg[:, :, :, ky, kx]  # (G, Og, Cg)
            if accumulator is Accumulator.INT32_SATURATE:
                for ci in range(cg):  # order (ky, kx, c), saturating after every multiply-add
                    acc = _saturating_multiply_add(acc, taps[:, :, None, ci, :, :], weights[None, :, :, ci, None, None])
            else:
                acc += np.einsum("ngchw,goc->ngohw", taps, weights)
    out = acc.reshape(batch, o, oh, ow)
    if layout is Layout.NHWC:
        out = out.transpose(0, 2, 3, 1)
    return _finish(np.ascontiguousarray(out), accumulator, "conv2d_int")


# --- QLinear pipelines -----------------------------------------------------------------------------------------


def _check_params(params: object, name: str) -> QuantParams:
    if not isinstance(params, QuantParams):
        raise SpecError("invalid_option", f"{name} must be a QuantParams, got {params!r}")
    return params


def _operand_params(codes: npt.NDArray[Any], params: QuantParams, name: str, pname: str) -> None:
    """The operand's format is INT8 for int8 codes and UINT8 for uint8 codes."""
    expected = INT8 if codes.dtype == np.int8 else UINT8
    if params.fmt != expected:
        raise SpecError(
            "invalid_format",
            f"{pname}.fmt must be {expected.name} for the {codes.dtype} codes of {name}, got {params.fmt.name}",
        )


def _per_tensor(params: QuantParams, pname: str) -> None:
    if not isinstance(params.granularity, PerTensor):
        raise SpecError("scale_shape_mismatch", f"{pname} must be per tensor, got {params.granularity!r}")


def _is_per_axis(params: QuantParams, ndim: int, axis: int, size: int, pname: str, what: str) -> bool:
    """False for per tensor; True for PerAxis along ``axis`` (normalised) with ``size`` parameters; else an error."""
    gran = params.granularity
    if isinstance(gran, PerTensor):
        return False
    if isinstance(gran, PerAxis) and ndim >= 2 and normalize_axis(gran.axis, ndim) == axis:
        if params.scale.shape != (size,):
            raise SpecError(
                "scale_shape_mismatch",
                f"{pname} is per {what} of {size}, but has parameters of shape {params.scale.shape}",
            )
        return True
    raise SpecError(
        "scale_shape_mismatch", f"{pname} must be per tensor or per {what} (PerAxis({axis - ndim})), got {gran!r}"
    )


def _scalar(arr: npt.NDArray[Any]) -> Any:
    return arr.reshape(-1)[0] if arr.size == 1 else arr


def _real_multiplier(
    x_scale: npt.NDArray[np.float32],
    w_scale: npt.NDArray[np.float32],
    y_scale: npt.NDArray[np.float32],
    precision: Precision,
) -> npt.NDArray[np.float64]:
    """``x_scale * w_scale / y_scale``: in float64 (FLOAT64), or in float32, multiply then divide (FLOAT32)."""
    if precision is Precision.FLOAT64:
        return np.asarray(x_scale.astype(np.float64) * w_scale.astype(np.float64) / y_scale.astype(np.float64))
    with np.errstate(over="ignore", under="ignore"):
        m32 = (x_scale * w_scale) / y_scale  # float32 throughout, as the float32 scale tensors of ONNX/ORT
    return np.asarray(m32.astype(np.float64))


def _check_rounding_options(
    rounding: object, multiplier_precision: object, accumulator: object = Accumulator.INT32
) -> None:
    """The option checks of the QLinear functions (shared with ``refquant.fast``), in order."""
    if not isinstance(rounding, RequantRounding):
        raise SpecError("invalid_option", f"rounding must be a RequantRounding, got {rounding!r}")
    if not isinstance(multiplier_precision, Precision):
        raise SpecError("invalid_option", f"multiplier_precision must be a Precision, got {multiplier_precision!r}")
    _check_accumulator(accumulator)


def qlinear_matmul(
    a: npt.ArrayLike,
    b: npt.ArrayLike,
    /,
    *,
    a_params: QuantParams,
    b_params: QuantParams,
    y_params: QuantParams,
    rounding: RequantRounding = RequantRounding.FLOAT64,
    multiplier_precision: Precision = Precision.FLOAT64,
    accumulator: Accumulator = Accumulator.INT32,
) -> npt.NDArray[np.integer[Any]]:
    """ONNX QLinearMatMul: ``matmul_int`` of the codes, then ``requantize`` to ``y_params``.

    ``acc = matmul_int(a, b, lhs_zero_point=a_zp, rhs_zero_point=b_zp, accumulator=accumulator)``, then
    ``requantize(acc, a_scale * b_scale / y_scale, out_fmt=y_params.fmt, out_zero_point=y_zp, rounding=rounding)``
    element by element.  ``Accumulator.INT32_WRAP`` is onnxruntime's wrapping int32 accumulation; an
    ``Accumulator.INT64`` sum outside int32 is requantized under FLOAT32 / FLOAT64 and is
    ``SpecError("operand_out_of_range")`` under DOUBLE / SINGLE (``requantize``'s rule).  ``a_params``: per tensor or per row (``PerAxis(-2)``); ``b_params``: per tensor or
    per column (``PerAxis(-1)``); ``y_params``: per tensor.  The multiplier is computed in
    ``multiplier_precision`` (FLOAT64: ``f64(a_s) * f64(b_s) / f64(y_s)``; FLOAT32: ``f32(f32(a_s * b_s) / y_s)``,
    as the ONNX reference evaluator and onnxruntime do).  Codes in ``y_params.fmt.storage_dtype``.

    Examples
    --------
    >>> import numpy as np
    >>> from refquant.spec.formats import INT8, UINT8
    >>> a = np.array([[10, 20]], np.uint8)
    >>> b = np.array([[1], [3]], np.int8)
    >>> p = QuantParams(0.5, 0, UINT8)
    >>> qlinear_matmul(a, b, a_params=p, b_params=QuantParams(1.0, 0, INT8), y_params=QuantParams(4.0, 3, UINT8)).tolist()
    [[12]]
    """
    _check_rounding_options(rounding, multiplier_precision, accumulator)
    ap = _check_params(a_params, "a_params")
    bp = _check_params(b_params, "b_params")
    yp = _check_params(y_params, "y_params")
    ac = _operand(a, "a")
    bc = _operand(b, "b")
    _operand_params(ac, ap, "a", "a_params")
    _operand_params(bc, bp, "b", "b_params")
    _per_tensor(yp, "y_params")
    per_row = _is_per_axis(ap, ac.ndim, ac.ndim - 2, ac.shape[-2] if ac.ndim >= 2 else 0, "a_params", "row of a")
    per_col = _is_per_axis(bp, bc.ndim, bc.ndim - 1, bc.shape[-1] if bc.ndim else 0, "b_params", "column of b")
    acc = matmul_int(
        ac, bc, lhs_zero_point=_scalar(ap.zero_point), rhs_zero_point=_scalar(bp.zero_point), accumulator=accumulator
    )
    m = _real_multiplier(
        ap.scale.reshape(-1, 1) if per_row else _scalar(ap.scale),
        bp.scale if per_col else _scalar(bp.scale),
        _scalar(yp.scale),
        multiplier_precision,
    )
    options: dict[str, Any] = {"out_fmt": yp.fmt, "out_zero_point": int(_scalar(yp.zero_point)), "rounding": rounding}
    return _requantize_matmul(acc, m, per_row, per_col, bc.ndim, options)


def _requantize_matmul(
    acc: IntArray,
    m: npt.NDArray[np.float64],
    per_row: bool,
    per_col: bool,
    b_ndim: int,
    options: dict[str, Any],
) -> npt.NDArray[np.integer[Any]]:
    """The requantization step of ``qlinear_matmul`` (shared with ``refquant.fast``, which calls it to raise)."""
    if per_row and per_col:  # one multiplier per (row, column): requantize row by row, per column
        rows = [requantize(acc[..., i, :], m[i], granularity=PerAxis(-1), **options) for i in range(m.shape[0])]
        return np.stack(rows, axis=-2) if rows else np.empty(acc.shape, options["out_fmt"].storage_dtype)
    gran: Granularity = PER_TENSOR
    if per_row:  # rows are axis -2 of acc, or -1 when b is 1-D (then acc has no column axis)
        gran = PerAxis(-2 if b_ndim >= 2 else -1)
        m = m.reshape(-1)
    elif per_col:
        gran = PerAxis(-1)
    return requantize(acc, m, granularity=gran, **options)


def _conv_bias(bias: npt.ArrayLike, o: int) -> npt.NDArray[np.int32]:
    """The bias checks of ``qlinear_conv`` (shared with ``refquant.fast``): int32, one per output channel."""
    bias_arr = np.asarray(bias)
    if bias_arr.dtype != np.int32:
        raise SpecError("unsupported_dtype", f"bias must be an int32 array, got dtype {bias_arr.dtype}")
    if bias_arr.shape != (o,):
        raise SpecError("shape_mismatch", f"bias must have shape ({o},) (one per output channel), got {bias_arr.shape}")
    return bias_arr


def _add_bias(acc: IntArray, bias: I64Array, accumulator: Accumulator) -> IntArray:
    """``qlinear_conv``'s ``acc + bias`` under ``accumulator`` (shared with ``refquant.fast``).

    ``acc``: the accumulators (int32, int64 for INT64); ``bias``: int64, broadcasting against them.  INT32: the
    exact sum, which must lie in int32; INT32_WRAP: modulo ``2**32``; INT32_SATURATE: clamped to int32;
    INT64: exact, int64.
    """
    exact: I64Array = np.asarray(acc.astype(np.int64) + bias, np.int64)
    if accumulator is Accumulator.INT64:
        return exact
    if accumulator is Accumulator.INT32_WRAP:
        return ((exact - INT32_MIN) % 2**32 + INT32_MIN).astype(np.int32)
    if accumulator is Accumulator.INT32_SATURATE:
        return np.clip(exact, INT32_MIN, INT32_MAX).astype(np.int32)
    _check_biased(exact)
    return exact.astype(np.int32)


def _check_biased(acc: I64Array) -> None:
    """``qlinear_conv``'s accumulator plus bias (exact, int64) must lie in int32 (shared with ``refquant.fast``)."""
    outside = (acc < INT32_MIN) | (acc > INT32_MAX)
    if np.any(outside):
        idx = first_index(outside)
        raise UnpredictableError(
            "accumulator_overflow",
            f"qlinear_conv output at index {idx}: accumulator plus bias is {int(acc[idx])}, outside int32 "
            f"[{INT32_MIN}, {INT32_MAX}]",
        )


def qlinear_conv(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
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
) -> npt.NDArray[np.integer[Any]]:
    """ONNX QLinearConv: ``conv2d_int`` of the codes, plus the int32 bias, then ``requantize`` to ``y_params``.

    ``acc = conv2d_int(x, w, x_zero_point=x_zp, w_zero_point=w_zp, ..., accumulator=accumulator)``; then
    ``acc + bias[o]`` (bias: int32, shape ``(O,)``, at scale ``x_scale * w_scale[o]`` with zero point 0) under
    the same rule: ``INT32`` (default) exact, and outside int32 ``UnpredictableError("accumulator_overflow")``;
    ``INT32_WRAP`` modulo ``2**32`` (onnxruntime); ``INT32_SATURATE`` clamped to int32 after the addition;
    ``INT64`` exact in int64.  Then ``requantize`` with the real multiplier ``x_scale * w_scale[o] / y_scale``
    per output channel, ``rounding``, ``y_params``'s zero point and format, and the fused activation bounds
    (an INT64 sum outside int32 is ``SpecError("operand_out_of_range")`` under DOUBLE / SINGLE).  ``x_params``, ``y_params``: per tensor; ``w_params``: per
    tensor or per output channel (``PerAxis(0)``, in OIHW and OHWI alike).

    Examples
    --------
    >>> import numpy as np
    >>> from refquant.spec.formats import INT8, UINT8
    >>> x = np.array([[[[7, 9]]]], np.uint8)  # (1, 1, 1, 2); acc = 2 * [2, 4] + 2 = [6, 10]; times 0.25: ties
    >>> w = np.array([[[[2]]]], np.int8)
    >>> xp, wp, yp = QuantParams(0.5, 5, UINT8), QuantParams(0.25, 0, INT8), QuantParams(0.5, 0, INT8)
    >>> qlinear_conv(x, w, x_params=xp, w_params=wp, y_params=yp, bias=np.array([2], np.int32)).tolist()
    [[[[2, 2]]]]
    """
    _check_rounding_options(rounding, multiplier_precision, accumulator)
    _check_layout(layout)
    xp = _check_params(x_params, "x_params")
    wp = _check_params(w_params, "w_params")
    yp = _check_params(y_params, "y_params")
    xc = _operand(x, "x")
    wc = _operand(w, "w")
    _operand_params(xc, xp, "x", "x_params")
    _operand_params(wc, wp, "w", "w_params")
    _per_tensor(xp, "x_params")
    _per_tensor(yp, "y_params")
    o = wc.shape[0] if wc.ndim else 0
    per_channel = _is_per_axis(wp, max(wc.ndim, 2), 0, o, "w_params", "output channel of w")
    acc = conv2d_int(
        xc,
        wc,
        x_zero_point=_scalar(xp.zero_point),
        w_zero_point=_scalar(wp.zero_point),
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        layout=layout,
        accumulator=accumulator,
    )
    channel_axis = 1 if layout is Layout.NCHW else 3
    if bias is not None:
        bias_arr = _conv_bias(bias, o)
        view = [1, 1, 1, 1]
        view[channel_axis] = o
        acc = _add_bias(acc, bias_arr.astype(np.int64).reshape(view), accumulator)
    m = _real_multiplier(
        _scalar(xp.scale), wp.scale if per_channel else _scalar(wp.scale), _scalar(yp.scale), multiplier_precision
    )
    return requantize(
        acc,
        m,
        out_fmt=yp.fmt,
        out_zero_point=int(_scalar(yp.zero_point)),
        rounding=rounding,
        granularity=PerAxis(channel_axis) if per_channel else PER_TENSOR,
        activation_min=activation_min,
        activation_max=activation_max,
    )
