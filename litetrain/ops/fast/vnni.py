"""Compiled (numba) 8-bit CONV_2D / FULLY_CONNECTED on AVX-512 VNNI: ``vpdpbusd`` (sixteen
int32 lanes, each plus the sum of four unsigned-byte × signed-byte products: 64
multiply-adds an instruction), with the rescaling to the 8-bit output fused into the
store of each register tile.

Exactness. The product runs on ``u = x + 128`` (int8 input: its bits xor 0x80) or ``u =
x`` (uint8), and the filter's centred values ``w`` (int8 range: the caller checks). Each
accumulator starts at its channel's ``init``, which the caller makes ``-(zx + off) *
Σ_k w[k, o]`` (``off`` 128 or 0), plus the bias under the float32 rescaling; so after the
products it holds ``Σ_k (x - zx) * w [+ bias]``: the NumPy kernel's exact integer sum.
``vpdpbusd`` wraps modulo 2**32 and so do the additions, so intermediate values may wrap
freely: the caller only checks that the final value fits in int32. Padding taps read the
byte ``zx + off`` (centred 0); the depth is padded to a multiple of four with zero
weights.

Rescaling (per 16 channels in registers, the operations of :func:`.int8._rescale_row`):

* integer form (``fp32`` False): ``y = acc * m + c`` in int64, ``y - 2**31`` where ``y <
  d``, ``y >> t``, clamped to ``[lo, hi]``;
* XNNPACK's float32 form (``fp32`` True): ``float32(acc) * scale`` (``acc`` already holds
  the bias: one rounding of the exact integer), clamped to ``[lo - zp, hi - zp]``,
  rounded to nearest even, plus ``zp``.

Then the output byte ``v`` (its two's-complement bits for int8) is stored, or, with a
256-entry output table (``table.size == 256``), ``table[v & 0xFF]``: the byte indexed
by the output's own bits, as :func:`.int8.lookup1` indexes a unary table (a fused
elementwise op after the convolution, e.g. int8 swish). An empty ``table`` is none.

Layout (see :func:`pack_filter` in :mod:`litetrain.ops.compiled_vnni`): the filter as
``[tiles, K4, 16, 4]`` signed bytes (``K4 = ceil(K / 4)``; per sixteen output channels,
per four depth values, each channel's four bytes — one ``vpdpbusd`` operand), per-channel
constants padded to whole tiles of sixteen: ``init`` int32, ``q`` int64 rows ``m, c, d,
t``, ``scale`` float32. Patches (taps row by row, channels innermost, as the NumPy
kernel's filter reshape) are gathered a block of rows at a time into a cache-sized
scratch as unsigned bytes; each block is multiplied by every channel tile while in
cache, eight rows by thirty-two channels of accumulators in registers.

The kernels are plain ``numba.njit`` functions of arrays and integers: compiled code can
call them. Importing this module on a CPU without AVX-512 VNNI/BW raises ImportError (the
loader then keeps the other kernels).
"""

from __future__ import annotations

import llvmlite.binding as _ll
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from .lanes import masked_store, splat

_FEATURES = _ll.get_host_cpu_features()
if not all(_FEATURES.get(f, False) for f in ("avx512f", "avx512bw", "avx512vnni")):
    raise ImportError("this CPU has no AVX-512 VNNI")

# VBMI (vpermi2b) looks the output table up in registers; without it, byte by byte
_VBMI = bool(_FEATURES.get("avx512vbmi", False))
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_U = np.uint64
_I8, _I32, _I64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
_VI32 = ir.VectorType(_I32, 16)
_VI64 = ir.VectorType(_I64, 16)
_VI8 = ir.VectorType(_I8, 16)
_VF32 = ir.VectorType(ir.FloatType(), 16)
_ROWS = 8  # rows of a register tile
_BLOCK_BYTES = 16 << 10  # patch bytes of one block of rows (stays in L1)
_MAX_ROWS = 512


class VecI32(types.Type):
    """Sixteen int32 lanes in a register (LLVM's ``<16 x i32>``): accumulators, or a
    ``vpdpbusd`` operand's 64 bytes."""

    def __init__(self):
        super().__init__(name="VecI32x16")


_VEC = VecI32()


@register_model(VecI32)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VI32)


