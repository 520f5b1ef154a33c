"""Recurrent layers' steps run as fewer, larger steps (a :func:`.simplify.specialise`
pass, once per input shapes).

A recurrent train step unrolled over time is hundreds of tiny nodes (``[batch, units]``
gates): what it costs is the per-node dispatch, allocation and ufunc call, not the
arithmetic. Three rewrites, each leaving every remaining tensor's bits unchanged:

* **LSTM cell, forward** (:func:`fuse_lstm_cells`): ``SPLIT`` of the gate
  pre-activations into four along the last axis, ``LOGISTIC`` of gates i, f, o, ``TANH``
  of the candidate, ``c = i·ĉ [+ f·c_prev]``, ``h = o·TANH(c)`` — Keras' LSTM as
  :class:`litetrain.author.sequence_layers.LSTM` emits it — run as one step. The
  logistic of the three gates is computed in one pass over all four blocks (the same
  ``1 / (1 + exp(-x))`` ufuncs on a contiguous array, as the LOGISTIC kernel computes
  it; the candidate block's result is not used), the gates are views of that buffer.
* **Concatenation of results made for it** (:func:`concatenate_in_place`): a
  CONCATENATION whose operand is made by an elementwise step (a plain ADD/SUB/MUL, or a
  fused gradient chain of :mod:`.fused`) that nothing else reads has that step write
  straight into its block of the result (its ``into`` form, the same ufuncs): no
  temporary per operand and no copy. Backpropagation through time concatenates the
  gate cotangents of every step so (LSTM: four, GRU: three per step, twice).
* **Products by a transposed variable** (:func:`transpose_once`): ``BATCH_MATMUL(x, w,
  adj_y)`` run as ``x @ wᵀ`` with ``wᵀ`` made contiguous once per run and shared by
  every such product of ``w`` (the gradient's recurrent products: OpenBLAS multiplies a
  transposed operand about twice as slowly at these shapes). Adopted per shape only
  after a bit check on the first run's values: both forms must give the same bits.

Invariant: the same bits as the steps replaced (``experimental_preserve_all_tensors``
disables every specialisation). Fused steps run where their first member ran; every
operand from outside the group is made before that.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

from ..ops import lookup
from ..ops.fast import WithKernels
from ..ops.matmul import batch_matmul, matmul_bias
from .fused import run_numpy
from .gru_fusion import fuse_gru_cell_grads, fuse_gru_cells
from .lstm_fusion import fuse_lstm_cell_grads, fuse_lstm_cells
from .rnn_graph import F32 as _F32
from .rnn_graph import plain
from .step import Step, producers_and_readers

# Elementwise ops whose ``into`` form is the ufunc itself: it writes into any view.
_UFUNC_OPS = ("add", "sub", "mul")


# --- concatenations written in place -----------------------------------------------------

@dataclass(frozen=True)
class InPlaceConcat:
    """Per operand, ``parts`` holds ``(kernel, into, settings)`` of the step computing
    it into its block (``into(settings, *its args, out=block)``) or ``None`` (the operand
    is an argument, copied in), and ``blocks`` its ``(index, slice along the axis, first
    argument, argument count)``; ``shapes``: every argument's shape as planned (other
    shapes run the parts' kernels and a plain concatenation); ``shape``: the result's."""

    parts: tuple
    blocks: tuple
    shapes: tuple
    shape: tuple


def concatenated(settings: InPlaceConcat, *args, out=None):
    """CONCATENATION with some operands computed straight into their blocks."""
    for a, shape in zip(args, settings.shapes, strict=True):
        if a.shape != shape:
            return _concatenated_plainly(settings, args)
    if out is None:
        out = np.empty(settings.shape, _F32)
    for part, (index, k, count) in zip(settings.parts, settings.blocks, strict=True):
        block = out[index]
        if part is None:
            block[...] = args[k]
        else:
            result = part[1](part[2], *args[k:k + count], out=block)
            if result is not block:
                block[...] = result
    return out


def _concatenated_plainly(settings: InPlaceConcat, args: tuple) -> np.ndarray:
    pieces = [args[k] if part is None else part[0](part[2], *args[k:k + count])
              for part, (_, k, count) in zip(settings.parts, settings.blocks, strict=True)]
    axis = len(settings.blocks[0][0]) - 1
    return np.concatenate(pieces, axis=axis)


def concatenate_in_place(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each float32 CONCATENATION's operands made for it written into
    its result (see the module docstring)."""
    producer, readers = producers_and_readers(steps)
    out, dropped = list(steps), set()
    for pos, step in enumerate(steps):
        if (step.op != "concatenation" or step.stateful or len(step.outputs) != 1
                or step.kernel is not lookup("concatenation").kernel
                or step.settings.get("fused_activation_function", 0)):
            continue
        result = values[step.outputs[0]]
        if not isinstance(result, np.ndarray) or result.dtype != _F32 or not result.ndim:
            continue
        axis = step.settings.get("axis", 0) % result.ndim
        contiguous = all(d == 1 for d in result.shape[:axis])
        parts, blocks, inputs, absorbed, start = [], [], [], [], 0
        for x in step.inputs:
            v = values[x]
            if not isinstance(v, np.ndarray) or v.dtype != _F32 or v.ndim != result.ndim:
                break
            index = (*(slice(None),) * axis, slice(start, start + v.shape[axis]))
            start += v.shape[axis]
            p = producer.get(x)
            maker = None if p is None or p in dropped else steps[p]
            if (maker is not None and readers.get(x) == 1 and x not in outputs
                    and step.inputs.count(x) == 1 and _writes_any_view(maker, contiguous)
                    and maker.out_dtypes[0] == _F32):
                parts.append((maker.kernel, maker.out_form(), maker.settings))
                blocks.append((index, len(inputs), len(maker.inputs)))
                inputs.extend(maker.inputs)
                absorbed.append(p)
            else:
                parts.append(None)
                blocks.append((index, len(inputs), 1))
                inputs.append(x)
        else:
            shapes = tuple(getattr(values[i], "shape", None) for i in inputs)
            if not absorbed or None in shapes:
                continue
            settings = InPlaceConcat(tuple(parts), tuple(blocks), shapes, result.shape)
            out[pos] = replace(step, op="concatenation[in_place]", kernel=concatenated,
                               settings=settings, inputs=tuple(inputs), fresh=True,
                               in_place=None, into=concatenated, into_for=concatenated)
            dropped.update(absorbed)
    return [s for p, s in enumerate(out) if p not in dropped]


