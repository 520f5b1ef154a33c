"""A plan's steps compiled for the invoke loop: one flat tuple per step.

At batch 1 most steps take microseconds, so what the loop does around each kernel call
counts. Compiling moves all of it that does not depend on the values to prepare time:
the operand indices become one ``operator.itemgetter`` (or a single index), the one
output's index and declared dtype are unpacked, and the values to drop after the step
(see :mod:`.liveness`) sit beside them. The loop (``Plan._execute``) then only gathers,
calls, checks the result's type and stores it. Nothing here changes what runs: the same
kernels get the same arguments in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter

import numpy as np

from .step import Step

# step, kernel, settings, stateful, gather (None: one operand, at `first`), first,
# the single output's index (None: several outputs or none), its dtype, values to drop.
Instruction = tuple[Step, Callable, object, bool, Callable | None, int, int | None,
                    np.dtype | None, tuple[int, ...]]


def _no_operands(values: list) -> tuple:
    return ()


def compile_steps(steps: Sequence[Step], drops: Sequence[tuple[int, ...]] | None
                  ) -> list[Instruction]:
    """``steps`` as instructions; ``drops`` per step (``None``: keep every value)."""
    program: list[Instruction] = []
    for pos, step in enumerate(steps):
        ins = step.inputs
        if len(ins) == 1:
            gather, first = None, ins[0]
        elif ins:
            gather, first = itemgetter(*ins), 0
        else:
            gather, first = _no_operands, 0
        single = len(step.outputs) == 1
        program.append((step, step.kernel, step.settings, step.stateful, gather, first,
                        step.outputs[0] if single else None,
                        step.out_dtypes[0] if single else None,
                        tuple(drops[pos]) if drops is not None else ()))
    return program
