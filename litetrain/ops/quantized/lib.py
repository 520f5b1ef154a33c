"""Shared machinery of the integer and hybrid kernels declared beside each op.

Integer kernels follow TFLite's kernels — the reference, optimized or XNNPACK arithmetic,
as the node's ``NodeInfo.resolver`` says (see ``ops/resolver.py``); their settings come
from a prepare run once per plan, so multipliers and shifts are never recomputed on
invoke:

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

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from .. import compiled_hybrid, xnnpack_float
from ..common import NONE, RELU6, RELU_N1_TO_1, fused
from ..compiled_hybrid import FastHybrid
from ..registry import NodeInfo, Variant
from .fixed_point import (
    ROUNDINGS,
    activation_range,
    dtype_range,
    quantize_multipliers,
    requantize_fp32,
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
    """``acc * multiplier >> shift + zero point``, clamped to ``[lo, hi]``: with TFLite's
    one of the ``fixed_point.ROUNDINGS``, or (``fp32`` set) XNNPACK's float32 scale."""

    multiplier: np.ndarray | int
    shift: np.ndarray | int
    lo: int
    hi: int
    rounding: str = "double"
    fp32: np.ndarray | None = None


def rescaled(info: NodeInfo, real_multipliers: np.ndarray, *, rounding: str = "double",
             fp32: np.ndarray | None = None) -> Rescaled:
    """The node's :class:`Rescaled`. ``rounding`` is what the non-reference kernels use
    (``"double"``: TFLite's ``common.h``; ``"neon"``: its NEON code); the reference resolver
    always rounds twice. ``fp32`` (XNNPACK's float32 scales) is used only under the
    default resolver."""
    q = quantized(info)
    qo = q.qout[0]
    mult, shift = quantize_multipliers(real_multipliers)
    if mult.size == 1:
        mult, shift = int(mult[0]), int(shift[0])
    else:  # per output channel, the last axis of every matmul-like result
        mult, shift = mult.reshape(-1), shift.reshape(-1)
    lo, hi = activation_range(int(info.attrs.get("fused_activation_function", 0)), qo.s,
                              qo.zp, qo.dtype)
    return Rescaled(q.attrs, q.qin, q.qout, mult, shift, lo, hi,
                    "double" if info.resolver.reference else rounding,
                    fp32 if info.resolver.xnnpack else None)


def rescale(acc: np.ndarray, s: Rescaled) -> np.ndarray:
    if s.fp32 is not None:
        out = requantize_fp32(acc, s.fp32, s.lo, s.hi, s.qout[0].zp)
    else:
        out = ROUNDINGS[s.rounding](acc, s.multiplier, s.shift) + s.qout[0].zp
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


def conv_multipliers(qx: QParams, qw: QParams, qo: QParams, channelwise: bool = False
                     ) -> np.ndarray:
    """TFLite's effective output scales: per channel in double; per tensor the input and
    filter scales are multiplied in float32 first (``GetQuantizedConvolutionMultipler``),
    except where the kernel always takes ``PopulateConvolutionQuantizationParams``'s
    per-channel values (``channelwise``: int8/int16 convolutions), all in double."""
    if qw.per_channel or (channelwise and qo.dtype != np.uint8):
        return np.float64(qx.s) * qw.scale.astype(np.float64) / np.float64(qo.s)
    product = np.float64(np.float32(qx.s) * np.float32(qw.s))
    return np.array([product / np.float64(qo.s)])


def xnnpack_scales(qx: QParams, qw: QParams, qo: QParams) -> np.ndarray:
    """XNNPACK's requantization scales: ``input_scale * filter_scale / output_scale`` in
    float32, one per output channel (or one)."""
    return (np.float32(qx.s) * qw.scale.astype(np.float32)) / np.float32(qo.s)


def matmul_rescaled(info: NodeInfo, x_pos: int = 0, w_pos: int = 1, rounding: str = "neon",
                    channelwise: bool = True, xnnpack: bool = True) -> Rescaled:
    """A matmul-like node's :class:`Rescaled` under its resolver: the reference kernels
    round twice; the optimized ones the ``rounding`` way (NEON: halves up); XNNPACK (the
    default resolver, ``xnnpack``, 8-bit inputs) scales in float32; 16x8 kernels
    (``channelwise`` ones, or any under the reference resolver) take the int64 overload."""
    q = quantized(info)
    qx, qw, qo = q.qin[x_pos], q.qin[w_pos], q.qout[0]
    s = rescaled(info, conv_multipliers(qx, qw, qo, channelwise), rounding=rounding,
                 fp32=xnnpack_scales(qx, qw, qo) if xnnpack and qx.dtype != np.int16
                 else None)
    if qx.dtype == np.int16 and (channelwise or info.resolver.reference):
        # 16x8: int64 accumulators, MultiplyByQuantizedMultiplier's int64 overload
        s = dataclasses.replace(s, rounding="int64")
    return s


