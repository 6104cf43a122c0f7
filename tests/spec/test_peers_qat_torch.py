"""torch 2.13.0+cpu autograd against refquant.spec.qat, on tie-dense and boundary-dense inputs: x exactly at
(k - z - 0.5) * s and (k - z + 0.5) * s for every code k from qmin - 2 to qmax + 2, and one ulp either side.

- fake_quantize_per_tensor_affine / fake_quantize_per_channel_affine: forward values and the backward (the PYTORCH
  mask with RECIPROCAL_MULTIPLY), bit for bit.
- _fake_quantize_learnable_per_tensor_affine / _per_channel_affine: grad_x bit for bit over whole tensors; the scale
  and zero-point terms bit for bit through one-element tensors (torch's sum of one term is that term); the summed
  gradients of larger tensors within the bound of any summation order (torch's float32 ``sum`` order is not
  specified, so its result is compared with refquant's exactly rounded sum within ``gamma_(n-1) * sum|terms|`` plus
  half an ulp, gamma_k = k u / (1 - k u), u = 2**-24).
- the default gradient scale of torch's _LearnableFakeQuantize (``1.0 / (numel * quant_max) ** 0.5``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from refquant.spec.affine import QuantParams, ScaleApplication, fake_quantize
from refquant.spec.formats import INT4, INT8, UINT8, IntFormat
from refquant.spec.granularity import PerAxis
from refquant.spec.qat import LsqVariant, fake_quantize_grad, lsq_grad_scale, lsq_grad_terms, lsq_grads

torch = pytest.importorskip("torch")

F32 = np.float32
U = 2.0**-24
RECIPROCAL = ScaleApplication.RECIPROCAL_MULTIPLY


def bits32(x: Any) -> Any:
    return np.asarray(x, F32).view(np.uint32).tolist()


def boundary_inputs(s: np.float32, z: int, fmt: IntFormat) -> np.ndarray:
    ks = np.arange(fmt.qmin - 2, fmt.qmax + 3)
    base = (((ks - z)[:, None] + np.array([-0.5, 0.5])[None, :]).ravel() * float(s)).astype(F32)
    return np.concatenate([base, np.nextafter(base, F32(np.inf)), np.nextafter(base, F32(-np.inf))])


CASES = [(INT8, 0.1, 0), (INT8, 0.0123, -7), (INT8, 0.37, 100), (UINT8, 0.05, 128), (UINT8, 1.0, 3), (UINT8, 0.002, 0)]


@pytest.mark.parametrize(("fmt", "scale", "zp"), CASES)
def test_fake_quantize_per_tensor_affine_forward_and_backward(fmt: IntFormat, scale: float, zp: int) -> None:
    s = F32(scale)
    x = boundary_inputs(s, zp, fmt)
    dy = np.random.default_rng(x.size).standard_normal(x.shape).astype(F32)
    t = torch.tensor(x, requires_grad=True)
    y = torch.fake_quantize_per_tensor_affine(t, float(s), zp, fmt.qmin, fmt.qmax)
    y.backward(torch.from_numpy(dy))
    p = QuantParams(s, zp, fmt)
    assert bits32(fake_quantize(x, p, scale_application=RECIPROCAL)) == bits32(y.detach().numpy())
    assert bits32(fake_quantize_grad(x, dy, p, scale_application=RECIPROCAL)) == bits32(t.grad.numpy())


@pytest.mark.parametrize(("fmt", "scale", "zp"), CASES)
def test_fake_quantize_per_channel_affine_forward_and_backward(fmt: IntFormat, scale: float, zp: int) -> None:
    scales = np.array([scale, scale * 3, scale / 7], F32)
    zps = np.array([zp, fmt.qmin, fmt.qmax], np.int64)
    rows = [boundary_inputs(scales[c], int(zps[c]), fmt) for c in range(3)]
    n = min(len(r) for r in rows)
    x = np.stack([r[:n] for r in rows]).T.copy()  # channels on axis 1
    dy = np.random.default_rng(n).standard_normal(x.shape).astype(F32)
    t = torch.tensor(x, requires_grad=True)
    zt = torch.tensor(zps, dtype=torch.int32)
    y = torch.fake_quantize_per_channel_affine(t, torch.from_numpy(scales), zt, 1, fmt.qmin, fmt.qmax)
    y.backward(torch.from_numpy(dy))
    p = QuantParams(scales, zps, fmt, PerAxis(1))
    assert bits32(fake_quantize(x, p, scale_application=RECIPROCAL)) == bits32(y.detach().numpy())
    assert bits32(fake_quantize_grad(x, dy, p, scale_application=RECIPROCAL)) == bits32(t.grad.numpy())


def _order_bound(terms: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|any-order float32 sum - exactly rounded sum| <= gamma_(n-1) * sum|t| + half an ulp of the exact result."""
    n = terms.shape[-1]
    gamma = (n - 1) * U / (1 - (n - 1) * U)
    half_ulp = np.spacing(np.abs(exact.astype(F32))).astype(np.float64) / 2
    return np.asarray(gamma * np.sum(np.abs(terms.astype(np.float64)), axis=-1) + half_ulp)


