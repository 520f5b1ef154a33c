"""Exact resume: a training process killed with SIGKILL at random points and resumed each
time ends with variables bit-identical to a run that never stopped — for the
TensorFlow-made personalization model (Adam) and an authored model (Adam, seeded dropout).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

import litetrain as lt
from litetrain.workflow import snapshot
from litetrain.workflow.session import TrainingSession
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
PERSONALIZATION = FIXTURES / "personalization" / "model.tflite"  # TF 2.18, Adam
SETTINGS = ["--epochs", "3", "--batch-size", "4", "--validation-split", "0.2",
            "--keep", "best"]


def _authored_model(path: Path) -> Path:
    model = lt.nn.Sequential([lt.nn.Flatten(input_shape=(6, 6)),
                              lt.nn.Dense(16, activation="relu"),
                              lt.nn.Dropout(0.25, seed=7), lt.nn.Dense(4)])
    module = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                          optimizer=lt.optimizers.Adam(1e-2))
    path.write_bytes(lt.convert(module))
    return path


def _case(kind: str, tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 60)
    if kind == "tensorflow":
        data = {"bottleneck": rng.random((60, 1352), dtype=np.float32),
                "label": np.eye(4, dtype=np.float32)[labels]}
        return PERSONALIZATION, data
    data = {"x": rng.random((60, 6, 6), dtype=np.float32),
            "y": np.eye(4, dtype=np.float32)[labels]}
    return _authored_model(tmp_path / "authored.tflite"), data


def _train_cli(model: Path, data: Path, ckpt: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "litetrain.cli", "train", str(model),
                             "--data", str(data), "--checkpoint", str(ckpt), "--resume",
                             "--snapshot-every", "1", "--quiet", *SETTINGS],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.parametrize("kind", ["tensorflow", "authored"])
def test_sigkilled_and_resumed_run_is_bit_identical(kind, tmp_path_factory):
    # Memory-backed files where there are some: a save's fsync costs ~20 ms on this disk,
    # and what is tested here is where the kills land, not the disk.
    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) \
        else tmp_path_factory.mktemp("resume")
    try:
        _killed_and_resumed(kind, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _killed_and_resumed(kind: str, tmp_path: Path) -> None:
    model, data = _case(kind, tmp_path)
    np.savez(tmp_path / "data.npz", **data)
    # The run that never stops, in this process.
    ref = lt.Interpreter(model_path=model)
    report = TrainingSession(ref, data, epochs=3, batch_size=4, validation_split=0.2,
                             keep="best", checkpoint=tmp_path / "ref.ckpt").run()
    assert report.stopped == "done" and report.total_steps == 36
    expected = snapshot.variables(ref)

    ckpt = tmp_path / "killed.ckpt"
    session = Path(str(ckpt) + ".session")
    rng = np.random.default_rng(11 if kind == "tensorflow" else 12)
    kills, resumed_at = 0, []
    for attempt in range(4):  # three kills at random moments of training, then one to the end
        before = session.stat().st_mtime_ns if session.exists() else None
        proc = _train_cli(model, tmp_path / "data.npz", ckpt)
        if attempt < 3:
            start = time.monotonic()  # wait for this process's first snapshot: training began
            while proc.poll() is None and time.monotonic() - start < 30 and (
                    not session.exists() or session.stat().st_mtime_ns == before):
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.05))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
        _, err = proc.communicate()
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err
        resumed_at.append(snapshot.read(session)[1]["total_steps"])
    assert proc.returncode == 0, err
    assert kills >= 2, "the kills came too late to interrupt training"
    assert any(0 < s < 36 for s in resumed_at), resumed_at
    state_vars, state, _ = snapshot.read(session)
    assert state["total_steps"] == 36
    assert set(state_vars) == set(expected)  # weights, Adam's m and v, the iteration count
    for name, value in expected.items():
        assert np.array_equal(state_vars[name], value), name
    # The checkpoint (the model's own save format) holds the best epoch's weights in both.
    a, b = lt.checkpoint.read(tmp_path / "ref.ckpt"), lt.checkpoint.read(ckpt)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
