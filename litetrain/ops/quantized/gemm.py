"""Integer matmul-like kernels (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D,
TRANSPOSE_CONV, BATCH_MATMUL) on float BLAS, exactly.

The integer accumulator ``Σ_k (x[k] - zx) * (w[k, n] - zw[n])`` is computed by the op's
own float kernel on centred operands. Every partial sum of that kernel, in whatever order
BLAS adds, is bounded by ``max|x - zx| * Σ_k |w[k, n] - zw[n]|``; while that bound is below
2**24 every partial sum is an integer float32 holds exactly, so float32 (single-precision
BLAS, half the memory traffic of float64) gives the exact integer result; below 2**53
float64 does. Prepare picks the narrowest exact type:

* constant weights (the usual case) are centred, converted and laid out once, and the
  bound uses their actual per-output-channel sums ``Σ|w - zw|`` (tighter than
  ``K * 127``), with ``max|x - zx|`` from the input type and zero point;
* a weight operand known only at run time (BATCH_MATMUL, training graphs) is bounded by
  ``K * max|x - zx| * max|w - zw|`` when ``K`` is known at prepare, else float64;
* the bias (int32, or int64 for 16x8) and the output zero point are folded into the
  rescaling constant when the bias is constant (:mod:`.requantize`);
* CONV_2D / DEPTHWISE_CONV_2D with SAME padding centre the input straight into a zeroed,
  padded buffer and run the float kernel with VALID padding on it: the same windows (a
  centred zero is what the float kernel pads with), one pass and one ``np.pad`` fewer;
* DEPTHWISE_CONV_2D runs as one ``einsum`` over a strided window view
  (:func:`exact_depthwise`) instead of a multiply-add per tap: its sums are exact
  integers, so their order cannot change them.

Results equal :func:`.lib.matmul_like` (the float64 ``accumulate`` + per-resolver
``rescale`` path) bit for bit: both compute the same exact integers, and
:mod:`.requantize` the same rounding as ``rescale`` (reference, NEON, int64 or XNNPACK's
float32 requantization, as :func:`.lib.matmul_rescaled` picks per resolver).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..common import SAME, VALID, pad_before_after
from ..registry import NodeInfo, Variant
from .fixed_point import dtype_range
from .lib import Quantized, Rescaled, matmul_rescaled, without_activation
from .params import QParams
from .requantize import Requantizer, requantizer

EXACT_FLOAT32 = 1 << 24
EXACT_FLOAT64 = 1 << 53
# Below this many output channels, or this many input values times the depth multiplier,
# the per-tap loop of the float kernel is faster.
EINSUM_MIN_CHANNELS = 32
EINSUM_MIN_SIZE = 1 << 16


@dataclass(frozen=True)
class Gemm(Quantized):
    """Settings of an integer matmul-like node on float BLAS."""

    plain_attrs: dict  # the node's attrs without its fused activation
    x_pos: int
    w_pos: int
    n_args: int  # operands the float kernel takes before the bias
    dtype: type  # np.float32 or np.float64: the exact accumulation type
    x_zero: object  # the input zero point (scalar, or per-channel array) in ``dtype``
    weights: np.ndarray | None  # centred constant weights in ``dtype``; None: run time
    w_zero: object  # the weights' zero point(s), shaped to broadcast, for run-time weights
    bias_folded: bool
    requantize: Requantizer
    window: tuple[int, ...] | None = None  # (kh, kw, sh, sw, dh, dw) when SAME-padded NHWC
    valid_attrs: dict | None = None  # plain_attrs with VALID padding


def _padded_centred(x: np.ndarray, s: Gemm) -> np.ndarray | None:
    """``x - zx`` in a zero buffer with SAME's padding around it, or ``None`` when SAME
    pads nothing here."""
    kh, kw, sh, sw, dh, dw = s.window
    n, h, w, c = x.shape
    _, pt, pb = pad_before_after(h, kh, sh, dh, SAME)
    _, pl, pr = pad_before_after(w, kw, sw, dw, SAME)
    if not (pt or pb or pl or pr):
        return None
    buf = np.zeros((n, h + pt + pb, w + pl + pr, c), s.dtype)
    np.subtract(x, s.x_zero, out=buf[:, pt:pt + h, pl:pl + w])
    return buf


def max_centred(q: QParams) -> int:
    """``max |v - zero_point|`` over the values of ``q``'s integer type."""
    lo, hi = dtype_range(q.dtype)
    zp = np.asarray(q.zero_point, np.int64)
    return int(max(np.max(hi - zp), np.max(zp - lo)))


