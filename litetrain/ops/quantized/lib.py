"""Shared machinery of the integer and hybrid kernels declared beside each op.

Integer kernels follow TFLite's reference semantics; their settings come from a prepare
run once per plan, so multipliers and shifts are never recomputed on invoke:

* :class:`Quantized` — the node's attrs and every input's/output's :class:`QParams`
  (``None`` where a tensor is not quantized); the default settings.
* :class:`Rescaled` — plus the per-channel (or per-tensor) fixed-point multipliers and
  shifts and the fused activation's integer clamp, for matmul-like ops.
* :func:`lut` — TFLite's lookup-table semantics for nonlinear int8 ops: dequantize, apply
  the float kernel, round half away from zero.

Hybrid (dynamic-range) kernels quantize each batch row or item of the float input on the
fly, as TFLite does, and use :func:`hybrid_input` / :func:`dequantized_weights`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ..registry import NodeInfo, Variant
from .fixed_point import (
    activation_range,
    dtype_range,
    multiply_by_quantized_multiplier,
    quantize_multipliers,
    round_half_away,
)
from .params import QParams


@dataclass(frozen=True)
class Quantized:
    attrs: Mapping[str, object]
    qin: tuple[QParams | None, ...]
    qout: tuple[QParams | None, ...]


def quantized(info: NodeInfo) -> Quantized:
    """The default prepare of integer and hybrid kernels."""
    return Quantized(info.attrs,
                     tuple(None if t is None else t.quantization for t in info.inputs),
                     tuple(t.quantization for t in info.outputs))


@dataclass(frozen=True)
class Rescaled(Quantized):
    """``acc * multiplier >> shift + zero point``, clamped to ``[lo, hi]``."""

    multiplier: np.ndarray | int
    shift: np.ndarray | int
    lo: int
    hi: int


def rescaled(info: NodeInfo, real_multipliers: np.ndarray) -> Rescaled:
    q = quantized(info)
    qo = q.qout[0]
    mult, shift = quantize_multipliers(real_multipliers)
    if mult.size == 1:
        mult, shift = int(mult[0]), int(shift[0])
    else:  # per output channel, the last axis of every matmul-like result
        mult, shift = mult.reshape(-1), shift.reshape(-1)
    lo, hi = activation_range(int(info.attrs.get("fused_activation_function", 0)), qo.s,
                              qo.zp, qo.dtype)
    return Rescaled(q.attrs, q.qin, q.qout, mult, shift, lo, hi)


def rescale(acc: np.ndarray, s: Rescaled) -> np.ndarray:
    out = multiply_by_quantized_multiplier(acc, s.multiplier, s.shift) + s.qout[0].zp
    return np.clip(out, s.lo, s.hi).astype(s.qout[0].dtype)


def clamp(acc: np.ndarray, attrs, q: QParams) -> np.ndarray:
    lo, hi = activation_range(attrs.get("fused_activation_function", 0), q.s, q.zp, q.dtype)
    return np.clip(acc, lo, hi).astype(q.dtype)


def centered(x: np.ndarray, q: QParams) -> np.ndarray:
    """``x - zero_point`` as float64 (exact for every integer a kernel sees)."""
    zp = q.along(q.zero_point, x.ndim) if q.per_channel else q.zp
    return x.astype(np.float64) - zp


def without_activation(attrs) -> dict:
    return {k: v for k, v in attrs.items() if k != "fused_activation_function"}


def accumulate(float_kernel: Callable, s: Quantized, *operands) -> np.ndarray:
    """Exact integer accumulation through a float kernel: operands are ``(x, q)`` pairs
    (centred by their zero points) or plain values; products summed in float64 are exact
    below 2**53."""
    args = [centered(v[0], v[1]) if isinstance(v, tuple) else v for v in operands]
    return np.rint(float_kernel(without_activation(s.attrs), *args)).astype(np.int64)


def conv_multipliers(qx: QParams, qw: QParams, qo: QParams) -> np.ndarray:
    """TFLite's effective output scales: per channel in double; per tensor the input and
    filter scales are multiplied in float32 first (``GetQuantizedConvolutionMultipler``)."""
    if qw.per_channel:
        return np.float64(qx.s) * qw.scale.astype(np.float64) / np.float64(qo.s)
    product = np.float64(np.float32(qx.s) * np.float32(qw.s))
    return np.array([product / np.float64(qo.s)])


def matmul_like(float_kernel: Callable, x_pos: int = 0, w_pos: int = 1) -> Variant:
    """The integer variant of FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D /
    TRANSPOSE_CONV: exact accumulation, int32 bias, per-channel rescaling."""
    def prepare(info: NodeInfo) -> Rescaled:
        q = quantized(info)
        return rescaled(info, conv_multipliers(q.qin[x_pos], q.qin[w_pos], q.qout[0]))

    def kernel(s: Rescaled, *inputs):
        args = list(inputs)
        bias = args.pop() if len(args) > max(x_pos, w_pos) + 1 else None
        args[x_pos] = (args[x_pos], s.qin[x_pos])
        args[w_pos] = (args[w_pos], s.qin[w_pos])
        acc = accumulate(float_kernel, s, *args, None)
        if bias is not None:
            acc = acc + bias.astype(np.int64)
        return rescale(acc, s)
    return Variant(kernel, prepare)


def requantize_float(real: np.ndarray, q: QParams) -> np.ndarray:
    """Float values to ``q``'s integers: ``round(real / scale) + zero_point`` (halves away
    from zero), clamped; NaN gives the lowest value, ±inf and huge values saturate.

    All in float32, in place: ``v + copysign(0.5, v)`` is ``sign(v) * (|v| + 0.5)``
    exactly (round-to-nearest is symmetric), so its ``trunc`` equals
    ``round_half_away``'s ``sign(v) * floor(|v| + 0.5)``; adding the zero point is exact
    below 2**24 and cannot move a value above that back into range."""
    lo, hi = dtype_range(q.dtype)
    v = np.divide(np.asarray(real, np.float32), q.along(q.scale, np.ndim(real)))
    v = np.asarray(v, np.float32)
    v += np.copysign(np.float32(0.5), v)
    np.trunc(v, out=v)
    if q.per_channel:
        v += q.along(q.zero_point, v.ndim).astype(np.float32)
    elif q.zp:
        v += np.float32(q.zp)
    np.fmax(v, np.float32(lo), out=v)  # fmax: NaN becomes lo
    np.fmin(v, np.float32(hi), out=v)
    return v.astype(q.dtype)


def lut(float_kernel: Callable) -> Variant:
    """Dequantize every quantized input, run the float kernel, quantize the output (the
    lookup-table semantics TFLite uses for int8 nonlinearities)."""
    def kernel(s: Quantized, *inputs):
        floats = [x if q is None or x is None else q.dequantize(x)
                  for x, q in zip(inputs, s.qin, strict=True)]
        out = float_kernel(s.attrs, *floats)
        return requantize_float(np.asarray(out, np.float32), s.qout[0])
    return Variant(kernel, quantized)


def integer(kernel: Callable) -> Variant:
    """An integer variant whose kernel needs only the default :class:`Quantized`."""
    return Variant(kernel, quantized)


# --- hybrid (dynamic-range) -------------------------------------------------------------

def quantize_rows(x: np.ndarray, asymmetric: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row int8 values, scaling factors and offsets (``x ≈ scale * (q - offset)``)."""
    x = x.astype(np.float32)
    if not asymmetric:
        rng = np.max(np.abs(x), axis=1)
        scale = np.where(rng > 0, rng / np.float32(127), np.float32(1)).astype(np.float32)
        inv = np.where(rng > 0, np.float32(127) / np.where(rng > 0, rng, 1), 0).astype(
            np.float32)
        q = np.clip(round_half_away(x * inv[:, None]), -127, 127)
        return q, scale, np.zeros_like(scale)
    rmin = np.minimum(x.min(axis=1), 0).astype(np.float64)
    rmax = np.maximum(x.max(axis=1), 0).astype(np.float64)
    same = rmin == rmax
    scale = np.where(same, 1.0, (rmax - rmin) / 255.0)
    zp_min, zp_max = -128 - rmin / scale, 127 - rmax / scale
    err_min, err_max = 128 + np.abs(rmin / scale), 127 + np.abs(rmax / scale)
    zp = np.where(err_min < err_max, zp_min, zp_max)
    nudged = np.where(zp <= -128, -128, np.where(zp >= 127, 127, round_half_away(zp)))
    inv = (1.0 / scale).astype(np.float32)
    q = np.clip(round_half_away(nudged[:, None].astype(np.float32) + x * inv[:, None]),
                -128, 127)
    q = np.where(same[:, None], 0, q)
    nudged = np.where(same, 0, nudged)
    return q, scale.astype(np.float32), nudged.astype(np.float32)


