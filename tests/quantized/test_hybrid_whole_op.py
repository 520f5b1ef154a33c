"""The whole-op compiled hybrid kernels (``[fast]`` extra): a 1×1 stride-1 CONV_2D and
FULLY_CONNECTED in one compiled call (quantization, exact GEMM, epilogue), and an
XNNPACK-order HARD_SWISH fused after them or after DEPTHWISE_CONV_2D — the NumPy hybrid
path's bits (then the separate HARD_SWISH node's) over random shapes (pixel counts not
multiples of the 4-pixel tiles or of the 64-pixel blocks, channel counts not multiples of
16), scales, zero points, biases, every fused activation, symmetric and asymmetric
inputs, signed zeros and all-zero items; NumPy where the compiled pass must not run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import litetrain as lt
from litetrain.ops import compiled_hybrid, fast, xnnpack_float
from litetrain.ops.common import SAME
from litetrain.ops.evaluate import node_info
from litetrain.ops.fast import kernels
from litetrain.ops.quantized import lib
from litetrain.ops.quantized.params import QParams
from litetrain.ops.registry import lookup
from litetrain.ops.resolver import OpResolverType
from tests.bits import same_bits
from tests.quantized import fixture_runs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "tf_quantized"
_LOADER = fast.kernels("hybrid")
pytestmark = pytest.mark.needs_kernels(_LOADER)


def _input(rng, shape, zero_item=False):
    """Values with ties after scaling likely, exact zeros of both signs, optionally an
    all-zero (mixed-sign) first item."""
    x = rng.standard_normal(shape).astype(np.float32) * 3
    flat = x.reshape(-1)
    pick = rng.choice(flat.size, size=max(2, flat.size // 5), replace=False)
    flat[pick] = np.round(flat[pick] * 8) / 8
    flat[pick[::3]] = rng.choice(np.array([0.0, -0.0], np.float32), pick[::3].size)
    if zero_item:
        x[:1] = rng.choice(np.array([0.0, -0.0], np.float32), x[:1].shape)
    return x


def _filter(rng, shape, per_channel, zero_point):
    w = rng.integers(-127, 128, shape).astype(np.int8)
    n = shape[0] if per_channel else 1
    scale = rng.uniform(0.001, 0.05, n).astype(np.float32)
    zp = rng.integers(-3, 4, n) if zero_point else np.zeros(n, np.int64)
    return w, QParams(scale, zp, 0, np.dtype(np.int8))


def _hard_swish_settings():
    """An XNNPACK-order HARD_SWISH node's settings (as a hybrid graph's plan makes)."""
    info = dataclasses.replace(node_info("hard_swish", [np.zeros((1, 2, 2, 3), np.float32)],
                                         {}, [np.float32]),
                               hybrid_graph=True, resolver=OpResolverType.AUTO)
    s = xnnpack_float.prepare(info)
    assert isinstance(s, xnnpack_float.XnnOrder)
    if s.loader is not None:
        s.loader.wait()
    return s


def _numpy_pass(*args):
    raise AssertionError("the whole-op compiled kernel did not run")


def _compare(op, inputs, attrs, qin, swish):
    """The node's compiled result (the NumPy passes forbidden) against its NumPy result,
    each followed by the separate XNNPACK-order HARD_SWISH when ``swish``."""
    variant = lookup(op).hybrid
    s = variant.prepare(node_info(op, inputs, attrs, [np.float32], qin))
    assert s.fast is not None and s.fast.loader.wait() is not None
    assert s.fast.pointwise is not None or s.fast.depthwise is not None
    want = variant.kernel(dataclasses.replace(s, fast=None), *inputs)
    if swish is not None:
        want = xnnpack_float.hard_swish(swish, want)
        s = dataclasses.replace(s, hard_swish=swish)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(lib, "quantize_rows", _numpy_pass)
        m.setattr(lib, "_hybrid_epilogue", _numpy_pass)
        m.setattr(compiled_hybrid, "quantize", _numpy_pass)
        got = variant.kernel(s, *inputs)
    same_bits(want, got)


@pytest.mark.parametrize("seed", range(8))
def test_pointwise_conv_gives_the_numpy_bits(seed):
    rng = np.random.default_rng(seed)
    swish = _hard_swish_settings()
    for n, h, w in ((1, 1, 1), (2, 3, 3), (1, 5, 1), (2, 9, 8), (1, 13, 11)):
        depth, o = int(rng.integers(1, 40)), int(rng.integers(1, 50))
        per_channel, zp = bool(rng.integers(2)), bool(rng.integers(2))
        x = _input(rng, (n, h, w, depth), zero_item=n > 1)
        x.flags.writeable = bool(rng.integers(2))
        wq, qw = _filter(rng, (o, 1, 1, depth), per_channel, zp)
        b = rng.standard_normal(o).astype(np.float32) if rng.integers(2) else None
        attrs = {"stride_h": 1, "stride_w": 1, "padding": SAME,
                 "fused_activation_function": int(rng.integers(6)),
                 "asymmetric_quantize_inputs": bool(rng.integers(2))}
        _compare("conv_2d", [x, wq, b], attrs, [None, qw, None],
                 swish if rng.integers(2) else None)


@pytest.mark.parametrize("seed", range(4))
def test_fully_connected_gives_the_numpy_bits(seed):
    rng = np.random.default_rng(100 + seed)
    swish = _hard_swish_settings()
    for shape, depth in (((1, 7), 7), ((3, 2, 13), 13), ((2, 3, 4, 5), 20), ((5, 33), 33)):
        o = int(rng.integers(1, 40))
        x = _input(rng, shape, zero_item=True)
        wq, qw = _filter(rng, (o, depth), bool(rng.integers(2)), False)
        b = rng.standard_normal(o).astype(np.float32) if rng.integers(2) else None
        attrs = {"fused_activation_function": int(rng.integers(4)),
                 "keep_num_dims": shape[-1] == depth and bool(rng.integers(2)),
                 "asymmetric_quantize_inputs": bool(rng.integers(2))}
        _compare("fully_connected", [x, wq, b], attrs, [None, qw, None],
                 swish if rng.integers(2) else None)


@pytest.mark.parametrize("act", [0, 1, 3, 4])
def test_depthwise_then_hard_swish_gives_the_numpy_bits(act, rng):
    swish = _hard_swish_settings()
    x = _input(rng, (2, 7, 6, 5), zero_item=True)
    wq = rng.integers(-127, 128, (1, 3, 3, 5)).astype(np.int8)
    qw = QParams(rng.uniform(0.001, 0.05, 5).astype(np.float32), np.zeros(5, np.int64), 3,
                 np.dtype(np.int8))
    attrs = {"stride_h": 1, "stride_w": 2, "dilation_h_factor": 1, "dilation_w_factor": 1,
             "padding": SAME, "depth_multiplier": 1, "fused_activation_function": act}
    b = rng.standard_normal(5).astype(np.float32)
    _compare("depthwise_conv_2d", [x, wq, b], attrs, [None, qw, None], swish)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # IEEE specials on purpose
def test_numpy_runs_where_the_whole_op_kernel_must_not(rng):
    """NaN or ±inf in the input (NumPy's result or its error naming the item), an odd
    bias, a float64 input, a 1×1 convolution with float64 sums: NumPy's bits."""
    x = _input(rng, (2, 3, 3, 6))
    wq, qw = _filter(rng, (5, 1, 1, 6), True, False)
    attrs = {"stride_h": 1, "stride_w": 1, "padding": SAME, "fused_activation_function": 0}
    variant = lookup("conv_2d").hybrid
    s = variant.prepare(node_info("conv_2d", [x, wq], attrs, [np.float32], [None, qw]))
    assert s.fast.loader.wait() is not None and s.fast.pointwise is not None
    assert compiled_hybrid.pointwise(s.fast, x, None) is not None
    bad = x.copy()
    bad[1, 2, 0, 3] = np.inf
    assert compiled_hybrid.pointwise(s.fast, bad, None) is None
    with pytest.raises(ValueError, match="item 1 of the float input holds NaN"):
        variant.kernel(s, bad, wq)  # asymmetric (per-channel filter): no defined result
    assert compiled_hybrid.pointwise(s.fast, x, np.ones(5, np.float64)) is None
    assert compiled_hybrid.pointwise(s.fast, x, np.ones((1, 5), np.float32)) is None
    assert compiled_hybrid.pointwise(s.fast, x.astype(np.float64), None) is None
    same_bits(variant.kernel(s, x, wq, np.ones(5, np.float32)),
              variant.kernel(dataclasses.replace(s, fast=None), x, wq,
                             np.ones(5, np.float32)))
    symmetric = lookup("fully_connected").hybrid  # rows quantized symmetrically
    rows, w2 = x.reshape(-1, 6), wq.reshape(5, 6)
    fc = symmetric.prepare(node_info("fully_connected", [rows, w2], {}, [np.float32],
                                     [None, qw]))
    assert fc.fast.pointwise is not None and not fc.fast.asymmetric
    bad = rows.copy()
    bad[1, 1] = np.nan
    assert compiled_hybrid.pointwise(fc.fast, bad, None) is None
    same_bits(symmetric.kernel(fc, bad, w2),
              symmetric.kernel(dataclasses.replace(fc, fast=None), bad, w2))
    large = np.full((5, 1, 1, 700), 127, np.int8)  # float32 sums not exact: no GEMM
    s = variant.prepare(node_info("conv_2d", [_input(rng, (1, 2, 2, 700)), large], attrs,
                                  [np.float32], [None, qw]))
    assert not s.exact32 and s.fast.pointwise is None
    assert kernels("hybrid") is not None


def _model_run(path, x, preserve: bool):
    it = fixture_runs.fed(path, x, lt.OpResolverType.AUTO, preserve)
    it.invoke()
    it.invoke()  # the second run starts loading the kernels
    for family in ("hybrid", "xnnpack", "conv"):
        loader = kernels(family)
        if loader is not None:
            loader.wait()
    it.invoke()
    (plan,) = it._plans.values()
    steps = plan.steps if preserve else next(iter(plan._per_shapes.values()))[0]
    # (a float program's steps: runtime/float_program)
    ops = [t.op for s in steps
           for t in (s.settings.steps if s.op == "float_program" else (s,))]
    return it.get_tensor(it.get_output_details()[0]["index"]), ops


def test_mobilenet_hard_swish_fused_into_hybrid_steps_gives_the_unrewritten_bits():
    """The TF-made dynamic-range MobileNetV3Small: the XNNPACK-order HARD_SWISH nodes after
    hybrid convolutions (and after the stem's XNNPACK-order float convolution) run inside
    them, with the bits of every node run as written
    (``experimental_preserve_all_tensors``); a NaN input still names the hybrid node."""
    path = FIXTURES / "mobilenet_v3_small" / "dynamic_range.tflite"
    with np.load(FIXTURES / "mobilenet_v3_small" / "expected.npz") as f:
        x = f["input/b4/in0"]
    fused, ops = _model_run(path, x, False)
    plain, plain_ops = _model_run(path, x, True)
    same_bits(fused, plain)
    # 9 hybrid CONV_2Ds and the stem's XNNPACK-order float one (its input rescaling fused
    # too: runtime/prologue), 8 hybrid depthwise
    assert ops.count("conv_2d+hard_swish") == 9 and ops.count("depthwise_conv_2d+hard_swish") == 8
    assert ops.count("mul+add+conv_2d+hard_swish") == 1
    assert ops.count("hard_swish") == 0
    assert not [op for op in plain_ops if "+" in op] and plain_ops.count("hard_swish") == 18
    it = fixture_runs.fed(path, x, lt.OpResolverType.AUTO)
    it.invoke()
    x = x.copy()
    x[1, 40, 40, 1] = np.nan
    it.set_tensor(it.get_input_details()[0]["index"], x)
    with pytest.raises(lt.errors.InvokeError,
                       match=r"node 18 \(conv_2d(\+hard_swish)?\).*item 1 .*NaN"):
        it.invoke()


@pytest.mark.parametrize("act", [0, 1, 2, 3])
def test_depthwise_zero_sums_keep_their_sign(act, rng):
    """No bias, an all-zero item and channels whose taps are all <= 0: sums of -0.0
    products stay -0.0 (NumPy's sums start from -0.0) through the scaling and each
    clamp, as in the NumPy path; 20 channels (a masked second block)."""
    x = _input(rng, (2, 5, 6, 20), zero_item=True)
    x[0] = 0.0
    wq = rng.integers(-127, 128, (1, 3, 3, 20)).astype(np.int8)
    wq[..., ::3] = -np.abs(wq[..., ::3]).astype(np.int8)
    qw = QParams(rng.uniform(0.001, 0.05, 20).astype(np.float32), np.zeros(20, np.int64), 3,
                 np.dtype(np.int8))
    attrs = {"stride_h": 1, "stride_w": 1, "dilation_h_factor": 1, "dilation_w_factor": 1,
             "padding": SAME, "depth_multiplier": 1, "fused_activation_function": act}
    for swish in (None, _hard_swish_settings()):
        _compare("depthwise_conv_2d", [x, wq, None], attrs, [None, qw, None], swish)
