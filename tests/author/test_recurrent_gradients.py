"""Recurrent layers' training graphs: the LSTM's and GRU's through-time gradient rules
against the node-by-node walk (whose op rules are checked against finite differences in
``test_gradients.py``) and against finite differences of the layer itself."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.author.graph import Graph

R = np.random.default_rng(33)


def _grads(make, x, r, weights=None):
    """d sum(layer(x) * r) w.r.t. x and every weight of a fresh layer from ``make``."""
    layer = make()
    layer.build((None, *x.shape[1:]))
    for w in layer.weights:
        w.initial_value = (weights or {}).get(w.name.split("/")[-1], w.initial_value)
    matmuls = []

    class M(lt.Module):
        @lt.signature(lt.TensorSpec([None, *x.shape[1:]]))
        def grads(self, xs):
            with lt.GradientTape() as tape:
                loss = lt.nn.reduce_sum(layer(xs) * xs.graph.const(r))
            dx, = tape.gradient(loss, [xs])
            dws = tape.gradient(loss, layer.weights)
            matmuls.append(sum(n.op == "batch_matmul" for n in xs.graph.nodes))
            return {"dx": dx, **{f"d{k}": v for k, v in enumerate(dws) if v is not None}}

    out = M().grads(x)
    return out, matmuls[0]


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("steps, sequences", [(2, False), (5, False), (4, True), (1, True)])
def test_through_time_rule_matches_the_walk(kind, steps, sequences, monkeypatch):
    x = R.normal(size=(3, steps, 4)).astype(np.float32)
    units = 5
    r = R.normal(size=(3, steps, units) if sequences else (3, units)).astype(np.float32)
    bias = R.normal(size=(4 * units,) if kind == "LSTM" else (2, 3 * units))

    def make():
        return getattr(lt.nn, kind)(units, return_sequences=sequences, name="rnn")

    got, n_rule = _grads(make, x, r, {"bias": bias.astype(np.float32)})
    monkeypatch.setattr(Graph, "custom_gradient", lambda *a, **k: None)
    walked, n_walk = _grads(make, x, r, {"bias": bias.astype(np.float32)})
    assert got.keys() == walked.keys()
    for k in walked:
        np.testing.assert_allclose(got[k], walked[k], rtol=1e-5, atol=1e-6, err_msg=k)
    if steps > 2:  # one product for the recurrent kernel's gradient, not one per step
        # (in each of the two backward passes _grads traces)
        assert n_rule == n_walk - 2 * (steps - 2)


def test_lstm_with_other_activations_is_walked(monkeypatch):
    x = R.normal(size=(2, 4, 4)).astype(np.float32)
    r = R.normal(size=(2, 5)).astype(np.float32)

    def make():
        return lt.nn.LSTM(5, activation="relu", name="lstm")

    got, n = _grads(make, x, r)
    monkeypatch.setattr(Graph, "custom_gradient", lambda *a, **k: None)
    walked, n_walk = _grads(make, x, r)
    assert n == n_walk
    for k in walked:
        np.testing.assert_array_equal(got[k], walked[k], err_msg=k)


@pytest.mark.parametrize("make", [lambda: lt.nn.LSTM(3, name="lstm"),
                                  lambda: lt.nn.GRU(3, name="gru"),
                                  lambda: lt.nn.GRU(3, return_sequences=True, name="gru")])
def test_recurrent_gradients_match_finite_differences(make):
    x = R.normal(size=(2, 4, 3))
    probe = make()
    probe.build((None, 4, 3))
    weights = {w.name.split("/")[-1]: w.initial_value.astype(np.float32) + np.float32(
        0.1) * R.normal(size=w.shape).astype(np.float32) for w in probe.weights}
    shape = (2, 4, 3) if getattr(probe, "return_sequences", False) else (2, 3)
    r = R.normal(size=shape).astype(np.float32)

    class F(lt.Module):
        def __init__(self):
            self.layer = make()
            self.layer.build((None, 4, 3))
            for w in self.layer.weights:
                w.initial_value = weights[w.name.split("/")[-1]]

        @lt.signature(lt.TensorSpec([None, 4, 3]))
        def loss(self, xs):
            return lt.nn.reduce_sum(self.layer(xs) * xs.graph.const(r))

    f = F()
    got, _ = _grads(make, x.astype(np.float32), r, weights)

    def loss_at(v):
        return float(np.asarray(f.loss(v.astype(np.float32))))

    h = 1e-2
    numeric = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (loss_at(up) - loss_at(down)) / (2 * h)
    np.testing.assert_allclose(got["dx"], numeric, rtol=2e-2, atol=2e-3)
