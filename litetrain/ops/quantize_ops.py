"""QUANTIZE and DEQUANTIZE: between float and integer tensors, and between integer types
or scales (QUANTIZE int→int requantizes with a fixed-point multiplier made at prepare).
DEQUANTIZE of a float16 tensor (float16 models) needs no parameters."""

from __future__ import annotations

import numpy as np

from . import compiled_int8
from .quantized.fixed_point import ROUNDINGS, dtype_range
from .quantized.lib import (
    Quantized,
    Rescaled,
    Variant,
    integer,
    quantized,
    requantize_float,
    rescaled,
)
from .registry import NodeInfo, OpDef
from .shapes import same_as


def _dequantize_float16(attrs, x):
    if x.dtype != np.float16:
        raise ValueError(f"DEQUANTIZE of a {x.dtype} tensor needs quantization parameters")
    return x.astype(np.float32)


def _quantize_unbound(attrs, x):
    raise ValueError("QUANTIZE needs quantization parameters on its output tensor")


def _quantize_prepare(info: NodeInfo) -> Quantized:
    q = quantized(info)
    if q.qin[0] is None:  # float -> integer
        return q
    real = np.float64(q.qin[0].s) / np.float64(q.qout[0].s)
    return rescaled(info, np.array([real]))  # Requantize: the double-rounding multiplier


def _quantize(s: Quantized, x):
    qo = s.qout[0]
    if not isinstance(s, Rescaled):
        return requantize_float(x, qo)
    # integer -> integer (e.g. uint8 <-> int8, or a new scale)
    out = ROUNDINGS[s.rounding](x.astype(np.int64) - s.qin[0].zp, s.multiplier,
                                s.shift) + qo.zp
    lo, hi = dtype_range(qo.dtype)
    return np.clip(out, lo, hi).astype(qo.dtype)


def _dequantize(s: Quantized, x):
    return s.qin[0].dequantize(x)


OPS = [
    OpDef("quantize", _quantize_unbound, "QuantizeOptions", shape=same_as(0),
          integer=compiled_int8.quantize(Variant(_quantize, _quantize_prepare)),
          shape_inputs=()),
    OpDef("dequantize", _dequantize_float16, "DequantizeOptions", shape=same_as(0),
          integer=integer(_dequantize), shape_inputs=()),
]