LEARNABLE = [(INT8, 0.1, 0.0), (INT8, 0.0123, -7.0), (INT8, 0.37, 2.5), (INT8, 0.05, -64.0), (UINT8, 0.05, 127.5)]
LEARNABLE += [(UINT8, 1.0, 1.0), (UINT8, 0.002, 3.7), (INT4, 0.25, -0.5)]


@pytest.mark.parametrize(("fmt", "scale", "zf"), LEARNABLE)
def test_learnable_per_tensor(fmt: IntFormat, scale: float, zf: float) -> None:
    s = F32(scale)
    x = boundary_inputs(s, int(np.rint(zf)), fmt)
    rng = np.random.default_rng(x.size)
    dy = rng.standard_normal(x.shape).astype(F32)
    g = float(lsq_grad_scale(x.size, fmt))
    t = torch.tensor(x, requires_grad=True)
    st = torch.tensor([float(s)], requires_grad=True)
    zt = torch.tensor([zf], dtype=torch.float32, requires_grad=True)
    y = torch._fake_quantize_learnable_per_tensor_affine(t, st, zt, fmt.qmin, fmt.qmax, g)
    y.backward(torch.from_numpy(dy))
    gx, ts, tz = lsq_grad_terms(x, dy, np.array([s]), np.array([zf], F32), fmt, grad_scale=g, variant=LsqVariant.TORCH)
    assert bits32(gx) == bits32(t.grad.numpy())
    _, gs, gz = lsq_grads(x, dy, np.array([s]), np.array([zf], F32), fmt, grad_scale=g, variant=LsqVariant.TORCH)
    assert abs(float(gs[0]) - float(st.grad[0])) <= float(_order_bound(ts, gs)[0])
    assert abs(float(gz[0]) - float(zt.grad[0])) <= float(_order_bound(tz, gz)[0])


@pytest.mark.parametrize(("fmt", "scale", "zf"), LEARNABLE)
def test_learnable_per_tensor_terms_one_element_at_a_time(fmt: IntFormat, scale: float, zf: float) -> None:
    """A one-element tensor makes torch's sum the term itself: every scale and zero-point term, bit for bit."""
    s = F32(scale)
    x = boundary_inputs(s, int(np.rint(zf)), fmt)[::3]
    dy = np.random.default_rng(7).standard_normal(x.shape).astype(F32)
    g = 0.0371
    _, ts, tz = lsq_grad_terms(x, dy, F32(s), F32(zf), fmt, grad_scale=g, variant=LsqVariant.TORCH)
    got_s, got_z = [], []
    for xi, di in zip(x, dy, strict=True):
        t = torch.tensor([xi], requires_grad=True)
        st = torch.tensor([float(s)], requires_grad=True)
        zt = torch.tensor([zf], dtype=torch.float32, requires_grad=True)
        torch._fake_quantize_learnable_per_tensor_affine(t, st, zt, fmt.qmin, fmt.qmax, g).backward(torch.tensor([di]))
        got_s.append(float(st.grad[0]))
        got_z.append(float(zt.grad[0]))
    assert bits32(ts) == bits32(got_s)
    assert bits32(tz) == bits32(got_z)


@pytest.mark.parametrize(("fmt", "scale", "zf"), LEARNABLE)
def test_learnable_per_channel(fmt: IntFormat, scale: float, zf: float) -> None:
    scales = np.array([scale, scale * 3, scale / 7], F32)
    zfs = np.clip(np.array([zf, zf + 1.5, zf - 2.0], F32), fmt.qmin, fmt.qmax).astype(F32)
    rows = [boundary_inputs(scales[c], int(np.rint(zfs[c])), fmt) for c in range(3)]
    n = min(len(r) for r in rows)
    x = np.stack([r[:n] for r in rows])  # channels on axis 0
    dy = np.random.default_rng(n).standard_normal(x.shape).astype(F32)
    g = float(lsq_grad_scale(x.size, fmt))
    t = torch.tensor(x, requires_grad=True)
    st = torch.tensor(scales, requires_grad=True)
    zt = torch.tensor(zfs, requires_grad=True)
    y = torch._fake_quantize_learnable_per_channel_affine(t, st, zt, 0, fmt.qmin, fmt.qmax, g)
    y.backward(torch.from_numpy(dy))
    gx, ts, tz = lsq_grad_terms(x, dy, scales, zfs, fmt, axis=0, grad_scale=g, variant=LsqVariant.TORCH)
    assert bits32(gx) == bits32(t.grad.numpy())
    _, gs, gz = lsq_grads(x, dy, scales, zfs, fmt, axis=0, grad_scale=g, variant=LsqVariant.TORCH)
    assert np.all(np.abs(gs.astype(np.float64) - st.grad.numpy()) <= _order_bound(ts, gs))
    assert np.all(np.abs(gz.astype(np.float64) - zt.grad.numpy()) <= _order_bound(tz, gz))


