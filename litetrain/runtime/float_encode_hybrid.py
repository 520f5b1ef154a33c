"""The steps of dynamic-range plans as :mod:`litetrain.ops.fast.float_program`
instructions (kinds of :mod:`.float_encode`; its two stages, the same rules).

A dynamic-range (hybrid) model's plan runs, between its float steps, the hybrid
CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED kernels (:func:`litetrain.ops.quantized.
lib.hybrid_conv`) and XNNPACK-order float nodes (:mod:`litetrain.ops.xnnpack_float`).
Encoded here, each calling the compiled kernel the step's own path calls, on the same
prepared constants:

* a hybrid node whose whole-op kernel :mod:`litetrain.ops.compiled_hybrid` chose
  (``fast.whole``: :func:`~litetrain.ops.fast.hybrid.pointwise` for a 1×1 stride-1
  CONV_2D or FULLY_CONNECTED, :func:`~litetrain.ops.fast.hybrid.depthwise_conv_2d32` for
  a DEPTHWISE_CONV_2D of multiplier 1 with float32 sums), no activation left to NumPy,
  a constant float32 bias (or none), with the XNNPACK HARD_SWISH the plan fused into it.
  Those kernels refuse an input holding NaN or ±inf (the NumPy pass then runs): the
  instruction then stops the program, which runs its steps one by one instead;
* XNNPACK-order float nodes, on their compiled kernels (``fast.xnnpack``): a 1×1
  stride-1 CONV_2D (``conv``; with a MUL by a scalar fused after it), a DEPTHWISE_CONV_2D
  of multiplier 1 (``depthwise``), MEAN over height and width (``mean_hw``);
* MUL by a float32 scalar constant, no fused activation (NumPy's one float32
  multiplication per element).
"""

from __future__ import annotations

import functools

import numpy as np

from ..ops import compiled_hybrid, lookup, xnnpack_float
from ..ops.common import NONE, axes, window_geometry
from ..ops.conv import conv_2d, depthwise_conv_2d
from ..ops.fast import float_codes as codes
from ..ops.quantized.lib import HybridConv
from ..ops.reduce import _mean_kernel
from .epilogue import conv_scaled
from .int8_encode import Consts, Ref, Template
from .step import Step

_F32 = np.dtype(np.float32)
_HYBRID = "hybrid_conv.<locals>.kernel"


def dynamic_range(step: Step) -> bool:
    """Whether ``step`` is one only dynamic-range plans have (hybrid, XNNPACK-order)."""
    return step.settings.__class__ in (HybridConv, xnnpack_float.XnnOrder)


def _array(v, ndim: int | None = None) -> bool:
    return (v.__class__ is np.ndarray or v.__class__.__name__ == "Like") and (
        v.dtype == _F32 and (ndim is None or v.ndim == ndim))


