"""refquant.fast.qlinear_matmul / qlinear_conv against the specification, bit for bit, on every kernel path.

Every test runs on the portable kernels and, where the CPU has AVX-512 VNNI, on the VNNI kernels
(``set_kernel_path``).  Hypothesis chooses a seed and the problem: shapes (odd sizes, batch dimensions,
1-D operands, groups, depthwise, dilation, stride, per-side padding), both layouts, the dtypes, zero
points at both ends of their range, per-tensor / per-row / per-column / per-output-channel parameters,
every ``RequantRounding`` and both multiplier precisions, every ``Accumulator``, the output format and its
zero point, the bias (absent, small, or next to the int32 limits), activation bounds, the memory layout of the inputs
(strided, transposed, reversed views) and packed weights (``PackedRhs`` / ``PackedConvWeight``).

The scales make ties dense: they are powers of two, their float32 neighbours, or small odd multiples of
powers of two, so ``acc * multiplier`` often lands exactly on a half or one float32 step away from it;
a fill with codes within 3 of the zero point keeps the accumulators small so the ties are not clamped
away.  A "wide" scale kind (log-uniform, multipliers above 1) reaches the unpredictable
requantizations.  Whatever the spec does, fast must do: the same codes (and dtype), or the same error
(class, ``condition`` and message); with ``out=`` the same codes, written into ``out`` and returned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refquant.fast as fast
from refquant.errors import SpecError, UnpredictableError
from refquant.kernels._jit import KernelPath
from refquant.spec import integer_ops as spec_ops
from refquant.spec.affine import Precision, QuantParams
from refquant.spec.fixed_point import RequantRounding, quantize_multiplier
from refquant.spec.formats import INT4, INT8, INT16, UINT8, IntFormat
from refquant.spec.granularity import PerAxis
from refquant.spec.integer_ops import Accumulator, Layout
from tests.kernels.conftest import DTYPES

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# --- comparison ------------------------------------------------------------------------------------------------


def _same(
    spec_fn: Callable[..., Any],
    fast_fn: Callable[..., Any],
    spec_args: tuple[Any, ...],
    fast_args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> np.ndarray | None:
    """fast gives the spec's codes (and dtype), or the spec's error; with ``out=`` too.  Returns the codes."""
    error: SpecError | UnpredictableError | None = None
    try:
        expected = spec_fn(*spec_args, **kwargs)
    except (SpecError, UnpredictableError) as exc:
        error = exc
    if error is not None:
        with pytest.raises(type(error)) as info:
            fast_fn(*fast_args, **kwargs)
        assert info.value.condition == error.condition
        assert str(info.value) == str(error)
        return None
    got = fast_fn(*fast_args, **kwargs)
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    out = np.empty_like(expected)
    out[...] = np.asarray(1, expected.dtype)  # something the result must overwrite
    ret = fast_fn(*fast_args, **kwargs, out=out)
    assert ret is out
    np.testing.assert_array_equal(out, expected)
    return np.asarray(expected)


# --- generators ------------------------------------------------------------------------------------------------


def _fmt(dtype: np.dtype[Any]) -> IntFormat:
    return INT8 if dtype == np.int8 else UINT8


def _zero_points(rng: np.random.Generator, fmt: IntFormat, kind: str, count: int) -> Any:
    """``count`` zero points (a scalar for count 0): at the minimum, the maximum, or anywhere."""
    if kind == "min":
        values = np.full(max(count, 1), fmt.qmin)
    elif kind == "max":
        values = np.full(max(count, 1), fmt.qmax)
    elif kind == "center":
        values = np.full(max(count, 1), (fmt.qmin + fmt.qmax + 1) // 2)
    elif kind == "ends":
        values = np.where(rng.integers(0, 2, max(count, 1)).astype(bool), fmt.qmin, fmt.qmax)
    else:
        values = rng.integers(fmt.qmin, fmt.qmax + 1, max(count, 1))
    return int(values[0]) if count == 0 else values.astype(np.int64)


def _codes(
    rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype[Any], fill: str, zp: Any, axis: int | None = None
) -> np.ndarray:
    """Codes: random, the two extremes, or within 3 of the zero point (``zp`` per index of ``axis``)."""
    info = np.iinfo(dtype)
    if fill == "extremes":
        return np.where(rng.integers(0, 2, shape).astype(bool), info.min, info.max).astype(dtype)
    if fill == "near":
        z = np.asarray(zp, np.int64)
        if z.ndim and axis is not None:
            view = [1] * len(shape)
            view[axis] = z.shape[0]
            z = z.reshape(view)
        return np.clip(z + rng.integers(-3, 4, shape), info.min, info.max).astype(dtype)
    return rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)


def _scales(rng: np.random.Generator, kind: str, count: int, exponent: int) -> np.ndarray:
    """``count`` float32 scales near ``2**exponent``: exact powers of two, their float32 neighbours, small odd
    multiples of powers of two (all give ties), or log-uniform over a wide range."""
    if kind == "wide":
        return (10.0 ** rng.uniform(-3, 2, count)).astype(np.float32)
    base = np.float32(2.0) ** (exponent + rng.integers(-1, 2, count)).astype(np.float32)
    if kind == "pow2":
        return base
    if kind == "odd":
        return (base * rng.choice(np.array([1, 3, 5, 7], np.float32), count) / np.float32(4)).astype(np.float32)
    step = rng.choice(np.array([-np.inf, np.inf], np.float32), count)
    return np.where(rng.integers(0, 3, count) > 0, np.nextafter(base, step), base).astype(np.float32)


def _view(rng: np.random.Generator, arr: np.ndarray, how: str) -> np.ndarray:
    """The same values as ``arr`` through a C-contiguous, strided, transposed or reversed view."""
    if arr.ndim == 0 or how == "contiguous":
        return arr
    if how == "strided":
        big = np.zeros((*arr.shape[:-1], arr.shape[-1] * 2 + 1), arr.dtype)
        big[..., 1::2] = arr
        return big[..., 1::2]
    if how == "transposed" and arr.ndim >= 2:
        return np.swapaxes(np.ascontiguousarray(np.swapaxes(arr, -1, -2)), -1, -2)
    return np.ascontiguousarray(arr[..., ::-1])[..., ::-1]


def _shift_for(acc_max: int, fmt: IntFormat, rng: np.random.Generator) -> int:
    """``s`` such that ``acc * 2**-s`` spans about half of ``fmt``'s range (give or take a factor 2); with
    multipliers near ``2**-s`` the accumulators ``2**(s-1) mod 2**s`` are ties."""
    quarter = (fmt.qmax - fmt.qmin) // 4 + 1
    return max(0, int(np.ceil(np.log2((acc_max + 1) / quarter))) + int(rng.integers(-1, 2)))


ROUNDINGS = list(RequantRounding)
ACCUMULATORS = list(Accumulator)
PRECISIONS = list(Precision)
Y_FORMATS = [INT8, UINT8, INT8, UINT8, INT16, INT4]
ZP_KINDS = ["min", "max", "ends", "random"]
Y_ZP_KINDS = ["min", "max", "center", "center", "random", "random"]
BATCHES = [((), ()), ((2,), ()), ((), (3,)), ((2, 1), (3,)), ((1,), (2,))]


# --- qlinear_matmul --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rounding", ROUNDINGS, ids=lambda r: r.value)
@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    dtypes=st.tuples(st.sampled_from(DTYPES), st.sampled_from(DTYPES)),
    ranks=st.tuples(st.sampled_from([1, 2, 2, 3]), st.sampled_from([1, 2, 2, 3])),
    mkn=st.tuples(st.integers(1, 9), st.integers(1, 40), st.integers(1, 70)),
    batches=st.sampled_from(BATCHES),
    per=st.tuples(st.booleans(), st.booleans()),
    zp_kinds=st.tuples(st.sampled_from(ZP_KINDS), st.sampled_from(ZP_KINDS), st.sampled_from(Y_ZP_KINDS)),
    fill=st.sampled_from(["near", "near", "random", "extremes"]),
    scale_kind=st.sampled_from(["pow2", "near", "odd", "wide"]),
    precision=st.sampled_from(PRECISIONS),
    y_fmt=st.sampled_from(Y_FORMATS),
    views=st.tuples(
        st.sampled_from(["contiguous", "strided", "transposed", "reversed"]),
        st.sampled_from(["contiguous", "strided", "transposed", "reversed"]),
    ),
    packed=st.booleans(),
    accumulator=st.sampled_from(ACCUMULATORS),
)
def test_qlinear_matmul_matches_spec(
    path: KernelPath,
    seed: int,
    dtypes: tuple[np.dtype[Any], np.dtype[Any]],
    ranks: tuple[int, int],
    mkn: tuple[int, int, int],
    batches: tuple[tuple[int, ...], tuple[int, ...]],
    per: tuple[bool, bool],
    zp_kinds: tuple[str, str, str],
    fill: str,
    scale_kind: str,
    rounding: RequantRounding,
    precision: Precision,
    y_fmt: IntFormat,
    views: tuple[str, str],
    packed: bool,
    accumulator: Accumulator,
) -> None:
    rng = np.random.default_rng(seed)
    m, k, n = mkn
    a_rank, b_rank = ranks
    a_shape = (k,) if a_rank == 1 else (*batches[0], m, k) if a_rank == 3 else (m, k)
    b_shape = (k,) if b_rank == 1 else (*batches[1], k, n) if b_rank == 3 else (k, n)
    per_row = per[0] and a_rank >= 2
    per_col = per[1] and b_rank >= 2
    a_fmt, b_fmt = _fmt(dtypes[0]), _fmt(dtypes[1])
    za = _zero_points(rng, a_fmt, zp_kinds[0], m if per_row else 0)
    zb = _zero_points(rng, b_fmt, zp_kinds[1], n if per_col else 0)
    a = _codes(rng, a_shape, dtypes[0], fill, za, -2 if per_row else None)
    b = _codes(rng, b_shape, dtypes[1], fill, zb, -1 if per_col else None)
    acc = spec_ops.matmul_int(a, b, lhs_zero_point=za, rhs_zero_point=zb)
    s = _shift_for(int(np.abs(acc).max(initial=0)), y_fmt, rng)
    a_scale = _scales(rng, scale_kind, m if per_row else 1, -3)
    b_scale = _scales(rng, scale_kind, n if per_col else 1, 2)
    a_params = QuantParams(a_scale, za, a_fmt, PerAxis(-2)) if per_row else QuantParams(a_scale[0], za, a_fmt)
    b_params = QuantParams(b_scale, zb, b_fmt, PerAxis(-1)) if per_col else QuantParams(b_scale[0], zb, b_fmt)
    y_scale = _scales(rng, "wide", 1, 0)[0] if scale_kind == "wide" else np.float32(2.0 ** (s - 1))
    y_params = QuantParams(y_scale, _zero_points(rng, y_fmt, zp_kinds[2], 0), y_fmt)
    kwargs: dict[str, Any] = {
        "a_params": a_params,
        "b_params": b_params,
        "y_params": y_params,
        "rounding": rounding,
        "multiplier_precision": precision,
        "accumulator": accumulator,
    }
    av = _view(rng, a, views[0])
    bv: Any = fast.pack_rhs(b, rhs_zero_point=zb) if packed else _view(rng, b, views[1])
    _same(spec_ops.qlinear_matmul, fast.qlinear_matmul, (a, b), (av, bv), kwargs)


def test_qlinear_matmul_dense_ties(path: KernelPath) -> None:
    """Every accumulator value in [-300, 300] times 1/2 and 1/4 (exact ties), 1 / float32(4/3) and 1/2 one float32 step
    either way (next to the ties), for every rounding and multiplier precision."""
    rhs = np.array([[1], [1], [1]], np.int8)
    # row r holds three codes whose deviations from the zero point 128 sum to r - 300
    total = np.arange(601) - 300
    first = np.clip(total, -128, 127)
    second = np.clip(total - first, -128, 127)
    third = total - first - second
    lhs = (np.stack([first, second, third], axis=1) + 128).astype(np.uint8)
    one = np.float32(1.0)
    for y_scale in (
        np.float32(2.0),
        np.float32(4.0),
        np.float32(4.0 / 3.0),
        np.nextafter(np.float32(2.0), one),
        np.nextafter(np.float32(2.0), np.float32(3.0)),
    ):
        for rounding in ROUNDINGS:
            for precision in PRECISIONS:
                kwargs = {
                    "a_params": QuantParams(1.0, 128, UINT8),
                    "b_params": QuantParams(1.0, 0, INT8),
                    "y_params": QuantParams(y_scale, 0, INT16),
                    "rounding": rounding,
                    "multiplier_precision": precision,
                }
                got = _same(spec_ops.qlinear_matmul, fast.qlinear_matmul, (lhs, rhs), (lhs, rhs), kwargs)
                assert got is not None
                assert got.shape == (601, 1)


def test_qlinear_matmul_accumulator_overflow(path: KernelPath) -> None:
    """K past the int32 bound: the spec's UnpredictableError (same index and message), and a result below it."""
    k = 2**31 // (255 * 255) + 2
    a = np.full((2, k), 255, np.uint8)
    a[0, :] = 128
    b = np.full((k, 3), -128, np.int8)
    kwargs = {
        "a_params": QuantParams(1.0, 0, UINT8),
        "b_params": QuantParams(1.0, 127, INT8),
        "y_params": QuantParams(2.0**40, 0, INT8),
    }
    with pytest.raises(UnpredictableError):
        spec_ops.qlinear_matmul(a, b, **kwargs)
    _same(spec_ops.qlinear_matmul, fast.qlinear_matmul, (a, b), (a, b), kwargs)
    _same(spec_ops.qlinear_matmul, fast.qlinear_matmul, (a[:, :-4], b[:-4]), (a[:, :-4], b[:-4]), kwargs)


