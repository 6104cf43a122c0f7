"""refquant.fast.conv2d_int against the specification (refquant.conv2d_int), bit for bit, on every kernel path.

Every test runs on the portable kernels and, where the CPU has AVX-512 VNNI, on the VNNI implicit-GEMM
tile (``set_kernel_path``); one subprocess test checks that ``REFQUANT_KERNELS=portable`` selects the
portable path from the environment.  Hypothesis chooses a seed and the shape of the problem (batch,
groups and depthwise, channel counts that are and are not multiples of 4, output channels on both
sides of the 16-channel VNNI dispatch and of a 64-channel panel, kernel size, stride, dilation,
per-side padding), both layouts, the dtypes, zero points at both ends of their range (scalar or per
output channel), the fill of the codes (random, all-minimum, all-maximum, the two extremes), the
memory layout of the input (C-contiguous, strided, reversed, channels-last view of an NCHW tensor)
and the accumulator.  Inputs whose reduction passes the int32 bound (K * 255 * 255 > 2**31 - 1)
exercise the exact and saturating kernels and the overflow error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refquant.fast as fast
from refquant.errors import SpecError, UnpredictableError
from refquant.kernels._jit import KernelPath
from refquant.spec import integer_ops as spec_ops
from refquant.spec.integer_ops import Accumulator, Layout
from tests.kernels.conftest import DTYPES, codes


def _zero_point(rng: np.random.Generator, dtype: np.dtype[Any], kind: str, channels: int = 1) -> Any:
    info = np.iinfo(dtype)
    if kind == "min":
        return int(info.min)
    if kind == "max":
        return int(info.max)
    if kind == "random":
        return int(rng.integers(info.min, int(info.max) + 1))
    if kind == "per_channel":
        values = rng.integers(info.min, int(info.max) + 1, channels)
        values[rng.integers(0, 2, channels).astype(bool)] = info.max
        values[0] = info.min
        return values
    return 0


def _view(arr: np.ndarray, how: str) -> np.ndarray:
    """The same values as ``arr`` through a C-contiguous, strided, reversed or channels-last view."""
    if how == "strided":
        big = np.zeros((*arr.shape[:-1], arr.shape[-1] * 2 + 1), arr.dtype)
        big[..., 1::2] = arr
        return big[..., 1::2]
    if how == "reversed":
        rev = np.ascontiguousarray(arr[:, ::-1])
        return rev[:, ::-1]
    if how == "permuted":  # the same logical tensor stored in another axis order
        return np.ascontiguousarray(arr.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return arr


def _same(x: Any, w: Any, **kw: Any) -> np.ndarray:
    expected = spec_ops.conv2d_int(x, w, **kw)
    got = fast.conv2d_int(x, w, **kw)
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    return expected


@st.composite
def conv_problems(draw: st.DrawFn) -> dict[str, Any]:
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    depthwise = draw(st.booleans()) and groups > 1
    cg = 1 if depthwise else draw(st.sampled_from([1, 3, 4, 5, 8, 9, 16]))
    ocg = draw(st.sampled_from([1, 2, 5, 16, 17, 40, 64, 70]))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pad = tuple(draw(st.integers(0, 2)) for _ in range(4))
    h = draw(st.integers(max(1, dh * (kh - 1) + 1 - pad[0] - pad[1]), 9))
    w = draw(st.integers(max(1, dw * (kw - 1) + 1 - pad[2] - pad[3]), 9))
    return {
        "n": draw(st.integers(1, 2)),
        "groups": groups,
        "cg": cg,
        "ocg": ocg,
        "kernel": (kh, kw),
        "stride": (sh, sw),
        "dilation": (dh, dw),
        "padding": pad,
        "hw": (h, w),
        "layout": draw(st.sampled_from(list(Layout))),
        "x_dtype": draw(st.sampled_from(DTYPES)),
        "w_dtype": draw(st.sampled_from(DTYPES)),
        "x_zp": draw(st.sampled_from(["zero", "min", "max", "random"])),
        "w_zp": draw(st.sampled_from(["zero", "min", "max", "random", "per_channel"])),
        "x_fill": draw(st.sampled_from(["random", "random", "min", "max", "extremes"])),
        "w_fill": draw(st.sampled_from(["random", "random", "min", "max", "extremes"])),
        "view": draw(st.sampled_from(["contiguous", "strided", "reversed", "permuted"])),
        "accumulator": draw(st.sampled_from(list(Accumulator))),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def _build(p: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    rng = np.random.default_rng(p["seed"])
    g, cg, ocg = p["groups"], p["cg"], p["ocg"]
    kh, kw = p["kernel"]
    h, w = p["hw"]
    x = _view(codes(rng, (p["n"], g * cg, h, w), p["x_dtype"], p["x_fill"]), p["view"])
    wt = codes(rng, (g * ocg, cg, kh, kw), p["w_dtype"], p["w_fill"])
    if p["layout"] is Layout.NHWC:
        x = x.transpose(0, 2, 3, 1)  # a channels-last view: strided unless the view made it contiguous
        wt = np.ascontiguousarray(wt.transpose(0, 2, 3, 1))
    kwargs = {
        "x_zero_point": _zero_point(rng, p["x_dtype"], p["x_zp"]),
        "w_zero_point": _zero_point(rng, p["w_dtype"], p["w_zp"], g * ocg),
        "stride": p["stride"],
        "padding": p["padding"],
        "dilation": p["dilation"],
        "groups": g,
        "layout": p["layout"],
        "accumulator": p["accumulator"],
    }
    return x, wt, kwargs


@settings(max_examples=120, deadline=None)
@given(conv_problems())
def test_conv2d_int_matches_the_spec(path: KernelPath, problem: dict[str, Any]) -> None:
    x, w, kwargs = _build(problem)
    _same(x, w, **kwargs)


@settings(max_examples=25, deadline=None)
@given(conv_problems())
def test_packed_weights_and_out(path: KernelPath, problem: dict[str, Any]) -> None:
    x, w, kwargs = _build(problem)
    expected = spec_ops.conv2d_int(x, w, **kwargs)
    other = Layout.NCHW if kwargs["layout"] is Layout.NHWC else Layout.NHWC
    w_other = w.transpose(0, 3, 1, 2) if kwargs["layout"] is Layout.NHWC else w.transpose(0, 2, 3, 1)
    for packed in (
        fast.pack_conv_weight(w, groups=kwargs["groups"], layout=kwargs["layout"]),
        fast.pack_conv_weight(w_other, groups=kwargs["groups"], layout=other),
    ):
        out = np.full(expected.shape, 7, expected.dtype)
        got = fast.conv2d_int(x, packed, out=out, **kwargs)
        assert got is out
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(fast.conv2d_int(x, packed, **kwargs), expected)  # reused


@pytest.mark.parametrize(
    ("c", "h", "w", "o", "padding"),
    [
        (16, 4, 16, 16, (1, 1, 1, 1)),  # 64 output pixels: 16-pixel blocks aligned to out's 64-byte lines
        (20, 2, 17, 20, (1, 1, 1, 1)),  # 34 pixels, 20 channels: blocks plus element-by-element edges
        (64, 5, 31, 40, (0, 2, 1, 0)),  # asymmetric padding, 155 pixels
        (48, 4, 56, 64, (1, 1, 1, 1)),  # 224 pixels, 4 whole channel blocks
        (80, 3, 20, 72, (1, 1, 1, 1)),  # 80 input channels: 64-channel byte blocks, the last one overlapping
    ],
)
@pytest.mark.parametrize("dx", DTYPES)
def test_nchw_block_transposes(
    path: KernelPath, c: int, h: int, w: int, o: int, padding: tuple[int, ...], dx: np.dtype[Any]
) -> None:
    # A contiguous NCHW input with W >= 16 and C >= 16 (C % 4 == 0) goes to NHWC in 16 x 16 byte blocks (the
    # last block of each dimension overlapping the one before); the NCHW int32 result comes back in 16 x 16
    # int32 blocks, which start at a 64-byte line of `out` when the pixel count allows: `out` at every
    # int32 offset within a line.
    rng = np.random.default_rng(c * h * w)
    x = codes(rng, (2, c, h, w), dx, "random")
    wt = codes(rng, (o, c, 3, 3), np.dtype(np.int8), "random")
    kw: dict[str, Any] = {"x_zero_point": _zero_point(rng, dx, "random"), "padding": padding}
    expected = _same(x, wt, **kw)
    for offset in range(16):
        raw = np.empty(expected.size + 16, np.int32)
        out = raw[offset : offset + expected.size].reshape(expected.shape)
        out[...] = 7
        assert fast.conv2d_int(x, wt, out=out, **kw) is out
        np.testing.assert_array_equal(out, expected)


def test_vnni_panel_edges(path: KernelPath) -> None:
    # 6-row tiles across output rows and a partial last tile; panels of 64 with a partial last panel.
    rng = np.random.default_rng(3)
    for n, c, hw, o, k in [(1, 64, (7, 5), 128, 3), (2, 12, (5, 13), 130, 1), (1, 4, (1, 1), 64, 1)]:
        x = rng.integers(-128, 128, (n, c, *hw)).astype(np.int8)
        w = rng.integers(0, 256, (o, c, k, k)).astype(np.uint8)
        pad = (k // 2,) * 4
        for layout in Layout:
            xl = np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if layout is Layout.NHWC else x
            wl = np.ascontiguousarray(w.transpose(0, 2, 3, 1)) if layout is Layout.NHWC else w
            _same(xl, wl, x_zero_point=-3, w_zero_point=np.arange(o) % 256, padding=pad, layout=layout)


def test_uint8_nhwc_without_padding_is_read_in_place(path: KernelPath) -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (2, 6, 7, 32)).astype(np.uint8)
    w = rng.integers(-128, 128, (48, 1, 1, 32)).astype(np.int8)
    for zx in (0, 128, 255):
        _same(x, w, x_zero_point=zx, layout=Layout.NHWC)
        _same(x, w, x_zero_point=zx, w_zero_point=-128, layout=Layout.NHWC, accumulator=Accumulator.INT64)


# --- past the int32 bound: exact int64 sums, saturation in (kh, kw, c) order, the overflow error ---------------

BIG_C = 9000  # one kernel row holds 9000 * 8 = 72000 taps > (2**31 - 1) / (127 * 255) = 66311
BIG_KW = 8


def _big_case(pattern: str, layout: Layout) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    rng = np.random.default_rng(5)
    x = np.empty((1, BIG_C, 3, BIG_KW), np.int8)
    if pattern == "max":  # every product +127 * 255: the sum passes 2**31 - 1
        x[...] = 127
    elif pattern == "halves":  # output row 1: kernel row 0 saturates, kernel row 1 comes back down
        x[:, :, :2, :] = 127
        x[:, :, 2:, :] = -128
    else:
        x[...] = rng.integers(-128, 128, x.shape)
    w = np.full((17, BIG_C, 2, BIG_KW), 127, np.int8)
    w[1] = rng.integers(-128, 128, w[1].shape)
    w[2] = -128
    kwargs: dict[str, Any] = {"x_zero_point": 0, "w_zero_point": -128, "layout": layout}
    if layout is Layout.NHWC:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(w.transpose(0, 2, 3, 1)), kwargs
    return x, w, kwargs


@pytest.mark.parametrize("layout", list(Layout), ids=lambda v: v.value)
@pytest.mark.parametrize("pattern", ["max", "halves", "random"])
@pytest.mark.parametrize("accumulator", list(Accumulator), ids=lambda v: v.value)
def test_past_the_int32_bound(path: KernelPath, accumulator: Accumulator, pattern: str, layout: Layout) -> None:
    x, w, kwargs = _big_case(pattern, layout)
    kwargs["accumulator"] = accumulator
    expected: Any
    try:
        expected = spec_ops.conv2d_int(x, w, **kwargs)
    except UnpredictableError as err:
        expected = err
    if isinstance(expected, UnpredictableError):
        with pytest.raises(UnpredictableError) as raised:
            fast.conv2d_int(x, w, **kwargs)
        assert raised.value.condition == expected.condition == "accumulator_overflow"
        assert str(raised.value) == str(expected)
        return
    got = fast.conv2d_int(x, w, **kwargs)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_the_big_cases_reach_every_outcome() -> None:
    # The cases above are only meaningful if they overflow, saturate and differ from wrapping.
    x, w, kwargs = _big_case("max", Layout.NCHW)
    with pytest.raises(UnpredictableError):
        spec_ops.conv2d_int(x, w, **kwargs)
    x, w, kwargs = _big_case("halves", Layout.NCHW)
    exact = spec_ops.conv2d_int(x, w, accumulator=Accumulator.INT64, **kwargs)
    saturated = spec_ops.conv2d_int(x, w, accumulator=Accumulator.INT32_SATURATE, **kwargs)
    assert not np.array_equal(exact, saturated.astype(np.int64))


# --- errors: the spec's conditions and messages --------------------------------------------------------------------

X = np.zeros((1, 4, 5, 5), np.int8)
W = np.zeros((8, 4, 3, 3), np.int8)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((X.astype(np.int16), W), {}),
        ((X, W.astype(np.float32)), {}),
        ((X[0], W), {}),
        ((X, W), {"stride": (0, 1)}),
        ((X, W), {"dilation": (1,)}),
        ((X, W), {"padding": (1, 1, -1, 0)}),
        ((X, W), {"groups": 3}),
        ((X, W), {"groups": 0}),
        ((X, W[:, :2]), {}),
        ((X, W), {"x_zero_point": 128}),
        ((X, W), {"x_zero_point": [1, 2]}),
        ((X, W), {"w_zero_point": np.zeros(3, np.int64)}),
        ((X, W), {"w_zero_point": 1.5}),
        ((X[:, :, :2], W), {}),
        ((X, W), {"layout": "nchw"}),
        ((X, W), {"accumulator": "int32"}),
    ],
)
def test_errors_match_the_spec(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as want:
        spec_ops.conv2d_int(*args, **kwargs)
    with pytest.raises(SpecError) as got:
        fast.conv2d_int(*args, **kwargs)
    assert got.value.condition == want.value.condition
    assert str(got.value) == str(want.value)


def test_invalid_out_and_packed_groups() -> None:
    y = spec_ops.conv2d_int(X, W)
    for bad in (
        np.empty(y.shape, np.int64),
        np.empty((1, 8, 3, 4), np.int32),
        np.empty(y.shape[::-1], np.int32).T,
        [0],
    ):
        with pytest.raises(SpecError) as err:
            fast.conv2d_int(X, W, out=bad)  # type: ignore[arg-type]
        assert err.value.condition == "invalid_out"
    with pytest.raises(SpecError) as err:
        fast.conv2d_int(X, W, accumulator=Accumulator.INT64, out=np.empty(y.shape, np.int32))
    assert err.value.condition == "invalid_out"
    packed = fast.pack_conv_weight(W)
    with pytest.raises(SpecError) as err:
        fast.conv2d_int(X, packed, groups=2)
    assert err.value.condition == "invalid_groups"
    with pytest.raises(SpecError) as err:
        fast.pack_conv_weight(W, groups=3)
    assert err.value.condition == "invalid_groups"
    with pytest.raises(SpecError) as err:
        fast.pack_conv_weight(W.astype(np.int32))
    assert err.value.condition == "unsupported_dtype"


def test_packed_weight_is_a_private_copy() -> None:
    rng = np.random.default_rng(6)
    x = rng.integers(-128, 128, (1, 4, 6, 6)).astype(np.int8)
    w = rng.integers(-128, 128, (16, 4, 3, 3)).astype(np.int8)
    expected = spec_ops.conv2d_int(x, w)
    packed = fast.pack_conv_weight(w)
    w[...] = 0
    np.testing.assert_array_equal(fast.conv2d_int(x, packed), expected)


def test_portable_path_from_the_environment() -> None:
    code = (
        "import numpy as np, refquant.fast as f, refquant.spec.integer_ops as s\n"
        "from refquant.kernels._jit import kernel_path\n"
        "x = np.arange(2 * 8 * 5 * 5).astype(np.uint8).reshape(2, 8, 5, 5)\n"
        "w = (np.arange(32 * 8 * 9) % 251 - 125).astype(np.int8).reshape(32, 8, 3, 3)\n"
        "kw = dict(x_zero_point=7, padding=(1, 0, 2, 1))\n"
        "assert (f.conv2d_int(x, w, **kw) == s.conv2d_int(x, w, **kw)).all()\n"
        "print(kernel_path().value)\n"
    )
    env = {**os.environ, "REFQUANT_KERNELS": "portable"}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env).stdout
    assert out.split() == ["portable"]


# --- qlinear_conv with the bias and the requantization fused into the VNNI kernel --------------------------------
#
# refquant.fast.qlinear_conv fuses the int32 bias and the FLOAT32 / FLOAT64 requantization into the VNNI conv
# kernel (at least 8 output channels per group, 8- or 16-bit codes, INT32_WRAP or a bias within the int32
# bound).  These tests compare it with the spec's qlinear_conv on tie- and edge-dense inputs, count that the
# fused kernel ran, and cover the calls that must fall back to the unfused pipeline (or the spec's error).


def _qconv_outcome(fn: Any, x: Any, w: Any, kwargs: dict[str, Any]) -> Any:
    """The codes of ``fn(x, w, **kwargs)``, or the (type, condition, message) of the error it raises."""
    try:
        return fn(x, w, **kwargs)
    except (SpecError, UnpredictableError) as exc:
        return (type(exc), exc.condition, str(exc))


def _qconv_same(x: np.ndarray, w: np.ndarray, kwargs: dict[str, Any]) -> None:
    """fast.qlinear_conv (plain, packed weights, ``out=``) gives the spec's codes or the spec's error."""
    expected = _qconv_outcome(spec_ops.qlinear_conv, x, w, kwargs)
    packed = fast.pack_conv_weight(w, groups=kwargs.get("groups", 1), layout=kwargs.get("layout", Layout.NCHW))
    for wv in (w, packed):
        got = _qconv_outcome(fast.qlinear_conv, x, wv, kwargs)
        if isinstance(expected, tuple):
            assert got == expected
            continue
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
        out = np.full(expected.shape, 1, expected.dtype)  # something the result must overwrite
        assert fast.qlinear_conv(x, wv, out=out, **kwargs) is out
        np.testing.assert_array_equal(out, expected)


@pytest.fixture
def fused_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the calls of the fused kernel (one entry per call)."""
    calls: list[int] = []
    kernel = fast._conv.conv_vnni_requant

    def counting(*args: Any) -> Any:
        calls.append(1)
        return kernel(*args)

    monkeypatch.setattr(fast._conv, "conv_vnni_requant", counting)
    return calls


