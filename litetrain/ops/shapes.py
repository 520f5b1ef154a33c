"""Building blocks for shape rules (see ``OpDef.shape``).

A shape rule maps a node's input shapes — ``-1`` where a dim is only known at run time,
typically the batch — to its output shapes. Small integer vectors that carry shapes
(SHAPE's output and what is computed from it) also carry ``known`` values: each element
is an int, or ``None`` where it depends on a run-time dim. That is how a gradient's
``RESHAPE(dy, SHAPE(x))`` keeps a dynamic batch in an exported file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .registry import NodeInfo, Shaped, ShapeRule

DYNAMIC = -1


class ShapeRuleError(ValueError):
    """A shape rule cannot decide an output shape (e.g. it depends on run-time values)."""


def shape_of(info: NodeInfo, k: int) -> tuple[int, ...]:
    t = info.inputs[k] if k < len(info.inputs) else None
    if t is None or t.shape is None:
        raise ShapeRuleError(f"{info.op}: the shape of input {k} is unknown")
    return tuple(t.shape)


def values_of(info: NodeInfo, k: int) -> tuple[int | None, ...] | None:
    """Input ``k``'s elements (flattened) where known: ints, ``None`` for run-time ones."""
    t = info.inputs[k] if k < len(info.inputs) else None
    if t is None:
        return None
    if t.known is not None:
        return t.known
    if t.value is not None and np.asarray(t.value).dtype.kind in "iub":
        return tuple(int(v) for v in np.asarray(t.value).reshape(-1).tolist())
    return None


def require_values(info: NodeInfo, k: int, what: str) -> tuple[int | None, ...]:
    v = values_of(info, k)
    if v is None:
        raise ShapeRuleError(f"{info.op}: the {what} (input {k}) must be known before running")
    return v


def fully_known(info: NodeInfo, k: int, what: str) -> tuple[int, ...]:
    v = require_values(info, k, what)
    if any(e is None for e in v):
        raise ShapeRuleError(f"{info.op}: the {what} (input {k}) depends on run-time dims")
    return tuple(int(e) for e in v)


def broadcast(*shapes: Sequence[int]) -> tuple[int, ...]:
    """NumPy broadcasting where ``-1`` is a run-time dim (assumed compatible)."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        sized = {d for d in dims if d not in (1, DYNAMIC)}
        if len(sized) > 1:
            raise ShapeRuleError(f"shapes {[list(s) for s in shapes]} do not broadcast")
        if sized:
            out.append(sized.pop())
        elif DYNAMIC in dims:
            out.append(DYNAMIC)
        else:
            out.append(1)
    return tuple(out)


def one(shape: Sequence[int], known: Sequence[int | None] | None = None) -> tuple[Shaped]:
    return (Shaped(tuple(shape), None if known is None else tuple(known)),)


def same_as(k: int = 0) -> ShapeRule:
    """The output has input ``k``'s shape (unary math, activations, gradients of them)."""
    return lambda info: one(shape_of(info, k))


def elementwise(info: NodeInfo) -> tuple[Shaped]:
    """Broadcast of every input; known values combine element by element."""
    shapes = [shape_of(info, k) for k, t in enumerate(info.inputs) if t is not None]
    return one(broadcast(*shapes), _combined_known(info))


_ARITHMETIC: dict[str, Callable[[int, int], int]] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "floor_div": lambda a, b: a // b, "maximum": max, "minimum": min,
}


def _combined_known(info: NodeInfo) -> tuple[int | None, ...] | None:
    fn = _ARITHMETIC.get(info.op)
    if fn is None or len(info.inputs) != 2:
        return None
    a, b = values_of(info, 0), values_of(info, 1)
    if a is None or b is None:
        return None
    if len(a) == 1:
        a = a * len(b)
    if len(b) == 1:
        b = b * len(a)
    if len(a) != len(b):
        return None
    return tuple(None if x is None or y is None else fn(x, y) for x, y in
                 zip(a, b, strict=True))


def reduced(shape: Sequence[int], axes: Sequence[int], keep_dims: bool) -> tuple[int, ...]:
    rank = len(shape)
    axes = {a % rank for a in axes} if rank else set()
    if keep_dims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def reshaped(in_shape: Sequence[int], target: Sequence[int | None]) -> tuple[int, ...]:
    """RESHAPE's output: ``None`` target dims are run-time; one ``-1`` is inferred."""
    out = [DYNAMIC if d is None else int(d) for d in target]
    inferable = sum(1 for d in target if d == -1) == 1 and None not in target
    if inferable and DYNAMIC not in in_shape:
        size = int(np.prod(in_shape))
        rest = int(np.prod([d for d in out if d != DYNAMIC]))
        out[out.index(DYNAMIC)] = size // rest if rest else 0
    return tuple(out)
