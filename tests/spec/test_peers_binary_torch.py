"""Peer check: binary and ternary quantization against torch 2.13 CPU (skipped when torch is not installed).

Established by experiment here (docs/spec/binary.md):

- ``torch.sign`` is ``binarize(x, sign_zero=SignZero.ZERO)``: ``sign(+-0.0) = +0.0`` (measured: no signed zero),
  ``+-inf -> +-1``, subnormals keep their sign.
- The gradient of ``torch.nn.functional.hardtanh`` (default range [-1, 1]) is 0 at exactly ``x = +-1``: the OPEN
  window ``|x| < 1`` (official XNOR-Net ``BinActiveZ``).  The gradient of ``torch.clamp(x, -1, 1)`` is 1 there: the
  CLOSED window ``|x| <= 1`` (BNN).  So a BNN written with ``Hardtanh`` (as many ports do) has the open window.
- ``torch.matmul`` of +-1 float32 matrices is exact for K <= 2**24 (every partial sum is an integer of magnitude
  <= 2**24, whatever the summation order), and ``xnor_matmul`` equals it, K = 2**24 included.
- ``torch.round`` rounds half to even, as ``bitnet_ternarize`` does: the BitNet b1.58 expression written in torch
  float32 (``(w / (w.abs().mean() + eps)).round().clamp(-1, 1)``) gives refquant's codes whenever torch's float32 mean
  equals the exact mean (dyadic data below, whose sums are exact in float32).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refquant.spec.binary import SignZero, SteWindow, binarize, pack_bits, ste_grad, xnor_matmul
from refquant.spec.ternary import bitnet_ternarize

torch = pytest.importorskip("torch")

SPECIAL = np.array(
    [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, 2.0**-149, -(2.0**-149), 1e-30, -1e-30, 3.4e38, -3.4e38], np.float32
)


def test_torch_sign_is_sign_zero_zero() -> None:
    rng = np.random.default_rng(7)
    x = np.concatenate([SPECIAL, rng.standard_normal(1000).astype(np.float32), np.zeros(5, np.float32)])
    peer = torch.sign(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(binarize(x, sign_zero=SignZero.ZERO), peer.astype(np.int8))
    # Measured: torch.sign(-0.0) is +0.0 (no signed zero), and 0.0 for +0.0.
    assert peer[:2].tolist() == [0.0, 0.0]
    assert not np.signbit(peer[:2]).any()


def window_grid() -> np.ndarray:
    one = np.float32(1)
    near = [np.nextafter(one, np.float32(0)), one, np.nextafter(one, np.float32(2))]
    vals = [0.0, 0.5, 2.0, *near]
    return np.array(vals + [-v for v in vals], np.float32)


def test_hardtanh_gradient_is_the_open_window() -> None:
    x = window_grid()
    g = np.linspace(-3, 3, x.size).astype(np.float32) + np.float32(0.25)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    torch.nn.functional.hardtanh(xt).backward(torch.from_numpy(g))
    peer = xt.grad.numpy()
    np.testing.assert_array_equal(peer.view(np.uint32), ste_grad(x, g, window=SteWindow.OPEN).view(np.uint32))
    assert peer[x == 1].tolist() == [0.0]
    assert peer[x == -1].tolist() == [0.0]


def test_clamp_gradient_is_the_closed_window() -> None:
    x = window_grid()
    g = np.linspace(-3, 3, x.size).astype(np.float32) + np.float32(0.25)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    torch.clamp(xt, -1.0, 1.0).backward(torch.from_numpy(g))
    peer = xt.grad.numpy()
    np.testing.assert_array_equal(peer.view(np.uint32), ste_grad(x, g, window=SteWindow.CLOSED).view(np.uint32))
    assert peer[x == 1].tolist() == g[x == 1].tolist()


@settings(max_examples=60)
@given(
    st.one_of(st.sampled_from([1, 63, 64, 65, 127, 128, 129, 1000, 4095, 4096, 4097]), st.integers(0, 3000)),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(0, 2**32 - 1),
)
def test_xnor_matmul_equals_torch_matmul(k: int, m: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.choice(np.array([-1, 1], np.int8), size=(m, k))
    b = rng.choice(np.array([-1, 1], np.int8), size=(n, k))
    peer = torch.matmul(torch.from_numpy(a.astype(np.float32)), torch.from_numpy(b.astype(np.float32)).T).numpy()
    np.testing.assert_array_equal(xnor_matmul(pack_bits(a), pack_bits(b), k), peer.astype(np.int32))


def test_xnor_matmul_equals_torch_matmul_at_k_2_pow_24() -> None:
    k = 2**24
    rng = np.random.default_rng(24)
    a = rng.choice(np.array([-1, 1], np.int8), size=(1, k))
    a[0, : k // 2] = 1  # a long run of equal signs, so one dot is far from 0
    b = np.stack([a[0], -a[0], rng.choice(np.array([-1, 1], np.int8), size=k)])
    peer = torch.matmul(torch.from_numpy(a.astype(np.float32)), torch.from_numpy(b.astype(np.float32)).T).numpy()
    out = xnor_matmul(pack_bits(a), pack_bits(b), k)
    np.testing.assert_array_equal(out, peer.astype(np.int32))
    assert out[0, :2].tolist() == [k, -k]


def test_bitnet_matches_torch_round_on_dyadic_data() -> None:
    rng = np.random.default_rng(158)
    for _ in range(200):
        w = (rng.integers(-64, 65, 16) / 32).astype(np.float32)  # every sum exact in float32, in any order
        w[rng.integers(0, 16)] = np.float32(0.5) * np.float32(np.abs(w).mean())  # near a tie
        eps = 2.0**-10
        wt = torch.from_numpy(w)
        peer = (wt / (wt.abs().mean() + eps)).round().clamp(-1, 1).numpy()
        codes, scale = bitnet_ternarize(w, eps=eps)
        np.testing.assert_array_equal(codes, peer.astype(np.int8))
        assert np.float32(scale).view(np.uint32) == (wt.abs().mean() + eps).numpy().view(np.uint32)
