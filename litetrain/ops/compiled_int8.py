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
* FULLY_CONNECTED centres, multiplies on BLAS and rescales compiled.

At run time anything else — another input type or rank, a grouped convolution — goes to
the wrapped kernel.
"""

from __future__ import annotations

import numpy as np

from .common import pad_before_after
from .fast import Loader, WithKernels, kernels
from .quantized.gemm import Gemm, max_centred
from .quantized.requantize import Requantizer
from .registry import NodeInfo, Variant

_EIGHT = (np.dtype(np.int8), np.dtype(np.uint8))
_OUT = (*_EIGHT, np.dtype(np.int16))
_INT64_MIN = np.iinfo(np.int64).min
_INT32_LIMIT = 1 << 31


class Int8(WithKernels):
    """A node's wrapped settings (``inner``) and what its compiled kernels take: the
    ``rescaling`` (see :func:`rescaling`), the input zero point ``zx``, the output type,
    the ``filter`` as the kernel takes it, and the window geometry per input size."""

    def __init__(self, inner: Gemm, loader: Loader, kind: str, channels: int,
                 filter: np.ndarray):
        super().__init__(inner.attrs, loader)
        self.inner, self.kind, self.filter = inner, kind, filter
        self.rescaling = rescaling(inner.requantize, channels)
        self.out_dtype = inner.requantize.dtype
        self.zx = int(inner.x_zero)
        self.geometry: dict[tuple[int, int], tuple[int, ...]] = {}

    def __getattr__(self, name: str):
        """The wrapped settings' fields (``requantize``, ``dtype``, ...) read through."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


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
    return Int8(s, loader, "depthwise", w.shape[3], np.ascontiguousarray(w[0], np.int32))


def _conv(s: Gemm, loader: Loader, info: NodeInfo) -> Int8 | None:
    w = s.weights  # [o, kh, kw, ci], centred
    if w.ndim != 4 or s.dtype is not np.float32:
        return None
    return Int8(s, loader, "conv", w.shape[0], w.reshape(w.shape[0], -1).T)


def _fully_connected(s: Gemm, loader: Loader, info: NodeInfo) -> Int8 | None:
    w = s.weights  # [units, depth], centred
    if w.ndim != 2 or s.dtype is not np.float32:
        return None
    return Int8(s, loader, "fully_connected", w.shape[0], w.T)


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
        if (module is None or x.__class__ is not np.ndarray
                or x.dtype != s.inner.qin[0].dtype):
            return variant.kernel(s.inner, *inputs)
        out = _RUN[s.kind](s, module, x)
        return variant.kernel(s.inner, *inputs) if out is None else out
    kernel.wraps = variant  # the NumPy variant, for tests
    return Variant(kernel, prepare)


def _geometry(s: Int8, x: np.ndarray, kh: int, kw: int) -> tuple[int, ...]:
    """(sh, sw, dh, dw, pt, pl, oh, ow) for this input size (computed once per size)."""
    g = s.geometry.get(x.shape[1:3])
    if g is None:
        sh, sw = s["stride_h"], s["stride_w"]
        dh, dw = s.get("dilation_h_factor", 1), s.get("dilation_w_factor", 1)
        oh, pt, _ = pad_before_after(x.shape[1], kh, sh, dh, s["padding"])
        ow, pl, _ = pad_before_after(x.shape[2], kw, sw, dw, s["padding"])
        g = s.geometry[x.shape[1:3]] = (sh, sw, dh, dw, pt, pl, oh, ow)
    return g


def _rescale(s: Int8, module, acc: np.ndarray) -> np.ndarray:
    return module.requantize(acc, *s.rescaling, np.empty(acc.shape, s.out_dtype))


def _run_depthwise(s: Int8, module, x: np.ndarray) -> np.ndarray | None:
    kh, kw, cm = s.filter.shape
    if x.ndim != 4 or cm % x.shape[3]:
        return None
    sh, sw, dh, dw, pt, pl, oh, ow = _geometry(s, x, kh, kw)
    out = np.empty((x.shape[0], oh, ow, cm), x.dtype)
    return module.depthwise_conv_2d(np.ascontiguousarray(x), s.zx, s.filter, sh, sw, dh, dw,
                                    pt, pl, cm // x.shape[3], *s.rescaling, out)


def _run_conv(s: Int8, module, x: np.ndarray) -> np.ndarray | None:
    o, kh, kw, ci = s.inner.weights.shape
    if x.ndim != 4 or x.shape[3] != ci:
        return None  # grouped (or malformed): the wrapped kernel handles or reports it
    sh, sw, dh, dw, pt, pl, oh, ow = _geometry(s, x, kh, kw)
    n = x.shape[0]
    if kh == kw == 1 and sh == sw == 1:
        cols = np.subtract(x.reshape(-1, ci), np.float32(s.zx), dtype=np.float32)
    else:
        cols = np.empty((n * oh * ow, kh * kw * ci), np.float32)
        module.im2col(np.ascontiguousarray(x), s.zx, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow,
                      cols)
    return _rescale(s, module, cols @ s.filter).reshape(n, oh, ow, o)


def _run_fully_connected(s: Int8, module, x: np.ndarray) -> np.ndarray | None:
    units, depth = s.inner.weights.shape
    if x.size % depth:
        return None
    cols = np.subtract(x.reshape(-1, depth), np.float32(s.zx), dtype=np.float32)
    out = _rescale(s, module, cols @ s.filter)
    if s.get("keep_num_dims", False):
        out = out.reshape(*x.shape[:-1], units)
    return out


_RUN = {"depthwise": _run_depthwise, "conv": _run_conv,
        "fully_connected": _run_fully_connected}
