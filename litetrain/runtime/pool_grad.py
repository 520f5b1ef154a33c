"""MAX_POOL_2D's gradient over tiling windows fused into one step (a
:func:`.simplify.specialise` pass, once per input shapes, before :mod:`.fused`).

For windows that tile the input (stride = window, ``kh, kw ≥ 2``) the gradient rule
(``ops/pool.py``: ``_tiled_max_pool_vjp``) emits, per tap ``(i, j)`` in row-major order,

    s = STRIDED_SLICE(x, [0, i, j, 0], …, [1, kh, kw, 1])      the tap's value per window
    hit = EQUAL(s, y)                       (first tap)
    hit = LOGICAL_AND(EQUAL(s, y), LOGICAL_NOT(taken))          (later taps; taken so far:
    taken = LOGICAL_OR(taken, hit)                              the first tap's hit, then ORs)
    m = MUL(dy, CAST(hit))

then interleaves the ``m`` back: RESHAPE(PACK(RESHAPE(PACK(m_i0 … , axis=3)) …, axis=2)).
That is ``kh·kw`` strided slices, comparisons, logical ops, casts and products, and three
PACK copies (~1.2 ms of a batch-32 CNN step). The fused step reads ``x``, ``y`` and
``dy`` and writes each tap's product straight into its strided place in the result:

* NumPy form: per tap one comparison, the logical ops on the window grid, and one
  ``multiply(dy, hit)`` into the result's tap view (no PACK);
* compiled form (the ``[fast]`` extra, ``ops/fast/train.py: max_pool_grad``): one pass.

Invariant: the same bits — each element is ``dy * 1.0`` or ``dy * 0.0`` in float32 (a
bool cast to float32 is exactly 1 or 0), the tap chosen exactly as the chain chooses it
(the first equal one in row-major order; NaN equals nothing). Fused only when every
step of the chain is read by the chain alone (and none is a subgraph output), the
operands are float32 and the shapes are the tiling ones.
"""

from __future__ import annotations

import numpy as np

from ..ops import lookup
from ..ops.fast import WithKernels, kernels
from .step import Step

_F32 = np.dtype(np.float32)


def max_pool_grad(settings, x, y, dy, out=None):
    """The fused step's kernel: ``out`` ``[n, oh·kh, ow·kw, c]`` (see the module
    docstring), compiled when loaded and the operands are as prepared."""
    kh, kw = settings["kh"], settings["kw"]
    n, oh, ow, c = y.shape
    if out is None:
        out = np.empty((n, oh * kh, ow * kw, c), _F32)
    if settings.__class__ is WithKernels:
        module = settings.ready()
        if module is not None and _compiled_ok(x, y, dy, out):
            module.max_pool_grad(x, y, dy, kh, kw, out)
            return out
    taps = out.reshape(n, oh, kh, ow, kw, c)
    taken = None
    for i in range(kh):
        for j in range(kw):
            hit = np.equal(x[:, i:oh * kh:kh, j:ow * kw:kw], y)
            if taken is None:
                taken = hit
            else:
                hit = np.logical_and(hit, np.logical_not(taken))
                taken = np.logical_or(taken, hit)
            np.multiply(dy, hit, out=taps[:, :, i, :, j, :], dtype=_F32)
    return out


def _compiled_ok(x, y, dy, out) -> bool:
    return all(v.__class__ is np.ndarray and v.dtype == _F32 and v.flags.c_contiguous
               for v in (x, y, dy, out))


