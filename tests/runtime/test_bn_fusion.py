"""A training batch norm's passes fused with its centred values, output and pool
gradient recomputed (runtime/bn_fusion.py, runtime/bn_steps.py, ops/fast/bnorm.py):
each kernel gives the NumPy steps' bits (NaN, infinities, signed zeros, ties in a
window, channel counts off the sixteen lanes, batch 1), its sums are BLAS's where
proven, and train steps stay identical to ``experimental_preserve_all_tensors`` runs
with the fused steps in place."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import fast, lookup
from litetrain.ops.reduce import _ones
from litetrain.runtime import bn_fusion, bn_steps, fused, pool_grad
from litetrain.runtime.threads import blas_threads

from ..bits import same_bits, with_specials
from .test_simplify import _same_run, _train_infer_calls

pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning"),
              pytest.mark.needs_kernels("bnorm")]


def _k():
    return fast.kernels("bnorm").wait()


def _group_sums(p: np.ndarray) -> np.ndarray:
    """The kernels' order in NumPy: groups of eight rows summed in order from the first,
    each group's sum added to a total from +0.0, the total added to +0.0."""
    rows, c = p.shape
    total = np.zeros(c, np.float32)
    for g in range(rows // 8):
        acc = p[8 * g].copy()
        for j in range(1, 8):
            acc = acc + p[8 * g + j]
        total = total + acc
    return np.float32(0.0) + total


def _operands(rng, shape):
    c = shape[3]
    x = np.maximum(with_specials(rng, shape), np.float32(0.0))  # a ReLU output
    x[x > 5] = np.round(x[x > 5])  # repeated values: ties within pooling windows
    x.reshape(-1)[:4] = [np.inf, -0.0, np.nan, 0.0]
    m, s, b, k1, k0, s2 = (with_specials(rng, (c,)) for _ in range(6))
    # y ties in a window through a zero scale; no inf * 0 (x's inf is at channel 0):
    # NaNs of one sign (which of two NaN operands a sum propagates is not fixed)
    s[:4], k1[0] = [1.5, 2.0, 0.0, -0.0], 2.0
    return x, m, s, b, k1, k0, s2


_SHAPES = [(2, 4, 4, 16), (1, 8, 8, 32), (2, 4, 8, 5), (1, 8, 4, 19), (3, 2, 4, 33)]


@pytest.mark.parametrize("shape", _SHAPES)
def test_kernels_give_the_numpy_steps_bits(shape, rng):
    k = _k()
    n, h, w, c = shape
    rows = n * h * w
    x, m, s, b, k1, k0, s2 = _operands(rng, shape)
    t = np.float32(0.0)
    cen = np.subtract(x, m)
    y = fused._affine(cen, s, b)
    attrs = {"filter_height": 2, "filter_width": 2, "stride_h": 2, "stride_w": 2,
             "padding": 2, "fused_activation_function": 0}
    pooled = lookup("max_pool_2d").kernel(attrs, y)
    dp = with_specials(rng, pooled.shape)
    dy = pool_grad.max_pool_grad({"kh": 2, "kw": 2}, y, pooled, dp)
    flat = [v.reshape(-1) for v in (x, m, s, b)]

    same_bits(k.column_sums(y.reshape(-1), rows, c, np.empty(c, np.float32)),
              _group_sums(y.reshape(rows, c)))
    same_bits(k.centred_square_sums(*flat[:2], rows, c, np.empty(c, np.float32)),
              _group_sums((cen * cen).reshape(rows, c)))
    same_bits(k.centred_affine(*flat, rows, c, np.empty(x.size, np.float32)), y.reshape(-1))
    same_bits(k.centred_affine_max_pool(*flat, n, h, w, c, 2, 2,
                                        np.empty(pooled.size, np.float32)),
              pooled.reshape(-1))
    sums = [np.empty(c, np.float32), np.empty(c, np.float32)]
    want = [_group_sums(dy.reshape(rows, c)), _group_sums((dy * cen).reshape(rows, c))]
    k.centred_sums(dy.reshape(-1), *flat[:2], rows, c, 0, 0, *sums)
    for got, expected in zip(sums, want, strict=True):
        same_bits(got, expected)
    if (2 * w) % 8 == 0:
        k.pooled_sums(*flat, pooled.reshape(-1), dp.reshape(-1), n, h, w, c, 2, 2, *sums)
        for got, expected in zip(sums, want, strict=True):
            same_bits(got, expected)
    for masked, reference in ((True, fused._batch_norm_grad_masked(dy, s2, cen, k1, k0, x, t)),
                              (False, fused._batch_norm_grad(dy, s2, cen, k1, k0))):
        bias = _group_sums(reference.reshape(rows, c))
        for summed in (False, True):
            got = k.centred_grad(dy.reshape(-1), *flat[:2], s2, k1, k0, x.reshape(-1), t,
                                 masked, rows, c, np.empty(x.size, np.float32), summed,
                                 sums[0])
            same_bits(got, reference.reshape(-1))
            if summed:
                same_bits(sums[0], bias)
            if (2 * w) % 8 == 0 or not summed:
                got = k.pooled_grad(*flat, pooled.reshape(-1), dp.reshape(-1), s2, k1, k0,
                                    x.reshape(-1), t, masked, n, h, w, c, 2, 2,
                                    np.empty(x.size, np.float32), summed, sums[1], h, w, 0, 0)
                same_bits(got, reference.reshape(-1))
                if summed:
                    same_bits(sums[1], bias)
    # straight into a PAD of it: the same values inside
    if w % 8 == 0:
        padded = np.full((n, h + 3, w + 2, c), np.float32(5.0))
        k.pooled_grad(*flat, pooled.reshape(-1), dp.reshape(-1), s2, k1, k0, x.reshape(-1), t,
                      True, n, h, w, c, 2, 2, padded.reshape(-1), True, sums[1], h + 3, w + 2,
                      2, 1)
        reference = fused._batch_norm_grad_masked(dy, s2, cen, k1, k0, x, t)
        same_bits(padded[:, 2:2 + h, 1:1 + w], reference)
        same_bits(sums[1], _group_sums(reference.reshape(rows, c)))
        assert (padded[:, :2] == 5).all() and (padded[:, :, w + 1:] == 5).all()
    # in place: the input gradient written over ``x`` (its last reader)
    over = x.copy().reshape(-1)
    k.pooled_grad(over, flat[1], *flat[2:], pooled.reshape(-1), dp.reshape(-1), s2, k1, k0,
                  over, t, True, n, h, w, c, 2, 2, over, False, sums[0], h, w, 0, 0)
    same_bits(over, fused._batch_norm_grad_masked(dy, s2, cen, k1, k0, x, t).reshape(-1))


def test_sums_are_blas_where_proven():
    """The CNN step's shapes at one BLAS thread; odd channel counts are not BLAS's
    order here (OpenBLAS's SGEMV takes the last ``c % 4`` columns apart)."""
    k = _k()
    with blas_threads(1):
        verdicts = {shape: bn_steps.proven(k, *shape) for shape in [(8192, 32), (2048, 16)]}
        assert not bn_steps.proven(k, 60, 16)  # not a multiple of eight
        p = with_specials(np.random.default_rng(1), (2048, 16))
        if verdicts[(2048, 16)]:
            same_bits(k.column_sums(p.reshape(-1), 2048, 16, np.empty(16, np.float32)),
                      _ones(2048, "f") @ p)
        # the check made before fusing (NumPy's additions in the kernels' order) agrees
        for shape in [(8192, 32), (2048, 16), (2048, 8), (2048, 12), (64, 16), (64, 19)]:
            assert bn_steps.likely(*shape) == bn_steps.proven(k, *shape)
    if not any(verdicts.values()):
        pytest.skip("this machine's BLAS sums in another order: the steps run unfused")
    assert all(verdicts.values())


def _cnn(channels: int, pool: bool, size: int = 16) -> bytes:
    layers = [lt.nn.Conv2D(channels, 3, padding="same", activation="relu",
                           input_shape=(size, size, 3)),
              lt.nn.BatchNormalization()]
    layers += [lt.nn.MaxPool2D(2)] if pool else []
    layers += [lt.nn.Conv2D(channels, 1, activation="relu"), lt.nn.BatchNormalization(),
               lt.nn.Flatten(), lt.nn.Dense(3)]
    m = lt.trainable(lt.nn.Sequential(layers),
                     loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.1))
    return lt.convert(m)


