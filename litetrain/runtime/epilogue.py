"""Activations fused into the step that makes their input (a :func:`.simplify.specialise`
pass, once per input shapes).

A float HARD_SWISH node whose input is the float32 result of a CONV_2D,
DEPTHWISE_CONV_2D or ADD step that nothing else reads (MobileNetV3 has one after nearly
every convolution) runs inside that step: one step instead of two, no second output
array, and for CONV_2D in the epilogue its GEMM blocks already get (bias, clamp, then
HARD_SWISH on each block while it is in cache: :class:`litetrain.ops.compiled.ConvEpilogue`),
for DEPTHWISE_CONV_2D in the compiled kernel's store when that runs
(``depthwise_conv_2d_hard_swish``). Other results get HARD_SWISH in place right after
they are made (:func:`litetrain.ops.activations.hard_swish_in_place`).

Invariant: the same bits as the two steps. HARD_SWISH is elementwise and reads only the
producer's stored float32 results, and the fused forms compute each result from that
value with the separate node's float32 operations in its order (NumPy's ufuncs in place,
or the same arithmetic compiled: :func:`litetrain.ops.fast.activations.hard_swish_value`).
The fused step runs where the producer ran and writes the HARD_SWISH node's output; the
producer's own output tensor gets no value (nothing read it).

The same for a MUL of a CONV_2D result read by nothing else and a one-element float32
value (MobileNetV3's hard-sigmoid ``/ 6``): the product in the convolution's epilogue
(``bias_activation_scale``), the MUL's float32 product of the stored result, in its
operand order.

In a dynamic-range model (XNNPACK's order for its float nodes:
:mod:`litetrain.ops.xnnpack_float`) an XNNPACK-order HARD_SWISH whose input is the result
of a hybrid CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED step that nothing else reads
runs inside that step (:func:`fuse_hybrid_hard_swish`): the hybrid step gets the
HARD_SWISH node's settings (``HybridConv.hard_swish``); its whole-op compiled kernels
apply XNNPACK's formula to each result as they store it
(:func:`litetrain.ops.fast.xnnpack.hard_swish_value`, the separate node's compiled
arithmetic), its other paths call the node's kernel on their result: the same bits
either way. After an XNNPACK-order float CONV_2D or DEPTHWISE_CONV_2D (a fresh result)
that HARD_SWISH runs in place on the result, inside the convolution's step.

Left alone: HARD_SWISH in TF Lite's float order (the builtin resolvers), integer
kernels (either step), producers whose result is a subgraph output, read twice, not
float32 or not of the HARD_SWISH output's shape. ``experimental_preserve_all_tensors``
skips every specialisation, so each tensor keeps its own value there.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import replace

import numpy as np

from ..ops import builtin_float, lookup, xnnpack_float
from ..ops.activations import hard_swish_in_place
from ..ops.conv import conv_2d, depthwise_conv_2d
from ..ops.quantized.lib import HybridConv
from .step import Step, fuse_into_producers

_F32 = np.dtype(np.float32)
_PRODUCERS = ("conv_2d", "depthwise_conv_2d", "add")


def fuse_activations(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each HARD_SWISH step described above run inside its producer's."""
    def fuse(first: Step, step: Step) -> Step | None:
        if (not _float_hard_swish(step, values)
                or not _fusable_producer(first, values, values[step.outputs[0]])):
            return None
        return replace(first, op=f"{first.op}+hard_swish", kernel=_fused(first, step),
                       outputs=step.outputs, out_dtypes=step.out_dtypes, fresh=True,
                       in_place=None)

    return fuse_into_producers(steps, outputs, fuse)


def _float_hard_swish(step: Step, values: list) -> bool:
    """A HARD_SWISH step with its float kernel, not in TF Lite's or XNNPACK's order,
    float32 out."""
    if (step.op != "hard_swish" or len(step.inputs) != 1 or len(step.outputs) != 1
            or step.kernel is not lookup("hard_swish").kernel
            or step.settings.__class__ in (builtin_float.TfOrder, xnnpack_float.XnnOrder)):
        return False
    y = values[step.outputs[0]]
    return isinstance(y, np.ndarray) and y.dtype == _F32


def _fusable_producer(step: Step, values: list, y: np.ndarray) -> bool:
    """A pure single-output step of a producer op with its float kernel (not an integer
    or hybrid variant, not already fused), whose fresh float32 result has ``y``'s
    shape, with float32 operands."""
    if (step.op not in _PRODUCERS or step.stateful or not step.fresh
            or len(step.outputs) != 1 or step.kernel is not lookup(step.op).kernel):
        return False
    v = values[step.outputs[0]]
    # every operand float32 too: the kernel's own result is then float32 (a float64
    # one would get HARD_SWISH in float64 before the plan's cast to the declared type)
    operands = [values[i] for i in step.inputs if i >= 0]
    return (isinstance(v, np.ndarray) and v.dtype == _F32 and v.shape == y.shape
            and all(isinstance(a, np.ndarray) and a.dtype == _F32 for a in operands))


