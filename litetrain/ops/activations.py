"""Activations: RELU family, LEAKY_RELU, PRELU, ELU, LOGISTIC, TANH, HARD_SWISH, GELU,
SOFTMAX, LOG_SOFTMAX, L2_NORMALIZATION — kernels, gradients, integer kernels (TFLite's
lookup-table semantics; SOFTMAX its exp table; HARD_SWISH its 16-bit fixed-point kernel;
int16 LOGISTIC, TANH and SOFTMAX TF Lite's interpolated tables, quantized.activations_int;
the ReLU family and LEAKY_RELU a requantizing clamp), in-place forms, quantizer facts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import builtin_float, xnnpack_float
from .common import erf, fused
from .fast import WithKernels, kernels
from .grad import i32, mask, unary, zeros
from .quantized.activations_int import (
    l2_norm_variant,
    log_softmax_variant,
    sigmoid_like,
    softmax8,
    softmax_variant,
)
from .quantized.fixed_point import (
    dtype_range,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    round_half_away,
)
from .quantized.lib import Quantized, Variant, integer, lut, quantized
from .quantized.tables import tabulated
from .registry import NodeInfo, OpDef
from .shapes import same_as


def _kernel(fn):
    return lambda attrs, x: fn(x)


def _gelu(attrs, x):
    if attrs.get("approximate", False):
        c = np.sqrt(2.0 / np.pi).astype(x.dtype)
        return 0.5 * x * (1.0 + np.tanh(c * (x + x.dtype.type(0.044715) * x * x * x)))
    return 0.5 * x * (1.0 + erf(x * x.dtype.type(1.0 / np.sqrt(2.0))))


def _logistic(x, out=None):
    """``1 / (1 + exp(-x))`` in one buffer (same operations, same bits)."""
    if x.dtype.kind != "f" or not x.ndim:
        return 1 / (1 + np.exp(-x))
    t = np.negative(x, out=out)
    np.exp(t, out=t)
    np.add(t, 1, out=t)
    return np.divide(1, t, out=t)


def _hard_swish(x, out=None):
    """``x * clip(x + 3, 0, 6) / 6`` with one scratch array (same operations, same bits);
    ``out`` may be ``x`` itself."""
    if x.dtype.kind != "f" or not x.ndim:
        return x * np.clip(x + 3, 0, 6) / 6
    t = np.add(x, 3)
    np.clip(t, 0, 6, out=t)
    out = np.multiply(x, t, out=t if out is None else out)
    return np.divide(out, 6, out=out)


def _compiled_prepare(info):
    """TF Lite's float order under its builtin resolvers (:mod:`.builtin_float`) or
    XNNPACK's in a hybrid graph (:mod:`.xnnpack_float`); else compiled kernels for a
    float32 input when the ``[fast]`` extra is there."""
    tf_order = builtin_float.prepare(info)
    if tf_order is None:
        tf_order = xnnpack_float.prepare(info)
    if tf_order is not None:
        return tf_order
    x = info.inputs[0]
    loader = kernels("activations") if x is not None and x.dtype == np.float32 else None
    return info.attrs if loader is None else WithKernels(info.attrs, loader)


def _hard_swish_kernel(attrs, x):
    return _hard_swish_maybe_compiled(attrs, x, None)


def _hard_swish_maybe_compiled(attrs, x, out):
    """Compiled when prepared so and loaded (same bits), else NumPy; into ``out`` when
    it is ``x`` (:func:`hard_swish_in_place`), else into a new array."""
    if builtin_float.applies(attrs, x):
        return builtin_float.hard_swish(attrs, x)
    if xnnpack_float.applies(attrs, x):
        return xnnpack_float.hard_swish(attrs, x)
    if out is x:
        return hard_swish_in_place(attrs, x)
    if (attrs.__class__ is WithKernels and x.__class__ is np.ndarray
            and x.dtype == np.float32 and x.ndim and x.flags.c_contiguous):
        jit = attrs.ready()
        if jit is not None:
            fresh = np.empty_like(x)
            jit.hard_swish(x.reshape(-1), fresh.reshape(-1))
            return fresh
    return _hard_swish(x, out=out)


def hard_swish_in_place(settings, x: np.ndarray) -> np.ndarray:
    """HARD_SWISH of a float array nothing else reads any more, written into it: the
    compiled one-array pass when ``settings`` (a float HARD_SWISH node's, not TF Lite's
    order) has the compiled kernels loaded and ``x`` is C-order float32, else NumPy's
    ufuncs in place. The bits of the separate node either way."""
    if (settings.__class__ is WithKernels and x.dtype == np.float32 and x.ndim
            and x.flags.c_contiguous):
        jit = settings.ready()
        if jit is not None:
            jit.hard_swish_in_place(x.reshape(-1))
            return x
    return _hard_swish(x, out=x)


def _softmax(attrs, x):
    # The ufuncs' reductions themselves (what ndarray.max/.sum call, same values) without
    # the methods' Python layer: a classifier's softmax is a few small NumPy calls.
    beta = attrs.get("beta", 1.0)
    e = np.subtract(x, np.maximum.reduce(x, axis=-1, keepdims=True))  # fresh: in place
    if beta != 1.0:
        e *= x.dtype.type(beta)
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis=-1, keepdims=True)
    return e


def _log_softmax(attrs, x):
    # the ufuncs' reductions ndarray.max/.sum call (same values), as in _softmax
    z = np.subtract(x, np.maximum.reduce(x, axis=-1, keepdims=True))
    z -= np.log(np.add.reduce(np.exp(z), axis=-1, keepdims=True))
    return z


def _l2_normalization(attrs, x):
    norm = np.sqrt(np.sum(x * x, axis=-1, keepdims=True))
    out = x / np.maximum(norm, x.dtype.type(1e-6))
    return fused(out, attrs.get("fused_activation_function", 0))


def _softmax_integer(s: Quantized, x):
    """TFLite's int8/uint8 softmax: a float table of exp(scale * beta * (x - max))."""
    qi, qo = s.qin[0], s.qout[0]
    beta = np.float32(s.attrs.get("beta", 1.0))
    diff = (x.astype(np.int64) - x.max(axis=-1, keepdims=True)).astype(np.float32)
    e = np.exp(np.float32(qi.s) * beta * diff, dtype=np.float32)
    inv = np.float32(1.0) / (e.sum(axis=-1, keepdims=True, dtype=np.float32) * np.float32(qo.s))
    out = round_half_away(e * inv).astype(np.int64) + qo.zp
    lo, hi = dtype_range(qo.dtype)
    return np.clip(out, lo, hi).astype(qo.dtype)


