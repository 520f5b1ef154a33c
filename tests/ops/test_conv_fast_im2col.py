"""The compiled CONV_2D patch gathering (``fast.conv.im2col``: interior window rows as
whole runs, border columns tap by tap) against the NumPy patch rows, bit for bit, over
random geometries: images narrower than the window, every border case, dilation, 1 to 17
channels, spans of whole images and of single rows."""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.ops import conv_gemm, fast
from litetrain.ops.common import SAME, VALID, pad_before_after
from tests.bits import same_bits, with_specials

_LOADER = fast.kernels("conv")
pytestmark = pytest.mark.needs_kernels(_LOADER)


def _geometries(count: int, seed: int = 7):
    r = np.random.default_rng(seed)
    for _ in range(count):
        kh, kw = (int(v) for v in r.integers(1, 6, 2))
        sh, sw = (int(v) for v in r.integers(1, 4, 2))
        dh, dw = (int(v) for v in r.choice([1, 1, 2, 3], 2))
        padding = SAME if r.random() < 0.6 else VALID
        h = int(r.integers(1 if padding == SAME else (kh - 1) * dh + 1, 14))
        wd = int(r.integers(1 if padding == SAME else (kw - 1) * dw + 1, 14))
        c = int(r.choice([1, 2, 3, 3, 8, 17]))
        yield int(r.integers(1, 4)), h, wd, c, (kh, kw, sh, sw, dh, dw), padding


@pytest.mark.parametrize("case", list(_geometries(60)), ids=str)
def test_compiled_im2col_gives_the_numpy_patch_rows(case, rng):
    n, h, wd, c, (kh, kw, sh, sw, dh, dw), padding = case
    x = with_specials(rng, (n, h, wd, c)) if n * h * wd * c >= 4 else \
        -rng.random((n, h, wd, c)).astype(np.float32)
    oh, pt, _ = pad_before_after(h, kh, sh, dh, padding)
    ow, pl, pr = pad_before_after(wd, kw, sw, dw, padding)
    k = kh * kw * c
    module = _LOADER.module
    for span in [(0, n, 0, oh), (n - 1, n, oh // 2, oh), (0, 1, oh - 1, oh)]:
        b0, b1, y0, y1 = span
        rows = (b1 - b0) * (y1 - y0) * ow
        out = np.full((rows, k), np.float32(5))
        module.im2col(x, out, b0, b1, y0, y1, kh, kw, sh, sw, dh, dw, pt, pl, ow)
        same_bits(out, conv_gemm._patch_rows(x, (kh, kw, sh, sw, dh, dw, pt, pl, pr, ow),
                                             span))


def test_compiled_im2col_of_a_mobilenet_stem(rng):
    """[n, 96, 96, 3], 3×3 stride 2 SAME (no left/top padding), chunk of one image."""
    x = with_specials(rng, (2, 96, 96, 3))
    out = np.empty((48 * 48, 27), np.float32)
    _LOADER.module.im2col(x, out, 1, 2, 0, 48, 3, 3, 2, 2, 1, 1, 0, 0, 48)
    same_bits(out, conv_gemm._patch_rows(x, (3, 3, 2, 2, 1, 1, 0, 0, 1, 48), (1, 2, 0, 48)))


@pytest.mark.parametrize("case", list(_geometries(12, seed=11)), ids=str)
def test_compiled_im2col_of_a_rescaled_input_gives_the_rescaled_patch_rows(case, rng):
    """``im2col_affine``: the patch rows of ``x * scale + shift`` (NumPy's two float32
    ufuncs), zeros on padding."""
    n, h, wd, c, (kh, kw, sh, sw, dh, dw), padding = case
    x = with_specials(rng, (n, h, wd, c)) if n * h * wd * c >= 4 else \
        -rng.random((n, h, wd, c)).astype(np.float32)
    oh, pt, _ = pad_before_after(h, kh, sh, dh, padding)
    ow, pl, pr = pad_before_after(wd, kw, sw, dw, padding)
    for scale, shift in ((1 / 127.5, -1.0), (-3.0, 0.25), (1.0, -0.0)):
        scale, shift = np.float32(scale), np.float32(shift)
        rescaled = np.add(np.multiply(x, scale), shift)
        out = np.full((n * oh * ow, kh * kw * c), np.float32(5))
        _LOADER.module.im2col_affine(x, out, 0, n, 0, oh, kh, kw, sh, sw, dh, dw, pt, pl, ow,
                                     scale, shift)
        same_bits(out, conv_gemm._patch_rows(
            rescaled, (kh, kw, sh, sw, dh, dw, pt, pl, pr, ow), (0, n, 0, oh)))