@pytest.mark.parametrize("accumulator", ACCUMULATORS, ids=lambda a: a.value)
def test_qlinear_matmul_every_accumulator_past_the_bound(path: KernelPath, accumulator: Accumulator) -> None:
    """K past the int32 bound, sums on both sides of it (and of -2**31), per tensor and per row and column,
    packed or not: the spec's codes (wrapped, saturated, int64) or its error, for every rounding."""
    k = 2**31 // (255 * 255) + 40
    rng = np.random.default_rng(11)
    a = np.full((4, k), 255, np.uint8)
    a[1, -200:] = 0  # the sum comes back below the bound
    a[2, :] = rng.integers(250, 256, k)
    a[3, :] = 128
    b = np.full((k, 3), -128, np.int8)
    b[:, 1] = 127
    b[:, 2] = rng.integers(-128, -120, k)
    exact = spec_ops.matmul_int(a, b, rhs_zero_point=[127, -128, 127], accumulator=Accumulator.INT64)
    assert exact.max() > INT32_MAX
    assert exact.min() < INT32_MIN
    per_tensor = {"a_params": QuantParams(2.0**-12, 0, UINT8), "b_params": QuantParams(2.0**-13, 127, INT8)}
    per_both = {
        "a_params": QuantParams([2.0**-12, 3 * 2.0**-14, 2.0**-12, 2.0**-11], 0, UINT8, PerAxis(-2)),
        "b_params": QuantParams([2.0**-13, 2.0**-13, 5 * 2.0**-16], [127, -128, 127], INT8, PerAxis(-1)),
    }
    for params in (per_tensor, per_both):
        for rounding in ROUNDINGS:
            kwargs = {**params, "y_params": QuantParams(1.0, 0, INT8), "rounding": rounding, "accumulator": accumulator}
            zb = params["b_params"].zero_point
            bv = b if params is per_both else b[:, :1]
            got = _same(spec_ops.qlinear_matmul, fast.qlinear_matmul, (a, bv), (a, bv), kwargs)
            if rounding is RequantRounding.FLOAT32:  # a packed rhs once per accumulator (the spec is slow here)
                got_packed = _same(
                    spec_ops.qlinear_matmul,
                    fast.qlinear_matmul,
                    (a, bv),
                    (a, fast.pack_rhs(bv, rhs_zero_point=zb)),
                    kwargs,
                )
                assert (got is None) == (got_packed is None)
            if accumulator is Accumulator.INT32 or (
                accumulator is Accumulator.INT64 and rounding in (RequantRounding.DOUBLE, RequantRounding.SINGLE)
            ):
                assert got is None  # an accumulator past int32: the spec's error, which fast raised
            else:
                assert got is not None


