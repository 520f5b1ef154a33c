"""Integer variants of activations whose 16-bit kernels are TF Lite's own fixed-point
ones (:mod:`.lut16`), chosen at prepare by the activation width.

* :func:`sigmoid_like` — LOGISTIC and TANH: int16 in and out (zero points 0, output scale
  2**-15) run ``reference_integer_ops::{Logistic,Tanh}``; other widths keep the given
  8-bit variant.
* :func:`softmax_variant` — SOFTMAX: int16 in and out runs ``SoftmaxInt16``; other
  widths keep the given variant.
* :func:`log_softmax_variant` — LOG_SOFTMAX: int8 runs ``reference_integer_ops::LogSoftmax``
  (:mod:`.log_softmax_int`).
* :func:`l2_norm_variant` — L2_NORMALIZATION: int8 runs
  ``reference_integer_ops::L2Normalization`` (fixed-point inverse square root).

TF Lite's optimized resolver takes a gemmlowp fixed-point path for LOGISTIC/TANH only when
the int16 input scale is a power of two (``input_multiplier == 0``); litetrain runs the
reference kernel there too (not reproduced; converter-made 16x8 models have
non-power-of-two scales).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import UnsupportedOpError
from ..registry import NodeInfo, Variant
from .fixed_point import multiply_by_quantized_multiplier
from .lib import for_width
from .log_softmax_int import LogSoftmax8, log_softmax_int8, log_softmax_params
from .lut16 import (
    Softmax16,
    logistic_int16,
    sigmoid_params,
    softmax_int16,
    softmax_params,
    tanh_int16,
)
from .math_int import inv_sqrt_multiplier_exp


def _require(ok: bool, info: NodeInfo, what: str) -> None:
    if not ok:
        raise UnsupportedOpError(f"{info.where}: {np.dtype(info.inputs[0].dtype).name} "
                                 f"{info.op.upper()} needs {what}")


@dataclass(frozen=True)
class _Sigmoid16:
    multiplier: int
    shift: int


def sigmoid_like(eight: Variant, tanh: bool) -> Variant:
    """LOGISTIC (``tanh=False``) or TANH: TF Lite's int16 kernel, else ``eight``."""
    run16 = tanh_int16 if tanh else logistic_int16

    def prepare(info: NodeInfo) -> _Sigmoid16:
        qi, qo = info.inputs[0].quantization, info.outputs[0].quantization
        _require(qi.zp == 0 and qo.zp == 0, info, "zero points of 0")
        _require(abs(float(qo.s) * 32768 - 1) < 1e-6, info, "an output scale of 2**-15")
        return _Sigmoid16(*sigmoid_params(float(qi.s), tanh))

    return for_width(np.int16, prepare, lambda s, x: run16(x, s.multiplier, s.shift),
                     _Sigmoid16, eight)


def softmax_variant(other: Variant) -> Variant:
    """SOFTMAX: ``SoftmaxInt16`` for int16 in and out, else ``other``."""
    def prepare(info: NodeInfo) -> Softmax16:
        qi, qo = info.inputs[0].quantization, info.outputs[0].quantization
        _require(qi.zp == 0 and qo.zp == 0, info, "zero points of 0")
        return softmax_params(float(qi.s), float(info.attrs.get("beta", 1.0)))

    return for_width(np.int16, prepare, softmax_int16, Softmax16, other)


@dataclass(frozen=True)
class _L2Norm8:
    zero_point: int


def _l2_norm_int8(s: _L2Norm8, x):
    """``reference_integer_ops::L2Normalization`` over the last axis (output scale 1/128,
    zero point 0): the inverse square root of the sum of squares as a fixed-point
    multiplier (``GetInvSqrtQuantizedMultiplierExp``), then one rescaling per element."""
    v = np.asarray(x, np.int64) - s.zero_point
    acc = np.sum(v * v, axis=-1, keepdims=True)
    mult, shift = inv_sqrt_multiplier_exp(acc, -1)
    out = multiply_by_quantized_multiplier(v, mult, shift + 7, True)
    return np.clip(out, -128, 127).astype(np.int8)


def l2_norm_variant(other: Variant) -> Variant:
    """L2_NORMALIZATION: TF Lite's int8 kernel (every resolver), else ``other``."""
    def prepare(info: NodeInfo) -> _L2Norm8:
        qo = info.outputs[0].quantization
        _require(qo.zp == 0 and abs(float(qo.s) * 128 - 1) < 1e-6, info,
                 "an int8 output with scale 1/128 and zero point 0")
        return _L2Norm8(info.inputs[0].quantization.zp)

    return for_width(np.int8, prepare, _l2_norm_int8, _L2Norm8, other)


def log_softmax_variant(other: Variant) -> Variant:
    """LOG_SOFTMAX: TF Lite's int8 fixed-point kernel (every resolver), else ``other``."""
    def prepare(info: NodeInfo) -> LogSoftmax8:
        qo = info.outputs[0].quantization
        _require(qo.zp == 127 and abs(float(qo.s) * 16 - 1) < 1e-6, info,
                 "an int8 output with scale 16/256 and zero point 127")
        return log_softmax_params(float(info.inputs[0].quantization.s))

    return for_width(np.int8, prepare, log_softmax_int8, LogSoftmax8, other)
