"""A stride-1 depthwise filter's gradient without the padded copy of the input (a
:func:`.simplify.specialise` pass, once per input shapes, after :mod:`.product_sum`).

DEPTHWISE_CONV_2D's gradient rule (``ops/conv.py``) pads the input, takes one strided
slice of the padded input per filter tap and sums each slice times the output gradient
``dy`` over batch and space; :mod:`.product_sum` already runs those sums as one step
(``pack[product_sums]``) over the slices, views of the padded copy. Here the PAD, the
slices and that step become one step reading the windows straight from the unpadded
input: a tap reading the padding multiplies ``+0.0``, exactly what the padded copy
holds (``0 * inf`` is NaN either way), so only the copy and the slices go.

Invariant: the same bits. The compiled kernel (``ops/fast/dwgrad.py``:
``filter_grad``) sums in OpenBLAS SGEMV's order, which is not assumed: before a shape
uses it, :func:`proven` compares its bits with the unfused chain's kernels (PAD,
slices, MUL, SUM) on random operands of that shape at the current BLAS thread count.
Otherwise, and until the kernels load, the step runs the PAD and the packed sums as
before (the slices are views: the same windows). Fused only when the PAD (zeros, in
height and width only) is read by the slices alone, each slice is a stride-1 window
of the padded input of ``dy``'s shape, found by probing the slice kernels (so any
spelling of the slice is understood), and nothing in between is a subgraph output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops import lookup
from ..ops.conv_exact import blas_threads
from ..ops.fast import WithKernels, kernels
from .liveness import plan_constant
from .step import Step, producers_and_readers

_F32 = np.dtype(np.float32)
_VERDICTS: dict[tuple, bool] = {}


@dataclass(frozen=True)
class FilterGrad:
    """The fused step's settings: the PAD's kernel, settings and paddings operand,
    each tap's window offset ``(i, j)`` in the padded input, the paddings before
    (``pt``, ``pl``), the packed sums' kernel, settings and axis operand (the
    fallback), the compiled kernels' loader; ``bias``: the kernel, settings and axis
    operand of a SUM of ``dy`` over batch and space run in the same step (a bias's
    gradient, the step's second output), or ``None``."""

    pad: object
    pad_settings: object
    paddings: np.ndarray
    offsets: tuple[tuple[int, int], ...]
    pt: int
    pl: int
    packed: object
    packed_settings: object
    axis: np.ndarray
    kernels: WithKernels | None
    bias: tuple | None = None


def filter_grad(settings: FilterGrad, x, dy):
    """The fused step's kernel: ``[taps, c]``, row ``t`` the sum of window ``t`` of the
    zero-padded ``x`` times ``dy`` over batch and space (and with ``settings.bias``,
    also the sum of ``dy``: a pair)."""
    k = settings.kernels
    module = k.ready() if k is not None else None
    if module is not None and x.__class__ is np.ndarray and dy.__class__ is np.ndarray \
            and x.dtype == _F32 and dy.dtype == _F32 and x.ndim == 4 and dy.ndim == 4 \
            and x.flags.c_contiguous and dy.flags.c_contiguous and x.shape[0] == dy.shape[0] \
            and x.shape[3] == dy.shape[3] and proven(module, settings, x.shape, dy.shape):
        return _compiled(module, settings, x, dy)
    return _unfused(settings, x, dy)


def _compiled(module, settings: FilterGrad, x, dy):
    n, h, w, c = x.shape
    oh, ow = dy.shape[1:3]
    kh = max(i for i, _ in settings.offsets) + 1
    kw = max(j for _, j in settings.offsets) + 1
    taps = kh * kw
    out = module.filter_grad(x.reshape(-1), dy.reshape(-1), n, h, w, c, oh, ow, kh, kw,
                             settings.pt, settings.pl,
                             np.empty((taps + (settings.bias is not None), c), _F32))
    order = [i * kw + j for i, j in settings.offsets]
    grads = out if order == list(range(taps)) else out[order]
    if settings.bias is None:
        return grads
    return grads[:taps].copy(), out[taps].copy()  # (two arrays of their own)


def _unfused(settings: FilterGrad, x, dy):
    """The PAD, the windows (views, as the slices give) and the packed sums (and the
    SUM of ``dy``)."""
    xp = settings.pad(settings.pad_settings, x, settings.paddings)
    oh, ow = dy.shape[1:3]
    views = [xp[:, i:i + oh, j:j + ow] for i, j in settings.offsets]
    grads = settings.packed(settings.packed_settings, *views, dy, settings.axis)
    if settings.bias is None:
        return grads
    kernel, attrs, axis = settings.bias
    return grads, kernel(attrs, dy, axis)


def _reference(settings: FilterGrad, x, dy):
    """The unfused chain's own kernels: PAD, each window, MUL, SUM, PACK."""
    xp = lookup("pad").kernel({}, x, settings.paddings)
    oh, ow = dy.shape[1:3]
    sums = []
    for (i, j), tap in zip(settings.offsets, settings.packed_settings.taps, strict=True):
        p = tap.product(tap.product_settings, xp[:, i:i + oh, j:j + ow], dy)
        sums.append(tap.reduce(tap.reduce_settings, p, settings.axis))
    if settings.bias is None:
        return np.stack(sums)
    return np.stack(sums), lookup("sum").kernel(settings.bias[1], dy, settings.bias[2])


def proven(module, settings: FilterGrad, xshape, dyshape) -> bool:
    """Whether the compiled kernel gives the unfused chain's bits for these shapes at
    the current BLAS thread count (checked once per shapes: the module docstring)."""
    n, oh, ow, _ = dyshape
    if (n * oh * ow) % 8 or n * oh * ow < 64:
        return False
    key = (xshape, dyshape, settings.offsets, settings.pt, settings.pl,
           settings.bias is not None, blas_threads())
    verdict = _VERDICTS.get(key)
    if verdict is None:
        rng = np.random.default_rng(list(xshape) + list(dyshape))
        x = rng.standard_normal(xshape, np.float32)
        dy = rng.standard_normal(dyshape, np.float32)
        want = _reference(settings, x, dy)
        got = _compiled(module, settings, x, dy)
        if settings.bias is None:
            want, got = (want,), (got,)
        verdict = _VERDICTS[key] = all(
            a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))
            for a, b in zip(want, got, strict=True))
    return verdict


