"""Random ops: RANDOM_UNIFORM and RANDOM_STANDARD_NORMAL (float32, shape from an input).

Like TFLite, each node draws a fresh sample on every invocation. ``seed``/``seed2`` of
``RandomOptions`` both zero means "seed from the operating system"; otherwise the stream
is reproducible: a new interpreter replays the same sequence. The numbers are drawn with
NumPy's PCG64 generator, so they are not bit-identical to TFLite's Philox stream (a model
that depends on the exact random bits, rather than their distribution, differs between
runtimes). Nodes that share the same non-zero seeds share one stream.
"""

from __future__ import annotations

import numpy as np

from .common import as_int_tuple
from .registry import OpDef
from .shapes import DYNAMIC, one, require_values


def _shape(shape: np.ndarray) -> tuple[int, ...]:
    dims = as_int_tuple(shape)
    if any(d < 0 for d in dims):
        raise ValueError(f"random op shape must be non-negative, got {list(dims)}")
    return dims


def random_uniform(ctx, attrs, shape):
    rng = ctx.random_generator(attrs.get("seed", 0), attrs.get("seed2", 0))
    return rng.random(_shape(shape), dtype=np.float32)


def random_standard_normal(ctx, attrs, shape):
    rng = ctx.random_generator(attrs.get("seed", 0), attrs.get("seed2", 0))
    return rng.standard_normal(_shape(shape), dtype=np.float32)


def _random_shape(info):
    """The sample's shape is input 0's value; a dim that depends on the batch is -1."""
    return one(tuple(DYNAMIC if d is None else d for d in require_values(info, 0, "shape")))


OPS = [
    OpDef("random_uniform", random_uniform, "RandomOptions", shape=_random_shape,
          stateful=True, shape_inputs=(0,)),
    OpDef("random_standard_normal", random_standard_normal, "RandomOptions",
          shape=_random_shape, stateful=True, shape_inputs=(0,)),
]
