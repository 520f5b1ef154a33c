"""The steps :mod:`.bn_fusion` makes: each runs a batch norm's passes over the batch as
one compiled pass (``ops/fast/bnorm.py``), recomputing the centred values ``c = x - m``,
the output ``y = (c * s) + b`` and, through a max pool, the pool's gradient ``dy``
instead of reading them from memory.

Invariant: the same bits as the steps a fused step replaces (kept in its settings as
``originals``). Recomputing a float32 value with the same operations gives the same
bits, and the compiled sums add in OpenBLAS's SGEMV order, which is not assumed:
:func:`proven` compares BLAS's ``ones @ p`` and the kernels' sums on random data of
each shape at the current BLAS thread count before a shape uses them. Until the kernels
load, for operands other than planned, and for shapes not proven, a step runs its
``originals`` one after the other on its operands (exactly the replaced computation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops.conv_exact import blas_threads
from ..ops.fast import WithKernels
from ..ops.reduce import _ones
from .step import Step

_F32 = np.dtype(np.float32)
_VERDICTS: dict[tuple[int, int, int], bool] = {}
_LIKELY: dict[tuple[int, int, int], bool] = {}
_OUTPUTS = 1 << 12  # sums compared per shape, unless that would be more than _ELEMENTS
_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Fused:
    """A fused step's settings. ``kind`` names the compiled kernel; ``originals`` are
    the replaced steps in order, reading the fused step's ``inputs`` and making its
    ``outputs`` (the fallback); ``operands`` are the positions in ``inputs`` of the
    kernel's operands in its order (``x``, ``m``, … as :mod:`.bn_fusion` lists them);
    ``shape`` is ``x``'s ``[n, h, w, c]``; ``pool`` the window ``(kh, kw)`` (or
    ``None``); ``masked``: a ReLU mask is applied (``scalar``: the position among the
    operands of its one-element threshold); ``sums``: per output of sums (for an input
    gradient: its second, the bias gradient), its ``(keep_dims, mean)``; ``padded``: the
    input gradient is made straight into the PAD of it that read it, ``(top, bottom,
    left, right)`` zeros."""

    kind: str
    originals: tuple[Step, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    operands: tuple[int, ...]
    shape: tuple[int, int, int, int]
    pool: tuple[int, int] | None
    masked: bool
    scalar: int
    sums: tuple[tuple[bool, bool], ...]
    kernels: WithKernels
    padded: tuple[int, int, int, int] | None = None


def run(settings: Fused, *args, out=None):
    """The fused step's kernel (``out``: where a large result may be written)."""
    module = settings.kernels.ready()
    if module is not None:
        ops = _operands(settings, args)
        if ops is not None:
            done = _compiled(settings, module, ops, out, args)
            if done is not None:
                return done
    return fallback(settings, *args)


def fallback(settings: Fused, *args):
    """The replaced steps, one after the other: their results."""
    env = dict(zip(settings.inputs, args, strict=True))
    for step in settings.originals:
        result = step.kernel(step.settings, *(env[i] for i in step.inputs))
        if len(step.outputs) == 1:
            env[step.outputs[0]] = result
        else:
            env.update(zip(step.outputs, result, strict=True))
    found = tuple(env[o] for o in settings.outputs)
    return found[0] if len(found) == 1 else found


def _operands(settings: Fused, args) -> list | None:
    """The kernel's operands, flat (``t``: a float32 scalar), when every one is as
    planned: float32, C-contiguous, arrays of ``x``'s shape or ``c`` vectors."""
    c = settings.shape[3]
    ops = []
    for j, k in enumerate(settings.operands):
        v = args[k]
        if v.__class__ is not np.ndarray or v.dtype != _F32 or not v.flags.c_contiguous:
            return None
        if j == settings.scalar:
            if v.size != 1:
                return None
            ops.append(v.reshape(-1)[0])
        elif v.size == c or v.shape == settings.shape or (
                settings.pool is not None and v.shape == _pooled(settings)):
            ops.append(v.reshape(-1))
        else:
            return None
    return ops


def _pooled(settings: Fused) -> tuple[int, int, int, int]:
    n, h, w, c = settings.shape
    kh, kw = settings.pool
    return n, h // kh, w // kw, c


