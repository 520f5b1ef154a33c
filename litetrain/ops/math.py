"""Unary math: NEG, ABS, EXP, LOG, SQRT, RSQRT, SQUARE, SIN, COS, FLOOR, CEIL, ROUND, SIGN —
kernels, gradients, integer kernels (lookup tables of the float function; ABS and int8 RSQRT
TF Lite's own fixed-point arithmetic, quantized.math_int), in-place forms. Output shape = input
shape."""

from __future__ import annotations

import numpy as np

from .grad import unary
from .quantized.lib import lut
from .quantized.math_int import ABS, rsqrt_variant
from .quantized.tables import tabulated
from .registry import OpDef
from .shapes import same_as


def _kernel(fn):
    return lambda attrs, x: fn(x)


def _into(ufunc: np.ufunc):
    return lambda operand: (lambda attrs, x: ufunc(x, out=x))


def _into_out(ufunc: np.ufunc):
    return lambda attrs, x, out: ufunc(x, out=out)


def _op(name, fn, options=None, *, vjp=None, ufunc=None, quantized=False,
        integer=None) -> OpDef:
    """``integer``: a builder of the op's own integer variant from the lookup-table one."""
    kernel = _kernel(fn)
    variant = None
    if quantized:
        variant = lut(kernel) if integer is None else integer(lut(kernel))
    return OpDef(name, kernel, options, shape=same_as(0), vjp=None if vjp is None else unary(vjp),
                 fresh_output=True, shape_inputs=(), in_place=None if ufunc is None else
                 _into(ufunc), into=None if ufunc is None else _into_out(ufunc),
                 integer=None if variant is None else tabulated(variant))


OPS = [
    _op("neg", np.negative, "NegOptions", vjp=lambda g, x, y, dy: -dy, ufunc=np.negative,
        quantized=True),
    _op("abs", np.abs, "AbsOptions", vjp=lambda g, x, y, dy: dy * g.op("sign", x),
        ufunc=np.abs, quantized=True, integer=lambda _: ABS),
    _op("exp", np.exp, "ExpOptions", vjp=lambda g, x, y, dy: dy * y, ufunc=np.exp,
        quantized=True),
    _op("log", np.log, vjp=lambda g, x, y, dy: dy / x, ufunc=np.log, quantized=True),
    _op("sqrt", np.sqrt, vjp=lambda g, x, y, dy: dy * 0.5 / y, ufunc=np.sqrt, quantized=True),
    _op("rsqrt", lambda x: 1 / np.sqrt(x), vjp=lambda g, x, y, dy: dy * y * y * y * -0.5,
        quantized=True, integer=rsqrt_variant),
    _op("square", np.square, "SquareOptions", vjp=lambda g, x, y, dy: dy * x * 2.0,
        ufunc=np.square),
    _op("sin", np.sin, ufunc=np.sin),
    _op("cos", np.cos, ufunc=np.cos),
    _op("floor", np.floor),
    _op("ceil", np.ceil),
    _op("round", np.rint),  # TFLite rounds half to even
    _op("sign", np.sign, "SignOptions"),
]
