"""TensorFlow-made models run in litetrain exactly as TensorFlow Lite 2.18 ran them."""

from __future__ import annotations

import numpy as np

import litetrain

ATOL = 1e-5


def test_float_cnn_inference():
    from tests.conftest import FIXTURES

    e = np.load(FIXTURES / "inference" / "expected.npz")
    it = litetrain.Interpreter(model_path=FIXTURES / "inference" / "float.tflite")
    probs = it.get_signature_runner()(x=e["x"])["probs"]
    np.testing.assert_allclose(probs, e["float_probs"], atol=ATOL)


def test_tutorial_infer_before_training(tutorial):
    d, e = tutorial
    out = litetrain.Interpreter(model_path=d / "model.tflite").get_signature_runner("infer")(
        x=e["infer_x"])
    np.testing.assert_allclose(out["logits"], e["infer_logits_before"], atol=ATOL)
    np.testing.assert_allclose(out["output"], e["infer_output_before"], atol=ATOL)


def test_tutorial_train_save_restore(tutorial, tmp_path):
    d, e = tutorial
    it = litetrain.Interpreter(model_path=d / "model.tflite")
    train = it.get_signature_runner("train")
    losses = [float(train(x=e[f"train_x_{k}"], y=e[f"train_y_{k}"])["loss"]) for k in range(5)]
    np.testing.assert_allclose(losses, e["train_losses"], rtol=1e-5)
    after = it.get_signature_runner("infer")(x=e["infer_x"])["logits"]
    np.testing.assert_allclose(after, e["infer_logits_after"], atol=ATOL)

    ckpt = tmp_path / "model.ckpt"
    out = it.get_signature_runner("save")(checkpoint_path=np.array(str(ckpt), dtype=np.bytes_))
    assert ckpt.is_file() and out["checkpoint_path"].reshape(-1)[0] == str(ckpt).encode()

    fresh = litetrain.Interpreter(model_path=d / "model.tflite")
    restored = fresh.get_signature_runner("restore")(checkpoint_path=str(d / "trained.ckpt"))
    for name, value in restored.items():
        np.testing.assert_array_equal(value, e[f"restored/{name}"])
    np.testing.assert_allclose(fresh.get_signature_runner("infer")(x=e["infer_x"])["logits"],
                               e["infer_logits_restored"], atol=ATOL)


def test_checkpoint_written_for_tensorflows_weights_is_byte_identical(tutorial, tmp_path):
    d, _ = tutorial
    it = litetrain.Interpreter(model_path=d / "model.tflite")
    it.get_signature_runner("restore")(checkpoint_path=d / "trained.ckpt")
    it.get_signature_runner("save")(checkpoint_path=tmp_path / "again.ckpt")
    assert (tmp_path / "again.ckpt").read_bytes() == (d / "trained.ckpt").read_bytes()


def test_personalization_load_train_infer_save_restore(personalization, tmp_path):
    d, e = personalization
    it = litetrain.Interpreter(model_path=d / "model.tflite")
    before = it.get_signature_runner("infer")(feature=e["infer_x"])["output"]
    np.testing.assert_allclose(before, e["infer_output_before"], atol=ATOL)
    load, train = it.get_signature_runner("load"), it.get_signature_runner("train")
    losses = []
    for k in range(6):
        b = load(feature=e[f"train_feature_{k}"])["bottleneck"]
        np.testing.assert_allclose(b, e[f"train_bottleneck_{k}"], atol=ATOL)
        losses.append(float(train(bottleneck=b, label=e[f"train_label_{k}"])["loss"]))
    np.testing.assert_allclose(losses, e["train_losses"], rtol=1e-5)
    np.testing.assert_allclose(it.get_signature_runner("infer")(feature=e["infer_x"])["output"],
                               e["infer_output_after"], atol=ATOL)
    it.get_signature_runner("save")(checkpoint_path=tmp_path / "head.ckpt")
    fresh = litetrain.Interpreter(model_path=d / "model.tflite")
    fresh.get_signature_runner("restore")(checkpoint_path=tmp_path / "head.ckpt")
    np.testing.assert_allclose(
        fresh.get_signature_runner("infer")(feature=e["infer_x"])["output"],
        e["infer_output_restored"], atol=ATOL)
