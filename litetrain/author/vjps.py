"""Vector-Jacobian products: one rule per differentiable op, emitting builtin ops only.

A rule gets the graph, the node's attrs, its input and output Values and the output
cotangents, and returns one cotangent per input (``None``: no gradient flows there).
Rules never bake a batch size into the graph: shapes that may involve it come from SHAPE
ops (which the runtime folds per input shapes), so exported files keep dynamic batches.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .graph import Graph, TraceError, Value, user_frame

Rule = Callable[..., list]


def shape_of(g: Graph, x: Value) -> Value:
    return g.op("shape", x, out_type=2)


def unbroadcast(g: Graph, dx: Value, x: Value) -> Value:
    """Sum ``dx`` over the dims along which ``x`` was broadcast, back to ``x``'s shape."""
    if dx.shape == x.shape:
        return dx
    lead = dx.ndim - x.ndim
    axes = list(range(lead)) + [lead + i for i, d in enumerate(x.shape)
                                if d == 1 and dx.shape[lead + i] != 1]
    summed = g.op("sum", dx, g.const(np.array(axes, np.int32)), keep_dims=False)
    return g.op("reshape", summed, shape_of(g, x))


def _zeros(g: Graph, like: Value) -> Value:
    return g.op("zeros_like", like)


def _add(g, attrs, ins, outs, dy):
    a, b = ins
    return [unbroadcast(g, dy, a), unbroadcast(g, dy, b)]


def _sub(g, attrs, ins, outs, dy):
    a, b = ins
    return [unbroadcast(g, dy, a), unbroadcast(g, -dy, b)]


def _mul(g, attrs, ins, outs, dy):
    a, b = ins
    return [unbroadcast(g, dy * b, a), unbroadcast(g, dy * a, b)]


def _div(g, attrs, ins, outs, dy):
    a, b = ins
    return [unbroadcast(g, dy / b, a), unbroadcast(g, -(dy * outs[0]) / b, b)]


def _squared_difference(g, attrs, ins, outs, dy):
    a, b = ins
    d = dy * (a - b) * 2.0
    return [unbroadcast(g, d, a), unbroadcast(g, -d, b)]


def _batch_matmul(g, attrs, ins, outs, dy):
    a, b = ins
    if a.ndim != b.ndim:
        raise TraceError(f"{user_frame()}: gradients of batch_matmul with broadcast batch "
                         "dims are not supported; reshape to equal ranks first")
    ax, ay = attrs.get("adj_x", False), attrs.get("adj_y", False)
    mm = lambda p, q, tp, tq: g.op("batch_matmul", p, q, adj_x=tp, adj_y=tq)  # noqa: E731
    if not ax and not ay:
        return [mm(dy, b, False, True), mm(a, dy, True, False)]
    if ax and not ay:
        return [mm(b, dy, False, True), mm(a, dy, False, False)]
    if not ax and ay:
        return [mm(dy, b, False, False), mm(dy, a, True, False)]
    return [mm(b, dy, True, True), mm(dy, a, True, True)]


def _reshape_like_input(g, attrs, ins, outs, dy):
    return [g.op("reshape", dy, shape_of(g, ins[0]))] + [None] * (len(ins) - 1)


def _mask(g, cond: Value, dy: Value, other: Value | None = None) -> Value:
    return g.op("select_v2", cond, dy, other if other is not None else _zeros(g, dy))


def _relu(g, attrs, ins, outs, dy):
    return [_mask(g, g.op("greater", ins[0], g.const(0, ins[0].dtype)), dy)]


def _relu6(g, attrs, ins, outs, dy):
    x = ins[0]
    inside = g.op("logical_and", g.op("greater", x, g.const(0, x.dtype)),
                  g.op("less", x, g.const(6, x.dtype)))
    return [_mask(g, inside, dy)]


def _leaky_relu(g, attrs, ins, outs, dy):
    x = ins[0]
    return [_mask(g, g.op("greater", x, g.const(0, x.dtype)), dy,
                  dy * float(attrs.get("alpha", 0.2)))]


def _elu(g, attrs, ins, outs, dy):
    x, y = ins[0], outs[0]
    return [_mask(g, g.op("greater", x, g.const(0, x.dtype)), dy, dy * (y + 1.0))]


def _gelu(g, attrs, ins, outs, dy):
    x, y = ins[0], outs[0]
    if attrs.get("approximate", False):
        c, a = float(np.sqrt(2.0 / np.pi)), 0.044715
        t = g.op("tanh", (x + x * x * x * a) * c)
        return [dy * ((t + 1.0) * 0.5 + x * (1.0 - t * t) * (x * x * (3 * a) + 1.0) * (c * 0.5))]
    # d/dx x·Φ(x) = Φ(x) + x·φ(x). TFLite has no ERF, but Φ(x) = gelu(x) / x (0.5 at 0).
    small = g.op("less", g.op("abs", x), g.const(1e-20, x.dtype))
    zeros = _zeros(g, x)
    cdf = g.op("select_v2", small, zeros + 0.5, y / g.op("select_v2", small, zeros + 1.0, x))
    pdf = g.op("exp", x * x * -0.5) * float(1.0 / np.sqrt(2.0 * np.pi))
    return [dy * (cdf + x * pdf)]


