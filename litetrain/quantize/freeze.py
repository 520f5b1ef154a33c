"""Turn an interpreter's inference signatures into pure, constant-weight subgraphs.

* variables are frozen: every READ_VARIABLE becomes a constant holding the variable's
  current value (so a personalised model is quantized with its personalised weights);
* constant subexpressions are folded (e.g. the transpose of a conv kernel);
* ``BATCH_MATMUL(x, W)`` (+ ``ADD`` of a bias) with constant ``W`` becomes
  ``FULLY_CONNECTED(x, Wᵀ, b)``, the op quantization tools know how to quantize;
* unused tensors are dropped and indices renumbered.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import dtypes
from ..ir import OMITTED, Model, Node, Signature, Subgraph, Tensor
from ..ops import lookup
from ..ops.evaluate import evaluate

TRAINING_OPS = frozenset({"assign_variable"})


def inference_signatures(model: Model) -> tuple[list[Signature], list[str]]:
    """Signatures worth keeping (no variable writes, no string inputs), and the dropped."""
    keep, dropped = [], []
    for sig in model.signatures:
        sg = model.subgraphs[sig.subgraph_index]
        writes = any(n.op in TRAINING_OPS or n.op.startswith("Flex") for n in sg.nodes)
        strings = any(sg.tensors[i].dtype == dtypes.STRING for i in sig.inputs.values())
        (dropped if writes or strings else keep).append(sig)
    return keep, [s.key for s in dropped]


def _const(t: Tensor, value: np.ndarray) -> Tensor:
    value = np.asarray(value)
    return dataclasses.replace(t, data=value, dtype=dtypes.from_numpy(value.dtype),
                               shape=tuple(value.shape), shape_signature=None,
                               is_variable=False, buffer=0)


def freeze(interpreter, sig: Signature) -> tuple[Subgraph, Signature]:
    """The signature's subgraph with weights as constants, and the signature remapped
    to it (its subgraph index left for the caller to set)."""
    model = interpreter.model
    sg = model.subgraphs[sig.subgraph_index]
    tensors = list(sg.tensors)
    plan = interpreter.plan(sig.subgraph_index)
    interpreter_values = interpreter.variables
    nodes: list[Node] = []
    handles: dict[int, int] = {}
    for node in sg.nodes:
        if node.op == "call_once":
            interpreter.call_once(node.attrs["init_subgraph_index"])
            continue
        if node.op == "var_handle":
            handles[node.outputs[0]] = int(plan.constants[node.outputs[0]].reshape(-1)[0])
            continue
        if node.op == "read_variable":
            rid = handles[node.inputs[0]]
            dtype = dtypes.to_numpy(tensors[node.outputs[0]].dtype)
            tensors[node.outputs[0]] = _const(tensors[node.outputs[0]],
                                              interpreter_values.read(rid, dtype))
            continue
        inputs = [tensors[i] if i != OMITTED else None for i in node.inputs]
        opdef = lookup(node.op)
        if not opdef.stateful and all(t is None or t.data is not None for t in inputs):
            out = evaluate(node.op, *[None if t is None else t.data for t in inputs],
                           attrs=node.attrs, out_dtypes=[dtypes.storage(tensors[i].dtype)
                                                         for i in node.outputs])
            outs = out if isinstance(out, tuple) else (out,)
            for i, v in zip(node.outputs, outs, strict=True):
                tensors[i] = _const(tensors[i], v)
            continue
        nodes.append(node)
    frozen, new = prune(Subgraph(sg.name, tensors, list(sg.inputs), list(sg.outputs),
                                 fuse_dense(nodes, tensors)))
    return frozen, Signature(sig.key, -1, {k: new[i] for k, i in sig.inputs.items()},
                             {k: new[i] for k, i in sig.outputs.items()})


def fuse_dense(nodes: list[Node], tensors: list[Tensor]) -> list[Node]:
    users: dict[int, int] = {}
    for n in nodes:
        for i in n.inputs:
            users[i] = users.get(i, 0) + 1
    out: list[Node] = []
    skip: set[int] = set()
    for k, n in enumerate(nodes):
        if k in skip:
            continue
        w = tensors[n.inputs[1]] if n.op == "batch_matmul" else None
        if (w is None or w.data is None or w.data.ndim != 2 or n.attrs.get("adj_x")
                or tensors[n.inputs[0]].dtype != dtypes.FLOAT32):
            out.append(n)
            continue
        kernel = w.data if n.attrs.get("adj_y") else w.data.T
        kernel_index = len(tensors)
        tensors.append(_const(dataclasses.replace(w, name=w.name + "/fc_kernel"),
                              np.ascontiguousarray(kernel)))
        bias, result, activation = OMITTED, n.outputs[0], 0
        nxt = nodes[k + 1] if k + 1 < len(nodes) else None
        if (nxt is not None and nxt.op == "add" and users.get(result) == 1
                and nxt.inputs[0] == result and tensors[nxt.inputs[1]].data is not None
                and tensors[nxt.inputs[1]].data.shape == (kernel.shape[0],)):
            bias, result = nxt.inputs[1], nxt.outputs[0]
            activation = nxt.attrs.get("fused_activation_function", 0)
            skip.add(k + 1)
        out.append(Node("fully_connected", (n.inputs[0], kernel_index, bias), (result,),
                        {"fused_activation_function": activation, "keep_num_dims": True}))
    return out


def prune(sg: Subgraph) -> tuple[Subgraph, dict[int, int]]:
    """Drop tensors nothing uses; return the subgraph and the old -> new index map."""
    used = sorted({i for n in sg.nodes for i in (*n.inputs, *n.outputs) if i != OMITTED}
                  | set(sg.inputs) | set(sg.outputs))
    new = {old: k for k, old in enumerate(used)}

    def m(i: int) -> int:
        return OMITTED if i == OMITTED else new[i]

    nodes = [Node(n.op, tuple(map(m, n.inputs)), tuple(map(m, n.outputs)), n.attrs, n.version)
             for n in sg.nodes]
    return Subgraph(sg.name, [sg.tensors[i] for i in used], [new[i] for i in sg.inputs],
                    [new[i] for i in sg.outputs], nodes), new
