"""Regression tests for what TensorFlow's converter writes into training graphs (each
failed before its fix): zero-element reserve-space outputs with empty buffers, Restore
outputs of unknown shape written as [], ADD of two matmul results, duplicate Save names,
one-output UNPACK."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain import dtypes, ir
from litetrain.ops.flex import restore, save
from litetrain.runtime.context import RuntimeContext
from litetrain.runtime.variables import VariableStore
from litetrain.tflite.writer import _Writer, write_model

F32, I32 = dtypes.FLOAT32, dtypes.INT32


def _one_signature(tensors, inputs, outputs, nodes) -> bytes:
    sg = ir.Subgraph("main", tensors, list(inputs.values()), list(outputs.values()), nodes)
    return write_model(ir.Model([sg], [ir.Signature("run", 0, inputs, outputs)]))


def test_a_zero_element_output_with_an_empty_buffer_is_not_a_constant():
    # FusedBatchNormV3's reserve_space_3 is float32[0] with an empty buffer of its own; a
    # node writes it, so it must not be read as a constant (verify rejected the graph).
    tensors = [ir.Tensor("x", F32, (2,)), ir.Tensor("y", F32, (2,)),
               ir.Tensor("reserve", F32, (0,), data=np.zeros(0, np.float32))]
    model = ir.Model([ir.Subgraph("main", tensors, [0], [1], [
        ir.Node("relu", (0,), (1,)), ir.Node("FlexZerosLike", (2,), (2,))])],
        [ir.Signature("run", 0, {"x": 0}, {"y": 1})])
    model.subgraphs[0].nodes[1] = ir.Node("zeros_like", (0,), (2,))
    data = _Writer().model(model)  # as the converter writes it (our writer would verify)
    read = lt.read_model(data)
    assert read.subgraphs[0].tensors[2].data is None
    out = lt.Interpreter(model_content=data).get_signature_runner("run")(
        x=np.array([-1, 2], np.float32))
    np.testing.assert_array_equal(out["y"], [0, 2])


def test_restore_output_written_as_scalar_takes_the_checkpoint_shape(tmp_path):
    ctx = RuntimeContext(VariableStore())
    path = str(tmp_path / "ck")
    lt.checkpoint.write(path, {"w": np.arange(3, dtype=np.float32)})
    name = np.array(b"w", dtype=object)
    # The file says [] (TensorFlow could not infer the shape): prepare makes that "unknown".
    got = restore(ctx, ((np.dtype(np.float32), None),), np.array(path.encode(), object), name)
    np.testing.assert_array_equal(got, [0, 1, 2])
    with pytest.raises(lt.CheckpointError, match="shape"):
        restore(ctx, ((np.dtype(np.float32), (2,)),), np.array(path.encode(), object), name)


def test_save_with_a_name_twice_is_refused(tmp_path):
    ctx = RuntimeContext(VariableStore())
    names = np.array([b"a", b"b", b"a"], dtype=object)
    with pytest.raises(lt.CheckpointError, match="more than once: a"):
        save(ctx, {}, np.array(str(tmp_path / "ck").encode(), object), names,
             np.ones(1), np.ones(2), np.ones(3))
    assert not (tmp_path / "ck").exists()


def test_add_of_two_matmuls_runs_every_time():
    tensors = [ir.Tensor("a", F32, (2, 3)), ir.Tensor("b", F32, (2, 3)),
               ir.Tensor("w", F32, (3, 4), data=np.ones((3, 4), np.float32)),
               ir.Tensor("p", F32, (2, 4)), ir.Tensor("q", F32, (2, 4)),
               ir.Tensor("s", F32, (2, 4))]
    data = _one_signature(tensors, {"a": 0, "b": 1}, {"s": 5}, [
        ir.Node("batch_matmul", (0, 2), (3,)), ir.Node("batch_matmul", (1, 2), (4,)),
        ir.Node("add", (3, 4), (5,))])
    run = lt.Interpreter(model_content=data).get_signature_runner("run")
    a, b = np.ones((2, 3), np.float32), np.full((2, 3), 2, np.float32)
    for _ in range(3):  # the first run prepares; the later ones use the fused steps
        np.testing.assert_array_equal(run(a=a, b=b)["s"], np.full((2, 4), 9))


def test_unpack_into_one_output_gives_the_element():
    tensors = [ir.Tensor("x", I32, (1,)), ir.Tensor("e", I32, ())]
    data = _one_signature(tensors, {"x": 0}, {"e": 1},
                          [ir.Node("unpack", (0,), (1,), {"num": 1, "axis": 0})])
    out = lt.Interpreter(model_content=data).get_signature_runner("run")(
        x=np.array([7], np.int32))
    assert out["e"].shape == () and int(out["e"]) == 7


@pytest.mark.parametrize(("nodes", "message"), [
    ([ir.Node("add", (0,), (1,))], "has 1 inputs, the op takes 2"),
    ([ir.Node("relu", (0,), ()), ir.Node("relu", (0,), (1,))], "has 0 outputs, the op makes 1"),
    ([ir.Node("read_variable", (), (1,))], "has 0 inputs"),
    ([ir.Node("assign_variable", (0, -1), ()), ir.Node("relu", (0,), (1,))],
     "cannot be prepared"),
])
def test_nodes_without_their_operands_are_model_format_errors(nodes, message):
    tensors = [ir.Tensor("x", F32, (2,)), ir.Tensor("y", F32, (2,))]
    model = ir.Model([ir.Subgraph("main", tensors, [0], [1], nodes)],
                     [ir.Signature("run", 0, {"x": 0}, {"y": 1})])
    data = _Writer().model(model)
    with pytest.raises(lt.ModelFormatError, match=message):
        lt.Interpreter(model_content=data).get_signature_runner("run")
