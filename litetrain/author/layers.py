"""Layers with Keras names and weight layouts, and ``Sequential``.

Weights use Keras layouts (Dense kernel ``[in, out]``), so variable names and shapes line
up with TensorFlow checkpoints. A layer builds its variables from the first input shape
it sees, or at construction when ``input_shape`` is given. ``layer.trainable = False``
(before or after building) freezes its weights: the tape does no backward work for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import initializers
from .functional import activation as get_activation
from .functional import dropout, reshape
from .graph import Value
from .module import Variable


class Layer:
    """Base layer: ``__call__`` builds variables on first use, then calls ``call``."""

    default_name = "layer"

    def __init__(self, name: str | None = None, trainable: bool = True,
                 input_shape: Sequence[int] | None = None):
        self.name = name
        self.trainable = trainable
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.built = False
        self._variables: list[Variable] = []
        self._penalties: list[tuple[Variable, object]] = []

    def add_weight(self, suffix: str, shape, initializer, trainable: bool = True,
                   regularizer=None) -> Variable:
        name = f"{self.name}/{suffix}"
        v = Variable(initializers.get(initializer)(tuple(shape), name), name,
                     trainable=trainable)
        self._variables.append(v)
        if regularizer is not None:
            self._penalties.append((v, regularizer))
        return v

    def regularization_losses(self) -> list[Value]:
        """The penalties of this layer's regularized weights (inside a signature)."""
        return [reg(v.read()) for v, reg in self._penalties]

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.built = True

    def output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    @property
    def weights(self) -> list[Variable]:
        return list(self._variables)

    @property
    def trainable_weights(self) -> list[Variable]:
        return [v for v in self._variables if v.trainable] if self.trainable else []

    @property
    def non_trainable_weights(self) -> list[Variable]:
        trainable = set(map(id, self.trainable_weights))
        return [v for v in self.weights if id(v) not in trainable]

    @property
    def trainable_variables(self) -> list[Variable]:
        return self.trainable_weights

    def __call__(self, x: Value, training: bool = False) -> Value:
        if not self.built:
            self.build((None, *x.shape[1:]))
            self.built = True
        return self.call(x, training=training)

    def call(self, x: Value, training: bool = False) -> Value:
        raise NotImplementedError


class Dense(Layer):
    default_name = "dense"

    def __init__(self, units: int, activation=None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, **kwargs):
        super().__init__(**kwargs)
        self.units, self.use_bias = int(units), use_bias
        self.activation = get_activation(activation)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        self.kernel_regularizer = kernel_regularizer

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units),
                                      self.kernel_initializer,
                                      regularizer=self.kernel_regularizer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer)
        self.built = True

    def output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def call(self, x, training=False):
        if x.ndim != 2:
            raise ValueError(f"Dense expects [batch, features] inputs, got {list(x.shape)}; "
                             "put a Flatten before it")
        y = x @ self.kernel.read()
        if self.use_bias:
            y = y + self.bias.read()
        return self.activation(y)


class Flatten(Layer):
    default_name = "flatten"

    def output_shape(self, input_shape):
        return (input_shape[0], int(np.prod(input_shape[1:])))

    def call(self, x, training=False):
        return reshape(x, (-1, int(np.prod(x.shape[1:]))))


class Reshape(Layer):
    default_name = "reshape"

    def __init__(self, target_shape: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)

    def output_shape(self, input_shape):
        return (input_shape[0], *self.target_shape)

    def call(self, x, training=False):
        return reshape(x, (-1, *self.target_shape))


