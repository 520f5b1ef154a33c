"""Prepare-time data of float CONV_2D and DEPTHWISE_CONV_2D, and the choice of their
compiled parts.

A node qualifies when its input and its 4-D filter are float32; its settings are then a
:class:`Compiled`: the node's attrs (every reader of attrs works unchanged) plus, when
the filter is a constant of the file, that filter and its layouts made once (CONV_2D's
GEMM operand is used by the NumPy kernel too). A filter that is not a constant (read
from a variable, or computed, as the depthwise input gradient's reversed filter) is laid
out on every call, which is cheap next to the convolution; nothing of it is kept, so
nothing can go stale. With the ``[fast]`` extra (numba, :mod:`.fast`),
DEPTHWISE_CONV_2D then runs wholly compiled (strided ones and some others by
``fast.depthwise``: :func:`strided_tiles`); CONV_2D gets compiled patch gathering
(im2col) and epilogue (bias and activation in one pass) around BLAS's GEMMs, or, where
:mod:`.conv_exact` proves BLAS's order for the node's GEMM shapes and filter layout (a
constant filter's C-order operand, or the transposed view of a filter read from a
variable), runs wholly compiled in that order (``fast.gemm``; :attr:`Compiled.exact`
keeps the verdicts; a variable's filter is packed per call).

At run time the NumPy kernel hands over only for a float32 input and, for a node with a
constant filter, exactly the prepared filter array (an evaluation with other weights
takes the NumPy path), for any other node a float32 4-D filter array; so one node's
prepared data never meets another's arrays. A node without a constant filter multiplies
by the filter's transposed view, as the NumPy kernel does (:func:`gemm_filter`).
Results are the NumPy kernels' bits.
"""

from __future__ import annotations

import numpy as np

from .activations import hard_swish_in_place
from .common import NONE, RELU, RELU6, RELU_N1_TO_1, fused, window_geometry
from .fast import Loader, WithKernels, kernels
from .registry import NodeInfo

_INF = np.float32(np.inf)
# Fused activations the compiled kernels apply themselves, as clamp bounds.
_CLAMPS = {NONE: (-_INF, _INF), RELU: (np.float32(0), _INF),
           RELU_N1_TO_1: (np.float32(-1), np.float32(1)), RELU6: (np.float32(0), np.float32(6))}
_NO_BIAS = np.zeros(0, np.float32)
# The depthwise kernel's chunk length target (floats) and the row stride of its filter
# tiles (``fast.conv.STRIDE``, repeated here so choosing needs no numba import).
_SPAN = 512
_STRIDE = 1040
# Output pixels (all images) up to which, and from which (with at least _TILE_PIXELS
# per image), a stride-1 depthwise convolution takes fast.depthwise's tiles (see
# strided_tiles).
_FEW_PIXELS = 100
_MANY_PIXELS = 1024
_TILE_PIXELS = 16


class Compiled(WithKernels):
    """A node's attrs, plus the constant ``filter`` its kernels are for (``None``: the
    filter is not a constant and is laid out per call), that filter laid out for them
    once (CONV_2D: ``gemm``, the GEMM operand ``[kh * kw * in, out]`` in C order, also
    for the NumPy kernel; depthwise: ``taps``, see :func:`_taps`), the fused activation
    as clamp bounds (``rest``: one they leave to NumPy), the window geometry per input
    size, and the compiled kernels' loader (``None``: NumPy only)."""

    def __init__(self, attrs, filter: np.ndarray | None, loader: Loader | None,
                 depthwise: bool):
        super().__init__(attrs, loader)
        self.filter = filter
        constant = filter is not None
        self.gemm = np.ascontiguousarray(filter.reshape(filter.shape[0], -1).T) \
            if constant and not depthwise else None
        act = attrs.get("fused_activation_function", 0)
        self.lo, self.hi = _CLAMPS.get(act, _CLAMPS[NONE])
        self.rest = NONE if act in _CLAMPS else act
        self.geometry: dict[tuple[int, int], tuple[int, ...]] = {}
        self.last_epilogue: tuple | None = None
        # depthwise: the constant filter's taps (made on first use: see _taps), the
        # kernel's geometry and chunk length per shapes, the last bias seen and its tiles.
        self.taps: np.ndarray | None = None
        self.strided_taps: np.ndarray | None = None  # [kh * kw, c]: fast.depthwise's
        self.windows: dict[tuple, tuple[np.ndarray, int]] = {}
        self.last_bias: tuple | None = None
        self.last_run: tuple | None = None  # see run_depthwise
        self.pointwise: tuple | None = None  # see pointwise_conv
        # CONV_2D in BLAS's order (conv_exact): verdict per (input shape, BLAS threads),
        # the filter packed for fast.gemm (made on first use), the last bias packed.
        self.exact: dict[tuple, bool] = {}
        # ... and whether it reads patches in place (conv_exact.direct), per input shape
        self.direct: dict[tuple, bool] = {}
        self.wpack: np.ndarray | None = None
        self.last_bpack: tuple | None = None


