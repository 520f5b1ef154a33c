"""``litetrain.quantize`` on the tutorial model trained with litetrain: sizes, accuracy
kept, the same outputs in LiteRT, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.data import batches, load_digits, one_hot
from litetrain.workflow.demo import tutorial_model


@pytest.fixture(scope="module")
def trained():
    (x, y), (xt, yt) = load_digits()
    m = tutorial_model()
    for e in range(3):
        for xb, yb in batches(x, one_hot(y), batch_size=100, shuffle=True, seed=e):
            m.train(xb, yb)
    data = lt.convert(m)
    interp = lt.Interpreter(model_content=data)
    float_logits = interp.get_signature_runner("infer")(x=xt)["logits"]
    calib = [{"x": x[i:i + 100]} for i in range(0, 1000, 100)]
    return interp, data, xt, yt, float_logits, calib


def _acc(logits, labels):
    return float(np.mean(np.argmax(logits, -1) == labels))


@pytest.mark.parametrize("mode, max_ratio", [("dynamic_range", 0.26), ("float16", 0.5),
                                             ("int8", 0.26)])
def test_smaller_and_as_accurate(trained, mode, max_ratio):
    interp, data, xt, yt, float_logits, calib = trained
    with pytest.warns(UserWarning, match=r"dropped training/file signatures \['restore', "
                                         r"'save', 'train'\]"):
        q = lt.quantize(interp, mode, representative_data=calib)
    assert len(q) <= max_ratio * len(data)
    runner = lt.Interpreter(model_content=q).get_signature_runner("infer")
    assert sorted(lt.Interpreter(model_content=q).get_signature_list()) == ["infer"]
    logits = runner(x=xt)["logits"]
    assert abs(_acc(logits, yt) - _acc(float_logits, yt)) <= 0.01


@pytest.mark.parametrize("mode, int8_io", [("dynamic_range", False), ("float16", False),
                                           ("int8", False), ("int8", True)])
def test_same_outputs_in_litert(trained, mode, int8_io):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    interp, _, xt, _, float_logits, calib = trained
    with pytest.warns(UserWarning):
        q = lt.quantize(interp, mode, representative_data=calib, int8_io=int8_io)
    # int8: both with the optimized builtin kernels (LiteRT 2.x's reference kernels have
    # moved on from TensorFlow 2.18's, which the tf_quantized fixtures pin down exactly);
    # the rest against LiteRT's reference kernels.
    kernels = "BUILTIN_WITHOUT_DEFAULT_DELEGATES" if mode == "int8" else "BUILTIN_REF"
    ours = lt.Interpreter(model_content=q, experimental_op_resolver_type=kernels
                          ).get_signature_runner("infer")
    x = xt[:200]
    if int8_io:
        scale, zp = ours.get_input_details()["x"]["quantization"]
        x = np.clip(np.round(x / scale) + zp, -128, 127).astype(np.int8)
    theirs = litert.Interpreter(
        model_content=q, experimental_op_resolver_type=getattr(litert.OpResolverType, kernels),
    ).get_signature_runner("infer")
    a, b = ours(x=x), theirs(x=x)
    for k in a:
        diff = np.abs(a[k].astype(np.float64) - b[k])
        if mode == "int8":
            assert diff.max() <= 1e-6, k
        elif mode == "float16":
            assert diff.max() <= 1e-4, k
        else:  # hybrid: on-the-fly input quantization rounds slightly differently
            assert diff.max() <= 1e-3 * np.abs(float_logits).max(), k


def test_personalised_weights_are_the_ones_quantized(trained):
    _, data, xt, _, _, _ = trained
    fresh = lt.Interpreter(model_content=data)
    fresh.get_signature_runner("train")(x=xt[:100], y=one_hot(np.zeros(100, int)))
    with pytest.warns(UserWarning):
        q = lt.quantize(fresh, "float16")
    want = fresh.get_signature_runner("infer")(x=xt[:20])["logits"]
    got = lt.Interpreter(model_content=q).get_signature_runner("infer")(x=xt[:20])["logits"]
    np.testing.assert_allclose(got, want, atol=0.02)


def test_errors(trained):
    interp = trained[0]
    with pytest.raises(ValueError, match="mode must be one of"):
        lt.quantize(interp, "int4")
    with pytest.raises(ValueError, match="needs representative_data"), \
            pytest.warns(UserWarning):
        lt.quantize(interp, "int8")
    with pytest.raises(TypeError, match="an Interpreter, a path or model bytes"):
        lt.quantize(42)


@pytest.mark.parametrize("mode, tol", [("float16", 2e-3), ("dynamic_range", 3e-2)])
def test_tensorflow_made_training_model_quantizes(tutorial, mode, tol):
    d, expected = tutorial
    with pytest.warns(UserWarning, match="dropped"):
        q = lt.quantize(d / "model.tflite", mode)
    logits = lt.Interpreter(model_content=q).get_signature_runner("infer")(
        x=expected["infer_x"])["logits"]
    np.testing.assert_allclose(logits, expected["infer_logits_before"], atol=tol)
