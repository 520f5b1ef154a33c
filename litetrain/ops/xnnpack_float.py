"""XNNPACK's float operation order for CONV_2D, DEPTHWISE_CONV_2D, HARD_SWISH and MEAN
over height and width, chosen at prepare under the default resolver (``AUTO``/``BUILTIN``)
for the float nodes of a graph that also has hybrid (dynamic-range) nodes.

Why only there: TensorFlow's default interpreter hands float nodes to XNNPACK, whose
kernels fuse multiply-adds; litetrain's BLAS float path is within an ulp or two of it,
which is harmless for a float model but not before a hybrid kernel, which quantizes its
float input on the fly: one ulp can flip one rounding and move a whole-model output by
1e-3 (MobileNetV3Small dynamic-range at batch 4: 7.4e-3 before this module). Float models
keep the fast BLAS path. ``NodeInfo.hybrid_graph`` (set by the plan) says which graphs.

What TF Lite 2.18's default interpreter computes on x86-64 with AVX-512F (XNNPACK's
``src/configs/*-config.c`` pick the kernels; tests/fixtures/tf_quantized/xnnpack_order,
one TF-made model per op and shape, checks every bit):

* CONV_2D (``f32_igemm``/``f32_gemm`` 7x16/1x16 ``avx512f_broadcast``): each output starts
  from its bias (+0.0 without one) and adds the taps with one fused multiply-add each, in
  the indirection buffer's order ``(ky, kx)`` row by row, each tap's input channels in
  order; then the fused activation as a clamp.
* DEPTHWISE_CONV_2D (``f32_dwconv`` ``9p16c``/``5f5m5l32c16s1r`` …, one accumulator): the
  same from the bias, but the dwconv indirection buffer is column-major over the window:
  taps ``(ky, kx)`` with ``ky`` varying fastest. Multipass kernels keep the partial sums in
  float32, which changes nothing. With a depth multiplier above 1 XNNPACK runs a grouped
  convolution instead (igemm): taps row by row, as CONV_2D.
* HARD_SWISH (``f32_vhswish avx512f``): ``min(max(fma(x, 0x1.555556p-3, 0.5), 0), 1) * x``.
* MEAN over height and width (the delegate's global average pooling, ``f32_gavgpool
  7p7x``/``7x`` SSE): the pixels summed seven at a time, the first block as
  ``((p0 + p1) + p6) + ((p2 + p3) + (p4 + p5))``, each later one as
  ``((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + acc))`` (missing pixels read zeros),
  times ``1.0f / n``, then clamped as ``max(mean, -inf)``, which makes a NaN mean -inf.

A fused multiply-add rounds ``a * b + c`` once. NumPy has none: :func:`fma` forms the
product exactly in float64 (24-bit significands: 48 bits), adds ``c`` with TwoSum
(the float64 sum and its exact error), rounds that sum to odd (the error's sign picks the
neighbour with an odd last bit when the sum is inexact) and then to float32: rounding to
odd at 53 bits and then to nearest at 24 is one correct rounding (Boldo & Melquiond),
where a plain float64 sum could round twice. tests/quantized/test_xnnpack_order.py checks
it against exact rational arithmetic. The ``[fast]`` extra's compiled forms
(:mod:`.fast.xnnpack`) call LLVM's ``llvm.fma.f32``, also one correct rounding: the same
bits.

With the compiled kernels, a CONV_2D of few input channels (a stem) reads its patches in
place (``fast.xnnpack.conv_direct``: :meth:`XnnOrder.reads_in_place`), and takes the
model's input rescaling and its HARD_SWISH into the same pass when the plan fuses them
(:mod:`litetrain.runtime.prologue`, :mod:`litetrain.runtime.epilogue`). Without a bias
its sums start from +0.0, as XNNPACK's zeroed packed bias: that is the NumPy form's
start too, so no identity of signed zeros is relied on there; the fused rescaling's
missing MUL or ADD is a MUL by 1.0 or an ADD of -0.0, which give the one node's bits.

Nodes XNNPACK would not take (a filter or bias that is not constant, grouped
convolutions, other fused activations, MEAN over other axes) are left to the other
kernels.
"""