def exact_dtype(bound: int | None) -> type:
    if bound is not None and bound < EXACT_FLOAT32:
        return np.float32
    return np.float64


def _centred_weights(w: np.ndarray, q: QParams, dtype) -> np.ndarray:
    zp = q.along(q.zero_point, w.ndim) if q.per_channel else q.zp
    return np.ascontiguousarray(w.astype(np.int64) - zp).astype(dtype)


def _zero(q: QParams, ndim: int, dtype):
    zp = q.along(q.zero_point, ndim) if q.per_channel else q.zp
    return np.asarray(zp, dtype) if np.ndim(zp) else dtype(zp)


def gemm_variant(float_kernel: Callable, x_pos: int = 0, w_pos: int = 1,
                 out_axis: int | Callable[[NodeInfo], int] = 0,
                 rescaling: Callable[[NodeInfo], Rescaled] | None = None,
                 windowed: bool = False, rounding: str = "neon", channelwise: bool = True,
                 xnnpack: bool = True) -> Variant:
    """The integer variant of a matmul-like op whose float kernel is ``float_kernel(attrs,
    *operands, bias)`` (operands up to ``max(x_pos, w_pos)``, then the optional bias);
    ``out_axis`` is the weights' output-channel axis (or a function of the node giving
    it): every output element sums over weights sharing one index on that axis;
    ``rescaling(info)`` gives the node's :class:`Rescaled` (default:
    :func:`.lib.matmul_rescaled` with ``rounding``, ``channelwise`` and ``xnnpack``: the
    per-resolver requantization of ``matmul_like``, which the result equals bit for bit);
    ``windowed``: a CONV_2D-like op (NHWC input 0, ``[_, kh, kw, _]`` filter,
    padding/stride/dilation attrs)."""
    n_args = max(x_pos, w_pos) + 1

    def prepare(info: NodeInfo) -> Gemm:
        r = (rescaling(info) if rescaling is not None
             else matmul_rescaled(info, x_pos, w_pos, rounding, channelwise, xnnpack))
        axis = out_axis(info) if callable(out_axis) else out_axis
        qx, qw, qo = r.qin[x_pos], r.qin[w_pos], r.qout[0]
        w_info = info.inputs[w_pos]
        bias_info = info.inputs[n_args] if len(info.inputs) > n_args else None
        xmax = max_centred(qx)
        weights, w_zero = None, _zero(qw, len(w_info.shape or ()) or 1, np.float64)
        if w_info.value is not None:
            wc = np.asarray(w_info.value).astype(np.int64) - (
                qw.along(qw.zero_point, w_info.value.ndim) if qw.per_channel else qw.zp)
            axes = tuple(a for a in range(wc.ndim) if a != axis % wc.ndim)
            column = int(np.abs(wc).sum(axis=axes).max()) if wc.size else 0
            gemm_bound = xmax * column
            dtype = exact_dtype(gemm_bound)
            weights = np.ascontiguousarray(wc.astype(dtype))
        else:
            k = _depth(w_info.shape, axis)
            gemm_bound = None if k is None else k * xmax * max_centred(qw)
            dtype = exact_dtype(gemm_bound)
            w_zero = _zero(qw, len(w_info.shape or ()) or 1, dtype)
        if gemm_bound is not None and gemm_bound >= EXACT_FLOAT64:
            gemm_bound = None  # not exact even in float64: the plain path decides
        bias_value = None if bias_info is None else bias_info.value
        bias_folded = bias_info is not None and bias_value is not None
        acc_bound = gemm_bound
        if acc_bound is not None and bias_info is not None and not bias_folded:
            acc_bound += 1 << (8 * bias_info.dtype.itemsize - 1)
        req = requantizer(r.multiplier, r.shift, qo.zp, r.lo, r.hi, qo.dtype, acc_bound,
                          bias_value if bias_folded else None, r.rounding, r.fp32)
        plain = without_activation(r.attrs)
        window = valid = None
        a = r.attrs
        if (windowed and a.get("padding") == SAME and w_info.shape and len(w_info.shape) == 4
                and w_info.shape[1] * w_info.shape[2] > 1):  # a 1×1 window never pads
            window = (int(w_info.shape[1]), int(w_info.shape[2]), int(a["stride_h"]),
                      int(a["stride_w"]), int(a.get("dilation_h_factor", 1)),
                      int(a.get("dilation_w_factor", 1)))
            valid = {**plain, "padding": VALID}
        return Gemm(r.attrs, r.qin, r.qout, plain, x_pos, w_pos, n_args, dtype,
                    _zero(qx, len(info.inputs[x_pos].shape or ()) or 1, dtype), weights,
                    w_zero, bias_folded, req, window, valid)

    def kernel(s: Gemm, *inputs):
        args = list(inputs[:s.n_args])
        bias = inputs[s.n_args] if len(inputs) > s.n_args and not s.bias_folded else None
        attrs = s.plain_attrs
        x = args[s.x_pos]
        padded = None if s.window is None or x.ndim != 4 else _padded_centred(x, s)
        if padded is None:
            args[s.x_pos] = np.subtract(x, s.x_zero, dtype=s.dtype)
        else:
            args[s.x_pos], attrs = padded, s.valid_attrs
        if s.weights is not None:
            args[s.w_pos] = s.weights
        else:
            args[s.w_pos] = np.subtract(args[s.w_pos], s.w_zero, dtype=s.dtype)
        acc = float_kernel(attrs, *args, None)
        if s.dtype is np.float64 and not s.requantize.fast:
            acc = np.rint(acc)  # beyond 2**53 the float64 path rounds as before
        return s.requantize(acc, bias)
    return Variant(kernel, prepare)


