"""TF Lite's own integer kernels for unary math ops that are not plain lookup tables of the
float function (``kernels/elementwise.cc``; the same under every resolver):

* ABS (int8, int16): ``|x - zp_in|``, plus the output zero point when the scales are equal,
  else rescaled by ``MultiplyByQuantizedMultiplier`` with the multiplier of
  ``in_scale / out_scale`` (divided in float32);
* RSQRT (int8): ``GetInvSqrtQuantizedMultiplierExp`` (gemmlowp Newton–Raphson in fixed
  point) on ``x - zp_in``, then two rescalings by ``2**20`` and by the multiplier of
  ``1 / (sqrt(in_scale) * out_scale)``; 0 gives the largest output; inputs below the zero
  point are an error, as in TF Lite.

EXP and LOG (int8) are TF Lite lookup tables of the float function (``lib.lut``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..registry import NodeInfo, Variant
from .fixed_point import (
    INT32_MAX,
    INT32_MIN,
    dtype_range,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from .lib import for_width
from .params import QParams


@dataclass(frozen=True)
class _Unary:
    qin: QParams
    qout: QParams
    multiplier: int
    shift: int
    rescale: bool


def _params(info: NodeInfo, real: float, rescale: bool = True) -> _Unary:
    qi, qo = info.inputs[0].quantization, info.outputs[0].quantization
    m, s = quantize_multiplier(real) if rescale else (0, 0)
    return _Unary(qi, qo, m, s, rescale)


def _clamp(v: np.ndarray, q: QParams) -> np.ndarray:
    lo, hi = dtype_range(q.dtype)
    return np.clip(v, lo, hi).astype(q.dtype)


def _abs_prepare(info: NodeInfo) -> _Unary:
    qi, qo = info.inputs[0].quantization, info.outputs[0].quantization
    si, so = np.float32(qi.s), np.float32(qo.s)
    return _params(info, float(si / so), rescale=bool(si != so))


def _abs(s: _Unary, x):
    v = np.abs(np.asarray(x, np.int64) - s.qin.zp)
    if s.rescale:
        v = multiply_by_quantized_multiplier(v, s.multiplier, s.shift, True)
    return _clamp(v + s.qout.zp, s.qout)


ABS = Variant(_abs, _abs_prepare)


# --- RSQRT ---------------------------------------------------------------------------------

def _saturating_shift_left(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp's ``SaturatingRoundingMultiplyByPOT<exponent > 0>`` on int32."""
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN,
                                                        x << exponent))


def _mul(a: np.ndarray, b) -> np.ndarray:
    return saturating_rounding_doubling_high_mul(a, b)


def inv_sqrt_multiplier_exp(value: np.ndarray, reverse_shift: int
                            ) -> tuple[np.ndarray, np.ndarray]:
    """``GetInvSqrtQuantizedMultiplierExp`` for int32 ``value >= 0`` (vectorised): a
    multiplier and shift with ``multiplier * 2**shift ≈ 1 / sqrt(value)`` (shift sign per
    ``reverse_shift``)."""
    value = np.asarray(value, np.int64)
    small = value <= 1
    v = np.where(small, 2, value)
    shift = np.full(v.shape, 11, np.int64)
    while np.any(v >= (1 << 29)):
        big = v >= (1 << 29)
        v = np.where(big, v // 4, v)
        shift = np.where(big, shift + 1, shift)
    bits = np.zeros(v.shape, np.int64)  # bit length
    rest = v.copy()
    for step in (16, 8, 4, 2, 1):
        high = rest >= (np.int64(1) << step)
        bits = np.where(high, bits + step, bits)
        rest = np.where(high, rest >> step, rest)
    leading_zeros = 31 - bits
    pairs = (leading_zeros - 1) // 2 - 1
    shift = shift - pairs
    v = v << (2 * pairs)
    f3_input = v >> 1
    half_input = rounding_divide_by_pot(f3_input, 1)
    half_three = (1 << 28) + (1 << 27)
    x = np.full(v.shape, 1 << 28, np.int64)
    for _ in range(5):
        x3 = _saturating_shift_left(_mul(_mul(x, x), x), 6)
        x = _saturating_shift_left(_mul(half_three, x) - _mul(half_input, x3), 3)
    x = _mul(x, 1518500250)
    negative = shift < 0
    x = np.where(negative, x << np.where(negative, -shift, 0), x)
    shift = np.where(negative, 0, shift)
    x = np.where(small, INT32_MAX, x)
    shift = np.where(small, 0, shift)
    return x, shift * reverse_shift


def _rsqrt_prepare(info: NodeInfo) -> _Unary:
    qi, qo = info.inputs[0].quantization, info.outputs[0].quantization
    product = np.sqrt(np.float32(qi.s)) * np.float32(qo.s)  # float32, then 1 / it in double
    return _params(info, 1.0 / float(product))


def _rsqrt(s: _Unary, x):
    v = np.asarray(x, np.int64) - s.qin.zp
    if np.any(v < 0):
        raise ValueError("RSQRT: an int8 input lies below its zero point (a negative real "
                         "value); TF Lite's RSQRT is only defined for positive values")
    mult, shift = inv_sqrt_multiplier_exp(v, -1)
    data = multiply_by_quantized_multiplier(np.ones_like(v), mult, shift + 20, True)
    out = multiply_by_quantized_multiplier(data, s.multiplier, s.shift - 20, True) + s.qout.zp
    lo, hi = dtype_range(s.qout.dtype)
    return np.where(v == 0, hi, np.clip(out, lo, hi)).astype(s.qout.dtype)


def rsqrt_variant(other: Variant) -> Variant:
    """RSQRT: TF Lite's int8 fixed-point kernel; ``other`` for other widths."""
    return for_width(np.int8, _rsqrt_prepare, _rsqrt, _Unary, other)
