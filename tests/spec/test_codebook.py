"""Tests of refquant.spec.codebook: exact nearest-level coding, quantile and Lloyd levels, decode, packing, errors.

The oracles use ``Fraction`` distances and numpy's own quantile; they share no arithmetic with the module's
TwoSum midpoint rule or its rational quantile evaluation.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant import SpecError
from refquant.spec.codebook import (
    CodebookInit,
    LevelTie,
    codebook_decode,
    codebook_encode,
    codebook_format,
    codebook_kmeans,
    codebook_quantiles,
    round_fraction_to_float32,
)
from refquant.spec.packing import pack, unpack
from tests.spec.oracle import to_float


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def condition(call) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError) as info:
        call()
    return info.value.condition


def o_encode(x: float, levels: list[float], tie: LevelTie) -> int:
    """Nearest level by exact distances; ties by ``tie``; the lowest index among equal levels."""
    dist = [abs(Fraction(x) - Fraction(v)) if np.isfinite(x) else None for v in levels]
    if not np.isfinite(x):
        best = levels[0] if x < 0 else levels[-1]
        return levels.index(best)
    d = min(dist)  # type: ignore[type-var]
    near = sorted({levels[i] for i, di in enumerate(dist) if di == d})
    return levels.index(near[0] if tie is LevelTie.TO_LOWER else near[-1])


# --- encode / decode ------------------------------------------------------------------------------------------


def test_encode_by_hand() -> None:
    # Worked by hand: midpoints -0.5 and 1.0; the ties go to the lower level, or to the higher one.
    lv = f32(-1.0, 0.0, 2.0)
    x = f32(-9.0, -1.0, -0.5, -0.4999, 0.0, 0.999, 1.0, 1.001, 2.0, 9.0, -np.inf, np.inf)
    np.testing.assert_array_equal(codebook_encode(x, lv), [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 0, 2])
    np.testing.assert_array_equal(codebook_encode(x, lv, tie=LevelTie.TO_HIGHER), [0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 0, 2])
    q = codebook_encode(x.reshape(3, 4), lv)
    assert q.dtype == np.uint8
    assert q.shape == (3, 4)
    np.testing.assert_array_equal(codebook_decode(q, lv), f32(-1, -1, -1, 0, 0, 0, 0, 2, 2, 2, -1, 2).reshape(3, 4))


def test_midpoint_not_representable_in_float64() -> None:
    # Worked by hand: levels 1 and 2**80; the midpoint 2**79 + 1/2 is no float64 (it rounds to 2**79).  x = 2**79
    # is below it, so it codes 0 under both tie rules; a float64 midpoint would have called it a tie.
    lv = f32(1.0, 2.0**80)
    x = np.array([2.0**79, np.nextafter(2.0**79, np.inf)])
    np.testing.assert_array_equal(codebook_encode(x, lv, tie=LevelTie.TO_HIGHER), [0, 1])
    np.testing.assert_array_equal(codebook_encode(x, lv), [0, 1])
    # Levels of opposite sign and far apart: -2**100 and 2**-100; the midpoint is -2**99 + 2**-101, so -2**99 is
    # below it and codes 0 even under TO_HIGHER (a float64 midpoint, -2**99, would have made it a tie).
    lv2 = f32(-(2.0**100), 2.0**-100)
    np.testing.assert_array_equal(codebook_encode(np.array([-(2.0**99)]), lv2, tie=LevelTie.TO_HIGHER), [0])


def test_duplicate_levels_take_the_lowest_index() -> None:
    lv = f32(0.0, 1.0, 1.0, 1.0, 3.0)
    np.testing.assert_array_equal(codebook_encode(f32(0.9, 1.0, 1.5, 2.0, 2.1), lv), [1, 1, 1, 1, 4])
    np.testing.assert_array_equal(codebook_encode(f32(2.0), lv, tie=LevelTie.TO_HIGHER), [4])
    np.testing.assert_array_equal(codebook_encode(f32(5.0, -5.0), f32(7.0)), [0, 0])


finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=200)
@given(
    st.lists(finite32, min_size=1, max_size=12),
    st.lists(st.floats(width=32, allow_nan=False), min_size=1, max_size=20),
    st.sampled_from(list(LevelTie)),
    st.booleans(),
)
def test_encode_matches_exact_distances(levels: list[float], xs: list[float], tie: LevelTie, ties: bool) -> None:
    lv = np.sort(np.array(levels, np.float32))
    x = np.array(xs, np.float64)
    if ties:  # put exact midpoints (when float64 holds them) and their neighbours in the data
        mids = (lv[:-1].astype(np.float64) + lv[1:].astype(np.float64)) / 2
        x = np.concatenate([x, mids, np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf)])
    got = codebook_encode(x, lv, tie=tie)
    want = [o_encode(float(v), lv.tolist(), tie) for v in x]
    np.testing.assert_array_equal(got, want)
    # Every code decodes to a level, and a level re-encodes to the first index holding its value.
    np.testing.assert_array_equal(codebook_decode(got, lv), lv[got])
    np.testing.assert_array_equal(codebook_encode(lv, lv), np.searchsorted(lv, lv, side="left"))


@settings(max_examples=100)
@given(st.lists(finite32, min_size=2, max_size=30, unique=True), st.lists(finite32, min_size=1, max_size=30))
def test_encode_is_monotone_and_packs(levels: list[float], xs: list[float]) -> None:
    lv = np.unique(np.array(levels, np.float32))
    x = np.sort(np.array(xs, np.float32))
    q = codebook_encode(x, lv)
    assert np.all(np.diff(q.astype(int)) >= 0)
    fmt = codebook_format(lv)
    assert fmt.bits == max(1, (lv.size - 1).bit_length())
    assert not fmt.signed
    np.testing.assert_array_equal(unpack(pack(q, fmt), fmt, q.size), q)


def test_format_widths() -> None:
    assert [codebook_format(np.zeros(n, np.float32)).name for n in (1, 2, 3, 4, 5, 16, 17, 256)] == [
        "uint1",
        "uint1",
        "uint2",
        "uint2",
        "uint3",
        "uint4",
        "uint5",
        "uint8",
    ]


# --- quantile levels -------------------------------------------------------------------------------------------


def test_quantiles_by_hand() -> None:
    # Worked by hand from the definition: n = 8 values 0..7, L = 4, p = 1/8, 3/8, 5/8, 7/8, h = 7p.
    np.testing.assert_array_equal(
        codebook_quantiles(np.arange(8, dtype=np.float32), 2), f32(0.875, 2.625, 4.375, 6.125)
    )
    # n = 1: every level is the value; n = 2, L = 2: h = 1/4, 3/4.
    np.testing.assert_array_equal(codebook_quantiles(f32(3.0), 2), f32(3, 3, 3, 3))
    np.testing.assert_array_equal(codebook_quantiles(f32(4.0, 0.0), 1), f32(1, 3))
    # One rounding to float32: 0 and 1 with L = 2**1 gives 1/4, 3/4 exactly; with 1/3-spaced data the
    # level is the exact rational rounded once: v = [0, 1, 3], L = 2 -> h = 1/2 and 3/2 -> 1/2 and 2.
    np.testing.assert_array_equal(codebook_quantiles(f32(3.0, 0.0, 1.0), 1), f32(0.5, 2))


@settings(max_examples=100)
@given(st.lists(st.integers(-1000, 1000), min_size=1, max_size=200), st.integers(1, 6))
def test_quantiles_equal_numpy_linear_on_small_integers(values: list[int], bits: int) -> None:
    # On integer data below 2**11 with L <= 64 numpy's float64 interpolation is exact, so both agree bit for bit.
    x = np.array(values, np.float32)
    p = (2 * np.arange(2**bits) + 1) / (2 * 2**bits)
    want = np.quantile(x.astype(np.float64), p, method="linear").astype(np.float32)
    np.testing.assert_array_equal(codebook_quantiles(x, bits), want)


@settings(max_examples=60)
@given(st.lists(finite32, min_size=1, max_size=40), st.integers(1, 4))
def test_quantiles_are_the_exact_rational_rounded_once(values: list[float], bits: int) -> None:
    v = sorted(Fraction(float(np.float32(t))) for t in values)
    n, count = len(v), 2**bits
    want = []
    for j in range(count):
        h = Fraction((n - 1) * (2 * j + 1), 2 * count)
        i = int(h)
        level = v[i] if h == i else v[i] + (h - i) * (v[i + 1] - v[i])
        want.append(to_float(level, np.float32))
    np.testing.assert_array_equal(codebook_quantiles(np.array(values, np.float32), bits), np.array(want, np.float32))


def test_round_fraction_to_float32_edges() -> None:
    cases = [Fraction(1, 3), Fraction(-7, 10), Fraction(1, 2**150), Fraction(3, 2**151), Fraction(2**128), Fraction(0)]
    for c in cases:
        with np.errstate(over="ignore"):
            want = np.float32(to_float(c, np.float32))
        assert np.array(round_fraction_to_float32(c)).view(np.uint32) == np.array(want).view(np.uint32), c


# --- Lloyd levels -------------------------------------------------------------------------------------------------


def test_kmeans_by_hand() -> None:
    # Worked by hand: L = 2, LINEAR init 0 and 10; clusters {0, 1, 2} and {9, 10}: means 1 and 9.5; the
    # midpoint 5.25 assigns the same clusters again, so that is the fixed point.
    x = f32(0.0, 1.0, 2.0, 9.0, 10.0)
    np.testing.assert_array_equal(codebook_kmeans(x, 1), f32(1.0, 9.5))
    # One iteration only: the first update.  L = 4: LINEAR init 0, 10/3, 20/3, 10 (float64); clusters {0, 1},
    # {2}, {} and {9, 10}: the empty cluster keeps 20/3, rounded to float32.
    np.testing.assert_array_equal(
        codebook_kmeans(x, 2, iterations=1), np.array([0.5, 2.0, 20 / 3, 9.5], np.float64).astype(np.float32)
    )


def test_kmeans_quantile_init_and_constant_data() -> None:
    x = f32(0.0, 1.0, 2.0, 9.0, 10.0)
    # QUANTILE init (levels 1 and 9 for n = 5, h = 1, 3) converges to the same fixed point here.
    np.testing.assert_array_equal(codebook_kmeans(x, 1, init=CodebookInit.QUANTILE), f32(1.0, 9.5))
    np.testing.assert_array_equal(codebook_kmeans(f32(4.0, 4.0), 2), f32(4, 4, 4, 4))


@settings(max_examples=40)
@given(
    st.lists(st.floats(min_value=-1e6, max_value=1e6, width=32), min_size=1, max_size=60),
    st.integers(1, 3),
    st.sampled_from(list(CodebookInit)),
)
def test_kmeans_properties(values: list[float], bits: int, init: CodebookInit) -> None:
    x = np.array(values, np.float32)
    lv = codebook_kmeans(x, bits, init=init, iterations=300)
    assert lv.dtype == np.float32
    assert lv.size == 2**bits
    assert np.all(np.diff(lv) >= 0)
    assert lv[0] >= x.min()
    assert lv[-1] <= x.max()
    # Deterministic: the permuted data give the same levels.
    np.testing.assert_array_equal(codebook_kmeans(x[::-1].copy(), bits, init=init, iterations=300), lv)


def test_kmeans_fixed_point_is_lloyd_max() -> None:
    # At the fixed point each level is the mean of the values coded to it (the Lloyd-Max centroid condition).
    rng = np.random.default_rng(3)
    x = rng.standard_normal(2000).astype(np.float32)
    lv = codebook_kmeans(x, 3, iterations=1000)
    q = codebook_encode(x, lv)
    # (For this fixed data set the float32 levels code every value as the float64 centroids did, so the check is exact.)
    for j in range(lv.size):
        members = x[q == j].astype(np.float64)
        assert members.size > 0
        assert np.float32(math.fsum(members.tolist()) / members.size) == lv[j]
    np.testing.assert_array_equal(codebook_kmeans(x, 3, iterations=1001), lv)


def test_kmeans_tol_stops_early() -> None:
    x = np.linspace(0, 1, 101, dtype=np.float32) ** 3
    loose = codebook_kmeans(x, 2, tol=1.0)  # stops after the first iteration
    np.testing.assert_array_equal(loose, codebook_kmeans(x, 2, iterations=1))


# --- errors -------------------------------------------------------------------------------------------------------


def test_errors() -> None:
    lv = f32(0.0, 1.0)
    assert condition(lambda: codebook_quantiles(f32(1.0, np.nan), 2)) == "nan_input"
    assert condition(lambda: codebook_kmeans(f32(1.0, np.inf), 2)) == "non_finite_input"
    assert condition(lambda: codebook_kmeans(np.array([1e39]), 2)) == "non_finite_input"  # infinite in float32
    assert condition(lambda: codebook_quantiles(f32(), 2)) == "empty_input"
    assert condition(lambda: codebook_quantiles(np.array([1, 2]), 2)) == "unsupported_dtype"
    for bits in (0, 9, True, 2.0):
        assert condition(lambda: codebook_quantiles(f32(1.0), bits)) == "invalid_format"  # noqa: B023
    assert condition(lambda: codebook_kmeans(f32(1.0), 2, init="linear")) == "invalid_option"  # type: ignore[arg-type]
    assert condition(lambda: codebook_kmeans(f32(1.0), 2, iterations=0)) == "invalid_option"
    assert condition(lambda: codebook_kmeans(f32(1.0), 2, tol=-1.0)) == "invalid_option"
    assert condition(lambda: codebook_kmeans(f32(1.0), 2, tol=float("nan"))) == "invalid_option"
    assert condition(lambda: codebook_encode(f32(0.5), lv, tie="to_lower")) == "invalid_option"  # type: ignore[arg-type]
    assert condition(lambda: codebook_encode(f32(np.nan), lv)) == "nan_input"
    assert condition(lambda: codebook_encode(np.array([1]), lv)) == "unsupported_dtype"
    assert condition(lambda: codebook_encode(f32(0.5), f32(1.0, 0.0))) == "invalid_levels"  # not sorted
    assert condition(lambda: codebook_encode(f32(0.5), f32())) == "invalid_levels"
    assert condition(lambda: codebook_encode(f32(0.5), np.zeros(257, np.float32))) == "invalid_levels"
    assert condition(lambda: codebook_encode(f32(0.5), f32(0.0, np.nan))) == "invalid_levels"
    assert condition(lambda: codebook_encode(f32(0.5), np.array([0.0, 0.1]))) == "invalid_levels"  # 0.1 not float32
    assert condition(lambda: codebook_encode(f32(0.5), lv.reshape(1, 2))) == "invalid_levels"
    assert condition(lambda: codebook_encode(f32(0.5), np.array([0, 1]))) == "invalid_levels"
    assert condition(lambda: codebook_decode(np.array([2]), lv)) == "code_out_of_range"
    assert condition(lambda: codebook_decode(np.array([-1]), lv)) == "code_out_of_range"
    assert condition(lambda: codebook_decode(np.array([2**64 - 1], np.uint64), lv)) == "code_out_of_range"
    assert condition(lambda: codebook_decode(f32(1.0), lv)) == "unsupported_dtype"
    np.testing.assert_array_equal(codebook_decode(np.array([1], np.uint64), lv), f32(1.0))
    np.testing.assert_array_equal(codebook_encode(np.array([0.75], np.float16), np.array([0.0, 1.0])), [1])
