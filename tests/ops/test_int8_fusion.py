"""8-bit tables fused across steps (:mod:`litetrain.runtime.int8_fusion`) change nothing
but speed:

* swish ``MUL(x, LOGISTIC(x))`` (and any unary table ``T`` feeding a binary table ``B``
  with ``x`` as the other operand, in either order) as one table step: every 8-bit value
  and a random array against the two steps' kernels, random scales and zero points,
  int8 and uint8, every resolver;
* unary tables run inside the step making their operand (the compiled DEPTHWISE_CONV_2D's
  store, the lookup after CONV_2D / FULLY_CONNECTED / ADD): the two steps' bits, kernels
  loaded or not;
* what must stay apart does (a value read twice or returned, a broadcast operand, another
  operand than ``T``'s input);
* the TensorFlow-made int8 models, under every resolver: each specialised step fed the
  values of an ``experimental_preserve_all_tensors`` run gives that run's values, the
  outputs are equal, and the fusions happen (EfficientNet's 16 swish, MobileNetV3's
  HARD_SWISH).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from litetrain.errors import LitetrainError
from litetrain.ops import compiled_int8, fast
from litetrain.ops.evaluate import node_info
from litetrain.ops.quantized.params import QParams
from litetrain.ops.quantized.tables import Tabulated
from litetrain.ops.registry import lookup
from litetrain.ops.resolver import OpResolverType
from litetrain.runtime.int8_fusion import fuse_int8_tables, fuse_swish
from litetrain.runtime.step import Step
from tests.quantized.fixture_runs import fed
from tests.quantized.test_tf_resolvers import RESOLVERS, ROOT, _input

_LOADER = fast.kernels("int8")
HAVE_NUMBA = _LOADER is not None  # the [fast] extra, not switched off


@pytest.fixture(autouse=True)
def _kernels_loaded() -> None:
    """With numba the tests check the compiled kernels too: wait for them here, not at
    import (collection must not compile)."""
    if HAVE_NUMBA:
        assert _LOADER.wait() is not None
_EVERY = np.arange(256, dtype=np.uint8)


def _qp(scale, zp, dtype):
    return QParams(np.atleast_1d(np.asarray(scale, np.float32)),
                   np.atleast_1d(np.asarray(zp, np.int64)), 0, np.dtype(dtype))


def _random_qp(rng, dtype, scale=(2e-3, 0.2)):
    info = np.iinfo(dtype)
    return _qp(rng.uniform(*scale), int(rng.integers(info.min, info.max + 1)), dtype)


def _step(index, op, inputs, outputs, arrays, qin, qout, dtype, resolver, attrs=None):
    """A plan's step of ``op``'s integer variant prepared on ``arrays``."""
    variant = lookup(op).integer
    info = node_info(op, arrays, attrs or {}, [dtype], qin, [qout])
    settings = variant.prepare(dataclasses.replace(info, resolver=resolver))
    return Step(index, op, variant.kernel, False, inputs, outputs, (np.dtype(dtype),),
                settings)


def _run(step, values):
    return step.kernel(step.settings, *(values[i] for i in step.inputs))


def _pair(rng, dtype, resolver, unary="logistic", binary="mul", order=(0, 1)):
    """Steps T (tensor 0 -> 1) and B (operands ``order`` of (0, 1) -> 2) on 8-bit arrays
    of one shape, with each tensor's random parameters: (steps, values)."""
    x = _EVERY.view(dtype)
    qx, qy, qz = (_random_qp(rng, dtype) for _ in range(3))
    if unary == "logistic":  # TF Lite's LOGISTIC output parameters
        qy = _qp(1 / 256, -128 if dtype == np.int8 else 0, dtype)
    t = _step(0, unary, (0,), (1,), [x], [qx], qy, dtype, resolver)
    y = _run(t, [x])
    ops = [(x, qx), (y, qy)]
    a, b = (ops[k] for k in order)
    act = int(rng.choice([0, 1, 3]))
    m = _step(1, binary, order, (2,), [a[0], b[0]], [a[1], b[1]], qz, dtype, resolver,
              {"fused_activation_function": act})
    return [t, m], [x, y, _run(m, [x, y])]


