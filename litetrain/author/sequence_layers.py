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

from .functional import ACTIVATIONS
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
        # Time-major rows: each step's projection is then a contiguous block (UNPACK
        # gives views) and the gradient's PACK a plain concatenation of blocks.
        time_major = g.op("transpose", x, g.const(np.array([1, 0, 2], np.int32)))
        rows = g.op("reshape", time_major, g.const(np.array([-1, features], np.int32)))
        input_bias, recurrent_bias = self._biases(g)
        z = rows @ self.kernel.read() + input_bias
        z = g.op("reshape", z, g.const(np.array([steps, -1, n], np.int32)))
        recurrent_kernel = self.recurrent_kernel.read()
        recurrent_bias = self._per_example_bias(g, z, recurrent_bias)
        first = len(g.nodes)
        projected = g.op("unpack", z, axis=0, num=steps)
        projected = projected if isinstance(projected, tuple) else (projected,)
        state, outputs, self._saved = None, [], []
        for z_t in projected:
            h, state = self.step(g, z_t, state, recurrent_kernel, recurrent_bias)
            outputs.append(h)
        out = outputs[-1] if not self.return_sequences else \
            g.op("pack", *outputs, axis=1, values_count=len(outputs))
        rule = self._through_time(g, recurrent_kernel, self._saved)
        self._saved = []
        if rule is not None:
            extra = [] if recurrent_bias is None else [recurrent_bias]
            g.custom_gradient(out, [z, recurrent_kernel, *extra], first, rule)
        return out

    def _per_example_bias(self, g, z: Value, bias: Value | None) -> Value | None:
        """The recurrent bias as the steps use it (GRU: broadcast to the batch)."""
        return bias

    def _through_time(self, g, recurrent_kernel: Value, saved: list):
        """A gradient rule for the whole loop (see ``LSTM``), or ``None``: autodiff walks
        the steps node by node. The rule returns the cotangents of the time-major input
        projection, the recurrent kernel and (if any) the per-example recurrent bias."""
        return None

    def _default_activations(self) -> bool:
        return (self.activation is ACTIVATIONS["tanh"]
                and self.recurrent_activation is ACTIVATIONS["sigmoid"])

    def _biases(self, g) -> tuple[Value, Value | None]:
        """(the input projection's bias, the recurrent product's or ``None``)."""
        return self.bias.read(), None

    def _split(self, g, z: Value) -> tuple[Value, ...]:
        return g.op("split", g.const(np.int32(-1)), z, num_splits=self.gates)


def _sigmoid_grad(dy: Value, y: Value) -> Value:
    return dy * y * (1.0 - y)


