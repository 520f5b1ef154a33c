"""TensorFlow Lite's 16-bit lookup tables and the int16 kernels built on them.

* :func:`lut_populate` — ``LUTPopulate<int16_t>`` (``internal/common.h``): 513 entries
  sampling a function over the whole int16 input range, each corrected by half the error
  linear interpolation makes at the midpoint of its segment, in ``float`` or ``double``
  (the float type is part of the result).
* :func:`lut_lookup` — ``LUTLookup(int16_t, lut)``: the top 9 bits pick a segment, the
  low 7 interpolate, rounding halves up.
* :func:`softmax_int16` — ``reference_ops::SoftmaxInt16`` (the only int16 softmax; every
  resolver runs it): ``exp`` through a table over ``[-10, 0]``, the sum's reciprocal through
  a ``1 / (1 + x)`` table over ``[0, 1]`` after normalising it by its leading zeros.
* :func:`checked_log2` — ``CheckedLog2``: whether a scale is a power of two.

The prepares (:func:`softmax_params`) compute the tables and multipliers once per plan.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .fixed_point import multiply_by_quantized_multiplier, quantize_multiplier

INT16_MIN, INT16_MAX = -32768, 32767
LUT_SIZE = 513


def _round(x):
    """``TfLiteRound``: halves away from zero, in the value's own float type."""
    return np.copysign(np.floor(np.abs(x) + x.dtype.type(0.5)), x)


def lut_populate(fn: Callable[[np.ndarray], np.ndarray], input_scale: float,
                 input_zero_point: int, output_scale: float, output_zero_point: int,
                 float_type: type = np.float64) -> np.ndarray:
    """``LUTPopulate<int16_t>``: ``fn`` (vectorised, computing in ``float_type``) tabulated
    as 513 int16 entries for ``LUTLookup``."""
    t = float_type
    scale_in, scale_out = t(input_scale), t(output_scale)
    input_min = scale_in * t(INT16_MIN - input_zero_point)
    input_max = scale_in * t(INT16_MAX - input_zero_point)
    output_min = scale_out * t(INT16_MIN - output_zero_point)
    output_max = scale_out * t(INT16_MAX - output_zero_point)
    steps = 512
    step = (input_max - input_min) / t(steps)
    half_step = step / t(2)
    inv = t(INT16_MAX - INT16_MIN + 1) / (output_max - output_min)
    i = np.arange(steps, dtype=t)
    at = input_min + i * step
    val = np.asarray(fn(at), t)
    val_mid = np.asarray(fn(at + half_step), t)
    val_next = np.asarray(fn(input_min + (i + t(1)) * step), t)
    sample = _round(val * inv)
    mid_interp = _round((val_next * inv + _round(val * inv)) / t(2))
    mid_err = mid_interp - _round(val_mid * inv)
    bias = _round(mid_err / t(2))
    lut = np.empty(LUT_SIZE, np.int16)
    lut[:steps] = np.clip(sample - bias, INT16_MIN, INT16_MAX)
    last = _round(np.asarray(fn(np.array([input_max], t)), t) * inv)
    lut[steps] = np.clip(last, INT16_MIN, INT16_MAX)[0]
    return lut


