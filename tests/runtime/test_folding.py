"""Prepare-time folding of shape arithmetic gives identical outputs, per input shapes."""

from __future__ import annotations

import numpy as np

import litetrain
from litetrain.runtime.fold import foldable_nodes


def test_folded_train_steps_equal_unfolded_ones(tutorial):
    d, e = tutorial
    folded = litetrain.Interpreter(model_path=d / "model.tflite")
    plain = litetrain.Interpreter(model_path=d / "model.tflite")
    plain.plan(3).foldable = set()  # the reference: every node runs every time
    assert len(folded.plan(3).foldable) >= 15
    for n in (4, 7, 4, 32, 7):  # alternate shapes: each key has its own folded values
        x, y = e["train_x_0"][:n], e["train_y_0"][:n]
        a = folded.get_signature_runner("train")(x=x, y=y)["loss"]
        b = plain.get_signature_runner("train")(x=x, y=y)["loss"]
        assert a == b
    for name, value in plain.variables.by_name().items():
        np.testing.assert_array_equal(folded.variables.by_name()[name], value)


def test_nothing_value_dependent_is_folded(tutorial):
    d, _ = tutorial
    sg = litetrain.read_model(d / "model.tflite").subgraphs[3]
    ops = {sg.nodes[k].op for k in foldable_nodes(sg)}
    assert ops <= {"shape", "slice", "concatenation", "reduce_prod", "cast", "equal", "div",
                   "select", "tile", "reshape", "expand_dims"}
    # The loss itself (SUM of the per-example losses, then DIV) must never be folded.
    folded_outputs = {i for k in foldable_nodes(sg) for i in sg.nodes[k].outputs}
    assert 66 not in folded_outputs and 60 not in folded_outputs
