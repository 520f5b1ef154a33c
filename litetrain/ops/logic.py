"""Comparisons, logical ops and selection: EQUAL … LESS_EQUAL, LOGICAL_AND/OR/NOT,
SELECT, SELECT_V2, WHERE. On quantized tensors they compare and pick integers unchanged
(inputs share quantization parameters in TFLite), so they are ``passthrough``."""

from __future__ import annotations

import numpy as np

from .grad import split_by, unbroadcast
from .registry import NodeInfo, OpDef
from .shapes import ShapeRuleError, elementwise, one, same_as, shape_of, values_of


def _binary(fn):
    return lambda attrs, a, b: fn(a, b)


def _select(attrs, cond, a, b):
    # SELECT (v1) also accepts a rank-1 condition that picks whole rows of a and b.
    if cond.ndim == 1 and a.ndim > 1 and cond.shape[0] == a.shape[0]:
        cond = cond.reshape(cond.shape + (1,) * (a.ndim - 1))
    return np.where(cond, a, b)


def _where(attrs, cond, *rest):
    if rest:  # WHERE with x, y behaves like SELECT_V2
        return np.where(cond, rest[0], rest[1])
    return np.argwhere(cond).astype(np.int64)


def _where_shape(info: NodeInfo):
    if len(info.inputs) == 3:
        return elementwise(info)
    if info.inputs[0].value is not None:
        return one(np.argwhere(info.inputs[0].value).shape)
    return one((-1, len(shape_of(info, 0))))  # one row per true element: a run-time count


def _select_v2_shape(info: NodeInfo):
    """Broadcast; for shape vectors, each element comes from ``a`` or ``b`` as the
    (known) condition says (gradients build ``[1 or dim, ...]`` shapes this way)."""
    (shaped,) = elementwise(info)
    parts = [values_of(info, k) for k in range(3)]
    if len(shaped.shape) > 1 or any(p is None for p in parts) or None in parts[0]:
        return (shaped,)
    n = max(len(p) for p in parts)
    if any(len(p) not in (1, n) for p in parts):
        return (shaped,)
    c, a, b = (p * n if len(p) == 1 else p for p in parts)
    return one(shaped.shape, tuple(x if bool(k) else y for k, x, y in zip(c, a, b,
                                                                          strict=True)))


def _select_v2_vjp(g, attrs, ins, outs, dy):
    """``dy`` to ``a`` where the condition holds, to ``b`` elsewhere (``grad.split_by``)."""
    c, a, b = ins
    to_a, to_b = split_by(g, c, dy)
    return [None, unbroadcast(g, to_a, a), unbroadcast(g, to_b, b)]


def _select_shape(info: NodeInfo):
    cond, a = shape_of(info, 0), shape_of(info, 1)
    if len(cond) == 1 and len(a) > 1:
        return one(a)
    try:
        return elementwise(info)
    except ShapeRuleError:
        return one(a)


def _op(name, kernel, options=None, shape=elementwise, **rules) -> OpDef:
    return OpDef(name, kernel, options, shape=shape, fresh_output=True, shape_inputs=(),
                 passthrough=True, **rules)


OPS = [
    _op("equal", _binary(np.equal), "EqualOptions"),
    _op("not_equal", _binary(np.not_equal), "NotEqualOptions"),
    _op("greater", _binary(np.greater), "GreaterOptions"),
    _op("greater_equal", _binary(np.greater_equal), "GreaterEqualOptions"),
    _op("less", _binary(np.less), "LessOptions"),
    _op("less_equal", _binary(np.less_equal), "LessEqualOptions"),
    _op("logical_and", _binary(np.logical_and), "LogicalAndOptions"),
    _op("logical_or", _binary(np.logical_or), "LogicalOrOptions"),
    _op("logical_not", lambda attrs, x: np.logical_not(x), "LogicalNotOptions",
        shape=same_as(0)),
    _op("select", _select, "SelectOptions", shape=_select_shape),
    _op("select_v2", lambda attrs, c, a, b: np.where(c, a, b), "SelectV2Options",
        shape=_select_v2_shape, vjp=_select_v2_vjp),
    OpDef("where", _where, "WhereOptions", shape=_where_shape, fresh_output=True,
          shape_inputs=(0,)),
]