def _at(context, builder, aryty, ary, index, ptr_type):
    """A ``ptr_type`` pointer to element ``index`` of a 1-D array."""
    data = context.make_array(aryty)(context, builder, ary).data
    return builder.bitcast(builder.gep(data, [index]), ptr_type)


@intrinsic
def _load(typingctx, arr, index):
    """Sixteen int32 lanes from the 64 bytes at ``arr[index]`` (any 1-D array)."""
    def codegen(context, builder, signature, args):
        ptr = _at(context, builder, signature.args[0], *args, _VI32.as_pointer())
        return builder.load(ptr, align=1)
    return _VEC(arr, types.intp), codegen


@intrinsic
def _dot(typingctx, acc, a, index, w):
    """``vpdpbusd``: ``acc`` plus, per lane, the four products of the unsigned bytes
    ``a[index:index + 4]`` (the same four in every lane) with the lane's four signed
    bytes of ``w``."""
    def codegen(context, builder, signature, args):
        acc, a, index, w = args
        word = builder.load(_at(context, builder, signature.args[1], a, index,
                                _I32.as_pointer()), align=1)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_VI32, [_VI32] * 3),
            "llvm.x86.avx512.vpdpbusd.512")
        return builder.call(fn, [acc, splat(builder, word), w])
    return _VEC(_VEC, a, types.intp, _VEC), codegen


def _vector_call(builder, name, vec, *args):
    fn = cgutils.get_or_insert_function(builder.module,
                                        ir.FunctionType(vec, [a.type for a in args]), name)
    return builder.call(fn, list(args))


def _rescaled(context, builder, sig, acc, q, qs, scale, ch, fp32, lo, hi, zp):
    """The sixteen int32 results (module doc) of the accumulators ``acc`` of channels
    ``ch, ...``; ``q`` flat with rows ``qs`` apart."""
    qty, sty = sig.args[1], sig.args[3]

    def row(k):
        index = builder.add(builder.mul(qs, ir.Constant(qs.type, k)), ch)
        return builder.load(_at(context, builder, qty, q, index, _VI64.as_pointer()), align=8)

    with builder.if_else(fp32) as (as_float, as_int):
        with as_float:
            f = builder.sitofp(acc, _VF32)
            f = builder.fmul(f, builder.load(_at(context, builder, sty, scale, ch,
                                                 _VF32.as_pointer()), align=4))
            flo = splat(builder, builder.sitofp(builder.sub(lo, zp), ir.FloatType()))
            fhi = splat(builder, builder.sitofp(builder.sub(hi, zp), ir.FloatType()))
            f = builder.select(builder.fcmp_ordered("<", f, flo), flo, f)
            f = builder.select(builder.fcmp_ordered(">", f, fhi), fhi, f)
            f = _vector_call(builder, "llvm.rint.v16f32", _VF32, f)
            by_float = builder.add(builder.fptosi(f, _VI32),
                                   splat(builder, builder.trunc(zp, _I32)))
            from_float = builder.block
        with as_int:
            y = builder.add(builder.mul(builder.sext(acc, _VI64), row(0)), row(1))
            low = builder.icmp_signed("<", y, row(2))
            y = builder.select(low, builder.sub(y, splat(builder, ir.Constant(_I64, 1 << 31))),
                               y)
            y = builder.ashr(y, row(3))
            lo_v, hi_v = splat(builder, lo), splat(builder, hi)
            y = builder.select(builder.icmp_signed("<", y, lo_v), lo_v, y)
            y = builder.select(builder.icmp_signed(">", y, hi_v), hi_v, y)
            by_int = builder.trunc(y, _VI32)
            from_int = builder.block
    out = builder.phi(_VI32)
    out.add_incoming(by_float, from_float)
    out.add_incoming(by_int, from_int)
    return out


