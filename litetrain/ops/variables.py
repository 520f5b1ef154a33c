"""Resource-variable ops and CALL_ONCE. Stateful: each kernel gets the runtime context.

The context provides ``variables`` (the interpreter's variable store) and
``call_once(subgraph_index)``. Handles are int32 scalars holding the resource id; when a
handle is a constant (VAR_HANDLE folded at load), prepare resolves the id once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .registry import NodeInfo, OpDef
from .shapes import one


def variable_key(attrs: Mapping[str, object]) -> tuple[str, str]:
    """``(container, shared_name)``: what identifies a variable across signatures."""
    def text(v) -> str:
        return v.decode("utf-8") if isinstance(v, bytes) else (v or "")
    return text(attrs.get("container")), text(attrs.get("shared_name"))


@dataclass(frozen=True)
class VariableAccess:
    """Prepared settings of READ_VARIABLE / ASSIGN_VARIABLE."""

    resource_id: int | None  # None: read the id from the handle at run time
    dtype: np.dtype | None = None  # what READ_VARIABLE's output holds
    copy: bool = True  # ASSIGN_VARIABLE: the value may alias a caller's array


def _resource_id(info: NodeInfo) -> int | None:
    handle = info.inputs[0]
    return None if handle is None or handle.value is None else int(
        np.asarray(handle.value).reshape(-1)[0])


def _prepare_read(info: NodeInfo) -> VariableAccess:
    if not info.outputs:
        raise ValueError("READ_VARIABLE needs its output type (out_dtypes=...)")
    return VariableAccess(_resource_id(info), info.outputs[0].dtype)


def _prepare_assign(info: NodeInfo) -> VariableAccess:
    return VariableAccess(_resource_id(info), copy=info.inputs[1].may_alias_input)


def _rid(s: VariableAccess, handle) -> int:
    return s.resource_id if s.resource_id is not None else int(handle.reshape(-1)[0])


def var_handle(ctx, attrs):
    return np.array(ctx.variables.resource_id(*variable_key(attrs)), np.int32)


def read_variable(ctx, s: VariableAccess, handle):
    return ctx.variables.read(_rid(s, handle), s.dtype)


def assign_variable(ctx, s: VariableAccess, handle, value):
    ctx.variables.assign(_rid(s, handle), value, copy=s.copy)


def call_once(ctx, attrs):
    ctx.call_once(attrs["init_subgraph_index"])


OPS = [
    OpDef("var_handle", var_handle, "VarHandleOptions", shape=lambda info: one(()),
          stateful=True),
    OpDef("read_variable", read_variable, "ReadVariableOptions", prepare=_prepare_read,
          stateful=True),
    OpDef("assign_variable", assign_variable, "AssignVariableOptions", prepare=_prepare_assign,
          shape=lambda info: (), stateful=True, num_outputs=0),
    OpDef("call_once", call_once, "CallOnceOptions", shape=lambda info: (), stateful=True,
          num_outputs=0),
]
