"""The compiled strided DEPTHWISE_CONV_2D by register tiles over a padded image
(``ops/fast/depthwise.py``, chosen by ``compiled.strided_tiles``) against the NumPy
kernel: the same bits.

* Through the node, strided windows (the ones it is chosen for: 3×3, 5×5, 1×4, a window
  wider than the image): strides 2 and 3, unequal strides, SAME and VALID, channel
  counts below sixteen, a multiple of it and neither (the last channel group
  overlapping the one before), widths that leave a four-pixel tile or a partial one,
  every fused activation, with and without a bias, a fused HARD_SWISH; NaN and signed
  zeros in input and filter.
* At stride 1 only for 5×5 windows over outputs of 16 pixels or more and for few output
  pixels (batch 1 of small images); the kernel itself at stride 1 and dilated on the
  others (any geometry works).
* Infinities: the same values and zero signs, NaN where NumPy has NaN.
"""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.ops import compiled, fast
from litetrain.ops.common import SAME, VALID
from litetrain.ops.conv import depthwise_conv_2d
from litetrain.ops.evaluate import node_info
from litetrain.ops.registry import lookup
from tests.bits import same_bits, with_specials

_LOADER = fast.kernels("conv")
pytestmark = pytest.mark.skipif(_LOADER is None or _LOADER.wait() is None,
                                reason="the [fast] extra (numba) is not installed")


def _attrs(stride, dilation, padding, act):
    return {"stride_h": stride[0], "stride_w": stride[1], "dilation_h_factor": dilation[0],
            "dilation_w_factor": dilation[1], "padding": padding,
            "fused_activation_function": act, "depth_multiplier": 1}


def _prepared(x, w, b, attrs) -> compiled.Compiled:
    s = lookup("depthwise_conv_2d").settings(node_info("depthwise_conv_2d", [x, w, b], attrs))
    assert isinstance(s, compiled.Compiled) and compiled.applies(s, x, w)
    return s


def _inputs(rng, n, h, wd, c, k):
    x = with_specials(rng, (n, h, wd, c))
    w = rng.standard_normal((1, *k, c)).astype(np.float32)
    w.reshape(-1)[::5] = -0.0
    w.reshape(-1)[1::7] = np.nan
    return x, w, rng.standard_normal(c).astype(np.float32)


# (n, h, w, c, stride, padding)
# (n, h, w, c, window, stride, padding)
SHAPES = [(2, 48, 48, 16, (3, 3), (2, 2), SAME), (1, 24, 21, 40, (3, 3), (2, 2), SAME),
          (2, 13, 11, 8, (3, 3), (2, 2), SAME), (1, 17, 29, 20, (3, 3), (2, 2), VALID),
          (1, 12, 14, 3, (3, 3), (3, 3), SAME), (2, 9, 23, 33, (3, 3), (1, 2), SAME),
          (1, 10, 9, 72, (3, 3), (2, 1), VALID), (2, 12, 12, 64, (5, 5), (2, 2), SAME),
          (1, 6, 6, 144, (5, 5), (2, 2), SAME), (1, 7, 31, 16, (1, 4), (1, 3), VALID),
          (1, 5, 6, 17, (7, 7), (2, 2), SAME)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_strided_depthwise_takes_the_tiles_and_gives_the_numpy_bits(shape, rng):
    n, h, wd, c, k, stride, padding = shape
    x, w, b = _inputs(rng, n, h, wd, c, k)
    hs_op = lookup("hard_swish")
    hs = hs_op.settings(node_info("hard_swish", [x], {}))
    for act in (0, 1, 2, 3, 4):
        attrs = _attrs(stride, (1, 1), padding, act)
        s = _prepared(x, w, b, attrs)
        assert compiled.strided_tiles(compiled._plan(s, x, w)[0], n)
        for bi in (b, None, b):  # the third call: the node's kept arguments
            same_bits(depthwise_conv_2d(s, x, w, bi), depthwise_conv_2d(attrs, x, w, bi))
            want = hs_op.kernel(hs, depthwise_conv_2d(attrs, x, w, bi))
            same_bits(depthwise_conv_2d(s, x, w, bi, hard_swish=hs), want)
        assert s.strided_taps is not None


WINDOWS = [((3, 3), (1, 1), (2, 2), SAME, (1, 15, 19, 12)),
           ((3, 3), (1, 1), (1, 1), SAME, (2, 10, 10, 32)),
           ((5, 5), (1, 1), (1, 1), VALID, (1, 9, 13, 20))]


@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_the_kernel_on_any_window_gives_the_numpy_bits(window, rng):
    k, stride, dilation, padding, shape = window
    x, w, b = _inputs(rng, *shape, k)
    module = _LOADER.module
    for act, bias in ((3, b), (0, None)):
        attrs = _attrs(stride, dilation, padding, act)
        s = _prepared(x, w, b, attrs)
        g = compiled._plan(s, x, w)[0]
        lo, hi = compiled._CLAMPS[act]
        bv = bias if bias is not None else np.full(shape[3], -0.0, np.float32)
        taps = w.reshape(-1, shape[3]).copy()
        same_bits(module.depthwise_strided(x, taps, bv, lo, hi, g),
                  depthwise_conv_2d(attrs, x, w, bias))


def test_stride_1_keeps_the_ring_kernel_but_for_wide_windows_or_few_or_many_pixels(rng):
    for n, h, k, tiles in ((1, 12, (3, 3), False), (3, 6, (3, 3), False),
                           (12, 3, (5, 5), False), (1, 11, (5, 5), True),
                           (3, 6, (5, 5), True), (1, 6, (5, 5), True), (2, 3, (3, 3), True),
                           (1, 10, (3, 3), True), (8, 12, (3, 3), True),
                           (1, 32, (3, 3), True), (120, 3, (3, 3), False)):
        x, w, b = _inputs(rng, n, h, h, 24, k)
        attrs = _attrs((1, 1), (1, 1), SAME, 3)
        s = _prepared(x, w, b, attrs)
        assert compiled.strided_tiles(compiled._plan(s, x, w)[0], n) == tiles
        same_bits(depthwise_conv_2d(s, x, w, b), depthwise_conv_2d(attrs, x, w, b))
        assert (s.strided_taps is not None) == tiles


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # IEEE specials on purpose
def test_infinities_give_the_numpy_values(rng):
    x, w, b = _inputs(rng, 2, 11, 14, 24, (3, 3))
    x.reshape(-1)[::13] = np.inf
    x.reshape(-1)[5::17] = -np.inf
    w.reshape(-1)[3::11] = np.inf
    attrs = _attrs((2, 2), (1, 1), SAME, 0)
    got = depthwise_conv_2d(_prepared(x, w, b, attrs), x, w, b)
    want = depthwise_conv_2d(attrs, x, w, b)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    same_bits(np.where(nan, 0, got), np.where(nan, 0, want))