# --- qlinear_conv ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rounding", ROUNDINGS, ids=lambda r: r.value)
@settings(max_examples=24, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    layout=st.sampled_from(list(Layout)),
    dtypes=st.tuples(st.sampled_from(DTYPES), st.sampled_from(DTYPES)),
    n=st.integers(1, 2),
    groups=st.sampled_from([1, 1, 2, 3]),
    cg=st.integers(1, 5),
    ocg=st.sampled_from([1, 2, 3, 5, 17]),
    depthwise=st.booleans(),
    hw=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
    per_channel=st.booleans(),
    zp_kinds=st.tuples(st.sampled_from(ZP_KINDS), st.sampled_from(ZP_KINDS), st.sampled_from(Y_ZP_KINDS)),
    fill=st.sampled_from(["near", "near", "random", "extremes"]),
    scale_kind=st.sampled_from(["pow2", "near", "odd", "wide"]),
    bias_kind=st.sampled_from(["none", "small", "small", "high", "low"]),
    activation=st.sampled_from(["none", "none", "both", "min", "max"]),
    precision=st.sampled_from(PRECISIONS),
    y_fmt=st.sampled_from(Y_FORMATS),
    view=st.sampled_from(["contiguous", "strided", "reversed", "channels_last"]),
    packed=st.sampled_from([None, Layout.NCHW, Layout.NHWC]),
    accumulator=st.sampled_from(ACCUMULATORS),
)
def test_qlinear_conv_matches_spec(
    path: KernelPath,
    seed: int,
    layout: Layout,
    dtypes: tuple[np.dtype[Any], np.dtype[Any]],
    n: int,
    groups: int,
    cg: int,
    ocg: int,
    depthwise: bool,
    hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    padding: tuple[int, int, int, int],
    per_channel: bool,
    zp_kinds: tuple[str, str, str],
    fill: str,
    scale_kind: str,
    bias_kind: str,
    activation: str,
    rounding: RequantRounding,
    precision: Precision,
    y_fmt: IntFormat,
    view: str,
    packed: Layout | None,
    accumulator: Accumulator,
) -> None:
    rng = np.random.default_rng(seed)
    if depthwise:
        cg, ocg = 1, min(ocg, 2)
    c, o = groups * cg, groups * ocg
    kh, kw = kernel
    (dh, dw), (pt, pb, pl, pr) = dilation, padding
    h = max(hw[0], dh * (kh - 1) + 1 - pt - pb)  # a non-empty output
    wd = max(hw[1], dw * (kw - 1) + 1 - pl - pr)
    x_fmt, w_fmt = _fmt(dtypes[0]), _fmt(dtypes[1])
    zx = _zero_points(rng, x_fmt, zp_kinds[0], 0)
    zw = _zero_points(rng, w_fmt, zp_kinds[1], o if per_channel else 0)
    x = _codes(rng, (n, c, h, wd), dtypes[0], fill, zx)
    w = _codes(rng, (o, cg, kh, kw), dtypes[1], fill, zw, 0)
    if layout is Layout.NHWC:
        x, w = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(w.transpose(0, 2, 3, 1))
    acc = spec_ops.conv2d_int(
        x,
        w,
        x_zero_point=zx,
        w_zero_point=zw,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        layout=layout,
    )
    s = _shift_for(int(np.abs(acc.astype(np.int64)).max(initial=0)), y_fmt, rng)
    bound = cg * kh * kw * 255 * 255
    bias: np.ndarray | None = None
    if bias_kind == "small":  # up to about a quarter of the output range after scaling
        reach = 2**s * (y_fmt.qmax - y_fmt.qmin) // 4
        bias = rng.integers(-reach, reach + 1, o).astype(np.int32)
    elif bias_kind == "high":  # next to INT32_MAX: overflows only when acc is near its bound
        bias = (INT32_MAX - rng.integers(0, bound + 1, o)).astype(np.int32)
    elif bias_kind == "low":
        bias = (INT32_MIN + rng.integers(0, bound + 1, o)).astype(np.int32)
    act: dict[str, Any] = {}
    if activation in ("both", "min"):
        act["activation_min"] = int(rng.integers(y_fmt.qmin, y_fmt.qmax + 1))
    if activation in ("both", "max"):
        act["activation_max"] = int(rng.integers(act.get("activation_min", y_fmt.qmin), y_fmt.qmax + 1))
    kwargs: dict[str, Any] = {
        "x_params": QuantParams(_scales(rng, scale_kind, 1, -3)[0], zx, x_fmt),
        "w_params": QuantParams(_scales(rng, scale_kind, o, 2), zw, w_fmt, PerAxis(0))
        if per_channel
        else QuantParams(_scales(rng, scale_kind, 1, 2)[0], zw, w_fmt),
        "y_params": QuantParams(
            _scales(rng, "wide", 1, 0)[0] if scale_kind == "wide" else np.float32(2.0 ** (s - 1)),
            _zero_points(rng, y_fmt, zp_kinds[2], 0),
            y_fmt,
        ),
        "bias": bias,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "groups": groups,
        "layout": layout,
        "rounding": rounding,
        "multiplier_precision": precision,
        "accumulator": accumulator,
        **act,
    }
    if view == "channels_last" and layout is Layout.NCHW:  # an NCHW tensor stored channels-last
        xv = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    else:
        xv = _view(rng, x, "contiguous" if view == "channels_last" else view)
    wv: Any = w
    if packed is not None:
        w_packed = w if packed is layout else _other_layout(w, layout)
        wv = fast.pack_conv_weight(w_packed, groups=groups, layout=packed)
    _same(spec_ops.qlinear_conv, fast.qlinear_conv, (x, w), (xv, wv), kwargs)


