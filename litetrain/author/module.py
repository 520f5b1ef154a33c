"""Modules, variables and signatures: the tutorial's ``tf.Module`` shape, without TF.

``@signature(TensorSpec([None, 28, 28]), ...)`` marks a method as an entry point. Calling
it traces the body into the IR once per input shapes (see ``graph.py``), then runs the
recorded subgraph on the interpreter's ``Plan`` against the module's variables: what runs
on the desktop is the graph a device would run.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .. import ir
from ..errors import SignatureError
from ..runtime.plan import Plan
from .context import ModuleRuntime, TraceContext, current_graph, recording
from .graph import Graph, TraceError, Value, user_frame


@dataclass(frozen=True)
class TensorSpec:
    """A signature input: ``shape`` with ``None`` for dynamic dims, and a dtype."""

    shape: Sequence[int | None]
    dtype: type | np.dtype | str = np.float32
    name: str | None = None

    @property
    def numpy_dtype(self) -> np.dtype:
        if self.dtype in (str, bytes, np.bytes_, np.str_, "string"):
            return np.dtype(object)
        return np.dtype(self.dtype)

    def check(self, value, where: str) -> np.ndarray:
        want = self.numpy_dtype
        if want.kind == "O":
            arr = np.asarray(value, dtype=object)
            for idx, item in np.ndenumerate(arr):  # strings travel as bytes, as in TFLite
                item = os.fspath(item) if isinstance(item, os.PathLike) else item
                arr[idx] = item.encode("utf-8") if isinstance(item, str) else item
        elif isinstance(value, (np.ndarray, np.generic)):
            arr = np.asarray(value)
            if arr.dtype != want:
                raise SignatureError(f"{where}: expected {want} values, got {arr.dtype}")
        else:
            arr = np.asarray(value, dtype=want)
        shape = tuple(self.shape)
        if arr.ndim != len(shape) or any(s is not None and s != d
                                         for s, d in zip(shape, arr.shape, strict=True)):
            dims = ",".join("None" if s is None else str(s) for s in shape)
            raise SignatureError(f"{where}: expected shape [{dims}], got {list(arr.shape)}")
        return arr


class Variable:
    """A named, persistent tensor. Its value lives in the runtime of the module that uses
    it; ``initial_value`` seeds it the first time a signature touches it."""

    def __init__(self, initial_value, name: str, trainable: bool = True, dtype=None):
        self.initial_value = np.array(initial_value, dtype=dtype)
        if self.initial_value.dtype == np.float64 and dtype is None:
            self.initial_value = self.initial_value.astype(np.float32)
        self.name = name
        self.trainable = trainable
        self._runtimes: list[ModuleRuntime] = []

    @property
    def shape(self) -> tuple[int, ...]:
        return self.initial_value.shape

    @property
    def dtype(self) -> np.dtype:
        return self.initial_value.dtype

    def __repr__(self) -> str:
        return f"Variable('{self.name}', {self.dtype}{list(self.shape)})"

    def _handle(self, graph: Graph) -> Value:
        runtime = graph.ctx.runtime
        store = runtime.variables
        rid = store.resource_id("", self.name)
        if runtime.owners.setdefault(self.name, self) is not self:
            raise TraceError(f"{user_frame()}: two different variables are named "
                             f"'{self.name}'; give them distinct names")
        if rid not in store.values:
            store.values[rid] = self.initial_value.copy()
        if self.name not in graph.var_handles:
            graph.var_handles[self.name] = graph.op("var_handle", container="",
                                                    shared_name=self.name)
        return graph.var_handles[self.name]

    def read(self) -> Value:
        g = current_graph(f"reading variable '{self.name}'")
        return g.op("read_variable", self._handle(g), out_dtypes=(self.dtype,))

    def value(self) -> Value:
        return self.read()

    def assign(self, value) -> None:
        g = current_graph(f"assigning variable '{self.name}'")
        g.op("assign_variable", self._handle(g), g.lift(value, self.dtype))

    def assign_add(self, delta) -> None:
        self.assign(self.read() + delta)

    def assign_sub(self, delta) -> None:
        self.assign(self.read() - delta)


class Module:
    """Base class for models with signatures (``tf.Module`` in the tutorial)."""

    @property
    def _runtime(self) -> ModuleRuntime:
        rt = self.__dict__.get("_litetrain_runtime")
        if rt is None:
            rt = self.__dict__["_litetrain_runtime"] = ModuleRuntime()
        return rt

    def variable_values(self) -> dict[str, np.ndarray]:
        """Copies of the current value of every variable a signature has touched."""
        return self._runtime.variables.by_name()

    def signatures(self) -> dict[str, BoundSignature]:
        return {name: getattr(self, name) for name, attr in inspect.getmembers(type(self))
                if isinstance(attr, SignatureFunction)}


class SignatureFunction:
    """The descriptor ``@signature`` puts on the class."""

    def __init__(self, fn: Callable, specs: tuple[TensorSpec, ...]):
        self.fn, self.specs = fn, specs
        params = list(inspect.signature(fn).parameters)[1:]
        if len(params) != len(specs):
            raise TypeError(f"@signature for {fn.__name__} gives {len(specs)} specs for "
                            f"{len(params)} parameters {params}")
        self.input_names = [s.name or p for s, p in zip(specs, params, strict=True)]
        functools.update_wrapper(self, fn)

    def __set_name__(self, owner, name: str) -> None:
        self.key = name

    def __get__(self, obj, objtype=None):
        return self if obj is None else BoundSignature(obj, self)


def signature(*specs: TensorSpec) -> Callable[[Callable], SignatureFunction]:
    """Mark a method of a :class:`Module` as a signature with these input specs."""
    for s in specs:
        if not isinstance(s, TensorSpec):
            raise TypeError(f"@signature takes TensorSpec arguments, got {s!r}")
    return lambda fn: SignatureFunction(fn, specs)


@dataclass
class Trace:
    """One traced signature: its subgraph, output structure, and the prepared plan."""

    subgraph: ir.Subgraph
    outputs: dict[str, int] | None  # None: a single unnamed output
    plan: Plan
    graph: Graph  # symbolic shapes for export (Graph.dynamic_subgraph)


def _flatten_outputs(result) -> tuple[list[tuple[str, Value]], bool]:
    if result is None:
        return [], True
    if isinstance(result, Value):
        return [("output_0", result)], False
    if isinstance(result, dict):
        items = list(result.items())
    elif isinstance(result, (tuple, list)):
        items = [(f"output_{i}", v) for i, v in enumerate(result)]
    else:
        raise TraceError(f"a signature must return a tensor, a dict or a tuple of tensors, "
                         f"got {type(result).__name__}")
    for name, v in items:
        if not isinstance(v, Value):
            raise TraceError(f"signature output '{name}' is a {type(v).__name__}, not a "
                             "traced tensor")
    return items, True


def trace(module: Module, sig: SignatureFunction, arrays: list[np.ndarray]) -> Trace:
    """Record ``sig``'s body for inputs shaped like ``arrays``."""
    graph = Graph(sig.key, TraceContext(module._runtime))
    with recording(graph):
        values = [graph.input(f"{sig.key}_{n}", a, tuple(spec.shape)) for n, a, spec in
                  zip(sig.input_names, arrays, sig.specs, strict=True)]
        result = sig.fn(module, *values)
    items, named = _flatten_outputs(result)
    outputs = {}
    for name, v in items:
        if v.graph is not graph:
            raise TraceError(f"signature '{sig.key}' returns a tensor from another trace")
        outputs[name] = v.index
        if v.index not in graph.outputs:
            graph.outputs.append(v.index)
    sg = graph.subgraph()
    model = ir.Model([sg], [ir.Signature(sig.key, 0, dict(zip(sig.input_names, graph.inputs,
                                                             strict=True)), outputs)])
    ir.verify(model)
    plan = Plan(model, 0, f"signature '{sig.key}'", module._runtime.variables)
    return Trace(sg, outputs if named else None, plan, graph)


