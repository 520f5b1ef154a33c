"""Losses (Keras names and reductions: the mean over the batch of per-example losses)."""

from __future__ import annotations

import numpy as np

from .graph import Value
from .nn import clip, log, log_softmax, reduce_mean, reduce_sum, square

_EPSILON = 1e-7  # Keras' backend epsilon, used to clip probabilities


class Loss:
    def __call__(self, y_true: Value, y_pred: Value) -> Value:
        return reduce_mean(self.per_example(y_true, y_pred))

    def per_example(self, y_true: Value, y_pred: Value) -> Value:
        raise NotImplementedError


class CategoricalCrossentropy(Loss):
    """Cross-entropy with one-hot (or soft) labels; ``from_logits`` takes raw scores."""

    def __init__(self, from_logits: bool = False):
        self.from_logits = from_logits

    def per_example(self, y_true, y_pred):
        if self.from_logits:
            logp = log_softmax(y_pred)
        else:
            probs = y_pred / reduce_sum(y_pred, axis=-1, keepdims=True)
            logp = log(clip(probs, _EPSILON, 1 - _EPSILON))
        return -reduce_sum(y_true * logp, axis=-1)


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Cross-entropy with integer class labels (``[batch]``, int32)."""

    def per_example(self, y_true, y_pred):
        g = y_pred.graph
        depth = g.const(np.int32(y_pred.shape[-1]))
        on, off = g.const(1, y_pred.dtype), g.const(0, y_pred.dtype)
        labels = g.op("cast", y_true, out_dtypes=(np.dtype(np.int32),)) \
            if y_true.dtype != np.int32 else y_true
        return super().per_example(g.op("one_hot", labels, depth, on, off, axis=-1), y_pred)


class MeanSquaredError(Loss):
    def per_example(self, y_true, y_pred):
        return reduce_mean(square(y_pred - y_true), axis=-1)


class BinaryCrossentropy(Loss):
    """Binary cross-entropy on probabilities, or on logits with ``from_logits``."""

    def __init__(self, from_logits: bool = False):
        self.from_logits = from_logits

    def per_example(self, y_true, y_pred):
        if self.from_logits:
            g = y_pred.graph
            # max(z, 0) - z*y + log(1 + exp(-|z|)), the numerically stable form.
            relu_z = g.op("relu", y_pred)
            abs_z = g.op("abs", y_pred)
            soft = log(g.op("exp", -abs_z) + 1.0)
            return reduce_mean(relu_z - y_pred * y_true + soft, axis=-1)
        p = clip(y_pred, _EPSILON, 1 - _EPSILON)
        return reduce_mean(-(y_true * log(p) + (1.0 - y_true) * log(1.0 - p)), axis=-1)


class Huber(Loss):
    """Huber loss: ``0.5 * e²`` where ``|e| <= delta``, ``delta * (|e| - 0.5 * delta)``
    beyond (Keras' form, averaged over the last axis)."""

    def __init__(self, delta: float = 1.0):
        self.delta = float(delta)

    def per_example(self, y_true, y_pred):
        g = y_pred.graph
        error = y_pred - y_true
        size = g.op("abs", error)
        small = g.op("less_equal", size, g.const(self.delta, error.dtype))
        quadratic = square(error) * 0.5
        linear = (size - 0.5 * self.delta) * self.delta
        return reduce_mean(g.op("select_v2", small, quadratic, linear), axis=-1)


class KLDivergence(Loss):
    """``sum(y_true * log(y_true / y_pred))`` over the last axis, both clipped to
    [epsilon, 1] as Keras does."""

    def per_example(self, y_true, y_pred):
        t = clip(y_true, _EPSILON, 1.0)
        p = clip(y_pred, _EPSILON, 1.0)
        return reduce_sum(t * log(t / p), axis=-1)
