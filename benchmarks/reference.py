"""The tutorial model (784 → 128 relu → 10, softmax cross-entropy, SGD) in bare NumPy:
the peer the interpreter is measured against, and the matmul shapes of its steps."""

from __future__ import annotations

import numpy as np


def random_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Weights of the tutorial's shapes (timing does not depend on their values)."""
    rng = np.random.default_rng(seed)
    return {"k1": rng.normal(0, 0.05, (784, 128)).astype(np.float32),
            "b1": np.zeros(128, np.float32),
            "k2": rng.normal(0, 0.1, (128, 10)).astype(np.float32),
            "b2": np.zeros(10, np.float32)}


def infer(w: dict, x: np.ndarray) -> np.ndarray:
    h = x.reshape(len(x), -1) @ w["k1"]
    h += w["b1"]
    np.maximum(h, 0, out=h)
    logits = h @ w["k2"]
    logits += w["b2"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sgd_step(w: dict, x: np.ndarray, y: np.ndarray, lr: np.float32) -> np.float32:
    """One SGD step written by hand (float32, weights updated in place); returns the mean
    cross-entropy loss, as the model's ``train`` signature does."""
    h0 = x.reshape(len(x), -1)
    z1 = h0 @ w["k1"]
    z1 += w["b1"]
    h1 = np.maximum(z1, 0)
    logits = h1 @ w["k2"]
    logits += w["b2"]
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    s = e.sum(1, keepdims=True)
    loss = -np.mean(np.sum(y * (z - np.log(s)), axis=1))
    d_logits = (e / s - y) / np.float32(len(x))
    d_h1 = d_logits @ w["k2"].T
    d_h1 *= z1 > 0
    w["k2"] -= lr * (h1.T @ d_logits)
    w["b2"] -= lr * d_logits.sum(0)
    w["k1"] -= lr * (h0.T @ d_h1)
    w["b1"] -= lr * d_h1.sum(0)
    return loss


def infer_matmuls(b: int) -> list[tuple[int, int, int]]:
    return [(b, 784, 128), (b, 128, 10)]


def train_matmuls(b: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of a train step's matmuls: forward, hidden-layer gradient, weight
    gradients (the gradient for the input image is not needed, and not computed)."""
    return [*infer_matmuls(b), (b, 10, 128), (784, b, 128), (128, b, 10)]


def train_flops(b: int) -> int:
    return sum(2 * m * k * n for m, k, n in train_matmuls(b))