def _looked_up(context, builder, tty, table, v):
    """``table[v]`` per lane (``v`` <16 x i8>, ``table`` 256 bytes) with AVX-512 VBMI:
    two 128-entry ``vpermi2b`` lookups, picked by each byte's top bit."""
    v64 = ir.VectorType(_I8, 64)
    base = _at(context, builder, tty, table, ir.Constant(_I64, 0), v64.as_pointer())
    quarters = [builder.load(builder.gep(base, [ir.Constant(_I32, k)]), align=1)
                for k in range(4)]
    wide = builder.shuffle_vector(v, ir.Constant(_VI8, None),
                                  ir.Constant(ir.VectorType(_I32, 64), list(range(16)) * 4))
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(v64, [v64] * 3),
                                        "llvm.x86.avx512.vpermi2var.qi.512")
    first = ir.Constant(ir.VectorType(_I32, 16), list(range(16)))
    low = builder.shuffle_vector(builder.call(fn, [quarters[0], wide, quarters[1]]),
                                 ir.Constant(v64, None), first)
    high = builder.shuffle_vector(builder.call(fn, [quarters[2], wide, quarters[3]]),
                                  ir.Constant(v64, None), first)
    return builder.select(builder.icmp_signed("<", v, ir.Constant(_VI8, None)), high, low)


@intrinsic
def _finish(typingctx, acc, q, qs, scale, ch, fp32, lo, hi, zp, table, out, index, width):
    """``out[index:index + width]`` (bytes; ``width`` ≤ 16, 0 stores nothing) = the
    rescaled accumulators ``acc`` of channels ``ch, ...`` (module doc), looked up in
    ``table`` when it has 256 entries and the CPU has VBMI (else :func:`_store` does)."""
    def codegen(context, builder, signature, args):
        acc, q, qs, scale, ch, fp32, lo, hi, zp, table, out, index, width = args
        v = builder.trunc(_rescaled(context, builder, signature, acc, q, qs, scale, ch,
                                    fp32, lo, hi, zp), _VI8)
        if _VBMI:
            tty = signature.args[9]
            n = context.make_array(tty)(context, builder, table).nitems
            before = builder.block
            with builder.if_then(builder.icmp_signed("==", n, ir.Constant(n.type, 256))):
                looked = _looked_up(context, builder, tty, table, v)
                from_table = builder.block
            plain = v
            v = builder.phi(_VI8)
            v.add_incoming(looked, from_table)
            v.add_incoming(plain, before)
        ptr = _at(context, builder, signature.args[10], out, index, _VI8.as_pointer())
        masked_store(builder, v, ptr, width)
        return context.get_dummy_value()
    i64 = types.int64
    return (types.void(_VEC, q, i64, scale, i64, types.boolean, i64, i64, i64, table, out,
                       i64, i64), codegen)


@numba.njit(inline="always", **_JIT)
def _store(acc, q, qs, scale, ch, fp32, lo, hi, zp, table, of, index, width):
    _finish(acc, q, qs, scale, ch, fp32, lo, hi, zp, table, of, index, width)
    if not _VBMI and table.size == 256:
        for j in range(width):
            of[_U(index + j)] = table[of[_U(index + j)]]


@numba.njit(inline="always", **_JIT)
def _rows8(bases, r0, r):
    """Offsets of a tile's eight rows; past the ``r`` real rows the tile repeats the
    last one (computed, never stored)."""
    return (bases[r0], bases[r0 + min(1, r - 1)], bases[r0 + min(2, r - 1)],
            bases[r0 + min(3, r - 1)], bases[r0 + min(4, r - 1)], bases[r0 + min(5, r - 1)],
            bases[r0 + min(6, r - 1)], bases[r0 + min(7, r - 1)])


@numba.njit(inline="always", **_JIT)
def _pair(af, bases, rows, nseg, sstride, slen, wf, w0, w1, init, q, qs, scale, ch, fp32,
          lo, hi, zp, table, of, o0, o, w_a, w_b):
    """Rows ``0 .. rows`` by the 32 channels ``ch, ...`` (filter tiles at ``wf[w0:]`` and
    ``wf[w1:]``), eight rows a register tile. Row ``j``'s patch is ``nseg`` runs of
    ``slen`` bytes of ``af``, ``sstride`` apart, from ``bases[j]``; outputs at ``of[o0:]``
    (row stride ``o``; ``w_a``, ``w_b`` valid channels of each half). One function body
    (the row loop inside), so nothing is called, nor any reference counted, per tile."""
    for r0 in range(0, rows, _ROWS):
        r = min(_ROWS, rows - r0)
        d = o0 + r0 * o
        _pair_tile(af, bases, r0, r, nseg, sstride, slen, wf, w0, w1, init, q, qs, scale, ch,
                   fp32, lo, hi, zp, table, of, d, o, w_a, w_b)


