"""refquant.spec.qat: the fake-quantize STE masks (PYTORCH from the unclamped code, TORCHAO after clamping) at
ties and boundaries, the exact float32 sum against a Fraction oracle, LSQ's per-element terms against a step by step
float32 oracle and its sums, the TORCH variant's quirks worked by hand, TTQ, and every error condition."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refquant import SpecError, profiles
from refquant.spec.affine import QuantParams, ScaleApplication, ZeroPointOrder, _fma_float32, fake_quantize, quantize
from refquant.spec.formats import INT4, INT8, INT32, UINT8, IntFormat
from refquant.spec.granularity import PerAxis
from refquant.spec.qat import (
    LsqVariant,
    SteMask,
    exact_sum_float32,
    fake_quantize_grad,
    fake_quantize_mask,
    lsq_grad_scale,
    lsq_grad_terms,
    lsq_grads,
    ttq_grads,
)

F32 = np.float32


def condition(call: Callable[[], Any]) -> str:
    with pytest.raises(SpecError) as info:
        call()
    return info.value.condition


def bits32(x: Any) -> Any:
    return np.asarray(x, F32).view(np.uint32).tolist()


# ---------------------------------------------------------------------------------------------------------------
# Fake-quantize STE


def test_v25_mask_table() -> None:
    # spec-anchors V25, worked by hand: s = 1, z = 0, uint8: round(x) = [0, -1, 255, 256] -> PYTORCH [1, 0, 1, 0];
    # TORCHAO clamps first, so every element passes.
    x = np.array([-0.4, -0.6, 255.4, 255.6], F32)
    p = QuantParams(1.0, 0, UINT8)
    assert fake_quantize_mask(x, p).tolist() == [True, False, True, False]
    assert fake_quantize_mask(x, p, mask=SteMask.TORCHAO).tolist() == [True] * 4


def test_boundary_ties_round_half_to_even() -> None:
    # Worked by hand, s = 1: x = -0.5 rounds to -0 -> code 0 + z; x = 255.5 rounds to 256; with z = 1, x = -1.5
    # rounds to -2 -> -1 (out) and x = 253.5 rounds to 254 -> 255 (in); x = 254.5 rounds to 254 -> 255 (in).
    p0 = QuantParams(1.0, 0, UINT8)
    assert fake_quantize_mask(np.array([-0.5, 255.5, -1.5, 254.5], F32), p0).tolist() == [True, False, False, True]
    p1 = QuantParams(1.0, 1, UINT8)
    assert fake_quantize_mask(np.array([-1.5, -0.5, 253.5, 254.5], F32), p1).tolist() == [False, True, True, True]
    # zero point before rounding (FBGEMM legacy): x = -1.5 + 1 = -0.5 -> 0 (in), 254.5 + 1 = 255.5 -> 256 (out).
    before = fake_quantize_mask(
        np.array([-1.5, 254.5], F32),
        p1,
        scale_application=ScaleApplication.DIVIDE,
        zero_point_order=ZeroPointOrder.BEFORE_ROUNDING,
    )
    assert before.tolist() == [True, False]


finite = st.floats(-1e6, 1e6, width=32)


@settings(max_examples=100)
@given(
    x=hnp.arrays(F32, st.integers(1, 20), elements=finite),
    scale=st.floats(2.0**-10, 2.0**10, width=32),
    zp=st.integers(-128, 127),
    reciprocal=st.booleans(),
)
def test_mask_is_the_unclamped_code_in_range(x: np.ndarray, scale: float, zp: int, reciprocal: bool) -> None:
    s = F32(scale)
    if reciprocal:
        v = x * (F32(1) / s)
        application = ScaleApplication.RECIPROCAL_MULTIPLY
    else:
        v = x / s
        application = ScaleApplication.DIVIDE
    u = np.rint(v.astype(np.float64)) + zp  # exact: |v| < 2**53
    expected = (u >= -128) & (u <= 127)
    p = QuantParams(s, zp, INT8)
    assert fake_quantize_mask(x, p, scale_application=application).tolist() == expected.tolist()
    # Where the mask holds, the forward's code is the unsaturated one.
    codes = quantize(x, p, scale_application=application).astype(np.int64)
    np.testing.assert_array_equal(codes[expected], u[expected].astype(np.int64))


def test_mask_follows_the_profile_case_of_the_original_format() -> None:
    """profiles.TORCH rounds fma(x, 1/s, z) once for INT8 per tensor: the mask uses that case, not the wide format's."""
    rng = np.random.default_rng(4)
    s = F32(0.37)
    x = (rng.uniform(-60, 60, 4000) * float(s)).astype(F32)
    p = QuantParams(s, -64, INT8)
    inv = np.full(x.shape, F32(1) / s, F32)
    u = np.rint(_fma_float32(x, inv, np.full(x.shape, F32(-64), F32)).astype(np.float64))
    assert fake_quantize_mask(x, p, profile=profiles.TORCH).tolist() == ((u >= -128) & (u <= 127)).tolist()