@pytest.mark.parametrize("resolver", list(OpResolverType), ids=lambda r: r.name)
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_swish_table_equals_the_two_kernels(resolver, dtype, rng):
    for trial in range(8):
        unary = ("logistic", "logistic", "tanh", "hard_swish")[trial % 4]
        binary = ("mul", "add")[trial // 4 % 2] if trial % 4 else "mul"
        order = (0, 1) if trial % 2 == 0 else (1, 0)
        steps, values = _pair(rng, dtype, resolver, unary, binary, order)
        fused = fuse_swish(steps, values, {2})  # B's result may be returned
        assert len(fused) == 1 and fused[0].outputs == (2,) and fused[0].inputs == (0,)
        for x in (_EVERY.view(dtype), rng.integers(0, 256, (3, 5, 7)).astype(np.uint8)
                  .view(dtype), _EVERY.view(dtype)[::-3]):
            want = _run(steps[1], {0: x, 1: _run(steps[0], {0: x})})
            got = _run(fused[0], {0: x})
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want, err_msg=f"{unary} {binary} {order}")


def test_what_must_stay_apart_does(rng):
    auto = OpResolverType.AUTO
    steps, values = _pair(rng, np.int8, auto)
    t, m = steps
    reader = dataclasses.replace(m, index=2, inputs=(1, 1), outputs=(3,))
    values.append(values[2])
    # T's result read twice, or returned
    assert len(fuse_swish([t, m, reader], values, set())) == 3
    assert len(fuse_swish([t, m], values, {1})) == 2
    # B's other operand is not T's input
    other = dataclasses.replace(m, inputs=(3, 1))
    assert len(fuse_swish([t, other], values, set())) == 2
    # a broadcast operand (B's result has another shape than x)
    wide = list(values)
    wide[2] = np.zeros((4, 256), np.int8)
    assert len(fuse_swish([t, m], wide, set())) == 2
    # 16-bit
    x16 = np.arange(-300, 300, dtype=np.int16)
    t16 = _step(0, "logistic", (0,), (1,), [x16], [_qp(0.01, 0, np.int16)],
                _qp(2 ** -15, 0, np.int16), np.int16, auto)
    assert not isinstance(t16.settings, Tabulated) or t16.settings.translation is None
    assert len(fuse_swish([t16, m], [x16, x16, x16], set())) == 2


def _depthwise(rng, dtype, resolver):
    """A DEPTHWISE_CONV_2D step (tensor 0 -> 1) of random geometry and parameters."""
    c = int(rng.integers(1, 40))
    x = rng.integers(0, 256, (2, 9, 7, c)).astype(np.uint8).view(dtype)
    w = rng.integers(-127, 128, (1, 3, 3, c)).astype(dtype)
    if dtype == np.uint8:
        wq = _random_qp(rng, dtype, (1e-3, 2e-2))
    else:
        wq = QParams(rng.uniform(1e-3, 2e-2, c).astype(np.float32), np.zeros(c, np.int64), 3,
                     np.dtype(dtype))
    b = rng.integers(-2**12, 2**12, c).astype(np.int32)
    attrs = {"padding": int(rng.integers(0, 2)), "stride_h": int(rng.integers(1, 3)),
             "stride_w": int(rng.integers(1, 3)), "depth_multiplier": 1,
             "fused_activation_function": int(rng.choice([0, 1, 3]))}
    variant = lookup("depthwise_conv_2d").integer
    info = node_info("depthwise_conv_2d", [x, w, b], attrs, [dtype],
                     [_random_qp(rng, dtype, (1e-3, 5e-2)), wq, None],
                     [_random_qp(rng, dtype, (2e-3, 0.2))])
    s = variant.prepare(dataclasses.replace(info, resolver=resolver))
    return Step(0, "depthwise_conv_2d", variant.kernel, False, (0, 4, 5), (1,),
                (np.dtype(dtype),), s), x, w, b


@pytest.mark.parametrize("resolver", list(OpResolverType), ids=lambda r: r.name)
@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_tables_fused_into_producers_equal_the_two_steps(resolver, dtype, rng):
    for trial in range(4):
        dw, x, w, b = _depthwise(rng, dtype, resolver)
        y = dw.kernel(dw.settings, x, w, b)
        # swish after it (tensors 1 -> 2 -> 3), fused into one table, then into dw
        pair, _ = _pair(rng, dtype, resolver, order=(trial % 2, 1 - trial % 2))
        t, m = (dataclasses.replace(s, inputs=tuple(i + 1 for i in s.inputs),
                                    outputs=tuple(o + 1 for o in s.outputs)) for s in pair)
        steps = [dw, t, m]
        values = {4: w, 5: b, 0: x, 1: y}
        values[2] = _run(t, values)
        values[3] = _run(m, values)
        fused = fuse_int8_tables(steps, [values[k] for k in range(6)], set())
        assert len(fused) == 1 and fused[0].outputs == (3,)
        if HAVE_NUMBA:
            assert isinstance(fused[0].settings, compiled_int8.Int8)
            assert fused[0].settings.table is not None and dw.settings.table is None
        np.testing.assert_array_equal(_run(fused[0], values), values[3])
        if HAVE_NUMBA:  # the NumPy path of the fused settings
            np.testing.assert_array_equal(
                compiled_int8._RUN["depthwise"](fused[0].settings, _LOADER.module, x),
                values[3])
            wraps = lookup("depthwise_conv_2d").integer.kernel
            np.testing.assert_array_equal(wraps(_not_loaded(fused[0].settings), x, w, b),
                                          values[3])


