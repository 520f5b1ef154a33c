"""A variable's update — READ_VARIABLE, a few elementwise ADD/SUB/MUL, ASSIGN_VARIABLE
of the same variable — as part of one step (a :func:`.simplify.specialise` pass, once
per input shapes).

A train step ends with one such chain per trainable variable (SGD: ``w - g * lr``), and
batch norm's moving averages are two more per layer (``v * m + x * (1 - m)``): in a
small CNN about a fifth of the step's steps, each a few microseconds on small arrays,
where the invoke loop's work per step and the kernels' Python wrappers cost as much as
the arithmetic. Consecutive chains become one step that runs, per chain and in the
plan's order, the READ_VARIABLE kernel, the ufuncs of the ADD/SUB/MUL kernels (what
those kernels call when they fuse no activation) on the same operands in the same
order, and the ASSIGN_VARIABLE kernel.

Invariants: the same bits, the same variable reads and writes in the same order (each
chain reads its variable right before its arithmetic and assigns right after, as
before; the chains were consecutive steps, so no other step runs in between), the
same replace-never-mutate rule (the assigned value is a fresh array, as the SUB or ADD
made it). Fused only when every value inside a chain is read by the chain alone and is
no subgraph output, and every result has the type the file declares (so the loop's
casts had nothing to do).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops import lookup
from .step import Step, producers_and_readers

_UFUNCS = {"add": np.add, "sub": np.subtract, "mul": np.multiply}
_MAX_OPS = 6  # arithmetic steps in one chain at most (SGD has two, moving averages three)


@dataclass(frozen=True)
class Chain:
    """One variable's update: the READ_VARIABLE's kernel, settings and handle operand,
    each arithmetic step's ufunc and operands (``k >= 0``: operand ``k`` of the fused
    step; ``-1 - j``: result ``j`` of the chain, ``-1`` being the value read), the
    ASSIGN_VARIABLE's kernel, settings and handle operand."""

    read: object
    read_settings: object
    read_handle: int
    ops: tuple[tuple[np.ufunc, int, int], ...]
    assign: object
    assign_settings: object
    assign_handle: int


def variable_updates(ctx, chains: tuple[Chain, ...], *operands):
    """The fused step's kernel: each chain in order (see the module docstring)."""
    for c in chains:
        made = [c.read(ctx, c.read_settings, operands[c.read_handle])]
        for ufunc, a, b in c.ops:
            made.append(ufunc(operands[a] if a >= 0 else made[-1 - a],
                              operands[b] if b >= 0 else made[-1 - b]))
        c.assign(ctx, c.assign_settings, operands[c.assign_handle], made[-1])


def fuse_variable_updates(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each run of consecutive variable updates as one step."""
    _, readers = producers_and_readers(steps)
    spans = []  # (first position, last position) of each chain found
    pos = 0
    while pos < len(steps):
        end = _chain_end(steps, pos, values, outputs, readers)
        if end is None:
            pos += 1
        else:
            spans.append((pos, end))
            pos = end + 1
    if not spans:
        return steps
    out: list[Step] = []
    done = 0
    k = 0
    while k < len(spans):
        first = spans[k][0]
        run = [spans[k]]
        while k + 1 < len(spans) and spans[k + 1][0] == run[-1][1] + 1:
            k += 1
            run.append(spans[k])
        k += 1
        out.extend(steps[done:first])
        out.append(_fused([steps[a:b + 1] for a, b in run]))
        done = run[-1][1] + 1
    out.extend(steps[done:])
    return out


def _plain_read(step: Step) -> bool:
    return (step.op == "read_variable" and step.kernel is lookup("read_variable").kernel
            and len(step.inputs) == 1 and len(step.outputs) == 1
            and getattr(step.settings, "resource_id", None) is not None)


def _chain_end(steps, pos, values, outputs, readers) -> int | None:
    """The position of the ASSIGN_VARIABLE ending a chain that starts at ``pos``, or
    ``None``."""
    read = steps[pos]
    if not _plain_read(read):
        return None
    rid = read.settings.resource_id
    made = {read.outputs[0]}
    reads_inside: dict[int, int] = {}
    for end in range(pos + 1, min(len(steps), pos + 2 + _MAX_OPS)):
        step = steps[end]
        for i in step.inputs:
            if i in made:
                reads_inside[i] = reads_inside.get(i, 0) + 1
        if step.op == "assign_variable":
            if (step.kernel is not lookup("assign_variable").kernel or len(step.inputs) != 2
                    or getattr(step.settings, "resource_id", None) != rid
                    or end == pos + 1 or step.inputs[1] not in made
                    or step.inputs[1] != steps[end - 1].outputs[0]):
                return None
            if any(t in outputs or readers.get(t) != reads_inside.get(t) for t in made):
                return None
            return end
        if not _arithmetic(step, values):
            return None
        made.add(step.outputs[0])
    return None


def _arithmetic(step: Step, values: list) -> bool:
    """A plain float ADD/SUB/MUL whose result has its declared type."""
    if (step.op not in _UFUNCS or step.stateful or step.kernel is not lookup(step.op).kernel
            or len(step.inputs) != 2 or len(step.outputs) != 1
            or step.settings.get("fused_activation_function", 0)):
        return False
    v = values[step.outputs[0]]
    return (isinstance(v, np.ndarray) and v.dtype.kind == "f"
            and v.dtype == step.out_dtypes[0])


def _fused(chains: list[list[Step]]) -> Step:
    """One step running ``chains`` (each: READ_VARIABLE, arithmetic, ASSIGN_VARIABLE)."""
    inputs: list[int] = []

    def operand(i: int) -> int:
        if i not in inputs:
            inputs.append(i)
        return inputs.index(i)

    prepared = []
    for chain in chains:
        read, *ops, assign = chain
        results = [read.outputs[0]]
        coded = []
        for s in ops:
            refs = tuple(-1 - results.index(i) if i in results else operand(i)
                         for i in s.inputs)
            coded.append((_UFUNCS[s.op], *refs))
            results.append(s.outputs[0])
        prepared.append(Chain(read.kernel, read.settings, operand(read.inputs[0]),
                              tuple(coded), assign.kernel, assign.settings,
                              operand(assign.inputs[0])))
    first = chains[0][0]
    return Step(first.index, f"variable_updates[{len(chains)}]", variable_updates, True,
                tuple(inputs), (), (), tuple(prepared))
