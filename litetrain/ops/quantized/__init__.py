"""Quantized execution: which kernel a node gets when its tensors carry quantization.

``bind(node, tensors)`` is called by the execution plan for every node. It returns

* an integer kernel when the node's activations are quantized (int8/uint8/int16),
* a hybrid kernel when float activations meet quantized int8 weights (dynamic range),
* ``None`` when the float kernel applies (no quantized tensors, or an op that only
  moves integers around), and raises ``UnsupportedOpError`` for a quantized node whose op
  has no integer kernel (running float math on integers would be silently wrong).

The returned kernel has the ordinary signature ``kernel(attrs, *inputs)``.
"""

from __future__ import annotations

import functools

import numpy as np

from ...errors import UnsupportedOpError
from ...ir import Node, Tensor
from ..registry import OpDef
from .hybrid import TABLE as HYBRID
from .kernels import PASSTHROUGH, build_table
from .params import QUANTIZED_TYPES, QParams, qparams, validate


@functools.cache
def _integer() -> dict:
    return build_table()  # after the op table is registered (it borrows float kernels)

__all__ = ["OPS", "QParams", "bind", "validate"]


def _dequantize_float16(attrs, x):
    if x.dtype != np.float16:
        raise ValueError(f"DEQUANTIZE of a {x.dtype} tensor needs quantization parameters")
    return x.astype(np.float32)


def _quantize_unbound(attrs, x):
    raise ValueError("QUANTIZE needs quantization parameters on its output tensor")


OPS = [OpDef("quantize", _quantize_unbound, "QuantizeOptions", shape_inputs=()),
       OpDef("dequantize", _dequantize_float16, "DequantizeOptions", shape_inputs=())]


def _params(tensors: list[Tensor], indices, to_numpy) -> list[QParams | None]:
    out = []
    for i in indices:
        if i < 0:
            out.append(None)
            continue
        t = tensors[i]
        dt = np.dtype(to_numpy(t.dtype))
        out.append(qparams(t, dt) if dt in QUANTIZED_TYPES or dt == np.int32 else None)
    return out


def bind(node: Node, tensors: list[Tensor], to_numpy, where: str):
    qin = _params(tensors, node.inputs, to_numpy)
    qout = _params(tensors, node.outputs, to_numpy)
    in_types = [None if i < 0 else np.dtype(to_numpy(tensors[i].dtype)) for i in node.inputs]
    quantized_activation = any(
        q is not None and q.dtype in QUANTIZED_TYPES for q in qout) or (
        bool(qin) and qin[0] is not None and qin[0].dtype in QUANTIZED_TYPES
        and node.op not in HYBRID)
    if node.op in ("quantize", "dequantize") and (qin[0] or qout[0]):
        return functools.partial(_call, _integer()[node.op], qin, qout)
    if not quantized_activation:
        if (node.op in HYBRID and len(qin) > 1 and qin[1] is not None
                and in_types[0] == np.float32 and in_types[1] == np.int8):
            return functools.partial(_call, HYBRID[node.op], qin, qout)
        return None
    if node.op in _integer():
        return functools.partial(_call, _integer()[node.op], qin, qout)
    if node.op in PASSTHROUGH:
        return None
    raise UnsupportedOpError(f"{where}: op '{node.op}' has no kernel for quantized tensors")


def _call(kernel, qin, qout, attrs, *inputs):
    return kernel(attrs, qin, qout, *inputs)