def _tanh_grad(dy: Value, y: Value) -> Value:
    return dy * (1.0 - y * y)


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
        candidate = self.activation(c_hat)
        c = i * candidate
        if state is not None:
            c = c + f * state[1]
        squashed = self.activation(c)
        h = o * squashed
        self._saved.append((i, f, candidate, o, squashed, state))
        return h, (h, c)

    def _through_time(self, g, recurrent_kernel: Value, saved: list):
        """Backpropagation through time as one rule, for Keras' default activations
        (tanh, sigmoid): the same per-step products as the node-by-node walk, but the
        recurrent kernel's gradient is ONE product of all steps' states and gate
        cotangents (instead of one small GEMM and one add per step), and the gate
        cotangents go straight into one PACK for the input projection's gradient."""
        if len(saved) < 2 or not self._default_activations():
            return None
        steps = len(saved)
        sigmoid_grad, tanh_grad = _sigmoid_grad, _tanh_grad

        def rule(d_out):
            if self.return_sequences:
                d_hs = g.op("unpack", d_out, axis=1, num=steps)
            else:
                d_hs = [None] * (steps - 1) + [d_out]
            d_zs: list = [None] * steps
            d_h = d_c = None
            for t in range(steps - 1, -1, -1):
                i, f, candidate, o, squashed, state = saved[t]
                if d_hs[t] is not None:
                    d_h = d_hs[t] if d_h is None else d_h + d_hs[t]
                d_o = d_h * squashed
                d_c_here = tanh_grad(d_h * o, squashed)
                d_c = d_c_here if d_c is None else d_c + d_c_here
                d_i = sigmoid_grad(d_c * candidate, i)
                d_candidate = tanh_grad(d_c * i, candidate)
                if state is None:
                    d_f = g.op("zeros_like", i)  # f is unused (and not computed) here
                else:
                    d_f = sigmoid_grad(d_c * state[1], f)
                    d_c = d_c * f
                d_zs[t] = g.op("concatenation", d_i, d_f, d_candidate,
                               sigmoid_grad(d_o, o), axis=-1)
                d_h = None if state is None else g.op("batch_matmul", d_zs[t],
                                                      recurrent_kernel, adj_y=True)
            states = g.op("concatenation", *(saved[t][5][0] for t in range(1, steps)),
                          axis=0)
            later = g.op("concatenation", *d_zs[1:], axis=0)
            d_kernel = g.op("batch_matmul", states, later, adj_x=True)
            return [g.op("pack", *d_zs, axis=0, values_count=steps), d_kernel]
        return rule


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

    def _per_example_bias(self, g, z: Value, bias: Value | None) -> Value:
        """The recurrent bias broadcast to ``[batch, 3 * units]`` once, so each step's
        product and bias are one fused step and the bias gradient one sum."""
        shape = g.op("shape", z, out_type=2)  # [steps, batch, 3 * units]
        per_step = g.op("strided_slice", shape, g.const(np.array([1], np.int32)),
                        g.const(np.array([3], np.int32)), g.const(np.array([1], np.int32)))
        return g.op("broadcast_to", bias, per_step)

    def step(self, g, z, state, recurrent_kernel, b_rec):
        """Keras' equations; ``h = h_hat + z * (state - h_hat)`` is its
        ``z * state + (1 - z) * h_hat`` in one multiply fewer (and no NEG in the
        gradient)."""
        x_z, x_r, x_h = self._split(g, z)
        rec = b_rec if state is None else state @ recurrent_kernel + b_rec
        r_z, r_r, r_h = self._split(g, rec)
        z = self.recurrent_activation(x_z + r_z)
        r = self.recurrent_activation(x_r + r_r)
        h_hat = self.activation(x_h + r * r_h)
        if state is None:
            keep = 1.0 - z
            h = keep * h_hat
        else:
            keep = state - h_hat
            h = h_hat + z * keep
        self._saved.append((z, r, r_h, h_hat, keep, state))
        return h, h

    def _through_time(self, g, recurrent_kernel: Value, saved: list):
        """Backpropagation through time as one rule (tanh, sigmoid): per step the
        cotangents of the input projection ``[dz, dr, da]`` and of the recurrent product
        ``[dz, dr, da · r]`` (``a = x_h + r · r_h``); the recurrent kernel's gradient is
        ONE product over all steps, the bias's one sum."""
        if len(saved) < 2 or not self._default_activations():
            return None
        steps = len(saved)

        def rule(d_out):
            if self.return_sequences:
                d_hs = g.op("unpack", d_out, axis=1, num=steps)
            else:
                d_hs = [None] * (steps - 1) + [d_out]
            d_xs: list = [None] * steps
            d_recs: list = [None] * steps
            d_h = None
            for t in range(steps - 1, -1, -1):
                z, r, r_h, h_hat, keep, state = saved[t]
                if d_hs[t] is not None:
                    d_h = d_hs[t] if d_h is None else d_h + d_hs[t]
                if state is None:  # h = (1 - z) · h_hat
                    d_z = -(d_h * h_hat)
                    d_hat = d_h * keep
                else:  # h = h_hat + z · (state - h_hat)
                    d_z = d_h * keep
                    to_state = d_h * z
                    d_hat = d_h - to_state
                d_a = _tanh_grad(d_hat, h_hat)
                d_z = _sigmoid_grad(d_z, z)
                d_r = _sigmoid_grad(d_a * r_h, r)
                d_xs[t] = g.op("concatenation", d_z, d_r, d_a, axis=-1)
                d_recs[t] = g.op("concatenation", d_z, d_r, d_a * r, axis=-1)
                if state is not None:
                    d_h = to_state + g.op("batch_matmul", d_recs[t], recurrent_kernel,
                                          adj_y=True)
            states = g.op("concatenation", *(saved[t][5] for t in range(1, steps)), axis=0)
            later = g.op("concatenation", *d_recs[1:], axis=0)
            d_kernel = g.op("batch_matmul", states, later, adj_x=True)
            by_step = g.op("reshape", later, g.const(np.array(
                [steps - 1, -1, 3 * self.units], np.int32)))  # a view, no copy
            d_bias = g.op("sum", by_step, g.const(np.array([0], np.int32)),
                          keep_dims=False) + d_recs[0]
            return [g.op("pack", *d_xs, axis=0, values_count=steps), d_kernel, d_bias]
        return rule


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
