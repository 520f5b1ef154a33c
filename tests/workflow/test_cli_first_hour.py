"""What a new user hits in the first hour: help texts, labels as integers, files that are
not what they are named, zero batch sizes, output names, and ``litetrain quantize``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import litetrain as lt
from litetrain.cli import main
from litetrain.data import load_digits, one_hot
from tests.conftest import FIXTURES

TUTORIAL = str(FIXTURES / "tutorial" / "model.tflite")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("first_hour")
    (x, y), (xt, yt) = load_digits()
    np.savez(d / "train.npz", x=x[:300], y=one_hot(y[:300]))
    np.savez(d / "int_labels.npz", x=x[:300], y=y[:300])  # class indices, not one-hot
    np.savez(d / "test.npz", x=xt[:200], labels=yt[:200])
    np.savez(d / "empty.npz", x=x[:0], y=one_hot(y[:0]))
    np.savez(d / "nan.npz", x=np.full_like(x[:100], np.nan), y=one_hot(y[:100]))
    (d / "pickle.npz").write_bytes(b"\x80\x04\x95not a zip")
    return d


def _cli(*argv, cwd=None):
    return subprocess.run([sys.executable, "-m", "litetrain.cli", *map(str, argv)],
                          capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("argv, message", [
    (["train", TUTORIAL, "--data", "{d}/pickle.npz", "--checkpoint", "c"],
     "not a .npz file (a zip of arrays"),
    (["train", TUTORIAL, "--data", "{d}/empty.npz", "--checkpoint", "c"], "no examples"),
    (["train", TUTORIAL, "--data", "{d}/train.npz", "--checkpoint", "c", "--signature",
      "save"], "takes strings"),
    (["train", TUTORIAL, "--data", "{d}/train.npz", "--checkpoint", "c", "--signature",
      "infer"], "changes no variable"),
    (["train", TUTORIAL, "--data", "{d}/train.npz", "--checkpoint", "nowhere/c"],
     "folder 'nowhere' does not exist"),
    (["bench", TUTORIAL, "--batch-sizes", "0"], "positive integers"),
    (["bench", TUTORIAL, "--signature", "save"], "takes strings"),
    (["quantize", TUTORIAL, "--mode", "int8", "-o", "q.tflite"], "give --data"),
])
def test_bad_input_is_one_line(argv, message, files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main([a.format(d=files) for a in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_nan_data_stops_and_keeps_the_good_checkpoint(files, tmp_path, capsys):
    ck = tmp_path / "c.ckpt"
    assert main(["train", TUTORIAL, "--data", str(files / "train.npz"), "--checkpoint",
                 str(ck), "--quiet"]) == 0
    good = ck.read_bytes()
    assert main(["train", TUTORIAL, "--data", str(files / "nan.npz"), "--checkpoint",
                 str(ck), "--quiet"]) == 2
    assert "gave loss nan" in capsys.readouterr().err
    assert ck.read_bytes() == good


def test_zero_batch_size_is_a_usage_error(files):
    r = _cli("infer", TUTORIAL, "--data", files / "test.npz", "--batch-size", "0")
    assert r.returncode == 2 and "expected a positive integer, got '0'" in r.stderr
    assert "Traceback" not in r.stderr


def test_integer_labels_become_one_hot_and_the_runner_says_so(files, tmp_path, capsys):
    assert main(["train", TUTORIAL, "--data", str(files / "int_labels.npz"), "--checkpoint",
                 str(tmp_path / "c.ckpt"), "--quiet"]) == 0
    train = lt.Interpreter(model_path=TUTORIAL).get_signature_runner("train")
    x, y = np.load(files / "int_labels.npz").values()
    with pytest.raises(lt.SignatureError) as e:
        train(x=x[:4], y=y[:4])
    text = str(e.value)
    assert "got an int64 array of shape [4]" in text and "one_hot(labels, 10)" in text
    with pytest.raises(lt.SignatureError, match="got a float64 array; convert it with "
                                                r"\.astype\(np\.float32\)"):
        train(x=x[:4].astype(np.float64), y=one_hot(y[:4]))


def test_infer_output_name_is_the_file_written(files, tmp_path, capsys):
    assert main(["infer", TUTORIAL, "--data", str(files / "test.npz"), "--output",
                 str(tmp_path / "out.txt")]) == 0
    assert f"wrote {tmp_path / 'out.txt.npz'}" in capsys.readouterr().out
    assert np.load(tmp_path / "out.txt.npz")["logits"].shape == (200, 10)


def test_help_has_text_and_defaults(capsys):
    for cmd, needles in [("train", ["passes over the training examples (default: 1)",
                                    "examples per step (default: 32)",
                                    "the training-step signature (default: train)",
                                    "a .tflite file with train/save/restore", "--resume",
                                    "--max-steps", "--validation-split", "--keep"]),
                         ("infer", ["(default: 256)", "(default: infer)"]),
                         ("quantize", ["--mode", "int8", "dynamic_range", "float16"])]:
        with pytest.raises(SystemExit) as done:
            main([cmd, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert done.value.code == 0 and all(n in text for n in needles), (cmd, text)


@pytest.mark.parametrize("mode", ["dynamic_range", "float16", "int8"])
def test_quantize_writes_the_file_and_reports_size_and_accuracy(mode, files, tmp_path,
                                                                  capsys):
    ck = files / "personalised.ckpt"
    if not ck.exists():
        assert main(["train", TUTORIAL, "--data", str(files / "train.npz"), "--checkpoint",
                     str(ck), "--epochs", "4", "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "q.tflite"
    assert main(["quantize", TUTORIAL, "--mode", mode, "--data", str(files / "test.npz"),
                 "--checkpoint", str(ck), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    ratio = float(text.split(" bytes, ")[1].split("x")[0])
    assert ratio == pytest.approx(out.stat().st_size / (FIXTURES / "tutorial" /
                                                        "model.tflite").stat().st_size,
                                  abs=0.01)
    assert ratio < (0.6 if mode == "float16" else 0.4)
    before, after = (float(p.split("%")[0]) for p in text.split("accuracy of 'infer': ")[1]
                     .split(" before, "))
    assert before > 50 and abs(after - before) <= 3  # ten classes: chance is 10 %
    q = lt.Interpreter(model_path=out)  # the file runs, with the personalised weights
    assert list(q.get_signature_list()) == ["infer"]
