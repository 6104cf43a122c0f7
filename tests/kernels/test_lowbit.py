"""refquant.fast low-bit products against the specification, bit for bit: XNOR, binary conv2d, ternary, shift-only.

Every check computes the specification's result (or its error: the same exception type, ``condition`` and message)
and the fast function's, and requires the same array (dtype, shape, values: ``assert_array_equal``); each successful
call is repeated with ``out=`` (a preallocated array filled with garbage), which must be returned and hold the same
values.  Inputs: K around every multiple of 64 (63, 64, 65, 127, 128, 129, ...) and 0, odd shapes on both sides of
the kernels' row block (``RB``) and column strip (``NS``), all-equal operands, random garbage in the padding bits of
the last word (which must be ignored), zeros binarized under each ``SignZero`` policy, and every ``BinaryPadding``.
The parallel kernels are forced by patching ``refquant.fast._lowbit_serial``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refquant.fast as fast
from refquant.errors import SpecError
from refquant.kernels import lowbit as kl
from refquant.spec import binary as sb
from refquant.spec import log as sl
from refquant.spec import ternary as st3
from refquant.spec.binary import BinaryPadding, SignZero
from refquant.spec.log import LogFormat, LogTop, LogUnderflow
from tests.kernels.conftest import assert_same, garbage, outcome

K_EDGES = [0, 1, 2, 31, 63, 64, 65, 127, 128, 129, 191, 192, 193, 255, 256, 257, 511, 512, 513, 575, 576, 577, 1025]
SIZES = st.sampled_from([1, 2, 3, 5, 7, 8, 9, 13, 17, 31])  # around RB = 8 rows per block
WIDE = st.sampled_from([1, 3, 9, 255, 256, 257, 300])  # around NS = 256 columns per strip


# --- comparison helpers ------------------------------------------------------------------------------------------


def _check(spec_fn: Callable[..., Any], fast_fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Spec against fast, then fast with ``out=``; the inputs are never written.  Returns the spec outcome."""
    before = [a.tobytes() for a in _arrays(args)]
    expected = outcome(spec_fn, *args, **kwargs)
    assert_same(expected, outcome(fast_fn, *args, **kwargs))
    if isinstance(expected, np.ndarray):
        out = garbage(expected.shape, expected.dtype)
        assert fast_fn(*args, out=out, **kwargs) is out
        assert_same(expected, out)
    assert [a.tobytes() for a in _arrays(args)] == before
    return expected


def _arrays(args: tuple[Any, ...]) -> list[np.ndarray]:
    found: list[np.ndarray] = []
    for a in args:
        if isinstance(a, np.ndarray):
            found.append(a)
        elif isinstance(a, (tuple, list)):
            found.extend(_arrays(tuple(a)))
    return found


@contextmanager
def _parallel(on: bool) -> Iterator[None]:
    """With ``on``, every call takes the parallel kernel (whenever it has more than one row block)."""
    with pytest.MonkeyPatch.context() as mp:
        if on:
            mp.setattr(fast, "_lowbit_serial", lambda words: False)
        yield


def _pm_one(rng: np.random.Generator, shape: tuple[int, ...], fill: str = "random") -> np.ndarray:
    if fill == "plus":
        return np.ones(shape, np.int8)
    if fill == "minus":
        return np.full(shape, -1, np.int8)
    return np.where(rng.integers(0, 2, shape).astype(bool), 1, -1).astype(np.int8)