def prepare(info: NodeInfo) -> object:
    """``Compiled`` settings when the node qualifies (see the module docstring), else the
    attrs unchanged."""
    x, w = info.inputs[0], info.inputs[1] if len(info.inputs) > 1 else None
    if x is None or w is None or x.dtype != np.float32:
        return info.attrs
    dtype, shape = (w.dtype, w.shape) if w.value is None else (w.value.dtype, w.value.shape)
    if dtype != np.float32 or shape is None or len(shape) != 4:
        return info.attrs
    return Compiled(info.attrs, w.value, kernels("conv"), info.op == "depthwise_conv_2d")


def prepare_transpose(info: NodeInfo) -> object:
    """TRANSPOSE_CONV's settings: with a float32 filter and input, the node's attrs and
    the compiled kernels' loader (its taps are then added into the output by
    :func:`col2im`); else the attrs unchanged."""
    w, x = (*info.inputs[1:3], None, None)[:2]
    loader = kernels("conv")
    if (loader is None or w is None or x is None or w.dtype != np.float32
            or x.dtype != np.float32):
        return info.attrs
    return WithKernels(info.attrs, loader)


def col2im(settings, contrib: np.ndarray, out: np.ndarray,
           geometry: tuple[int, int, int, int]) -> bool:
    """TRANSPOSE_CONV's taps ``contrib`` [n, h, w, kh, kw, o] added into its zeroed
    float32 output by the compiled kernel (the NumPy kernel's additions, in its order);
    False when the node was not prepared for it, the kernels are not loaded yet (the
    node's second run starts loading them) or the arrays are not float32 C-order."""
    if settings.__class__ is not WithKernels or settings.ready() is None:
        return False
    if not (contrib.dtype == out.dtype == np.float32 and contrib.flags.c_contiguous
            and out.flags.c_contiguous and out.flags.writeable):
        return False
    settings.loader.module.col2im(contrib, out, *geometry)
    return True


def gemm_filter(settings, w: np.ndarray) -> np.ndarray:
    """CONV_2D's filter ``[out, kh, kw, in]`` as the GEMM operand ``[kh * kw * in, out]``:
    for a node's constant filter, prepared once in C order (BLAS's plain layout: no
    repacking of a transposed operand, up to 2× faster GEMMs at small batches); for any
    other filter a transposed view (no copy per call). The two layouts can round a sum
    differently, so a node always uses the same one: its prepared settings decide."""
    if settings.__class__ is Compiled and w is settings.filter and settings.gemm is not None:
        return settings.gemm
    return w.reshape(w.shape[0], -1).T


def applies(settings, x: np.ndarray, w: np.ndarray) -> bool:
    """The compiled kernels are loaded and were prepared for this filter and input (the
    node's second run starts loading them: see :mod:`.fast`): the node's constant filter
    itself, or, for a node without one, any float32 4-D filter array."""
    if (settings.__class__ is not Compiled or settings.loader is None
            or settings.ready() is None):
        return False
    if x.__class__ is not np.ndarray or x.dtype != np.float32 or x.ndim != 4:
        return False
    if w is settings.filter:
        return True
    return (settings.filter is None and w.__class__ is np.ndarray
            and w.dtype == np.float32 and w.ndim == 4)



