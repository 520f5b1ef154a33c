"""Quantized execution: TensorFlow's int8 and dynamic-range fixtures, integer kernels
against float references (within one quantization step), fixed-point helpers against
exact arithmetic, and nonsense quantization parameters rejected at load time."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import litetrain as lt
from litetrain.ir import Quantization
from litetrain.ops.evaluate import evaluate, node_info
from litetrain.ops.quantized.fixed_point import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    round_half_away,
)
from litetrain.ops.quantized.lib import requantize_float
from litetrain.ops.quantized.params import QParams
from litetrain.ops.registry import lookup
from litetrain.tflite.writer import write_model
from tests.bits import same_bits
from tests.conftest import FIXTURES, run_kernel

INFERENCE = FIXTURES / "inference"
R = np.random.default_rng(3)


@pytest.fixture(scope="module")
def expected():
    return dict(np.load(INFERENCE / "expected.npz"))


def test_int8_fixture_matches_tensorflow(expected):
    runner = lt.Interpreter(model_path=str(INFERENCE / "int8.tflite")).get_signature_runner()
    got = runner(x=expected["int8_x"])["probs"]
    np.testing.assert_array_equal(got, expected["int8_probs"])  # bit for bit


def test_dynamic_range_fixture_matches_tensorflow(expected):
    runner = lt.Interpreter(model_path=str(INFERENCE / "dynamic_range.tflite")
                            ).get_signature_runner()
    np.testing.assert_allclose(runner(x=expected["x"])["probs"],
                               expected["dynamic_range_probs"], atol=1e-4)


def test_input_details_report_quantization(expected):
    details = lt.Interpreter(model_path=str(INFERENCE / "int8.tflite")).get_input_details()[0]
    scale, zp = details["quantization"]
    assert details["dtype"] == np.int8 and scale > 0
    # a user can quantize float inputs with the reported parameters
    q = np.clip(np.round(expected["x"] / scale) + zp, -128, 127).astype(np.int8)
    assert np.mean(q == expected["int8_x"]) > 0.99


@pytest.mark.parametrize("real", [0.0037, 0.5, 0.99999, 1.0, 3.7, 1e-6, 123.0])
def test_fixed_point_rescale_is_within_half_a_step(real):
    m, s = quantize_multiplier(real)
    x = R.integers(-(1 << 20), 1 << 20, 1000)
    got = multiply_by_quantized_multiplier(x, m, s)
    assert np.max(np.abs(got - x * real)) <= 0.5 + 1e-6 * np.abs(x * real).max()


def test_round_half_away_from_zero():
    assert round_half_away(np.array([0.5, 1.5, -0.5, -2.5, 2.4])).tolist() == [1, 2, -1, -3, 2]


def _q(shape, scale, zp, dtype=np.int8, lo=-1.0, hi=1.0):
    """Random float values, their quantized form and parameters."""
    real = R.uniform(lo, hi, shape).astype(np.float32)
    p = QParams(np.array([scale], np.float32), np.array([zp]), 0, np.dtype(dtype))
    return requantize_float(real, p), p


def _per_channel(w: np.ndarray, axis: int) -> tuple[np.ndarray, QParams]:
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    scale = (np.abs(moved).max(axis=1) / 127).astype(np.float32)
    p = QParams(scale, np.zeros(scale.size, np.int64), axis, np.dtype(np.int8))
    return requantize_float(w, p), p


def _bias(b: np.ndarray, px: QParams, pw: QParams) -> np.ndarray:
    return np.round(b / (px.s * pw.scale.astype(np.float64))).astype(np.int32)


CONV = {"padding": 0, "stride_h": 2, "stride_w": 1, "dilation_h_factor": 1,
        "dilation_w_factor": 1, "fused_activation_function": 1}


@pytest.mark.parametrize("op", ["fully_connected", "conv_2d", "depthwise_conv_2d"])
def test_matmul_like_kernels_within_one_step(op):
    if op == "fully_connected":
        xq, px = _q((5, 12), 0.01, 3)
        w, axis, attrs = R.normal(size=(6, 12)).astype(np.float32) * 0.3, 0, {
            "fused_activation_function": 1}
    elif op == "conv_2d":
        xq, px = _q((2, 7, 6, 3), 0.01, -5)
        w, axis, attrs = R.normal(size=(4, 3, 3, 3)).astype(np.float32) * 0.3, 0, CONV
    else:
        xq, px = _q((2, 7, 6, 3), 0.01, -5)
        w, axis, attrs = R.normal(size=(1, 3, 3, 6)).astype(np.float32) * 0.3, 3, {
            **CONV, "depth_multiplier": 2}
    wq, pw = _per_channel(w, axis)
    b = R.normal(size=w.shape[axis]).astype(np.float32) * 0.1
    bq = _bias(b, px, pw)
    po = QParams(np.array([0.02], np.float32), np.array([-10]), 0, np.dtype(np.int8))
    got = evaluate(op, xq, wq, bq, attrs=attrs, variant="integer", qin=[px, pw, None],
                   qout=[po], out_dtypes=[np.int8])
    ref = run_kernel(op, px.dequantize(xq), pw.dequantize(wq),
                     bq * (px.s * pw.scale.astype(np.float64)), **attrs)
    want = requantize_float(ref.astype(np.float32), po)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_binary_kernels_within_one_step(op):
    aq, pa = _q((4, 5), 0.01, 2)
    bq, pb = _q((5,), 0.03, -7)
    po = QParams(np.array([0.025], np.float32), np.array([4]), 0, np.dtype(np.int8))
    got = evaluate(op, aq, bq, variant="integer", qin=[pa, pb], qout=[po],
                   out_dtypes=[np.int8])
    want = requantize_float(run_kernel(op, pa.dequantize(aq), pb.dequantize(bq)), po)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


@pytest.mark.parametrize("op, attrs, out", [
    ("softmax", {"beta": 1.0}, (1 / 256, -128)),
    ("logistic", {}, (1 / 256, -128)),
    ("tanh", {}, (1 / 128, 0)),
    ("average_pool_2d", {"padding": 0, "stride_h": 2, "stride_w": 2, "filter_height": 3,
                         "filter_width": 3, "fused_activation_function": 0}, None),
    ("max_pool_2d", {"padding": 1, "stride_h": 2, "stride_w": 2, "filter_height": 2,
                     "filter_width": 2, "fused_activation_function": 0}, None),
])
def test_unary_kernels_within_one_step(op, attrs, out):
    shape = (2, 10) if op in ("softmax", "logistic", "tanh") else (2, 7, 6, 3)
    xq, px = _q(shape, 0.03, 5, lo=-3, hi=3)
    po = px if out is None else QParams(np.array([out[0]], np.float32), np.array([out[1]]), 0,
                                        np.dtype(np.int8))
    got = evaluate(op, xq, attrs=attrs, variant="integer", qin=[px], qout=[po],
                   out_dtypes=[np.int8])
    want = requantize_float(run_kernel(op, px.dequantize(xq), **attrs), po)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_quantize_dequantize_round_trip_and_requantize():
    p8 = QParams(np.array([0.05], np.float32), np.array([-3]), 0, np.dtype(np.int8))
    pu8 = QParams(np.array([0.05], np.float32), np.array([125]), 0, np.dtype(np.uint8))
    x = R.uniform(-6, 6, 100).astype(np.float32)
    q = evaluate("quantize", x, variant="integer", qin=[None], qout=[p8],
                 out_dtypes=[np.int8])
    back = evaluate("dequantize", q, variant="integer", qin=[p8], qout=[None],
                    out_dtypes=[np.float32])
    inside = np.abs(x) < 6.2
    assert np.abs(back - x)[inside].max() <= 0.025 + 1e-6
    u = evaluate("quantize", q, variant="integer", qin=[p8], qout=[pu8],
                 out_dtypes=[np.uint8])  # int8 -> uint8: same reals, shifted zero point
    np.testing.assert_array_equal(u.astype(int) - 125, q.astype(int) + 3)


@pytest.mark.parametrize("asymmetric", [False, True])
def test_hybrid_fully_connected_close_to_float(asymmetric):
    x = R.normal(size=(4, 16)).astype(np.float32)
    w = R.normal(size=(8, 16)).astype(np.float32)
    wq, pw = _per_channel(w, 0)
    got = evaluate("fully_connected", x, wq, None, variant="hybrid", qin=[None, pw, None],
                   attrs={"asymmetric_quantize_inputs": asymmetric}, out_dtypes=[np.float32])
    want = x @ pw.dequantize(wq).T
    assert np.abs(got - want).max() < 0.02 * np.abs(want).max()


def _with_quantization(tensor_name_part: str, **change) -> bytes:
    model = lt.read_model(INFERENCE / "int8.tflite")
    sg = model.subgraphs[0]
    for k, t in enumerate(sg.tensors):
        if tensor_name_part in t.name and t.quantization is not None:
            sg.tensors[k] = dataclasses.replace(
                t, quantization=dataclasses.replace(t.quantization, **change))
            return write_model(model)
    raise AssertionError(tensor_name_part)


@pytest.mark.parametrize("change, message", [
    ({"scale": np.array([0.0], np.float32)}, "scales must be finite and > 0"),
    ({"zero_point": np.array([300])}, "zero point 300 is outside int8"),
])
def test_nonsense_per_tensor_params_fail_at_load(change, message):
    data = _with_quantization("serve_x", **change)
    with pytest.raises(lt.ModelFormatError, match=message):
        lt.Interpreter(model_content=data)


def test_missing_per_channel_axis_fails_at_load():
    model = lt.read_model(INFERENCE / "int8.tflite")
    sg = model.subgraphs[0]
    k, t = next((k, t) for k, t in enumerate(sg.tensors)
                if t.quantization is not None and t.quantization.per_channel)
    sg.tensors[k] = dataclasses.replace(t, quantization=Quantization(
        t.quantization.scale, t.quantization.zero_point, 7))
    with pytest.raises(lt.ModelFormatError, match="quantized_dimension 7 does not exist"):
        lt.Interpreter(model_content=write_model(model))


@pytest.mark.parametrize("per_channel", [False, True])  # symmetric, asymmetric inputs
@pytest.mark.parametrize("act", [0, 1, 3])
def test_hybrid_pointwise_conv_as_one_gemm_gives_the_float_kernels_bits(per_channel, act, rng):
    """A 1×1 stride-1 hybrid CONV_2D multiplies its quantized input by the filter laid out
    once (exact float32 sums): the same bits as the float kernel's chunked GEMM."""
    variant = lookup("conv_2d").hybrid
    for n, h, w, c, o, zp in ((1, 5, 7, 16, 24, 0), (3, 4, 4, 40, 8, 2), (2, 1, 1, 96, 16, 0)):
        x = (rng.standard_normal((n, h, w, c)) * 3).astype(np.float32)
        x[0, 0, 0, :3] = [0.0, -0.0, 0.125]
        wq = rng.integers(-127, 128, (o, 1, 1, c)).astype(np.int8)
        scales = rng.uniform(0.001, 0.05, o if per_channel else 1).astype(np.float32)
        qw = QParams(scales, np.full(scales.size, zp), 0, np.dtype(np.int8))
        b = rng.standard_normal(o).astype(np.float32)
        attrs = {"stride_h": 1, "stride_w": 1, "dilation_h_factor": 1,
                 "dilation_w_factor": 1, "padding": 1, "fused_activation_function": act}
        s = variant.prepare(node_info("conv_2d", [x, wq, b], attrs, [np.float32],
                                      [None, qw, None]))
        assert s.gemm is not None and s.gemm.flags.c_contiguous
        plain = dataclasses.replace(s, gemm=None, fast=None)
        same_bits(variant.kernel(dataclasses.replace(s, fast=None), x, wq, b),
                  variant.kernel(plain, x, wq, b))