@numba.njit(inline="always", **_JIT)
def _pair_tile(af, bases, r0, r, nseg, sstride, slen, wf, w0, w1, init, q, qs, scale, ch,
               fp32, lo, hi, zp, table, of, d, o, w_a, w_b):
    s0, s1, s2, s3, s4, s5, s6, s7 = _rows8(bases, r0, r)
    x0 = x1 = x2 = x3 = x4 = x5 = x6 = x7 = _load(init, ch)
    y0 = y1 = y2 = y3 = y4 = y5 = y6 = y7 = _load(init, ch + 16)
    for g in range(nseg):
        a = g * sstride
        k = g * slen
        for i in range(0, slen, 4):
            wa = _load(wf, w0 + 16 * (k + i))
            wb = _load(wf, w1 + 16 * (k + i))
            p = a + i
            x0 = _dot(x0, af, p + s0, wa)
            y0 = _dot(y0, af, p + s0, wb)
            x1 = _dot(x1, af, p + s1, wa)
            y1 = _dot(y1, af, p + s1, wb)
            x2 = _dot(x2, af, p + s2, wa)
            y2 = _dot(y2, af, p + s2, wb)
            x3 = _dot(x3, af, p + s3, wa)
            y3 = _dot(y3, af, p + s3, wb)
            x4 = _dot(x4, af, p + s4, wa)
            y4 = _dot(y4, af, p + s4, wb)
            x5 = _dot(x5, af, p + s5, wa)
            y5 = _dot(y5, af, p + s5, wb)
            x6 = _dot(x6, af, p + s6, wa)
            y6 = _dot(y6, af, p + s6, wb)
            x7 = _dot(x7, af, p + s7, wa)
            y7 = _dot(y7, af, p + s7, wb)
    c2 = ch + 16
    _store(x0, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d, w_a)
    _store(y0, q, qs, scale, c2, fp32, lo, hi, zp, table, of, d + 16, w_b)
    _store(x1, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d + o, w_a if r > 1 else 0)
    _store(y1, q, qs, scale, c2, fp32, lo, hi, zp, table, of, d + o + 16,
           w_b if r > 1 else 0)
    _store(x2, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d + 2 * o, w_a if r > 2 else 0)
    _store(y2, q, qs, scale, c2, fp32, lo, hi, zp, table, of, d + 2 * o + 16,
           w_b if r > 2 else 0)
    _store(x3, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d + 3 * o, w_a if r > 3 else 0)
    _store(y3, q, qs, scale, c2, fp32, lo, hi, zp, table, of, d + 3 * o + 16,
           w_b if r > 3 else 0)
    _store(x4, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d + 4 * o, w_a if r > 4 else 0)
    _store(y4, q, qs, scale, c2, fp32, lo, hi, zp, table, of, d + 4 * o + 16,
           w_b if r > 4 else 0)
    _store(x5, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d + 5 * o, w_a if r > 5 else 0)
    _store(y5, q, qs, scale, c2, fp32, lo, hi, zp, table, of, d + 5 * o + 16,
           w_b if r > 5 else 0)
    _store(x6, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d + 6 * o, w_a if r > 6 else 0)
    _store(y6, q, qs, scale, c2, fp32, lo, hi, zp, table, of, d + 6 * o + 16,
           w_b if r > 6 else 0)
    _store(x7, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d + 7 * o, w_a if r > 7 else 0)
    _store(y7, q, qs, scale, c2, fp32, lo, hi, zp, table, of, d + 7 * o + 16,
           w_b if r > 7 else 0)


@numba.njit(inline="always", **_JIT)
def _single(af, bases, rows, nseg, sstride, slen, wf, w0, init, q, qs, scale, ch, fp32, lo,
            hi, zp, table, of, o0, o, w_a):
    """:func:`_pair` for the last sixteen channels."""
    for r0 in range(0, rows, _ROWS):
        r = min(_ROWS, rows - r0)
        d = o0 + r0 * o
        _single_tile(af, bases, r0, r, nseg, sstride, slen, wf, w0, init, q, qs, scale, ch,
                     fp32, lo, hi, zp, table, of, d, o, w_a)


