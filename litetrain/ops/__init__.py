"""The op table. Each family module lists its ops in ``OPS``; they are registered here,
explicitly, once."""

from . import (
    activations,
    arithmetic,
    conv,
    flex,
    logic,
    math,
    matmul,
    pool,
    quantize_ops,
    random,
    reduce,
    resize,
    shape,
    slicing,
    variables,
)
from .registry import NodeInfo, OpDef, Shaped, TensorInfo, Variant, all_ops, has, lookup, register

register([*arithmetic.OPS, *math.OPS, *activations.OPS, *logic.OPS, *matmul.OPS, *conv.OPS,
          *pool.OPS, *reduce.OPS, *shape.OPS, *slicing.OPS, *resize.OPS, *quantize_ops.OPS,
          *random.OPS, *variables.OPS, *flex.OPS])

__all__ = ["NodeInfo", "OpDef", "Shaped", "TensorInfo", "Variant", "all_ops", "has", "lookup",
           "register"]
