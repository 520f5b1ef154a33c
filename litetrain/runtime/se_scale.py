"""Squeeze-and-excitation scaling ``MUL([n, h, w, c], [n, 1, 1, c])`` in one compiled pass
(a :func:`.simplify.specialise` pass, once per input shapes).

MobileNetV3 and EfficientNet scale every block's activations by a per-image channel
vector. NumPy broadcasts that with one inner loop per pixel, ``c`` values long, 2-4x
slower than a pass over the array; with the ``[fast]`` extra such a float32 MUL step gets
:func:`litetrain.ops.fast.conv.mul_per_image_channels` (written into the big operand
when that dies there: :mod:`.inplace`), loaded on a background thread from the step's
second run (:mod:`litetrain.ops.fast`), the MUL's own kernel until then.

Invariant: the same bits. Each element is one float32 product of the same two values in
the MUL's operand order. Arrays other than those prepared for (shapes, float32, C order)
take the MUL's own kernel.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np

from ..ops import lookup
from ..ops.fast import WithKernels, kernels
from .step import Step

_F32 = np.dtype(np.float32)


def scale_per_image_channels(steps: list[Step], values: list) -> list[Step]:
    """``steps`` with each qualifying MUL (see the module docstring) given the compiled
    kernel; unchanged without the ``[fast]`` extra."""
    loader = kernels("conv")
    if loader is None:
        return steps
    return [_scaled_step(s, values, loader) or s for s in steps]


def _scaled_step(step: Step, values: list, loader) -> Step | None:
    mul = lookup("mul")
    if (step.op != "mul" or step.kernel is not mul.kernel or len(step.inputs) != 2
            or len(step.outputs) != 1 or step.settings.get("fused_activation_function", 0)):
        return None
    a, b, out = (values[i] if i >= 0 else None for i in (*step.inputs, step.outputs[0]))
    if not all(isinstance(v, np.ndarray) and v.dtype == _F32 for v in (a, b, out)):
        return None
    big_pos = 0 if a.shape == out.shape else 1 if b.shape == out.shape else None
    if big_pos is None or out.ndim != 4:
        return None
    n, h, w, c = out.shape
    if h * w == 1 or (b if big_pos == 0 else a).shape != (n, 1, 1, c):
        return None  # (one pixel: a plain elementwise MUL)
    settings = WithKernels(step.settings, loader)
    return replace(step, op="mul[per_image_channels]", settings=settings,
                   kernel=functools.partial(_kernel, big_pos, out.shape),
                   in_place=functools.partial(_in_place, big_pos, out.shape, step.in_place))


def _operands(big_pos: int, shape: tuple[int, ...], a, b):
    """(x, v) as prepared for, or ``None``."""
    x, v = (a, b) if big_pos == 0 else (b, a)
    if (x.__class__ is not np.ndarray or v.__class__ is not np.ndarray
            or x.dtype != _F32 or v.dtype != _F32 or x.shape != shape
            or v.shape != (shape[0], 1, 1, shape[3]) or not x.flags.c_contiguous
            or not v.flags.c_contiguous):
        return None
    return x, v


def _kernel(big_pos: int, shape: tuple[int, ...], settings: WithKernels, a, b):
    module = settings.ready()
    ops = None if module is None else _operands(big_pos, shape, a, b)
    if ops is None:
        return lookup("mul").kernel(settings, a, b)
    x, v = ops
    out = np.empty_like(x)
    module.mul_per_image_channels(x, v, out, big_pos == 0)
    return out


def _in_place(big_pos: int, shape: tuple[int, ...], mul_in_place, operand: int):
    """The form writing into ``operand``: only the big one can take the result."""
    fallback = None if mul_in_place is None else mul_in_place(operand)
    if operand != big_pos or fallback is None:
        return None

    def kernel(settings: WithKernels, a, b):
        module = settings.ready()
        ops = None if module is None else _operands(big_pos, shape, a, b)
        if ops is None or not ops[0].flags.writeable:
            return fallback(settings, a, b)
        module.mul_per_image_channels_in_place(*ops, big_pos == 0)
        return ops[0]

    return kernel