def _tie_case(o: int, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """A 1x1 conv (uint8 x with zero point 128, int8 w) whose accumulators run densely over [-700, 700]: with
    multipliers 2**-k * odd every other value is an exact tie.  Worked from the definition: the 6 input
    channels split each total into parts in [-128, 127] and the weights are +1 (-1 on odd channels), so
    acc = +-total."""
    total = np.arange(-700, 701)
    x = np.full((1, 6, 1, total.shape[0]), 128, np.uint8)
    rest = total.copy()
    for c in range(6):
        part = np.clip(rest, -128, 127)
        x[0, c, 0] = (part + 128).astype(np.uint8)
        rest = rest - part
    assert np.all(rest == 0)
    w = np.ones((o, 6, 1, 1), np.int8)
    w[1::2] = -1
    if layout is Layout.NHWC:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(w.transpose(0, 2, 3, 1))
    return x, w


@pytest.mark.parametrize("layout", list(Layout), ids=lambda v: v.value)
def test_fused_requantization_dense_ties(path: KernelPath, layout: Layout, fused_calls: list[int]) -> None:
    from refquant.spec.affine import Precision, QuantParams
    from refquant.spec.fixed_point import RequantRounding
    from refquant.spec.formats import INT4, INT8, INT16, UINT8
    from refquant.spec.granularity import PerAxis

    o = 80  # one full 64-channel panel and a partial one
    x, w = _tie_case(o, layout)
    one = np.float32(1.0)
    base = np.array([0.5, 0.25, 0.75, 0.125, 0.375, 1.0, 2.0, 1.5], np.float32)
    w_scale = np.resize(base, o)
    w_scale[8:16] = np.nextafter(np.resize(base, 8), one)  # the float32 neighbours of the ties
    w_scale[16:24] = np.nextafter(np.resize(base, 8), np.float32(0))
    w_scale[24:32] = np.float32(1) / np.float32(3)  # rounding of the float32 product itself
    bias = (np.arange(o) % 7 - 3).astype(np.int32)
    for rounding in (RequantRounding.FLOAT32, RequantRounding.FLOAT64):
        for precision in Precision:
            for y_params, act in (
                (QuantParams(4.0, 0, INT8), {}),
                (QuantParams(4.0, 128, UINT8), {}),
                (QuantParams(2.0, 0, UINT8), {"activation_min": 0}),  # the fused ReLU
                (QuantParams(0.5, -7, INT16), {"activation_min": -300, "activation_max": 500}),
                (QuantParams(64.0, 1, INT4), {}),
            ):
                kwargs = {
                    "x_params": QuantParams(1.0, 128, UINT8),
                    "w_params": QuantParams(w_scale, np.zeros(o, np.int64), INT8, PerAxis(0)),
                    "y_params": y_params,
                    "bias": bias,
                    "layout": layout,
                    "rounding": rounding,
                    "multiplier_precision": precision,
                    **act,
                }
                _qconv_same(x, w, kwargs)
    assert (len(fused_calls) > 0) == (path is KernelPath.VNNI)


@pytest.mark.parametrize(("hw", "o"), [(8, 40), (7, 48), (16, 16), (8, 80), (4, 130)])
def test_fused_nchw_codes_at_every_alignment(path: KernelPath, hw: int, o: int, fused_calls: list[int]) -> None:
    # NCHW 8-bit codes are written NHWC by the fused kernel, then transposed in 16 x 16 byte blocks (four at once
    # from 64 channels, the last block overlapping the one before) that start on a 16-byte boundary of `out`
    # when the pixel count allows (64 and 256 pixels here; 49 does not): `out` at every byte offset within 16,
    # signed and unsigned codes.
    from refquant.spec.affine import QuantParams
    from refquant.spec.fixed_point import RequantRounding
    from refquant.spec.formats import INT8, UINT8
    from refquant.spec.granularity import PerAxis

    rng = np.random.default_rng(hw * o)
    x = codes(rng, (2, 32, hw, hw), np.dtype(np.uint8), "random")
    w = codes(rng, (o, 32, 3, 3), np.dtype(np.int8), "random")
    for y_params in (QuantParams(40.0, 3, UINT8), QuantParams(30.0, -5, INT8)):
        kwargs: dict[str, Any] = {
            "x_params": QuantParams(0.5, 120, UINT8),
            "w_params": QuantParams(
                np.linspace(0.5, 2.0, o).astype(np.float32), np.zeros(o, np.int64), INT8, PerAxis(0)
            ),
            "y_params": y_params,
            "bias": rng.integers(-5000, 5000, o).astype(np.int32),
            "padding": (1, 1, 1, 1),
            "rounding": RequantRounding.FLOAT32,
        }
        expected = spec_ops.qlinear_conv(x, w, **kwargs)
        for offset in range(16):
            raw = np.empty(expected.size + 16, expected.dtype)
            out = raw[offset : offset + expected.size].reshape(expected.shape)
            out[...] = 1
            assert fast.qlinear_conv(x, w, out=out, **kwargs) is out
            np.testing.assert_array_equal(out, expected)
    assert (len(fused_calls) > 0) == (path is KernelPath.VNNI)


@pytest.mark.parametrize("accumulator", list(Accumulator), ids=lambda v: v.value)
def test_fused_requantization_bias_past_int32(
    path: KernelPath, accumulator: Accumulator, fused_calls: list[int]
) -> None:
    """A bias next to INT32_MAX / INT32_MIN: INT32_WRAP wraps inside the fused kernel; the other accumulators
    leave the fused path (the bound does not hold) and give the spec's codes or its error."""
    from refquant.spec.affine import QuantParams
    from refquant.spec.fixed_point import RequantRounding
    from refquant.spec.formats import INT8, UINT8

    rng = np.random.default_rng(11)
    o = 70
    x = rng.integers(0, 256, (1, 8, 6, 7)).astype(np.uint8)
    w = rng.integers(-128, 128, (o, 8, 3, 3)).astype(np.int8)
    top = np.full(o, 2**31 - 1, np.int64) - rng.integers(0, 3000, o)
    bias = np.where(np.arange(o) % 2 == 0, top, -top - 1).astype(np.int32)
    for layout in Layout:
        xl = x if layout is Layout.NCHW else np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        wl = w if layout is Layout.NCHW else np.ascontiguousarray(w.transpose(0, 2, 3, 1))
        for rounding in (RequantRounding.FLOAT32, RequantRounding.FLOAT64):
            kwargs = {
                "x_params": QuantParams(2.0**-4, 100, UINT8),
                "w_params": QuantParams(2.0**-4, 3, INT8),
                "y_params": QuantParams(2.0**20, 0, INT8),
                "bias": bias,
                "padding": (1, 0, 2, 1),
                "layout": layout,
                "rounding": rounding,
                "accumulator": accumulator,
            }
            _qconv_same(xl, wl, kwargs)
    assert (len(fused_calls) > 0) == (path is KernelPath.VNNI and accumulator is Accumulator.INT32_WRAP)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    shape=st.sampled_from(
        [(1, 3, 7, 2, 3, 16), (1, 4, 3, 1, 1, 64), (2, 8, 3, 2, 1, 70), (1, 13, 1, 2, 0, 130), (1, 5, 1, 1, 0, 17)]
    ),
    groups=st.sampled_from([1, 1, 2]),
    hw=st.tuples(st.integers(1, 11), st.integers(1, 11)),
    dtypes=st.tuples(st.sampled_from(DTYPES), st.sampled_from(DTYPES)),
    zps=st.tuples(
        st.sampled_from(["zero", "min", "max", "random"]), st.sampled_from(["zero", "random", "per_channel"])
    ),
    fill=st.sampled_from(["random", "random", "extremes", "max"]),
    y=st.sampled_from(["int8", "uint8", "int16", "int4"]),
    rounding=st.sampled_from(["float32", "float64"]),
    bias_kind=st.sampled_from(["none", "small", "large"]),
    relu=st.booleans(),
    layout=st.sampled_from(list(Layout)),
    accumulator=st.sampled_from(list(Accumulator)),
)
def test_fused_requantization_matches_the_spec(
    path: KernelPath,
    seed: int,
    shape: tuple[int, int, int, int, int, int],
    groups: int,
    hw: tuple[int, int],
    dtypes: tuple[np.dtype[Any], np.dtype[Any]],
    zps: tuple[str, str],
    fill: str,
    y: str,
    rounding: str,
    bias_kind: str,
    relu: bool,
    layout: Layout,
    accumulator: Accumulator,
) -> None:
    """ResNet-like layers (7x7/2 stem with 3 channels, 3x3, 1x1 and 1x1/2) with per-channel scales, bias, ReLU."""
    from refquant.spec.affine import Precision, QuantParams
    from refquant.spec.fixed_point import RequantRounding
    from refquant.spec.formats import IntFormat
    from refquant.spec.granularity import PerAxis

    rng = np.random.default_rng(seed)
    n, cg, k, stride, pad, ocg = shape
    o = groups * ocg
    h, wd = max(hw[0], k - 2 * pad), max(hw[1], k - 2 * pad)
    x = codes(rng, (n, groups * cg, h, wd), dtypes[0], fill)
    w = codes(rng, (o, cg, k, k), dtypes[1], fill)
    x_fmt = IntFormat(8, dtypes[0] == np.int8)
    w_fmt = IntFormat(8, dtypes[1] == np.int8)
    zx = _zero_point(rng, dtypes[0], zps[0])
    zw = _zero_point(rng, dtypes[1], zps[1], o)
    y_fmt = IntFormat.from_name(y)
    sw = (2.0 ** rng.uniform(-9, -5, o)).astype(np.float32)
    bias = None
    if bias_kind != "none":
        reach = 2000 if bias_kind == "small" else 2**30
        bias = rng.integers(-reach, reach, o).astype(np.int32)
    y_zp = int(rng.integers(y_fmt.qmin, y_fmt.qmax + 1))
    kwargs: dict[str, Any] = {
        "x_params": QuantParams(np.float32(0.05), zx, x_fmt),
        "w_params": QuantParams(sw, np.broadcast_to(np.asarray(zw, np.int64), (o,)).copy(), w_fmt, PerAxis(0)),
        "y_params": QuantParams(np.float32(2.0 ** rng.integers(-3, 3)), y_zp, y_fmt),
        "bias": bias,
        "stride": (stride, stride),
        "padding": (pad,) * 4,
        "groups": groups,
        "layout": layout,
        "rounding": RequantRounding(rounding),
        "multiplier_precision": Precision.FLOAT32 if seed % 2 else Precision.FLOAT64,
        "accumulator": accumulator,
    }
    if relu:
        kwargs["activation_min"] = y_zp
    if layout is Layout.NHWC:
        x, w = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(w.transpose(0, 2, 3, 1))
    _qconv_same(x, w, kwargs)