def fuse_epilogues(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """:func:`fuse_activations`, :func:`fuse_hybrid_hard_swish`, then :func:`fuse_scales`."""
    steps = fuse_hybrid_hard_swish(fuse_activations(steps, values, outputs), values, outputs)
    return fuse_scales(steps, values, outputs)


_HYBRID_PRODUCERS = ("conv_2d", "depthwise_conv_2d", "fully_connected")


def fuse_hybrid_hard_swish(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each XNNPACK-order HARD_SWISH step whose float32 input is made by a
    hybrid step (read by nothing else, of the HARD_SWISH output's shape) run inside that
    step (module docstring)."""
    hard_swish = lookup("hard_swish").kernel

    def fuse(first: Step, step: Step) -> Step | None:
        if (step.op != "hard_swish" or step.kernel is not hard_swish
                or step.settings.__class__ is not xnnpack_float.XnnOrder
                or len(step.inputs) != 1 or len(step.outputs) != 1):
            return None
        v, y = values[step.inputs[0]], values[step.outputs[0]]
        if (first.op not in _HYBRID_PRODUCERS or first.stateful or len(first.outputs) != 1
                or not all(isinstance(a, np.ndarray) and a.dtype == _F32 and a.shape == y.shape
                           for a in (v, y))):
            return None
        if first.settings.__class__ is HybridConv and first.settings.hard_swish is None:
            # the result is always a new array (the compiled pass's, or HARD_SWISH's)
            return replace(first, op=f"{first.op}+hard_swish", outputs=step.outputs,
                           out_dtypes=step.out_dtypes, fresh=True, in_place=None,
                           into=None, into_for=None, settings=dataclasses.replace(
                               first.settings, hard_swish=step.settings))
        if (first.settings.__class__ is xnnpack_float.XnnOrder and first.fresh
                and first.op != "fully_connected" and first.kernel is lookup(first.op).kernel):
            # an XNNPACK-order float convolution: HARD_SWISH in place on its fresh result
            return replace(first, op=f"{first.op}+hard_swish", outputs=step.outputs,
                           out_dtypes=step.out_dtypes, in_place=None, into=None,
                           into_for=None, kernel=functools.partial(
                               then_xnnpack_hard_swish, first.kernel, step.settings))
        return None

    return fuse_into_producers(steps, outputs, fuse)


def fuse_scales(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each float MUL of a CONV_2D result read by nothing else and a
    one-element float32 value (in that order; MobileNetV3's hard-sigmoid ``/ 6`` after
    its squeeze-and-excitation convolutions) run inside the convolution's step."""
    mul = lookup("mul")

    def fuse(first: Step, step: Step) -> Step | None:
        if (step.op != "mul" or step.kernel is not mul.kernel or len(step.inputs) != 2
                or len(step.outputs) != 1 or step.settings.get("fused_activation_function", 0)):
            return None
        k, y = step.inputs[1], values[step.outputs[0]]
        kv = values[k] if k >= 0 else None
        if (first.op != "conv_2d" or not isinstance(y, np.ndarray) or y.dtype != _F32
                or not _fusable_producer(first, values, y) or not isinstance(kv, np.ndarray)
                or kv.dtype != _F32 or kv.size != 1 or kv.ndim > y.ndim):
            return None
        return replace(first, op="conv_2d+mul", kernel=functools.partial(conv_scaled, step),
                       inputs=(*(*first.inputs, -1)[:3], k), outputs=step.outputs,
                       out_dtypes=step.out_dtypes, fresh=True, in_place=None)

    return fuse_into_producers(steps, outputs, fuse)


def then_xnnpack_hard_swish(kernel, hard_swish, settings, *inputs):
    """``kernel``'s result with the XNNPACK-order HARD_SWISH (``hard_swish``: that node's
    settings) in place on it (:mod:`litetrain.runtime.prologue` recognises this step)."""
    return xnnpack_float.hard_swish_in_place(hard_swish, kernel(settings, *inputs))


def conv_scaled(mul: Step, settings, x, w, b, k):
    if k.__class__ is np.ndarray and k.dtype == _F32 and k.size == 1 and k.ndim <= 4:
        return conv_2d(settings, x, w, b, scale=k)
    return mul.kernel(mul.settings, conv_2d(settings, x, w, b), k)


def _fused(first: Step, hard_swish: Step):
    if first.op == "conv_2d":
        return functools.partial(conv_2d, hard_swish=hard_swish.settings)
    if first.op == "depthwise_conv_2d":  # in the compiled kernel's store when it runs
        return functools.partial(depthwise_conv_2d, hard_swish=hard_swish.settings)
    return functools.partial(_then_hard_swish, first.kernel, hard_swish.settings)


def _then_hard_swish(kernel, hard_swish, settings, *inputs):
    return hard_swish_in_place(hard_swish, kernel(settings, *inputs))
