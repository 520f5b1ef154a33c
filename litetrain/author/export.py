"""``convert(module)``: a module's signatures → one ``.tflite`` file.

* Each signature is traced at two batch sizes; the graphs must be identical but for
  dims, and dims that differ become ``-1`` in ``shape_signature`` (dynamic batch).
* Variables are initialised as TensorFlow's converter does it: an init subgraph of
  VAR_HANDLE + ASSIGN_VARIABLE(constant) pairs holding the module's *current* values,
  reached through a CALL_ONCE at the start of every signature.
* ``save_format="builtin"`` (default) lowers FlexSave/FlexRestore: ``save`` returns the
  weights as outputs and ``restore`` takes them as inputs, so the file needs no Flex
  delegate; metadata tells litetrain's runners to do the checkpoint file I/O, so the
  tutorial's ``save(checkpoint_path=...)`` calls work unchanged. ``save_format="flex"``
  keeps the Flex ops, as TensorFlow's converter emits them.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from .. import dtypes, ir
from .._version import __version__ as _version
from ..runtime.checkpoint_io import CHECKPOINT_IO_KEY
from ..tflite.writer import write_model
from .graph import TraceError
from .module import Module, trace

_BATCHES = (2, 3)


def _example(spec, batch: int) -> np.ndarray:
    shape = [batch if d is None else d for d in spec.shape]
    dt = spec.numpy_dtype
    if dt.kind == "O":
        return np.full(shape, b"", dtype=object)
    return np.zeros(shape, dt)


def _same_attrs(a, b) -> bool:
    if a.keys() != b.keys():
        return False
    for k, v in a.items():
        w = b[k]
        same = np.array_equal(v, w) if isinstance(v, np.ndarray) else v == w
        if not same:
            return False
    return True


def _merge(key: str, a: ir.Subgraph, b: ir.Subgraph) -> ir.Subgraph:
    """One subgraph whose dims are -1 where the two traces' shapes differ."""
    where = f"signature '{key}'"
    if len(a.nodes) != len(b.nodes) or len(a.tensors) != len(b.tensors):
        raise TraceError(f"{where} builds a different graph for batch sizes {_BATCHES}: "
                         "does Python code branch on a shape?")
    for k, (na, nb) in enumerate(zip(a.nodes, b.nodes, strict=True)):
        if (na.op, na.inputs, na.outputs) != (nb.op, nb.inputs, nb.outputs) or \
                not _same_attrs(na.attrs, nb.attrs):
            raise TraceError(f"{where}: node {k} ({na.op}) differs between batch sizes "
                             f"{_BATCHES}")
    tensors = []
    for i, (ta, tb) in enumerate(zip(a.tensors, b.tensors, strict=True)):
        if ta.dtype != tb.dtype or len(ta.shape) != len(tb.shape):
            raise TraceError(f"{where}: tensor {i} '{ta.name}' changes type or rank with the "
                             "batch size")
        if (ta.data is None) != (tb.data is None) or (
                ta.data is not None and not np.array_equal(ta.data, tb.data)):
            users = [f"node {k} ({n.op})" for k, n in enumerate(a.nodes) if i in n.inputs]
            raise TraceError(f"{where}: constant {list(ta.shape)} used by "
                             f"{', '.join(users) or 'no node'} depends on the batch size; "
                             "use -1 for the batch dim (e.g. in reshapes)")
        sig = tuple(-1 if da != db else da for da, db in zip(ta.shape, tb.shape, strict=True))
        dynamic = -1 in sig
        shape = tuple(1 if d == -1 else d for d in sig)
        tensors.append(replace(ta, shape=shape, shape_signature=sig if dynamic else None))
    return replace(a, tensors=tensors)


def _trace_signature(module: Module, bound) -> tuple[ir.Subgraph, dict, dict]:
    sig = bound.sig
    dynamic = any(d is None for s in sig.specs for d in s.shape)
    with np.errstate(all="ignore"):
        traces = [trace(module, sig, [_example(s, b) for s in sig.specs])
                  for b in (_BATCHES if dynamic else _BATCHES[:1])]
    sg = traces[0].subgraph if not dynamic else _merge(sig.key, traces[0].subgraph,
                                                       traces[1].subgraph)
    inputs = dict(zip(sig.input_names, sg.inputs, strict=True))
    if traces[0].outputs is not None:
        outputs = dict(traces[0].outputs)
    else:  # a single unnamed output, named as TensorFlow names it
        outputs = {"output_0": sg.outputs[0]} if sg.outputs else {}
    return sg, inputs, outputs


