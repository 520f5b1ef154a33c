"""Integer kernels of the activations and math ops TF 2.18's converter makes int8 beyond
the first op zoo — LOG_SOFTMAX, L2_NORMALIZATION, EXP, LOG, RSQRT, ABS (rescaling),
LEAKY_RELU, and the QUANTIZE (int8 → int8, uint8 ↔ int8) and DEQUANTIZE around them —
against TensorFlow Lite 2.18 on tests/fixtures/tf_quantized/op_zoo/math.tflite and its
uint8-I/O twin math_uint8.tflite (made by make_op_zoo_math.py): every node, run alone on
the inputs TF's kernels gave it, bit-exact under the reference and optimized builtin
resolvers; the whole model's output bit-exact under every resolver (default: XNNPACK's 8-bit
requantization and LEAKY_RELU)."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops.quantized.math_int import inv_sqrt_multiplier_exp
from tests.conftest import FIXTURES
from tests.quantized.fixture_runs import invoked

ZOO = FIXTURES / "tf_quantized" / "op_zoo"
RESOLVERS = {"ref": lt.OpResolverType.BUILTIN_REF,
             "builtin": lt.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
             "default": lt.OpResolverType.AUTO}


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(ZOO / "math_expected.npz"))


MODELS = {"": "math.tflite", "uint8/": "math_uint8.tflite"}  # key prefix -> file


def _run(x, resolver, preserve=False, prefix=""):
    return invoked(ZOO / MODELS[prefix], x, resolver, preserve)


@pytest.mark.parametrize("prefix", list(MODELS))
@pytest.mark.parametrize("resolver", ["ref", "builtin"])
def test_every_node_matches_tensorflow(expected, resolver, prefix):
    plan = _run(expected[f"{prefix}x"], RESOLVERS[resolver], True, prefix).plan(0)
    checked = set()
    for step in plan.steps:
        key = f"{prefix}{resolver}/tensor/{step.outputs[0]}"
        args = [None if i < 0 else expected.get(f"{prefix}{resolver}/tensor/{i}",
                                                plan.constants[i])
                for i in step.inputs]
        got = np.asarray(step.kernel(step.settings, *args))
        np.testing.assert_array_equal(got, expected[key], err_msg=step.op)
        checked.add(step.op)
    assert {"log_softmax", "l2_normalization", "exp", "log", "rsqrt", "abs", "leaky_relu",
            "quantize"} <= checked


@pytest.mark.parametrize("prefix", list(MODELS))
@pytest.mark.parametrize("resolver", ["ref", "builtin", "default"])
def test_output_matches_tensorflow(expected, resolver, prefix):
    it = _run(expected[f"{prefix}x"], RESOLVERS[resolver], prefix=prefix)
    got = it.get_tensor(it.get_output_details()[0]["index"])
    np.testing.assert_array_equal(got, expected[f"{prefix}{resolver}/out"])


def test_inverse_square_root_multiplier():
    """GetInvSqrtQuantizedMultiplierExp: multiplier * 2**shift ≈ 1 / sqrt(v) (Q0.31)."""
    v = np.array([2, 3, 17, 1000, 123456, (1 << 29) + 5, (1 << 31) - 1])
    mult, shift = inv_sqrt_multiplier_exp(v, -1)
    approx = mult.astype(np.float64) * 2.0 ** (shift.astype(np.float64) - 31)
    np.testing.assert_allclose(approx, 1 / np.sqrt(v), rtol=2e-6)  # 5 Newton steps, Q3.28
    mult, shift = inv_sqrt_multiplier_exp(np.array([0, 1]), -1)
    assert list(mult) == [2**31 - 1] * 2 and list(shift) == [0, 0]


def test_rsqrt_below_zero_point_is_an_error():
    from litetrain.ops.quantized.math_int import _rsqrt, _Unary
    from litetrain.ops.quantized.params import QParams
    q = QParams(np.array([0.05], np.float32), np.array([-10]), 0, np.dtype(np.int8))
    s = _Unary(q, q, 1 << 30, 0, True)
    with pytest.raises(ValueError, match="only defined for positive"):
        _rsqrt(s, np.array([-20], np.int8))


def test_gemmlowp_exp_and_log_follow_the_functions():
    from litetrain.ops.quantized.log_softmax_int import exp_on_negative_values, log_x_ge_1
    a = np.linspace(-31.9, 0, 501)
    got = exp_on_negative_values(np.round(a * 2.0 ** 26).astype(np.int64), 5) / 2.0 ** 31
    np.testing.assert_allclose(got, np.exp(a), rtol=0, atol=3e-7)
    v = np.linspace(1, 4000, 501)
    got = log_x_ge_1(np.round(v * 2.0 ** 19).astype(np.int64), 12, 5) / 2.0 ** 26
    np.testing.assert_allclose(got, np.log(v), rtol=0, atol=1e-6)


def test_log_softmax_int8_within_one_step_of_float():
    """TF Lite's fixed-point LOG_SOFTMAX against the rounded float one (they differ in
    about 1e-5 of elements, by one step)."""
    from litetrain.ops.quantized.log_softmax_int import log_softmax_int8, log_softmax_params
    scale = 0.0283632
    x = np.random.default_rng(0).integers(-128, 128, size=(300, 64)).astype(np.int8)
    got = log_softmax_int8(log_softmax_params(scale), x).astype(np.int64)
    z = x * scale
    z = z - z.max(-1, keepdims=True)
    want = np.clip(np.round((z - np.log(np.exp(z).sum(-1, keepdims=True))) * 16) + 127,
                   -128, 127)
    assert np.abs(got - want).max() <= 1 and np.mean(got == want) > 0.999
