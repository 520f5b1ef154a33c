"""RANDOM_UNIFORM / RANDOM_STANDARD_NORMAL: shape, range, moments, seeding, statefulness."""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.ops.random import random_standard_normal, random_uniform
from litetrain.runtime.context import RuntimeContext
from litetrain.runtime.variables import VariableStore


def _ctx():
    return RuntimeContext(VariableStore())


def test_uniform_shape_range_and_moments():
    u = random_uniform(_ctx(), {"seed": 0, "seed2": 0}, np.array([200, 500], np.int32))
    assert u.shape == (200, 500) and u.dtype == np.float32
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005


def test_normal_moments():
    z = random_standard_normal(_ctx(), {"seed": 5, "seed2": 1}, np.array([100000], np.int32))
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02


def test_seeded_streams_replay_in_a_new_context_and_advance_within_one():
    attrs, shape = {"seed": 7, "seed2": 2}, np.array([4], np.int32)
    a = _ctx()
    first, second = random_uniform(a, attrs, shape), random_uniform(a, attrs, shape)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(random_uniform(_ctx(), attrs, shape), first)


def test_negative_shape_is_refused():
    with pytest.raises(ValueError, match="non-negative"):
        random_uniform(_ctx(), {}, np.array([2, -1], np.int32))