@dataclass(frozen=True)
class _HardSwish(Quantized):
    out_mult: int  # 16-bit fixed-point multipliers and their exponents (HardSwishParams)
    out_exp: int
    relu_mult: int
    relu_exp: int


def _int16_multiplier(real: float) -> tuple[int, int]:
    """``QuantizeMultiplier`` then ``DownScaleInt32ToInt16Multiplier``."""
    m, e = quantize_multiplier(real)
    return (32767 if m >= (1 << 31) - 1 - (1 << 15) else (m + (1 << 15)) >> 16), e


def _hard_swish_prepare(info: NodeInfo) -> _HardSwish:
    q = quantized(info)
    hires = np.float32(1.0 / 128.0) * np.float32(q.qin[0].s)
    out_mult, out_exp = _int16_multiplier(float(hires / np.float32(q.qout[0].s)))
    relu_mult, relu_exp = _int16_multiplier(float(hires / np.float32(3.0 / 32768.0)))
    if out_exp > 0:
        raise ValueError(f"HARD_SWISH: output scale {q.qout[0].s} is below input scale / 128")
    return _HardSwish(q.attrs, q.qin, q.qout, out_mult, out_exp, relu_mult, relu_exp)


def _srdhm16(a, b):
    """gemmlowp's ``SaturatingRoundingDoublingHighMul`` on int16."""
    ab = a * b
    high = np.trunc((ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))) / (1 << 15))
    return np.where((a == -32768) & (b == -32768), 32767, high).astype(np.int64)


