"""``litetrain quantize MODEL --mode int8|dynamic_range|float16 [--data] [--checkpoint]`` on
a TensorFlow-made model (one ``serving_default`` signature, no training signatures): the
file is written (by default beside the current folder as ``<name>_<mode>.tflite``), its
size and the accuracy before and after are printed, and the written model runs. The
tutorial model with a checkpoint is covered in tests/workflow/test_cli_first_hour.py."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.cli import main
from tests.conftest import FIXTURES

MODEL = FIXTURES / "tf_quantized" / "efficientnet_like" / "float.tflite"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Varied inputs and the float model's own top-1 classes as labels."""
    rng = np.random.default_rng(3)
    with np.load(FIXTURES / "tf_quantized" / "efficientnet_like" / "expected.npz") as f:
        base = f["input/b4/in0"]
    x = (base[rng.integers(0, 4, 48)] * rng.uniform(0.2, 1.8, (48, 1, 1, 3))).astype(
        np.float32)
    run = lt.Interpreter(model_path=MODEL).get_signature_runner("serving_default")
    y = run(input_1=x)["dense_10"].argmax(-1)
    assert len(set(y.tolist())) > 1  # not one class for all: accuracy can move
    path = tmp_path_factory.mktemp("quantize_cli") / "calib.npz"
    np.savez(path, input_1=x, labels=y)
    return path, x


@pytest.mark.parametrize("mode", ["int8", "dynamic_range", "float16"])
def test_quantize_writes_the_default_file_and_prints_size_and_accuracy(mode, labelled,
                                                                        tmp_path, capsys,
                                                                        monkeypatch):
    data, x = labelled
    monkeypatch.chdir(tmp_path)
    assert main(["quantize", str(MODEL), "--mode", mode, "--data", str(data)]) == 0
    out = tmp_path / f"float_{mode}.tflite"
    text = capsys.readouterr().out
    assert f"wrote float_{mode}.tflite ({mode}): {out.stat().st_size:,} bytes" in text
    assert f"the {MODEL.stat().st_size:,} of" in text
    ratio = float(text.split(" bytes, ")[1].split("x")[0])
    assert ratio == pytest.approx(out.stat().st_size / MODEL.stat().st_size, abs=0.01)
    assert ratio < 0.7
    before, after = (float(p.split("%")[0]) for p in
                     text.split("accuracy of 'serving_default': ")[1].split(" before, "))
    assert before == 100.0  # the labels are the float model's own answers
    assert after >= 75.0
    # the written model runs in litetrain and agrees with the float model on most inputs
    q = lt.Interpreter(model_path=out).get_signature_runner("serving_default")
    want = lt.Interpreter(model_path=MODEL).get_signature_runner("serving_default")(
        input_1=x)["dense_10"]
    got = q(input_1=x)["dense_10"]
    assert np.mean(got.argmax(-1) == want.argmax(-1)) == pytest.approx(after / 100, abs=5e-5)


def test_quantize_without_labels_prints_size_only(labelled, tmp_path, capsys):
    _, x = labelled
    data = tmp_path / "unlabelled.npz"
    np.savez(data, input_1=x[:8])
    out = tmp_path / "q.tflite"
    assert main(["quantize", str(MODEL), "--mode", "dynamic_range", "--data", str(data),
                 "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "no accuracy: the data has no 'labels'" in text and out.exists()


@pytest.mark.parametrize("argv, message", [
    (["--mode", "int8"], "give --data"),
    (["--mode", "float16", "-o", str(MODEL)], "is the model itself"),
    (["--mode", "float16", "--signature", "infer"], "no inference signature 'infer'"),
    (["--mode", "float16", "--checkpoint", "nowhere.ckpt"], "does not exist"),
])
def test_bad_quantize_requests_are_one_line(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["quantize", str(MODEL), *argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not list(tmp_path.iterdir())  # nothing written