def matmul_like(float_kernel: Callable, x_pos: int = 0, w_pos: int = 1,
                rounding: str = "neon", channelwise: bool = True, xnnpack: bool = True
                ) -> Variant:
    """The integer variant of FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D /
    TRANSPOSE_CONV: exact accumulation, int32 bias, per-channel rescaling — rounded twice
    by the reference kernels, the NEON way (halves up) by the optimized ones. The plain
    float64 + int64 form: the op table runs :func:`.gemm.gemm_variant` (float32 BLAS, the
    rescaling folded), which tests hold bit-identical to this."""
    def prepare(info: NodeInfo) -> Rescaled:
        return matmul_rescaled(info, x_pos, w_pos, rounding, channelwise, xnnpack)

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


def for_width(dtype, prepare: Callable, kernel: Callable, settings: type, other: Variant
              ) -> Variant:
    """A unary op's integer variant: ``prepare``/``kernel`` (settings of type ``settings``)
    for a node whose input and output are both ``dtype``, ``other`` for every other node."""
    def prepare_any(info: NodeInfo):
        x, y = info.inputs[0], info.outputs[0]
        if x is None or x.dtype != dtype or y.dtype != dtype:
            return other.prepare(info)
        return prepare(info)

    def kernel_any(s, x):
        return kernel(s, x) if s.__class__ is settings else other.kernel(s, x)
    return Variant(kernel_any, prepare_any)


# --- hybrid (dynamic-range) -------------------------------------------------------------

def _vector_round(v: np.ndarray) -> np.ndarray:
    """The rounding of TFLite's ``tensor_utils`` input quantizers on x86, in place on a
    fresh ``v``: blocks of 8 values take the NEON path (``vcvtnq``: halves to even), the
    tail ``TfLiteRound`` (halves away from zero)."""
    n = v.shape[1] // 8 * 8
    if n == v.shape[1]:
        return np.rint(v, out=v)
    np.rint(v[:, :n], out=v[:, :n])
    v[:, n:] = round_half_away(v[:, n:])
    return v


_Q127 = np.float32(-127), np.float32(127)  # the int8 ranges as float32 clip bounds
_Q128 = np.float32(-128), np.float32(127)