def _dirty(words: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """A copy of packed words with random garbage in the padding bits of the last word."""
    out = words.copy()
    if k % 64 and out.size:
        garbage = rng.integers(0, 2**63, out.shape[:-1], dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        out[..., -1] |= garbage & ~np.uint64((1 << (k % 64)) - 1)
    return out


def _dense(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` exactly, in int64, for small integer matrices."""
    return (a.astype(np.int64)[:, None, :] * b.astype(np.int64)[None, :, :]).sum(axis=2)


# --- API ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fast_fn", "spec_fn"),
    [
        (fast.xnor_matmul, sb.xnor_matmul),
        (fast.binary_conv2d, sb.binary_conv2d),
        (fast.ternary_matmul, st3.ternary_matmul),
        (fast.shift_matmul, sl.shift_matmul),
    ],
)
def test_signature_is_the_spec_plus_out(fast_fn: Any, spec_fn: Any) -> None:
    spec_params = list(inspect.signature(spec_fn).parameters.values())
    fast_params = list(inspect.signature(fast_fn).parameters.values())
    assert [(p.name, p.kind, p.default) for p in fast_params[:-1]] == [(p.name, p.kind, p.default) for p in spec_params]
    assert (fast_params[-1].name, fast_params[-1].kind, fast_params[-1].default) == (
        "out",
        inspect.Parameter.KEYWORD_ONLY,
        None,
    )
    assert fast_fn.__name__ in fast.__all__


def test_popcount_kernel_is_exact() -> None:
    # worked by hand: 0 has no set bit, 2**64 - 1 has 64, 0b1011 has 3, 2**63 has 1, 0x5555... has 32
    values = [0, 2**64 - 1, 0b1011, 2**63, 0x5555555555555555]
    assert [kl.popcount64(np.uint64(v)) for v in values] == [0, 64, 3, 1, 32]
    rng = np.random.default_rng(5)
    words = rng.integers(0, 2**63, 200, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 200, dtype=np.uint64)
    assert [kl.popcount64(w) for w in words] == np.bitwise_count(words).astype(np.int64).tolist()


# --- XNOR --------------------------------------------------------------------------------------------------------


@settings(max_examples=120)
@given(
    m=SIZES,
    n=WIDE,
    k=st.sampled_from(K_EDGES),
    fills=st.sampled_from(["random", "random", "plus", "minus", "same", "opposite"]),
    dirty=st.booleans(),
    parallel=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_xnor_matmul_matches_spec(m: int, n: int, k: int, fills: str, dirty: bool, parallel: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a_vals = _pm_one(rng, (m, k), fills if fills in ("plus", "minus") else "random")
    b_vals = _pm_one(rng, (n, k), fills if fills in ("plus", "minus") else "random")
    if fills in ("same", "opposite"):  # every row of b equal to the first row of a, or to its negation
        b_vals = np.broadcast_to(a_vals[:1] * (1 if fills == "same" else -1), (n, k)).astype(np.int8)
    a, b = sb.pack_bits(a_vals), sb.pack_bits(b_vals)
    if dirty:
        a, b = _dirty(a, k, rng), _dirty(b, k, rng)
    with _parallel(parallel):
        result = _check(sb.xnor_matmul, fast.xnor_matmul, a, b, k)
    np.testing.assert_array_equal(result, _dense(a_vals, b_vals))
    if fills == "same":
        np.testing.assert_array_equal(result[0], np.full(n, k))
    if fills == "opposite":
        np.testing.assert_array_equal(result[0], np.full(n, -k))


def test_xnor_matmul_large_parallel() -> None:
    rng = np.random.default_rng(3)
    k = 4096 + 65
    a = _dirty(sb.pack_bits(_pm_one(rng, (67, k))), k, rng)
    b = _dirty(sb.pack_bits(_pm_one(rng, (515, k))), k, rng)
    _check(sb.xnor_matmul, fast.xnor_matmul, a, b, k)  # past the serial threshold: the parallel kernel


@pytest.mark.parametrize("sign_zero", list(SignZero))
def test_zeros_under_each_sign_policy(sign_zero: SignZero) -> None:
    rng = np.random.default_rng(int(list(SignZero).index(sign_zero)))
    x = rng.choice(np.array([0.0, -0.0, 1.5, -2.0], np.float32), (9, 130))
    y = rng.choice(np.array([0.0, -0.0, 0.25, -7.0], np.float32), (11, 130))
    bx, by = sb.binarize(x, sign_zero=sign_zero), sb.binarize(y, sign_zero=sign_zero)
    if sign_zero is SignZero.ZERO:  # zeros stay zeros: no bit encodes them, the ternary product does
        for bad in (bx, by):
            with pytest.raises(SpecError) as info:
                sb.pack_bits(bad)
            assert info.value.condition == "binary_zero_not_encodable"
        tx, ty = st3.ternary_bitplanes(bx), st3.ternary_bitplanes(by)
        result = _check(st3.ternary_matmul, fast.ternary_matmul, tx, ty, 130)
    else:
        result = _check(sb.xnor_matmul, fast.xnor_matmul, sb.pack_bits(bx), sb.pack_bits(by), 130)
    np.testing.assert_array_equal(result, _dense(bx, by))


@pytest.mark.parametrize(
    ("lhs", "rhs", "k"),
    [
        (np.zeros((2, 1), np.int64), np.zeros((2, 1), np.uint64), 5),  # unsupported_dtype
        (np.zeros((2, 1), np.uint64), np.zeros((2, 1), np.uint32), 5),
        (np.zeros(3, np.uint64), np.zeros((2, 1), np.uint64), 5),  # shape_mismatch: not 2-D
        (np.zeros((2, 2), np.uint64), np.zeros((2, 1), np.uint64), 65),  # word counts differ
        (np.zeros((2, 1), np.uint64), np.zeros((2, 1), np.uint64), 65),  # k needs 2 words
        (np.zeros((2, 1), np.uint64), np.zeros((2, 1), np.uint64), -1),  # invalid_count
        (np.zeros((2, 1), np.uint64), np.zeros((2, 1), np.uint64), True),
        (np.zeros((2, 1), np.uint64), np.zeros((2, 1), np.uint64), 2.0),
        (np.zeros((0, 1), np.uint64), np.zeros((3, 1), np.uint64), 64),  # empty: a (0, 3) result
        (np.zeros((2, 0), np.uint64), np.zeros((3, 0), np.uint64), 0),  # k = 0: all zeros
        (np.zeros((2, 1), np.dtype(">u8")), np.zeros((3, 1), np.uint64), 3),  # big-endian input
    ],
)
def test_xnor_matmul_errors_and_edges(lhs: Any, rhs: Any, k: Any) -> None:
    _check(sb.xnor_matmul, fast.xnor_matmul, lhs, rhs, k)


def test_invalid_out_is_rejected() -> None:
    a = np.zeros((2, 1), np.uint64)
    shared = np.zeros(4, np.uint64)
    calls: list[tuple[Any, Any, Any]] = [
        (a, a, np.zeros((2, 2), np.int64)),  # wrong dtype
        (a, a, np.zeros((2, 3), np.int32)),  # wrong shape
        (a, a, np.zeros((4, 2), np.int32)[::2]),  # not contiguous
        (a, a, [[0, 0], [0, 0]]),  # not an array
        (shared[:2].reshape(2, 1), shared[2:].reshape(2, 1), shared[:2].view(np.int32).reshape(2, 2)),  # overlaps lhs
    ]
    for lhs, rhs, out in calls:
        with pytest.raises(SpecError) as info:
            fast.xnor_matmul(lhs, rhs, 64, out=out)
        assert info.value.condition == "invalid_out"


# --- ternary -----------------------------------------------------------------------------------------------------


def _ternary(rng: np.random.Generator, shape: tuple[int, int], fill: str) -> np.ndarray:
    if fill == "zero":
        return np.zeros(shape, np.int8)
    if fill in ("plus", "minus"):
        return np.full(shape, 1 if fill == "plus" else -1, np.int8)
    return rng.integers(-1, 2, shape).astype(np.int8)


@settings(max_examples=120)
@given(
    m=SIZES,
    n=WIDE,
    k=st.sampled_from(K_EDGES),
    fill=st.sampled_from(["random", "random", "zero", "plus", "minus"]),
    dirty=st.booleans(),
    parallel=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_ternary_matmul_matches_spec(m: int, n: int, k: int, fill: str, dirty: bool, parallel: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ta, tb = _ternary(rng, (m, k), fill), _ternary(rng, (n, k), "random" if fill == "zero" else fill)
    (pa, ma), (pb, mb) = st3.ternary_bitplanes(ta), st3.ternary_bitplanes(tb)
    if dirty:  # garbage in the padding bits of every plane, overlapping planes there included
        pa, ma, pb, mb = (_dirty(p, k, rng) for p in (pa, ma, pb, mb))
    with _parallel(parallel):
        result = _check(st3.ternary_matmul, fast.ternary_matmul, (pa, ma), (pb, mb), k)
    np.testing.assert_array_equal(result, _dense(ta, tb))


def test_ternary_matmul_large_parallel() -> None:
    rng = np.random.default_rng(4)
    k = 4096 + 3
    pa = st3.ternary_bitplanes(_ternary(rng, (70, k), "random"))
    pb = st3.ternary_bitplanes(_ternary(rng, (300, k), "random"))
    _check(st3.ternary_matmul, fast.ternary_matmul, pa, pb, k)


def test_ternary_matmul_errors() -> None:
    w = np.zeros((2, 2), np.uint64)
    overlap = w.copy()
    overlap[1, 1] = 1 << 3  # a valid bit (k = 100) set in both planes
    cases: list[tuple[Any, Any, Any]] = [
        ((overlap, overlap), (w, w), 100),  # ternary_planes_overlap, lhs
        ((w, w), (w, overlap), 70),  # no overlap: one plane only
        ((w, w), (overlap, overlap), 100),  # rhs
        ((w, w), (w, w), 200),  # shape_mismatch
        ((w, w[:, :1]), (w, w), 100),  # planes of different shapes
        (w, (w, w), 100),  # not a pair
        ((w, w, w), (w, w), 100),
        ((w.astype(np.int64), w), (w, w), 100),  # unsupported_dtype
        ((w, w), (w, w), -3),  # invalid_count
    ]
    for lhs, rhs, k in cases:
        _check(st3.ternary_matmul, fast.ternary_matmul, lhs, rhs, k)
    padding_only = w.copy()
    padding_only[:, 1] = np.uint64(1) << np.uint64(63)  # beyond k = 100: both planes set there is not an error
    _check(st3.ternary_matmul, fast.ternary_matmul, (padding_only, padding_only), (w, w), 100)


# --- binary conv2d -----------------------------------------------------------------------------------------------


@settings(max_examples=80)
@given(
    batch=st.integers(1, 2),
    c=st.sampled_from([1, 3, 63, 64, 65, 129]),
    o=st.sampled_from([1, 2, 7, 9]),
    hw=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    khw=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    padding=st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
    padding_value=st.sampled_from(list(BinaryPadding)),
    fill=st.sampled_from(["random", "random", "plus", "minus"]),
    parallel=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_binary_conv2d_matches_spec(
    batch: int,
    c: int,
    o: int,
    hw: tuple[int, int],
    khw: tuple[int, int],
    stride: tuple[int, int],
    dilation: tuple[int, int],
    padding: tuple[int, int, int, int],
    padding_value: BinaryPadding,
    fill: str,
    parallel: bool,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    x = _pm_one(rng, (batch, c, *hw), fill)
    w = _pm_one(rng, (o, c, *khw), "random" if fill == "random" else "minus")
    kwargs = {"stride": stride, "padding": padding, "dilation": dilation, "padding_value": padding_value}
    with _parallel(parallel):
        _check(sb.binary_conv2d, fast.binary_conv2d, x, w, **kwargs)


def test_binary_conv2d_padding_by_hand() -> None:
    # worked by hand from the definition: x, w all +1, 2x2 kernel, one padded row on top and column on the left;
    # the top-left output sees 1 valid tap (+1) and 3 padded taps (0, -1 or +1 each)
    x = np.ones((1, 1, 2, 2), np.int8)
    w = np.ones((1, 1, 2, 2), np.int8)
    expected = {
        BinaryPadding.ZERO: [1, 2, 2, 4],
        BinaryPadding.MINUS_ONE: [-2, 0, 0, 4],
        BinaryPadding.PLUS_ONE: [4] * 4,
    }
    for pv, values in expected.items():
        got = fast.binary_conv2d(x, w, padding=(1, 0, 1, 0), padding_value=pv)
        np.testing.assert_array_equal(got, np.array(values, np.int32).reshape(1, 1, 2, 2))


def test_binary_conv2d_errors() -> None:
    x = np.ones((1, 2, 4, 4), np.int8)
    w = np.ones((3, 2, 2, 2), np.int8)
    zero_x = x.copy()
    zero_x[0, 1, 2, 3] = 0
    bad_w = w.copy()
    bad_w[2, 0, 1, 1] = 5
    cases: list[tuple[Any, Any, dict[str, Any]]] = [
        (x, w, {"padding_value": "zero"}),  # invalid_option
        (x.astype(np.int16), w, {}),  # unsupported_dtype
        (x, w.astype(np.uint8), {}),
        (x, w, {"stride": (0, 1)}),  # invalid_stride
        (x, w, {"padding": (1, 1)}),  # invalid_padding
        (x, w, {"dilation": (1, -1)}),  # invalid_dilation
        (x, np.ones((3, 2, 9, 2), np.int8), {}),  # empty_output
        (x, np.ones((3, 1, 2, 2), np.int8), {}),  # shape_mismatch: channels
        (zero_x, w, {}),  # binary_zero_not_encodable
        (x, bad_w, {}),  # code_out_of_range
        (np.ones((0, 2, 4, 4), np.int8), w, {}),  # an empty batch
        (x, np.ones((0, 2, 2, 2), np.int8), {}),  # no output channel
    ]
    for xa, wa, kwargs in cases:
        _check(sb.binary_conv2d, fast.binary_conv2d, xa, wa, **kwargs)


# --- shift-only products -----------------------------------------------------------------------------------------

FORMATS = st.builds(
    lambda bits, fsr, signed, top, under: LogFormat(bits, fsr, signed=signed, top=top, underflow=under),
    st.integers(2, 7),  # an unsigned 8-bit format has 255 exponents: more than float32 holds
    st.integers(-8, 8),
    st.booleans(),
    st.sampled_from(list(LogTop)),
    st.sampled_from(list(LogUnderflow)),
)


@settings(max_examples=100)
@given(
    fmt=FORMATS,
    m=SIZES,
    k=st.sampled_from([0, 1, 2, 7, 64, 65, 130]),
    n=st.sampled_from([1, 3, 8, 17]),
    dtype=st.sampled_from([np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32]),
    parallel=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_shift_matmul_matches_spec(
    fmt: LogFormat, m: int, k: int, n: int, dtype: type[np.integer[Any]], parallel: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    x = rng.integers(int(info.min), int(info.max), (m, k), dtype=np.int64, endpoint=True).astype(dtype)
    codes = sl.log_quantize(rng.standard_normal((k, n)).astype(np.float32) * 2.0 ** float(fmt.fsr), fmt)
    with _parallel(parallel):
        _check(sl.shift_matmul, fast.shift_matmul, x, codes, fmt)


def test_shift_matmul_past_the_int64_bound() -> None:
    # exponents up to 2**62 with F = 0: the spec's exact Python-integer path, which fast hands over to the spec
    fmt = LogFormat(7, 62)  # e_min = 62 - 62 = 0
    top = sl.log_quantize(np.array([[2.0**62], [-(2.0**62)]], np.float32), fmt)
    _check(sl.shift_matmul, fast.shift_matmul, np.array([[1, 1]], np.int8), top, fmt)  # 2**62 - 2**62 = 0
    _check(sl.shift_matmul, fast.shift_matmul, np.array([[2, 0]], np.int8), top, fmt)  # 2**63: overflow
    _check(sl.shift_matmul, fast.shift_matmul, np.array([[-2, 0]], np.int8), top, fmt)  # -2**63: fits
    _check(sl.shift_matmul, fast.shift_matmul, np.zeros((1, 2), np.int8), top, fmt)  # zero lhs, any shift


def test_shift_matmul_errors() -> None:
    fmt = LogFormat(4, 2)
    codes = np.array([[0, 5], [13, 7]], np.uint8)
    cases: list[tuple[Any, Any, Any]] = [
        (np.ones((1, 2), np.int8), codes, "fmt"),  # invalid_format
        (np.ones((1, 2), np.int64), codes, fmt),  # unsupported_dtype: more than 32 bits
        (np.ones((1, 2), np.float32), codes, fmt),
        (np.ones((1, 2), np.int8), codes.astype(np.float32), fmt),
        (np.ones((1, 2), np.int8), np.array([[0, 16], [1, 1]], np.uint8), fmt),  # code_out_of_range
        (np.ones((1, 2), np.int8), np.array([[8, 1], [1, 1]], np.uint8), fmt),  # a negative zero
        (np.ones((1, 3), np.int8), codes, fmt),  # shape_mismatch
        (np.ones(2, np.int8), codes, fmt),
        (np.ones((0, 2), np.int8), codes, fmt),  # empty
    ]
    for lhs, w, f in cases:
        _check(sl.shift_matmul, fast.shift_matmul, lhs, w, f)
