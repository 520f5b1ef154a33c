"""What the recurrent rewrites (:mod:`.rnn_fusion`, :mod:`.lstm_fusion`,
:mod:`.gru_fusion`) ask of a plan's steps: who makes and who reads each tensor, and
whether a step is a given op as declared."""

from __future__ import annotations

import functools

import numpy as np

from ..ops import lookup
from .fused import run, run_numpy
from .step import Step, producers_and_readers

F32 = np.dtype(np.float32)


def plain(step: Step, op: str, arity: int) -> bool:
    """A step of ``op`` with its own float kernel and no fused activation."""
    return (step.op == op and len(step.inputs) == arity and len(step.outputs) == 1
            and not step.stateful and step.kernel is lookup(op).kernel
            and not step.settings.get("fused_activation_function", 0))


class Graph:
    """Who makes and who reads each tensor of ``steps``."""

    def __init__(self, steps: list[Step], outputs: set[int]):
        self.steps, self.outputs = steps, outputs
        self.producer, _ = producers_and_readers(steps)
        self.readers: dict[int, list[int]] = {}
        for pos, s in enumerate(steps):
            for i in s.inputs:
                self.readers.setdefault(i, []).append(pos)

    def sole(self, tensor: int, op: str, arity: int = 1) -> int | None:
        """The one step reading ``tensor`` (once, not a subgraph output) if it is a
        plain ``op``."""
        pos = self.readers.get(tensor, [])
        if len(pos) != 1 or tensor in self.outputs or not plain(self.steps[pos[0]], op, arity):
            return None
        return pos[0]

    def reader(self, op: str, *operands: int) -> int | None:
        """A plain binary ``op`` step reading exactly ``operands`` (either order)."""
        for pos in self.readers.get(operands[0], []):
            s = self.steps[pos]
            if plain(s, op, 2) and sorted(s.inputs) == sorted(operands):
                return pos
        return None

    def unread(self, tensor: int) -> bool:
        return not self.readers.get(tensor) and tensor not in self.outputs


def made_before(graph: Graph, tensor: int, pos: int) -> bool:
    p = graph.producer.get(tensor)
    return p is None or p < pos


def fused_chain(step: Step):
    """The chain of :mod:`.fused` a step runs, or ``None``."""
    kernel = step.kernel
    if (isinstance(kernel, functools.partial) and kernel.func in (run, run_numpy)
            and len(step.outputs) == 1 and not step.stateful and kernel.args):
        return kernel.args[0]
    return None
