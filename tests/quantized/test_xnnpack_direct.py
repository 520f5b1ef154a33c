"""The XNNPACK-order float CONV_2D of few input channels reading its patches in place
(``fast.xnnpack.conv_direct``, chosen by ``XnnOrder.reads_in_place`` after
``conv_exact.xnnpack_direct_proven``), with the input rescaling and HARD_SWISH it fuses,
bit for bit against the family's gathering kernel and the NumPy form
(``xnnpack_float.conv_2d`` without compiled kernels, held to TensorFlow's default
interpreter by test_xnnpack_order.py).

* Stem geometries: 1, 3, 4 and 8 input channels, strides 1 and 2, SAME and VALID,
  dilation, widths cutting the eight-pixel tile anywhere, output channels not a multiple
  of sixteen; NaN, infinities and signed zeros in the input, the filter (an infinite
  weight on a padding tap: NaN in every form) and the bias; no bias (sums from +0.0).
  Against the gathering kernel every special at once; against the NumPy form NaN arises
  from the input or from invalid products, not both: a NaN sum meeting an invalid
  product (``inf * 0.0``) keeps the sum's NaN in a hardware fused multiply-add (both
  compiled kernels) but becomes the default NaN (the other sign) in the NumPy form's
  emulation, an older difference of the compiled forms this leaves alone.
* A missing MUL is a rescaling by 1.0 and a missing ADD one by -0.0: the same bits as the
  one node alone, signed zeros and NaN included.
* The per-geometry check refuses a kernel that differs anywhere; more channels than
  ``conv_exact.DIRECT_CHANNELS`` keep the gathering kernels.
* MobileNetV3Small's dynamic-range file: its Rescaling MUL and ADD, stem CONV_2D and
  HARD_SWISH run as one step on the direct kernel, with the bits of
  ``experimental_preserve_all_tensors`` (every node on its own).
"""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import conv_exact, fast, xnnpack_float
from litetrain.ops.common import SAME, VALID
from tests.bits import same_bits, with_specials
from tests.conftest import FIXTURES
from tests.quantized.fixture_runs import fed

