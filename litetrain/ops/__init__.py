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
    shape,
    slicing,
    variables,
)
from .registry import NodeInfo, OpDef, Shaped, TensorInfo, Variant, all_ops, has, lookup, register

register([*arithmetic.OPS, *math.OPS, *activations.OPS, *logic.OPS, *matmul.OPS, *conv.OPS,
          *pool.OPS, *reduce.OPS, *shape.OPS, *slicing.OPS, *resize.OPS, *quantize_ops.OPS,
          *random.OPS, *variables.OPS, *control.OPS, *flex.OPS, *flex_math.OPS,
          *flex_lists.OPS, *flex_batchnorm.OPS])

__all__ = ["NodeInfo", "OpDef", "Shaped", "TensorInfo", "Variant", "all_ops", "has", "lookup",
           "register"]
