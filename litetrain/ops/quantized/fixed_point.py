"""TFLite's integer arithmetic, vectorised: quantized multipliers, the saturating rounding
doubling high multiply, rounding right shifts, round-half-away-from-zero, activation
ranges, computed in int64 so nothing overflows on the way.

Rescaling uses the single-rounding form of ``MultiplyByQuantizedMultiplier``: on
TensorFlow's int8 fixture it reproduces TensorFlow's own outputs exactly (the older
double-rounding form differs in ~1 % of the elements by one step).
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


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier, shift) -> np.ndarray:
    """TFLite's ``MultiplyByQuantizedMultiplier`` as current builds compile it
    (``TFLITE_SINGLE_ROUNDING``): one 64-bit product, one rounding right shift —
    ``round(x * multiplier / 2**(31 - shift))`` with halves rounded up."""
    total = 31 - np.asarray(shift, np.int64)
    prod = np.asarray(x, np.int64) * np.asarray(multiplier, np.int64)
    return (prod + (np.int64(1) << (total - 1))) >> total


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