def fuse_padded_windows(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each packed tap sum over slices of a PAD replaced by one step
    reading the unpadded input (see the module docstring)."""
    loader = kernels("dwgrad")
    if loader is None:
        return steps
    producer, readers = producers_and_readers(steps)
    out, dropped = list(steps), set()
    for pos, step in enumerate(steps):
        if step.op != "pack[product_sums]" or len(step.outputs) != 1:  # (.product_sum)
            continue
        *views, b, axis = step.inputs
        found = _windows(steps, views, b, values, outputs, producer, readers)
        if found is None:
            continue
        pad_pos, slice_pos, offsets, (pt, pl), paddings = found
        pad = steps[pad_pos]
        bias_pos = _bias_sum(steps, pos, b, values, producer)
        bias = None if bias_pos is None else steps[bias_pos]
        settings = FilterGrad(pad.kernel, pad.settings, paddings, offsets, pt, pl,
                              step.kernel, step.settings, values[axis],
                              WithKernels({}, loader),
                              None if bias is None else (bias.kernel, bias.settings,
                                                         values[bias.inputs[1]]))
        extra = () if bias is None else bias.outputs
        out[pos] = Step(step.index, "pack[depthwise_filter_grad]", filter_grad, False,
                        (pad.inputs[0], b), (*step.outputs, *extra),
                        (*step.out_dtypes, *(() if bias is None else bias.out_dtypes)),
                        settings, fresh=True)
        dropped.update((pad_pos, *slice_pos))
        if bias_pos is not None:
            dropped.add(bias_pos)
    return [s for q, s in enumerate(out) if q not in dropped]


def _bias_sum(steps, pos, b, values, producer) -> int | None:
    """The position of a later plain SUM of ``b`` over its three leading axes (a bias's
    gradient, float32 ``[c]``), which the step at ``pos`` can make as well; or
    ``None``."""
    for q in range(pos + 1, len(steps)):
        s = steps[q]
        if (s.op != "sum" or s.kernel is not lookup("sum").kernel or s.stateful
                or len(s.inputs) != 2 or s.inputs[0] != b or len(s.outputs) != 1
                or s.settings.get("keep_dims", False)):
            continue
        axis = plan_constant(values, producer, s.inputs[1])
        v = values[s.outputs[0]]
        if (axis is not None and axis.dtype.kind == "i"
                and sorted(int(a) % 4 for a in axis.reshape(-1)) == [0, 1, 2]
                and isinstance(v, np.ndarray) and v.dtype == _F32 and v.ndim == 1
                and s.out_dtypes[0] == _F32):
            return q
    return None


def _windows(steps, views, b, values, outputs, producer, readers):
    """(the PAD's position, the slices' positions, each slice's window offset, the
    paddings before, the paddings operand) when every view is a stride-1 window of one
    zero PAD's result read by these slices alone, else ``None``."""
    dyv = values[b]
    if not (isinstance(dyv, np.ndarray) and dyv.dtype == _F32 and dyv.ndim == 4):
        return None
    slice_pos = []
    for v in views:
        p = producer.get(v)
        s = steps[p] if p is not None else None
        if (s is None or s.op != "strided_slice" or s.kernel is not lookup("strided_slice").kernel
                or readers.get(v) != 1 or v in outputs or len(s.outputs) != 1):
            return None
        slice_pos.append(p)
    sources = {steps[p].inputs[0] for p in slice_pos}
    if len(sources) != 1:
        return None
    (padded,) = sources
    pad_pos = producer.get(padded)
    pad = steps[pad_pos] if pad_pos is not None else None
    if (pad is None or pad.op != "pad" or pad.kernel is not lookup("pad").kernel
            or len(pad.inputs) != 2 or padded in outputs or readers.get(padded) != len(views)
            or pad.stateful):
        return None
    x = values[pad.inputs[0]]
    paddings = plan_constant(values, producer, pad.inputs[1])
    if (not isinstance(x, np.ndarray) or x.dtype != _F32 or x.ndim != 4 or paddings is None
            or paddings.dtype.kind != "i" or paddings.shape != (4, 2)):
        return None
    p = paddings.tolist()
    if p[0] != [0, 0] or p[3] != [0, 0] or min(min(r) for r in p) < 0:
        return None
    if dyv.shape[0] != x.shape[0] or dyv.shape[3] != x.shape[3]:
        return None
    offsets = _probe(steps, slice_pos, values, producer, pad, x.shape, paddings, dyv.shape)
    if offsets is None:
        return None
    return pad_pos, tuple(slice_pos), offsets, (p[1][0], p[2][0]), paddings


def _probe(steps, slice_pos, values, producer, pad, xshape, paddings, dyshape):
    """Each slice's ``(i, j)``: the slice kernels run on a padded probe (one image, every
    element numbered from 1, the padding 0) must give exactly the window at ``(i, j)``
    of ``dy``'s shape; ``None`` if one does not."""
    _, h, w, c = xshape
    oh, ow = dyshape[1:3]
    n = 1  # one image: the slices take every image alike (a batch slice does not fit)
    probe = np.arange(1, 1 + h * w * c, dtype=np.float64).reshape(n, h, w, c)
    xp = pad.kernel(pad.settings, probe, paddings)
    found = []
    for p in slice_pos:
        s = steps[p]
        consts = [plan_constant(values, producer, i) for i in s.inputs[1:]]
        if any(v is None for v in consts):
            return None
        try:
            got = np.asarray(s.kernel(s.settings, xp, *consts))
        except Exception:
            return None
        if got.shape != (n, oh, ow, c):
            return None
        first = got[0, 0, 0, 0]  # a window's first element locates it, unless padding
        hits = [(i, j) for i in range(xp.shape[1] - oh + 1) for j in range(xp.shape[2] - ow + 1)
                if xp[0, i, j, 0] == first and np.array_equal(got, xp[:, i:i + oh, j:j + ow])]
        if len(hits) != 1:
            return None
        found.append(hits[0])
    return tuple(found)
