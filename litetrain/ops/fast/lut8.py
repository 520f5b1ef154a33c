"""A 256-entry byte table looked up 64 bytes at a time (AVX-512 VBMI), for the 8-bit
kernels' unary tables (:mod:`.int8`).

``table[x]`` for 64 bytes ``x`` is two ``vpermi2b`` (each picks from 128 table bytes
held in two registers by an index's low seven bits) and one select by the index's top
bit: the same bytes as 64 scalar loads, a few instructions instead of 64. :data:`VBMI`
says whether this machine (and numba's code generation for it) has the instruction;
without it the callers keep their scalar loops. :func:`lookup1` (a unary table over an
array) and :func:`look_up` (in place, inlined into other kernels) use it.
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


def _has_vbmi() -> bool:
    if numba.config.CPU_NAME not in (None, "host") or numba.config.CPU_FEATURES:
        return False  # code generated for another (portable) target
    try:
        return bool(llvm.get_host_cpu_features().get("avx512vbmi", False))
    except Exception:  # no feature list on this platform
        return False


VBMI = _has_vbmi()
_V64 = ir.VectorType(ir.IntType(8), 64)
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}
_U8 = types.uint8
_LOOKUP1 = [(types.Array(_U8, 1, "C", readonly=ro), _U8[::1], _U8[::1]) for ro in (False, True)]


def _bytes_at(context, builder, aryty, ary, index):
    """A ``<64 x i8>*`` to element ``index`` of a 1-D byte array."""
    data = context.make_array(aryty)(context, builder, ary).data
    return builder.bitcast(builder.gep(data, [index]), _V64.as_pointer())


@intrinsic
def lookup64(typingctx, x, xo, table, out, oo):
    """``out[oo:oo + 64] = table[x[xo:xo + 64]]`` (1-D uint8 arrays, ``table`` of 256
    bytes; the caller keeps every offset in bounds). Only where :data:`VBMI`."""
    sig = types.void(x, xo, table, out, oo)

    def codegen(context, builder, signature, args):
        xa, xo_, ta, outa, oo_ = args
        xt, _, tt, ot, _ = signature.args
        i64 = ir.IntType(64)
        index = builder.load(_bytes_at(context, builder, xt, xa, xo_), align=1)
        parts = [builder.load(_bytes_at(context, builder, tt, ta, ir.Constant(i64, 64 * k)),
                              align=1) for k in range(4)]
        permute = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_V64, [_V64, _V64, _V64]),
            "llvm.x86.avx512.vpermi2var.qi.512")
        low = builder.call(permute, [parts[0], index, parts[1]])
        high = builder.call(permute, [parts[2], index, parts[3]])
        top = builder.icmp_signed("<", index, ir.Constant(_V64, None))
        builder.store(builder.select(top, high, low),
                      _bytes_at(context, builder, ot, outa, oo_), align=1)
        return context.get_dummy_value()

    return sig, codegen


if VBMI:
    @numba.njit(inline="always", **_JIT)
    def look_up(buf, start, n, table):
        """``buf[start:start + n] = table[its bytes]`` in place, 64 at a time."""
        whole = n - n % 64
        for k in range(0, whole, 64):
            lookup64(buf, start + k, table, buf, start + k)
        for k in range(start + whole, start + n):
            buf[k] = table[np.uint8(buf[k])]
else:
    @numba.njit(inline="always", **_JIT)
    def look_up(buf, start, n, table):
        """``buf[start:start + n] = table[its bytes]`` in place."""
        for k in range(start, start + n):
            buf[k] = table[np.uint8(buf[k])]


if VBMI:
    @numba.njit(_LOOKUP1, **_JIT)
    def lookup1(x, table, out):
        """A unary 8-bit table over the operand's bytes: ``out[k] = table[x[k]]``, 64 at
        a time (:func:`.lut8.lookup64`)."""
        n = x.size
        whole = n - n % 64
        for k in range(0, whole, 64):
            lookup64(x, k, table, out, k)
        for k in range(whole, n):
            out[k] = table[x[k]]
        return out
else:
    @numba.njit(_LOOKUP1, **_JIT)
    def lookup1(x, table, out):
        """A unary 8-bit table over the operand's bytes: ``out[k] = table[x[k]]``."""
        for k in range(x.size):
            out[k] = table[x[k]]
        return out
