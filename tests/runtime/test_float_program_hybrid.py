"""Dynamic-range plans' runs as float programs (:mod:`litetrain.runtime.
float_encode_hybrid`):

* the TensorFlow-made dynamic-range models give the same bits with programs as with
  ``experimental_preserve_all_tensors``, before the executor loads, after, and after
  ``resize_tensor_input``; their hybrid steps, XNNPACK-order float steps and scalar MULs
  are instructions (MobileNetV3Small: its stem, one program, its softmax);
* an input the hybrid kernels refuse (NaN, ±inf) stops the program: its steps run one by
  one and fail as they do without programs; the next good input runs the program;
* at batch 32 only steps of small tensors join programs.
"""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import fast
from litetrain.ops.fast import float_codes as codes
from litetrain.runtime import float_program
from tests.runtime.test_float_program import _interpreter as _any_interpreter
from tests.runtime.test_float_program import _programs, _run, _same, _wait_all

_LOADER = fast.kernels("float_program")
pytestmark = pytest.mark.needs_kernels(_LOADER)
MODELS = ("mobilenet_v3_small", "efficientnet_like", "conv_transpose_ae", "dilated_conv1d")


def _interpreter(model: str, batch: int, preserve: bool = False):
    return _any_interpreter(model, batch, preserve, variant="dynamic_range")


@pytest.mark.parametrize("model", MODELS)
def test_same_bits_as_unoptimised(model):
    it, i, o = _interpreter(model, 1)
    ref, ri, ro = _interpreter(model, 1, preserve=True)
    shape = it.get_input_details()[0]["shape"]
    rng = np.random.default_rng(1)
    for r in range(5):
        if r == 2:
            _wait_all()
        x = rng.random(shape, np.float32) * 2 - 1
        _same(_run(it, i, o, x), _run(ref, ri, ro, x))
    programs = _programs(it)
    assert all(p.state == "ready" for p in programs)
    ops = {int(c) for p in programs for c in p.code[:, 0]}
    if model in MODELS[:2]:
        assert codes.OP_HYBRID_POINTWISE in ops
    if model == "mobilenet_v3_small":
        assert {codes.OP_HYBRID_DEPTHWISE, codes.OP_XNN_MEAN, codes.OP_MUL_SCALAR,
                codes.OP_XNN_CONV, codes.OP_XNN_DEPTHWISE} <= ops
        (p,) = it._plans.values()
        (entry,) = p._per_shapes.values()
        # the stem (input rescaling, HARD_SWISH fused), one program, the softmax
        assert [s.op for s in entry[0]] == ["mul+add+conv_2d+hard_swish", "float_program",
                                            "softmax"]
    for batch in (3, 1):
        it.resize_tensor_input(i, [batch, *shape[1:]])
        it.allocate_tensors()
        ref.resize_tensor_input(ri, [batch, *shape[1:]])
        ref.allocate_tensors()
        for _ in range(3):
            x = rng.random((batch, *shape[1:]), np.float32) * 4 - 2
            _same(_run(it, i, o, x), _run(ref, ri, ro, x))
    assert all(p.state == "ready" for p in _programs(it))


def test_refused_input_runs_the_steps():
    it, i, o = _interpreter("mobilenet_v3_small", 1)
    ref, ri, ro = _interpreter("mobilenet_v3_small", 1, preserve=True)
    shape = it.get_input_details()[0]["shape"]
    _wait_all()
    x = np.random.default_rng(2).random(shape, np.float32)
    for _ in range(3):
        _same(_run(it, i, o, x), _run(ref, ri, ro, x))
    assert all(p.state == "ready" for p in _programs(it))
    for bad in (np.nan, np.inf):  # the NumPy pass says what is wrong, as without programs
        x[0, 40:50, 40:50, :] = bad
        for interpreter, index, out in ((it, i, o), (ref, ri, ro)):
            with pytest.raises(lt.errors.InvokeError, match="holds NaN or ±inf"):
                _run(interpreter, index, out, x)
    x = np.random.default_rng(3).random(shape, np.float32)
    _same(_run(it, i, o, x), _run(ref, ri, ro, x))
    assert all(p.state == "ready" for p in _programs(it))


def test_large_tensors_stay_steps():
    """At batch 32 a dynamic-range plan's programs hold only steps of small tensors
    (``MAX_BYTES_HYBRID``), with the unrewritten bits."""
    it, i, o = _interpreter("mobilenet_v3_small", 32)
    ref, ri, ro = _interpreter("mobilenet_v3_small", 32, preserve=True)
    x = np.random.default_rng(5).random((32, 96, 96, 3), np.float32)
    _run(it, i, o, x)
    _wait_all()
    _same(_run(it, i, o, x), _run(ref, ri, ro, x))
    programs = _programs(it)  # (none at all where a plan's activations are too large)
    assert all(p.state == "ready" for p in programs)
    for p in programs:
        sizes = [p.snapshot[j].nbytes for t in p.steps for j in (*t.inputs, *t.outputs)
                 if j >= 0 and p.snapshot[j].__class__ is not np.ndarray]
        assert max(sizes) <= float_program.MAX_BYTES_HYBRID
