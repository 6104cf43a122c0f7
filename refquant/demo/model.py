"""The demo's model and data: a small CNN for sklearn's 8x8 digits, forward and backward in numpy.

Architecture (fixed; ``LAYERS``)::

    input (N, 1, 8, 8), pixel values / 16 in [0, 1]
    conv1  3x3, 1 -> 8 channels, stride 1, padding 1, bias, ReLU    -> (N, 8, 8, 8)
    conv2  3x3, 8 -> 16 channels, stride 2, padding 1, bias, ReLU   -> (N, 16, 4, 4)
    fc     16*4*4 = 256 -> 10, bias (the logits; the input flattened in C order)

Data split (``load_split``): ``sklearn.datasets.load_digits`` (1797 samples), permuted by
``numpy.random.default_rng(0).permutation(1797)``; the first 1297 are the training split, the last
500 the test split.  The calibration subset is the first 256 samples of the training split.

Convolutions are an im2col product built tap by tap (no Python loop over pixels); the backward pass
is its transpose.  scikit-learn is imported inside ``load_split`` only (the ``demo`` extra).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from refquant.errors import SpecError

__all__ = [
    "CALIBRATION_SIZE",
    "LAYERS",
    "SPLIT_SEED",
    "TEST_SIZE",
    "WEIGHTS_PATH",
    "Grads",
    "Layer",
    "Split",
    "Weights",
    "accuracy",
    "conv_backward",
    "conv_forward",
    "forward",
    "init_weights",
    "load_split",
    "load_weights",
    "loss_and_grads",
    "save_weights",
]

FloatArray = npt.NDArray[np.floating[Any]]
Weights = dict[str, npt.NDArray[Any]]
"""Parameter name (``conv1.w``, ``conv1.b``, ``conv2.w``, ``conv2.b``, ``fc.w``, ``fc.b``) to array."""
Grads = dict[str, npt.NDArray[Any]]

SPLIT_SEED: Final = 0
TEST_SIZE: Final = 500
CALIBRATION_SIZE: Final = 256
WEIGHTS_PATH: Final = Path(__file__).resolve().parent / "weights.npz"


@dataclass(frozen=True)
class Layer:
    """One layer: ``name``; weight shape (OIHW, or (O, K) for ``fc``); stride; padding (all four sides); ReLU."""

    name: str
    w_shape: tuple[int, ...]
    stride: int
    pad: int
    relu: bool

    @property
    def is_conv(self) -> bool:
        return len(self.w_shape) == 4

    @property
    def out_channels(self) -> int:
        return self.w_shape[0]

    @property
    def fan_in(self) -> int:
        return int(np.prod(self.w_shape[1:]))


LAYERS: Final = (
    Layer("conv1", (8, 1, 3, 3), 1, 1, True),
    Layer("conv2", (16, 8, 3, 3), 2, 1, True),
    Layer("fc", (10, 256), 1, 0, False),
)


@dataclass(frozen=True)
class Split:
    """The fixed split: ``x_*`` float32 (N, 1, 8, 8) in [0, 1]; ``y_*`` int64 labels."""

    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[np.int64]
    x_test: npt.NDArray[np.float32]
    y_test: npt.NDArray[np.int64]

    @property
    def x_calib(self) -> npt.NDArray[np.float32]:
        return self.x_train[:CALIBRATION_SIZE]


def load_split() -> Split:
    """sklearn's digits, scaled by 1/16 (exact in float32), split as the module documentation states."""
    datasets: Any = importlib.import_module("sklearn.datasets")  # the demo extra, imported only here
    data = datasets.load_digits()
    x = (np.asarray(data.data, np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)
    y = np.asarray(data.target, np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(x.shape[0])
    x, y = x[order], y[order]
    n_train = x.shape[0] - TEST_SIZE
    return Split(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def init_weights(seed: int) -> Weights:
    """He-normal weights (float32) from ``numpy.random.default_rng(seed)``, zero biases."""
    rng = np.random.default_rng(seed)
    weights: Weights = {}
    for layer in LAYERS:
        std = np.sqrt(2.0 / layer.fan_in)
        weights[f"{layer.name}.w"] = (rng.standard_normal(layer.w_shape) * std).astype(np.float32)
        weights[f"{layer.name}.b"] = np.zeros(layer.out_channels, np.float32)
    return weights


def load_weights(path: str | Path | None = None) -> Weights:
    """The weights saved by ``save_weights`` (default: the shipped ``weights.npz``), read without pickle."""
    target = WEIGHTS_PATH if path is None else Path(path)
    with np.load(target, allow_pickle=False) as archive:
        weights = {name: np.asarray(archive[name]) for name in archive.files}
    for layer in LAYERS:
        for key, shape in ((f"{layer.name}.w", layer.w_shape), (f"{layer.name}.b", (layer.out_channels,))):
            if key not in weights or weights[key].shape != shape or weights[key].dtype != np.float32:
                raise SpecError("shape_mismatch", f"{target} lacks a float32 {key} of shape {shape}")
    return weights


def save_weights(weights: Weights, path: str | Path | None = None) -> Path:
    """Write ``weights`` (float32) as an uncompressed ``.npz``; return the path."""
    target = WEIGHTS_PATH if path is None else Path(path)
    arrays: dict[str, Any] = {name: np.asarray(value, np.float32) for name, value in sorted(weights.items())}
    with target.open("wb") as handle:
        np.savez(handle, **arrays)
    return target


# --------------------------------------------------------------------------- convolution as im2col


def _cols(x: FloatArray, kh: int, kw: int, stride: int, pad: int) -> tuple[FloatArray, int, int]:
    """im2col: ``(N, C*kh*kw, OH*OW)`` with rows in (c, i, j) order, matching ``w.reshape(O, -1)``."""
    n, c, h, w = x.shape
    oh = (h + 2 * pad - kh) // stride + 1
    ow = (w + 2 * pad - kw) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    taps = [
        xp[:, :, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride]
        for i in range(kh)
        for j in range(kw)
    ]
    cols = np.stack(taps, axis=2).reshape(n, c * kh * kw, oh * ow)
    return cols, oh, ow


def conv_forward(x: FloatArray, w: FloatArray, b: FloatArray, stride: int, pad: int) -> tuple[FloatArray, FloatArray]:
    """``conv2d(x, w) + b`` (cross-correlation, NCHW/OIHW) in the inputs' float dtype; returns (out, cols)."""
    o, _c, kh, kw = w.shape
    cols, oh, ow = _cols(x, kh, kw, stride, pad)
    out = np.matmul(w.reshape(o, -1), cols) + b.reshape(1, o, 1)
    return out.reshape(x.shape[0], o, oh, ow), cols


def conv_backward(
    dout: FloatArray, cols: FloatArray, x_shape: tuple[int, ...], w: FloatArray, stride: int, pad: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Gradients ``(dx, dw, db)`` of ``conv_forward`` given the upstream gradient ``dout``."""
    n, c, h, wd = x_shape
    o, _c, kh, kw = w.shape
    d2 = dout.reshape(n, o, -1)
    dw = np.einsum("nop,nkp->ok", d2, cols).reshape(w.shape)
    db = d2.sum(axis=(0, 2))
    dcols = np.matmul(w.reshape(o, -1).T, d2).reshape(n, c, kh * kw, dout.shape[2], dout.shape[3])
    dxp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), dout.dtype)
    oh, ow = dout.shape[2], dout.shape[3]
    for t in range(kh * kw):
        i, j = divmod(t, kw)
        dxp[:, :, i : i + stride * (oh - 1) + 1 : stride, j : j + stride * (ow - 1) + 1 : stride] += dcols[:, :, t]
    dx = dxp[:, :, pad : pad + h, pad : pad + wd] if pad else dxp
    return dx, dw.astype(w.dtype), db.astype(w.dtype)


def forward(weights: Weights, x: FloatArray, *, dtype: type[np.floating[Any]] = np.float32) -> FloatArray:
    """The logits ``(N, 10)``, computed in ``dtype`` (float16: stored in float16 after every layer,
    each product and sum computed in float32)."""
    store = np.dtype(dtype)
    compute = np.dtype(np.float32) if store == np.float16 else store
    h = np.asarray(x).astype(store).astype(compute)
    for layer in LAYERS:
        w = weights[f"{layer.name}.w"].astype(store).astype(compute)
        b = weights[f"{layer.name}.b"].astype(store).astype(compute)
        if layer.is_conv:
            h, _ = conv_forward(h, w, b, layer.stride, layer.pad)
        else:
            h = h.reshape(h.shape[0], -1) @ w.T + b
        if layer.relu:
            h = np.maximum(h, 0)
        h = h.astype(store).astype(compute)
    return h


def loss_and_grads(weights: Weights, x: FloatArray, y: npt.NDArray[np.int64]) -> tuple[float, Grads]:
    """Mean softmax cross-entropy of the float32 model on ``(x, y)`` and its gradients for every parameter."""
    caches: list[tuple[tuple[int, ...], FloatArray, FloatArray]] = []  # (input shape, cols or input, output)
    h: FloatArray = np.asarray(x, np.float32)
    for layer in LAYERS:
        w, b = weights[f"{layer.name}.w"], weights[f"{layer.name}.b"]
        if layer.is_conv:
            out, saved = conv_forward(h, w, b, layer.stride, layer.pad)
        else:
            saved = h.reshape(h.shape[0], -1)
            out = saved @ w.T + b
        caches.append((h.shape, saved, out))
        h = np.maximum(out, 0) if layer.relu else out
    shifted = h - h.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    p /= p.sum(axis=1, keepdims=True)
    n = x.shape[0]
    rows = np.arange(n)
    loss = float(-np.mean(np.log(p[rows, y] + 1e-12)))
    d: FloatArray = p
    d[rows, y] -= 1
    d /= n
    grads: Grads = {}
    for layer, (in_shape, saved, out) in zip(LAYERS[::-1], caches[::-1], strict=True):
        w = weights[f"{layer.name}.w"]
        if layer.relu:
            d = d * (out > 0)
        if layer.is_conv:
            dx, dw, db = conv_backward(d, saved, in_shape, w, layer.stride, layer.pad)
        else:
            dw = (d.T @ saved).astype(np.float32)
            db = d.sum(axis=0).astype(np.float32)
            dx = (d @ w).reshape(in_shape)
        grads[f"{layer.name}.w"] = dw
        grads[f"{layer.name}.b"] = db
        d = dx
    return loss, grads


def accuracy(logits: npt.ArrayLike, y: npt.NDArray[np.int64]) -> float:
    """The fraction of rows whose largest logit (the first, on a tie) is at the label."""
    return float(np.mean(np.argmax(np.asarray(logits), axis=1) == y))