def test_grad_is_a_multiplication_by_the_mask() -> None:
    x = np.array([-0.6, 0.0, 300.0, 1.0, 300.0], F32)
    p = QuantParams(1.0, 0, UINT8)
    g = np.array([-2.0, np.nan, np.inf, 5.0, -3.0], F32)
    out = fake_quantize_grad(x, g, p)
    # -2 * 0 = -0.0; NaN passes through inside; inf * 0 = NaN; -3 * 0 = -0.0.
    assert bits32(out[[0, 3, 4]]) == bits32([-0.0, 5.0, -0.0])
    assert np.isnan(out[1])
    assert np.isnan(out[2])
    assert out.dtype == F32


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_grad_keeps_grad_dtype(dtype: type) -> None:
    x = np.array([1.0, 1000.0], F32)
    out = fake_quantize_grad(x, np.array([1.5, 1.5], dtype), QuantParams(1.0, 0, INT8))
    assert out.dtype == np.dtype(dtype)
    assert out.tolist() == [1.5, 0.0]


def test_per_axis_mask() -> None:
    p = QuantParams(np.array([1.0, 0.5], F32), np.array([0, 100], np.int64), INT8, PerAxis(0))
    x = np.array([[127.4, 127.6], [13.0, 14.0]], F32)
    # Worked by hand: row 0 (s 1, z 0): 127, 128 -> [1, 0]; row 1 (s 0.5, z 100): 26 + 100 = 126, 28 + 100 = 128.
    assert fake_quantize_mask(x, p).tolist() == [[True, False], [True, False]]


def test_infinities_are_outside_for_pytorch_and_inside_for_torchao() -> None:
    x = np.array([np.inf, -np.inf, 0.0], F32)
    p = QuantParams(1.0, 0, INT8)
    assert fake_quantize_mask(x, p).tolist() == [False, False, True]
    assert fake_quantize_mask(x, p, mask=SteMask.TORCHAO).tolist() == [True, True, True]


def test_fake_quantize_grad_errors() -> None:
    p = QuantParams(1.0, 0, INT8)
    x = np.ones(3, F32)
    g = np.ones(3, F32)
    assert condition(lambda: fake_quantize_grad(x, g, p, mask="pytorch")) == "invalid_option"  # type: ignore[arg-type]
    assert condition(lambda: fake_quantize_grad(x, g, (1.0, 0))) == "invalid_option"  # type: ignore[arg-type]
    assert condition(lambda: fake_quantize_grad(x, g, p, profile="onnx")) == "invalid_option"  # type: ignore[arg-type]
    assert condition(lambda: fake_quantize_grad(x, g, QuantParams(1.0, 0, INT32))) == "invalid_format"
    assert condition(lambda: fake_quantize_grad(x, np.ones(2, F32), p)) == "shape_mismatch"
    assert condition(lambda: fake_quantize_grad(x, np.ones(3, np.int32), p)) == "unsupported_dtype"
    assert condition(lambda: fake_quantize_grad(np.array([np.nan], F32), np.ones(1, F32), p)) == "nan_input"
    assert condition(lambda: fake_quantize_grad(np.array(["a"]), np.ones(1, F32), p)) == "unsupported_dtype"