def _not_loaded(s):
    """Settings whose kernels are still loading."""
    out = s.with_table(s.table)
    out.loader = type("Loading", (), {"module": None, "start": lambda self: None})()
    return out


@pytest.mark.parametrize("producer", ["fully_connected", "add", "conv_2d"])
def test_a_table_after_other_producers_runs_in_their_step(producer, rng):
    dtype, auto = np.int8, OpResolverType.AUTO
    x = rng.integers(-128, 128, (2, 4, 4, 8)).astype(dtype)
    qx, qo = _random_qp(rng, dtype), _random_qp(rng, dtype)
    if producer == "add":
        args, qin = [x, x[::-1].copy()], [qx, _random_qp(rng, dtype)]
    elif producer == "fully_connected":
        w = rng.integers(-127, 128, (5, 8)).astype(dtype)
        args, qin = [x, w], [qx, _qp(0.01, 0, dtype)]
    else:
        w = rng.integers(-127, 128, (6, 1, 1, 8)).astype(dtype)
        args, qin = [x, w], [qx, _qp(0.01, 0, dtype)]
    inputs = (0, 3)
    p = _step(0, producer, inputs, (1,), args, qin, qo, dtype, auto,
              {"padding": 0, "stride_h": 1, "stride_w": 1})
    y = _run(p, {0: x, 3: args[1]})
    t = _step(1, "logistic", (1,), (2,), [y], [qo], _qp(1 / 256, -128, dtype), dtype, auto)
    want = _run(t, {1: y})
    values = [x, y, want, args[1]]
    fused = fuse_int8_tables([p, dataclasses.replace(t, index=1)], values, set())
    assert len(fused) == 1 and fused[0].op == f"{producer}+logistic"
    for _ in range(3):  # NumPy, then compiled once loaded
        np.testing.assert_array_equal(_run(fused[0], {0: x, 3: args[1]}), want)
    assert len(fuse_int8_tables([p, t], values, {1})) == 2  # the producer's result returned


# --- TensorFlow-made models ------------------------------------------------------------------

@pytest.mark.parametrize("resolver", list(RESOLVERS))
@pytest.mark.parametrize("model", ["efficientnet_like", "mobilenet_v3_small"])
def test_fixture_models_fused_equal_every_tensor_kept_and_tensorflow(model, resolver):
    path = ROOT / model / "int8.tflite"
    with np.load(ROOT / model / "expected.npz") as f:
        x, tf_out = _input(f, "int8", 4), f[f"int8/{resolver}/b4/out0"]
    outs = []
    for preserve in (True, False):
        it = fed(path, x, RESOLVERS[resolver], preserve)
        for _ in range(3):  # the first run for a shape is not specialised
            it.invoke()
        outs.append(it.get_tensor(it.get_output_details()[0]["index"]))
        plan = it._plans[0]
        if preserve:
            kept = [_kept(it, i) for i in range(len(plan.subgraph.tensors))]
        else:
            steps = next(iter(plan._per_shapes.values()))[0]
            # (steps an int8 program runs in one call: runtime.int8_program)
            steps = [t for s in steps
                     for t in (s.settings.steps if s.op == "int8_program" else [s])]
    np.testing.assert_array_equal(outs[0], tf_out)
    np.testing.assert_array_equal(outs[1], tf_out)
    fused = [s for s in steps if "+" in s.op]
    want = {"efficientnet_like": ("logistic+mul", 16), "mobilenet_v3_small": ("hard_swish", 3)}
    name, count = want[model]
    assert sum(name in s.op for s in fused) >= count, [s.op for s in fused]
    for s in fused:  # each fused step on the kept values gives the kept results
        args = [kept[i] if kept[i] is not None else plan.constants[i] for i in s.inputs]
        got = s.kernel(s.settings, *args)
        np.testing.assert_array_equal(got, kept[s.outputs[0]], err_msg=s.op)


def _kept(it, i):
    try:
        return it.get_tensor(i)
    except LitetrainError:  # (tensors without a value: constants are the plan's)
        return None
