"""CONV_2D, DEPTHWISE_CONV_2D and TRANSPOSE_CONV (NHWC, as in TFLite) — everything about
them: float kernels, shape rules, gradient rules, integer and hybrid kernels, quantizer
facts.

Filters: CONV_2D and TRANSPOSE_CONV use ``[out, kh, kw, in]``; DEPTHWISE_CONV_2D uses
``[1, kh, kw, in * multiplier]``. Convolutions gather windows into patch matrices
(im2col) and multiply them in GEMMs, so the time goes to BLAS (ungrouped CONV_2D chunk by
chunk of output rows: :mod:`.conv_gemm`). Constant float32 filters are prepared once
(:mod:`.compiled`), where the ``[fast]`` extra's compiled kernels are also chosen.

Gradient rules emit builtin ops only (TensorFlow's converter needs Flex ops for them):

* CONV_2D input gradient: TRANSPOSE_CONV with the filter's in/out channels swapped;
  filter gradient: per filter tap one GEMM (BATCH_MATMUL, ``adj_x``) of the tap's input
  window and the output gradient over all batch items and pixels (``_filter_grad``).
* DEPTHWISE_CONV_2D input gradient: a depthwise convolution of the stride-dilated, fully
  padded output gradient with the spatially reversed filter; filter gradient: one strided
  slice of the padded input per tap, multiplied by the output gradient and summed.
"""

from __future__ import annotations

import numpy as np

from ..errors import TraceError, user_frame
from . import builtin_float, compiled, compiled_int8, transpose_exact, xnnpack_float
from .activations import hard_swish_in_place
from .common import (
    SAME,
    VALID,
    as_int_tuple,
    conv_out_size,
    fused,
    pad_before_after,
)
from .conv_gemm import activate, chunked_conv, pointwise_conv, then
from .grad import i32
from .quantized.gemm import exact_depthwise, gemm_variant
from .quantized.lib import hybrid_conv
from .registry import NodeInfo, OpDef
from .shapes import DYNAMIC, one, require_values, shape_of
from .windows import im2col, tap_range, windows


def _prepare(info: NodeInfo) -> object:
    """TF Lite's float order under its builtin resolvers (:mod:`.builtin_float`), or
    XNNPACK's in a hybrid graph under the default one (:mod:`.xnnpack_float`), else the
    compiled kernels' choice."""
    for choice in (builtin_float.prepare, xnnpack_float.prepare, compiled.prepare):
        chosen = choice(info)
        if chosen is not None:
            return chosen
    return None


def conv_2d(attrs, x, w, b=None, *, hard_swish=None, scale=None):
    """``hard_swish``: the settings of a HARD_SWISH node fused after this one; ``scale``:
    the one-element float32 array of a MUL fused after it (:mod:`litetrain.runtime.
    epilogue`; the same bits as running those nodes separately)."""
    if xnnpack_float.applies(attrs, x, w, b):
        return then(xnnpack_float.conv_2d(attrs, x, w, b), hard_swish, scale)
    if attrs.__class__ is compiled.Compiled:
        out = pointwise_conv(attrs, x, w, b, hard_swish, scale)
        if out is not None:
            return out
    if builtin_float.applies(attrs, x, w, b):
        return then(builtin_float.conv_2d(attrs, x, w, b), hard_swish, scale)
    c = x.shape[3]
    _, kh, kw, ci = w.shape
    if c % ci:
        raise ValueError(f"input has {c} channels, not a multiple of the filter's {ci}")
    groups = c // ci
    dh, dw = attrs.get("dilation_h_factor", 1), attrs.get("dilation_w_factor", 1)
    if groups > 1:
        out = _patch_gemm(im2col(x, kh, kw, attrs, dh, dw), w, groups)
        if b is not None:
            out += b
        return then(activate(out, attrs.get("fused_activation_function", 0)), hard_swish,
                    scale)
    return chunked_conv(attrs, x, w, b, compiled.applies(attrs, x, w), hard_swish,
                        scale=scale)


