"""Keras files (tests/fixtures/keras: Keras 3 on TensorFlow 2.18, Keras 3 on JAX in
``from_jax/``, tf_keras in ``from_tf_keras/``) as litetrain models: outputs equal
``model.predict``, the models train and export, unsupported layers and options are named,
and ``litetrain convert`` writes a file that trains in LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from tests.conftest import FIXTURES, same_losses_in_litert

pytest.importorskip("h5py")
from litetrain.keras import load_model

KERAS = FIXTURES / "keras"


def predict(model, xs: list[np.ndarray]) -> list[np.ndarray]:
    """The model's outputs for ``xs`` (one array per model input), run by litetrain."""
    m = lt.trainable(model, loss=lt.losses.MeanSquaredError(),
                     optimizer=lt.optimizers.SGD(0.0))
    out = m.infer(*xs)
    names = getattr(model, "output_names", None)
    return [out[n] for n in names] if names and len(names) > 1 else [out["logits"]]


def arrays(npz, prefix: str) -> list[np.ndarray]:
    """``x``/``y``/``t`` or ``x0``, ``x1``… from a fixture's npz, in order."""
    if prefix in npz.files:
        return [npz[prefix]]
    return [npz[f"{prefix}{i}"] for i in range(len(npz.files)) if f"{prefix}{i}" in npz.files]


FILES = [f"{kind}.{ext}" for kind in ("cnn", "residual", "attention", "multi", "nested")
         for ext in ("keras", "h5")] + \
    ["sequence.keras", "blocks.keras", "tutorial.keras"] + \
    [f"from_jax/{kind}.{ext}" for kind in ("cnn", "residual", "attention", "multi")
     for ext in ("keras", "h5")] + \
    [f"from_tf_keras/{kind}.h5" for kind in ("cnn", "residual", "attention", "multi")]


@pytest.mark.parametrize("name", FILES)
def test_outputs_equal_keras_predict(name):
    expected = np.load((KERAS / name).with_suffix(".npz"))
    model = load_model(KERAS / name)
    got = predict(model, arrays(expected, "x"))
    for g, y in zip(got, arrays(expected, "y"), strict=True):
        assert np.max(np.abs(g - y)) <= 1e-5 * np.max(np.abs(y))


def test_a_loaded_model_trains_and_exports():
    expected = np.load(KERAS / "cnn.npz")
    model = load_model(KERAS / "cnn.keras")
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(),
                     optimizer=lt.optimizers.SGD(0.05))
    y = np.eye(4, dtype=np.float32)[np.arange(5) % 4]
    losses = [float(m.train(expected["x"], y)["loss"]) for _ in range(5)]
    assert losses[-1] < losses[0]


def test_convert_command_writes_a_file_litert_trains(tmp_path):
    from litetrain.cli import main

    out = tmp_path / "seq.tflite"
    assert main(["convert", str(KERAS / "sequence.keras"), "-o", str(out), "--optimizer",
                 "adam:0.01"]) == 0
    data = out.read_bytes()
    assert set(lt.Interpreter(model_content=data).get_signature_list()) == {
        "train", "infer", "save", "restore"}
    x = np.load(KERAS / "sequence.npz")["x"].astype(np.int32)
    y = np.eye(3, dtype=np.float32)[np.arange(4) % 3]
    losses = same_losses_in_litert(data, [{"x": x, "y": y}] * 3)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(("kind", "loss"), [
    ("residual", lt.losses.CategoricalCrossentropy()),
    ("blocks", lt.losses.CategoricalCrossentropy(from_logits=True))])
def test_loaded_models_train_the_same_in_litert(kind, loss):
    expected = np.load(KERAS / f"{kind}.npz")
    model = load_model(KERAS / f"{kind}.{'keras' if kind == 'blocks' else 'h5'}")
    m = lt.trainable(model, loss=loss, optimizer=lt.optimizers.Adam(1e-2))
    classes = expected["y"].shape[-1]
    y = np.eye(classes, dtype=np.float32)[np.arange(len(expected["x"])) % classes]
    losses = same_losses_in_litert(lt.convert(m), [{"x": expected["x"], "y": y}] * 4)
    assert losses[-1] < losses[0]


