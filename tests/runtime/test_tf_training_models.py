"""Every TensorFlow-made training fixture (tests/fixtures/tf_training) through every stage
TensorFlow Lite recorded: load, infer, 5 train steps (losses within 1e-5), infer after
(1e-4), save (a checkpoint like TensorFlow's), and restoring TensorFlow's checkpoint
exactly. The stages are the fixture report's own (``report.py``), so the two never
disagree.
"""

from __future__ import annotations

import importlib.util

import pytest

import litetrain as lt
from tests.conftest import FIXTURES

_spec = importlib.util.spec_from_file_location(
    "tf_training_report", FIXTURES / "tf_training" / "report.py")
report = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report)

KINDS = [str(p.relative_to(report.HERE)) for p in report.fixtures([])]


def test_there_are_fixtures_to_run():
    assert len(KINDS) >= 40


@pytest.mark.parametrize("kind", KINDS)
def test_trains_like_tensorflow(kind):
    report.Run(report.HERE / kind).run()


@pytest.mark.parametrize("kind", ["lstm_fused", "rnn_fused", "bilstm_sequence"])
def test_fused_recurrent_state_carries_over_until_reset(kind):
    """As in TensorFlow Lite, the state (variable tensors) of a fused RNN carries from one
    invoke to the next; reset_all_variables starts over."""
    import numpy as np

    folder = report.HERE / kind
    x = np.load(folder / "expected.npz")["infer_x"]
    it = lt.Interpreter(model_path=str(folder / "model.tflite"))
    infer = it.get_signature_runner("infer")
    first = next(iter(infer(x=x).values()))
    second = next(iter(infer(x=x).values()))
    assert not np.allclose(first, second)
    it.reset_all_variables()
    np.testing.assert_array_equal(next(iter(infer(x=x).values())), first)
