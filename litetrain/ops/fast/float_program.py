"""A float plan's run of steps in one compiled call: the executor of
:mod:`litetrain.runtime.float_program`'s instruction tables.

At batch 1 a float MobileNet's steps take a few microseconds of arithmetic each, about
what the Python around them costs (the invoke loop, the kernel wrappers, unboxing each
array). :func:`run` takes a run of steps encoded as data and runs it with no Python in
between:

* ``code`` int64 ``[steps, WIDTH]``: one row per instruction, an op code (``OP_*`` of
  :mod:`.float_codes`) then its fields (see each branch of :func:`run`): byte offsets of
  operands in the arena, sizes, byte offsets of prepared constants;
* ``consts`` uint8: the prepared constants (packed filters, biases, depthwise taps and
  geometry, clamp bounds and scales as float32 triples), each 64-byte aligned;
* ``arena`` uint8: the activations at liveness-planned offsets;
* ``blas``: :attr:`.blas.Blas.table` (NumPy's BLAS functions' addresses).

Each instruction calls the compiled kernel the per-step path calls on views of the arena
(``fast.gemm``'s pointwise and windowed forms, ``fast.conv``'s depthwise, epilogue and
per-image scaling kernels, ``fast.depthwise``, ``fast.reduce.mean_hw``; for dynamic-range
plans ``fast.hybrid``'s whole-op kernels and ``fast.xnnpack``'s CONV_2D, depthwise and
mean), or NumPy's own BLAS call
(:mod:`.blas`), or one float32 operation per element where NumPy does exactly that
(ADD, a bias added): the same operations on the same values, so the same bits. The
kernels are called, not inlined (they are compiled, and cached, on their own), and the
executor is generic (the model is data): compiled once per machine. A hybrid kernel
refuses an input holding NaN or ±inf: :func:`run` then stops and returns ``False`` (the
caller runs the steps one by one).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from .blas import matmul, matmul_bt
from .conv import (
    bias_activation,
    bias_activation_hard_swish,
    bias_activation_scale,
    depthwise_conv_2d,
    depthwise_conv_2d_hard_swish,
    mul_per_image_channels,
)
from .depthwise import depthwise_strided, depthwise_strided_hard_swish
from .float_codes import (
    HARD_SWISH,
    OP_ADD,
    OP_BIAS,
    OP_CONV,
    OP_DEPTHWISE,
    OP_EPILOGUE,
    OP_HYBRID_DEPTHWISE,
    OP_HYBRID_POINTWISE,
    OP_MATMUL,
    OP_MEAN,
    OP_MUL_SCALAR,
    OP_POINTWISE,
    OP_SCALE_IMAGES,
    OP_XNN_CONV,
    OP_XNN_DEPTHWISE,
    OP_XNN_MEAN,
    PLAIN,
    RING,
    RING_HARD_SWISH,
    TILES,
)
from .gemm import conv_2d as gemm_conv_2d
from .gemm import conv_2d_direct, pointwise
from .hybrid import depthwise_conv_2d32 as hybrid_depthwise
from .hybrid import pointwise as hybrid_pointwise
from .reduce import mean_hw
from .xnnpack import conv as xnn_conv
from .xnnpack import depthwise as xnn_depthwise
from .xnnpack import mean_hw as xnn_mean_hw

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_I64 = types.int64


@numba.njit(inline="always", **_JIT)
def _f32(buf, off, n):
    return buf[off:off + 4 * n].view(np.float32)


@numba.njit(inline="always", **_JIT)
def _add(a, b, out):
    """``out = a + b``, one float32 addition per element (NumPy's ``np.add``)."""
    for e in range(out.size):
        out[e] = a[e] + b[e]


@numba.njit(inline="always", **_JIT)
def _copy(src, dst):
    """``dst[:] = src`` (a fresh kernel result into the arena), one flat loop."""
    for e in range(dst.size):
        dst[e] = src[e]


@numba.njit(inline="always", **_JIT)
def _bias(y, rows, o, bias):
    """``y += bias`` on ``rows`` rows of ``o``: one float32 addition per element (NumPy's
    broadcast ``out += b``)."""
    for r in range(rows):
        base = r * o
        for c in range(o):
            y[base + c] = y[base + c] + bias[c]


@numba.njit(inline="always", **_JIT)
def _scale(x, s, first, out):
    """``out = x * s`` (``s * x`` unless ``first``), one float32 product per element."""
    if first:
        for e in range(out.size):
            out[e] = x[e] * s
    else:
        for e in range(out.size):
            out[e] = s * x[e]


@numba.njit(types.boolean(_I64[:, ::1], types.uint8[::1], types.uint8[::1], _I64[::1]),
            **_JIT)
def run(code, consts, arena, blas):
    """Run every instruction of ``code`` in order (module docstring); ``False`` when a
    hybrid kernel refused its input (NaN or ±inf: the caller runs the steps instead)."""
    for r in range(code.shape[0]):
        f = code[r]
        op = f[0]
        if op == OP_POINTWISE:
            # x, m, k, packed filter (offset, rows, columns), packed bias (offset, size),
            # lo/hi/scale (offset), mode, out, o
            m, k, o = f[2], f[3], f[12]
            p = _f32(consts, f[9], 3)
            pointwise(_f32(arena, f[1], m * k).reshape((m, k)),
                      _f32(consts, f[4], f[5] * f[6]).reshape((f[5], f[6])),
                      _f32(arena, f[11], m * o).reshape((m, o)), _f32(consts, f[7], f[8]),
                      p[0], p[1], f[10], p[2])
        elif op == OP_CONV:
            # x, n, h, w, c, packed filter (offset, rows, columns), packed bias (offset,
            # size), lo/hi/scale/mul/add (offset), mode, geometry (offset: kh, kw, sh, sw,
            # dh, dw, pt, pl, ow), affine + 2 * direct, out, rows, o
            n, h, wd, c, m, o = f[2], f[3], f[4], f[5], f[16], f[17]
            x = _f32(arena, f[1], n * h * wd * c).reshape((n, h, wd, c))
            wp = _f32(consts, f[6], f[7] * f[8]).reshape((f[7], f[8]))
            bp = _f32(consts, f[9], f[10])
            p = _f32(consts, f[11], 5)
            g = consts[f[13]:f[13] + 72].view(np.int64)
            out = _f32(arena, f[15], m * o).reshape((m, o))
            affine = (f[14] & 1) != 0
            if f[14] & 2:
                conv_2d_direct(x, wp, out, bp, p[0], p[1], f[12], p[2], g[0], g[1], g[2],
                               g[3], g[4], g[5], g[6], g[7], g[8], affine, p[3], p[4])
            else:
                gemm_conv_2d(x, wp, out, bp, p[0], p[1], f[12], p[2], g[0], g[1], g[2], g[3],
                             g[4], g[5], g[6], g[7], g[8], affine, p[3], p[4])
        elif op == OP_MATMUL:
            # a, m, k, b (constant), n, b is [n, k] (a @ b.T), out
            m, k, n = f[2], f[3], f[5]
            a = _f32(arena, f[1], m * k).reshape((m, k))
            out = _f32(arena, f[7], m * n).reshape((m, n))
            if f[6]:
                matmul_bt(blas, a, _f32(consts, f[4], n * k).reshape((n, k)), out)
            else:
                matmul(blas, a, _f32(consts, f[4], k * n).reshape((k, n)), out)
        elif op == OP_EPILOGUE:
            # y (in place), rows, o, bias (offset; -1: none), lo/hi/scale (offset), kind
            rows, o = f[2], f[3]
            y = _f32(arena, f[1], rows * o).reshape((rows, o))
            has = f[4] >= 0
            bias = _f32(consts, f[4], o) if has else _f32(consts, 0, 0)
            p = _f32(consts, f[5], 3)
            if f[6] == PLAIN:
                bias_activation(y, bias, has, p[0], p[1])
            elif f[6] == HARD_SWISH:
                bias_activation_hard_swish(y, bias, has, p[0], p[1])
            else:
                bias_activation_scale(y, bias, has, p[0], p[1], p[2])
        elif op == OP_DEPTHWISE:
            # x, n, h, w, c, kernel, taps (offset, rows, columns), bias (offset, size),
            # lo/hi (offset), geometry (offset, 11 int64), out, out size
            n, h, wd, c = f[2], f[3], f[4], f[5]
            x = _f32(arena, f[1], n * h * wd * c).reshape((n, h, wd, c))
            taps = _f32(consts, f[7], f[8] * f[9]).reshape((f[8], f[9]))
            bias = _f32(consts, f[10], f[11])
            p = _f32(consts, f[12], 3)
            g = consts[f[13]:f[13] + 88].view(np.int64)
            kind = f[6]
            if kind == RING:
                y = depthwise_conv_2d(x, taps, bias, p[0], p[1], g)
            elif kind == RING_HARD_SWISH:
                y = depthwise_conv_2d_hard_swish(x, taps, bias, p[0], p[1], g)
            elif kind == TILES:
                y = depthwise_strided(x, taps, bias, p[0], p[1], g)
            else:
                y = depthwise_strided_hard_swish(x, taps, bias, p[0], p[1], g)
            _copy(y.reshape(f[15]), _f32(arena, f[14], f[15]))
        elif op == OP_MEAN:
            # x, n, h, w, c, out
            n, h, wd, c = f[2], f[3], f[4], f[5]
            mean_hw(_f32(arena, f[1], n * h * wd * c).reshape((n, h, wd, c)),
                    _f32(arena, f[6], n * c).reshape((n, c)))
        elif op == OP_SCALE_IMAGES:
            # x, n, h, w, c, v, out, x first
            n, h, wd, c = f[2], f[3], f[4], f[5]
            size = n * h * wd * c
            mul_per_image_channels(_f32(arena, f[1], size).reshape((n, h, wd, c)),
                                   _f32(arena, f[6], n * c).reshape((n, 1, 1, c)),
                                   _f32(arena, f[7], size).reshape((n, h, wd, c)),
                                   f[8] != 0)
        elif op == OP_ADD:
            # a, b, size, out
            size = f[3]
            _add(_f32(arena, f[1], size), _f32(arena, f[2], size), _f32(arena, f[4], size))
        elif op == OP_BIAS:
            # y (in place), rows, o, bias (offset)
            rows, o = f[2], f[3]
            _bias(_f32(arena, f[1], rows * o), rows, o, _f32(consts, f[4], o))
        elif op == OP_HYBRID_POINTWISE:
            # x, rows, columns, packed filter (offset, rows, columns), scales and bias
            # (offset, columns), lo/hi (offset), asymmetric + 2 * hard_swish, out, m, o
            rows, cols, m, o, ec = f[2], f[3], f[12], f[13], f[8]
            p = _f32(consts, f[9], 3)
            if not hybrid_pointwise(_f32(arena, f[1], rows * cols).reshape((rows, cols)),
                                    _f32(consts, f[4], f[5] * f[6]).reshape((f[5], f[6])),
                                    _f32(consts, f[7], 2 * ec).reshape((2, ec)), p[0], p[1],
                                    (f[10] & 1) != 0, (f[10] & 2) != 0,
                                    _f32(arena, f[11], m * o).reshape((m, o))):
                return False
        elif op == OP_HYBRID_DEPTHWISE:
            # x, n, h, w, c, filter (offset, kh, kw; c channels), scales (offset), bias
            # (offset), lo/hi (offset), geometry (offset: sh, sw, dh, dw, pt, pl, oh, ow),
            # asymmetric + 2 * hard_swish + 4 * has bias, out
            n, h, wd, c, kh, kw = f[2], f[3], f[4], f[5], f[7], f[8]
            p = _f32(consts, f[11], 3)
            g = consts[f[12]:f[12] + 64].view(np.int64)
            fl = f[13]
            if not hybrid_depthwise(
                    _f32(arena, f[1], n * h * wd * c).reshape((n, h, wd, c)), (fl & 1) != 0,
                    _f32(consts, f[6], kh * kw * c).reshape((kh, kw, c)),
                    _f32(consts, f[9], c), _f32(consts, f[10], c), (fl & 4) != 0, p[0], p[1],
                    g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], (fl & 2) != 0,
                    _f32(arena, f[14], n * g[6] * g[7] * c).reshape((n, g[6], g[7], c))):
                return False
        elif op == OP_XNN_MEAN:
            # x, n, h, w, c, out
            n, h, wd, c = f[2], f[3], f[4], f[5]
            xnn_mean_hw(_f32(arena, f[1], n * h * wd * c).reshape((n, h, wd, c)),
                        _f32(arena, f[6], n * c).reshape((n, c)))
        elif op == OP_XNN_CONV:
            # x, n, h, w, c, packed filter (offset, rows, columns), bias (offset, size),
            # lo/hi (offset), o, geometry (offset, 10 int64), out, out size
            n, h, wd, c, o = f[2], f[3], f[4], f[5], f[12]
            p = _f32(consts, f[11], 3)
            g = consts[f[13]:f[13] + 80].view(np.int64)
            y = xnn_conv(_f32(arena, f[1], n * h * wd * c).reshape((n, h, wd, c)),
                         _f32(consts, f[6], f[7] * f[8]).reshape((f[7], f[8])),
                         _f32(consts, f[9], f[10]), o, p[0], p[1], g[0], g[1], g[2], g[3],
                         g[4], g[5], g[6], g[7], g[8], g[9])
            _copy(y.reshape(f[15]), _f32(arena, f[14], f[15]))
        elif op == OP_XNN_DEPTHWISE:
            # x, n, h, w, c, filter (offset, kh, kw; c channels), bias (offset), lo/hi
            # (offset), geometry (offset, 10 int64), out, out size
            n, h, wd, c, kh, kw = f[2], f[3], f[4], f[5], f[7], f[8]
            p = _f32(consts, f[10], 3)
            g = consts[f[11]:f[11] + 80].view(np.int64)
            y = xnn_depthwise(_f32(arena, f[1], n * h * wd * c).reshape((n, h, wd, c)),
                              _f32(consts, f[6], kh * kw * c).reshape((kh, kw, c)),
                              _f32(consts, f[9], c), p[0], p[1], g[0], g[1], g[2], g[3],
                              g[4], g[5], g[6], g[7], g[8], g[9])
            _copy(y.reshape(f[13]), _f32(arena, f[12], f[13]))
        elif op == OP_MUL_SCALAR:
            # x, size, scalar (offset), x first, out
            size = f[2]
            _scale(_f32(arena, f[1], size), _f32(consts, f[3], 1)[0], f[4] != 0,
                   _f32(arena, f[5], size))
    return True
