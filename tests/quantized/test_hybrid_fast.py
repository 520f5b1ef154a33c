"""The compiled hybrid (dynamic-range) kernels (``[fast]`` extra, numba) against the
NumPy hybrid path they replace: same bits (values and signs of zero) for CONV_2D,
DEPTHWISE_CONV_2D, TRANSPOSE_CONV and FULLY_CONNECTED over geometries, per-channel and
per-tensor filter scales, filters with and without a zero point, float32 and float64
sums, symmetric and asymmetric input quantization, rounding ties, all-zero items, biases
and every fused activation; NumPy where the compiled path must not apply (NaN/inf input,
odd bias, kernels still loading); and whole TensorFlow-made dynamic-range models give the
same bits either way.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import compiled_hybrid, fast
from litetrain.ops.common import SAME, VALID
from litetrain.ops.evaluate import node_info
from litetrain.ops.fast import float_codes as codes
from litetrain.ops.quantized import lib
from litetrain.ops.quantized.lib import HybridConv, quantize_rows
from litetrain.ops.quantized.params import QParams
from litetrain.ops.registry import lookup
from tests.bits import same_bits

_LOADER = fast.kernels("hybrid")
pytestmark = pytest.mark.needs_kernels(_LOADER)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tf_quantized"

# (batch, h, w, kernel, stride, dilation, padding)
GEOMETRIES = [
    (1, 7, 9, (3, 3), (1, 1), (1, 1), SAME),
    (3, 8, 8, (3, 3), (2, 2), (1, 1), SAME),
    (2, 9, 7, (5, 5), (2, 1), (1, 1), SAME),
    (1, 11, 10, (3, 2), (1, 2), (2, 1), VALID),
    (2, 6, 5, (1, 1), (1, 1), (1, 1), SAME),
    (2, 4, 3, (3, 3), (3, 3), (1, 1), VALID),
]
ACTIVATIONS = [0, 1, 2, 3, 4, 5]  # NONE, RELU, RELU_N1_TO_1, RELU6, TANH, SIGN_BIT



def _input(rng, shape, zero_item=False):
    """Random values with ties after scaling likely (multiples of 1/8), exact zeros of
    both signs and, optionally, an all-zero first item."""
    x = rng.standard_normal(shape).astype(np.float32) * 3
    flat = x.reshape(-1)
    pick = rng.choice(flat.size, size=max(2, flat.size // 6), replace=False)
    flat[pick] = np.round(flat[pick] * 8) / 8
    flat[pick[::3]] = rng.choice(np.array([0.0, -0.0], np.float32), pick[::3].size)
    if zero_item:
        x[:1] = rng.choice(np.array([0.0, -0.0], np.float32), x[:1].shape)
    return x


def _filter(rng, shape, axis, per_channel, zero_point, large=False):
    """int8 weights and their QParams (per channel along ``axis``, or per tensor);
    ``large``: all near ±127, so float32 sums would not be exact (float64 path)."""
    w = rng.integers(-127, 128, shape).astype(np.int8)
    if large:
        w = np.where(w < 0, -127, 127).astype(np.int8)
    n = shape[axis] if per_channel else 1
    scale = rng.uniform(0.001, 0.05, n).astype(np.float32)
    zp = rng.integers(-3, 4, n) if zero_point else np.zeros(n, np.int64)
    return w, QParams(scale, zp, axis if per_channel else 0, np.dtype(np.int8))


def _numpy_pass(*args):
    raise AssertionError("the compiled kernels did not run")


def _both(op, inputs, attrs, qin):
    """(NumPy hybrid result, compiled hybrid result) for the same prepared node; the
    latter must not touch the NumPy passes."""
    variant = lookup(op).hybrid
    s = variant.prepare(node_info(op, inputs, attrs, [np.float32], qin))
    assert isinstance(s, HybridConv) and isinstance(s.fast, compiled_hybrid.FastHybrid)
    assert s.fast.loader.wait() is not None  # another test may have made a new loader
    numpy_path = variant.kernel(dataclasses.replace(s, fast=None), *inputs)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(lib, "quantize_rows", _numpy_pass)
        m.setattr(lib, "_hybrid_epilogue", _numpy_pass)
        return numpy_path, variant.kernel(s, *inputs)


def _attrs(geometry, act, **extra):
    _, _, _, _, (sh, sw), (dh, dw), padding = geometry
    return {"stride_h": sh, "stride_w": sw, "dilation_h_factor": dh, "dilation_w_factor": dw,
            "padding": padding, "fused_activation_function": act, **extra}


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_depthwise_gives_the_numpy_bits(geometry, act, rng):
    n, h, wd, k, *_ = geometry
    for mult, per_channel, zp, bias, large in ((1, True, False, True, False),
                                               (2, True, True, False, False),
                                               (1, False, False, True, False),
                                               (1, True, False, True, True),
                                               (3, False, True, True, False)):
        c = 3 if not large else 40
        x = _input(rng, (n, h, wd, c), zero_item=n > 1)
        w, qw = _filter(rng, (1, *k, c * mult), 3, per_channel, zp, large)
        x.flags.writeable = not zp  # read-only inputs too
        b = rng.standard_normal(c * mult).astype(np.float32) if bias else None
        attrs = _attrs(geometry, act, depth_multiplier=mult)
        same_bits(*_both("depthwise_conv_2d", [x, w, b], attrs, [None, qw, None]))


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_depthwise_of_many_channels_with_float32_sums_gives_the_numpy_bits(geometry, rng):
    """Multiplier 1, float32 sums (``depthwise_conv_2d32``: tiles of four pixels over a
    padded copy of each image): 40 channels (two full lane groups and a masked one),
    windows reaching into the padding on every side, widths not a multiple of four."""
    n, h, wd, k, *_ = geometry
    for per_channel, bias, act in ((True, True, 3), (False, False, 0), (True, True, 1)):
        x = _input(rng, (n, h, wd, 40), zero_item=n > 1)
        w, qw = _filter(rng, (1, *k, 40), 3, per_channel, False)
        b = rng.standard_normal(40).astype(np.float32) if bias else None
        attrs = _attrs(geometry, act, depth_multiplier=1)
        same_bits(*_both("depthwise_conv_2d", [x, w, b], attrs, [None, qw, None]))


@pytest.mark.parametrize("per_channel", [False, True])  # symmetric, asymmetric inputs
def test_depthwise_with_float64_sums_gives_the_numpy_bits(per_channel, rng):
    """A 23×23 filter of ±127: float32 sums could round, both paths sum in float64."""
    geometry = (2, 9, 8, (23, 23), (1, 2), (1, 1), SAME)
    x = _input(rng, (2, 9, 8, 3), zero_item=True)
    w, qw = _filter(rng, (1, 23, 23, 6), 3, per_channel, False, large=True)
    s = lookup("depthwise_conv_2d").hybrid.prepare(
        node_info("depthwise_conv_2d", [x, w], _attrs(geometry, 0, depth_multiplier=2),
                  [np.float32], [None, qw]))
    assert not s.exact32 and s.fast.depthwise.dtype == np.float64
    b = rng.standard_normal(6).astype(np.float32)
    same_bits(*_both("depthwise_conv_2d", [x, w, b], _attrs(geometry, 3, depth_multiplier=2),
                      [None, qw, None]))


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("act", [0, 1, 3, 4])
def test_conv_2d_gives_the_numpy_bits(geometry, act, rng):
    n, h, wd, k, *_ = geometry
    for per_channel, zp, bias, large, asym in ((True, False, True, False, False),
                                               (False, True, True, False, False),
                                               (False, False, False, False, True),
                                               (True, False, True, True, False)):
        c = 4 if not large else 200
        x = _input(rng, (n, h, wd, c), zero_item=n > 1)
        w, qw = _filter(rng, (6, *k, c), 0, per_channel, zp, large)
        b = rng.standard_normal(6).astype(np.float32) if bias else None
        attrs = _attrs(geometry, act, asymmetric_quantize_inputs=asym)
        same_bits(*_both("conv_2d", [x, w, b], attrs, [None, qw, None]))


@pytest.mark.parametrize("asymmetric", [False, True])
@pytest.mark.parametrize("keep_num_dims", [False, True])
@pytest.mark.parametrize("act", [0, 1, 2, 3])
def test_fully_connected_gives_the_numpy_bits(asymmetric, keep_num_dims, act, rng):
    for per_channel, depth, bias, large in ((True, 13, True, False), (False, 16, False, False),
                                            (True, 700, True, True), (False, 5, True, False)):
        x = _input(rng, (3, 2, depth), zero_item=True)
        w, qw = _filter(rng, (7, depth), 0, per_channel, False, large)
        b = rng.standard_normal(7).astype(np.float32) if bias else None
        attrs = {"fused_activation_function": act, "keep_num_dims": keep_num_dims,
                 "asymmetric_quantize_inputs": asymmetric}
        same_bits(*_both("fully_connected", [x, w, b], attrs, [None, qw, None]))


@pytest.mark.parametrize("stride, padding", [((1, 1), SAME), ((2, 2), SAME), ((2, 1), VALID)])
def test_transpose_conv_gives_the_numpy_bits(stride, padding, rng):
    x = _input(rng, (2, 5, 4, 3), zero_item=True)
    w, qw = _filter(rng, (4, 3, 3, 3), 0, True, False)
    oh, ow = (5 - 1) * stride[0] + 3 if padding == VALID else 5 * stride[0], \
        (4 - 1) * stride[1] + 3 if padding == VALID else 4 * stride[1]
    shape = np.array([2, oh, ow, 4], np.int32)
    b = rng.standard_normal(4).astype(np.float32)
    attrs = {"stride_h": stride[0], "stride_w": stride[1], "padding": padding,
             "fused_activation_function": 1}
    same_bits(*_both("transpose_conv", [shape, w, x, b], attrs, [None, qw, None, None]))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # IEEE specials on purpose
def test_quantization_gives_the_numpy_rows(rng):
    """Every row rule: symmetric and asymmetric, ties in the blocks of 8 and on the tail,
    all-zero rows, a range below float32's smallest scale, one-sign rows, signed zeros."""
    module = _LOADER.module
    x = _input(rng, (12, 21))
    x[1] = 0.0
    x[2] = -0.0
    x[3] = np.float32(1e-45)  # scale rounds to 0 in float32: zeros, scale 1, the offset
    x[4] = np.abs(x[4]) + 1
    x[5] = -np.abs(x[5]) - 1
    x[6] = np.arange(21, dtype=np.float32) / 2 - 5  # halves
    for asymmetric in (False, True):
        q, scale, offset = quantize_rows(x, asymmetric)
        for dtype in (np.float32, np.float64):
            centred = np.empty(x.shape, dtype)
            got_scale, got_offset = np.empty(12, np.float32), np.empty(12, np.float32)
            assert module.quantize_rows(x, asymmetric, centred, got_scale, got_offset)
            want = (q - offset[:, None]).astype(dtype)
            np.testing.assert_array_equal(centred.view(np.uint8), want.view(np.uint8))
            same_bits(got_scale, scale)
            same_bits(got_offset, offset)