def _rdpot(x, exponent: int):
    mask = (1 << exponent) - 1
    return (x >> exponent) + ((x & mask) > ((mask >> 1) + (x < 0)))


def _sat16(x):
    return np.clip(x, -32768, 32767)


def _hard_swish_integer(s: _HardSwish, x):
    """TFLite's ``reference_ops::HardSwish`` on int8/uint8: 16-bit fixed point, the
    input on a ×128 scale, a "relu-ish" factor in [0, 1] times the rescaled input."""
    hires = (x.astype(np.int64) - s.qin[0].zp) * 128
    preshift = _srdhm16(hires, s.out_mult)
    relu = hires
    if s.relu_exp > 0:
        relu = _sat16(relu * (1 << (s.relu_exp - 1)))
    relu = _srdhm16(relu, s.relu_mult)
    if s.relu_exp > 0:
        relu = _sat16(relu * 2)
    if s.relu_exp < 0:
        relu = _rdpot(relu, -s.relu_exp)
    relu = (relu + (1 << 15)) >> 1
    prod = relu * preshift
    out = np.where((relu == -32768) & (preshift == -32768), 32767, np.trunc(prod / (1 << 15)))
    out = _rdpot(out.astype(np.int64), -s.out_exp) + s.qout[0].zp
    lo, hi = dtype_range(s.qout[0].dtype)
    return np.clip(out, lo, hi).astype(s.qout[0].dtype)


@dataclass(frozen=True)
class _ReluX(Quantized):
    """TFLite's quantized ReLU family and LEAKY_RELU: ``x - input zero point`` rescaled
    (double-rounding multiplier; LEAKY_RELU a second one for negative inputs), plus the
    output zero point, clamped to the activation's range. ``xnn``: XNNPACK's LEAKY_RELU
    (``qs8_vlrelu``/``qu8_vlrelu``, default resolver), 8-bit multipliers
    ``lrintf(256 * scale)`` for each sign, ``((x - zp_in) * m + (zp_out << 8) + 128) >> 8``."""

    mult: int
    shift: int
    alpha_mult: int
    alpha_shift: int
    lo: int
    hi: int
    xnn: tuple[int, int] | None = None


def _relu_x_prepare(low: float | None, high: float | None):
    def prepare(info: NodeInfo) -> _ReluX:
        q = quantized(info)
        qi, qo = q.qin[0], q.qout[0]
        si, so = np.float32(qi.s), np.float32(qo.s)
        mult, shift = quantize_multiplier(float(si / so))  # float32, as activations.cc
        alpha_mult, alpha_shift = mult, shift
        xnn = None
        if info.op == "leaky_relu":
            alpha = np.float32(info.attrs.get("alpha", 0.2))
            alpha_mult, alpha_shift = quantize_multiplier(float(si * alpha / so))
            xnn = _xnn_leaky_relu(info, si / so, alpha)
        lo, hi = dtype_range(qo.dtype)
        if low is not None:
            lo = max(lo, qo.zp + int(round_half_away(np.float32(low) / so)))
        if high is not None:
            hi = min(hi, qo.zp + int(round_half_away(np.float32(high) / so)))
        return _ReluX(q.attrs, q.qin, q.qout, mult, shift, alpha_mult, alpha_shift, lo, hi,
                      xnn)
    return prepare


def _xnn_leaky_relu(info: NodeInfo, positive: np.float32, alpha: np.float32
                    ) -> tuple[int, int] | None:
    """XNNPACK's multipliers where TF's default interpreter gives it the node (8-bit,
    per-tensor, scales in its range), else ``None``."""
    x, y = info.inputs[0], info.outputs[0]
    if (not info.resolver.xnnpack or x.dtype != y.dtype or x.dtype.itemsize != 1
            or x.quantization.scale.size != 1):
        return None
    negative = positive * alpha
    if not (2.0 ** -8 <= positive <= 2.0 ** 7 and 2.0 ** -8 <= abs(negative) <= 2.0 ** 7):
        return None
    return int(np.rint(np.float32(256) * positive)), int(np.rint(np.float32(256) * negative))