def _patch_gemm(cols: np.ndarray, w: np.ndarray, groups: int) -> np.ndarray:
    """``[n, oh, ow, o]``: each group's patches times its filters (one GEMM if ungrouped)."""
    n, oh, ow = cols.shape[:3]
    o, kh, kw, ci = w.shape
    k = kh * kw * ci
    if groups == 1:
        return (cols.reshape(n * oh * ow, k) @ w.reshape(o, k).T).reshape(n, oh, ow, o)
    og = o // groups
    out = np.empty((n, oh, ow, o), np.result_type(cols, w))
    for g in range(groups):
        patch = cols[..., g * ci:(g + 1) * ci].reshape(n * oh * ow, k)
        out[..., g * og:(g + 1) * og] = (patch @ w[g * og:(g + 1) * og].reshape(og, k).T
                                         ).reshape(n, oh, ow, og)
    return out


def depthwise_conv_2d(attrs, x, w, b=None, hard_swish=None):
    """DEPTHWISE_CONV_2D; ``hard_swish`` (a float HARD_SWISH node's settings, fused into
    this step by :mod:`litetrain.runtime.epilogue`): then that node's HARD_SWISH on the
    result, in the compiled kernel's store when it runs, else in place afterwards."""
    if attrs.__class__ is compiled.Compiled:
        out = compiled.run_depthwise(attrs, x, w, b, hard_swish)
        if out is not None:
            return out
    if hard_swish is not None:
        return hard_swish_in_place(hard_swish, depthwise_conv_2d(attrs, x, w, b))
    if xnnpack_float.applies(attrs, x, w, b):
        return xnnpack_float.depthwise_conv_2d(attrs, x, w, b)
    if builtin_float.applies(attrs, x, w, b):
        return builtin_float.depthwise_conv_2d(attrs, x, w, b)
    c, cm = x.shape[3], w.shape[3]
    if cm % c:
        raise ValueError(f"filter depth {cm} is not a multiple of the {c} input channels")
    form = _depthwise_padded if x.nbytes <= _SMALL_INPUT else _depthwise_in_bounds
    out = form(x, w, attrs, np.result_type(x, w))
    out = out.reshape(*out.shape[:3], cm)
    if b is not None:
        out += b
    return activate(out, attrs.get("fused_activation_function", 0))


# Below this input size the padded copy costs less than the extra NumPy calls of the
# in-bounds form (four border updates per tap); above it, the copy's memory matters. The
# in-bounds form's scratch buffer holds about as much.
_SMALL_INPUT = 1 << 20


