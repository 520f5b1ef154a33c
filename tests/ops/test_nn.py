"""Matmul, convolution and pooling kernels against naive loop references."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import run_kernel
from tests.ops import reference

SAME, VALID = 0, 1

CONV_CASES = [  # (input NHWC, filter OHWI, stride, dilation, padding)
    ((2, 7, 6, 3), (4, 3, 3, 3), (1, 1), (1, 1), SAME),
    ((1, 8, 8, 2), (3, 3, 2, 2), (2, 2), (1, 1), SAME),
    ((1, 9, 7, 2), (2, 3, 3, 2), (2, 1), (1, 1), VALID),
    ((1, 9, 9, 1), (2, 3, 3, 1), (1, 1), (2, 2), SAME),
    ((2, 5, 5, 4), (6, 1, 1, 4), (1, 1), (1, 1), VALID),
    ((1, 6, 6, 4), (4, 3, 3, 2), (1, 1), (1, 1), SAME),  # two groups
]


@pytest.mark.parametrize(("xs", "ws", "stride", "dil", "pad"), CONV_CASES)
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_2d(xs, ws, stride, dil, pad, with_bias, rng):
    x = rng.normal(size=xs).astype(np.float32)
    w = rng.normal(size=ws).astype(np.float32)
    b = rng.normal(size=ws[0]).astype(np.float32) if with_bias else None
    got = run_kernel("conv_2d", x, w, b, padding=pad, stride_h=stride[0], stride_w=stride[1],
                     dilation_h_factor=dil[0], dilation_w_factor=dil[1])
    ref = reference.conv2d(x, w, b, stride, dil, pad == SAME)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("xs", "mult", "k", "stride", "dil", "pad"), [
    ((2, 7, 7, 3), 1, 3, (1, 1), (1, 1), SAME),
    ((1, 8, 6, 2), 3, 3, (2, 2), (1, 1), SAME),
    ((1, 9, 9, 2), 2, 2, (1, 2), (1, 1), VALID),
    ((1, 9, 9, 1), 1, 3, (1, 1), (2, 2), VALID),
])
def test_depthwise_conv_2d(xs, mult, k, stride, dil, pad, rng):
    x = rng.normal(size=xs).astype(np.float32)
    w = rng.normal(size=(1, k, k, xs[3] * mult)).astype(np.float32)
    b = rng.normal(size=xs[3] * mult).astype(np.float32)
    got = run_kernel("depthwise_conv_2d", x, w, b, padding=pad, stride_h=stride[0],
                     stride_w=stride[1], dilation_h_factor=dil[0], dilation_w_factor=dil[1],
                     depth_multiplier=mult, fused_activation_function=3)
    ref = np.clip(reference.depthwise(x, w, b, stride, dil, pad == SAME), 0, 6)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("xs", "ws", "out", "stride", "pad"), [
    ((1, 4, 4, 3), (2, 3, 3, 3), (1, 8, 8, 2), (2, 2), SAME),
    ((2, 3, 5, 2), (3, 3, 3, 2), (2, 7, 11, 3), (2, 2), VALID),
    ((1, 5, 5, 1), (1, 2, 2, 1), (1, 5, 5, 1), (1, 1), SAME),
])
def test_transpose_conv(xs, ws, out, stride, pad, rng):
    x = rng.normal(size=xs).astype(np.float32)
    w = rng.normal(size=ws).astype(np.float32)
    b = rng.normal(size=ws[0]).astype(np.float32)
    got = run_kernel("transpose_conv", np.array(out, np.int32), w, x, b, padding=pad,
                     stride_h=stride[0], stride_w=stride[1])
    ref = reference.transpose_conv(x, w, out, stride, pad == SAME) + b
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["max", "average"])
@pytest.mark.parametrize(("xs", "k", "stride", "pad"), [
    ((2, 6, 6, 3), (2, 2), (2, 2), VALID), ((1, 7, 5, 2), (3, 3), (2, 2), SAME),
    ((1, 5, 5, 1), (3, 2), (1, 1), SAME), ((1, 8, 8, 2), (3, 3), (3, 2), VALID),
])
def test_pools(kind, xs, k, stride, pad, rng):
    x = rng.normal(size=xs).astype(np.float32)
    got = run_kernel(f"{kind}_pool_2d", x, padding=pad, stride_h=stride[0],
                     stride_w=stride[1], filter_height=k[0], filter_width=k[1])
    ref = reference.pool(x, k, stride, pad == SAME, "max" if kind == "max" else "avg")
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("xs", "keep"), [((4, 6), False), ((2, 3, 6), False),
                                          ((2, 3, 6), True)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_fully_connected(xs, keep, with_bias, rng):
    x = rng.normal(size=xs).astype(np.float32)
    w = rng.normal(size=(5, 6)).astype(np.float32)
    b = rng.normal(size=5).astype(np.float32) if with_bias else None
    got = run_kernel("fully_connected", x, w, b, keep_num_dims=keep,
                     fused_activation_function=1)
    rows = x.reshape(-1, 6).astype(np.float64)
    ref = np.array([[max(sum(r[i] * w[u, i] for i in range(6)) + (b[u] if with_bias else 0),
                         0) for u in range(5)] for r in rows])
    want_shape = (*xs[:-1], 5) if keep else (rows.shape[0], 5)
    np.testing.assert_allclose(got, ref.reshape(want_shape), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("a_shape", "b_shape", "adj_x", "adj_y"), [
    ((3, 4), (4, 5), False, False), ((2, 4, 3), (2, 4, 5), True, False),
    ((2, 3, 4), (5, 4), False, True), ((1, 3, 4), (6, 4, 2), False, False),
])
def test_batch_matmul(a_shape, b_shape, adj_x, adj_y, rng):
    a = rng.normal(size=a_shape).astype(np.float32)
    b = rng.normal(size=b_shape).astype(np.float32)
    got = run_kernel("batch_matmul", a, b, adj_x=adj_x, adj_y=adj_y)
    at = np.swapaxes(a, -1, -2) if adj_x else a
    bt = np.swapaxes(b, -1, -2) if adj_y else b
    at, bt = np.broadcast_to(at, np.broadcast_shapes(at.shape[:-2], bt.shape[:-2])
                             + at.shape[-2:]), bt
    ref = np.empty((*at.shape[:-1], bt.shape[-1]))
    for idx in np.ndindex(at.shape[:-2]):
        bb = np.broadcast_to(bt, at.shape[:-2] + bt.shape[-2:])[idx]
        for i in range(at.shape[-2]):
            for j in range(bt.shape[-1]):
                ref[(*idx, i, j)] = sum(at[(*idx, i, k)] * bb[k, j] for k in range(bb.shape[0]))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