def hybrid(step: Step, values, out, consts: Consts | None, k) -> Template | None:
    """A hybrid CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED's whole-op kernel."""
    s = step.settings
    if (s.__class__ is not HybridConv or getattr(step.kernel, "__qualname__", "") != _HYBRID
            or len(step.inputs) not in (2, 3)):
        return None
    fast = s.fast
    if fast is None or fast.whole is None or fast.rest != NONE:
        return None
    xi, bi = step.inputs[0], step.inputs[2] if len(step.inputs) > 2 else -1
    x = values[xi]
    b = values[bi] if bi >= 0 else None
    o = fast.w_scale.size
    if not _array(x) or (b is not None and not (b.__class__ is np.ndarray and b.dtype == _F32
                                                  and b.shape == (o,))):
        return None
    swish = s.hard_swish is not None
    yi = step.outputs[0]
    if fast.whole is compiled_hybrid.pointwise:
        shapes = compiled_hybrid.pointwise_shapes(fast, x)
        if shapes is None or shapes[2] != out.shape:
            return None
        if consts is None:
            return Template([], (xi,), (yi,))
        ep = compiled_hybrid.epilogue_operand(fast, b)
        (rows, cols), (m, _) = shapes[0], shapes[1]
        return Template([codes.OP_HYBRID_POINTWISE, Ref(xi), rows, cols,
                         consts.add(fast.pointwise), *fast.pointwise.shape, consts.add(ep),
                         ep.shape[1], _params(consts, fast.lo, fast.hi),
                         int(fast.asymmetric) + 2 * int(swish), Ref(yi), m, o], (xi,), (yi,))
    w = fast.depthwise
    if fast.whole is not compiled_hybrid.depthwise_conv_2d or w is None or w.dtype != _F32:
        return None
    kh, kw, cm = w.shape
    if x.ndim != 4 or x.shape[3] != cm:
        return None
    g = window_geometry(fast.geometry, fast, x, kh, kw)
    n, h, wd, c = x.shape
    if out.shape != (n, g[6], g[7], cm):
        return None
    if consts is None:
        return Template([], (xi,), (yi,))
    bias = np.zeros(o, np.float32) if b is None else b
    return Template([codes.OP_HYBRID_DEPTHWISE, Ref(xi), n, h, wd, c, consts.add(w), kh, kw,
                     consts.add(fast.w_scale), consts.add(bias),
                     _params(consts, fast.lo, fast.hi),
                     consts.add(np.array(g, np.int64)),
                     int(fast.asymmetric) + 2 * int(swish) + 4 * int(b is not None),
                     Ref(yi)], (xi,), (yi,))


def _params(consts: Consts, lo, hi) -> int:
    return consts.add(np.array([lo, hi, 1], np.float32))


def xnn_mean(step: Step, values, out, consts, k) -> Template | None:
    """MEAN over height and width in XNNPACK's order, its compiled kernel."""
    s = step.settings
    if (s.__class__ is not xnnpack_float.XnnOrder or s.loader is None
            or step.kernel is not _mean_kernel or len(step.inputs) != 2):
        return None
    xi, ai = step.inputs
    x, axis = values[xi], values[ai]
    if (not _array(x, 4) or axis.__class__ is not np.ndarray
            or axes(axis, 4) not in ((1, 2), (2, 1)) or x.shape[1] * x.shape[2] == 0
            or out.size != x.shape[0] * x.shape[3]):
        return None
    yi = step.outputs[0]
    return Template([codes.OP_XNN_MEAN, Ref(xi), *x.shape, Ref(yi)], (xi,), (yi,))


def mul_scalar(step: Step, values, out, consts, k) -> Template | None:
    """MUL of a float32 array by a float32 constant of one element, no fused activation:
    ``np.multiply``'s one product per element, the operands in the MUL's order."""
    if (step.kernel is not lookup("mul").kernel or len(step.inputs) != 2
            or step.settings.get("fused_activation_function", 0)):
        return None
    ai, bi = step.inputs
    a, b = values[ai], values[bi]
    if not (_array(a) and _array(b)):
        return None
    for big, small, first in ((a, b, 1), (b, a, 0)):
        if (small.__class__ is np.ndarray and small.size == 1 and small.ndim <= big.ndim
                and big.shape == out.shape):
            xi = ai if first else bi
            yi = step.outputs[0]
            if consts is None:
                return Template([], (xi,), (yi,))
            scalar = np.array([small.reshape(-1)[0], 0, 0], np.float32)
            return Template([codes.OP_MUL_SCALAR, Ref(xi), out.size, consts.add(scalar),
                             first, Ref(yi)], (xi,), (yi,))
    return None


def _xnn(step: Step, values, x) -> bool:
    s = step.settings
    return (s.__class__ is xnnpack_float.XnnOrder and s.loader is not None
            and _array(x, 4) and len(step.inputs) in (3, 4))


