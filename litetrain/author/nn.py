"""Layers (Keras names and weight layouts) and functional activations on traced tensors.

Weights use Keras layouts (Dense kernel ``[in, out]``), so variable names and shapes line
up with TensorFlow checkpoints. A layer builds its variables from the first input shape
it sees, or at construction when ``input_shape`` is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..ops.common import SAME, VALID, conv_out_size
from . import initializers
from .context import current_graph
from .graph import Value
from .module import Variable


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
    return g.op("reshape", x, g.const(np.array(shape, np.int32)))


def square(x: Value) -> Value:
    return _g(x).op("square", x)


def log(x: Value) -> Value:
    return _g(x).op("log", x)


def exp(x: Value) -> Value:
    return _g(x).op("exp", x)


def clip(x: Value, lo: float, hi: float) -> Value:
    g = _g(x)
    return g.op("minimum", g.op("maximum", x, g.const(lo, x.dtype)), g.const(hi, x.dtype))


ACTIVATIONS: dict[str, Callable[[Value], Value]] = {
    "relu": relu, "relu6": relu6, "leaky_relu": leaky_relu, "elu": elu, "sigmoid": sigmoid,
    "tanh": tanh, "softmax": softmax, "linear": lambda x: x,
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

    def add_weight(self, suffix: str, shape, initializer, trainable: bool = True) -> Variable:
        name = f"{self.name}/{suffix}"
        v = Variable(initializers.get(initializer)(tuple(shape), name), name,
                     trainable=trainable and self.trainable)
        self._variables.append(v)
        return v

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.built = True

    def output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    @property
    def weights(self) -> list[Variable]:
        return list(self._variables)

    @property
    def trainable_weights(self) -> list[Variable]:
        return [v for v in self._variables if v.trainable]

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
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units, self.use_bias = int(units), use_bias
        self.activation = globals()["activation"](activation)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def build(self, input_shape):
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units),
                                      self.kernel_initializer)
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


class Activation(Layer):
    default_name = "activation"

    def __init__(self, fn, **kwargs):
        super().__init__(**kwargs)
        self.fn = activation(fn)

    def call(self, x, training=False):
        return self.fn(x)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def _padding_code(padding: str) -> int:
    if padding.lower() not in ("same", "valid"):
        raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")
    return SAME if padding.lower() == "same" else VALID


class Conv2D(Layer):
    """2-D convolution, NHWC. The kernel is stored in Keras' ``[kh, kw, in, out]`` layout
    and transposed to TFLite's ``[out, kh, kw, in]`` in the graph, as TF's converter does."""

    default_name = "conv2d"

    def __init__(self, filters: int, kernel_size, strides=1, padding: str = "valid",
                 activation=None, use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = int(filters), _pair(kernel_size), \
            _pair(strides)
        self.padding = _padding_code(padding)
        self.activation = globals()["activation"](activation)
        self.use_bias = use_bias
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def build(self, input_shape):
        kh, kw = self.kernel_size
        self.kernel = self.add_weight("kernel", (kh, kw, input_shape[-1], self.filters),
                                      self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer)
        self.built = True

    def output_shape(self, input_shape):
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        oh = conv_out_size(input_shape[1], kh, sh, 1, self.padding)
        ow = conv_out_size(input_shape[2], kw, sw, 1, self.padding)
        return (input_shape[0], oh, ow, self.filters)

    def call(self, x, training=False):
        g = x.graph
        w = g.op("transpose", self.kernel.read(), g.const(np.array([3, 0, 1, 2], np.int32)))
        b = self.bias.read() if self.use_bias else None
        y = g.op("conv_2d", x, w, b, padding=self.padding, stride_h=self.strides[0],
                 stride_w=self.strides[1])
        return self.activation(y)


class _Pool2D(Layer):
    op = ""

    def __init__(self, pool_size=2, strides=None, padding: str = "valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = _pair(pool_size)
        self.strides = _pair(strides) if strides is not None else self.pool_size
        self.padding = _padding_code(padding)

    def output_shape(self, input_shape):
        (kh, kw), (sh, sw) = self.pool_size, self.strides
        return (input_shape[0], conv_out_size(input_shape[1], kh, sh, 1, self.padding),
                conv_out_size(input_shape[2], kw, sw, 1, self.padding), input_shape[3])

    def call(self, x, training=False):
        return x.graph.op(self.op, x, padding=self.padding, stride_h=self.strides[0],
                          stride_w=self.strides[1], filter_height=self.pool_size[0],
                          filter_width=self.pool_size[1])


class MaxPool2D(_Pool2D):
    default_name = "max_pooling2d"
    op = "max_pool_2d"


class AveragePooling2D(_Pool2D):
    default_name = "average_pooling2d"
    op = "average_pool_2d"


class GlobalAveragePooling2D(Layer):
    default_name = "global_average_pooling2d"

    def output_shape(self, input_shape):
        return (input_shape[0], input_shape[3])

    def call(self, x, training=False):
        return reduce_mean(x, axis=(1, 2))


class BatchNormalization(Layer):
    """Batch normalisation with frozen statistics: the moving mean and variance are used
    in training too (fine-tuning a pre-trained base); gamma and beta train."""

    default_name = "batch_normalization"

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        c = (input_shape[-1],)
        self.gamma = self.add_weight("gamma", c, "ones")
        self.beta = self.add_weight("beta", c, "zeros")
        self.moving_mean = self.add_weight("moving_mean", c, "zeros", trainable=False)
        self.moving_variance = self.add_weight("moving_variance", c, "ones", trainable=False)
        self.built = True

    def call(self, x, training=False):
        g = x.graph
        scale = g.op("rsqrt", self.moving_variance.read() + self.epsilon) * self.gamma.read()
        return (x - self.moving_mean.read()) * scale + self.beta.read()


class Sequential(Layer):
    """Layers applied in order. Layer names are made unique within the model
    (``dense``, ``dense_1``, ...), so variable names are deterministic."""

    default_name = "sequential"

    def __init__(self, layers: Sequence[Layer], name: str | None = None):
        super().__init__(name=name)
        self.layers = list(layers)
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

    @property
    def trainable_weights(self) -> list[Variable]:
        return [v for layer in self.layers for v in layer.trainable_weights]

    def call(self, x, training=False):
        for layer in self.layers:
            x = layer(x, training=training)
        return x
