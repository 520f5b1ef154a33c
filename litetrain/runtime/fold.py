"""Which nodes compute values that depend only on the input *shapes* of a subgraph.

TensorFlow's converter emits chains like SHAPE → SLICE → CONCATENATION → RESHAPE and
SHAPE → REDUCE_PROD → CAST → DIV that recompute the same small values on every step.
Such a node can be folded: for a given set of input shapes, its outputs are recorded once
and reused. The analysis is static and conservative:

* a tensor's *shape* is determined by the input shapes if it is an input or a constant,
  a READ_VARIABLE output with a fully static file shape, or the output of a pure node
  whose inputs all have determined shapes and whose ``OpDef.shape_inputs`` (the operands
  whose values decide the output shape, e.g. RESHAPE's shape) have fixed values; for an
  op that does not declare them, every non-float input must have a fixed value;
* a tensor's *value* is fixed if it is a constant, the output of SHAPE/RANK on a
  shape-determined tensor, or the output of a pure node whose inputs are all fixed.
"""

from __future__ import annotations

import numpy as np

from .. import dtypes
from ..ir import OMITTED, Node, Subgraph
from ..ops import OpDef, lookup

_FLOAT_TYPES = (dtypes.FLOAT32, dtypes.FLOAT16, dtypes.FLOAT64, dtypes.BFLOAT16)
_SHAPE_OF_INPUT = ("shape", "rank")


def _value_operands(sg: Subgraph, node: Node, opdef: OpDef) -> list[int]:
    """The inputs whose values (not only shapes) can change the output shape."""
    if opdef.shape_inputs is None:
        return [i for i in node.inputs if i != OMITTED and sg.tensors[i].dtype not in
                _FLOAT_TYPES]
    return [node.inputs[p] for p in opdef.shape_inputs
            if p < len(node.inputs) and node.inputs[p] != OMITTED]


def foldable_nodes(sg: Subgraph) -> set[int]:
    """Indices of nodes whose every output has a fixed value given the input shapes."""
    fixed = {i for i, t in enumerate(sg.tensors) if t.data is not None}
    shaped = set(sg.inputs) | fixed
    out: set[int] = set()
    for k, node in enumerate(sg.nodes):
        opdef = lookup(node.op)
        ins = [i for i in node.inputs if i != OMITTED]
        if opdef.stateful:
            t = sg.tensors[node.outputs[0]] if node.op == "read_variable" else None
            if t is not None and (t.shape_signature is None or -1 not in t.shape_signature):
                shaped.update(node.outputs)
            continue
        if node.op in _SHAPE_OF_INPUT:
            value_fixed = all(i in shaped for i in ins)
        else:
            value_fixed = all(i in fixed for i in ins)
        if value_fixed and node.outputs:
            fixed.update(node.outputs)
            shaped.update(node.outputs)
            out.add(k)
        elif all(i in shaped for i in ins) and all(
                i in fixed for i in _value_operands(sg, node, opdef)):
            shaped.update(node.outputs)
    return out


def shape_key(feeds: dict[int, np.ndarray]) -> tuple:
    return tuple((i, feeds[i].shape) for i in sorted(feeds))
