"""Flower's Android layout (parameters / restore by a0, a1, …) added to an exported file:
litetrain and stock LiteRT agree on it, and checkpoint restores keep working."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain import checkpoint
from litetrain.author.android import android_layout
from litetrain.federated import FederatedError, LocalModel


def test_layout_signatures_and_weights(authored):
    plain, android = LocalModel(authored), LocalModel(android_layout(authored))
    assert android.weights.mode == "android" and plain.weights.mode == "builtin"
    assert android.weights.names == plain.weights.names  # checkpoint names, weight order
    sigs = android.interpreter.get_signature_list()
    assert sigs["parameters"] == {"inputs": [], "outputs": ["a0", "a1", "a2", "a3"]}
    a = android.interpreter.get_signature_runner("parameters")()
    w = plain.initial_weights()
    for i, name in enumerate(plain.weights.names):  # a<i> is the i-th weight
        np.testing.assert_array_equal(a[f"a{i}"], w[name])


def test_restore_by_tensor_then_by_checkpoint(authored, digits, tmp_path):
    content = android_layout(authored)
    interp = lt.Interpreter(model_content=content)
    params = interp.get_signature_runner("parameters")()
    changed = {k: (v * 0.5).astype(np.float32) for k, v in params.items()}
    restore = interp.get_signature_runner("restore")
    out = restore.run_graph(changed)
    for k in changed:
        np.testing.assert_array_equal(out[k], changed[k])
        np.testing.assert_array_equal(interp.get_signature_runner("parameters")()[k],
                                      changed[k])
    # litetrain's checkpoint-path call still works, and reads the checkpoint names.
    ckpt = tmp_path / "w.ckpt"
    interp.get_signature_runner("save")(checkpoint_path=str(ckpt))
    assert sorted(checkpoint.read(ckpt)) == sorted(LocalModel(authored).weights.names)
    fresh = lt.Interpreter(model_content=content)
    fresh.get_signature_runner("restore")(checkpoint_path=str(ckpt))
    x = digits[1][0][:4]
    np.testing.assert_array_equal(fresh.get_signature_runner("infer")(x=x)["logits"],
                                  interp.get_signature_runner("infer")(x=x)["logits"])


def test_stock_litert_runs_the_android_signatures(authored, digits):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    content = android_layout(authored)
    ref = litert.Interpreter(model_content=content)
    ours = lt.Interpreter(model_content=content)
    params = ref.get_signature_runner("parameters")()
    mine = ours.get_signature_runner("parameters")()
    assert sorted(params) == sorted(mine)
    for k in params:
        np.testing.assert_array_equal(params[k], mine[k])
    new = {k: (v + 0.01).astype(np.float32) for k, v in params.items()}
    ref.get_signature_runner("restore")(**new)
    ours.get_signature_runner("restore").run_graph(new)
    x = digits[1][0][:8]
    np.testing.assert_allclose(ref.get_signature_runner("infer")(x=x)["logits"],
                               ours.get_signature_runner("infer")(x=x)["logits"],
                               rtol=1e-5, atol=1e-5)


def test_tf_made_flex_file_is_refused_clearly(tf_made):
    with pytest.raises(FederatedError, match=r"litetrain\.convert's default builtin format"):
        android_layout(tf_made)


def test_layout_twice_is_refused(authored):
    with pytest.raises(FederatedError, match="already has a 'parameters'"):
        android_layout(android_layout(authored))


def test_convert_writes_the_android_layout_directly():
    import litetrain as lt
    from litetrain.workflow.demo import tutorial_model

    data = lt.convert(tutorial_model(), flower_android=True)
    sigs = lt.Interpreter(model_content=data).get_signature_list()
    assert {"parameters", "restore", "train", "infer"} <= set(sigs)
    assert sigs["parameters"]["outputs"][:2] == ["a0", "a1"]
