"""Reductions and shape ops: each table row states the expected result independently
(explicit Python indexing or per-element loops)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.conftest import run_kernel


def loop_reduce(x, axes, keep, fn):
    axes = sorted({a % x.ndim for a in axes})
    kept = [d for i, d in enumerate(x.shape) if i not in axes]
    out = np.empty(kept)
    for idx in np.ndindex(*kept):
        vals = []
        for red in itertools.product(*(range(x.shape[a]) for a in axes)):
            full, it_k, it_r = [], iter(idx), iter(red)
            for i in range(x.ndim):
                full.append(next(it_r) if i in axes else next(it_k))
            vals.append(float(x[tuple(full)]))
        out[idx] = fn(vals)
    if keep:
        out = out.reshape([1 if i in axes else d for i, d in enumerate(x.shape)])
    return out


REDUCERS = [("sum", sum), ("mean", lambda v: sum(v) / len(v)), ("reduce_max", max),
            ("reduce_min", min), ("reduce_prod", lambda v: float(np.prod(v)))]


@pytest.mark.parametrize(("op", "fn"), REDUCERS, ids=[r[0] for r in REDUCERS])
@pytest.mark.parametrize(("shape", "axes"), [((3, 4), [1]), ((2, 3, 4), [0, 2]),
                                             ((2, 3, 4), [-1]), ((4,), [0]),
                                             ((2, 3), [1, -1])])
@pytest.mark.parametrize("keep", [False, True])
def test_reductions(op, fn, shape, axes, keep, rng):
    x = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    got = run_kernel(op, x, np.array(axes, np.int32), keep_dims=keep)
    np.testing.assert_allclose(got, loop_reduce(x, axes, keep, fn), rtol=1e-5)


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("axis", [0, -1])
def test_cumsum_against_a_loop(exclusive, reverse, axis, rng):
    x = rng.normal(size=(3, 4)).astype(np.float32)
    got = run_kernel("cumsum", x, np.int32(axis), exclusive=exclusive, reverse=reverse)
    moved = np.moveaxis(x, axis, 0)
    want = np.zeros_like(moved)
    n = moved.shape[0]
    for k in range(n):  # the definition: which elements each running sum includes
        picked = [j for j in range(n) if (j > k if reverse else j < k) or (
            j == k and not exclusive)]
        want[k] = moved[picked].sum(axis=0) if picked else 0
    np.testing.assert_allclose(got, np.moveaxis(want, 0, axis), rtol=1e-6, atol=1e-6)


def test_arg_max_min(rng):
    x = rng.normal(size=(3, 5)).astype(np.float32)
    got = run_kernel("arg_max", x, np.array([1], np.int32), output_type=2)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, [list(r).index(max(r)) for r in x])
    got = run_kernel("arg_min", x, np.array(0, np.int32))
    np.testing.assert_array_equal(got, [list(c).index(min(c)) for c in x.T])


X = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)

STRIDED = [  # (begin, end, strides, masks, expected)
    ([0, 1, 0], [2, 3, 4], [1, 1, 2], {}, X[0:2, 1:3, 0:4:2]),
    ([1, 0, 0], [0, 0, 0], [1, 1, 1], {"end_mask": 7}, X[1:, :, :]),
    ([0, 0, 0], [2, 3, 4], [1, -1, 1], {"begin_mask": 2, "end_mask": 2}, X[:, ::-1, :]),
    ([1, 2], [2, 3], [1, 1], {"shrink_axis_mask": 3}, X[1, 2]),
    ([0, 1], [0, 2], [1, 1], {"ellipsis_mask": 1}, X[..., 1:2]),
    ([0, 0], [1, 0], [1, 1], {"new_axis_mask": 2, "end_mask": 2}, X[0:1, np.newaxis]),
    ([-1, 0, -3], [0, 2, 0], [1, 1, 1], {"end_mask": 5}, X[-1:, 0:2, -3:]),
    ([0, 1, 1], [1, 1, 2], [1, 1, 1], {"offset": True}, X[0:1, 1:2, 1:3]),
    ([0, 0, 10], [2, 3, 20], [1, 1, 1], {}, X[0:2, 0:3, 10:20]),
]


@pytest.mark.parametrize(("b", "e", "s", "masks", "want"), STRIDED)
def test_strided_slice(b, e, s, masks, want):
    got = run_kernel("strided_slice", X, *(np.array(v, np.int32) for v in (b, e, s)), **masks)
    np.testing.assert_array_equal(got, want)


def test_slice_and_errors():
    got = run_kernel("slice", X, np.array([1, 0, 1], np.int32), np.array([1, -1, 2], np.int32))
    np.testing.assert_array_equal(got, X[1:2, :, 1:3])
    with pytest.raises(ValueError, match="out of range"):
        run_kernel("slice", X, np.array([0, 2, 0], np.int32), np.array([1, 2, 1], np.int32))


def test_reshape_shape_concat_pack_unpack():
    np.testing.assert_array_equal(run_kernel("reshape", X, np.array([-1, 4], np.int32)),
                                  X.reshape(6, 4))
    np.testing.assert_array_equal(run_kernel("reshape", X, None, new_shape=np.array([4, 6])),
                                  X.reshape(4, 6))
    s = run_kernel("shape", X, out_type=4)
    assert s.dtype == np.int64 and s.tolist() == [2, 3, 4]
    np.testing.assert_array_equal(run_kernel("concatenation", X, X, axis=-1),
                                  np.concatenate([X, X], -1))
    np.testing.assert_array_equal(run_kernel("pack", X[0], X[1], axis=1),
                                  np.stack([X[0], X[1]], 1))
    parts = run_kernel("unpack", X, axis=1, num=3)
    assert [p.tolist() for p in parts] == [X[:, i].tolist() for i in range(3)]


def test_split_family():
    a, b = run_kernel("split", np.array(2, np.int32), X, num_splits=2)
    np.testing.assert_array_equal(a, X[..., :2])
    np.testing.assert_array_equal(b, X[..., 2:])
    p = run_kernel("split_v", X, np.array([1, -1], np.int32), np.array(2, np.int32),
                   num_splits=2)
    np.testing.assert_array_equal(p[1], X[..., 1:])


def test_squeeze_expand_transpose_tile_broadcast():
    y = X.reshape(2, 1, 3, 1, 4)
    assert run_kernel("squeeze", y).shape == (2, 3, 4)
    assert run_kernel("squeeze", y, squeeze_dims=np.array([-2])).shape == (2, 1, 3, 4)
    assert run_kernel("expand_dims", X, np.array(-1, np.int32)).shape == (2, 3, 4, 1)
    np.testing.assert_array_equal(run_kernel("transpose", X, np.array([2, 0, 1])),
                                  [[[X[i, j, k] for j in range(3)] for i in range(2)]
                                   for k in range(4)])
    np.testing.assert_array_equal(run_kernel("tile", X[0, 0], np.array([2])),
                                  list(X[0, 0]) * 2)
    assert run_kernel("broadcast_to", X[0, 0], np.array([3, 4])).tolist() == \
        [list(X[0, 0])] * 3


def test_pads():
    x = np.array([[1, 2], [3, 4]], np.float32)
    p = np.array([[1, 0], [0, 2]], np.int32)
    assert run_kernel("pad", x, p).tolist() == [[0, 0, 0, 0], [1, 2, 0, 0], [3, 4, 0, 0]]
    assert run_kernel("padv2", x, p, np.float32(9)).tolist()[0] == [9, 9, 9, 9]
    assert run_kernel("mirror_pad", x, p, mode=0).tolist()[0] == [3, 4, 3, 4]
    assert run_kernel("mirror_pad", x, p, mode=1).tolist()[0] == [1, 2, 2, 1]


def test_gathers():
    idx = np.array([[2, 0], [1, 1]], np.int32)
    g = run_kernel("gather", X, idx, axis=1)
    assert g.shape == (2, 2, 2, 4)
    assert g[1, 0, 1].tolist() == X[1, 0].tolist()
    gb = run_kernel("gather", X, np.array([[2], [0]], np.int32), axis=1, batch_dims=1)
    assert gb.tolist() == [[X[0, 2].tolist()], [X[1, 0].tolist()]]
    gn = run_kernel("gather_nd", X, np.array([[1, 2], [0, 0]], np.int32))
    assert gn.tolist() == [X[1, 2].tolist(), X[0, 0].tolist()]
    with pytest.raises(ValueError, match="out of range"):
        run_kernel("gather", X, np.array([3], np.int32), axis=1)


def test_cast_fill_range_likes():
    got = run_kernel("cast", np.array([1.7, -1.7], np.float32), out_dtypes=[np.int32])
    assert got.dtype == np.int32 and got.tolist() == [1, -1]
    assert run_kernel("fill", np.array([2, 2], np.int32), np.float32(3)).tolist() == [[3, 3]] * 2
    assert run_kernel("range", np.int32(1), np.int32(8), np.int32(3)).tolist() == [1, 4, 7]
    assert run_kernel("zeros_like", X).sum() == 0


def test_space_batch_round_trip(rng):
    x = rng.normal(size=(2, 4, 6, 3)).astype(np.float32)
    block, pads = np.array([2, 3], np.int32), np.array([[0, 0], [0, 0]], np.int32)
    y = run_kernel("space_to_batch_nd", x, block, pads)
    assert y.shape == (12, 2, 2, 3)
    # Batch b*2*3 + i*3 + j holds pixels (2h + i, 3w + j) of image b... TF orders the
    # block offsets first: batch index = (i * 3 + j) * 2 + b.
    assert y[(1 * 3 + 2) * 2 + 1, 1, 0].tolist() == x[1, 2 * 1 + 1, 3 * 0 + 2].tolist()
    back = run_kernel("batch_to_space_nd", y, block, pads)
    np.testing.assert_array_equal(back, x)


def test_resize(rng):
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    up = run_kernel("resize_nearest_neighbor", x, np.array([8, 8], np.int32))
    assert up[0, :, :, 0].tolist() == np.repeat(np.repeat(x[0, :, :, 0], 2, 0), 2, 1).tolist()
    same = run_kernel("resize_bilinear", x, np.array([4, 4], np.int32))
    np.testing.assert_array_equal(same, x)
    ac = run_kernel("resize_bilinear", x, np.array([7, 7], np.int32), align_corners=True)
    assert ac[0, 1, 0, 0] == pytest.approx(2.0)  # halfway between rows 0 and 1 of column 0
    half = run_kernel("resize_bilinear", x, np.array([8, 8], np.int32), half_pixel_centers=True)
    # Output pixel 1 maps to input coordinate 0.25 in each dim: 0.75*x00 + 0.25*x01 etc.
    assert half[0, 0, 1, 0] == pytest.approx(0.25)