@numba.njit(inline="always", **_JIT)
def _single_tile(af, bases, r0, r, nseg, sstride, slen, wf, w0, init, q, qs, scale, ch, fp32,
                 lo, hi, zp, table, of, d, o, w_a):
    s0, s1, s2, s3, s4, s5, s6, s7 = _rows8(bases, r0, r)
    x0 = x1 = x2 = x3 = x4 = x5 = x6 = x7 = _load(init, ch)
    for g in range(nseg):
        a = g * sstride
        k = g * slen
        for i in range(0, slen, 4):
            wa = _load(wf, w0 + 16 * (k + i))
            p = a + i
            x0 = _dot(x0, af, p + s0, wa)
            x1 = _dot(x1, af, p + s1, wa)
            x2 = _dot(x2, af, p + s2, wa)
            x3 = _dot(x3, af, p + s3, wa)
            x4 = _dot(x4, af, p + s4, wa)
            x5 = _dot(x5, af, p + s5, wa)
            x6 = _dot(x6, af, p + s6, wa)
            x7 = _dot(x7, af, p + s7, wa)
    _store(x0, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d, w_a)
    _store(x1, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d + o, w_a if r > 1 else 0)
    _store(x2, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d + 2 * o, w_a if r > 2 else 0)
    _store(x3, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d + 3 * o, w_a if r > 3 else 0)
    _store(x4, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d + 4 * o, w_a if r > 4 else 0)
    _store(x5, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d + 5 * o, w_a if r > 5 else 0)
    _store(x6, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d + 6 * o, w_a if r > 6 else 0)
    _store(x7, q, qs, scale, ch, fp32, lo, hi, zp, table, of, d + 7 * o, w_a if r > 7 else 0)


@numba.njit(inline="always", **_JIT)
def _few(af, bases, rows, nseg, sstride, slen, wf, step, tiles, init, q, qs, scale, fp32, lo,
         hi, zp, table, of, o0, o):
    """:func:`_pair`'s product for a few rows (batch 1 FULLY_CONNECTED, a 1×1 map): each
    row alone by four channel tiles at a time (tiles past the last repeat it, computed,
    never stored), no work on repeated rows."""
    for j in range(rows):
        d = o0 + j * o
        base = bases[j]
        for t in range(0, tiles, 4):
            t1, t2, t3 = min(t + 1, tiles - 1), min(t + 2, tiles - 1), min(t + 3, tiles - 1)
            x0, x1 = _load(init, 16 * t), _load(init, 16 * t1)
            x2, x3 = _load(init, 16 * t2), _load(init, 16 * t3)
            for g in range(nseg):
                a = base + g * sstride
                k = g * slen
                for i in range(0, slen, 4):
                    p = a + i
                    e = 16 * (k + i)
                    x0 = _dot(x0, af, p, _load(wf, t * step + e))
                    x1 = _dot(x1, af, p, _load(wf, t1 * step + e))
                    x2 = _dot(x2, af, p, _load(wf, t2 * step + e))
                    x3 = _dot(x3, af, p, _load(wf, t3 * step + e))
            _store(x0, q, qs, scale, 16 * t, fp32, lo, hi, zp, table, of, d + 16 * t,
                   min(16, o - 16 * t))
            _store(x1, q, qs, scale, 16 * t1, fp32, lo, hi, zp, table, of, d + 16 * t1,
                   min(16, o - 16 * t1) if t + 1 < tiles else 0)
            _store(x2, q, qs, scale, 16 * t2, fp32, lo, hi, zp, table, of, d + 16 * t2,
                   min(16, o - 16 * t2) if t + 2 < tiles else 0)
            _store(x3, q, qs, scale, 16 * t3, fp32, lo, hi, zp, table, of, d + 16 * t3,
                   min(16, o - 16 * t3) if t + 3 < tiles else 0)


_FEW_ROWS = 4  # below this many rows, :func:`_few`
_BYTES = types.uint8[::1]
_I64S = types.int64
_CONSTS = (types.int8[:, :, ::1], types.int32[::1], types.int64[:, ::1], types.float32[::1],
           types.boolean, _I64S, _I64S, _I64S, _BYTES)


@numba.njit([(_BYTES, types.int64[::1], *(_I64S,) * 4, *_CONSTS, _BYTES, _I64S, _I64S)],
            **_JIT)