def test_numpy_runs_where_the_compiled_path_must_not(rng):
    """NaN/inf in the input, an odd bias, kernels still loading: the NumPy kernel's
    results (or its error)."""
    x = _input(rng, (2, 6, 6, 3))
    w, qw = _filter(rng, (1, 3, 3, 3), 3, True, False)
    attrs = _attrs(GEOMETRIES[0], 1, depth_multiplier=1)
    s = lookup("depthwise_conv_2d").hybrid.prepare(
        node_info("depthwise_conv_2d", [x, w], attrs, [np.float32], [None, qw]))
    assert s.fast.loader.wait() is not None
    assert compiled_hybrid.depthwise_conv_2d(s.fast, x, None) is not None
    symmetric = dataclasses.replace(s, asymmetric=False, fast=compiled_hybrid.FastHybrid(
        attrs, s.fast.loader, s.fast.w_scale, s.fast.depthwise, False))
    bad = x.copy()
    bad[1, 2, 2, 1] = np.inf
    assert compiled_hybrid.depthwise_conv_2d(s.fast, bad, None) is None
    assert compiled_hybrid.quantize(symmetric.fast, bad, 2, np.float32) is None
    bad[1, 2, 2, 1] = np.nan
    assert compiled_hybrid.quantize(symmetric.fast, bad, 2, np.float32) is None
    assert compiled_hybrid.depthwise_conv_2d(s.fast, x, np.ones(3, np.float64)) is None
    assert compiled_hybrid.depthwise_conv_2d(s.fast, x, np.ones((1, 3), np.float32)) is None
    assert compiled_hybrid.depthwise_conv_2d(s.fast, x.astype(np.float64), None) is None
    started = []
    loading = compiled_hybrid.FastHybrid(attrs, type("Loading", (), {
        "module": None, "start": lambda self: started.append(1)})(), s.fast.w_scale,
        s.fast.depthwise, True)
    assert compiled_hybrid.depthwise_conv_2d(loading, x, None) is None
    assert compiled_hybrid.quantize(loading, x, 2, np.float32) is None
    kernel = lookup("depthwise_conv_2d").hybrid.kernel
    # Still loading: NumPy's bits; a node's first run never starts loading, its second does.
    same_bits(kernel(dataclasses.replace(s, fast=loading), x, w),
               kernel(dataclasses.replace(s, fast=None), x, w))
    assert loading.runs == 1 and not started
    kernel(dataclasses.replace(s, fast=loading), x, w)
    assert started
    for variant in (s, symmetric):
        numpy_path = dataclasses.replace(variant, fast=None)
        if variant.fast.asymmetric:  # no defined result: a clear error, either way
            for path in (variant, numpy_path):
                with pytest.raises(ValueError, match="item 1 of the float input holds NaN"):
                    kernel(path, bad, w)
        else:
            same_bits(kernel(variant, bad, w), kernel(numpy_path, bad, w))
        b = np.ones(3, np.float64)
        np.testing.assert_array_equal(kernel(variant, x, w, b), kernel(numpy_path, x, w, b))


