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
(``fast.gemm.pointwise``, ``fast.conv``'s depthwise / epilogue / per-image scaling
kernels, ``fast.depthwise``, ``fast.reduce.mean_hw``), or NumPy's own BLAS call
(:mod:`.blas`), or one float32 operation per element where NumPy does exactly that
(ADD, a bias added): the same operations on the same values, so the same bits. The
kernels are called, not inlined (they are compiled, and cached, on their own), and the
executor is generic (the model is data): compiled once per machine.
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
    OP_DEPTHWISE,
    OP_EPILOGUE,
    OP_MATMUL,
    OP_MEAN,
    OP_POINTWISE,
    OP_SCALE_IMAGES,
    PLAIN,
    RING,
    RING_HARD_SWISH,
    TILES,
)
from .gemm import pointwise
from .reduce import mean_hw

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
def _bias(y, rows, o, bias):
    """``y += bias`` on ``rows`` rows of ``o``: one float32 addition per element (NumPy's
    broadcast ``out += b``)."""
    for r in range(rows):
        base = r * o
        for c in range(o):
            y[base + c] = y[base + c] + bias[c]


@numba.njit((_I64[:, ::1], types.uint8[::1], types.uint8[::1], _I64[::1]), **_JIT)
def run(code, consts, arena, blas):
    """Run every instruction of ``code`` in order (module docstring)."""
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
            out = _f32(arena, f[14], f[15]).reshape(y.shape)
            out[...] = y
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
