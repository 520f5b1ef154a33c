"""Tracing Python into the IR: ``Graph`` records nodes, ``Value`` is a traced tensor.

Tracing is *concrete*: every op runs its kernel on the example values while it is
recorded, so each ``Value`` carries real data. Alongside, each op's shape rule computes the
tensor's *symbolic* shape (``-1`` for dims that depend on a dynamic signature input, e.g.
the batch) and the known values of small shape vectors, so one trace gives both a graph to
run and the ``shape_signature`` an exported file needs. Variable writes made while tracing
go to an overlay and never touch the real variables; the recorded subgraph is what
actually runs.

Autodiff and optimizers emit their nodes through the same ``Graph.op`` users call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from .. import dtypes, ir, options
from ..errors import LitetrainError, TraceError, user_frame
from ..ops import NodeInfo, TensorInfo, lookup
from ..runtime.simplify import drop_unused
from ..tflite import flex

__all__ = ["Graph", "TraceError", "Value", "user_frame"]

_KNOWN_MAX = 16  # integer tensors up to this size carry known values (shape vectors)


def _keep_dim(name: str):
    method = getattr(int, name)
    return lambda self, *other: Dim(method(self, *other))


class Dim(int):
    """A dim of a traced tensor that depends on a dynamic signature input (the batch,
    typically). It is its example size in every calculation, and whatever is computed
    from it stays a ``Dim``, so a constant built from it is known to depend on the batch
    (and reported if the graph is exported)."""

    __add__, __radd__ = _keep_dim("__add__"), _keep_dim("__radd__")
    __sub__, __rsub__ = _keep_dim("__sub__"), _keep_dim("__rsub__")
    __mul__, __rmul__ = _keep_dim("__mul__"), _keep_dim("__rmul__")
    __floordiv__, __rfloordiv__ = _keep_dim("__floordiv__"), _keep_dim("__rfloordiv__")
    __neg__, __mod__ = _keep_dim("__neg__"), _keep_dim("__mod__")


def _mentions_dim(value) -> bool:
    if isinstance(value, Dim):
        return True
    return isinstance(value, (tuple, list)) and any(_mentions_dim(v) for v in value)


class Value:
    """A tensor inside a trace: its index in the graph and its example data."""

    __array_priority__ = 1000  # make `ndarray op Value` defer to Value's operators

    def __init__(self, graph: Graph, index: int, data: np.ndarray):
        self.graph, self.index, self.data = graph, index, data

    @property
    def shape(self) -> tuple[int, ...]:
        """The example's shape; dims that depend on a dynamic input are :class:`Dim`."""
        sym = self.graph.symbolic.get(self.index)
        shape = self.data.shape
        if isinstance(sym, TensorInfo) and sym.shape is not None and -1 in sym.shape:
            return tuple(Dim(d) if s == -1 else d for d, s in zip(shape, sym.shape,
                                                                   strict=True))
        return shape

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


