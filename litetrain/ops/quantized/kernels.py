"""Integer kernels with TFLite's reference semantics.

Each kernel is ``kernel(attrs, qin, qout, *inputs)``: ``qin``/``qout`` hold the
:class:`QParams` of every input/output (``None`` where a tensor is not quantized).

* Matmul-like ops (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV,
  BATCH_MATMUL) accumulate ``(x - x_zp) * (w - w_zp)`` exactly (products summed in float64,
  exact below 2**53), add the int32 bias, rescale with the fixed-point multiplier per
  output channel, add the output zero point and clamp to the fused activation's range.
* ADD/SUB use TFLite's 20-bit left shift and three multipliers; MUL one multiplier.
* AVERAGE_POOL_2D divides integer sums with TFLite's rounding; MAX_POOL_2D and data
  movement work on the integers directly.
* Nonlinear ops (SOFTMAX, LOGISTIC, TANH, ELU, HARD_SWISH, LEAKY_RELU, ...) follow TFLite's
  int8 lookup tables: dequantize, apply the float function, round half away from zero.
"""

from __future__ import annotations

import numpy as np

from .. import nn, shape
from ..registry import lookup
from .fixed_point import (
    activation_range,
    dtype_range,
    multiply_by_quantized_multiplier,
    quantize_multipliers,
    round_half_away,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from .params import QParams


def requantize_float(real: np.ndarray, q: QParams) -> np.ndarray:
    """Float values to ``q``'s integers: ``round(real / scale) + zero_point``, clamped."""
    lo, hi = dtype_range(q.dtype)
    scale = q.along(q.scale, real.ndim)
    zp = q.along(q.zero_point, real.ndim)
    out = round_half_away(np.asarray(real, np.float32) / scale).astype(np.int64) + zp
    return np.clip(out, lo, hi).astype(q.dtype)


def _clamp(acc: np.ndarray, attrs, q: QParams) -> np.ndarray:
    lo, hi = activation_range(attrs.get("fused_activation_function", 0), q.s, q.zp, q.dtype)
    return np.clip(acc, lo, hi).astype(q.dtype)


def _centered(x: np.ndarray, q: QParams) -> np.ndarray:
    """``x - zero_point`` as float64 (exact for every integer a kernel sees)."""
    zp = q.along(q.zero_point, x.ndim) if q.per_channel else q.zp
    return x.astype(np.float64) - zp


def _rescale(acc: np.ndarray, real_multipliers: np.ndarray, qout: QParams, attrs
             ) -> np.ndarray:
    mult, shift = quantize_multipliers(real_multipliers)
    if mult.size == 1:
        mult, shift = mult[0], shift[0]
    out = multiply_by_quantized_multiplier(acc, mult, shift) + qout.zp
    return _clamp(out, attrs, qout)


def _matmul_like(float_kernel, attrs, qin, qout, x, w, b):
    """Shared body of FC / conv / depthwise: exact integer accumulation, then rescaling."""
    qx, qw, qo = qin[0], qin[1], qout[0]
    plain = {k: v for k, v in attrs.items() if k != "fused_activation_function"}
    acc = float_kernel(plain, _centered(x, qx), _centered(w, qw), None)
    acc = np.rint(acc).astype(np.int64)
    if b is not None:
        acc = acc + b.astype(np.int64)
    return _rescale(acc, _real_multipliers(qx, qw, qo), qo, attrs)


def _real_multipliers(qx: QParams, qw: QParams, qo: QParams) -> np.ndarray:
    """TFLite's effective output scales: per channel in double; per tensor the input and
    filter scales are multiplied in float32 first (``GetQuantizedConvolutionMultipler``)."""
    if qw.per_channel:
        return np.float64(qx.s) * qw.scale.astype(np.float64) / np.float64(qo.s)
    product = np.float64(np.float32(qx.s) * np.float32(qw.s))
    return np.array([product / np.float64(qo.s)])


def fully_connected(attrs, qin, qout, x, w, b=None):
    return _matmul_like(nn.fully_connected, attrs, qin, qout, x, w, b)


def conv_2d(attrs, qin, qout, x, w, b=None):
    return _matmul_like(nn.conv_2d, attrs, qin, qout, x, w, b)


def depthwise_conv_2d(attrs, qin, qout, x, w, b=None):
    return _matmul_like(nn.depthwise_conv_2d, attrs, qin, qout, x, w, b)


def transpose_conv(attrs, qin, qout, output_shape, w, x, b=None):
    qw, qx, qo = qin[1], qin[2], qout[0]
    plain = {k: v for k, v in attrs.items() if k != "fused_activation_function"}
    acc = np.rint(nn.transpose_conv(plain, output_shape, _centered(w, qw), _centered(x, qx))
                  ).astype(np.int64)
    if b is not None:
        acc = acc + b.astype(np.int64)
    return _rescale(acc, _real_multipliers(qx, qw, qo), qo, attrs)


def batch_matmul(attrs, qin, qout, a, b):
    acc = np.rint(nn.batch_matmul(attrs, _centered(a, qin[0]), _centered(b, qin[1]))
                  ).astype(np.int64)
    real = np.float64(qin[0].s) * np.float64(qin[1].s) / np.float64(qout[0].s)
    return _rescale(acc, np.array([real]), qout[0], attrs)


def _add_sub(sign: int):
    def kernel(attrs, qin, qout, a, b):
        q1, q2, qo = qin[0], qin[1], qout[0]
        left_shift = 20 if qo.dtype != np.int16 else 15
        twice_max = 2.0 * max(float(q1.s), float(q2.s))
        (m1,), (s1,) = quantize_multipliers([q1.s / twice_max])
        (m2,), (s2,) = quantize_multipliers([q2.s / twice_max])
        (mo,), (so,) = quantize_multipliers([twice_max / ((1 << left_shift) * float(qo.s))])

        def scaled(x, q, m, s):
            shifted = (x.astype(np.int64) - q.zp) << left_shift
            return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, m), -s)

        raw = scaled(a, q1, m1, s1) + sign * scaled(b, q2, m2, s2)
        out = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(raw, mo), -so) + qo.zp
        return _clamp(out, attrs, qo)
    return kernel