def _other_layout(w: np.ndarray, layout: Layout) -> np.ndarray:
    """``w`` (in ``layout``) in the other layout's weight order."""
    return np.ascontiguousarray(w.transpose(0, 3, 1, 2) if layout is Layout.NHWC else w.transpose(0, 2, 3, 1))


def test_qlinear_conv_bias_at_int32_limits(path: KernelPath) -> None:
    """A bias that takes the accumulators exactly to INT32_MAX / INT32_MIN is fine; one more is the spec's error
    under INT32, wraps under INT32_WRAP, is clamped under INT32_SATURATE and is exact under INT64."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (1, 6, 5, 5)).astype(np.uint8)
    w = rng.integers(-128, 128, (4, 3, 3, 3)).astype(np.int8)
    conv = {"padding": (1, 0, 0, 1), "groups": 2}
    acc = spec_ops.conv2d_int(x, w, x_zero_point=255, w_zero_point=-128, **conv).astype(np.int64)
    top = (INT32_MAX - acc.max(axis=(0, 2, 3))).astype(np.int32)  # channel maxima land on INT32_MAX
    bottom = (INT32_MIN - acc.min(axis=(0, 2, 3))).astype(np.int32)  # channel minima land on INT32_MIN
    for layout in Layout:
        xl = x if layout is Layout.NCHW else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        wl = w if layout is Layout.NCHW else np.ascontiguousarray(w.transpose(0, 2, 3, 1))
        for bias in (top, bottom, top + np.int32(1), bottom - np.int32(1)):
            for rounding in ROUNDINGS:
                for accumulator in ACCUMULATORS:
                    kwargs = {
                        "x_params": QuantParams(1.0, 255, UINT8),
                        "w_params": QuantParams(1.0, -128, INT8),
                        "y_params": QuantParams(2.0**24, 0, INT16),
                        "bias": bias,
                        "layout": layout,
                        "rounding": rounding,
                        "accumulator": accumulator,
                        **conv,
                    }
                    _same(spec_ops.qlinear_conv, fast.qlinear_conv, (xl, wl), (xl, wl), kwargs)


@pytest.mark.parametrize("accumulator", ACCUMULATORS, ids=lambda a: a.value)
def test_qlinear_conv_every_accumulator_past_the_bound(path: KernelPath, accumulator: Accumulator) -> None:
    """K = C * kh * kw past the int32 bound (1 x 1 and 3 x 3 with padding, both layouts, per channel), with and
    without a bias next to the int32 limits: the spec's codes or its error."""
    rng = np.random.default_rng(12)
    for c, kernel, padding in ((34000, (1, 1), (0, 0, 0, 0)), (3800, (3, 3), (1, 0, 0, 1))):
        x = rng.integers(253, 256, (1, c, 4, 3)).astype(np.uint8)
        w = rng.integers(-128, -125, (3, c, *kernel)).astype(np.int8)  # (w - 127) * x <= -253 * 253
        w[1] = rng.integers(125, 128, (c, *kernel))  # (w + 128) * x >= 253 * 253
        w[2] = rng.integers(100, 128, (c, *kernel))  # small sums
        exact = spec_ops.conv2d_int(x, w, w_zero_point=[127, -128, 127], padding=padding, accumulator=Accumulator.INT64)
        assert exact.max() > INT32_MAX
        assert exact.min() < INT32_MIN
        w_params = QuantParams([2.0**-13, 2.0**-13, 3 * 2.0**-15], [127, -128, 127], INT8, PerAxis(0))
        bias = np.array([INT32_MIN, INT32_MAX, -5], np.int32)
        for layout, b in ((Layout.NCHW, None), (Layout.NCHW, bias), (Layout.NHWC, bias)):
            xl = x if layout is Layout.NCHW else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
            wl = w if layout is Layout.NCHW else np.ascontiguousarray(w.transpose(0, 2, 3, 1))
            for rounding in (RequantRounding.DOUBLE, RequantRounding.FLOAT32):
                kwargs = {
                    "x_params": QuantParams(2.0**-12, 0, UINT8),
                    "w_params": w_params,
                    "y_params": QuantParams(1.0, 0, INT8),
                    "bias": b,
                    "padding": padding,
                    "layout": layout,
                    "rounding": rounding,
                    "accumulator": accumulator,
                }
                _same(spec_ops.qlinear_conv, fast.qlinear_conv, (xl, wl), (xl, wl), kwargs)