def test_learnable_per_channel_terms_one_element_at_a_time() -> None:
    """As the per-tensor test, through the per-channel kernel (its zero point is rounded half to even, not
    truncated after + 0.5: the zero point 2.5 is 2 here and 3 per tensor)."""
    fmt = INT8
    scales = np.array([0.1, 0.0123, 0.37], F32)
    zfs = np.array([0.0, -7.0, 2.5], F32)
    rng = np.random.default_rng(21)
    g = 0.25
    for c in range(3):
        x = boundary_inputs(scales[c], int(np.rint(zfs[c])), fmt)[::5]
        dy = rng.standard_normal(x.shape).astype(F32)
        _, ts2, tz2 = lsq_grad_terms(
            x[None, :],
            dy[None, :],
            scales[c : c + 1],
            zfs[c : c + 1],
            fmt,
            axis=0,
            grad_scale=g,
            variant=LsqVariant.TORCH,
        )
        ts, tz = ts2[0], tz2[0]
        for i, (xi, di) in enumerate(zip(x, dy, strict=True)):
            t = torch.tensor([[xi]], requires_grad=True)
            st = torch.tensor([float(scales[c])], requires_grad=True)
            zt = torch.tensor([float(zfs[c])], requires_grad=True)
            torch._fake_quantize_learnable_per_channel_affine(t, st, zt, 0, fmt.qmin, fmt.qmax, g).backward(
                torch.tensor([[di]])
            )
            assert bits32(ts[i]) == bits32(st.grad[0].item())
            assert bits32(tz[i]) == bits32(zt.grad[0].item())


def test_refquant_variant_differs_from_torch_where_documented() -> None:
    """REFQUANT uses the forward's code (round first, then the rounded zero point); torch's backward adds the
    zero point before rounding: with z = 1 and x = 0.5 * s they disagree, and torch's own forward agrees with
    REFQUANT."""
    s = F32(1.0)
    x = np.array([0.5], F32)
    t = torch.tensor(x, requires_grad=True)
    st = torch.tensor([1.0], requires_grad=True)
    zt = torch.tensor([1.0], requires_grad=True)
    y = torch._fake_quantize_learnable_per_tensor_affine(t, st, zt, 0, 255, 1.0)
    y.backward(torch.ones(1))
    assert float(y.detach()[0]) == float(fake_quantize(x, QuantParams(s, 1, UINT8))[0]) == 0.0
    _, gs_ref, _ = lsq_grads(x, np.ones(1, F32), s, F32(1), UINT8, grad_scale=1.0)
    _, gs_torch, _ = lsq_grads(x, np.ones(1, F32), s, F32(1), UINT8, grad_scale=1.0, variant=LsqVariant.TORCH)
    assert float(st.grad[0]) == float(gs_torch) == 0.5
    assert float(gs_ref) == -0.5


@pytest.mark.parametrize("numel", [1, 7, 64, 1000, 4096, 123457])
@pytest.mark.parametrize("fmt", [INT8, UINT8, INT4])
def test_default_gradient_scale_is_torchs(numel: int, fmt: IntFormat) -> None:
    """torch.ao.quantization._learnable_fake_quantize: grad_factor = 1.0 / (X.numel() * quant_max) ** 0.5, a Python
    float handed to a float32 kernel argument."""
    assert bits32(lsq_grad_scale(numel, fmt)) == bits32(F32(1.0 / (numel * fmt.qmax) ** 0.5))


def test_learnable_backward_rounds_one_fused_multiply_add() -> None:
    """Near-ties where round(fma(x, inv, z)) and round(fl(x * inv) + z) differ (found by a seeded search): torch's
    scale term is the fused reading's (docs/spec/qat.md §4, item 2)."""
    from refquant.spec.affine import _fma_float32

    rng = np.random.default_rng(2)
    found = 0
    for _ in range(3000):
        s = F32(rng.uniform(0.001, 1))
        inv = F32(1) / s
        zf = float(rng.integers(-100, -1))
        z_b = int(np.trunc(F32(zf) + F32(0.5)))
        k = int(rng.integers(60, 127))
        base = F32((k + 0.5) * float(s))
        xs = np.array([F32(base + F32(i) * np.spacing(base)) for i in range(-3, 4)], F32)
        two = np.rint(xs * inv + F32(z_b))
        fused = np.rint(_fma_float32(xs, np.full(xs.shape, inv, F32), np.full(xs.shape, z_b, F32)))
        differ = np.nonzero((two != fused) & (np.minimum(two, fused) >= -128) & (np.maximum(two, fused) <= 127))[0]
        for i in differ:
            t = torch.tensor([xs[i]], requires_grad=True)
            st = torch.tensor([float(s)], requires_grad=True)
            zt = torch.tensor([zf], requires_grad=True)
            torch._fake_quantize_learnable_per_tensor_affine(t, st, zt, -128, 127, 1.0).backward(torch.ones(1))
            _, ts, _ = lsq_grad_terms(
                xs[i : i + 1], np.ones(1, F32), s, F32(zf), INT8, grad_scale=1.0, variant=LsqVariant.TORCH
            )
            assert bits32(ts) == bits32([st.grad[0].item()])
            found += 1
        if found >= 10:
            break
    assert found >= 10