@dataclass(frozen=True)
class CustomGradient:
    """A block of nodes with one gradient rule (``Graph.custom_gradient``)."""

    first_node: int
    inputs: tuple[int, ...]
    rule: Callable


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
        # tensor index -> what shape rules know (symbolic shape, known values); a tensor
        # whose shape no rule could give maps to the reason instead.
        self.symbolic: dict[int, TensorInfo | str] = {}
        self.var_handles: dict[str, Value] = {}  # one VAR_HANDLE per variable, as TF does
        self.batch_constants: dict[int, str] = {}  # constants made from a Dim -> user line
        # output tensor -> its block's gradient rule (see ``custom_gradient``)
        self.custom_gradients: dict[int, CustomGradient] = {}

    def _tensor(self, name: str, data: np.ndarray, constant: bool,
                symbolic: TensorInfo | str | None = None) -> int:
        code = dtypes.from_numpy(data.dtype)
        self.tensors.append(ir.Tensor(name, code, tuple(data.shape),
                                      data=data if constant else None))
        k = len(self.tensors) - 1
        self.examples[k] = data
        self.symbolic[k] = symbolic if symbolic is not None else TensorInfo(
            data.dtype, tuple(data.shape), data if constant else None)
        return k

    def input(self, name: str, example: np.ndarray,
              shape: tuple[int | None, ...] | None = None) -> Value:
        """A signature input; ``shape`` marks dynamic dims with ``None``."""
        sym = tuple(example.shape) if shape is None else tuple(
            -1 if d is None else d for d in shape)
        idx = self._tensor(name, example, False, TensorInfo(example.dtype, sym))
        self.inputs.append(idx)
        return Value(self, idx, example)

    def const(self, value, dtype=None) -> Value:
        if _mentions_dim(value):
            arr = np.array(value, dtype=dtype or np.int32)
            arr.flags.writeable = False
            idx = self._tensor(f"const{len(self.tensors)}", arr, constant=True)
            self.batch_constants[idx] = user_frame()
            return Value(self, idx, arr)
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

    def custom_gradient(self, output: Value, inputs: Sequence[Value], first_node: int,
                        rule: Callable[[Value], Sequence[Value | None]]) -> None:
        """Give the nodes ``first_node ..`` up to the one making ``output`` one gradient
        rule: ``rule(d_output)`` returns each of ``inputs``' cotangents (emitted through
        this graph, builtin ops only). Autodiff uses it instead of the nodes' own rules
        when nothing else inside the block receives a gradient, and walks the nodes one by
        one otherwise, so the rule only has to be right, never complete."""
        self.custom_gradients[output.index] = CustomGradient(
            first_node, tuple(v.index for v in inputs), rule)

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

    def op(self, name: str, *inputs, _example=None, out_dtypes=None,
           **attrs) -> Value | tuple[Value, ...]:
        """Record one node; its outputs are computed now from the example values.

        ``out_dtypes`` gives the output types of ops whose inputs do not decide them
        (CAST, READ_VARIABLE, Restore). Ops with side effects outside the graph
        (checkpoint files) are not run while tracing: the caller passes their
        ``_example`` outputs instead.
        """
        opdef = lookup(name)
        full = options.defaults(opdef.options) if opdef.options else {}
        full.update(attrs)
        args = [None if x is None else self.lift(x) for x in inputs]
        arrays = [None if a is None else a.data for a in args]
        info = NodeInfo(name, full, tuple(None if a is None else self._concrete(a.index)
                                          for a in args),
                        tuple(TensorInfo(np.dtype(d), None) for d in out_dtypes or ()),
                        f"{self.name}: {name}")
        try:
            if _example is not None:
                out = _example
            elif opdef.stateful:
                out = opdef.kernel(self.ctx, opdef.settings(info), *arrays)
            else:
                out = opdef.kernel(opdef.settings(info), *arrays)
        except LitetrainError:
            raise
        except Exception as e:
            shapes = ", ".join("-" if a is None else f"{a.dtype}{list(a.shape)}"
                               for a in arrays)
            raise TraceError(f"{user_frame()}: {name}({shapes}) failed: {e}") from None
        outs = () if out is None else out if isinstance(out, tuple) else (out,)
        outs = tuple(np.asarray(o) for o in outs)
        symbolic = self._symbolic(opdef, full, args, outs)
        out_idx = tuple(self._tensor(f"{self.name}/{name}{len(self.nodes)}", o, False, sym)
                        for o, sym in zip(outs, symbolic, strict=True))
        if name.startswith(flex.PREFIX):
            full["custom_options"] = flex.encode_options(name[len(flex.PREFIX):], len(args),
                                                         full)
        self.nodes.append(ir.Node(name, tuple(ir.OMITTED if a is None else a.index
                                              for a in args), out_idx, full,
                                  opdef.min_version))
        values = tuple(Value(self, i, o) for i, o in zip(out_idx, outs, strict=True))
        if not values:
            return None
        return values[0] if len(values) == 1 else values

    def _concrete(self, k: int) -> TensorInfo:
        """A tensor as the example run sees it (prepare's view while tracing)."""
        data = self.examples[k]
        return TensorInfo(data.dtype, tuple(data.shape), data)

    def _symbolic(self, opdef, attrs, args, outs) -> list[TensorInfo | str]:
        """Each output's symbolic shape and known values, from the op's shape rule.

        Where no rule applies (or it cannot decide), an output of an op whose inputs all
        have static shapes takes its example's shape; otherwise the reason is recorded
        and reported if the graph is exported with a dynamic dim.
        """
        ins = [None if a is None else self.symbolic[a.index] for a in args]
        unknown = next((t for t in ins if isinstance(t, str)), None)
        static = unknown is None and all(t is None or (t.shape is not None and -1 not in t.shape)
                                         for t in ins)
        shaped = None
        if unknown is None and opdef.shape is not None:
            info = NodeInfo(opdef.name, attrs, tuple(ins),
                            tuple(TensorInfo(o.dtype, tuple(o.shape)) for o in outs))
            try:
                shaped = opdef.shape(info)
            except Exception as e:  # a rule that cannot decide (e.g. run-time values)
                reason = f"{opdef.name}: {e}"
            else:
                self._check_rule(opdef.name, shaped, outs)
        elif unknown is None:
            reason = f"op '{opdef.name}' has no shape rule"
        else:
            reason = unknown
        result = []
        for k, o in enumerate(outs):
            if shaped is not None:
                shape, known = shaped[k].shape, shaped[k].known
            elif static:
                shape, known = tuple(o.shape), None
            else:
                result.append(reason)
                continue
            if known is None and o.dtype.kind in "iu" and o.size <= _KNOWN_MAX and all(
                    t is None or t.value is not None or (
                        t.known is not None and None not in t.known) for t in ins):
                known = tuple(int(v) for v in o.reshape(-1).tolist())  # from known inputs
            value = o if known is not None and None not in known else None
            result.append(TensorInfo(o.dtype, tuple(shape), value, known))
        return result

    @staticmethod
    def _check_rule(op: str, shaped, outs) -> None:
        """A shape rule must agree with what the kernel made (-1 matches any size)."""
        ok = len(shaped) == len(outs) and all(
            len(s.shape) == o.ndim and all(d in (-1, e) for d, e in zip(s.shape, o.shape,
                                                                        strict=True))
            for s, o in zip(shaped, outs, strict=False))
        if not ok:
            raise TraceError(f"{user_frame()}: the shape rule of '{op}' gives "
                             f"{[list(s.shape) for s in shaped]} but its kernel made "
                             f"{[list(o.shape) for o in outs]} (a litetrain bug; please report)")

    def signature_shape(self, k: int) -> tuple[int, ...]:
        """Tensor ``k``'s shape with -1 for run-time dims; TraceError when unknown."""
        sym = self.symbolic[k]
        if isinstance(sym, str):
            users = [f"node {n} ({node.op})" for n, node in enumerate(self.nodes)
                     if k in node.outputs]
            raise TraceError(f"signature '{self.name}': the shape of tensor {k} "
                             f"('{self.tensors[k].name}', made by {', '.join(users)}) cannot "
                             f"be exported with a dynamic batch: {sym}")
        return sym.shape

    def subgraph(self) -> ir.Subgraph:
        """The recorded graph without pure nodes whose results nothing uses (a gradient
        rule yields every operand's gradient; the one for a model input goes unread)."""
        nodes = drop_unused(self.nodes, self.outputs, lambda n: lookup(n.op).stateful)
        return ir.Subgraph(self.name, self.tensors, list(self.inputs), list(self.outputs),
                           nodes)

    def dynamic_subgraph(self) -> ir.Subgraph:
        """:meth:`subgraph` with each tensor's ``shape_signature`` from the shape rules
        (-1 for dims that depend on a dynamic input), as an exported file needs."""
        sg = self.subgraph()
        used = {i for n in sg.nodes for i in (*n.inputs, *n.outputs)} | set(sg.inputs) | set(
            sg.outputs)
        tensors = []
        for k, t in enumerate(sg.tensors):
            if k in used and k in self.batch_constants:
                raise TraceError(f"{self.batch_constants[k]}: signature '{self.name}': the "
                                 f"constant {t.data.tolist()} depends on the batch size (it "
                                 "was computed from a dynamic dim); use -1 for the batch dim "
                                 "(e.g. in reshapes)")
            if k not in used or t.data is not None:
                tensors.append(t)
                continue
            sig = self.signature_shape(k)
            if -1 in sig:
                t = replace(t, shape=tuple(1 if d == -1 else d for d in sig),
                            shape_signature=tuple(sig))
            tensors.append(t)
        return replace(sg, tensors=tensors)