def test_qlinear_conv_dense_ties(path: KernelPath) -> None:
    """1x1 convolutions whose accumulators run over [-400, 400], per channel multipliers 1/2, 1/4, 3/4 and neighbours."""
    total = np.arange(-400, 401)
    first = np.clip(total, -128, 127)
    second = np.clip(total - first, -128, 127)
    third = np.clip(total - first - second, -128, 127)
    fourth = total - first - second - third
    x = (np.stack([first, second, third, fourth])[None, :, None, :] + 128).astype(np.uint8)  # (1, 4, 1, 801)
    w = np.ones((5, 4, 1, 1), np.int8)
    one = np.float32(1.0)
    w_scale = np.array(
        [0.5, 0.25, 0.75, np.nextafter(np.float32(0.5), one), np.nextafter(np.float32(0.5), 0)], np.float32
    )
    for rounding in ROUNDINGS:
        for precision in PRECISIONS:
            kwargs = {
                "x_params": QuantParams(1.0, 128, UINT8),
                "w_params": QuantParams(w_scale, 0, INT8, PerAxis(0)),
                "y_params": QuantParams(1.0, -3, INT16),
                "bias": np.array([0, 1, -1, 3, -2], np.int32),
                "rounding": rounding,
                "multiplier_precision": precision,
            }
            _same(spec_ops.qlinear_conv, fast.qlinear_conv, (x, w), (x, w), kwargs)


# --- errors ----------------------------------------------------------------------------------------------------

_U = QuantParams(0.5, 3, UINT8)
_S = QuantParams(0.25, -2, INT8)
_Y = QuantParams(1.0, 0, INT8)
_A = np.arange(12, dtype=np.uint8).reshape(3, 4)
_B = (np.arange(8, dtype=np.int8) - 4).reshape(4, 2)
_BIG_K = 2**31 // (255 * 255) + 2
_A_BIG = np.full((1, _BIG_K), 255, np.uint8)
_B_BIG = np.full((_BIG_K, 1), -128, np.int8)