def test_thirty_bit_formats_are_supported() -> None:
    # Worked by hand: int30 codes are [-2**29, 2**29 - 1]; these values are exact in float32.
    fmt = IntFormat(30, True)
    x = np.array([2.0**29 - 64, 2.0**29, -(2.0**29), -(2.0**29) - 64], F32)
    assert fake_quantize_mask(x, QuantParams(1.0, 0, fmt)).tolist() == [True, False, True, False]


# ---------------------------------------------------------------------------------------------------------------
# Exact float32 sums


def round_fraction_to_float32(value: Fraction) -> float:
    """The float32 nearest to ``value`` (ties to an even significand), by comparing exact distances."""
    if value == 0:
        return 0.0
    guess = np.float32(float(value))
    if np.isinf(guess):
        return float(guess)
    candidates = [np.nextafter(guess, F32(-np.inf)), guess, np.nextafter(guess, F32(np.inf))]
    finite_candidates = [c for c in candidates if np.isfinite(c)]
    best = min(
        finite_candidates,
        key=lambda c: (abs(Fraction(float(c)) - value), int(np.asarray(c, F32).view(np.uint32)) & 1),
    )
    return float(best)


sum_elements = st.floats(width=32, allow_nan=False, allow_infinity=False).filter(lambda v: abs(v) < 2.0**100)


@settings(max_examples=200)
@given(values=hnp.arrays(F32, st.integers(1, 40), elements=sum_elements))
def test_exact_sum_against_fractions(values: np.ndarray) -> None:
    exact = sum((Fraction(float(v)) for v in values), Fraction(0))
    expected = round_fraction_to_float32(exact)
    got = float(exact_sum_float32(values))
    if exact == 0:
        assert got == 0.0
    else:
        assert got == expected


def test_exact_sum_edges() -> None:
    assert bits32(exact_sum_float32(np.array([-0.0, -0.0], F32))) == bits32(F32(-0.0))
    assert bits32(exact_sum_float32(np.array([-0.0, 0.0], F32))) == bits32(F32(0.0))
    assert bits32(exact_sum_float32(np.array([1.0, -1.0], F32))) == bits32(F32(0.0))
    big = np.finfo(F32).max
    assert exact_sum_float32(np.array([big, big], F32)) == np.inf
    assert exact_sum_float32(np.array([-big, -big], F32)) == -np.inf
    tiny = np.array([2.0**-149, 2.0**-149, 2.0**-149], F32)
    assert bits32(exact_sum_float32(tiny)) == bits32(F32(3 * 2.0**-149))
    # Worked by hand: 1 + 2**-24 + 2**-24 = 1 + 2**-23 exactly (a float32), where left to right gives 1.
    assert float(exact_sum_float32(np.array([1.0, 2.0**-24, 2.0**-24], F32))) == 1.0 + 2.0**-23
    # Ties: 1 + 2**-24 is halfway between 1 and 1 + 2**-23: to even, 1.
    assert float(exact_sum_float32(np.array([1.0, 2.0**-24], F32))) == 1.0
    assert float(exact_sum_float32(np.array([1.0, 3 * 2.0**-24], F32))) == 1.0 + 2.0**-22
    assert exact_sum_float32(np.zeros(0, F32)).tolist() == 0.0


def test_exact_sum_per_axis_and_order_independence() -> None:
    rng = np.random.default_rng(8)
    v = (rng.standard_normal((3, 50, 4)) * 10.0 ** rng.integers(-6, 6, (3, 50, 4))).astype(F32)
    per = exact_sum_float32(v, axis=2)
    assert per.shape == (4,)
    for c in range(4):
        assert bits32(per[c]) == bits32(exact_sum_float32(np.ascontiguousarray(v[..., c])))
        shuffled = rng.permutation(v[..., c].ravel())
        assert bits32(per[c]) == bits32(exact_sum_float32(shuffled))


