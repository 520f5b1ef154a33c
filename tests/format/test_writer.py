"""IR → .tflite: round trips are exact, and the bytes run in the official LiteRT runtime."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain
from litetrain.tflite.writer import write_model
from tests.conftest import FIXTURES

MODELS = sorted(FIXTURES.rglob("*.tflite"))  # tf_quantized/<kind>/ too


def _same_tensor(a, b) -> bool:
    if (a.name, a.dtype, a.shape, a.shape_signature, a.is_variable) != \
            (b.name, b.dtype, b.shape, b.shape_signature, b.is_variable):
        return False
    if (a.data is None) != (b.data is None) or (a.quantization is None) != (
            b.quantization is None):
        return False
    if a.data is not None and not np.array_equal(a.data, b.data):
        return False
    return a.quantization is None or (
        np.array_equal(a.quantization.scale, b.quantization.scale)
        and np.array_equal(a.quantization.zero_point, b.quantization.zero_point)
        and a.quantization.axis == b.quantization.axis)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_round_trip_is_exact(path):
    m = litetrain.read_model(path)
    again = litetrain.read_model(write_model(m))
    assert [s.__dict__ for s in again.signatures] == [s.__dict__ for s in m.signatures]
    assert again.metadata == m.metadata and again.description == m.description
    for sa, sb in zip(m.subgraphs, again.subgraphs, strict=True):
        assert (sa.name, sa.inputs, sa.outputs) == (sb.name, sb.inputs, sb.outputs)
        assert all(_same_tensor(a, b) for a, b in zip(sa.tensors, sb.tensors, strict=True))
        for na, nb in zip(sa.nodes, sb.nodes, strict=True):
            assert (na.op, na.inputs, na.outputs, na.version) == \
                (nb.op, nb.inputs, nb.outputs, nb.version)
            assert set(na.attrs) == set(nb.attrs)
            for k, v in na.attrs.items():
                assert np.array_equal(v, nb.attrs[k]) if isinstance(v, np.ndarray) else \
                    v == nb.attrs[k], (na.op, k)


def test_rewritten_tutorial_still_trains_like_tensorflow(tutorial):
    d, e = tutorial
    data = write_model(litetrain.read_model(d / "model.tflite"))
    it = litetrain.Interpreter(model_content=data)
    train = it.get_signature_runner("train")
    losses = [float(train(x=e[f"train_x_{k}"], y=e[f"train_y_{k}"])["loss"]) for k in range(5)]
    np.testing.assert_allclose(losses, e["train_losses"], rtol=1e-5)


def _litert(data: bytes):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    return litert.Interpreter(
        model_content=data,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def test_written_files_run_in_litert(tutorial):
    e = np.load(FIXTURES / "inference" / "expected.npz")
    data = write_model(litetrain.read_model(FIXTURES / "inference" / "float.tflite"))
    probs = _litert(data).get_signature_runner("serve")(x=e["x"])["probs"]
    np.testing.assert_allclose(probs, e["float_probs"], atol=1e-5)
    d, t = tutorial
    data = write_model(litetrain.read_model(d / "model.tflite"))
    out = _litert(data).get_signature_runner("infer")(x=t["infer_x"])
    np.testing.assert_allclose(out["logits"], t["infer_logits_before"], atol=1e-5)