MATMUL_ERRORS: dict[str, tuple[Any, Any, dict[str, Any]]] = {
    "rounding_string": (_A, _B, {"rounding": "float64"}),
    "accumulator_string": (_A, _B, {"accumulator": "int32_wrap"}),
    "accumulator_before_params": (_A, _B, {"accumulator": None, "a_params": None}),
    "int64_double_outside_int32": (
        _A_BIG,
        _B_BIG,
        {
            "a_params": QuantParams(1.0, 0, UINT8),
            "b_params": QuantParams(1.0, 127, INT8),
            "accumulator": Accumulator.INT64,
            "rounding": RequantRounding.DOUBLE,
        },
    ),
    "precision_none": (_A, _B, {"multiplier_precision": None}),
    "a_params_none": (_A, _B, {"a_params": None}),
    "y_params_tuple": (_A, _B, {"y_params": (1.0, 0)}),
    "a_float": (_A.astype(np.float32), _B, {}),
    "b_int16": (_A, _B.astype(np.int16), {}),
    "a_params_format": (_A, _B, {"a_params": _S}),
    "b_params_format": (_A, _B, {"b_params": _U}),
    "y_params_per_axis": (_A, _B, {"y_params": QuantParams([1.0, 2.0], 0, INT8, PerAxis(-1))}),
    "a_params_wrong_axis": (_A, _B, {"a_params": QuantParams([1.0] * 4, 0, UINT8, PerAxis(-1))}),
    "a_params_wrong_count": (_A, _B, {"a_params": QuantParams([1.0] * 2, 0, UINT8, PerAxis(-2))}),
    "b_params_wrong_count": (_A, _B, {"b_params": QuantParams([1.0] * 3, 0, INT8, PerAxis(-1))}),
    "b_params_per_row": (_A, _B, {"b_params": QuantParams([1.0] * 4, 0, INT8, PerAxis(0))}),
    "b_params_per_axis_1d": (_A, _B[:, 0], {"b_params": QuantParams([1.0], 0, INT8, PerAxis(0))}),
    "a_scalar": (np.uint8(3), _B, {}),
    "inner_mismatch": (_A, _B[:3], {}),
    "batch_mismatch": (np.zeros((2, 3, 4), np.uint8), np.zeros((3, 4, 2), np.int8), {}),
    "multiplier_inf_float32": (
        _A,
        _B,
        {
            "a_params": QuantParams(1e30, 3, UINT8),
            "b_params": QuantParams(1e30, 0, INT8),
            "y_params": QuantParams(1e-30, 0, INT8),
            "multiplier_precision": Precision.FLOAT32,
        },
    ),
    "multiplier_beyond_float32": (
        _A,
        _B,
        {
            "a_params": QuantParams(1e30, 3, UINT8),
            "b_params": QuantParams(1e30, 0, INT8),
            "y_params": QuantParams(1e-30, 0, INT8),
            "rounding": RequantRounding.FLOAT32,
        },
    ),
    "overflow_before_multiplier": (
        _A_BIG,
        _B_BIG,
        {
            "a_params": QuantParams(1e30, 0, UINT8),
            "b_params": QuantParams(1e30, 127, INT8),
            "y_params": QuantParams(1e-30, 0, INT8),
            "multiplier_precision": Precision.FLOAT32,
        },
    ),
    "double_left_shift": (_A, _B, {"y_params": QuantParams(2.0**-35, 0, INT8), "rounding": RequantRounding.DOUBLE}),
    "double_product": (_A, _B, {"y_params": QuantParams(2.0**-28, 0, INT8), "rounding": RequantRounding.DOUBLE}),
    "single_scaled": (_A, _B, {"y_params": QuantParams(2.0**-30, 0, INT8), "rounding": RequantRounding.SINGLE}),
    "row_and_column_unpredictable": (
        _A,
        _B,
        {
            "a_params": QuantParams([0.5, 2.0**10, 1.0], 3, UINT8, PerAxis(-2)),
            "b_params": QuantParams([2.0**12, 0.25], 0, INT8, PerAxis(-1)),
            "y_params": QuantParams(2.0**-12, 0, INT8),
            "rounding": RequantRounding.DOUBLE,
        },
    ),
}


@pytest.mark.parametrize("case", list(MATMUL_ERRORS))
def test_qlinear_matmul_errors_match_spec(path: KernelPath, case: str) -> None:
    a, b, extra = MATMUL_ERRORS[case]
    kwargs = {"a_params": _U, "b_params": _S, "y_params": _Y, **extra}
    with pytest.raises((SpecError, UnpredictableError)):
        spec_ops.qlinear_matmul(a, b, **kwargs)
    _same(spec_ops.qlinear_matmul, fast.qlinear_matmul, (a, b), (a, b), kwargs)


_X = np.arange(2 * 4 * 5 * 5, dtype=np.uint8).reshape(2, 4, 5, 5)
_W = (np.arange(6 * 2 * 3 * 3) % 7 - 3).astype(np.int8).reshape(6, 2, 3, 3)
_X_BIG = np.full((1, 2, 1, 1), 255, np.uint8)
_W_BIG = np.full((1, 2, 1, 1), -128, np.int8)
_X_OVER = np.full((1, _BIG_K, 1, 1), 255, np.uint8)
_W_OVER = np.full((1, _BIG_K, 1, 1), -128, np.int8)
_OVER = {"x_params": QuantParams(1.0, 0, UINT8), "w_params": QuantParams(1.0, 127, INT8)}
_BIAS_OVER = {
    "x_params": QuantParams(1.0, 0, UINT8),
    "w_params": QuantParams(1.0, 127, INT8),
    "bias": np.array([INT32_MIN], np.int32),
}

