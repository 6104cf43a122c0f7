"""refquant.spec.ternary: TWN (spec-anchors V22, the strict comparison, the threshold's precision), TTQ, BitNet b1.58
absmean (the half-to-even tie), the two-bitplane matmul against the integer matmul for K around every multiple of 64,
and every error condition."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refquant import SpecError
from refquant.spec.ternary import (
    bitnet_ternarize,
    ternary_bitplanes,
    ternary_matmul,
    ttq_ternarize,
    twn_ternarize,
)

K_EDGES = [0, 1, 2, 63, 64, 65, 127, 128, 129, 191, 192, 193]
U64_MAX = 2**64 - 1


def condition(call: Callable[[], Any]) -> str:
    with pytest.raises(SpecError) as info:
        call()
    return info.value.condition


def bits32(x: Any) -> Any:
    return np.asarray(x, np.float32).view(np.uint32).tolist()


def exact_mean(values: list[float]) -> float:
    """fl64(exact sum) / n in float64: the definition, with Fractions for the exact sum."""
    return float(sum((Fraction(abs(v)) for v in values), Fraction(0))) / len(values)


def oracle_twn(values: list[float], factor: float) -> tuple[list[int], np.float32, np.float32]:
    delta = np.float32(factor * exact_mean(values))
    d = float(delta)
    codes = [1 if v > d else -1 if v < -d else 0 for v in values]
    above = [v for v in values if abs(v) > d]
    alpha = np.float32(exact_mean(above)) if above else np.float32(0)
    return codes, alpha, delta


# ---------------------------------------------------------------------------------------------------------------
# TWN


def test_v22_twn_hand_example() -> None:
    # Worked by hand: E|W| = 2 / 4 = 0.5; delta = float32(0.7 * 0.5) = float32(0.35) = 0.3499999940395355;
    # 1.0, 0.5, 0.5 > delta -> 1; 0 -> 0; alpha = (1 + 0.5 + 0.5) / 3 = 2/3 -> float32 0.6666666865348816.
    t = twn_ternarize(np.array([1.0, 0.5, 0.5, 0.0], np.float32))
    assert t.codes.dtype == np.int8
    assert t.codes.tolist() == [1, 1, 1, 0]
    assert bits32(t.alpha) == bits32(np.float32(2 / 3))
    assert bits32(t.delta) == bits32(np.float32(0.35))
    assert t.alpha.shape == ()
    assert t.delta.shape == ()


def test_twn_strict_comparison_keeps_delta_at_zero() -> None:
    # Worked by hand with factor 0.5 (exact): |w| = [0.25, 0.75, 0.25, 0.75], mean 0.5, delta 0.25 exactly;
    # +-0.25 == delta are not > delta: code 0. alpha = (0.75 + 0.75) / 2.
    t = twn_ternarize(np.array([0.25, 0.75, -0.25, -0.75], np.float32), factor=0.5)
    assert t.codes.tolist() == [0, 1, 0, -1]
    assert bits32(t.delta) == bits32(0.25)
    assert bits32(t.alpha) == bits32(0.75)


def test_twn_threshold_precision_is_part_of_the_definition() -> None:
    # Found by a search script (not by hand): w[0] equals refquant's delta = float32(0.7 * exact mean) bit for bit,
    # so the strict comparison gives 0; a float32 implementation (larq: 0.7f * sum / n, sequential float32 sum) gets a
    # delta one ulp lower and gives 1. Both deltas are computed below from their definitions.
    w = np.array([0x3E87C1F1, 0xBDC00000, 0xBF540000, 0xBEA80000], np.uint32).view(np.float32)
    assert w[1:].tolist() == [-0.09375, -0.828125, -0.328125]
    t = twn_ternarize(w)
    assert bits32(t.delta) == 0x3E87C1F1
    assert t.codes.tolist() == [0, 0, -1, -1]
    acc = np.float32(0)
    for v in np.abs(w):
        acc = np.float32(acc + v)
    naive = np.float32(np.float32(0.7) * acc) / np.float32(4)
    assert bits32(naive) == 0x3E87C1F0
    assert w[0] > naive  # the float32 implementation's code for w[0] would be 1


def test_twn_all_zero_and_zero_channel() -> None:
    # Worked by hand: an all-zero group has mean 0, delta 0, no element above it: codes 0 and alpha 0 (defined).
    t = twn_ternarize(np.zeros(5, np.float32))
    assert t.codes.tolist() == [0] * 5
    assert bits32(t.alpha) == bits32(0.0)
    assert bits32(t.delta) == bits32(0.0)
    w = np.array([[0.0, -0.0, 0.0], [2.0, -1.0, 0.0]], np.float32)
    t = twn_ternarize(w, axis=0)
    # Row 1: mean 1, delta float32(0.7), 2 and -1 above: alpha 1.5.
    assert t.codes.tolist() == [[0, 0, 0], [1, -1, 0]]
    assert bits32(t.alpha) == bits32([0.0, 1.5])
    assert bits32(t.delta) == bits32([0.0, 0.7])


@settings(max_examples=100)
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5)),
        elements=st.floats(-(2.0**20), 2.0**20, width=32),
    ),
    st.sampled_from([None, 0, 1, -1]),
    st.sampled_from([0.7, 0.0, 0.5, 0.75]),
)
def test_twn_matches_a_fraction_oracle(w: np.ndarray, axis: int | None, factor: float) -> None:
    t = twn_ternarize(w, axis=axis, factor=factor)
    if axis is None:
        codes, alpha, delta = oracle_twn(w.reshape(-1).tolist(), factor)
        assert t.codes.reshape(-1).tolist() == codes
        assert bits32(t.alpha) == bits32(alpha)
        assert bits32(t.delta) == bits32(delta)
        return
    moved = np.moveaxis(w, axis, 0)
    codes_moved = np.moveaxis(t.codes, axis, 0)
    assert t.alpha.shape == t.delta.shape == (moved.shape[0],)
    for c in range(moved.shape[0]):
        codes, alpha, delta = oracle_twn(moved[c].reshape(-1).tolist(), factor)
        assert codes_moved[c].reshape(-1).tolist() == codes
        assert bits32(t.alpha[c]) == bits32(alpha)
        assert bits32(t.delta[c]) == bits32(delta)


def test_twn_errors() -> None:
    w = np.ones(3, np.float32)
    assert condition(lambda: twn_ternarize(w, factor=-0.1)) == "invalid_threshold"
    assert condition(lambda: twn_ternarize(w, factor=float("nan"))) == "invalid_threshold"
    assert condition(lambda: twn_ternarize(w, factor=True)) == "invalid_threshold"  # type: ignore[arg-type]
    assert condition(lambda: twn_ternarize(w, factor="0.7")) == "invalid_threshold"  # type: ignore[arg-type]
    assert condition(lambda: twn_ternarize(np.zeros(0, np.float32))) == "empty_input"
    assert condition(lambda: twn_ternarize(np.array([1.0, np.nan]))) == "nan_input"
    assert condition(lambda: twn_ternarize(np.array([1.0, -np.inf]))) == "scale_not_finite"
    assert condition(lambda: twn_ternarize(np.array([1e300, 1.0]))) == "scale_not_finite"
    assert condition(lambda: twn_ternarize(np.ones(3, np.int8))) == "unsupported_dtype"
    assert condition(lambda: twn_ternarize(w, axis=1)) == "axis_out_of_range"


# ---------------------------------------------------------------------------------------------------------------
# TTQ


def test_ttq_hand_table() -> None:
    # Worked by hand: max|w| = 1, delta = float32(0.05 * 1.0) = float32(0.05); 0.05f == delta stays 0 (strict),
    # -0.06 < -delta -> -1. Values: +wp, 0, -wn.
    r = ttq_ternarize(np.array([1.0, 0.05, -0.06, -0.5, 0.0], np.float32), wp=2.0, wn=0.5)
    assert r.codes.tolist() == [1, 0, -1, -1, 0]
    assert r.values.dtype == np.float32
    assert bits32(r.values) == bits32([2.0, 0.0, -0.5, -0.5, 0.0])
    assert bits32(r.delta) == bits32(np.float32(0.05))
    assert bits32(r.wp) == bits32(2.0)
    assert bits32(r.wn) == bits32(0.5)


def test_ttq_per_axis_and_all_zero() -> None:
    # Worked by hand: per row; row 0 max 4, delta 0.2 (t 0.05): codes [1, 0, -1]; row 1 all zero: delta 0, codes 0.
    w = np.array([[4.0, 0.2, -0.25], [0.0, 0.0, -0.0]], np.float32)
    r = ttq_ternarize(w, wp=np.array([1.0, 3.0]), wn=np.array([2.0, 5.0]), axis=0)
    assert r.codes.tolist() == [[1, 0, -1], [0, 0, 0]]
    assert bits32(r.values) == bits32([[1.0, 0.0, -2.0], [0.0, 0.0, 0.0]])
    assert bits32(r.delta) == bits32([np.float32(0.05 * 4.0), 0.0])
    r = ttq_ternarize(w.T, t=0.0, wp=np.ones(2), wn=np.ones(2), axis=-1)  # t = 0: every nonzero is +-1
    assert r.codes.tolist() == [[1, 0], [1, 0], [-1, 0]]


def test_ttq_errors() -> None:
    w = np.ones(3, np.float32)
    assert condition(lambda: ttq_ternarize(w, t=-1.0, wp=1.0, wn=1.0)) == "invalid_threshold"
    assert condition(lambda: ttq_ternarize(w, wp=0.0, wn=1.0)) == "scale_not_positive"
    assert condition(lambda: ttq_ternarize(w, wp=1.0, wn=-2.0)) == "scale_not_positive"
    assert condition(lambda: ttq_ternarize(w, wp=np.inf, wn=1.0)) == "scale_not_finite"
    assert condition(lambda: ttq_ternarize(w, wp=np.ones(3), wn=1.0)) == "scale_shape_mismatch"
    w2 = np.ones((2, 3), np.float32)
    assert condition(lambda: ttq_ternarize(w2, wp=1.0, wn=1.0, axis=0)) == "scale_shape_mismatch"
    assert condition(lambda: ttq_ternarize(w2, wp="1", wn=1.0)) == "unsupported_dtype"
    assert condition(lambda: ttq_ternarize(np.array([np.nan]), wp=1.0, wn=1.0)) == "nan_input"


# ---------------------------------------------------------------------------------------------------------------
# BitNet b1.58 absmean


def test_bitnet_hand_table_and_the_tie() -> None:
    # Worked by hand with eps = 0.25 (exact): mean |[1.75, 0.75, -0.75, 0]| = 3.25 / 4 = 0.8125; scale = 1.0625.
    # 1.75 / 1.0625 = 1.647 -> 1; 0.75 / 1.0625 = 0.706 -> 1; 0 -> 0.
    codes, scale = bitnet_ternarize(np.array([1.75, 0.75, -0.75, 0.0], np.float32), eps=0.25)
    assert codes.tolist() == [1, 1, -1, 0]
    assert bits32(scale) == bits32(1.0625)
    # The tie: |[1.75, 0.75]| mean 1.25, scale 1.5, 0.75 / 1.5 = 0.5 exactly: half to even (torch.round) gives 0,
    # half away from zero would give 1.
    codes, scale = bitnet_ternarize(np.array([1.75, 0.75, -0.75, -1.75], np.float32), eps=0.25)
    assert bits32(scale) == bits32(1.5)
    assert codes.tolist() == [1, 0, 0, -1]


def test_bitnet_default_eps_and_the_released_code_variant() -> None:
    # w = [0.500005, 1.499995] (float32): mean |w| rounds to 1.0 in float32, scale = fl32(1 + 1e-5) = 1.00001;
    # fl32(0.500005 / 1.00001) = 0.5 exactly (a tie after the float32 division): half to even -> 0.
    # The released code multiplies by 1 / max(mean, eps) = 1 instead: 0.500005 -> 1.
    w = np.array([0.500005, 1.499995], np.float32)
    codes, scale = bitnet_ternarize(w)
    assert bits32(scale) == bits32(np.float32(1.0) + np.float32(1e-5))
    assert bits32(w[0] / scale) == bits32(0.5)
    assert codes.tolist() == [0, 1]
    code_variant = np.clip(np.rint(w * np.float32(1.0 / max(np.float32(1.0), np.float32(1e-5)))), -1, 1)
    assert code_variant.tolist() == [1.0, 1.0]


def test_bitnet_all_zero_and_shapes() -> None:
    # Worked by hand: mean 0, scale = float32(1e-5), 0 / scale = 0.
    codes, scale = bitnet_ternarize(np.zeros((2, 3), np.float32))
    assert codes.tolist() == [[0] * 3] * 2
    assert bits32(scale) == bits32(np.float32(1e-5))
    codes, _ = bitnet_ternarize(np.array([[3.0, -3.0], [0.1, -0.1]]))  # float64 input, converted to float32
    assert codes.dtype == np.int8
    assert codes.tolist() == [[1, -1], [0, 0]]


def test_bitnet_errors() -> None:
    w = np.ones(3, np.float32)
    for eps in (0.0, -1e-5, float("nan"), float("inf"), 1e-50):
        assert condition(lambda eps=eps: bitnet_ternarize(w, eps=eps)) == "invalid_eps"
    assert condition(lambda: bitnet_ternarize(w, eps=True)) == "invalid_eps"  # type: ignore[arg-type]
    assert condition(lambda: bitnet_ternarize(np.zeros(0, np.float32))) == "empty_input"
    assert condition(lambda: bitnet_ternarize(np.array([np.nan]))) == "nan_input"
    assert condition(lambda: bitnet_ternarize(np.array([np.inf]))) == "scale_not_finite"
    assert condition(lambda: bitnet_ternarize(np.array([3e38], np.float32), eps=1e38)) == "scale_not_finite"


# ---------------------------------------------------------------------------------------------------------------
# Bitplanes and the ternary matmul


def test_bitplanes_hand_table() -> None:
    # Worked by hand: +1 at elements 0, 3 -> 0b1001 = 9; -1 at element 2 -> 0b100 = 4; element 64 in word 1.
    plus, minus = ternary_bitplanes(np.array([1, 0, -1, 1], np.int8))
    assert plus.tolist() == [9]
    assert minus.tolist() == [4]
    t = np.zeros(65, np.int8)
    t[64] = -1
    t[0] = 1
    plus, minus = ternary_bitplanes(t)
    assert plus.tolist() == [1, 0]
    assert minus.tolist() == [0, 1]
    assert ternary_bitplanes(np.zeros((3, 0), np.int8))[0].shape == (3, 0)


def test_ternary_matmul_hand_table() -> None:
    # Worked by hand: [1, 0, -1, 1] . [1, 1, 1, -1] = 1 + 0 - 1 - 1 = -1; . itself = 3; . [0, 0, 0, 0] = 0.
    a = ternary_bitplanes(np.array([[1, 0, -1, 1]], np.int8))
    b = ternary_bitplanes(np.array([[1, 1, 1, -1], [1, 0, -1, 1], [0, 0, 0, 0]], np.int8))
    out = ternary_matmul(a, b, 4)
    assert out.dtype == np.int32
    assert out.tolist() == [[-1, 3, 0]]


@settings(max_examples=200)
@given(
    st.one_of(st.sampled_from(K_EDGES), st.integers(0, 300)),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_ternary_matmul_equals_the_integer_matmul(k: int, m: int, n: int, seed: int, dirty: bool) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(-1, 2, (m, k)).astype(np.int8)
    b = rng.integers(-1, 2, (n, k)).astype(np.int8)
    pa, ma = ternary_bitplanes(a)
    pb, mb = ternary_bitplanes(b)
    if dirty and k % 64:  # padding bits set in every plane (even in both planes of one operand): ignored
        pad = np.uint64(U64_MAX ^ ((1 << (k % 64)) - 1))
        for plane in (pa, ma, pb, mb):
            plane[:, -1] |= pad
    out = ternary_matmul((pa, ma), (pb, mb), k)
    np.testing.assert_array_equal(out, a.astype(np.int64) @ b.astype(np.int64).T)


def test_ternary_errors() -> None:
    assert condition(lambda: ternary_bitplanes(np.array([1, 2], np.int8))) == "code_out_of_range"
    assert condition(lambda: ternary_bitplanes(np.array([1, 0], np.int32))) == "unsupported_dtype"
    assert condition(lambda: ternary_bitplanes(np.int8(1))) == "shape_mismatch"
    p = np.zeros((1, 1), np.uint64)
    ok = (p, p)
    assert condition(lambda: ternary_matmul(p, ok, 5)) == "shape_mismatch"
    assert condition(lambda: ternary_matmul((p,), ok, 5)) == "shape_mismatch"
    assert condition(lambda: ternary_matmul((p, np.zeros((1, 2), np.uint64)), ok, 5)) == "shape_mismatch"
    assert condition(lambda: ternary_matmul(ok, ok, 65)) == "shape_mismatch"
    assert condition(lambda: ternary_matmul((p.astype(np.int64), p), ok, 5)) == "unsupported_dtype"
    assert condition(lambda: ternary_matmul(ok, ok, -3)) == "invalid_count"
    overlap = np.array([[0b100]], np.uint64)
    assert condition(lambda: ternary_matmul((overlap, overlap), ok, 5)) == "ternary_planes_overlap"
    assert condition(lambda: ternary_matmul(ok, (overlap, overlap), 5)) == "ternary_planes_overlap"
    beyond = np.array([[1 << 10]], np.uint64)  # the same bit in both planes, but in the padding: ignored
    assert ternary_matmul((beyond, beyond), ok, 5).tolist() == [[0]]
