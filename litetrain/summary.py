"""A summary of a model for people and scripts: signatures, ops, Flex ops, variables,
parameters. Used by ``litetrain inspect``.

A summary must describe any file the reader accepts, including ones whose nodes lack
operands (the reader checks the graph, not each op's arity), so it never indexes a node's
inputs blindly. Text from the file (description, names) is printed with control
characters escaped: a model cannot clear the screen or retitle the terminal.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from . import dtypes
from .errors import ModelFormatError
from .ir import OMITTED, Model, Tensor
from .ops import has
from .ops.variables import variable_key

_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str, keep_newlines: bool = False) -> str:
    """``text`` with control characters (ESC, CR, bidi overrides...) written as escapes."""
    def escape(m: re.Match) -> str:
        return m.group().encode("unicode_escape").decode("ascii")
    text = _CONTROL.sub(escape, text)
    return text if keep_newlines else text.replace("\n", "\\n")


def _name(attrs) -> str:
    try:
        return variable_key(attrs)[1]
    except (ModelFormatError, UnicodeDecodeError):
        return repr(attrs.get("shared_name"))


def _spec(t: Tensor) -> dict:
    return {"name": t.name, "dtype": dtypes.name(t.dtype), "shape": list(t.signature_shape)}


def _variables(model: Model) -> dict[str, dict]:
    """Variables by shared name, with the shape/dtype their initial value gives."""
    out: dict[str, dict] = {}
    for sg in model.subgraphs:
        handles = {}
        for node in sg.nodes:
            if node.op == "var_handle" and node.outputs:
                handles[node.outputs[0]] = _name(node.attrs)
                out.setdefault(handles[node.outputs[0]], {"dtype": None, "shape": None,
                                                          "initialized": False})
            elif (node.op == "assign_variable" and len(node.inputs) > 1
                  and node.inputs[0] in handles and node.inputs[1] >= 0):
                value = sg.tensors[node.inputs[1]]
                info = out[handles[node.inputs[0]]]
                if value.data is not None and not info["initialized"]:
                    info.update(dtype=dtypes.name(value.dtype), shape=list(value.shape),
                                initialized=True)
            elif (node.op == "read_variable" and node.inputs and node.outputs
                  and node.inputs[0] in handles):
                info = out[handles[node.inputs[0]]]
                if info["dtype"] is None:
                    t = sg.tensors[node.outputs[0]]
                    info.update(dtype=dtypes.name(t.dtype), shape=list(t.signature_shape))
    return out


def summarize(model: Model, size_bytes: int | None = None) -> dict:
    signatures = {}
    for sig in model.signatures:
        tensors = model.subgraphs[sig.subgraph_index].tensors
        signatures[sig.key] = {
            "subgraph": sig.subgraph_index,
            "inputs": {n: _spec(tensors[i]) for n, i in sig.inputs.items()},
            "outputs": {n: _spec(tensors[i]) for n, i in sig.outputs.items()},
        }
    subgraphs, flex, custom, unsupported = [], Counter(), Counter(), Counter()
    seen_buffers: set[int] = set()
    n_params = n_bytes = 0
    for sg in model.subgraphs:
        ops = Counter(node.op for node in sg.nodes)
        subgraphs.append({"name": sg.name, "nodes": len(sg.nodes), "ops": dict(ops)})
        for op, n in ops.items():
            if op.startswith("Flex"):
                flex[op] += n
            elif op == "custom" or op[:1].isupper():
                custom[op] += n
            if not has(op):
                unsupported[op] += n
        for node in sg.nodes:
            for i in node.inputs:
                t = sg.tensors[i] if i != OMITTED else None
                if t is None or t.data is None or t.buffer in seen_buffers:
                    continue
                seen_buffers.add(t.buffer)
                if t.dtype != dtypes.STRING:
                    n_params += math.prod(t.shape)
                    n_bytes += t.data.nbytes
    variables = _variables(model)
    var_elems = sum(math.prod(v["shape"]) for v in variables.values()
                    if v["shape"] is not None and -1 not in v["shape"])
    return {
        "file_bytes": size_bytes,
        "description": model.description,
        "signatures": signatures,
        "subgraphs": subgraphs,
        "flex_ops": dict(flex),
        "custom_ops": dict(custom),
        "unsupported_ops": dict(unsupported),
        "variables": variables,
        "variable_elements": var_elems,
        "constant_elements": n_params,
        "constant_bytes": n_bytes,
    }


def _shape(spec: dict) -> str:
    return f"{spec['dtype']}[{','.join(str(d) for d in spec['shape'])}]"


def format_summary(s: dict, path: str) -> str:
    """The summary as text; every string from the file goes through :func:`printable`."""
    return printable(_format({**s, "description": printable(s["description"])}, path),
                     keep_newlines=True)


def _format(s: dict, path: str) -> str:
    size = f"{s['file_bytes']:,} bytes" if s["file_bytes"] is not None else ""
    lines = [f"{path}  {size}  {s['description']}".rstrip(), "", "signatures:"]
    for key, sig in s["signatures"].items():
        ins = ", ".join(f"{n}: {_shape(v)}" for n, v in sig["inputs"].items())
        outs = ", ".join(f"{n}: {_shape(v)}" for n, v in sig["outputs"].items())
        lines.append(f"  {key}({ins}) -> {outs}   [subgraph {sig['subgraph']}]")
    lines += ["", "subgraphs:"]
    for i, sg in enumerate(s["subgraphs"]):
        ops = ", ".join(f"{op}×{n}" for op, n in sorted(sg["ops"].items()))
        lines.append(f"  {i} {sg['name'] or '(unnamed)'}: {sg['nodes']} ops  {ops}")
    for title, key in (("Flex ops", "flex_ops"), ("custom ops", "custom_ops"),
                       ("ops WITHOUT a litetrain kernel", "unsupported_ops")):
        if s[key]:
            lines += ["", f"{title}: " + ", ".join(f"{k}×{n}" for k, n in s[key].items())]
    if s["variables"]:
        lines += ["", f"variables ({len(s['variables'])}, "
                      f"{s['variable_elements']:,} elements):"]
        for name, v in s["variables"].items():
            shape = "?" if v["shape"] is None else ",".join(str(d) for d in v["shape"])
            init = "" if v["initialized"] else "  (no initial value in the file)"
            lines.append(f"  {name}: {v['dtype']}[{shape}]{init}")
    lines += ["", f"constants: {s['constant_elements']:,} elements, "
                  f"{s['constant_bytes']:,} bytes"]
    return "\n".join(lines)
