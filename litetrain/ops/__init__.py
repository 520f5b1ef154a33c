"""The op table. Each family module lists its ops in ``OPS``; they are registered here,
explicitly, once."""

from . import elementwise, flex, nn, quantized, random, reduce, shape, variables
from .registry import OpDef, all_ops, has, lookup, register

register([*elementwise.OPS, *nn.OPS, *random.OPS, *reduce.OPS, *shape.OPS, *variables.OPS,
          *flex.OPS, *quantized.OPS])

__all__ = ["OpDef", "all_ops", "has", "lookup", "register"]
