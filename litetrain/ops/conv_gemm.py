"""CONV_2D's float forward without groups: chunks of output rows, each one GEMM.

Each chunk (:func:`chunks`: whole images together, or rows of one image) gathers the
patch rows of its outputs (im2col; none for a 1×1 stride-1 convolution, whose input rows
are its patches) from only the input rows they read, multiplies them by the filter in one
GEMM written into the output, then applies bias and clamping activation to that block
while it is in cache. The patch matrix of a whole batch, and a padded copy of the input,
never exist. The filter operand is the node's prepared C-order ``[kh * kw * in, out]``
(:func:`.compiled.gemm_filter`). With the ``[fast]`` extra the patches are gathered and
the epilogue applied by compiled kernels: the same patch values, the same GEMM calls and
the same elementwise operations, so the same bits. Where :mod:`.conv_exact` has proven,
for the node's GEMM shapes and filter layout, that BLAS sums in the order ``fast.gemm``
computes, the whole convolution is instead one compiled call (patches, GEMM, epilogue;
the output written once): :func:`_exact_conv` (for few input channels reading the
patches in place: :func:`direct_read`), and :func:`pointwise_conv` at batch 1 — for a
constant filter, and for one read from a variable (training), whose transposed view is
proven in that layout (:func:`blas_order_plan`).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from . import compiled, conv_exact
from .activations import hard_swish_in_place
from .common import NONE, RELU, RELU6, RELU_N1_TO_1, fused, pad_before_after
from .windows import padded


def activate(out: np.ndarray, code: int) -> np.ndarray:
    """``fused`` on a fresh result, clamping in place (same bits, no extra array)."""
    if code == RELU:
        return np.maximum(out, 0, out=out)
    if code in (RELU6, RELU_N1_TO_1):
        return np.clip(out, -1 if code == RELU_N1_TO_1 else 0, 6 if code == RELU6 else 1,
                       out=out)
    return fused(out, code)


# What one chunk of an ungrouped CONV_2D may hold at once (its patch rows and their
# outputs): the patch matrix of a whole batch never exists, and the chunk's GEMM result
# is still in cache when bias and activation are applied.
CHUNK_BYTES = 1 << 19


def chunks(n: int, oh: int, lines: int):
    """``(b0, b1, y0, y1)``: the output ``[b0:b1, y0:y1]`` of each chunk of at most
    ``lines`` output rows (whole images together, or rows of one image): each a
    contiguous block of a C-order ``[n, oh, ow, o]`` array."""
    if lines >= oh:
        step = lines // oh
        for b0 in range(0, n, step):
            yield b0, min(n, b0 + step), 0, oh
    else:
        for b0 in range(n):
            for y0 in range(0, oh, lines):
                yield b0, b0 + 1, y0, min(oh, y0 + lines)


def chunked_conv(attrs, x, w, b, fast: bool, hard_swish=None, rescale=None, scale=None):
    """Ungrouped CONV_2D chunk by chunk of output rows (:func:`chunks`): each chunk's
    patch rows (none for a 1×1 stride-1 convolution: the input rows are its patches)
    times the filter in one GEMM written into the output, then bias and clamping
    activation on that block. ``fast``: the patches gathered and the epilogue applied by
    compiled kernels (:mod:`.compiled`) — same patch values, same GEMM calls, same
    elementwise operations, so the same bits. ``hard_swish``: the settings of a
    HARD_SWISH node fused after the convolution (:mod:`litetrain.runtime.epilogue`),
    applied in place, in the compiled epilogue when it can be. ``rescale``: float32
    ``(scale, shift)`` of an input rescaling fused before it (:mod:`litetrain.runtime.
    prologue`): the patches of ``x * scale + shift``; only with ``fast`` and a window
    that needs patches (not 1×1 stride 1). ``scale``: the one-element float32 array of
    a MUL fused after the convolution (:mod:`litetrain.runtime.epilogue`)."""
    n, h, wd, c = x.shape
    o, kh, kw, _ = w.shape
    filt = compiled.gemm_filter(attrs, w)
    sh, sw = attrs["stride_h"], attrs["stride_w"]
    pointwise = kh == kw == sh == sw == 1
    if rescale is not None and (pointwise or not fast):
        raise ValueError("an input rescaling is fused only into compiled patch gathering")
    dtype = x.dtype if x.dtype is w.dtype else np.result_type(x, w)
    if pointwise and one_chunk(x, o, dtype):
        # One chunk (most convolutions at batch 1): the fewest NumPy calls.
        if fast:
            out = _exact_pointwise(attrs, x, filt, b, hard_swish, scale)
            if out is not None:
                return out
        out = (x.reshape(-1, c) @ filt).reshape(n, h, wd, o)
        if fast:
            return compiled.bias_activation(attrs, out, b, hard_swish, scale)
        if b is not None:
            out += b
        return then(activate(out, attrs.get("fused_activation_function", 0)), hard_swish,
                    scale)
    dh, dw = attrs.get("dilation_h_factor", 1), attrs.get("dilation_w_factor", 1)
    oh, pt, _ = pad_before_after(h, kh, sh, dh, attrs["padding"])
    ow, pl, pr = pad_before_after(wd, kw, sw, dw, attrs["padding"])
    out = np.empty((n, oh, ow, o), dtype)
    k = kh * kw * c
    lines = max(1, CHUNK_BYTES // (ow * (k + o) * dtype.itemsize))
    if fast:
        finish = compiled.conv_epilogue(attrs, o, b, hard_swish, scale)
        if _exact_conv(attrs, x, filt, out, finish, (kh, kw, sh, sw, dh, dw, pt, pl, ow),
                       lines, rescale):
            return finish.rest(out)
        _compiled_chunks(attrs, np.ascontiguousarray(x), filt, out, finish,
                         (kh, kw, sh, sw, dh, dw, pt, pl, ow), lines, rescale)
        return finish.rest(out)
    finish = _NumpyEpilogue(b, attrs.get("fused_activation_function", 0))
    for b0, b1, y0, y1 in chunks(n, oh, lines):
        block = out[b0:b1, y0:y1]
        if pointwise:
            patches = x[b0:b1, y0:y1].reshape(-1, c)
        else:
            patches = _patch_rows(x, (kh, kw, sh, sw, dh, dw, pt, pl, pr, ow),
                                  (b0, b1, y0, y1))
        np.matmul(patches, filt, out=block.reshape(-1, o))
        finish.block(block)
    return then(finish.rest(out), hard_swish, scale)


def _compiled_chunks(s, x: np.ndarray, filt: np.ndarray, out: np.ndarray,
                     finish: compiled.ConvEpilogue, geometry: tuple[int, ...], lines: int,
                     rescale) -> None:
    """:func:`chunked_conv`'s loop with compiled kernels, little Python per chunk: a
    chunk's patch rows and output rows are row ranges of 2-D views (its patches those of
    the C-order input for a 1×1 stride-1 convolution, else gathered into one scratch
    array by ``im2col``), the same GEMM calls on the same arrays as the NumPy loop, then
    the epilogue kernel on the block, all called directly."""
    n, oh, ow, o = out.shape
    kh, kw, sh, sw = geometry[:4]
    out2d = out.reshape(-1, o)
    module = s.loader.module
    pointwise = kh == kw == sh == sw == 1
    if pointwise:
        src = x.reshape(-1, x.shape[3])
    else:
        scratch = np.empty((min(n * oh, lines) * ow, kh * kw * x.shape[3]), np.float32)
        gather, extra = ((module.im2col, ()) if rescale is None else
                         (module.im2col_affine, tuple(rescale)))
    epilogue = finish.pass_
    args = (finish.bias, finish.has_bias, finish.lo, finish.hi, *finish.extra)
    for b0, b1, y0, y1 in chunks(n, oh, lines):
        r0, r1 = (b0 * oh + y0) * ow, ((b1 - 1) * oh + y1) * ow  # a contiguous block
        if pointwise:
            patches = src[r0:r1]
        else:
            patches = scratch[:r1 - r0]
            gather(x, patches, b0, b1, y0, y1, *geometry, *extra)
        block = out2d[r0:r1]
        np.matmul(patches, filt, out=block)
        epilogue(block, *args)


def _exact_conv(s, x: np.ndarray, filt: np.ndarray, out: np.ndarray,
                finish: compiled.ConvEpilogue, geometry: tuple[int, ...], lines: int,
                rescale) -> bool:
    """:func:`chunked_conv`'s compiled loop as one ``fast.gemm`` call — patches, GEMM in
    BLAS's order and the epilogue fused, the output written once — when
    :mod:`.conv_exact` has proven that order for every GEMM shape of that loop (its
    chunks' row counts) and the node's constant filter; False (nothing done) otherwise,
    or when the epilogue leaves more than a fused HARD_SWISH or MUL to NumPy."""
    verdict = blas_order_plan(s, x, filt, finish, lambda: {
        (b1 - b0) * (y1 - y0) * geometry[-1] for b0, b1, y0, y1 in chunks(
            out.shape[0], out.shape[1], lines)})
    if verdict is None:
        return False
    module, wpack, bpack, mode, k = verdict
    out2d = out.reshape(-1, out.shape[3])
    xc = np.ascontiguousarray(x)
    if geometry[:4] == (1, 1, 1, 1):
        module.pointwise(xc.reshape(-1, x.shape[3]), wpack, out2d, bpack, finish.lo,
                         finish.hi, mode, k)
    else:
        affine = rescale is not None
        mul, add = rescale if affine else (np.float32(1), np.float32(0))
        kernel = module.conv_2d_direct if direct_read(s, x, out, geometry) else module.conv_2d
        kernel(xc, wpack, out2d, bpack, finish.lo, finish.hi, mode, k, *geometry, affine,
               mul, add)
    return True


def _exact_pointwise(s, x: np.ndarray, filt: np.ndarray, b, hard_swish, scale
                     ) -> np.ndarray | None:
    """:func:`chunked_conv`'s one-chunk 1×1 stride-1 case (``x.reshape(-1, c) @ filt``,
    then the epilogue) as one ``fast.gemm.pointwise`` call where :func:`blas_order_plan`
    adopts it (a filter read from a variable at batch 1: a constant one takes
    :func:`pointwise_conv` first); else ``None``."""
    n, h, wd, c = x.shape
    o = filt.shape[1]
    finish = compiled.conv_epilogue(s, o, b, hard_swish, scale)
    if (finish.hard_swish is not None or finish.scale is not None
            or not x.flags.c_contiguous):
        return None
    verdict = blas_order_plan(s, x, filt, finish, lambda: {n * h * wd})
    if verdict is None:
        return None
    module, wpack, bpack, mode, k = verdict
    out = np.empty((n, h, wd, o), np.float32)
    module.pointwise(x.reshape(-1, c), wpack, out.reshape(-1, o),
                     bpack, finish.lo, finish.hi, mode, k)
    return finish.rest(out)


def direct_read(s, x: np.ndarray, out: np.ndarray, geometry: tuple[int, ...]) -> bool:
    """Whether this node's convolution of an input of ``x``'s shape reads its patches in
    place (few input channels, the kernel's bits confirmed on this geometry: see
    :mod:`.conv_exact`); decided once per input shape."""
    verdict = s.direct.get(x.shape)
    if verdict is None:
        verdict = s.direct[x.shape] = (conv_exact.direct(x.shape[3]) and conv_exact.
                                       direct_proven(x.shape[1:], out.shape[1],
                                                     out.shape[3], geometry))
    return verdict


def blas_order_plan(s, x: np.ndarray, filt: np.ndarray, finish: compiled.ConvEpilogue, rows
             ) -> tuple | None:
    """(``fast.gemm`` module, packed filter, packed bias, epilogue mode, its scale) when
    this node's convolution of an input of ``x``'s shape runs in BLAS's order: the
    node's constant filter, or for a node without one (a filter read from a variable)
    the transposed view :func:`.compiled.gemm_filter` gives, an epilogue the kernel
    applies itself, the kernels loaded and the GEMM shapes (``rows()``: the NumPy loop's
    row counts) proven for that operand's layout; else ``None``.

    A constant filter is packed once; any other is packed on every call (a few µs) and
    its bias too, so nothing of one call's arrays is kept for the next."""
    if s.__class__ is not compiled.Compiled or x.dtype != np.float32:
        return None
    constant = filt is s.gemm and filt is not None
    if not (constant or _transposed_view(s, filt)) or finish.act != NONE \
            or finish.late_bias is not None:
        return None
    module = conv_exact.module()
    if module is None:
        return None
    key = (x.shape, conv_exact.blas_threads()) if constant else \
        (x.shape, conv_exact.blas_threads(), filt.shape)
    verdict = s.exact.get(key)
    if verdict is None:
        counts = rows()
        verdict = s.exact[key] = (conv_exact.faster(counts)
                                  and conv_exact.proven(counts, *filt.shape,
                                                        transposed=not constant))
    if not verdict:
        return None
    bias = finish.bias if finish.has_bias else None
    if constant:
        if s.wpack is None:
            s.wpack = module.pack(filt)
        wpack, last = s.wpack, s.last_bpack
        if last is None or last[0] is not bias:
            last = s.last_bpack = (bias, module.pack_bias(bias, filt.shape[1]))
        bpack = last[1]
    else:
        wpack = module.pack(filt)
        bpack = module.pack_bias(bias, filt.shape[1])
    mode, k = module.PLAIN, np.float32(1)
    if finish.pass_ is finish.module.bias_activation_hard_swish:
        mode = module.HARD_SWISH
    elif finish.pass_ is finish.module.bias_activation_scale:
        mode, k = module.SCALE, finish.extra[0]
    return module, wpack, bpack, mode, k


