"""Per-channel vectors broadcast over large NHWC arrays, with long inner loops.

``x * scale``, ``x - mean``, ``x + bias`` with ``x`` of shape ``[n, h, w, c]`` and a
``[c]`` vector are everywhere in convolutional train steps (batch norm forward and
backward, biases). NumPy runs such a broadcast as one inner loop per pixel, ``c`` elements
long: at ``c = 16`` that is 2-3x slower than the same ufunc over long rows. This pass
(part of :func:`.simplify.specialise`, once per input shapes) gives such steps a kernel
that views the big operand as ``[rows, c·k]`` and tiles the vector ``k`` times, so the
op's own kernel runs over rows of up to ``_ROW`` elements.

Invariant: the result is bit-identical. The rewrite applies only to two-operand ops whose
shape rule is :func:`~litetrain.ops.shapes.elementwise` — each output element comes from
the operands' elements at its broadcast position — run by their float kernel; every
element meets the same vector element as before, in the same operand order. A big
operand that arrives non-contiguous (no reshape view of it exists) takes the op's kernel
unchanged. In-place forms (:mod:`.inplace`) write through the reshaped view, i.e. into
the big operand itself, and forms writing into a kept buffer (:mod:`.arena`) through
the buffer's.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ..errors import UnsupportedOpError
from ..ops import lookup
from ..ops.shapes import elementwise
from .step import Step

_ROW = 8192  # elements per row after tiling: long loops, a vector that stays in L1/L2
_WIDEST = 256  # channel counts from here on already run in long enough loops
_SMALLEST = 1 << 15  # below this many elements tiling costs more than it saves


def tile_channel_vectors(steps: list[Step], values: list) -> list[Step]:
    """``steps`` with each qualifying channel broadcast (see the module docstring) given
    the tiled kernel."""
    return [_tiled_step(s, values) or s for s in steps]


def _tiled_step(step: Step, values: list) -> Step | None:
    if len(step.inputs) != 2 or len(step.outputs) != 1 or step.stateful:
        return None
    try:
        opdef = lookup(step.op)
    except UnsupportedOpError:  # a fused step's name (e.g. "batch_matmul+add") is no op
        return None
    if opdef.shape is not elementwise or step.kernel is not opdef.kernel:
        return None  # not a plain elementwise op, or an integer/hybrid variant
    a, b, out = (values[i] if i >= 0 else None for i in (*step.inputs, step.outputs[0]))
    if not all(isinstance(v, np.ndarray) for v in (a, b, out)):
        return None
    big_pos = 0 if a.shape == out.shape else 1 if b.shape == out.shape else None
    if big_pos is None:
        return None
    big, small = (a, b) if big_pos == 0 else (b, a)
    reps = _repeats(big, small)
    if reps is None:
        return None
    c = big.shape[-1]
    shape2d = (big.size // (c * reps), c * reps)
    kernel = functools.partial(_tiled, step.kernel, big_pos, reps, big.shape, shape2d)
    in_place = None if step.in_place is None else functools.partial(
        _tiled_in_place, step.in_place, big_pos, reps, big.shape, shape2d)
    into = step.out_form()
    if into is not None:
        into = functools.partial(_tiled_into, into, big_pos, reps, big.shape, shape2d)
    return replace(step, kernel=kernel, in_place=in_place, into=into,
                   into_for=kernel if into is not None else None)


def _repeats(big: np.ndarray, small: np.ndarray) -> int | None:
    """How often to tile ``small`` (a ``[c]`` vector, leading ones allowed, broadcast
    along ``big``'s last axis), or ``None`` when tiling does not pay."""
    if big.ndim < 2 or small.ndim > big.ndim or big.size < _SMALLEST:
        return None
    c = big.shape[-1]
    if not 2 <= c < _WIDEST or small.size != c or small.shape[-1] != c:
        return None
    rows = big.size // c
    for k in range(min(rows, _ROW // c), 1, -1):
        if rows % k == 0:
            return k
    return None


def _operands(big_pos: int, reps: int, shape: tuple[int, ...], shape2d: tuple[int, int],
              a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    big, small = (a, b) if big_pos == 0 else (b, a)
    if big.shape != shape or not big.flags.c_contiguous or small.size != shape[-1]:
        return None  # not the arrays this was prepared for: the op's kernel broadcasts
    big, small = big.reshape(shape2d), np.tile(small.reshape(-1), reps)
    return (big, small) if big_pos == 0 else (small, big)


def _tiled(kernel: Callable, big_pos: int, reps: int, shape: tuple[int, ...],
           shape2d: tuple[int, int], attrs, a, b):
    ops = _operands(big_pos, reps, shape, shape2d, a, b)
    if ops is None:
        return kernel(attrs, a, b)
    return kernel(attrs, *ops).reshape(shape)


def _tiled_into(into: Callable, big_pos: int, reps: int, shape: tuple[int, ...],
                shape2d: tuple[int, int], attrs, a, b, *, out):
    """The form writing into ``out`` (see :mod:`.arena`), through its ``[rows, c·k]``
    view."""
    ops = _operands(big_pos, reps, shape, shape2d, a, b)
    if ops is None:
        return into(attrs, a, b, out=out)
    return into(attrs, *ops, out=out.reshape(shape2d)).reshape(shape)


def _tiled_in_place(in_place: Callable[[int], Callable | None], big_pos: int, reps: int,
                    shape: tuple[int, ...], shape2d: tuple[int, int], operand: int
                    ) -> Callable | None:
    """The in-place form writing into ``operand``: only the big one can take the result."""
    kernel = in_place(operand) if operand == big_pos else None
    if kernel is None:
        return None
    return functools.partial(_tiled, kernel, big_pos, reps, shape, shape2d)