@pytest.mark.parametrize("pattern", ["max", "halves"])
def test_fused_requantization_wrapping_sums(path: KernelPath, pattern: str, fused_calls: list[int]) -> None:
    """Sums past int32 (the big cases above, 17 output channels): INT32_WRAP requantizes the sums modulo 2**32
    plus the bias modulo 2**32, inside the fused kernel on the VNNI path."""
    from refquant.spec.affine import QuantParams
    from refquant.spec.fixed_point import RequantRounding
    from refquant.spec.formats import INT8

    x, w, kwargs = _big_case(pattern, Layout.NHWC)
    bias = np.arange(17, dtype=np.int32) * np.int32(2**27)  # pushes some wrapped sums across the int32 ends again
    qkwargs: dict[str, Any] = {
        "x_params": QuantParams(2.0**-10, 0, INT8),
        "w_params": QuantParams(2.0**-10, -128, INT8),
        "y_params": QuantParams(2.0**4, 3, INT8),
        "bias": bias,
        "layout": Layout.NHWC,
        "rounding": RequantRounding.FLOAT32,
        "accumulator": Accumulator.INT32_WRAP,
    }
    wrapped = spec_ops.conv2d_int(x, w, accumulator=Accumulator.INT32_WRAP, **kwargs)
    exact = spec_ops.conv2d_int(x, w, accumulator=Accumulator.INT64, **kwargs)
    assert not np.array_equal(wrapped.astype(np.int64), exact)  # the sums do wrap
    expected = spec_ops.qlinear_conv(x, w, **qkwargs)
    np.testing.assert_array_equal(fast.qlinear_conv(x, w, **qkwargs), expected)
    assert (len(fused_calls) > 0) == (path is KernelPath.VNNI)


