"""Resource-variable ops and CALL_ONCE. Stateful: each kernel gets the runtime context.

The context provides ``variables`` (a :class:`~litetrain.runtime.variables.VariableStore`)
and ``call_once(subgraph_index)``. Handles are int32 scalars holding the resource id.
"""

from __future__ import annotations

import numpy as np

from ..runtime.variables import variable_key
from .registry import OpDef


def var_handle(ctx, attrs):
    return np.array(ctx.variables.resource_id(*variable_key(attrs)), np.int32)


def _rid(attrs, handle) -> int:
    """The resource id: resolved at prepare time when the handle is a constant."""
    rid = attrs.get("_resource_id")
    return rid if rid is not None else int(handle.reshape(-1)[0])


def read_variable(ctx, attrs, handle):
    return ctx.variables.read(_rid(attrs, handle), attrs["_out_types"][0])


def assign_variable(ctx, attrs, handle, value):
    ctx.variables.assign(_rid(attrs, handle), value,
                         copy=attrs.get("_value_may_alias_input", True))


def call_once(ctx, attrs):
    ctx.call_once(attrs["init_subgraph_index"])


OPS = [
    OpDef("var_handle", var_handle, "VarHandleOptions", stateful=True),
    OpDef("read_variable", read_variable, "ReadVariableOptions", stateful=True),
    OpDef("assign_variable", assign_variable, "AssignVariableOptions", stateful=True),
    OpDef("call_once", call_once, "CallOnceOptions", stateful=True),
]
