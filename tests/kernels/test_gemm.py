"""refquant.fast.matmul_int against the specification (refquant.matmul_int), bit for bit, on every kernel path.

Every test runs on the portable kernels and, where the CPU has AVX-512 VNNI, on the VNNI micro-kernel
(``set_kernel_path``), so CI covers the portable path whatever CPU it has; one subprocess test checks
that ``REFQUANT_KERNELS=portable`` selects it from the environment.  Inputs are generated from a seed
(Hypothesis chooses the seed, the shapes, the dtypes, the zero-point kinds and the fill: random,
all-minimum, all-maximum, or only the two extremes), so zero points and codes at both ends of the
range are common, and K reaches the int32 accumulation bound in the dedicated tests.
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
from refquant.kernels._jit import KernelPath, host_has_avx512vnni, set_kernel_path
from refquant.spec import integer_ops as spec_ops
from refquant.spec.integer_ops import Accumulator
from tests.kernels.conftest import DTYPES, codes


def _zero_point(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype[Any], kind: str) -> Any:
    info = np.iinfo(dtype)
    if kind == "zero":
        return 0
    if kind == "min":
        return int(info.min)
    if kind == "max":
        return int(info.max)
    if kind == "scalar":
        return int(rng.integers(info.min, int(info.max) + 1))
    values = rng.integers(info.min, int(info.max) + 1, shape)
    values[rng.integers(0, 2, shape).astype(bool)] = info.max  # half of them at the top of the range
    return values


def _view(rng: np.random.Generator, arr: np.ndarray, how: str) -> np.ndarray:
    """The same values as ``arr`` through a C-contiguous, strided, or transposed (F-order) view."""
    if how == "strided":
        big = np.zeros((*arr.shape[:-1], arr.shape[-1] * 2 + 1), arr.dtype)
        big[..., 1::2] = arr
        return big[..., 1::2]
    if how == "transposed":
        return np.swapaxes(np.ascontiguousarray(np.swapaxes(arr, -1, -2)), -1, -2)
    return arr


def _same(lhs: Any, rhs: Any, **kw: Any) -> None:
    expected = spec_ops.matmul_int(lhs, rhs, **kw)
    got = fast.matmul_int(lhs, rhs, **kw)
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    packed = fast.pack_rhs(rhs, rhs_zero_point=kw.get("rhs_zero_point", 0))
    kw2 = {key: v for key, v in kw.items() if key != "rhs_zero_point"}
    out = np.empty(expected.shape, expected.dtype)
    got2 = fast.matmul_int(lhs, packed, out=out, **kw2)
    assert got2 is out
    np.testing.assert_array_equal(out, expected)


@settings(max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(1, 20),
    n=st.integers(1, 140),
    k=st.integers(1, 90),
    da=st.sampled_from(DTYPES),
    db=st.sampled_from(DTYPES),
    fill_a=st.sampled_from(["random", "random", "min", "max", "extremes"]),
    fill_b=st.sampled_from(["random", "random", "min", "max", "extremes"]),
    zpa=st.sampled_from(["zero", "min", "max", "scalar", "row", "row_2d"]),
    zpb=st.sampled_from(["zero", "min", "max", "scalar", "column"]),
    view_a=st.sampled_from(["c", "strided", "transposed"]),
    view_b=st.sampled_from(["c", "strided", "transposed"]),
    accumulator=st.sampled_from(list(Accumulator)),
)
def test_matmul_matches_spec(
    path: KernelPath, seed: int, m: int, n: int, k: int, da: Any, db: Any, fill_a: str, fill_b: str,
    zpa: str, zpb: str, view_a: str, view_b: str, accumulator: Accumulator,
) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    lhs = _view(rng, codes(rng, (m, k), da, fill_a), view_a)
    rhs = _view(rng, codes(rng, (k, n), db, fill_b), view_b)
    za = _zero_point(rng, (m,), da, "row" if zpa == "row_2d" else zpa)
    if zpa == "row_2d":
        za = np.asarray(za).reshape(m, 1)
    zb = _zero_point(rng, (n,), db, zpb)
    _same(lhs, rhs, lhs_zero_point=za, rhs_zero_point=zb, accumulator=accumulator)


@settings(max_examples=25)
@given(
    seed=st.integers(0, 2**32 - 1),
    batch_a=st.sampled_from([(), (3,), (2, 1), (1, 2)]),
    batch_b=st.sampled_from([(), (2,), (1,), (3, 2)]),
    m=st.integers(1, 13),
    n=st.integers(1, 70),
    k=st.integers(1, 40),
    da=st.sampled_from(DTYPES),
    db=st.sampled_from(DTYPES),
    per_row_batched=st.booleans(),
    accumulator=st.sampled_from(list(Accumulator)),
)
def test_batched_matmul_matches_spec(
    path: KernelPath, seed: int, batch_a: tuple[int, ...], batch_b: tuple[int, ...], m: int, n: int, k: int,
    da: Any, db: Any, per_row_batched: bool, accumulator: Accumulator,
) -> None:  # fmt: skip
    try:
        np.broadcast_shapes(batch_a, batch_b)
    except ValueError:
        batch_b = ()
    rng = np.random.default_rng(seed)
    lhs = codes(rng, (*batch_a, m, k), da, "random")
    rhs = codes(rng, (*batch_b, k, n), db, "random")
    za: Any = _zero_point(rng, (m,), da, "row")
    if per_row_batched:
        za = _zero_point(rng, (*batch_a, m, 1), da, "row")
    zb = _zero_point(rng, (n,), db, "column")
    _same(lhs, rhs, lhs_zero_point=za, rhs_zero_point=zb, accumulator=accumulator)


@pytest.mark.parametrize(("lhs_shape", "rhs_shape"), [((5,), (5, 7)), ((3, 5), (5,)), ((5,), (5,)), ((2, 3, 5), (5,))])
def test_one_dimensional_operands(path: KernelPath, lhs_shape: tuple[int, ...], rhs_shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(7)
    lhs = codes(rng, lhs_shape, np.dtype(np.uint8), "random")
    rhs = codes(rng, rhs_shape, np.dtype(np.int8), "random")
    _same(lhs, rhs, lhs_zero_point=3, rhs_zero_point=-2)


@pytest.mark.parametrize(
    ("m", "n", "k"), [(70, 130, 300), (13, 64, 4), (6, 128, 1), (25, 3, 257), (0, 5, 3), (4, 5, 0)]
)
@pytest.mark.parametrize("dtypes", [(np.int8, np.int8), (np.uint8, np.int8), (np.int8, np.uint8), (np.uint8, np.uint8)])
def test_fixed_shapes_serial_and_parallel(path: KernelPath, m: int, n: int, k: int, dtypes: tuple[Any, Any]) -> None:
    # (70, 130, 300) is above the serial threshold and runs on the parallel drivers.
    rng = np.random.default_rng(m * 1000 + n + k)
    lhs = codes(rng, (m, k), np.dtype(dtypes[0]), "random")
    rhs = codes(rng, (k, n), np.dtype(dtypes[1]), "random")
    za = _zero_point(rng, (m,), np.dtype(dtypes[0]), "row")
    zb = _zero_point(rng, (n,), np.dtype(dtypes[1]), "column")
    for accumulator in Accumulator:
        _same(lhs, rhs, lhs_zero_point=za, rhs_zero_point=zb, accumulator=accumulator)


@pytest.mark.parametrize(("m", "n", "k"), [(600, 50, 600), (601, 9, 599)])
@pytest.mark.parametrize("dtypes", [(np.int8, np.int8), (np.int8, np.uint8), (np.uint8, np.int8)])
def test_large_lhs_prepared_in_parallel(path: KernelPath, m: int, n: int, k: int, dtypes: tuple[Any, Any]) -> None:
    # An lhs of >= 2**18 elements in a GEMM above the serial threshold is shifted (and its row sums taken)
    # by the parallel preparation (gemm.prepare_lhs_f32_par) on the portable path, inside the GEMM's tasks
    # (gemm.gemm_vnni_fused) on the VNNI path; K = 599 pads the VNNI rows to 600, N = 50 and 9
    # end in a partial panel, a uint8 lhs with a strided view cannot be used in place.
    rng = np.random.default_rng(m + n + k)
    lhs = codes(rng, (m, k), np.dtype(dtypes[0]), "random")
    rhs = codes(rng, (k, n), np.dtype(dtypes[1]), "random")
    zb = _zero_point(rng, (n,), np.dtype(dtypes[1]), "column")  # a nonzero rhs zero point needs the row sums
    za = _zero_point(rng, (m,), np.dtype(dtypes[0]), "scalar")
    _same(lhs, rhs, lhs_zero_point=za, rhs_zero_point=zb)
    _same(_view(rng, lhs, "strided"), rhs, lhs_zero_point=za)


# Shapes for the VNNI driver that shifts the lhs inside the GEMM (gemm.gemm_vnni_fused, also what the
# portable path runs through its own preparation): M below, at and past the 8-row tile and the 64-row task
# block (M = 150: three blocks, the last one partial), K not a multiple of 4 (rows padded) and K = 9000
# (fewer rows per task), N ending in partial panels of 16 / 32 / 48 columns; serial and parallel sizes.
FUSED_SHAPES = [(1, 7, 5), (7, 17, 33), (8, 48, 64), (9, 40, 3), (65, 33, 31), (150, 100, 150), (20, 97, 9000)]


@pytest.mark.parametrize(("m", "n", "k"), FUSED_SHAPES)
@pytest.mark.parametrize("db", [np.int8, np.uint8])
@pytest.mark.parametrize("zpa", ["zero", "min", "max", "scalar", "row", "row_2d"])
@pytest.mark.parametrize("zpb", ["zero", "scalar", "column"])
def test_int8_lhs_every_zero_point(path: KernelPath, m: int, n: int, k: int, db: Any, zpa: str, zpb: str) -> None:
    rng = np.random.default_rng(m * 7 + n * 11 + k)
    lhs = codes(rng, (m, k), np.dtype(np.int8), "random")
    rhs = codes(rng, (k, n), np.dtype(db), "random")
    za: Any = _zero_point(rng, (m,), np.dtype(np.int8), "row" if zpa == "row_2d" else zpa)
    if zpa == "row_2d":
        za = np.asarray(za).reshape(m, 1)
    zb = _zero_point(rng, (n,), np.dtype(db), zpb)
    _same(lhs, rhs, lhs_zero_point=za, rhs_zero_point=zb)
    if zpa in ("scalar", "row") and zpb != "zero":
        _same(lhs, rhs, lhs_zero_point=za, rhs_zero_point=zb, accumulator=Accumulator.INT32_WRAP)


@pytest.mark.parametrize(("m", "n", "k"), [(13, 50, 37), (150, 100, 150)])
@pytest.mark.parametrize("how", ["strided", "transposed", "reversed"])
@pytest.mark.parametrize("da", [np.int8, np.uint8])
def test_lhs_views_on_the_fused_driver(path: KernelPath, m: int, n: int, k: int, how: str, da: Any) -> None:
    rng = np.random.default_rng(m + n + k)
    lhs = codes(rng, (m, k), np.dtype(da), "random")
    # "reversed": negative strides, the same values read backwards in memory
    view = np.ascontiguousarray(lhs[::-1, ::-1])[::-1, ::-1] if how == "reversed" else _view(rng, lhs, how)
    rhs = codes(rng, (k, n), np.dtype(np.int8), "random")
    _same(view, rhs, lhs_zero_point=_zero_point(rng, (m,), np.dtype(da), "row"))
    _same(view, rhs, lhs_zero_point=_zero_point(rng, (m,), np.dtype(da), "scalar"), rhs_zero_point=3)


@pytest.mark.parametrize(("batch_a", "batch_b"), [((3,), ()), ((2, 1), (3,)), ((), (2,)), ((1, 2), (3, 2))])
@pytest.mark.parametrize(("m", "n", "k"), [(9, 50, 21), (70, 60, 64)])
def test_batched_int8_lhs(
    path: KernelPath, batch_a: tuple[int, ...], batch_b: tuple[int, ...], m: int, n: int, k: int
) -> None:
    rng = np.random.default_rng(m + n + k + len(batch_a))
    lhs = _view(rng, codes(rng, (*batch_a, m, k), np.dtype(np.int8), "random"), "strided")
    rhs = codes(rng, (*batch_b, k, n), np.dtype(np.uint8), "random")
    za = _zero_point(rng, (*batch_a, m, 1), np.dtype(np.int8), "row")
    _same(lhs, rhs, lhs_zero_point=za, rhs_zero_point=_zero_point(rng, (n,), np.dtype(np.uint8), "column"))
    _same(lhs, rhs, lhs_zero_point=-5)


# K at the int32 accumulation bound: |lhs - zl| = |rhs - zr| = 255 everywhere, so every product is 255 * 255
# (worked by hand: 33025 * 65025 = 2_147_450_625 <= 2**31 - 1 < 33026 * 65025 = 2_147_515_650).
BOUND_K = 33025


@pytest.mark.parametrize("k", [BOUND_K, BOUND_K + 1])
@pytest.mark.parametrize("sign", [1, -1])
def test_k_at_the_int32_bound(path: KernelPath, k: int, sign: int) -> None:
    lhs = np.full((2, k), 255, np.uint8)
    rhs = np.full((k, 3), 0 if sign == 1 else 255, np.uint8)
    rhs[:, 1] = 128  # column 1 stays far inside the range (|128 - zr| <= 128)
    kw: dict[str, Any] = {"lhs_zero_point": 0, "rhs_zero_point": 255 if sign == 1 else 0}
    for accumulator in (Accumulator.INT32_WRAP, Accumulator.INT32_SATURATE, Accumulator.INT64):
        _same(lhs, rhs, accumulator=accumulator, **kw)
    if k == BOUND_K:
        _same(lhs, rhs, **kw)
    else:
        with pytest.raises(UnpredictableError) as spec_err:
            spec_ops.matmul_int(lhs, rhs, **kw)
        with pytest.raises(UnpredictableError) as fast_err:
            fast.matmul_int(lhs, rhs, **kw)
        assert fast_err.value.condition == spec_err.value.condition == "accumulator_overflow"
        assert str(fast_err.value) == str(spec_err.value)


@pytest.mark.parametrize("k", [511, 512, 513, 1100, 3000])
@pytest.mark.parametrize("sign", [1, -1])
def test_largest_products_with_odd_sums(path: KernelPath, k: int, sign: int) -> None:
    # The portable tile sums float32 products exactly in blocks of 512 k (refquant.kernels.fma): the block
    # sums here are as large as they get (|Au * Bs| = 255 * 128 = 32640, or 255 * 127 = 32385 at every third
    # k, so sums pass 2**24 after 514 terms and are odd there, where float32 has only even integers).  A
    # block of 1024 k rounds them (checked by hand by changing fma.KB: the 1100 and 3000 cases fail).
    lhs = np.full((3, k), 127, np.int8)  # Au = 127 XOR 0x80 = 255
    lhs[1, ::5] = -128  # Au = 0 here and there
    rhs = np.full((k, 40), 0 if sign == 1 else 255, np.uint8)  # Bs = -128 or 127
    rhs[::3, ::2] = 1 if sign == 1 else 254  # Bs = -127 or 126
    for accumulator in (Accumulator.INT32, Accumulator.INT32_WRAP, Accumulator.INT64):
        _same(lhs, rhs, accumulator=accumulator)


def test_saturation_order_matters(path: KernelPath) -> None:
    # Large positive products first, then negative ones: saturating sequentially in increasing k differs from
    # clamping the exact sum, and the kernels must follow the spec's order.
    k = 2 * BOUND_K + 10
    lhs = np.full((1, k), 255, np.uint8)
    rhs = np.zeros((k, 2), np.int8)
    rhs[: k // 2] = 127
    rhs[k // 2 :] = -128
    for accumulator in Accumulator:
        if accumulator is Accumulator.INT32:
            continue
        _same(lhs, rhs, accumulator=accumulator)


def test_large_k_with_small_values_uses_the_fast_path(path: KernelPath) -> None:
    # K far above the dtype bound, but the data bound (|values| <= 3) proves that int32 cannot overflow.
    rng = np.random.default_rng(3)
    lhs = rng.integers(-3, 4, (3, 40000)).astype(np.int8)
    rhs = rng.integers(-3, 4, (40000, 5)).astype(np.int8)
    _same(lhs, rhs)


BAD_CALLS: list[tuple[str, Any, Any, dict[str, Any]]] = [
    ("dtype", np.zeros((2, 3), np.int16), np.zeros((3, 2), np.int8), {}),
    ("rank0", np.int8(3), np.zeros((3, 2), np.int8), {}),
    ("inner", np.zeros((2, 3), np.int8), np.zeros((4, 2), np.int8), {}),
    ("batch", np.zeros((2, 2, 3), np.int8), np.zeros((3, 3, 2), np.int8), {}),
    ("zp_range", np.zeros((2, 3), np.int8), np.zeros((3, 2), np.int8), {"lhs_zero_point": 128}),
    ("zp_range_u8", np.zeros((2, 3), np.uint8), np.zeros((3, 2), np.uint8), {"rhs_zero_point": -1}),
    ("zp_float", np.zeros((2, 3), np.int8), np.zeros((3, 2), np.int8), {"lhs_zero_point": 0.5}),
    ("zp_shape", np.zeros((2, 3), np.int8), np.zeros((3, 2), np.int8), {"rhs_zero_point": np.zeros(3, np.int64)}),
    ("zp_shape_lhs", np.zeros((2, 3), np.int8), np.zeros((3, 2), np.int8), {"lhs_zero_point": np.zeros(3, np.int64)}),
    ("accumulator", np.zeros((2, 3), np.int8), np.zeros((3, 2), np.int8), {"accumulator": "int32"}),
]


@pytest.mark.parametrize(("name", "lhs", "rhs", "kw"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_errors_match_spec(path: KernelPath, name: str, lhs: Any, rhs: Any, kw: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as spec_err:
        spec_ops.matmul_int(lhs, rhs, **kw)
    with pytest.raises(SpecError) as fast_err:
        fast.matmul_int(lhs, rhs, **kw)
    assert fast_err.value.condition == spec_err.value.condition
    assert str(fast_err.value) == str(spec_err.value)


def test_invalid_out(path: KernelPath) -> None:
    lhs = np.ones((2, 3), np.int8)
    rhs = np.ones((3, 4), np.int8)
    for out in (np.empty((2, 4), np.int64), np.empty((4, 2), np.int32), np.empty((2, 8), np.int32)[:, ::2], [0]):
        with pytest.raises(SpecError) as err:
            fast.matmul_int(lhs, rhs, out=out)  # type: ignore[arg-type]
        assert err.value.condition == "invalid_out"
    with pytest.raises(SpecError) as err:
        fast.matmul_int(lhs, rhs, accumulator=Accumulator.INT64, out=np.empty((2, 4), np.int32))
    assert err.value.condition == "invalid_out"
    shared = np.zeros(64, np.int8)
    with pytest.raises(SpecError) as err:
        fast.matmul_int(shared[32:38].reshape(2, 3), rhs, out=shared[24:56].view(np.int32).reshape(2, 4))
    assert err.value.condition == "invalid_out"


def test_packed_rhs(path: KernelPath) -> None:
    rng = np.random.default_rng(11)
    rhs = codes(rng, (2, 37, 70), np.dtype(np.uint8), "random")
    zb = _zero_point(rng, (70,), np.dtype(np.uint8), "column")
    packed = fast.pack_rhs(rhs, rhs_zero_point=zb)
    assert packed.layout is path
    assert packed.shape == (2, 37, 70)
    assert packed.dtype == np.uint8
    np.testing.assert_array_equal(packed.zero_point, zb)
    np.testing.assert_array_equal(packed.unpack(), (rhs.astype(np.int16) - 128).astype(np.int8))
    np.testing.assert_array_equal(packed.colsum, (rhs.astype(np.int64) - 128).sum(axis=1))
    assert not packed.data.flags.writeable
    lhs = codes(rng, (3, 1, 5, 37), np.dtype(np.int8), "random")
    expected = spec_ops.matmul_int(lhs, rhs, lhs_zero_point=-7, rhs_zero_point=zb)
    for _ in range(2):  # reusable
        np.testing.assert_array_equal(fast.matmul_int(lhs, packed, lhs_zero_point=-7), expected)
    np.testing.assert_array_equal(fast.matmul_int(lhs, packed, lhs_zero_point=-7, rhs_zero_point=zb), expected)
    with pytest.raises(SpecError) as err:
        fast.matmul_int(lhs, packed, rhs_zero_point=np.zeros(70, np.int64) + 1)
    assert err.value.condition == "zero_point_shape_mismatch"


def test_environment_forces_the_portable_path() -> None:
    code = "from refquant.kernels._jit import kernel_path; print(kernel_path().value)"
    env = {**os.environ, "REFQUANT_KERNELS": "portable"}
    result = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    assert result.stdout.strip() == "portable"


def test_forcing_vnni_needs_the_instructions() -> None:
    if host_has_avx512vnni():
        set_kernel_path(KernelPath.VNNI)
        set_kernel_path(None)
    else:
        with pytest.raises(RuntimeError):
            set_kernel_path(KernelPath.VNNI)
