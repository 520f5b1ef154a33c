"""Optimizers follow their textbook formulas; the authored tutorial model trains exactly
like a hand-written NumPy implementation of the same math."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.data import load_digits, one_hot


def _textbook(kind: str, w0: np.ndarray, grads: list[np.ndarray], **hp) -> np.ndarray:
    w, m, v = w0.astype(np.float64), np.zeros_like(w0, np.float64), np.zeros_like(w0, np.float64)
    lr = hp["learning_rate"]
    for t, g in enumerate(grads, start=1):
        if kind == "sgd":
            w = w - lr * g
        elif kind == "momentum":
            m = hp["momentum"] * m - lr * g
            w = w + (hp["momentum"] * m - lr * g if hp.get("nesterov") else m)
        elif kind in ("adam", "adamw"):
            b1, b2, eps = 0.9, 0.999, 1e-7
            if kind == "adamw":
                w = w - w * lr * hp["weight_decay"]
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            mhat, vhat = m / (1 - b1 ** t), v / (1 - b2 ** t)
            # Keras' epsilon sits outside the bias correction of v: eps * sqrt(1 - b2^t).
            w = w - lr * mhat / (np.sqrt(vhat) + eps / np.sqrt(1 - b2 ** t))
        elif kind == "rmsprop":
            v = 0.9 * v + 0.1 * g * g
            w = w - lr * g / np.sqrt(v + 1e-7)  # Keras: epsilon inside the root
    return w


OPTIMIZERS = {
    "sgd": (lambda: lt.optimizers.SGD(0.1), {"learning_rate": 0.1}),
    "momentum": (lambda: lt.optimizers.SGD(0.1, momentum=0.9),
                 {"learning_rate": 0.1, "momentum": 0.9}),
    "nesterov": (lambda: lt.optimizers.SGD(0.05, momentum=0.8, nesterov=True),
                 {"learning_rate": 0.05, "momentum": 0.8, "nesterov": True}),
    "adam": (lambda: lt.optimizers.Adam(0.01), {"learning_rate": 0.01}),
    "adamw": (lambda: lt.optimizers.AdamW(0.01, weight_decay=0.1),
              {"learning_rate": 0.01, "weight_decay": 0.1}),
    "rmsprop": (lambda: lt.optimizers.RMSprop(0.01), {"learning_rate": 0.01}),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_matches_textbook(name):
    make, hp = OPTIMIZERS[name]
    rng = np.random.default_rng(5)
    w0 = rng.normal(size=(3, 2)).astype(np.float32)
    grads = [rng.normal(size=w0.shape).astype(np.float32) for _ in range(6)]
    w = lt.Variable(w0, "w")
    opt = make()

    class M(lt.Module):
        @lt.signature(lt.TensorSpec([3, 2]))
        def step(self, g):
            opt.apply_gradients([(g, w)])
            return w.read()

    m = M()
    for g in grads:
        got = m.step(g)
    kind = "momentum" if name == "nesterov" else name
    want = _textbook(kind, w0, grads, **hp)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    assert int(m.variable_values()[f"{opt.name}/iteration"]) == len(grads)


def test_learning_rate_is_a_variable_the_model_can_change():
    w = lt.Variable(np.array([1.0], np.float32), "w")
    opt = lt.optimizers.SGD(0.5)

    class M(lt.Module):
        @lt.signature(lt.TensorSpec([]))
        def set_lr(self, lr):
            opt.learning_rate.assign(lr)
            return lr

        @lt.signature(lt.TensorSpec([1]))
        def step(self, g):
            opt.apply_gradients([(g, w)])
            return w.read()

    m = M()
    assert m.step(np.ones(1, np.float32))[0] == pytest.approx(0.5)
    m.set_lr(np.float32(0.25))
    assert m.step(np.ones(1, np.float32))[0] == pytest.approx(0.25)


class Tutorial(lt.Module):
    """The on-device training tutorial's model, written in litetrain."""

    def __init__(self, lr: float = 0.1):
        self.model = lt.nn.Sequential([lt.nn.Flatten(input_shape=(28, 28)),
                                       lt.nn.Dense(128, activation="relu"), lt.nn.Dense(10)])
        self.loss = lt.losses.CategoricalCrossentropy(from_logits=True)
        self.optimizer = lt.optimizers.SGD(lr)

    @lt.signature(lt.TensorSpec([None, 28, 28]), lt.TensorSpec([None, 10]))
    def train(self, x, y):
        with lt.GradientTape() as tape:
            loss = self.loss(y, self.model(x))
        grads = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables, strict=True))
        return {"loss": loss}

    @lt.signature(lt.TensorSpec([None, 28, 28]))
    def infer(self, x):
        logits = self.model(x)
        return {"output": lt.nn.softmax(logits), "logits": logits}


