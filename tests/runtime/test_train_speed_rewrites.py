"""Prepare-time rewrites for train steps change nothing but speed: each rewritten kernel
gives the bits of the op's own kernel, and whole models give bit-identical results with
the rewrites (default) and without them (``experimental_preserve_all_tensors=True``)."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import lookup
from litetrain.runtime import channels
from litetrain.runtime.step import Step

from .test_simplify import _same_run, _train_infer_calls

# The inputs include IEEE specials on purpose: NumPy's overflow/invalid warnings are
# expected here (a model run computes them silently, as TF Lite does).
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _step(op: str, a_shape, b_shape, out_shape, a=0, b=1) -> tuple[Step, list]:
    opdef = lookup(op)
    values = [np.zeros(a_shape, np.float32), np.zeros(b_shape, np.float32),
              np.zeros(out_shape, np.float32)]
    return Step(index=0, op=op, kernel=opdef.kernel, stateful=False, inputs=(a, b),
                outputs=(2,), out_dtypes=(np.dtype(np.float32),), settings={},
                fresh=True, in_place=opdef.in_place, into=opdef.into,
                into_for=opdef.kernel), values


def _bits(x: np.ndarray) -> np.ndarray:
    return x.view(np.uint8) if x.dtype == bool else x.view(np.uint32)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "squared_difference",
                                "greater", "equal"])
@pytest.mark.parametrize(("big", "small"), [((8, 16, 16, 16), (16,)),
                                            ((32, 10, 10, 12), (1, 1, 1, 12)),
                                            ((9, 7, 11, 64), (64,))])
@pytest.mark.parametrize("big_first", [True, False])
def test_tiled_channel_kernel_gives_the_ops_bits(op, big, small, big_first, rng):
    shapes = (big, small) if big_first else (small, big)
    step, values = _step(op, *shapes, big)
    tiled = channels._tiled_step(step, values)
    assert tiled is not None and tiled.kernel is not step.kernel
    x = rng.standard_normal(big).astype(np.float32)
    flat = x.reshape(-1)
    flat[::7], flat[1::13], flat[2::17], flat[3::11] = 0.0, -0.0, np.inf, np.nan
    v = rng.standard_normal(small).astype(np.float32)
    v.reshape(-1)[0] = 0.0
    args = (x, v) if big_first else (v, x)
    want = step.kernel({}, *args)
    got = tiled.kernel({}, *args)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(_bits(got), _bits(want))
    # a non-contiguous big operand takes the op's kernel unchanged
    strided = np.concatenate([x, x], axis=-1)[..., ::2]
    args = (strided, v) if big_first else (v, strided)
    np.testing.assert_array_equal(_bits(tiled.kernel({}, *args)), _bits(step.kernel({}, *args)))
    # so does another operand than prepared for (a one-element vector broadcasts too)
    one = v.reshape(-1)[:1]
    args = (x, one) if big_first else (one, x)
    np.testing.assert_array_equal(_bits(tiled.kernel({}, *args)), _bits(step.kernel({}, *args)))


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_tiled_in_place_form_writes_into_the_big_operand(op, rng):
    step, values = _step(op, (8, 16, 16, 16), (16,), (8, 16, 16, 16))
    tiled = channels._tiled_step(step, values)
    assert tiled.in_place(1) is None  # the vector cannot hold the result
    x = rng.standard_normal((8, 16, 16, 16)).astype(np.float32)
    v = rng.standard_normal(16).astype(np.float32)
    want = step.kernel({}, x, v)
    target = x.copy()
    got = tiled.in_place(0)({}, target, v)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(target, want)  # written into operand 0 itself


@pytest.mark.parametrize("op", ["sub", "mul"])
@pytest.mark.parametrize("big_first", [True, False])
def test_tiled_into_form_writes_into_the_given_buffer(op, big_first, rng):
    """The form a kept buffer (runtime/arena.py) takes: the op's bits, in that buffer."""
    shapes = ((8, 16, 16, 16), (16,)) if big_first else ((16,), (8, 16, 16, 16))
    step, values = _step(op, *shapes, (8, 16, 16, 16))
    tiled = channels._tiled_step(step, values)
    ops = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    want = step.kernel({}, *ops)
    out = np.full(want.shape, np.nan, np.float32)
    got = tiled.out_form()({}, *ops, out=out)
    assert np.shares_memory(got, out) and got.shape == want.shape
    np.testing.assert_array_equal(_bits(out), _bits(want))
    wide = np.zeros((8, 16, 16, 32), np.float32)  # a strided big operand: the op's kernel
    wide[..., ::2] = ops[0 if big_first else 1]
    strided = [wide[..., ::2], ops[1]] if big_first else [ops[0], wide[..., ::2]]
    out[...] = np.nan
    np.testing.assert_array_equal(_bits(tiled.out_form()({}, *strided, out=out)),
                                  _bits(want))


@pytest.mark.parametrize(("big", "small"), [((2, 4, 4, 16), (16,)),      # too small to pay
                                            ((64, 32, 32, 1), (1,)),     # a scalar: long loops
                                            ((16, 32, 32, 512), (512,)),  # wide channels
                                            ((64, 32, 32, 16), (32, 1)),  # not a channel vector
                                            ((4099, 16), (16,))])         # prime rows
def test_broadcasts_that_do_not_pay_are_left_alone(big, small):
    step, values = _step("mul", big, small, big)
    assert channels._tiled_step(step, values) is None


def test_integer_variants_are_left_alone():
    step, values = _step("mul", (8, 16, 16, 16), (16,), (8, 16, 16, 16))
    other = Step(**{**step.__dict__, "kernel": lambda s, a, b: a})
    assert channels._tiled_step(other, values) is None


def test_batch_norm_cnn_is_identical_and_tiled(monkeypatch):
    """A BatchNorm CNN (16 and 32 channels) trains bit for bit as without the rewrite,
    and the rewrite did apply to its per-channel steps (the fused-chain pass, which
    takes batch norm's chains where compiled, is left out here)."""
    from litetrain.runtime import simplify

    monkeypatch.setattr(simplify, "fuse_gradient_chains", lambda steps, *_: steps)
    tiled = []
    original = channels._tiled_step

    def spy(step, values):
        out = original(step, values)
        if out is not None:
            tiled.append(step.op)
        return out
    monkeypatch.setattr(channels, "_tiled_step", spy)
    model = lt.nn.Sequential([
        lt.nn.Conv2D(16, 3, padding="same", activation="relu", input_shape=(16, 16, 3)),
        lt.nn.BatchNormalization(),
        lt.nn.MaxPool2D(2),
        lt.nn.Conv2D(32, 1, activation="relu"),
        lt.nn.BatchNormalization(),
        lt.nn.Flatten(),
        lt.nn.Dense(5),
    ])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.05))
    _same_run(lt.convert(m), _train_infer_calls((16, 16, 3), 5, [16, 16, 1, 16]))
    assert {"sub", "mul", "add"} <= set(tiled)
