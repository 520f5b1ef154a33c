"""Reverse mode as a graph-to-graph transform.

``GradientTape`` remembers where in the trace it started. ``gradient(target, sources)``
walks the recorded nodes backwards from ``target``, visiting only nodes that lie on a path
from a source to the target (so frozen variables and unrelated branches cost nothing),
and emits each op's VJP through the same ``Graph.op`` users call. Fan-out is merged with
``add``. A variable's gradient is the sum over every read of it since the tape started.

A block of nodes with a rule of its own (``Graph.custom_gradient``, e.g. batch
normalisation's few-pass gradient) is differentiated by that rule when its output is the
only tensor of the block that receives a gradient; otherwise node by node.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..ops import lookup
from .context import current_graph
from .graph import Graph, TraceError, Value, user_frame
from .module import Variable


class GradientTape:
    """``with GradientTape() as tape: loss = ...`` then ``tape.gradient(loss, variables)``."""

    def __enter__(self) -> GradientTape:
        self.graph: Graph = current_graph("GradientTape")
        self.start = len(self.graph.nodes)
        return self

    def __exit__(self, *exc) -> None:
        self.stop = len(self.graph.nodes)

    def _reads(self, var: Variable) -> list[int]:
        """Output tensors of every read of ``var`` recorded on this tape."""
        g = self.graph
        handle = g.var_handles.get(var.name)
        if handle is None:
            return []
        stop = getattr(self, "stop", len(g.nodes))
        return [n.outputs[0] for n in g.nodes[self.start:stop]
                if n.op == "read_variable" and n.inputs[0] == handle.index]

    def gradient(self, target: Value, sources: Sequence[Variable | Value]
                 ) -> list[Value | None]:
        g = self.graph
        if not isinstance(target, Value) or target.graph is not g:
            raise TraceError(f"{user_frame()}: gradient target must be a tensor of this trace")
        source_tensors = [self._reads(s) if isinstance(s, Variable) else [s.index]
                          for s in sources]
        stop = getattr(self, "stop", len(g.nodes))
        nodes = list(range(self.start, stop))
        # Forward: which tensors depend on a source.
        live = {i for ts in source_tensors for i in ts}
        for k in nodes:
            n = g.nodes[k]
            if any(i in live for i in n.inputs):
                live.update(n.outputs)
        if target.index not in live:
            return [None] * len(sources)
        grads: dict[int, Value] = {target.index: _ones_like(g, target)}
        skip_from = None  # nodes from here up to the last handled block are done
        for k in reversed(nodes):
            if skip_from is not None and k >= skip_from:
                continue
            n = g.nodes[k]
            if not any(i in grads for i in n.outputs) or not any(i in live for i in n.inputs):
                continue
            block = _custom_block(g, n, grads, self.start)
            if block is not None:
                for i, d in zip(block.inputs, block.rule(grads[n.outputs[0]]), strict=True):
                    if d is not None and i in live:
                        grads[i] = grads[i] + d if i in grads else d
                skip_from = block.first_node
                continue
            rule = lookup(n.op).vjp
            if rule is None:
                raise TraceError(f"{user_frame()}: no gradient rule for op '{n.op}' (node "
                                 f"{k}) on the path from the sources to the target")
            ins = [None if i < 0 else Value(g, i, g.examples[i]) for i in n.inputs]
            outs = [Value(g, i, g.examples[i]) for i in n.outputs]
            douts = [grads[i] if i in grads else g.op("zeros_like", o) for i, o in
                     zip(n.outputs, outs, strict=True)]
            dins = rule(g, n.attrs, ins, outs, douts[0] if len(douts) == 1 else douts)
            for i, d in zip(n.inputs, dins, strict=True):
                if d is None or i < 0 or i not in live:
                    continue
                grads[i] = grads[i] + d if i in grads else d
        out: list[Value | None] = []
        for ts in source_tensors:
            parts = [grads[i] for i in ts if i in grads]
            total = None
            for p in parts:
                total = p if total is None else total + p
            out.append(total)
        return out


def _custom_block(g: Graph, node, grads: dict, start: int):
    """The custom-gradient block ``node`` ends, if its rule may replace the walk: the
    block lies on the tape and no tensor made inside it but the output (and the rule's
    own inputs) has a gradient from elsewhere."""
    if len(node.outputs) != 1:
        return None
    block = g.custom_gradients.get(node.outputs[0])
    if block is None or block.first_node < start:
        return None
    own = {node.outputs[0], *block.inputs}
    for m in g.nodes[block.first_node:]:
        if m is node:
            return block
        if any(i in grads and i not in own for i in m.outputs):
            return None
    return None


def _ones_like(g: Graph, x: Value) -> Value:
    """The seed cotangent (builtin ops only: TFLite has no ONES_LIKE)."""
    if x.ndim == 0:
        return g.const(1, x.dtype)
    return g.op("fill", g.op("shape", x, out_type=2), g.const(1, x.dtype))
