"""The one intermediate representation shared by the reader, the writer, the runtime
and the authoring front end.

A :class:`Model` holds subgraphs and signatures. A :class:`Subgraph` holds its tensors
(``Tensor`` objects, indexed by position, as in the ``.tflite`` file) and its nodes, in
execution order. Invariants, checked by :func:`verify`:

* single assignment: every tensor is produced at most once (by a node, or as a subgraph
  input, or as a constant);
* nodes are in execution order: a node only reads tensors that are constants, subgraph
  inputs, stateful (``is_variable``) tensors, or outputs of earlier nodes;
* a node input of ``-1`` means "optional input omitted";
* signature keys are unique; a signature's inputs are inputs of its subgraph, and its
  outputs are outputs (or inputs, or constants) of it: anything else would be silently
  ignored or pruned;
* VAR_HANDLE container and shared names are UTF-8 text.

Variable reads and writes have no data edges; that is why order matters.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from . import dtypes
from .errors import ModelFormatError

OMITTED = -1


@dataclass(frozen=True)
class Quantization:
    """Affine quantization parameters: ``real = scale * (q - zero_point)``.

    ``axis`` is the quantized dimension for per-channel parameters (``scale`` has more
    than one element); per-tensor parameters have one scale and one zero point.
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1


@dataclass
class Tensor:
    """A value of a subgraph: its static type and shape, and its data if it is a constant.

    ``shape`` is the concrete shape stored in the file; ``shape_signature`` keeps ``-1``
    for dynamic dims (``None`` when the file gives none, i.e. all dims are static).
    """

    name: str
    dtype: int
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...] | None = None
    data: np.ndarray | None = None
    quantization: Quantization | None = None
    is_variable: bool = False
    buffer: int = 0  # buffer index in the file; kept so a writer can share buffers

    @property
    def signature_shape(self) -> tuple[int, ...]:
        """The shape contract: ``-1`` marks a dim that is only known at run time."""
        return self.shape_signature if self.shape_signature is not None else self.shape

    def describe(self) -> str:
        dims = ",".join(str(d) for d in self.signature_shape)
        return f"'{self.name}' {dtypes.name(self.dtype)}[{dims}]"


@dataclass
class Node:
    """One operator application. ``op`` is the op table name (``fully_connected``,
    ``FlexReluGrad``, ...); ``attrs`` are its immutable settings."""

    op: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    attrs: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    version: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.attrs, MappingProxyType):
            self.attrs = MappingProxyType(dict(self.attrs))


@dataclass
class Subgraph:
    name: str
    tensors: list[Tensor]
    inputs: list[int]
    outputs: list[int]
    nodes: list[Node]


@dataclass
class Signature:
    """A named entry point: input/output alias names bound to tensors of one subgraph.

    The order of ``inputs``/``outputs`` is the file's (sorted by name for TF's
    converter); bind by name, never by position.
    """

    key: str
    subgraph_index: int
    inputs: dict[str, int]
    outputs: dict[str, int]


@dataclass
class Model:
    subgraphs: list[Subgraph]
    signatures: list[Signature]
    description: str = ""
    version: int = 3
    metadata: dict[str, bytes] = field(default_factory=dict)

    def signature(self, key: str) -> Signature:
        for sig in self.signatures:
            if sig.key == key:
                return sig
        raise KeyError(key)


def _defined_before_nodes(sg: Subgraph) -> set[int]:
    ready = set(sg.inputs)
    for i, t in enumerate(sg.tensors):
        if t.data is not None or t.is_variable:
            ready.add(i)
    return ready


