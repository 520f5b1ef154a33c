"""Execution plans: a subgraph compiled once into a flat list of steps.

Prepare resolves every node's kernel (an op without one is reported here, naming node,
op and signature, never halfway through a run), merges each node's attrs with what the
runtime knows (output dtypes, quantization), and lays out the constants. Invoke is then a
short loop over steps in the file's order, which is the only order that is correct for
variable reads and writes (they have no data edges).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from .. import dtypes
from ..errors import InvokeError, LitetrainError, UnsupportedOpError
from ..ir import OMITTED, Model, Subgraph
from ..ops import lookup


@dataclass(frozen=True)
class Step:
    index: int
    op: str
    kernel: Callable
    stateful: bool
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    out_dtypes: tuple[np.dtype, ...]
    attrs: MappingProxyType


class Plan:
    """One subgraph, ready to run. ``where`` names it in errors (e.g. "signature 'train'")."""

    def __init__(self, model: Model, subgraph_index: int, where: str):
        self.subgraph: Subgraph = model.subgraphs[subgraph_index]
        self.where = where
        sg = self.subgraph
        self.constants: list[np.ndarray | None] = [t.data for t in sg.tensors]
        steps, missing = [], []
        for k, node in enumerate(sg.nodes):
            try:
                opdef = lookup(node.op)
            except UnsupportedOpError:
                missing.append(f"node {k} ({node.op})")
                continue
            out_types = tuple(_numpy_dtype(sg.tensors[i].dtype) for i in node.outputs)
            attrs = dict(node.attrs)
            attrs["_out_types"] = out_types
            attrs["_out_shapes"] = tuple(sg.tensors[i].signature_shape for i in node.outputs)
            attrs["_in_quant"] = tuple(None if i == OMITTED else sg.tensors[i].quantization
                                       for i in node.inputs)
            attrs["_out_quant"] = tuple(sg.tensors[i].quantization for i in node.outputs)
            steps.append(Step(k, node.op, opdef.kernel, opdef.stateful, node.inputs,
                              node.outputs, out_types, MappingProxyType(attrs)))
        if missing:
            raise UnsupportedOpError(
                f"{where} (subgraph {subgraph_index} '{sg.name}') uses ops litetrain has no "
                f"kernel for: {', '.join(missing)}")
        self.steps = steps

    def run(self, ctx, feeds: dict[int, np.ndarray]) -> list[np.ndarray | None]:
        """Run every step; return the value of every tensor (``None`` where never set)."""
        values = list(self.constants)
        for i, v in feeds.items():
            values[i] = v
        for step in self.steps:
            args = [None if i == OMITTED else values[i] for i in step.inputs]
            try:
                if step.stateful:
                    out = step.kernel(ctx, step.attrs, *args)
                else:
                    out = step.kernel(step.attrs, *args)
            except LitetrainError as e:  # keep the error's kind, add where it happened
                raise type(e)(f"{self.where}: node {step.index} ({step.op}): {e}") from e
            except Exception as e:  # a kernel rejected its inputs: say where and with what
                raise InvokeError(self._failure(step, args, e)) from e
            if not step.outputs:
                continue
            if len(step.outputs) == 1:
                out = (out,)
            for i, v, dt in zip(step.outputs, out, step.out_dtypes, strict=True):
                v = np.asarray(v)
                values[i] = v if v.dtype == dt else v.astype(dt)
        return values

    def _failure(self, step: Step, args, e: Exception) -> str:
        shapes = ", ".join("-" if a is None else f"{a.dtype}{list(np.shape(a))}" for a in args)
        msg = str(e) or type(e).__name__
        return f"{self.where}: node {step.index} ({step.op}) failed on inputs ({shapes}): {msg}"


def _numpy_dtype(code: int) -> np.dtype:
    return dtypes.to_numpy(code) if code != dtypes.INT4 else np.dtype(np.int8)
