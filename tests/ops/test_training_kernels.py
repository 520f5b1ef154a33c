"""The kernels and gradient graphs a CNN train step spends its time in, against plain
definitions: TRANSPOSE_CONV against its scatter-add loop, SUM/MEAN's BLAS path against
NumPy, and the rewritten gradient rules (per-tap filter GEMMs, the SAME depthwise input
gradient, multiply masks) against finite differences over strides, paddings, kernel
sizes and batches."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops.common import SAME, VALID, conv_out_size, pad_before_after
from tests.author.test_gradients import CASES
from tests.author.test_gradients import test_vjp_matches_finite_differences as check_vjp
from tests.conftest import run_kernel

R = np.random.default_rng(7)


def transpose_conv_reference(x, w, out_shape, stride, padding):
    """The definition: each input pixel adds ``x · w[:, i, j, :]`` at
    ``(y·s + i − pad, x·s + j − pad)`` for every tap, where that lands in the output."""
    _, oh, ow, _ = out_shape
    _, kh, kw, _ = w.shape
    _, ph, _ = pad_before_after(oh, kh, stride[0], 1, padding)
    _, pw, _ = pad_before_after(ow, kw, stride[1], 1, padding)
    out = np.zeros(out_shape)
    for y in range(x.shape[1]):
        for xx in range(x.shape[2]):
            for i in range(kh):
                for j in range(kw):
                    r, c = y * stride[0] + i - ph, xx * stride[1] + j - pw
                    if 0 <= r < oh and 0 <= c < ow:
                        out[:, r, c, :] += x[:, y, xx, :] @ w[:, i, j, :].T
    return out


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("kernel,stride,padding", [
    ((3, 3), (1, 1), SAME), ((3, 3), (2, 2), SAME), ((2, 2), (2, 2), VALID),
    ((3, 2), (2, 3), VALID), ((1, 1), (1, 1), VALID), ((4, 4), (2, 2), SAME),
    ((5, 3), (3, 1), SAME), ((1, 3), (3, 2), VALID)])
def test_transpose_conv_matches_its_definition(batch, kernel, stride, padding):
    h, w_, ci, o = int(R.integers(2, 6)), int(R.integers(2, 6)), 3, 4
    # Any output size whose forward convolution gives back (h, w): the smallest to largest.
    sizes = []
    for size, k, s in ((h, kernel[0], stride[0]), (w_, kernel[1], stride[1])):
        fits = [m for m in range(1, size * s + k + 1) if conv_out_size(m, k, s, 1, padding) == size]
        sizes.append(fits[int(R.integers(len(fits)))])
    x = R.normal(size=(batch, h, w_, ci)).astype(np.float32)
    w = R.normal(size=(o, *kernel, ci)).astype(np.float32)
    b = R.normal(size=o).astype(np.float32)
    shape = np.array([batch, *sizes, o], np.int32)
    got = run_kernel("transpose_conv", shape, w, x, b, padding=padding, stride_h=stride[0],
                     stride_w=stride[1])
    want = transpose_conv_reference(x.astype(np.float64), w.astype(np.float64),
                                    tuple(shape), stride, padding) + b
    assert got.dtype == np.float32 and got.shape == tuple(shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["sum", "mean"])
@pytest.mark.parametrize("shape,axes,keep", [
    ((32, 6, 5, 7), (0, 1, 2), False), ((40, 9, 3), (0, 1), True), ((70, 4), (0,), False),
    ((2, 50, 3), (1, 0), False), ((3, 4, 5), (0, 1), False), ((80, 3, 2), (0, 2), False),
    ((65, 2), (0, 1), False)])
def test_reductions_over_leading_axes_match_numpy(op, shape, axes, keep):
    for dtype in (np.float32, np.float64):
        x = R.normal(size=shape).astype(dtype)
        got = run_kernel(op, x, np.array(axes, np.int32), keep_dims=keep)
        want = getattr(np, op)(x.astype(np.float64), axis=axes, keepdims=keep)
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-5 if dtype == np.float32 else 1e-12)


def _conv(x, w, padding, stride, bias=True):
    return ("conv_2d", [R.normal(size=x), R.normal(size=w)] + ([R.normal(size=w[0])] if bias
                                                                  else []), {},
            {"padding": padding, "stride_h": stride[0], "stride_w": stride[1]})


GRADIENT_CASES = {  # filter and input gradients the rewritten rules emit, by geometry
    "conv_1x1": _conv((2, 4, 3, 3), (5, 1, 1, 3), VALID, (1, 1)),
    "conv_1x1_strided_same": _conv((1, 5, 4, 2), (3, 1, 1, 2), SAME, (2, 2)),
    "conv_even_same": _conv((3, 6, 5, 2), (2, 2, 4, 2), SAME, (1, 1)),
    "conv_valid_stride1": _conv((2, 6, 7, 1), (3, 3, 2, 1), VALID, (1, 1), bias=False),
    "conv_rect_strides": _conv((1, 7, 9, 2), (2, 3, 2, 2), SAME, (2, 3)),
    "conv_5x5_same": _conv((1, 6, 6, 3), (2, 5, 5, 3), SAME, (1, 1)),
    "transpose_conv_strided": ("transpose_conv", [R.normal(size=(2, 3, 3, 3)),
                                                  R.normal(size=(2, 3, 2, 3))],
                               {0: np.array([2, 6, 4, 2], np.int32)},
                               {"padding": SAME, "stride_h": 2, "stride_w": 2}),
    "depthwise_same_stride1": ("depthwise_conv_2d", [
        R.normal(size=(2, 6, 5, 2)), R.normal(size=(1, 3, 5, 4)), R.normal(size=4)], {},
        {"padding": SAME, "stride_h": 1, "stride_w": 1, "depth_multiplier": 2}),
    "depthwise_same_stride1_batch1": ("depthwise_conv_2d", [
        R.normal(size=(1, 4, 4, 3)), R.normal(size=(1, 3, 3, 3))], {},
        {"padding": SAME, "stride_h": 1, "stride_w": 1, "depth_multiplier": 1}),
    "relu_mask": ("relu", [np.where(np.abs(v := R.normal(size=(4, 5))) < 0.05, 0.5, v)], {}, {}),
    "max_pool_non_overlapping": ("max_pool_2d", [R.permutation(2 * 4 * 6 * 3).reshape(
        2, 4, 6, 3) / 7.0], {}, {"padding": VALID, "stride_h": 2, "stride_w": 2,
                                 "filter_height": 2, "filter_width": 2}),
}


@pytest.mark.parametrize("case", sorted(GRADIENT_CASES))
def test_training_gradients_match_finite_differences(case, monkeypatch):
    monkeypatch.setitem(CASES, case, GRADIENT_CASES[case])
    check_vjp(case)


def max_pool_grad_reference(x, dy, k, s, padding):
    """TensorFlow's MaxPoolGrad: each window's cotangent goes to its first maximum in
    row-major order (padding never wins)."""
    n, h, w, c = x.shape
    oh, ph, _ = pad_before_after(h, k[0], s[0], 1, padding)
    ow, pw, _ = pad_before_after(w, k[1], s[1], 1, padding)
    out = np.zeros_like(x)
    for b, y, xx, ch in np.ndindex(n, oh, ow, c):
        best = None
        for i in range(k[0]):
            for j in range(k[1]):
                r, q = y * s[0] + i - ph, xx * s[1] + j - pw
                if 0 <= r < h and 0 <= q < w and (best is None or x[b, r, q, ch] > x[best]):
                    best = (b, r, q, ch)
        out[best] += dy[b, y, xx, ch]
    return out


@pytest.mark.parametrize("shape,k,padding", [
    ((2, 6, 8, 3), (2, 2), VALID), ((1, 7, 5, 2), (2, 2), VALID), ((2, 6, 6, 1), (3, 3), SAME),
    ((1, 4, 6, 2), (2, 3), VALID), ((3, 4, 4, 2), (1, 2), SAME), ((1, 5, 5, 1), (3, 2), SAME)])
def test_max_pool_gradient_sends_ties_to_the_first_maximum(shape, k, padding):
    """Inputs with many equal values (what a ReLU or a constant border makes)."""
    x = R.integers(0, 3, shape).astype(np.float32)
    attrs = {"padding": padding, "stride_h": k[0], "stride_w": k[1], "filter_height": k[0],
             "filter_width": k[1]}
    y = run_kernel("max_pool_2d", x, **attrs)
    dy = R.normal(size=y.shape).astype(np.float32)

    class M(lt.Module):
        @lt.signature(lt.TensorSpec([None, *shape[1:]]), lt.TensorSpec([None, *y.shape[1:]]))
        def grads(self, v, d):
            with lt.GradientTape() as tape:
                loss = lt.nn.reduce_sum(v.graph.op("max_pool_2d", v, **attrs) * d)
            return {"dx": tape.gradient(loss, [v])[0]}

    got = M().grads(x, dy)["dx"]
    want = max_pool_grad_reference(x, dy, k, k, padding)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
