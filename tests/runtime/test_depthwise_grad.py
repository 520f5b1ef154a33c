"""A stride-1 depthwise filter's gradient read from the unpadded input
(runtime/depthwise_grad.py): the fused step gives the unfused chain's bits (PAD, the
tap windows, MUL, SUM, PACK; NaN, infinities, signed zeros, taps on the padding, row
groups crossing images, channel counts off the sixteen lanes, uneven paddings), the
compiled kernel is used only where proven, and train steps stay bit-identical with
``experimental_preserve_all_tensors``."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest

from litetrain.ops import fast, lookup
from litetrain.runtime import depthwise_grad as dg
from litetrain.runtime import product_sum as ps
from litetrain.runtime.threads import blas_threads

from ..bits import same_bits, with_specials
from .test_product_sum import _cnn
from .test_simplify import _same_run, _train_infer_calls

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")
_AXES = np.array([0, 1, 2], np.int32)


def _module():
    loader = fast.kernels("dwgrad")
    module = None if loader is None else loader.wait()
    if module is None:
        pytest.skip("no compiled dwgrad kernels")
    return loader, module


def _settings(loader, kh, kw, pads, compiled=True, bias=False):
    """A fused step's settings for a ``kh × kw`` filter and ``pads`` ((top, bottom),
    (left, right))."""
    attrs = MappingProxyType({"keep_dims": False})
    tap = ps.Reduced(lookup("mul").kernel, attrs, False, lookup("sum").kernel, attrs, _AXES,
                     False, False, fast.WithKernels({}, fast.kernels("train")))
    packed = ps.Packed((tap,) * (kh * kw), lookup("pack").kernel, MappingProxyType({"axis": 0}))
    paddings = np.array([[0, 0], *pads, [0, 0]], np.int32)
    offsets = tuple((i, j) for i in range(kh) for j in range(kw))
    kernels = fast.WithKernels({}, loader) if compiled else None
    settings = dg.FilterGrad(lookup("pad").kernel, MappingProxyType({}), paddings, offsets,
                             pads[0][0], pads[1][0], ps.packed_product_sums, packed, _AXES,
                             kernels, (lookup("sum").kernel, attrs, _AXES) if bias else None)
    if kernels is not None:
        kernels.ready()
    return settings


def _specials(rng, shape):
    """:func:`with_specials` with its NaNs as the ones ``0 * inf`` makes here: which of
    two NaNs of different signs a sum returns depends on BLAS's instructions' operand
    order, which no emulated order reproduces (``product_sum``'s kernels alike)."""
    v = with_specials(rng, shape)
    v[np.isnan(v)] = np.multiply(np.float32(0), np.float32(np.inf))
    return v


def _reference(x, dy, kh, kw, pads):
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    oh, ow = dy.shape[1:3]
    return np.stack([lookup("sum").kernel({"keep_dims": False},
                                          lookup("mul").kernel({}, xp[:, i:i + oh, j:j + ow], dy),
                                          _AXES)
                     for i in range(kh) for j in range(kw)])


@pytest.mark.parametrize(("xshape", "k", "pads"), [
    ((2, 8, 8, 16), (3, 3), ((1, 1), (1, 1))),
    ((16, 3, 2, 16), (3, 3), ((1, 1), (1, 1))),  # groups of eight rows cross images
    ((3, 5, 8, 20), (5, 5), ((2, 2), (2, 2))),   # 20 channels: a partial lane block
    ((2, 6, 4, 8), (2, 2), ((0, 1), (0, 1))),    # an even filter: SAME pads after only
    ((2, 8, 8, 16), (3, 3), ((0, 0), (0, 0))),   # VALID: smaller dy, no padding
])
@pytest.mark.parametrize("bias", [False, True])
def test_fused_step_gives_the_chains_bits(xshape, k, pads, bias, rng, monkeypatch):
    loader, module = _module()
    used = []
    monkeypatch.setattr(module, "filter_grad", lambda *a, f=module.filter_grad:
                        used.append(1) or f(*a), raising=True)
    kh, kw = k
    n, h, w, c = xshape
    dyshape = (n, h + sum(pads[0]) - kh + 1, w + sum(pads[1]) - kw + 1, c)
    x = _specials(rng, xshape)
    x.reshape(-1)[:3] = [np.inf, -np.inf, -0.0]
    dy = _specials(rng, dyshape)
    dy.reshape(-1)[-3:] = [np.inf, -np.inf, -0.0]  # times the padding's zeros: NaN, ±0
    settings = _settings(loader, kh, kw, pads, bias=bias)
    with blas_threads(1):
        proven = dg.proven(module, settings, xshape, dyshape)
        used.clear()
        got = dg.filter_grad(settings, x, dy)
        want = _reference(x, dy, kh, kw, pads)
        if bias:  # and the bias's gradient: the SUM of dy
            want = (want, lookup("sum").kernel({"keep_dims": False}, dy, _AXES))
        # without compiled kernels: the PAD and the packed sums, the same bits
        plain = dg.filter_grad(_settings(loader, kh, kw, pads, compiled=False, bias=bias), x,
                               dy)
    for g, p, w in zip(*((got, plain, want) if bias else ((got,), (plain,), (want,))),
                       strict=True):
        same_bits(g, w)
        same_bits(p, w)
    assert bool(used) == proven


def test_the_compiled_order_is_blas_on_this_machine():
    """The shape of the CNN step's depthwise layer (one BLAS thread)."""
    loader, module = _module()
    settings = _settings(loader, 3, 3, ((1, 1), (1, 1)))
    with blas_threads(1):
        if not dg.proven(module, settings, (32, 16, 16, 16), (32, 16, 16, 16)):
            pytest.skip("this machine's BLAS sums in another order: the chain runs")


def test_train_steps_are_identical_and_fused(monkeypatch):
    _module()
    fused = []
    original = dg.fuse_padded_windows

    def spy(*args):
        steps = original(*args)
        fused.extend((s.op, len(s.outputs)) for s in steps if s.kernel is dg.filter_grad)
        return steps
    monkeypatch.setattr("litetrain.runtime.simplify.fuse_padded_windows", spy)
    calls = _train_infer_calls((8, 8, 3), 3, [8, 8, 2, 8, 8])
    with blas_threads(1):
        _same_run(_cnn(), calls)
    _same_run(_cnn(), calls)
    assert ("pack[depthwise_filter_grad]", 2) in fused  # the bias's gradient too
