"""``TrainingSession``: background control, budgets, validation and early stopping, best
and last checkpoints, and the bad cases (non-finite loss, empty data, a signature that is
not a training step, an unwritable folder, Ctrl-C during the save)."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

import litetrain as lt
from litetrain import checkpoint
from litetrain.data import load_digits, one_hot
from litetrain.workflow import snapshot
from litetrain.workflow.session import TrainingError, TrainingSession
from tests.conftest import FIXTURES

TUTORIAL = FIXTURES / "tutorial" / "model.tflite"  # TensorFlow-made, SGD, Flex save/restore


@pytest.fixture(scope="module")
def digits():
    (x, y), _ = load_digits()
    return {"x": x[:200], "y": one_hot(y[:200])}


def _interp():
    return lt.Interpreter(model_path=TUTORIAL)


def test_background_pause_resume_stop(digits):
    seen = []
    s = TrainingSession(_interp(), digits, epochs=1000, batch_size=10,
                        on_step=lambda sess, loss: seen.append(loss))
    s.start()
    while len(seen) < 3:
        time.sleep(0.001)
    s.pause()
    while not s.paused:
        time.sleep(0.001)
    held = len(seen)
    time.sleep(0.1)
    assert len(seen) == held and s.running  # paused between steps
    s.resume()
    while len(seen) < held + 3:
        time.sleep(0.001)
    s.stop()
    report = s.wait(timeout=30)
    assert report is not None and report.stopped == "stopped" and not s.running
    assert report.steps == len(seen) == len(report.losses) >= held + 3
    assert report.seconds < 30


def test_background_errors_reach_wait(digits):
    bad = dict(digits, x=np.full_like(digits["x"], np.nan))
    s = TrainingSession(_interp(), bad, epochs=1, batch_size=10).start()
    with pytest.raises(TrainingError, match="gave loss nan"):
        s.wait(timeout=30)


def test_max_steps_counts_across_resumes(digits, tmp_path):
    ck = tmp_path / "c.ckpt"
    r = TrainingSession(_interp(), digits, epochs=3, batch_size=50, max_steps=5,
                        checkpoint=ck).run()
    assert (r.stopped, r.steps, r.total_steps, r.epochs) == ("max steps", 5, 5, 1.25)
    r = TrainingSession(_interp(), digits, epochs=3, batch_size=50, max_steps=9,
                        checkpoint=ck, resume=True).run()
    assert (r.started_from, r.steps, r.total_steps) == ("snapshot", 4, 9)
    # Different settings cannot continue the session exactly: say so, changing nothing.
    it = _interp()
    snapshot.initialize(it)
    before = snapshot.variables(it)
    with pytest.raises(TrainingError, match="was made with"):
        TrainingSession(it, digits, epochs=3, batch_size=20, checkpoint=ck,
                        resume=True).run()
    assert all(np.array_equal(before[k], v) for k, v in snapshot.variables(it).items())


def test_early_stopping_keeps_best_checkpoint_and_last_snapshot(digits, tmp_path,
                                                                monkeypatch):
    losses = iter([1.0, 0.8, 0.9, 0.95, 0.5])
    monkeypatch.setattr(TrainingSession, "validation_loss", lambda self: next(losses))
    per_epoch = []
    ck = tmp_path / "c.ckpt"
    s = TrainingSession(_interp(), digits, epochs=10, batch_size=40, validation_split=0.2,
                        patience=2, keep="best", checkpoint=ck,
                        on_epoch=lambda sess, v: per_epoch.append(
                            {k: v.copy() for k, v in sess.interpreter.variables.by_name()
                             .items()}))
    r = s.run()
    assert r.stopped == "early stopping" and r.validation_losses == [1.0, 0.8, 0.9, 0.95]
    assert r.best_validation_loss == 0.8 and r.total_steps == 4 * 4
    saved = checkpoint.read(ck)  # the model's own save: the epoch-2 weights
    for name, value in saved.items():
        assert np.array_equal(value, per_epoch[1][name.split(":")[0]]), name
    last, state, _ = snapshot.read(str(ck) + ".session")  # the session: the last state
    assert state["total_steps"] == 16
    assert np.array_equal(last["variables/dense_1/kernel"], per_epoch[3]["dense_1/kernel"])


def test_validation_loss_undoes_its_steps(digits):
    it = _interp()
    s = TrainingSession(it, digits, epochs=1, batch_size=32, validation_split=0.25)
    snapshot.initialize(it)
    before = snapshot.variables(it)
    first, second = s.validation_loss(), s.validation_loss()
    assert first == second and np.isfinite(first)
    after = snapshot.variables(it)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_non_finite_loss_stops_and_never_overwrites(digits, tmp_path):
    ck = tmp_path / "c.ckpt"
    TrainingSession(_interp(), digits, epochs=1, batch_size=50, checkpoint=ck).run()
    good = {p: p.read_bytes() for p in (ck, tmp_path / "c.ckpt.session")}
    bad = {k: v.copy() for k, v in digits.items()}
    bad["x"][130:] = np.nan  # finite for two steps, then NaN
    it = _interp()
    s = TrainingSession(it, bad, epochs=2, batch_size=50, checkpoint=ck, seed=5)
    with pytest.raises(TrainingError, match=r"gave loss nan.*Nothing was saved"):
        s.run()
    assert all(p.read_bytes() == data for p, data in good.items())
    assert not snapshot.non_finite(snapshot.variables(it))  # the NaN step was undone


@pytest.mark.parametrize("make, message", [
    (lambda d: {k: v[:0] for k, v in d.items()}, "no examples"),
    (lambda d: {"x": d["x"], "y": d["y"][:5]}, "agree on the number of examples"),
    (lambda d: {"x": d["x"]}, "no data for \\['y'\\]"),
])
def test_bad_data_is_an_error(digits, make, message):
    with pytest.raises(lt.LitetrainError, match=message):
        TrainingSession(_interp(), make(digits))


@pytest.mark.parametrize("key, message", [
    ("save", "takes strings"), ("infer", "changes no variable"), ("nope", "no 'nope'")])
def test_signature_must_be_a_training_step(digits, key, message):
    with pytest.raises(lt.SignatureError, match=message):
        TrainingSession(_interp(), digits, signature=key)


def test_checkpoint_folder_checked_before_training(digits, tmp_path):
    (tmp_path / "file").write_text("")
    for where in (tmp_path / "missing" / "c.ckpt", tmp_path / "file" / "c.ckpt"):
        with pytest.raises(TrainingError, match="folder"):
            TrainingSession(_interp(), digits, checkpoint=where)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signals go to the main thread")
def test_ctrl_c_stops_after_the_step_and_a_second_one_cannot_stop_the_save(
        digits, tmp_path, monkeypatch, capsys):
    real_write = checkpoint.write
    writes = []

    def write_under_fire(path, tensors, format="v1"):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C again while the file is being saved
        real_write(path, tensors, format=format)
        writes.append(str(path))

    def first_ctrl_c(sess, loss):
        if sess.report.steps == 3:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # impatient: never breaks a step
            monkeypatch.setattr(snapshot.checkpoint, "write", write_under_fire)
            monkeypatch.setattr(lt.checkpoint, "write", write_under_fire)

    ck = tmp_path / "c.ckpt"
    r = TrainingSession(_interp(), digits, epochs=5, batch_size=10, checkpoint=ck,
                        on_step=first_ctrl_c).run()
    assert r.stopped == "interrupted" and r.steps == 3
    assert "stopping after this step and saving" in capsys.readouterr().err
    assert str(ck) in writes and str(ck) + ".session" in writes
    assert snapshot.read(str(ck) + ".session")[1]["total_steps"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_snapshot_of_another_model_is_refused_before_any_change(digits, tmp_path):
    ck = tmp_path / "c.ckpt"
    TrainingSession(_interp(), digits, epochs=1, batch_size=100, checkpoint=ck).run()
    other = lt.Interpreter(model_path=FIXTURES / "personalization" / "model.tflite")
    snapshot.initialize(other)
    before = snapshot.variables(other)
    with pytest.raises(lt.CheckpointError, match="does not fit this model"):
        snapshot.restore(other, str(ck) + ".session")
    assert all(np.array_equal(before[k], v) for k, v in snapshot.variables(other).items())
    with pytest.raises(lt.CheckpointError, match="not a session snapshot"):
        snapshot.restore(_interp(), ck)  # the model's own checkpoint is weights only


def test_a_corrupt_snapshot_is_a_checkpoint_error(digits, tmp_path):
    ck = tmp_path / "c.ckpt"
    (tmp_path / "c.ckpt.session").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(lt.CheckpointError, match=r"c\.ckpt\.session"):
        TrainingSession(_interp(), digits, checkpoint=ck, resume=True).run()
    checkpoint.write(tmp_path / "c.ckpt.session",
                     {"session/state": np.array("[1, 2]", dtype=object),
                      "session/random_ops": np.array("{}", dtype=object)})
    with pytest.raises(lt.CheckpointError, match="not the JSON object a session writes"):
        TrainingSession(_interp(), digits, checkpoint=ck, resume=True).run()