def quantize_rows(x: np.ndarray, asymmetric: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row int8 values (as float32), scaling factors and offsets (``x ≈ scale * (q -
    offset)``), as ``tensor_utils::{Symmetric,Asymmetric}QuantizeFloats`` make them. Each
    row's parameters come from its range in Python floats (batch items: few rows), the
    values in a few in-place passes."""
    x = x.astype(np.float32, copy=False)
    if not asymmetric:
        rng = np.maximum.reduce(np.abs(x), axis=1)
        scale = np.where(rng > 0, rng / np.float32(127), np.float32(1)).astype(np.float32)
        inv = np.where(rng > 0, np.float32(127) / np.where(rng > 0, rng, 1), 0).astype(
            np.float32)
        q = _vector_round(x * inv[:, None])
        return np.clip(q, _Q127[0], _Q127[1], out=q), scale, np.zeros_like(scale)
    lows, highs = np.minimum.reduce(x, axis=1).tolist(), np.maximum.reduce(x, axis=1).tolist()
    if not math.isfinite(sum(lows) + sum(highs)):
        k = next(k for k, v in enumerate(zip(lows, highs, strict=True))
                 if not math.isfinite(v[0] + v[1]))
        raise ValueError(f"dynamic-range input quantization: item {k} of the float input "
                         "holds NaN or ±inf, for which TensorFlow Lite's asymmetric int8 "
                         "quantization has no defined result")
    params = [_asymmetric_params(lo, hi) for lo, hi in zip(lows, highs, strict=True)]
    scale = np.array([p[0] for p in params], np.float32)
    nudged = np.array([p[1] for p in params], np.float32)
    zero = [k for k, f in enumerate(scale.tolist()) if f == 0]
    if zero:  # an all-zero row (or one below float32's scales): zeros, scale 1
        scale[zero] = 1
    v = np.multiply(x, (np.float32(1) / scale)[:, None])  # float32 1.0f / scaling_factor
    v += nudged[:, None]
    q = _vector_round(v)
    np.clip(q, _Q128[0], _Q128[1], out=q)
    if zero:
        q[zero] = 0
    return q, scale, nudged


def _asymmetric_params(lo: float, hi: float) -> tuple[float, int]:
    """``AsymmetricQuantizeFloats``' scaling factor (0 for an all-zero row) and nudged
    zero point, in double as TFLite computes them (the row's min and max widened to 0)."""
    rmin, rmax = min(lo, 0.0), max(hi, 0.0)
    if rmin == rmax:
        return 0.0, 0
    scale = (rmax - rmin) / 255.0
    from_min, from_max = -128 - rmin / scale, 127 - rmax / scale
    zp = from_min if 128 + abs(rmin / scale) < 127 + abs(rmax / scale) else from_max
    if zp <= -128 or zp >= 127:
        return scale, -128 if zp <= -128 else 127
    whole = math.floor(abs(zp) + 0.5)  # round_half_away in Python floats
    return scale, whole if zp >= 0 else -whole



def hybrid_input(x: np.ndarray, rows: int, asymmetric: bool) -> np.ndarray:
    """``x`` quantized row by row to int8 and back (float64, exact products follow)."""
    q, scale, offset = quantize_rows(x.reshape(rows, -1), asymmetric)
    return ((q - offset[:, None]) * scale[:, None].astype(np.float64)).reshape(x.shape)


def dequantized_weights(w: np.ndarray, qw: QParams) -> np.ndarray:
    return (w.astype(np.float64) - (qw.along(qw.zero_point, w.ndim) if qw.per_channel
                                     else qw.zp)) * qw.along(qw.scale.astype(np.float64), w.ndim)


@dataclass(frozen=True)
class HybridConv(Quantized):
    """A hybrid convolution's settings: the int8 filter less its zero point as float32
    integers (``None`` when the filter is not a constant), its scales shaped for the
    output's channel axis, whether float32 sums of its products with any int8 input
    are exact (every partial sum below 2**24), how inputs are quantized, the attrs the
    float kernel gets (no activation), the fused activation, the compiled kernels'
    data when prepare chose them (:mod:`..compiled_hybrid`), the 1×1 CONV_2D's GEMM
    operand (:func:`_pointwise_gemm`) and, when a plan fused an XNNPACK-order HARD_SWISH
    after the node (:mod:`litetrain.runtime.epilogue`), that node's settings."""

    weights: np.ndarray | None
    w_scale: np.ndarray
    exact32: bool
    asymmetric: bool
    float_attrs: Mapping[str, object]
    activation: int
    fast: FastHybrid | None = None
    gemm: np.ndarray | None = None
    hard_swish: xnnpack_float.XnnOrder | None = None


def _pointwise_gemm(op: str, attrs, weights: np.ndarray | None, exact: bool):
    """A 1×1 stride-1 CONV_2D's constant centred filter ``[out, 1, 1, in]`` as the C-order
    GEMM operand ``[in, out]`` (its input rows are its patches: the convolution is one
    GEMM), when float32 sums of its products are exact (then any summation order, this
    layout's included, gives the float kernel's bits); else ``None``."""
    if (op != "conv_2d" or weights is None or not exact or weights.shape[1:3] != (1, 1)
            or attrs.get("stride_h", 1) != 1 or attrs.get("stride_w", 1) != 1):
        return None
    return np.ascontiguousarray(weights.reshape(weights.shape[0], -1).T)


def _centred_filter(w: np.ndarray, qw: QParams, out_axis: int) -> tuple[np.ndarray, bool]:
    zp = qw.along(qw.zero_point, w.ndim) if qw.per_channel else qw.zp
    wc = w.astype(np.float32) - np.float32(zp)
    others = tuple(a for a in range(w.ndim) if a != out_axis)
    exact = float(np.abs(wc).sum(axis=others).max(initial=0)) * 255 < (1 << 24)
    return wc, exact


def hybrid_conv(float_kernel: Callable, x_pos: int = 0, w_pos: int = 1,
                out_axis: int = 0, per_row: bool = False) -> Variant:
    """CONV_2D / DEPTHWISE_CONV_2D / TRANSPOSE_CONV with int8 filters, as TFLite's hybrid
    kernels: each batch item quantized alone — asymmetrically (the nudged zero point) when
    the filter is per-channel or the node asks for it — integer products summed (in
    float32 through the float kernel's BLAS path: exact, see :class:`HybridConv`; float64
    when a filter is too large for that), scaled by ``input_scale * filter_scale`` in
    float32, plus the bias, then the fused activation. ``out_axis`` is the filter's
    output-channel axis. ``per_row`` (FULLY_CONNECTED): each row of ``depth`` inputs is
    quantized alone, asymmetrically only when the node asks for it.

    With the ``[fast]`` extra the quantization and the epilogue (the whole kernel for
    DEPTHWISE_CONV_2D) run compiled, with the same bits (:mod:`..compiled_hybrid`)."""
    def prepare(info: NodeInfo) -> HybridConv:
        q = quantized(info)
        qw = q.qin[w_pos]
        w = info.inputs[w_pos].value
        weights, exact = _centred_filter(w, qw, out_axis) if w is not None else (None, False)
        scale = qw.scale.astype(np.float32).reshape(-1) if qw.per_channel else np.float32(qw.s)
        asymmetric = bool(q.attrs.get("asymmetric_quantize_inputs", False)) or (
            qw.per_channel and not per_row)
        gemm = _pointwise_gemm(info.op, q.attrs, weights, exact)
        fc = (info.op == "fully_connected" and weights is not None and exact
              and weights.ndim == 2)
        fast = compiled_hybrid.prepare(q.attrs, weights, scale, exact, out_axis,
                                       info.op == "depthwise_conv_2d", asymmetric,
                                       np.ascontiguousarray(weights.T) if fc else gemm,
                                       per_row)
        return HybridConv(q.attrs, q.qin, q.qout, weights, scale, exact, asymmetric,
                          without_activation(q.attrs),
                          int(q.attrs.get("fused_activation_function", 0)), fast, gemm)

    operands = max(x_pos, w_pos) + 1  # then the bias, if given

    def kernel(s: HybridConv, *inputs):
        fast = s.fast
        if fast is not None and fast.ready() is None:  # (counts the node's runs)
            fast = None
        if fast is not None and fast.whole is not None:
            swish = s.hard_swish is not None and fast.rest == NONE  # in the compiled pass
            out = fast.whole(fast, inputs[x_pos],
                             inputs[operands] if len(inputs) > operands else None, swish)
            if out is not None:
                return out if swish else _then_hard_swish(s, out)
        args = list(inputs)
        bias = args.pop() if len(args) > operands else None
        x = args[x_pos]
        weights, exact = ((s.weights, s.exact32) if s.weights is not None
                          else _centred_filter(args[w_pos], s.qin[w_pos], out_axis))
        rows = x.size // weights.shape[1] if per_row else x.shape[0]
        dtype = np.float32 if exact else np.float64
        done = compiled_hybrid.quantize(fast, x, rows, dtype)
        if done is None:
            q, scale, offset = quantize_rows(x.reshape(rows, -1), s.asymmetric)
            if s.asymmetric:  # (q - 0.0 is q, signed zeros included)
                q -= offset[:, None]
            args[x_pos] = q.astype(dtype, copy=False).reshape(x.shape)
        else:
            args[x_pos], scale = done
        q = args[x_pos]
        if s.gemm is not None and q.ndim == 4 and q.shape[3] == s.gemm.shape[0]:
            # one GEMM (exact sums: the float kernel's bits, see _pointwise_gemm)
            acc = (q.reshape(-1, q.shape[3]) @ s.gemm).reshape(*q.shape[:3], -1)
        else:
            args[w_pos] = weights.astype(dtype, copy=False)
            acc = float_kernel(s.float_attrs, *args)
        out = None if done is None else compiled_hybrid.epilogue(fast, acc, scale, rows, bias)
        if out is None:
            out = _hybrid_epilogue(acc, scale[:, None, None] * s.w_scale, rows, bias,
                                   s.activation)
        return _then_hard_swish(s, out)
    return Variant(kernel, prepare)


def _then_hard_swish(s: HybridConv, out: np.ndarray) -> np.ndarray:
    """The fused XNNPACK-order HARD_SWISH node's result on ``out``, if there is one."""
    return out if s.hard_swish is None else xnnpack_float.hard_swish(s.hard_swish, out)


def _hybrid_epilogue(acc: np.ndarray, multiplier: np.ndarray, rows: int, bias,
                     activation: int) -> np.ndarray:
    """``float32(acc * multiplier) + bias``, activated: ``multiplier`` is per row (batch
    item or FULLY_CONNECTED row) and output channel; in place on a float32 ``acc`` (a
    fresh GEMM result), the bits of the fresh arrays either way."""
    by_row = acc.reshape(rows, -1, acc.shape[-1])
    if acc.dtype == np.float32 and acc.flags.c_contiguous:  # by_row is a view
        np.multiply(by_row, multiplier, out=by_row)
        out = acc
    else:
        out = (by_row * multiplier).astype(np.float32).reshape(acc.shape)
    if bias is not None:
        out += bias
    if activation in (RELU6, RELU_N1_TO_1):
        return np.clip(out, -1 if activation == RELU_N1_TO_1 else 0, 6 if activation == RELU6
                       else 1, out=out)
    return fused(out, activation)
