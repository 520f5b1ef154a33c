"""Conv1D, Conv2DTranspose, UpSampling2D and BatchNormalization in training mode: forward
passes against NumPy, the moving statistics' update, and exported models that train in
stock LiteRT with litetrain's losses."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from tests.conftest import same_losses_in_litert

R = np.random.default_rng(41)


def _run(layer, x, training=False):
    class M(lt.Module):
        def __init__(self):
            self.layer = layer

        @lt.signature(lt.TensorSpec([None, *x.shape[1:]]))
        def run(self, v):
            return {"y": self.layer(v, training=training)}

    m = M()
    return m.run(x)["y"], m


def test_conv1d_matches_a_loop():
    layer = lt.nn.Conv1D(4, 3, strides=2, name="c")
    x = R.normal(size=(2, 9, 5)).astype(np.float32)
    layer.build((None, 9, 5))
    k, b = layer.kernel.initial_value, layer.bias.initial_value
    want = np.stack([np.einsum("nkc,kco->no", x[:, t:t + 3], k) + b for t in range(0, 7, 2)],
                    axis=1)
    y, _ = _run(layer, x)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    assert layer.output_shape((None, 9, 5)) == (None, 4, 4)


def test_upsampling_repeats_pixels():
    x = R.normal(size=(2, 3, 4, 2)).astype(np.float32)
    y, _ = _run(lt.nn.UpSampling2D((2, 3)), x)
    np.testing.assert_array_equal(y, np.repeat(np.repeat(x, 2, axis=1), 3, axis=2))


def test_batch_norm_training_uses_batch_statistics_and_moves_the_averages():
    layer = lt.nn.BatchNormalization(momentum=0.9, name="bn")
    x = (R.normal(size=(6, 4, 3)) * 2 + 5).astype(np.float32)
    y, m = _run(layer, x, training=True)
    mean, var = x.mean(axis=(0, 1)), x.var(axis=(0, 1))
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-3), rtol=1e-4, atol=1e-5)
    values = m.variable_values()
    np.testing.assert_allclose(values["bn/moving_mean"], 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(values["bn/moving_variance"], 0.9 + 0.1 * var, rtol=1e-5)


def test_conv2d_transpose_matches_a_scatter_loop():
    layer = lt.nn.Conv2DTranspose(3, 3, strides=2, name="t")
    x = R.normal(size=(2, 3, 4, 2)).astype(np.float32)
    layer.build((None, 3, 4, 2))
    k, b = layer.kernel.initial_value, layer.bias.initial_value  # [kh, kw, out, in]
    want = np.zeros((2, 7, 9, 3), np.float32)
    for i in range(3):
        for j in range(4):
            want[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3] += np.einsum("nc,hwoc->nhwo", x[:, i, j], k)
    y, _ = _run(layer, x)
    np.testing.assert_allclose(y, want + b, rtol=1e-5, atol=1e-5)
    assert layer.output_shape((None, 3, 4, 2)) == (None, 7, 9, 3)


@pytest.mark.parametrize("kind", ["conv1d", "upsampling", "transposed", "overlapping_pools"])
def test_models_train_the_same_in_litert(kind):
    if kind == "conv1d":
        layers = [lt.nn.Conv1D(4, 3, input_shape=(10, 2)), lt.nn.BatchNormalization(),
                  lt.nn.Flatten(), lt.nn.Dense(3)]
        x = R.normal(size=(8, 10, 2)).astype(np.float32)
    elif kind == "upsampling":
        layers = [lt.nn.UpSampling2D(2, input_shape=(4, 4, 2)), lt.nn.Conv2D(3, 3),
                  lt.nn.BatchNormalization(), lt.nn.Flatten(), lt.nn.Dense(3)]
        x = R.normal(size=(8, 4, 4, 2)).astype(np.float32)
    elif kind == "transposed":
        layers = [lt.nn.Conv2DTranspose(3, 3, strides=2, padding="same",
                                        input_shape=(4, 4, 2)),
                  lt.nn.Flatten(), lt.nn.Dense(3)]
        x = R.normal(size=(8, 4, 4, 2)).astype(np.float32)
    else:  # windows that overlap: the general pooling gradients
        layers = [lt.nn.Conv2D(3, 3, input_shape=(9, 9, 1)),
                  lt.nn.MaxPool2D(3, strides=1, padding="same"),
                  lt.nn.AveragePooling2D(3, strides=2), lt.nn.Flatten(), lt.nn.Dense(3)]
        x = R.normal(size=(8, 9, 9, 1)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[R.integers(0, 3, 8)]
    m = lt.trainable(lt.nn.Sequential(layers),
                     loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.Adam(1e-2))
    same_losses_in_litert(lt.convert(m), [{"x": x, "y": y}] * 4)
