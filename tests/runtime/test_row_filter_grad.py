"""A stride-1 convolution's filter gradient from shifted rows as one compiled step
(runtime/row_filter_grad.py, fast/filter_grad.py): the fused step gives the chain's bits
(NaN, infinities, signed zeros, all-zero channels) on several geometries, compiled and
not; a failed proof keeps the chain; the rewrite leaves a chain read elsewhere alone;
train steps stay identical with ``experimental_preserve_all_tensors``."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import fast
from litetrain.runtime import row_filter_grad as rfg
from litetrain.runtime.filter_grad import run_chain
from litetrain.runtime.threads import blas_threads

from ..bits import same_bits
from .test_simplify import _same_run, _train_infer_calls

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
_LOADER = fast.kernels("filter_grad")


def _cnn(channels: int, kernel: int, padding: str, size: int, filters: int) -> bytes:
    model = lt.nn.Sequential([
        lt.nn.Conv2D(filters, kernel, padding=padding, activation="relu",
                     input_shape=(size, size + 1, channels)),
        lt.nn.Flatten(),
        lt.nn.Dense(3),
    ])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.1))
    return lt.convert(m)


def _spy(monkeypatch) -> list:
    """Every (steps after, values) the pass sees."""
    seen = []
    original = rfg.fuse_row_filter_grads

    def spy(steps, values, outputs):
        after = original(steps, values, outputs)
        seen.append((after, values))
        return after
    monkeypatch.setattr("litetrain.runtime.simplify.fuse_row_filter_grads", spy)
    return seen


def _fused(seen) -> list:
    return [(s, v) for after, v in seen for s in after if s.op == "pack[row_filter_grad]"]


_TINY = np.float32(2.0 ** -149)  # the smallest float32: its products by |x| < 0.5 round to 0


def _specials(rng, shape) -> np.ndarray:
    """Random float32 values, 2 % signed zeros, a few NaN and infinities."""
    v = rng.standard_normal(shape).astype(np.float32)
    flat = v.reshape(-1)
    flat[rng.random(flat.size) < 0.02] = -0.0
    flat[rng.random(flat.size) < 0.02] = 0.0
    flat[rng.choice(flat.size, 3, replace=False)] = [np.nan, np.inf, -np.inf]
    return v


def _module():
    module = None if _LOADER is None else _LOADER.wait()
    if module is None:
        pytest.skip("no compiled filter_grad kernels")
    return module


@pytest.mark.parametrize(("channels", "kernel", "padding", "size", "filters"), [
    (3, 3, "same", 8, 16), (1, 3, "valid", 7, 5), (2, 5, "same", 9, 20), (4, 2, "same", 6, 8)])
def test_train_steps_are_identical_and_fused(channels, kernel, padding, size, filters,
                                             monkeypatch):
    if _LOADER is not None:
        _LOADER.wait()  # the compiled form from the second run on
    seen = _spy(monkeypatch)
    _same_run(_cnn(channels, kernel, padding, size, filters),
              _train_infer_calls((size, size + 1, channels), 3, [5, 5, 1, 1, 5]))
    assert bool(_fused(seen)) == (_LOADER is not None)  # (no compiled kernels: not fused)


@pytest.mark.parametrize(("channels", "kernel", "padding", "size", "filters", "batch"), [
    (3, 3, "same", 8, 16, 3), (3, 3, "valid", 9, 16, 1), (2, 5, "same", 9, 20, 2),
    (1, 3, "same", 6, 5, 2), (4, 2, "valid", 6, 33, 1)])
def test_the_fused_step_gives_the_chains_bits(channels, kernel, padding, size, filters,
                                              batch, monkeypatch, rng):
    module = _module()
    seen = _spy(monkeypatch)
    run = lt.Interpreter(model_content=_cnn(channels, kernel, padding, size, filters)
                         ).get_signature_runner("train")
    run(x=rng.random((batch, size, size + 1, channels), np.float32),
        y=np.eye(3, dtype=np.float32)[[0] * batch])
    ((step, values),) = _fused(seen)
    s = step.settings
    x, dy = _specials(rng, s.x_shape), _specials(rng, s.dy_shape)
    x[0] = rng.uniform(0.01, 0.49, x.shape[1:])  # times dy's smallest: a -0.0 product
    dy[..., 0] = -_TINY
    dy[..., 1] = np.where(rng.random(dy.shape[:3]) < 0.5, -0.0, 0.0)
    consts = [values[i] for i in step.inputs[2:]]
    want = run_chain(s.subs, s.inputs, (x, dy, *consts), s.result)
    verdict = rfg.proven(s, module)  # (one channel: BLAS's matrix-vector kernel, refused)
    s.kernels.ready()
    used = []
    monkeypatch.setattr(module, "row_taps",
                        lambda *a, f=module.row_taps: used.append(1) or f(*a))
    same_bits(rfg.row_taps(s, x, dy, *consts), want)
    bits = want.view(np.uint32)
    assert len(used) == verdict and np.isnan(want).any() and not np.isnan(want).all()
    assert (bits == 0).any()  # (a -0.0 sum cannot come out: every sum has +0.0 terms)
    # a read-only input, constants that are not the prepared arrays, a strided dy
    x.flags.writeable = False
    same_bits(rfg.row_taps(s, x, dy, *consts), want)
    same_bits(rfg.row_taps(s, x, dy, *(c.copy() for c in consts)), want)
    wide = np.zeros((*dy.shape[:3], 2 * dy.shape[3]), np.float32)
    wide[..., ::2] = dy
    same_bits(rfg.row_taps(s, x, wide[..., ::2], *consts), want)
    assert len(used) == 2 * verdict


def test_a_failed_proof_keeps_the_chain(monkeypatch, rng):
    module = _module()
    seen = _spy(monkeypatch)
    run = lt.Interpreter(model_content=_cnn(3, 3, "same", 6, 4)).get_signature_runner("train")
    run(x=rng.random((2, 6, 7, 3), np.float32), y=np.eye(3, dtype=np.float32)[:2])
    ((step, values),) = _fused(seen)
    s = step.settings
    monkeypatch.setattr(rfg, "proven", lambda *a: False)
    monkeypatch.setattr(module, "row_taps", lambda *a: pytest.fail("compiled form used"))
    x, dy = _specials(rng, s.x_shape), _specials(rng, s.dy_shape)
    consts = [values[i] for i in step.inputs[2:]]
    s.kernels.ready()
    same_bits(rfg.row_taps(s, x, dy, *consts), run_chain(s.subs, s.inputs, (x, dy, *consts),
                                                         s.result))


def _first_run(monkeypatch, rng, batch: int = 2) -> tuple:
    """(steps before the pass, values, outputs, the fused step) of a small CNN's train
    signature."""
    seen = []
    original = rfg.fuse_row_filter_grads

    def spy(steps, values, outputs):
        after = original(steps, values, outputs)
        seen.append((steps, values, set(outputs), after))
        return after
    monkeypatch.setattr("litetrain.runtime.simplify.fuse_row_filter_grads", spy)
    run = lt.Interpreter(model_content=_cnn(3, 3, "same", 6, 4)).get_signature_runner("train")
    run(x=rng.random((batch, 6, 7, 3), np.float32), y=np.eye(3, dtype=np.float32)[[0] * batch])
    ((steps, values, outputs, step),) = [(*a[:3], s) for a in seen for s in a[3]
                                         if s.op == "pack[row_filter_grad]"]
    return steps, values, outputs, step


def test_a_kernel_in_another_order_is_refused(monkeypatch, rng):
    """The proof is a real comparison: a kernel one unit in the last place off is
    refused (and the real one is not)."""
    module = _module()
    s = _first_run(monkeypatch, rng)[3].settings

    class OneUlpOff:
        @staticmethod
        def row_taps(*args):
            module.row_taps(*args)
            out = args[-1]
            out[...] = np.nextafter(out, np.float32(np.inf))
    monkeypatch.setattr(rfg, "_PROVEN", {})
    assert rfg.proven(s, module)
    rfg._PROVEN.clear()
    assert not rfg.proven(s, OneUlpOff)


def test_a_chain_read_elsewhere_is_left_alone(monkeypatch, rng):
    _module()
    steps, values, outputs, step = _first_run(monkeypatch, rng)
    inner = [sub.output for sub in step.settings.subs if sub.output != step.outputs[0]]
    assert len(inner) == 4 + 2 * 9
    for tensor in inner:
        kept = rfg.fuse_row_filter_grads(steps, values, outputs | {tensor})
        assert not any(s.op == "pack[row_filter_grad]" for s in kept)


def test_the_first_layer_of_a_batch_32_cnn_is_adopted_here():
    """[32, 32, 32, 3] SAME 3×3 to 16 channels (one BLAS thread): on this machine's
    OpenBLAS (its small-matrix kernel) the compiled sums are proven (elsewhere: the chain
    runs, and this says so by skipping)."""
    module = _module()
    seen = []
    original = rfg.fuse_row_filter_grads

    def spy(steps, values, outputs):
        seen.append(original(steps, values, outputs))
        return seen[-1]
    import unittest.mock

    with unittest.mock.patch("litetrain.runtime.simplify.fuse_row_filter_grads", spy):
        model = lt.nn.Sequential([lt.nn.Conv2D(16, 3, padding="same",
                                               input_shape=(32, 32, 3)),
                                  lt.nn.Flatten(), lt.nn.Dense(2)])
        m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                         optimizer=lt.optimizers.SGD(0.1))
        run = lt.Interpreter(model_content=lt.convert(m)).get_signature_runner("train")
        run(x=np.zeros((32, 32, 32, 3), np.float32), y=np.eye(2, dtype=np.float32)[[0] * 32])
    (step,) = [s for after in seen for s in after if s.op == "pack[row_filter_grad]"]
    with blas_threads(1):
        verdict = rfg.proven(step.settings, module)
    if not verdict:
        pytest.skip("this BLAS sums these products in another order")
