"""Elementwise steps that write their result into an operand that dies there.

A float elementwise step may overwrite operand ``t`` when ``t``

* was made by a step of this plan with fresh outputs (never a caller's input, a
  constant, or a variable's array);
* shares memory with nothing that is read later, returned by the subgraph, or handed to
  a stateful op (ASSIGN_VARIABLE keeps arrays as they are, so they escape);
* has exactly the output's shape and dtype.

Steps without fresh outputs (RESHAPE, slices, ...) may return views of their inputs, so
their outputs join their inputs' alias group; a group dies at the last read of any member.
The result is bit-identical: a ufunc computes the same values whatever ``out`` is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from .step import Step


class AliasGroups:
    """Union-find over tensor indices: tensors that may share memory."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, t: int) -> int:
        root = t
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        self.parent[t] = root
        return root

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def alias_groups(steps: list[Step]) -> AliasGroups:
    """The tensors that may share memory: each pure step that does not promise a fresh
    result with its operands made by steps, and each step writing into an operand with
    that operand. Operands no step makes (constants such as the shape or permutation many
    RESHAPEs and TRANSPOSEs share, the subgraph's inputs) join no group: no step's fresh
    result can share their memory, and joining them would tie unrelated results together
    (one escaping would keep them all out of the kept buffers and in-place writes)."""
    groups = AliasGroups()
    made = {o for step in steps for o in step.outputs}
    for step in steps:
        if step.writes_into is not None:
            groups.union(step.outputs[0], step.writes_into)
        elif not step.fresh and not step.stateful:
            for o in step.outputs:
                for i in step.inputs:
                    if i in made:
                        groups.union(o, i)
    return groups


def lifetimes(steps: list[Step], groups: AliasGroups, outputs: Iterable[int]
              ) -> tuple[dict[int, int], set[int]]:
    """(the last position reading each alias group, the groups whose memory escapes a
    run: the subgraph's outputs and every stateful step's operands — variables keep
    arrays as they are, control flow hands them to other subgraphs)."""
    last_read: dict[int, int] = {}
    escaped = {groups.find(o) for o in outputs}
    for pos, step in enumerate(steps):
        for i in step.inputs:
            if i >= 0:
                last_read[groups.find(i)] = pos
                if step.stateful:
                    escaped.add(groups.find(i))
    return last_read, escaped


def in_place_steps(steps: list[Step], values: list, outputs: Iterable[int]) -> list[Step]:
    """``steps`` with eligible elementwise steps replaced by in-place versions."""
    groups = alias_groups(steps)
    last_read, escaped = lifetimes(steps, groups, outputs)
    fresh = {o for s in steps if s.fresh for o in s.outputs}
    rewritten = []
    for pos, step in enumerate(steps):
        operand = _reusable_operand(step, pos, values, fresh, groups, last_read, escaped)
        kernel = None if operand is None or step.in_place is None else step.in_place(operand)
        rewritten.append(step if kernel is None else
                         replace(step, kernel=kernel, writes_into=step.inputs[operand]))
    return rewritten


def _reusable_operand(step: Step, pos: int, values: list, fresh: set[int],
                      groups: AliasGroups, last_read: dict[int, int],
                      escaped: set[int]) -> int | None:
    if step.stateful or len(step.outputs) != 1:
        return None
    out = values[step.outputs[0]]
    if not isinstance(out, np.ndarray) or out.dtype.kind != "f":
        return None
    for k, t in enumerate(step.inputs):
        v = values[t] if t >= 0 else None
        g = groups.find(t)
        if (t in fresh and g not in escaped and last_read.get(g) == pos
                and isinstance(v, np.ndarray) and v.shape == out.shape
                and v.dtype == out.dtype and step.inputs.count(t) == 1):
            return k
    return None
