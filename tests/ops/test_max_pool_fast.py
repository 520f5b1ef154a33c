"""MAX_POOL_2D's compiled kernel (``ops/fast/train.py``: ``max_pool``, chosen at prepare
for float32 inputs) gives the NumPy kernel's bits: NaN of either sign and payload,
signed zeros (NumPy's maximum keeps the tap on an equal zero), infinities, every window
and stride, a fused activation after it; padded pools and strided inputs take NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.ops import fast, pool
from litetrain.ops.common import SAME, VALID

from ..bits import same_bits


def _module():
    loader = fast.kernels("train")
    module = None if loader is None else loader.wait()
    if module is None:
        pytest.skip("no compiled train kernels")
    return loader


def _specials(rng, shape) -> np.ndarray:
    odd_nan = np.array([0x7FC00001, 0xFFC00000], np.uint32).view(np.float32)
    choices = np.array([0.0, -0.0, np.nan, -np.inf, np.inf, 1.0, -1.0, *odd_nan], np.float32)
    x = rng.choice(choices, shape)
    mixed = rng.standard_normal(shape).astype(np.float32)
    return np.where(rng.random(shape) < 0.5, x, mixed).astype(np.float32)


@pytest.mark.parametrize(("k", "s", "padding", "act"), [
    ((2, 2), (2, 2), "VALID", 0), ((3, 3), (2, 2), "VALID", 0), ((2, 3), (1, 2), "VALID", 1),
    ((3, 3), (1, 1), "SAME", 0), ((1, 1), (1, 1), "VALID", 3)])
def test_compiled_kernel_gives_numpys_bits(k, s, padding, act, rng, monkeypatch):
    loader = _module()
    used = []
    monkeypatch.setattr(loader.module, "max_pool", lambda *a, f=loader.module.max_pool:
                        used.append(1) or f(*a))
    attrs = {"filter_height": k[0], "filter_width": k[1], "stride_h": s[0], "stride_w": s[1],
             "padding": SAME if padding == "SAME" else VALID, "fused_activation_function": act}
    x = _specials(rng, (3, 9, 10, 20))
    want = pool.max_pool_2d(attrs, x)
    settings = fast.WithKernels(attrs, loader)
    settings.ready()
    same_bits(pool.max_pool_2d(settings, x), want)
    assert len(used) == (padding == "VALID" or k == (1, 1))
    # a strided input: the NumPy kernel, the same bits
    wide = np.zeros((*x.shape[:3], 2 * x.shape[3]), np.float32)
    wide[..., ::2] = x
    same_bits(pool.max_pool_2d(settings, wide[..., ::2]), want)
