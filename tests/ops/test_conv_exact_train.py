"""Training convolutions in BLAS's own order, against the NumPy kernels, bit for bit.

* CONV_2D with a filter known only at run time (a variable's value: training's forward
  convolutions): the transposed filter view the NumPy path multiplies by is proven per
  shape in that layout (``conv_exact.proven(transposed=True)``), then the whole
  convolution runs in ``fast.gemm`` (the stem's direct-read form, 1×1 and strided ones),
  for batch 1 and 32, with NaN, infinities and signed zeros in input and filter: the
  plain NumPy kernel's bits, the BLAS-order form adopted (checked, so the comparison
  cannot pass by never running it). A refused proof keeps the NumPy path.
* TRANSPOSE_CONV (a strided convolution's input gradient) by ``fast.transpose_conv``:
  strides 1 to 3, SAME and VALID, windows 1×1 to 5×5, widths that are not a multiple of
  the eight-pixel tile, 16 to 48 output channels, specials: the NumPy kernel's bits,
  adopted; refused (the NumPy path, same bits) when the proof fails, for output channels
  that fill its tiles badly, and for an input that is not C-order.
* ``fast.gemm.pack`` of a transposed view whose channels are a multiple of sixteen.
"""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.ops import conv_exact, fast, transpose_exact
from litetrain.ops.common import SAME, VALID
from litetrain.ops.conv import conv_2d, transpose_conv
from litetrain.ops.evaluate import node_info
from litetrain.ops.registry import lookup

from ..bits import same_bits, with_specials
from .test_convnet_fast_train import _runtime_filter

