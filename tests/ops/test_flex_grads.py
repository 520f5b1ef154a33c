"""Every Flex gradient op against central finite differences of its forward op.

For a forward f and upstream gradient dy, the vector-Jacobian product checked is
d/dθ sum(f(θ) * dy), computed numerically in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import run_kernel


def numeric_vjp(f, theta, dy, eps=1e-6):
    grad = np.zeros_like(theta)
    for idx in np.ndindex(theta.shape):
        old = theta[idx]
        theta[idx] = old + eps
        up = np.sum(f(theta) * dy)
        theta[idx] = old - eps
        down = np.sum(f(theta) * dy)
        theta[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


def away_from(x, points, margin=0.05):
    """Nudge values off kinks so finite differences are valid."""
    for p in points:
        near = np.abs(x - p) < margin
        x[near] += 2 * margin
    return x


ACTIVATIONS = [  # (flex op, forward, second input is the forward's output?, kinks)
    ("FlexReluGrad", lambda x: np.maximum(x, 0), False, [0]),
    ("FlexRelu6Grad", lambda x: np.clip(x, 0, 6), False, [0, 6]),
    ("FlexLeakyReluGrad", lambda x: np.where(x > 0, x, 0.2 * x), False, [0]),
    ("FlexEluGrad", lambda x: np.where(x > 0, x, np.expm1(x)), True, [0]),
    ("FlexSeluGrad", lambda x: 1.0507009873554805 * np.where(
        x > 0, x, 1.6732632423543772 * np.expm1(x)), True, [0]),
    ("FlexSoftplusGrad", lambda x: np.log1p(np.exp(x)), False, []),
]


@pytest.mark.parametrize(("op", "fwd", "uses_output", "kinks"), ACTIVATIONS,
                         ids=[a[0] for a in ACTIVATIONS])
def test_activation_grads(op, fwd, uses_output, kinks, rng):
    x = away_from(rng.uniform(-8, 8, (3, 7)), kinks)
    dy = rng.normal(size=x.shape)
    second = fwd(x) if uses_output else x
    got = run_kernel(op, dy, second, alpha=0.2)
    np.testing.assert_allclose(got, numeric_vjp(fwd, x.copy(), dy), rtol=1e-5, atol=1e-6)


def test_bias_add_grad(rng):
    x = rng.normal(size=(2, 3, 4, 5))
    dy = rng.normal(size=x.shape)
    b = rng.normal(size=5)
    got = run_kernel("FlexBiasAddGrad", dy)
    np.testing.assert_allclose(got, numeric_vjp(lambda bb: x + bb, b, dy), rtol=1e-6)


def tf_attrs(stride, pad, dil=(1, 1), k=None):
    a = {"strides": (1, *stride, 1), "padding": pad, "dilations": (1, *dil, 1)}
    if k is not None:
        a["ksize"] = (1, *k, 1)
    return a


def tfl_conv(x, w_hwio, stride, pad, dil=(1, 1)):
    """Forward conv through the TFLite kernel, with TF's HWIO filter layout."""
    return run_kernel("conv_2d", x, np.transpose(w_hwio, (3, 0, 1, 2)), None,
                      padding=0 if pad == "SAME" else 1, stride_h=stride[0],
                      stride_w=stride[1], dilation_h_factor=dil[0], dilation_w_factor=dil[1])


CONVS = [((1, 6, 6, 2), (3, 3, 2, 3), (1, 1), "SAME", (1, 1)),
         ((2, 7, 5, 2), (3, 2, 2, 2), (2, 2), "SAME", (1, 1)),
         ((1, 7, 7, 1), (2, 2, 1, 2), (2, 1), "VALID", (1, 1)),
         ((1, 8, 8, 2), (3, 3, 2, 2), (1, 1), "VALID", (2, 2))]


