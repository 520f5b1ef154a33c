"""The tutorial's own code runs unchanged but for the import; the CLI answers people and
scripts, with one-line errors."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np

from litetrain.cli import main
from litetrain.data import batches, load_digits, one_hot
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[1]


def test_tutorial_example_trains_saves_restores(tmp_path, capsys):
    example = runpy.run_path(str(ROOT / "examples" / "tutorial_tflite_model.py"))
    out = example["main"](["--epochs", "2", "--checkpoint", str(tmp_path / "m.ckpt")])
    assert (tmp_path / "m.ckpt").is_file()
    assert out["losses"][-1] < out["losses"][0] * 1.2
    assert not np.allclose(out["logits_before"], out["logits_after"])
    assert out["accuracy"] > 0.6  # ten classes: chance is 0.1
    assert "Test accuracy" in capsys.readouterr().out


def test_digits_are_real_and_split_deterministically():
    (xtr, ytr), (xte, yte) = load_digits()
    assert xtr.shape == (4000, 28, 28) and xte.shape == (1000, 28, 28)
    assert xtr.dtype == np.float32 and xtr.min() >= 0 and xtr.max() <= 1
    assert np.bincount(np.concatenate([ytr, yte])).tolist() == [500] * 10
    np.testing.assert_array_equal(load_digits()[1][1], yte)
    assert one_hot(np.array([2]))[0].tolist() == [0, 0, 1] + [0] * 7
    sizes = [len(b[0]) for b in batches(xtr[:250], ytr[:250], batch_size=100)]
    assert sizes == [100, 100, 50]


def test_inspect_text_and_json(capsys):
    model = FIXTURES / "tutorial" / "model.tflite"
    assert main(["inspect", str(model)]) == 0
    text = capsys.readouterr().out
    assert "train(x: float32[-1,28,28], y: float32[-1,10]) -> loss: float32[]" in text
    assert "FlexReluGrad×1" in text and "dense_1/kernel: float32[784,128]" in text
    assert main(["inspect", str(model), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["flex_ops"] == {"FlexRestore": 4, "FlexSave": 1, "FlexReluGrad": 1}
    assert data["variables"]["iteration"]["dtype"] == "int64"
    assert data["unsupported_ops"] == {}


def test_inspect_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all")
    r = subprocess.run([sys.executable, "-m", "litetrain.cli", "inspect", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "not a .tflite FlatBuffer" in r.stderr


def test_author_example_pretrains_exports_and_keeps_training(tmp_path, capsys):
    example = runpy.run_path(str(ROOT / "examples" / "author_tutorial_model.py"))
    out = example["main"](["--epochs", "3", "--device-epochs", "2", "--out", str(tmp_path)])
    assert out["converted_max_diff"] < 1e-5
    # On-device training continues where pre-training stopped instead of starting over.
    assert out["device_losses"][0] < out["pre_losses"][0] / 2
    np.testing.assert_allclose(out["restored_logits"], out["trained_logits"], atol=1e-6)
    assert out["accuracy"] > 0.8
    ops = {n.op for sg in __import__("litetrain").read_model(out["model_path"]).subgraphs
           for n in sg.nodes}
    assert not any(op.startswith("Flex") for op in ops)  # trains in stock LiteRT too


def test_trainable_builds_the_standard_signatures(tmp_path):
    import litetrain as lt

    m = lt.trainable(lt.nn.Sequential([lt.nn.Flatten(input_shape=(28, 28)),
                                       lt.nn.Dense(16, activation="relu"), lt.nn.Dense(10)]),
                     loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.Adam(1e-2))
    (x, y), _ = load_digits()
    first = m.train(x[:64], one_hot(y[:64]))["loss"]
    for _ in range(20):
        last = m.train(x[:64], one_hot(y[:64]))["loss"]
    assert last < first / 2
    it = lt.Interpreter(model_content=lt.convert(m))
    assert sorted(it.get_signature_list()) == ["infer", "restore", "save", "train"]
    it.get_signature_runner("save")(checkpoint_path=str(tmp_path / "c.ckpt"))
    probs = it.get_signature_runner("infer")(x=x[:3])["output"]
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)


def test_readme_op_list_is_generated_from_the_op_table():
    from litetrain.oplist import END, START, markdown

    text = (ROOT / "README.md").read_text()
    section = text.split(START, 1)[1].split(END, 1)[0]
    assert section.strip() == markdown().strip(), "run: python -m litetrain.oplist README.md"


def test_training_session_example_pauses_stops_and_resumes_exactly(tmp_path, capsys):
    import litetrain as lt
    from litetrain.workflow import snapshot

    example = runpy.run_path(str(ROOT / "examples" / "training_session.py"))
    out = example["main"](["--out", str(tmp_path)])
    assert 0 < out["first"].total_steps < out["report"].total_steps == 4 * 40
    assert out["report"].started_from == "snapshot" and out["accuracy"] > 0.8
    # The interrupted run's final session equals one that never paused or stopped.
    (x, y), _ = load_digits()
    data = {"bottleneck": example["bottlenecks"](x[y < 4][:800]),
            "label": one_hot(y[y < 4][:800], 4)}
    ref = lt.Interpreter(model_path=example["MODEL"])
    lt.TrainingSession(ref, data, epochs=4, batch_size=16, validation_split=0.2).run()
    got = snapshot.read(tmp_path / "head.ckpt.session")[0]
    assert all(np.array_equal(got[k], v) for k, v in snapshot.variables(ref).items())