def test_exact_sum_errors() -> None:
    assert condition(lambda: exact_sum_float32(np.ones(2))) == "unsupported_dtype"
    assert condition(lambda: exact_sum_float32(np.array([np.nan], F32))) == "nan_input"
    assert condition(lambda: exact_sum_float32(np.array([np.inf], F32))) == "range_not_finite"
    assert condition(lambda: exact_sum_float32(np.ones((2, 2), F32), axis=2)) == "axis_out_of_range"


# ---------------------------------------------------------------------------------------------------------------
# LSQ


def lsq_oracle(
    x: np.ndarray, dy: np.ndarray, s: np.float32, zf: float, fmt: IntFormat, g: np.float32
) -> tuple[list[int], list[int], list[int]]:
    """The REFQUANT per-element definition, one element and one float32 operation at a time."""
    z = min(max(int(np.rint(F32(zf))), fmt.qmin), fmt.qmax)
    gx, ts, tz = [], [], []
    for xi, di in zip(x.tolist(), dy.tolist(), strict=True):
        v = F32(F32(xi) / s)
        r = F32(np.rint(v))
        u = int(r) + z
        if fmt.qmin <= u <= fmt.qmax:
            gx.append(F32(di) * F32(1))
            ts.append(F32(F32(F32(di) * F32(r - v)) * g))
            tz.append(F32(0))
        else:
            gx.append(F32(di) * F32(0))
            edge = fmt.qmin - z if u < fmt.qmin else fmt.qmax - z
            ts.append(F32(F32(F32(di) * F32(edge)) * g))
            tz.append(F32(F32(-F32(di) * s) * g))
    return bits32(gx), bits32(ts), bits32(tz)


def boundary_inputs(s: np.float32, z: int, fmt: IntFormat) -> np.ndarray:
    """x at (k - z +- 0.5) * s for every code k near and inside the range, and one ulp either side."""
    ks = np.arange(fmt.qmin - 2, fmt.qmax + 3)
    base = (((ks - z)[:, None] + np.array([-0.5, 0.5])[None, :]).ravel() * float(s)).astype(F32)
    return np.concatenate([base, np.nextafter(base, F32(np.inf)), np.nextafter(base, F32(-np.inf))])


@pytest.mark.parametrize(
    ("fmt", "zf"), [(INT8, 0.0), (INT8, -3.0), (INT8, 2.5), (UINT8, 128.0), (UINT8, 3.5), (INT4, 1.0)]
)
@pytest.mark.parametrize("scale", [0.1, 0.0123, 1.0])
def test_lsq_terms_against_the_step_by_step_oracle(fmt: IntFormat, zf: float, scale: float) -> None:
    s = F32(scale)
    z = min(max(int(np.rint(zf)), fmt.qmin), fmt.qmax)
    x = boundary_inputs(s, z, fmt)
    rng = np.random.default_rng(len(x))
    dy = rng.standard_normal(x.shape).astype(F32)
    g = F32(0.37)
    gx, ts, tz = lsq_grad_terms(x, dy, s, F32(zf), fmt, grad_scale=0.37)
    assert (bits32(gx), bits32(ts), bits32(tz)) == lsq_oracle(x, dy, s, zf, fmt, g)
    _, gs, gz = lsq_grads(x, dy, s, F32(zf), fmt, grad_scale=0.37)
    assert bits32(gs) == bits32(exact_sum_float32(ts))
    assert bits32(gz) == bits32(exact_sum_float32(tz))