def _transposed_view(s, filt) -> bool:
    """``filt`` is what :func:`.compiled.gemm_filter` passes for a node without a
    constant filter: the transposed view ``[k, o]`` of a C-order float32 ``[o, k]``
    (the layout :func:`.conv_exact.proven` checks with ``transposed``)."""
    return (s.filter is None and filt.__class__ is np.ndarray and filt.ndim == 2
            and filt.dtype == np.float32
            and filt.strides == (4, 4 * filt.shape[0]))


def then(out: np.ndarray, hard_swish, scale=None) -> np.ndarray:
    """``out`` with a fused HARD_SWISH (that node's settings; ``None``: none), then a
    fused MUL by the one-element array ``scale``, applied in place."""
    if hard_swish is not None:
        out = hard_swish_in_place(hard_swish, out)
    return out if scale is None else np.multiply(out, scale, out=out)


def pointwise_conv(s, x, w, b, hard_swish=None, scale=None) -> np.ndarray | None:
    """CONV_2D's result when it is :func:`chunked_conv`'s one-chunk 1×1 stride-1 case
    (most convolutions at batch 1) on a node prepared with compiled kernels, loaded, whose
    epilogue leaves nothing to NumPy; else ``None`` (the general path then runs).

    The same calls as that path — ``x.reshape(-1, c) @ gemm``, then the epilogue kernel
    on the result — without redoing per call what the node's input shape, bias and fused
    HARD_SWISH decide: that is worked out once and kept for the last ones seen."""
    if x.__class__ is not np.ndarray or x.dtype != np.float32 or w is not s.filter:
        return None
    p = s.pointwise
    if (p is None or p[0] != x.shape or p[1] is not b or p[2] is not hard_swish
            or p[3] is not scale):
        if s.loader is None or s.loader.module is None:
            return None  # (the general path's check starts loading them)
        p = s.pointwise = (x.shape, b, hard_swish, scale,
                           *pointwise_plan(s, x, b, hard_swish, scale))
    kernel, args, rows, shape = p[4:8]
    if kernel is None:
        return None
    if p[9] < 0 and conv_exact.module() is not None:
        s.pointwise = None  # the BLAS-order kernels are there now: plan again
        return pointwise_conv(s, x, w, b, hard_swish, scale)
    if p[8]:  # in BLAS's order, epilogue fused (conv_exact): one compiled call
        if p[9] != conv_exact.blas_threads():
            s.pointwise = None
            return None
        out = np.empty(shape, np.float32)
        kernel(x.reshape(rows), args[0], out.reshape(rows[0], shape[3]), *args[1:])
        return out
    out = x.reshape(rows) @ s.gemm
    kernel(out, *args)
    return out.reshape(shape)


