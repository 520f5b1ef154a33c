"""Optimizers whose state — slots, step counter and learning rate — are variables.

Because the learning rate is a variable (not a constant folded into the graph, as TF's
converter does), a device can change it with a signature that assigns it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .graph import Value
from .module import Variable


class Optimizer:
    default_name = "optimizer"

    def __init__(self, learning_rate: float, name: str | None = None):
        self.name = name or self.default_name
        self.learning_rate = Variable(np.float32(learning_rate), f"{self.name}/learning_rate",
                                      trainable=False)
        self.iterations = Variable(np.int64(0), f"{self.name}/iteration", trainable=False)
        self._slots: dict[tuple[str, str], Variable] = {}

    def slot(self, var: Variable, kind: str) -> Variable:
        key = (var.name, kind)
        if key not in self._slots:
            self._slots[key] = Variable(np.zeros(var.shape, var.dtype),
                                        f"{self.name}/{kind}/{var.name}", trainable=False)
        return self._slots[key]

    @property
    def variables(self) -> list[Variable]:
        return [self.iterations, self.learning_rate, *self._slots.values()]

    def apply_gradients(self, grads_and_vars: Iterable[tuple[Value | None, Variable]]) -> None:
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        step = self.iterations.read() + np.int64(1)
        self.iterations.assign(step)
        lr = self.learning_rate.read()
        for grad, var in pairs:
            self.update(var, grad, lr, step)

    def update(self, var: Variable, grad: Value, lr: Value, step: Value) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    default_name = "SGD"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, name: str | None = None):
        super().__init__(learning_rate, name)
        self.momentum, self.nesterov = float(momentum), nesterov

    def update(self, var, grad, lr, step):
        if self.momentum == 0.0:
            var.assign(var.read() - grad * lr)
            return
        m_var = self.slot(var, "m")
        m = m_var.read() * self.momentum - grad * lr
        m_var.assign(m)
        delta = m * self.momentum - grad * lr if self.nesterov else m
        var.assign(var.read() + delta)


class Adam(Optimizer):
    """Adam (Keras formulation: bias correction folded into the step size)."""

    default_name = "Adam"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, weight_decay: float = 0.0,
                 name: str | None = None):
        super().__init__(learning_rate, name)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.weight_decay = weight_decay

    def update(self, var, grad, lr, step):
        g = grad.graph
        t = g.op("cast", step, out_dtypes=(var.dtype,))
        b1 = g.op("pow", g.const(self.beta_1, var.dtype), t)
        b2 = g.op("pow", g.const(self.beta_2, var.dtype), t)
        alpha = lr * g.op("sqrt", 1.0 - b2) / (1.0 - b1)
        m_var, v_var = self.slot(var, "m"), self.slot(var, "v")
        m = m_var.read() + (grad - m_var.read()) * (1 - self.beta_1)
        v = v_var.read() + (grad * grad - v_var.read()) * (1 - self.beta_2)
        m_var.assign(m)
        v_var.assign(v)
        w = var.read()
        if self.weight_decay:
            w = w - w * lr * self.weight_decay
        var.assign(w - m * alpha / (g.op("sqrt", v) + self.epsilon))


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.004, as in Keras)."""

    default_name = "AdamW"

    def __init__(self, learning_rate: float = 0.001, weight_decay: float = 0.004, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    default_name = "RMSprop"

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, name: str | None = None):
        super().__init__(learning_rate, name)
        self.rho, self.momentum, self.epsilon = rho, momentum, epsilon

    def update(self, var, grad, lr, step):
        g = grad.graph
        a_var = self.slot(var, "velocity")
        a = a_var.read() * self.rho + grad * grad * (1 - self.rho)
        a_var.assign(a)
        step_size = grad * lr / (g.op("sqrt", a) + self.epsilon)
        if self.momentum:
            m_var = self.slot(var, "momentum")
            m = m_var.read() * self.momentum + step_size
            m_var.assign(m)
            step_size = m
        var.assign(var.read() - step_size)
