"""Weight penalties added to the training loss (Keras' names and formulas):
``L1(l1)``: ``l1 * sum(|w|)``; ``L2(l2)``: ``l2 * sum(w²)``; ``L1L2`` both.
Give one as ``kernel_regularizer=`` to Dense or a convolution; ``lt.trainable`` adds the
model's penalties to the loss it differentiates."""

from __future__ import annotations

import numpy as np

from .graph import Value


class Regularizer:
    def __call__(self, w: Value) -> Value:
        raise NotImplementedError


def _sum(g, v: Value) -> Value:
    return g.op("sum", v, g.const(np.arange(v.ndim, dtype=np.int32)), keep_dims=False)


class L1L2(Regularizer):
    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w: Value) -> Value:
        g = w.graph
        total = None
        if self.l1:
            total = _sum(g, g.op("abs", w)) * self.l1
        if self.l2:
            part = _sum(g, g.op("square", w)) * self.l2
            total = part if total is None else total + part
        return total if total is not None else g.const(0.0, w.dtype)


class L1(L1L2):
    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)


class L2(L1L2):
    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)
