"""LLVM IR helpers the compiled kernels' sixteen-lane intrinsics share (``xnnpack``,
``gemm``): a scalar splatted to every lane, a pointer to sixteen floats of an array, the
mask of the first ``width`` lanes, and masked loads and stores (AVX-512
``llvm.masked.load``/``store``: a tile's last channels in one instruction, nothing past
them read or written). Importing this compiles nothing.
"""

from __future__ import annotations

from llvmlite import ir
from numba.core import cgutils

V16 = ir.VectorType(ir.FloatType(), 16)


def splat(builder, x, n: int = 16):
    """``<n x T>`` with the scalar value ``x`` (of type ``T``) in every lane."""
    vec = ir.VectorType(x.type, n)
    one = builder.insert_element(ir.Constant(vec, ir.Undefined), x,
                                 ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), n), [0] * n))


def mask(builder, width):
    """``<16 x i1>``: lane ``i`` set when ``i < width`` (an integer value)."""
    lanes = ir.Constant(ir.VectorType(width.type, 16), list(range(16)))
    return builder.icmp_signed("<", lanes, splat(builder, width))


def lanes_at(context, builder, aryty, ary, index):
    """A ``<16 x float>*`` to element ``index`` of a 1-D float32 array."""
    data = context.make_array(aryty)(context, builder, ary).data
    return builder.bitcast(builder.gep(data, [index]), V16.as_pointer())


def masked_load(builder, ptr, width):
    """The first ``width`` lanes at ``ptr``, zeros in the others (nothing past them is
    read)."""
    i32 = ir.IntType(32)
    m = mask(builder, width)
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(V16, [ptr.type, i32, m.type, V16]),
        "llvm.masked.load.v16f32.p0")
    return builder.call(fn, [ptr, ir.Constant(i32, 4), m, ir.Constant(V16, None)])


def masked_store(builder, value, ptr, width) -> None:
    """``value``'s first ``width`` lanes to ``ptr``: a plain store when all sixteen are
    (the common case; a branch the CPU predicts), else a masked one. ``value`` is sixteen
    floats or sixteen 8-bit integers (the 8-bit kernels' rescaled bytes)."""
    i32 = ir.IntType(32)
    element = value.type.element
    size, name = (4, "f32") if isinstance(element, ir.FloatType) else (1, "i8")
    full = builder.icmp_signed(">=", width, ir.Constant(width.type, 16))
    with builder.if_else(full, likely=True) as (whole, part):
        with whole:
            builder.store(value, ptr, align=size)
        with part:
            m = mask(builder, width)
            fn = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(ir.VoidType(), [value.type, ptr.type, i32, m.type]),
                f"llvm.masked.store.v16{name}.p0")
            builder.call(fn, [value, ptr, ir.Constant(i32, size), m])