from __future__ import annotations

import numpy as np

from . import conv_exact
from .common import RELU, RELU6, RELU_N1_TO_1, axes, pad_before_after
from .fast import WithKernels, kernels
from .registry import NodeInfo
from .resolver import OpResolverType
from .windows import windows

_F32 = np.float32
_SIXTH = _F32(float.fromhex("0x1.555556p-3"))
_HALF = _F32(0.5)
_ONE, _MINUS_ZERO = _F32(1.0), _F32(-0.0)
_CLAMPS = {0: (-np.inf, np.inf), RELU: (0, np.inf), RELU6: (0, 6), RELU_N1_TO_1: (-1, 1)}


class XnnOrder(WithKernels):
    """A node's settings when it runs in XNNPACK's order: the node's attrs plus, when the
    ``[fast]`` extra is there, its compiled kernels' loader (``None`` otherwise), and what
    the compiled kernels take, made once: the filter in their layout and the bias (for
    the constant filter and bias prepare saw; others are laid out when they come) and,
    per input height and width, the geometry."""

    def __init__(self, attrs, loader):
        dict.__init__(self, attrs)
        self.loader = loader
        self.runs = 0
        self.laid_out: tuple | None = None  # (w, b, filter, bias) of the last call
        self.geometries: dict[tuple[int, int], tuple[int, ...]] = {}
        self.direct: dict[tuple[int, ...], bool] = {}  # per input shape: conv_direct
        lo, hi = _CLAMPS.get(attrs.get("fused_activation_function", 0), _CLAMPS[0])
        self.lo, self.hi = _F32(lo), _F32(hi)

    def compiled(self):
        """The compiled kernels once loaded (the node's second run starts loading)."""
        return None if self.loader is None else self.ready()

    def layout(self, w: np.ndarray, b: np.ndarray | None, depthwise: bool):
        """``(filter, bias)`` as the compiled kernels take them: CONV_2D's filter packed
        per sixteen output channels as ``[ceil(o / 16), kh * kw * ci * 16]`` and its bias
        padded to as many lanes; DEPTHWISE_CONV_2D's filter as ``[kh, kw, c]`` and its
        bias as ``[c]`` (zeros without one)."""
        last = self.laid_out
        if last is None or last[0] is not w or last[1] is not b:
            o = w.shape[3] if depthwise else w.shape[0]
            bias = np.zeros(o, _F32)  # copies: the compiled kernels take writable arrays
            if b is not None:
                bias[:] = b
            if depthwise:
                filt = np.array(w[0], _F32, order="C")
            else:  # per sixteen output channels: [patch value, lane], zeros past o
                tiles = -(-o // 16)
                rows = w.transpose(1, 2, 3, 0).reshape(-1, o)
                filt = np.zeros((tiles, rows.shape[0], 16), _F32)
                padded = np.zeros((rows.shape[0], tiles * 16), _F32)
                padded[:, :o] = rows
                filt[...] = padded.reshape(rows.shape[0], tiles, 16).transpose(1, 0, 2)
                filt = filt.reshape(tiles, -1)
                bias = np.concatenate([bias, np.zeros(tiles * 16 - o, _F32)])
            self.laid_out = last = (w, b, filt, bias)
        return last[2], last[3]

    def geometry(self, x: np.ndarray, kh: int, kw: int) -> tuple[int, ...]:
        """``(kh, kw, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left,
        out_h, out_w)`` for inputs of ``x``'s height and width."""
        key = x.shape[1], x.shape[2], kh, kw
        g = self.geometries.get(key)
        if g is None:
            sh, sw = self["stride_h"], self["stride_w"]
            dh, dw = self.get("dilation_h_factor", 1), self.get("dilation_w_factor", 1)
            oh, pt, _ = pad_before_after(x.shape[1], kh, sh, dh, self["padding"])
            ow, pl, _ = pad_before_after(x.shape[2], kw, sw, dw, self["padding"])
            g = self.geometries[key] = (kh, kw, sh, sw, dh, dw, pt, pl, oh, ow)
        return g


    def reads_in_place(self, jit, x: np.ndarray, o: int, geometry: tuple[int, ...]) -> bool:
        """Whether this CONV_2D runs ``jit.conv_direct`` on inputs of ``x``'s shape: few
        input channels (:func:`.conv_exact.direct`) and its bits proven on the geometry
        (:func:`.conv_exact.xnnpack_direct_proven`); decided once per input shape."""
        verdict = self.direct.get(x.shape)
        if verdict is None:
            verdict = self.direct[x.shape] = bool(
                conv_exact.direct(x.shape[3]) and conv_exact.xnnpack_direct_proven(
                    jit, x.shape[1:], o, geometry, self.lo, self.hi))
        return verdict


def prepare(info: NodeInfo) -> XnnOrder | None:
    """``XnnOrder`` settings for a float32 node XNNPACK would take, in a hybrid graph under
    ``AUTO``/``BUILTIN``; ``None`` otherwise."""
    if not info.hybrid_graph or info.resolver not in (OpResolverType.AUTO,
                                                      OpResolverType.BUILTIN):
        return None
    x = info.inputs[0] if info.inputs else None
    if x is None or x.dtype != np.float32 or x.shape is None or len(x.shape) != 4:
        return None
    if not _delegated(info):
        return None
    return XnnOrder(info.attrs, kernels("xnnpack"))


def _delegated(info: NodeInfo) -> bool:
    """What TF Lite's XNNPACK delegate takes of these ops (float32 throughout)."""
    ins = info.inputs
    if info.op == "hard_swish":
        return True
    if info.op not in ("conv_2d", "depthwise_conv_2d", "mean"):
        return False
    if info.op == "mean":
        a = ins[1] if len(ins) > 1 else None
        return (a is not None and a.value is not None
                and {int(v) % 4 for v in np.asarray(a.value).reshape(-1)} == {1, 2}
                and np.asarray(a.value).size == 2)
    w = ins[1] if len(ins) > 1 else None
    b = ins[2] if len(ins) > 2 else None
    if (w is None or w.value is None or w.dtype != np.float32 or w.shape is None
            or (b is not None and (b.value is None or b.dtype != np.float32))
            or info.attrs.get("fused_activation_function", 0) not in _CLAMPS):
        return False
    if info.op == "conv_2d":
        return info.inputs[0].shape[3] in (-1, w.shape[3])  # not grouped
    return True


def applies(settings, *arrays) -> bool:
    """Run-time check: prepared so, and every given array a float32 ndarray."""
    return settings.__class__ is XnnOrder and all(
        a is None or (a.__class__ is np.ndarray and a.dtype == np.float32) for a in arrays)


def fma(a, b, c) -> np.ndarray:
    """``a * b + c`` rounded once to float32 (float32 operands, broadcast)."""
    p = np.multiply(np.asarray(a, _F32), np.asarray(b, _F32), dtype=np.float64)
    acc = np.array(np.broadcast_to(np.asarray(c, _F32), np.broadcast_shapes(p.shape,
                                                                             np.shape(c))))
    if p.shape != acc.shape:
        p = np.broadcast_to(p, acc.shape)
    _add_product(acc, p)
    return acc


# A float64 sum rounds to float32 as the exact sum would unless it lands exactly on a
# float32 midpoint (rounding is monotonic and midpoints are float64 numbers): low 29
# significand bits 1 followed by 28 zeros, for float32's normal range; sums below 2**-125
# (float32's subnormals, where midpoints sit elsewhere) take the exact path too.
_LOW29, _MIDPOINT = np.int64((1 << 29) - 1), np.int64(1 << 28)
_MAGNITUDE = np.int64(0x7FFF_FFFF_FFFF_FFFF)
_TINY = np.float64(2.0 ** -125).view(np.int64)


def _add_product(acc: np.ndarray, p: np.ndarray) -> None:
    """``acc = round32(p + acc)`` in place: ``p`` exact float64 products (broadcast to
    ``acc``), ``acc`` a C-contiguous float32 array."""
    p = np.broadcast_to(p, acc.shape).reshape(-1)
    acc = acc.reshape(-1)  # a view: 1-D, so every step below writes arrays, not scalars
    s = np.add(p, acc, dtype=np.float64)
    bits = s.view(np.int64)
    hazard = (bits & _LOW29) == _MIDPOINT
    magnitude = bits & _MAGNITUDE
    magnitude -= 1  # zero sums are exact: they wrap to the top
    hazard |= magnitude.view(np.uint64) < np.uint64(_TINY - 1)
    if hazard.any():
        k = np.flatnonzero(hazard)
        s[k] = _rounded_to_odd(p[k], acc[k].astype(np.float64), s[k])
    np.copyto(acc, s, casting="same_kind")


def _rounded_to_odd(p: np.ndarray, c: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``p + c`` rounded to odd (1-D float64 arrays, ``s`` their rounded sum): the exact
    sum's neighbour with an odd last bit when it is not a float64 (TwoSum gives the
    error), which then rounds to float32 as the exact sum does."""
    bb = s - p
    e = (p - (s - bb)) + (c - bb)  # p + c == s + e exactly
    bits = s.view(np.int64)
    negative = s < 0
    # +1 on the bits moves away from zero: where the error has the sum's sign.
    step = np.not_equal(e > 0, negative).astype(np.int64)
    step -= np.not_equal(e < 0, negative)
    step[(e == 0) | np.isnan(e) | ((bits & 1) == 1)] = 0  # exact, infinite or odd
    bits += step
    return s


def _clamp(out: np.ndarray, code: int) -> np.ndarray:
    """The fused activation as XNNPACK's convolutions clamp: ``max(lo, acc)`` then
    ``min(hi, acc)``, which keep the accumulator when it is NaN or a zero equal to the
    bound (-0.0 stays -0.0 under RELU, unlike NumPy's ``maximum``)."""
    lo, hi = _CLAMPS[code]
    if lo != -np.inf:
        np.copyto(out, _F32(lo), where=out < lo)
    if hi != np.inf:
        np.copyto(out, _F32(hi), where=out > hi)
    return out


def _start(b: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """Accumulators holding the bias (+0.0 without one), as XNNPACK's packed weights."""
    out = np.empty(shape, _F32)
    out[...] = _F32(0) if b is None else b
    return out


def conv_2d(settings: XnnOrder, x: np.ndarray, w: np.ndarray, b: np.ndarray | None,
            hard_swish: XnnOrder | None = None, rescale: tuple | None = None):
    """CONV_2D as XNNPACK's f32 (i)gemm computes it (module docstring). ``hard_swish``:
    the settings of an XNNPACK-order HARD_SWISH node fused after it; ``rescale``: float32
    ``(mul, add)`` of an input rescaling fused before it (``x * mul + add``, two
    roundings, as the MUL and ADD nodes: :mod:`litetrain.runtime.prologue`). The bits
    of the separate nodes either way: in the compiled kernels when they take them, else
    NumPy's rescaling before, :func:`hard_swish_in_place` after."""
    jit = settings.compiled()
    o, kh, kw, ci = w.shape
    geometry = settings.geometry(x, kh, kw)
    if jit is not None and x.flags.c_contiguous:
        filt, bias = settings.layout(w, b, False)
        pointwise = kh == kw == geometry[2] == geometry[3] == 1
        if not pointwise and settings.reads_in_place(jit, x, o, geometry):
            mul, add = (_ONE, _MINUS_ZERO) if rescale is None else rescale
            return jit.conv_direct(x, filt, bias, o, settings.lo, settings.hi,
                                   hard_swish is not None, rescale is not None, mul, add,
                                   *geometry)
        gather = _im2col(rescale is not None)
        if gather is not None and not pointwise:
            out = _conv_by_blocks(jit, gather, x, filt, bias, o, settings, geometry, rescale)
        else:
            out = jit.conv(_rescaled(x, rescale), filt, bias, o, settings.lo, settings.hi,
                           *geometry)
        return out if hard_swish is None else hard_swish_in_place(hard_swish, out)
    x = _rescaled(x, rescale)
    out = _start(b, (x.shape[0], *geometry[-2:], o))
    dh, dw = settings.get("dilation_h_factor", 1), settings.get("dilation_w_factor", 1)
    taps = list(windows(x, kh, kw, settings, dh, dw))
    for part in _chunks(out.shape):
        acc = out[part]
        for (i, j), win in taps:
            for c in range(ci):
                _add_product(acc, np.multiply(win[part][..., c:c + 1], w[:, i, j, c],
                                              dtype=np.float64))
    out = _clamp(out, settings.get("fused_activation_function", 0))
    return out if hard_swish is None else hard_swish_in_place(hard_swish, out)


def _rescaled(x: np.ndarray, rescale: tuple | None) -> np.ndarray:
    """``x * mul + add`` in float32 (two roundings), or ``x`` without a rescaling."""
    return x if rescale is None else np.add(np.multiply(x, rescale[0]), rescale[1])


def _im2col(affine: bool = False):
    """The conv family's compiled patch gathering (of ``x * mul + add`` when ``affine``)
    once it is loaded, else ``None`` (and it starts loading: this runs only once this
    node's own compiled kernels are loaded, so never in a one-shot run)."""
    loader = kernels("conv")
    if loader is None:
        return None
    if loader.module is None:
        loader.start()
        return None
    return loader.module.im2col_affine if affine else loader.module.im2col


# Patch rows gathered at a time by :func:`_conv_by_blocks` (about 512 KB of patches).
_PATCH_BYTES = 1 << 19


def _conv_by_blocks(jit, gather, x, filt, bias, o: int, settings: XnnOrder, geometry,
                    rescale: tuple | None = None):
    """The compiled CONV_2D with its patches gathered by the conv family's ``im2col``
    (faster than the kernel's own gathering; the same patch values in the same order, so
    the same sums), output rows a block at a time; with ``rescale``, ``gather`` is
    ``im2col_affine`` and gathers the patches of ``x * mul + add``."""
    kh, kw, sh, sw, dh, dw, pt, pl, oh, ow = geometry
    n, k = x.shape[0], kh * kw * x.shape[3]
    out = np.empty((n, oh, ow, o), _F32)
    lines = max(1, _PATCH_BYTES // (ow * k * 4))
    scratch = np.empty(min(lines, oh) * ow * k, _F32)
    for b0 in range(n):
        for y0 in range(0, oh, lines):
            y1 = min(oh, y0 + lines)
            patches = scratch[:(y1 - y0) * ow * k].reshape(-1, k)
            gather(x, patches, b0, b0 + 1, y0, y1, kh, kw, sh, sw, dh, dw, pt, pl, ow,
                   *(() if rescale is None else rescale))
            jit.conv_patches(patches, filt, bias, settings.lo, settings.hi,
                             out[b0, y0:y1].reshape(-1, o))
    return out


_CHUNK = 1 << 14  # outputs a pass of the NumPy forms works on (their float64 in cache)


def _chunks(shape: tuple[int, ...]):
    """Index tuples cutting an ``[n, oh, ow, c]`` output into contiguous parts of about
    ``_CHUNK`` values: whole images, or rows of one image."""
    n, oh, ow, c = shape
    rows = max(1, _CHUNK // max(1, ow * c))
    if rows >= oh:
        images = max(1, rows // oh)
        for b0 in range(0, n, images):
            yield (slice(b0, b0 + images),)
        return
    for b in range(n):
        for y0 in range(0, oh, rows):
            yield slice(b, b + 1), slice(y0, y0 + rows)


def depthwise_conv_2d(settings: XnnOrder, x: np.ndarray, w: np.ndarray,
                      b: np.ndarray | None):
    """DEPTHWISE_CONV_2D as XNNPACK computes it: taps column by column (its dwconv
    kernels), or row by row with a depth multiplier (a grouped convolution there)."""
    jit = settings.compiled()
    _, kh, kw, cm = w.shape
    mult = cm // x.shape[3]
    geometry = settings.geometry(x, kh, kw)
    if jit is not None and mult == 1 and x.flags.c_contiguous:
        return jit.depthwise(x, *settings.layout(w, b, True), settings.lo, settings.hi,
                             *geometry)
    out = _start(b, (x.shape[0], *geometry[-2:], cm))
    dh, dw = settings.get("dilation_h_factor", 1), settings.get("dilation_w_factor", 1)
    taps = dict(windows(x, kh, kw, settings, dh, dw))
    order = list(taps)  # row by row: a grouped convolution's (igemm) order
    if mult == 1:  # XNNPACK's dwconv kernels: column by column
        order = [(i, j) for j in range(kw) for i in range(kh)]
    for part in _chunks(out.shape):
        acc = out[part]
        for i, j in order:
            win = taps[i, j][part]
            if mult > 1:
                win = np.repeat(win, mult, axis=3)
            _add_product(acc, np.multiply(win, w[0, i, j], dtype=np.float64))
    return _clamp(out, settings.get("fused_activation_function", 0))


def hard_swish(settings: XnnOrder, x: np.ndarray) -> np.ndarray:
    """HARD_SWISH as XNNPACK's f32 vhswish computes it."""
    jit = settings.compiled()
    if jit is not None and x.flags.c_contiguous:
        out = np.empty_like(x)
        jit.hard_swish(x.reshape(-1), out.reshape(-1))
        return out
    out = fma(x, _SIXTH, _HALF)
    np.maximum(out, _F32(0), out=out)
    np.minimum(out, _F32(1), out=out)
    return np.multiply(out, x, out=out)


def hard_swish_in_place(settings: XnnOrder, x: np.ndarray) -> np.ndarray:
    """:func:`hard_swish` of a fresh float32 array nothing else reads, written into it
    when the compiled kernels are loaded (else a new array): the same bits."""
    jit = settings.compiled()
    if jit is not None and x.dtype == np.float32 and x.flags.c_contiguous:
        flat = x.reshape(-1)
        jit.hard_swish(flat, flat)
        return x
    return hard_swish(settings, x)


def mean(settings: XnnOrder, x: np.ndarray, axis) -> np.ndarray:
    """MEAN over height and width (``h * w > 0``) as XNNPACK's f32 global average pooling
    computes it."""
    if axes(axis, 4) not in ((1, 2), (2, 1)):
        raise ValueError(f"prepared for a mean over axes 1 and 2, got axes {axis}")
    n, h, wd, c = x.shape
    jit = settings.compiled()
    if jit is not None:
        out = jit.mean_hw(x if x.flags.c_contiguous else np.ascontiguousarray(x),
                          np.empty((n, c), np.float32))
    else:
        out = _gavgpool(x.reshape(n, h * wd, c))
    return out.reshape(n, 1, 1, c) if settings.get("keep_dims") else out


def _gavgpool(rows: np.ndarray) -> np.ndarray:
    """``[n, c]``: the sum over axis 1 of ``rows`` [n, pixels, c] in the 7p7x order, times
    ``1.0f / pixels``."""
    pixels = rows.shape[1]
    zero = np.zeros_like(rows[:, 0])

    def row(k: int) -> np.ndarray:
        return rows[:, k] if k < pixels else zero

    total = ((row(0) + row(1)) + row(6)) + ((row(2) + row(3)) + (row(4) + row(5)))
    for k in range(7, pixels, 7):  # middle passes, then the last (zeros past the end)
        total = (((row(k) + row(k + 1)) + (row(k + 2) + row(k + 3)))
                 + ((row(k + 4) + row(k + 5)) + (row(k + 6) + total)))
    total = total * (_F32(1) / _F32(pixels))
    # Its clamp to [-inf, inf] is max(mean, -inf): that is the second operand when the
    # first is NaN, so a NaN mean comes out as -inf (as TF's default interpreter gives).
    np.copyto(total, _F32(-np.inf), where=np.isnan(total))
    return total
