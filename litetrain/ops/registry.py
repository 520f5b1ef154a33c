"""The op table: each op declared once, with every rule about it beside it.

An :class:`OpDef` holds everything the engine knows about one op, and reader, writer,
interpreter, autodiff, quantizer and exporter all consult it; nothing elsewhere is keyed
by op name. It declares

* its **name** (TFLite's builtin name in snake_case, or the custom code such as
  ``FlexReluGrad``) and the FlatBuffer **options** table carrying its attrs;
* its float **kernel** and, when the kernel needs more than the file's attrs, a
  **prepare** function that turns a :class:`NodeInfo` into the kernel's settings once per
  plan (output dtype, resource id, ...);
* its **shape rule** (output shapes from input shapes, ``-1`` for run-time dims, and the
  values of small shape vectors where they are known), used to export dynamic batches;
* its **gradient rule** (``vjp``), used by authoring;
* its **integer** and **hybrid** kernels (:class:`Variant`, each with its own prepare that
  computes multipliers and shifts once), or ``passthrough`` when it moves integers
  unchanged, and the quantizer's facts (``weight_axis``, ``output_quantization``);
* planning facts: ``stateful``, ``fresh_output``, ``shape_inputs``, ``in_place``,
  ``into``.

Kernel convention: ``kernel(settings, *inputs) -> array | tuple[array, ...]``, where
``settings`` is the node's attrs (exactly what the file says, read-only) unless the op
declares ``prepare``, and an omitted optional input arrives as ``None``. Stateful kernels
(variables, CALL_ONCE, checkpoint files, random streams) get the runtime context first:
``kernel(ctx, settings, *inputs)``. Kernels are pure and never write into their inputs: an
array, once produced, is never mutated (only a kernel's own fresh output may be changed in
place before it is returned). The runtime relies on that to share arrays between tensors
and variables without copying.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import tflite

from ..errors import UnsupportedOpError
from .resolver import OpResolverType

_BUILTIN_CODES: dict[str, int] = {
    k.lower(): v for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")
}
BUILTIN_NAMES: dict[int, str] = {v: k for k, v in _BUILTIN_CODES.items()}
CUSTOM = _BUILTIN_CODES["custom"]


@dataclass(frozen=True)
class TensorInfo:
    """What prepare (and a shape rule) knows about one operand or result of a node.

    ``shape`` uses ``-1`` for a dim known only at run time (``None``: rank unknown).
    ``value`` is the tensor's value when it is known before running (a constant).
    ``known`` holds, for a small integer vector or scalar (shape arithmetic), each
    element's value or ``None`` where it depends on run-time dims.
    ``quantization`` is set for quantized tensors (see ``ops.quantized.params``).
    ``may_alias_input`` is True when the array may share memory with a caller's array.
    """

    dtype: np.dtype
    shape: tuple[int, ...] | None
    value: np.ndarray | None = None
    known: tuple[int | None, ...] | None = None
    quantization: object | None = None
    may_alias_input: bool = False


@dataclass(frozen=True)
class NodeInfo:
    """One node as prepare sees it. ``where`` names it in errors. ``resolver`` says which
    of TensorFlow Lite's kernel sets integer and hybrid kernels reproduce (see
    :mod:`.resolver`). ``hybrid_graph``: the node's subgraph also has hybrid
    (dynamic-range) nodes, so float kernels reproduce the default interpreter's bits
    where an ulp could flip an on-the-fly quantization (:mod:`.xnnpack_float`)."""

    op: str
    attrs: Mapping[str, object]
    inputs: tuple[TensorInfo | None, ...]
    outputs: tuple[TensorInfo, ...]
    where: str = ""
    resolver: OpResolverType = OpResolverType.AUTO
    hybrid_graph: bool = False


@dataclass(frozen=True)
class Variant:
    """An alternative kernel of an op (integer or hybrid), with the prepare that makes
    its settings (quantization multipliers and shifts are computed there, once)."""

    kernel: Callable
    prepare: Callable[[NodeInfo], object]


# A shape rule: NodeInfo (input shapes with -1, known values) -> one Shaped per output.
@dataclass(frozen=True)
class Shaped:
    shape: tuple[int, ...]
    known: tuple[int | None, ...] | None = None


ShapeRule = Callable[[NodeInfo], tuple[Shaped, ...]]


@dataclass(frozen=True)
class OpDef:
    """One op and all its rules (see the module docstring). ``num_outputs`` ``None``
    means "as many as the node has" (SPLIT, UNPACK, RestoreV2)."""

    name: str
    kernel: Callable
    options: str | None = None
    prepare: Callable[[NodeInfo], object] | None = None
    shape: ShapeRule | None = None
    vjp: Callable | None = None
    integer: Variant | None = None
    hybrid: Variant | None = None
    # Runs unchanged on quantized integers (moves, selects or compares them); TFLite
    # requires such ops' inputs and outputs to share quantization parameters.
    passthrough: bool = False
    # Quantizer facts: which axis of input 1 (the weights) is per-channel, and how the
    # output of an int8 node is quantized ("same_as_input" or a fixed (scale, zero point)).
    weight_axis: int | None = None
    output_quantization: str | tuple[float, int] | None = None
    stateful: bool = False
    # True when every output is a new array sharing no memory with any input (a ufunc's
    # result, a matmul's): the runtime may then reuse that memory once it is dead.
    fresh_output: bool = False
    # ``in_place(operand)`` returns a kernel that writes its result into input
    # ``operand`` (same values, bit for bit); ``None`` when the op cannot.
    in_place: Callable[[int], Callable | None] | None = None
    # ``into(settings, *inputs, out=array)``: the float kernel writing its one result into
    # ``out`` (C-contiguous, the result's shape and dtype) and returning it, bit for bit
    # the kernel's result (the runtime then reuses that memory from run to run).
    into: Callable | None = None
    # Input positions whose *values* (not just shapes) decide the output shape, e.g. the
    # shape operand of RESHAPE. ``None`` means "not declared": prepare-time folding then
    # assumes every non-float input may matter, which is safe but folds less.
    shape_inputs: tuple[int, ...] | None = None
    num_outputs: int | None = 1
    # The operator version authored nodes are written with: the lowest one TFLite
    # registers for float tensors (BROADCAST_TO, for one, starts at 2).
    min_version: int = 1

    @property
    def builtin_code(self) -> int:
        """TFLite's BuiltinOperator code; CUSTOM for custom and Flex ops."""
        return _BUILTIN_CODES.get(self.name, CUSTOM)

    @property
    def custom_code(self) -> str | None:
        return None if self.name in _BUILTIN_CODES else self.name

    @property
    def num_inputs(self) -> tuple[int, int | None]:
        """(fewest, most) inputs the kernel takes; most is ``None`` for variadic ops."""
        return _arity(self.kernel, 2 if self.stateful else 1)

    def settings(self, info: NodeInfo) -> object:
        """What the float kernel gets for this node: prepare's result, or the attrs."""
        return self.prepare(info) if self.prepare is not None else info.attrs