@pytest.mark.parametrize("kind", ["mobilenet_v3_small", "efficientnet_like", "conv_transpose_ae",
                                  "dilated_conv1d"])
def test_dynamic_range_models_give_the_same_bits_compiled(kind, monkeypatch):
    """A TensorFlow-made dynamic-range model: the same outputs with and without the
    compiled hybrid kernels (the TF comparisons in ``test_tf_resolvers`` then hold for
    both)."""
    with np.load(FIXTURES / kind / "expected.npz") as f:
        x = f["input/b4/in0"]

    ran = []

    def counted(kernel):
        def spy(*args):
            out = kernel(*args)
            ran.append(out is not None)
            return out
        return spy

    def run(jit: bool):
        monkeypatch.setenv("LITETRAIN_JIT", "1" if jit else "0")
        fast.kernels.cache_clear()
        try:
            it = lt.Interpreter(model_path=str(FIXTURES / kind / "dynamic_range.tflite"))
            d = it.get_input_details()[0]
            it.resize_tensor_input(d["index"], list(x.shape))
            it.allocate_tensors()
            it.set_tensor(d["index"], x)
            it.invoke()
            it.invoke()  # the second run starts loading the kernels
            if jit:
                fast.kernels("hybrid").wait()
                fast.kernels("conv").wait()
                module = fast.kernels("hybrid").module  # count compiled calls
                for name in ("quantize_rows", "depthwise_conv_2d", "depthwise_conv_2d32",
                             "pointwise"):
                    monkeypatch.setattr(module, name, counted(getattr(module, name)))
            it.invoke()
            (plan,) = it._plans.values()
            in_programs = [  # the kernels called from a float program (runtime/float_program)
                s.settings for entry in plan._per_shapes.values() for s in entry[0]
                if s.op == "float_program" and s.settings.state == "ready"
                and {int(c) for c in s.settings.code[:, 0]} & {
                    codes.OP_HYBRID_POINTWISE, codes.OP_HYBRID_DEPTHWISE}]
            assert not jit or any(ran) or in_programs, "no compiled hybrid kernel ran"
            return it.get_tensor(it.get_output_details()[0]["index"])
        finally:
            monkeypatch.delenv("LITETRAIN_JIT")
            fast.kernels.cache_clear()

    same_bits(run(True), run(False))


def test_a_one_shot_dynamic_range_run_does_not_load_numba():
    """The cold start of a dynamic-range model never imports numba; its second run starts
    loading the hybrid kernels in the background."""
    import subprocess
    import sys

    model = FIXTURES / "efficientnet_like" / "dynamic_range.tflite"
    code = f"""
import sys, numpy as np, litetrain
it = litetrain.Interpreter(model_path={str(model)!r})
it.allocate_tensors()
d = it.get_input_details()[0]
it.set_tensor(d['index'], np.ones(d['shape'], np.float32))
it.invoke()
import time; time.sleep(0.5)  # a load started by the first run would be under way
assert 'numba' not in sys.modules
it.invoke()
from litetrain.ops.fast import kernels
print(kernels('hybrid')._started)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    assert done.stdout.strip() == "True"
