"""Runs of float steps as one compiled call (:mod:`litetrain.runtime.float_program`, the
``[fast]`` extra's :mod:`litetrain.ops.fast.float_program`):

* the TensorFlow-made float MobileNets give the same bits with programs as with
  ``experimental_preserve_all_tensors`` (no rewrites at all), before the executor loads
  (steps one by one), after (one compiled call) and after ``resize_tensor_input``;
  MobileNetV3Small's plan is its stem, one program and its softmax;
* without NumPy's OpenBLAS to call, a run with products stays its steps (same bits);
  without the extra (or ``LITETRAIN_JIT=0``) no program is made;
* a run that starts while another holds the arena works in a copy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import fast
from litetrain.ops.fast import float_codes as codes
from litetrain.runtime import float_program

_LOADER = fast.kernels("float_program")
pytestmark = pytest.mark.needs_kernels(_LOADER)
ROOT = Path(__file__).resolve().parents[1] / "fixtures" / "tf_quantized"
MODELS = ("mobilenet_v3_small", "mobilenet_v2_035")


def _interpreter(model: str, batch: int, preserve: bool = False, variant: str = "float"):
    it = lt.Interpreter(model_path=str(ROOT / model / f"{variant}.tflite"), num_threads=1,
                        experimental_preserve_all_tensors=preserve)
    d = it.get_input_details()[0]
    it.resize_tensor_input(d["index"], [batch, *d["shape"][1:]])
    it.allocate_tensors()
    return it, d["index"], it.get_output_details()[0]["index"]


def _run(it, index, out, x):
    it.set_tensor(index, x)
    it.invoke()
    return it.get_tensor(out).copy()


def _programs(it) -> list:
    (p,) = it._plans.values()
    return [s.settings for entry in p._per_shapes.values() for s in entry[0]
            if s.op == "float_program"]


def _same(a, b) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


def _wait_all() -> None:
    for family in fast.FAMILIES:
        loader = fast.kernels(family)
        if loader is not None:
            loader.wait()


@pytest.mark.parametrize("model", MODELS)
def test_same_bits_as_unoptimised(model):
    it, i, o = _interpreter(model, 1)
    ref, ri, ro = _interpreter(model, 1, preserve=True)
    shape = it.get_input_details()[0]["shape"]
    rng = np.random.default_rng(1)
    states = []
    for r in range(5):
        if r == 2:
            _wait_all()
        x = rng.random(shape, np.float32) * 2 - 1
        _same(_run(it, i, o, x), _run(ref, ri, ro, x))
        states.append([p.state for p in _programs(it)])
    assert states[0] == ["waiting"] and states[-1] == ["ready"]
    (p,) = it._plans.values()
    (entry,) = p._per_shapes.values()
    ops = [s.op for s in entry[0]]
    # all but the softmax (NumPy's own exp) in one call, the stems (with V3's input
    # rescaling) as fast.gemm's windowed kernels
    assert ops == (["float_program", "softmax"] if model == "mobilenet_v3_small"
                   else ["float_program"])
    (program,) = _programs(it)
    assert program.steps[0].op.endswith("conv_2d+hard_swish" if model ==
                                        "mobilenet_v3_small" else "conv_2d")
    assert program.code[0, 0] == codes.OP_CONV
    # resized: encoded again for the new shapes, same bits
    for batch in (2, 1):
        it.resize_tensor_input(i, [batch, *shape[1:]])
        it.allocate_tensors()
        ref.resize_tensor_input(ri, [batch, *shape[1:]])
        ref.allocate_tensors()
        for _ in range(3):
            x = rng.random((batch, *shape[1:]), np.float32)
            _same(_run(it, i, o, x), _run(ref, ri, ro, x))
    assert all(p.state == "ready" for p in _programs(it))


def test_without_blas_the_steps_run(monkeypatch):
    from litetrain.ops.fast import blas

    monkeypatch.setattr(blas, "find", lambda: None)
    it, i, o = _interpreter("mobilenet_v3_small", 1)
    ref, ri, ro = _interpreter("mobilenet_v3_small", 1, preserve=True)
    _wait_all()
    x = np.random.default_rng(2).random(it.get_input_details()[0]["shape"], np.float32)
    for _ in range(3):
        _same(_run(it, i, o, x), _run(ref, ri, ro, x))
    assert [p.state for p in _programs(it)] == ["steps"]


def test_without_the_extra_no_programs(monkeypatch):
    monkeypatch.setattr(float_program, "kernels", lambda family: None)
    it, i, o = _interpreter("mobilenet_v3_small", 1)
    x = np.random.default_rng(3).random(it.get_input_details()[0]["shape"], np.float32)
    first = _run(it, i, o, x)
    _wait_all()
    _same(_run(it, i, o, x), first)
    assert _programs(it) == []


def test_a_large_batch_gets_no_programs():
    """A plan making activations beyond MAX_BYTES (batch 32) keeps all its steps: no
    gain there, and programs' arenas and constants would raise the peak memory."""
    it, i, o = _interpreter("mobilenet_v3_small", 32)
    x = np.random.default_rng(5).random((32, 96, 96, 3), np.float32)
    first = _run(it, i, o, x)
    _wait_all()
    _same(_run(it, i, o, x), first)
    (p,) = it._plans.values()
    (entry,) = p._per_shapes.values()
    assert not any(s.op == "float_program" for s in entry[0])
    assert any(s.op.startswith("depthwise") for s in entry[0])


def test_busy_arena_runs_in_a_copy():
    it, i, o = _interpreter("mobilenet_v3_small", 1)
    _wait_all()
    x = np.random.default_rng(4).random(it.get_input_details()[0]["shape"], np.float32)
    for _ in range(2):
        want = _run(it, i, o, x)
    (program,) = _programs(it)
    assert program.state == "ready"
    arena = program.arena
    with program.lock:  # another run holds the arena
        _same(_run(it, i, o, x), want)
    assert program.arena is arena