class Rescaling(Layer):
    """``x * scale + offset`` (e.g. pixel values to [0, 1])."""

    default_name = "rescaling"

    def __init__(self, scale: float, offset: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = float(scale), float(offset)

    def call(self, x, training=False):
        y = x * self.scale
        return y + self.offset if self.offset else y


class _Merge(Layer):
    """Layers that combine several same-batch tensors (called with a list)."""

    def __call__(self, xs, training: bool = False):
        self.built = True
        return self.call(list(xs), training=training)

    def merged_shape(self, shapes: list[tuple]) -> tuple:
        return tuple(shapes[0])


class Add(_Merge):
    default_name = "add"

    def call(self, xs, training=False):
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return total


class Multiply(_Merge):
    default_name = "multiply"

    def call(self, xs, training=False):
        product = xs[0]
        for x in xs[1:]:
            product = product * x
        return product


class Concatenate(_Merge):
    default_name = "concatenate"

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def merged_shape(self, shapes):
        axis = self.axis % len(shapes[0])
        out = list(shapes[0])
        out[axis] = None if any(s[axis] is None for s in shapes) else sum(s[axis]
                                                                          for s in shapes)
        return tuple(out)

    def call(self, xs, training=False):
        g = xs[0].graph
        return g.op("concatenation", *xs, axis=self.axis % xs[0].ndim)


class Activation(Layer):
    default_name = "activation"

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn = get_activation(fn)

    def call(self, x, training=False):
        return self.fn(x)


class Dropout(Layer):
    """Randomly zeroes inputs at ``rate`` in training (scaling the rest by 1/(1-rate));
    the identity at inference."""

    default_name = "dropout"

    def __init__(self, rate: float, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate}")
        self.rate, self.seed = float(rate), seed

    def call(self, x, training=False):
        if not training:
            return x
        return dropout(x, self.rate, self.seed, name=self.name or self.default_name)


class BatchNormalization(Layer):
    """Batch normalisation, Keras' way. In training (``training=True``, as ``train``
    signatures call their model) it normalises with the batch's mean and (biased)
    variance over every axis but the last and moves the moving statistics toward them
    (``moving = moving * momentum + batch * (1 - momentum)``); at inference, and when the
    layer is frozen (``trainable=False``, fine-tuning a pre-trained base), it uses the
    moving statistics. gamma and beta train."""

    default_name = "batch_normalization"

    def __init__(self, epsilon: float = 1e-3, momentum: float = 0.99, **kwargs):
        super().__init__(**kwargs)
        self.epsilon, self.momentum = float(epsilon), float(momentum)

    def build(self, input_shape):
        c = (input_shape[-1],)
        self.gamma = self.add_weight("gamma", c, "ones")
        self.beta = self.add_weight("beta", c, "zeros")
        self.moving_mean = self.add_weight("moving_mean", c, "zeros", trainable=False)
        self.moving_variance = self.add_weight("moving_variance", c, "ones", trainable=False)
        self.built = True

    def call(self, x, training=False):
        g = x.graph
        if not (training and self.trainable):
            scale = g.op("rsqrt", self.moving_variance.read() + self.epsilon) * \
                self.gamma.read()
            return (x - self.moving_mean.read()) * scale + self.beta.read()
        first = len(g.nodes)
        axes = g.const(np.arange(x.ndim - 1, dtype=np.int32))
        mean = g.op("mean", x, axes, keep_dims=False)
        centered = x - mean
        var = g.op("mean", g.op("square", centered), axes, keep_dims=False)
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, var)):
            moving.assign(moving.read() * self.momentum + batch * (1.0 - self.momentum))
        inv = g.op("rsqrt", var + self.epsilon)
        gamma, beta = self.gamma.read(), self.beta.read()
        scale = inv * gamma
        y = centered * scale + beta

        def rule(dy):
            """``dx = scale · (dy − mean(dy) − x̂ · mean(dy · x̂))`` with ``x̂ = centered ·
            inv``, in four passes over the batch after the two sums, instead of the
            dozen the node-by-node walk makes."""
            count = g.op("cast", g.op("reduce_prod", g.op("gather", g.op(
                "shape", x, out_type=2), axes), g.const(np.array([0], np.int32)),
                keep_dims=False), out_dtypes=(x.dtype,))
            d_beta = g.op("sum", dy, axes, keep_dims=False)
            d_centered = g.op("sum", dy * centered, axes, keep_dims=False)
            k1 = -(scale * inv * inv * d_centered) / count
            k0 = -(scale * d_beta) / count
            dx = dy * scale + (centered * k1 + k0)
            return [dx, d_centered * inv, d_beta]

        g.custom_gradient(y, [x, gamma, beta], first, rule)
        return y


class Sequential(Layer):
    """Layers applied in order. Layer names are made unique within the model
    (``dense``, ``dense_1``, ...), so variable names are deterministic."""

    default_name = "sequential"

    def __init__(self, layers: Sequence[Layer], name: str | None = None, input_dtype=None):
        super().__init__(name=name)
        self.layers = list(layers)
        self.input_dtype = np.dtype(input_dtype or np.float32)  # what signatures feed it
        taken: dict[str, int] = {}
        for layer in self.layers:
            if layer.name is None:
                base = layer.default_name
                n = taken.get(base, 0)
                layer.name = base if n == 0 else f"{base}_{n}"
                taken[base] = n + 1
        first = self.layers[0].input_shape if self.layers else None
        if first is not None:
            self.build((None, *first))

    def build(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.layers:
            if not layer.built:
                layer.build(shape)
                layer.built = True
            shape = layer.output_shape(shape)
        self.built = True

    @property
    def weights(self) -> list[Variable]:
        return [v for layer in self.layers for v in layer.weights]

    def regularization_losses(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.regularization_losses()]

    def output_shape(self, input_shape):
        shape = tuple(input_shape)
        for layer in self.layers:
            shape = layer.output_shape(shape)
        return shape

    @property
    def trainable_weights(self) -> list[Variable]:
        if not self.trainable:
            return []
        return [v for layer in self.layers for v in layer.trainable_weights]

    def call(self, x, training=False):
        for layer in self.layers:
            x = layer(x, training=training)
        return x
