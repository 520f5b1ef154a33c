"""TF Lite's int8 LOG_SOFTMAX (``reference_integer_ops::LogSoftmax``, every resolver), in
gemmlowp fixed point, vectorised over rows.

Per row: the input differences from the row maximum, rescaled to Q5.26, go through
gemmlowp's ``exp_on_negative_values``; their sum (Q12.19) through TF Lite's
``log_x_for_x_greater_than_or_equal_to_1`` (Q5.26); each output is ``(diff - log_sum)``
rounded to the output's 1/16 scale plus 127, or -128 below the cut-off. Prepare is
``PreprocessLogSoftmaxScalingExp`` with beta 1 and 5 integer bits. All values are int32
held in int64; plain fixed-point additions wrap as in C++.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .fixed_point import (
    INT32_MAX,
    INT32_MIN,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)


def _wrap(x):
    return ((np.asarray(x, np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _mul(a, b):
    return saturating_rounding_doubling_high_mul(a, b)


def _shl(x, exponent):
    """``SaturatingRoundingMultiplyByPOT(Param)`` for ``exponent >= 0`` (array allowed)."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    threshold = (np.int64(1) << (31 - exponent)) - 1
    out = np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN,
                                                        _wrap(x << exponent)))
    return np.where(exponent == 0, x, out)


def _clz(x):
    """``CountLeadingZeros`` of a uint32 (``x`` as int32 bits); 32 for 0."""
    u = np.asarray(x, np.int64) & 0xFFFFFFFF
    bits = np.zeros(u.shape, np.int64)
    for step in (16, 8, 4, 2, 1):
        high = u >= (np.int64(1) << step)
        bits = np.where(high, bits + step, bits)
        u = np.where(high, u >> step, u)
    return np.where(u > 0, 31 - bits, 32)


