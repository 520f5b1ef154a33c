"""Binary arithmetic: ADD, SUB, MUL, DIV, SQUARED_DIFFERENCE, POW, MAXIMUM, MINIMUM,
FLOOR_DIV, FLOOR_MOD, ADD_N — kernels, gradients, integer kernels, in-place forms and
forms writing into a given array.

Operands broadcast as NumPy does (TFLite's rule is the same). Integer DIV truncates toward
zero, FLOOR_DIV/FLOOR_MOD round toward -inf, as in TFLite. Integer ADD/SUB use TFLite's
20-bit left shift (15 for int16) and three multipliers; MUL one multiplier; all computed
at prepare.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import compiled_int8
from .common import fused
from .grad import split_by, unbroadcast
from .quantized.fixed_point import (
    quantize_multiplier,
)
from .quantized.lib import (
    Quantized,
    Rescaled,
    Variant,
    clamp,
    integer,
    lut,
    quantized,
    rescale,
    rescaled,
)
from .quantized.requantize import double_rounding
from .quantized.tables import tabulated
from .registry import NodeInfo, OpDef
from .shapes import elementwise


def _binary(fn):
    def kernel(attrs, a, b):
        out = fn(a, b)
        code = attrs.get("fused_activation_function", 0)
        return fused(out, code) if code else out
    return kernel


def _into(ufunc: np.ufunc):
    """``in_place`` for a ufunc op: the result is written into operand ``k``."""
    def factory(operand: int):
        def kernel(attrs, a, b):
            out = ufunc(a, b, out=(a, b)[operand])
            code = attrs.get("fused_activation_function", 0)
            return fused(out, code) if code else out
        return kernel
    return factory


def _into_out(ufunc: np.ufunc):
    """``into`` for a ufunc op: the result is written into a given array."""
    def kernel(attrs, a, b, out):
        result = ufunc(a, b, out=out)
        code = attrs.get("fused_activation_function", 0)
        return fused(result, code) if code else result
    return kernel


def _div(a, b):
    if np.issubdtype(a.dtype, np.integer):
        if np.any(b == 0):
            raise ValueError("integer division by zero")
        q = np.abs(a) // np.abs(b)
        return np.where((a < 0) != (b < 0), -q, q).astype(a.dtype)
    return np.divide(a, b)


def _floor_div(a, b):
    if np.issubdtype(a.dtype, np.integer) and np.any(b == 0):
        raise ValueError("integer division by zero")
    return np.floor_divide(a, b)


def _pow(a, b):
    if np.issubdtype(a.dtype, np.integer) and np.any(b < 0):
        raise ValueError("integers to negative integer powers are not allowed")
    return np.power(a, b)


def add_n(attrs, x, *xs):
    out = x.copy()
    for y in xs:
        out += y
    return out


# --- gradients ---------------------------------------------------------------------------

def _add_vjp(g, attrs, ins, outs, dy):
    a, b = ins
    return [unbroadcast(g, dy, a), unbroadcast(g, dy, b)]


def _sub_vjp(g, attrs, ins, outs, dy):
    a, b = ins
    # Negate after summing when b was broadcast: the same bits, one small pass.
    db = -dy if dy.shape == b.shape else -unbroadcast(g, dy, b)
    return [unbroadcast(g, dy, a), db]


def _mul_vjp(g, attrs, ins, outs, dy):
    a, b = ins
    return [unbroadcast(g, dy * b, a), unbroadcast(g, dy * a, b)]


def _div_vjp(g, attrs, ins, outs, dy):
    a, b = ins
    return [unbroadcast(g, dy / b, a), unbroadcast(g, -(dy * outs[0]) / b, b)]


def _squared_difference_vjp(g, attrs, ins, outs, dy):
    a, b = ins
    d = dy * (a - b) * 2.0
    return [unbroadcast(g, d, a), unbroadcast(g, -d, b)]


def _max_min_vjp(pick_first: str):
    """MAXIMUM/MINIMUM: the cotangent goes to the operand that was chosen (the first on
    ties, as TensorFlow does): ``dy`` times the cast choice, the rest to the other operand
    (two streaming passes instead of two selects; see ``grad.split_by``)."""
    def rule(g, attrs, ins, outs, dy):
        a, b = ins
        to_a, to_b = split_by(g, g.op(pick_first, a, b), dy)
        return [unbroadcast(g, to_a, a), unbroadcast(g, to_b, b)]
    return rule


# --- integer -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _AddSub(Quantized):
    left_shift: int
    m1: int
    s1: int
    m2: int
    s2: int
    mo: int
    so: int
    xnnpack: tuple[int, int, int, int] | None = None  # a, b multipliers, shift, bias


def _xnnpack_add_params(qa, qb, qo, sign: int) -> tuple[int, int, int, int]:
    """XNNPACK's qs8 add: 21-bit integer multipliers for both inputs (one shared shift,
    from float32 scale ratios), the zero points and the rounding half folded in a bias."""
    a_scale = np.float32(qa.s) / np.float32(qo.s)
    b_scale = np.float32(sign) * (np.float32(qb.s) / np.float32(qo.s))
    top = max(abs(a_scale), abs(b_scale))
    exponent = int(np.array(top, np.float32).view(np.uint32) >> 23) - 127
    shift = 20 - exponent

    def mult(v: np.float32) -> int:
        bits = np.array(abs(v), np.float32).view(np.uint32) + np.uint32(shift << 23)
        m = int(np.rint(bits.view(np.float32)))
        return -m if v < 0 else m
    am, bm = mult(a_scale), mult(b_scale)
    bias = (1 << (shift - 1)) - am * qa.zp - bm * qb.zp
    return am, bm, shift, bias


def _add_sub_prepare(info: NodeInfo) -> _AddSub:
    q = quantized(info)
    q1, q2, qo = q.qin[0], q.qin[1], q.qout[0]
    left_shift = 20 if qo.dtype != np.int16 else 15
    twice_max = 2.0 * max(float(q1.s), float(q2.s))
    m1, s1 = quantize_multiplier(q1.s / twice_max)
    m2, s2 = quantize_multiplier(q2.s / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << left_shift) * float(qo.s)))
    xnn = (_xnnpack_add_params(q1, q2, qo, -1 if info.op == "sub" else 1)
           if info.resolver.xnnpack and qo.dtype == np.int8 else None)
    return _AddSub(q.attrs, q.qin, q.qout, left_shift, m1, s1, m2, s2, mo, so, xnn)


def _add_sub(sign: int) -> Variant:
    def kernel(s: _AddSub, a, b):
        if s.xnnpack is not None:
            am, bm, shift, bias = s.xnnpack
            acc = bias + a.astype(np.int64) * am + b.astype(np.int64) * bm
            return clamp((acc >> shift) + s.qout[0].zp, s.attrs, s.qout[0])

        def scaled(x, q, m, sh):
            shifted = (x.astype(np.int64) - q.zp) << s.left_shift
            return double_rounding(shifted, m, sh)  # RDBP(SRDHM(shifted, m), -sh), fast

        raw = scaled(a, s.qin[0], s.m1, s.s1) + sign * scaled(b, s.qin[1], s.m2, s.s2)
        out = double_rounding(raw, s.mo, s.so)
        return clamp(out + s.qout[0].zp, s.attrs, s.qout[0])
    return Variant(kernel, _add_sub_prepare)


def _mul_prepare(info: NodeInfo) -> Rescaled:
    """TFLite's double-rounded multiplier; XNNPACK's float32 ``(sa * sb) / so`` under the
    default resolver (XNNPACK takes int8 MUL and requantizes in float)."""
    q = quantized(info)
    real = np.float64(q.qin[0].s) * np.float64(q.qin[1].s) / np.float64(q.qout[0].s)
    fp32 = (np.float32(q.qin[0].s) * np.float32(q.qin[1].s)) / np.float32(q.qout[0].s)
    return rescaled(info, np.array([real]),
                    fp32=np.array(fp32) if q.qout[0].dtype == np.int8 else None)


def _mul_integer(s: Rescaled, a, b):
    prod = (a.astype(np.int64) - s.qin[0].zp) * (b.astype(np.int64) - s.qin[1].zp)
    return rescale(prod, s)


def _raw(fn):
    """MAXIMUM/MINIMUM on quantized integers: TFLite compares the raw values (its inputs
    and output share parameters)."""
    return lambda s, a, b: fn(a, b)


def _op(name, fn, options=None, *, ufunc=None, vjp=None, integer=None, **facts) -> OpDef:
    return OpDef(name, _binary(fn), options, shape=elementwise, vjp=vjp, fresh_output=True,
                 shape_inputs=(), in_place=None if ufunc is None else _into(ufunc),
                 into=None if ufunc is None else _into_out(ufunc),
                 integer=None if integer is None else compiled_int8.table(tabulated(integer)),
                 **facts)


_squared_difference = _binary(lambda a, b: np.square(a - b))
_div_kernel = _binary(_div)

OPS = [
    _op("add", np.add, "AddOptions", ufunc=np.add, vjp=_add_vjp, integer=_add_sub(1)),
    _op("sub", np.subtract, "SubOptions", ufunc=np.subtract, vjp=_sub_vjp,
        integer=_add_sub(-1)),
    _op("mul", np.multiply, "MulOptions", ufunc=np.multiply, vjp=_mul_vjp,
        integer=Variant(_mul_integer, _mul_prepare)),
    _op("div", _div, "DivOptions", ufunc=np.divide, vjp=_div_vjp, integer=lut(_div_kernel)),
    _op("squared_difference", lambda a, b: np.square(a - b), "SquaredDifferenceOptions",
        vjp=_squared_difference_vjp, integer=lut(_squared_difference)),
    _op("pow", _pow, "PowOptions"),
    _op("maximum", np.maximum, "MaximumMinimumOptions", ufunc=np.maximum,
        vjp=_max_min_vjp("greater_equal"), integer=integer(_raw(np.maximum))),
    _op("minimum", np.minimum, "MaximumMinimumOptions", ufunc=np.minimum,
        vjp=_max_min_vjp("less_equal"), integer=integer(_raw(np.minimum))),
    _op("floor_div", _floor_div, "FloorDivOptions"),
    _op("floor_mod", np.mod, "FloorModOptions"),
    OpDef("add_n", add_n, "AddNOptions", shape=elementwise, fresh_output=True,
          shape_inputs=()),
]
