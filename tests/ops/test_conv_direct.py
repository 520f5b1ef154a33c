"""CONV_2D of few input channels reading its patches in place (``fast.gemm.conv_2d_direct``,
chosen by ``conv_exact.direct``) against the gathering kernel and the NumPy kernel, bit
for bit.

* Stem geometries: 1, 3, 4 and 8 input channels; strides 1 and 2; SAME and VALID;
  dilation; widths that are not a multiple of the eight-pixel tile; output channels not
  a multiple of sixteen; NaN, infinities and signed zeros in the input and in the filter
  (a SAME padding tap multiplies +0.0 by an infinite weight: NaN in every form), a fused
  input rescaling, HARD_SWISH and MUL: the node (which chose the direct kernel, checked)
  gives the plain NumPy kernel's bits.
* The per-geometry check refuses a kernel that differs anywhere; more channels than
  ``DIRECT_CHANNELS`` keep the gathering kernel.
"""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.ops import compiled, conv_exact, fast
from litetrain.ops.common import SAME, VALID, pad_before_after
from litetrain.ops.conv import conv_2d
from litetrain.ops.conv_gemm import chunked_conv
from litetrain.ops.evaluate import node_info
from litetrain.ops.registry import lookup
from tests.bits import same_bits, with_specials

_CONV, _GEMM = fast.kernels("conv"), fast.kernels("gemm")
pytestmark = pytest.mark.needs_kernels(_CONV, _GEMM)

# (n, h, w, c, o, (kh, kw), stride, dilation, padding)
GEOMETRIES = [
    (2, 96, 96, 3, 16, (3, 3), 2, 1, SAME),   # the MobileNet stem
    (1, 21, 13, 3, 16, (3, 3), 2, 1, SAME),   # odd sizes: padding below and right
    (2, 17, 19, 3, 24, (3, 3), 1, 1, SAME),   # 24 channels: a masked second tile
    (1, 16, 23, 1, 8, (5, 5), 1, 1, SAME),    # one channel, eight outputs
    (2, 15, 14, 4, 32, (3, 3), 2, 1, VALID),
    (1, 19, 21, 3, 16, (3, 3), 1, 2, SAME),   # dilated
    (1, 12, 29, 8, 16, (3, 2), 1, 1, VALID),  # non-square window
    (3, 9, 7, 3, 32, (7, 7), 2, 1, SAME),     # a window wider than the image
]


def _attrs(s, d, padding, act=0):
    return {"stride_h": s, "stride_w": s, "dilation_h_factor": d, "dilation_w_factor": d,
            "padding": padding, "fused_activation_function": act}


def _prepared(x, w, b, attrs, with_kernels: bool = True) -> compiled.Compiled:
    s = lookup("conv_2d").settings(node_info("conv_2d", [x, w, b], attrs))
    assert isinstance(s, compiled.Compiled)
    if with_kernels:
        assert s.loader.wait() is not None and s.ready() is not None
    else:
        s.loader = None  # NumPy only: the reference
    return s


def _filter(rng, o, k, c) -> np.ndarray:
    w = rng.standard_normal((o, *k, c)).astype(np.float32)
    w.reshape(-1)[:4] = [np.inf, -0.0, 0.0, -np.inf]  # the first output channels' taps
    return w


@pytest.mark.parametrize("case", GEOMETRIES, ids=str)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # IEEE specials on purpose
def test_direct_read_conv_gives_the_numpy_bits(case, rng):
    n, h, wd, c, o, k, st, d, padding = case
    x = with_specials(rng, (n, h, wd, c))
    x.reshape(-1)[:2] = [np.inf, -np.inf]
    w = _filter(rng, o, k, c)
    b = rng.standard_normal(o).astype(np.float32)
    for act, bias in ((0, b), (3, None), (1, b)):
        attrs = _attrs(st, d, padding, act)
        s = _prepared(x, w, bias, attrs)
        same_bits(conv_2d(s, x, w, bias), conv_2d(_prepared(x, w, bias, attrs, False),
                                                   x, w, bias))
        if any(s.exact.values()):  # BLAS's order on this machine: the direct kernel ran
            assert s.direct[x.shape]
    attrs = _attrs(st, d, padding, 3)
    s = _prepared(x, w, b, attrs)
    hard_swish = {"fused_activation_function": 0}
    reference = _prepared(x, w, b, attrs, False)
    same_bits(conv_2d(s, x, w, b, hard_swish=hard_swish),
              conv_2d(reference, x, w, b, hard_swish=hard_swish))
    scale = np.array([0.37], np.float32)
    same_bits(conv_2d(s, x, w, b, scale=scale), conv_2d(reference, x, w, b, scale=scale))


