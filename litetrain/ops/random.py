"""Random ops: RANDOM_UNIFORM and RANDOM_STANDARD_NORMAL (float32, shape from an input).

As in TensorFlow Lite, each node owns a Philox stream (see :mod:`.philox`) seeded from
``seed``/``seed2`` of its ``RandomOptions`` when the interpreter prepares it, and draws the
next numbers from it on every invocation, so a seeded model reproduces TensorFlow Lite's
exact values (a new interpreter replays the same sequence). Both seeds zero means "seed
from the operating system". The file stores the seeds as int64, but TensorFlow Lite's
``TfLiteRandomParams`` holds C ``int``s: a seed outside int32 wraps (two's complement)
before it keys the stream, and so it does here. Streams live in the runtime context,
keyed by node, so a training session can snapshot them; a subgraph run with new input
shapes restarts them (TensorFlow Lite prepares it again).

The stateless Flex ops Keras 3 emits (``StatelessRandomGetKeyCounter``,
``StatelessRandomUniformV2``/``NormalV2``) are pure functions of their key and counter,
with TensorFlow's seed scrambling.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import as_int_tuple
from .philox import Philox, normal, scrambled_key_counter, uniform
from .registry import NodeInfo, OpDef, Shaped
from .shapes import DYNAMIC, one, require_values


@dataclass(frozen=True)
class RandomSettings:
    stream: str  # the node's stream in the runtime context
    seed: int
    seed2: int


def _as_c_int(value: int) -> int:
    """``value`` stored into a 32-bit C ``int`` (two's complement wrap)."""
    return ((int(value) + (1 << 31)) % (1 << 32)) - (1 << 31)


def _prepare(info: NodeInfo) -> RandomSettings:
    return RandomSettings(info.where, _as_c_int(info.attrs.get("seed", 0)),
                          _as_c_int(info.attrs.get("seed2", 0)))


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


def stateless_get_key_counter(attrs, seed):
    """``StatelessRandomGetKeyCounter``: the scrambled Philox key ([1] uint64) and
    counter ([2] uint64, low half first) for a two-element seed."""
    s0, s1 = (int(v) for v in np.asarray(seed).reshape(-1)[:2])
    (k0, k1), counter = scrambled_key_counter(s0, s1)
    return (np.array([k0 | (k1 << 32)], np.uint64),
            np.array([counter & (2**64 - 1), counter >> 64], np.uint64))


def _stateless_stream(key, counter) -> Philox:
    k = int(np.asarray(key).reshape(-1)[0])
    c = [int(v) for v in np.asarray(counter).reshape(-1)[:2]]
    return Philox.at((k & 0xFFFFFFFF, k >> 32), c[0] | (c[1] << 64))


def _check_philox(attrs, alg) -> None:
    """Philox (1), or auto-select (3), which is Philox on CPUs; not ThreeFry (2)."""
    code = int(np.asarray(alg).reshape(-1)[0])
    if code not in (1, 3):
        raise ValueError(f"stateless random algorithm {code} is not supported (only Philox: "
                         "1, or 3, auto-select)")


def stateless_uniform_v2(attrs, shape, key, counter, alg):
    _check_philox(attrs, alg)
    dims = _shape(shape)
    values = uniform(_stateless_stream(key, counter), int(np.prod(dims))).reshape(dims)
    return values.astype(np.dtype(attrs.get("dtype", np.float32)))


def stateless_normal_v2(attrs, shape, key, counter, alg):
    _check_philox(attrs, alg)
    dims = _shape(shape)
    values = normal(_stateless_stream(key, counter), int(np.prod(dims))).reshape(dims)
    return values.astype(np.dtype(attrs.get("dtype", np.float32)))


def _random_shape(info: NodeInfo):
    """The sample's shape is input 0's value; a dim that depends on the batch is -1."""
    return one(tuple(DYNAMIC if d is None else d for d in require_values(info, 0, "shape")))


OPS = [
    OpDef("random_uniform", random_uniform, "RandomOptions", prepare=_prepare,
          shape=_random_shape, stateful=True, shape_inputs=(0,)),
    OpDef("random_standard_normal", random_standard_normal, "RandomOptions", prepare=_prepare,
          shape=_random_shape, stateful=True, shape_inputs=(0,)),
    OpDef("FlexStatelessRandomGetKeyCounter", stateless_get_key_counter,
          shape=lambda info: (Shaped((1,)), Shaped((2,))), fresh_output=True, shape_inputs=(),
          num_outputs=2),
    OpDef("FlexStatelessRandomUniformV2", stateless_uniform_v2, shape=_random_shape,
          fresh_output=True, shape_inputs=(0,)),
    OpDef("FlexStatelessRandomNormalV2", stateless_normal_v2, shape=_random_shape,
          fresh_output=True, shape_inputs=(0,)),
]
