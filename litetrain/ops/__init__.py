"""The op table. Each family module lists its ops in ``OPS``; they are registered here,
explicitly, once."""

from . import (
    activations,
    arithmetic,
    control,
    conv,
    flex,
    flex_batchnorm,
    flex_lists,
    flex_math,
    logic,
    math,
    matmul,
    pool,
    quantize_ops,
    random,
    reduce,
    resize,
    rnn,
    segment,
    shape,
    slicing,
    variables,
)
from .registry import NodeInfo, OpDef, Shaped, TensorInfo, Variant, all_ops, has, lookup, register
from .resolver import OpResolverType

FAMILIES = (arithmetic, math, activations, logic, matmul, conv, pool, reduce, shape, slicing,
            resize, segment, rnn, quantize_ops, random, variables, control, flex, flex_math,
            flex_lists, flex_batchnorm)
register(op for family in FAMILIES for op in family.OPS)

__all__ = ["NodeInfo", "OpDef", "OpResolverType", "Shaped", "TensorInfo", "Variant", "all_ops",
           "has", "lookup", "register"]