def _block(af, bases, rows, nseg, sstride, slen, wpack, init, q, scale, fp32, lo, hi, zp,
           table, of, o0, o):
    """``of[o0 + j * o + c]`` = the rescaled product of patch row ``j < rows`` (see
    :func:`_pair`) with the packed filter, channel tiles outer (the block's patches stay
    in cache). Called, not inlined: one compiled copy serves every kernel."""
    tiles = wpack.shape[0]
    wf = wpack.reshape(wpack.size)
    qf = q.reshape(q.size)
    qs = q.shape[1]
    step = 16 * nseg * slen
    if rows < _FEW_ROWS:
        _few(af, bases, rows, nseg, sstride, slen, wf, step, tiles, init, qf, qs, scale, fp32,
             lo, hi, zp, table, of, o0, o)
        return
    for t in range(0, tiles, 2):
        w_a = min(16, o - 16 * t)
        d = o0 + 16 * t
        if t + 1 < tiles:
            _pair(af, bases, rows, nseg, sstride, slen, wf, t * step, t * step + step, init,
                  qf, qs, scale, 16 * t, fp32, lo, hi, zp, table, of, d, o, w_a,
                  min(16, o - 16 * t - 16))
        else:
            _single(af, bases, rows, nseg, sstride, slen, wf, t * step, init, qf, qs, scale,
                    16 * t, fp32, lo, hi, zp, table, of, d, o, w_a)


@numba.njit(inline="always", **_JIT)
def _gather(src, h, wd, c, flip, pad, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, r0, rows,
            kb, dst):
    """Patch rows ``r0 .. r0 + rows`` (row ``(b * oh + oy) * ow + ox``: the input under
    each tap ``(i, j)`` in that order, channels innermost) into ``dst`` (row stride
    ``kb``) as unsigned bytes ``x ^ flip``, ``pad`` on padding, zeros past the depth."""
    run = kw * c
    k = kh * run
    o = _U(0)
    bi, oy, ox = r0 // (oh * ow), (r0 // ow) % oh, r0 % ow
    f = np.uint8(flip)
    p8 = np.uint8(pad)
    for _ in range(rows):
        x0 = ox * sw - pl
        whole = dw == 1 and x0 >= 0 and x0 + kw <= wd
        for i in range(kh):
            iy = oy * sh + i * dh - pt
            if iy < 0 or iy >= h:
                for e in range(run):
                    dst[o + _U(e)] = p8
            elif whole:
                s = _U(((bi * h + iy) * wd + x0) * c)
                for e in range(run):
                    dst[o + _U(e)] = src[s + _U(e)] ^ f
            else:
                for j in range(kw):
                    ix = x0 + j * dw
                    oj = o + _U(j * c)
                    if ix < 0 or ix >= wd:
                        for e in range(c):
                            dst[oj + _U(e)] = p8
                    else:
                        s = _U(((bi * h + iy) * wd + ix) * c)
                        for e in range(c):
                            dst[oj + _U(e)] = src[s + _U(e)] ^ f
            o += _U(run)
        for _ in range(k, kb):
            dst[o] = 0
            o += _U(1)
        ox += 1
        if ox == ow:
            ox, oy = 0, oy + 1
            if oy == oh:
                oy, bi = 0, bi + 1