def test_unsupported_layers_and_options_are_named(tmp_path):
    import json
    import shutil
    import zipfile

    src = KERAS / "sequence.keras"
    with zipfile.ZipFile(src) as z:
        config = json.loads(z.read("config.json"))
        weights = z.read("model.weights.h5")
    def write(cfg, name):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("config.json", json.dumps(cfg))
            z.writestr("model.weights.h5", weights)
        return path

    lstm = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "LSTM")
    lstm["config"]["go_backwards"] = True
    with pytest.raises(lt.ModelFormatError, match=r"'lstm' \(LSTM\): option go_backwards"):
        load_model(write(config, "backwards.keras"))
    lstm["config"]["go_backwards"] = False
    lstm["class_name"] = "ConvLSTM2D"
    with pytest.raises(lt.ModelFormatError, match=r"\(ConvLSTM2D\) is not supported"):
        load_model(write(config, "convlstm.keras"))
    shutil.copy(src, tmp_path / "ok.keras")
    assert load_model(tmp_path / "ok.keras").layers[0].name == "embedding"


@pytest.mark.parametrize("name", ["cnn.keras", "from_jax/cnn.h5", "from_tf_keras/cnn.h5",
                                  "from_jax/attention.keras", "from_tf_keras/attention.h5",
                                  "from_jax/multi.h5", "from_jax/residual.keras",
                                  "from_tf_keras/residual.h5", "nested.h5"])
def test_files_from_every_writer_train_the_same_in_litert(name):
    expected = np.load((KERAS / name).with_suffix(".npz"))
    model = load_model(KERAS / name)
    for layer in model.layers:
        if isinstance(layer, lt.nn.Dropout):
            # LiteRT's RANDOM_UNIFORM draws other bits than litetrain's, even seeded, so the
            # two cannot agree on a dropout mask; every other layer trains the same
            layer.rate = 0.0
    xs, ts = arrays(expected, "x"), arrays(expected, "t")
    if not ts:
        classes = expected["y"].shape[-1]
        ts = [np.eye(classes, dtype=np.float32)[np.arange(len(xs[0])) % classes]]
    ts = [t.astype(np.int32) if t.dtype.kind == "i" else t for t in ts]
    m = lt.trainable(model, loss=model.loss or lt.losses.CategoricalCrossentropy(),
                     optimizer=model.optimizer or lt.optimizers.Adam(1e-2))
    data = lt.convert(m)
    names = lt.Interpreter(model_content=data).get_signature_list()["train"]["inputs"]
    losses = same_losses_in_litert(data, [dict(zip(names, [*xs, *ts], strict=True))] * 3)
    assert min(losses[1:]) < losses[0]  # (SGD with momentum 0.9 may overshoot after)


def test_broken_files_are_named(tmp_path):
    (tmp_path / "text.keras").write_text("not a model")
    with pytest.raises(lt.ModelFormatError, match=r"text.keras' is not a Keras model file"):
        load_model(tmp_path / "text.keras")
    (tmp_path / "cut.keras").write_bytes((KERAS / "multi.keras").read_bytes()[:3000])
    with pytest.raises(lt.ModelFormatError, match=r"cut.keras' is not a Keras model file"):
        load_model(tmp_path / "cut.keras")

    import json
    import zipfile

    with zipfile.ZipFile(KERAS / "multi.keras") as z:
        config = json.loads(z.read("config.json"))
        weights = z.read("model.weights.h5")
    shared = next(la for la in config["config"]["layers"] if la["name"] == "shared")
    shared["config"]["units"] = 7  # the file's kernel is [6, 5]
    with zipfile.ZipFile(tmp_path / "units.keras", "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", weights)
    with pytest.raises(lt.ModelFormatError, match=r"weight 'shared/kernel': the file's is "
                       r"\[6, 5\], the layer's \[6, 7\]"):
        load_model(tmp_path / "units.keras")
