"""``convert(module)``: a module's signatures → one ``.tflite`` file.

* Each signature is traced once; each op's shape rule carries ``-1`` from the dynamic
  dims of the signature's inputs to every tensor that depends on them, which becomes the
  tensor's ``shape_signature`` (dynamic batch). Use ``-1`` for the batch in reshapes: a
  size written as a number is a constant, whatever batch the file later runs at.
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
from .android import android_layout
from .graph import TraceError
from .module import Module, trace

# Dynamic dims are traced at this size; shape rules turn them into -1 in the file.
_TRACE_BATCH = 2


def _example(spec, batch: int) -> np.ndarray:
    shape = [batch if d is None else d for d in spec.shape]
    dt = spec.numpy_dtype
    if dt.kind == "O":
        return np.full(shape, b"", dtype=object)
    return np.zeros(shape, dt)


def _trace_signature(module: Module, bound) -> tuple[ir.Subgraph, dict, dict]:
    """One trace of a signature; its tensors' shape signatures come from shape rules."""
    sig = bound.sig
    with np.errstate(all="ignore"):
        traced = trace(module, sig, [_example(s, _TRACE_BATCH) for s in sig.specs])
    sg = traced.graph.dynamic_subgraph()
    inputs = dict(zip(sig.input_names, sg.inputs, strict=True))
    if traced.outputs is not None:
        outputs = dict(traced.outputs)
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


def convert(module: Module, save_format: str = "builtin", flower_android: bool = False
            ) -> bytes:
    """The module's signatures as ``.tflite`` bytes (see the module docstring).

    ``flower_android=True`` also writes Flower's Android layout (a ``parameters``
    signature and ``restore`` taking ``a0, a1, …``; see ``author/android.py``), so the same
    file serves Flower's Android client; it needs the builtin save format."""
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
    data = write_model(model)
    if flower_android:
        if save_format != "builtin":
            raise ValueError("flower_android needs save_format='builtin' (weights as tensors)")
        data = android_layout(data)
    return data
