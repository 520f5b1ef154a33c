"""Large intermediate results written into buffers kept from run to run (once per input
shapes, after :func:`.simplify.specialise`).

A train step at batch 32 makes dozens of 0.25-2.5 MB arrays and frees each after its
last reader (:mod:`.liveness`). glibc hands such memory back to the OS (arrays above its
mmap threshold always, the top of the heap once more than its trim threshold is free),
so the next run faults it in again page by page: a third of a CNN train step's time
(``benchmarks/page_faults.py``). This pass gives each large result of a step that can
write into a given array (its ``into`` form, see :class:`.step.Step`) a *slot*: a
buffer the plan allocates once and keeps. Slots are planned by liveness: a tensor holds
its slot from the step that makes it until the last read of anything sharing its memory
(views of it, results written in place into it), then a later result may take the slot
(the smallest free one that fits, else the largest free one, grown). So the memory kept
is about the peak of live large results, not their sum.

Invariants:

* never for memory that escapes a run: a tensor sharing memory with the subgraph's
  outputs or with an operand of a stateful step (ASSIGN_VARIABLE keeps arrays as they
  are; control flow hands them to other subgraphs) keeps a fresh array every run.
  Within a run each slot has one occupant at a time, and a result is written into a slot
  only after the previous occupant's last reader has run.
* the same bits: an ``into`` form computes the kernel's result in the kernel's order.
* a step whose operands arrive with other shapes than in the run the plan was
  specialised on (shapes downstream of data-dependent ops) runs its plain kernel.
* ``experimental_preserve_all_tensors`` plans are never specialised, so never use slots.

The plan applies this pass (:class:`.plan.Plan`) and keeps the steps without slots too:
a run that starts while another run of the same plan holds the buffers (another thread,
or a re-entry) runs those, with fresh arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np

from .inplace import AliasGroups, alias_groups, lifetimes
from .step import Step

# Results smaller than this keep fresh arrays: below glibc's initial mmap threshold
# (128 KB) the heap reuses them without faults, and the wrapper's check and call (~1 us)
# would cost more than they save.
SMALLEST = 1 << 17


class Slot:
    """One kept buffer: ``capacity`` bytes, allocated at its first use."""

    def __init__(self) -> None:
        self.capacity = 0
        self.buffer: np.ndarray | None = None

    def take(self) -> np.ndarray:
        if self.buffer is None:
            self.buffer = np.empty(self.capacity, np.uint8)
        return self.buffer


class Reused:
    """A step's kernel writing its result into its slot (a view made once); the plain
    kernel when the operands' shapes are not the ones planned for."""

    __slots__ = ("checks", "dtype", "into", "kernel", "shape", "slot", "view")

    def __init__(self, kernel: Callable, into: Callable, slot: Slot, dtype: np.dtype,
                 shape: tuple[int, ...], operand_shapes: tuple):
        self.kernel, self.into, self.slot = kernel, into, slot
        self.dtype, self.shape = dtype, shape
        # (position, shape) of each array operand (a plan's operands keep their types)
        self.checks = tuple((k, s) for k, s in enumerate(operand_shapes) if s is not None)
        self.view: np.ndarray | None = None

    def __call__(self, settings, *args):
        for k, shape in self.checks:
            if args[k].shape != shape:
                return self.kernel(settings, *args)
        view = self.view
        if view is None:
            nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
            view = self.view = self.slot.take()[:nbytes].view(self.dtype).reshape(self.shape)
        return self.into(settings, *args, out=view)


def reuse_buffers(steps: list[Step], values: list, outputs: Iterable[int]) -> list[Step]:
    """``steps`` with each eligible large result (see the module docstring) written into
    a slot planned by liveness."""
    groups = alias_groups(steps)
    last_read, escaped = lifetimes(steps, groups, outputs)
    free: list[Slot] = []
    busy: list[tuple[int, Slot]] = []  # (last position reading the occupant, slot)
    out = list(steps)
    for pos, step in enumerate(steps):
        still = []
        for until, slot in busy:
            if until < pos:
                free.append(slot)
            else:
                still.append((until, slot))
        busy = still
        planned = _plan(step, values, groups, escaped)
        if planned is None:
            continue
        nbytes, operand_shapes = planned
        slot = _fitting(free, nbytes)
        slot.capacity = max(slot.capacity, nbytes)
        busy.append((max(pos, last_read.get(groups.find(step.outputs[0]), pos)), slot))
        result = values[step.outputs[0]]
        kernel = Reused(step.kernel, step.out_form(), slot, result.dtype, result.shape,
                        operand_shapes)
        out[pos] = replace(step, kernel=kernel)
    return out


def _plan(step: Step, values: list, groups: AliasGroups, escaped: set[int]):
    """(bytes, operand shapes) when the step's result can take a slot, else ``None``."""
    if (step.stateful or not step.fresh or step.writes_into is not None
            or not step.outputs or step.out_form() is None):
        return None
    for extra in step.outputs[1:]:  # other results: small ones, fresh arrays every run
        v = values[extra]
        if v.__class__ is not np.ndarray or v.nbytes >= SMALLEST:
            return None
    result = values[step.outputs[0]]
    if (result.__class__ is not np.ndarray or result.nbytes < SMALLEST
            or result.dtype != step.out_dtypes[0] or result.dtype.kind not in "fb"
            or groups.find(step.outputs[0]) in escaped):
        return None
    operand_shapes = []
    for i in step.inputs:
        v = values[i] if i >= 0 else None
        if v.__class__ is np.ndarray:
            if v.dtype.kind == "f" and v.dtype != result.dtype:
                return None  # a promoting operand: the kernel's own result, then a cast
            operand_shapes.append(v.shape)
        else:
            operand_shapes.append(None)
    return result.nbytes, tuple(operand_shapes)


def _fitting(free: list[Slot], nbytes: int) -> Slot:
    """The smallest free slot holding ``nbytes``, else the largest free one (it grows),
    else a new one; taken out of ``free``."""
    if not free:
        return Slot()
    fits = [s for s in free if s.capacity >= nbytes]
    slot = min(fits, key=lambda s: s.capacity) if fits else max(free, key=lambda s: s.capacity)
    free.remove(slot)
    return slot
