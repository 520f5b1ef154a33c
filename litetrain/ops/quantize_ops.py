"""QUANTIZE and DEQUANTIZE: between float and integer tensors, and between integer types
or scales (QUANTIZE int→int requantizes with a fixed-point multiplier made at prepare).
DEQUANTIZE of a float16 tensor (float16 models) needs no parameters.

Under ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` the optimized kernels' NEON code (run on x86
through NEON_2_SSE) takes whole blocks of the flattened tensor, the scalar code the rest:
8-bit → 8-bit QUANTIZE rounds blocks of 16 the NEON way (``vqrdmulh`` + ``vrshl``) and the
rest twice (``MultiplyByQuantizedMultiplier``); DEQUANTIZE computes blocks of 8 as
``float(q) * scale + float(-zero_point * scale)`` in float32 and the rest as
``float(scale * (q - zero_point))`` in double. Under the default resolver XNNPACK
requantizes 8-bit → 8-bit (same signedness) with its own 8-bit fixed-point multiplier
(:class:`_XnnConvert`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import compiled_int8
from .quantized.fixed_point import ROUNDINGS, dtype_range
from .quantized.lib import (
    Quantized,
    Rescaled,
    Variant,
    quantized,
    requantize_float,
    rescaled,
)
from .registry import NodeInfo, OpDef
from .resolver import OpResolverType
from .shapes import same_as


def _dequantize_float16(attrs, x):
    if x.dtype != np.float16:
        raise ValueError(f"DEQUANTIZE of a {x.dtype} tensor needs quantization parameters")
    return x.astype(np.float32)


def _quantize_unbound(attrs, x):
    raise ValueError("QUANTIZE needs quantization parameters on its output tensor")


_BYTES = (np.dtype(np.int8), np.dtype(np.uint8))


def _optimized(info: NodeInfo) -> bool:
    return info.resolver is OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES


@dataclass(frozen=True)
class _XnnConvert(Quantized):
    """XNNPACK's 8-bit requantization (``qs8_vcvt``/``qu8_vcvt``): a multiplier of
    ``lrintf(256 * in_scale / out_scale)`` (float32), ``((q - zp_in) * m + (zp_out << 8)
    + 128) >> 8``, clamped."""

    multiplier: int = 0


def _xnn_convert(info: NodeInfo, q: Quantized) -> _XnnConvert | None:
    """Where TF's default interpreter hands an 8-bit requantization to XNNPACK: same
    signedness, per-tensor, scale ratio in [2**-8, 2**7]."""
    x, y = info.inputs[0], info.outputs[0]
    if not info.resolver.xnnpack or x.dtype != y.dtype or x.dtype not in _BYTES:
        return None
    if q.qin[0].scale.size != 1 or q.qout[0].scale.size != 1:
        return None
    ratio = np.float32(q.qin[0].s) / np.float32(q.qout[0].s)
    if not 2.0 ** -8 <= ratio <= 2.0 ** 7:
        return None
    return _XnnConvert(q.attrs, q.qin, q.qout, int(np.rint(np.float32(256) * ratio)))


def _quantize_prepare(info: NodeInfo) -> Quantized:
    q = quantized(info)
    if q.qin[0] is None:  # float -> integer
        return q
    xnn = _xnn_convert(info, q)
    if xnn is not None:
        return xnn
    real = np.float64(q.qin[0].s) / np.float64(q.qout[0].s)
    eight = info.inputs[0].dtype in _BYTES and info.outputs[0].dtype in _BYTES
    # Requantize: the double-rounding multiplier (NEON blocks of 16 in the optimized kernel)
    return rescaled(info, np.array([real]),
                    rounding="neon" if eight and _optimized(info) else "double")


def _quantize(s: Quantized, x):
    qo = s.qout[0]
    lo, hi = dtype_range(qo.dtype)
    if s.__class__ is _XnnConvert:
        acc = (x.astype(np.int64) - s.qin[0].zp) * s.multiplier + (qo.zp << 8) + 0x80
        return np.clip(acc >> 8, lo, hi).astype(qo.dtype)
    if not isinstance(s, Rescaled):
        return requantize_float(x, qo)
    # integer -> integer (e.g. uint8 <-> int8, or a new scale)
    centred = x.astype(np.int64) - s.qin[0].zp
    if s.rounding == "neon":
        flat = centred.reshape(-1)
        body = flat.size // 16 * 16
        out = np.concatenate([ROUNDINGS["neon"](flat[:body], s.multiplier, s.shift),
                              ROUNDINGS["double"](flat[body:], s.multiplier, s.shift)])
        out = out.reshape(x.shape) + qo.zp
    else:
        out = ROUNDINGS[s.rounding](centred, s.multiplier, s.shift) + qo.zp
    return np.clip(out, lo, hi).astype(qo.dtype)


class _OptimizedDequantize(Quantized):
    """DEQUANTIZE settings under the optimized builtin kernels (module docstring)."""


def _dequantize_prepare(info: NodeInfo) -> Quantized:
    q = quantized(info)
    qi = q.qin[0]
    if _optimized(info) and qi.scale.size == 1 and info.inputs[0].dtype in (
            *_BYTES, np.dtype(np.int16)):
        return _OptimizedDequantize(q.attrs, q.qin, q.qout)
    return q


def _dequantize(s: Quantized, x):
    if s.__class__ is not _OptimizedDequantize:
        return s.qin[0].dequantize(x)
    qi = s.qin[0]
    flat = np.asarray(x).reshape(-1)
    body = flat.size // 8 * 8
    out = np.empty(flat.shape, np.float32)
    np.add(np.multiply(flat[:body].astype(np.float32), np.float32(qi.s)),
           np.float32(-qi.zp * np.float64(qi.s)), out=out[:body])
    out[body:] = np.float64(qi.s) * (flat[body:].astype(np.float64) - qi.zp)
    return out.reshape(np.shape(x))


OPS = [
    OpDef("quantize", _quantize_unbound, "QuantizeOptions", shape=same_as(0),
          integer=compiled_int8.quantize(Variant(_quantize, _quantize_prepare)),
          shape_inputs=()),
    OpDef("dequantize", _dequantize_float16, "DequantizeOptions", shape=same_as(0),
          integer=Variant(_dequantize, _dequantize_prepare), shape_inputs=()),
]
