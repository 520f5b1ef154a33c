"""Prepare-time choice of the compiled 8-bit kernels (:mod:`.fast.int8`) for CONV_2D,
DEPTHWISE_CONV_2D and FULLY_CONNECTED.

:func:`gemm` wraps the op's NumPy integer variant (:func:`.quantized.gemm.gemm_variant`).
Its prepare runs the wrapped prepare, then, when the node qualifies, returns an
:class:`Int8`: the wrapped settings (``inner``) plus what the compiled kernels take,
made once — the rescaling of the node's :class:`~.quantized.requantize.Requantizer` as
per-channel arrays (its integer form or XNNPACK's float32 form, whichever the resolver
gave it), the filter laid out for them. Its kernel runs the compiled path once the
kernels are loaded (see :mod:`.fast`: the node's second run starts loading them) and the
wrapped kernel otherwise, so results never depend on which ran: the compiled kernels
compute the same exact integer sums and the same rescaling.

A node qualifies when the ``[fast]`` extra is there, its input is int8/uint8 with one
zero point, its filter is a constant (centred by the wrapped prepare), its bias (if any)
is a constant folded into the rescaling, and the rescaling has the folded form
(``Requantizer.fast``: every bound checked at prepare). Then

* DEPTHWISE_CONV_2D runs wholly compiled, from the 8-bit input to the 8-bit output
  (int32 sums: also required, ``max|x - zx| * Σ|w|`` below 2**31);
* CONV_2D builds its centred patch matrix compiled (1×1, stride 1: one ``np.subtract``),
  multiplies on float32 BLAS (exact: the wrapped prepare chose float32 only then), and
  rescales compiled;
* FULLY_CONNECTED centres, multiplies on BLAS and rescales compiled;
* a CONV_2D 1×1 or FULLY_CONNECTED product of at most ``SMALL_ROWS`` rows (batch 1 on
  a 1×1 map) runs whole compiled, with int32 sums.

At run time anything else — another input type or rank, a grouped convolution — goes to
the wrapped kernel.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import compiled_vnni
from .common import window_geometry
from .fast import Loader, WithKernels, kernels
from .quantized.fixed_point import activation_range
from .quantized.gemm import Gemm, max_centred
from .quantized.lib import Rescaled
from .quantized.requantize import Requantizer, requantizer
from .registry import NodeInfo, Variant

_EIGHT = (np.dtype(np.int8), np.dtype(np.uint8))
_OUT = (*_EIGHT, np.dtype(np.int16))
_INT64_MIN = np.iinfo(np.int64).min
_INT32_LIMIT = 1 << 31
_FLOAT32_EXACT = 1 << 24
_NO_TABLE = {t: np.empty(0, t) for t in _EIGHT}  # kernels' "no table" (read-only)
for _t in _NO_TABLE.values():
    _t.flags.writeable = False
# Up to this many rows (batch-1 squeeze-excite convolutions, FULLY_CONNECTED) a product
# runs whole in the compiled kernel; from here on float32 BLAS is faster.
SMALL_ROWS = 2
# Stride-1 depthwise convolutions with fewer channels than this take the row kernel
# (per-pixel loops of a few channels cost more than their work); from here on the
# per-pixel kernel is as fast.
ROWS_BELOW = 64
# From this many multiply-adds per row (k * o) on, even a few rows run on the VNNI
# kernels (:mod:`.compiled_vnni`): their call costs more than tiny products.
VNNI_FEW_MIN = 1 << 15
# Patch-matrix blocks of about this many floats (256 KiB: they and their sums stay in
# cache between the gather, the GEMM and the rescaling).
BLOCK = 1 << 16


class _Wrapping(WithKernels):
    """Settings wrapping the NumPy variant's own (``inner``): the node's attrs, the
    kernels' loader, and the wrapped settings' fields read through."""

    def __getattr__(self, name: str):
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


class Int8(_Wrapping):
    """A node's wrapped settings (``inner``) and what its compiled kernels take: the
    ``rescaling`` (see :func:`rescaling`), the input zero point ``zx``, the output type,
    the ``filter`` as the kernel takes it, and the window geometry per input size."""

    # a unary 8-bit table the results are looked up in as they are stored (a fused
    # activation: :mod:`litetrain.runtime.int8_fusion`), 256 entries of the output type
    table: np.ndarray | None = None
    rows: list | None = None  # DEPTHWISE_CONV_2D: see _depthwise

    def with_table(self, table: np.ndarray) -> Int8:
        """These settings with ``table`` applied to every result (a new object: the
        node's own settings stay as they are)."""
        fused = Int8.__new__(Int8)
        dict.update(fused, self)
        fused.__dict__.update(self.__dict__)
        fused.table = np.array(table, self.out_dtype)
        fused.table.flags.writeable = False
        if self.vnni is not None:  # the VNNI kernels look it up as they store
            fused.vnni = replace(self.vnni, table=fused.table.view(np.uint8).copy())
        return fused

    def __init__(self, inner: Gemm, loader: Loader, kind: str, channels: int,
                 filter: np.ndarray):
        super().__init__(inner.attrs, loader)
        self.inner, self.kind, self.filter = inner, kind, filter
        self.rescaling = rescaling(inner.requantize, channels)
        self.out_dtype = inner.requantize.dtype
        self.zx = int(inner.x_zero)
        # the [k, n] filter in int32 for few rows (8-bit results; exact as float32 is)
        self.small = (np.ascontiguousarray(filter, np.int32)
                      if kind != "depthwise" and self.out_dtype in _EIGHT else None)
        self.geometry: dict[tuple[int, int], tuple[int, ...]] = {}
        self.vnni: compiled_vnni.Plan | None = None  # CONV_2D / FULLY_CONNECTED: _with_vnni


def rescaling(r: Requantizer, channels: int) -> tuple:
    """``(q, scale, fp32, lo, hi, zp)``: a folded-form :class:`Requantizer` (``r.fast``)
    as the compiled kernels take it — ``q`` int64 rows ``m, c, d, t, bias``, one column
    per output channel (``d`` the lowest int64 where the form has no correction),
    ``scale`` float32 per channel, ``fp32`` which of the two forms (see
    :mod:`.fast.int8`)."""
    q = np.zeros((5, channels), np.int64)
    fp32 = r.fp32 is not None
    if fp32:
        q[4] = 0 if r.folded_bias is None else r.folded_bias
        scale = np.array(np.broadcast_to(r.fp32, channels), np.float32)
    else:
        q[0], q[1], q[3] = r.m, r.c, r.t
        q[2] = _INT64_MIN if r.d is None else r.d
        scale = np.zeros(channels, np.float32)
    return q, scale, fp32, int(r.lo), int(r.hi), int(r.zero_point)


def _qualifies(s, info: NodeInfo) -> bool:
    if not isinstance(s, Gemm) or s.weights is None or not s.requantize.fast:
        return False
    x, r = info.inputs[s.x_pos], s.requantize
    has_bias = len(info.inputs) > s.n_args and info.inputs[s.n_args] is not None
    return (x is not None and x.dtype in _EIGHT and np.ndim(s.x_zero) == 0
            and (s.bias_folded or not has_bias) and np.dtype(r.dtype) in _OUT
            and (r.fp32 is not None or r.d is None or np.ndim(r.d) <= 1))


def _depthwise(s: Gemm, loader: Loader, info: NodeInfo) -> Int8 | None:
    w = s.weights  # [1, kh, kw, cm], centred
    if w.ndim != 4 or w.shape[0] != 1 or s.requantize.dtype != info.inputs[0].dtype:
        return None
    bound = max_centred(s.qin[s.x_pos]) * int(np.abs(w).sum(axis=(0, 1, 2)).max(initial=0))
    if bound >= _INT32_LIMIT:
        return None
    d = Int8(s, loader, "depthwise", w.shape[3], np.ascontiguousarray(w[0], np.int32))
    # stride 1, multiplier 1: sums exact in float32 take the row kernel, its tiled operands
    # made on first use (None: the bound is too large for it)
    d.rows = [] if bound < _FLOAT32_EXACT else None
    return d


def _conv(s: Gemm, loader: Loader, info: NodeInfo) -> Int8 | None:
    w = s.weights  # [o, kh, kw, ci], centred
    if w.ndim != 4 or s.dtype is not np.float32:
        return None
    return _with_vnni(Int8(s, loader, "conv", w.shape[0],
                           np.ascontiguousarray(w.reshape(w.shape[0], -1).T)), info)


def _fully_connected(s: Gemm, loader: Loader, info: NodeInfo) -> Int8 | None:
    w = s.weights  # [units, depth], centred
    if w.ndim != 2 or s.dtype is not np.float32:
        return None
    return _with_vnni(Int8(s, loader, "fully_connected", w.shape[0], np.ascontiguousarray(w.T)),
                      info)


def _tabled(s: Int8, out: np.ndarray) -> np.ndarray:
    """``out`` through the node's fused output table (``s.table``, set by
    :meth:`Int8.with_table`) when it has one: the compiled depthwise and the VNNI kernels
    apply it as they store, every other path through this."""
    return out if s.table is None else s.table[out.view(np.uint8)]


def _vnni_rows(s: Int8, rows: int) -> bool:
    """Whether a product of ``rows`` rows runs on the VNNI kernels: all but a few rows of
    a small filter (those go whole to :func:`.fast.int8.gemm`)."""
    return rows > SMALL_ROWS or s.small is None or s.filter.size >= VNNI_FEW_MIN


def _with_vnni(s: Int8, info: NodeInfo) -> Int8:
    """``s`` with its AVX-512 VNNI plan (:mod:`.compiled_vnni`; ``None`` where the CPU or
    the node does not qualify)."""
    direct = 0
    if s.kind == "conv":  # k×k (or strided) without dilation along the width: in place
        _, kh, kw, _ = s.inner.weights.shape
        if int(info.attrs.get("dilation_w_factor", 1)) == 1 and kh * kw > 1:
            direct = kh
    s.vnni = compiled_vnni.plan(s.filter, s.rescaling, s.zx, info.inputs[s.x_pos].dtype,
                                s.out_dtype, max_centred(s.inner.qin[s.x_pos]), direct)
    return s


_CHOOSE = {"depthwise_conv_2d": _depthwise, "conv_2d": _conv,
           "fully_connected": _fully_connected}


def gemm(variant: Variant) -> Variant:
    """``variant`` (a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED integer variant made by
    ``gemm_variant``) with its compiled kernels chosen at prepare (module docstring)."""
    def prepare(info: NodeInfo):
        s = variant.prepare(info)
        loader = kernels("int8")
        if loader is None or not _qualifies(s, info):
            return s
        return _CHOOSE[info.op](s, loader, info) or s

    def kernel(s, *inputs):
        if s.__class__ is not Int8:
            return variant.kernel(s, *inputs)
        module = s.ready()
        x = inputs[0]
        out = None
        if (module is not None and x.__class__ is np.ndarray
                and x.dtype == s.inner.qin[0].dtype):
            out = _RUN[s.kind](s, module, x)
            if out is not None:
                return out
        return _tabled(s, variant.kernel(s.inner, *inputs))
    kernel.wraps = variant  # the NumPy variant, for tests
    return Variant(kernel, prepare)



def _rescale(s: Int8, module, acc: np.ndarray) -> np.ndarray:
    return module.requantize(acc, *s.rescaling, np.empty(acc.shape, s.out_dtype))


def _product(s: Int8, module, x: np.ndarray) -> np.ndarray:
    """``(x - zx) @ filter`` rescaled for 2-D ``x``: a few rows whole in the compiled
    kernel (BLAS's call costs more than their work), more on BLAS."""
    if x.shape[0] <= SMALL_ROWS and s.small is not None:
        return module.gemm(np.ascontiguousarray(x), s.zx, s.small, *s.rescaling,
                           np.empty((x.shape[0], s.small.shape[1]), s.out_dtype))

    def centre(cols, r0):
        np.subtract(x[r0:r0 + cols.shape[0]], np.float32(s.zx), out=cols, dtype=np.float32)
    return _blocked(s, module, x.shape[0], centre)


def _blocked(s: Int8, module, rows: int, fill) -> np.ndarray:
    """The rescaled product of the patch matrix ``fill(cols, r0)`` writes (its rows
    ``r0, ...``) with the filter, ``[rows, o]``, block by block: a block's patches and
    sums stay in cache and no tensor-sized float temporaries are made."""
    k, o = s.filter.shape
    block = max(1, BLOCK // max(k, o))
    if rows <= block:
        cols = np.empty((rows, k), np.float32)
        fill(cols, 0)
        return _rescale(s, module, cols @ s.filter)
    out = np.empty((rows, o), s.out_dtype)
    cols = np.empty((block, k), np.float32)
    acc = np.empty((block, o), np.float32)
    for r0 in range(0, rows, block):
        m = min(block, rows - r0)
        fill(cols[:m], r0)
        np.matmul(cols[:m], s.filter, out=acc[:m])
        module.requantize(acc[:m], *s.rescaling, out[r0:r0 + m])
    return out


def _run_depthwise(s: Int8, module, x: np.ndarray) -> np.ndarray | None:
    kh, kw, cm = s.filter.shape
    if x.ndim != 4 or cm % x.shape[3]:
        return None
    sh, sw, dh, dw, pt, pl, oh, ow = window_geometry(s.geometry, s, x, kh, kw)
    out = np.empty((x.shape[0], oh, ow, cm), x.dtype)
    table = _NO_TABLE[s.out_dtype] if s.table is None else s.table
    if sh == sw == 1 and cm == x.shape[3] and cm < ROWS_BELOW and s.rows is not None:
        if not s.rows:
            s.rows.append(_tiled(s))
        return module.depthwise_conv_2d_rows(np.ascontiguousarray(x), s.zx, s.rows[0][0], dh,
                                             dw, pt, pl, *s.rows[0][1:], table, out)
    return module.depthwise_conv_2d(np.ascontiguousarray(x), s.zx, s.filter, sh, sw, dh, dw,
                                    pt, pl, cm // x.shape[3], *s.rescaling, table, out)


def _tiled(s: Int8) -> tuple:
    """The row kernel's operands (:func:`.fast.int8.depthwise_conv_2d_rows`): the filter
    in float32 and the rescaling's per-channel rows, each tiled along chunks of about
    1024 values (whole pixels)."""
    cm = s.filter.shape[2]
    reps = max(1, 1024 // cm)
    q, scale, *rest = s.rescaling
    return (np.ascontiguousarray(np.tile(s.filter.astype(np.float32), (1, 1, reps))),
            np.ascontiguousarray(np.tile(q, (1, reps))), np.tile(scale, reps), *rest)


def _run_conv(s: Int8, module, x: np.ndarray) -> np.ndarray | None:
    o, kh, kw, ci = s.inner.weights.shape
    if x.ndim != 4 or x.shape[3] != ci:
        return None  # grouped (or malformed): the wrapped kernel handles or reports it
    geometry = window_geometry(s.geometry, s, x, kh, kw)
    sh, sw, dh, dw, pt, pl, oh, ow = geometry
    n = x.shape[0]
    if s.vnni is not None and _vnni_rows(s, n * oh * ow):
        out = (compiled_vnni.run_gemm(s.vnni, x.reshape(-1, ci))
               if kh == kw == 1 and sh == sw == 1 and pt == pl == 0
               else compiled_vnni.run_conv(s.vnni, x, kh, kw, geometry))
        if out is not None:
            return out.reshape(n, oh, ow, o)
    if kh == kw == 1 and sh == sw == 1:
        return _tabled(s, _product(s, module, x.reshape(-1, ci)).reshape(n, oh, ow, o))
    x = np.ascontiguousarray(x)

    def patches(cols, r0):
        module.im2col(x, s.zx, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, r0, cols)
    return _tabled(s, _blocked(s, module, n * oh * ow, patches).reshape(n, oh, ow, o))


def _run_fully_connected(s: Int8, module, x: np.ndarray) -> np.ndarray | None:
    units, depth = s.inner.weights.shape
    if x.size % depth:
        return None
    out = None
    if s.vnni is not None and _vnni_rows(s, x.size // depth):
        out = compiled_vnni.run_gemm(s.vnni, x.reshape(-1, depth))
    if out is None:
        out = _tabled(s, _product(s, module, x.reshape(-1, depth)))
    if s.get("keep_num_dims", False):
        out = out.reshape(*x.shape[:-1], units)
    return out


_RUN = {"depthwise": _run_depthwise, "conv": _run_conv,
        "fully_connected": _run_fully_connected}


class Mean(_Wrapping):
    """A 4-D int8 MEAN over height and width under XNNPACK (the default resolver): the
    wrapped settings, and per input size the rescaling XNNPACK uses there — the float32
    scale ``in / (out * n)`` for ``n = h * w`` values."""

    def __init__(self, inner, loader: Loader, keep: bool):
        super().__init__(inner.attrs, loader)
        self.inner, self.keep = inner, keep
        qi, qo = inner.qin[0], inner.qout[0]
        self.zx, self.zp = qi.zp, qo.zp
        self.lo, self.hi = -128, 127  # int8, no fused activation
        self.per_size: dict[tuple[int, int], tuple] = {}

    def rescaling(self, n: int, c: int) -> tuple:
        r = self.per_size.get((n, c))
        if r is None:
            qi, qo = self.inner.qin[0], self.inner.qout[0]
            scale = np.float32(qi.s) / (np.float32(qo.s) * np.float32(n))
            r = self.per_size[(n, c)] = (np.zeros((5, c), np.int64),
                                         np.full(c, scale, np.float32), True, self.lo,
                                         self.hi, self.zp)
        return r


def mean(variant: Variant) -> Variant:
    """MEAN's integer ``variant`` with a compiled global average pooling: int8 in and
    out, 4-D, a constant axis of height and width, the default resolver (XNNPACK's
    float32 rescaling, as the wrapped kernel computes it there)."""
    def prepare(info: NodeInfo):
        s = variant.prepare(info)
        loader = kernels("int8")
        x, axis = info.inputs[0], info.inputs[1] if len(info.inputs) > 1 else None
        if (loader is None or not getattr(s, "xnnpack", False) or x is None
                or x.dtype != np.int8 or info.outputs[0].dtype != np.int8
                or x.shape is None or len(x.shape) != 4 or axis is None or axis.value is None
                or sorted({int(a) % 4 for a in np.ravel(axis.value)}) != [1, 2]):
            return s
        return Mean(s, loader, bool(info.attrs.get("keep_dims", False)))

    def kernel(s, x, axis):
        if s.__class__ is not Mean:
            return variant.kernel(s, x, axis)
        module = s.ready()
        if module is None or x.__class__ is not np.ndarray or x.dtype != np.int8 \
                or x.ndim != 4:
            return variant.kernel(s.inner, x, axis)
        n, h, w, c = x.shape
        if h * w >= 1 << 23:  # the kernel's int32 partial sums need fewer pixels
            return variant.kernel(s.inner, x, axis)
        out = module.mean_hw(np.ascontiguousarray(x), s.zx, *s.rescaling(h * w, c),
                             np.empty((n, c), np.int8))
        return out.reshape(n, 1, 1, c) if s.keep else out
    kernel.wraps = variant
    return Variant(kernel, prepare)


class Table(_Wrapping):
    """A binary 8-bit lookup table's settings (``inner``, a :class:`.quantized.tables.
    Tabulated`), the table as bytes (``rows``: indexed by a's bits, then b's; a scalar
    ``b`` picks one column, looked up as a unary table), and per pair of operand
    shapes how :func:`.fast.int8.lookup` walks them: ``(result shape, 3-D shape, a's
    strides, b's strides)``."""

    def __init__(self, inner, loader: Loader, direct: tuple | None = None,
                 computes: str = "mul"):
        super().__init__(getattr(inner.inner, "attrs", {}), loader)
        self.inner, self.direct, self.computes = inner, direct, computes
        self.table = inner.table.view(np.uint8)
        self.rows = self.table.reshape(256, 256)  # [a bits, b bits]
        self.walks: dict[tuple, tuple | None] = {}

    def walk(self, a_shape: tuple, b_shape: tuple) -> tuple | None:
        key = (a_shape, b_shape)
        if key not in self.walks:
            self.walks[key] = _walk(a_shape, b_shape)
        return self.walks[key]


def _walk(a_shape: tuple, b_shape: tuple) -> tuple | None:
    """Broadcasting ``a_shape`` with ``b_shape`` as at most three dims (adjacent dims
    where each operand is either whole or broadcast alike merged), or ``None``."""
    try:
        shape = np.broadcast_shapes(a_shape, b_shape)
    except ValueError:
        return None
    pad = len(shape)
    a = (1,) * (pad - len(a_shape)) + tuple(a_shape)
    b = (1,) * (pad - len(b_shape)) + tuple(b_shape)
    dims: list[list] = []  # [size, a whole, b whole]
    for size, da, db in zip(shape, a, b, strict=True):
        if size == 1:
            continue
        kind = [da == size, db == size]
        if dims and dims[-1][1:] == kind:
            dims[-1][0] *= size
        else:
            dims.append([size, *kind])
    if len(dims) > 3:
        return None
    dims = [[1, True, True]] * (3 - len(dims)) + dims

    def strides(whole: int) -> tuple[int, int, int]:
        sizes = [d[0] if d[whole] else 1 for d in dims]
        step = [sizes[1] * sizes[2], sizes[2], 1]
        return tuple(step[k] if dims[k][whole] else 0 for k in range(3))
    return shape, tuple(d[0] for d in dims), strides(1), strides(2)


def _direct_mul(r) -> tuple | None:
    """MUL's per-tensor rescaling as :func:`.fast.int8.mul` takes it, ``(za, zb, m, c, d,
    t, scale, fp32, lo, hi, zp)``, from its wrapped settings (a ``Rescaled``); ``None``
    when the folded form does not apply (the table is looked up then)."""
    if not isinstance(r, Rescaled) or np.ndim(r.multiplier) or r.qin[0].dtype != \
            r.qin[1].dtype:
        return None
    qa, qb, qo = r.qin[0], r.qin[1], r.qout[0]
    req = requantizer(r.multiplier, r.shift, qo.zp, r.lo, r.hi, qo.dtype,
                      max_centred(qa) * max_centred(qb), None, r.rounding, r.fp32)
    if not req.fast:
        return None
    fp32 = req.fp32 is not None
    m, c, t = (0, 0, 0) if fp32 else (int(req.m), int(req.c), int(req.t))
    d = _INT64_MIN if fp32 or req.d is None else int(req.d)
    scale = np.float32(req.fp32) if fp32 else np.float32(0)
    return qa.zp, qb.zp, m, c, d, t, scale, fp32, req.lo, req.hi, req.zero_point


def _direct_add(r, info: NodeInfo) -> tuple | None:
    """XNNPACK's ADD/SUB constants as :func:`.fast.int8.add` takes them, ``(am, bm, shift,
    bias, zp, lo, hi)``, when the wrapped settings use XNNPACK's form (the default
    resolver, int8), else ``None``; the int64 sums stay below 2**40."""
    xnn = getattr(r, "xnnpack", None)
    if xnn is None or r.qin[0].dtype != r.qin[1].dtype:
        return None
    am, bm, shift, bias = (int(v) for v in xnn)
    qo = r.qout[0]
    lo, hi = activation_range(int(info.attrs.get("fused_activation_function", 0)), qo.s,
                              qo.zp, qo.dtype)
    return am, bm, shift, bias, qo.zp, lo, hi


def table(variant: Variant) -> Variant:
    """A :func:`.quantized.tables.tabulated` ``variant`` whose binary tables are looked up
    compiled (one pass, no widened index array), and MUL (and XNNPACK's ADD/SUB) computed
    compiled (the kernel's own exact integer arithmetic, vectorized); results are the
    table's entries either way."""
    def prepare(info: NodeInfo):
        s = variant.prepare(info)
        loader = kernels("int8")
        if loader is None or getattr(s, "table", None) is None or s.translation is not None \
                or len(s.in_dtypes) != 2:
            return s
        direct = _direct_mul(s.inner) if info.op == "mul" else None
        if info.op in ("add", "sub"):
            direct = _direct_add(s.inner, info)
        return Table(s, loader, direct, "add" if info.op in ("add", "sub") else "mul")

    def kernel(s, *inputs):
        if s.__class__ is not Table:
            return variant.kernel(s, *inputs)
        module = s.ready()
        a, b = inputs
        walk = None if module is None else s.walk(np.shape(a), np.shape(b))
        if (walk is None or a.__class__ is not np.ndarray or b.__class__ is not np.ndarray
                or a.dtype != s.inner.in_dtypes[0] or b.dtype != s.inner.in_dtypes[1]):
            return variant.kernel(s.inner, *inputs)
        shape, dims, sa, sb = walk
        if s.direct is not None and a.dtype == b.dtype:
            n, pixels, c = dims
            big = (pixels * c, c, 1)
            if (s.computes == "mul" and pixels > 1 and c < 128 and big in (sa, sb)
                    and (c, 0, 1) in (sa, sb)):
                # a feature map times a per-item channel vector: long runs, no walk (from
                # 128 channels on the walk's per-pixel rows are as long)
                x, g, zx, zg = (a, b, *s.direct[:2]) if sa == big else (b, a, *s.direct[1::-1])
                out = np.empty((n, pixels * c), a.dtype)
                module.mul_channels(np.ascontiguousarray(x).reshape(n, -1),
                                    np.ascontiguousarray(g).reshape(n, c), zx, zg,
                                    *s.direct[2:], out)
                return out.reshape(shape)
            out = np.empty(dims, a.dtype)
            getattr(module, s.computes)(np.ascontiguousarray(a).reshape(-1),
                                        np.ascontiguousarray(b).reshape(-1), *sa, *sb,
                                        *s.direct, out)
            return out.reshape(shape)
        if b.size == 1 and a.size > 1:  # one column of the table: a unary lookup
            column = np.ascontiguousarray(s.rows[:, int(b.reshape(-1).view(np.uint8)[0])])
            out = np.empty(shape, s.inner.table.dtype)
            module.lookup1(np.ascontiguousarray(a).reshape(-1).view(np.uint8), column,
                           out.reshape(-1).view(np.uint8))
            return out
        out = np.empty(dims, np.uint8)
        module.lookup(np.ascontiguousarray(a).reshape(-1).view(np.uint8),
                      np.ascontiguousarray(b).reshape(-1).view(np.uint8), *sa, *sb, s.table,
                      out)
        return out.view(s.inner.table.dtype).reshape(shape)
    kernel.wraps = variant
    kernel.tabulates = getattr(variant.kernel, "tabulates", None)
    return Variant(kernel, prepare)


class Quantize(_Wrapping):
    """QUANTIZE float32 → 8/16-bit with one scale: the wrapped settings and the output
    parameters as :func:`.fast.int8.quantize` takes them."""

    def __init__(self, inner, loader: Loader):
        super().__init__(inner.attrs, loader)
        self.inner = inner
        qo = inner.qout[0]
        lo, hi = np.iinfo(qo.dtype).min, np.iinfo(qo.dtype).max
        self.args = (np.float32(qo.scale[0]), np.float32(qo.zp), np.float32(lo),
                     np.float32(hi))
        self.out_dtype = qo.dtype


def quantize(variant: Variant) -> Variant:
    """QUANTIZE's integer ``variant`` with float32 → integer (one scale, 8 or 16 bits)
    compiled; integer → integer and per-channel outputs keep the wrapped kernel."""
    def prepare(info: NodeInfo):
        s = variant.prepare(info)
        loader = kernels("int8")
        x = info.inputs[0]
        if (loader is None or isinstance(s, Rescaled) or x is None or x.dtype != np.float32
                or s.qout[0] is None or s.qout[0].scale.size != 1
                or s.qout[0].zero_point.size > 1 or s.qout[0].dtype not in _OUT):
            return s
        return Quantize(s, loader)

    def kernel(s, x):
        if s.__class__ is not Quantize:
            return variant.kernel(s, x)
        module = s.ready()
        if module is None or x.__class__ is not np.ndarray or x.dtype != np.float32:
            return variant.kernel(s.inner, x)
        out = np.empty(x.shape, s.out_dtype)
        module.quantize(np.ascontiguousarray(x).reshape(-1), *s.args, out.reshape(-1))
        return out
    kernel.wraps = variant
    return Variant(kernel, prepare)
