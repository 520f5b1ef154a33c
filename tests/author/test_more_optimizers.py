"""Adagrad, Lion, Nadam and gradient clipping against NumPy written from Keras' update
formulas, over several steps of a small least-squares problem."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt

R = np.random.default_rng(30)
X = R.normal(size=(8, 3)).astype(np.float32)
Y = R.normal(size=(8, 2)).astype(np.float32)
W0 = R.normal(size=(3, 2)).astype(np.float32)


def _grad(w):
    return (2 / Y.size * X.T @ (X @ w - Y)).astype(np.float32)  # d mean((Xw - Y)^2) / dw


def _run(optimizer, steps=4):
    w = lt.Variable(W0.copy(), "w")

    class M(lt.Module):
        @lt.signature()
        def step(self):
            with lt.GradientTape() as tape:
                d = w.read()
                loss = lt.nn.reduce_mean(lt.nn.square(X @ d - Y))
            optimizer.apply_gradients([(tape.gradient(loss, [w])[0], w)])
            return {"loss": loss}

    m = M()
    for _ in range(steps):
        m.step()
    return m.variable_values()["w"]


def _numpy(update, steps=4):
    w, state = W0.astype(np.float64), {}
    for t in range(1, steps + 1):
        w = update(w, _grad(w.astype(np.float32)).astype(np.float64), t, state)
    return w


def test_adagrad():
    def update(w, g, t, s):
        s["a"] = s.get("a", np.full_like(w, 0.1)) + g * g
        return w - 0.1 * g / np.sqrt(s["a"] + 1e-7)  # Keras: epsilon inside the root
    np.testing.assert_allclose(_run(lt.optimizers.Adagrad(0.1)), _numpy(update), rtol=1e-5)


def test_lion():
    def update(w, g, t, s):
        m = s.get("m", np.zeros_like(w))
        w = w - 0.05 * np.sign(0.9 * m + 0.1 * g)
        s["m"] = 0.99 * m + 0.01 * g
        return w
    np.testing.assert_allclose(_run(lt.optimizers.Lion(0.05)), _numpy(update), rtol=1e-5)


def test_nadam():
    def update(w, g, t, s):
        b1, b2 = 0.9, 0.999
        u_t, u_next = b1 * (1 - 0.5 * 0.96 ** t), b1 * (1 - 0.5 * 0.96 ** (t + 1))
        s["u"] = s.get("u", 1.0) * u_t
        s["m"] = s.get("m", 0) + (g - s.get("m", 0)) * (1 - b1)
        s["v"] = s.get("v", 0) + (g * g - s.get("v", 0)) * (1 - b2)
        m_hat = u_next * s["m"] / (1 - s["u"] * u_next) + (1 - u_t) * g / (1 - s["u"])
        v_hat = s["v"] / (1 - b2 ** t)
        return w - 0.01 * m_hat / (np.sqrt(v_hat) + 1e-7)
    np.testing.assert_allclose(_run(lt.optimizers.Nadam(0.01)), _numpy(update), rtol=1e-5)


@pytest.mark.parametrize("clip", [{"clipnorm": 0.1}, {"global_clipnorm": 0.1},
                                  {"clipvalue": 0.05}])
def test_gradient_clipping(clip):
    def update(w, g, t, s):
        if "clipvalue" in clip:
            g = np.clip(g, -0.05, 0.05)
        else:
            g = g * 0.1 / max(np.linalg.norm(g), 0.1)
        return w - 0.5 * g
    np.testing.assert_allclose(_run(lt.optimizers.SGD(0.5, **clip)), _numpy(update), rtol=1e-5)


def _loss_value(loss, y_true, y_pred):
    pred = lt.Variable(y_pred, "pred")

    class M(lt.Module):
        @lt.signature()
        def run(self):
            p = pred.read()
            with lt.GradientTape() as tape:
                value = loss(p.graph.const(y_true), pred.read())
            return {"loss": value, "grad": tape.gradient(value, [pred])[0]}
    out = M().run()
    assert np.all(np.isfinite(out["grad"])) and np.any(out["grad"] != 0)  # differentiable
    return float(out["loss"])


def test_huber_and_kl_divergence():
    y_true = np.array([[0.0, 2.0, -1.0], [0.5, 0.5, 3.0]], np.float32)
    y_pred = np.array([[0.3, 0.0, 1.5], [0.5, 1.0, 0.0]], np.float32)
    e = np.abs(y_pred - y_true)
    want = np.mean(np.where(e <= 1.0, 0.5 * e * e, e - 0.5), axis=-1).mean()
    assert _loss_value(lt.losses.Huber(), y_true, y_pred) == pytest.approx(want, rel=1e-6)
    p_true = np.array([[0.2, 0.8], [0.5, 0.5]], np.float32)
    p_pred = np.array([[0.4, 0.6], [0.9, 0.1]], np.float32)
    want = np.sum(p_true * np.log(p_true / p_pred), axis=-1).mean()
    assert _loss_value(lt.losses.KLDivergence(), p_true, p_pred) == pytest.approx(want, rel=1e-5)


def test_exponential_decay_schedule_runs_on_the_step_counter():
    schedule = lt.optimizers.ExponentialDecay(0.5, decay_steps=2, decay_rate=0.5,
                                              staircase=True)

    def update(w, g, t, s):
        return w - 0.5 * 0.5 ** ((t - 1) // 2) * g
    np.testing.assert_allclose(_run(lt.optimizers.SGD(schedule), steps=5),
                               _numpy(update, steps=5), rtol=1e-5)


def _dense_model(**dense):
    model = lt.nn.Sequential([lt.nn.Dense(4, activation="relu", input_shape=(3,)),
                              lt.nn.Dense(2, **dense)])
    return model


def test_l2_penalty_is_in_the_trained_loss():
    x, y = X, np.eye(2, dtype=np.float32)[R.integers(0, 2, 8)]
    losses = []
    for reg in (None, lt.regularizers.L2(0.3)):
        model = _dense_model(kernel_regularizer=reg)
        m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                         optimizer=lt.optimizers.SGD(0.0))
        losses.append(float(m.train(x, y)["loss"]))
        kernel = model.layers[1].kernel.initial_value
    assert losses[1] - losses[0] == pytest.approx(0.3 * float(np.sum(kernel ** 2)), rel=1e-5)


@pytest.mark.parametrize(("fine_tune", "changed"), [
    ("bias", {"dense/bias", "dense_1/bias"}), ("last:1", {"dense_1/kernel", "dense_1/bias"})])
def test_fine_tuning_trains_only_what_it_names(fine_tune, changed):
    model = _dense_model()
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.5), fine_tune=fine_tune)
    before = {v.name: v.initial_value.copy() for v in model.weights}
    m.train(X, np.eye(2, dtype=np.float32)[R.integers(0, 2, 8)])
    after = m.variable_values()
    moved = {k for k, v in before.items() if not np.array_equal(after[k], v)}
    assert moved == changed
    with pytest.raises(ValueError, match="fine_tune"):
        lt.trainable(_dense_model(), loss=lt.losses.MeanSquaredError(),
                     optimizer=lt.optimizers.SGD(0.1), fine_tune="first:2")
