"""A training batch norm's passes over the batch, fused and with its large intermediates
recomputed instead of stored (a :func:`.simplify.specialise` pass, once per input
shapes, after :mod:`.pool_grad`, :mod:`.fused` and :mod:`.product_sum`).

``BatchNormalization`` in training mode (``author/layers.py``) and its gradient rule
leave, per layer, with ``x`` the ``[n, h, w, c]`` input and ``m`` its mean:

=========================================  ============================================
steps (after the earlier fusions)          fused step (``ops/fast/bnorm.py``)
=========================================  ============================================
``c = SUB(x, m)``                          dropped: every reader below recomputes it
``var = MEAN[SQUARE](c)``                  ``square_sums(x, m)``
``y = ADD[affine](c, s, b)``               ``affine(x, m, s, b)``, or, when only a
``p = MAX_POOL_2D(y)``                     tiling max pool and its gradient read ``y``:
``dy = MAX_POOL_2D_GRAD(y, p, dp)``        ``affine_max_pool`` (``y``, ``dy`` dropped)
``SUM(dy)``, ``SUM[MUL](dy, c)``           ``sums(dy, x, m)`` / ``pooled_sums(x, m, s,
                                           b, p, dp)``: both in one pass
``MUL[batch_norm_grad(_masked)](dy, s2,    ``grad(dy, x, m, s2, k1, k0, xm, t)`` /
c, k1, k0(, xm, t))``                      ``pooled_grad(x, m, s, b, p, dp, …)``
=========================================  ============================================

A CNN step's layer then reads ``x`` three times forward and twice backward and writes
only the pooled output and ``dx``, where the steps wrote ``c``, ``y`` and ``dy`` (2 MB
each at batch 32) and read them eleven times.

Invariant: the same bits (see :mod:`.bn_steps`). Fused only where BLAS's sums are
likely the kernels' (:func:`.bn_steps.likely`; else every fused step would run the steps
it replaced), when every reader of ``c``
(and, through a pool, of ``y`` and ``dy``) is one of the steps above, none of them is a
subgraph output, every value is float32 with the shapes above, the sums reduce over
the three leading axes, and the ``[fast]`` extra is there (without it nothing changes).
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import numpy as np

from ..ops import lookup
from ..ops.fast import WithKernels, kernels
from . import fused, pool_grad, product_sum
from .bn_steps import Fused, likely, run
from .step import Step

_F32 = np.dtype(np.float32)


def fuse_batch_norms(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each training batch norm's passes fused (module docstring)."""
    loader = kernels("bnorm")
    if loader is None:
        return steps
    out = list(steps)
    for pos, step in enumerate(steps):
        if out[pos] is None or not _plain(step, "sub", 2):
            continue
        found = _block(out, pos, values, outputs)
        if found is not None:
            for p, new in found.items():
                out[p] = new
    return [_with_loader(s, loader) for s in out if s is not None]


def _with_loader(step: Step, loader) -> Step:
    """A fused step gets its own :class:`WithKernels` (its runs start the loading)."""
    if step.kernel is not run:
        return step
    return replace(step, settings=replace(step.settings, kernels=WithKernels({}, loader)))


def _plain(step: Step | None, op: str, arity: int) -> bool:
    return (step is not None and step.op == op and len(step.inputs) == arity
            and len(step.outputs) == 1 and not step.stateful
            and step.kernel is lookup(op).kernel
            and step.settings.__class__ in (dict, MappingProxyType, WithKernels)
            and not step.settings.get("fused_activation_function", 0))


def _chain(step: Step | None, *chains) -> bool:
    k = None if step is None else step.kernel
    return (getattr(k, "func", None) in (fused.run, fused.run_numpy)
            and k.args[0] in chains)


def _readers(steps: list, tensor: int) -> list[tuple[int, int]]:
    """(position, operand index) of every read of ``tensor``."""
    return [(p, k) for p, s in enumerate(steps) if s is not None
            for k, i in enumerate(s.inputs) if i == tensor]


def _array(values, tensor: int, shape) -> bool:
    v = values[tensor] if tensor >= 0 else None
    return v.__class__ is np.ndarray and v.dtype == _F32 and v.shape == shape


def _vector(values, tensor: int, c: int) -> bool:
    v = values[tensor] if tensor >= 0 else None
    return (v.__class__ is np.ndarray and v.dtype == _F32 and v.size == c
            and v.shape[-1] == c and v.ndim <= 4)


def _leading(values, axis: int) -> bool:
    """A constant axis operand naming the three leading axes of a 4-D value."""
    a = values[axis] if axis >= 0 else None
    return (a.__class__ is np.ndarray and a.dtype.kind == "i"
            and sorted(int(i) % 4 for i in a.reshape(-1)) == [0, 1, 2])


