"""Masked sixteen-lane stores (AVX-512 ``llvm.masked.store``) for the compiled kernels:
the first ``width`` lanes only, so a tile's last channels are stored in one instruction
and nothing past them is written. Importing this compiles nothing.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils

V16 = ir.VectorType(ir.FloatType(), 16)


def mask(builder, width):
    """``<16 x i1>``: lane ``i`` set when ``i < width`` (an integer value)."""
    i32 = ir.IntType(32)
    lanes = ir.Constant(ir.VectorType(i32, 16), list(range(16)))
    n = builder.trunc(width, i32)
    splat = builder.shuffle_vector(
        builder.insert_element(ir.Constant(ir.VectorType(i32, 16), ir.Undefined), n,
                               ir.Constant(i32, 0)),
        ir.Constant(ir.VectorType(i32, 16), ir.Undefined),
        ir.Constant(ir.VectorType(i32, 16), [0] * 16))
    return builder.icmp_signed("<", lanes, splat)


def lanes_at(context, builder, aryty, ary, index):
    """A ``<16 x float>*`` to element ``index`` of a 1-D float32 array."""
    data = context.make_array(aryty)(context, builder, ary).data
    return builder.bitcast(builder.gep(data, [index]), V16.as_pointer())


def masked_store(builder, value, ptr, width) -> None:
    """``value``'s first ``width`` lanes to ``ptr``: a plain store when all sixteen are
    (the common case; a branch the CPU predicts), else a masked one."""
    i32 = ir.IntType(32)
    full = builder.icmp_signed(">=", width, ir.Constant(width.type, 16))
    with builder.if_else(full, likely=True) as (whole, part):
        with whole:
            builder.store(value, ptr, align=4)
        with part:
            m = mask(builder, width)
            fn = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(ir.VoidType(), [V16, ptr.type, i32, m.type]),
                "llvm.masked.store.v16f32.p0")
            builder.call(fn, [value, ptr, ir.Constant(i32, 4), m])