def _depthwise_padded(x, w, attrs, dtype):
    """Tap by tap over the padded input into one buffer ``[n, oh, ow, c, mult]``, with one
    scratch buffer for the products (the bits of summing fresh arrays)."""
    c, cm = x.shape[3], w.shape[3]
    dh, dw = attrs.get("dilation_h_factor", 1), attrs.get("dilation_w_factor", 1)
    out = scratch = None
    for (i, j), win in windows(x, w.shape[1], w.shape[2], attrs, dh, dw):
        taps = w[0, i, j].reshape(c, cm // c)
        if out is None:
            out = np.multiply(win[..., :, None], taps, dtype=dtype)
            scratch = np.empty_like(out)
        else:
            out += np.multiply(win[..., :, None], taps, out=scratch)
    return out


def _depthwise_in_bounds(x, w, attrs, dtype):
    """The same sums without a padded copy of the input, a few images at a time (the
    products' scratch buffer stays small)."""
    n, h, wd, c = x.shape
    _, kh, kw, cm = w.shape
    sh, sw = attrs["stride_h"], attrs["stride_w"]
    dh, dw = attrs.get("dilation_h_factor", 1), attrs.get("dilation_w_factor", 1)
    oh, pt, _ = pad_before_after(h, kh, sh, dh, attrs["padding"])
    ow, pl, _ = pad_before_after(wd, kw, sw, dw, attrs["padding"])
    out = np.empty((n, oh, ow, c, cm // c), dtype)
    step = max(1, _SMALL_INPUT // max(1, out[0].nbytes))
    scratch = np.empty(min(n, step) * out[0].size, dtype)
    for b0 in range(0, n, step):
        _in_bounds_taps(x[b0:b0 + step], w, (sh, sw, dh, dw, pt, pl), out[b0:b0 + step],
                        scratch)
    return out


def _in_bounds_taps(x, w, geometry, out, scratch) -> None:
    """``out`` [n, oh, ow, c, mult] = the depthwise sums of ``x`` (see below)."""
    h, wd, c = x.shape[1:]
    _, kh, kw, cm = w.shape
    mult = cm // c
    sh, sw, dh, dw, pt, pl = geometry
    oh, ow = out.shape[1:3]
    dtype = out.dtype
    # Multiply-accumulate tap by tap into one buffer, each tap over the outputs whose input
    # is in bounds (no padded copy of the input), taps on padding giving 0 * w: the bits of
    # summing the padded input's tap products from the first tap on.
    first = True
    for i in range(kh):
        y0, y1, iy = tap_range(h, oh, sh, i * dh - pt)
        for j in range(kw):
            x0, x1, ix = tap_range(wd, ow, sw, j * dw - pl)
            taps = w[0, i, j].reshape(c, mult)
            if y1 > y0 and x1 > x0:
                win = x[:, iy:iy + (y1 - y0 - 1) * sh + 1:sh, ix:ix + (x1 - x0 - 1) * sw + 1:sw]
                inside = out[:, y0:y1, x0:x1]
                if first:
                    np.multiply(win[..., :, None], taps, out=inside)
                else:
                    part = scratch[:inside.size].reshape(inside.shape)  # contiguous
                    inside += np.multiply(win[..., :, None], taps, out=part)
            else:
                y0 = y1 = 0  # the whole tap is on padding
            zero = np.multiply(0, taps, dtype=dtype)
            for border in (out[:, :y0], out[:, y1:], out[:, y0:y1, :x0], out[:, y0:y1, x1:]):
                if border.size:
                    if first:
                        border[...] = zero
                    else:
                        border += zero
            first = False


def transpose_conv(attrs, output_shape, w, x, b=None):
    """One GEMM gives every (tap, output channel) contribution of every input pixel; col2im
    adds each tap's block, a strided slice, into the output (clipped to it, so padding is
    never computed), in tap order (with the ``[fast]`` extra a compiled kernel does the
    same additions: :func:`.compiled.col2im`), or, where BLAS's order is proven for the
    GEMM, the whole of it by one compiled call (:mod:`.transpose_exact`)."""
    n, oh, ow, o = as_int_tuple(output_shape)
    kh, kw = w.shape[1:3]
    sh, sw = attrs["stride_h"], attrs["stride_w"]
    _, ph, _ = pad_before_after(oh, kh, sh, 1, attrs["padding"])
    _, pw, _ = pad_before_after(ow, kw, sw, 1, attrs["padding"])
    out = transpose_exact.transpose_conv(attrs, x, w, (n, oh, ow, o), (sh, sw, ph, pw))
    if out is None:
        out = _transpose_conv(attrs, (n, oh, ow, o), w, x, (sh, sw, ph, pw))
    if b is not None:
        out += b
    return fused(out, attrs.get("fused_activation_function", 0))


def _transpose_conv(attrs, out_shape, w, x, geometry) -> np.ndarray:
    """:func:`transpose_conv`'s NumPy form, before bias and activation."""
    n, oh, ow, o = out_shape
    _, kh, kw, ci = w.shape
    h, wd = x.shape[1:3]
    # Filter as [ci, (kh, kw, o)]: each tap's block of the product is then contiguous.
    taps_first = np.ascontiguousarray(w.reshape(o, kh * kw, ci).transpose(2, 1, 0))
    contrib = (x.reshape(-1, ci) @ taps_first.reshape(ci, kh * kw * o)).reshape(
        n, h, wd, kh, kw, o)
    out = np.zeros((n, oh, ow, o), np.result_type(x, w))
    if not compiled.col2im(attrs, contrib, out, geometry):
        _col2im(contrib, out, geometry)
    return out


def _col2im(contrib: np.ndarray, out: np.ndarray, geometry: tuple[int, int, int, int]):
    """Each tap's block of ``contrib`` [n, h, w, kh, kw, o] added into ``out`` [n, oh, ow,
    o] (a strided slice, clipped to it), in tap order."""
    _, h, wd, kh, kw, _ = contrib.shape
    oh, ow = out.shape[1:3]
    sh, sw, ph, pw = geometry
    for i in range(kh):
        y0, y1, r0 = tap_span(h, sh, i - ph, oh)
        for j in range(kw):
            x0, x1, c0 = tap_span(wd, sw, j - pw, ow)
            if y1 > y0 and x1 > x0:
                out[:, r0:r0 + (y1 - y0 - 1) * sh + 1:sh, c0:c0 + (x1 - x0 - 1) * sw + 1:sw] \
                    += contrib[:, y0:y1, x0:x1, i, j]


def tap_span(size: int, stride: int, offset: int, out_size: int) -> tuple[int, int, int]:
    """Input positions ``y0 .. y1`` whose ``y * stride + offset`` falls in
    ``0 .. out_size``, and where the first lands."""
    y0 = max(0, -(offset // stride))
    y1 = min(size, (out_size - 1 - offset) // stride + 1)
    return y0, y1, y0 * stride + offset


# --- shape rules -------------------------------------------------------------------------

def window_shape(info: NodeInfo, kh: int, kw: int, channels: int) -> tuple[int, ...]:
    """``[n, oh, ow, channels]`` of a windowed op (convolution or pooling) on input 0."""
    n, h, w, _ = shape_of(info, 0)
    a = info.attrs
    dh, dw = a.get("dilation_h_factor", 1), a.get("dilation_w_factor", 1)
    oh = DYNAMIC if h == DYNAMIC else conv_out_size(h, kh, a["stride_h"], dh, a["padding"])
    ow = DYNAMIC if w == DYNAMIC else conv_out_size(w, kw, a["stride_w"], dw, a["padding"])
    return (n, oh, ow, channels)


def _conv_2d_shape(info: NodeInfo):
    o, kh, kw, _ = shape_of(info, 1)
    return one(window_shape(info, kh, kw, o))


def _depthwise_shape(info: NodeInfo):
    _, kh, kw, cm = shape_of(info, 1)
    return one(window_shape(info, kh, kw, cm))


def _transpose_conv_shape(info: NodeInfo):
    dims = require_values(info, 0, "output shape")
    return one(tuple(DYNAMIC if d is None else d for d in dims))


# --- gradient rules ----------------------------------------------------------------------

def _perm(g, x, perm):
    return g.op("transpose", x, i32(g, perm))


def _plain_convolution(attrs) -> None:
    """Gradient rules cover undilated convolutions without a fused activation."""
    if attrs.get("dilation_h_factor", 1) != 1 or attrs.get("dilation_w_factor", 1) != 1:
        raise TraceError(f"{user_frame()}: gradients of dilated convolutions are not supported")
    if attrs.get("fused_activation_function", 0):
        raise TraceError(f"{user_frame()}: differentiate the activation separately")


def _bias_grad(g, ins, dy) -> list:
    """The bias operand's gradient (sum over batch and space), as many entries as given."""
    if len(ins) < 3:
        return []
    return [None if ins[2] is None else g.op("sum", dy, i32(g, [0, 1, 2]), keep_dims=False)]


def _pad_input(g, x, pt, pb, pl, pr):
    if not (pt or pb or pl or pr):
        return x
    return g.op("pad", x, i32(g, [[0, 0], [pt, pb], [pl, pr], [0, 0]]))


def _conv_2d_vjp(g, attrs, ins, outs, dy):
    x, w = ins[0], ins[1]
    _plain_convolution(attrs)
    _, kh, kw, ci = w.shape
    if x.shape[3] != ci:
        raise TraceError(f"{user_frame()}: gradients of grouped convolutions are not supported")
    sh, sw, padding = attrs["stride_h"], attrs["stride_w"], attrs["padding"]
    if (kh, kw, sh, sw) == (1, 1, 1, 1):  # pointwise: dx = dy @ w, one plain GEMM
        o, (_, h, wd, _) = w.shape[0], x.shape
        dx = g.op("batch_matmul", g.op("reshape", dy, i32(g, [-1, o])),
                  g.op("reshape", w, i32(g, [o, ci])))
        dx = g.op("reshape", dx, i32(g, [-1, h, wd, ci]))
    else:
        dx = g.op("transpose_conv", g.op("shape", x, out_type=2), _perm(g, w, (3, 1, 2, 0)),
                  dy, padding=padding, stride_h=sh, stride_w=sw)
    return [dx, _filter_grad(g, x, dy, (kh, kw), (sh, sw), padding),
            *_bias_grad(g, ins, dy)]


def _filter_grad(g, x, dy, size: tuple[int, int], strides: tuple[int, int], padding: int):
    """CONV_2D's filter gradient ``[o, kh, kw, c]``: per tap, ``window(x)ᵀ @ dy`` over
    every batch item and output pixel (BATCH_MATMUL with ``adj_x``, which BLAS takes
    transposed without a copy), the taps packed.

    Undilated stride 1 needs no window gathering: on the padded input flattened to
    ``[n, pixels, c]``, tap ``(i, j)``'s window is each image's ``hp·wp`` pixels from
    ``i·wp + j`` on, against ``dy`` zero-padded to the same ``hp × wp`` grid: pixels
    outside the output carry zero cotangent, so what the shifted ranges wrap around to
    adds nothing. Copies are then contiguous (a 3-channel input's im2col would move 3
    floats at a time).

    Otherwise each tap's window is a strided slice of the input, zero-padded only where
    that tap reads the padding (the padded input's values, without a copy of the whole
    input: ~0.15 ms of a batch-32 CNN step)."""
    (kh, kw), (sh, sw) = size, strides
    (_, h, w, c), o = x.shape, dy.shape[3]
    oh, pt, pb = pad_before_after(h, kh, sh, 1, padding)
    ow, pl, pr = pad_before_after(w, kw, sw, 1, padding)
    hp, wp = h + pt + pb, w + pl + pr
    if (sh, sw) == (1, 1) and (kh, kw) != (1, 1):
        # `extra` zero rows below each image let every tap's range run a whole hp·wp.
        extra = kh - 1 + (kw > 1)
        xp = _pad_input(g, x, pt, pb + extra, pl, pr)
        rows = g.op("reshape", xp, i32(g, [-1, (hp + extra) * wp, c]))
        d = _pad_input(g, dy, 0, hp - oh, 0, wp - ow)
        d = g.op("reshape", d, i32(g, [-1, hp * wp, o]))
        # Per image: each tap's window is a view (SLICE does not copy) and BLAS takes
        # the image's block as it lies, so no window is ever copied; the taps' per-image
        # products are summed over the batch once, after packing.
        taps = [g.op("batch_matmul", _rows(g, rows, i * wp + j, hp * wp), d, adj_x=True)
                for i in range(kh) for j in range(kw)]
        dw = g.op("sum", g.op("pack", *taps, axis=0, values_count=len(taps)),
                  i32(g, [1]), keep_dims=False)
        return _perm(g, g.op("reshape", dw, i32(g, [kh, kw, c, o])), (3, 0, 1, 2))
    else:
        if (kh, kw, sh, sw, hp, wp) == (1, 1, 1, 1, oh, ow):
            wins = [x]
        else:
            spans = [(_span(i, pt, sh, oh, h), _span(j, pl, sw, ow, w))
                     for i in range(kh) for j in range(kw)]
            if all(rows[1] > rows[0] and cols[1] > cols[0] for rows, cols in spans):
                wins = [_window(g, x, rows, cols, (sh, sw), (oh, ow)) for rows, cols in spans]
            else:  # a tap entirely in the padding (a degenerate size): the padded input
                xp = _pad_input(g, x, pt, pb, pl, pr)
                wins = [g.op("strided_slice", xp, i32(g, [0, i, j, 0]),
                             i32(g, [0, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, 0]),
                             i32(g, [1, sh, sw, 1]), begin_mask=9, end_mask=9)
                        for i in range(kh) for j in range(kw)]
        wins = [g.op("reshape", v, i32(g, [-1, c])) for v in wins]
        d = g.op("reshape", dy, i32(g, [-1, o]))
    taps = [g.op("batch_matmul", v, d, adj_x=True) for v in wins]
    dw = taps[0] if len(taps) == 1 else g.op("pack", *taps, axis=0, values_count=len(taps))
    return _perm(g, g.op("reshape", dw, i32(g, [kh, kw, c, o])), (3, 0, 1, 2))


def _span(tap: int, before: int, stride: int, out: int, size: int) -> tuple[int, int, int]:
    """Along one axis, the outputs ``[lo, hi)`` whose tap ``tap`` reads the unpadded input
    (``before`` padding rows first), and the input row the first of them reads."""
    first = tap - before  # the input row output 0 reads
    lo = min(out, max(0, -(first // stride)))  # ceil(-first / stride)
    hi = min(out, (size - 1 - first) // stride + 1) if size - 1 - first >= 0 else 0
    return lo, max(lo, hi), first + stride * lo


def _window(g, x, rows, cols, strides: tuple[int, int], out: tuple[int, int]):
    """A strided convolution tap's input values ``[n, oh, ow, c]``, the padding's zeros
    included: the taken rows and columns of ``x`` (a strided slice), zero-padded where the
    tap reads the padding (the values of a strided slice of the padded input, without
    padding the whole input first)."""
    (y0, y1, r0), (x0, x1, c0), (sh, sw), (oh, ow) = rows, cols, strides, out
    win = g.op("strided_slice", x, i32(g, [0, r0, c0, 0]),
               i32(g, [0, r0 + (y1 - y0 - 1) * sh + 1, c0 + (x1 - x0 - 1) * sw + 1, 0]),
               i32(g, [1, sh, sw, 1]), begin_mask=9, end_mask=9)
    if (y0, y1, x0, x1) != (0, oh, 0, ow):
        win = g.op("pad", win, i32(g, [[0, 0], [y0, oh - y1], [x0, ow - x1], [0, 0]]))
    return win


def _rows(g, v, start: int, span: int):
    """Rows ``start .. start + span`` of each image of ``v`` (``[n, pixels, ch]``)."""
    if (start, span) == (0, v.shape[1]):
        return v
    return g.op("slice", v, i32(g, [0, start, 0]), i32(g, [-1, span, -1]))


def _transpose_conv_vjp(g, attrs, ins, outs, dy):
    """TRANSPOSE_CONV with filter V is the adjoint of CONV_2D with V's in/out channels
    swapped (P): its input gradient is that CONV_2D of ``dy``, and its filter gradient is
    CONV_2D's filter gradient with ``dy`` as the input and ``x`` as the output cotangent."""
    _, v, x = ins[0], ins[1], ins[2]
    if attrs.get("fused_activation_function", 0):
        raise TraceError(f"{user_frame()}: differentiate the activation separately")
    geometry = {"padding": attrs["padding"], "stride_h": attrs["stride_h"],
                "stride_w": attrs["stride_w"]}
    p = _perm(g, v, (3, 1, 2, 0))
    dx = g.op("conv_2d", dy, p, g.const(np.zeros(p.shape[0], dy.dtype)), **geometry)
    dp = _filter_grad(g, dy, x, v.shape[1:3], (attrs["stride_h"], attrs["stride_w"]),
                      attrs["padding"])
    grads = [None, _perm(g, dp, (3, 1, 2, 0)), dx]
    if len(ins) > 3:
        grads.append(None if ins[3] is None else
                     g.op("sum", dy, i32(g, [0, 1, 2]), keep_dims=False))
    return grads


def dilate(g, v, sh: int, sw: int):
    """Insert ``s - 1`` zeros after every row/column: ``out[oh * s] = v[oh]``. Built from
    reshape and pad, batch-agnostic (batch written as -1)."""
    _, h, w, c = v.shape
    if sh > 1:  # rows: [N, H, 1, W*C] padded to [N, H, sh, W*C] (LiteRT's PAD takes ≤ 5-D)
        v = g.op("reshape", v, i32(g, [-1, h, 1, w * c]))
        v = g.op("pad", v, i32(g, [[0, 0], [0, 0], [0, sh - 1], [0, 0]]))
        h *= sh
        v = g.op("reshape", v, i32(g, [-1, h, w, c]))
    if sw > 1:  # columns: [N, H, W, 1, C] padded to [N, H, W, sw, C]
        v = g.op("reshape", v, i32(g, [-1, h, w, 1, c]))
        v = g.op("pad", v, i32(g, [[0, 0], [0, 0], [0, 0], [0, sw - 1], [0, 0]]))
        v = g.op("reshape", v, i32(g, [-1, h, w * sw, c]))
    return v


def fit(g, v, begin: tuple[int, int], size: tuple[int, int]):
    """Rows/columns ``begin .. begin + size`` of ``v``, zero-padded where ``v`` ends."""
    h, w = v.shape[1:3]
    take_h, take_w = min(size[0], h - begin[0]), min(size[1], w - begin[1])
    if (begin, (take_h, take_w)) != ((0, 0), (h, w)):
        v = g.op("slice", v, i32(g, [0, begin[0], begin[1], 0]), i32(g, [-1, take_h, take_w, -1]))
    if (take_h, take_w) != tuple(size):
        v = g.op("pad", v, i32(g, [[0, 0], [0, size[0] - take_h], [0, size[1] - take_w], [0, 0]]))
    return v


def depthwise_vjp(g, attrs, ins, outs, dy):
    x, w = ins[0], ins[1]
    _plain_convolution(attrs)
    _, h, wd, c = x.shape
    _, kh, kw, cm = w.shape
    m = cm // c
    sh, sw, padding = attrs["stride_h"], attrs["stride_w"], attrs["padding"]
    oh, pt, pb = pad_before_after(h, kh, sh, 1, padding)
    ow, pl, pr = pad_before_after(wd, kw, sw, 1, padding)
    # dx: padded-input gradient = full correlation of dilated dy with the reversed filter.
    # At stride 1 with SAME padding and odd filter sizes the rows and columns dx needs of
    # it are exactly a SAME correlation of dy: no padding, nothing computed to be cut.
    same = (sh, sw) == (1, 1) and padding == SAME and kh % 2 == kw % 2 == 1
    if same:
        d = dy
    else:
        d = dilate(g, dy, sh, sw)
        d = g.op("pad", d, i32(g, [[0, 0], [kh - 1, kh - 1], [kw - 1, kw - 1], [0, 0]]))
    wr = g.op("reverse_v2", w, i32(g, [1, 2]))
    full = g.op("depthwise_conv_2d", d, wr, g.const(np.zeros(cm, dy.dtype)),
                padding=SAME if same else VALID, stride_h=1, stride_w=1, depth_multiplier=1)
    if m > 1:
        full = g.op("sum", g.op("reshape", full, i32(g, [-1, *full.shape[1:3], c, m])),
                    i32(g, [4]), keep_dims=False)
    dx = full if same else fit(g, full, (pt, pl), (h, wd))
    # dw: per tap, the input window it saw times the output gradient, summed.
    xp = _pad_input(g, x, pt, pb, pl, pr)
    dy5 = dy if m == 1 else g.op("reshape", dy, i32(g, [-1, oh, ow, c, m]))
    taps = []
    for i in range(kh):
        for j in range(kw):
            win = g.op("strided_slice", xp, i32(g, [0, i, j, 0]),
                       i32(g, [0, i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1, 0]),
                       i32(g, [1, sh, sw, 1]), begin_mask=9, end_mask=9)
            if m > 1:
                win = g.op("reshape", win, i32(g, [-1, oh, ow, c, 1]))
            tap = g.op("sum", win * dy5, i32(g, [0, 1, 2]), keep_dims=False)
            taps.append(tap if m == 1 else g.op("reshape", tap, i32(g, [cm])))
    dw = g.op("reshape", g.op("pack", *taps, axis=0, values_count=len(taps)),
              i32(g, [1, kh, kw, cm]))
    return [dx, dw, *_bias_grad(g, ins, dy)]


OPS = [
    OpDef("conv_2d", conv_2d, "Conv2DOptions", prepare=_prepare,
          shape=_conv_2d_shape, vjp=_conv_2d_vjp,
          integer=compiled_int8.gemm(gemm_variant(conv_2d, out_axis=0, windowed=True)),
          hybrid=hybrid_conv(conv_2d), weight_axis=0, shape_inputs=(), fresh_output=True),
    OpDef("depthwise_conv_2d", depthwise_conv_2d, "DepthwiseConv2DOptions",
          prepare=_prepare, shape=_depthwise_shape, vjp=depthwise_vjp,
          integer=compiled_int8.gemm(gemm_variant(exact_depthwise(depthwise_conv_2d),
                                                  out_axis=3, windowed=True)),
          hybrid=hybrid_conv(depthwise_conv_2d, out_axis=3), weight_axis=3, shape_inputs=(),
          fresh_output=True),
    OpDef("transpose_conv", transpose_conv, "TransposeConvOptions",
          prepare=compiled.prepare_transpose, shape=_transpose_conv_shape,
          integer=gemm_variant(transpose_conv, x_pos=2, w_pos=1, out_axis=0, xnnpack=False),
          vjp=_transpose_conv_vjp, hybrid=hybrid_conv(transpose_conv, x_pos=2, w_pos=1),
          shape_inputs=(0,)),
]
