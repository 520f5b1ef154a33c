"""LLVM IR helpers the compiled kernels' sixteen-lane intrinsics share (``xnnpack``,
``gemm``, ``vnni``, ``depthwise``, ``train``): a scalar splatted to every lane, a pointer
to sixteen floats of an array, the mask of the first ``width`` lanes, and masked loads
and stores (AVX-512 ``llvm.masked.load``/``store``: a tile's last channels in one
instruction, nothing past them read or written); and the numba type of sixteen float32
lanes in a register (:data:`FLOATS16`) with its plain intrinsics (:func:`load16`,
:func:`store16`, :func:`add16`, :func:`mul16`: one rounding each, nothing fused).
Importing this compiles nothing.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

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


class Floats16(types.Type):
    """Sixteen float32 lanes in a register (LLVM's ``<16 x float>``)."""

    def __init__(self):
        super().__init__(name="Floats16")


FLOATS16 = Floats16()


@register_model(Floats16)
class _Floats16Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, V16)


@intrinsic
def load16(typingctx, arr, index, n):
    """``arr[index:index + n]`` in the first ``n`` ≤ 16 lanes, zeros in the others; no
    value is read for ``n = 0`` (then ``index`` may lie anywhere)."""
    def codegen(context, builder, signature, args):
        return masked_load(builder, lanes_at(context, builder, signature.args[0], *args[:2]),
                           args[2])
    return FLOATS16(arr, types.intp, types.intp), codegen


@intrinsic
def store16(typingctx, arr, index, v, n):
    """``arr[index:index + n] = v[:n]``."""
    def codegen(context, builder, signature, args):
        masked_store(builder, args[2], lanes_at(context, builder, signature.args[0],
                                                *args[:2]), args[3])
        return context.get_dummy_value()
    return types.void(arr, types.intp, FLOATS16, types.intp), codegen


@intrinsic
def add16(typingctx, a, b):
    """``a + b`` per lane (one rounding; nothing fused)."""
    def codegen(context, builder, signature, args):
        return builder.fadd(*args)
    return FLOATS16(FLOATS16, FLOATS16), codegen


@intrinsic
def mul16(typingctx, a, b):
    """``a * b`` per lane (one rounding; nothing fused)."""
    def codegen(context, builder, signature, args):
        return builder.fmul(*args)
    return FLOATS16(FLOATS16, FLOATS16), codegen


@intrinsic
def sub16(typingctx, a, b):
    """``a - b`` per lane (one rounding)."""
    def codegen(context, builder, signature, args):
        return builder.fsub(*args)
    return FLOATS16(FLOATS16, FLOATS16), codegen


@intrinsic
def splat16(typingctx, x):
    """The float32 ``x`` in every lane."""
    def codegen(context, builder, signature, args):
        return splat(builder, args[0])
    return FLOATS16(types.float32), codegen
