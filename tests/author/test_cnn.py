"""A small CNN authored in litetrain: it learns, and its exported file (builtin ops only,
including the convolution gradients) trains identically in LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.data import load_digits, one_hot
from tests.conftest import same_losses_in_litert


@pytest.fixture(scope="module")
def cnn():
    (x, labels), _ = load_digits()
    x, y = x[..., None], one_hot(labels)
    model = lt.nn.Sequential([
        lt.nn.Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1)),
        lt.nn.BatchNormalization(),
        lt.nn.MaxPool2D(2),
        lt.nn.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        lt.nn.AveragePooling2D(2),
        lt.nn.Flatten(),
        lt.nn.Dense(10),
    ])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.Adam(3e-3))
    return m, x, y


def test_cnn_learns(cnn):
    m, x, y = cnn
    losses = [float(m.train(x[i:i + 100], y[i:i + 100])["loss"]) for i in range(0, 4000, 100)]
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5])
    names = {v.name for v in m.model.weights}
    assert {"conv2d/kernel", "conv2d_1/bias", "batch_normalization/moving_mean"} <= names
    assert m.model.weights[0].shape == (3, 3, 1, 8)  # Keras kernel layout


def test_cnn_export_trains_the_same_in_litert(cnn):
    m, x, y = cnn
    rows = [slice(3000 + 100 * k, 3000 + 100 * k + n) for k, n in enumerate([32, 50, 32])]
    same_losses_in_litert(lt.convert(m), [{"x": x[r], "y": y[r]} for r in rows])