@pytest.mark.parametrize("case", GEOMETRIES[:3] + GEOMETRIES[4:6], ids=str)
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_direct_read_conv_with_its_input_rescaling_fused_gives_the_numpy_bits(case, rng):
    """``x * (1 / 127.5) - 1`` fused (padding stays +0.0: it pads the rescaled input)."""
    n, h, wd, c, o, k, st, d, padding = case
    x = rng.uniform(0, 255, (n, h, wd, c)).astype(np.float32)
    x.reshape(-1)[:5] = [np.nan, -0.0, 0.0, np.inf, -np.inf]
    w = _filter(rng, o, k, c)
    b = rng.standard_normal(o).astype(np.float32)
    attrs = _attrs(st, d, padding)
    rescale = (np.float32(1 / 127.5), np.float32(-1.0))
    hard_swish = {"fused_activation_function": 0}
    s = _prepared(x, w, b, attrs)
    got = chunked_conv(s, x, w, b, True, hard_swish, rescale)
    want = conv_2d(_prepared(x, w, b, attrs, False),
                   np.add(np.multiply(x, rescale[0]), rescale[1]), w, b,
                   hard_swish=hard_swish)
    same_bits(got, want)
    if any(s.exact.values()):
        assert s.direct[x.shape]


def test_the_direct_kernel_is_the_gathering_kernel_bit_for_bit(rng):
    """Straight kernel calls, both with the rescaling and without, tiles cut anywhere."""
    g = _GEMM.module
    for ow_in in (8, 9, 15, 16, 17):
        x = with_specials(rng, (2, 7, ow_in, 3))
        wp = g.pack(rng.standard_normal((27, 16)).astype(np.float32))
        bp = g.pack_bias(rng.standard_normal(16).astype(np.float32), 16)
        oh, pt, _ = pad_before_after(7, 3, 1, 1, SAME)
        ow, pl, _ = pad_before_after(ow_in, 3, 1, 1, SAME)
        geometry = (3, 3, 1, 1, 1, 1, pt, pl, ow)
        for affine in (False, True):
            outs = [np.empty((2 * oh * ow, 16), np.float32) for _ in range(2)]
            for kernel, out in zip((g.conv_2d, g.conv_2d_direct), outs, strict=True):
                kernel(x, wp, out, bp, np.float32(0), np.float32(6), g.HARD_SWISH,
                       np.float32(1), *geometry, affine, np.float32(0.5), np.float32(-1))
            same_bits(outs[1], outs[0])


def test_a_direct_kernel_that_differs_is_refused(rng):
    g = _GEMM.module

    def off_by_one_bit(x, w, out, *rest):
        g.conv_2d_direct(x, w, out, *rest)
        out.view(np.uint32).reshape(-1)[-1] ^= 1

    geometry = (3, 3, 2, 2, 1, 1, 0, 0, 6)
    assert conv_exact.direct_proven((12, 12, 3), 6, 16, geometry)
    assert not conv_exact.direct_proven((12, 12, 3), 6, 16, geometry, off_by_one_bit)


def test_many_channels_keep_the_gathering_kernel(rng):
    assert conv_exact.direct(3) and conv_exact.direct(conv_exact.DIRECT_CHANNELS)
    assert not conv_exact.direct(conv_exact.DIRECT_CHANNELS + 1)
    x = rng.standard_normal((1, 10, 10, 16)).astype(np.float32)
    w = rng.standard_normal((16, 3, 3, 16)).astype(np.float32)
    attrs = _attrs(1, 1, SAME)
    s = _prepared(x, w, None, attrs)
    same_bits(conv_2d(s, x, w), conv_2d(_prepared(x, w, None, attrs, False), x, w))
    assert not s.direct.get(x.shape, False)


@pytest.mark.parametrize("geometry", [(2, 16, 16, 32, 32, 3, 2), (1, 8, 8, 16, 24, 3, 1),
                                      (2, 16, 16, 16, 16, 1, 2)], ids=str)
def test_output_rows_of_whole_tiles_read_in_place_at_any_channel_count(geometry, rng):
    """Output rows of whole eight-pixel tiles (the CNN train step's strided convolution)
    take the direct kernel whatever the input channels; its bits are the NumPy kernel's.
    Rows of six pixels keep the gathering kernel."""
    n, h, wd, c, o, k, s = geometry
    assert conv_exact.direct_width(8) and conv_exact.direct_width(16)
    assert not conv_exact.direct_width(6)
    x = with_specials(rng, (n, h, wd, c))
    w = with_specials(rng, (o, k, k, c))
    b = rng.standard_normal(o).astype(np.float32)
    attrs = _attrs(s, 1, SAME, 1)
    node = _prepared(x, w, b, attrs)
    same_bits(conv_2d(node, x, w, b), conv_2d(_prepared(x, w, b, attrs, False), x, w, b))
    if any(node.exact.values()):
        assert node.direct[x.shape]
    narrow = np.ascontiguousarray(x[:, :, :12 if s == 2 else 6])  # rows of six pixels
    node = _prepared(narrow, w, b, attrs)
    same_bits(conv_2d(node, narrow, w, b),
              conv_2d(_prepared(narrow, w, b, attrs, False), narrow, w, b))
    assert not node.direct.get(narrow.shape, False)
