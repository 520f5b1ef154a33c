"""Integer variants of activations whose 16-bit kernels are TF Lite's own fixed-point
ones (:mod:`.lut16`), chosen at prepare by the activation width.

* :func:`sigmoid_like` — LOGISTIC and TANH: int16 in and out (zero points 0, output scale
  2**-15) run ``reference_integer_ops::{Logistic,Tanh}``; other widths keep the given
  8-bit variant.
* :func:`softmax_variant` — SOFTMAX: int16 in and out runs ``SoftmaxInt16``; other
  widths keep the given variant.
* :func:`softmax8` — SOFTMAX's 8-bit variant with the ``[fast]`` extra's compiled
  kernel (:func:`..fast.int8.softmax`) chosen at prepare: the same float32 operations
  as the NumPy kernel in one call (its exponentials looked up in a table of NumPy's own
  ``exp`` of the 256 possible ``x - max``, the row sums in NumPy's pairwise order).
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
from ..fast import WithKernels, kernels
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


_EIGHT = (np.dtype(np.int8), np.dtype(np.uint8))
_DIFFS = np.arange(-255, 1, dtype=np.float32)  # every x - max of 8-bit values


class Softmax8(WithKernels):
    """An 8-bit SOFTMAX node's NumPy settings (``inner``) and what the compiled kernel
    takes: ``table[d + 255]`` = the float32 ``exp(float32(s_in) * beta * d)`` NumPy
    computes for ``d = x - max``, the output scale (float32), zero point and range."""

    def __init__(self, inner, loader, table: np.ndarray):
        super().__init__(inner.attrs, loader)
        qi, qo = inner.qin[0], inner.qout[0]
        self.inner, self.table = inner, table
        self.in_dtype, self.out_dtype = np.dtype(qi.dtype), np.dtype(qo.dtype)
        info = np.iinfo(self.out_dtype)
        self.args = (np.float32(qo.s), int(qo.zp), int(info.min), int(info.max))


def softmax8(numpy: Variant) -> Variant:
    """SOFTMAX's 8-bit ``numpy`` variant (``activations._softmax_integer``) computed by
    one compiled call where it applies: 8-bit input and output with one scale each and a
    positive ``s_in * beta`` (so every exponential is in (0, 1] and every sum finite).
    Anything else, and a node whose kernels are still loading, runs ``numpy``."""
    def prepare(info: NodeInfo):
        s = numpy.prepare(info)
        loader = kernels("int8")
        x, y = info.inputs[0], info.outputs[0]
        if (loader is None or x is None or x.dtype not in _EIGHT or y.dtype not in _EIGHT
                or s.qin[0] is None or s.qout[0] is None or s.qin[0].scale.size != 1
                or s.qout[0].scale.size != 1 or s.qout[0].zero_point.size > 1):
            return s
        k = np.float32(s.qin[0].s) * np.float32(s.attrs.get("beta", 1.0))
        if not k > 0:
            return s
        with np.errstate(all="ignore"):
            table = np.exp(k * _DIFFS, dtype=np.float32)
        return Softmax8(s, loader, table)

    def kernel(s, x):
        if s.__class__ is not Softmax8:
            return numpy.kernel(s, x)
        module = s.ready()
        if (module is None or x.__class__ is not np.ndarray or x.dtype != s.in_dtype
                or x.ndim == 0 or x.size == 0):
            return numpy.kernel(s.inner, x)
        n = x.shape[-1]
        out = np.empty(x.shape, s.out_dtype)
        module.softmax(np.ascontiguousarray(x).reshape(-1, n), s.table, *s.args,
                       out.reshape(-1, n))
        return out
    kernel.wraps = numpy  # the NumPy variant, for tests
    return Variant(kernel, prepare)