def _relu_x_integer(s: _ReluX, x):
    v = x.astype(np.int64) - s.qin[0].zp
    if s.xnn is not None:
        out = (v * np.where(v >= 0, s.xnn[0], s.xnn[1]) + (s.qout[0].zp << 8) + 0x80) >> 8
        return np.clip(out, s.lo, s.hi).astype(s.qout[0].dtype)
    out = np.where(v >= 0, multiply_by_quantized_multiplier(v, s.mult, s.shift, True),
                   multiply_by_quantized_multiplier(v, s.alpha_mult, s.alpha_shift, True))
    return np.clip(out + s.qout[0].zp, s.lo, s.hi).astype(s.qout[0].dtype)


def _relu_x(low: float | None, high: float | None) -> Variant:
    return Variant(_relu_x_integer, _relu_x_prepare(low, high))


# --- gradients ---------------------------------------------------------------------------

def _positive(g, x):
    return g.op("greater", x, g.const(0, x.dtype))


def _relu_vjp(g, attrs, ins, outs, dy):
    """``dy`` where the output is positive, as TensorFlow's ReluGrad is given it
    (``max(x, 0) > 0`` exactly where ``x > 0``, NaN included): the input then dies at the
    RELU, which can write over it."""
    return [mask(g, _positive(g, outs[0]), dy)]


def _relu6_vjp(g, attrs, ins, outs, dy):
    x = ins[0]
    inside = g.op("logical_and", _positive(g, x), g.op("less", x, g.const(6, x.dtype)))
    return [mask(g, inside, dy)]


def _leaky_relu_vjp(g, attrs, ins, outs, dy):
    """TF's LeakyReluGrad: ``dy`` where ``x > 0``, else ``dy * alpha``. For ``0 <= alpha
    <= 1`` that is ``dy`` times the slope ``max(cast(x > 0), alpha)``, exactly 1 or
    ``alpha`` (a multiply streams; a select is ~20x slower); an inf or NaN ``dy`` stays
    inf or NaN as in TF's select."""
    alpha = float(attrs.get("alpha", 0.2))
    positive = _positive(g, ins[0])
    if not 0.0 <= alpha <= 1.0:
        return [mask(g, positive, dy, dy * alpha)]
    slope = g.op("maximum", g.op("cast", positive, out_dtypes=(dy.dtype,)),
                 g.const(alpha, dy.dtype))
    return [dy * slope]


def _elu_vjp(g, attrs, ins, outs, dy):
    """TF's EluGrad: ``dy * (y + 1)`` where ``y < 0``, else ``dy``: one multiply by the
    slope ``min(y, 0) + 1`` (exactly ``y + 1`` below 0 and 1 above, inf included)."""
    slope = g.op("minimum", outs[0], g.const(0, dy.dtype)) + 1.0
    return [dy * slope]


def _gelu_vjp(g, attrs, ins, outs, dy):
    x, y = ins[0], outs[0]
    if attrs.get("approximate", False):
        c, a = float(np.sqrt(2.0 / np.pi)), 0.044715
        t = g.op("tanh", (x + x * x * x * a) * c)
        return [dy * ((t + 1.0) * 0.5 + x * (1.0 - t * t) * (x * x * (3 * a) + 1.0) * (c * 0.5))]
    # d/dx x·Φ(x) = Φ(x) + x·φ(x). TFLite has no ERF, but Φ(x) = gelu(x) / x (0.5 at 0).
    small = g.op("less", g.op("abs", x), g.const(1e-20, x.dtype))
    z = zeros(g, x)
    cdf = g.op("select_v2", small, z + 0.5, y / g.op("select_v2", small, z + 1.0, x))
    pdf = g.op("exp", x * x * -0.5) * float(1.0 / np.sqrt(2.0 * np.pi))
    return [dy * (cdf + x * pdf)]


def _softmax_vjp(g, attrs, ins, outs, dy):
    y = outs[0]
    s = g.op("sum", dy * y, i32(g, [-1]), keep_dims=True)
    return [(dy - s) * y * float(attrs.get("beta", 1.0))]


