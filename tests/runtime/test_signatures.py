"""Signature runners and the tf.lite-style tensor API: binding, checks, error messages."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain
from tests.conftest import FIXTURES


@pytest.fixture
def tut(tutorial):
    d, e = tutorial
    return litetrain.Interpreter(model_path=d / "model.tflite"), e


def test_signature_list_matches_tensorflow(tut):
    it, _ = tut
    import json

    meta = json.loads((FIXTURES / "tutorial" / "meta.json").read_text())
    assert it.get_signature_list() == meta["signatures"]


def test_inputs_bind_by_name_not_position(tut):
    it, e = tut
    a = it.get_signature_runner("train")(y=e["train_y_0"], x=e["train_x_0"])["loss"]
    np.testing.assert_allclose(a, e["train_losses"][0], rtol=1e-5)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"x": None}, r"missing \['y'\]"),
    ({"x": None, "y": None, "z": 1}, r"unexpected \['z'\]"),
    ({"x": "f64", "y": None}, "got a float64 array"),
    ({"x": "rank", "y": None}, r"expected 'train_x:0' float32\[-1,28,28\]"),
    ({"x": "batch", "y": None}, "disagree on the batch size"),
])
def test_wrong_train_inputs(tut, kwargs, message):
    it, e = tut
    x, y = e["train_x_0"], e["train_y_0"]
    values = {"x": x, "y": y, "z": np.zeros(1), "f64": x.astype(np.float64),
              "rank": x.reshape(32, 784), "batch": x[:4]}
    call = {k: values[v] if isinstance(v, str) else (values[k] if v is None else v)
            for k, v in kwargs.items()}
    if kwargs.get("x") == "batch":
        call["y"] = y[:3]
    with pytest.raises(litetrain.SignatureError, match=message) as info:
        it.get_signature_runner("train")(**call)
    assert "signature 'train'" in str(info.value)


def test_unknown_signature_and_ambiguous_default(tut):
    it, _ = tut
    with pytest.raises(litetrain.SignatureError, match=r"no signature 'fit'.*infer"):
        it.get_signature_runner("fit")
    with pytest.raises(litetrain.SignatureError, match="has 4 signatures"):
        it.get_signature_runner()


def test_python_lists_are_converted_and_outputs_are_owned_copies(tut):
    it, e = tut
    runner = it.get_signature_runner("infer")
    out = runner(x=e["infer_x"][:1].tolist())
    out["logits"][:] = 0
    np.testing.assert_allclose(runner(x=e["infer_x"][:1])["logits"],
                               e["infer_logits_before"][:1], atol=1e-5)


def test_dynamic_batch_sizes(tut):
    it, e = tut
    infer = it.get_signature_runner("infer")
    for n in (1, 3, 8):
        np.testing.assert_allclose(infer(x=e["infer_x"][:n])["logits"],
                                   e["infer_logits_before"][:n], atol=1e-5)


def test_tensor_index_api_on_float_model():
    e = np.load(FIXTURES / "inference" / "expected.npz")
    it = litetrain.Interpreter(model_path=str(FIXTURES / "inference" / "float.tflite"))
    it.allocate_tensors()
    (inp,) = it.get_input_details()
    (out,) = it.get_output_details()
    assert inp["dtype"] is np.float32 and list(inp["shape_signature"]) == [-1, 28, 28]
    it.resize_tensor_input(inp["index"], [16, 28, 28])
    it.set_tensor(inp["index"], e["x"])
    it.invoke()
    np.testing.assert_allclose(it.get_tensor(out["index"]), e["float_probs"], atol=1e-5)
    assert len(it.get_tensor_details()) > 10
    with pytest.raises(litetrain.SignatureError, match="resize_tensor_input"):
        it.set_tensor(inp["index"], e["x"][:3])
    with pytest.raises(ValueError, match="strict"):
        it.resize_tensor_input(inp["index"], [1, 28, 29], strict=True)


def test_constructor_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        litetrain.Interpreter()
    with pytest.raises(ValueError, match="num_threads"):
        litetrain.Interpreter(model_path=FIXTURES / "inference" / "float.tflite", num_threads=0)
    with pytest.raises(litetrain.ModelFormatError, match="cannot read model file"):
        litetrain.Interpreter(model_path="/no/such/model.tflite")


def test_unknown_op_is_reported_when_the_signature_is_prepared(tutorial):
    d, _ = tutorial
    raw = (d / "model.tflite").read_bytes()
    assert raw.count(b"FlexReluGrad") == 1
    patched = raw.replace(b"FlexReluGrad", b"FlexReluGrax")
    it = litetrain.Interpreter(model_content=patched)
    it.get_signature_runner("infer")  # signatures without the op still work
    with pytest.raises(litetrain.UnsupportedOpError,
                       match=r"signature 'train'.*node 66 \(FlexReluGrax\)"):
        it.get_signature_runner("train")
