"""The TensorFlow-made quantized/convnet fixtures (tests/fixtures/tf_quantized): every file
parses into a verified IR whose inputs and outputs are what TensorFlow Lite reported (names,
dtypes, shapes, quantization), and expected.npz holds every output meta.json promises.

Here the float and float16 files' outputs are checked against TensorFlow's; the int8 and
dynamic-range outputs, per op resolver type, are in tests/quantized/test_tf_resolvers.py
(report.py prints the whole picture, STATUS.md). The round trip through the writer is in
test_writer.py (it covers every fixture file).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import litetrain
from litetrain import ir
from tests.conftest import FIXTURES

ROOT = FIXTURES / "tf_quantized"
KINDS = sorted(p.parent.name for p in ROOT.glob("*/meta.json"))
CASES = [(kind, variant) for kind in KINDS
         for variant in json.loads((ROOT / kind / "meta.json").read_text())["variants"]]


def test_every_kind_is_there():
    assert KINDS == ["conv_transpose_ae", "dilated_conv1d", "efficientnet_like",
                     "mobilenet_v2_035", "mobilenet_v3_small"]


def _same_details(ours: dict, tf: dict) -> None:
    where = tf["name"]
    assert ours["name"] == tf["name"], where
    assert np.dtype(ours["dtype"]).name == tf["dtype"], where
    assert ours["shape_signature"].tolist() == tf["shape_signature"], where
    q = ours["quantization_parameters"]
    assert q["scales"].tolist() == pytest.approx(tf["scale"], rel=1e-7), where
    assert q["zero_points"].tolist() == tf["zero_point"], where


@pytest.mark.parametrize(("kind", "variant"), CASES, ids=[f"{k}/{v}" for k, v in CASES])
def test_files_match_what_tensorflow_reported(kind, variant):
    meta = json.loads((ROOT / kind / "meta.json").read_text())["variants"][variant]
    path = ROOT / kind / meta["file"]
    model = litetrain.read_model(path)
    ir.verify(model)
    ops = {}
    for node in model.subgraphs[0].nodes:
        ops[node.op.upper()] = ops.get(node.op.upper(), 0) + 1
    assert ops == meta["op_census"]
    interpreter = litetrain.Interpreter(model_path=path)
    for ours, tf in zip(interpreter.get_input_details(), meta["inputs"], strict=True):
        _same_details(ours, tf)
    for ours, tf in zip(interpreter.get_output_details(), meta["outputs"], strict=True):
        _same_details(ours, tf)


@pytest.mark.parametrize("kind", KINDS)
def test_expected_outputs_are_complete(kind):
    meta = json.loads((ROOT / kind / "meta.json").read_text())
    with np.load(ROOT / kind / "expected.npz") as expected:
        for batch in meta["batches"]:
            assert expected[f"input/b{batch}/in0"].shape[0] == batch
            for variant, v in meta["variants"].items():
                for resolver in {"default", "builtin", "ref"} - set(v["resolvers_failed"]):
                    for k, out in enumerate(v["outputs"]):
                        got = expected[f"{variant}/{resolver}/b{batch}/out{k}"]
                        assert got.dtype.name == out["dtype"]
                        assert got.shape == (batch, *out["shape_signature"][1:])
        for variant, resolver in (("int8", "ref"), ("dynamic_range", "builtin")):
            kept = meta["variants"].get(variant, {}).get(f"{resolver}_intermediates_b1")
            assert kept or variant not in meta["variants"]
            for p in kept or []:
                key = f"{variant}/{resolver}/b1/tensor/{p['tensor']}"
                assert expected[key].shape == tuple(p["shape"])
        assert len(expected["calibration/codes"]) == meta["n_calibration"]


FLOAT_CASES = [(kind, variant) for kind, variant in CASES if variant in ("float", "float16")]


@pytest.mark.parametrize(("kind", "variant"), FLOAT_CASES,
                         ids=[f"{k}/{v}" for k, v in FLOAT_CASES])
def test_float_convnets_match_tensorflow_reference_kernels(kind, variant):
    """Float kernels already run these models: a guard for the speed work (issue 15).
    TF's own resolvers differ by up to ~3e-5 of the output range on them."""
    meta = json.loads((ROOT / kind / "meta.json").read_text())["variants"][variant]
    with np.load(ROOT / kind / "expected.npz") as expected:
        x = expected["input/b4/in0"]
        want = expected[f"{variant}/ref/b4/out0"]
    interpreter = litetrain.Interpreter(model_path=ROOT / kind / meta["file"])
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want))


def _run(path, x):
    interpreter = litetrain.Interpreter(model_path=path)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.parametrize(("kind", "batch"), [("dilated_conv1d", "b1"), ("dilated_conv1d", "b4"),
                                             ("efficientnet_like", "b1")])
def test_dynamic_range_matches_tensorflow(kind, batch):
    """Hybrid convolutions quantize each item asymmetrically with TFLite's nudged zero
    point when the filter is per-channel (they were symmetric: errors up to 6e-2)."""
    meta = json.loads((ROOT / kind / "meta.json").read_text())["variants"]["dynamic_range"]
    with np.load(ROOT / kind / "expected.npz") as expected:
        x = expected[f"input/{batch}/in0"]
        want = expected[f"dynamic_range/builtin/{batch}/out0"]
    got = _run(ROOT / kind / meta["file"], x)
    assert np.max(np.abs(got - want)) <= 1e-5 * np.max(np.abs(want))


def test_int8_dilated_conv1d_is_bit_exact():
    """SPACE_TO_BATCH_ND pads quantized tensors with the zero point (it padded with 0)."""
    meta = json.loads((ROOT / "dilated_conv1d" / "meta.json").read_text())["variants"]["int8"]
    with np.load(ROOT / "dilated_conv1d" / "expected.npz") as expected:
        x = expected["input/b1/in0"]
        want = expected["int8/ref/b1/out0"]
    np.testing.assert_array_equal(_run(ROOT / "dilated_conv1d" / meta["file"], x), want)