def _log_softmax_vjp(g, attrs, ins, outs, dy):
    s = g.op("sum", dy, i32(g, [-1]), keep_dims=True)
    return [dy - g.op("exp", outs[0]) * s]


# Integer kernels that map each element alone: run as lookup tables (quantized.tables).
_ELEMENTWISE = {"relu", "relu6", "relu_n1_to_1", "relu_0_to_1", "leaky_relu", "prelu", "elu",
                "logistic", "tanh", "hard_swish", "gelu"}


def _op(name, kernel, options=None, *, vjp=None, in_place=None, **facts) -> OpDef:
    integer = facts.pop("integer", lut(kernel))
    return OpDef(name, kernel, options, shape=same_as(0), vjp=vjp, fresh_output=True,
                 shape_inputs=(), in_place=in_place,
                 integer=tabulated(integer) if name in _ELEMENTWISE else integer, **facts)


def _relu_into(operand: int):
    return lambda attrs, x: np.maximum(x, 0, out=x)


def _relu_into_out(attrs, x, out):
    return np.maximum(x, 0, out=out)


def _tanh_into(operand: int):
    return lambda attrs, x: np.tanh(x, out=x)


def _logistic_into(operand: int):
    return lambda attrs, x: _logistic(x, out=x)


def _hard_swish_into(operand: int):
    return lambda attrs, x: _hard_swish_maybe_compiled(attrs, x, x)


OPS = [
    _op("relu", _kernel(lambda x: np.maximum(x, 0)), vjp=_relu_vjp, in_place=_relu_into,
        into=_relu_into_out, integer=_relu_x(0.0, None)),
    _op("relu6", _kernel(lambda x: np.clip(x, 0, 6)), vjp=_relu6_vjp, integer=_relu_x(0.0, 6.0)),
    _op("relu_n1_to_1", _kernel(lambda x: np.clip(x, -1, 1)), integer=_relu_x(-1.0, 1.0)),
    _op("relu_0_to_1", _kernel(lambda x: np.clip(x, 0, 1)), integer=_relu_x(0.0, 1.0)),
    _op("leaky_relu", lambda attrs, x: np.where(x >= 0, x, x * x.dtype.type(attrs["alpha"])),
        "LeakyReluOptions", vjp=_leaky_relu_vjp, integer=_relu_x(None, None)),
    _op("prelu", lambda attrs, x, alpha: np.where(x >= 0, x, x * alpha)),
    _op("elu", _kernel(lambda x: np.where(x < 0, np.expm1(np.minimum(x, 0)), x)),
        vjp=_elu_vjp),
    _op("logistic", _kernel(_logistic), vjp=unary(lambda g, x, y, dy: dy * y * (1.0 - y)),
        in_place=_logistic_into, integer=sigmoid_like(lut(_kernel(_logistic)), tanh=False),
        output_quantization=(1 / 256, -128)),
    _op("tanh", _kernel(np.tanh), vjp=unary(lambda g, x, y, dy: dy * (1.0 - y * y)),
        in_place=_tanh_into, integer=sigmoid_like(lut(_kernel(np.tanh)), tanh=True),
        output_quantization=(1 / 128, 0)),
    _op("hard_swish", _hard_swish_kernel, prepare=_compiled_prepare,
        in_place=_hard_swish_into, integer=Variant(_hard_swish_integer, _hard_swish_prepare)),
    _op("gelu", _gelu, "GeluOptions", vjp=_gelu_vjp),
    _op("softmax", _softmax, "SoftmaxOptions", vjp=_softmax_vjp,
        integer=softmax_variant(softmax8(integer(_softmax_integer))),
        output_quantization=(1 / 256, -128)),
    _op("log_softmax", _log_softmax, "LogSoftmaxOptions", vjp=_log_softmax_vjp,
        integer=log_softmax_variant(lut(_log_softmax))),
    _op("l2_normalization", _l2_normalization, "L2NormOptions",
        integer=l2_norm_variant(lut(_l2_normalization))),
]