def test_lsq_grad_x_is_the_pytorch_mask_of_the_default_forward() -> None:
    s = F32(0.05)
    x = boundary_inputs(s, 3, INT8)
    dy = np.ones(x.shape, F32)
    gx, _, _ = lsq_grads(x, dy, s, F32(3.0), INT8, grad_scale=1.0)
    np.testing.assert_array_equal(gx, fake_quantize_grad(x, dy, QuantParams(s, 3, INT8)))


def test_lsq_hand_examples() -> None:
    # Worked by hand, s = 1, z = 0, uint8, g = 1: 0.5 -> round 0, term 0 - 0.5 = -0.5; 1.5 -> 2, term 0.5;
    # -3 -> below, term qmin - z = 0, zero-point term -1; 300 -> above, term 255, zero-point term -1.
    x = np.array([0.5, 1.5, -3.0, 300.0], F32)
    gx, ts, tz = lsq_grad_terms(x, np.ones(4, F32), F32(1), F32(0), UINT8, grad_scale=1.0)
    assert gx.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert ts.tolist() == [-0.5, 0.5, 0.0, 255.0]
    assert tz.tolist() == [0.0, 0.0, -1.0, -1.0]
    # The zero point 2.5 rounds half to even to 2: x = -2.5 -> round(-2.5) = -2, u = 0: inside.
    gx, ts, _ = lsq_grad_terms(np.array([-2.5], F32), np.ones(1, F32), F32(1), F32(2.5), UINT8, grad_scale=1.0)
    assert gx.tolist() == [1.0]
    assert ts.tolist() == [-0.5 + 1.0]


def test_lsq_per_axis_equals_per_tensor_per_channel() -> None:
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((3, 40)) * 3).astype(F32)
    dy = rng.standard_normal((3, 40)).astype(F32)
    s = np.array([0.02, 0.05, 0.1], F32)
    zf = np.array([0.0, -5.0, 7.5], F32)
    gx, gs, gz = lsq_grads(x, dy, s, zf, INT8, axis=0, grad_scale=0.25)
    assert gs.shape == (3,)
    assert gz.shape == (3,)
    for c in range(3):
        gx_c, gs_c, gz_c = lsq_grads(x[c], dy[c], s[c], zf[c], INT8, grad_scale=0.25)
        assert bits32(gx[c]) == bits32(gx_c)
        assert bits32(gs[c]) == bits32(gs_c)
        assert bits32(gz[c]) == bits32(gz_c)
    # axis=-1 on the transpose gives the same.
    _, gs_t, gz_t = lsq_grads(x.T.copy(), dy.T.copy(), s, zf, INT8, axis=-1, grad_scale=0.25)
    assert bits32(gs_t) == bits32(gs)
    assert bits32(gz_t) == bits32(gz)


def test_lsq_default_gradient_scale() -> None:
    # 1 / sqrt(N * qmax) with N = x.size (the whole tensor, per axis too), float64 then one rounding.
    assert bits32(lsq_grad_scale(1000, INT8)) == bits32(F32(1 / math.sqrt(127000)))
    x = np.ones((2, 5), F32)
    dy = np.ones((2, 5), F32)
    s = np.array([0.5, 0.5], F32)
    _, ts, _ = lsq_grad_terms(x, dy, s, np.zeros(2, F32), INT8, axis=0)
    _, ts1, _ = lsq_grad_terms(x, dy, s, np.zeros(2, F32), INT8, axis=0, grad_scale=float(lsq_grad_scale(10, INT8)))
    assert bits32(ts) == bits32(ts1)
    assert float(lsq_grad_scale(1, UINT8)) == float(F32(1 / math.sqrt(255)))


def test_lsq_scale_shapes_follow_the_parameters() -> None:
    x = np.ones(4, F32)
    _, gs, gz = lsq_grads(x, x, np.array([0.5], F32), np.array([0.0], F32), INT8)
    assert gs.shape == (1,)
    assert gz.shape == (1,)
    _, gs, gz = lsq_grads(x, x, F32(0.5), F32(0.0), INT8)
    assert gs.shape == ()
    assert gz.shape == ()