def test_qlinear_conv_repeated_calls_take_the_plan_and_stay_exact(path: KernelPath, fused_calls: list[int]) -> None:
    """A call with the same parameter objects, packed weight, input and bias dtypes and shapes and options as one
    that passed every check goes straight to the fused kernel (``fast._QCONV_PLANS``).  Whatever changes between
    such calls and is not in the key (the input's values, the bias's values, ``out``) still gives the spec's codes
    or error; a key the memo refuses (a float stride) gets the spec's error."""
    from refquant.spec.affine import QuantParams
    from refquant.spec.fixed_point import RequantRounding
    from refquant.spec.formats import INT8, UINT8
    from refquant.spec.granularity import PerAxis

    rng = np.random.default_rng(5)
    o = c = 32
    w = rng.integers(-128, 128, (o, 1, 1, c)).astype(np.int8)
    packed = fast.pack_conv_weight(w, layout=Layout.NHWC)
    kwargs: dict[str, Any] = {
        "x_params": QuantParams(2.0**-5, 3, UINT8),
        "w_params": QuantParams(rng.uniform(1e-3, 1e-2, o).astype(np.float32), np.zeros(o, np.int64), INT8, PerAxis(0)),
        "y_params": QuantParams(0.37, 5, UINT8),
        "stride": (1, 1),
        "padding": (0, 0, 0, 0),
        "layout": Layout.NHWC,
        "rounding": RequantRounding.FLOAT32,
        "activation_min": 5,
    }
    fast._QCONV_PLANS.clear()
    for trial in range(4):  # new input and bias values each time, the same objects and shapes
        x = rng.integers(0, 256, (1, 5, 7, c)).astype(np.uint8)
        bias = rng.integers(-(2**20), 2**20, o).astype(np.int32)
        expected = spec_ops.qlinear_conv(x, w, bias=bias, **kwargs)
        np.testing.assert_array_equal(fast.qlinear_conv(x, packed, bias=bias, **kwargs), expected)
        out = np.full(expected.shape, 1, np.uint8)
        assert fast.qlinear_conv(x, packed, bias=bias, out=out, **kwargs) is out
        np.testing.assert_array_equal(out, expected)
        assert len(fast._QCONV_PLANS) == (1 if path is KernelPath.VNNI else 0), trial
    assert len(fused_calls) == (8 if path is KernelPath.VNNI else 0)
    # A bias past the int32 bound: the fused kernel does not apply; the spec's codes or its error.
    bias = np.full(o, 2**31 - 1, np.int32)
    expected = _qconv_outcome(spec_ops.qlinear_conv, x, w, {**kwargs, "bias": bias})
    got = _qconv_outcome(fast.qlinear_conv, x, packed, {**kwargs, "bias": bias})
    if isinstance(expected, tuple):
        assert got == expected
    else:
        np.testing.assert_array_equal(got, expected)
    # out sharing memory with the input: refused, as on the first call.
    with pytest.raises(SpecError) as err:
        fast.qlinear_conv(x, packed, bias=bias, out=x[..., :o], **kwargs)
    assert err.value.condition == "invalid_out"
    # A float stride never reuses the int stride's plan: the spec's own error.
    bad = {**kwargs, "stride": (1.0, 1.0), "bias": bias}
    assert _qconv_outcome(fast.qlinear_conv, x, packed, bad) == _qconv_outcome(spec_ops.qlinear_conv, x, w, bad)


