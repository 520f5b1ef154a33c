"""AVERAGE_POOL_2D's compiled kernel and its gradient through a ReLU in one pass
(ops/pool.py, runtime/avg_pool_grad.py): the NumPy kernels' bits (NaN, infinities,
signed zeros, padding taps, uneven strides), and train steps bit-identical with
``experimental_preserve_all_tensors``."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import fast, lookup, pool
from litetrain.ops.common import SAME, VALID
from litetrain.runtime import avg_pool_grad as apg

from ..bits import same_bits, with_specials
from .test_simplify import _same_run, _train_infer_calls

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _module():
    loader = fast.kernels("dwgrad")
    module = None if loader is None else loader.wait()
    if module is None:
        pytest.skip("no compiled dwgrad kernels")
    return loader, module


@pytest.mark.parametrize(("shape", "k", "s", "padding"), [
    ((4, 8, 8, 32), (2, 2), (2, 2), VALID),
    ((3, 7, 5, 20), (3, 3), (2, 1), SAME),   # windows over the padding: +0.0 taps
    ((2, 7, 5, 3), (3, 2), (1, 2), VALID),
    ((2, 5, 5, 17), (2, 2), (2, 2), SAME),
])
def test_average_pool_gives_the_numpy_bits(shape, k, s, padding, rng, monkeypatch):
    loader, module = _module()
    used = []
    monkeypatch.setattr(module, "average_pool", lambda *a, f=module.average_pool:
                        used.append(1) or f(*a), raising=True)
    attrs = {"filter_height": k[0], "filter_width": k[1], "stride_h": s[0], "stride_w": s[1],
             "padding": padding, "fused_activation_function": 0}
    x = with_specials(rng, shape)
    x.reshape(-1)[:3] = [np.inf, -np.inf, -0.0]
    x[:, 0] = -0.0  # a window of -0.0 and padding: +0.0 in NumPy's sum
    settings = fast.WithKernels(attrs, loader)
    settings.ready()
    same_bits(pool.average_pool_2d(settings, x), pool.average_pool_2d(attrs, x))
    assert used


@pytest.mark.parametrize(("n", "oh", "ow", "c", "kh", "kw"), [(4, 4, 4, 32, 2, 2),
                                                              (3, 2, 3, 20, 3, 2)])
def test_upsampled_mask_gives_the_chains_bits(n, oh, ow, c, kh, kw, rng, monkeypatch):
    loader, module = _module()
    used = []
    monkeypatch.setattr(module, "upsampled_masked", lambda *a, f=module.upsampled_masked:
                        used.append(1) or f(*a), raising=True)
    dy = with_specials(rng, (n * oh, 1, ow, 1, c))
    dy.reshape(-1)[:3] = [np.inf, -np.inf, -0.0]
    v = with_specials(rng, (n, oh * kh, ow * kw, c))
    share = np.full((1, kh, 1, kw, 1), 1.0 / (kh * kw), np.float32)
    t = np.array(0.0, np.float32)
    shape = np.array([-1, oh * kh, ow * kw, c], np.int32)
    masked = lookup("mul").kernel
    plain = MappingProxyType({})

    def masked_greater(settings, a, b, tt):  # the chain's NumPy form (runtime/fused.py)
        return np.multiply(a, np.greater(b, tt), dtype=np.float32)

    for kernels in (fast.WithKernels({}, loader), None):
        settings = apg.UpsampledMasked(masked, plain, lookup("reshape").kernel, plain, shape,
                                       masked_greater, plain, kh, kw, share.reshape(-1)[0],
                                       kernels)
        if kernels is not None:
            kernels.ready()
        want = masked_greater(None, np.multiply(dy, share).reshape(v.shape), v, t)
        same_bits(apg.upsampled_masked(settings, dy, share, v, t), want)
        assert len(used) == 1  # the compiled kernel, then the three kernels


def test_train_steps_are_identical_and_fused(monkeypatch):
    _module()
    fused = []
    original = apg.fuse_upsampled_masks

    def spy(*args):
        steps = original(*args)
        fused.extend(s.op for s in steps if s.kernel is apg.upsampled_masked)
        return steps
    monkeypatch.setattr("litetrain.runtime.simplify.fuse_upsampled_masks", spy)
    model = lt.nn.Sequential([
        lt.nn.Conv2D(8, 3, padding="same", activation="relu", input_shape=(8, 8, 3)),
        lt.nn.AveragePooling2D(2),
        lt.nn.Flatten(),
        lt.nn.Dense(3),
    ])
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.1))
    _same_run(lt.convert(m), _train_infer_calls((8, 8, 3), 3, [8, 8, 2, 8, 8]))
    assert "mul[upsampled_masked]" in fused