def lut_lookup(x: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """``LUTLookup``: int16 in, int16 out, linear interpolation between entries."""
    x = np.asarray(x, np.int32)
    index = 256 + (x >> 7)
    offset = x & 0x7F
    base = lut[index].astype(np.int32)
    slope = ((lut[index + 1].astype(np.int32) - base + 32768) & 0xFFFF) - 32768  # int16
    delta = (slope * offset + 64) >> 7
    return (((base + delta) + 32768) & 0xFFFF) - 32768


def checked_log2(x: float) -> tuple[bool, int]:
    """``CheckedLog2`` (float arithmetic): (is ``x`` a power of two, its rounded log2)."""
    f = np.float32
    log2 = f(np.log(f(x))) * (f(1.0) / f(np.log(f(2.0))))
    rounded = f(np.copysign(np.floor(abs(log2) + f(0.5)), log2))
    return bool(abs(log2 - rounded) < f(1e-3)), int(rounded)


@dataclass(frozen=True)
class Softmax16:
    """``SoftmaxParams`` of the int16 softmax: the two tables and the input rescaling."""

    exp_lut: np.ndarray
    reciprocal_lut: np.ndarray
    multiplier: int
    shift: int


def softmax_params(input_scale: float, beta: float) -> Softmax16:
    """``SoftmaxPrepare`` for int16: ``exp`` tabulated on ``[-10, 0]`` (input scale
    ``10 / 65535``, zero point 32767), ``1 / (1 + x)`` on ``[0, 1]`` (scale ``1 / 65535``,
    zero point -32768), both onto ``[-1, 1]``, in double; the input difference rescaled so
    ``-65535`` means ``-10``."""
    span = INT16_MAX - INT16_MIN
    exp_lut = lut_populate(np.exp, 10.0 / span, INT16_MAX, 2.0 / span, 0)
    reciprocal_lut = lut_populate(lambda v: 1.0 / (1.0 + v), 1.0 / span, INT16_MIN,
                                  2.0 / span, 0)
    multiplier, shift = quantize_multiplier(float(input_scale) * float(beta) / (10.0 / 65535.0))
    return Softmax16(exp_lut, reciprocal_lut, multiplier, shift)


def _leading_zeros(v: np.ndarray) -> np.ndarray:
    """``CountLeadingZeros`` of positive values below 2**31, as int64."""
    v = np.asarray(v, np.int64)
    bits = np.zeros(v.shape, np.int64)
    for shift in (16, 8, 4, 2, 1):
        big = v >= (np.int64(1) << shift)
        bits = np.where(big, bits + shift, bits)
        v = np.where(big, v >> shift, v)
    return 31 - bits


def softmax_int16(p: Softmax16, x: np.ndarray) -> np.ndarray:
    """``reference_ops::SoftmaxInt16`` over the last axis."""
    x = np.asarray(x, np.int64)
    diff = x - x.max(axis=-1, keepdims=True)
    scaled = multiply_by_quantized_multiplier(diff, p.multiplier, p.shift, True)
    exps = lut_lookup(np.clip(scaled + 32767, INT16_MIN, INT16_MAX), p.exp_lut).astype(np.int64)
    total = exps.sum(axis=-1, keepdims=True)
    headroom = _leading_zeros(total)
    shifted = ((total << (headroom - 1)) + (1 << 13)) >> 14
    sym = np.clip(shifted - ((1 << 15) + (1 << 16)), INT16_MIN, INT16_MAX)
    reciprocal = lut_lookup(sym, p.reciprocal_lut).astype(np.int64)
    right = 31 - headroom
    out = (exps * reciprocal + (np.int64(1) << (right - 1))) >> right
    return np.clip(out, 0, INT16_MAX).astype(np.int16)


# --- int16 LOGISTIC and TANH -------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def sigmoid_table() -> np.ndarray:
    """256 samples of ``sigmoid(i / 24)`` in 0.16 fixed point, the nodes of the linear
    interpolation TF Lite's int16 LOGISTIC and TANH use (``sigmoid_table_uint16``).

    TF Lite ships hand-tuned constants whose generator is not published; these are the
    least-squares piecewise-linear fit of ``65536 * sigmoid`` on ``[0, 255/24]`` (512
    samples per segment), rounded: 244 of TF's 256 entries exactly, the other 12 one
    away, so outputs can be one step off TF's (``STATUS.md``)."""
    sub, n = 512, 256
    a = np.arange(sub) / sub
    w0, w1 = 1.0 - a, a
    gram = np.zeros((n, n))
    rhs = np.zeros(n)
    for i in range(n - 1):
        f = 65536.0 / (1.0 + np.exp(-(i + a) / 24.0))
        gram[i, i] += w0 @ w0
        gram[i, i + 1] += w0 @ w1
        gram[i + 1, i] += w0 @ w1
        gram[i + 1, i + 1] += w1 @ w1
        rhs[i] += w0 @ f
        rhs[i + 1] += w1 @ f
    gram[n - 1, n - 1] += 1.0
    rhs[n - 1] += 65536.0 / (1.0 + np.exp(-(n - 1) / 24.0))
    fit = np.linalg.solve(gram, rhs)
    return np.minimum(np.floor(fit + 0.5), 65535).astype(np.int64)


def sigmoid_params(input_scale: float, tanh: bool) -> tuple[int, int]:
    """``TanhPrepare`` / ``SigmoidPrepare`` for int16: (input multiplier, left shift);
    multiplier 0 for a power-of-two scale (shift 0, or 0–1 for TANH)."""
    pot, log2 = checked_log2(input_scale)
    shift = (15 - 3) + log2
    if pot and (shift in (0, 1) if tanh else shift == 0):
        return 0, shift
    multiplier = float(input_scale) * 4096.0 * 3.0
    shift = 0
    while multiplier <= 32767.0 / 2.0 and shift <= 30:
        shift += 1
        multiplier *= 2.0
    return int(multiplier), shift


def _table_input(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    if multiplier == 0:
        multiplier, shift = 3 << shift, 0
    rounding = (1 << (shift - 1)) if shift > 0 else 0
    return (np.asarray(x, np.int64) * multiplier + rounding) >> shift


def _interpolate(magnitude: np.ndarray, fraction_bits: int, saturated: int) -> np.ndarray:
    table = sigmoid_table()
    seg = magnitude >> fraction_bits
    inside = seg < 255
    seg = np.minimum(seg, 254)
    ua, ub = table[seg], table[seg + 1]
    frac = magnitude & ((1 << fraction_bits) - 1)
    return np.where(inside, (ua << fraction_bits) + frac * (ub - ua), saturated)


def logistic_int16(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """``reference_integer_ops::Logistic`` (int16; every resolver with a non-power-of-two
    input scale, the reference resolver always)."""
    v = _table_input(x, multiplier, shift)
    r = _interpolate(np.abs(v), 9, 0x7FFF << 10)
    r = np.where(v >= 0, r + (1 << 9), (1 << 25) - r + (1 << 9) - 1)
    return (r >> 10).astype(np.int16)


def tanh_int16(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """``reference_integer_ops::Tanh`` (int16): ``2 * sigmoid(2x) - 1`` from the same
    table, 8 fraction bits."""
    v = _table_input(x, multiplier, shift)
    r = _interpolate(np.abs(v), 8, 0xFFFF << 8)
    r = np.where(v >= 0, r - (1 << 23) + (1 << 7), -r + (1 << 23) + (1 << 7) - 1)
    return (r >> 8).astype(np.int16)
