"""An average pool's gradient through the ReLU before it, in one pass (a
:func:`.simplify.specialise` pass, once per input shapes, after :mod:`.fused`).

AVERAGE_POOL_2D's gradient rule for windows that tile the input (``ops/pool.py``:
``_upsample_share``) spreads each window's share of its cotangent over the window by a
broadcast MUL (``dy`` as ``[n·oh, 1, ow, 1, c]`` times a ``[1, kh, 1, kw, 1]`` constant
of the share) and a RESHAPE to ``[n, oh·kh, ow·kw, c]``; a ReLU before the pool then
masks it (``mul[masked_greater]``, :mod:`.fused`). Here the MUL, the RESHAPE and the
mask become one step writing each pixel once: ``(dy * share) * cast(v > t)``, the same
two float32 products in the same order (``ops/fast/dwgrad.py``: ``upsampled_masked``).

Fused only when the MUL's and the RESHAPE's results are read by the chain alone (and
are no subgraph outputs), the share constant holds one float32 value (bit for bit) in
every place, and the shapes are as above. Without the compiled kernels (before they
load, or without the ``[fast]`` extra) the step runs the three kernels as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ops import lookup
from ..ops.fast import WithKernels, kernels
from .liveness import is_stand_in
from .step import Step, producers_and_readers

_F32 = np.dtype(np.float32)


@dataclass(frozen=True)
class UpsampledMasked:
    """The fused step's settings: the MUL's kernel and settings, the RESHAPE's kernel,
    settings and shape operand, the mask step's kernel and settings, the window size,
    the share (a float32 scalar), the compiled kernels' loader."""

    mul: object
    mul_settings: object
    reshape: object
    reshape_settings: object
    shape: np.ndarray
    masked: object
    masked_settings: object
    kh: int
    kw: int
    share: np.float32
    kernels: WithKernels | None


def upsampled_masked(settings: UpsampledMasked, dy, share, v, t):
    """The fused step's kernel: ``dy`` [n·oh, 1, ow, 1, c], ``share`` [1, kh, 1, kw, 1],
    ``v`` [n, oh·kh, ow·kw, c], ``t`` one value."""
    k = settings.kernels
    module = k.ready() if k is not None else None
    if module is not None and dy.__class__ is np.ndarray and v.__class__ is np.ndarray \
            and dy.dtype == _F32 and v.dtype == _F32 and t.dtype == _F32 and t.size == 1 \
            and dy.flags.c_contiguous and v.flags.c_contiguous and v.ndim == 4 \
            and dy.size * settings.kh * settings.kw == v.size:
        return module.upsampled_masked(dy.reshape(-1), settings.share, v.reshape(-1),
                                       t.reshape(()).item(), settings.kh, settings.kw,
                                       np.empty(v.shape, _F32))
    up = settings.mul(settings.mul_settings, dy, share)
    up = settings.reshape(settings.reshape_settings, up, settings.shape)
    return settings.masked(settings.masked_settings, up, v, t)


def fuse_upsampled_masks(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each average-pool gradient masked by a ReLU as one step (see the
    module docstring)."""
    loader = kernels("dwgrad")
    if loader is None:
        return steps
    producer, readers = producers_and_readers(steps)
    out, dropped = list(steps), set()
    for pos, step in enumerate(steps):
        if step.op != "mul[masked_greater]" or len(step.inputs) != 3:  # (.fused)
            continue
        found = _chain(steps, step, values, outputs, producer, readers)
        if found is None:
            continue
        mul_pos, reshape_pos, (kh, kw), share = found
        mul, reshape = steps[mul_pos], steps[reshape_pos]
        settings = UpsampledMasked(mul.kernel, mul.settings, reshape.kernel,
                                   reshape.settings, values[reshape.inputs[1]], step.kernel,
                                   step.settings, kh, kw, share, WithKernels({}, loader))
        out[pos] = Step(step.index, "mul[upsampled_masked]", upsampled_masked, False,
                        (*mul.inputs, *step.inputs[1:]), step.outputs, step.out_dtypes,
                        settings, fresh=True)
        dropped.update((mul_pos, reshape_pos))
    return [s for q, s in enumerate(out) if q not in dropped]


def _chain(steps, step, values, outputs, producer, readers):
    """(the MUL's and RESHAPE's positions, the window, the share) when the mask step's
    first operand is the upsampled share as the module docstring says, else ``None``."""
    up = step.inputs[0]
    r = producer.get(up)
    reshape = steps[r] if r is not None else None
    if (reshape is None or reshape.op != "reshape" or len(reshape.inputs) != 2
            or reshape.kernel is not lookup("reshape").kernel or readers.get(up) != 1
            or up in outputs):
        return None
    prod = reshape.inputs[0]
    m = producer.get(prod)
    mul = steps[m] if m is not None else None
    if (mul is None or mul.op != "mul" or mul.kernel is not lookup("mul").kernel
            or len(mul.inputs) != 2 or readers.get(prod) != 1 or prod in outputs
            or mul.settings.get("fused_activation_function", 0)):
        return None
    shape = values[reshape.inputs[1]] if reshape.inputs[1] >= 0 else None
    share = values[mul.inputs[1]] if mul.inputs[1] >= 0 else None
    dy, v, t = values[mul.inputs[0]], values[step.inputs[1]], values[step.inputs[2]]
    for a in (shape, share):
        if a.__class__ is not np.ndarray or is_stand_in(a):
            return None
    if producer.get(reshape.inputs[1]) is not None or producer.get(mul.inputs[1]) is not None:
        return None
    if not all(isinstance(a, np.ndarray) and a.dtype == _F32 for a in (dy, share, v, t)):
        return None
    if (share.ndim != 5 or dy.ndim != 5 or v.ndim != 4 or t.size != 1
            or getattr(values[up], "shape", None) != v.shape):
        return None
    _, kh, _, kw, _ = share.shape
    rows, one_h, ow, one_w, c = dy.shape
    n, h, w, cv = v.shape
    if (share.shape != (1, kh, 1, kw, 1) or (one_h, one_w) != (1, 1) or cv != c
            or h % kh or w % kw or rows != n * (h // kh) or ow * kw != w):
        return None
    bits = share.reshape(-1).view(np.uint32)
    if not (bits == bits[0]).all():
        return None
    return m, r, (kh, kw), share.reshape(-1)[0]
