"""Helpers for gradient rules (``OpDef.vjp``).

A rule is ``vjp(g, attrs, ins, outs, dy) -> [cotangent or None per input]``: ``g`` is the
graph being traced (anything with ``op``/``const``, see ``litetrain.author.graph``), ``ins``
and ``outs`` are the node's traced values, ``dy`` the output cotangent (a list when the op
has several outputs). ``None`` means no gradient flows to that input. Rules emit builtin
ops only and never bake a batch size into the graph: shapes that may involve it come from
SHAPE ops, so exported files keep dynamic batches.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Rule = Callable[..., list]


def i32(g, values):
    return g.const(np.array(values, np.int32))


def shape_of(g, x):
    return g.op("shape", x, out_type=2)


def zeros(g, like):
    return g.op("zeros_like", like)


def unbroadcast(g, dx, x):
    """Sum ``dx`` over the dims along which ``x`` was broadcast, back to ``x``'s shape."""
    if dx.shape == x.shape:
        return dx
    lead = dx.ndim - x.ndim
    axes = list(range(lead)) + [lead + i for i, d in enumerate(x.shape)
                                if d == 1 and dx.shape[lead + i] != 1]
    summed = g.op("sum", dx, i32(g, axes), keep_dims=False)
    return g.op("reshape", summed, shape_of(g, x))


def mask(g, cond, dy, other=None):
    """``dy`` where ``cond`` holds, else ``other``. Without ``other``, ``dy`` times the
    condition cast to ``dy``'s type, as TensorFlow's ReluGrad computes it (a multiply
    streams; a select on an unpredictable condition is several times slower)."""
    if other is None:
        return dy * g.op("cast", cond, out_dtypes=(dy.dtype,))
    return g.op("select_v2", cond, dy, other)


def unary(fn: Callable) -> Rule:
    """A rule for a one-input op from ``fn(g, x, y, dy) -> dx``."""
    return lambda g, attrs, ins, outs, dy: [fn(g, ins[0], outs[0], dy)]


def reshape_like_input(g, attrs, ins, outs, dy):
    """Ops that only reshape (RESHAPE, EXPAND_DIMS, SQUEEZE): reshape back."""
    return [g.op("reshape", dy, shape_of(g, ins[0]))] + [None] * (len(ins) - 1)
