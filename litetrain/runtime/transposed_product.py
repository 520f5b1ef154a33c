"""A deep ``aᵀ · b`` product (BATCH_MATMUL with ``adj_x`` of two matrices: a 1×1
convolution's or a dense layer's weight gradient over many rows) in OpenBLAS's own
order, compiled (a :func:`.simplify.specialise` pass, once per input shapes).

For ``a`` ``[rows, c]`` and ``b`` ``[rows, o]`` NumPy hands ``a.T @ b`` to OpenBLAS's
level-3 SGEMM, which packs both operands and sums each output per K block (a 1×1
convolution's filter gradient in a batch-32 CNN, ``[8192, 16]ᵀ · [8192, 32]``, runs at
~70 % of its GEMM rate). ``fast.filter_grad.strided_taps`` with one tap whose window is
``a`` itself computes the same sums in the same order (per K block of
``filter_grad.level3_blocks`` one FMA per row from +0.0, the blocks added onto +0.0)
straight from the operands: 0.67x BLAS's time on that shape.

Invariant: the same bits. A step is rewritten only for float32 matrices with ``c`` a
multiple of 8 (the kernel's tile), more than 16 output columns (with fewer, half its
tile is idle and BLAS is faster) and at least two K blocks of rows (where OpenBLAS uses
its level-3 driver); at run time the compiled form is used only where
:func:`proven` found it equal to the op's own kernel bit for bit, at the shape and the
current BLAS thread count, on random, zero-heavy and NaN-heavy operands; otherwise (and
without the ``[fast]`` extra, until it has loaded, for operands not as prepared) the op's
kernel runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops import lookup
from ..ops.conv_exact import blas_threads
from ..ops.fast import WithKernels, kernels
from .filter_grad import PROOF_ROUNDS, level3_blocks, proof_operand
from .step import Step

_F32 = np.dtype(np.float32)
_PROVEN: dict[tuple[int, int, int, int], bool] = {}
_BLOCK = 448  # OpenBLAS's K block (filter_grad.level3_blocks): two at least


@dataclass(frozen=True)
class Blocked:
    """The rewritten step's settings: the op's kernel and settings (the fallback), the
    operand shapes prepared for, the compiled kernel's geometry and the loader."""

    kernel: object
    attrs: object
    rows: int
    c: int
    o: int
    shape: np.ndarray
    geometry: tuple[np.ndarray, ...]
    edges: np.ndarray
    kernels: WithKernels


def blocked_product(settings: Blocked, a, b):
    """BATCH_MATMUL ``aᵀ · b``: compiled in OpenBLAS's order where proven, else the op's
    kernel."""
    module = settings.kernels.ready()
    if (module is not None and a.__class__ is np.ndarray and b.__class__ is np.ndarray
            and a.dtype == _F32 and b.dtype == _F32
            and a.shape == (settings.rows, settings.c) and b.shape == (settings.rows, settings.o)
            and a.flags.c_contiguous and b.flags.c_contiguous and b.flags.writeable
            and proven(settings, module)):
        return _compiled(settings, module, a, b)
    return settings.kernel(settings.attrs, a, b)


def _compiled(settings: Blocked, module, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty((1, settings.c, settings.o), _F32)
    module.strided_taps(a.reshape(-1), b.reshape(-1), settings.shape, *settings.geometry,
                        settings.edges, out)
    return out.reshape(settings.c, settings.o)


def proven(settings: Blocked, module) -> bool:
    """Whether the compiled form gives the op's bits for the prepared shape at the current
    BLAS thread count (compared once per shape and count, kept for the process)."""
    key = (settings.rows, settings.c, settings.o, blas_threads())
    verdict = _PROVEN.get(key)
    if verdict is None:
        verdict = _PROVEN[key] = _check(settings, module)
    return verdict


def _check(settings: Blocked, module) -> bool:
    rng = np.random.default_rng([settings.rows, settings.c, settings.o])
    for kind in PROOF_ROUNDS:
        a = proof_operand(rng, (settings.rows, settings.c), kind)
        b = proof_operand(rng, (settings.rows, settings.o), kind)
        want = settings.kernel(settings.attrs, a, b)
        got = _compiled(settings, module, a, b)
        if not np.array_equal(want.view(np.uint32), got.view(np.uint32)):
            return False
    return True


def block_transposed_products(steps: list[Step], values: list) -> list[Step]:
    """``steps`` with each deep ``aᵀ · b`` BATCH_MATMUL (module docstring) rewritten."""
    loader = kernels("filter_grad")
    if loader is None:
        return steps
    out = []
    for step in steps:
        settings = _settings(step, values, loader)
        if settings is not None:
            step = Step(step.index, "batch_matmul[blocked]", blocked_product, False,
                        step.inputs, step.outputs, step.out_dtypes, settings, fresh=True)
        out.append(step)
    return out


def _settings(step: Step, values: list, loader) -> Blocked | None:
    matmul = lookup("batch_matmul").kernel
    if (step.op != "batch_matmul" or step.kernel is not matmul or step.stateful
            or len(step.inputs) != 2 or len(step.outputs) != 1
            or not step.settings.get("adj_x", False) or step.settings.get("adj_y", False)):
        return None
    a, b, p = (values[i] for i in (*step.inputs, step.outputs[0]))
    if not all(isinstance(v, np.ndarray) and v.dtype == _F32 and v.ndim == 2
               for v in (a, b, p)):
        return None
    (rows, c), o = a.shape, b.shape[1]
    if b.shape[0] != rows or p.shape != (c, o) or c % 8 or o <= 16 or rows < 2 * _BLOCK:
        return None
    geometry = tuple(_frozen(np.array([v], np.int64)) for v in (0, 0, 1, 1, 0, 0, rows, 1))
    return Blocked(matmul, step.settings, rows, c, o,
                   _frozen(np.array([1, rows, 1, c, rows, 1], np.int64)), geometry,
                   level3_blocks(rows), WithKernels({}, loader))


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a