def test_lsq_torch_variant_hand_examples() -> None:
    # Worked by hand from the TORCH definition (and measured on torch 2.13, tests/spec/test_peers_qat_torch.py):
    one = np.ones(1, F32)
    # zero point 1.0: the backward adds it before rounding: fma(0.5, 1, 1) = 1.5 -> 2 -> inside, term
    # (2 - 1) * 1 - 0.5 = 0.5 (the forward, rounding first, gives code 0 + 1 = 1: term -0.5).
    _, ts, _ = lsq_grad_terms(
        np.array([0.5], F32), one, F32(1), F32(1.0), UINT8, grad_scale=1.0, variant=LsqVariant.TORCH
    )
    assert ts.tolist() == [0.5]
    _, ts, _ = lsq_grad_terms(np.array([0.5], F32), one, F32(1), F32(1.0), UINT8, grad_scale=1.0)
    assert ts.tolist() == [-0.5]
    # zero point 2.5: the backward's trunc(2.5 + 0.5) = 3; x = -3 -> u = 0: inside, term 0.
    gx, ts, tz = lsq_grad_terms(
        np.array([-3.0], F32), one, F32(1), F32(2.5), UINT8, grad_scale=1.0, variant=LsqVariant.TORCH
    )
    assert (gx.tolist(), ts.tolist(), tz.tolist()) == ([1.0], [0.0], [0.0])
    # zero point -64 (int8): trunc(-63.5) = -63; x = 200 -> u = 137 > 127: term 127 - (-63) = 190.
    _, ts, _ = lsq_grad_terms(
        np.array([200.0], F32), one, F32(1), F32(-64.0), INT8, grad_scale=1.0, variant=LsqVariant.TORCH
    )
    assert ts.tolist() == [190.0]


def test_lsq_errors() -> None:
    x = np.ones(3, F32)
    s = F32(0.5)
    z = F32(0.0)
    assert condition(lambda: lsq_grads(x, x, s, z, "int8")) == "invalid_format"  # type: ignore[arg-type]
    assert condition(lambda: lsq_grads(x, x, s, z, INT8, variant="torch")) == "invalid_option"  # type: ignore[arg-type]
    assert condition(lambda: lsq_grads(x.astype(np.float64), x, s, z, INT8)) == "unsupported_dtype"
    assert condition(lambda: lsq_grads(x, np.ones(2, F32), s, z, INT8)) == "shape_mismatch"
    assert condition(lambda: lsq_grads(np.array([np.nan], F32), np.ones(1, F32), s, z, INT8)) == "nan_input"
    assert condition(lambda: lsq_grads(np.array([np.inf], F32), np.ones(1, F32), s, z, INT8)) == "range_not_finite"
    assert condition(lambda: lsq_grads(x, np.array([1, np.nan, 1], F32), s, z, INT8)) == "nan_input"
    assert condition(lambda: lsq_grads(np.zeros(0, F32), np.zeros(0, F32), s, z, INT8)) == "empty_input"
    assert condition(lambda: lsq_grads(x, x, F32(0), z, INT8)) == "scale_not_positive"
    assert condition(lambda: lsq_grads(x, x, F32(-1), z, INT8)) == "scale_not_positive"
    assert condition(lambda: lsq_grads(x, x, F32(np.inf), z, INT8)) == "range_not_finite"
    assert condition(lambda: lsq_grads(x, x, np.ones(2, F32), z, INT8)) == "scale_shape_mismatch"
    assert condition(lambda: lsq_grads(x, x, s, np.zeros(2, F32), INT8)) == "zero_point_shape_mismatch"
    assert condition(lambda: lsq_grads(x, x, np.ones(2, F32), np.zeros(3, F32), INT8, axis=0)) == "scale_shape_mismatch"
    assert (
        condition(lambda: lsq_grads(x, x, np.ones(3, F32), np.zeros(2, F32), INT8, axis=0))
        == "zero_point_shape_mismatch"
    )
    assert condition(lambda: lsq_grads(x, x, s, z, INT8, axis=1)) == "axis_out_of_range"
    assert condition(lambda: lsq_grads(x, x, s, z, INT8, axis=0.0)) == "axis_out_of_range"  # type: ignore[arg-type]
    assert condition(lambda: lsq_grads(x, x, s, z, INT8, grad_scale=float("nan"))) == "invalid_grad_scale"
    assert condition(lambda: lsq_grads(x, x, s, z, INT8, grad_scale=1e39)) == "invalid_grad_scale"
    assert condition(lambda: lsq_grads(x, x, s, z, INT8, grad_scale=True)) == "invalid_grad_scale"
    assert condition(lambda: lsq_grads(x, x, s, z, IntFormat(1, True))) == "invalid_grad_scale"
    assert condition(lambda: lsq_grad_scale(0, INT8)) == "invalid_grad_scale"
    assert condition(lambda: lsq_grad_scale(10, "int8")) == "invalid_format"  # type: ignore[arg-type]
    huge = np.array([1000.0], F32)
    assert (
        condition(lambda: lsq_grads(huge, np.array([3e38], F32), s, z, INT8, grad_scale=1.0)) == "gradient_not_finite"
    )


