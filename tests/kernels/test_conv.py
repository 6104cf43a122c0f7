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
