"""Gradient rules written as multiplies by a cast mask (LEAKY_RELU, ELU, MAXIMUM, MINIMUM,
SELECT_V2, overlapping MAX_POOL_2D) against TensorFlow's select semantics, value for value
in float32, with inf/NaN inputs and cotangents where the rules promise TF's behaviour.

Finite differences of the same rules are in ``test_gradients.py``; here the point is the
exact values at kinks, ties and non-finite numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt

# The inputs include IEEE specials on purpose: NumPy's overflow/invalid warnings are
# expected here (a model run computes them silently, as TF Lite does).
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

R = np.random.default_rng(5)
F32 = np.float32


def vjp(op, xs, dy, consts=None, **attrs):
    """The cotangents of ``op``'s float inputs ``xs`` (variables) for output cotangent
    ``dy``, through a traced signature (``consts``: position -> constant input)."""
    consts = consts or {}
    variables = [lt.Variable(x, f"x{i}", dtype=np.float32) for i, x in enumerate(xs)]

    class M(lt.Module):
        @lt.signature()
        def grads(self):
            with lt.GradientTape() as tape:
                vals = iter([v.read() for v in variables])
                g = variables[0].read().graph
                n = len(xs) + len(consts)
                ins = [g.const(consts[i]) if i in consts else next(vals) for i in range(n)]
                out = g.op(op, *ins, **attrs)
                loss = lt.nn.reduce_sum(out * g.const(dy))
            return tuple(tape.gradient(loss, variables))

    got = M().grads()
    return [got[f"output_{k}"] for k in range(len(xs))]


SPECIAL = np.array([0.0, -0.0, 1.5, -1.5, np.inf, -np.inf, 3e-39, -3e-39], F32)


@pytest.mark.parametrize("alpha", [0.2, 0.0, 1.0, 1.7, -0.5])
def test_leaky_relu_is_tf_select(alpha):
    x = np.concatenate([SPECIAL, [np.nan], R.normal(size=23).astype(F32)]).astype(F32)
    dy = R.normal(size=x.shape).astype(F32)
    dy[:4] = [np.inf, -np.inf, np.nan, np.inf]
    (dx,) = vjp("leaky_relu", [x], dy, alpha=alpha)
    want = np.where(x > 0, dy, dy * F32(alpha))  # TF's LeakyReluGrad
    np.testing.assert_array_equal(dx, want)


def test_elu_is_tf_select():
    x = np.concatenate([SPECIAL, R.normal(scale=3, size=24).astype(F32)]).astype(F32)
    dy = R.normal(size=x.shape).astype(F32)
    y = np.where(x > 0, x, np.expm1(x)).astype(F32)
    (dx,) = vjp("elu", [x], dy)
    want = np.where(y < 0, (y + F32(1)) * dy, dy)  # TF's EluGrad, from the activations
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("op, pick", [("maximum", np.greater_equal), ("minimum", np.less_equal)])
def test_maximum_minimum_send_dy_to_the_chosen_operand(op, pick):
    a = R.integers(-2, 3, size=(4, 5)).astype(F32)  # many ties: the first operand wins
    b = R.integers(-2, 3, size=(5,)).astype(F32)
    a[0, :3] = [np.inf, -np.inf, 0.0]
    dy = R.normal(size=(4, 5)).astype(F32)
    da, db = vjp(op, [a, b], dy)
    first = pick(a, b)
    np.testing.assert_array_equal(da, np.where(first, dy, 0))
    np.testing.assert_allclose(db, np.where(first, 0, dy).sum(axis=0), rtol=1e-6)


def test_maximum_with_an_infinite_cotangent_keeps_it_on_the_chosen_side():
    a, b = np.array([1.0, 0.0], F32), np.array([0.0, 1.0], F32)
    da, db = vjp("maximum", [a, b], np.array([np.inf, 2.0], F32))
    assert da[0] == np.inf and db[1] == 2.0 and da[1] == 0.0
    # the unchosen side of an infinite cotangent: NaN, as TF's multiply-mask kernels give
    assert np.isnan(db[0])


def test_select_v2_with_a_broadcast_condition():
    cond = R.random((3, 1)) > 0.5
    a, b = R.normal(size=(3, 4)).astype(F32), R.normal(size=(4,)).astype(F32)
    dy = R.normal(size=(3, 4)).astype(F32)
    da, db = vjp("select_v2", [a, b], dy, consts={0: cond})
    np.testing.assert_array_equal(da, np.where(cond, dy, 0))
    np.testing.assert_allclose(db, np.where(cond, 0, dy).sum(axis=0), rtol=1e-6)


def test_overlapping_max_pool_sends_each_window_to_its_first_maximum():
    x = R.integers(0, 3, size=(2, 7, 6, 2)).astype(F32)  # ties everywhere
    attrs = {"padding": 1, "stride_h": 1, "stride_w": 2, "filter_height": 3,
             "filter_width": 3}
    dy = R.normal(size=(2, 5, 2, 2)).astype(F32)
    (dx,) = vjp("max_pool_2d", [x], dy, **attrs)
    want = np.zeros(x.shape, np.float64)
    for n in range(2):
        for i in range(5):
            for j in range(2):
                for c in range(2):
                    win = x[n, i:i + 3, 2 * j:2 * j + 3, c]
                    r, s = np.unravel_index(np.argmax(win), win.shape)  # first maximum
                    want[n, i + r, 2 * j + s, c] += dy[n, i, j, c]
    np.testing.assert_allclose(dx, want, rtol=1e-6, atol=1e-6)