@numba.njit(inline="always", **_JIT)
def _conv(src, n, h, wd, c, flip, pad, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, wpack, init,
          q, scale, fp32, lo, hi, zp, table, of):
    """CONV_2D through patch rows gathered a block at a time (any geometry)."""
    o = of.size // max(1, n * oh * ow)
    kb = wpack.shape[1] * 4
    rows_all = n * oh * ow
    block = max(_ROWS, min(_MAX_ROWS, _BLOCK_BYTES // kb))
    block -= block % _ROWS
    scratch = np.empty(min(block, rows_all) * kb, np.uint8)
    bases = np.arange(min(block, rows_all)) * kb
    for r0 in range(0, rows_all, block):
        rows = min(block, rows_all - r0)
        _gather(src, h, wd, c, flip, pad, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, r0, rows,
                kb, scratch)
        _block(scratch, bases, rows, 1, 0, kb, wpack, init, q, scale, fp32, lo, hi, zp,
               table, of, r0 * o, o)


# Inputs read-only or not: one compiled form each (an exact match dispatches faster
# than a conversion).
_X4 = [types.Array(types.uint8, 4, "C", readonly=ro) for ro in (False, True)]
_X2 = [types.Array(types.uint8, 2, "C", readonly=ro) for ro in (False, True)]
_OUT = types.uint8[:, ::1]


@numba.njit([(x, _I64S, _I64S, *(_I64S,) * 10, *_CONSTS, _OUT) for x in _X4], **_JIT)
def conv_2d(x, flip, pad, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow, wpack, init, q, scale,
            fp32, lo, hi, zp, table, out):
    """``out`` [n * oh * ow, o] (bytes) = CONV_2D of ``x`` [n, h, w, c] (the 8-bit input's
    bytes; ``flip`` 0x80 for int8, 0 for uint8; ``pad`` the byte ``zx + off`` of a
    padding tap) with the filter packed as ``[tiles, K4, 64]`` from ``[k, o]`` (taps
    ``(i, j)`` then channels), rescaled (module doc); gathers patch rows (any dilation)."""
    n, h, wd, c = x.shape
    _conv(x.reshape(x.size), n, h, wd, c, flip, pad, kh, kw, sh, sw, dh, dw, pt, pl, oh, ow,
          wpack, init, q, scale, fp32, lo, hi, zp, table, out.reshape(out.size))
    return out


@numba.njit([(x, _I64S, *_CONSTS, _OUT) for x in _X2], **_JIT)
def gemm(a, flip, wpack, init, q, scale, fp32, lo, hi, zp, table, out):
    """``out`` [m, o] (bytes) = ``a`` [m, k] (the 8-bit input's bytes, ``flip`` as in
    :func:`conv_2d`) times the packed filter, rescaled: FULLY_CONNECTED, or a 1×1
    stride-1 CONV_2D on its input rows."""
    m, k = a.shape
    _conv(a.reshape(a.size), m, 1, 1, k, flip, 0, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, wpack, init,
          q, scale, fp32, lo, hi, zp, table, out.reshape(out.size))
    return out


_DIRECT_ROWS = 256  # output rows per block of the direct kernel


@numba.njit([(x, _I64S, _I64S, *(_I64S,) * 9, *_CONSTS, _OUT) for x in _X4], **_JIT)
def conv_2d_direct(x, flip, pad, kh, kw, sh, sw, dh, pt, pl, oh, ow, wpack, init, q, scale,
                   fp32, lo, hi, zp, table, out):
    """:func:`conv_2d` without patch rows (no dilation along the width): the input once
    into a padded copy (``x ^ flip``, ``pad`` around it), then each output's patch read
    in place as ``kh`` runs of ``kw * c`` bytes, one per filter row; the filter packed
    from ``[kh, ceil(kw * c / 4) * 4, o]`` (each run padded to whole words with zero
    weights: the bytes read past a run are multiplied by zero)."""
    n, h, wd, c = x.shape
    o = out.shape[1]
    hp = max(pt + h, (oh - 1) * sh + (kh - 1) * dh + 1)
    wp = max(pl + wd, (ow - 1) * sw + kw)
    row = wp * c
    slen = wpack.shape[1] * 4 // kh
    xp = np.empty(n * hp * row + slen, np.uint8)
    xp[:] = np.uint8(pad)
    f = np.uint8(flip)
    src = x.reshape(x.size)
    run = wd * c
    for bi in range(n):
        for y in range(h):
            s = _U((bi * h + y) * run)
            d = _U(((bi * hp + pt + y) * wp + pl) * c)
            for e in range(run):
                xp[d + _U(e)] = src[s + _U(e)] ^ f
    rows_all = n * oh * ow
    bases = np.empty(min(_DIRECT_ROWS, rows_all), np.int64)
    of = out.reshape(out.size)
    for r0 in range(0, rows_all, _DIRECT_ROWS):
        rows = min(_DIRECT_ROWS, rows_all - r0)
        bi, oy, ox = r0 // (oh * ow), (r0 // ow) % oh, r0 % ow
        for j in range(rows):
            bases[j] = ((bi * hp + oy * sh) * wp + ox * sw) * c
            ox += 1
            if ox == ow:
                ox, oy = 0, oy + 1
                if oy == oh:
                    oy, bi = 0, bi + 1
        _block(xp, bases, rows, kh, dh * row, slen, wpack, init, q, scale, fp32, lo, hi, zp,
               table, of, r0 * o, o)
    return out