def _mark_resources(sg: ir.Subgraph) -> None:
    """VAR_HANDLE outputs are RESOURCE tensors in TFLite files."""
    for node in sg.nodes:
        if node.op == "var_handle":
            t = sg.tensors[node.outputs[0]]
            sg.tensors[node.outputs[0]] = replace(t, dtype=dtypes.RESOURCE)


def _init_subgraph(names: list[str], values: dict[str, np.ndarray]) -> ir.Subgraph:
    tensors, nodes = [], []
    for name in names:
        value = values[name]
        h = len(tensors)
        tensors.append(ir.Tensor(f"{name}/handle", dtypes.RESOURCE, ()))
        tensors.append(ir.Tensor(f"{name}/initial_value", dtypes.from_numpy(value.dtype),
                                 value.shape, data=value))
        nodes.append(ir.Node("var_handle", (), (h,), {"container": "", "shared_name": name}))
        nodes.append(ir.Node("assign_variable", (h, h + 1), ()))
    return ir.Subgraph("NoOp", tensors, [], [], nodes)


def _string_list(t: ir.Tensor) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v)
            for v in np.asarray(t.data, object).reshape(-1)]


def _lower_checkpoint_io(key: str, sg: ir.Subgraph, inputs: dict, outputs: dict
                         ) -> dict | None:
    """Replace FlexSave/FlexRestore by tensor outputs/inputs; describe them for runners."""
    saves = [n for n in sg.nodes if n.op == "FlexSave"]
    restores = [n for n in sg.nodes if n.op == "FlexRestore"]
    if not saves and not restores:
        return None
    if saves and restores:
        raise TraceError(f"signature '{key}' both saves and restores; split it in two")
    path_inputs = {n.inputs[0] for n in saves + restores}
    path_alias = [a for a, i in inputs.items() if i in path_inputs]
    if len(path_inputs) != 1 or len(path_alias) != 1:
        raise TraceError(f"signature '{key}': the checkpoint path must be one signature input")
    tensors: dict[str, str] = {}
    if saves:
        for node in saves:
            names = _string_list(sg.tensors[node.inputs[1]])
            for name, idx in zip(names, node.inputs[2:], strict=True):
                outputs[name] = idx
                tensors[name] = name
                if idx not in sg.outputs:
                    sg.outputs.append(idx)
        sg.nodes = [n for n in sg.nodes if n.op != "FlexSave"]
        return {"kind": "save", "path_input": path_alias[0], "tensors": tensors}
    for node in restores:
        (name,) = _string_list(sg.tensors[node.inputs[1]])
        (out,) = node.outputs
        inputs[name] = out
        sg.inputs.append(out)
        tensors[name] = name
    sg.nodes = [n for n in sg.nodes if n.op != "FlexRestore"]
    path_idx = inputs.pop(path_alias[0])
    sg.inputs.remove(path_idx)
    return {"kind": "restore", "path_input": path_alias[0], "tensors": tensors}


def convert(module: Module, save_format: str = "builtin") -> bytes:
    """The module's signatures as ``.tflite`` bytes (see the module docstring)."""
    if save_format not in ("builtin", "flex"):
        raise ValueError(f"save_format must be 'builtin' or 'flex', got {save_format!r}")
    bound = module.signatures()
    if not bound:
        raise TraceError(f"{type(module).__name__} has no @litetrain.signature methods")
    traced = {key: _trace_signature(module, b) for key, b in sorted(bound.items())}
    var_names: list[str] = []
    for sg, _, _ in traced.values():
        for node in sg.nodes:
            name = node.attrs.get("shared_name")
            if node.op == "var_handle" and name not in var_names:
                var_names.append(name)
    init_index = len(traced)
    subgraphs, signatures, io_meta = [], [], {}
    for s, (key, (sg, inputs, outputs)) in enumerate(traced.items()):
        sg = replace(sg, name=key, inputs=list(sg.inputs), outputs=list(sg.outputs),
                     nodes=list(sg.nodes), tensors=list(sg.tensors))
        _mark_resources(sg)
        if save_format == "builtin":
            meta = _lower_checkpoint_io(key, sg, inputs, outputs)
            if meta is not None:
                io_meta[key] = meta
        if var_names:
            sg.nodes.insert(0, ir.Node("call_once", (), (), {"init_subgraph_index": init_index}))
        subgraphs.append(sg)
        signatures.append(ir.Signature(key, s, dict(sorted(inputs.items())),
                                       dict(sorted(outputs.items()))))
    if var_names:
        values = module._runtime.variables.by_name()
        subgraphs.append(_init_subgraph(var_names, values))
    metadata = {CHECKPOINT_IO_KEY: json.dumps(io_meta).encode()} if io_meta else {}
    model = ir.Model(subgraphs, signatures, f"litetrain {_version}", 3, metadata)
    return write_model(model)