class BoundSignature:
    """``module.train`` : call it like the method; it runs the traced graph."""

    def __init__(self, module: Module, sig: SignatureFunction):
        self.module, self.sig = module, sig

    def get_concrete(self, *args) -> Trace:
        arrays = [spec.check(a, f"signature '{self.sig.key}' input '{n}'") for spec, n, a in
                  zip(self.sig.specs, self.sig.input_names, args, strict=True)]
        cache = self.module.__dict__.setdefault("_litetrain_traces", {})
        key = (self.sig.key, tuple(a.shape for a in arrays))
        if key not in cache:
            cache[key] = trace(self.module, self.sig, arrays)
        return cache[key]

    def __call__(self, *args, **kwargs):
        names = self.sig.input_names
        if len(args) > len(names):
            raise SignatureError(f"signature '{self.sig.key}' takes {len(names)} inputs "
                                 f"({', '.join(names)}), got {len(args)}")
        given = dict(zip(names, args, strict=False))
        for k, v in kwargs.items():
            if k not in names or k in given:
                raise SignatureError(f"signature '{self.sig.key}': unexpected or repeated "
                                     f"input '{k}'; it takes {', '.join(names)}")
            given[k] = v
        missing = [n for n in names if n not in given]
        if missing:
            raise SignatureError(f"signature '{self.sig.key}': missing {missing}")
        ordered = [given[n] for n in names]
        tr = self.get_concrete(*ordered)
        arrays = [spec.check(a, f"input '{n}'") for spec, n, a in
                  zip(self.sig.specs, names, ordered, strict=True)]
        rt = self.module._runtime
        with rt.variables.transaction():
            values = tr.plan.run(rt, dict(zip(tr.subgraph.inputs, arrays, strict=True)))
        if tr.outputs is None:
            return None if not tr.subgraph.outputs else np.array(values[tr.subgraph.outputs[0]])
        return {k: np.array(values[i], copy=True) for k, i in tr.outputs.items()}
