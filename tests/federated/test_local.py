"""Weights in and out of model files, partitions, and a node's local training — the parts
of federated learning that need no Flower."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain import checkpoint
from litetrain.federated import FederatedError, LocalModel, ModelWeights
from litetrain.federated import partition as part

from .conftest import feeds


@pytest.mark.parametrize("which, mode", [("authored", "builtin"), ("tf_made", "variables")])
def test_weights_round_trip_and_restore_by_checkpoint_name(which, mode, request, tmp_path,
                                                           digits):
    content = request.getfixturevalue(which)
    model = LocalModel(content)
    assert model.weights.mode == mode
    w = model.initial_weights()
    assert list(w) == model.weights.names and len(w) == 4
    changed = {k: (v * 0.5 + 0.01).astype(v.dtype) for k, v in w.items()}
    model.weights.set(changed)
    for k, v in model.weights.get().items():
        np.testing.assert_array_equal(v, changed[k])
    # The names are the checkpoint's: the model's own restore signature reads them.
    ckpt = tmp_path / "w.ckpt"
    checkpoint.write(ckpt, changed, format="v1")
    fresh = lt.Interpreter(model_content=content)
    fresh.get_signature_runner("restore")(checkpoint_path=str(ckpt))
    x = digits[1][0][:8]
    np.testing.assert_array_equal(
        fresh.get_signature_runner("infer")(x=x)["logits"],
        model.interpreter.get_signature_runner("infer")(x=x)["logits"])


def test_setting_bad_weights_changes_nothing(authored):
    model = LocalModel(authored)
    before = model.initial_weights()
    bad = dict(before)
    name = model.weights.names[0]
    bad[name] = np.zeros((3, 3), np.float32)
    with pytest.raises(FederatedError, match=f"weight '{name}'.*model has float32"):
        model.weights.set(bad)
    with pytest.raises(FederatedError, match="missing"):
        model.weights.set({k: v for k, v in before.items() if k != name})
    for k, v in model.weights.get().items():
        np.testing.assert_array_equal(v, before[k])


def test_model_without_train_is_a_clear_error(authored):
    from litetrain.tflite.writer import write_model

    model = lt.read_model(authored)
    model.signatures = [s for s in model.signatures if s.key != "train"]
    with pytest.raises(FederatedError, match=r"needs a 'train' signature.*'infer'"):
        LocalModel(write_model(model))


@pytest.mark.parametrize("data, message", [
    (lambda x, y: {"x": x.reshape(len(x), -1), "y": y}, "'x' must be float32\\[n, 28, 28\\]"),
    (lambda x, y: {"x": x.astype(np.float64), "y": y}, "'x' must be float32"),
    (lambda x, y: {"x": x}, "the data has no 'y'"),
    (lambda x, y: {"x": x, "y": y[:-1]}, "disagree on the number of examples"),
])
def test_wrong_client_data_is_a_clear_error(authored, digits, data, message):
    model = LocalModel(authored)
    (x, y), _ = digits
    d = data(x[:20], np.eye(10, dtype=np.float32)[y[:20]])
    with pytest.raises(FederatedError, match=message):
        model.fit(model.initial_weights(), d, where="node 7")


@pytest.mark.parametrize("which", ["authored", "tf_made"])
def test_local_fit_lowers_loss_and_restarts_from_the_given_weights(which, request, digits):
    model = LocalModel(request.getfixturevalue(which))
    (x, y), (xt, yt) = digits
    w0 = model.initial_weights()
    before = model.evaluate(w0, feeds(xt, yt))
    r1 = model.fit(w0, feeds(x[:600], y[:600]), epochs=2, batch_size=32, seed=3)
    after = model.evaluate(r1.weights, feeds(xt, yt))
    assert r1.num_examples == 600 and r1.steps == 2 * 19
    assert after.loss < before.loss and after.accuracy > before.accuracy
    # Same start, same seed: the same weights (fresh optimizer state every fit).
    r2 = model.fit(w0, feeds(x[:600], y[:600]), epochs=2, batch_size=32, seed=3)
    for k in w0:
        np.testing.assert_array_equal(r1.weights[k], r2.weights[k])


def test_proximal_step_is_sgd_on_the_proximal_term(authored, digits):
    model = LocalModel(authored)
    (x, y), _ = digits
    data = feeds(x[:64], y[:64])
    wg = model.initial_weights()
    lr, mu = 0.1, 0.5
    got = model.fit(wg, data, batch_size=32, seed=9, proximal_mu=mu, proximal_lr=lr)
    # Reference: the file's own steps with the proximal pull applied by hand.
    order = np.random.default_rng(9).permutation(64)
    model.interpreter.reset_all_variables()
    model.weights.set(wg)
    w = wg
    for start in (0, 32):
        idx = order[start:start + 32]
        model.train(x=data["x"][idx], y=data["y"][idx])
        stepped = model.weights.get()
        w = {k: stepped[k] - np.float32(lr * mu) * (w[k] - wg[k]) for k in wg}
        model.weights.set(w)
    for k in wg:
        np.testing.assert_array_equal(got.weights[k], w[k])
    plain = model.fit(wg, data, batch_size=32, seed=9)
    assert any(not np.array_equal(plain.weights[k], got.weights[k]) for k in wg)
    with pytest.raises(FederatedError, match="FedProx needs"):
        model.fit(wg, data, proximal_mu=0.5)


def test_evaluate_matches_numpy(authored, digits):
    model = LocalModel(authored)
    _, (xt, yt) = digits
    w = model.initial_weights()
    r = model.evaluate(w, feeds(xt[:300], yt[:300]), batch_size=128)
    logits = model.interpreter.get_signature_runner("infer")(x=xt[:300])["logits"]
    logits = logits.astype(np.float64)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    assert r.accuracy == np.mean(np.argmax(logits, 1) == yt[:300])
    assert r.loss == pytest.approx(-np.mean(logp[np.arange(300), yt[:300]]), rel=1e-12)


def test_iid_partition_covers_the_data_once():
    shards = part.iid(103, 10, seed=1)
    assert sorted(len(s) for s in shards) == [10] * 7 + [11] * 3
    np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.arange(103))


def test_dirichlet_partition_is_non_iid_exact_and_reproducible(digits):
    (_, y), _ = digits
    shards = part.split("dirichlet:0.1", y, 20, seed=4)
    np.testing.assert_array_equal(np.sort(np.concatenate(shards)), np.arange(len(y)))
    assert min(len(s) for s in shards) > 0
    again = part.split("dirichlet:0.1", y, 20, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(shards, again, strict=True))

    def classes(spec):
        return np.mean([len(np.unique(y[s])) for s in part.split(spec, y, 20, seed=4)])

    assert classes("dirichlet:0.1") < classes("dirichlet:10") <= classes("iid") == 10


@pytest.mark.parametrize("spec", ["dirichlet", "dirichlet:0", "dirichlet:x", "iid:3", "noniid"])
def test_bad_partition_spec(spec):
    with pytest.raises(FederatedError, match="expected 'iid' or 'dirichlet:ALPHA'"):
        part.parse(spec)


def test_more_clients_than_examples():
    with pytest.raises(FederatedError, match="clients <= 5"):
        part.iid(5, 6)


def test_weights_of_a_file_without_save_come_from_what_infer_reads(tf_made):
    model = lt.read_model(tf_made)
    model.signatures = [s for s in model.signatures if s.key in ("train", "infer")]
    interp = lt.Interpreter(model=model)
    w = ModelWeights(interp)
    assert w.mode == "variables"
    assert sorted(w.names) == ["dense_1/bias", "dense_1/kernel", "dense_2/bias",
                               "dense_2/kernel"]


def test_core_imports_without_flower():
    import subprocess
    import sys

    code = ("import sys; sys.modules['flwr'] = None; "
            "from litetrain.federated import LocalModel, ModelWeights; "
            "from litetrain.author.android import android_layout; "
            "from litetrain.federated.partition import split; "
            "from litetrain.cli import main; "
            "raise SystemExit(main(['federated', '--clients', '2']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert "federated needs Flower: pip install 'litetrain[federated]'" in r.stderr