@functools.cache
def _arity(kernel: Callable, leading: int) -> tuple[int, int | None]:
    params = list(inspect.signature(kernel).parameters.values())[leading:]
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return sum(p.default is p.empty and p.kind is not p.VAR_POSITIONAL
                   for p in params), None
    return sum(p.default is p.empty for p in params), len(params)


_TABLE: dict[str, OpDef] = {}


def register(ops: Iterable[OpDef]) -> None:
    for op in ops:
        if op.name in _TABLE:
            raise ValueError(f"op '{op.name}' is declared twice")
        _TABLE[op.name] = op


def lookup(name: str) -> OpDef:
    """The op named ``name``; :class:`UnsupportedOpError` when there is no kernel for it."""
    try:
        return _TABLE[name]
    except KeyError:
        raise UnsupportedOpError(f"op '{name}' has no kernel in litetrain") from None


def has(name: str) -> bool:
    return name in _TABLE


def all_ops() -> dict[str, OpDef]:
    return dict(_TABLE)


def op_name_for_code(builtin_code: int, custom_code: str | None) -> str:
    """The table name a file's operator code maps to (even when no kernel exists)."""
    if builtin_code == CUSTOM:
        return custom_code or "custom"
    return BUILTIN_NAMES.get(builtin_code, f"builtin_{builtin_code}")
