"""A model input's rescaling fused into the convolution that reads it (a
:func:`.simplify.specialise` pass, once per input shapes).

Keras' ``Rescaling`` layer (MobileNetV3's first layer) becomes ``MUL(x, scale)`` then
``ADD(·, offset)`` with one-element constants: two passes over the batch and two arrays
the size of the input, read once by the first CONV_2D. When that CONV_2D gathers patches
(any window but 1×1 stride 1) on a float32 node prepared for compiled kernels, the chain
(MUL and ADD, or either alone) and the convolution become one step whose compiled patch
gathering rescales each value on the way (``im2col_affine``: ``x * scale + shift`` in
float32, multiply then add, as the two nodes compute it; the padding stays 0.0, as it
pads the rescaled input); neither intermediate array is made.

In a dynamic-range model the float CONV_2D runs in XNNPACK's order
(:mod:`litetrain.ops.xnnpack_float`, its HARD_SWISH fused by :mod:`.epilogue`); the chain
fuses there too: ``xnnpack_float.conv_2d`` takes the rescaling (and the HARD_SWISH) into
its compiled kernels — the direct-read one rescales each image as it copies it into its
padded buffer and applies HARD_SWISH as it stores each tile.

Invariant: the same bits. A missing MUL is a multiplication by 1.0 and a missing ADD an
addition of -0.0, which change no value (NaN included: the ADD or the convolution quiets
it anyway). Until the compiled kernels are loaded, or for other arrays than prepared
for, the step runs the chain's own kernels and then the convolution's. Left alone:
chains with fused activations, operands in the other order, values read elsewhere or
returned, non-float32 values, 1×1 stride-1 convolutions (their input rows are their
patches: nothing to fuse into), TF Lite's float order, integer kernels.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np

from ..ops import compiled, lookup, xnnpack_float
from ..ops.conv import conv_2d
from ..ops.conv_gemm import chunked_conv
from .epilogue import then_xnnpack_hard_swish
from .step import Step, producers_and_readers

_F32 = np.dtype(np.float32)
_ONE, _MINUS_ZERO = np.float32(1.0), np.float32(-0.0)


def fuse_input_rescaling(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each chain described above fused into its convolution's step."""
    producer, readers = producers_and_readers(steps)

    def link(tensor: int, op: str) -> int | None:
        """The position of the plain ``op`` step making ``tensor`` (read once, not an
        output) from a float32 array of its shape and a one-element float32 value."""
        p = producer.get(tensor)
        if p is None or readers.get(tensor) != 1 or tensor in outputs:
            return None
        step = steps[p]
        if (step.op != op or step.kernel is not lookup(op).kernel or len(step.inputs) != 2
                or step.settings.get("fused_activation_function", 0)):
            return None
        x, k, y = (values[i] for i in (*step.inputs, tensor))
        ok = all(isinstance(v, np.ndarray) and v.dtype == _F32 for v in (x, k, y)) \
            and x.shape == y.shape and k.size == 1 and k.ndim <= y.ndim
        return p if ok else None

    out, dropped = list(steps), set()
    for pos, step in enumerate(steps):
        hard_swish, fused_conv = _conv_with_patches(step, values), rescaled_conv
        if hard_swish is False:
            hard_swish, fused_conv = _xnnpack_conv_with_patches(step, values), _rescaled_xnn
        if hard_swish is False:
            continue
        add = link(step.inputs[0], "add")
        mul = link(step.inputs[0] if add is None else steps[add].inputs[0], "mul")
        if add is None and mul is None:
            continue
        chain = tuple(None if p is None else steps[p] for p in (mul, add))
        first = chain[0] if chain[0] is not None else chain[1]
        scalars = tuple(-1 if s is None else s.inputs[1] for s in chain)
        out[pos] = replace(step, op=f"{'+'.join(s.op for s in chain if s)}+{step.op}",
                           kernel=functools.partial(fused_conv, chain, hard_swish),
                           inputs=(first.inputs[0], *scalars, *step.inputs[1:]),
                           fresh=True, in_place=None)
        dropped.update(p for p in (mul, add) if p is not None)
    return [s for p, s in enumerate(out) if p not in dropped]


