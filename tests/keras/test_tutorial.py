"""The on-device training tutorial's model saved by Keras 3 (tests/fixtures/keras/
tutorial.keras: Flatten → Dense(128, relu) → Dense(10), compiled with SGD and a
cross-entropy on logits, as the tutorial compiles it) becomes, in one command, a file the
tutorial's own on-device code trains: the same signature names, argument names and result
keys as TensorFlow's converter wrote for the tutorial (tests/fixtures/tutorial/meta.json),
trained by the tutorial's loop in ai-edge-litert and in litetrain, saved and restored
through a checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

import litetrain as lt
from tests.conftest import FIXTURES, same_losses_in_litert
from tests.keras.test_load_model import KERAS

pytest.importorskip("h5py")


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> bytes:
    from litetrain.cli import main

    out = tmp_path_factory.mktemp("tutorial") / "model.tflite"
    assert main(["convert", str(KERAS / "tutorial.keras"), "-o", str(out)]) == 0
    return out.read_bytes()


def test_the_signatures_are_the_tutorials(converted):
    tutorial = json.loads((FIXTURES / "tutorial" / "meta.json").read_text())["signatures"]
    ours = lt.Interpreter(model_content=converted).get_signature_list()
    assert {k: {p: sorted(v[p]) for p in v} for k, v in ours.items()} == \
        {k: {p: sorted(v[p]) for p in v} for k, v in tutorial.items()}


def test_the_tutorials_loop_trains_it_and_checkpoints_it(converted, tmp_path):
    expected = np.load(KERAS / "tutorial.npz")
    x, y = expected["x"], expected["t"]
    # the tutorial's on-device code, with only the import changed
    interpreter = lt.Interpreter(model_content=converted)
    interpreter.allocate_tensors()
    train = interpreter.get_signature_runner("train")
    losses = [float(train(x=x, y=y)["loss"]) for _ in range(5)]
    assert losses[0] == pytest.approx(float(expected["next_loss"]), rel=1e-5)  # Keras' step
    assert losses[-1] < losses[0]
    save = interpreter.get_signature_runner("save")
    ckpt = str(tmp_path / "model.ckpt")
    save(checkpoint_path=np.array(ckpt, dtype=np.bytes_))
    trained = interpreter.get_signature_runner("infer")(x=x)["logits"]

    another = lt.Interpreter(model_content=converted)
    another.allocate_tensors()
    fresh = another.get_signature_runner("infer")(x=x)
    np.testing.assert_allclose(fresh["logits"], expected["y"], rtol=1e-5, atol=1e-6)
    another.get_signature_runner("restore")(checkpoint_path=np.array(ckpt, dtype=np.bytes_))
    result = another.get_signature_runner("infer")(x=x)
    np.testing.assert_array_equal(result["logits"], trained)
    np.testing.assert_allclose(result["output"].sum(axis=1), 1.0, rtol=1e-5)


def test_litert_runs_the_tutorials_train_loop(converted):
    expected = np.load(KERAS / "tutorial.npz")
    losses = same_losses_in_litert(converted, [{"x": expected["x"], "y": expected["t"]}] * 3)
    assert losses[0] == pytest.approx(float(expected["next_loss"]), rel=1e-5)
    assert losses[-1] < losses[0]


def test_split_puts_the_frozen_base_in_load(tmp_path, capsys):
    """``--trainable last:N --split``: load(x) gives the frozen layers' bottleneck (once per
    example), train(bottleneck, y) trains the last N layers, the same in LiteRT; infer(x)
    is still the whole model (Keras' predict)."""
    from litetrain.cli import main

    out = tmp_path / "split.tflite"
    assert main(["convert", str(KERAS / "cnn.keras"), "-o", str(out), "--trainable",
                 "last:2", "--split", "--optimizer", "sgd:0.05"]) == 0
    data = out.read_bytes()
    device = lt.Interpreter(model_content=data)
    assert set(device.get_signature_list()) == {"load", "train", "infer", "save", "restore"}
    expected = np.load(KERAS / "cnn.npz")
    np.testing.assert_allclose(device.get_signature_runner("infer")(x=expected["x"])["logits"],
                               expected["y"], rtol=1e-5, atol=1e-6)
    bottleneck = device.get_signature_runner("load")(x=expected["x"])["bottleneck"]
    assert bottleneck.shape == (5, 5, 5, 6)  # pooled features; Flatten and Dense train
    y = np.eye(4, dtype=np.float32)[np.arange(5) % 4]
    losses = same_losses_in_litert(data, [{"bottleneck": bottleneck, "y": y}] * 4)
    assert losses[-1] < losses[0]
    assert main(["convert", str(KERAS / "cnn.keras"), "-o", str(out), "--split"]) != 0
    assert "--split needs --trainable last:N, got 'all'" in capsys.readouterr().err