def _depth(shape: tuple[int, ...] | None, axis: int) -> int | None:
    """An upper bound on how many weights one output element sums over: every weight off
    the output-channel axis (batch dims included), or ``None`` if the shape is unknown."""
    if not shape or any(d < 0 for d in shape):
        return None
    return int(np.prod(shape)) // max(int(shape[axis % len(shape)]), 1)


def exact_depthwise(float_kernel: Callable) -> Callable:
    """DEPTHWISE_CONV_2D (``float_kernel``'s signature and attrs) for operands holding
    exact integers whose sums stay exact (what :func:`gemm_variant` passes): one einsum
    over a strided view of the windows, no copy of them. Falls back to ``float_kernel``
    for few channels, a bias, or filters it would reject."""
    def kernel(attrs, x, w, b=None):
        c = x.shape[3]
        _, kh, kw, cm = w.shape
        if (cm % c or cm < EINSUM_MIN_CHANNELS or b is not None
                or x.size * (cm // c) < EINSUM_MIN_SIZE):
            return float_kernel(attrs, x, w, b)
        sh, sw = attrs["stride_h"], attrs["stride_w"]
        dh, dw = attrs.get("dilation_h_factor", 1), attrs.get("dilation_w_factor", 1)
        _, pt, pb = pad_before_after(x.shape[1], kh, sh, dh, attrs["padding"])
        _, pl, pr = pad_before_after(x.shape[2], kw, sw, dw, attrs["padding"])
        if pt or pb or pl or pr:
            x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
        view = sliding_window_view(x, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(1, 2))
        view = view[:, ::sh, ::sw, :, ::dh, ::dw]  # [n, oh, ow, c, kh, kw]
        out = np.einsum("nhwcij,ijcm->nhwcm", view, w.reshape(kh, kw, c, cm // c))
        return out.reshape(*out.shape[:3], cm)
    return kernel