def _conv_with_patches(step: Step, values: list):
    """For a float32 CONV_2D step (fused HARD_SWISH or not: see :mod:`.epilogue`) that
    gathers patches with compiled kernels when they are loaded, the fused HARD_SWISH's
    settings (``None``: none); ``False`` for any other step."""
    kernel = step.kernel
    if step.op == "conv_2d" and kernel is lookup("conv_2d").kernel:
        hard_swish = None
    elif (step.op == "conv_2d+hard_swish" and isinstance(kernel, functools.partial)
          and kernel.func is conv_2d and set(kernel.keywords) == {"hard_swish"}):
        hard_swish = kernel.keywords["hard_swish"]
    else:
        return False
    s = step.settings
    if s.__class__ is not compiled.Compiled or s.loader is None or s.gemm is None:
        return False
    x, y = values[step.inputs[0]], values[step.outputs[0]]
    if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.ndim == 4
            and x.dtype == _F32 and y.dtype == _F32 and x.shape[3] == s.filter.shape[3]):
        return False
    _, kh, kw, _ = s.filter.shape
    if kh == kw == s["stride_h"] == s["stride_w"] == 1:
        return False  # no patches to gather
    return hard_swish


def _xnnpack_conv_with_patches(step: Step, values: list):
    """For a float32 XNNPACK-order CONV_2D step (HARD_SWISH fused by
    :func:`.epilogue.fuse_hybrid_hard_swish` or not) that gathers patches, the fused
    HARD_SWISH's settings (``None``: none); ``False`` for any other step."""
    kernel, conv = step.kernel, lookup("conv_2d").kernel
    if step.settings.__class__ is not xnnpack_float.XnnOrder:
        return False
    if step.op == "conv_2d" and kernel is conv:
        hard_swish = None
    elif (step.op == "conv_2d+hard_swish" and isinstance(kernel, functools.partial)
          and kernel.func is then_xnnpack_hard_swish and len(kernel.args) == 2
          and kernel.args[0] is conv and not kernel.keywords
          and kernel.args[1].__class__ is xnnpack_float.XnnOrder):
        hard_swish = kernel.args[1]
    else:
        return False
    x, y = values[step.inputs[0]], values[step.outputs[0]]
    w = values[step.inputs[1]] if len(step.inputs) > 1 and step.inputs[1] >= 0 else None
    if not (isinstance(x, np.ndarray) and isinstance(y, np.ndarray)
            and isinstance(w, np.ndarray) and x.ndim == 4 and w.ndim == 4
            and x.dtype == _F32 and y.dtype == _F32 and x.shape[3] == w.shape[3]):
        return False
    s = step.settings
    if w.shape[1] == w.shape[2] == s["stride_h"] == s["stride_w"] == 1:
        return False  # no patches to gather
    return hard_swish


def _scalar(v) -> np.float32 | None:
    if v.__class__ is not np.ndarray or v.dtype != _F32 or v.size != 1:
        return None
    return v.reshape(-1)[0]


def rescaled_conv(chain: tuple, hard_swish, settings, x, scale, shift, w, *rest):
    """The fused step: compiled when loaded and the arrays are as prepared, else the
    chain's kernels, then the convolution's."""
    mul, add = chain
    if compiled.applies(settings, x, w) and x.shape[3] == w.shape[3]:
        k1 = _ONE if mul is None else _scalar(scale)
        k2 = _MINUS_ZERO if add is None else _scalar(shift)
        if k1 is not None and k2 is not None:
            return chunked_conv(settings, x, w, rest[0] if rest else None, True,
                                hard_swish, (k1, k2))
    if mul is not None:
        x = mul.kernel(mul.settings, x, scale)
    if add is not None:
        x = add.kernel(add.settings, x, shift)
    return conv_2d(settings, x, w, *rest, hard_swish=hard_swish)


def _rescaled_xnn(chain: tuple, hard_swish, settings, x, scale, shift, w, *rest):
    """The fused step of an XNNPACK-order CONV_2D: ``xnnpack_float.conv_2d`` with the
    rescaling (and the HARD_SWISH) once its compiled kernels are loaded and the arrays
    are as prepared, else the chain's kernels, the convolution's, then the HARD_SWISH."""
    mul, add = chain
    b = rest[0] if rest else None
    if (settings.compiled() is not None and xnnpack_float.applies(settings, x, w, b)
            and x.ndim == 4 and x.shape[3] == w.shape[3]):
        k1 = _ONE if mul is None else _scalar(scale)
        k2 = _MINUS_ZERO if add is None else _scalar(shift)
        if k1 is not None and k2 is not None:
            return xnnpack_float.conv_2d(settings, x, w, b, hard_swish, (k1, k2))
    if mul is not None:
        x = mul.kernel(mul.settings, x, scale)
    if add is not None:
        x = add.kernel(add.settings, x, shift)
    conv = lookup("conv_2d").kernel
    if hard_swish is None:
        return conv(settings, x, w, *rest)
    return then_xnnpack_hard_swish(conv, hard_swish, settings, x, w, *rest)
