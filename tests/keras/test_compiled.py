"""A compiled Keras file's loss, loss weights and optimizer (with its saved iteration,
learning rate and slots) carried over: the first step litetrain takes from the loaded file
is the step Keras took next (recorded by tests/fixtures/keras/make_fixtures.py), for
Keras 3 on TensorFlow and JAX and for tf_keras; several inputs and outputs and a shared
layer train in LiteRT too; what litetrain cannot carry over is named."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import litetrain as lt
from tests.conftest import same_losses_in_litert
from tests.keras.test_load_model import KERAS, arrays

pytest.importorskip("h5py")
from litetrain.keras import load_model


def _labels(npz) -> list[np.ndarray]:
    return [t.astype(np.int32) if t.dtype.kind == "i" else t for t in arrays(npz, "t")]


@pytest.mark.parametrize("name", [
    "residual.keras", "residual.h5", "attention.keras", "attention.h5", "multi.keras",
    "multi.h5", "from_jax/residual.keras", "from_jax/attention.h5", "from_jax/multi.keras",
    "from_tf_keras/residual.h5", "from_tf_keras/attention.h5", "from_tf_keras/multi.h5",
    "rmsprop.keras", "adagrad.keras", "nested.keras", "nested.h5"])
def test_the_first_step_is_the_step_keras_takes_next(name):
    expected = np.load((KERAS / name).with_suffix(".npz"))
    model = load_model(KERAS / name)
    m = lt.trainable(model)  # the file's loss, loss weights and optimizer state
    loss = float(m.train(*arrays(expected, "x"), *_labels(expected))["loss"])
    assert loss == pytest.approx(float(expected["next_loss"]), rel=1e-5)
    values = m.variable_values()
    assert len(model.weights) == sum(k.startswith("after") for k in expected.files)
    for i, v in enumerate(model.weights):
        after = expected[f"after{i}"]
        scale = 2e-6 * max(1.0, float(np.max(np.abs(after))))
        if name.startswith("from_tf_keras") and v.name.endswith("moving_variance"):
            scale = 1e-4  # tf_keras' fused kernel averages the unbiased (n / (n-1)) variance
        np.testing.assert_allclose(values[v.name], after, rtol=0, atol=scale, err_msg=v.name)


def test_the_optimizer_state_is_the_files():
    model = load_model(KERAS / "multi.keras")
    opt = model.optimizer
    assert isinstance(opt, lt.optimizers.Adam)
    assert int(opt.iterations.initial_value) == 2  # two train_on_batch before saving
    assert float(opt.learning_rate.initial_value) == pytest.approx(0.02)
    shared = model.by_name["shared"].kernel
    assert np.any(opt.slot(shared, "m").initial_value != 0)
    assert [type(lo).__name__ for lo in model.loss] == ["CategoricalCrossentropy",
                                                       "MeanSquaredError"]
    assert model.loss_weights == [1.0, 0.5]
    assert load_model(KERAS / "cnn.keras").optimizer is None  # saved uncompiled


def test_several_inputs_outputs_and_a_shared_layer_train_in_litert():
    expected = np.load(KERAS / "multi.npz")
    model = load_model(KERAS / "multi.h5")
    assert [v.name for v in model.weights].count("shared/kernel") == 1  # one set of weights
    data = lt.convert(lt.trainable(model))
    sigs = lt.Interpreter(model_content=data).get_signature_list()
    assert sigs["train"]["inputs"] == ["left", "right", "y_label", "y_score"]
    assert set(sigs["train"]["outputs"]) == {"loss", "label_loss", "score_loss"}
    assert set(sigs["infer"]["outputs"]) == {"label", "score"}
    (left, right), (label, score) = arrays(expected, "x"), arrays(expected, "t")
    feeds = {"left": left, "right": right, "y_label": label, "y_score": score}
    losses = same_losses_in_litert(data, [feeds] * 4)
    assert losses[0] == pytest.approx(float(expected["next_loss"]), rel=1e-5)
    assert losses[-1] < losses[0]


def test_the_attention_model_trains_in_litert():
    expected = np.load(KERAS / "attention.npz")
    data = lt.convert(lt.trainable(load_model(KERAS / "attention.keras")))
    feeds = {"x": expected["x"], "y": expected["t"].astype(np.int32)}
    losses = same_losses_in_litert(data, [feeds] * 3)
    assert losses[-1] < losses[0]


def _rewrite(tmp_path, name: str, edit) -> str:
    with zipfile.ZipFile(KERAS / name) as z:
        config = json.loads(z.read("config.json"))
        weights = z.read("model.weights.h5")
    edit(config)
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", weights)
    return path


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: c["compile_config"].update(loss="poisson"),
     r"compiled loss 'poisson' is not supported"),
    (lambda c: c["compile_config"]["optimizer"].update(class_name="Adafactor"),
     r"compiled optimizer 'Adafactor' is not supported"),
    (lambda c: c["compile_config"]["optimizer"]["config"].update(amsgrad=True),
     r"'Adam': option amsgrad=True is not supported"),
    (lambda c: c["compile_config"]["optimizer"]["config"].update(
        learning_rate={"class_name": "CosineDecay", "config": {}}),
     r"a learning-rate schedule \(CosineDecay\) is not carried over"),
    (lambda c: c["compile_config"].update(loss={"label": "mse"}),
     r"compiled loss names no entry for outputs \['score'\]"),
    (lambda c: c["compile_config"].update(loss=[{
        "class_name": "CategoricalCrossentropy",
        "config": {"from_logits": False, "label_smoothing": 0.1}}, "mse"]),
     r"'CategoricalCrossentropy': option label_smoothing=0.1 is not supported"),
])
def test_what_cannot_be_carried_over_is_named(tmp_path, edit, message):
    with pytest.raises(lt.ModelFormatError, match=message):
        load_model(_rewrite(tmp_path, "multi.keras", edit))


def test_a_model_without_compiled_setup_needs_loss_and_optimizer():
    with pytest.raises(ValueError, match="give loss= and optimizer="):
        lt.trainable(load_model(KERAS / "cnn.keras"))


def _layer(config: dict, kind: str) -> dict:
    """The first layer of class ``kind`` (layer names depend on the generator's session)."""
    return next(la for la in config["config"]["layers"] if la["class_name"] == kind)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda c: _layer(c, "MultiHeadAttention")["config"].update(dropout=0.1),
     r"'\w+' \(MultiHeadAttention\): option dropout=0.1 is not supported"),
    (lambda c: _layer(c, "MultiHeadAttention")["config"].update(attention_axes=[1, 2]),
     r"option attention_axes=\[1, 2\] is not supported"),
    (lambda c: _layer(c, "MultiHeadAttention")["inbound_nodes"][0]["kwargs"].update(
        use_causal_mask=True), r"call argument use_causal_mask=True is not supported"),
    (lambda c: _layer(c, "ReLU")["config"].update(max_value=3.0),
     r"'\w+' \(ReLU\): option max_value=3.0 is not supported"),
    (lambda c: _layer(c, "GRU")["inbound_nodes"][0]["args"][0]["config"].update(
        keras_history=["nowhere", 0, 0]),
     r"layer '\w+' \(call 0\) reads \[\('nowhere', 0, 0\)\], which no layer"),
])
def test_attention_and_graph_problems_are_named(tmp_path, edit, message):
    with pytest.raises(lt.ModelFormatError, match=message):
        load_model(_rewrite(tmp_path, "attention.keras", edit))


def test_a_nested_frozen_base_stays_frozen():
    """Keras' transfer learning: a Functional base with ``trainable=False`` inside a
    Sequential. Its layers are named under the base (distinct variables), none trains,
    and the optimizer's saved slots are the head's only."""
    model = load_model(KERAS / "nested.keras")
    base, head = model.layers[0], model.layers[-1]
    assert base.name == "base" and all(v.name.startswith("base/") for v in base.weights)
    assert len(base.weights) == 8 and not base.trainable_weights
    assert model.trainable_weights == head.weights
    assert len(model.optimizer.variables) == 2 + 2 * 2  # iteration, rate, m and v per var
