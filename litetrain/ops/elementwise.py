"""Elementwise ops: arithmetic, math functions, activations, comparisons, logic, select.

Binary ops broadcast as NumPy does (TFLite's rule is the same). Integer DIV truncates
toward zero, FLOOR_DIV/FLOOR_MOD round toward -inf, as in TFLite.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .common import erf, fused
from .registry import OpDef


def _binary(fn, options: str | None = None) -> callable:
    def kernel(attrs, a, b):
        out = fn(a, b)
        code = attrs.get("fused_activation_function", 0)
        return fused(out, code) if code else out
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


def _unary(fn) -> callable:
    return lambda attrs, x: fn(x)


def _gelu(attrs, x):
    if attrs.get("approximate", False):
        c = np.sqrt(2.0 / np.pi).astype(x.dtype)
        return 0.5 * x * (1.0 + np.tanh(c * (x + x.dtype.type(0.044715) * x * x * x)))
    return 0.5 * x * (1.0 + erf(x * x.dtype.type(1.0 / np.sqrt(2.0))))


def _softmax(attrs, x):
    beta = attrs.get("beta", 1.0)
    e = np.subtract(x, x.max(axis=-1, keepdims=True))  # fresh: safe to work in place
    if beta != 1.0:
        e *= x.dtype.type(beta)
    np.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


def _log_softmax(attrs, x):
    z = np.subtract(x, x.max(axis=-1, keepdims=True))
    z -= np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return z


def _select(attrs, cond, a, b):
    # SELECT (v1) also accepts a rank-1 condition that picks whole rows of a and b.
    if cond.ndim == 1 and a.ndim > 1 and cond.shape[0] == a.shape[0]:
        cond = cond.reshape(cond.shape + (1,) * (a.ndim - 1))
    return np.where(cond, a, b)


def _add_n(attrs, *xs):
    out = xs[0].copy()
    for x in xs[1:]:
        out += x
    return out


def _l2_normalization(attrs, x):
    norm = np.sqrt(np.sum(x * x, axis=-1, keepdims=True))
    out = x / np.maximum(norm, x.dtype.type(1e-6))
    return fused(out, attrs.get("fused_activation_function", 0))


def _where(attrs, cond, *rest):
    if rest:  # WHERE with x, y behaves like SELECT_V2
        return np.where(cond, rest[0], rest[1])
    return np.argwhere(cond).astype(np.int64)


OPS = [
    OpDef("add", _binary(np.add, "AddOptions"), "AddOptions"),
    OpDef("sub", _binary(np.subtract, "SubOptions"), "SubOptions"),
    OpDef("mul", _binary(np.multiply, "MulOptions"), "MulOptions"),
    OpDef("div", _binary(_div, "DivOptions"), "DivOptions"),
    OpDef("squared_difference", _binary(lambda a, b: np.square(a - b)),
          "SquaredDifferenceOptions"),
    OpDef("pow", _binary(_pow), "PowOptions"),
    OpDef("maximum", _binary(np.maximum), "MaximumMinimumOptions"),
    OpDef("minimum", _binary(np.minimum), "MaximumMinimumOptions"),
    OpDef("floor_div", _binary(_floor_div), "FloorDivOptions"),
    OpDef("floor_mod", _binary(np.mod), "FloorModOptions"),
    OpDef("add_n", _add_n, "AddNOptions"),
    OpDef("neg", _unary(np.negative), "NegOptions"),
    OpDef("abs", _unary(np.abs), "AbsOptions"),
    OpDef("exp", _unary(np.exp), "ExpOptions"),
    OpDef("log", _unary(np.log)),
    OpDef("sqrt", _unary(np.sqrt)),
    OpDef("rsqrt", _unary(lambda x: 1 / np.sqrt(x))),
    OpDef("square", _unary(np.square), "SquareOptions"),
    OpDef("sin", _unary(np.sin)),
    OpDef("cos", _unary(np.cos)),
    OpDef("floor", _unary(np.floor)),
    OpDef("ceil", _unary(np.ceil)),
    OpDef("round", _unary(np.rint)),  # TFLite rounds half to even
    OpDef("sign", _unary(np.sign), "SignOptions"),
    OpDef("relu", _unary(lambda x: np.maximum(x, 0))),
    OpDef("relu6", _unary(lambda x: np.clip(x, 0, 6))),
    OpDef("relu_n1_to_1", _unary(lambda x: np.clip(x, -1, 1))),
    OpDef("relu_0_to_1", _unary(lambda x: np.clip(x, 0, 1))),
    OpDef("leaky_relu", lambda attrs, x: np.where(x >= 0, x, x * x.dtype.type(attrs["alpha"])),
          "LeakyReluOptions"),
    OpDef("prelu", lambda attrs, x, alpha: np.where(x >= 0, x, x * alpha)),
    OpDef("elu", _unary(lambda x: np.where(x < 0, np.expm1(np.minimum(x, 0)), x))),
    OpDef("logistic", _unary(lambda x: 1 / (1 + np.exp(-x)))),
    OpDef("tanh", _unary(np.tanh)),
    OpDef("hard_swish", _unary(lambda x: x * np.clip(x + 3, 0, 6) / 6)),
    OpDef("gelu", _gelu, "GeluOptions"),
    OpDef("softmax", _softmax, "SoftmaxOptions"),
    OpDef("log_softmax", _log_softmax, "LogSoftmaxOptions"),
    OpDef("l2_normalization", _l2_normalization, "L2NormOptions"),
    OpDef("equal", _binary(np.equal), "EqualOptions"),
    OpDef("not_equal", _binary(np.not_equal), "NotEqualOptions"),
    OpDef("greater", _binary(np.greater), "GreaterOptions"),
    OpDef("greater_equal", _binary(np.greater_equal), "GreaterEqualOptions"),
    OpDef("less", _binary(np.less), "LessOptions"),
    OpDef("less_equal", _binary(np.less_equal), "LessEqualOptions"),
    OpDef("logical_and", _binary(np.logical_and), "LogicalAndOptions"),
    OpDef("logical_or", _binary(np.logical_or), "LogicalOrOptions"),
    OpDef("logical_not", _unary(np.logical_not), "LogicalNotOptions"),
    OpDef("select", _select, "SelectOptions"),
    OpDef("select_v2", lambda attrs, c, a, b: np.where(c, a, b), "SelectV2Options"),
    OpDef("where", _where, "WhereOptions", shape_inputs=(0,)),
]

# Every output shape here follows from input shapes (broadcasting) alone; ops that
# differ declare their own ``shape_inputs``. Every kernel here returns a new array.
OPS = [replace(op, fresh_output=True,
               shape_inputs=op.shape_inputs if op.shape_inputs is not None else ())
       for op in OPS]
