"""Large results written into buffers kept from run to run (runtime/arena.py): the
``into`` forms give their kernels' bits, slots are shared by liveness and never hold
memory that escapes a run (outputs, variables, stateful operands), and whole train steps
stay bit-identical with ``experimental_preserve_all_tensors``."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import all_ops, lookup
from litetrain.runtime import arena
from litetrain.runtime.step import Step

from ..bits import same_bits, with_specials
from .test_simplify import _same_run, _train_infer_calls

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

INTO = sorted(op.name for op in all_ops().values()
              if op.into is not None and op.name not in ("pad", "padv2"))


def test_ops_with_into_forms_include_the_train_steps_elementwise_ones():
    assert {"add", "sub", "mul", "div", "maximum", "minimum", "square", "relu"} <= set(INTO)


@pytest.mark.parametrize("name", ["pad", "padv2"])
@pytest.mark.parametrize("paddings", [[[0, 0], [1, 2], [0, 3]], [[2, 0], [0, 0], [1, 1]]])
def test_pad_into_forms_give_the_kernels_bits(name, paddings, rng):
    x = with_specials(rng, (3, 4, 5))
    ops = [x, np.array(paddings, np.int32)]
    if name == "padv2":
        ops.append(np.array(-0.0, np.float32))
    opdef = lookup(name)
    want = opdef.kernel({}, *ops)
    out = np.full(want.shape, np.nan, np.float32)
    assert opdef.into({}, *ops, out=out) is out
    same_bits(out, want)


@pytest.mark.parametrize("name", INTO)
@pytest.mark.parametrize("activation", [0, 1])
def test_into_forms_give_the_kernels_bits(name, activation, rng):
    opdef = lookup(name)
    arity = opdef.num_inputs[0]
    ops = [with_specials(rng, (6, 7, 5)) for _ in range(arity)]
    if arity == 2:
        ops[1] = ops[1][0]  # broadcast along the leading axis
    attrs = {"fused_activation_function": activation} if arity == 2 else {}
    if activation and arity != 2:
        pytest.skip("no fused activation")
    want = opdef.kernel(attrs, *ops)
    out = np.full(want.shape, 5.0, np.float32)
    got = opdef.into(attrs, *ops, out=out)
    assert got is out
    same_bits(got, want)


def _step(pos, op, inputs, outputs, **kw) -> Step:
    opdef = lookup(op)
    return Step(pos, op, opdef.kernel, opdef.stateful, tuple(inputs), tuple(outputs),
                (np.dtype(np.float32),) * len(outputs), {}, opdef.fresh_output,
                opdef.in_place, into=opdef.into, into_for=opdef.kernel, **kw)


def _slots(steps) -> dict[int, arena.Slot]:
    return {s.outputs[0]: s.kernel.slot for s in steps if isinstance(s.kernel, arena.Reused)}


def test_slots_are_shared_once_their_occupant_is_dead(monkeypatch):
    monkeypatch.setattr(arena, "SMALLEST", 1)
    v = [np.zeros(8, np.float32) for _ in range(7)]
    # 0 -> relu 1 -> relu 2 -> add(1, 2) 3 -> relu 4 -> neg 5 (the output)
    steps = [_step(0, "relu", [0], [1]), _step(1, "relu", [1], [2]),
             _step(2, "add", [1, 2], [3]), _step(3, "relu", [3], [4]),
             _step(4, "neg", [4], [5])]
    slots = _slots(arena.reuse_buffers(steps, v, [5]))
    assert set(slots) == {1, 2, 3, 4}  # 5 is the subgraph's output: a fresh array
    assert slots[1] is not slots[2]  # both live until step 2
    assert slots[3] not in (slots[1], slots[2])  # read with both at step 2
    assert slots[4] in (slots[1], slots[2])  # 1 and 2 died at step 2
    assert len({id(s) for s in slots.values()}) == 3


def test_memory_that_escapes_never_takes_a_slot(monkeypatch):
    monkeypatch.setattr(arena, "SMALLEST", 1)
    v = [np.zeros(8, np.float32) for _ in range(8)]
    steps = [_step(0, "relu", [0], [1]),  # read by ASSIGN_VARIABLE: kept by the store
             _step(1, "assign_variable", [7, 1], []),
             _step(2, "relu", [0], [2]),  # a view of it (RESHAPE) is the output
             _step(3, "reshape", [2, 7], [3]),
             _step(4, "relu", [0], [4]),  # written in place by a step making the output
             _step(5, "neg", [4], [5], writes_into=4),
             _step(6, "relu", [0], [6])]  # the only one that may take a slot
    slots = _slots(arena.reuse_buffers(steps, v, [3, 5, 6, 1]))
    assert set(slots) == set()
    slots = _slots(arena.reuse_buffers(steps, v, [3, 5]))
    assert set(slots) == {6}


def test_other_operand_shapes_run_the_plain_kernel(monkeypatch):
    monkeypatch.setattr(arena, "SMALLEST", 1)
    v = [np.zeros((4, 3), np.float32), np.zeros((4, 3), np.float32),
         np.zeros((4, 3), np.float32)]
    (_, step, _) = arena.reuse_buffers([_step(0, "relu", [0], [1]),
                                        _step(1, "relu", [1], [2]),
                                        _step(2, "neg", [2], [3])], [*v, None], [3])
    assert isinstance(step.kernel, arena.Reused)
    first = step.kernel({}, np.ones((4, 3), np.float32))
    assert step.kernel({}, -np.ones((4, 3), np.float32)) is first  # the slot's view
    other = step.kernel({}, -np.ones((2, 3), np.float32))
    assert other.shape == (2, 3) and not np.shares_memory(other, first)


def _cnn_bytes():
    model = lt.nn.Sequential([
        lt.nn.Conv2D(8, 3, padding="same", activation="relu", input_shape=(16, 16, 3)),
        lt.nn.BatchNormalization(),
        lt.nn.MaxPool2D(2),
        lt.nn.DepthwiseConv2D(3, padding="same", activation="relu"),
        lt.nn.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        lt.nn.Flatten(),
        lt.nn.Dense(4),
    ])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.1))
    return lt.convert(m)


def test_cnn_train_steps_are_identical_with_slots(monkeypatch):
    monkeypatch.setattr(arena, "SMALLEST", 1 << 10)
    made = []
    original = arena.reuse_buffers

    def spy(*args):
        steps = original(*args)
        made.append(len(_slots(steps)))
        return steps
    monkeypatch.setattr("litetrain.runtime.plan.reuse_buffers", spy)
    _same_run(_cnn_bytes(), _train_infer_calls((16, 16, 3), 4, [8, 8, 8, 3, 3, 8]))
    # (the tap copies, batch-norm products and padded copies that runtime/filter_grad.py,
    # runtime/product_sum.py, runtime/row_filter_grad.py and runtime/depthwise_grad.py
    # no longer make needed slots of their own)
    assert max(made) >= 1


class _Escapes(lt.Module):
    """Results that escape a run straight from ops with ``into`` forms: an output, a view
    of one, a variable's new value, and one a step writes in place (its result is the
    output)."""

    def __init__(self):
        self.v = lt.Variable(np.zeros((4, 8), np.float32), "v")

    @lt.signature(lt.TensorSpec([4, 8]))
    def step(self, x):
        a = lt.nn.relu(x * 2.0)
        self.v.assign(lt.nn.relu(a + self.v.read()))
        flat = lt.nn.reshape(lt.nn.square(x), [32])
        return {"a": a, "flat": flat, "neg": -(x - 1.0)}


def test_results_of_a_run_survive_the_next_runs(monkeypatch, rng):
    """Outputs and variables' values made by one run are not overwritten by later runs
    (undo and transactions keep the store's arrays, as they are)."""
    monkeypatch.setattr(arena, "SMALLEST", 1)
    it = lt.Interpreter(model_content=lt.convert(_Escapes()))
    run = it.get_signature_runner("step")
    kept = []
    for _ in range(4):
        out = run(x=rng.standard_normal((4, 8)).astype(np.float32))
        weights = dict(it.variables.values)  # the store's own arrays: never mutated
        kept.append((out, {k: v.copy() for k, v in out.items()},
                     weights, {k: v.copy() for k, v in weights.items()}))
    for out, out_copy, weights, weights_copy in kept:
        for k in out:
            same_bits(out[k], out_copy[k])
        for k in weights:
            same_bits(weights[k], weights_copy[k])


def test_a_run_while_another_is_under_way_leaves_the_buffers_alone(monkeypatch, rng):
    """A second run of the same plan (another thread, here: the first run's hold on the
    buffers taken by hand) computes with fresh arrays and the same bits."""
    monkeypatch.setattr(arena, "SMALLEST", 1 << 10)
    content = _cnn_bytes()
    it, reference = lt.Interpreter(model_content=content), lt.Interpreter(model_content=content)
    feeds = [{"x": rng.random((8, 16, 16, 3), np.float32),
              "y": np.eye(4, dtype=np.float32)[rng.integers(0, 4, 8)]} for _ in range(3)]
    for k in range(2):
        for interpreter in (it, reference):
            interpreter.get_signature_runner("train")(**feeds[k])
    plan = next(p for p in it._plans.values()
                if any(isinstance(s.kernel, arena.Reused) for c in p._per_shapes.values()
                       for s in c[0]))
    kept = [s.kernel for c in plan._per_shapes.values() for s in c[0]
            if isinstance(s.kernel, arena.Reused) and s.kernel.view is not None]
    assert len(kept) >= 1  # (see test_cnn_train_steps_are_identical_with_slots; the batch
    # norm's centred values, output and pool gradient are recomputed: runtime/bn_fusion.py)
    before = [r.view.copy() for r in kept]
    with plan._buffers_free:
        got = it.get_signature_runner("train")(**feeds[2])
    for r, b in zip(kept, before, strict=True):
        _same_bytes(r.view, b)
    want = reference.get_signature_runner("train")(**feeds[2])
    for name in want:
        _same_bytes(got[name], want[name])
    for name, value in reference.variables.by_name().items():
        _same_bytes(it.variables.by_name()[name], value)


def _same_bytes(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