def _numpy_step(w: dict, x, y, lr):
    """The same model and SGD step by hand, in float64."""
    h0 = x.reshape(len(x), -1)
    z1 = h0 @ w["k1"] + w["b1"]
    h1 = np.maximum(z1, 0)
    logits = h1 @ w["k2"] + w["b2"]
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    loss = -(y * logp).sum(1).mean()
    d_logits = (np.exp(logp) - y) / len(x)
    grads = {"k2": h1.T @ d_logits, "b2": d_logits.sum(0)}
    d_h1 = d_logits @ w["k2"].T * (z1 > 0)
    grads |= {"k1": h0.T @ d_h1, "b1": d_h1.sum(0)}
    return loss, {k: w[k] - lr * grads[k] for k in w}


def test_authored_tutorial_matches_numpy_reference():
    (x, labels), _ = load_digits()
    y = one_hot(labels)
    m = Tutorial()
    m.infer(x[:1])  # touch the variables so their initial values are known
    vals = m.variable_values()
    w = {"k1": vals["dense/kernel"], "b1": vals["dense/bias"], "k2": vals["dense_1/kernel"],
         "b2": vals["dense_1/bias"]}
    w = {k: v.astype(np.float64) for k, v in w.items()}
    for step in range(5):
        xb, yb = x[step * 32:(step + 1) * 32], y[step * 32:(step + 1) * 32]
        loss = m.train(xb, yb)["loss"]
        ref, w = _numpy_step(w, xb.astype(np.float64), yb, 0.1)
        assert loss == pytest.approx(ref, rel=1e-5)
    np.testing.assert_allclose(m.variable_values()["dense_1/kernel"], w["k2"], atol=1e-5)


def test_authored_tutorial_learns_the_digits():
    (x, labels), (xt, lt_) = load_digits()
    y = one_hot(labels)
    m = Tutorial()
    first = None
    for _epoch in range(2):
        for i in range(0, 4000, 100):
            loss = m.train(x[i:i + 100], y[i:i + 100])["loss"]
            first = loss if first is None else first
    assert loss < first / 2
    assert (m.infer(xt)["output"].argmax(1) == lt_).mean() > 0.8


def test_sparse_labels_give_the_same_loss_as_one_hot():
    (x, labels), _ = load_digits()
    dense = lt.nn.Sequential([lt.nn.Flatten(input_shape=(28, 28)), lt.nn.Dense(10)])
    sparse = lt.trainable(dense, loss=lt.losses.SparseCategoricalCrossentropy(from_logits=True),
                          optimizer=lt.optimizers.SGD(0.0))
    onehot = lt.trainable(dense, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                          optimizer=lt.optimizers.SGD(0.0))
    a = sparse.train(x[:16], labels[:16].astype(np.int32))["loss"]
    b = onehot.train(x[:16], one_hot(labels[:16]))["loss"]
    assert a == pytest.approx(b, rel=1e-6)


def test_signature_input_errors():
    m = Tutorial()
    with pytest.raises(lt.SignatureError, match=r"expected shape \[None,28,28\]"):
        m.infer(np.zeros((2, 28), np.float32))
    with pytest.raises(lt.SignatureError, match="expected float32"):
        m.infer(np.zeros((2, 28, 28)))
    with pytest.raises(lt.SignatureError, match="missing"):
        m.train(np.zeros((2, 28, 28), np.float32))