def fuse_max_pool_grads(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each tiled max-pool gradient chain replaced by one step."""
    producer = {o: pos for pos, s in enumerate(steps) for o in s.outputs}
    readers: dict[int, set[int]] = {}
    for pos, s in enumerate(steps):
        for i in s.inputs:
            readers.setdefault(i, set()).add(pos)
    loader = kernels("train")
    out, dropped = list(steps), set()
    for pos, step in enumerate(steps):
        found = _match(steps, pos, producer, values)
        if found is None:
            continue
        chain, (x, y, dy), (kh, kw) = found
        inner = chain - {pos}
        if dropped.intersection(chain) or any(
                o in outputs or not readers.get(o, set()) <= chain
                for p in inner for o in steps[p].outputs):
            continue
        settings = {"kh": kh, "kw": kw}
        if loader is not None:
            settings = WithKernels(settings, loader)
        out[pos] = Step(step.index, "max_pool_2d_grad", max_pool_grad, False, (x, y, dy),
                        step.outputs, step.out_dtypes, settings, fresh=True,
                        into=max_pool_grad, into_for=max_pool_grad)
        dropped.update(inner)
    return [s for p, s in enumerate(out) if p not in dropped]


def _is(step: Step, op: str, arity: int) -> bool:
    """A step running ``op``'s own float kernel with ``arity`` inputs and one output."""
    return (step.op == op and len(step.inputs) == arity and len(step.outputs) == 1
            and step.kernel is lookup(op).kernel
            and not (isinstance(step.settings, dict)
                     and step.settings.get("fused_activation_function", 0)))


def _match(steps, pos, producer, values):
    """(positions of the chain, (x, y, dy), (kh, kw)) when the RESHAPE at ``pos`` ends a
    tiled max-pool gradient chain, else ``None``."""
    final = steps[pos]
    if not _is(final, "reshape", 2):
        return None
    chain = {pos}

    def made_by(tensor: int, op: str, arity: int) -> Step | None:
        p = producer.get(tensor)
        if p is None or not _is(steps[p], op, arity):
            return None
        chain.add(p)
        return steps[p]

    outer = _pack(steps, producer, final.inputs[0], 2, chain)
    if outer is None:
        return None
    kh = len(outer.inputs)
    masks: list[list[Step]] = []
    for row in outer.inputs:
        reshaped = made_by(row, "reshape", 2)
        inner = None if reshaped is None else _pack(steps, producer, reshaped.inputs[0], 3,
                                                    chain)
        if inner is None:
            return None
        row_masks = [made_by(m, "mul", 2) for m in inner.inputs]
        if any(m is None for m in row_masks):
            return None
        masks.append(row_masks)
    kw = len(masks[0])
    if kh < 2 or kw < 2 or any(len(r) != kw for r in masks):
        return None
    dy = masks[0][0].inputs[0]
    y_seen, x_seen, taken = None, None, None
    for k, m in enumerate(step for row in masks for step in row):
        i, j = divmod(k, kw)
        cast = made_by(m.inputs[1], "cast", 1)
        if m.inputs[0] != dy or cast is None or cast.settings != _F32:
            return None
        if k == 0:
            equal, hit = made_by(cast.inputs[0], "equal", 2), cast.inputs[0]
        else:
            both = made_by(cast.inputs[0], "logical_and", 2)
            if both is None:
                return None
            equal = made_by(both.inputs[0], "equal", 2)
            negated = made_by(both.inputs[1], "logical_not", 1)
            if negated is None or negated.inputs[0] != taken:
                return None
            hit = cast.inputs[0]
        if equal is None:
            return None
        tap = made_by(equal.inputs[0], "strided_slice", 4)
        if tap is None or not _tap_slice(tap, values, i, j, kh, kw):
            return None
        x_seen = tap.inputs[0] if x_seen is None else x_seen
        y_seen = equal.inputs[1] if y_seen is None else y_seen
        if tap.inputs[0] != x_seen or equal.inputs[1] != y_seen:
            return None
        if k == 0:
            taken = hit
        elif k < kh * kw - 1:  # the taps taken so far, for the next tap
            taken = _or_of(steps, producer, taken, hit, chain)
            if taken is None:
                return None
    if not _shapes_fit(values, x_seen, y_seen, dy, final.outputs[0], kh, kw):
        return None
    return chain, (x_seen, y_seen, dy), (kh, kw)


def _pack(steps, producer, tensor: int, axis: int, chain: set[int]) -> Step | None:
    p = producer.get(tensor)
    if p is None:
        return None
    step = steps[p]
    if (step.op != "pack" or step.kernel is not lookup("pack").kernel
            or len(step.outputs) != 1 or step.settings.get("axis") != axis):
        return None
    chain.add(p)
    return step


def _or_of(steps, producer, taken: int, hit: int, chain: set[int]) -> int | None:
    """The LOGICAL_OR(taken, hit) step's output, found among the steps (it is read by
    the next tap's LOGICAL_NOT)."""
    for p, s in enumerate(steps):
        if _is(s, "logical_or", 2) and s.inputs == (taken, hit):
            chain.add(p)
            return s.outputs[0]
    return None


def _tap_slice(step: Step, values: list, i: int, j: int, kh: int, kw: int) -> bool:
    """The STRIDED_SLICE taking tap ``(i, j)`` of every ``kh × kw`` window."""
    a = step.settings
    if (a.get("begin_mask") != 9 or a.get("end_mask") != 9 or a.get("ellipsis_mask", 0)
            or a.get("new_axis_mask", 0) or a.get("shrink_axis_mask", 0) or a.get("offset")):
        return False
    begin, end, strides = (values[t] if t >= 0 else None for t in step.inputs[1:])
    if not all(isinstance(v, np.ndarray) and v.shape == (4,) for v in (begin, end, strides)):
        return False
    out = values[step.outputs[0]]
    if not isinstance(out, np.ndarray) or out.ndim != 4:
        return False
    _, oh, ow, _ = out.shape
    return (begin.tolist() == [0, i, j, 0] and strides.tolist() == [1, kh, kw, 1]
            and end.tolist() == [0, i + (oh - 1) * kh + 1, j + (ow - 1) * kw + 1, 0])


def _shapes_fit(values, x: int, y: int, dy: int, result: int, kh: int, kw: int) -> bool:
    vx, vy, vd, vr = (values[t] for t in (x, y, dy, result))
    if not all(isinstance(v, np.ndarray) and v.dtype == _F32 for v in (vx, vy, vd, vr)):
        return False
    if vx.ndim != 4 or vy.shape != vd.shape or vy.ndim != 4:
        return False
    n, oh, ow, c = vy.shape
    return (vx.shape[0] == n and vx.shape[3] == c and vx.shape[1] >= oh * kh
            and vx.shape[2] >= ow * kw and vr.shape == (n, oh * kh, ow * kw, c))
