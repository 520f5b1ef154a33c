"""The op table: each op declared once, consulted by reader, writer, runtime and autodiff.

An :class:`OpDef` holds everything about one op: its name (TFLite's builtin name in
snake_case, or the custom code such as ``FlexReluGrad``), the FlatBuffer options table
that carries its attrs, its NumPy kernel, and facts the runtime plans with (which inputs
decide the output shape, whether the output may alias an input, the version to write).
Gradient rules live in ``author/vjps.py``, one row per op.

Kernel convention: ``kernel(attrs, *inputs) -> array | tuple[array, ...]`` where an
omitted optional input arrives as ``None``. Kernels are pure, and never write into their
inputs: an array, once produced, is never mutated (only a kernel's own fresh output may be
changed in place before it is returned). The runtime relies on that to share arrays
between tensors and variables without copying. Ops that touch interpreter
state (variables, CALL_ONCE, checkpoint files) are ``stateful`` and receive the runtime
context first: ``kernel(ctx, attrs, *inputs)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import tflite

from ..errors import UnsupportedOpError

_BUILTIN_CODES: dict[str, int] = {
    k.lower(): v for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")
}
BUILTIN_NAMES: dict[int, str] = {v: k for k, v in _BUILTIN_CODES.items()}
CUSTOM = _BUILTIN_CODES["custom"]


@dataclass(frozen=True)
class OpDef:
    """One op. ``options`` names the schema table holding its attrs (``None``: no attrs)."""

    name: str
    kernel: Callable
    options: str | None = None
    stateful: bool = False
    # True when every output is a new array sharing no memory with any input (a ufunc's
    # result, a matmul's): the runtime may then reuse that memory once it is dead.
    fresh_output: bool = False
    # Input positions whose *values* (not just shapes) decide the output shape, e.g. the
    # shape operand of RESHAPE. ``None`` means "not declared": prepare-time folding then
    # assumes every non-float input may matter, which is safe but folds less.
    shape_inputs: tuple[int, ...] | None = None
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
