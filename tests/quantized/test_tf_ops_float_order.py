"""TF Lite's float operation order under its builtin resolvers (litetrain/ops/builtin_float.py):
CONV_2D (each channel path of Eigen's block kernel), DEPTHWISE_CONV_2D and HARD_SWISH,
node by node bit-identical with TensorFlow Lite 2.18's reference and optimized kernels given
their own inputs (tests/fixtures/tf_quantized/float_order, made by make_float_order.py), and
the whole-model consequence: MobileNetV3Small's dynamic-range file at batch 4, where one
ulp upstream flipped a hybrid node's input quantization, within 1e-7 of TF's builtin
kernels."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from tests.conftest import FIXTURES
from tests.quantized.fixture_runs import fed

ROOT = FIXTURES / "tf_quantized"
RESOLVERS = {"ref": lt.OpResolverType.BUILTIN_REF,
             "builtin": lt.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}


@pytest.mark.parametrize("resolver", list(RESOLVERS))
@pytest.mark.parametrize("model", ["efficientnet_like", "mobilenet_v3_small",
                                   "conv_transpose_ae"])
def test_float_nodes_bit_identical_with_tensorflow(model, resolver):
    expected = dict(np.load(ROOT / "float_order" / "expected.npz"))
    x = np.load(ROOT / model / "expected.npz")["input/b1/in0"]
    plan = fed(ROOT / model / "float.tflite", x, RESOLVERS[resolver]).plan(0)
    steps = {s.index: s for s in plan.steps}
    ops = set()
    for index in expected[f"{model}/nodes"]:
        step = steps[int(index)]
        args = [None if i < 0 else expected[f"{model}/{resolver}/tensor/{i}"]
                for i in step.inputs]
        got = np.asarray(step.kernel(step.settings, *args))
        want = expected[f"{model}/{resolver}/tensor/{step.outputs[0]}"]
        np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32),
                                      err_msg=f"{model} node {index} ({step.op})")
        ops.add(step.op)
    assert "conv_2d" in ops


def test_default_resolver_keeps_its_own_kernels():
    """The default resolver does not pay for TF's order: its settings stay the fast ones."""
    x = np.load(ROOT / "efficientnet_like" / "expected.npz")["input/b1/in0"]
    plan = fed(ROOT / "efficientnet_like" / "float.tflite", x,
                        lt.OpResolverType.AUTO).plan(0)
    from litetrain.ops.builtin_float import TfOrder
    assert not any(isinstance(s.settings, TfOrder) for s in plan.steps)


def test_mobilenet_v3_dynamic_range_batch_4_matches_builtin_kernels():
    expected = np.load(ROOT / "mobilenet_v3_small" / "expected.npz")
    it = fed(ROOT / "mobilenet_v3_small" / "dynamic_range.tflite",
                      expected["input/b4/in0"], RESOLVERS["builtin"])
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    want = expected["dynamic_range/builtin/b4/out0"]
    assert np.abs(got - want).max() <= 1e-7 * np.abs(want).max()