@pytest.mark.parametrize(("channels", "pool"), [(16, True), (16, False), (9, True)])
def test_train_steps_are_identical_and_fused(channels, pool, monkeypatch):
    _k()
    kinds, compiled, biased, padded = [], [], [], []
    original = bn_fusion.fuse_batch_norms

    def spy(*args):
        steps = original(*args)
        kinds.extend(s.settings.kind for s in steps if s.kernel is bn_steps.run)
        biased.extend(s.settings.kind for s in steps
                      if s.kernel is bn_steps.run and len(s.outputs) == 2)
        padded.extend(s.settings.kind for s in steps
                      if s.kernel is bn_steps.run and s.settings.padded is not None)
        return steps
    monkeypatch.setattr("litetrain.runtime.simplify.fuse_batch_norms", spy)
    # (the first layer's filter gradient keeps its PAD chain here: with the compiled
    # kernels runtime/row_filter_grad.py would take the PAD the input gradient is made into)
    monkeypatch.setattr("litetrain.runtime.simplify.fuse_row_filter_grads",
                        lambda steps, values, outputs: steps)
    real = bn_steps._compiled

    def count(settings, *args):
        done = real(settings, *args)
        compiled.append((settings.kind, done is not None))
        return done
    monkeypatch.setattr(bn_steps, "_compiled", count)
    calls = _train_infer_calls((16, 16, 3), 3, [8, 8, 1, 1, 8])
    with blas_threads(1):
        _same_run(_cnn(channels, pool), calls)
    with blas_threads(1):  # BLAS's sums in the kernels' order? (first layer's shape)
        likely = bn_steps.likely(8 * 16 * 16, channels)
    if not likely:  # (here: channel counts off multiples of 16) nothing changes
        assert not kinds
        return
    # (the second batch norm's arrays, after the pool, are too small for fused chains)
    made = {"affine_max_pool", "pooled_sums", "pooled_grad"} if pool else {
        "affine", "sums", "grad"}
    assert made | {"square_sums"} <= set(kinds)
    assert ("pooled_grad" if pool else "grad") in biased  # the first convolution's bias sum
    assert padded == (["pooled_grad"] if pool else [])  # its filter gradient's zero PAD
    assert made | {"square_sums"} <= {kind for kind, done in compiled if done}


def test_other_readers_of_the_centred_values_keep_the_steps():
    """A model output reading an intermediate: nothing fused, the same results."""
    _k()
    if not bn_steps.likely(8 * 16 * 16, 16):
        pytest.skip("this machine's BLAS sums in another order: nothing is fused")
    kinds = []
    original = bn_fusion.fuse_batch_norms

    def spy(steps, values, outputs):
        subs = [s.outputs[0] for s in steps if s.op == "sub"
                and getattr(values[s.outputs[0]], "ndim", 0) == 4]
        result = original(steps, values, outputs | set(subs[:1]))
        kinds.extend(s.op for s in result if s.kernel is bn_steps.run)
        return result
    import litetrain.runtime.simplify as simplify
    monkeypatch = pytest.MonkeyPatch()
    with monkeypatch.context() as patch:
        patch.setattr(simplify, "fuse_batch_norms", spy)
        _same_run(_cnn(16, False), _train_infer_calls((16, 16, 3), 3, [8, 8]))
    assert kinds.count("mean[square][batch_norm]") == 1  # the other layer's