def hybrid_input(x: np.ndarray, rows: int, asymmetric: bool) -> np.ndarray:
    """``x`` quantized row by row to int8 and back (float64, exact products follow)."""
    q, scale, offset = quantize_rows(x.reshape(rows, -1), asymmetric)
    return ((q - offset[:, None]) * scale[:, None].astype(np.float64)).reshape(x.shape)


def dequantized_weights(w: np.ndarray, qw: QParams) -> np.ndarray:
    return (w.astype(np.float64) - (qw.along(qw.zero_point, w.ndim) if qw.per_channel
                                     else qw.zp)) * qw.along(qw.scale.astype(np.float64), w.ndim)


def hybrid_per_item(float_kernel: Callable) -> Variant:
    """CONV_2D / DEPTHWISE_CONV_2D with int8 filters: each batch item quantized alone —
    asymmetrically (TFLite's nudged zero point) when the filter is per-channel or the node
    asks for it, as TFLite's per-channel hybrid convolutions do."""
    def kernel(s: Quantized, x, w, b=None):
        asymmetric = s.attrs.get("asymmetric_quantize_inputs", False) or s.qin[1].per_channel
        xd = hybrid_input(x, x.shape[0], asymmetric)
        out = float_kernel(s.attrs, xd, dequantized_weights(w, s.qin[1]),
                           None if b is None else b.astype(np.float64))
        return out.astype(np.float32)
    return Variant(kernel, quantized)
