"""Tracing Python into the IR: ``Graph`` records nodes, ``Value`` is a traced tensor.

Tracing is *concrete*: every op runs its kernel on the example values while it is
recorded, so each ``Value`` carries real data, and shapes and dtypes come from the same
kernels the interpreter runs. Variable writes made while tracing go to an overlay and
never touch the real variables; the recorded subgraph is what actually runs.

Autodiff and optimizers emit their nodes through the same ``Graph.op`` users call.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np

from .. import dtypes, ir
from ..errors import LitetrainError
from ..ops import lookup
from ..runtime.simplify import drop_unused
from ..tflite import flex, options

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


class TraceError(LitetrainError, ValueError):
    """The traced Python code did something that cannot become a graph."""


def user_frame() -> str:
    """``file:line`` of the innermost stack frame outside litetrain (the user's code)."""
    for frame in reversed(traceback.extract_stack()):
        if not frame.filename.startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno}"
    return "<unknown>"


class Value:
    """A tensor inside a trace: its index in the graph and its example data."""

    __array_priority__ = 1000  # make `ndarray op Value` defer to Value's operators

    def __init__(self, graph: Graph, index: int, data: np.ndarray):
        self.graph, self.index, self.data = graph, index, data

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def __repr__(self) -> str:
        return f"Value(%{self.index}, {self.dtype}{list(self.shape)})"

    def _bin(self, op: str, other, reverse: bool = False) -> Value:
        other = self.graph.lift(other, self.dtype)
        a, b = (other, self) if reverse else (self, other)
        return self.graph.op(op, a, b)

    def __add__(self, o): return self._bin("add", o)
    def __radd__(self, o): return self._bin("add", o, True)
    def __sub__(self, o): return self._bin("sub", o)
    def __rsub__(self, o): return self._bin("sub", o, True)
    def __mul__(self, o): return self._bin("mul", o)
    def __rmul__(self, o): return self._bin("mul", o, True)
    def __truediv__(self, o): return self._bin("div", o)
    def __rtruediv__(self, o): return self._bin("div", o, True)
    def __matmul__(self, o): return self._bin("batch_matmul", o)
    def __rmatmul__(self, o): return self._bin("batch_matmul", o, True)
    def __neg__(self): return self.graph.op("neg", self)
    def __pow__(self, o): return self._bin("pow", o)

    def __bool__(self) -> bool:
        raise TraceError(f"{user_frame()}: a traced tensor has no truth value while the "
                         "graph is built; use litetrain ops (e.g. where) instead of Python "
                         "if/while on tensor values")

    def __array__(self, dtype=None, copy=None):
        raise TraceError(f"{user_frame()}: a traced tensor cannot be turned into a NumPy "
                         "array inside a signature; use litetrain ops on it instead")


class Graph:
    """Builds one IR subgraph. ``ctx`` runs stateful kernels (variables) while tracing."""

    def __init__(self, name: str, ctx):
        self.name = name
        self.ctx = ctx
        self.tensors: list[ir.Tensor] = []
        self.nodes: list[ir.Node] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self._consts: dict[tuple, int] = {}
        self.examples: dict[int, np.ndarray] = {}  # tensor index -> value while tracing
        self.var_handles: dict[str, Value] = {}  # one VAR_HANDLE per variable, as TF does

    def _tensor(self, name: str, data: np.ndarray, constant: bool) -> int:
        code = dtypes.from_numpy(data.dtype)
        self.tensors.append(ir.Tensor(name, code, tuple(data.shape),
                                      data=data if constant else None))
        self.examples[len(self.tensors) - 1] = data
        return len(self.tensors) - 1

    def input(self, name: str, example: np.ndarray) -> Value:
        idx = self._tensor(name, example, constant=False)
        self.inputs.append(idx)
        return Value(self, idx, example)

    def const(self, value, dtype=None) -> Value:
        arr = np.asarray(value, dtype=dtype)
        if arr.dtype == np.float64 and dtype is None:
            arr = arr.astype(np.float32)
        key = (arr.dtype.str, arr.shape, arr.tobytes()) if arr.size <= 64 else None
        if key is not None and key in self._consts:
            idx = self._consts[key]
            return Value(self, idx, self.tensors[idx].data)
        arr = np.array(arr, copy=True)
        arr.flags.writeable = False
        idx = self._tensor(f"const{len(self.tensors)}", arr, constant=True)
        if key is not None:
            self._consts[key] = idx
        return Value(self, idx, arr)

    def lift(self, x, dtype=None) -> Value:
        """A Value for ``x``: Values pass through, numbers and arrays become constants."""
        if isinstance(x, Value):
            if x.graph is not self:
                raise TraceError(f"{user_frame()}: a tensor from another signature's trace "
                                 "was used here")
            return x
        if isinstance(x, (int, float, bool, np.number, np.bool_)) and dtype is not None:
            return self.const(np.asarray(x, dtype=dtype))
        if isinstance(x, (int, float, bool, list, tuple, np.ndarray, np.number, np.bool_)):
            return self.const(x)
        raise TraceError(f"{user_frame()}: cannot use a {type(x).__name__} as a tensor")

    def op(self, name: str, *inputs, _example=None, **attrs) -> Value | tuple[Value, ...]:
        """Record one node; its outputs are computed now from the example values.

        Ops with side effects outside the graph (checkpoint files) are not run while
        tracing: the caller passes their ``_example`` outputs instead.
        """
        opdef = lookup(name)
        full = options.defaults(opdef.options) if opdef.options else {}
        full.update(attrs)
        args = [None if x is None else self.lift(x) for x in inputs]
        arrays = [None if a is None else a.data for a in args]
        run_attrs = dict(full)
        run_attrs.setdefault("_out_types", attrs.get("_out_types", ()))
        try:
            if _example is not None:
                out = _example
            elif opdef.stateful:
                out = opdef.kernel(self.ctx, run_attrs, *arrays)
            else:
                out = opdef.kernel(run_attrs, *arrays)
        except LitetrainError:
            raise
        except Exception as e:
            shapes = ", ".join("-" if a is None else f"{a.dtype}{list(a.shape)}"
                               for a in arrays)
            raise TraceError(f"{user_frame()}: {name}({shapes}) failed: {e}") from None
        outs = () if out is None else out if isinstance(out, tuple) else (out,)
        out_idx = tuple(self._tensor(f"{self.name}/{name}{len(self.nodes)}",
                                     np.asarray(o), constant=False) for o in outs)
        stored = {k: v for k, v in full.items() if not k.startswith("_")}
        if name.startswith(flex.PREFIX):
            stored["custom_options"] = flex.encode_options(name[len(flex.PREFIX):], len(args),
                                                           stored)
        self.nodes.append(ir.Node(name, tuple(ir.OMITTED if a is None else a.index
                                              for a in args), out_idx, stored,
                                  opdef.min_version))
        values = tuple(Value(self, i, np.asarray(o)) for i, o in zip(out_idx, outs,
                                                                     strict=True))
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    def subgraph(self) -> ir.Subgraph:
        """The recorded graph without pure nodes whose results nothing uses (a gradient
        rule yields every operand's gradient; the one for a model input goes unread)."""
        nodes = drop_unused(self.nodes, self.outputs, lambda n: lookup(n.op).stateful)
        return ir.Subgraph(self.name, self.tensors, list(self.inputs), list(self.outputs),
                           nodes)
