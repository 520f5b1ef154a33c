"""Values are let go after their last use (issue 15), and the convnets' optimised plans
(fast kernels, fusions, in-place steps, dropped values) give the bits of the plans that
run every node as written (``experimental_preserve_all_tensors=True``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import litetrain as lt
from litetrain.runtime.liveness import is_stand_in, release_points, stand_in
from litetrain.runtime.step import Step

CONVNETS = Path(__file__).resolve().parents[1] / "fixtures" / "tf_quantized"


def _step(inputs, outputs):
    return Step(0, "op", lambda attrs, *a: None, False, tuple(inputs), tuple(outputs),
                (), {})


def test_release_points_follow_the_last_reader():
    # 0 (input) -> 1 -> 2 -> 3 (output); 1 is read again by the last step; 4 is never read.
    steps = [_step([0], [1]), _step([1], [2, 4]), _step([2, 1], [3])]
    assert release_points(steps, keep=[0, 3]) == [(), (4,), (1, 2)]


def test_stand_ins_keep_shape_and_dtype_only():
    v = np.ones((64, 32), np.float16)
    s = stand_in(v)
    assert s.shape == v.shape and s.dtype == v.dtype and not s.flags.writeable
    assert is_stand_in(s) and not is_stand_in(v) and not is_stand_in(np.zeros(()))
    assert stand_in([1, 2]) == [1, 2]


def _interpreter(path, x, **kw):
    it = lt.Interpreter(model_path=path, **kw)
    index = it.get_input_details()[0]["index"]
    it.resize_tensor_input(index, list(x.shape))
    it.allocate_tensors()
    return it, index


@pytest.mark.parametrize("kind", ["mobilenet_v2_035", "mobilenet_v3_small",
                                  "efficientnet_like"])
def test_optimised_convnet_plans_give_the_plain_plans_bits(kind):
    path = CONVNETS / kind / "float.tflite"
    rng = np.random.default_rng(0)
    shape = lt.Interpreter(model_path=path).get_input_details()[0]["shape"][1:]
    xs = [rng.uniform(-1, 1, (b, *shape)).astype(np.float32) for b in (1, 3, 1, 3)]
    fast, index = _interpreter(path, xs[0])
    plain, _ = _interpreter(path, xs[0], experimental_preserve_all_tensors=True)
    out = fast.get_output_details()[0]["index"]
    for x in xs:  # each batch twice: the first run for its shapes, then the specialised one
        for it in (fast, plain):
            it.resize_tensor_input(index, list(x.shape))
            it.allocate_tensors()
            it.set_tensor(index, x)
            it.invoke()
        got, want = fast.get_tensor(out), plain.get_tensor(out)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    # Intermediates were let go in the optimised plan, kept in the plain one.
    inner = next(n.outputs[0] for n in fast.model.subgraphs[0].nodes if n.op == "conv_2d")
    assert plain.get_tensor(inner) is not None
    with pytest.raises(lt.LitetrainError, match="experimental_preserve_all_tensors"):
        fast.get_tensor(inner)
    np.testing.assert_array_equal(fast.get_tensor(index), xs[-1])
