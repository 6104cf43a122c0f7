"""Training the demo's CNN in numpy (Adam, fixed seed), and the STE fine-tune used for QAT.

``python -m refquant.demo.train`` retrains from ``init_weights(TRAIN_SEED)`` with the settings below and
writes ``refquant/demo/weights.npz`` (the weights the demo ships and loads); ``refquant demo --retrain``
runs the same training in memory.  The run is deterministic on one machine (numpy's BLAS may order float32
sums differently elsewhere, so another machine can give slightly different weights).

QAT (``train(..., weight_quantizer=...)``): the forward and backward passes use the quantized weights
``weight_quantizer(name, latent)``; the gradient reaches the latent float weights through
``refquant.spec.binary.ste_grad`` (the straight-through estimator, passed where ``|latent| <= 1``,
``SteWindow.CLOSED``); biases stay float and are trained directly.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from refquant.demo.model import Weights, accuracy, forward, init_weights, load_split, loss_and_grads, save_weights
from refquant.spec.binary import ste_grad

__all__ = ["BATCH_SIZE", "TRAIN_EPOCHS", "TRAIN_LR", "TRAIN_SEED", "WeightQuantizer", "main", "train"]

TRAIN_SEED: Final = 0
TRAIN_EPOCHS: Final = 40
TRAIN_LR: Final = 0.005
BATCH_SIZE: Final = 64

WeightQuantizer = Callable[[str, npt.NDArray[np.float32]], npt.NDArray[np.float32]]
"""``(layer name, latent float32 weight) -> the float32 weight the forward pass uses`` (fake-quantized)."""


def train(
    weights: Weights,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    /,
    *,
    epochs: int,
    seed: int,
    lr: float,
    batch_size: int = BATCH_SIZE,
    weight_quantizer: WeightQuantizer | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[Weights, list[float]]:
    """Adam (beta1 0.9, beta2 0.999, eps 1e-8) on mini-batches in the order of ``default_rng(seed)``.

    Returns the trained (latent) weights, a new dict, and the mean training loss of every epoch.
    """
    rng = np.random.default_rng(seed)
    params = {name: value.astype(np.float32).copy() for name, value in weights.items()}
    m: dict[str, npt.NDArray[Any]] = {name: np.zeros_like(value) for name, value in params.items()}
    v: dict[str, npt.NDArray[Any]] = {name: np.zeros_like(value) for name, value in params.items()}
    b1, b2, eps = 0.9, 0.999, 1e-8
    step = 0
    losses: list[float] = []
    for epoch in range(epochs):
        order = rng.permutation(x.shape[0])
        total = 0.0
        for start in range(0, x.shape[0], batch_size):
            idx = order[start : start + batch_size]
            used = _used(params, weight_quantizer)
            loss, grads = loss_and_grads(used, x[idx], y[idx])
            total += loss * idx.size
            step += 1
            for name, g in grads.items():
                if weight_quantizer is not None and name.endswith(".w"):
                    g = ste_grad(params[name], g)
                m[name] = b1 * m[name] + (1 - b1) * g
                v[name] = b2 * v[name] + (1 - b2) * g * g
                mhat = m[name] / (1 - b1**step)
                vhat = v[name] / (1 - b2**step)
                params[name] = (params[name] - lr * mhat / (np.sqrt(vhat) + eps)).astype(np.float32)
        losses.append(total / x.shape[0])
        if progress is not None:
            progress(f"epoch {epoch + 1}/{epochs}: training loss {losses[-1]:.4f}")
    return params, losses


def _used(params: Weights, weight_quantizer: WeightQuantizer | None) -> Weights:
    if weight_quantizer is None:
        return params
    return {
        name: weight_quantizer(name[: -len(".w")], value) if name.endswith(".w") else value
        for name, value in params.items()
    }


def train_default(progress: Callable[[str], None] | None = None) -> tuple[Weights, list[float]]:
    """The shipped weights' training: ``init_weights(TRAIN_SEED)``, the training split, the module's settings."""
    split = load_split()
    return train(
        init_weights(TRAIN_SEED),
        split.x_train,
        split.y_train,
        epochs=TRAIN_EPOCHS,
        seed=TRAIN_SEED,
        lr=TRAIN_LR,
        progress=progress,
    )


def main(argv: list[str] | None = None) -> int:
    """Retrain and write ``refquant/demo/weights.npz`` (or the path given as the only argument)."""
    args = sys.argv[1:] if argv is None else argv
    t0 = time.perf_counter()
    weights, _losses = train_default(progress=lambda line: print(line, flush=True))
    split = load_split()
    target = save_weights(weights, args[0] if args else None)
    acc: Any = accuracy(forward(weights, split.x_test), split.y_test)
    print(f"wrote {target}: FP32 test accuracy {acc:.4f} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
