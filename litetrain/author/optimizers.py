"""Optimizers whose state — slots, step counter and learning rate — are variables.

Because the learning rate is a variable (not a constant folded into the graph, as TF's
converter does), a device can change it with a signature that assigns it.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .graph import Value
from .module import Variable


class ExponentialDecay:
    """``initial * decay_rate ** (step / decay_steps)`` (``staircase``: the exponent
    floored), evaluated on the device from the optimizer's step counter."""

    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_rate: float,
                 staircase: bool = False):
        if decay_steps <= 0:
            raise ValueError(f"decay_steps must be positive, got {decay_steps}")
        self.initial_learning_rate, self.decay_steps = float(initial_learning_rate), \
            int(decay_steps)
        self.decay_rate, self.staircase = float(decay_rate), staircase

    def __call__(self, g, step: Value) -> Value:
        t = g.op("cast", step - np.int64(1), out_dtypes=(np.dtype(np.float32),))
        exponent = t / float(self.decay_steps)
        if self.staircase:
            exponent = g.op("floor", exponent)
        return g.op("pow", g.const(self.decay_rate, np.float32), exponent) * \
            self.initial_learning_rate


class Optimizer:
    default_name = "optimizer"

    def __init__(self, learning_rate: float, name: str | None = None,
                 clipnorm: float | None = None, global_clipnorm: float | None = None,
                 clipvalue: float | None = None):
        self.name = name or self.default_name
        self.clipnorm, self.global_clipnorm, self.clipvalue = clipnorm, global_clipnorm, \
            clipvalue
        self.schedule = learning_rate if isinstance(learning_rate, ExponentialDecay) else None
        initial = self.schedule.initial_learning_rate if self.schedule else learning_rate
        self.learning_rate = Variable(np.float32(initial), f"{self.name}/learning_rate",
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
        pairs = self._clipped([(g, v) for g, v in grads_and_vars if g is not None])
        step = self.iterations.read() + np.int64(1)
        self.iterations.assign(step)
        lr = self.schedule(step.graph, step) if self.schedule else self.learning_rate.read()
        for grad, var in pairs:
            self.update(var, grad, lr, step)

    def update(self, var: Variable, grad: Value, lr: Value, step: Value) -> None:
        raise NotImplementedError

    def _clipped(self, pairs: list[tuple[Value, Variable]]) -> list[tuple[Value, Variable]]:
        """Keras' clipping: each gradient to ``clipvalue`` element-wise, to L2 norm
        ``clipnorm``, and all of them together to ``global_clipnorm``
        (``g * c / max(norm, c)``)."""
        if not pairs:
            return pairs
        g = pairs[0][0].graph
        if self.clipvalue is not None:
            c = float(self.clipvalue)
            pairs = [(g.op("minimum", g.op("maximum", d, g.const(-c, d.dtype)),
                           g.const(c, d.dtype)), v) for d, v in pairs]
        if self.clipnorm is not None:
            pairs = [(_scaled_to(g, d, _sum_squares(g, d), self.clipnorm), v) for d, v in pairs]
        if self.global_clipnorm is not None:
            total = None
            for d, _ in pairs:
                part = _sum_squares(g, d)
                total = part if total is None else total + part
            pairs = [(_scaled_to(g, d, total, self.global_clipnorm), v) for d, v in pairs]
        return pairs


def _sum_squares(g, d: Value) -> Value:
    return g.op("sum", d * d, g.const(np.arange(d.ndim, dtype=np.int32)), keep_dims=False)


def _scaled_to(g, d: Value, squares: Value, limit: float) -> Value:
    norm = g.op("sqrt", squares)
    c = g.const(limit, d.dtype)
    return d * c / g.op("maximum", norm, c)


class SGD(Optimizer):
    default_name = "SGD"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0,
                 nesterov: bool = False, name: str | None = None, **clipping):
        super().__init__(learning_rate, name, **clipping)
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
                 name: str | None = None, **clipping):
        super().__init__(learning_rate, name, **clipping)
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