def _block(steps: list, sub: int, values: list, outputs: set[int]) -> dict | None:
    """{position: its replacement (``None``: dropped)} for the batch norm whose
    ``SUB(x, m)`` is at ``sub``, else ``None``."""
    x, m = steps[sub].inputs
    c_t = steps[sub].outputs[0]
    xv = values[x] if x >= 0 else None
    if xv.__class__ is not np.ndarray or xv.ndim != 4 or c_t in outputs:
        return None
    shape = xv.shape
    c = shape[3]
    if not (_array(values, x, shape) and _array(values, c_t, shape)
            and _vector(values, m, c)):
        return None
    var = affine = d_c = grad = None
    for p, k in _readers(steps, c_t):
        s = steps[p]
        if s.kernel is product_sum.product_sum and s.settings.square and k == 0 \
                and var is None:
            var = p
        elif _chain(s, fused.AFFINE) and k == 0 and affine is None:
            affine = p
        elif s.kernel is product_sum.product_sum and not s.settings.square and k == 1 \
                and s.inputs[0] != c_t and not s.settings.mean and d_c is None:
            d_c = p
        elif _chain(s, fused.BATCH_NORM_GRAD, fused.BATCH_NORM_GRAD_MASKED) and k == 2 \
                and c_t not in (s.inputs[0], *s.inputs[3:]) and grad is None:
            grad = p
        else:
            return None  # a reader that would need ``c`` stored
    if var is None or affine is None or not likely(shape[0] * shape[1] * shape[2], c):
        return None
    s, b = steps[affine].inputs[1:]
    if not (_vector(values, s, c) and _vector(values, b, c)):
        return None
    done: dict[int, Step | None] = {sub: None}
    done[var] = _step(steps, "square_sums", var, [sub, var], (x, m), shape)
    pool = _pooled(steps, affine, values, outputs, shape)
    if pool is not None:
        return _through_pool(steps, done, pool, sub, affine, d_c, grad, values, outputs)
    done[affine] = _step(steps, "affine", affine, [sub, affine], (x, m, s, b), shape)
    dy = None
    for p in (d_c, grad):
        if p is not None:
            dy = steps[p].inputs[0] if dy is None else dy
            if steps[p].inputs[0] != dy or not _array(values, dy, shape):
                return None
    if d_c is not None:
        d_beta = _sum_of(steps, dy, values, outputs)
        sums = [q for q in (d_beta, d_c) if q is not None]
        new = _step(steps, "sums", min(sums), [sub, *sums], (dy, x, m), shape, tail=sums)
        done.update({q: None for q in sums})
        done[min(sums)] = new
    if grad is not None:
        done[grad] = _grad_step(steps, "grad", grad, sub, (dy, x, m), shape, values, outputs)
        if done[grad] is None:
            return None
        done.update({p: None for p in _taken(done[grad], grad, steps)})
    return done


