"""The ``[fast]`` extra's XNNPACK-order float kernels (litetrain/ops/fast/xnnpack.py) on
channel counts the TF-made single-op fixtures do not cover: sixteen-channel register
blocks and their one-by-one tail, with NaN, infinities, signed zeros (bias -0.0, taps in
the padding), strides, dilations and every clamp — the NumPy forms' bits."""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.ops import fast, xnnpack_float
from litetrain.ops.common import SAME, VALID
from litetrain.ops.registry import lookup
from tests.bits import same_bits, with_specials

_LOADER = fast.kernels("xnnpack")
pytestmark = pytest.mark.needs_kernels(_LOADER)
F32 = np.float32


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # IEEE specials on purpose
@pytest.mark.parametrize("channels", [16, 37, 56])
def test_compiled_depthwise_gives_the_numpy_bits(channels, rng):
    kernel = lookup("depthwise_conv_2d").kernel
    for shape, k, stride, dilation, padding, act in (((1, 11, 10), 3, 2, 1, SAME, 1),
                                                    ((2, 7, 6), 5, 1, 1, SAME, 0),
                                                    ((1, 9, 9), 3, 1, 2, VALID, 3),
                                                    ((1, 6, 5), 3, 2, 1, VALID, 2)):
        x = with_specials(rng, (*shape, channels))
        x[0, 1:3] = -0.0
        w = rng.standard_normal((1, k, k, channels)).astype(F32)
        w[0, 0, 0, ::3] = 0.0
        b = rng.standard_normal(channels).astype(F32)
        b[::2] = -0.0
        attrs = {"padding": padding, "stride_h": stride, "stride_w": stride,
                 "dilation_h_factor": dilation, "dilation_w_factor": dilation,
                 "depth_multiplier": 1, "fused_activation_function": act}
        settings = xnnpack_float.XnnOrder(attrs, _LOADER)
        settings.runs = 2  # loaded: the compiled form runs
        plain = xnnpack_float.XnnOrder(attrs, None)
        same_bits(kernel(settings, x, w, b), kernel(plain, x, w, b))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # IEEE specials on purpose
def test_compiled_mean_gives_the_numpy_bits(rng):
    """Whole and partial seven-pixel passes (the zeros past the last pixel turn a -0.0
    sum into +0.0), NaN (then -inf) and infinities."""
    plain = xnnpack_float.XnnOrder({"keep_dims": True}, None)
    for shape in [(2, 1, 1, 5), (2, 2, 3, 17), (1, 7, 1, 5), (2, 3, 5, 33), (1, 6, 6, 40)]:
        x = with_specials(rng, shape)
        x[0] = -0.0
        out = np.empty((shape[0], shape[3]), F32)
        same_bits(xnnpack_float.mean(plain, x, np.array([1, 2])).reshape(out.shape),
                  _LOADER.module.mean_hw(x, out))
