"""Prepare-time choice of the compiled parts of the hybrid (dynamic-range) CONV_2D,
DEPTHWISE_CONV_2D, TRANSPOSE_CONV and FULLY_CONNECTED kernels (``quantized.lib``'s
``hybrid_conv``).

A node qualifies when its filter is a constant of the file and the ``[fast]`` extra
(numba, :mod:`.fast`) is available; its hybrid settings then carry a :class:`FastHybrid`:
the filter's scales as one float32 per output channel, the centred depthwise filter laid
out ``[kh, kw, channels]``, the fused activation as clamp bounds (``rest``: one left to
NumPy), and the kernels' loader. DEPTHWISE_CONV_2D, a 1×1 stride-1 CONV_2D and
FULLY_CONNECTED then run wholly compiled, in one call each (the latter two when float32
sums of their products are exact: the filter packed for the compiled GEMM, and its
scales and the bias as one array, made once); the others keep NumPy's im2col and GEMM
between a compiled input quantization and a compiled epilogue (scale, bias, activation
in one pass). The whole-op kernels can also apply an XNNPACK-order HARD_SWISH fused
after the node (``hard_swish``, see :mod:`litetrain.runtime.epilogue`).

The kernel asks ``FastHybrid.ready()`` once per run (that count starts loading the kernels
at a node's second run) and passes ``None`` while they are loading. Each function here
returns ``None`` where it does not apply (kernels not loaded, an input that is not a
float32 array, an odd bias, NaN or ±inf in the input): the caller then runs the NumPy
pass, so results are the NumPy kernel's bits in every case.
"""

from __future__ import annotations

from collections.abc import Callable

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
                 asymmetric: bool, pointwise: np.ndarray | None = None):
        super().__init__(attrs, loader)
        self.asymmetric = asymmetric
        self.w_scale = w_scale
        self.depthwise = depthwise
        # the whole-op GEMM (:func:`pointwise`): the packed filter, its depth, and per
        # bias array seen last, the scales and that bias as one array
        self.pointwise = pointwise
        self.depth = 0 if pointwise is None else pointwise.shape[1] // 16
        self.per_row = False  # FULLY_CONNECTED: each row of ``depth`` quantized alone
        self.keep_dims = bool(attrs.get("keep_num_dims", False))
        self.last_ep: tuple[np.ndarray | None, np.ndarray] | None = None
        # the whole-op kernel (:func:`depthwise_conv_2d`, :func:`pointwise`) or None, and
        # per input shape :func:`pointwise`'s shapes
        self.whole: Callable | None = None
        self.shapes: dict[tuple[int, ...], tuple] = {}
        act = attrs.get("fused_activation_function", 0)
        self.lo, self.hi = _CLAMPS.get(act, _CLAMPS[NONE])
        self.rest = NONE if act in _CLAMPS else act
        self.geometry: dict[tuple[int, int], tuple[int, ...]] = {}
        # the last bias seen and its writable copy (arrays are never mutated)
        self.last_bias: tuple[np.ndarray, np.ndarray] | None = None


def prepare(attrs, weights: np.ndarray | None, w_scale, exact32: bool, out_axis: int,
            depthwise: bool, asymmetric: bool, gemm: np.ndarray | None = None,
            per_row: bool = False) -> FastHybrid | None:
    """The node's :class:`FastHybrid` when it qualifies. ``weights``: the centred
    constant filter (float32 integers), ``None`` when the filter is not a constant;
    ``asymmetric``: how inputs are quantized; ``gemm``: the filter as the ``[depth,
    channels]`` operand of a convolution that is one GEMM with exact float32 sums (a 1×1
    stride-1 CONV_2D, or FULLY_CONNECTED: ``per_row``), else ``None``."""
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
    fast = FastHybrid(attrs, loader, scales, layout, asymmetric,
                      None if gemm is None else _packed(gemm))
    fast.per_row = per_row
    fast.whole = (depthwise_conv_2d if layout is not None
                  else pointwise if fast.pointwise is not None else None)
    return fast


