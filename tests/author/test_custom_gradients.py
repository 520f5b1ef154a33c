"""Blocks with a gradient rule of their own (``Graph.custom_gradient``): batch
normalisation's few-pass rule against NumPy's analytic gradient, finite differences and
the node-by-node walk; the walk takes over when the block's insides are used elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.author.graph import Graph

R = np.random.default_rng(21)


def _bn_loss(x, gamma, beta, r, eps=1e-3):
    axes = tuple(range(x.ndim - 1))
    mean, var = x.mean(axes), x.var(axes)
    return float(np.sum(((x - mean) / np.sqrt(var + eps) * gamma + beta) * r))


def _numeric(f, x, h=1e-6):
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        out[i] = (f(up) - f(down)) / (2 * h)
    return out


def _bn_grads(shape, r, gamma, beta):
    layer = lt.nn.BatchNormalization(name="bn")
    layer.build((None, *shape[1:]))
    layer.gamma.initial_value, layer.beta.initial_value = gamma, beta

    class M(lt.Module):
        @lt.signature(lt.TensorSpec([None, *shape[1:]]))
        def grads(self, x):
            with lt.GradientTape() as tape:
                loss = lt.nn.reduce_sum(layer(x, training=True) * x.graph.const(r))
            dx, = tape.gradient(loss, [x])
            dg, db = tape.gradient(loss, [layer.gamma, layer.beta])
            return {"dx": dx, "dgamma": dg, "dbeta": db}

    return M()


@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (8, 5), (1, 2, 2, 3), (3, 7, 2)])
def test_batch_norm_rule_matches_finite_differences_and_the_walk(shape, monkeypatch):
    x = R.normal(size=shape).astype(np.float32) * 2 + 1
    r = R.normal(size=shape).astype(np.float32)
    gamma32 = R.uniform(0.5, 2, shape[-1]).astype(np.float32)
    beta32 = R.normal(size=shape[-1]).astype(np.float32)
    got = _bn_grads(shape, r, gamma32, beta32).grads(x)
    gamma, beta = gamma32.astype(np.float64), beta32.astype(np.float64)
    x64, r64 = x.astype(np.float64), r.astype(np.float64)
    want = {"dx": _numeric(lambda v: _bn_loss(v, gamma, beta, r64), x64),
            "dgamma": _numeric(lambda v: _bn_loss(x64, v, beta, r64), gamma),
            "dbeta": _numeric(lambda v: _bn_loss(x64, gamma, v, r64), beta)}
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=2e-3, atol=2e-4, err_msg=k)
    # The same gradients node by node (every op's rule is checked against finite
    # differences in test_gradients.py).
    monkeypatch.setattr(Graph, "custom_gradient", lambda *a, **k: None)
    walked = _bn_grads(shape, r, gamma32, beta32).grads(x)
    for k in want:
        np.testing.assert_allclose(got[k], walked[k], rtol=1e-4, atol=1e-5, err_msg=k)


def _doubling(use_inside: bool):
    """``y = x · 2`` whose rule says ``dx = dy · 3`` (deliberately not its gradient, to
    see which is used); optionally also adds an inside value to the loss."""
    w = lt.Variable(np.array([1.0, 2.0], np.float32), "w")

    class M(lt.Module):
        @lt.signature()
        def grads(self):
            with lt.GradientTape() as tape:
                v = w.read()
                g = v.graph
                first = len(g.nodes)
                inside = v * 1.0
                y = inside * 2.0
                g.custom_gradient(y, [v], first, lambda dy: [dy * 3.0])
                loss = lt.nn.reduce_sum(y)
                if use_inside:
                    loss = loss + lt.nn.reduce_sum(inside)
            return tape.gradient(loss, [w])[0]

    return M().grads()


def test_the_rule_replaces_the_block_only_when_its_insides_get_no_gradient():
    np.testing.assert_array_equal(_doubling(False), [3.0, 3.0])
    np.testing.assert_array_equal(_doubling(True), [3.0, 3.0])  # walked: 2 + 1