def xnn_conv(step: Step, values, out, consts, k) -> Template | None:
    """An XNNPACK-order 1×1 stride-1 CONV_2D (``fast.xnnpack.conv``, which reads its input
    as the patches), with a MUL by a scalar constant fused after it (NumPy's product)."""
    kernel = step.kernel
    scaled = (kernel.__class__ is functools.partial and kernel.func is conv_scaled
              and len(step.inputs) == 4)
    if kernel is not conv_2d and not scaled:
        return None
    xi, wi, bi = step.inputs[:3]
    x, w = values[xi], values[wi]
    b = values[bi] if bi >= 0 else None
    scale = values[step.inputs[3]] if scaled else None
    if (not _xnn(step, values, x) or w.__class__ is not np.ndarray or w.dtype != _F32
            or (b is not None and (b.__class__ is not np.ndarray or b.dtype != _F32))
            or (scaled and not (scale.__class__ is np.ndarray and scale.dtype == _F32
                                and scale.size == 1 and scale.ndim <= 4))):
        return None
    s = step.settings
    o, kh, kw, ci = w.shape
    n, h, wd, c = x.shape
    if (kh, kw, s["stride_h"], s["stride_w"], ci) != (1, 1, 1, 1, c) or out.shape != (
            n, h, wd, o):
        return None
    yi = step.outputs[0]
    if consts is None:
        return Template([], (xi,), (yi,))
    g = s.geometry(x, kh, kw)
    filt, bias = s.layout(w, b, False)
    more = () if not scaled else ([codes.OP_MUL_SCALAR, Ref(yi), out.size,
                                   consts.add(np.array([scale.reshape(-1)[0], 0, 0],
                                                       np.float32)), 1, Ref(yi)],)
    return Template([codes.OP_XNN_CONV, Ref(xi), n, h, wd, c, consts.add(filt), *filt.shape,
                     consts.add(bias), bias.size, _params(consts, s.lo, s.hi), o,
                     consts.add(np.array(g, np.int64)), Ref(yi), out.size], (xi,), (yi,),
                    more=more)


def xnn_depthwise(step: Step, values, out, consts, k) -> Template | None:
    """An XNNPACK-order DEPTHWISE_CONV_2D of multiplier 1 (``fast.xnnpack.depthwise``)."""
    xi, wi = step.inputs[:2]
    x, w = values[xi], values[wi]
    bi = step.inputs[2] if len(step.inputs) > 2 else -1
    b = values[bi] if bi >= 0 else None
    if (step.kernel is not depthwise_conv_2d or len(step.inputs) != 3
            or not _xnn(step, values, x) or w.__class__ is not np.ndarray
            or w.dtype != _F32 or w.ndim != 4 or w.shape[3] != x.shape[3]
            or (b is not None and (b.__class__ is not np.ndarray or b.dtype != _F32))):
        return None
    s = step.settings
    g = s.geometry(x, w.shape[1], w.shape[2])
    n, h, wd, c = x.shape
    if out.shape != (n, g[8], g[9], c):
        return None
    yi = step.outputs[0]
    if consts is None:
        return Template([], (xi,), (yi,))
    filt, bias = s.layout(w, b, True)
    return Template([codes.OP_XNN_DEPTHWISE, Ref(xi), n, h, wd, c, consts.add(filt),
                     *filt.shape[:2], consts.add(bias), _params(consts, s.lo, s.hi),
                     consts.add(np.array(g, np.int64)), Ref(yi), out.size], (xi,), (yi,))


def conv(step: Step, values, out, consts, k) -> Template | None:
    """A hybrid or XNNPACK-order CONV_2D (:func:`hybrid`, :func:`xnn_conv`)."""
    return hybrid(step, values, out, consts, k) or xnn_conv(step, values, out, consts, k)


def depthwise(step: Step, values, out, consts, k) -> Template | None:
    """A hybrid or XNNPACK-order DEPTHWISE_CONV_2D."""
    return (hybrid(step, values, out, consts, k)
            or xnn_depthwise(step, values, out, consts, k))