def pointwise_plan(s, x: np.ndarray, b, hard_swish, scale) -> tuple:
    """What :func:`pointwise_conv` does for this input shape, bias and fused HARD_SWISH:
    (kernel, its arguments after the output, the input's GEMM shape, the output's shape,
    whether the kernel is the whole convolution in BLAS's order (``fast.gemm.pointwise``,
    called with the input rows, its first argument, the output, the rest; else the
    epilogue kernel on the BLAS result), the BLAS thread count that was proven at), or
    ``(None,) * 6`` when the general path must run."""
    none = (None,) * 6
    if s.gemm is None or x.ndim != 4:
        return none
    o, kh, kw, ci = s.filter.shape
    if ((kh, kw, s["stride_h"], s["stride_w"], x.shape[3]) != (1, 1, 1, 1, ci)
            or not one_chunk(x, o, np.float32)):
        return none
    e = compiled.conv_epilogue(s, o, b, hard_swish, scale)
    if (e.act != NONE or e.late_bias is not None or e.hard_swish is not None
            or e.scale is not None):
        return none
    n, h, wd, c = x.shape
    rows, shape = (n * h * wd, c), (n, h, wd, o)
    exact = blas_order_plan(s, x, s.gemm, e, lambda: {rows[0]})
    if exact is not None:
        module, wpack, bpack, mode, k = exact
        return (module.pointwise, (wpack, bpack, e.lo, e.hi, mode, k), rows, shape, True,
                conv_exact.blas_threads())
    # -1: the BLAS-order kernels were not loaded yet (asked again on a later call)
    retry = -1 if conv_exact.module() is None else 0
    return (e.pass_, (e.bias, e.has_bias, e.lo, e.hi, *e.extra), rows, shape, False, retry)


