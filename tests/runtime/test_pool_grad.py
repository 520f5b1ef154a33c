"""MAX_POOL_2D's tiled gradient fused into one step (runtime/pool_grad.py): its NumPy and
compiled forms give the chain's bits (ties, NaN, signed zeros, infinite cotangents), the
rewrite finds the chain the gradient rule emits, and train steps stay bit-identical with
``experimental_preserve_all_tensors``."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import fast, lookup
from litetrain.runtime import pool_grad

from ..bits import same_bits
from .test_simplify import _same_run, _train_infer_calls

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _op(name, *args, **attrs):
    return lookup(name).kernel(attrs, *args)


def _chain(x, y, dy, kh, kw):
    """The gradient rule's chain, op by op with the op table's kernels."""
    n, oh, ow, c = y.shape
    taken, rows = None, []
    for i in range(kh):
        cols = []
        for j in range(kw):
            win = x[:, i:oh * kh:kh, j:ow * kw:kw]
            hit = _op("equal", win, y)
            if taken is not None:
                hit = _op("logical_and", hit, _op("logical_not", taken))
                taken = _op("logical_or", taken, hit)
            else:
                taken = hit
            cols.append(_op("mul", dy, lookup("cast").kernel(np.dtype(np.float32), hit)))
        rows.append(_op("pack", *cols, axis=3, values_count=kw).reshape(n, oh, ow * kw, c))
    return _op("pack", *rows, axis=2, values_count=kh).reshape(n, oh * kh, ow * kw, c)


def _pooled(rng, kh, kw, shape=(3, 4, 5, 6)):
    n, oh, ow, c = shape
    # few distinct values: many ties inside windows; NaN, ±0, ±inf mixed in
    x = rng.choice(np.array([0.0, -0.0, 1.0, 2.0, np.nan, -np.inf, np.inf], np.float32),
                   (n, oh * kh + 1, ow * kw + 1, c))
    y = np.max(x[:, :oh * kh, :ow * kw].reshape(n, oh, kh, ow, kw, c), axis=(2, 4))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dy.reshape(-1)[:4] = [np.inf, -np.inf, np.nan, -0.0]
    return x, y, dy


def _forms():
    forms = [{"kh": None}]
    loader = fast.kernels("train")
    if loader is not None and loader.wait() is not None:
        forms.append(fast.WithKernels({}, loader))
    return forms


@pytest.mark.parametrize(("kh", "kw"), [(2, 2), (3, 3), (2, 3)])
def test_fused_forms_give_the_chains_bits(kh, kw, rng):
    x, y, dy = _pooled(rng, kh, kw)
    want = _chain(x, y, dy, kh, kw)
    for settings in _forms():
        settings.update(kh=kh, kw=kw)
        same_bits(pool_grad.max_pool_grad(settings, x, y, dy), want)
        out = np.full(want.shape, 7.0, np.float32)
        assert pool_grad.max_pool_grad(settings, x, y, dy, out=out) is out
        same_bits(out, want)
    # a strided operand: the NumPy form
    wide = np.zeros((*x.shape[:3], 2 * x.shape[3]), np.float32)
    wide[..., ::2] = x
    settings = _forms()[-1]
    settings.update(kh=kh, kw=kw)
    same_bits(pool_grad.max_pool_grad(settings, wide[..., ::2], y, dy), want)


def _cnn(pool: int, size: int = 12):
    model = lt.nn.Sequential([
        lt.nn.Conv2D(4, 3, padding="same", activation="relu", input_shape=(size, size, 2)),
        lt.nn.MaxPool2D(pool),
        lt.nn.Flatten(),
        lt.nn.Dense(3),
    ])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.1))
    return lt.convert(m)


@pytest.mark.parametrize(("pool", "size"), [(2, 12), (3, 12), (2, 13)])
def test_train_steps_are_identical_and_fused(pool, size, monkeypatch):
    if fast.kernels("train") is not None:
        fast.kernels("train").wait()
    fused = []
    original = pool_grad.fuse_max_pool_grads

    def spy(*args):
        steps = original(*args)
        fused.extend(s for s in steps if s.op == "max_pool_2d_grad")
        return steps
    monkeypatch.setattr("litetrain.runtime.simplify.fuse_max_pool_grads", spy)
    _same_run(_cnn(pool, size), _train_infer_calls((size, size, 2), 3, [5, 5, 1, 1, 5]))
    assert fused


def test_a_chain_read_elsewhere_is_left_alone(monkeypatch, rng):
    """A tap's comparison that is also a subgraph output: nothing is fused."""
    seen = []
    original = pool_grad.fuse_max_pool_grads

    def spy(steps, values, outputs):
        seen.append((steps, values, set(outputs)))
        return original(steps, values, outputs)
    monkeypatch.setattr("litetrain.runtime.simplify.fuse_max_pool_grads", spy)
    run = lt.Interpreter(model_content=_cnn(2)).get_signature_runner("train")
    feeds = {"x": rng.random((2, 12, 12, 2), np.float32), "y": np.eye(3, dtype=np.float32)[:2]}
    run(**feeds)
    steps, values, outputs = next(args for args in seen
                                  if any(s.op == "equal" for s in args[0]))
    assert any(s.op == "max_pool_2d_grad" for s in original(steps, values, outputs))
    inner = [s for s in steps if s.op in ("equal", "logical_or")
             or (s.op == "pack" and s.settings.get("axis") in (2, 3))]
    assert len(inner) == 4 + 2 + 3  # 2×2: four taps, two ORs, three PACKs
    for k, step in enumerate(inner):
        kept = original(steps, values, outputs | {step.outputs[0]})
        assert not any(s.op == "max_pool_2d_grad" for s in kept), (k, step.op)
