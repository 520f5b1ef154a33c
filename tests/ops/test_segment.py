"""UNIQUE, segment reductions, SCATTER_ND, EMBEDDING_LOOKUP and BROADCAST_ARGS against
plain loops."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import run_kernel

R = np.random.default_rng(8)


def test_unique_keeps_first_appearance_order():
    x = np.array([4, 1, 4, 7, 1, 0], np.int32)
    values, idx = run_kernel("unique", x)
    assert values.tolist() == [4, 1, 7, 0] and idx.tolist() == [0, 1, 0, 2, 1, 3]
    assert idx.dtype == np.int32
    assert run_kernel("unique", x, idx_out_type=4)[1].dtype == np.int64


@pytest.mark.parametrize(("op", "fn", "empty"), [
    ("unsorted_segment_sum", np.sum, 0.0), ("unsorted_segment_prod", np.prod, 1.0),
    ("unsorted_segment_max", np.max, np.finfo(np.float32).min),
    ("unsorted_segment_min", np.min, np.finfo(np.float32).max)])
def test_unsorted_segments(op, fn, empty):
    data = R.normal(size=(6, 2)).astype(np.float32)
    ids = np.array([3, 0, 3, -1, 0, 1], np.int32)  # -1 is dropped; segment 2 gets nothing
    got = run_kernel(op, data, ids, np.int32(4))
    for s in range(4):
        rows = data[ids == s]
        want = fn(rows, axis=0) if len(rows) else np.full(2, empty, np.float32)
        np.testing.assert_allclose(got[s], want, rtol=1e-6)
    with pytest.raises(ValueError, match="not below num_segments"):
        run_kernel(op, data, ids, np.int32(3))


def test_segment_sum_needs_sorted_ids():
    data = np.arange(8, dtype=np.float32).reshape(4, 2)
    got = run_kernel("segment_sum", data, np.array([0, 0, 2, 2], np.int32))
    np.testing.assert_array_equal(got, [[2, 4], [0, 0], [10, 12]])
    with pytest.raises(ValueError, match="sorted"):
        run_kernel("segment_sum", data, np.array([1, 0, 2, 2], np.int32))


def test_scatter_nd_accumulates_duplicates():
    indices = np.array([[0, 1], [2, 0], [0, 1]], np.int32)
    updates = np.array([[1, 2], [3, 4], [10, 20]], np.float32)
    got = run_kernel("scatter_nd", indices, updates, np.array([3, 2, 2], np.int32))
    want = np.zeros((3, 2, 2), np.float32)
    for i, u in zip(indices, updates, strict=True):
        want[tuple(i)] += u
    np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="out of range"):
        run_kernel("scatter_nd", indices + 5, updates, np.array([3, 2, 2], np.int32))


def test_embedding_lookup_and_broadcast_args():
    params = R.normal(size=(5, 3)).astype(np.float32)
    ids = np.array([[4, 0], [2, 2]], np.int32)
    np.testing.assert_array_equal(run_kernel("embedding_lookup", ids, params), params[ids])
    got = run_kernel("broadcast_args", np.array([4, 1, 3], np.int32), np.array([5, 1], np.int32))
    assert got.tolist() == [4, 5, 3]
