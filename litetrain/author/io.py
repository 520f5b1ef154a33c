"""Checkpoint I/O inside signatures, as the on-device training tutorial writes it.

``save(path, variables)`` and ``restore(path, variables)`` emit the same FlexSave /
FlexRestore nodes TensorFlow's converter produces, so a module's ``save``/``restore``
signatures write and read TensorFlow V1 checkpoints when run on the desktop. Exported with
``save_format="builtin"``, they are lowered to signatures that move the weights as tensors
(see ``export.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .graph import TraceError, Value, user_frame
from .module import Variable


def checkpoint_name(var: Variable) -> str:
    """The tensor name a variable has in checkpoints: Keras' ``name:0`` form."""
    return var.name if var.name.endswith(":0") else f"{var.name}:0"


def _names(variables: Sequence[Variable], names: Sequence[str] | None) -> list[str]:
    names = list(names) if names is not None else [checkpoint_name(v) for v in variables]
    if len(names) != len(variables) or len(set(names)) != len(names):
        raise TraceError(f"{user_frame()}: need one distinct checkpoint name per variable")
    return names


def save(checkpoint_path: Value, variables: Sequence[Variable],
         names: Sequence[str] | None = None) -> Value:
    """Write ``variables`` to the V1 checkpoint at ``checkpoint_path``; returns the path."""
    g = checkpoint_path.graph
    names = _names(variables, names)
    reads = [v.read() for v in variables]
    tensor_names = g.const(np.array([n.encode() for n in names], dtype=object))
    g.op("FlexSave", checkpoint_path, tensor_names, *reads,
         T=tuple(v.dtype for v in variables), _example=())
    return checkpoint_path


def restore(checkpoint_path: Value, variables: Sequence[Variable],
            names: Sequence[str] | None = None) -> dict[str, Value]:
    """Assign every variable from the checkpoint; returns the restored tensors by name."""
    g = checkpoint_path.graph
    out = {}
    for var, name in zip(variables, _names(variables, names), strict=True):
        current = var.read().data  # the example value while tracing
        value = g.op("FlexRestore", checkpoint_path, g.const(np.array(name.encode(), object)),
                     dt=var.dtype, preferred_shard=-1, out_dtypes=(var.dtype,),
                     _example=current)
        var.assign(value)
        out[name] = value
    return out
