"""Reductions over an axis tensor (``keep_dims`` attr), ARG_MAX/ARG_MIN, and the CUMSUM
scan — kernels, shape rules, gradient rules (SUM, MEAN, CUMSUM), integer kernels.

Integer MEAN follows TFLite 2.18's ``reduce.cc``: the optimized kernels take a 4-D int8
mean over height and width with ``keep_dims`` (``optimized_integer_ops::Mean``: raw sum,
multiplier for in/(n·out) applied the NEON way on blocks of 16 channels, a rounded bias);
every other mean is an integer division when input and output share parameters, else
``QuantizedMeanOrSum`` (the centred sum, ``1/n`` folded into the multiplier, rounded
twice). Under the default resolver XNNPACK takes 4-D int8 means: centred sum times a
float32 scale, rounded to nearest even. Integer SUM is ``QuantizedMeanOrSum``'s sum;
REDUCE_MAX/MIN compare the integers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from . import compiled_int8, xnnpack_float
from .common import axes
from .fast import WithKernels, kernels
from .grad import i32, shape_of
from .quantized.fixed_point import (
    dtype_range,
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_neon,
    quantize_multiplier,
    requantize_fp32,
)
from .quantized.lib import Quantized, Variant, quantized
from .registry import NodeInfo, OpDef
from .shapes import fully_known, one, reduced, values_of
from .shapes import shape_of as shape_in


def _reducer(fn):
    def kernel(attrs, x, axis):
        ax = axes(axis, x.ndim)
        if not ax:  # reducing over no axes is the identity
            return x.copy()
        out = fn(x, axis=ax, keepdims=bool(attrs.get("keep_dims", False)))
        # TFLite keeps the input type (NumPy would widen int32 sums/products to int64).
        return np.asarray(out).astype(x.dtype, copy=False)
    return kernel


def _leading_sum(x, axis, keepdims):
    """The float sum over leading axes (batch and space, as bias and batch-norm gradients
    reduce) as one BLAS product with a ones vector, or ``None`` for any other reduction.

    NumPy reduces an outer axis row by row, one short inner loop per row; the product
    reads the rows once at BLAS speed. Both add each column's values one after another
    in float32 (the same accuracy class; the bits may differ). The checks are cheap:
    small reductions (most of a recurrent step's) must not pay for the fast path."""
    k = len(axis)
    if k >= x.ndim or x.dtype.char not in "fd" or not x.flags.c_contiguous:
        return None
    rows = math.prod(x.shape[:k])
    if rows < 64 or (axis != _LEADING[k] and tuple(sorted(axis)) != _LEADING[k]):
        return None
    out = _ones(rows, x.dtype.char) @ x.reshape(rows, -1)
    kept = (1,) * k if keepdims else ()
    return out.reshape(kept + x.shape[k:])


_LEADING = [tuple(range(k)) for k in range(33)]


@functools.lru_cache(maxsize=8)
def _ones(n: int, dtype: str) -> np.ndarray:
    """A read-only ones vector, made once per length (a step's reductions repeat them)."""
    ones = np.ones(n, dtype)
    ones.flags.writeable = False
    return ones


def _sum(x, axis, keepdims):
    fast = _leading_sum(x, axis, keepdims)
    if fast is not None:
        return fast
    if x.dtype.char in "fd":  # np.sum's own checks cost more than a small sum
        return np.add.reduce(x, axis=axis, keepdims=keepdims)
    return np.sum(x, axis=axis, keepdims=keepdims)


def _mean(x, axis, keepdims):
    if np.issubdtype(x.dtype, np.integer):  # TFLite rounds integer means to nearest
        return np.rint(np.mean(x, axis=axis, keepdims=keepdims)).astype(x.dtype)
    if x.dtype.char not in "fd" or x.size == 0:
        return np.mean(x, axis=axis, keepdims=keepdims)
    # np.mean's own arithmetic (a float sum, then one division by the count), minus its
    # Python-level checks.
    total = _sum(x, axis, keepdims)
    return np.divide(total, x.size // max(np.size(total), 1), dtype=x.dtype)


_plain_mean = _reducer(_mean)


class MeanHW(WithKernels):
    """MEAN settings for a float32 4-D input averaged over height and width: the attrs,
    the compiled kernels' loader, the constant ``axis`` array prepared for (the run
    passes that same array: then no check of its values) and ``keep`` (``keep_dims``)."""

    def __init__(self, attrs, loader, axis: np.ndarray):
        super().__init__(attrs, loader)
        self.axis = axis
        self.keep = bool(attrs.get("keep_dims", False))


def _mean_prepare(info: NodeInfo):
    """XNNPACK's order in a hybrid graph (:mod:`.xnnpack_float`); compiled kernels for a
    float32 4-D input averaged over height and width (its axes a constant) when the
    ``[fast]`` extra is there; else the attrs."""
    xnn = xnnpack_float.prepare(info)
    if xnn is not None:
        return xnn
    x = info.inputs[0]
    a = info.inputs[1] if len(info.inputs) > 1 else None
    if (x is None or x.dtype != np.float32 or x.shape is None or len(x.shape) != 4
            or a is None or a.value is None
            or {int(v) % 4 for v in np.asarray(a.value).reshape(-1)} != {1, 2}):
        return info.attrs
    loader = kernels("reduce")
    return info.attrs if loader is None else MeanHW(info.attrs, loader, a.value)


_F32 = np.dtype(np.float32)


def _mean_kernel(attrs, x, axis):
    """MEAN: the compiled mean over height and width when prepared so and loaded (same
    bits), XNNPACK's order when prepared so (:mod:`.xnnpack_float`), else NumPy's."""
    if attrs.__class__ is MeanHW:
        if (x.__class__ is np.ndarray and x.dtype == _F32 and x.ndim == 4
                and x.shape[1] * x.shape[2] > 0
                and (axis is attrs.axis or axes(axis, 4) in ((1, 2), (2, 1)))):
            jit = attrs.ready()
            if jit is not None:
                n, c = x.shape[0], x.shape[3]
                out = np.empty((n, 1, 1, c) if attrs.keep else (n, c), _F32)
                jit.mean_hw(x if x.flags.c_contiguous else np.ascontiguousarray(x), out)
                return out
    elif xnnpack_float.applies(attrs, x) and x.ndim == 4 and x.shape[1] * x.shape[2]:
        return xnnpack_float.mean(attrs, x, axis)
    return _plain_mean(attrs, x, axis)


def _arg(fn):
    def kernel(attrs, x, axis):
        (a,) = axes(axis, x.ndim)
        return fn(x, axis=a).astype(np.int64 if attrs.get("output_type", 4) == 4 else np.int32)
    return kernel


def _reduce_shape(info: NodeInfo):
    x = shape_in(info, 0)
    out = reduced(x, fully_known(info, 1, "axes"), bool(info.attrs.get("keep_dims", False)))
    known = None
    if info.op == "reduce_prod" and len(x) == 1:  # an element count from a shape vector
        v = values_of(info, 0)
        if v is not None and out == ():
            known = (None if None in v else int(np.prod(v)),)
    return one(out, known)


def _arg_shape(info: NodeInfo):
    return one(reduced(shape_in(info, 0), fully_known(info, 1, "axis"), False))


def cumsum(attrs, x, axis):
    """Running sums along ``axis``; ``exclusive`` leaves each element out of its own sum,
    ``reverse`` runs from the end (TFLite's CUMSUM, TensorFlow's tf.math.cumsum)."""
    (a,) = axes(axis, x.ndim)
    if attrs.get("reverse", False):
        x = np.flip(x, a)
    out = np.cumsum(x, axis=a, dtype=x.dtype)
    if attrs.get("exclusive", False):
        out = np.concatenate([np.zeros_like(np.take(out, [0], axis=a)),
                              np.take(out, np.arange(x.shape[a] - 1), axis=a)], axis=a)
    return np.flip(out, a).copy() if attrs.get("reverse", False) else out


# --- gradient rules ----------------------------------------------------------------------

def _reduce_broadcast(g, x, axes_value, dy, keep: bool):
    """``dy`` (a reduction's cotangent) broadcast back to ``x``'s shape."""
    if not keep:
        reduced_axes = {a % x.ndim for a in np.asarray(axes_value.data).reshape(-1).tolist()}
        ones_at = np.array([i in reduced_axes for i in range(x.ndim)])
        kept = g.op("select_v2", g.const(ones_at), g.const(np.ones(x.ndim, np.int32)),
                    shape_of(g, x))
        dy = g.op("reshape", dy, kept)
    return g.op("broadcast_to", dy, shape_of(g, x))


def _sum_vjp(g, attrs, ins, outs, dy):
    x, ax = ins
    return [_reduce_broadcast(g, x, ax, dy, attrs.get("keep_dims", False)), None]


def _mean_vjp(g, attrs, ins, outs, dy):
    x, ax = ins
    reduced_axes = sorted({a % x.ndim for a in np.asarray(ax.data).reshape(-1).tolist()})
    dims = g.op("gather", shape_of(g, x), i32(g, reduced_axes))
    count = g.op("reduce_prod", dims, i32(g, [0]), keep_dims=False)
    count = g.op("cast", count, out_dtypes=(x.dtype,))
    # Divide the (small) cotangent, then broadcast: each element is the same quotient.
    return [_reduce_broadcast(g, x, ax, dy / count, attrs.get("keep_dims", False)), None]


def _cumsum_vjp(g, attrs, ins, outs, dy):
    """Each input feeds every sum after it (before it, reversed): a scan the other way."""
    return [g.op("cumsum", dy, ins[1], exclusive=attrs.get("exclusive", False),
                 reverse=not attrs.get("reverse", False)), None]


# --- integer kernels ---------------------------------------------------------------------

@dataclass(frozen=True)
class _QuantizedReduce(Quantized):
    multiplier: int  # input scale / output scale, as TFLite's QuantizeMultiplier makes it
    shift: int
    reference: bool
    xnnpack: bool = False


def _reduce_prepare(info: NodeInfo) -> _QuantizedReduce:
    q = quantized(info)
    mult, shift = quantize_multiplier(np.float64(q.qin[0].s) / np.float64(q.qout[0].s))
    return _QuantizedReduce(q.attrs, q.qin, q.qout, mult, shift, info.resolver.reference,
                            info.resolver.xnnpack)


def _c_divide(a: np.ndarray, n: int) -> np.ndarray:
    """C's integer division (truncates toward zero)."""
    return np.sign(a) * (np.abs(a) // n)


def _mean_integer(s: _QuantizedReduce, x, axis):
    qi, qo = s.qin[0], s.qout[0]
    ax = axes(axis, x.ndim)
    keep = bool(s.attrs.get("keep_dims", False))
    if not ax:
        return x.copy()
    n = int(np.prod([x.shape[a] for a in ax]))
    lo, hi = dtype_range(qo.dtype)
    raw = np.asarray(axis).ravel().tolist()
    height_width = keep and x.ndim == 4 and sorted(raw) == [1, 2]
    if s.xnnpack and qo.dtype == np.int8 and x.ndim == 4:
        # XNNPACK: the centred sum times a float32 scale, rounded to nearest even
        total = (x.astype(np.int64) - qi.zp).sum(axis=ax, keepdims=keep)
        scale = np.float32(qi.s) / (np.float32(qo.s) * np.float32(n))
        out = requantize_fp32(total, scale, lo, hi, qo.zp)
        return np.clip(out, lo, hi).astype(qo.dtype)
    if height_width and not s.reference and qo.dtype == np.int8:
        # optimized_integer_ops::Mean: the raw sum times in/(n*out), plus a rounded bias
        in_s, out_s = np.float32(qi.s), np.float32(qo.s)
        temp = np.float32(np.float32(qi.zp) * in_s) / out_s
        bias = qo.zp - int(temp + np.float32(0.5) if temp > 0 else temp - np.float32(0.5))
        mult, shift = quantize_multiplier(float(in_s / (np.float32(n) * out_s)))
        acc = x.astype(np.int64).sum(axis=(1, 2), keepdims=True)
        # Blocks of 16 channels take the NEON path, the rest the scalar one (one thread).
        neon = np.arange(acc.shape[-1]) < acc.shape[-1] // 16 * 16
        out = np.where(neon, multiply_by_quantized_multiplier_neon(acc, mult, shift),
                       multiply_by_quantized_multiplier(acc, mult, shift, True)) + bias
        return np.clip(out, lo, hi).astype(qo.dtype)
    total = x.astype(np.int64).sum(axis=ax, keepdims=keep)
    if qi.zp == qo.zp and np.float32(qi.s) == np.float32(qo.s):  # reference_ops::Mean
        return np.clip(_c_divide(total, n), lo, hi).astype(qo.dtype)
    return _mean_or_sum(s, total, n, compute_sum=False)


def _mean_or_sum(s: _QuantizedReduce, total: np.ndarray, n: int, compute_sum: bool):
    """``QuantizedMeanOrSum``: the raw sum less ``n`` zero points, times the input/output
    multiplier (for a mean, with ``1/n`` folded into it), plus the output zero point."""
    qi, qo = s.qin[0], s.qout[0]
    mult, shift = s.multiplier, s.shift
    if not compute_sum:
        extra = min(n.bit_length() - 1, 32, 31 + shift)
        mult, shift = (mult << extra) // n, shift - extra
    out = multiply_by_quantized_multiplier(_wrap32(total - qi.zp * n), mult, shift,
                                           True) + qo.zp
    lo, hi = dtype_range(qo.dtype)
    return np.clip(out, lo, hi).astype(qo.dtype)


def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _sum_integer(s: _QuantizedReduce, x, axis):
    ax = axes(axis, x.ndim)
    if not ax:
        return x.copy()
    n = int(np.prod([x.shape[a] for a in ax]))
    total = x.astype(np.int64).sum(axis=ax, keepdims=bool(s.attrs.get("keep_dims", False)))
    return _mean_or_sum(s, total, n, compute_sum=True)


def _compare_integer(fn):
    """REDUCE_MAX/MIN on integers (TFLite requires equal input and output parameters)."""
    kernel = _reducer(fn)

    def run(s: Quantized, x, axis):
        qi, qo = s.qin[0], s.qout[0]
        if qi.zp != qo.zp or np.float32(qi.s) != np.float32(qo.s):
            raise ValueError("quantized REDUCE_MAX/MIN need equal input and output "
                             f"parameters, got ({qi.s}, {qi.zp}) and ({qo.s}, {qo.zp})")
        return kernel(s.attrs, x, axis)
    return Variant(run, quantized)


def _op(name, fn, *, vjp=None, integer=None, kernel=None, prepare=None) -> OpDef:
    return OpDef(name, kernel or _reducer(fn), "ReducerOptions", shape=_reduce_shape,
                 vjp=vjp, integer=integer, prepare=prepare, fresh_output=True,
                 shape_inputs=(1,))


OPS = [
    _op("mean", _mean, vjp=_mean_vjp,
        integer=compiled_int8.mean(Variant(_mean_integer, _reduce_prepare)),
        kernel=_mean_kernel, prepare=_mean_prepare),
    _op("sum", _sum, vjp=_sum_vjp, integer=Variant(_sum_integer, _reduce_prepare)),
    _op("reduce_prod", np.prod),
    _op("reduce_max", np.max, integer=_compare_integer(np.max)),
    _op("reduce_min", np.min, integer=_compare_integer(np.min)),
    _op("reduce_any", np.any),
    _op("reduce_all", np.all),
    OpDef("cumsum", cumsum, "CumsumOptions", shape=lambda info: one(shape_in(info, 0)),
          vjp=_cumsum_vjp, fresh_output=True, shape_inputs=()),
    OpDef("arg_max", _arg(np.argmax), "ArgMaxOptions", shape=_arg_shape, passthrough=True,
          fresh_output=True, shape_inputs=(1,)),
    OpDef("arg_min", _arg(np.argmin), "ArgMinOptions", shape=_arg_shape, passthrough=True,
          fresh_output=True, shape_inputs=(1,)),
]
