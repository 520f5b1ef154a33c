"""Layers for tokens and sequences, Keras-named and Keras-laid-out: ``Embedding``,
``LayerNormalization``, and the recurrent ``SimpleRNN``, ``GRU`` (``reset_after``, Keras'
default) and ``LSTM``, unrolled over a fixed number of time steps.

Everything is built from builtin ops with gradient rules (GATHER's is one SCATTER_ND; the
time steps come from UNPACK, the gates from SPLIT), so exported files train in stock LiteRT.
Recurrent layers start from a zero state, as Keras does, and return the last output
(``return_sequences=True``: every step's, as ``[batch, time, units]``). The input
projection (``x @ kernel + bias``) of all steps is one product before the loop; each
step adds its recurrent product and applies the gates.
"""

from __future__ import annotations

import numpy as np

from .functional import activation as get_activation
from .graph import Value
from .layers import Layer


class Embedding(Layer):
    """``[batch, ...]`` int32 token ids → ``[batch, ..., output_dim]`` vectors."""

    default_name = "embedding"

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer="uniform",
                 **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.initializer = embeddings_initializer

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.initializer)
        self.built = True

    def output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def call(self, x, training=False):
        g = x.graph
        ids = x if x.dtype == np.int32 else g.op("cast", x, out_dtypes=(np.dtype(np.int32),))
        return g.op("gather", self.embeddings.read(), ids, axis=0)


class LayerNormalization(Layer):
    """Normalises the last axis of each example: ``(x - mean) / sqrt(var + epsilon)``,
    then ``gamma`` and ``beta`` (Keras' defaults)."""

    default_name = "layer_normalization"

    def __init__(self, epsilon: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        self.gamma = self.add_weight("gamma", (input_shape[-1],), "ones")
        self.beta = self.add_weight("beta", (input_shape[-1],), "zeros")
        self.built = True

    def call(self, x, training=False):
        g = x.graph
        last = g.const(np.array([-1], np.int32))
        centered = x - g.op("mean", x, last, keep_dims=True)
        var = g.op("mean", g.op("square", centered), last, keep_dims=True)
        return centered * g.op("rsqrt", var + self.epsilon) * self.gamma.read() + \
            self.beta.read()


class _Recurrent(Layer):
    """Shared parts: weights in Keras' layout, the time loop, the output shape."""

    gates = 1

    def __init__(self, units: int, activation="tanh", recurrent_activation="sigmoid",
                 return_sequences: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.units, self.return_sequences = int(units), return_sequences
        self.activation = get_activation(activation)
        self.recurrent_activation = get_activation(recurrent_activation)

    def build(self, input_shape):
        n = self.gates * self.units
        self.kernel = self.add_weight("kernel", (input_shape[-1], n), "glorot_uniform")
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, n),
                                                "orthogonal")
        self.bias = self.add_weight("bias", self._bias_shape(n), "zeros")
        self.built = True

    def _bias_shape(self, n: int) -> tuple[int, ...]:
        return (n,)

    def output_shape(self, input_shape):
        if self.return_sequences:
            return (*input_shape[:2], self.units)
        return (input_shape[0], self.units)

    def call(self, x, training=False):
        if x.ndim != 3:
            raise ValueError(f"{type(self).__name__} expects [batch, time, features], got "
                             f"{list(x.shape)}")
        g = x.graph
        steps, features, n = x.shape[1], x.shape[2], self.gates * self.units
        # The input projection of every step at once: one GEMM forward, one for the
        # kernel's gradient (and one for the input's) instead of one per step.
        rows = g.op("reshape", x, g.const(np.array([-1, features], np.int32)))
        input_bias, recurrent_bias = self._biases(g)
        z = rows @ self.kernel.read() + input_bias
        z = g.op("reshape", z, g.const(np.array([-1, steps, n], np.int32)))
        projected = g.op("unpack", z, axis=1, num=steps)
        projected = projected if isinstance(projected, tuple) else (projected,)
        recurrent_kernel = self.recurrent_kernel.read()
        state, outputs = None, []
        for z_t in projected:
            h, state = self.step(g, z_t, state, recurrent_kernel, recurrent_bias)
            outputs.append(h)
        if not self.return_sequences:
            return outputs[-1]
        return g.op("pack", *outputs, axis=1, values_count=len(outputs))

    def _biases(self, g) -> tuple[Value, Value | None]:
        """(the input projection's bias, the recurrent product's or ``None``)."""
        return self.bias.read(), None

    def _split(self, g, z: Value) -> tuple[Value, ...]:
        return g.op("split", g.const(np.int32(-1)), z, num_splits=self.gates)


class SimpleRNN(_Recurrent):
    default_name = "simple_rnn"

    def step(self, g, z, state, recurrent_kernel, recurrent_bias=None):
        """``z``: this step's input projection (bias included)."""
        if state is not None:
            z = z + state @ recurrent_kernel
        h = self.activation(z)
        return h, h


class LSTM(_Recurrent):
    """Keras' LSTM: gates i, f, c, o in that order along the kernels' last axis."""

    default_name = "lstm"
    gates = 4

    def step(self, g, z, state, recurrent_kernel, recurrent_bias=None):
        if state is not None:
            z = z + state[0] @ recurrent_kernel
        i, f, c_hat, o = self._split(g, z)
        i, f, o = (self.recurrent_activation(v) for v in (i, f, o))
        c = i * self.activation(c_hat)
        if state is not None:
            c = c + f * state[1]
        h = o * self.activation(c)
        return h, (h, c)