class Adagrad(Optimizer):
    """Adagrad (Keras: accumulators start at ``initial_accumulator_value``)."""

    default_name = "Adagrad"

    def __init__(self, learning_rate: float = 0.001, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial, self.epsilon = initial_accumulator_value, epsilon

    def slot(self, var: Variable, kind: str) -> Variable:
        fresh = (var.name, kind) not in self._slots
        slot = super().slot(var, kind)
        if fresh:
            slot.initial_value = np.full(var.shape, self.initial, var.dtype)
        return slot

    def update(self, var, grad, lr, step):
        g = grad.graph
        acc_var = self.slot(var, "accumulator")
        acc = acc_var.read() + grad * grad
        acc_var.assign(acc)
        var.assign(var.read() - grad * lr / g.op("sqrt", acc + self.epsilon))  # as Keras


class Lion(Optimizer):
    """Lion: the sign of an interpolated momentum (Keras' formulation)."""

    default_name = "Lion"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.99, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2 = beta_1, beta_2

    def update(self, var, grad, lr, step):
        g = grad.graph
        m_var = self.slot(var, "momentum")
        m = m_var.read()
        direction = g.op("sign", m * self.beta_1 + grad * (1 - self.beta_1))
        var.assign(var.read() - direction * lr)
        m_var.assign(m * self.beta_2 + grad * (1 - self.beta_2))


class Nadam(Optimizer):
    """Nadam, Keras' formulation: Adam with Nesterov momentum and the momentum schedule
    ``u_t = beta_1 * (1 - 0.5 * 0.96 ** t)``, its running product a variable."""

    default_name = "Nadam"

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.u_product = Variable(np.float32(1.0), f"{self.name}/u_product", trainable=False)

    @property
    def variables(self) -> list[Variable]:
        return [*super().variables, self.u_product]

    def apply_gradients(self, grads_and_vars) -> None:
        self._u_product_t = None  # the step's product, made once for every variable
        super().apply_gradients(grads_and_vars)

    def _schedule(self, g, step: Value, dtype) -> tuple[Value, Value, Value, Value]:
        t = g.op("cast", step, out_dtypes=(dtype,))
        decay = g.const(0.96, dtype)
        u_t = (1.0 - g.op("pow", decay, t) * 0.5) * self.beta_1
        u_next = (1.0 - g.op("pow", decay, t + 1.0) * 0.5) * self.beta_1
        if self._u_product_t is None:
            self._u_product_t = self.u_product.read() * u_t
            self.u_product.assign(self._u_product_t)
        return t, u_t, u_next, self._u_product_t

    def update(self, var, grad, lr, step):
        g = grad.graph
        t, u_t, u_next, u_product = self._schedule(g, step, var.dtype)
        m_var, v_var = self.slot(var, "m"), self.slot(var, "v")
        m = m_var.read() + (grad - m_var.read()) * (1 - self.beta_1)
        v = v_var.read() + (grad * grad - v_var.read()) * (1 - self.beta_2)
        m_var.assign(m)
        v_var.assign(v)
        m_hat = u_next * m / (1.0 - u_product * u_next) + (1.0 - u_t) * grad / (1.0 - u_product)
        v_hat = v / (1.0 - g.op("pow", g.const(self.beta_2, var.dtype), t))
        var.assign(var.read() - m_hat * lr / (g.op("sqrt", v_hat) + self.epsilon))


class RMSprop(Optimizer):
    default_name = "RMSprop"

    def __init__(self, learning_rate: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, name: str | None = None, **clipping):
        super().__init__(learning_rate, name, **clipping)
        self.rho, self.momentum, self.epsilon = rho, momentum, epsilon

    def update(self, var, grad, lr, step):
        g = grad.graph
        a_var = self.slot(var, "velocity")
        a = a_var.read() * self.rho + grad * grad * (1 - self.rho)
        a_var.assign(a)
        step_size = grad * lr / g.op("sqrt", a + self.epsilon)  # Keras: sqrt(v + eps)
        if self.momentum:
            m_var = self.slot(var, "momentum")
            m = m_var.read() * self.momentum + step_size
            m_var.assign(m)
            step_size = m
        var.assign(var.read() - step_size)
