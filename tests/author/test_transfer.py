"""A .tflite file as a layer, and the blog's transfer-learning file built from one, without
TensorFlow: the inlined graph computes what the interpreter computes, exported files keep
a dynamic batch, and stock LiteRT trains the transfer file with litetrain's losses."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from tests.conftest import FIXTURES

MOBILENET = FIXTURES / "tf_quantized" / "mobilenet_v2_035" / "float.tflite"
SMALL_CNN = FIXTURES / "inference" / "float.tflite"
R = np.random.default_rng(4)


def _wrapped(layer):
    class Wrapped(lt.Module):
        def __init__(self):
            self.layer = layer

        @lt.signature(lt.TensorSpec([None, *layer.input_shape]))
        def run(self, x):
            return {"y": self.layer(x)}

    return Wrapped()


@pytest.mark.parametrize("path", [SMALL_CNN, MOBILENET], ids=["small_cnn", "mobilenet_v2"])
def test_inlined_graph_computes_what_the_interpreter_computes(path):
    layer = lt.nn.TFLiteModel(path)
    x = R.random((3, *layer.input_shape), dtype=np.float32)
    ours = _wrapped(layer).run(x)["y"]
    runner = lt.Interpreter(model_path=path).get_signature_runner()
    (want,) = runner(**{runner.get_input_details().popitem()[0]: x}).values()
    np.testing.assert_array_equal(ours, want)
    # The exported file keeps the batch dynamic (BLAS may sum another batch size in
    # another order, hence the tolerance).
    exported = lt.Interpreter(model_content=lt.convert(_wrapped(layer)))
    np.testing.assert_allclose(exported.get_signature_runner("run")(x=x[:2])["y"], want[:2],
                               rtol=1e-5, atol=1e-6)


def test_an_inner_tensor_as_output_and_trainable_weights():
    m = lt.read_model(SMALL_CNN)
    sg = m.subgraphs[0]
    conv = next(n for n in sg.nodes if n.op == "conv_2d")
    inner = sg.tensors[conv.outputs[0]].name
    kernel = sg.tensors[conv.inputs[1]].name
    layer = lt.nn.TFLiteModel(SMALL_CNN, output=inner, trainable=[kernel])
    assert [v.name for v in layer.trainable_variables] == [f"tflite_model/{kernel}"]
    x = R.random((2, *layer.input_shape), dtype=np.float32)
    y = _wrapped(layer).run(x)["y"]
    assert y.shape[0] == 2 and y.shape[1:] == tuple(sg.tensors[conv.outputs[0]].shape[1:])


def test_bad_requests_are_named():
    with pytest.raises(lt.TraceError, match="no output or tensor named 'nope'"):
        lt.nn.TFLiteModel(SMALL_CNN, output="nope")
    with pytest.raises(lt.TraceError, match="quantized"):
        lt.nn.TFLiteModel(FIXTURES / "inference" / "int8.tflite")
    with pytest.raises(lt.TraceError, match="no signature 'x'"):
        lt.nn.TFLiteModel(SMALL_CNN, signature="x")


def test_transfer_file_trains_the_same_in_litert(tmp_path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    # Its own generator: the losses must not depend on which tests ran before.
    rng = np.random.default_rng(7)
    data = lt.convert(lt.transfer(MOBILENET, 3, optimizer=lt.optimizers.Adam(1e-3)))
    ours = lt.Interpreter(model_content=data)
    theirs = litert.Interpreter(
        model_content=data,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    images = rng.random((8, 96, 96, 3), dtype=np.float32)
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    b_ours = ours.get_signature_runner("load")(feature=images)["bottleneck"]
    b_theirs = theirs.get_signature_runner("load")(feature=images)["bottleneck"]
    # LiteRT's optimized kernels sum in another order through 50 layers.
    assert np.max(np.abs(b_ours - b_theirs)) <= 1e-4 * np.max(np.abs(b_theirs))
    losses = []
    for k in range(3):
        rows = slice(4 * (k % 2), 4 * (k % 2) + 4)
        a = ours.get_signature_runner("train")(bottleneck=b_ours[rows], label=labels[rows])
        b = theirs.get_signature_runner("train")(bottleneck=b_ours[rows], label=labels[rows])
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-4)
        losses.append(float(a["loss"]))
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(ours.get_signature_runner("infer")(feature=images)["output"],
                               theirs.get_signature_runner("infer")(feature=images)["output"],
                               rtol=1e-4, atol=1e-6)
    ours.get_signature_runner("save")(checkpoint_path=str(tmp_path / "head.ckpt"))
    assert set(lt.checkpoint.read(tmp_path / "head.ckpt")) == {"head/kernel:0", "head/bias:0"}


def test_transfer_command_writes_a_trainable_file(tmp_path, capsys):
    from litetrain.cli import main

    out = tmp_path / "t.tflite"
    assert main(["transfer", str(SMALL_CNN), "--classes", "3", "-o", str(out)]) == 0
    it = lt.Interpreter(model_path=out)
    assert set(it.get_signature_list()) == {"load", "train", "infer", "save", "restore"}
    with pytest.raises(SystemExit) as exit_info:
        main(["transfer", str(SMALL_CNN), "--classes", "0"])
    assert exit_info.value.code == 2 and "positive integer" in capsys.readouterr().err


def test_example_personalises_a_base_litetrain_pretrained():
    """examples/transfer_digits.py: a CNN pre-trained on digits 0-5 (weights in resource
    variables, as litetrain exports them) becomes the base for telling 6-9 apart."""
    import sys

    sys.path.insert(0, str(FIXTURES.parents[1] / "examples"))
    try:
        import transfer_digits
    finally:
        sys.path.pop(0)
    report = transfer_digits.main(epochs=1, head_steps=60)
    assert report["accuracy_after"] > max(0.6, report["accuracy_before"] + 0.2)
    assert abs(report["quantized_accuracy"] - report["accuracy_after"]) < 0.05
