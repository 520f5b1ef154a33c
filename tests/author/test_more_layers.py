"""DepthwiseConv2D, GELU, Dropout and frozen layers: they train, and export to LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.data import load_digits, one_hot


def _litert_runner(data: bytes, name: str):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    return litert.Interpreter(
        model_content=data,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    ).get_signature_runner(name)


@pytest.fixture(scope="module")
def digits():
    (x, labels), _ = load_digits()
    return x[:1200, ::2, ::2, None], one_hot(labels[:1200])  # 14×14 keeps the tests quick


def _depthwise_model(**dropout):
    layers = [
        lt.nn.Conv2D(4, 3, activation="gelu", input_shape=(14, 14, 1)),
        lt.nn.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2,
                              activation="relu"),
        lt.nn.Flatten(),
    ]
    if dropout:
        layers.append(lt.nn.Dropout(**dropout))
    layers.append(lt.nn.Dense(10))
    return lt.trainable(lt.nn.Sequential(layers),
                        loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                        optimizer=lt.optimizers.Adam(1e-2))


def test_depthwise_layer_matches_keras_layout_and_learns(digits):
    x, y = digits
    m = _depthwise_model()
    kernel = m.model.layers[1].depthwise_kernel
    assert kernel.name == "depthwise_conv2d/depthwise_kernel" and kernel.shape == (3, 3, 4, 2)
    losses = [float(m.train(x[i:i + 50], y[i:i + 50])["loss"]) for i in range(0, 1200, 50)]
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4])


def test_depthwise_gelu_export_trains_the_same_in_litert(digits):
    x, y = digits
    data = lt.convert(_depthwise_model())
    ours = lt.Interpreter(model_content=data).get_signature_runner("train")
    theirs = _litert_runner(data, "train")
    for k, n in enumerate([16, 30, 16]):
        xb, yb = x[40 * k:40 * k + n], y[40 * k:40 * k + n]
        assert ours(x=xb, y=yb)["loss"] == pytest.approx(theirs(x=xb, y=yb)["loss"], rel=1e-4)


def test_dropout_draws_a_new_mask_each_step_and_only_in_training():
    model = lt.nn.Sequential([lt.nn.Dropout(0.5, seed=3, input_shape=(2000,))])

    class M(lt.Module):
        @lt.signature(lt.TensorSpec([None, 2000]))
        def train(self, x):
            return model(x, training=True)

        @lt.signature(lt.TensorSpec([None, 2000]))
        def infer(self, x):
            return model(x)

    ones = np.ones((3, 2000), np.float32)
    runner = lt.Interpreter(model_content=lt.convert(M())).get_signature_runner("train")
    a, b = runner(x=ones)["output_0"], runner(x=ones)["output_0"]
    assert set(np.unique(a)) == {0.0, 2.0}  # kept values scaled by 1 / (1 - rate)
    assert 0.45 < np.mean(a == 0) < 0.55
    assert not np.array_equal(a, b)
    again = lt.Interpreter(model_content=lt.convert(M())).get_signature_runner("train")
    np.testing.assert_array_equal(again(x=ones)["output_0"], a)  # seeded: reproducible
    np.testing.assert_array_equal(M().infer(ones), ones)


def test_dropout_export_runs_in_litert(digits):
    x, y = digits
    data = lt.convert(_depthwise_model(rate=0.3, seed=1))
    theirs = _litert_runner(data, "train")
    first = theirs(x=x[:32], y=y[:32])["loss"]
    assert np.isfinite(first)
    ours = lt.Interpreter(model_content=data)
    infer_theirs = _litert_runner(data, "infer")
    np.testing.assert_allclose(ours.get_signature_runner("infer")(x=x[:8])["logits"],
                               infer_theirs(x=x[:8])["logits"], rtol=1e-4, atol=1e-5)


def test_frozen_layer_keeps_its_weights(digits):
    x, y = digits
    m = _depthwise_model()
    base = m.model.layers[0]
    base.trainable = False  # Keras style: after building, before the first trace
    m.train(x[:50], y[:50])
    after = m.variable_values()
    np.testing.assert_array_equal(after["conv2d/kernel"], base.kernel.initial_value)
    assert not np.array_equal(after["dense/kernel"], m.model.layers[-1].kernel.initial_value)
    assert base.kernel in base.non_trainable_weights
