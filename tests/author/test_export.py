"""Export: the converted file behaves like the module, keeps a dynamic batch, saves and
restores through checkpoint files in litetrain, and trains identically in LiteRT."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.data import load_digits, one_hot
from tests.author.test_training import Tutorial


class FullTutorial(Tutorial):
    @lt.signature(lt.TensorSpec([], str))
    def save(self, checkpoint_path):
        return {"checkpoint_path": lt.save(checkpoint_path, self.model.weights)}

    @lt.signature(lt.TensorSpec([], str))
    def restore(self, checkpoint_path):
        return lt.restore(checkpoint_path, self.model.weights)


@pytest.fixture(scope="module")
def pretrained():
    (x, labels), (xt, _) = load_digits()
    y = one_hot(labels)
    m = FullTutorial()
    for i in range(0, 1000, 100):
        m.train(x[i:i + 100], y[i:i + 100])
    return m, lt.convert(m), (x, y, xt)


def test_exported_file_continues_where_the_module_stopped(pretrained):
    m, data, (x, y, _) = pretrained
    model = lt.read_model(data)
    assert {n.op for sg in model.subgraphs for n in sg.nodes}.isdisjoint(
        {"FlexSave", "FlexRestore"})  # builtin format: no Flex ops
    assert model.subgraphs[model.signature("train").subgraph_index].tensors[
        model.signature("train").inputs["x"]].shape_signature == (-1, 28, 28)
    it = lt.Interpreter(model_content=data)
    # The module keeps training too: compare file and module on the same next batches.
    for i in range(1000, 1300, 100):
        a = it.get_signature_runner("train")(x=x[i:i + 100], y=y[i:i + 100])["loss"]
        b = m.train(x[i:i + 100], y[i:i + 100])["loss"]
        assert a == pytest.approx(b, rel=1e-6)


def test_builtin_save_restore_through_checkpoint_files(pretrained, tmp_path):
    _, data, (x, y, xt) = pretrained
    it = lt.Interpreter(model_content=data)
    assert it.get_signature_list()["restore"]["inputs"] == ["checkpoint_path"]
    it.get_signature_runner("train")(x=x[:50], y=y[:50])
    it.get_signature_runner("save")(checkpoint_path=str(tmp_path / "w.ckpt"))
    names = [n for n, _ in lt.checkpoint.list_variables(tmp_path / "w.ckpt")]
    assert names == ["dense/bias:0", "dense/kernel:0", "dense_1/bias:0", "dense_1/kernel:0"]
    fresh = lt.Interpreter(model_content=data)
    infer = fresh.get_signature_runner("infer")
    before = infer(x=xt[:5])["logits"]
    fresh.get_signature_runner("restore")(checkpoint_path=tmp_path / "w.ckpt")
    after = infer(x=xt[:5])["logits"]
    want = it.get_signature_runner("infer")(x=xt[:5])["logits"]
    np.testing.assert_array_equal(after, want)
    assert not np.allclose(before, want)


def test_builtin_restore_checks_every_tensor_first(pretrained, tmp_path):
    _, data, (_, _, xt) = pretrained
    it = lt.Interpreter(model_content=data)
    good = lt.checkpoint.read(_save(it, tmp_path / "good.ckpt"))
    bad = dict(good, **{"dense_1/kernel:0": good["dense_1/kernel:0"][:, :5]})
    lt.checkpoint.write(tmp_path / "bad.ckpt", bad)
    before = it.get_signature_runner("infer")(x=xt[:3])["logits"]
    with pytest.raises(lt.CheckpointError, match=r"dense_1/kernel:0.*shape \[128, 5\]"):
        it.get_signature_runner("restore")(checkpoint_path=tmp_path / "bad.ckpt")
    np.testing.assert_array_equal(it.get_signature_runner("infer")(x=xt[:3])["logits"], before)


def _save(it, path):
    it.get_signature_runner("save")(checkpoint_path=str(path))
    return path


def test_flex_format_keeps_save_and_restore_ops(pretrained, tmp_path):
    m = pretrained[0]
    data = lt.convert(m, save_format="flex")
    ops = {n.op for sg in lt.read_model(data).subgraphs for n in sg.nodes}
    assert {"FlexSave", "FlexRestore"} <= ops
    it = lt.Interpreter(model_content=data)
    it.get_signature_runner("save")(checkpoint_path=str(tmp_path / "f.ckpt"))
    assert len(lt.checkpoint.read(tmp_path / "f.ckpt")) == 4


def test_batch_dependent_constants_are_reported():
    class Bad(lt.Module):
        @lt.signature(lt.TensorSpec([None, 4]))
        def run(self, x):
            return lt.nn.reshape(x, (x.shape[0] * 2, 2))  # bakes the batch size in

    with pytest.raises(lt.TraceError, match="depends on the batch size"):
        lt.convert(Bad())


def _litert(data):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    return litert.Interpreter(
        model_content=data,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)


def test_exported_file_trains_the_same_in_litert(pretrained):
    _, data, (x, y, xt) = pretrained
    ours, theirs = lt.Interpreter(model_content=data), _litert(data)
    for k in range(5):
        n = 64 if k % 2 else 37  # dynamic batch sizes
        xb, yb = x[2000 + 100 * k:2000 + 100 * k + n], y[2000 + 100 * k:2000 + 100 * k + n]
        a = ours.get_signature_runner("train")(x=xb, y=yb)["loss"]
        b = theirs.get_signature_runner("train")(x=xb, y=yb)["loss"]
        assert a == pytest.approx(b, rel=1e-4)
    ours_w = ours.get_signature_runner("save").run_graph(
        {"checkpoint_path": np.array(b"", object)})
    theirs_w = theirs.get_signature_runner("save")(checkpoint_path=np.array(b""))
    for name in ("dense/kernel:0", "dense/bias:0", "dense_1/kernel:0", "dense_1/bias:0"):
        np.testing.assert_allclose(ours_w[name], theirs_w[name], rtol=1e-4, atol=1e-5)
    # LiteRT restores from tensors; litetrain then infers with the same weights.
    fresh = _litert(data)
    fresh.get_signature_runner("restore")(**{k: v for k, v in ours_w.items()
                                             if k != "checkpoint_path"})
    np.testing.assert_allclose(fresh.get_signature_runner("infer")(x=xt[:8])["logits"],
                               ours.get_signature_runner("infer")(x=xt[:8])["logits"],
                               rtol=1e-4, atol=1e-4)
