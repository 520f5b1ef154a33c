"""A strided convolution's filter gradient with its tap windows gathered in one step
(runtime/filter_grad.py): the fused step gives the chain's bits (NaN, infinities, signed
zeros), the rewrite finds the chain the gradient rule emits, leaves it alone when an
inner value is read elsewhere, and train steps stay bit-identical with
``experimental_preserve_all_tensors``."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.runtime import filter_grad

from ..bits import same_bits, with_specials
from .test_simplify import _same_run, _train_infer_calls

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _cnn(kernel: int, stride: int, padding: str, size: int) -> bytes:
    model = lt.nn.Sequential([
        lt.nn.Conv2D(3, 1, input_shape=(size, size, 2)),
        lt.nn.Conv2D(4, kernel, strides=stride, padding=padding, activation="relu"),
        lt.nn.Flatten(),
        lt.nn.Dense(3),
    ])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.1))
    return lt.convert(m)


def _spy(monkeypatch) -> list:
    """Every (steps before, steps after, values, outputs) the pass sees."""
    seen = []
    original = filter_grad.fuse_filter_grad_taps

    def spy(steps, values, outputs):
        after = original(steps, values, outputs)
        seen.append((steps, after, values, set(outputs)))
        return after
    monkeypatch.setattr("litetrain.runtime.simplify.fuse_filter_grad_taps", spy)
    return seen


def _fused(seen) -> list:
    return [s for _, after, _, _ in seen for s in after if s.op == "pack[filter_grad_taps]"]


@pytest.mark.parametrize(("kernel", "stride", "padding", "size"), [
    (3, 2, "same", 8), (3, 2, "same", 9), (3, 2, "valid", 9), (3, 3, "same", 10),
    (2, 3, "same", 8)])
def test_train_steps_are_identical_and_fused(kernel, stride, padding, size, monkeypatch):
    seen = _spy(monkeypatch)
    _same_run(_cnn(kernel, stride, padding, size),
              _train_infer_calls((size, size, 2), 3, [5, 5, 1, 1, 5]))
    assert _fused(seen)


def test_the_fused_step_gives_the_chains_bits(monkeypatch, rng):
    seen = _spy(monkeypatch)
    run = lt.Interpreter(model_content=_cnn(3, 2, "same", 9)).get_signature_runner("train")
    run(x=rng.random((4, 9, 9, 2), np.float32), y=np.eye(3, dtype=np.float32)[[0, 1, 2, 0]])
    (step,) = _fused(seen)
    s = step.settings
    _, values = next((after, v) for _, after, v, _ in seen if step in after)
    x = with_specials(rng, values[step.inputs[0]].shape)
    x.reshape(-1)[:3] = [np.inf, -np.inf, -0.0]
    d = with_specials(rng, values[step.inputs[1]].shape)
    consts = [values[i] for i in step.inputs[2:]]
    want = filter_grad._original(s, x, d, consts)
    got = filter_grad.gathered_taps(s, x, d, *consts)
    same_bits(got, want)
    assert np.isnan(got).any()
    # constants that are not the prepared arrays: the chain's steps, the same values
    same_bits(filter_grad.gathered_taps(s, x, d, *(c.copy() for c in consts)), want)
    # a strided input: copied into the windows all the same
    wide = np.zeros((*x.shape[:3], 2 * x.shape[3]), np.float32)
    wide[..., ::2] = x
    same_bits(filter_grad.gathered_taps(s, wide[..., ::2], d, *consts), want)


def test_a_chain_read_elsewhere_is_left_alone(monkeypatch, rng):
    seen = _spy(monkeypatch)
    run = lt.Interpreter(model_content=_cnn(3, 2, "same", 8)).get_signature_runner("train")
    run(x=rng.random((2, 8, 8, 2), np.float32), y=np.eye(3, dtype=np.float32)[:2])
    steps, _, values, outputs = next(a for a in seen if _fused([a]))
    original = filter_grad.fuse_filter_grad_taps
    packed = {i for s in steps if s.op == "pack" for i in s.inputs}
    inner = [s for s in steps if s.op in ("pad", "strided_slice")
             or (s.op == "batch_matmul" and s.outputs[0] in packed)]
    assert inner
    for step in inner:
        kept = original(steps, values, outputs | {step.outputs[0]})
        assert not any(s.op == "pack[filter_grad_taps]" for s in kept), step.op