@pytest.mark.parametrize(("xs", "ws", "stride", "pad", "dil"), CONVS)
def test_conv2d_backprops(xs, ws, stride, pad, dil, rng):
    x, w = rng.normal(size=xs), rng.normal(size=ws)
    dy = rng.normal(size=tfl_conv(x, w, stride, pad, dil).shape)
    attrs = tf_attrs(stride, pad, dil)
    got_w = run_kernel("FlexConv2DBackpropFilter", x, np.array(ws, np.int32), dy, **attrs)
    np.testing.assert_allclose(got_w, numeric_vjp(lambda ww: tfl_conv(x, ww, stride, pad, dil),
                                                  w, dy), rtol=1e-5, atol=1e-6)
    got_x = run_kernel("FlexConv2DBackpropInput", np.array(xs, np.int32), w, dy, **attrs)
    np.testing.assert_allclose(got_x, numeric_vjp(lambda xx: tfl_conv(xx, w, stride, pad, dil),
                                                  x, dy), rtol=1e-5, atol=1e-6)


def tfl_depthwise(x, w_tf, stride, pad, dil=(1, 1)):
    kh, kw, c, m = w_tf.shape
    return run_kernel("depthwise_conv_2d", x, w_tf.reshape(1, kh, kw, c * m), None,
                      padding=0 if pad == "SAME" else 1, stride_h=stride[0],
                      stride_w=stride[1], dilation_h_factor=dil[0], dilation_w_factor=dil[1])


@pytest.mark.parametrize(("xs", "ws", "stride", "pad"), [
    ((1, 6, 6, 2), (3, 3, 2, 1), (1, 1), "SAME"), ((2, 7, 5, 2), (3, 3, 2, 2), (2, 2), "SAME"),
    ((1, 6, 6, 3), (2, 2, 3, 2), (2, 2), "VALID")])
def test_depthwise_backprops(xs, ws, stride, pad, rng):
    x, w = rng.normal(size=xs), rng.normal(size=ws)
    dy = rng.normal(size=tfl_depthwise(x, w, stride, pad).shape)
    attrs = tf_attrs(stride, pad)
    got_w = run_kernel("FlexDepthwiseConv2dNativeBackpropFilter", x,
                       np.array(ws, np.int32), dy, **attrs)
    np.testing.assert_allclose(got_w, numeric_vjp(lambda ww: tfl_depthwise(x, ww, stride, pad),
                                                  w, dy), rtol=1e-5, atol=1e-6)
    got_x = run_kernel("FlexDepthwiseConv2dNativeBackpropInput", np.array(xs, np.int32), w,
                       dy, **attrs)
    np.testing.assert_allclose(got_x, numeric_vjp(lambda xx: tfl_depthwise(xx, w, stride, pad),
                                                  x, dy), rtol=1e-5, atol=1e-6)


POOLS = [((1, 6, 6, 2), (2, 2), (2, 2), "VALID"), ((2, 7, 5, 2), (3, 3), (2, 2), "SAME"),
         ((1, 5, 5, 1), (3, 3), (1, 1), "SAME")]


@pytest.mark.parametrize(("xs", "k", "stride", "pad"), POOLS)
def test_pool_grads(xs, k, stride, pad, rng):
    x = rng.permutation(np.arange(np.prod(xs), dtype=np.float64)).reshape(xs) / 7.0  # no ties
    tfl = {"padding": 0 if pad == "SAME" else 1, "stride_h": stride[0], "stride_w": stride[1],
           "filter_height": k[0], "filter_width": k[1]}
    attrs = tf_attrs(stride, pad, k=k)

    def fmax(xx):
        return run_kernel("max_pool_2d", xx, **tfl)

    def favg(xx):
        return run_kernel("average_pool_2d", xx, **tfl)

    y = fmax(x)
    dy = rng.normal(size=y.shape)
    got = run_kernel("FlexMaxPoolGrad", x, y, dy, **attrs)
    np.testing.assert_allclose(got, numeric_vjp(fmax, x.copy(), dy, 1e-4), rtol=1e-5,
                               atol=1e-6)
    got = run_kernel("FlexAvgPoolGrad", np.array(xs, np.int32), dy, **attrs)
    np.testing.assert_allclose(got, numeric_vjp(favg, x.copy(), dy), rtol=1e-5, atol=1e-6)


def test_ensure_shape():
    x = np.zeros((3, 4))
    assert run_kernel("FlexEnsureShape", x, shape=(-1, 4)) is x
    with pytest.raises(ValueError, match="not compatible"):
        run_kernel("FlexEnsureShape", x, shape=(3, 5))
