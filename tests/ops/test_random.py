"""RANDOM_UNIFORM / RANDOM_STANDARD_NORMAL: TensorFlow's Philox bits (known-answer tests),
shape, range, moments, seeding, one stream per node, statefulness."""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.ops.philox import Philox
from litetrain.ops.random import RandomSettings, random_standard_normal, random_uniform
from litetrain.runtime.context import RuntimeContext
from litetrain.runtime.variables import VariableStore


def _ctx():
    return RuntimeContext(VariableStore())


@pytest.mark.parametrize(("key", "counter", "want"), [  # Random123's philox4x32_10 answers
    ((0, 0), 0, (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF), (1 << 128) - 1, (0x408F276D, 0x41C83B0E, 0xA20BC7C6,
                                                 0x6D5451FD)),
    ((0xA4093822, 0x299F31D0), 0x03707344_13198A2E_85A308D3_243F6A88,
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_philox_known_answers(key, counter, want):
    rng = Philox(0, 0)
    rng.key, rng.counter = key, counter
    assert tuple(int(v) for v in rng.blocks(1)[0]) == want


def test_philox_seeds_and_counter_carry():
    rng = Philox(0x1111111122222222, 0x3333333344444444)
    assert rng.key == (0x22222222, 0x11111111)
    assert rng.counter == 0x3333333344444444 << 64
    rng.counter = (1 << 64) - 1  # the next block carries into the upper half
    _, b = rng.blocks(2)
    again = Philox(0, 0)
    again.key, again.counter = rng.key, 1 << 64
    np.testing.assert_array_equal(again.blocks(1)[0], b)


def _node(seed=0, seed2=0, stream="node 0"):
    return RandomSettings(stream, seed, seed2)


def test_uniform_shape_range_and_moments():
    u = random_uniform(_ctx(), _node(), np.array([200, 500], np.int32))
    assert u.shape == (200, 500) and u.dtype == np.float32
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005


def test_normal_moments():
    z = random_standard_normal(_ctx(), _node(5, 1), np.array([100000], np.int32))
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02


def test_seeded_streams_replay_in_a_new_context_and_advance_within_one():
    node, shape = _node(7, 2), np.array([4], np.int32)
    a = _ctx()
    first, second = random_uniform(a, node, shape), random_uniform(a, node, shape)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(random_uniform(_ctx(), node, shape), first)
    # Another node with the same seeds has a stream of its own (as in TensorFlow Lite).
    np.testing.assert_array_equal(random_uniform(a, _node(7, 2, "node 1"), shape), first)


def test_streams_snapshot_and_restore():
    a, node, shape = _ctx(), _node(3, 4), np.array([6], np.int32)
    random_uniform(a, node, shape)
    saved = a.random_states()
    want = random_uniform(a, node, shape)
    b = _ctx()
    b.set_random_states(saved)
    np.testing.assert_array_equal(random_uniform(b, node, shape), want)


def test_negative_shape_is_refused():
    with pytest.raises(ValueError, match="non-negative"):
        random_uniform(_ctx(), _node(), np.array([2, -1], np.int32))


def _seeded_uniform_model(seed: int, seed2: int) -> bytes:
    import litetrain as lt
    from litetrain.author.functional import _g

    class Draw(lt.Module):
        @lt.signature(lt.TensorSpec([None, 6]))
        def run(self, x):
            g = _g(x)
            return {"u": g.op("random_uniform", g.op("shape", x, out_type=2), seed=seed,
                              seed2=seed2)}
    return lt.convert(Draw())


def test_seeds_outside_int32_wrap_as_in_tensorflow_lite():
    """TfLiteRandomParams holds C ints: seed2 = 2458513353 keys the stream as -1836453943.
    The expected values are what TensorFlow Lite 2.18's interpreter drew from this file."""
    import litetrain as lt
    run = lt.Interpreter(model_content=_seeded_uniform_model(7, 2458513353)
                         ).get_signature_runner("run")
    want = [0.11573803, 0.36705816, 0.8726667, 0.09552217, 0.98225856, 0.33599365]
    np.testing.assert_allclose(run(x=np.ones((1, 6), np.float32))["u"][0], want, rtol=0,
                               atol=1e-7)


@pytest.mark.parametrize("seeds", [(7, 2458513353), (1 << 33, 5), (3, -4)])
def test_seeded_draws_equal_litert(seeds):
    """Seeds of any width, across invocations and resizes."""
    import litetrain as lt
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    data = _seeded_uniform_model(*seeds)
    ours = lt.Interpreter(model_content=data).get_signature_runner("run")
    theirs = litert.Interpreter(model_content=data).get_signature_runner("run")
    # The stream advances across invocations of one shape and restarts from the seeds
    # when the input is resized (TensorFlow Lite prepares the subgraph again).
    for batch in (1, 1, 3, 3, 1):
        x = np.ones((batch, 6), np.float32)
        np.testing.assert_array_equal(ours(x=x)["u"], theirs(x=x)["u"])


def test_a_resize_restarts_the_streams():
    import litetrain as lt
    interp = lt.Interpreter(model_content=_seeded_uniform_model(3, 4))
    run = interp.get_signature_runner("run")
    first = run(x=np.ones((2, 6), np.float32))["u"]
    assert not np.array_equal(run(x=np.ones((2, 6), np.float32))["u"], first)
    run(x=np.ones((1, 6), np.float32))
    np.testing.assert_array_equal(run(x=np.ones((2, 6), np.float32))["u"], first)
