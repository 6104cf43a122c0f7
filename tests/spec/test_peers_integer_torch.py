"""Peer check: the integer pipeline against torch 2.13 CPU: ``torch._int_mm`` and quantized linear / conv2d.

Established by experiment (docs/spec/divergences.md, "torch's integer engines"):

- ``torch._int_mm`` (CPU: int8 or uint8 lhs, int8 rhs, 2-D, any shape including empty and strided views)
  computes the exact sum and wraps modulo 2**32 past int32: ``matmul_int`` (``Accumulator.INT32`` below
  the bound, ``INT32_WRAP`` past it).
- The fbgemm engine's ``quantized::linear`` / ``quantized::conv2d`` (quint8 activations, qint8 weights per
  tensor or per output channel) requantize as ``rint(fl32(fl32(acc) * m)) + y_zp`` with
  ``m = fl32(fl32(x_scale * w_scale) / y_scale)``: refquant's ``qlinear_matmul`` / ``qlinear_conv`` with
  ``rounding=RequantRounding.FLOAT32, multiplier_precision=Precision.FLOAT32`` (``FBGEMM`` below, the same
  pairing as onnxruntime's QLinear operators).  torch's bias is a float: fbgemm adds
  ``fl32(bias / fl32(x_scale * w_scale))`` to ``fl32(acc)`` in float32, which is refquant's int32 bias
  ``b`` when ``bias = fl32(b * fl32(x_scale * w_scale))`` divides back to ``b`` exactly and ``|acc|`` and
  ``|acc + b|`` stay below 2**24; the bias tests keep to that.
- fbgemm's depthwise 3x3 kernel (groups = C = O; seen with C = 8 and 16 and padding 1, not with C <= 4 or
  padding 0) sums the products of the *raw* codes in int16 pairs that saturate (``vpmaddubsw``), so it is
  not exact when an activation code or the activation zero point (the padding) exceeds 127; pinned below
  as a divergence, and every depthwise 3x3 case with C a multiple of 8 gets 7-bit activations elsewhere.  Every other fbgemm path
  was exact with full-range activations on a VNNI CPU; without VNNI fbgemm's kernels use ``vpmaddubsw``
  too, so there activation codes (and zero points) are drawn from [0, 127] (torch's ``reduce_range``).
- The onednn engine requantizes differently (three float32 multiplies through reciprocal scales, the
  output zero point added in float32 before rounding); no refquant option reproduces it.  It is pinned
  by crafted vectors, and ``onednn_requantize`` below, a reconstruction of that peer written for these
  tests (not a refquant function), is checked against it on random and tie-dense data.

Tie-dense data: accumulators ``acc`` chosen so that ``acc * m`` is on or within a few float32 ulps of a
half-integer, ``|acc|`` up to past 2**24, realised exactly by codes (``realise``).  Every comparison is exact.
"""

from __future__ import annotations

import contextlib
import pathlib
import platform
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from refquant import (
    INT8,
    UINT8,
    Accumulator,
    Layout,
    PerAxis,
    Precision,
    QuantParams,
    RequantRounding,
    UnpredictableError,
    conv2d_int,
    matmul_int,
    qlinear_conv,
    qlinear_matmul,
)

torch = pytest.importorskip("torch")

if not torch.__version__.startswith("2.13.") or platform.machine().lower() not in ("x86_64", "amd64"):
    pytest.skip(
        f"torch's integer engines were characterised on torch 2.13 x86-64; found torch {torch.__version__} on "
        f"{platform.machine()}",
        allow_module_level=True,
    )

pytestmark = pytest.mark.filterwarnings("ignore:.*quantized tensor creation functions.*:UserWarning")

F32 = np.float32
F64 = np.float64
# fbgemm's requantization as refquant options (the pairing established by experiment, see the module docstring).
FBGEMM: dict[str, Any] = {"rounding": RequantRounding.FLOAT32, "multiplier_precision": Precision.FLOAT32}
ALL_OPTIONS = [(r, p) for r in RequantRounding for p in Precision]


def _cpu_flags() -> str:
    try:
        return pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


FLAGS = _cpu_flags()
HAS_VNNI = "avx512_vnni" in FLAGS or "avx_vnni" in FLAGS
HAS_AVX2 = " avx2" in FLAGS
# Largest activation code (and activation zero point) fed to fbgemm/onednn outside the depthwise pin: full
# range where the int8 dot products are exact (VNNI), torch's reduce_range [0, 127] elsewhere.
ACT_MAX = 255 if HAS_VNNI else 127


def need_engine(engine: str) -> None:
    if engine not in torch.backends.quantized.supported_engines:
        pytest.skip(f"torch quantized engine {engine!r} is not available here")


@contextlib.contextmanager
def quantized_engine(engine: str) -> Iterator[None]:
    need_engine(engine)
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


def _weight(w: np.ndarray, w_scale: Any, w_zp: Any) -> Any:
    wt = torch.from_numpy(np.ascontiguousarray(w, dtype=np.int8))
    if np.ndim(w_scale):
        scales = torch.from_numpy(np.asarray(w_scale, F64))
        zps = torch.from_numpy(np.broadcast_to(np.asarray(w_zp, np.int64), np.shape(w_scale)).copy())
        return torch._make_per_channel_quantized_tensor(wt, scales, zps, 0)
    return torch._make_per_tensor_quantized_tensor(wt, float(w_scale), int(w_zp))


def _activation(x: np.ndarray, x_scale: float, x_zp: int) -> Any:
    xt = torch.from_numpy(np.ascontiguousarray(x))
    return torch._make_per_tensor_quantized_tensor(xt, float(x_scale), int(x_zp))