def _span(channels: int) -> int:
    """The depthwise kernel's chunk length: a multiple of the output channels near
    :data:`_SPAN` floats."""
    return channels * max(1, _SPAN // channels)


def _aligned(shape: tuple[int, ...]) -> np.ndarray:
    """Zeros (float32, C order) starting on a 64-byte boundary: the compiled kernels'
    vector loads then never straddle two cache lines."""
    size = int(np.prod(shape))
    buf = np.zeros(size + 16, np.float32)
    start = (-(buf.ctypes.data // 4)) % 16
    return buf[start:start + size].reshape(shape)


def _taps(w: np.ndarray, span: int) -> np.ndarray:
    """Depthwise filter ``[1, kh, kw, cm]`` as the kernel's ``[kh * kw, stride]`` tiles:
    each tap's ``cm`` values repeated to ``span`` (fresh C-order float32; ``stride`` is
    the kernel's constant row stride when it fits, which its unrolled forms need)."""
    _, kh, kw, cm = w.shape
    stride = _STRIDE if span <= _STRIDE else span
    t = _aligned((kh * kw, stride))
    t[:, :span] = np.tile(w.reshape(kh * kw, cm), (1, span // cm))
    return t


def _epilogue(s: Compiled, channels: int, b):
    """(bias array, has_bias, lo, hi, activation left for NumPy, bias left for NumPy),
    kept for the last bias seen (the node's constant: arrays are never mutated)."""
    last = s.last_epilogue
    if last is not None and last[0] is b and last[1] == channels:
        return last[2]
    made = _make_epilogue(s, channels, b)
    s.last_epilogue = (b, channels, made)
    return made


def _make_epilogue(s: Compiled, channels: int, b):
    if b is None:
        return _NO_BIAS, False, s.lo, s.hi, s.rest, None
    if b.__class__ is not np.ndarray or b.dtype != np.float32 or b.shape != (channels,):
        # an odd bias: NumPy adds it, then applies the activation
        return _NO_BIAS, False, -_INF, _INF, s.get("fused_activation_function", 0), b
    if not (b.flags.writeable and b.flags.c_contiguous):
        b = b.copy()
    return b, True, s.lo, s.hi, s.rest, None


def _finish(out: np.ndarray, act: int, late_bias, hard_swish=None, scale=None
            ) -> np.ndarray:
    """What the compiled epilogue left: an odd bias, an activation other than a clamp,
    then a fused HARD_SWISH (``hard_swish``: that node's settings), then a fused MUL by
    the one-element float32 array ``scale``."""
    if late_bias is not None:
        out += late_bias
    out = fused(out, act)
    if hard_swish is not None:
        out = hard_swish_in_place(hard_swish, out)
    return out if scale is None else np.multiply(out, scale, out=out)


def _plan(s: Compiled, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, int]:
    """The kernel's geometry ``[sh, sw, dh, dw, pt, pl, oh, ow, mult, kh, kw]`` and chunk
    length for these input and filter shapes, made once per shapes."""
    key = (x.shape, w.shape)
    plan = s.windows.get(key)
    if plan is None:
        c, (_, kh, kw, cm) = x.shape[3], w.shape
        if cm % c:
            raise ValueError(f"filter depth {cm} is not a multiple of the {c} input channels")
        geometry = window_geometry(s.geometry, s, x, kh, kw)
        plan = s.windows[key] = (np.array([*geometry, cm // c, kh, kw], np.int64), _span(cm))
    return plan


def _bias_tiles(s: Compiled, b, cm: int, span: int):
    """(bias repeated to ``span``, clamp bounds, activation and bias left for NumPy), kept
    as the node's last bias (its constant: arrays are never mutated). No bias tiles as
    -0.0, which adds nothing to any sum's bits."""
    bias, has_bias, lo, hi, act, late_bias = _make_epilogue(s, cm, b)
    tiles = _aligned((span,))
    tiles[:] = np.tile(bias, span // cm) if has_bias else -0.0
    made = (tiles, lo, hi, act, late_bias)
    s.last_bias = (b, span, made)
    return made


def run_depthwise(s: Compiled, x, w, b, hard_swish=None) -> np.ndarray | None:
    """DEPTHWISE_CONV_2D (then a fused HARD_SWISH: ``hard_swish``, that node's settings)
    by the compiled kernel when it applies (else ``None``): a call with the same
    constant filter, bias array, HARD_SWISH and input shape as the node's last one (a
    C-order float32 input) goes straight to the kernel with that call's arguments."""
    last = s.last_run
    if (last is not None and w is last[0] and b is last[1] and hard_swish is last[2]
            and x.__class__ is np.ndarray and x.shape == last[3] and x.dtype is last[4]
            and x.flags.c_contiguous):
        return last[5](x, *last[6])
    if not applies(s, x, w):
        return None
    return depthwise_conv_2d(s, x, w, b, hard_swish)


def depthwise_conv_2d(s: Compiled, x: np.ndarray, w: np.ndarray, b=None, hard_swish=None
                      ) -> np.ndarray:
    g, span = _plan(s, x, w)
    if strided_tiles(g, x.shape[0]):
        return _strided(s, x, w, b, g, hard_swish)
    if w is s.filter:
        taps = s.taps
        if taps is None:
            taps = s.taps = _taps(w, span)
    else:
        taps = _taps(w, span)
    last = s.last_bias
    if last is not None and last[0] is b and last[1] == span:
        bt, lo, hi, act, late_bias = last[2]
    else:
        bt, lo, hi, act, late_bias = _bias_tiles(s, b, w.shape[3], span)
    x = x if x.flags.c_contiguous else np.ascontiguousarray(x)
    module = s.loader.module
    if act == NONE and late_bias is None:
        kernel = (module.depthwise_conv_2d if hard_swish is None
                  else module.depthwise_conv_2d_hard_swish)
        if w is s.filter:  # the arguments for the node's next calls (see run_depthwise)
            # (x's dtype object, float32 as checked by applies: one object per tensor
            # in a run, not always numpy's own float32 instance)
            s.last_run = (w, b, hard_swish, x.shape, x.dtype, kernel, (taps, bt, lo, hi, g))
        return kernel(x, taps, bt, lo, hi, g)
    out = module.depthwise_conv_2d(x, taps, bt, lo, hi, g)
    return _finish(out, act, late_bias, hard_swish)


def strided_tiles(g: np.ndarray, images: int) -> bool:
    """Whether a depthwise convolution of geometry ``g`` (see :func:`_plan`) of
    ``images`` images runs ``fast.depthwise``'s tiles over a padded image instead of the
    ring kernel: multiplier 1, and strided, or a window of 25 taps or more over outputs
    of 16 pixels or more, or at most :data:`_FEW_PIXELS` output pixels in all, or at
    least :data:`_MANY_PIXELS` over outputs of 16 pixels or more. Measured interleaved
    against the ring kernel on MobileNetV2/V3's layers (batch 32 unless said): strided
    3×3 and 5×5, 16 to 192 channels, 0.45–0.85× its time; stride 1: 5×5 on 6×6 outputs
    0.77×, at batch 1 on 3×3 and 6×6 outputs 0.46–0.83× (the ring's setup per call);
    3×3 windows, thread CPU time at load ~7: on 6×6 to 48×48 outputs, 16 to 192 channels,
    0.82–0.90× (48×48×16 0.82×, 24×24×48 0.90×), at batch 1 and 4 on 12×12 to 48×48
    outputs 0.98–1.03× (so from 1024 pixels in all, where it gains), on 3×3 outputs (a
    tile and a mostly empty one) 1.00× at batch 32, 1.25–1.8× at batch 1: those keep
    the ring kernel."""
    if g[8] != 1:
        return False
    taps, pixels = g[9] * g[10], g[6] * g[7]
    return bool(g[0] > 1 or g[1] > 1 or (taps >= 25 and pixels >= _TILE_PIXELS)
                or images * pixels <= _FEW_PIXELS
                or (images * pixels >= _MANY_PIXELS and pixels >= _TILE_PIXELS))


def _strided(s: Compiled, x: np.ndarray, w: np.ndarray, b, g: np.ndarray, hard_swish
             ) -> np.ndarray:
    """DEPTHWISE_CONV_2D of multiplier 1 by ``fast.depthwise`` (see
    :func:`strided_tiles`), the filter's taps ``[kh * kw, c]`` made once for the node's
    constant filter."""
    c = w.shape[3]
    if w is s.filter:
        taps = s.strided_taps
        if taps is None:
            taps = s.strided_taps = np.array(w.reshape(-1, c), np.float32, order="C")
    else:  # (a fresh C-order copy of any view)
        taps = np.array(w.reshape(-1, c), np.float32, order="C")
    bias, has_bias, lo, hi, act, late_bias = _epilogue(s, c, b)
    if not has_bias:
        bias = np.full(c, -0.0, np.float32)  # adds nothing to any sum's bits
    x = x if x.flags.c_contiguous else np.ascontiguousarray(x)
    module = s.loader.module
    if act == NONE and late_bias is None:
        kernel = (module.depthwise_strided if hard_swish is None
                  else module.depthwise_strided_hard_swish)
        if w is s.filter:  # the arguments for the node's next calls (see run_depthwise)
            s.last_run = (w, b, hard_swish, x.shape, x.dtype, kernel, (taps, bias, lo, hi, g))
        return kernel(x, taps, bias, lo, hi, g)
    return _finish(module.depthwise_strided(x, taps, bias, lo, hi, g), act, late_bias,
                   hard_swish)


class ConvEpilogue:
    """CONV_2D's epilogue on each block of its GEMM result, in place: bias and clamping
    activation (then a fused HARD_SWISH: ``hard_swish``, that node's settings, or a
    fused MUL by the one-element float32 array ``scale``) in one compiled pass; what
    the compiled pass leaves (another activation, an odd bias, and then the HARD_SWISH
    and the MUL) applied to the whole output at the end."""

    def __init__(self, s: Compiled, channels: int, b, hard_swish=None, scale=None):
        self.module = s.loader.module
        (self.bias, self.has_bias, self.lo, self.hi, self.act,
         self.late_bias) = _epilogue(s, channels, b)
        self.pass_, self.extra = self.module.bias_activation, ()
        self.hard_swish, self.scale = hard_swish, scale
        if self.act == NONE and self.late_bias is None:
            if hard_swish is not None:
                self.pass_, self.hard_swish = self.module.bias_activation_hard_swish, None
            elif scale is not None:
                self.pass_, self.scale = self.module.bias_activation_scale, None
                self.extra = (scale.reshape(-1)[0],)

    def block(self, block: np.ndarray) -> None:
        self.pass_(block.reshape(-1, block.shape[-1]), self.bias, self.has_bias, self.lo,
                   self.hi, *self.extra)

    def rest(self, out: np.ndarray) -> np.ndarray:
        return _finish(out, self.act, self.late_bias, self.hard_swish, self.scale)


def conv_epilogue(s: Compiled, channels: int, b, hard_swish=None, scale=None
                  ) -> ConvEpilogue:
    return ConvEpilogue(s, channels, b, hard_swish, scale)


def im2col(s: Compiled, x: np.ndarray, scratch: np.ndarray, span: tuple[int, int, int, int],
           geometry: tuple[int, ...], rescale: tuple | None = None) -> np.ndarray:
    """The im2col rows ``[rows, kh * kw * c]`` of the outputs ``[b0:b1, y0:y1]`` of a
    float32 C-order ``x``, gathered into the start of ``scratch`` straight from ``x``
    (zeros where the window is on padding): the values of ``conv_gemm._patch_rows``.
    ``rescale``: float32 ``(scale, shift)``, the rows of ``x * scale + shift`` instead."""
    kh, kw = geometry[:2]
    b0, b1, y0, y1 = span
    rows = (b1 - b0) * (y1 - y0) * geometry[-1]
    patches = scratch[:rows * kh * kw * x.shape[3]].reshape(rows, -1)
    if rescale is None:
        s.loader.module.im2col(x, patches, b0, b1, y0, y1, *geometry)
    else:
        s.loader.module.im2col_affine(x, patches, b0, b1, y0, y1, *geometry, *rescale)
    return patches


def bias_activation(s: Compiled, out: np.ndarray, b, hard_swish=None, scale=None
                    ) -> np.ndarray:
    """CONV_2D's epilogue on its fresh GEMM result ``out`` [n, oh, ow, o]: bias and
    activation (and a fused HARD_SWISH or MUL) in one pass, in place."""
    if out.dtype == np.float32 and out.flags.c_contiguous:
        epilogue = ConvEpilogue(s, out.shape[-1], b, hard_swish, scale)
        epilogue.block(out)
        return epilogue.rest(out)
    # not the GEMM result this was made for: NumPy does it all
    return _finish(out, s.get("fused_activation_function", 0), b, hard_swish, scale)
