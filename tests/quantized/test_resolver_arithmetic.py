"""OpResolverType (TensorFlow's names and values, bad values rejected) and the three
requantization forms against scalar Python transcriptions of TensorFlow Lite's and
XNNPACK's C code (exact integers, no NumPy)."""

from __future__ import annotations

import enum
from fractions import Fraction

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops.quantized.fixed_point import (
    multiply_by_quantized_multiplier,
    multiply_by_quantized_multiplier_int64,
    multiply_by_quantized_multiplier_neon,
    quantize_multiplier,
    requantize_fp32,
)
from tests.conftest import FIXTURES

R = np.random.default_rng(14)
INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1


class _TFLike(enum.Enum):  # stands in for tf.lite.experimental.OpResolverType
    AUTO = 0
    BUILTIN = 1
    BUILTIN_REF = 2
    BUILTIN_WITHOUT_DEFAULT_DELEGATES = 3


@pytest.mark.parametrize("given, want", [
    (None, "AUTO"), ("builtin_ref", "BUILTIN_REF"), (3, "BUILTIN_WITHOUT_DEFAULT_DELEGATES"),
    (_TFLike.BUILTIN_REF, "BUILTIN_REF"), (lt.OpResolverType.BUILTIN, "BUILTIN")])
def test_resolver_type_takes_tensorflow_names_and_values(given, want):
    assert lt.OpResolverType.of(given) is lt.OpResolverType[want]
    assert int(lt.OpResolverType[want]) == _TFLike[want].value


@pytest.mark.parametrize("bad", ["fast", 7, True, 1.5])
def test_bad_resolver_type_is_a_clear_error(bad):
    path = FIXTURES / "inference" / "int8.tflite"
    with pytest.raises(ValueError, match="experimental_op_resolver_type must be one of AUTO"):
        lt.Interpreter(model_path=str(path), experimental_op_resolver_type=bad)


def _div_toward_zero(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _double_rounding(x: int, m: int, shift: int) -> int:
    """common.h without TFLITE_SINGLE_ROUNDING (gemmlowp's SRDHM, RoundingDivideByPOT)."""
    left, right = max(shift, 0), max(-shift, 0)
    a = x * (1 << left)
    ab = a * m
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    high = INT_MAX if a == m == INT_MIN else _div_toward_zero(ab + nudge, 1 << 31)
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if (high & mask) > threshold else 0)


def _neon(x: int, m: int, shift: int) -> int:
    """vqrdmulh (halves up) then vrshl by the right shift (halves up)."""
    left, right = max(shift, 0), max(-shift, 0)
    high = min((2 * (x << left) * m + (1 << 31)) >> 32, INT_MAX)
    return (high + ((1 << right) >> 1)) >> right


def _int64_overload(x: int, m: int, shift: int) -> int:
    """The int64 ``MultiplyByQuantizedMultiplier`` (16x8 kernels)."""
    reduced = (m + (1 << 15)) >> 16 if m < 0x7FFF0000 else 0x7FFF
    total = 15 - shift
    return (x * reduced + (1 << (total - 1))) >> total


@pytest.mark.parametrize("real", [0.0037, 0.4999, 0.99999, 1.7, 3e-5])
def test_rounding_forms_match_scalar_transcriptions(real):
    m, shift = quantize_multiplier(real)
    x = R.integers(-(1 << 22), 1 << 22, 400)
    x[:4] = [0, -1, 1, (1 << 22) - 1]
    exact = [Fraction(int(v) * m, 1 << (31 - shift)) for v in x]
    single = multiply_by_quantized_multiplier(x, m, shift)
    double = multiply_by_quantized_multiplier(x, m, shift, True)
    neon = multiply_by_quantized_multiplier_neon(x, m, shift)
    wide = multiply_by_quantized_multiplier_int64(x * 1000, m, shift)
    for v, w in zip(x.tolist(), wide.tolist(), strict=True):
        assert w == _int64_overload(v * 1000, m, shift)
    for v, e, s, d, n in zip(x.tolist(), exact, single, double, neon, strict=True):
        assert s == int(np.floor(e + Fraction(1, 2)))  # one rounding, halves up
        assert d == _double_rounding(v, m, shift)
        assert n == _neon(v, m, shift)
        assert abs(d - e) <= 1 and abs(n - e) <= 1


def test_double_rounding_differs_from_single_on_near_ties():
    # 59.49997: the high multiply rounds up to a tie that the shift then rounds away
    m, shift = 1365438881, -12
    assert multiply_by_quantized_multiplier(383296, m, shift) == 59
    assert multiply_by_quantized_multiplier(383296, m, shift, True) == 60


def test_xnnpack_requantization_rounds_halves_to_even_and_clamps():
    out = requantize_fp32(np.array([5, 7, -5, 1000, -1000]), np.float32(0.5), -128, 127, 3)
    assert out.tolist() == [5, 7, 1, 127, -128]  # 2.5 → 2, 3.5 → 4, -2.5 → -2
