"""When each value of a specialised plan can be let go (buffer planning by liveness).

A plan's run keeps every tensor's value in one list. Once the shapes are known and the
steps specialised, a value made by a step is needed only until its last reader; after
that the list drops its reference, so the array's memory returns to the allocator and
the next step of the same size gets it back (NumPy's allocator and malloc reuse freed
blocks), and the peak memory of a run is what is live at once, not the sum of all
activations.

Never dropped: the subgraph's inputs (the caller's arrays) and outputs, constants, and
values no step makes (folded shape arithmetic). Dropping a reference never changes a
value: arrays are never mutated once made (in-place steps write only into operands that
die there, see :mod:`.inplace`), so results stay bit-identical. What is dropped has no
value afterwards, as TFLite guarantees only inputs and outputs
(``experimental_preserve_all_tensors`` keeps everything).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .step import Step

_STAND_IN_BASE: dict[np.dtype, np.ndarray] = {}


def release_points(steps: list[Step], keep: Iterable[int]) -> list[tuple[int, ...]]:
    """Per step, the tensors whose values can be dropped once it has run."""
    keep = set(keep)
    last: dict[int, int] = {}
    for pos, step in enumerate(steps):
        for t in step.outputs:
            if t >= 0 and t not in keep:
                last.setdefault(t, pos)  # made here; read later extends it
        for t in step.inputs:
            if t in last:
                last[t] = pos
    drops: list[list[int]] = [[] for _ in steps]
    for t, pos in last.items():
        drops[pos].append(t)
    return [tuple(sorted(d)) for d in drops]


def stand_in(value):
    """What a dropped value leaves during a plan's first run for new shapes: an array of
    its shape and dtype that owns no memory (a read-only broadcast of one element), so
    the rewrites that look at shapes and dtypes still can. Non-arrays stay as they are."""
    if value.__class__ is not np.ndarray:
        return value
    base = _STAND_IN_BASE.get(value.dtype)
    if base is None:
        base = _STAND_IN_BASE[value.dtype] = np.zeros((), value.dtype)
    return np.broadcast_to(base, value.shape)


def is_stand_in(value) -> bool:
    return value.__class__ is np.ndarray and value.base is not None and any(
        value.base is b for b in _STAND_IN_BASE.values())


def plan_constant(values: list, producer: dict[int, int], tensor: int) -> np.ndarray | None:
    """``tensor``'s value when it is a constant of the plan — no step makes it (``producer``:
    :func:`.step.producers_and_readers`' first map) and its array is known at prepare, not
    a stand-in for a dropped value — else ``None``: what a fusing pass may read a shape,
    axis or padding from."""
    v = values[tensor] if tensor >= 0 else None
    if producer.get(tensor) is not None or v.__class__ is not np.ndarray or is_stand_in(v):
        return None
    return v