pytestmark = [pytest.mark.needs_kernels("conv", "gemm", "transpose_conv"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]  # IEEE specials


def _specials(rng, shape) -> np.ndarray:
    """:func:`with_specials` plus infinities of both signs."""
    x = with_specials(rng, shape)
    x.reshape(-1)[rng.choice(x.size, 2, replace=False)] = [np.inf, -np.inf]
    return x


def _attrs(k, s, padding, act=0):
    return {"stride_h": s, "stride_w": s, "dilation_h_factor": 1, "dilation_w_factor": 1,
            "padding": padding, "fused_activation_function": act}


# (n, h, w, ci, o, k, stride, padding): the CNN train step's three (at batch 32 the
# stem and the strided one; 1×1 at 8 images), others at batch 1 and 2
FORWARD = [
    (32, 32, 32, 3, 16, 3, 1, SAME),   # the stem: direct read
    (16, 16, 16, 16, 32, 1, 1, SAME),  # 1×1: several chunks
    (1, 16, 16, 16, 32, 1, 1, SAME),   # 1×1 at batch 1: one chunk
    (32, 16, 16, 32, 32, 3, 2, SAME),  # 3×3 stride 2
    (1, 12, 13, 8, 24, 3, 1, SAME),    # batch 1, a masked second channel tile
    (2, 11, 9, 16, 40, 5, 2, VALID),
    (1, 10, 10, 32, 16, 3, 2, SAME),
]


@pytest.mark.parametrize("case", FORWARD, ids=str)
def test_a_variable_filter_conv_in_blas_order_gives_the_numpy_bits(case, rng):
    n, h, wd, ci, o, k, st, padding = case
    x = _specials(rng, (n, h, wd, ci))
    w = _specials(rng, (o, k, k, ci))
    bias = rng.standard_normal(o).astype(np.float32)
    for act, b in ((1, bias), (0, None), (3, bias)):
        attrs = _attrs(k, st, padding, act)
        fast_ = _runtime_filter("conv_2d", x, w, b, attrs, with_kernels=True)
        plain = _runtime_filter("conv_2d", x, w, b, attrs, with_kernels=False)
        same_bits(conv_2d(fast_, x, w, b), conv_2d(plain, x, w, b))
        rows_k_o = [(m, k * k * ci, o) for m in _rows(case)]
        if all(conv_exact.proven([m], kk, oo, transposed=True) for m, kk, oo in rows_k_o):
            assert list(fast_.exact.values()) == [True]  # adopted: the kernel ran
        # a new filter array of other values each call (a variable is replaced)
        w2 = w * np.float32(-0.5)
        same_bits(conv_2d(fast_, x, w2, b), conv_2d(plain, x, w2, b))


def _rows(case) -> set[int]:
    """The NumPy path's GEMM row counts for a forward case (its chunks)."""
    from litetrain.ops.common import pad_before_after
    from litetrain.ops.conv_gemm import CHUNK_BYTES, chunks

    n, h, wd, ci, o, k, st, padding = case
    oh = pad_before_after(h, k, st, 1, padding)[0]
    ow = pad_before_after(wd, k, st, 1, padding)[0]
    lines = max(1, CHUNK_BYTES // (ow * (k * k * ci + o) * 4))
    return {(b1 - b0) * (y1 - y0) * ow for b0, b1, y0, y1 in chunks(n, oh, lines)}


def test_the_transposed_layout_is_proven_on_its_own(rng, monkeypatch):
    """Each layout is checked with the operand NumPy really passes; a kernel summing in
    another order is refused in both, and the node keeps the NumPy path."""
    def pairwise(a, b):  # NumPy's float32 pairwise sum: another order
        return (a[:, :, None] * b[None]).sum(axis=1, dtype=np.float32)

    for transposed in (False, True):
        assert not conv_exact.proven([64], 24, 32, kernel=pairwise, transposed=transposed)
    monkeypatch.setattr(conv_exact, "_VERDICTS", {})
    monkeypatch.setattr(conv_exact, "_compiled", pairwise)
    case = (2, 9, 9, 8, 32, 3, 1, SAME)
    x = _specials(rng, case[:4])
    w = _specials(rng, (32, 3, 3, 8))
    b = rng.standard_normal(32).astype(np.float32)
    attrs = _attrs(3, 1, SAME, 1)
    s = _runtime_filter("conv_2d", x, w, b, attrs, with_kernels=True)
    same_bits(conv_2d(s, x, w, b), conv_2d(attrs, x, w, b))
    assert s.exact and not any(s.exact.values())  # checked, refused
    assert all(key[-1] for key in conv_exact._VERDICTS)  # in the transposed layout


def test_pack_takes_a_transposed_view_in_c_order(rng):
    g = fast.kernels("gemm").module
    w = rng.standard_normal((32, 27)).astype(np.float32)
    packed = g.pack(w.T)
    assert packed.flags.c_contiguous and np.array_equal(packed, w.T)


# (n, h, w, ci, o, k, stride, padding, output size)
TRANSPOSED = [
    (32, 8, 8, 32, 32, 3, 2, SAME, (16, 16)),  # the CNN train step's
    (1, 8, 8, 32, 32, 3, 2, SAME, (16, 16)),
    (2, 5, 7, 16, 16, 3, 2, SAME, (10, 14)),
    (2, 5, 7, 8, 48, 3, 1, VALID, (7, 9)),
    (3, 6, 6, 32, 16, 5, 3, SAME, (18, 18)),
    (1, 4, 9, 3, 32, 2, 2, VALID, (8, 18)),
    (2, 7, 7, 24, 48, 3, 1, SAME, (7, 7)),
    (2, 9, 11, 16, 16, 1, 2, SAME, (18, 22)),
    (2, 9, 11, 16, 16, 3, 2, SAME, (17, 21)),  # an odd output size: padding after
]


def _transpose_settings(shape, w, x, attrs):
    s = lookup("transpose_conv").settings(node_info("transpose_conv", [shape, w, x], attrs))
    assert isinstance(s, fast.WithKernels) and s.loader.wait() is not None
    s.ready()  # (the conv kernels are loaded: ready from the first call)
    return s


@pytest.mark.parametrize("case", TRANSPOSED, ids=str)
def test_compiled_transpose_conv_gives_the_numpy_bits(case, rng, monkeypatch):
    n, h, wd, ci, o, k, st, padding, (oh, ow) = case
    x = _specials(rng, (n, h, wd, ci))
    w = _specials(rng, (o, k, k, ci))
    w.reshape(-1)[::7] = -0.0  # -0.0 products: +0.0 + -0.0 is +0.0 in both
    shape = np.array([n, oh, ow, o], np.int32)
    ran = []
    kernel = transpose_exact.transpose_conv

    def counting(*args):
        out = kernel(*args)
        ran.append(out is not None)
        return out

    monkeypatch.setattr(transpose_exact, "transpose_conv", counting)
    for act, b in ((0, None), (1, rng.standard_normal(o).astype(np.float32))):
        attrs = {"stride_h": st, "stride_w": st, "padding": padding,
                 "fused_activation_function": act}
        s = _transpose_settings(shape, w, x, attrs)
        same_bits(transpose_conv(s, shape, w, x, b), transpose_conv(attrs, shape, w, x, b))
    if conv_exact.proven([n * h * wd], ci, k * k * o):
        assert ran == [True, False, True, False]  # adopted (the plain attrs: NumPy)


def test_transpose_conv_keeps_numpy_where_it_does_not_apply(rng, monkeypatch):
    """Output channels filling its tiles badly, an input that is not C-order, and a
    failed proof: the NumPy path, its bits."""
    attrs = {"stride_h": 2, "stride_w": 2, "padding": SAME, "fused_activation_function": 0}
    x = _specials(rng, (2, 6, 6, 16))
    shape = np.array([2, 12, 12, 16], np.int32)
    w = _specials(rng, (16, 3, 3, 16))
    s = _transpose_settings(shape, w, x, attrs)
    narrow = w[:8].copy()
    assert transpose_exact.transpose_conv(s, x, narrow, (2, 12, 12, 8), (2, 2, 0, 0)) is None
    same_bits(transpose_conv(s, np.array([2, 12, 12, 8], np.int32), narrow, x),
              transpose_conv(attrs, np.array([2, 12, 12, 8], np.int32), narrow, x))
    strided = np.repeat(x, 2, axis=3)[..., ::2]  # x's values, not C-order
    assert transpose_exact.transpose_conv(s, strided, w, (2, 12, 12, 16), (2, 2, 0, 0)) is None
    same_bits(transpose_conv(s, shape, w, strided), transpose_conv(attrs, shape, w, x))
    assert transpose_exact.transpose_conv(s, x, w, (2, 12, 12, 16), (2, 2, 0, 0)) is not None
    monkeypatch.setattr(conv_exact, "proven", lambda *args, **kw: False)
    assert transpose_exact.transpose_conv(s, x, w, (2, 12, 12, 16), (2, 2, 0, 0)) is None
    same_bits(transpose_conv(s, shape, w, x), transpose_conv(attrs, shape, w, x))


@pytest.mark.parametrize("o", [3, 8, 24, 40])
def test_the_kernel_is_exact_for_channel_tails_too(o, rng, monkeypatch):
    """Output channels that are not a multiple of sixteen (not adopted, see
    ``transpose_exact.faster``) still give the NumPy bits in the kernel's masked lanes:
    NaN and signed zeros, no infinities (a NaN made of ``inf * 0`` meeting another NaN
    in an addition: NumPy's short loops keep the second operand's, its vector loops,
    which the kernel follows, the first's)."""
    monkeypatch.setattr(transpose_exact, "faster", lambda channels: True)
    x = with_specials(rng, (2, 5, 6, 16))
    w = with_specials(rng, (o, 3, 3, 16))
    shape = np.array([2, 10, 12, o], np.int32)
    attrs = {"stride_h": 2, "stride_w": 2, "padding": SAME, "fused_activation_function": 0}
    s = _transpose_settings(shape, w, x, attrs)
    got = transpose_exact.transpose_conv(s, x, w, (2, 10, 12, o), (2, 2, 0, 0))
    if conv_exact.proven([60], 16, 9 * o):
        assert got is not None
        same_bits(got, transpose_conv(attrs, shape, w, x))