@pytest.mark.parametrize(("o", "groups"), [(8, 1), (12, 1), (15, 1), (16, 2), (24, 3), (7, 1)])
def test_narrow_output_channels(path: KernelPath, o: int, groups: int, fused_calls: list[int]) -> None:
    """8 to 15 output channels per group run on the VNNI kernels (panels of 64 mostly padding), fewer stay portable:
    conv2d_int and the fused qlinear_conv give the spec's values either way."""
    from refquant.spec.affine import QuantParams
    from refquant.spec.fixed_point import RequantRounding
    from refquant.spec.formats import INT8, UINT8

    rng = np.random.default_rng(o * 10 + groups)
    c = 6 * groups
    for layout in Layout:
        x = rng.integers(0, 256, (2, c, 9, 7)).astype(np.uint8)
        w = rng.integers(-128, 128, (o, c // groups, 3, 3)).astype(np.int8)
        if layout is Layout.NHWC:
            x, w = np.ascontiguousarray(x.transpose(0, 2, 3, 1)), np.ascontiguousarray(w.transpose(0, 2, 3, 1))
        _same(x, w, x_zero_point=3, w_zero_point=-2, padding=(1, 1, 1, 1), groups=groups, layout=layout)
        kwargs = {
            "x_params": QuantParams(2.0**-4, 100, UINT8),
            "w_params": QuantParams(2.0**-5, 0, INT8),
            "y_params": QuantParams(0.75, 128, UINT8),
            "bias": rng.integers(-5000, 5000, o).astype(np.int32),
            "padding": (1, 0, 1, 2),
            "groups": groups,
            "layout": layout,
            "rounding": RequantRounding.FLOAT32,
            "activation_min": 128,
        }
        _qconv_same(x, w, kwargs)
    assert (len(fused_calls) > 0) == (path is KernelPath.VNNI and o // groups >= 8)