CONV_ERRORS: dict[str, tuple[Any, Any, dict[str, Any]]] = {
    "rounding_string": (_X, _W, {"rounding": "double"}),
    "accumulator_string": (_X, _W, {"accumulator": "int64"}),
    "accumulator_before_layout": (_X, _W, {"accumulator": 1, "layout": "nchw"}),
    "int64_single_bias_outside_int32": (
        _X_BIG,
        _W_BIG,
        {**_BIAS_OVER, "accumulator": Accumulator.INT64, "rounding": RequantRounding.SINGLE},
    ),
    "wrap_bias_then_activation_error": (
        _X_BIG,
        _W_BIG,
        {**_BIAS_OVER, "accumulator": Accumulator.INT32_WRAP, "activation_min": 1000},
    ),
    "layout_string": (_X, _W, {"layout": "nchw"}),
    "x_params_none": (_X, _W, {"x_params": None}),
    "x_float": (_X.astype(np.float64), _W, {}),
    "w_3d": (_X, _W[0], {}),
    "x_params_format": (_X, _W, {"x_params": _S}),
    "x_params_per_axis": (_X, _W, {"x_params": QuantParams([1.0] * 2, 3, UINT8, PerAxis(0))}),
    "w_params_axis_1": (_X, _W, {"w_params": QuantParams([1.0] * 2, 0, INT8, PerAxis(1))}),
    "w_params_count": (_X, _W, {"w_params": QuantParams([1.0] * 5, 0, INT8, PerAxis(0))}),
    "stride_zero": (_X, _W, {"stride": (0, 1)}),
    "padding_negative": (_X, _W, {"padding": (0, -1, 0, 0)}),
    "dilation_short": (_X, _W, {"dilation": (1,)}),
    "groups_zero": (_X, _W, {"groups": 0}),
    "groups_not_dividing": (_X, _W, {"groups": 3}),
    "channels_mismatch": (_X, _W[:, :1], {}),
    "empty_output": (_X, _W, {"dilation": (3, 1)}),
    "bias_float": (_X, _W, {"bias": np.zeros(6, np.float32)}),
    "bias_shape": (_X, _W, {"bias": np.zeros(5, np.int32)}),
    "bias_int64": (_X, _W, {"bias": np.zeros(6, np.int64)}),
    "activation_float": (_X, _W, {"activation_min": 1.5}),
    "activation_bool": (_X, _W, {"activation_max": True}),
    "activation_range": (_X, _W, {"activation_max": 200}),
    "activation_order": (_X, _W, {"activation_min": 10, "activation_max": 9}),
    "multiplier_inf_float32": (
        _X,
        _W,
        {
            "x_params": QuantParams(1e30, 3, UINT8),
            "w_params": QuantParams(1e30, 0, INT8),
            "y_params": QuantParams(1e-30, 0, INT8),
            "multiplier_precision": Precision.FLOAT32,
        },
    ),
    "multiplier_beyond_float32": (
        _X,
        _W,
        {
            "x_params": QuantParams(1e30, 3, UINT8),
            "w_params": QuantParams(1e30, 0, INT8),
            "y_params": QuantParams(1e-30, 0, INT8),
            "rounding": RequantRounding.FLOAT32,
        },
    ),
    "conv_overflow": (_X_OVER, _W_OVER, _OVER),
    "conv_overflow_before_bias_dtype": (_X_OVER, _W_OVER, {**_OVER, "bias": np.zeros(1, np.float32)}),
    "bias_overflow": (_X_BIG, _W_BIG, _BIAS_OVER),
    "bias_overflow_before_activation": (_X_BIG, _W_BIG, {**_BIAS_OVER, "activation_min": 1000}),
    "double_left_shift_nchw": (
        _X,
        _W,
        {
            "w_params": QuantParams([1.0, 2.0**31, 1.0, 1.0, 1.0, 1.0], 0, INT8, PerAxis(0)),
            "rounding": RequantRounding.DOUBLE,
        },
    ),
    "double_left_shift_nhwc": (
        np.ascontiguousarray(_X.transpose(0, 2, 3, 1)),
        np.ascontiguousarray(_W.transpose(0, 2, 3, 1)),
        {
            "w_params": QuantParams([1.0, 1.0, 1.0, 2.0**20, 1.0, 1.0], 0, INT8, PerAxis(0)),
            "rounding": RequantRounding.DOUBLE,
            "layout": Layout.NHWC,
        },
    ),
    "single_scaled": (_X, _W, {"y_params": QuantParams(2.0**-30, 0, INT8), "rounding": RequantRounding.SINGLE}),
}


@pytest.mark.parametrize("case", list(CONV_ERRORS))
def test_qlinear_conv_errors_match_spec(path: KernelPath, case: str) -> None:
    x, w, extra = CONV_ERRORS[case]
    kwargs = {"x_params": _U, "w_params": _S, "y_params": _Y, **extra}
    with pytest.raises((SpecError, UnpredictableError)):
        spec_ops.qlinear_conv(x, w, **kwargs)
    _same(spec_ops.qlinear_conv, fast.qlinear_conv, (x, w), (x, w), kwargs)


def test_packed_weights_must_agree(path: KernelPath) -> None:
    """A PackedRhs carries its zero point and a PackedConvWeight its groups: b_params / groups must agree."""
    packed = fast.pack_rhs(_B, rhs_zero_point=-2)
    expected = spec_ops.qlinear_matmul(_A, _B, a_params=_U, b_params=_S, y_params=_Y)
    np.testing.assert_array_equal(fast.qlinear_matmul(_A, packed, a_params=_U, b_params=_S, y_params=_Y), expected)
    with pytest.raises(SpecError) as info:
        fast.qlinear_matmul(_A, packed, a_params=_U, b_params=QuantParams(0.25, 0, INT8), y_params=_Y)
    assert info.value.condition == "zero_point_shape_mismatch"
    with pytest.raises(SpecError) as info:
        fast.qlinear_matmul(_A, packed, a_params=_U, b_params=QuantParams(0.25, 0, UINT8), y_params=_Y)
    assert info.value.condition == "invalid_format"
    per_col = fast.pack_rhs(_B, rhs_zero_point=np.array([-2, 5]))
    b_params = QuantParams([0.25, 0.5], [-2, 5], INT8, PerAxis(-1))
    np.testing.assert_array_equal(
        fast.qlinear_matmul(_A, per_col, a_params=_U, b_params=b_params, y_params=_Y),
        spec_ops.qlinear_matmul(_A, _B, a_params=_U, b_params=b_params, y_params=_Y),
    )
    with pytest.raises(SpecError) as info:
        fast.qlinear_matmul(
            _A, per_col, a_params=_U, b_params=QuantParams([0.25, 0.5], -2, INT8, PerAxis(-1)), y_params=_Y
        )
    assert info.value.condition == "zero_point_shape_mismatch"
    packed_w = fast.pack_conv_weight(_W, groups=2)
    with pytest.raises(SpecError) as info:
        fast.qlinear_conv(_X, packed_w, x_params=_U, w_params=_S, y_params=_Y)
    assert info.value.condition == "invalid_groups"
    np.testing.assert_array_equal(
        fast.qlinear_conv(_X, packed_w, x_params=_U, w_params=_S, y_params=_Y, groups=2),
        spec_ops.qlinear_conv(_X, _W, x_params=_U, w_params=_S, y_params=_Y, groups=2),
    )


