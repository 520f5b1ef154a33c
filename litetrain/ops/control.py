"""Control flow: WHILE and IF, TFLite builtins whose bodies are other subgraphs.

WHILE runs ``cond`` on the loop values (a boolean scalar) and, while it holds, replaces
them with ``body``'s outputs; its outputs are the final values. IF runs ``then`` or
``else`` on its inputs after the condition. Both are stateful (they call subgraphs through
the runtime context, and those subgraphs may read and write variables), so they keep their
place in the node order.
"""

from __future__ import annotations

import numpy as np

from .registry import NodeInfo, OpDef
from .shapes import one, shape_of


def _truth(value, what: str) -> bool:
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"{what} must be a single boolean, got shape {list(arr.shape)}")
    return bool(arr.reshape(()))


def while_op(ctx, attrs, *values):
    cond, body = attrs["cond_subgraph_index"], attrs["body_subgraph_index"]
    values = tuple(values)
    while _truth(ctx.call_subgraph(cond, values)[0], "WHILE's condition"):
        out = ctx.call_subgraph(body, values)
        if len(out) != len(values):
            raise ValueError(f"WHILE body subgraph {body} returns {len(out)} values for "
                             f"{len(values)} loop variables")
        values = tuple(out)
    return values if len(values) != 1 else values[0]


def if_op(ctx, attrs, cond, *inputs):
    branch = attrs["then_subgraph_index"] if _truth(cond, "IF's condition") else \
        attrs["else_subgraph_index"]
    out = tuple(ctx.call_subgraph(branch, tuple(inputs)))
    return out if len(out) != 1 else out[0]


def _while_shape(info: NodeInfo):
    """Loop values keep their shapes only if the body keeps them; assume it does for
    static ones (the file's own output shapes say otherwise where it matters)."""
    return tuple(one(shape_of(info, k))[0] for k in range(len(info.inputs)))


OPS = [
    OpDef("while", while_op, "WhileOptions", shape=_while_shape, stateful=True,
          num_outputs=None),
    OpDef("if", if_op, "IfOptions", stateful=True, num_outputs=None),
]