class GRU(_Recurrent):
    """Keras' GRU with ``reset_after=True``: gates z, r, h; input and recurrent biases
    (``bias`` is ``[2, 3 * units]``)."""

    default_name = "gru"
    gates = 3

    def _bias_shape(self, n: int) -> tuple[int, ...]:
        return (2, n)

    def _biases(self, g) -> tuple[Value, Value]:
        return tuple(g.op("squeeze", part, squeeze_dims=np.array([0], np.int32))
                     for part in g.op("split", g.const(np.int32(0)), self.bias.read(),
                                      num_splits=2))

    def step(self, g, z, state, recurrent_kernel, b_rec):
        x_z, x_r, x_h = self._split(g, z)
        rec = b_rec if state is None else state @ recurrent_kernel + b_rec
        r_z, r_r, r_h = self._split(g, rec)
        z = self.recurrent_activation(x_z + r_z)
        r = self.recurrent_activation(x_r + r_r)
        h_hat = self.activation(x_h + r * r_h)
        h = (1.0 - z) * h_hat if state is None else z * state + (1.0 - z) * h_hat
        return h, h


class MultiHeadAttention(Layer):
    """Keras' MultiHeadAttention: ``layer(query)`` (self-attention), ``layer(query, value)``
    or ``layer(query, value, key=key)`` (``key`` defaults to ``value``). Per-head
    projections (``[features, heads, key_dim]`` query/key kernels, ``[features, heads,
    value_dim]`` value kernel, ``[heads, dim]`` biases), scaled dot-product softmax attention
    over the keys, and an output projection ``[heads, value_dim, output_dim]`` back to the
    query's features (or ``output_shape``). Attention runs over the time axis (Keras'
    default ``attention_axes``)."""

    default_name = "multi_head_attention"

    def __init__(self, num_heads: int, key_dim: int, value_dim: int | None = None,
                 output_shape: int | None = None, use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.key_dim = int(num_heads), int(key_dim)
        self.value_dim = int(value_dim) if value_dim is not None else self.key_dim
        self.output_dim = int(output_shape) if output_shape is not None else None
        self.use_bias = use_bias

    def build(self, input_shape, value_shape=None, key_shape=None):
        """``input_shape`` is the query's; the value's and key's default to it."""
        value_shape = value_shape or input_shape
        key_shape = key_shape or value_shape
        h = self.num_heads
        dims = {"query": (input_shape[-1], self.key_dim), "key": (key_shape[-1], self.key_dim),
                "value": (value_shape[-1], self.value_dim)}
        for part, (d, k) in dims.items():
            setattr(self, f"{part}_kernel", self.add_weight(f"{part}/kernel", (d, h, k),
                                                           "glorot_uniform"))
            setattr(self, f"{part}_bias", self.add_weight(f"{part}/bias", (h, k), "zeros")
                    if self.use_bias else None)
        self.features = self.output_dim or input_shape[-1]
        self.output_kernel = self.add_weight("attention_output/kernel",
                                             (h, self.value_dim, self.features),
                                             "glorot_uniform")
        self.output_bias = self.add_weight("attention_output/bias", (self.features,),
                                           "zeros") if self.use_bias else None
        self.built = True

    def output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_dim or input_shape[-1])

    def __call__(self, query: Value, value: Value | None = None, key: Value | None = None,
                 training: bool = False):
        value = value if value is not None else query
        key = key if key is not None else value
        if not self.built:
            self.build((None, *query.shape[1:]), (None, *value.shape[1:]),
                       (None, *key.shape[1:]))
        return self.call(query, value, key, training=training)

    def _heads(self, g, x: Value, kernel, bias, dim: int) -> Value:
        """``[batch, time, features]`` → ``[batch, heads, time, dim]``."""
        h, d = self.num_heads, kernel.shape[0]
        rows = g.op("reshape", x, g.const(np.array([-1, d], np.int32)))
        flat = rows @ g.op("reshape", kernel.read(), g.const(np.array([d, h * dim], np.int32)))
        if bias is not None:
            flat = flat + g.op("reshape", bias.read(), g.const(np.array([h * dim], np.int32)))
        split = g.op("reshape", flat, g.const(np.array([-1, x.shape[1], h, dim], np.int32)))
        return g.op("transpose", split, g.const(np.array([0, 2, 1, 3], np.int32)))

    def call(self, query, value, key=None, training=False):
        g = query.graph
        key = key if key is not None else value
        if query.ndim != 3 or value.ndim != 3 or key.ndim != 3:
            raise ValueError("MultiHeadAttention expects [batch, time, features] inputs")
        q = self._heads(g, query, self.query_kernel, self.query_bias, self.key_dim)
        k = self._heads(g, key, self.key_kernel, self.key_bias, self.key_dim)
        v = self._heads(g, value, self.value_kernel, self.value_bias, self.value_dim)
        scores = g.op("batch_matmul", q * float(1.0 / np.sqrt(self.key_dim)), k, adj_y=True)
        attended = g.op("batch_matmul", g.op("softmax", scores, beta=1.0), v)
        merged = g.op("transpose", attended, g.const(np.array([0, 2, 1, 3], np.int32)))
        merged = g.op("reshape", merged, g.const(np.array(
            [-1, self.num_heads * self.value_dim], np.int32)))
        w = g.op("reshape", self.output_kernel.read(), g.const(np.array(
            [self.num_heads * self.value_dim, self.features], np.int32)))
        out = merged @ w
        if self.output_bias is not None:
            out = out + self.output_bias.read()
        return g.op("reshape", out, g.const(np.array([-1, query.shape[1], self.features],
                                                     np.int32)))