def _bad_outs(shape: tuple[int, ...], dtype: type[np.generic]) -> list[Any]:
    """Outputs that are not a writable C-contiguous array of ``shape`` and ``dtype``."""
    wrong_dtype = np.int16 if dtype is not np.int16 else np.int8
    readonly = np.zeros(shape, dtype)
    readonly.setflags(write=False)
    strided = np.zeros((*shape[:-1], shape[-1] * 2), dtype)[..., ::2]
    return [
        np.zeros(shape, dtype).tolist(),
        np.zeros((*shape, 1), dtype),
        np.zeros(shape, wrong_dtype),
        strided,
        readonly,
    ]


def test_invalid_out(path: KernelPath) -> None:
    """out of the wrong type, shape, dtype, layout, read-only or aliasing an input: SpecError("invalid_out")."""
    s = QuantParams(1.0, 0, INT8)
    u = QuantParams(1.0, 0, UINT8)
    a = np.zeros((3, 4), np.int8)
    b = np.zeros((4, 3), np.int8)
    for out in _bad_outs((3, 3), np.int8):
        with pytest.raises(SpecError) as info:
            fast.qlinear_matmul(a, b, a_params=s, b_params=s, y_params=s, out=out)
        assert info.value.condition == "invalid_out"
    square = np.zeros((3, 3), np.int8)
    for lhs, rhs in ((square, np.zeros((3, 3), np.int8)), (np.zeros((3, 3), np.int8), square)):
        with pytest.raises(SpecError) as info:  # out is an input
            fast.qlinear_matmul(lhs, rhs, a_params=s, b_params=s, y_params=s, out=square)
        assert info.value.condition == "invalid_out"
    with pytest.raises(SpecError) as info:  # right shape, int8 instead of the uint8 of y_params
        fast.qlinear_matmul(a, b, a_params=s, b_params=s, y_params=u, out=np.zeros((3, 3), np.int8))
    assert info.value.condition == "invalid_out"

    x = np.zeros((1, 2, 3, 3), np.int8)
    w = np.zeros((2, 2, 1, 1), np.int8)
    for out in [*_bad_outs((1, 2, 3, 3), np.int8), x]:
        with pytest.raises(SpecError) as info:
            fast.qlinear_conv(x, w, x_params=s, w_params=s, y_params=s, out=out)
        assert info.value.condition == "invalid_out"
    bias = np.zeros(2, np.int32)
    with pytest.raises(SpecError) as info:  # out aliases the bias
        fast.qlinear_conv(
            x[:, :, :1, :1],
            w,
            x_params=s,
            w_params=s,
            y_params=s,
            bias=bias,
            out=bias.view(np.int8)[:2].reshape(1, 2, 1, 1),
        )
    assert info.value.condition == "invalid_out"
    with pytest.raises(SpecError) as info:
        fast.qlinear_conv(x, w, x_params=s, w_params=s, y_params=u, out=np.zeros((1, 2, 3, 3), np.int8))
    assert info.value.condition == "invalid_out"


def test_empty_results(path: KernelPath) -> None:
    """Zero rows, columns or batch: empty codes of the right shape and dtype (and out= returned)."""
    s = QuantParams(0.5, 0, INT8)
    u = QuantParams(0.5, 7, UINT8)
    for a_shape, b_shape in (((0, 4), (4, 3)), ((2, 4), (4, 0)), ((0, 2, 4), (4, 3)), ((2, 0), (0, 3))):
        a = np.zeros(a_shape, np.uint8)
        b = np.ones(b_shape, np.int8)
        _same(
            spec_ops.qlinear_matmul, fast.qlinear_matmul, (a, b), (a, b), {"a_params": u, "b_params": s, "y_params": u}
        )
    x = np.zeros((0, 2, 3, 3), np.uint8)
    w = np.ones((4, 2, 1, 1), np.int8)
    _same(spec_ops.qlinear_conv, fast.qlinear_conv, (x, w), (x, w), {"x_params": u, "w_params": s, "y_params": s})


# --- the vectorised quantize_multiplier ------------------------------------------------------------------------

EDGE_MULTIPLIERS = [
    0.0,
    -0.0,
    5e-324,
    2.0**-31,
    2.0**-32,
    np.nextafter(2.0**-32, 1.0),
    np.nextafter(2.0**-32, 0.0),
    1.5e-10,
    0.25,
    0.5,
    1 - 2.0**-40,
    1 - 2.0**-32,
    1 - 2.0**-31,
    np.nextafter(1.0, 0.0),
    1.0,
    3.0,
    2.0**30,
    2.0**31,
    np.nextafter(2.0**31, 0.0),
    2.0**40,
    1e300,
    1.0 + 2.0**-32,
    (2**31 - 1) / 2**31,
    (2**31 - 0.5) / 2**31,
    (2**30 + 0.5) / 2**31,
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1e12, allow_nan=False), min_size=1, max_size=20), st.booleans())
def test_fixed_point_multipliers_match_quantize_multiplier(values: list[float], single: bool) -> None:
    m = np.array(values + EDGE_MULTIPLIERS, np.float64)
    q, e = fast._fixed_point_multipliers(m, single)
    pairs = [quantize_multiplier(float(v), single_rounding=single) for v in m]
    np.testing.assert_array_equal(q, [p.multiplier for p in pairs])
    np.testing.assert_array_equal(e, [p.shift for p in pairs])
