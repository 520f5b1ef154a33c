"""The compiled conv kernels of the ``[fast]`` extra on filters that are not constants
(training graphs: filters read from variables, or computed, as the depthwise input
gradient's reversed filter), against the NumPy kernels, bit for bit.

* CONV_2D and DEPTHWISE_CONV_2D prepared for a filter known only at run time: with the
  compiled kernels vs the same node without them vs plain attrs, every geometry,
  activation and bias form, special values, filters that are strided views (reversed,
  transposed).
* TRANSPOSE_CONV (CONV_2D's input gradient) with its taps added by the compiled col2im
  vs the NumPy one: the same bits, every stride, padding and output size.
* Nothing is kept from one call's filter: a replaced filter and a filter array changed
  in place between calls give the new filter's results.
* An authored CNN's train steps (conv, depthwise, their gradients): with the compiled
  kernels (which must have run on non-constant filters) vs without them vs
  ``experimental_preserve_all_tensors``: the same losses and weights, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from litetrain.ops import compiled, conv_exact, conv_gemm, fast, transpose_exact
from litetrain.ops.common import SAME, VALID
from litetrain.ops.conv import conv_2d, depthwise_conv_2d, transpose_conv
from litetrain.ops.evaluate import node_info
from litetrain.ops.registry import TensorInfo, lookup
from tests.bits import same_bits, with_specials

from .test_convnet_fast import ACTIVATIONS, CHUNKS, GEOMETRIES, _attrs

_LOADER = fast.kernels("conv")
pytestmark = pytest.mark.needs_kernels(_LOADER)


def _runtime_filter(op, x, w, b, attrs, with_kernels: bool):
    """The node's settings when its filter is known only at run time (a variable's
    value, a computed filter): its dtype and shape, no value."""
    info = node_info(op, [x, w, b], attrs)
    ins = list(info.inputs)
    ins[1] = TensorInfo(np.dtype(np.float32), w.shape)
    s = lookup(op).settings(info.__class__(info.op, info.attrs, tuple(ins), info.outputs))
    assert isinstance(s, compiled.Compiled) and s.filter is None
    if with_kernels:
        assert s.loader.wait() is not None
    else:
        s.loader = None
    return s


def _views(w):
    """``w`` and the same values as strided views (reversed taps, transposed channels)."""
    reversed_ = np.ascontiguousarray(w[:, ::-1, ::-1])[:, ::-1, ::-1]
    transposed = np.ascontiguousarray(w.transpose(3, 1, 2, 0)).transpose(3, 1, 2, 0)
    return w, reversed_, transposed


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("chunk", CHUNKS)
def test_conv_2d_with_a_runtime_filter_gives_the_numpy_bits(geometry, act, chunk, rng,
                                                            monkeypatch):
    monkeypatch.setattr(conv_gemm, "CHUNK_BYTES", chunk)
    n, h, wd, k, stride, dilation, padding = geometry
    attrs = _attrs(k, stride, dilation, padding, act)
    x = with_specials(rng, (n, h, wd, 3))
    w = with_specials(rng, (5, *k, 3))
    b1 = rng.standard_normal(5).astype(np.float32)
    fast_ = _runtime_filter("conv_2d", x, w, b1, attrs, with_kernels=True)
    plain = _runtime_filter("conv_2d", x, w, b1, attrs, with_kernels=False)
    for wv in _views(w):
        assert compiled.applies(fast_, x, wv) and not compiled.applies(plain, x, wv)
        for b in (b1, None, np.ones((1, 1, 5), np.float32), np.float32(0.5)):
            want = conv_2d(attrs, x, wv, b)
            same_bits(conv_2d(plain, x, wv, b), want)
            same_bits(conv_2d(fast_, x, wv, b), want)


@pytest.mark.parametrize("shape", [(2, 13, 12, 16), (1, 10, 9, 8), (3, 7, 8, 3)])
@pytest.mark.parametrize("k_stride_padding", [(3, 1, SAME), (3, 2, SAME), (5, 1, SAME),
                                              (3, 1, VALID), (2, 2, VALID)])
def test_depthwise_with_a_runtime_filter_gives_the_numpy_bits(shape, k_stride_padding, rng):
    k, s, padding = k_stride_padding
    for mult, act in ((1, 0), (2, 1), (1, 3), (3, 4)):
        x = with_specials(rng, shape)
        w = with_specials(rng, (1, k, k, shape[3] * mult))
        b = rng.standard_normal(shape[3] * mult).astype(np.float32)
        attrs = _attrs((k, k), (s, s), (1, 1), padding, act, depth_multiplier=mult)
        settings = _runtime_filter("depthwise_conv_2d", x, w, b, attrs, with_kernels=True)
        for wv in _views(w):
            assert compiled.applies(settings, x, wv)
            for bias in (b, None, np.float32(0.25)):
                same_bits(depthwise_conv_2d(settings, x, wv, bias),
                           depthwise_conv_2d(attrs, x, wv, bias))
        same_bits(depthwise_conv_2d(settings, x[:1, 1:], w, b),  # another input size
                   depthwise_conv_2d(attrs, x[:1, 1:], w, b))


@pytest.mark.parametrize("geometry", [((3, 3), (2, 2), SAME, (9, 10)),
                                      ((3, 3), (1, 1), SAME, (5, 6)),
                                      ((1, 1), (1, 1), VALID, (5, 6)),
                                      ((3, 2), (2, 3), VALID, (11, 18)),
                                      ((5, 5), (2, 2), SAME, (10, 12)),
                                      ((2, 2), (2, 2), VALID, (11, 13))])
def test_transpose_conv_with_compiled_col2im_gives_the_numpy_bits(geometry, rng):
    (kh, kw), (sh, sw), padding, (oh, ow) = geometry
    x = with_specials(rng, (3, 5, 6, 4))
    w = with_specials(rng, (7, kh, kw, 4))
    w.reshape(-1)[::5] = -0.0  # -0.0 products: 0.0 + -0.0 is +0.0 in both
    shape = np.array([3, oh, ow, 7], np.int32)
    for act in (0, 1, 3):
        attrs = {"stride_h": sh, "stride_w": sw, "padding": padding,
                 "fused_activation_function": act}
        s = lookup("transpose_conv").settings(node_info("transpose_conv", [shape, w, x],
                                                        attrs))
        assert isinstance(s, fast.WithKernels) and s.loader.wait() is not None
        for b in (None, rng.standard_normal(7).astype(np.float32)):
            want = transpose_conv(attrs, shape, w, x, b)
            out = np.zeros(want.shape, np.float32)
            contrib = np.ones((3, 5, 6, kh, kw, 7), np.float32)
            assert compiled.col2im(s, contrib, out, (sh, sw, 0, 0))  # it runs
            same_bits(transpose_conv(s, shape, w, x, b), want)
    # float64 operands: not prepared for the compiled kernel, NumPy's results.
    s = lookup("transpose_conv").settings(node_info(
        "transpose_conv", [shape, w.astype(np.float64), x.astype(np.float64)], attrs))
    assert not isinstance(s, fast.WithKernels)


@pytest.mark.parametrize("op", ["conv_2d", "depthwise_conv_2d"])
def test_nothing_is_kept_from_a_runtime_filter(op, rng):
    """A variable's value is replaced on every step; a computed filter may be an array
    whose values change between calls: every call uses the filter it is given."""
    x = rng.standard_normal((2, 9, 9, 4)).astype(np.float32)
    shape = (6, 3, 3, 4) if op == "conv_2d" else (1, 3, 3, 4)
    w = rng.standard_normal(shape).astype(np.float32)
    attrs = _attrs((3, 3), (1, 1), (1, 1), SAME, 1, depth_multiplier=1)
    kernel = conv_2d if op == "conv_2d" else depthwise_conv_2d
    s = _runtime_filter(op, x, w, None, attrs, with_kernels=True)
    first = kernel(s, x, w)
    same_bits(first, kernel(attrs, x, w))
    replaced = w * np.float32(-0.5)
    same_bits(kernel(s, x, replaced), kernel(attrs, x, replaced))
    w *= np.float32(3)  # the same array, new values
    changed = kernel(s, x, w)
    same_bits(changed, kernel(attrs, x, w))
    assert not np.array_equal(changed, first)


def _train(content, x, y, steps: int, **kw):
    import litetrain

    it = litetrain.Interpreter(model_content=content, **kw)
    train, infer = it.get_signature_runner("train"), it.get_signature_runner("infer")
    losses = []
    for _ in range(steps):
        losses.append(train(x=x, y=y)["loss"].copy())
        if len(losses) == 2:  # the second run starts loading the compiled kernels
            for family in fast.FAMILIES:
                loader = fast.kernels(family)
                assert loader is not None and loader.wait() is not None
    logits = infer(x=x)
    return np.array(losses), {k: v.copy() for k, v in logits.items()}


def test_cnn_train_steps_give_the_same_bits_with_and_without_compiled_kernels(rng,
                                                                             monkeypatch):
    import litetrain as lt

    model = lt.nn.Sequential([
        lt.nn.Conv2D(6, 3, padding="same", activation="relu", input_shape=(10, 10, 3)),
        lt.nn.DepthwiseConv2D(3, padding="same", activation="relu"),
        lt.nn.Conv2D(8, 1, activation="relu"),
        lt.nn.DepthwiseConv2D(3, strides=2, padding="valid", depth_multiplier=2),
        lt.nn.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
        lt.nn.Flatten(),
        lt.nn.Dense(4),
    ])
    content = lt.convert(lt.trainable(
        model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
        optimizer=lt.optimizers.SGD(0.05)))
    x = rng.standard_normal((4, 10, 10, 3)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 4)]

    # Count the compiled kernels' runs on filters that are not the node's constant (the
    # strided convolution's input gradient, 16 channels: fast.transpose_conv where its
    # GEMM's order is proven, else the compiled col2im).
    calls = {"conv_2d": 0, "depthwise_conv_2d": 0, "col2im": 0}
    applies, col2im = compiled.applies, compiled.col2im
    whole = transpose_exact.transpose_conv

    def counting_col2im(*args):
        ran = col2im(*args)
        calls["col2im"] += ran
        return ran

    def counting_whole(*args):
        out = whole(*args)
        calls["col2im"] += out is not None
        return out

    def counting(settings, x_, w_):
        chosen = applies(settings, x_, w_)
        if chosen and settings.filter is None:
            # (the model's CONV_2D filters have more than one output channel)
            calls["depthwise_conv_2d" if w_.shape[0] == 1 else "conv_2d"] += 1
        return chosen

    monkeypatch.setattr(compiled, "applies", counting)
    monkeypatch.setattr(compiled, "col2im", counting_col2im)
    monkeypatch.setattr(transpose_exact, "transpose_conv", counting_whole)
    with_kernels = _train(content, x, y, 4)
    assert calls["conv_2d"] > 0 and calls["depthwise_conv_2d"] > 0 and calls["col2im"] > 0
    without = _train(content, x, y, 4, experimental_preserve_all_tensors=True)
    monkeypatch.setattr(compiled, "applies", lambda *args: False)
    monkeypatch.setattr(compiled, "col2im", lambda *args: False)
    monkeypatch.setattr(transpose_exact, "transpose_conv", lambda *args: None)
    monkeypatch.setattr(conv_exact, "module", lambda: None)
    numpy_only = _train(content, x, y, 4)
    for other in (without, numpy_only):
        same_bits(other[0], with_kernels[0])
        assert other[1].keys() == with_kernels[1].keys()
        for key in other[1]:
            same_bits(other[1][key], with_kernels[1][key])
