"""8-bit elementwise chains run as one lookup table, and such tables run inside the step
making their operand (a :func:`.simplify.specialise` pass, once per input shapes).

Swish in a full-int8 model is ``LOGISTIC(x)`` then ``MUL(x, LOGISTIC(x))`` (EfficientNet
has one after nearly every convolution): two passes over the activations, two arrays and
two steps. With 8-bit ``x`` the pair's result is a function of ``x`` alone, so
:func:`fuse_swish` gives a unary 8-bit table step ``T(x)`` (:mod:`..ops.quantized.
tables`: any activation LOGISTIC, TANH, HARD_SWISH, ...) whose result only a binary
table step ``B`` (MUL, ADD, ...) reads, with ``x`` as ``B``'s other operand and of the
result's shape, a 256-entry table ``B(v, T(v))`` and makes it the one step computing
``B``'s output; ``B`` goes.

:func:`fuse_tables_into_producers` then runs a unary 8-bit table step (a fused swish, or
any activation left alone) inside the step making its operand when that operand is read
by nothing else: a node on the compiled 8-bit kernels (:mod:`..ops.compiled_int8`:
DEPTHWISE_CONV_2D, CONV_2D, FULLY_CONNECTED) takes it as its settings' output table (the
depthwise and VNNI kernels look each rescaled result up as they store it, its other
paths right after); other 8-bit producers (the same ops without the compiled kernels,
ADD, SUB, MUL, MEAN: their integer variants, which return new arrays) get the lookup
right after their kernel, in the same step.

Invariant: the same bits. The tables are the nodes' own: a tabulated step's table is its
integer kernel's result on every operand value (or pair), made by that kernel at prepare
as the node is prepared (whichever resolver), and its kernel returns exactly those
entries (:func:`..ops.quantized.tables.tabulated`; the compiled MUL and ADD are checked
against them on every pair). So ``table[v] = B.table[v, T.table[v]]`` (operands in
``B``'s order) is what the two steps compute for an element ``v``, and a producer's
stored result looked up in a unary table is what the table step computes from it.
Left alone: anything whose operands or result are not 8-bit of one shape, values that are
subgraph outputs or read twice, steps other than tabulated ones (16-bit, per-channel,
float). ``experimental_preserve_all_tensors`` skips every specialisation, so each tensor
keeps its own value there.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np

from ..ops import compiled_int8
from ..ops.quantized.tables import Tabulated, lookup_unary, unary
from .step import Step, fuse_into_producers, producers_and_readers

_EIGHT = (np.dtype(np.int8), np.dtype(np.uint8))
_ALL = np.arange(256, dtype=np.uint8)
# producers whose integer kernels return a new array of their declared output type
_PRODUCERS = ("conv_2d", "depthwise_conv_2d", "fully_connected", "add", "sub", "mul", "mean")


def fuse_int8_tables(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """:func:`fuse_swish`, then :func:`fuse_tables_into_producers`."""
    return fuse_tables_into_producers(fuse_swish(steps, values, outputs), values, outputs)


def unary_table(step: Step) -> Tabulated | None:
    """The settings of a one-input, one-output step looking its 8-bit operand up in a
    256-entry table (an activation's tabulated integer variant, or a fused table)."""
    s = step.settings
    if (s.__class__ is not Tabulated or s.translation is None or step.stateful
            or len(step.inputs) != 1 or len(step.outputs) != 1):
        return None
    return s


def _binary_table(step: Step) -> np.ndarray | None:
    """A two-operand step's 65536-entry table (indexed ``a bits << 8 | b bits``), when
    its settings are a tabulated binary op's (looked up or computed: the same entries)."""
    s = step.settings
    if s.__class__ is compiled_int8.Table:
        s = s.inner
    if (s.__class__ is not Tabulated or s.table is None or len(s.in_dtypes) != 2
            or step.stateful or len(step.inputs) != 2 or len(step.outputs) != 1):
        return None
    return s.table


def _eight_bit(values: list, *tensors: int) -> bool:
    """Every tensor an 8-bit array, all of one shape."""
    vs = [values[t] if t >= 0 else None for t in tensors]
    return (all(isinstance(v, np.ndarray) and v.dtype in _EIGHT for v in vs)
            and len({v.shape for v in vs}) == 1)


def fuse_swish(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each ``B(x, T(x))`` / ``B(T(x), x)`` pair described in the module
    docstring computed by one table step at ``T``'s place."""
    producer, readers = producers_and_readers(steps)
    out, dropped = list(steps), set()
    for pos, step in enumerate(steps):
        pair = _binary_table(step)
        if pair is None or step.inputs[0] == step.inputs[1]:
            continue
        for k in (1, 0):  # the operand T makes
            y, x = step.inputs[k], step.inputs[1 - k]
            p = producer.get(y)
            if p is None or readers.get(y) != 1 or y in outputs or p in dropped:
                continue
            first = out[p]
            t = unary_table(first)
            if (t is None or first.inputs[0] != x or first is not steps[p]
                    or not _eight_bit(values, x, y, step.outputs[0])
                    or values[x].dtype != t.in_dtypes[0]
                    or values[y].dtype != t.table.dtype
                    or values[step.outputs[0]].dtype != pair.dtype):
                continue
            xb = _ALL.astype(np.uint16)
            yb = t.table.view(np.uint8).astype(np.uint16)
            table = pair.take((xb << 8 | yb) if k == 1 else (yb << 8 | xb))
            out[p] = replace(first, op=f"{first.op}+{step.op}", kernel=lookup_unary,
                             settings=unary(table, t.in_dtypes[0]), outputs=step.outputs,
                             out_dtypes=step.out_dtypes, fresh=True, in_place=None,
                             into=None, into_for=None)
            dropped.add(pos)
            break
    return [s for q, s in enumerate(out) if q not in dropped]


def fuse_tables_into_producers(steps: list[Step], values: list, outputs: set[int]
                               ) -> list[Step]:
    """``steps`` with each unary 8-bit table step whose operand is made by an 8-bit
    producer (module docstring) and read by nothing else run inside that producer."""
    def fuse(first: Step, step: Step) -> Step | None:
        t = unary_table(step)
        if (t is None or first.stateful or len(first.outputs) != 1
                or not _eight_bit(values, first.outputs[0], step.outputs[0])
                or values[first.outputs[0]].dtype != t.in_dtypes[0]
                or np.dtype(first.out_dtypes[0]) != t.in_dtypes[0]):
            return None
        fused = dict(op=f"{first.op}+{step.op}", outputs=step.outputs,
                     out_dtypes=step.out_dtypes, in_place=None, into=None, into_for=None)
        s = first.settings
        if (s.__class__ is compiled_int8.Int8 and s.table is None
                and t.table.dtype == s.out_dtype):
            return replace(first, settings=s.with_table(t.table), **fused)
        if first.op in _PRODUCERS:
            return replace(first, kernel=functools.partial(_then_table, first.kernel, t),
                           fresh=True, **fused)
        return None

    return fuse_into_producers(steps, outputs, fuse)


def _then_table(kernel, table: Tabulated, settings, *inputs):
    """The producer's kernel, then its (8-bit, new) result looked up in ``table``."""
    return lookup_unary(table, kernel(settings, *inputs))
