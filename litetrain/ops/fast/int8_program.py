"""A whole 8-bit plan in one compiled call: the executor of
:mod:`litetrain.runtime.int8_program`'s instruction tables.

At batch 1 an int8 MobileNet-class model's steps take a few microseconds of work each,
less than the Python around them (the invoke loop, the kernel wrappers, unboxing each
array argument). :func:`run` takes a plan segment encoded as data and runs it with no
Python in between:

* ``code`` int64 ``[steps, WIDTH]``: one row per step, an op code (``OP_*``) then that
  op's fields (see each ``_OP`` branch of :func:`run`): byte offsets of its operands in
  the arena, their sizes, and byte offsets of its prepared constants;
* ``consts`` uint8: the prepared constants (filters, per-channel rescaling ``q``/
  ``scale`` as :func:`..compiled_int8.rescaling` makes them, lookup tables, float32
  scalars), each at a 64-byte aligned offset;
* ``arena`` uint8: the activations (int8, and the float32 input of a QUANTIZE) at
  liveness-planned offsets, and the constant operands of elementwise ops.

Each instruction calls the compiled 8-bit kernel the per-step path calls
(:mod:`.int8`) on views of the arena, or one of this module's for products too small
for BLAS (:func:`gemm`, :func:`conv_2d`: int32 sums straight from the 8-bit input, four
rows at a time): exact integer sums and the same rescaling, so the same bits as the
per-step path. The executor is generic
(the model is data), so it is compiled once per machine and cached on disk, not per
model.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

from . import int8
from .gemm import pointwise
from .int8 import (
    _rescale_row,
    add,
    im2col,
    lookup,
    lookup1,
    mean_hw,
    mul,
    quantize,
    requantize,
)
from .int8_codes import (
    OP_ADD,
    OP_CONV,
    OP_DEPTHWISE,
    OP_DEQUANTIZE,
    OP_GEMM,
    OP_LOOKUP,
    OP_LOOKUP1,
    OP_MEAN,
    OP_MUL,
    OP_QUANTIZE,
    OP_SOFTMAX,
    OP_VNNI,
)

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}

try:  # AVX-512 VNNI (the encoder emits OP_VNNI only for nodes compiled_vnni planned)
    from .vnni import conv_2d as vnni_conv_2d
    from .vnni import conv_2d_direct as vnni_conv_2d_direct
    from .vnni import gemm as vnni_gemm
except ImportError:  # a CPU without it: never called
    @numba.njit(**_JIT)
    def vnni_gemm(*args):
        pass

    vnni_conv_2d = vnni_conv_2d_direct = vnni_gemm

_U = np.uint64
_I64 = types.int64


# Rows (output pixels) multiplied together: each filter value loaded once for four.
_ROWS = 4


@numba.njit(inline="always", **_JIT)
def _sums(src, s0, rows, k, z, wf, n, acc):
    """``acc[j * n + c] = Σ_p (src[s0 + j * k + p] - z) * wf[p * n + c]`` (int32, exact:
    the caller's bound) for ``j < rows``; four rows share each filter load."""
    for c in range(rows * n):
        acc[c] = 0
    if rows == _ROWS:
        for p in range(k):
            v0 = np.int32(src[s0 + _U(p)]) - z
            v1 = np.int32(src[s0 + _U(k + p)]) - z
            v2 = np.int32(src[s0 + _U(2 * k + p)]) - z
            v3 = np.int32(src[s0 + _U(3 * k + p)]) - z
            base = _U(p * n)
            for c in range(n):
                wv = wf[base + _U(c)]
                acc[_U(c)] += v0 * wv
                acc[_U(n + c)] += v1 * wv
                acc[_U(2 * n + c)] += v2 * wv
                acc[_U(3 * n + c)] += v3 * wv
    else:
        for j in range(rows):
            for p in range(k):
                v = np.int32(src[s0 + _U(j * k + p)]) - z
                base = _U(p * n)
                for c in range(n):
                    acc[_U(j * n + c)] += v * wf[base + _U(c)]


_GEMM = [(types.Array(types.int8, 2, "C"), _I64, types.int32[:, ::1], _I64[:, ::1],
          types.float32[::1], types.boolean, _I64, _I64, _I64, types.Array(types.int8, 2, "C"))]


@numba.njit(_GEMM, **_JIT)
def gemm(x, zx, w, q, scale, fp32, lo, hi, zp, out):
    """``out`` [m, n] = ``(x - zx) @ w`` rescaled (as :func:`.int8.gemm`), four rows at a
    time."""
    m, k = x.shape
    n = w.shape[1]
    src, wf, flat = x.reshape(-1), w.reshape(-1), out.reshape(-1)
    acc = np.empty(_ROWS * n, np.int32)
    z = np.int32(zx)
    for r in range(0, m, _ROWS):
        rows = min(_ROWS, m - r)
        _sums(src, _U(r * k), rows, k, z, wf, n, acc)
        for j in range(rows):
            _rescale_row(acc, _U(j * n), flat, _U((r + j) * n), n, q, scale, fp32, lo, hi,
                         zp)
    return out


_CONV = [(types.Array(types.int8, 4, "C"), _I64, types.int32[:, ::1], *(_I64,) * 8,
          _I64[:, ::1], types.float32[::1], types.boolean, _I64, _I64, _I64,
          types.Array(types.int8, 4, "C"))]


@numba.njit(_CONV, **_JIT)
def conv_2d(x, zx, w, kh, kw, sh, sw, dh, dw, pt, pl, q, scale, fp32, lo, hi, zp, out):
    """``out`` [n, oh, ow, o] int8: each output pixel's int32 sums ``Σ (x - zx) * w`` over
    its taps, ``w`` [kh * kw * c, o] centred int32 in tap-major, channel-minor order,
    rescaled. Four pixels' patches are gathered (the raw 8-bit values, ``zx`` on padding:
    ``(zx - zx) * w = 0``) and multiplied at a time (:func:`_sums`)."""
    n, h, wd, c = x.shape
    _, oh, ow, o = out.shape
    k = kh * kw * c
    src, wf, flat = x.reshape(-1), w.reshape(-1), out.reshape(-1)
    patches = np.empty(_ROWS * k, np.int8)
    acc = np.empty(_ROWS * o, np.int32)
    z = np.int32(zx)
    pixels = n * oh * ow
    for r in range(0, pixels, _ROWS):
        rows = min(_ROWS, pixels - r)
        for j in range(rows):
            pix = r + j
            bi, oy, ox = pix // (oh * ow), (pix // ow) % oh, pix % ow
            d = _U(j * k)
            x0 = ox * sw - pl
            whole = dw == 1 and x0 >= 0 and x0 + kw <= wd  # a filter row: one input run
            for i in range(kh):
                iy = oy * sh + i * dh - pt
                if iy < 0 or iy >= h:
                    for e in range(kw * c):
                        patches[d + _U(e)] = zx
                elif whole:
                    p = _U(((bi * h + iy) * wd + x0) * c)
                    for e in range(kw * c):
                        patches[d + _U(e)] = src[p + _U(e)]
                else:
                    for jj in range(kw):
                        ix = x0 + jj * dw
                        dj = d + _U(jj * c)
                        if ix < 0 or ix >= wd:
                            for ch in range(c):
                                patches[dj + _U(ch)] = zx
                        else:
                            p = _U(((bi * h + iy) * wd + ix) * c)
                            for ch in range(c):
                                patches[dj + _U(ch)] = src[p + _U(ch)]
                d += _U(kw * c)
        _sums(patches, _U(0), rows, k, z, wf, o, acc)
        for j in range(rows):
            _rescale_row(acc, _U(j * o), flat, _U((r + j) * o), o, q, scale, fp32, lo, hi,
                         zp)
    return out


_DEPTHWISE = [(types.Array(types.int8, 4, "C"), _I64, types.int32[:, :, ::1], *(_I64,) * 6,
               _I64[:, ::1], types.float32[::1], types.boolean, _I64, _I64, _I64,
               types.Array(types.int8, 4, "C"))]


@numba.njit(_DEPTHWISE, **_JIT)
def depthwise_conv_2d(x, zx, w, sh, sw, dh, dw, pt, pl, q, scale, fp32, lo, hi, zp, out):
    """DEPTHWISE_CONV_2D with a depth multiplier of 1 (as :func:`.int8.depthwise_conv_2d`
    computes it, int32 sums): a whole output row's sums at a time, tap by tap over the
    row's in-bounds pixels (vector loops over their channels), then rescaled in one loop
    over the row: ``q`` and ``scale`` are the per-channel ones repeated ``ow`` times (a
    loop over one pixel's few channels would not be vectorized)."""
    n, h, wd, c = x.shape
    kh, kw, _ = w.shape
    _, oh, ow, _ = out.shape
    src, wf, flat = x.reshape(-1), w.reshape(-1), out.reshape(-1)
    acc = np.empty(ow * c, np.int32)
    z = np.int32(zx)
    for bi in range(n):
        for oy in range(oh):
            for e in range(ow * c):
                acc[e] = 0
            for i in range(kh):
                iy = oy * sh + i * dh - pt
                if iy < 0 or iy >= h:
                    continue
                row = (bi * h + iy) * wd
                for j in range(kw):
                    off = j * dw - pl  # ix = ox * sw + off
                    first = 0 if off >= 0 else (-off + sw - 1) // sw
                    last = min(ow, (wd - 1 - off) // sw + 1) if wd - 1 - off >= 0 else 0
                    tap = _U((i * kw + j) * c)
                    for ox in range(first, last):
                        p = _U((row + ox * sw + off) * c)
                        a = _U(ox * c)
                        for ch in range(c):
                            acc[a + _U(ch)] += (np.int32(src[p + _U(ch)]) - z) \
                                * wf[tap + _U(ch)]
            _rescale_row(acc, _U(0), flat, _U((bi * oh + oy) * ow * c), ow * c, q, scale,
                         fp32, lo, hi, zp)
    return out


# Products of more rows than this run on the float32 register tiles of :mod:`.gemm`.
SMALL_ROWS = 4
_INF = np.float32(np.inf)


@numba.njit(inline="always", **_JIT)
def _block_rows(k, n, m):
    """Rows of a block whose float32 patches and sums stay in cache (about 64 KiB)."""
    return max(8, min(m, (1 << 14) // max(k, n, 1)))


@numba.njit(inline="always", **_JIT)
def _rescale(acc, q, scale, fp32, lo, hi, zp, biased, out):
    """``out`` [rows, n] from the exact sums ``acc`` as :func:`.int8.requantize` computes
    it; ``biased``: XNNPACK's float32 form whose bias :func:`.gemm.pointwise` already
    added (``float32(acc + bias)`` correctly rounded, which is the requantizer's
    ``float32(float64(acc) + bias)`` for a bias float32 holds exactly), so only
    ``* scale``, the clamp and the rounding are left: float32 and int32 lanes throughout."""
    if not biased:
        requantize(acc, q, scale, fp32, lo, hi, zp, out)
        return
    rows, n = acc.shape
    a, o = acc.reshape(-1), out.reshape(-1)
    flo, fhi, z = np.float32(lo - zp), np.float32(hi - zp), np.int32(zp)
    # eight rows per loop, over the scales repeated eight times: a loop over one row's
    # few channels would not be vectorized
    along = np.empty(8 * n, np.float32)
    for e in range(8 * n):
        along[e] = scale[e % n]
    for r0 in range(0, rows, 8):
        base = _U(r0 * n)
        for e in range(min(8, rows - r0) * n):
            f = a[base + _U(e)] * along[e]
            if f < flo:
                f = flo
            elif f > fhi:
                f = fhi
            o[base + _U(e)] = np.int32(np.rint(f)) + z


@numba.njit(**_JIT)
def gemm_f32(x, zx, wp, bp, q, scale, fp32, lo, hi, zp, biased, out):
    """``out`` [m, n] = ``(x - zx) @ w`` rescaled, as the per-step path computes it for
    many rows: the centred rows in float32 (exact), :func:`.gemm.pointwise`'s register
    tiles (``wp``: the centred filter as :func:`.gemm.pack` lays it out, ``bp``: -0.0, or
    the bias when ``biased``; integer sums below 2**24, the node's bound, are exact in any
    order), the rescaling (:func:`_rescale`); a block of rows at a time."""
    m, k = x.shape
    n = out.shape[1]
    block = _block_rows(k, n, m)
    cols, acc = np.empty(block * k, np.float32), np.empty(block * n, np.float32)
    src, dst = x.reshape(-1), out.reshape(-1)
    z = np.float32(zx)
    for r0 in range(0, m, block):
        rows = min(block, m - r0)
        for e in range(rows * k):
            cols[e] = np.float32(src[r0 * k + e]) - z
        a = acc[:rows * n].reshape((rows, n))
        pointwise(cols[:rows * k].reshape((rows, k)), wp, a, bp, -_INF, _INF, 0,
                  np.float32(0))
        _rescale(a, q, scale, fp32, lo, hi, zp, biased,
                 dst[r0 * n:(r0 + rows) * n].reshape((rows, n)))
    return out


@numba.njit(**_JIT)
def conv_2d_f32(x, zx, wp, bp, kh, kw, sh, sw, dh, dw, pt, pl, q, scale, fp32, lo, hi, zp,
                biased, out):
    """CONV_2D as the per-step path computes it: a block of output pixels' centred patches
    (:func:`.int8.im2col`), then as :func:`gemm_f32`."""
    c = x.shape[3]
    _, oh, ow, n = out.shape
    k = kh * kw * c
    m = out.size // n
    block = _block_rows(k, n, m)
    cols, acc = np.empty(block * k, np.float32), np.empty(block * n, np.float32)
    dst = out.reshape(-1)
    for r0 in range(0, m, block):
        rows = min(block, m - r0)
        c2 = cols[:rows * k].reshape((rows, k))
        im2col(x, zx, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, r0, c2)
        a = acc[:rows * n].reshape((rows, n))
        pointwise(c2, wp, a, bp, -_INF, _INF, 0, np.float32(0))
        _rescale(a, q, scale, fp32, lo, hi, zp, biased,
                 dst[r0 * n:(r0 + rows) * n].reshape((rows, n)))
    return out


@numba.njit((types.int8[::1], _I64, types.float32, types.float32[::1]), **_JIT)
def dequantize(x, zp, scale, out):
    """``float32(x - zp) * scale`` (``QParams.dequantize``, one scale)."""
    for k in range(x.size):
        out[k] = np.float32(np.int64(x[k]) - zp) * scale
    return out


@numba.njit(inline="always", **_JIT)
def _i8(arena, off, n):
    return arena[off:off + n].view(np.int8)


@numba.njit(inline="always", **_JIT)
def _rescaling(consts, qo, so, c):
    """The per-channel ``q`` [5, c] int64 and ``scale`` [c] float32 at those offsets."""
    return (consts[qo:qo + 40 * c].view(np.int64).reshape((5, c)),
            consts[so:so + 4 * c].view(np.float32))


@numba.njit(inline="always", **_JIT)
def _packed(consts, off, rows, cols):
    return consts[off:off + 4 * rows * cols].view(np.float32).reshape((rows, cols))


@numba.njit(inline="always", **_JIT)
def _table(consts, off):
    """The 256-byte table at ``off``, or an empty array for ``off < 0`` (none)."""
    return consts[off:off + 256] if off >= 0 else consts[:0]


@numba.njit(inline="always", **_JIT)
def _f32(consts, off):
    return consts[off:off + 4].view(np.float32)[0]


@numba.njit((_I64[:, ::1], types.uint8[::1], types.uint8[::1]), **_JIT)
def run(code, consts, arena):
    """Run every instruction of ``code`` in order (module docstring)."""
    for r in range(code.shape[0]):
        f = code[r]
        op = f[0]
        if op == OP_CONV:
            # x, n, h, w, c, zx, w_off, kh, kw, o, sh, sw, dh, dw, pt, pl, oh, ow, q, scale,
            # fp32, lo, hi, zp, out, packed filter (offset, rows, columns), packed bias
            # (offset, size), biased
            n, h, wd, c, o, kh, kw, oh, ow = f[2], f[3], f[4], f[5], f[10], f[8], f[9], \
                f[17], f[18]
            x = _i8(arena, f[1], n * h * wd * c).reshape((n, h, wd, c))
            w = consts[f[7]:f[7] + 4 * kh * kw * c * o].view(np.int32).reshape(
                (kh * kw * c, o))
            q, scale = _rescaling(consts, f[19], f[20], o)
            out = _i8(arena, f[25], n * oh * ow * o).reshape((n, oh, ow, o))
            if n * oh * ow <= SMALL_ROWS:
                conv_2d(x, f[6], w, kh, kw, f[11], f[12], f[13], f[14], f[15], f[16], q,
                        scale, f[21] != 0, f[22], f[23], f[24], out)
            else:
                conv_2d_f32(x, f[6], _packed(consts, f[26], f[27], f[28]),
                            consts[f[29]:f[29] + 4 * f[30]].view(np.float32), kh, kw, f[11],
                            f[12], f[13], f[14], f[15], f[16], q, scale, f[21] != 0, f[22],
                            f[23], f[24], f[31] != 0, out)
        elif op == OP_DEPTHWISE:
            # x, n, h, w, c, zx, w_off, kh, kw, cm, sh, sw, dh, dw, pt, pl, oh, ow, q, scale,
            # fp32, lo, hi, zp, out, q and scale repeated ow times (multiplier 1)
            n, h, wd, c, cm, kh, kw, oh, ow = f[2], f[3], f[4], f[5], f[10], f[8], f[9], \
                f[17], f[18]
            x = _i8(arena, f[1], n * h * wd * c).reshape((n, h, wd, c))
            w = consts[f[7]:f[7] + 4 * kh * kw * cm].view(np.int32).reshape((kh, kw, cm))
            q, scale = _rescaling(consts, f[19], f[20], cm)
            out = _i8(arena, f[25], n * oh * ow * cm).reshape((n, oh, ow, cm))
            if cm == c:
                qt, st = _rescaling(consts, f[26], f[27], ow * c)
                depthwise_conv_2d(x, f[6], w, f[11], f[12], f[13], f[14], f[15], f[16], qt,
                                  st, f[21] != 0, f[22], f[23], f[24], out)
            else:
                int8.depthwise_conv_2d(x, f[6], w, f[11], f[12], f[13], f[14], f[15], f[16],
                                       cm // c, q, scale, f[21] != 0, f[22], f[23], f[24],
                                       consts[:0].view(np.int8), out)
        elif op == OP_GEMM:
            # x, m, k, zx, w_off, n, q, scale, fp32, lo, hi, zp, out, packed filter (offset,
            # rows, columns), packed bias (offset, size), biased
            m, k, n = f[2], f[3], f[6]
            x = _i8(arena, f[1], m * k).reshape((m, k))
            w = consts[f[5]:f[5] + 4 * k * n].view(np.int32).reshape((k, n))
            q, scale = _rescaling(consts, f[7], f[8], n)
            out = _i8(arena, f[13], m * n).reshape((m, n))
            if m <= SMALL_ROWS:
                gemm(x, f[4], w, q, scale, f[9] != 0, f[10], f[11], f[12], out)
            else:
                gemm_f32(x, f[4], _packed(consts, f[14], f[15], f[16]),
                         consts[f[17]:f[17] + 4 * f[18]].view(np.float32), q, scale,
                         f[9] != 0, f[10], f[11], f[12], f[19] != 0, out)
        elif op == OP_MEAN:
            # x, n, h, w, c, zx, q, scale, fp32, lo, hi, zp, out
            n, h, wd, c = f[2], f[3], f[4], f[5]
            x = _i8(arena, f[1], n * h * wd * c).reshape((n, h, wd, c))
            q, scale = _rescaling(consts, f[7], f[8], c)
            out = _i8(arena, f[13], n * c).reshape((n, c))
            mean_hw(x, f[6], q, scale, f[9] != 0, f[10], f[11], f[12], out)
        elif op == OP_LOOKUP1:
            # x, size, table, out
            size = f[2]
            lookup1(arena[f[1]:f[1] + size], consts[f[3]:f[3] + 256],
                    arena[f[4]:f[4] + size])
        elif op == OP_LOOKUP:
            # a, a size, b, b size, sa0, sa1, sa2, sb0, sb1, sb2, table, d0, d1, d2, out
            d0, d1, d2 = f[12], f[13], f[14]
            out = arena[f[15]:f[15] + d0 * d1 * d2].reshape((d0, d1, d2))
            lookup(arena[f[1]:f[1] + f[2]], arena[f[3]:f[3] + f[4]], f[5], f[6], f[7], f[8],
                   f[9], f[10], consts[f[11]:f[11] + 65536], out)
        elif op == OP_MUL:
            # a, a size, b, b size, sa0, sa1, sa2, sb0, sb1, sb2, za, zb, m, c, d, t,
            # scale (f32 offset), fp32, lo, hi, zp, d0, d1, d2, out
            d0, d1, d2 = f[22], f[23], f[24]
            out = _i8(arena, f[25], d0 * d1 * d2).reshape((d0, d1, d2))
            mul(_i8(arena, f[1], f[2]), _i8(arena, f[3], f[4]), f[5], f[6], f[7], f[8],
                f[9], f[10], f[11], f[12], f[13], f[14], f[15], f[16],
                _f32(consts, f[17]), f[18] != 0, f[19], f[20], f[21], out)
        elif op == OP_ADD:
            # a, a size, b, b size, sa0, sa1, sa2, sb0, sb1, sb2, am, bm, shift, bias, zp,
            # lo, hi, d0, d1, d2, out
            d0, d1, d2 = f[18], f[19], f[20]
            out = _i8(arena, f[21], d0 * d1 * d2).reshape((d0, d1, d2))
            add(_i8(arena, f[1], f[2]), _i8(arena, f[3], f[4]), f[5], f[6], f[7], f[8],
                f[9], f[10], f[11], f[12], f[13], f[14], f[15], f[16], f[17], out)
        elif op == OP_QUANTIZE:
            # x (float32), size, params (4 float32: scale, zp, lo, hi), out
            size, p = f[2], f[3]
            quantize(arena[f[1]:f[1] + 4 * size].view(np.float32), _f32(consts, p),
                     _f32(consts, p + 4), _f32(consts, p + 8), _f32(consts, p + 12),
                     _i8(arena, f[4], size))
        elif op == OP_SOFTMAX:
            # x, rows, n, table (256 float32: activations_int.Softmax8's), s_out (float32
            # offset), zp, lo, hi, out
            rows, n = f[2], f[3]
            int8.softmax(_i8(arena, f[1], rows * n).reshape((rows, n)),
                         consts[f[4]:f[4] + 1024].view(np.float32), _f32(consts, f[5]), f[6],
                         f[7], f[8], _i8(arena, f[9], rows * n).reshape((rows, n)))
        elif op == OP_VNNI:
            # mode (0 gemm, 1 conv_2d, 2 conv_2d_direct), x, n, h, w, c, kh, kw, sh, sw, dh,
            # dw, pt, pl, oh, ow, flip, pad, wpack (offset, tiles, K4), init, q, scale,
            # fp32, lo, hi, zp, o, out, table (-1: none): compiled_vnni.Plan's constants
            mode, n, h, wd, c, kh, kw, oh, ow = f[1], f[3], f[4], f[5], f[6], f[7], f[8], \
                f[15], f[16]
            tiles, k4, o = f[20], f[21], f[29]
            wpack = consts[f[19]:f[19] + tiles * k4 * 64].view(np.int8).reshape(
                (tiles, k4, 64))
            init = consts[f[22]:f[22] + 64 * tiles].view(np.int32)
            q = consts[f[23]:f[23] + 512 * tiles].view(np.int64).reshape((4, 16 * tiles))
            scale = consts[f[24]:f[24] + 64 * tiles].view(np.float32)
            table, fp32 = _table(consts, f[31]), f[25] != 0
            x = arena[f[2]:f[2] + n * h * wd * c]
            if mode == 0:
                vnni_gemm(x.reshape((n, c)), f[17], wpack, init, q, scale, fp32, f[26], f[27],
                          f[28], table, arena[f[30]:f[30] + n * o].reshape((n, o)))
            elif mode == 1:
                vnni_conv_2d(x.reshape((n, h, wd, c)), f[17], f[18], kh, kw, f[9], f[10],
                             f[11], f[12], f[13], f[14], oh, ow, wpack, init, q, scale, fp32,
                             f[26], f[27], f[28], table,
                             arena[f[30]:f[30] + n * oh * ow * o].reshape((n * oh * ow, o)))
            else:
                vnni_conv_2d_direct(x.reshape((n, h, wd, c)), f[17], f[18], kh, kw, f[9],
                                    f[10], f[11], f[13], f[14], oh, ow, wpack, init, q, scale,
                                    fp32, f[26], f[27], f[28], table,
                                    arena[f[30]:f[30] + n * oh * ow * o].reshape(
                                        (n * oh * ow, o)))
        elif op == OP_DEQUANTIZE:
            # x, size, zp, scale (float32 offset), out (float32)
            size = f[2]
            dequantize(_i8(arena, f[1], size), f[3], _f32(consts, f[4]),
                       arena[f[5]:f[5] + 4 * size].view(np.float32))