def torch_linear(
    engine: str,
    x: np.ndarray,
    x_scale: float,
    x_zp: int,
    w: np.ndarray,
    w_scale: Any,
    w_zp: Any,
    y_scale: float,
    y_zp: int,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """``quantized::linear`` of quint8 codes ``x`` (M, K) and qint8 codes ``w`` (N, K): output codes (M, N)."""
    with quantized_engine(engine), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = None if bias is None else torch.from_numpy(np.asarray(bias, F32))
        packed = torch.ops.quantized.linear_prepack(_weight(w, w_scale, w_zp), b)
        y = torch.ops.quantized.linear(_activation(x, x_scale, x_zp), packed, float(y_scale), int(y_zp))
        return np.asarray(y.int_repr().numpy(), dtype=np.int64)


def torch_conv(
    engine: str,
    x: np.ndarray,
    x_scale: float,
    x_zp: int,
    w: np.ndarray,
    w_scale: Any,
    w_zp: Any,
    y_scale: float,
    y_zp: int,
    bias: np.ndarray | None = None,
    *,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    dilation: tuple[int, int] = (1, 1),
    groups: int = 1,
    channels_last: bool = False,
) -> np.ndarray:
    """``quantized::conv2d`` of quint8 NCHW codes ``x`` and qint8 OIHW codes ``w``: output codes, NCHW."""
    with quantized_engine(engine), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        xq = _activation(x, x_scale, x_zp)
        if channels_last:
            xq = xq.contiguous(memory_format=torch.channels_last)
        b = None if bias is None else torch.from_numpy(np.asarray(bias, F32))
        packed = torch.ops.quantized.conv2d_prepack(
            _weight(w, w_scale, w_zp), b, list(stride), list(padding), list(dilation), groups
        )
        y = torch.ops.quantized.conv2d(xq, packed, float(y_scale), int(y_zp))
        return np.asarray(y.int_repr().numpy(), dtype=np.int64)


def w_params(w_scale: Any, w_zp: Any, axis: int) -> QuantParams:
    if np.ndim(w_scale):
        zps = np.broadcast_to(np.asarray(w_zp, np.int64), np.shape(w_scale))
        return QuantParams(w_scale, zps, INT8, PerAxis(axis))
    return QuantParams(w_scale, w_zp, INT8)


def ref_linear(
    x: np.ndarray,
    x_scale: float,
    x_zp: int,
    w: np.ndarray,
    w_scale: Any,
    w_zp: Any,
    y_scale: float,
    y_zp: int,
    bias_int: np.ndarray | None = None,
    **options: Any,
) -> np.ndarray:
    """refquant's side of ``torch_linear``: ``qlinear_matmul(x, w.T)``, or, with an int32 bias, the same
    product as a 1x1 ``qlinear_conv`` (the spec's QLinear operator that takes a bias)."""
    xp, yp = QuantParams(x_scale, x_zp, UINT8), QuantParams(y_scale, y_zp, UINT8)
    if bias_int is None:
        y = qlinear_matmul(x, w.T, a_params=xp, b_params=w_params(w_scale, w_zp, -1), y_params=yp, **options)
        return np.asarray(y, dtype=np.int64)
    m, k = x.shape
    y = qlinear_conv(
        x.reshape(m, k, 1, 1),
        w.reshape(w.shape[0], k, 1, 1),
        x_params=xp,
        w_params=w_params(w_scale, w_zp, 0),
        y_params=yp,
        bias=np.asarray(bias_int, np.int32),
        **options,
    )
    return np.asarray(y, dtype=np.int64).reshape(m, w.shape[0])


def float_bias(bias_int: np.ndarray, x_scale: float, w_scale: Any) -> np.ndarray:
    """torch's float bias for refquant's int32 bias: ``fl32(b * fl32(x_scale * w_scale))``, checked to divide
    back to ``b`` exactly in float32 (fbgemm's ``fl32(bias / fl32(x_scale * w_scale))``)."""
    xw = (F32(x_scale) * np.asarray(w_scale, F32)).astype(F32)
    bias = (bias_int.astype(F64) * xw.astype(F64)).astype(F32)
    np.testing.assert_array_equal((bias / xw).astype(F32), bias_int.astype(F32))
    return bias


def exact_bias_ints(rng: np.random.Generator, size: int, x_scale: float, w_scale: Any) -> np.ndarray:
    """Random int32 biases in [-4096, 4096] whose float32 image in torch divides back exactly (see float_bias)."""
    xw = (F32(x_scale) * np.broadcast_to(np.asarray(w_scale, F32), (size,))).astype(F32)
    out = np.empty(size, np.int64)
    for j in range(size):
        while True:
            b = int(rng.integers(-4096, 4097))
            if F32(F32(F64(b) * F64(xw[j])) / xw[j]) == F32(b):
                out[j] = b
                break
    return out


def fl32_multiplier(x_scale: float, w_scale: Any, y_scale: float) -> np.ndarray:
    """``fl32(fl32(x_scale * w_scale) / y_scale)`` as float64 (the multiplier fbgemm and onnxruntime form)."""
    xw = (F32(x_scale) * np.asarray(w_scale, F32)).astype(F32)
    return np.asarray((xw / F32(y_scale)).astype(F32), F64)


def tie_dense_acc(rng: np.random.Generator, m: float, max_acc: int, count: int) -> np.ndarray:
    """Accumulators ``round((k + 1/2) / m) + d``, ``d`` in -2..2: ``acc * m`` on or a few ulps around a half-integer."""
    kmax = max(1, int(max_acc * m))
    k = rng.integers(-kmax, kmax, count)
    return np.round((k + 0.5) / m).astype(np.int64) + rng.integers(-2, 3, count)


def realise(targets: np.ndarray, c: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Centred codes ``a`` (R, J * (n + 1)) in [lo, hi] and ``w`` (J * (n + 1), J) with ``a @ w == targets`` (R, J).

    Column j of ``w`` is ``[c] * n + [1]`` on rows ``j * (n + 1) .. (j + 1) * (n + 1) - 1`` and zero elsewhere
    (block diagonal), so every output (r, j) is its own target.  Row r spreads ``round(t / c)`` over the
    block's first n entries and puts the remainder (``|.| <= c // 2``) in the last; n is as large as needed.
    """
    t = np.asarray(targets, np.int64)
    rows, cols = t.shape
    s = np.round(t / c).astype(np.int64)
    cap = min(-lo, hi)
    n = int(np.abs(s).max()) // (cap - 1) + 1
    q, rem = np.divmod(s, n)
    block = np.zeros((rows, cols, n + 1), np.int64)
    block[..., :n] = q[..., None] + (np.arange(n) < rem[..., None])
    block[..., n] = t - c * s
    a = block.reshape(rows, cols * (n + 1))
    w = np.zeros((cols, n + 1, cols), np.int64)
    for j in range(cols):
        w[j, :n, j] = c
        w[j, n, j] = 1
    w = w.reshape(cols * (n + 1), cols)
    np.testing.assert_array_equal(a @ w, t)
    assert a.min() >= lo, "tie-dense target out of reach"
    assert a.max() <= hi, "tie-dense target out of reach"
    return a, w


def to_nchw_padding(padding: tuple[int, int]) -> tuple[int, int, int, int]:
    """torch's symmetric (pad_h, pad_w) as refquant's (top, bottom, left, right)."""
    return (padding[0], padding[0], padding[1], padding[1])


# --- torch._int_mm ------------------------------------------------------------------------------------------


def int_mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    y = torch._int_mm(torch.from_numpy(a), torch.from_numpy(b))
    assert y.dtype == torch.int32
    return np.asarray(y.numpy())


INT_MM_SHAPES = [(1, 1, 1), (1, 7, 1), (2, 3, 5), (5, 1, 3), (16, 8, 8), (17, 9, 8), (17, 8, 9), (33, 24, 40)]
INT_MM_SHAPES += [(64, 100, 50), (1, 4096, 3), (0, 4, 4), (4, 0, 4), (4, 4, 0)]


@pytest.mark.parametrize("lhs_dtype", [np.int8, np.uint8], ids=["s8s8", "u8s8"])
def test_int_mm_random(lhs_dtype: Any) -> None:
    # On CPU torch._int_mm takes any 2-D shape (no multiple-of-8 or M > 16 rule as on CUDA), an int8 or a
    # uint8 lhs and an int8 rhs; the output is int32.
    rng = np.random.default_rng(1 if lhs_dtype is np.int8 else 2)
    info = np.iinfo(lhs_dtype)
    for m, k, n in INT_MM_SHAPES:
        a = rng.integers(info.min, int(info.max) + 1, (m, k)).astype(lhs_dtype)
        b = rng.integers(-128, 128, (k, n)).astype(np.int8)
        got = int_mm(a, b)
        expected = matmul_int(a, b)
        assert got.shape == expected.shape == (m, n)
        np.testing.assert_array_equal(got, expected)


def test_int_mm_strided_and_transposed_views() -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, (40, 64)).astype(np.int8)
    b = rng.integers(-128, 128, (48, 32)).astype(np.int8)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    cases = [(ta[::2, :32], tb.t(), a[::2, :32], b.T), (ta[:, 1::2], tb[:32, 5:17], a[:, 1::2], b[:32, 5:17])]
    for lhs, rhs, lhs_np, rhs_np in cases:
        got = np.asarray(torch._int_mm(lhs, rhs).numpy())
        np.testing.assert_array_equal(got, matmul_int(lhs_np, rhs_np))


def test_int_mm_cpu_constraints() -> None:
    # torch._int_mm's CPU constraints (recorded, so that a change in torch is noticed): 2-D only, rhs int8 only
    # (matmul_int also takes batch dimensions and a uint8 rhs).
    with pytest.raises(RuntimeError, match="dimension 2"):
        torch._int_mm(torch.zeros((2, 4, 8), dtype=torch.int8), torch.zeros((8, 4), dtype=torch.int8))
    with pytest.raises(RuntimeError, match="mat2 dtype to be of type int8"):
        torch._int_mm(torch.zeros((4, 8), dtype=torch.int8), torch.zeros((8, 4), dtype=torch.uint8))


def test_int_mm_edge_codes_large_k() -> None:
    # Every product extreme: -128 * -128 = 2**14, -128 * 127, 127 * 127, and a checkerboard of the ends.
    rng = np.random.default_rng(4)
    k = 131071  # the largest K with 2**14 * K inside int32
    a = np.full((3, k), -128, np.int8)
    a[1] = 127
    a[2] = np.where(np.arange(k) % 2 == 0, -128, 127)
    b = np.full((k, 4), -128, np.int8)
    b[:, 1] = 127
    b[:, 2] = np.where(np.arange(k) % 3 == 0, 127, -128)
    b[:, 3] = rng.choice(np.array([-128, 127], np.int8), k)
    got = int_mm(a, b)
    expected = matmul_int(a, b)
    assert int(got[0, 0]) == 2**14 * k == 2**31 - 2**14
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("lhs_dtype", "lhs_code", "rhs_code", "k"),
    [(np.int8, -128, -128, 2**17), (np.int8, -128, -128, 2**17 + 8), (np.uint8, 255, -128, 65794)],
)
def test_int_mm_wraps_past_int32(lhs_dtype: Any, lhs_code: int, rhs_code: int, k: int) -> None:
    # 2**14 * 2**17 = 2**31 is the first sum past int32 for s8s8; 255 * -128 * 65794 < -2**31 for u8s8.
    a = np.full((2, k), lhs_code, lhs_dtype)
    b = np.full((k, 3), rhs_code, np.int8)
    got = int_mm(a, b)
    np.testing.assert_array_equal(got, matmul_int(a, b, accumulator=Accumulator.INT32_WRAP))
    assert int(got[0, 0]) != lhs_code * rhs_code * k
    with pytest.raises(UnpredictableError) as info:
        matmul_int(a, b)
    assert info.value.condition == "accumulator_overflow"


# --- fbgemm: quantized linear ------------------------------------------------------------------------------


def linear_case(
    rng: np.random.Generator, per_channel: bool, max_acc: int, bias: bool
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Scales and zero points for a tie-dense linear case; the int32 bias (or None)."""
    channels = 3 if per_channel else 1
    x_scale = F32(10 ** rng.uniform(-3, 0))
    w0 = 10 ** rng.uniform(-3, 0)
    w_scale = (w0 * 10 ** rng.uniform(-0.3, 0, channels)).astype(F32) if per_channel else F32(w0)
    y_scale = F32(F64(x_scale) * w0 * max_acc / 120 * 10 ** rng.uniform(0, 0.3))
    w_zp: Any = rng.integers(-20, 21, channels) if per_channel else int(rng.integers(-20, 21))
    case = {
        "x_scale": x_scale,
        "w_scale": w_scale,
        "w_zp": w_zp,
        "y_scale": y_scale,
        "y_zp": int(rng.integers(100, 156)),
    }
    return case, (exact_bias_ints(rng, channels, x_scale, w_scale) if bias else None)


def tie_dense_linear(
    rng: np.random.Generator, case: dict[str, Any], bias_int: np.ndarray | None, max_acc: int, rows: int, weight: int
) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Codes x (rows, K) uint8 with its zero point, and w (N, K) int8 (centred ``weight`` plus the zero points),
    whose accumulator (plus the bias) is tie-dense for each output channel's fl32 multiplier; the accumulators."""
    m = np.atleast_1d(fl32_multiplier(case["x_scale"], case["w_scale"], case["y_scale"]))
    b = np.zeros(m.size, np.int64) if bias_int is None else bias_int
    targets = np.stack([tie_dense_acc(rng, float(mj), max_acc, rows) - bj for mj, bj in zip(m, b, strict=True)], 1)
    x_zp = 128 if ACT_MAX == 255 else 64
    a, wc = realise(targets, weight, -x_zp, ACT_MAX - x_zp)
    w = (wc + np.asarray(case["w_zp"]).reshape(1, -1)).T
    assert w.min() >= -128
    assert w.max() <= 127
    return (a + x_zp).astype(np.uint8), x_zp, w.astype(np.int8), targets


def separations(got: np.ndarray, reference: Any, counts: dict[tuple[RequantRounding, Precision], int]) -> None:
    """Add, per refquant option other than FBGEMM, how many outputs of ``reference(**option)`` differ from ``got``."""
    for rounding, precision in ALL_OPTIONS:
        if (rounding, precision) != (FBGEMM["rounding"], FBGEMM["multiplier_precision"]):
            other = reference(rounding=rounding, multiplier_precision=precision)
            counts[rounding, precision] = counts.get((rounding, precision), 0) + int(np.sum(other != got))


@pytest.mark.parametrize("per_channel", [False, True], ids=["w_tensor", "w_channel"])
@pytest.mark.parametrize("bias", [False, True], ids=["no_bias", "bias"])
def test_fbgemm_linear_tie_dense(per_channel: bool, bias: bool) -> None:
    need_engine("fbgemm")
    rng = np.random.default_rng(30 + 2 * per_channel + bias)
    # Without a bias |acc| goes past 2**24 (float32 then rounds the accumulator, as refquant's FLOAT32 does);
    # with a float bias fbgemm adds in float32, equal to refquant's int32 add only below 2**24.
    tiers = [2**12, 2**16, 2**21] + ([2**23] if bias else [2**25])
    total = largest = 0
    separated: dict[tuple[RequantRounding, Precision], int] = {}
    for trial in range(8):
        max_acc = tiers[trial % len(tiers)]
        case, bias_int = linear_case(rng, per_channel, max_acc, bias)
        x, x_zp, w, acc = tie_dense_linear(rng, case, bias_int, max_acc, 400, 100)
        largest = max(largest, int(np.abs(acc).max()))
        bias_f = None if bias_int is None else float_bias(bias_int, case["x_scale"], case["w_scale"])
        args = (case["x_scale"], x_zp, w, case["w_scale"], case["w_zp"], case["y_scale"], case["y_zp"])
        got = torch_linear("fbgemm", x, *args, bias_f)
        np.testing.assert_array_equal(got, ref_linear(x, *args, bias_int, **FBGEMM))
        total += got.size
        separations(got, lambda **option: ref_linear(x, *args, bias_int, **option), separated)  # noqa: B023
    # The data separates the pairing from every other refquant option but FLOAT32 with a float64-formed
    # multiplier, which test_fbgemm_linear_multiplier_formed_and_applied_in_float32 separates.
    assert total >= 3200
    assert largest > (2**22 if bias else 2**24)
    del separated[RequantRounding.FLOAT32, Precision.FLOAT64]
    assert all(count > 0 for count in separated.values()), {(r.name, p.name): c for (r, p), c in separated.items()}


# Worked by hand from the float32 scales (the vectors that decide onnxruntime's multiplier too).  Expected
# codes for (rounding, multiplier_precision) = (FLOAT32, FLOAT32) [fbgemm], (FLOAT32, FLOAT64), (FLOAT64, FLOAT32),
# (FLOAT64, FLOAT64).
# 1: m = fl32(fl32(xs * ws) / ys) = 0.26590907573699951: 220 * m = 58.4999967 (float32 58.499996) -> 58, 58;
#    with the float64 multiplier 220 * m = 58.50000050 -> 59, and fl32(m) * 220 in float32 = 58.500004 -> 59.
# 2: m = fl32(fl32(xs * ws) / ys) = 0.20125000178813934: 400 * m = 80.50000072 -> 81 in float64, but
#    fl32(80.50000072) = 80.5, a tie -> 80 in float32; fl32(exact m) * 400 in float32 = 80.50001 -> 81.
MULTIPLIER_VECTORS = [((0.15, 0.195, 0.11), 220, (58, 59, 58, 59)), ((0.18, 0.161, 0.144), 400, (80, 81, 81, 81))]


@pytest.mark.parametrize(("scales", "acc", "expected"), MULTIPLIER_VECTORS)
def test_fbgemm_linear_multiplier_formed_and_applied_in_float32(
    scales: tuple[float, float, float], acc: int, expected: tuple[int, int, int, int]
) -> None:
    need_engine("fbgemm")
    xs, ws, ys = (F32(v) for v in scales)
    x, w = np.array([[acc // 2]], np.uint8), np.array([[2]], np.int8)  # acc is even: one product of two codes
    got = torch_linear("fbgemm", x, xs, 0, w, ws, 0, ys, 0)
    assert int(got[0, 0]) == expected[0]
    options = [
        (r, p)
        for r in (RequantRounding.FLOAT32, RequantRounding.FLOAT64)
        for p in (Precision.FLOAT32, Precision.FLOAT64)
    ]
    for (rounding, precision), code in zip(options, expected, strict=True):
        y = ref_linear(x, xs, 0, w, ws, 0, ys, 0, rounding=rounding, multiplier_precision=precision)
        assert int(y[0, 0]) == code


LINEAR_SHAPES = [(1, 1, 1), (1, 37, 11), (17, 300, 64), (64, 64, 1), (5, 1024, 9)]


@pytest.mark.parametrize("per_channel", [False, True], ids=["w_tensor", "w_channel"])
@pytest.mark.parametrize("bias", [False, True], ids=["no_bias", "bias"])
def test_fbgemm_linear_random(per_channel: bool, bias: bool) -> None:
    need_engine("fbgemm")
    rng = np.random.default_rng(40 + 2 * per_channel + bias)
    for i, (m, k, n) in enumerate(LINEAR_SHAPES):
        for x_zp in (0, ACT_MAX, int(rng.integers(1, ACT_MAX))):
            x = rng.integers(0, ACT_MAX + 1, (m, k)).astype(np.uint8)
            w = rng.integers(-128, 128, (n, k)).astype(np.int8)
            x_scale = F32(10 ** rng.uniform(-3, -1))
            w_scale: Any = (10 ** rng.uniform(-3, -1, n)).astype(F32) if per_channel else F32(10 ** rng.uniform(-3, -1))
            ends = [-128, 127, int(rng.integers(-128, 128))]
            w_zp: Any = rng.integers(-128, 128, n) if per_channel else ends[i % 3]
            acc = matmul_int(x, w.T, lhs_zero_point=x_zp, rhs_zero_point=w_zp).astype(F64)
            y_scale = F32(F64(x_scale) * float(np.median(w_scale)) * max(1.0, float(np.abs(acc).max())) / 100)
            bias_int = exact_bias_ints(rng, n, x_scale, w_scale) if bias else None
            bias_f = None if bias_int is None else float_bias(bias_int, x_scale, w_scale)
            y_zp = int(rng.integers(0, 256))
            got = torch_linear("fbgemm", x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, bias_f)
            expected = ref_linear(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, bias_int, **FBGEMM)
            np.testing.assert_array_equal(got, expected)


# --- fbgemm: quantized conv2d ------------------------------------------------------------------------------

# (N, C, H, W, O, kernel, stride, padding, dilation, groups); torch pads symmetrically.
CONVS = [
    (1, 8, 9, 11, 16, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (2, 6, 7, 8, 9, (3, 2), (2, 1), (0, 2), (1, 2), 3),
    (1, 16, 10, 10, 16, (3, 3), (1, 1), (1, 1), (1, 1), 16),  # depthwise (fbgemm's depthwise kernel)
    (1, 16, 9, 7, 16, (3, 3), (2, 2), (1, 1), (1, 1), 16),  # depthwise, strided
    (2, 4, 6, 6, 4, (3, 3), (1, 1), (2, 2), (2, 2), 4),  # depthwise with C = 4 (not fbgemm's depthwise kernel)
    (3, 32, 14, 14, 32, (3, 3), (2, 2), (1, 0), (1, 1), 1),
    (1, 32, 12, 12, 48, (1, 1), (1, 1), (0, 0), (1, 1), 1),
    (1, 12, 8, 9, 6, (2, 3), (1, 2), (2, 1), (2, 1), 2),
]


def is_fbgemm_depthwise(cfg: tuple[Any, ...]) -> bool:
    _, c, _, _, o, kernel, *_, groups = cfg
    return bool(groups == c == o and c % 8 == 0 and kernel == (3, 3))


def ref_conv(
    x: np.ndarray,
    x_scale: float,
    x_zp: int,
    w: np.ndarray,
    w_scale: Any,
    w_zp: Any,
    y_scale: float,
    y_zp: int,
    bias_int: np.ndarray | None,
    *,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    nhwc: bool,
    **options: Any,
) -> np.ndarray:
    """refquant's side of ``torch_conv``, in NHWC/OHWI layout when ``nhwc`` (output returned as NCHW)."""
    if nhwc:
        x, w = x.transpose(0, 2, 3, 1), w.transpose(0, 2, 3, 1)
    y = qlinear_conv(
        x,
        w,
        x_params=QuantParams(x_scale, x_zp, UINT8),
        w_params=w_params(w_scale, w_zp, 0),
        y_params=QuantParams(y_scale, y_zp, UINT8),
        bias=None if bias_int is None else np.asarray(bias_int, np.int32),
        stride=stride,
        padding=to_nchw_padding(padding),
        dilation=dilation,
        groups=groups,
        layout=Layout.NHWC if nhwc else Layout.NCHW,
        **options,
    )
    y = np.asarray(y, dtype=np.int64)
    return y.transpose(0, 3, 1, 2) if nhwc else y


def random_conv_case(rng: np.random.Generator, cfg: tuple[Any, ...], per_channel: bool, act_max: int) -> dict[str, Any]:
    n, c, h, wd, o, kernel, stride, padding, dilation, groups = cfg
    x_zp = int(rng.integers(0, act_max + 1))
    x = rng.integers(0, act_max + 1, (n, c, h, wd)).astype(np.uint8)
    w = rng.integers(-128, 128, (o, c // groups, *kernel)).astype(np.int8)
    x_scale = F32(0.02)
    w_scale: Any = (10 ** rng.uniform(-3, -1, o)).astype(F32) if per_channel else F32(10 ** rng.uniform(-3, -1))
    w_zp: Any = rng.integers(-128, 128, o) if per_channel else int(rng.integers(-128, 128))
    geometry = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    acc = conv2d_int(
        x,
        w,
        x_zero_point=x_zp,
        w_zero_point=w_zp,
        padding=to_nchw_padding(padding),
        **{k: v for k, v in geometry.items() if k != "padding"},
    )
    y_scale = F32(F64(x_scale) * float(np.median(w_scale)) * max(1.0, float(np.abs(acc).max())) / 100)
    return {
        "args": (x, x_scale, x_zp, w, w_scale, w_zp, y_scale, int(rng.integers(0, 256))),
        "geometry": geometry,
    }


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("per_channel", [False, True], ids=["w_tensor", "w_channel"])
@pytest.mark.parametrize("bias", [False, True], ids=["no_bias", "bias"])
def test_fbgemm_conv2d_random(channels_last: bool, per_channel: bool, bias: bool) -> None:
    need_engine("fbgemm")
    rng = np.random.default_rng(50 + 4 * channels_last + 2 * per_channel + bias)
    for cfg in CONVS:
        # fbgemm's depthwise kernel is exact only for activation codes and zero points <= 127 (pinned below).
        act_max = 127 if is_fbgemm_depthwise(cfg) else ACT_MAX
        case = random_conv_case(rng, cfg, per_channel, act_max)
        _, x_scale, _, w, w_scale, *_ = case["args"]
        bias_int = exact_bias_ints(rng, w.shape[0], x_scale, w_scale) if bias else None
        bias_f = None if bias_int is None else float_bias(bias_int, x_scale, w_scale)
        got = torch_conv("fbgemm", *case["args"], bias_f, channels_last=channels_last, **case["geometry"])
        expected = ref_conv(*case["args"], bias_int, nhwc=channels_last, **case["geometry"], **FBGEMM)
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("per_channel", [False, True], ids=["w_tensor", "w_channel"])
@pytest.mark.parametrize("groups", [1, 3])
def test_fbgemm_conv2d_tie_dense(per_channel: bool, groups: int) -> None:
    # The tie-dense linear data as 1x1 convolutions (each row of x is one image of K channels), and, with
    # groups = 3, three such blocks side by side as the groups of one convolution.
    need_engine("fbgemm")
    rng = np.random.default_rng(60 + 2 * per_channel + groups)
    separated = 0
    for trial in range(4):
        max_acc = [2**12, 2**16, 2**21, 2**25][trial]
        case, _ = linear_case(rng, per_channel, max_acc, False)
        blocks = [tie_dense_linear(rng, case, None, max_acc, 100, 100) for _ in range(groups)]
        k = max(b[0].shape[1] for b in blocks)
        x_zp = blocks[0][1]
        # Pad every block to K columns with centred zeros (activation = zero point, weight = zero point).
        xs = [np.pad(b[0], ((0, 0), (0, k - b[0].shape[1])), constant_values=x_zp) for b in blocks]
        w_zp = np.broadcast_to(np.asarray(case["w_zp"]).reshape(-1, 1), (blocks[0][2].shape[0], 1))
        ws = [np.concatenate([b[2], np.broadcast_to(w_zp, (b[2].shape[0], k - b[2].shape[1]))], 1) for b in blocks]
        x = np.concatenate(xs, 1).reshape(100, groups * k, 1, 1).astype(np.uint8)
        w = np.concatenate(ws, 0).reshape(-1, k, 1, 1).astype(np.int8)
        w_scale = np.tile(case["w_scale"], groups) if per_channel else case["w_scale"]
        w_zp_all = np.tile(case["w_zp"], groups) if per_channel else case["w_zp"]
        args = (x, case["x_scale"], x_zp, w, w_scale, w_zp_all, case["y_scale"], case["y_zp"])
        geometry = {"stride": (1, 1), "padding": (0, 0), "dilation": (1, 1), "groups": groups}
        got = torch_conv("fbgemm", *args, None, **geometry)
        np.testing.assert_array_equal(got, ref_conv(*args, None, nhwc=False, **geometry, **FBGEMM))
        default = ref_conv(*args, None, nhwc=False, **geometry)  # FLOAT64 with a float64 multiplier
        separated += int(np.sum(default != got))
    assert separated > 0


# --- fbgemm: the depthwise divergence ----------------------------------------------------------------------


def fbgemm_depthwise_sum(x: np.ndarray, x_zp: int, w: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    """A reconstruction of fbgemm's depthwise 3x3 accumulator, written for these tests (not a refquant function).

    Raw uint8 codes (the padding is the zero-point code) times raw int8 weights; the nine taps in (ky, kx)
    row-major order summed in int16-saturated pairs (0,1)(2,3)(4,5)(6,7) plus tap 8 alone (``vpmaddubsw``);
    then ``- x_zp * sum(w)``.  Stride 1, dilation 1, weight zero point 0.
    """
    _, c, h, wd = x.shape
    ph, pw = padding
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=x_zp)
    oh, ow = h + 2 * ph - 2, wd + 2 * pw - 2
    w64 = w.astype(np.int64)
    taps = [
        xp[:, :, ky : ky + oh, kx : kx + ow] * w64[:, 0, ky, kx].reshape(1, c, 1, 1)
        for ky in range(3)
        for kx in range(3)
    ]
    total = taps[8].copy()
    for i in range(0, 8, 2):
        total += np.clip(taps[i] + taps[i + 1], -(2**15), 2**15 - 1)
    return total - x_zp * w64.sum(axis=(1, 2, 3)).reshape(1, c, 1, 1)


# Worked by hand from the definitions (fbgemm's depthwise fast path is taken with padding 1).  w = 127 everywhere
# (8 channels, 3x3, depthwise), x_scale = w_scale = 1, y_scale = 2048 (m = 2**-11, exact in float32).
# A: a 1x1 image of code 0, x_zp 255: the exact sum is the centre tap (0 - 255) * 127 = -32385, / 2048 = -15.8
#    -> -16, + y_zp 128 = 112.  fbgemm: the eight padding taps are 255 * 127 = 32385 each; pairs (0,1)(2,3)(6,7)
#    saturate to 32767, (4,5) = 0 + 32385, tap 8 = 32385: 163071 - 255 * 127 * 9 = -128394, / 2048 = -62.7
#    -> -63, + 128 = 65.
# B: a 3x3 image of code 255, x_zp 0 (padding taps are 0), y_zp 0.  Exact: 4, 6 or 9 taps of 32385 (corner,
#    edge, centre) -> 129540 / 2048 = 63.3 -> 63, 194310 / 2048 = 94.9 -> 95, 291465 / 2048 = 142.3 -> 142.
#    fbgemm, the data taps of each output position in pairs (0,1)(2,3)(4,5)(6,7)(8), 32767 where both are data:
#    (0,0) taps 4 5 7 8: 32767 + 32385 + 32385 = 97537 -> 47.6 -> 48, and every corner likewise;
#    (0,1) taps 3..8: 32385 + 32767 + 32767 + 32385 = 130304 -> 63.6 -> 64; (1,2) taps 0 1 3 4 6 7: the same;
#    (1,0) taps 1 2 4 5 7 8: 4 * 32385 + 32767 = 162307 -> 79.25 -> 79; (2,1) taps 0..5: 3 * 32767 = 98301
#    -> 48.0 -> 48; (1,1) all nine: 4 * 32767 + 32385 = 163453 -> 79.8 -> 80.
DEPTHWISE_VECTORS = [
    ("padding_with_zero_point_255", np.zeros((1, 8, 1, 1), np.uint8), 255, 128, [[65]], [[112]]),
    (
        "activation_codes_255",
        np.full((1, 8, 3, 3), 255, np.uint8),
        0,
        0,
        [[48, 64, 48], [79, 80, 64], [48, 48, 48]],
        [[63, 95, 63], [95, 142, 95], [63, 95, 63]],
    ),
]


@pytest.mark.parametrize(("name", "x", "x_zp", "y_zp", "torch_codes", "refquant_codes"), DEPTHWISE_VECTORS)
def test_fbgemm_depthwise_divergence_pinned(
    name: str, x: np.ndarray, x_zp: int, y_zp: int, torch_codes: list[list[int]], refquant_codes: list[list[int]]
) -> None:
    need_engine("fbgemm")
    if not HAS_AVX2:
        pytest.skip("fbgemm's depthwise kernel (AVX2) is what diverges; this CPU has no AVX2")
    w = np.full((8, 1, 3, 3), 127, np.int8)
    args = (x, F32(1), x_zp, w, F32(1), 0, F32(2048), y_zp)
    geometry = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "groups": 8}
    got = torch_conv("fbgemm", *args, **geometry)
    ours = ref_conv(*args, None, nhwc=False, **geometry, **FBGEMM)
    np.testing.assert_array_equal(got, np.broadcast_to(np.array(torch_codes), got.shape))
    np.testing.assert_array_equal(ours, np.broadcast_to(np.array(refquant_codes), got.shape))
    # The saturating reconstruction gives torch's codes.
    sat = fbgemm_depthwise_sum(x, x_zp, w, (1, 1))
    np.testing.assert_array_equal(np.rint(sat / 2048) + y_zp, got)


def test_fbgemm_depthwise_is_the_saturating_sum_on_random_data() -> None:
    # Full-range activation codes and zero points: torch's output is requantize(FLOAT32) of the saturating
    # reconstruction above, and differs from the exact pipeline (refquant) in some outputs.
    need_engine("fbgemm")
    if not HAS_AVX2:
        pytest.skip("fbgemm's depthwise kernel (AVX2) is what diverges; this CPU has no AVX2")
    rng = np.random.default_rng(70)
    diverged = 0
    for x_zp in (0, 77, 200, 255):
        x = rng.integers(0, 256, (2, 16, 10, 10)).astype(np.uint8)
        w = rng.integers(-128, 128, (16, 1, 3, 3)).astype(np.int8)
        x_scale, w_scale, y_scale = F32(0.02), F32(0.01), F32(0.02 * 0.01 * 600)
        args = (x, x_scale, x_zp, w, w_scale, 0, y_scale, 128)
        geometry = {"stride": (1, 1), "padding": (1, 1), "dilation": (1, 1), "groups": 16}
        got = torch_conv("fbgemm", *args, **geometry)
        sat = fbgemm_depthwise_sum(x, x_zp, w, (1, 1))
        m = fl32_multiplier(x_scale, w_scale, y_scale)
        modelled = np.clip(np.rint((sat.astype(F32) * F32(m)).astype(F32)) + 128, 0, 255)
        np.testing.assert_array_equal(got, modelled)
        diverged += int(np.sum(got != ref_conv(*args, None, nhwc=False, **geometry, **FBGEMM)))
    assert diverged > 0


# --- onednn ---------------------------------------------------------------------------------------------------


def onednn_requantize(
    acc: np.ndarray,
    x_scale: float,
    w_scale: Any,
    y_scale: float,
    y_zp: int,
    bias: np.ndarray | None = None,
    *,
    channel_axis: int = -1,
    lo: int = 0,
    hi: int = 255,
) -> np.ndarray:
    """A reconstruction of torch 2.13's onednn requantization, written for these tests (NOT a refquant function).

    Every step in float32, rounding to nearest even: torch hands oneDNN the reciprocal scales, so each input
    scale comes back as ``s' = fl32(1 / fl32(1 / s))``; ``v = fl32(fl32(fl32(acc) * x_scale') * w_scale')``;
    ``v = fl32(v + bias)`` (torch's float bias, if any); ``v = fl32(v * fl32(1 / y_scale))``; then the output
    zero point is added in float32 *before* rounding: ``clamp(rint(fl32(v + y_zp)))``.
    """
    one = F32(1)
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    ws = np.asarray(w_scale, F32)
    ws_back = (one / (one / ws)).astype(F32)
    ws_back = ws_back.reshape(shape) if ws.ndim else ws_back
    xs_back = F32(one / F32(one / F32(x_scale)))
    v = (acc.astype(F32) * xs_back).astype(F32)
    v = (v * ws_back).astype(F32)
    if bias is not None:
        v = (v + np.asarray(bias, F32).reshape(shape)).astype(F32)
    v = (v * F32(one / F32(y_scale))).astype(F32)
    v = (v + F32(y_zp)).astype(F32)
    return np.clip(np.rint(v), lo, hi).astype(np.int64)


# Worked by hand from the definition of onednn_requantize and from refquant's options (quint8 out, K = 1,
# w = [[1]] with w_scale as given, w_zp 0).  (x codes, x_scale, x_zp, w_scale, y_scale, y_zp, torch's codes,
# refquant's codes under every RequantRounding x Precision.)
# 0. exact tie, odd output zero point: scales 1, 1, 2 (all exact through the reciprocals), y_zp = 129; acc = 3:
#    v = 1.5, fl32(1.5 + 129) = 130.5 -> 130 (onednn), while refquant rounds 1.5 first (2 under every option,
#    half to even or away from zero or toward +inf alike) and adds 129: 131; acc = 7: 132.5 -> 132 vs 4 + 129 = 133.
# 1. zero point added in float32: y_scale = nextbelow_f32(2) = 1.99999988, fl32(1 / y_scale) = 0.50000006;
#    acc = 1: fl32(0.50000006 + 128) = 128.5 (the float32 spacing at 128 is 2**-16) -> a tie -> 128, while
#    every refquant option rounds 0.50000003 (> 1/2) to 1, + 128 = 129; acc = 5: fl32(130.50000030) = 130.5
#    -> 130 vs 2.50000015 -> 3 -> 131; acc = -1: -0.50000006 + 128 -> 127.5 -> 128 vs -1 + 128 = 127.
# 2. reciprocal round trip: x_scale = fl32(0.006) = 0.0060000000521540642, fl32(1 / fl32(1 / x_scale)) =
#    0.0059999996; acc = 250: 250 * 0.0059999996 = 1.4999999 -> 1 (onednn), while 250 * x_scale =
#    1.50000001 -> 2 under every refquant option (SINGLE: 250 * q / 2**38 is above 1.5 as well; DOUBLE: shift
#    -7, 250 * q / 2**31 rounds to 192, and 192 / 2**7 = 1.5 rounds away from zero to 2).
# 3. sequential multiplies: x_scale = fl32(0.09) = 0.090000004, w_scale = fl32(0.2) = 0.2 + 3e-9 (both survive
#    the round trip); acc = 250: fl32(22.5000009) = 22.5 (half an ulp there is 9.5e-7), fl32(22.5 * w_scale) =
#    fl32(4.50000007) = 4.5, a tie -> 4 (onednn); the exact product is 4.50000025 -> 5, and
#    fl32(fl32(x_scale * w_scale) * 250) = 4.5000005 -> 5: 5 under every refquant option (DOUBLE: shift -5,
#    250 * q / 2**31 rounds to 144, and 144 / 2**5 = 4.5 rounds away from zero to 5).
NEXTBELOW_2 = float(np.nextafter(F32(2), F32(0)))
ONEDNN_VECTORS = [
    ("exact_tie_odd_zero_point", [131, 135], 1.0, 128, 1.0, 2.0, 129, [130, 132], [131, 133]),
    ("zero_point_in_float32", [129, 133, 127], 1.0, 128, 1.0, NEXTBELOW_2, 128, [128, 130, 128], [129, 131, 127]),
    ("reciprocal_round_trip", [250], 0.006, 0, 1.0, 1.0, 0, [1], [2]),
    ("sequential_multiplies", [250], 0.09, 0, 0.2, 1.0, 0, [4], [5]),
]


@pytest.mark.parametrize(
    ("name", "codes", "x_scale", "x_zp", "w_scale", "y_scale", "y_zp", "torch_codes", "refquant_codes"),
    ONEDNN_VECTORS,
    ids=[v[0] for v in ONEDNN_VECTORS],
)
def test_onednn_divergence_pinned(
    name: str,
    codes: list[int],
    x_scale: float,
    x_zp: int,
    w_scale: float,
    y_scale: float,
    y_zp: int,
    torch_codes: list[int],
    refquant_codes: list[int],
) -> None:
    need_engine("onednn")
    x = np.array(codes, np.uint8).reshape(-1, 1)
    w = np.array([[1]], np.int8)
    xs, ws, ys = F32(x_scale), F32(w_scale), F32(y_scale)
    got = torch_linear("onednn", x, xs, x_zp, w, ws, 0, ys, y_zp)
    np.testing.assert_array_equal(got[:, 0], torch_codes)
    acc = x.astype(np.int64) - x_zp
    np.testing.assert_array_equal(onednn_requantize(acc, xs, ws, ys, y_zp), got)
    for rounding, precision in ALL_OPTIONS:
        ours = ref_linear(x, xs, x_zp, w, ws, 0, ys, y_zp, rounding=rounding, multiplier_precision=precision)
        np.testing.assert_array_equal(ours[:, 0], refquant_codes, err_msg=f"{rounding.name} {precision.name}")
    # fbgemm takes refquant's side on these vectors.
    if "fbgemm" in torch.backends.quantized.supported_engines:
        np.testing.assert_array_equal(torch_linear("fbgemm", x, xs, x_zp, w, ws, 0, ys, y_zp)[:, 0], refquant_codes)


@pytest.mark.parametrize("per_channel", [False, True], ids=["w_tensor", "w_channel"])
@pytest.mark.parametrize("bias", [False, True], ids=["no_bias", "bias"])
def test_onednn_model_linear_tie_dense(per_channel: bool, bias: bool) -> None:
    need_engine("onednn")
    rng = np.random.default_rng(80 + 2 * per_channel + bias)
    total = largest = 0
    separated: dict[tuple[RequantRounding, Precision], int] = {}
    for trial in range(8):
        max_acc = [2**12, 2**16, 2**21, 2**25][trial % 4]
        case, _ = linear_case(rng, per_channel, max_acc, False)
        case["w_zp"] = np.zeros(3, np.int64) if per_channel else 0  # onednn takes symmetric weights only
        x, x_zp, w, targets = tie_dense_linear(rng, case, None, max_acc, 400, 127)
        largest = max(largest, int(np.abs(targets).max()))
        channels = w.shape[0]
        bias_f = (rng.uniform(-1, 1, channels) * 50 * case["y_scale"]).astype(F32) if bias else None
        args = (case["x_scale"], x_zp, w, case["w_scale"], case["w_zp"], case["y_scale"], case["y_zp"])
        got = torch_linear("onednn", x, *args, bias_f)
        acc = matmul_int(x, w.T, lhs_zero_point=x_zp).astype(np.int64)
        modelled = onednn_requantize(acc, case["x_scale"], case["w_scale"], case["y_scale"], case["y_zp"], bias_f)
        np.testing.assert_array_equal(got, modelled)
        total += got.size
        if not bias:
            for option in ALL_OPTIONS:
                ours = ref_linear(x, *args, rounding=option[0], multiplier_precision=option[1])
                separated[option] = separated.get(option, 0) + int(np.sum(ours != got))
    assert total >= 3200
    assert largest > 2**24  # float32 rounds the accumulator too
    # The tie-dense data tells onednn from every refquant option (10 to 22 % of these outputs differ).
    assert bias or (len(separated) == len(ALL_OPTIONS) and min(separated.values()) > 0), separated


@pytest.mark.parametrize("per_channel", [False, True], ids=["w_tensor", "w_channel"])
def test_onednn_model_linear_random(per_channel: bool) -> None:
    need_engine("onednn")
    rng = np.random.default_rng(90 + per_channel)
    for m, k, n in LINEAR_SHAPES:
        for x_zp in (0, ACT_MAX, int(rng.integers(1, ACT_MAX))):
            x = rng.integers(0, ACT_MAX + 1, (m, k)).astype(np.uint8)
            w = rng.integers(-128, 128, (n, k)).astype(np.int8)
            x_scale = F32(10 ** rng.uniform(-3, -1))
            w_scale: Any = (10 ** rng.uniform(-3, -1, n)).astype(F32) if per_channel else F32(10 ** rng.uniform(-3, -1))
            acc = matmul_int(x, w.T, lhs_zero_point=x_zp).astype(np.int64)
            y_scale = F32(F64(x_scale) * float(np.median(w_scale)) * max(1.0, float(np.abs(acc).max())) / 100)
            bias_f = (rng.uniform(-1, 1, n) * 30 * y_scale).astype(F32)
            y_zp = int(rng.integers(0, 256))
            for b in (None, bias_f):
                got = torch_linear(
                    "onednn",
                    x,
                    x_scale,
                    x_zp,
                    w,
                    w_scale,
                    0 * np.ones(n, np.int64) if per_channel else 0,
                    y_scale,
                    y_zp,
                    b,
                )
                np.testing.assert_array_equal(got, onednn_requantize(acc, x_scale, w_scale, y_scale, y_zp, b))


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("per_channel", [False, True], ids=["w_tensor", "w_channel"])
def test_onednn_model_conv2d_random(channels_last: bool, per_channel: bool) -> None:
    need_engine("onednn")
    rng = np.random.default_rng(100 + 2 * channels_last + per_channel)
    for cfg in CONVS:
        case = random_conv_case(rng, cfg, per_channel, ACT_MAX)
        x, x_scale, x_zp, w, w_scale, _, y_scale, y_zp = case["args"]
        w_zp: Any = np.zeros(w.shape[0], np.int64) if per_channel else 0  # symmetric weights only
        geometry = case["geometry"]
        acc = conv2d_int(
            x,
            w,
            x_zero_point=x_zp,
            stride=geometry["stride"],
            padding=to_nchw_padding(geometry["padding"]),
            dilation=geometry["dilation"],
            groups=geometry["groups"],
        ).astype(np.int64)
        bias_f = (rng.uniform(-1, 1, w.shape[0]) * 30 * y_scale).astype(F32)
        for b in (None, bias_f):
            got = torch_conv(
                "onednn", x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, b, channels_last=channels_last, **geometry
            )
            np.testing.assert_array_equal(
                got, onednn_requantize(acc, x_scale, w_scale, y_scale, y_zp, b, channel_axis=1)
            )
