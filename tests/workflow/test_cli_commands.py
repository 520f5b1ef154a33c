"""``litetrain train / infer / bench``: resume, time budget, Ctrl-C, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import litetrain as lt
from litetrain import checkpoint
from litetrain.cli import main
from litetrain.data import load_digits, one_hot, write_idx
from tests.conftest import FIXTURES

TUTORIAL = str(FIXTURES / "tutorial" / "model.tflite")  # TensorFlow-made, Flex save/restore


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    (x, y), (xt, yt) = load_digits()
    np.savez(d / "train.npz", x=x[:600], y=one_hot(y[:600]))
    np.savez(d / "test.npz", x=xt[:200], labels=yt[:200])
    np.savez(d / "wrong_names.npz", images=x[:10], labels=y[:10])
    write_idx(d / "t10k-images-idx3-ubyte.gz", (xt[:200] * 255).round().astype(np.uint8))
    write_idx(d / "t10k-labels-idx1-ubyte.gz", yt[:200].astype(np.uint8))
    return d


def _weights(path) -> dict[str, np.ndarray]:
    return checkpoint.read(path)


def test_train_saves_then_resumes(tmp_path, data_files, capsys):
    ckpt = tmp_path / "w.ckpt"
    args = ["train", TUTORIAL, "--data", str(data_files / "train.npz"), "--checkpoint",
            str(ckpt), "--epochs", "1", "--batch-size", "100", "--quiet"]
    assert main(args) == 0
    first = _weights(ckpt)
    out = capsys.readouterr().out
    assert "started from the model file's weights" in out and "6 steps" in out
    assert main(args) == 0
    assert f"started from the weights in {ckpt}" in capsys.readouterr().out
    second = _weights(ckpt)
    # Resuming continued from the saved weights: replaying both epochs in one interpreter
    # from the file's weights gives exactly the second checkpoint.
    interp = lt.Interpreter(model_path=TUTORIAL)
    from litetrain.workflow.training import fit
    z = np.load(data_files / "train.npz")
    fit(interp, dict(z), epochs=1, batch_size=100, progress=False, seed=0)
    fit(interp, dict(z), epochs=1, batch_size=100, progress=False, seed=0)
    interp.get_signature_runner("save")(checkpoint_path=str(tmp_path / "ref.ckpt"))
    ref = _weights(tmp_path / "ref.ckpt")
    for k in second:
        np.testing.assert_allclose(second[k], ref[k], rtol=1e-6, atol=1e-7)
    assert any(not np.array_equal(first[k], second[k]) for k in first)


def test_time_budget_stops_early_and_saves(tmp_path, data_files, capsys):
    ckpt = tmp_path / "w.ckpt"
    assert main(["train", TUTORIAL, "--data", str(data_files / "train.npz"), "--checkpoint",
                 str(ckpt), "--epochs", "1000", "--batch-size", "10", "--time-budget", "0.3",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "stopped: time budget" in out and ckpt.is_file()
    steps = int(out.split(" steps")[0].split()[-1])
    assert 0 < steps < 1000 * 60


def test_ctrl_c_saves_and_exits_130(tmp_path, data_files, monkeypatch, capsys):
    real = lt.Interpreter.get_signature_runner
    calls = {"n": 0}

    def flaky(self, key=None):
        runner = real(self, key)
        if key != "train":
            return runner

        def step(**kw):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            return runner(**kw)
        step.get_input_details = runner.get_input_details
        return step

    monkeypatch.setattr(lt.Interpreter, "get_signature_runner", flaky)
    ckpt = tmp_path / "w.ckpt"
    rc = main(["train", TUTORIAL, "--data", str(data_files / "train.npz"), "--checkpoint",
               str(ckpt), "--epochs", "5", "--batch-size", "100", "--quiet"])
    assert rc == 130
    out = capsys.readouterr().out
    assert "2 steps" in out and "stopped: interrupted" in out
    saved = _weights(ckpt)
    interp = lt.Interpreter(model_path=TUTORIAL)
    real(interp, "save")(checkpoint_path=str(tmp_path / "file.ckpt"))
    initial = _weights(tmp_path / "file.ckpt")
    assert set(saved) == set(initial)
    assert any(not np.array_equal(saved[k], initial[k]) for k in saved)  # 2 steps were kept


def test_infer_with_checkpoint_and_accuracy(tmp_path, data_files, capsys):
    ckpt = tmp_path / "w.ckpt"
    main(["train", TUTORIAL, "--data", str(data_files / "train.npz"), "--checkpoint",
          str(ckpt), "--epochs", "3", "--quiet"])
    capsys.readouterr()
    out_file = tmp_path / "out.npz"
    assert main(["infer", TUTORIAL, "--data", str(data_files / "test.npz"), "--checkpoint",
                 str(ckpt), "--output", str(out_file)]) == 0
    text = capsys.readouterr().out
    acc = float(text.split("accuracy: ")[1].split("%")[0])
    assert acc > 60
    logits = np.load(out_file)["logits"]
    assert logits.shape == (200, 10)
    assert main(["infer", TUTORIAL, "--data", str(data_files / "t10k-images-idx3-ubyte.gz"),
                 "--checkpoint", str(ckpt)]) == 0  # IDX input (labels beside it)
    assert "200 examples" in capsys.readouterr().out


def test_bench_reports_each_signature_and_batch(capsys):
    assert main(["bench", TUTORIAL, "--batch-sizes", "1,8"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert {(r[0], r[1]) for r in rows} == {("infer", "1"), ("infer", "8"), ("train", "1"),
                                             ("train", "8")}
    assert all(float(r[2]) > 0 and float(r[3]) >= float(r[2]) for r in rows)


@pytest.mark.parametrize("argv, message", [
    (["train", TUTORIAL, "--data", "missing.npz", "--checkpoint", "c"], "does not exist"),
    (["train", TUTORIAL, "--data", "{d}/wrong_names.npz", "--checkpoint", "c"],
     "needs arrays named ['x', 'y']; missing ['x', 'y']"),
    (["train", str(FIXTURES / "inference" / "float.tflite"), "--data", "{d}/train.npz",
      "--checkpoint", "c"], "no 'train' signature"),
    (["train", "nowhere.tflite", "--data", "{d}/train.npz", "--checkpoint", "c"],
     "cannot read model file"),
    (["bench", TUTORIAL, "--batch-sizes", "1,x"], "--batch-sizes takes positive integers"),
    (["infer", TUTORIAL, "--data", "{d}/test.npz", "--checkpoint", "none.ckpt"],
     "does not exist"),
])
def test_bad_input_is_one_line_and_nonzero(argv, message, data_files, tmp_path):
    argv = [a.format(d=data_files) for a in argv]
    r = subprocess.run([sys.executable, "-m", "litetrain.cli", *argv], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr


def test_every_subcommand_has_help():
    for cmd in ("inspect", "train", "infer", "bench", "quantize", "demo"):
        r = subprocess.run([sys.executable, "-m", "litetrain.cli", cmd, "--help"],
                           capture_output=True, text=True)
        assert r.returncode == 0 and "usage: litetrain" in r.stdout
