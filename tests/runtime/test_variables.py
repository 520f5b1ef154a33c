"""Variables: shared by signatures, per interpreter, restored all-or-nothing."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain
from litetrain import checkpoint


def _infer(it, e):
    return it.get_signature_runner("infer")(x=e["infer_x"])["logits"]


def test_training_changes_what_infer_sees_and_a_new_interpreter_starts_over(tutorial):
    d, e = tutorial
    it = litetrain.Interpreter(model_path=d / "model.tflite")
    it.get_signature_runner("train")(x=e["train_x_0"], y=e["train_y_0"])
    assert not np.allclose(_infer(it, e), e["infer_logits_before"], atol=1e-6)
    other = litetrain.Interpreter(model_path=d / "model.tflite")
    np.testing.assert_allclose(_infer(other, e), e["infer_logits_before"], atol=1e-5)
    it.reset_all_variables()
    np.testing.assert_allclose(_infer(it, e), e["infer_logits_before"], atol=1e-5)


def test_iteration_counter_counts_steps(tutorial):
    d, e = tutorial
    it = litetrain.Interpreter(model_path=d / "model.tflite")
    it.get_signature_runner("infer")(x=e["infer_x"])  # runs the init subgraph
    start = int(it.variables.by_name()["iteration"])  # pre-training steps stored in the file
    train = it.get_signature_runner("train")
    for k in range(3):
        train(x=e[f"train_x_{k}"], y=e[f"train_y_{k}"])
    assert int(it.variables.by_name()["iteration"]) == start + 3


@pytest.mark.parametrize("defect", ["missing", "dtype", "shape"])
def test_bad_restore_changes_no_variable(tutorial, tmp_path, defect):
    d, e = tutorial
    good = checkpoint.read(d / "trained.ckpt")
    bad = dict(good)
    if defect == "missing":
        del bad["dense_2/kernel:0"]
    elif defect == "dtype":
        bad["dense_2/kernel:0"] = good["dense_2/kernel:0"].astype(np.float64)
    else:
        bad["dense_2/kernel:0"] = good["dense_2/kernel:0"][:64]
    checkpoint.write(tmp_path / "bad.ckpt", bad)
    it = litetrain.Interpreter(model_path=d / "model.tflite")
    before = _infer(it, e)
    weights = {k: v.copy() for k, v in it.variables.by_name().items()}
    with pytest.raises(litetrain.CheckpointError, match="dense_2/kernel:0"):
        it.get_signature_runner("restore")(checkpoint_path=tmp_path / "bad.ckpt")
    for k, v in it.variables.by_name().items():
        np.testing.assert_array_equal(v, weights[k])
    np.testing.assert_array_equal(_infer(it, e), before)


def test_restore_of_a_missing_or_corrupt_file(tutorial, tmp_path):
    d, _ = tutorial
    it = litetrain.Interpreter(model_path=d / "model.tflite")
    restore = it.get_signature_runner("restore")
    with pytest.raises(litetrain.CheckpointError, match="no checkpoint"):
        restore(checkpoint_path=tmp_path / "nope.ckpt")
    raw = bytearray((d / "trained.ckpt").read_bytes())
    raw[5000] ^= 0xFF
    (tmp_path / "flip.ckpt").write_bytes(bytes(raw))
    with pytest.raises(litetrain.CheckpointError, match="CRC32C"):
        restore(checkpoint_path=tmp_path / "flip.ckpt")


@pytest.mark.parametrize("make_path", [
    str, lambda p: str(p).encode(), lambda p: p, lambda p: np.array(str(p), dtype=np.bytes_),
    lambda p: np.array(str(p)), lambda p: np.array([str(p).encode()], dtype=object)])
def test_checkpoint_path_accepts_strings_bytes_paths_and_arrays(tutorial, tmp_path,
                                                                make_path):
    d, _e = tutorial
    it = litetrain.Interpreter(model_path=d / "model.tflite")
    it.get_signature_runner("save")(checkpoint_path=make_path(tmp_path / "w.ckpt"))
    assert (tmp_path / "w.ckpt").read_bytes() == checkpoint_bytes_of_initial(d, tmp_path)


def checkpoint_bytes_of_initial(d, tmp_path):
    it = litetrain.Interpreter(model_path=d / "model.tflite")
    it.get_signature_runner("save")(checkpoint_path=str(tmp_path / "ref.ckpt"))
    return (tmp_path / "ref.ckpt").read_bytes()


def test_save_is_atomic_when_writing_fails(tutorial, tmp_path, monkeypatch):
    d, _ = tutorial
    target = tmp_path / "w.ckpt"
    target.write_bytes(b"previous checkpoint")
    it = litetrain.Interpreter(model_path=d / "model.tflite")

    def crash(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.replace", crash)
    with pytest.raises(litetrain.CheckpointError, match="No space left"):
        it.get_signature_runner("save")(checkpoint_path=target)
    assert target.read_bytes() == b"previous checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["w.ckpt"]  # no temp file left behind
