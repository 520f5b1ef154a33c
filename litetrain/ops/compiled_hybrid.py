"""Prepare-time choice of the compiled parts of the hybrid (dynamic-range) CONV_2D,
DEPTHWISE_CONV_2D, TRANSPOSE_CONV and FULLY_CONNECTED kernels (``quantized.lib``'s
``hybrid_conv``).

A node qualifies when its filter is a constant of the file and the ``[fast]`` extra
(numba, :mod:`.fast`) is available; its hybrid settings then carry a :class:`FastHybrid`:
the filter's scales as one float32 per output channel, the centred depthwise filter laid
out ``[kh, kw, channels]``, the fused activation as clamp bounds (``rest``: one left to
NumPy), and the kernels' loader. DEPTHWISE_CONV_2D then runs wholly compiled; the others
keep NumPy's im2col and GEMM between a compiled input quantization and a compiled
epilogue (scale, bias, activation in one pass).

The kernel asks ``FastHybrid.ready()`` once per run (that count starts loading the kernels
at a node's second run) and passes ``None`` while they are loading. Each function here
returns ``None`` where it does not apply (kernels not loaded, an input that is not a
float32 array, an odd bias, NaN or ±inf in the input): the caller then runs the NumPy
pass, so results are the NumPy kernel's bits in every case.
"""

from __future__ import annotations

import numpy as np

from .common import NONE, RELU, RELU6, RELU_N1_TO_1, fused, window_geometry
from .fast import Loader, WithKernels, kernels

_INF = np.float32(np.inf)
# Fused activations the compiled kernels apply themselves, as clamp bounds.
_CLAMPS = {NONE: (-_INF, _INF), RELU: (np.float32(0), _INF),
           RELU_N1_TO_1: (np.float32(-1), np.float32(1)), RELU6: (np.float32(0), np.float32(6))}
_NO_BIAS = np.zeros(0, np.float32)
_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


class FastHybrid(WithKernels):
    """A hybrid node's attrs plus what its compiled kernels need (see the module
    docstring); ``depthwise`` is the centred filter ``[kh, kw, channels]`` in the sums'
    precision (float32 when they are exact in it, else float64), or ``None``."""

    def __init__(self, attrs, loader: Loader, w_scale: np.ndarray, depthwise: np.ndarray | None,
                 asymmetric: bool):
        super().__init__(attrs, loader)
        self.asymmetric = asymmetric
        self.w_scale = w_scale
        self.depthwise = depthwise
        act = attrs.get("fused_activation_function", 0)
        self.lo, self.hi = _CLAMPS.get(act, _CLAMPS[NONE])
        self.rest = NONE if act in _CLAMPS else act
        self.geometry: dict[tuple[int, int], tuple[int, ...]] = {}
        # the last bias seen and its writable copy (arrays are never mutated)
        self.last_bias: tuple[np.ndarray, np.ndarray] | None = None


def prepare(attrs, weights: np.ndarray | None, w_scale, exact32: bool, out_axis: int,
            depthwise: bool, asymmetric: bool) -> FastHybrid | None:
    """The node's :class:`FastHybrid` when it qualifies. ``weights``: the centred
    constant filter (float32 integers), ``None`` when the filter is not a constant;
    ``asymmetric``: how inputs are quantized."""
    if weights is None or (depthwise and weights.ndim != 4):
        return None
    loader = kernels("hybrid")
    if loader is None:
        return None
    channels = weights.shape[out_axis]
    scales = np.array(np.broadcast_to(np.asarray(w_scale, np.float32), (channels,)),
                      np.float32, order="C")
    layout = None
    if depthwise:
        layout = np.array(weights[0], np.float32 if exact32 else np.float64, order="C")
    return FastHybrid(attrs, loader, scales, layout, asymmetric)


def _module(fast: FastHybrid | None):
    """The loaded kernels (the caller asked ``fast.ready()`` once for this run)."""
    return None if fast is None else fast.loader.module


def _float32(x) -> np.ndarray | None:
    if x.__class__ is not np.ndarray or x.dtype != _F32 or x.size == 0:
        return None
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def quantize(fast: FastHybrid | None, x, rows: int, dtype
             ) -> tuple[np.ndarray, np.ndarray] | None:
    """``x`` as ``rows`` quantized rows: (the centred values in ``dtype``, shaped like
    ``x``; each row's scaling factor)."""
    module = _module(fast)
    x = None if module is None else _float32(x)
    if x is None:
        return None
    flat = x.reshape(rows, -1)
    centred = np.empty(flat.shape, dtype)
    scale, offset = np.empty(rows, np.float32), np.empty(rows, np.float32)
    if not module.quantize_rows(flat, fast.asymmetric, centred, scale, offset):
        return None
    return centred.reshape(x.shape), scale


def _bias(fast: FastHybrid, b) -> tuple[np.ndarray, bool] | None:
    """(the bias as the kernels take it, whether there is one), or ``None`` for an odd
    one."""
    if b is None:
        return _NO_BIAS, False
    if b.__class__ is not np.ndarray or b.dtype != _F32 or b.shape != fast.w_scale.shape:
        return None
    if not (b.flags.writeable and b.flags.c_contiguous):  # the kernels take one array type
        last = fast.last_bias  # a read-only constant: copied once, not on every run
        if last is None or last[0] is not b:
            last = fast.last_bias = (b, b.copy())
        b = last[1]
    return b, True


def epilogue(fast: FastHybrid, acc: np.ndarray, scale: np.ndarray, rows: int, b
             ) -> np.ndarray | None:
    """``acc`` (a fresh GEMM result, float32 or float64, channels last) times each row's
    ``scale`` and the filter's scales, plus the bias, then the activation: in place when
    ``acc`` is float32."""
    bias = _bias(fast, b)
    if (bias is None or acc.dtype not in (_F32, _F64) or not acc.flags.c_contiguous
            or acc.shape[-1] != fast.w_scale.size):
        return None
    flat = acc.reshape(-1, acc.shape[-1])
    module, pixels = fast.loader.module, flat.shape[0] // rows
    if acc.dtype == _F32:
        out = module.epilogue(flat, pixels, scale, fast.w_scale, bias[0], bias[1], fast.lo,
                              fast.hi)
    else:
        out = module.epilogue64(flat, pixels, scale, fast.w_scale, bias[0], bias[1], fast.lo,
                                fast.hi, np.empty(flat.shape, np.float32))
    return fused(out.reshape(acc.shape), fast.rest)


def depthwise_conv_2d(fast: FastHybrid | None, x, b) -> np.ndarray | None:
    """The whole hybrid DEPTHWISE_CONV_2D of float32 ``x`` [n, h, w, c]."""
    module = _module(fast)
    x = None if module is None or fast.depthwise is None else _float32(x)
    bias = None if x is None or x.ndim != 4 else _bias(fast, b)
    if bias is None:
        return None
    kh, kw, cm = fast.depthwise.shape
    c = x.shape[3]
    if cm % c:
        return None  # NumPy says what is wrong
    sh, sw, dh, dw, pt, pl, oh, ow = window_geometry(fast.geometry, fast, x, kh, kw)
    out = np.empty((x.shape[0], oh, ow, cm), np.float32)
    if not module.depthwise_conv_2d(x, fast.asymmetric, fast.depthwise, fast.w_scale, bias[0],
                                    bias[1], fast.lo, fast.hi, sh, sw, dh, dw, pt, pl, oh, ow,
                                    cm // c, out):
        return None
    return fused(out, fast.rest)

