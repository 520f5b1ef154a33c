"""Functional ops on traced tensors: activations, reductions, reshapes, dropout.

Each function records one TFLite builtin (or a short chain of them) into the graph being
traced; gradients come from each op's rule in the op table (``OpDef.vjp``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np

from .context import current_graph
from .graph import Value


def _g(x: Value):
    return x.graph if isinstance(x, Value) else current_graph()


def relu(x: Value) -> Value:
    return _g(x).op("relu", x)


def relu6(x: Value) -> Value:
    return _g(x).op("relu6", x)


def leaky_relu(x: Value, alpha: float = 0.2) -> Value:
    return _g(x).op("leaky_relu", x, alpha=alpha)


def elu(x: Value) -> Value:
    return _g(x).op("elu", x)


def gelu(x: Value, approximate: bool = False) -> Value:
    """Gaussian error linear unit; ``approximate`` selects the tanh form (Keras' flag)."""
    return _g(x).op("gelu", x, approximate=bool(approximate))


def sigmoid(x: Value) -> Value:
    return _g(x).op("logistic", x)


def tanh(x: Value) -> Value:
    return _g(x).op("tanh", x)


def softmax(x: Value, axis: int = -1) -> Value:
    if axis not in (-1, x.ndim - 1):
        raise ValueError("softmax is taken over the last axis, as in TFLite")
    return _g(x).op("softmax", x, beta=1.0)


def log_softmax(x: Value, axis: int = -1) -> Value:
    if axis not in (-1, x.ndim - 1):
        raise ValueError("log_softmax is taken over the last axis, as in TFLite")
    return _g(x).op("log_softmax", x)


def reduce_mean(x: Value, axis=None, keepdims: bool = False) -> Value:
    axes = list(range(x.ndim)) if axis is None else np.atleast_1d(axis).tolist()
    g = _g(x)
    return g.op("mean", x, g.const(np.array(axes, np.int32)), keep_dims=keepdims)


def reduce_sum(x: Value, axis=None, keepdims: bool = False) -> Value:
    axes = list(range(x.ndim)) if axis is None else np.atleast_1d(axis).tolist()
    g = _g(x)
    return g.op("sum", x, g.const(np.array(axes, np.int32)), keep_dims=keepdims)


def reshape(x: Value, shape: Sequence[int]) -> Value:
    g = _g(x)
    return g.op("reshape", x, g.const(tuple(shape), np.int32))


def square(x: Value) -> Value:
    return _g(x).op("square", x)


def log(x: Value) -> Value:
    return _g(x).op("log", x)


def exp(x: Value) -> Value:
    return _g(x).op("exp", x)


def clip(x: Value, lo: float, hi: float) -> Value:
    g = _g(x)
    return g.op("minimum", g.op("maximum", x, g.const(lo, x.dtype)), g.const(hi, x.dtype))


def dropout(x: Value, rate: float, seed: int | None = None, name: str = "dropout") -> Value:
    """Zero each element with probability ``rate`` and scale the rest by 1/(1-rate).

    The mask comes from a RANDOM_UNIFORM node, so every call of the signature draws a new
    one. ``seed`` makes the sequence reproducible (a fresh interpreter replays it); without
    it the node is seeded from the operating system, like TensorFlow's.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
    if rate == 0.0:
        return x
    g = _g(x)
    seeds = (0, 0) if seed is None else (int(seed), zlib.crc32(name.encode()) or 1)
    u = g.op("random_uniform", g.op("shape", x, out_type=2), seed=seeds[0], seed2=seeds[1])
    keep = g.op("cast", g.op("greater_equal", u, g.const(np.float32(rate))),
                out_dtypes=(x.dtype,))
    return x * (keep * (1.0 / (1.0 - rate)))


ACTIVATIONS: dict[str, Callable[[Value], Value]] = {
    "gelu": gelu, "relu": relu, "relu6": relu6, "leaky_relu": leaky_relu, "elu": elu,
    "sigmoid": sigmoid, "tanh": tanh, "softmax": softmax, "linear": lambda x: x,
}


def activation(spec) -> Callable[[Value], Value]:
    if spec is None:
        return ACTIVATIONS["linear"]
    if callable(spec):
        return spec
    try:
        return ACTIVATIONS[spec]
    except KeyError:
        raise ValueError(f"unknown activation '{spec}'; known: {sorted(ACTIVATIONS)}") from None


