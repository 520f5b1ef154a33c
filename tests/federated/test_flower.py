"""Federated training through Flower's strategies, records and ClientApp (in-process grid):
accuracy improves, FedAvg is the exact weighted mean, failures are counted, nothing waits
forever, DP clipping bounds the update, and the command line writes its files."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

pytest.importorskip("flwr")

from litetrain import checkpoint
from litetrain.cli import main
from litetrain.federated import FederatedError, LocalModel
from litetrain.federated.flower import client_app, make_strategy, run_server
from litetrain.federated.grid import LocalGrid
from litetrain.federated.local import FitResult
from litetrain.federated.simulation import simulate

from .conftest import FIXTURES


def test_federated_training_improves_global_accuracy(authored, digits):
    (x, y), test = digits
    r = simulate(authored, (x[:2000], y[:2000]), test, clients=4, rounds=2,
                 partition="dirichlet:1.0", batch_size=32, seed=1)
    acc = [r.initial_accuracy] + [s.accuracy for s in r.rounds]
    assert [s.sampled for s in r.rounds] == [4, 4] and [s.failures for s in r.rounds] == [0, 0]
    assert acc[0] < 0.2 and acc[1] > acc[0] + 0.4 and acc[2] > acc[1]
    assert r.rounds[1].train_loss < r.rounds[0].train_loss


@pytest.mark.parametrize("which", ["authored", "tf_made", "android_file"])
def test_fedavg_of_one_round_is_the_exact_weighted_mean(which, request, digits, monkeypatch):
    content = request.getfixturevalue(which)
    (x, y), test = digits
    fits: list[FitResult] = []
    real_fit = LocalModel.fit

    def recording_fit(self, *args, **kwargs):
        fits.append(real_fit(self, *args, **kwargs))
        return fits[-1]

    monkeypatch.setattr(LocalModel, "fit", recording_fit)
    r = simulate(content, (x[:900], y[:900]), test, clients=3, rounds=1,
                 partition="dirichlet:0.5", seed=2)
    sizes = [f.num_examples for f in fits]
    assert len(fits) == 3 and sum(sizes) == 900 and len(set(sizes)) == 3
    total = sum(sizes)
    for name, got in r.weights.items():
        # FedAvg weighs each client by its example count, accumulating in reply order.
        expected = fits[0].weights[name] * (sizes[0] / total)
        for f in fits[1:]:
            expected += f.weights[name] * (f.num_examples / total)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
        exact = sum(f.weights[name].astype(np.float64) * f.num_examples for f in fits) / total
        np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-7)
        assert not np.array_equal(got, fits[0].weights[name])


def test_a_crashing_node_is_counted_and_the_round_goes_on(authored, digits):
    (x, y), test = digits
    r = simulate(authored, (x[:800], y[:800]), test, clients=4, rounds=2, fail_nodes=(1,))
    assert [(s.sampled, s.failures) for s in r.rounds] == [(4, 1), (4, 1)]
    assert len(r.errors) == 2 and "crashed (simulated)" in r.errors[0]
    assert r.rounds[-1].accuracy > r.initial_accuracy + 0.3


def test_wrong_shaped_client_data_is_a_counted_failure_with_its_reason(authored, digits):
    (x, y), test = digits
    good = {"x": x[:100], "y": np.eye(10, dtype=np.float32)[y[:100]]}
    bad = {"x": x[:100].reshape(100, -1), "y": good["y"]}
    r = simulate(authored, (x, y), test, clients=2, rounds=1, client_shards=[good, bad])
    assert (r.rounds[0].sampled, r.rounds[0].failures) == (2, 1)
    assert "FederatedError" in r.errors[0] and "'x' must be float32[n, 28, 28]" in r.errors[0]


def test_all_nodes_failing_keeps_the_initial_weights(authored, digits):
    (x, y), test = digits
    r = simulate(authored, (x[:200], y[:200]), test, clients=2, rounds=1, fail_nodes=(0, 1))
    assert r.rounds[0].failures == 2
    assert r.rounds[0].accuracy == r.initial_accuracy


def test_a_strategy_that_needs_more_nodes_than_exist_fails_fast(authored):
    model = LocalModel(authored)
    grid = LocalGrid(client_app(lambda c: model, lambda c: {}), nodes=3)
    start = time.monotonic()
    with grid.active(), pytest.raises(FederatedError, match=r"3 node\(s\) connected after "
                                                             r"0.2 s, 5 needed"):
        run_server(grid, model, make_strategy("fedavg", 5), rounds=1, node_timeout=0.2)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "fedfoo"}, "unknown 'fedfoo'; choose one of"),
    ({"fraction_train": 0.0}, "fractions must be in"),
    ({"dp_clip": -1.0}, "DP needs clip > 0"),
])
def test_bad_strategy_settings(kwargs, message):
    args = {"name": "fedavg", "nodes": 3, **kwargs}
    with pytest.raises(FederatedError, match=message):
        make_strategy(**args)


def test_fedadam_by_name_runs(authored, digits):
    (x, y), test = digits
    r = simulate(authored, (x[:600], y[:600]), test, clients=3, rounds=2, strategy="fedadam")
    assert all(s.accuracy is not None for s in r.rounds)


def test_dp_clipping_bounds_the_global_update(authored, digits):
    (x, y), test = digits
    model = LocalModel(authored)
    w0 = model.initial_weights()
    r = simulate(authored, (x[:600], y[:600]), test, clients=3, rounds=1, dp_clip=0.05,
                 dp_noise=0.0)
    norm = np.sqrt(sum(np.sum((r.weights[k].astype(np.float64) - w0[k]) ** 2) for k in w0))
    assert 0.04 < norm <= 0.05 + 1e-6
    free = simulate(authored, (x[:600], y[:600]), test, clients=3, rounds=1)
    free_norm = np.sqrt(sum(np.sum((free.weights[k] - w0[k]) ** 2) for k in w0))
    assert free_norm > 5 * 0.05  # without DP the same round moves much further


def test_cli_federated_on_a_tensorflow_made_file(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["federated", str(FIXTURES / "tutorial" / "model.tflite"), "--clients", "3",
                 "--rounds", "1", "--partition", "dirichlet:0.5", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "round  sampled  failed" in text and "global.ckpt" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rounds"][0]["sampled"] == 3 and metrics["settings"]["clients"] == 3
    saved = checkpoint.read(out / "global.ckpt")
    assert sorted(saved) == ["dense_1/bias:0", "dense_1/kernel:0", "dense_2/bias:0",
                             "dense_2/kernel:0"]


def test_cli_federated_bad_input_is_one_line(tmp_path, capsys):
    assert main(["federated", "--clients", "2", "--partition", "dirichlet:-1",
                 "--out", str(tmp_path)]) == 2
    assert "expected 'iid' or 'dirichlet:ALPHA'" in capsys.readouterr().err


def test_fedprox_pulls_clients_toward_the_global_weights(authored, digits):
    (x, y), test = digits
    w0 = LocalModel(authored).initial_weights()

    def moved(**kw):
        r = simulate(authored, (x[:600], y[:600]), test, clients=3, rounds=1, seed=4, **kw)
        return np.sqrt(sum(np.sum((r.weights[k].astype(np.float64) - w0[k]) ** 2)
                           for k in w0))

    plain = moved(strategy="fedavg")
    prox = moved(strategy="fedprox", proximal_mu=2.0, learning_rate=0.1)
    assert moved(strategy="fedprox", proximal_mu=0.0) == plain
    assert prox < 0.9 * plain
    with pytest.raises(FederatedError, match="needs the model's SGD rate"):
        moved(strategy="fedprox", proximal_mu=0.1)


def test_client_side_evaluation_is_the_weighted_mean_over_the_nodes(authored, digits):
    (x, y), test = digits
    r = simulate(authored, (x[:600], y[:600]), test, clients=3, rounds=1, fraction_evaluate=1.0,
                 partition="dirichlet:0.5", seed=3)
    model = LocalModel(authored)
    union = model.evaluate(r.weights, {"x": x[:600], "labels": y[:600]})
    assert r.rounds[0].client_accuracy == pytest.approx(union.accuracy, abs=1e-12)


def test_a_node_leaving_mid_run_fails_the_next_round_instead_of_hanging(authored, digits):
    (x, y), _ = digits
    model = LocalModel(authored)
    one_hot = np.eye(10, dtype=np.float32)[y]
    shards = [{"x": x[k * 50:k * 50 + 50], "y": one_hot[k * 50:k * 50 + 50]} for k in range(3)]

    class Shrinking(LocalGrid):
        """Three nodes for the first round, then one of them is gone."""
        rounds_sent = 0

        def get_node_ids(self):
            ids = list(self.contexts)
            return ids if self.rounds_sent < 1 else ids[:2]

        def send_and_receive(self, messages, *, timeout=None):
            replies = super().send_and_receive(messages, timeout=timeout)
            self.rounds_sent += 1
            return replies

    grid = Shrinking(client_app(lambda c: model,
                                lambda c: shards[int(c.node_config["partition-id"])]), 3)
    start = time.monotonic()
    with grid.active(), pytest.raises(FederatedError, match=r"2 node\(s\) connected after "
                                                             r"0.3 s, 3 needed"):
        run_server(grid, model, make_strategy("fedavg", 3), rounds=2, node_timeout=0.3)
    assert grid.rounds_sent == 1 and time.monotonic() - start < 10
