"""A RELU or RELU6 after a convolution run as that convolution's fused activation (a
:func:`.simplify.specialise` pass, once per input shapes).

Authored models emit a convolution's activation as its own node (gradient rules take
the activation separately, and RELU's reads the RELU's output, as TensorFlow's
``ReluGrad`` is given it), so in a train step the convolution's result is read by the
RELU alone. Run as two steps that is a second full pass over the result (~0.2 ms for a
``[32, 32, 32, 16]`` float32 map); as the convolution's fused activation the clamp is
applied while each GEMM block or depthwise row is still in cache (the kernels' epilogue,
:mod:`litetrain.ops.compiled`), or in place on the fresh result by the NumPy kernels.

A float32 CONV_2D or DEPTHWISE_CONV_2D step (its own kernel, no fused activation, its
float kernels' settings: not TF Lite's or XNNPACK's order) whose fresh result nothing but
a float RELU / RELU6 step reads (and is no subgraph output) becomes one step making the
activation's output; the convolution's own output tensor gets no value.

Invariant: the same bits. Every kernel form of the convolution clamps its float32 results
with ``np.maximum(v, 0)`` / ``np.clip(v, 0, 6)``'s values and zero signs (NaN kept), which
is what the RELU / RELU6 kernels compute from the stored result.
``experimental_preserve_all_tensors`` skips every specialisation.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import numpy as np

from ..ops import compiled, lookup
from ..ops.common import RELU, RELU6
from .step import Step, fuse_into_producers

_F32 = np.dtype(np.float32)
_ACTIVATIONS = {"relu": RELU, "relu6": RELU6}
_CONVOLUTIONS = ("conv_2d", "depthwise_conv_2d")
_PLAIN = (dict, MappingProxyType)  # a node's attrs as the plan gives them


def fuse_conv_activations(steps: list[Step], values: list, outputs: set[int]) -> list[Step]:
    """``steps`` with each RELU / RELU6 described above run as its convolution's fused
    activation."""
    def fuse(first: Step, step: Step) -> Step | None:
        code = _float_activation(step, values)
        if code is None:
            return None
        settings = _with_activation(first, values, values[step.outputs[0]], code)
        if settings is None:
            return None
        return replace(first, op=f"{first.op}+{step.op}", settings=settings,
                       outputs=step.outputs, out_dtypes=step.out_dtypes)

    return fuse_into_producers(steps, outputs, fuse)


def _float_activation(step: Step, values: list) -> int | None:
    """The fused-activation code of a RELU / RELU6 step with its float kernel on plain
    attrs and a float32 result, else ``None``."""
    code = _ACTIVATIONS.get(step.op)
    if (code is None or len(step.inputs) != 1 or len(step.outputs) != 1 or step.stateful
            or step.kernel is not lookup(step.op).kernel
            or step.settings.__class__ not in _PLAIN):
        return None
    y = values[step.outputs[0]]
    return code if isinstance(y, np.ndarray) and y.dtype == _F32 else None


def _with_activation(step: Step, values: list, y: np.ndarray, code: int):
    """The convolution step's settings with ``code`` as its fused activation, or
    ``None`` when the step is not one this pass may change."""
    if (step.op not in _CONVOLUTIONS or step.stateful or not step.fresh
            or len(step.outputs) != 1 or step.kernel is not lookup(step.op).kernel
            or step.settings.get("fused_activation_function", 0)):
        return None
    v = values[step.outputs[0]]
    operands = [values[i] for i in step.inputs if i >= 0]
    if not (isinstance(v, np.ndarray) and v.dtype == _F32 and v.shape == y.shape
            and all(isinstance(a, np.ndarray) and a.dtype == _F32 for a in operands)):
        return None
    s = step.settings
    attrs = {**s, "fused_activation_function": code}
    if s.__class__ in _PLAIN:
        return MappingProxyType(attrs)
    if s.__class__ is compiled.Compiled:
        # the clamp bounds follow the new attrs; the constant filter and its GEMM layout
        # are the prepared ones (not laid out again per specialisation)
        fused = compiled.Compiled(attrs, None, s.loader, step.op == "depthwise_conv_2d")
        fused.filter, fused.gemm = s.filter, s.gemm
        return fused
    return None  # TF Lite's or XNNPACK's float order: left as the file has it
