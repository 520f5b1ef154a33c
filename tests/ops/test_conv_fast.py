"""The fast convolution paths against their references (issue 15).

* The strided-view im2col and the one-GEMM CONV_2D against a direct float64 sum over
  taps (strides, dilations, SAME/VALID, odd sizes, groups, batch 1 and more).
* The compiled kernels (``[fast]`` extra, numba) against the NumPy kernels they replace:
  same bits (values and signs of zero), every geometry, multiplier, bias and activation,
  NaN and signed zeros included; the NumPy path where the compiled one must not apply.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from litetrain.ops import compiled, fast
from litetrain.ops.common import SAME, VALID, pad_before_after
from litetrain.ops.conv import conv_2d, depthwise_conv_2d
from litetrain.ops.evaluate import node_info
from litetrain.ops.registry import lookup
from tests.bits import same_bits, with_specials

# (batch, h, w, kernel, stride, dilation, padding)
GEOMETRIES = [
    (1, 7, 9, (3, 3), (1, 1), (1, 1), SAME),
    (3, 8, 8, (3, 3), (2, 2), (1, 1), SAME),
    (2, 9, 7, (5, 5), (2, 1), (1, 1), SAME),
    (1, 11, 10, (3, 2), (1, 2), (2, 1), VALID),
    (2, 6, 5, (1, 1), (2, 2), (1, 1), SAME),
    (1, 5, 5, (3, 3), (1, 1), (2, 2), SAME),
    (2, 4, 3, (3, 3), (3, 3), (1, 1), VALID),
]
ACTIVATIONS = [0, 1, 2, 3, 4]  # NONE, RELU, RELU_N1_TO_1, RELU6, TANH


def _attrs(kernel_stride_dilation_padding, act=0, **extra):
    _, (sh, sw), (dh, dw), padding = kernel_stride_dilation_padding
    return {"stride_h": sh, "stride_w": sw, "dilation_h_factor": dh, "dilation_w_factor": dw,
            "padding": padding, "fused_activation_function": act, **extra}


def _direct(x, w, attrs, depthwise: bool):
    """float64 sum over taps of the zero-padded input (the definition, no im2col)."""
    _, h, wd, c = x.shape
    _, kh, kw, _ = w.shape
    sh, sw = attrs["stride_h"], attrs["stride_w"]
    dh, dw = attrs["dilation_h_factor"], attrs["dilation_w_factor"]
    oh, pt, pb = pad_before_after(h, kh, sh, dh, attrs["padding"])
    ow, pl, pr = pad_before_after(wd, kw, sw, dw, attrs["padding"])
    xp = np.pad(x.astype(np.float64), ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    out = None
    for i, j in itertools.product(range(kh), range(kw)):
        win = xp[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
        if depthwise:
            mult = w.shape[3] // c
            term = np.repeat(win, mult, axis=3) * w[0, i, j]
        else:
            o, ci = w.shape[0], w.shape[3]
            groups, og = c // ci, w.shape[0] // (c // ci)
            term = np.concatenate([
                win[..., g * ci:(g + 1) * ci] @ w[g * og:(g + 1) * og, i, j].T.astype(np.float64)
                for g in range(groups)], axis=3)
            assert term.shape[3] == o
        out = term if out is None else out + term
    return out


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("groups", [1, 2])
def test_conv_2d_matches_the_direct_sum(geometry, groups, rng):
    n, h, wd, k, *_ = geometry
    x = rng.standard_normal((n, h, wd, 4)).astype(np.float32)
    w = rng.standard_normal((6, *k, 4 // groups)).astype(np.float32)
    attrs = _attrs((k, *geometry[4:]))
    got = conv_2d(attrs, x, w)
    np.testing.assert_allclose(got, _direct(x, w, attrs, False), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("mult", [1, 2])
def test_depthwise_matches_the_direct_sum(geometry, mult, rng):
    n, h, wd, k, *_ = geometry
    x = rng.standard_normal((n, h, wd, 5)).astype(np.float32)
    w = rng.standard_normal((1, *k, 5 * mult)).astype(np.float32)
    attrs = _attrs((k, *geometry[4:]), depth_multiplier=mult)
    got = depthwise_conv_2d(attrs, x, w)
    np.testing.assert_allclose(got, _direct(x, w, attrs, True), rtol=1e-5, atol=1e-5)


def _padded_tap_sum(x, w, attrs):
    """The simple float32 depthwise reference: pad the input, then sum fresh tap products
    in tap order (what the kernel computed before it stopped copying the input)."""
    _, kh, kw, cm = w.shape
    c = x.shape[3]
    sh, sw = attrs["stride_h"], attrs["stride_w"]
    dh, dw = attrs["dilation_h_factor"], attrs["dilation_w_factor"]
    oh, pt, pb = pad_before_after(x.shape[1], kh, sh, dh, attrs["padding"])
    ow, pl, pr = pad_before_after(x.shape[2], kw, sw, dw, attrs["padding"])
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    out = None
    for i, j in itertools.product(range(kh), range(kw)):
        win = xp[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw]
        term = win[..., :, None] * w[0, i, j].reshape(c, cm // c)
        out = term if out is None else out + term
    return out.reshape(*out.shape[:3], cm)


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("in_bounds_form", [False, True])
def test_depthwise_gives_the_padded_tap_sums_bits(geometry, in_bounds_form, rng, monkeypatch):
    """Both NumPy forms (padded copy for small inputs, in-bounds taps for large ones)."""
    from litetrain.ops import conv

    monkeypatch.setattr(conv, "_SMALL_INPUT", -1 if in_bounds_form else 1 << 40)
    n, h, wd, k, *_ = geometry
    for mult in (1, 2):
        x = with_specials(rng, (n, h, wd, 3))
        w = rng.standard_normal((1, *k, 3 * mult)).astype(np.float32)
        w.reshape(-1)[::5] = -0.0
        attrs = _attrs((k, *geometry[4:]), depth_multiplier=mult)
        same_bits(depthwise_conv_2d(attrs, x, w), _padded_tap_sum(x, w, attrs))


# --- compiled kernels --------------------------------------------------------------------

_LOADER = fast.kernels("conv")
needs_numba = pytest.mark.needs_kernels(_LOADER)




def _settings(op, x, w, b, attrs):
    s = lookup(op).settings(node_info(op, [x, w, b], attrs))
    assert isinstance(s, compiled.Compiled)
    return s


@needs_numba
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_compiled_depthwise_gives_the_numpy_bits(geometry, act, rng):
    n, h, wd, k, *_ = geometry
    for mult, bias in ((1, True), (2, True), (1, False), (3, False)):
        x = with_specials(rng, (n, h, wd, 3))
        w = rng.standard_normal((1, *k, 3 * mult)).astype(np.float32)
        b = rng.standard_normal(3 * mult).astype(np.float32) if bias else None
        attrs = _attrs((k, *geometry[4:]), act, depth_multiplier=mult)
        want = depthwise_conv_2d(attrs, x, w, b)
        same_bits(depthwise_conv_2d(_settings("depthwise_conv_2d", x, w, b, attrs), x, w, b),
                   want)
        # The same through a non-contiguous input view, and read-only arrays.
        xv = np.concatenate([x, x], axis=3)[..., ::2]
        same_bits(depthwise_conv_2d(_settings("depthwise_conv_2d", x, w, b, attrs), xv, w, b),
                   depthwise_conv_2d(attrs, xv, w, b))
        for a in (x, w) if b is None else (x, w, b):
            a.flags.writeable = False
        same_bits(depthwise_conv_2d(_settings("depthwise_conv_2d", x, w, b, attrs), x, w, b),
                   want)


@needs_numba
@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_compiled_conv_2d_epilogue_gives_the_numpy_bits(geometry, act, rng):
    n, h, wd, k, *_ = geometry
    for groups, bias in ((1, True), (1, False), (2, True)):
        x = with_specials(rng, (n, h, wd, 4))
        w = rng.standard_normal((6, *k, 4 // groups)).astype(np.float32)
        b = rng.standard_normal(6).astype(np.float32) if bias else None
        attrs = _attrs((k, *geometry[4:]), act)
        plain = _settings("conv_2d", x, w, b, attrs)
        plain.loader = None  # the same prepared node (GEMM filter layout), NumPy only
        same_bits(conv_2d(_settings("conv_2d", x, w, b, attrs), x, w, b),
                   conv_2d(plain, x, w, b))


@needs_numba
def test_compiled_kernels_apply_only_to_their_constant_filter(rng):
    x = rng.standard_normal((1, 5, 5, 3)).astype(np.float32)
    w = rng.standard_normal((1, 3, 3, 3)).astype(np.float32)
    attrs = _attrs(((3, 3), (1, 1), (1, 1), SAME), 3, depth_multiplier=1)
    s = _settings("depthwise_conv_2d", x, w, None, attrs)
    other = w * 2  # not the prepared filter: the NumPy kernel runs
    assert not compiled.applies(s, x, other)
    same_bits(depthwise_conv_2d(s, x, other), depthwise_conv_2d(attrs, x, other))
    # float64, a bias of another dtype or shape: NumPy, same results as without prepare.
    assert not compiled.applies(s, x.astype(np.float64), w)
    for b in (np.ones(3, np.float64), np.float32(0.5), np.ones((1, 1, 3), np.float32)):
        same_bits(depthwise_conv_2d(s, x, w, b), depthwise_conv_2d(attrs, x, w, b))
    # A filter that is not a constant: compiled settings without a filter, for any
    # float32 filter array (tests/ops/test_convnet_fast_train.py); not float32: plain
    # attrs, no compiled kernel.
    info = node_info("depthwise_conv_2d", [x, w], attrs)
    runtime_filter = info.inputs[1].__class__(np.dtype(np.float32), w.shape)
    info = info.__class__(info.op, info.attrs, (info.inputs[0], runtime_filter), info.outputs)
    prepared = compiled.prepare(info)
    assert isinstance(prepared, compiled.Compiled) and prepared.filter is None
    assert not compiled.applies(prepared, x, w.astype(np.float64))
    info = node_info("conv_2d", [x.astype(np.float64), w.astype(np.float64)], attrs)
    assert not isinstance(compiled.prepare(info), compiled.Compiled)
    # Kernels still loading: NumPy runs (same bits either way).
    loading = compiled.Compiled(attrs, w, type("Loading", (), {"module": None,
                                                               "start": lambda self: None})(),
                                depthwise=True)
    assert not compiled.applies(loading, x, w)
    same_bits(depthwise_conv_2d(loading, x, w), depthwise_conv_2d(attrs, x, w))


def test_jit_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("LITETRAIN_JIT", "0")
    fast.kernels.cache_clear()
    try:
        assert fast.kernels("conv") is None
    finally:
        monkeypatch.delenv("LITETRAIN_JIT")
        fast.kernels.cache_clear()


def test_numba_is_not_loaded_by_import_or_a_one_shot_run():
    """``import litetrain`` and a model's first run never import numba (cold start);
    the second run starts loading it in the background."""
    import subprocess
    import sys
    from pathlib import Path

    model = (Path(__file__).resolve().parents[1] / "fixtures" / "tf_quantized"
             / "mobilenet_v2_035" / "float.tflite")
    code = f"""
import sys, numpy as np, litetrain
assert 'numba' not in sys.modules
it = litetrain.Interpreter(model_path={str(model)!r})
it.allocate_tensors()
it.set_tensor(it.get_input_details()[0]['index'], np.zeros((1, 96, 96, 3), np.float32))
it.invoke()
assert 'numba' not in sys.modules
it.invoke()
from litetrain.ops.fast import kernels
loader = kernels('conv')
print(loader is not None and loader._started)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == str(_LOADER is not None)
