"""Quantized execution: the machinery integer and hybrid kernels share (``lib``,
``fixed_point``, ``params``) and :func:`select`, which picks a node's kernel variant.

The kernels themselves are declared beside each op (``OpDef.integer``/``OpDef.hybrid``).
"""

from __future__ import annotations

import numpy as np

from ...errors import UnsupportedOpError
from ..registry import NodeInfo, OpDef, Variant
from .params import QUANTIZED_TYPES, QParams, qparams, validate

__all__ = ["QUANTIZED_TYPES", "QParams", "qparams", "select", "validate"]


def _quantized(t) -> bool:
    return t is not None and t.quantization is not None and t.dtype in QUANTIZED_TYPES


def select(opdef: OpDef, info: NodeInfo) -> Variant | None:
    """The variant a node runs: ``None`` for the float kernel.

    * the integer kernel when the node's activations are quantized (an output, or the
      first input of an op without a hybrid form, is int8/uint8/int16 with parameters);
    * the hybrid kernel when float activations meet quantized int8 weights;
    * ``None`` for float nodes and for ``passthrough`` ops on quantized data;
    * ``UnsupportedOpError`` for a quantized node whose op has no integer kernel
      (float math on integers would be silently wrong).
    """
    ins, outs = info.inputs, info.outputs
    first = ins[0] if ins else None
    quantized_activation = any(_quantized(t) for t in outs) or (
        _quantized(first) and opdef.hybrid is None)
    if not quantized_activation:
        float_in = any(t is not None and t.dtype == np.float32 for t in ins)
        int8_weights = [t for t in ins[1:] if _quantized(t) and t.dtype == QUANTIZED_TYPES[0]]
        if opdef.hybrid is not None and float_in and int8_weights:
            return opdef.hybrid
        if float_in and int8_weights and not opdef.passthrough:
            raise UnsupportedOpError(f"{info.where}: op '{opdef.name}' has no kernel for "
                                     "float inputs with int8 (dynamic-range) weights")
        return None
    if opdef.integer is not None:
        return opdef.integer
    if opdef.passthrough:
        return None
    raise UnsupportedOpError(f"{info.where}: op '{opdef.name}' has no kernel for quantized "
                             "tensors")
