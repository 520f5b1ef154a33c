"""Consecutive variable updates as one step (runtime/variable_updates.py): train steps
stay bit-identical with ``experimental_preserve_all_tensors`` (SGD updates and batch
norm's moving averages fused), and a chain whose inner value is read elsewhere stays as
it was."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np

from litetrain.ops import lookup
from litetrain.ops.variables import VariableAccess
from litetrain.runtime import variable_updates as vu
from litetrain.runtime.step import Step

from .test_product_sum import _cnn
from .test_simplify import _same_run, _train_infer_calls

_F32 = np.dtype(np.float32)


def test_train_steps_are_identical_and_fused(monkeypatch):
    fused = []
    original = vu.fuse_variable_updates

    def spy(*args):
        steps = original(*args)
        fused.extend(s.settings for s in steps if s.kernel is vu.variable_updates)
        return steps
    monkeypatch.setattr("litetrain.runtime.simplify.fuse_variable_updates", spy)
    _same_run(_cnn(), _train_infer_calls((8, 8, 3), 3, [8, 8, 2, 8, 8]))
    chains = [c for settings in fused for c in settings]
    # SGD: w - g * lr per trainable variable (8); batch norm: two moving averages
    assert sum(len(c.ops) == 2 for c in chains) >= 8
    assert sum(len(c.ops) == 3 for c in chains) >= 2


def _steps(extra_reader: bool) -> list[Step]:
    """read w (t1) · g (t2) * lr (t3) = t4 · t1 - t4 = t5 · assign t5 to w (handle t0);
    with ``extra_reader``, a later step also reads t4."""
    plain = MappingProxyType({})
    read = VariableAccess(7, _F32)
    steps = [
        Step(0, "read_variable", lookup("read_variable").kernel, True, (0,), (1,), (_F32,),
             read),
        Step(1, "mul", lookup("mul").kernel, False, (2, 3), (4,), (_F32,), plain),
        Step(2, "sub", lookup("sub").kernel, False, (1, 4), (5,), (_F32,), plain),
        Step(3, "assign_variable", lookup("assign_variable").kernel, True, (0, 5), (), (),
             VariableAccess(7, copy=False)),
    ]
    if extra_reader:
        steps.append(Step(4, "neg", lookup("neg").kernel, False, (4,), (6,), (_F32,), plain))
    return steps


def test_a_chain_read_from_outside_is_left_alone():
    values = [np.zeros(3, _F32)] * 7
    fused = vu.fuse_variable_updates(_steps(False), values, set())
    assert [s.op for s in fused] == ["variable_updates[1]"]
    kept = vu.fuse_variable_updates(_steps(True), values, set())
    assert [s.op for s in kept] == ["read_variable", "mul", "sub", "assign_variable", "neg"]
    # an inner value that is a subgraph output stays too
    assert len(vu.fuse_variable_updates(_steps(False), values, {4})) == 4
