"""Prepare-time simplification changes nothing but speed: every model gives bit-identical
outputs and variables with it (the default) and without it
(``experimental_preserve_all_tensors=True`` runs every node as written, no reuse)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import lookup
from litetrain.ops.matmul import matmul

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))


def _rng_batches(shapes: dict[str, tuple], batches: list[int], seed: int = 0):
    rng = np.random.default_rng(seed)
    for b in batches:
        yield {name: (rng.standard_normal((b, *shape)) if not onehot else
                      np.eye(shape[0])[rng.integers(0, shape[0], b)]).astype(np.float32)
               for name, (shape, onehot) in shapes.items()}


def _same_run(model: bytes | Path, calls: list[tuple[str, dict]]) -> None:
    kw = {"model_path": model} if isinstance(model, Path) else {"model_content": model}
    fast, plain = lt.Interpreter(**kw), lt.Interpreter(**kw, experimental_preserve_all_tensors=True)
    for sig, feeds in calls:
        a = fast.get_signature_runner(sig)(**feeds)
        b = plain.get_signature_runner(sig)(**feeds)
        for name in b:
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"{sig} output {name}")
    va, vb = fast.variables.by_name(), plain.variables.by_name()
    assert va.keys() == vb.keys()
    for name in vb:
        np.testing.assert_array_equal(va[name], vb[name], err_msg=f"variable {name}")


def _train_infer_calls(x_shape, y_classes, batches, x_name="x", y_name="y", sig="train"):
    calls = []
    for feeds in _rng_batches({x_name: (x_shape, False), y_name: ((y_classes,), True)},
                              batches):
        calls += [(sig, feeds), ("infer", {x_name: feeds[x_name]})]
    return calls


# Batch sizes repeat so that the specialised (second-run-onwards) steps are exercised,
# and include 1, where weight gradients are depth-1 products.
BATCHES = [100, 100, 1, 1, 32, 100, 32]


def test_tensorflow_flex_model_is_identical():
    _same_run(FIXTURES / "tutorial" / "model.tflite",
              _train_infer_calls((28, 28), 10, BATCHES))


def test_tensorflow_personalization_model_is_identical():
    calls = []
    for feeds in _rng_batches({"feature": ((28, 28), False)}, [20, 20, 1]):
        calls.append(("load", feeds))
    for feeds in _rng_batches({"bottleneck": ((1352,), False), "label": ((4,), True)},
                              [20, 20, 1, 1, 20]):
        calls.append(("train", feeds))
    calls.append(("infer", {"feature": np.ones((3, 28, 28), np.float32)}))
    _same_run(FIXTURES / "personalization" / "model.tflite", calls)


def test_exported_tutorial_model_is_identical():
    from author_tutorial_model import Model

    _same_run(lt.convert(Model()), _train_infer_calls((28, 28), 10, BATCHES))


def test_exported_cnn_with_adam_is_identical():
    model = lt.nn.Sequential([
        lt.nn.Conv2D(4, 3, activation="relu", input_shape=(12, 12, 1)),
        lt.nn.BatchNormalization(),
        lt.nn.MaxPool2D(2),
        lt.nn.Flatten(),
        lt.nn.Dense(16, activation="tanh"),
        lt.nn.Dense(5),
    ])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.Adam(1e-2))
    _same_run(lt.convert(m), _train_infer_calls((12, 12, 1), 5, [8, 8, 1, 1, 8]))


def test_authored_graph_has_no_unread_results():
    """The input-image gradient (and any other unread result) is not exported."""
    from author_tutorial_model import Model

    model = lt.read_model(lt.convert(Model()))
    for sg in model.subgraphs:
        read = {i for n in sg.nodes for i in n.inputs} | set(sg.outputs)
        for k, n in enumerate(sg.nodes):
            if not lookup(n.op).stateful:
                assert read.intersection(n.outputs), f"{sg.name} node {k} ({n.op}) is unread"


def test_unused_nodes_are_skipped_at_prepare():
    """A file with an unread node (here a NEG of the input, added to the exported train
    graph) runs without it, and gives the same results."""
    from author_tutorial_model import Model

    from litetrain import dtypes, ir
    from litetrain.tflite.writer import write_model

    model = lt.read_model(lt.convert(Model()))
    sig = next(s for s in model.signatures if s.key == "train")
    sg = model.subgraphs[sig.subgraph_index]
    sg.tensors.append(ir.Tensor("unread", dtypes.FLOAT32, (1, 28, 28), (-1, 28, 28)))
    sg.nodes.append(ir.Node("neg", (sig.inputs["x"],), (len(sg.tensors) - 1,), {}))
    data = write_model(model)
    it = lt.Interpreter(model_content=data)
    plan = it.plan(sig.subgraph_index)
    assert len(plan.steps) < len(it.model.subgraphs[sig.subgraph_index].nodes)
    assert "neg" not in {s.op for s in plan.steps if s.inputs == (sig.inputs["x"],)}
    _same_run(data, _train_infer_calls((28, 28), 10, [4, 4, 1]))


class _Aliasing(lt.Module):
    """Values that must survive: a reshape view of a fresh matmul result used after the
    matmul's last direct use, an operand used twice, and a value stored in a variable."""

    def __init__(self):
        self.w = lt.Variable(np.arange(12, dtype=np.float32).reshape(3, 4) / 10, name="w")
        self.keep = lt.Variable(np.zeros((2, 4), np.float32), name="keep")

    @lt.signature(lt.TensorSpec([2, 3]))
    def run(self, x):
        t = x @ self.w.read()               # fresh
        view = lt.nn.Reshape((8,))(t)       # a view of t, read at the end
        u = t + 1.0                         # t's last direct read: must not write into t
        v = u * u                           # u read twice by one step
        self.keep.assign(v)                 # v escapes into a variable
        after = v + 2.0                     # must not write into v (now the variable)
        return {"view": view, "after": after, "v": v}


