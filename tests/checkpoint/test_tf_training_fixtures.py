"""The TensorFlow-made training fixtures are complete, and litetrain's checkpoint reader
reads every checkpoint TFLite's `save` wrote (V1 and V2, tf_keras and Keras 3 names,
int64 optimizer iterations) to exactly what TFLite's `restore` returned.

Whether litetrain can *run* each fixture is tracked by ``tf_training/report.py`` (STATUS.md),
not here: these tests only check what already holds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from litetrain import checkpoint

from ..conftest import FIXTURES

ROOT = FIXTURES / "tf_training"
FOLDERS = sorted(p.parent for p in ROOT.rglob("meta.json"))


def _id(p: Path) -> str:
    return p.relative_to(ROOT).as_posix()


def test_there_are_fixtures():
    assert len(FOLDERS) >= 20


@pytest.mark.parametrize("folder", FOLDERS, ids=_id)
def test_fixture_has_every_recorded_value(folder: Path):
    meta = json.loads((folder / "meta.json").read_text())
    p = meta["protocol"]
    exp = np.load(folder / "expected.npz")
    keys = set(exp.files)
    tags = ["before"] + (["after"] if p["train"] else []) + (
        ["restored"] if p["checkpoint"] else [])
    want = {f"infer_{n}" for n in p["infer_inputs"]}
    want |= {f"infer_{n}_{t}" for n in p["infer_outputs"] for t in tags}
    for k in range(p["steps"]):
        want |= {f"train_{n}_{k}" for n in p["train_inputs"]}
        want |= {f"train_out_{n}_{k}" for n in p["train_outputs"] if n != "loss"}
    assert want <= keys, sorted(want - keys)
    if p["train"]:
        assert exp["train_losses"].shape == (p["steps"],)
        assert np.all(np.isfinite(exp["train_losses"]))
    assert (folder / "model.tflite").read_bytes()[4:8] == b"TFL3"
    for sig in meta["signatures"]:
        assert sig in meta["op_census"]


CHECKPOINTED = [f for f in FOLDERS
                if json.loads((f / "meta.json").read_text())["protocol"]["checkpoint"]]


@pytest.mark.parametrize("folder", CHECKPOINTED, ids=_id)
def test_tf_checkpoint_reads_to_what_tflite_restored(folder: Path):
    p = json.loads((folder / "meta.json").read_text())["protocol"]["checkpoint"]
    for name in p["files"]:
        assert (folder / name).is_file()
    got = checkpoint.read(folder / p["path"])
    exp = np.load(folder / "expected.npz")
    restored = {k[len("restored/"):]: exp[k] for k in exp.files if k.startswith("restored/")}
    assert sorted(got) == sorted(restored)
    for name, want in restored.items():
        assert got[name].dtype == want.dtype, name
        assert got[name].shape == want.shape, name
        np.testing.assert_array_equal(got[name], want, err_msg=name)