_XNN = fast.kernels("xnnpack")
pytestmark = [pytest.mark.skipif(_XNN is None or _XNN.wait() is None,
                                 reason="the [fast] extra (numba) is not installed"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]  # IEEE specials
F32 = np.float32

# (n, h, w, c, o, (kh, kw), stride, dilation, padding)
GEOMETRIES = [
    (2, 96, 96, 3, 16, (3, 3), 2, 1, SAME),   # the MobileNetV3 stem
    (1, 21, 13, 3, 16, (3, 3), 2, 1, SAME),   # odd sizes: padding below and right
    (2, 17, 19, 3, 24, (3, 3), 1, 1, SAME),   # 24 channels: a masked second tile
    (1, 16, 23, 1, 8, (5, 5), 1, 1, SAME),    # one channel, eight outputs
    (2, 15, 14, 4, 32, (3, 3), 2, 1, VALID),
    (1, 19, 21, 3, 16, (3, 3), 1, 2, SAME),   # dilated
    (1, 12, 29, 8, 16, (3, 2), 1, 1, VALID),  # non-square window
    (3, 9, 7, 3, 20, (7, 7), 2, 1, SAME),     # a window wider than the image
]


def _settings(st, d, padding, act=0, loader=_XNN) -> xnnpack_float.XnnOrder:
    return xnnpack_float.XnnOrder({"stride_h": st, "stride_w": st, "dilation_h_factor": d,
                                   "dilation_w_factor": d, "padding": padding,
                                   "fused_activation_function": act}, loader)


def _case(rng, n, h, wd, c, o, k, infinite_filter: bool):
    """Input, filter and bias with specials. NaN arises one way only: from the input's
    NaN (a finite filter, an input without infinities), or as invalid products of an
    infinite filter (``inf * 0.0``, on padding taps too) and sums (an input without NaN).
    Where a NaN sum meets an invalid product the hardware's fused multiply-add keeps the
    sum's NaN and the NumPy form's emulation makes the default NaN: their signs differ
    (the compiled kernels agree with each other there; see the module docstring)."""
    x = with_specials(rng, (n, h, wd, c))
    w = rng.standard_normal((o, *k, c)).astype(F32)
    if infinite_filter:
        x[np.isnan(x)] = 0.0
        x.reshape(-1)[:2] = [np.inf, -np.inf]
        w.reshape(-1)[:4] = [np.inf, -0.0, 0.0, -np.inf]  # the first output channel's taps
    else:
        w.reshape(-1)[:2] = [-0.0, 0.0]
    b = rng.standard_normal(o).astype(F32)
    b[::3] = -0.0
    return x, w, b


def _loaded(settings: xnnpack_float.XnnOrder) -> xnnpack_float.XnnOrder:
    settings.runs = 2  # the family is loaded: its kernels run
    assert settings.compiled() is not None
    return settings


@pytest.mark.parametrize("case", GEOMETRIES, ids=str)
def test_the_node_reads_in_place_with_the_numpy_forms_bits(case, rng):
    n, h, wd, c, o, k, st, d, padding = case
    hard_swish = _settings(1, 1, VALID, loader=None)  # a HARD_SWISH node's, NumPy form
    for act, infinite in ((0, True), (3, False), (1, True), (0, False)):
        x, w, b = _case(rng, n, h, wd, c, o, k, infinite)
        bias = None if act == 3 else b
        s = _loaded(_settings(st, d, padding, act))
        plain = _settings(st, d, padding, act, loader=None)
        want = xnnpack_float.conv_2d(plain, x, w, bias)
        same_bits(xnnpack_float.conv_2d(s, x, w, bias), want)
        assert s.direct[x.shape]
        same_bits(xnnpack_float.conv_2d(s, x, w, bias, hard_swish),
                  xnnpack_float.hard_swish(hard_swish, want))


@pytest.mark.parametrize("case", GEOMETRIES[:3] + GEOMETRIES[4:6], ids=str)
def test_a_fused_input_rescaling_gives_the_separate_nodes_bits(case, rng):
    """``x * (1 / 127.5) + -1`` fused (padding stays +0.0: it pads the rescaled input),
    then the MUL alone (an ADD of -0.0) and the ADD alone (a MUL by 1.0)."""
    n, h, wd, c, o, k, st, d, padding = case
    x = rng.uniform(0, 255, (n, h, wd, c)).astype(F32)
    x.reshape(-1)[:6] = [np.nan, -0.0, 0.0, np.inf, -np.inf, 127.5]
    _, w, b = _case(rng, n, h, wd, c, o, k, False)
    hard_swish = _settings(1, 1, VALID, loader=None)
    s = _loaded(_settings(st, d, padding))
    plain = _settings(st, d, padding, loader=None)
    mul, add = F32(1 / 127.5), F32(-1.0)
    for rescale, rescaled in (((mul, add), np.add(np.multiply(x, mul), add)),
                              ((mul, F32(-0.0)), np.multiply(x, mul)),
                              ((F32(1.0), add), np.add(x, add)),
                              ((F32(-2.0), F32(-0.0)), np.multiply(x, F32(-2.0)))):
        want = xnnpack_float.hard_swish(hard_swish, xnnpack_float.conv_2d(plain, rescaled, w, b))
        same_bits(xnnpack_float.conv_2d(s, x, w, b, hard_swish, rescale), want)
        same_bits(xnnpack_float.conv_2d(plain, x, w, b, hard_swish, rescale), want)
    assert s.direct[x.shape]


def test_the_direct_kernel_is_the_gathering_kernel_bit_for_bit(rng):
    """Straight kernel calls, every width from one tile short to two over, both epilogues
    and rescalings, with and without a bias."""
    jit = _XNN.module
    for ow_in in (7, 8, 9, 15, 16, 17):
        x = with_specials(rng, (2, 7, ow_in, 3))
        x.reshape(-1)[:2] = [np.inf, -np.inf]
        s = _settings(1, 1, SAME, 3)
        geometry = s.geometry(x, 3, 3)
        w = rng.standard_normal((20, 3, 3, 3)).astype(F32)
        w.reshape(-1)[:4] = [np.inf, -0.0, 0.0, -np.inf]
        for b in (rng.standard_normal(20).astype(F32), None):
            filt, bias = s.layout(w, b, False)
            for affine in (False, True):
                mul, add = F32(0.5), F32(-1)
                want = jit.conv(np.add(np.multiply(x, mul), add) if affine else x, filt, bias,
                                20, s.lo, s.hi, *geometry)
                swished = np.empty_like(want)
                jit.hard_swish(want.reshape(-1), swished.reshape(-1))
                for swish, ref in ((False, want), (True, swished)):
                    same_bits(jit.conv_direct(x, filt, bias, 20, s.lo, s.hi, swish, affine,
                                              mul, add, *geometry), ref)


def test_a_direct_kernel_that_differs_is_refused():
    jit = _XNN.module

    def off_by_one_bit(*args):
        out = jit.conv_direct(*args)
        out.view(np.uint32).reshape(-1)[-1] ^= 1
        return out

    geometry = (3, 3, 2, 2, 1, 1, 0, 0, 6, 6)
    lo, hi = F32(-np.inf), F32(np.inf)
    assert conv_exact.xnnpack_direct_proven(jit, (13, 13, 3), 16, geometry, lo, hi)
    assert not conv_exact.xnnpack_direct_proven(jit, (13, 13, 3), 16, geometry, lo, hi,
                                                off_by_one_bit)


def test_many_channels_keep_the_gathering_kernels(rng):
    c = conv_exact.DIRECT_CHANNELS + 1
    x = rng.standard_normal((1, 10, 10, c)).astype(F32)
    w = rng.standard_normal((16, 3, 3, c)).astype(F32)
    s = _loaded(_settings(1, 1, SAME))
    same_bits(xnnpack_float.conv_2d(s, x, w, None),
              xnnpack_float.conv_2d(_settings(1, 1, SAME, loader=None), x, w, None))
    assert not s.direct[x.shape]


def test_mobilenet_v3_dynamic_range_stem_is_one_step_with_the_same_bits(rng):
    path = FIXTURES / "tf_quantized" / "mobilenet_v3_small" / "dynamic_range.tflite"
    x = rng.uniform(0, 255, (2, 96, 96, 3)).astype(F32)
    x[0, 0, :3] = [[0.0, -0.0, 0.0]] * 3
    it = fed(path, x, lt.OpResolverType.AUTO)
    for _ in range(3):  # the second run starts loading the kernels
        it.invoke()
        _XNN.wait()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    specialised = next(iter(it.plan(0)._per_shapes.values()))[0]  # these shapes' steps
    steps = [s for s in specialised if s.op == "mul+add+conv_2d+hard_swish"]
    assert len(steps) == 1 and steps[0].settings.direct == {x.shape: True}
    reference = fed(path, x, lt.OpResolverType.AUTO, preserve=True)
    reference.invoke()
    same_bits(got, reference.get_tensor(reference.get_output_details()[0]["index"]))