def _compiled(settings: Fused, module, ops: list, out, args):
    n, h, w, c = settings.shape
    rows = n * h * w
    kind = settings.kind
    if kind.endswith("sums") and not proven(module, rows, c):
        return None
    if kind == "square_sums":
        total = module.centred_square_sums(*ops, rows, c, np.empty(c, _F32))
        return _sum_result(settings, 0, total)
    if kind in ("sums", "pooled_sums"):
        first, second = np.empty(c, _F32), np.empty(c, _F32)
        if kind == "sums":
            module.centred_sums(*ops, rows, c, 0, 0, first, second)
        else:
            module.pooled_sums(*ops, n, h, w, c, *settings.pool, first, second)
        found = (first, second)[-len(settings.outputs):]
        results = tuple(_sum_result(settings, k, v) for k, v in enumerate(found))
        return results[0] if len(results) == 1 else results
    if kind == "affine":
        result = _out(out, settings.shape)
        module.centred_affine(*ops, rows, c, result.reshape(-1))
        return result
    if kind == "affine_max_pool":
        result = _out(out, _pooled(settings))
        module.centred_affine_max_pool(*ops, n, h, w, c, *settings.pool, result.reshape(-1))
        return result
    if not settings.masked:  # the kernels' mask operands, unused
        ops += [ops[0], np.float32(0.0)]
    summed = len(settings.outputs) == 2  # the input gradient and its bias gradient sum
    ok = summed and proven(module, rows, c)
    sums = np.empty(c, _F32)
    pt, pb, pl, pr = settings.padded or (0, 0, 0, 0)
    result = _out(out, (n, h + pt + pb, w + pl + pr, c))
    if kind == "grad":
        module.centred_grad(*ops, settings.masked, rows, c, result.reshape(-1), ok, sums)
    else:  # "pooled_grad"
        module.pooled_grad(*ops, settings.masked, n, h, w, c, *settings.pool,
                           result.reshape(-1), ok, sums, h + pt + pb, w + pl + pr, pt, pl)
        if settings.padded is not None:  # PAD's zeros (+0.0) around it
            result[:, :pt], result[:, h + pt:] = 0, 0
            result[:, :, :pl], result[:, :, w + pl:] = 0, 0
    if not summed:
        return result
    if ok:
        return result, _sum_result(settings, 0, sums)
    last = settings.originals[-1]  # the SUM, on the compiled gradient (contiguous)
    axis = args[settings.inputs.index(last.inputs[1])]
    dx = result if settings.padded is None else np.ascontiguousarray(
        result[:, pt:pt + h, pl:pl + w])
    return result, last.kernel(last.settings, dx, axis)


def _out(out, shape):
    if out is not None and out.shape == shape and out.dtype == _F32 and out.flags.c_contiguous:
        return out
    return np.empty(shape, _F32)


def _sum_result(settings: Fused, k: int, total: np.ndarray) -> np.ndarray:
    """A SUM's or MEAN's result from the column sums, as ``ops/reduce.py`` makes it."""
    keep, mean = settings.sums[k]
    if keep:
        total = total.reshape(1, 1, 1, total.size)
    if mean:
        n, h, w, c = settings.shape
        total = np.divide(total, (n * h * w * c) // max(total.size, 1), dtype=_F32)
    return total


def likely(rows: int, c: int) -> bool:
    """Whether BLAS sums ``ones(rows) @ p[rows, c]`` in the kernels' order at the current
    BLAS thread count, by NumPy's own float32 additions in that order (checked once per
    shape, before anything is fused: where BLAS sums otherwise, the steps stay as they
    are; :func:`proven` still checks the kernels themselves before they are used)."""
    key = (rows, c, blas_threads())
    verdict = _LIKELY.get(key)
    if verdict is None:
        verdict = _LIKELY[key] = _emulated(rows, c)
    return verdict


def _emulated(rows: int, c: int) -> bool:
    if rows % 8 or rows < 64:
        return False
    rng = np.random.default_rng([rows, c, 1])
    p = rng.standard_normal((rows, c), np.float32)
    groups = p.reshape(rows // 8, 8, c)
    acc = groups[:, 0].copy()
    for j in range(1, 8):
        acc += groups[:, j]
    total = np.zeros(c, _F32)
    for g in acc:  # the groups' sums added in order
        total += g
    want = _ones(rows, "f") @ p
    return np.array_equal(want.view(np.uint32), (np.float32(0.0) + total).view(np.uint32))


def proven(module, rows: int, c: int) -> bool:
    """Whether the kernels' sums are BLAS's for ``ones(rows) @ p[rows, c]`` at the
    current BLAS thread count (checked once per shape, on random data)."""
    key = (rows, c, blas_threads())
    verdict = _VERDICTS.get(key)
    if verdict is None:
        verdict = _VERDICTS[key] = _check(module, rows, c)
    return verdict


def _check(module, rows: int, c: int) -> bool:
    if rows % 8 or rows < 64:
        return False
    rng = np.random.default_rng([rows, c])
    ones = _ones(rows, "f")
    times = max(1, min(-(-_OUTPUTS // c), -(-_ELEMENTS // (rows * c))))
    for _ in range(times):
        p = rng.standard_normal((rows, c), np.float32)
        want = ones @ p
        got = module.column_sums(p.reshape(-1), rows, c, np.empty(c, _F32))
        if not np.array_equal(want.view(np.uint32), got.view(np.uint32)):
            return False
    return True
