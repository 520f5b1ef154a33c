"""TFLite's integer arithmetic, vectorised: quantized multipliers, the saturating rounding
doubling high multiply, rounding right shifts, round-half-away-from-zero, activation
ranges, computed in int64 so nothing overflows on the way.

``MultiplyByQuantizedMultiplier`` comes in three forms (``ROUNDINGS``): the double-rounding
one of a default TensorFlow build (no ``TFLITE_SINGLE_ROUNDING``: a rounding doubling high
multiply, then a rounding right shift, halves away from zero) in the reference kernels
and the scalar code of the optimized ones; the NEON one (``vqrdmulh`` + ``vrshl``, halves
up) the optimized convolutions, fully connected layers and 4-D MEAN use (x86 runs it through
NEON_2_SSE); and the single-rounding one (``TFLITE_SINGLE_ROUNDING`` builds, ruy). XNNPACK's
float32 requantization is :func:`requantize_fp32`.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """``real ≈ multiplier * 2**(shift - 31)``, multiplier in [2**30, 2**31) (or 0)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    fixed = int(round_half_away(q * (1 << 31)))
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def quantize_multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, np.float64).reshape(-1)]
    return (np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64))


def round_half_away(x):
    """``std::round``: halves go away from zero (NumPy's ``round`` goes to even)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def saturating_rounding_doubling_high_mul(a: np.ndarray, b) -> np.ndarray:
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    high = np.where(s >= 0, s >> 31, -((-s) >> 31))  # C++ division truncates toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x: np.ndarray, exponent) -> np.ndarray:
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier, shift,
                                     double_rounding: bool = False) -> np.ndarray:
    """TFLite's ``MultiplyByQuantizedMultiplier``.

    Single rounding (ruy; ``TFLITE_SINGLE_ROUNDING`` builds): one 64-bit product, one
    rounding right shift — ``round(x * multiplier / 2**(31 - shift))``, halves up.
    Double rounding (a default TensorFlow build's ``common.h``): ``x << max(shift, 0)``,
    the saturating rounding doubling high multiply, then a rounding divide by
    ``2**max(-shift, 0)`` (halves away from zero at both steps)."""
    shift = np.asarray(shift, np.int64)
    if double_rounding:
        left = np.maximum(shift, 0)
        high = saturating_rounding_doubling_high_mul(
            _wrap32(np.asarray(x, np.int64) << left), multiplier)
        return rounding_divide_by_pot(high, np.maximum(-shift, 0))
    total = 31 - shift
    prod = np.asarray(x, np.int64) * np.asarray(multiplier, np.int64)
    return (prod + (np.int64(1) << (total - 1))) >> total


def multiply_by_quantized_multiplier_neon(x: np.ndarray, multiplier, shift) -> np.ndarray:
    """The NEON form the optimized kernels use (``MultiplyByQuantizedMultiplier4Rows``; x86
    builds run it through NEON_2_SSE): ``vqrdmulh`` then ``vrshl``, both rounding halves
    up (toward +inf) rather than away from zero."""
    shift = np.asarray(shift, np.int64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    prod = _wrap32(np.asarray(x, np.int64) << left) * np.asarray(multiplier, np.int64)
    high = np.minimum((2 * prod + (1 << 31)) >> 32, INT32_MAX)
    return (high + ((np.int64(1) << right) >> 1)) >> right


def multiply_by_quantized_multiplier_int64(x: np.ndarray, multiplier, shift) -> np.ndarray:
    """The int64-accumulator overload (16x8 kernels): the multiplier rounded to 16 bits,
    then one rounding right shift by ``15 - shift`` (halves up)."""
    m = np.asarray(multiplier, np.int64)
    reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - np.asarray(shift, np.int64)
    return (np.asarray(x, np.int64) * reduced + (np.int64(1) << (total - 1))) >> total


# The forms by name (``Rescaled.rounding``).
ROUNDINGS = {
    "double": lambda x, m, s: multiply_by_quantized_multiplier(x, m, s, True),
    "single": lambda x, m, s: multiply_by_quantized_multiplier(x, m, s, False),
    "neon": multiply_by_quantized_multiplier_neon,
    "int64": multiply_by_quantized_multiplier_int64,
}


def requantize_fp32(x: np.ndarray, scale, lo: int, hi: int, zero_point) -> np.ndarray:
    """XNNPACK's ``fp32`` requantization: ``(float) x * scale`` in float32, clamped to
    the output range less the zero point, rounded to nearest even (its magic-number
    trick), plus the zero point."""
    zero_point = np.asarray(zero_point, np.int64)
    f = np.asarray(x).astype(np.float32) * np.asarray(scale, np.float32)
    f = np.clip(f, (lo - zero_point).astype(np.float32), (hi - zero_point).astype(np.float32))
    return np.rint(f).astype(np.int64) + zero_point


def dtype_range(dtype: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def activation_range(code: int, scale: float, zero_point: int, dtype: np.dtype
                     ) -> tuple[int, int]:
    """``CalculateActivationRangeQuantized``: the fused activation as integer clamps."""
    lo, hi = dtype_range(dtype)

    def q(f: float) -> int:
        return zero_point + int(round_half_away(np.float32(f) / np.float32(scale)))

    if code == 1:  # RELU
        return max(lo, q(0.0)), hi
    if code == 3:  # RELU6
        return max(lo, q(0.0)), min(hi, q(6.0))
    if code == 2:  # RELU_N1_TO_1
        return max(lo, q(-1.0)), min(hi, q(1.0))
    if code == 0:
        return lo, hi
    raise ValueError(f"fused activation {code} is not supported on quantized tensors")
