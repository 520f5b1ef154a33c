"""Embedding, LayerNormalization and the unrolled SimpleRNN/GRU/LSTM: forward passes against
plain NumPy written from Keras' equations, learning, and exported files that train in stock
LiteRT with litetrain's losses (their gradients: the rules the gradient table checks)."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from tests.conftest import same_losses_in_litert

R = np.random.default_rng(12)


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _run(layer, x):
    class M(lt.Module):
        def __init__(self):
            self.layer = layer

        @lt.signature(lt.TensorSpec([None, *x.shape[1:]], x.dtype))
        def run(self, v):
            return {"y": self.layer(v)}

    return M().run(x)["y"]


def _values(layer) -> dict[str, np.ndarray]:
    return {v.name.split("/")[-1]: v.initial_value for v in layer.weights}


def test_lstm_matches_keras_equations():
    layer = lt.nn.LSTM(5, return_sequences=True, name="lstm")
    x = R.normal(size=(3, 4, 6)).astype(np.float32)
    layer.build((None, 4, 6))
    w = _values(layer)
    w["bias"] = R.normal(size=20).astype(np.float32)
    layer.bias.initial_value = w["bias"]
    h = c = np.zeros((3, 5))
    want = []
    for t in range(4):
        z = x[:, t] @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"]
        i, f, g, o = np.split(z, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        want.append(h)
    np.testing.assert_allclose(_run(layer, x), np.stack(want, 1), rtol=1e-5, atol=1e-6)


def test_gru_matches_keras_equations_reset_after():
    layer = lt.nn.GRU(5, name="gru")
    x = R.normal(size=(3, 4, 6)).astype(np.float32)
    layer.build((None, 4, 6))
    w = _values(layer)
    w["bias"] = R.normal(size=(2, 15)).astype(np.float32)
    layer.bias.initial_value = w["bias"]
    h = np.zeros((3, 5))
    for t in range(4):
        xz, xr, xh = np.split(x[:, t] @ w["kernel"] + w["bias"][0], 3, axis=-1)
        rz, rr, rh = np.split(h @ w["recurrent_kernel"] + w["bias"][1], 3, axis=-1)
        z, r = _sigmoid(xz + rz), _sigmoid(xr + rr)
        h = z * h + (1 - z) * np.tanh(xh + r * rh)
    np.testing.assert_allclose(_run(layer, x), h, rtol=1e-5, atol=1e-6)


def test_simple_rnn_embedding_and_layer_norm():
    rnn = lt.nn.SimpleRNN(4, name="rnn")
    x = R.normal(size=(2, 3, 5)).astype(np.float32)
    rnn.build((None, 3, 5))
    w = _values(rnn)
    h = np.zeros((2, 4))
    for t in range(3):
        h = np.tanh(x[:, t] @ w["kernel"] + h @ w["recurrent_kernel"] + w["bias"])
    np.testing.assert_allclose(_run(rnn, x), h, rtol=1e-5, atol=1e-6)

    emb = lt.nn.Embedding(10, 3, name="emb")
    ids = np.array([[1, 9], [9, 0]], np.int32)
    emb.build((None, 2))
    np.testing.assert_array_equal(_run(emb, ids), emb.embeddings.initial_value[ids])

    ln = lt.nn.LayerNormalization(name="ln")
    v = R.normal(size=(3, 7)).astype(np.float32) * 3 + 1
    want = (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(_run(ln, v), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rnn", [lt.nn.LSTM, lt.nn.GRU, lt.nn.SimpleRNN])
def test_text_classifier_learns_and_trains_the_same_in_litert(rnn):
    model = lt.nn.Sequential([lt.nn.Embedding(20, 6, input_shape=(5,)), rnn(7),
                              lt.nn.LayerNormalization(), lt.nn.Dense(3)])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.Adam(1e-2), input_shape=(5,))
    x = R.integers(0, 20, (16, 5)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[R.integers(0, 3, 16)]
    halves = [{"x": x[8 * (k % 2):8 * (k % 2) + 8], "y": y[8 * (k % 2):8 * (k % 2) + 8]}
              for k in range(6)]
    losses = same_losses_in_litert(lt.convert(m), halves)
    assert losses[-1] < losses[0]


def test_multi_head_attention_matches_keras_equations():
    layer = lt.nn.MultiHeadAttention(num_heads=2, key_dim=3, name="mha")
    x = R.normal(size=(2, 4, 5)).astype(np.float32)
    layer.build((None, 4, 5))
    w = {v.name.split("mha/")[1]: v.initial_value for v in layer.weights}
    for name in list(w):
        if name.endswith("bias"):
            w[name] = R.normal(size=w[name].shape).astype(np.float32)
            next(v for v in layer.weights if v.name == f"mha/{name}").initial_value = w[name]
    q, k, v = (np.einsum("btd,dhk->bhtk", x, w[f"{p}/kernel"]) + w[f"{p}/bias"][None, :, None]
               for p in ("query", "key", "value"))
    scores = np.einsum("bhqk,bhsk->bhqs", q / np.sqrt(3), k)
    attn = np.exp(scores - scores.max(-1, keepdims=True))
    attn /= attn.sum(-1, keepdims=True)
    out = np.einsum("bhqs,bhsk->bqhk", attn, v)
    want = np.einsum("bqhk,hkd->bqd", out, w["attention_output/kernel"]) + \
        w["attention_output/bias"]
    np.testing.assert_allclose(_run(layer, x), want, rtol=1e-4, atol=1e-5)


def test_transformer_block_trains_the_same_in_litert():

    class Block(lt.nn.Layer):
        def __init__(self):
            super().__init__(name="block")
            self.mha = lt.nn.MultiHeadAttention(2, 4, name="mha")
            self.norm = lt.nn.LayerNormalization(name="ln")

        @property
        def weights(self):
            return self.mha.weights + self.norm.weights

        @property
        def trainable_weights(self):
            return self.weights

        def call(self, x, training=False):
            return self.norm(x + self.mha(x))

    model = lt.nn.Sequential([lt.nn.Embedding(16, 6, input_shape=(5,)), Block(),
                              lt.nn.Flatten(), lt.nn.Dense(3)])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.Adam(1e-2), input_shape=(5,))
    x = R.integers(0, 16, (8, 5)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[R.integers(0, 3, 8)]
    losses = same_losses_in_litert(lt.convert(m), [{"x": x, "y": y}] * 4)
    assert losses[-1] < losses[0]