def test_in_place_reuse_respects_views_and_variables():
    m = _Aliasing()
    data = lt.convert(m)
    fast = lt.Interpreter(model_content=data)
    run = fast.get_signature_runner("run")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = x @ (np.arange(12, dtype=np.float32).reshape(3, 4) / 10)
    for _ in range(3):  # the first run prepares; later ones use the specialised steps
        before = [fast.variables.values[r] for r in fast.variables.values]
        snapshots = [a.copy() for a in before]  # taken before the invoke, not after
        out = run(x=x)
        np.testing.assert_allclose(out["view"].ravel(), t.ravel(), rtol=1e-6)
        np.testing.assert_allclose(out["v"], (t + 1) ** 2, rtol=1e-6)
        np.testing.assert_allclose(out["after"], (t + 1) ** 2 + 2, rtol=1e-6)
        np.testing.assert_allclose(fast.variables.by_name()["keep"], (t + 1) ** 2, rtol=1e-6)
        # Arrays handed out before an invoke keep their values (values are replaced).
        for arr, was in zip(before, snapshots, strict=True):
            np.testing.assert_array_equal(arr, was)
    _same_run(data, [("run", {"x": x})] * 3)


@pytest.mark.parametrize(("sa", "sb"), [((784, 1), (1, 128)), ((3, 5, 1), (3, 1, 4)),
                                        ((5, 1), (2, 1, 4)), ((4, 3), (3, 2))])
def test_depth_one_matmul_matches_numpy(sa, sb):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(sa).astype(np.float32), rng.standard_normal(sb).astype(np.float32)
    np.testing.assert_array_equal(matmul(a, b), np.matmul(a, b))
    at = np.ascontiguousarray(np.swapaxes(a, -1, -2))  # the transposed view a gradient uses
    np.testing.assert_array_equal(matmul(np.swapaxes(at, -1, -2), b), np.matmul(a, b))


def test_intermediates_need_preserve_all_tensors():
    """An unread node (dropped at prepare) and an identity reshape (dropped per shapes)
    leave tensors without values unless every tensor is preserved."""
    from litetrain import dtypes, ir
    from litetrain.tflite.writer import write_model

    f32 = dtypes.FLOAT32
    tensors = [ir.Tensor("x", f32, (2, 3)), ir.Tensor("shape", dtypes.INT32, (2,),
                                                      data=np.array([2, 3], np.int32)),
               ir.Tensor("same", f32, (2, 3)), ir.Tensor("out", f32, (2, 3)),
               ir.Tensor("unread", f32, (2, 3))]
    nodes = [ir.Node("reshape", (0, 1), (2,)), ir.Node("relu", (2,), (3,)),
             ir.Node("neg", (0,), (4,))]
    model = ir.Model([ir.Subgraph("main", tensors, [0], [3], nodes)],
                     [ir.Signature("serving_default", 0, {"x": 0}, {"out": 3})])
    data = write_model(model)
    plain = lt.Interpreter(model_content=data)
    keep = lt.Interpreter(model_content=data, experimental_preserve_all_tensors=True)
    x = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    for it in (plain, keep):
        it.allocate_tensors()
        it.set_tensor(0, x)
        it.invoke()
        it.invoke()  # the first run for a shape prepares; the second runs the plan
    np.testing.assert_array_equal(plain.get_tensor(3), np.maximum(x, 0))
    np.testing.assert_array_equal(plain.get_tensor(3), keep.get_tensor(3))
    np.testing.assert_array_equal(keep.get_tensor(4), -x)
    np.testing.assert_array_equal(keep.get_tensor(2), x)
    for dropped in (2, 4):
        with pytest.raises(lt.LitetrainError, match="experimental_preserve_all_tensors"):
            plain.get_tensor(dropped)


class _StoresInput(lt.Module):
    def __init__(self):
        self.v = lt.Variable(np.zeros((2, 3), np.float32), name="v")

    @lt.signature(lt.TensorSpec([2, 3]))
    def keep(self, x):
        self.v.assign(lt.nn.Reshape((3,))(x))  # a view of the caller's array
        return self.v.read()


def test_variable_never_aliases_the_callers_array():
    it = lt.Interpreter(model_content=lt.convert(_StoresInput()))
    keep = it.get_signature_runner("keep")
    for _ in range(2):
        x = np.ones((2, 3), np.float32)
        keep(x=x)
        x[:] = 7  # the caller reuses its buffer
        np.testing.assert_array_equal(it.variables.by_name()["v"], np.ones((2, 3)))


def test_specialised_steps_are_used_for_the_flex_model():
    it = lt.Interpreter(model_path=FIXTURES / "tutorial" / "model.tflite")
    train = it.get_signature_runner("train")
    x, y = np.zeros((8, 28, 28), np.float32), np.eye(10, dtype=np.float32)[np.arange(8)]
    train(x=x, y=y)
    plan = it.plan(train.signature.subgraph_index)
    steps, *_ = next(iter(plan._per_shapes.values()))
    ops = [s.op for s in steps]
    assert "mul(neg)" in ops and "batch_matmul+add" in ops
    assert len(steps) < len(plan.steps)