def _half_sum(a, b):
    """gemmlowp's ``RoundingHalfSum`` on int32."""
    s = np.asarray(a, np.int64) + b
    return np.where(s >= 0, (s + 1) // 2, -((-s + 1) // 2))


def _exp_quarter(a):
    """``exp_on_interval_between_negative_one_quarter_and_0_excl`` (Q0.31)."""
    constant = 1895147668
    third = 715827883
    x = _wrap(a + (1 << 28))
    x2 = _mul(x, x)
    x3 = _mul(x2, x)
    x4 = _mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(_wrap(_mul(_wrap(x4_over_4 + x3), third) + x2), 1)
    return _wrap(constant + _mul(constant, _wrap(x + poly)))


_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
           (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a, integer_bits: int):
    """gemmlowp's ``exp_on_negative_values`` of a Q(integer_bits) value: Q0.31."""
    fractional = 31 - integer_bits
    quarter = 1 << (fractional - 2)
    a = np.asarray(a, np.int64)
    mod = _wrap((a & (quarter - 1)) - quarter)
    result = _exp_quarter(_shl(mod, integer_bits))
    remainder = _wrap(mod - a)
    for exponent, multiplier in _BARREL:
        if integer_bits > exponent:
            bit = (remainder >> (fractional + exponent)) & 1
            result = np.where(bit == 1, _mul(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x(a):
    """gemmlowp's ``one_over_one_plus_x_for_x_in_0_1`` (Q0.31 in and out)."""
    half_denominator = _half_sum(a, INT32_MAX)
    x = _wrap(1515870810 + _mul(half_denominator, -1010580540))
    for _ in range(3):
        one_minus = _wrap((1 << 29) - _mul(half_denominator, x))
        x = _wrap(x + _shl(_mul(x, one_minus), 2))
    return _shl(x, 1)


def log_x_ge_1(value, input_bits: int, output_bits: int):
    """TF Lite's ``log_x_for_x_greater_than_or_equal_to_1`` (Q(input_bits) in,
    Q(output_bits) out)."""
    accum_bits = output_bits + 1
    log_2, sqrt_sqrt_half, sqrt_half = 1488522236, 1805811301, 1518500250
    alpha_n, alpha_d, alpha_i, alpha_f = 117049297, 127690142, 1057819769, 638450708
    shifted_quarter = rounding_divide_by_pot(np.int64(536870912), accum_bits)
    z_a = np.asarray(value, np.int64)
    headroom_a = _clz(z_a)
    r_a_tmp = _shl(z_a, headroom_a - 1)
    r_a = _shl(_mul(r_a_tmp, sqrt_half), 1)
    pow_a = np.clip(_shl(input_bits - headroom_a, 31 - accum_bits) + shifted_quarter,
                    INT32_MIN, INT32_MAX)
    z_b = _mul(z_a, sqrt_half)
    headroom_b = _clz(z_b) - 1
    r_b = _shl(z_a, headroom_b)
    pow_b = np.clip(_shl(input_bits - headroom_b, 31 - accum_bits) - shifted_quarter,
                    INT32_MIN, INT32_MAX)
    r = np.minimum(r_a, r_b)
    z_pow_2_adj = np.maximum(pow_a, pow_b)
    p = _half_sum(r, sqrt_sqrt_half)
    q = _wrap(r - sqrt_sqrt_half)
    q = _wrap(q + q)
    common_sq = _mul(q, q)
    num = _wrap(_mul(q, r) + _mul(_mul(q, common_sq), alpha_n))
    denom_minus_one = _wrap(_mul(p, _wrap(_wrap(alpha_i + q) + _mul(alpha_d, common_sq)))
                            + _mul(alpha_f, q))
    recip_denom = _one_over_one_plus_x(denom_minus_one)
    num_scaled = rounding_divide_by_pot(num, accum_bits)
    total = _wrap(_mul(z_pow_2_adj, log_2) + _mul(num_scaled, recip_denom))
    return _shl(total, accum_bits - output_bits)


@dataclass(frozen=True)
class LogSoftmax8:
    """``LogSoftmaxPrepare`` for int8: input multiplier and left shift (Q5.26), the
    reverse scaling for the cut-off, and the smallest difference kept."""

    multiplier: int
    shift: int
    reverse_multiplier: int
    reverse_shift: int
    diff_min: int


def log_softmax_params(input_scale: float) -> LogSoftmax8:
    integer_bits = 5
    real = min(1.0 * float(input_scale) * (1 << (31 - integer_bits)), (1 << 31) - 1.0)
    multiplier, shift = quantize_multiplier(real)
    reverse_real = (1 << (31 - shift)) / float(multiplier)
    reverse_multiplier, reverse_shift = quantize_multiplier(reverse_real)
    radius = math.floor(1.0 * ((1 << integer_bits) - 1) * (1 << (31 - integer_bits))
                        / (1 << shift))
    return LogSoftmax8(multiplier, shift, reverse_multiplier, -reverse_shift, -radius)


def log_softmax_int8(p: LogSoftmax8, x: np.ndarray) -> np.ndarray:
    """``reference_integer_ops::LogSoftmax`` over the last axis (output 16/256 scale,
    zero point 127)."""
    x = np.asarray(x, np.int64)
    diff = x - x.max(axis=-1, keepdims=True)
    q5 = multiply_by_quantized_multiplier(diff, p.multiplier, p.shift, True)
    exps = rounding_divide_by_pot(exp_on_negative_values(q5, 5), 12)
    total = _wrap(np.sum(np.where(diff >= p.diff_min, exps, 0), axis=-1, keepdims=True))
    log_sum = log_x_ge_1(total, 12, 5)
    shifted = _wrap(log_sum + INT32_MIN)
    cutoff = np.maximum(p.diff_min - 1, multiply_by_quantized_multiplier(
        shifted, p.reverse_multiplier, -p.reverse_shift, True))
    out = rounding_divide_by_pot(_wrap(q5 - log_sum), 31 - 5 - 4) + 127
    out = np.clip(out, -128, 127)
    return np.where(diff > cutoff, out, -128).astype(np.int8)
