"""Integer variants of activations whose 16-bit kernels are TF Lite's own fixed-point
ones (:mod:`.lut16`), chosen at prepare by the activation width.

* :func:`sigmoid_like` — LOGISTIC and TANH: int16 in and out (zero points 0, output scale
  2**-15) run ``reference_integer_ops::{Logistic,Tanh}``; other widths keep the given
  8-bit variant.
* :func:`softmax_variant` — SOFTMAX: int16 in and out runs ``SoftmaxInt16``; other
  widths keep the given variant.

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
from .lut16 import (
    Softmax16,
    logistic_int16,
    sigmoid_params,
    softmax_int16,
    softmax_params,
    tanh_int16,
)


def _int16(info: NodeInfo) -> bool:
    x, y = info.inputs[0], info.outputs[0]
    return x is not None and x.dtype == np.int16 and y.dtype == np.int16


def _require(ok: bool, info: NodeInfo, what: str) -> None:
    if not ok:
        raise UnsupportedOpError(f"{info.where}: int16 {info.op.upper()} needs {what}")


@dataclass(frozen=True)
class _Sigmoid16:
    multiplier: int
    shift: int


def sigmoid_like(eight: Variant, tanh: bool) -> Variant:
    """LOGISTIC (``tanh=False``) or TANH: TF Lite's int16 kernel, else ``eight``."""
    run16 = tanh_int16 if tanh else logistic_int16

    def prepare(info: NodeInfo):
        if not _int16(info):
            return eight.prepare(info)
        qi, qo = info.inputs[0].quantization, info.outputs[0].quantization
        _require(qi.zp == 0 and qo.zp == 0, info, "zero points of 0")
        _require(abs(float(qo.s) * 32768 - 1) < 1e-6, info, "an output scale of 2**-15")
        return _Sigmoid16(*sigmoid_params(float(qi.s), tanh))

    def kernel(s, x):
        if s.__class__ is _Sigmoid16:
            return run16(x, s.multiplier, s.shift)
        return eight.kernel(s, x)
    return Variant(kernel, prepare)


def softmax_variant(other: Variant) -> Variant:
    """SOFTMAX: ``SoftmaxInt16`` for int16 in and out, else ``other``."""
    def prepare(info: NodeInfo):
        if not _int16(info):
            return other.prepare(info)
        qi, qo = info.inputs[0].quantization, info.outputs[0].quantization
        _require(qi.zp == 0 and qo.zp == 0, info, "zero points of 0")
        return softmax_params(float(qi.s), float(info.attrs.get("beta", 1.0)))

    def kernel(s, x):
        if s.__class__ is Softmax16:
            return softmax_int16(s, x)
        return other.kernel(s, x)
    return Variant(kernel, prepare)