# ---------------------------------------------------------------------------------------------------------------
# TTQ


def test_ttq_grads_hand_example() -> None:
    # Worked by hand: delta 0.5; w = 0.9 > delta -> wp * dy = 2 * 1.5 = 3; 0.5 == delta -> middle: dy = -1;
    # -0.5 -> middle: 2; -0.9 -> wn * dy = 3 * 4 = 12. grad_wp = 1.5, grad_wn = -(4) = -4.
    w = np.array([0.9, 0.5, -0.5, -0.9], F32)
    dy = np.array([1.5, -1.0, 2.0, 4.0], F32)
    gw, gp, gn = ttq_grads(w, dy, F32(0.5), F32(2), F32(3))
    assert gw.tolist() == [3.0, -1.0, 2.0, 12.0]
    assert float(gp) == 1.5
    assert float(gn) == -4.0
    assert gp.shape == ()
    assert gn.shape == ()


def test_ttq_sums_are_exact() -> None:
    w = np.array([1.0, 1.0, 1.0, -1.0], F32)
    dy = np.array([1e8, 1.0, -1e8, 2.0], F32)
    _, gp, gn = ttq_grads(w, dy, F32(0.1), F32(1), F32(1))
    assert float(gp) == 1.0
    assert float(gn) == -2.0


def test_ttq_errors() -> None:
    w = np.ones(2, F32)
    assert condition(lambda: ttq_grads(w, np.ones(3, F32), F32(0), F32(1), F32(1))) == "shape_mismatch"
    assert condition(lambda: ttq_grads(w.astype(np.float64), w, F32(0), F32(1), F32(1))) == "unsupported_dtype"
    assert condition(lambda: ttq_grads(w, w, F32(-0.1), F32(1), F32(1))) == "invalid_threshold"
    assert condition(lambda: ttq_grads(w, w, F32(0), F32(0), F32(1))) == "scale_not_positive"
    assert condition(lambda: ttq_grads(w, w, F32(0), F32(1), np.ones(2, F32))) == "scale_shape_mismatch"
    assert condition(lambda: ttq_grads(np.array([np.nan, 1], F32), w, F32(0), F32(1), F32(1))) == "nan_input"
    assert condition(lambda: ttq_grads(w, np.array([np.inf, 1], F32), F32(0), F32(1), F32(1))) == "range_not_finite"


def test_fake_quantize_forward_is_unchanged_by_the_mask() -> None:
    """The STE leaves the forward alone: fake_quantize is the same whatever mask the backward uses."""
    x = np.array([-0.6, 0.2, 300.0], F32)
    p = QuantParams(1.0, 0, UINT8)
    assert fake_quantize(x, p).tolist() == [0.0, 0.0, 255.0]