def mul(attrs, qin, qout, a, b):
    q1, q2, qo = qin[0], qin[1], qout[0]
    prod = (a.astype(np.int64) - q1.zp) * (b.astype(np.int64) - q2.zp)
    real = np.float64(q1.s) * np.float64(q2.s) / np.float64(qo.s)
    return _rescale(prod, np.array([real]), qo, attrs)


def average_pool_2d(attrs, qin, qout, x):
    kh, kw = attrs["filter_height"], attrs["filter_width"]
    total = None
    for _, win in nn.windows(x.astype(np.int64), kh, kw, attrs):
        total = win.copy() if total is None else total + win
    ones = np.ones((1, *x.shape[1:3], 1), np.int64)
    count = None
    for _, win in nn.windows(ones, kh, kw, attrs):
        count = win.copy() if count is None else count + win
    half = count // 2
    num = np.where(total > 0, total + half, total - half)
    out = np.where(num >= 0, num // count, -((-num) // count))  # C++ truncating division
    return _clamp(out, attrs, qout[0])


def max_pool_2d(attrs, qin, qout, x):
    kh, kw = attrs["filter_height"], attrs["filter_width"]
    lo = dtype_range(x.dtype)[0]
    out = None
    for _, win in nn.windows(x, kh, kw, attrs, value=lo):
        out = win.copy() if out is None else np.maximum(out, win)
    return _clamp(out, attrs, qout[0])


def softmax(attrs, qin, qout, x):
    """TFLite's int8/uint8 softmax: a float table of exp(scale * beta * (x - max))."""
    qi, qo = qin[0], qout[0]
    beta = np.float32(attrs.get("beta", 1.0))
    diff = (x.astype(np.int64) - x.max(axis=-1, keepdims=True)).astype(np.float32)
    e = np.exp(np.float32(qi.s) * beta * diff, dtype=np.float32)
    inv = np.float32(1.0) / (e.sum(axis=-1, keepdims=True, dtype=np.float32) * np.float32(qo.s))
    out = round_half_away(e * inv).astype(np.int64) + qo.zp
    lo, hi = dtype_range(qo.dtype)
    return np.clip(out, lo, hi).astype(qo.dtype)


def float_path(float_kernel):
    """Dequantize every quantized input, run the float kernel, quantize the output (the
    lookup-table semantics TFLite uses for int8 nonlinearities)."""
    def kernel(attrs, qin, qout, *inputs):
        floats = [x if q is None or x is None else q.dequantize(x)
                  for x, q in zip(inputs, qin, strict=True)]
        out = float_kernel(attrs, *floats)
        return requantize_float(np.asarray(out, np.float32), qout[0])
    return kernel


def quantize(attrs, qin, qout, x):
    qo = qout[0]
    if qin[0] is None:  # float -> integer
        return requantize_float(x, qo)
    qi = qin[0]  # integer -> integer (e.g. uint8 <-> int8, or a new scale)
    real = np.float64(qi.s) / np.float64(qo.s)
    (m,), (s,) = quantize_multipliers([real])
    out = multiply_by_quantized_multiplier(x.astype(np.int64) - qi.zp, m, s) + qo.zp
    lo, hi = dtype_range(qo.dtype)
    return np.clip(out, lo, hi).astype(qo.dtype)


def dequantize(attrs, qin, qout, x):
    return qin[0].dequantize(x)


def concatenation(attrs, qin, qout, *xs):
    qo = qout[0]
    parts = []
    for x, q in zip(xs, qin, strict=True):
        if q.s == qo.s and q.zp == qo.zp:
            parts.append(x)
        else:  # TFLite's ConcatenationWithScaling: float scale and bias, std::round
            scale = np.float32(q.s) / np.float32(qo.s)
            v = round_half_away(x.astype(np.float32) * scale - np.float32(q.zp) * scale)
            parts.append(np.clip(v.astype(np.int64) + qo.zp, *dtype_range(qo.dtype)
                                 ).astype(qo.dtype))
    out = np.concatenate(parts, axis=attrs.get("axis", 0))
    return _clamp(out, attrs, qo)


def pad(attrs, qin, qout, x, paddings, value=None):
    fill = value.reshape(()) if value is not None else np.array(qout[0].zp, x.dtype)
    pads = np.asarray(paddings, np.int64).reshape(-1, 2)
    return np.pad(x, [tuple(p) for p in pads], constant_values=fill).astype(x.dtype)


def resize_bilinear(attrs, qin, qout, x, size):
    out = shape.resize_bilinear(attrs, x.astype(np.float32), size)
    return np.clip(round_half_away(out), *dtype_range(x.dtype)).astype(x.dtype)


def _float(name: str):
    return float_path(lookup(name).kernel)


def build_table() -> dict:
    table = {
        "fully_connected": fully_connected, "conv_2d": conv_2d,
        "depthwise_conv_2d": depthwise_conv_2d, "transpose_conv": transpose_conv,
        "batch_matmul": batch_matmul, "add": _add_sub(1), "sub": _add_sub(-1), "mul": mul,
        "average_pool_2d": average_pool_2d, "max_pool_2d": max_pool_2d, "softmax": softmax,
        "quantize": quantize, "dequantize": dequantize, "concatenation": concatenation,
        "pad": pad, "padv2": pad, "resize_bilinear": resize_bilinear,
    }
    for name in ("logistic", "tanh", "elu", "hard_swish", "leaky_relu", "relu", "relu6",
                 "relu_n1_to_1", "relu_0_to_1", "gelu", "log_softmax", "mean", "sum",
                 "reduce_max", "reduce_min", "squared_difference", "rsqrt", "sqrt", "exp",
                 "log", "abs", "neg", "prelu", "l2_normalization", "minimum", "maximum",
                 "div"):
        table[name] = _float(name)
    return table


# Ops that only move, select or compare integers: they run unchanged on quantized data
# (TFLite requires their inputs and outputs to share quantization parameters).
PASSTHROUGH = frozenset({
    "reshape", "squeeze", "expand_dims", "transpose", "strided_slice", "slice", "gather",
    "gather_nd", "pack", "unpack", "split", "split_v", "tile", "broadcast_to", "shape",
    "batch_to_space_nd", "space_to_batch_nd", "resize_nearest_neighbor", "reverse_v2",
    "mirror_pad", "arg_max", "arg_min", "equal", "not_equal", "greater", "greater_equal",
    "less", "less_equal", "select", "select_v2", "zeros_like", "rank", "cast",
})