def _packed(gemm: np.ndarray) -> np.ndarray:
    """``[depth, o]`` as ``[ceil(o / 16), depth * 16]``: per sixteen output channels, the
    filter row of each input channel in order, zeros past ``o``."""
    depth, o = gemm.shape
    tiles = -(-o // 16)
    padded = np.zeros((depth, tiles * 16), np.float32)
    padded[:, :o] = gemm
    return np.ascontiguousarray(padded.reshape(depth, tiles, 16).transpose(1, 0, 2)
                                ).reshape(tiles, depth * 16)


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


def depthwise_conv_2d(fast: FastHybrid | None, x, b, hard_swish: bool = False
                      ) -> np.ndarray | None:
    """The whole hybrid DEPTHWISE_CONV_2D of float32 ``x`` [n, h, w, c], then XNNPACK's
    HARD_SWISH when ``hard_swish`` (only with no activation left to NumPy)."""
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
    swish = hard_swish and fast.rest == NONE
    if cm == c and fast.depthwise.dtype == _F32:
        done = module.depthwise_conv_2d32(x, fast.asymmetric, fast.depthwise, fast.w_scale,
                                          bias[0], bias[1], fast.lo, fast.hi, sh, sw, dh, dw,
                                          pt, pl, oh, ow, swish, out)
    else:
        done = module.depthwise_conv_2d(x, fast.asymmetric, fast.depthwise, fast.w_scale,
                                        bias[0], bias[1], fast.lo, fast.hi, sh, sw, dh, dw, pt,
                                        pl, oh, ow, cm // c, swish, out)
    if not done:
        return None
    return fused(out, fast.rest)


def pointwise(fast: FastHybrid, x, b, hard_swish: bool = False) -> np.ndarray | None:
    """The whole hybrid 1×1 stride-1 CONV_2D of ``x`` [n, h, w, depth] or FULLY_CONNECTED
    of ``x`` [..., depth] (rows of ``depth`` each quantized alone), shaped as the float
    kernel's result; then XNNPACK's HARD_SWISH when ``hard_swish`` (only with no
    activation left to NumPy). The caller asked ``fast.ready()``."""
    if x.__class__ is not np.ndarray or x.dtype != _F32 or not x.flags.c_contiguous:
        return None
    shapes = fast.shapes.get(x.shape)
    if shapes is None:
        shapes = pointwise_shapes(fast, x)
        if shapes is None:
            return None  # NumPy says what is wrong
    last = fast.last_ep
    ep = last[1] if last is not None and last[0] is b else epilogue_operand(fast, b)
    if ep is None:
        return None
    out = np.empty(shapes[1], np.float32)
    if not fast.loader.module.pointwise(x.reshape(shapes[0]), fast.pointwise, ep, fast.lo,
                                        fast.hi, fast.asymmetric,
                                        hard_swish and fast.rest == NONE, out):
        return None
    out = out.reshape(shapes[2])
    return out if fast.rest == NONE else fused(out, fast.rest)


def pointwise_shapes(fast: FastHybrid, x: np.ndarray) -> tuple | None:
    """(``x`` as quantized rows, the GEMM result, the float kernel's result) for inputs of
    ``x``'s shape, kept on the node; ``None`` where the node does not apply."""
    depth, o = fast.depth, fast.w_scale.size
    if x.size == 0 or x.size % depth:
        return None
    if fast.per_row and not (fast.keep_dims and x.shape[-1] != depth):
        rows = x.size // depth
        shape = (*x.shape[:-1], o) if fast.keep_dims else (rows, o)
    elif not fast.per_row and x.ndim == 4 and x.shape[3] == depth:
        rows, shape = x.shape[0], (*x.shape[:3], o)
    else:
        return None
    shapes = fast.shapes[x.shape] = ((rows, x.size // rows), (x.size // depth, o), shape)
    return shapes


def epilogue_operand(fast: FastHybrid, b) -> np.ndarray | None:
    """``[2, 16 * tiles]``: the filter's scales and ``b`` (-0.0 without one), zeros past
    the last channel, kept for the next call with the same ``b``; ``None`` for an odd
    bias."""
    o = fast.w_scale.size
    if b is not None and (b.__class__ is not np.ndarray or b.dtype != _F32
                          or b.shape != (o,)):
        return None
    ep = np.zeros((2, fast.pointwise.shape[0] * 16), np.float32)  # padded to the tiles
    ep[0, :o] = fast.w_scale
    ep[1, :o] = np.float32(-0.0) if b is None else b
    fast.last_ep = (b, ep)
    return ep