def _softmax(g, attrs, ins, outs, dy):
    y = outs[0]
    axis = g.const(np.array([-1], np.int32))
    s = g.op("sum", dy * y, axis, keep_dims=True)
    return [(dy - s) * y * float(attrs.get("beta", 1.0))]


def _log_softmax(g, attrs, ins, outs, dy):
    axis = g.const(np.array([-1], np.int32))
    s = g.op("sum", dy, axis, keep_dims=True)
    return [dy - g.op("exp", outs[0]) * s]


def _reduce_broadcast(g: Graph, x: Value, axes: Value, dy: Value, keep: bool) -> Value:
    """``dy`` (a reduction's cotangent) broadcast back to ``x``'s shape."""
    if not keep:
        reduced = {a % x.ndim for a in np.asarray(axes.data).reshape(-1).tolist()}
        ones_at = np.array([i in reduced for i in range(x.ndim)])
        kept = g.op("select_v2", g.const(ones_at), g.const(np.ones(x.ndim, np.int32)),
                    shape_of(g, x))
        dy = g.op("reshape", dy, kept)
    return g.op("broadcast_to", dy, shape_of(g, x))


def _sum(g, attrs, ins, outs, dy):
    x, axes = ins
    return [_reduce_broadcast(g, x, axes, dy, attrs.get("keep_dims", False)), None]


def _mean(g, attrs, ins, outs, dy):
    x, axes = ins
    full = _reduce_broadcast(g, x, axes, dy, attrs.get("keep_dims", False))
    reduced = sorted({a % x.ndim for a in np.asarray(axes.data).reshape(-1).tolist()})
    dims = g.op("gather", shape_of(g, x), g.const(np.array(reduced, np.int32)))
    count = g.op("reduce_prod", dims, g.const(np.array([0], np.int32)), keep_dims=False)
    count = g.op("cast", count, _out_types=(x.dtype,))
    return [full / count, None]


def _unary(fn) -> Rule:
    return lambda g, attrs, ins, outs, dy: [fn(g, ins[0], outs[0], dy)]


def _transpose(g, attrs, ins, outs, dy):
    perm = np.asarray(ins[1].data).reshape(-1)
    return [g.op("transpose", dy, g.const(np.argsort(perm).astype(np.int32))), None]


def _select_v2(g, attrs, ins, outs, dy):
    c, a, b = ins
    zero = _zeros(g, dy)
    return [None, unbroadcast(g, g.op("select_v2", c, dy, zero), a),
            unbroadcast(g, g.op("select_v2", c, zero, dy), b)]


def _cast(g, attrs, ins, outs, dy):
    if ins[0].dtype.kind != "f":
        return [None]
    return [g.op("cast", dy, _out_types=(ins[0].dtype,))]


def _concatenation(g, attrs, ins, outs, dy):
    axis = attrs.get("axis", 0) % dy.ndim
    sizes = [x.shape[axis] for x in ins]
    parts = g.op("split_v", dy, g.const(np.array(sizes, np.int32)),
                 g.const(np.array(axis, np.int32)), num_splits=len(ins))
    return list(parts) if isinstance(parts, tuple) else [parts]


VJPS: dict[str, Rule] = {
    "add": _add,
    "sub": _sub,
    "mul": _mul,
    "div": _div,
    "squared_difference": _squared_difference,
    "neg": _unary(lambda g, x, y, dy: -dy),
    "square": _unary(lambda g, x, y, dy: dy * x * 2.0),
    "exp": _unary(lambda g, x, y, dy: dy * y),
    "log": _unary(lambda g, x, y, dy: dy / x),
    "sqrt": _unary(lambda g, x, y, dy: dy * 0.5 / y),
    "rsqrt": _unary(lambda g, x, y, dy: dy * y * y * y * -0.5),
    "logistic": _unary(lambda g, x, y, dy: dy * y * (1.0 - y)),
    "tanh": _unary(lambda g, x, y, dy: dy * (1.0 - y * y)),
    "relu": _relu,
    "relu6": _relu6,
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "gelu": _gelu,
    "softmax": _softmax,
    "log_softmax": _log_softmax,
    "batch_matmul": _batch_matmul,
    "reshape": _reshape_like_input,
    "expand_dims": _reshape_like_input,
    "squeeze": _reshape_like_input,
    "sum": _sum,
    "mean": _mean,
    "transpose": _transpose,
    "select_v2": _select_v2,
    "cast": _cast,
    "concatenation": _concatenation,
}

from .vjps_conv import RULES as _CONV_RULES  # noqa: E402  (conv/pool rules live apart)

VJPS.update(_CONV_RULES)
