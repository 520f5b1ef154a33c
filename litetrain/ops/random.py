"""Random ops: RANDOM_UNIFORM and RANDOM_STANDARD_NORMAL (float32, shape from an input).

As in TensorFlow Lite, each node owns a Philox stream (see :mod:`.philox`) seeded from
``seed``/``seed2`` of its ``RandomOptions`` when the interpreter prepares it, and draws the
next numbers from it on every invocation, so a seeded model reproduces TensorFlow Lite's
exact values (a new interpreter replays the same sequence). Both seeds zero means "seed
from the operating system". Streams live in the runtime context, keyed by node, so a
training session can snapshot them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import as_int_tuple
from .philox import normal, uniform
from .registry import NodeInfo, OpDef
from .shapes import DYNAMIC, one, require_values


@dataclass(frozen=True)
class RandomSettings:
    stream: str  # the node's stream in the runtime context
    seed: int
    seed2: int


def _prepare(info: NodeInfo) -> RandomSettings:
    return RandomSettings(info.where, int(info.attrs.get("seed", 0)),
                          int(info.attrs.get("seed2", 0)))


def _shape(shape: np.ndarray) -> tuple[int, ...]:
    dims = as_int_tuple(shape)
    if any(d < 0 for d in dims):
        raise ValueError(f"random op shape must be non-negative, got {list(dims)}")
    return dims


def random_uniform(ctx, s: RandomSettings, shape):
    dims = _shape(shape)
    rng = ctx.random_stream(s.stream, s.seed, s.seed2)
    return uniform(rng, int(np.prod(dims))).reshape(dims)


def random_standard_normal(ctx, s: RandomSettings, shape):
    dims = _shape(shape)
    rng = ctx.random_stream(s.stream, s.seed, s.seed2)
    return normal(rng, int(np.prod(dims))).reshape(dims)


def _random_shape(info: NodeInfo):
    """The sample's shape is input 0's value; a dim that depends on the batch is -1."""
    return one(tuple(DYNAMIC if d is None else d for d in require_values(info, 0, "shape")))


OPS = [
    OpDef("random_uniform", random_uniform, "RandomOptions", prepare=_prepare,
          shape=_random_shape, stateful=True, shape_inputs=(0,)),
    OpDef("random_standard_normal", random_standard_normal, "RandomOptions", prepare=_prepare,
          shape=_random_shape, stateful=True, shape_inputs=(0,)),
]