def one_chunk(x: np.ndarray, o: int, dtype) -> bool:
    """A 1×1 stride-1 convolution of ``x`` to ``o`` channels runs as one chunk."""
    n, h, wd, c = x.shape
    return n * h * wd * (c + o) * np.dtype(dtype).itemsize <= CHUNK_BYTES


def _patch_rows(x, geometry, span) -> np.ndarray:
    """The im2col rows ``[rows, kh * kw * c]`` of the outputs ``[b0:b1, y0:y1]``: one copy
    of a strided view of the input rows they read, zero-padded (a copy of those rows
    only when there is padding)."""
    kh, kw, sh, sw, dh, dw, pt, pl, pr, ow = geometry
    b0, b1, y0, y1 = span
    h, c = x.shape[1], x.shape[3]
    top, bottom = y0 * sh - pt, (y1 - 1) * sh + (kh - 1) * dh - pt + 1
    rows = padded(x[b0:b1, max(top, 0):min(bottom, h)], (max(0, -top), max(0, bottom - h)),
                  (pl, pr))
    s0, s1, s2, s3 = rows.strides
    view = as_strided(rows, (b1 - b0, y1 - y0, ow, kh, kw, c),
                      (s0, s1 * sh, s2 * sw, s1 * dh, s2 * dw, s3), writeable=False)
    return view.copy().reshape(-1, kh * kw * c)


class _NumpyEpilogue:
    """Bias and fused activation as the plain kernel applies them, a block at a time when
    that gives the same values (a 1-D or scalar bias, a clamping activation), else on
    the whole output at the end."""

    def __init__(self, b, act: int):
        self.b, self.act = b, act
        self.blockwise = b is None or np.ndim(b) <= 1
        self.clamp = act in (NONE, RELU, RELU6, RELU_N1_TO_1)

    def block(self, block: np.ndarray) -> None:
        if not self.blockwise:
            return
        if self.b is not None:
            block += self.b
        if self.clamp:
            activate(block, self.act)

    def rest(self, out: np.ndarray) -> np.ndarray:
        if not self.blockwise:
            if self.b is not None:
                out += self.b
            return activate(out, self.act)
        return out if self.clamp else fused(out, self.act)