def verify(model: Model) -> None:
    """Check the IR invariants; raise :class:`ModelFormatError` naming the first violation."""
    n_sub = len(model.subgraphs)
    for s, sg in enumerate(model.subgraphs):
        where = f"subgraph {s} '{sg.name}'"
        n = len(sg.tensors)
        for kind, idxs in (("input", sg.inputs), ("output", sg.outputs)):
            for i in idxs:
                if not 0 <= i < n:
                    raise ModelFormatError(
                        f"{where}: {kind} tensor index {i} out of range (has {n} tensors)")
        ready = _defined_before_nodes(sg)
        produced: set[int] = set()
        for k, node in enumerate(sg.nodes):
            at = f"{where}, node {k} ({node.op})"
            for i in node.inputs:
                if i == OMITTED:
                    continue
                if not 0 <= i < n:
                    raise ModelFormatError(f"{at}: input tensor index {i} out of range "
                                           f"(subgraph has {n} tensors)")
                if i not in ready:
                    later = any(i in m.outputs for m in sg.nodes[k:])
                    why = "a later node writes it (cycle or wrong order)" if later else \
                        "no node writes it and it is neither an input nor a constant"
                    raise ModelFormatError(
                        f"{at}: reads tensor {i} {sg.tensors[i].describe()} before it is "
                        f"defined: {why}")
            for i in node.outputs:
                if not 0 <= i < n:
                    raise ModelFormatError(f"{at}: output tensor index {i} out of range "
                                           f"(subgraph has {n} tensors)")
                if i in produced or i in sg.inputs or sg.tensors[i].data is not None:
                    raise ModelFormatError(
                        f"{at}: writes tensor {i} {sg.tensors[i].describe()} which is "
                        "already defined (the graph must be single-assignment)")
                produced.add(i)
                ready.add(i)
            if node.op == "var_handle":
                for attr in ("container", "shared_name"):
                    name = node.attrs.get(attr)
                    if isinstance(name, bytes):
                        try:
                            name.decode("utf-8")
                        except UnicodeDecodeError:
                            raise ModelFormatError(
                                f"{at}: {attr} {name[:60]!r} is not UTF-8 text") from None
            target = node.attrs.get("init_subgraph_index")
            if node.op == "call_once" and not (isinstance(target, int) and 0 <= target < n_sub
                                               and target != s):
                raise ModelFormatError(f"{at}: init_subgraph_index {target} is not another "
                                       f"subgraph (model has {n_sub})")
        for i in sg.outputs:
            if i not in ready:
                raise ModelFormatError(f"{where}: output tensor {i} "
                                       f"{sg.tensors[i].describe()} is never defined")
    keys: set[str] = set()
    for sig in model.signatures:
        where = f"signature '{sig.key}'"
        if sig.key in keys:
            raise ModelFormatError(f"{where} is defined twice (signature keys must be unique)")
        keys.add(sig.key)
        if not 0 <= sig.subgraph_index < n_sub:
            raise ModelFormatError(f"{where}: subgraph index {sig.subgraph_index} out of "
                                   f"range (model has {n_sub})")
        sg = model.subgraphs[sig.subgraph_index]
        n = len(sg.tensors)
        for alias, i in (*sig.inputs.items(), *sig.outputs.items()):
            if not 0 <= i < n:
                raise ModelFormatError(f"{where}: '{alias}' names tensor {i}, out of range "
                                       f"(subgraph has {n} tensors)")
        for alias, i in sig.inputs.items():
            if i not in sg.inputs:
                raise ModelFormatError(f"{where}: input '{alias}' names tensor {i} "
                                       f"{sg.tensors[i].describe()}, which is not an input of "
                                       f"subgraph {sig.subgraph_index} (inputs: {sg.inputs[:20]})")
        for alias, i in sig.outputs.items():
            if i not in sg.outputs and i not in sg.inputs and sg.tensors[i].data is None:
                raise ModelFormatError(f"{where}: output '{alias}' names tensor {i} "
                                       f"{sg.tensors[i].describe()}, which is not an output of "
                                       f"subgraph {sig.subgraph_index} (outputs: "
                                       f"{sg.outputs[:20]})")
    _check_call_once_recursion(model)


def _check_call_once_recursion(model: Model) -> None:
    """An init subgraph must not (transitively) CALL_ONCE itself: that would never end.

    One depth-first walk with three colours, iterative so that a chain thousands of
    subgraphs deep costs linear time and no Python recursion.
    """
    calls = [sorted({nd.attrs["init_subgraph_index"] for nd in sg.nodes if nd.op == "call_once"})
             for sg in model.subgraphs]
    state = [0] * len(calls)  # 0 unseen, 1 on the current path, 2 done
    for root in range(len(calls)):
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, iter(calls[root]))]
        while stack:
            s, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[s] = 2
                stack.pop()
            elif state[child] == 1:
                raise ModelFormatError(f"subgraph {child} reaches itself through CALL_ONCE")
            elif state[child] == 0:
                state[child] = 1
                stack.append((child, iter(calls[child])))


def _fmt_attr(v: object) -> str:
    if isinstance(v, np.ndarray):
        return f"[{','.join(str(x) for x in v.tolist())}]" if v.size <= 8 else f"<{v.shape}>"
    if isinstance(v, bytes):
        return repr(v.decode("utf-8", "replace"))
    return repr(v)


def format_subgraph(sg: Subgraph, index: int = 0) -> str:
    """A readable text dump: one line per node, ``%i`` names tensor ``i``."""
    lines = [f"subgraph {index} '{sg.name}' ({len(sg.tensors)} tensors, {len(sg.nodes)} nodes)"]
    for kind, idxs in (("inputs", sg.inputs), ("outputs", sg.outputs)):
        lines.append(f"  {kind}: " + ", ".join(f"%{i} {sg.tensors[i].describe()}" for i in idxs))
    for k, node in enumerate(sg.nodes):
        ins = ", ".join("-" if i == OMITTED else f"%{i}" for i in node.inputs)
        outs = ", ".join(f"%{i}" for i in node.outputs) or "()"
        attrs = ", ".join(f"{a}={_fmt_attr(v)}" for a, v in node.attrs.items())
        lines.append(f"  {k:3d}: {outs} = {node.op}({ins})" + (f" {{{attrs}}}" if attrs else ""))
    return "\n".join(lines)


def format_model(model: Model) -> str:
    parts = [format_subgraph(sg, s) for s, sg in enumerate(model.subgraphs)]
    for sig in model.signatures:
        parts.append(f"signature '{sig.key}' -> subgraph {sig.subgraph_index}: "
                     f"inputs {sig.inputs}, outputs {sig.outputs}")
    return "\n".join(parts)