def _pooled(steps, affine, values, outputs, shape):
    """(pool position, pool-gradient position, (kh, kw)) when ``y`` is read by a tiling
    MAX_POOL_2D and its fused gradient alone, else ``None``."""
    y = steps[affine].outputs[0]
    if y in outputs:
        return None
    readers = _readers(steps, y)
    pool = [p for p, k in readers if _plain(steps[p], "max_pool_2d", 1)]
    grad = [p for p, k in readers if steps[p].kernel is pool_grad.max_pool_grad and k == 0]
    if len(pool) != 1 or len(grad) != 1 or len(readers) != 2:
        return None
    a = steps[pool[0]].settings
    kh, kw = a["filter_height"], a["filter_width"]
    g = steps[grad[0]]
    p_t = steps[pool[0]].outputs[0]
    n, h, w, c = shape
    if ((a["stride_h"], a["stride_w"]) != (kh, kw) or h % kh or w % kw or (kh * w) % 8
            or (g.settings["kh"], g.settings["kw"]) != (kh, kw) or g.inputs[1] != p_t
            or g.outputs[0] in outputs or y in g.inputs[1:]
            or not _array(values, p_t, (n, h // kh, w // kw, c))
            or not _array(values, g.inputs[2], (n, h // kh, w // kw, c))):
        return None
    return pool[0], grad[0], (kh, kw)


def _through_pool(steps, done, pool, sub, affine, d_c, grad, values, outputs):
    """The rest of :func:`_block` when a max pool reads ``y``: ``dy`` must be read by
    the two sums and the input gradient alone."""
    at, mpg, window = pool
    x, m = steps[sub].inputs
    s, b = steps[affine].inputs[1:]
    p_t, dp = steps[mpg].inputs[1:]
    dy = steps[mpg].outputs[0]
    shape = values[x].shape
    if d_c is None or grad is None or steps[d_c].inputs[0] != dy \
            or steps[grad].inputs[0] != dy:
        return None
    d_beta = _sum_of(steps, dy, values, outputs)
    if d_beta is None or sorted(p for p, _ in _readers(steps, dy)) != sorted(
            (d_beta, d_c, grad)):
        return None
    done[affine] = done[mpg] = done[d_beta] = done[d_c] = None
    done[at] = _step(steps, "affine_max_pool", at, [sub, affine, at], (x, m, s, b), shape,
                     window)
    base = [sub, affine, mpg]
    operands = (x, m, s, b, p_t, dp)
    first = min(d_beta, d_c)
    done[first] = _step(steps, "pooled_sums", first, [*base, d_beta, d_c], operands, shape,
                        window, tail=[d_beta, d_c])
    done[grad] = _grad_step(steps, "pooled_grad", grad, base, operands, shape, values,
                            outputs, window)
    if done[grad] is None:
        return None
    done.update({p: None for p in _taken(done[grad], grad, steps)})
    return done


def _taken(step: Step, at: int, steps) -> list[int]:
    """The positions of the steps (the bias-gradient SUM, a PAD) whose results a fused
    input gradient makes."""
    return [p for p, s in enumerate(steps) if s is not None and p != at
            and s.outputs and s.outputs[0] in step.outputs]


def _sum_of(steps, dy: int, values, outputs) -> int | None:
    """The plain SUM of ``dy`` over its leading axes (batch norm's ``d_beta``), if any."""
    for p, k in _readers(steps, dy):
        s = steps[p]
        if _plain(s, "sum", 2) and k == 0 and _leading(values, s.inputs[1]) \
                and s.outputs[0] not in outputs:
            return p
    return None


def _grad_step(steps, kind, at, base, operands, shape, values, outputs, window=None):
    """The input gradient's fused step, with the SUM of its result over the leading
    axes (the convolution's bias gradient) when there is one."""
    g = steps[at]
    _, s2, _, k1, k0, *mask = g.inputs
    c = shape[3]
    if not all(_vector(values, v, c) for v in (s2, k1, k0)):
        return None
    if mask:
        xm, t = mask
        tv = values[t] if t >= 0 else None
        if not _array(values, xm, shape) or tv.__class__ is not np.ndarray \
                or tv.dtype != _F32 or tv.size != 1:
            return None
    base = [base] if isinstance(base, int) else base
    dx = g.outputs[0]
    bias = None if dx in outputs else _sum_of(steps, dx, values, outputs)
    pad = None if kind != "pooled_grad" else _pad_of(steps, dx, bias, values, outputs, shape)
    first = at if pad is None else pad[0]
    tail = [first] if bias is None else [first, bias]
    made = [at] if pad is None else [at, pad[0]]
    return _step(steps, kind, at, [*base, *made, *tail[1:]], (*operands, s2, k1, k0, *mask),
                 shape, window, masked=bool(mask), tail=tail,
                 padded=None if pad is None else pad[1])


def _pad_of(steps, dx: int, bias, values, outputs, shape):
    """(position, (top, bottom, left, right)) of a zero PAD of height and width that is
    the only other reader of the input gradient ``dx`` (a first layer's filter gradient),
    else ``None``; ``w`` must be a multiple of eight (groups of the bias sum in a row)."""
    if dx in outputs or shape[2] % 8:
        return None
    readers = [p for p, _ in _readers(steps, dx) if p != bias]
    if len(readers) != 1 or not _plain(steps[readers[0]], "pad", 2) \
            or steps[readers[0]].inputs[0] != dx:
        return None
    pad = steps[readers[0]]
    q = pad.inputs[1]
    v = values[q] if q >= 0 else None
    if v.__class__ is not np.ndarray or v.dtype.kind != "i" or v.size != 8 \
            or pad.outputs[0] in outputs:
        return None
    (n0, n1), (top, bottom), (left, right), (c0, c1) = v.reshape(4, 2).tolist()
    n, h, w, c = shape
    if (n0, n1, c0, c1) != (0, 0, 0, 0) or min(top, bottom, left, right) < 0 \
            or not _array(values, pad.outputs[0], (n, h + top + bottom, w + left + right, c)):
        return None
    return readers[0], (top, bottom, left, right)


def _step(steps, kind, at, originals, operands, shape, window=None, masked=False,
          tail=None, padded=None) -> Step:
    """The fused step at ``at`` running ``kind`` on ``operands``, replacing the steps
    at ``originals``; its outputs are those of the steps at ``tail`` (default: ``at``)."""
    orig = tuple(steps[p] for p in sorted(originals))
    made = {o for s in orig for o in s.outputs}
    inputs: list[int] = []
    for s in orig:
        for i in s.inputs:
            if i not in made and i not in inputs:
                inputs.append(i)
    for i in operands:
        if i not in inputs:
            inputs.append(i)
    tail = [steps[p] for p in (tail or [at])]
    outs = tuple(s.outputs[0] for s in tail)
    sums = tuple(_reduction(s) for s in (tail if kind.endswith("sums") else tail[1:]))
    settings = Fused(kind, orig, tuple(inputs), outs, tuple(inputs.index(i) for i in operands),
                     shape, window, masked, len(operands) - 1 if masked else -1, sums, None,
                     padded)
    first = steps[at]
    return Step(first.index, f"{first.op}[batch_norm]", run, False, tuple(inputs), outs,
                tuple(s.out_dtypes[0] for s in tail), settings, fresh=True,
                into=run if kind in ("affine", "affine_max_pool", "grad", "pooled_grad")
                else None,
                into_for=run)


def _reduction(step: Step) -> tuple[bool, bool]:
    """(keep_dims, mean) of a SUM/MEAN step or a fused product sum."""
    if step.kernel is product_sum.product_sum:
        return step.settings.keep, step.settings.mean
    return bool(step.settings.get("keep_dims", False)), step.op == "mean"
