"""One prepared node of a plan: its resolved kernel and everything invoke needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Step:
    """``index`` is the node's position in its subgraph (used in error messages); ``op``
    names the op, or the fusion that replaced it (e.g. ``"batch_matmul+add"``).

    ``settings`` is what the kernel gets first: the node's attrs, or what the op's (or
    its integer/hybrid variant's) prepare made of them once — resource ids, output dtype,
    quantization multipliers and shifts.

    ``fresh`` is True when every output is a new array sharing no memory with the
    inputs, the constants or the variables: only such outputs may later be overwritten
    in place. ``in_place(operand)`` makes a kernel writing into that operand, when the
    step's kernel has such a form.
    """

    index: int
    op: str
    kernel: Callable
    stateful: bool
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    out_dtypes: tuple[np.dtype, ...]
    settings: object
    fresh: bool = False
    in_place: Callable[[int], Callable | None] | None = None
    writes_into: int | None = None
    into: Callable | None = None
    into_for: Callable | None = None

    def out_form(self) -> Callable | None:
        """The kernel's form writing into a given array, if it has one."""
        return self.into if self.into is not None and self.into_for is self.kernel else None


def fuse_into_producers(steps: list[Step], outputs: set[int],
                        fuse: Callable[[Step, Step], Step | None]) -> list[Step]:
    """``steps`` with consumers run inside the step making their first operand: for each
    step whose first operand is made by an earlier step, read by nothing else and not
    one of ``outputs``, ``fuse(producer, step)`` returns the producer's replacement
    (making ``step``'s outputs), and ``step`` is dropped; or ``None``, and both stay.
    What the fusing passes share; ``fuse`` says which pairs fuse and how."""
    producer, readers = producers_and_readers(steps)
    out, dropped = list(steps), set()
    for pos, step in enumerate(steps):
        if not step.inputs:
            continue
        x = step.inputs[0]
        p = producer.get(x)
        if p is None or readers.get(x) != 1 or x in outputs or p in dropped:
            continue
        fused = fuse(out[p], step)
        if fused is not None:
            out[p] = fused
            dropped.add(pos)
    return [s for q, s in enumerate(out) if q not in dropped]


def producers_and_readers(steps: list[Step]) -> tuple[dict[int, int], dict[int, int]]:
    """(the position of the step making each tensor, how many step operands read each
    tensor): what the fusing passes ask before folding a step into its producer."""
    producer = {o: pos for pos, s in enumerate(steps) for o in s.outputs}
    readers: dict[int, int] = {}
    for s in steps:
        for i in s.inputs:
            readers[i] = readers.get(i, 0) + 1
    return producer, readers