def _writes_any_view(step: Step, contiguous: bool) -> bool:
    """Whether the step's ``into`` form computes its result into a given array of any
    layout (``contiguous``: the block is one contiguous run, as a fresh array is)."""
    if step.stateful or len(step.outputs) != 1 or step.out_form() is None \
            or step.writes_into is not None:
        return False
    if any(plain(step, op, 2) for op in _UFUNC_OPS):
        return True
    kernel = step.kernel
    # a fused gradient chain's NumPy form (the compiled one wants contiguous arrays)
    return isinstance(kernel, functools.partial) and (
        kernel.func is run_numpy or (contiguous and not isinstance(step.settings, WithKernels)))


# --- products by a transposed variable ---------------------------------------------------

class Transposed:
    """``wᵀ`` made contiguous, once per ``w`` (values never change once made; the pair
    is replaced in one assignment, so concurrent runs of the plan see a matching one,
    and the ``w`` kept with it cannot have its identity reused)."""

    __slots__ = ("pair",)

    def __init__(self) -> None:
        self.pair: tuple = (None, None)

    def of(self, w: np.ndarray) -> np.ndarray:
        source, transposed = self.pair
        if w is not source:
            transposed = np.ascontiguousarray(np.swapaxes(w, -1, -2))
            self.pair = (w, transposed)
        return transposed


def matmul_transposed(cache: Transposed, attrs, x, w):
    return np.matmul(x, cache.of(w))


def _transposable(step: Step) -> bool:
    """A BATCH_MATMUL with ``adj_y`` alone, its kernel the op's own or with its bias ADD
    (:func:`litetrain.ops.matmul.matmul_bias`)."""
    if step.op not in ("batch_matmul", "batch_matmul+add") or step.stateful \
            or not step.settings.get("adj_y", False) or step.settings.get("adj_x", False):
        return False
    if step.op == "batch_matmul":
        return len(step.inputs) == 2 and step.kernel is lookup("batch_matmul").kernel
    kernel = step.kernel
    return (step.op == "batch_matmul+add" and len(step.inputs) == 3
            and isinstance(kernel, functools.partial) and kernel.func is matmul_bias
            and len(kernel.args) == 1 and not kernel.keywords)


def transpose_once(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each 2-D float32 ``BATCH_MATMUL(x, w, adj_y)`` (with or without its
    bias ADD) whose ``w`` is a variable's value (READ_VARIABLE) multiplying by one
    contiguous ``wᵀ`` shared by the products of that ``w``, where a bit check says so."""
    producer, _ = producers_and_readers(steps)
    caches: dict[int, Transposed] = {}
    out = list(steps)
    for pos, step in enumerate(steps):
        if not _transposable(step):
            continue
        x, w = (values[i] for i in step.inputs[:2])
        p = producer.get(step.inputs[1])
        if p is None or steps[p].op != "read_variable":
            continue  # a variable's array: nothing writes into it (no slot, no in place)
        if not all(isinstance(v, np.ndarray) and v.dtype == _F32 and v.ndim == 2
                   for v in (x, w)) or x.shape[1] != w.shape[1] or min(*x.shape, w.shape[0]) < 2:
            continue  # (a product with one row or column: BLAS's GEMV, whose two forms
            # add in different orders)
        if not _same_bits(step.settings, x, w):
            continue
        cache = caches.setdefault(step.inputs[1], Transposed())
        if step.op == "batch_matmul":
            kernel = functools.partial(matmul_transposed, cache)
        else:
            kernel = functools.partial(matmul_bias, *step.kernel.args, transposed=cache.of)
        out[pos] = replace(step, op=f"{step.op}[transposed_once]", kernel=kernel,
                           fresh=True, in_place=None, into=None, into_for=None)
    return out


def _same_bits(attrs, x: np.ndarray, w: np.ndarray) -> bool:
    """Whether the product by a contiguous ``wᵀ`` gives the plain kernel's bits on these
    values and on three operands of mixed magnitudes (BLAS's forms of one GEMM shape
    either add in one order or, almost surely, show it on these)."""
    wt = np.ascontiguousarray(w.T)
    rng = np.random.default_rng(0)
    probes = [(rng.standard_normal(x.shape) * np.exp2(rng.integers(-8, 8, x.shape))
               ).astype(_F32) for _ in range(3)]
    for a in (x, *probes):
        if not np.array_equal(batch_matmul(attrs, a, w).view(np.int32),
                              np.matmul(a, wt).view(np.int32)):
            return False
    return True


def fuse_recurrent_steps(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """The rewrites of the module docstring, in its order."""
    steps = fuse_lstm_cells(steps, values, outputs)
    steps = fuse_lstm_cell_grads(steps, values, outputs)
    steps = fuse_gru_cells(steps, values, outputs)
    steps = fuse_gru_cell_grads(steps, values, outputs)
    steps = concatenate_in_place(steps, values, outputs)
    return transpose_once(steps, values, outputs)
