"""Federated learning on the shipped digits vs centralized training of the same model.

100 simulated clients × 5 rounds, non-IID (Dirichlet 0.5), FedAvg, one local epoch per
round (Flower's strategy and litetrain's ClientApp through the in-process Grid); the same
with server-side DP clipping (clip 0.3, below the median client update norm of
~0.42 in round 1; noise multiplier 0.1). Beside them, centralized training of the same
tutorial model from the same initial weights, with the same learning rate and batch size,
one epoch per "round": with every client sampled, both see the same number of examples
(4,000 per round). Reports wall time and global test accuracy per round, in one run.

    python benchmarks/federated.py [--quick] [--json PATH] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")

import litetrain  # noqa: E402
from litetrain.data import load_digits  # noqa: E402
from litetrain.federated.local import LocalModel  # noqa: E402
from litetrain.federated.simulation import feeds_for, simulate  # noqa: E402
from litetrain.workflow.demo import tutorial_model  # noqa: E402


def centralized(content: bytes, train, test, rounds: int, batch_size: int, seed: int):
    """One epoch per round through the same file's ``train``; accuracy after each."""
    model = LocalModel(content)
    data, test_data = feeds_for(model, *train), feeds_for(model, *test)
    weights = model.initial_weights()
    accs = [model.evaluate(weights, test_data).accuracy]
    times = []
    model.interpreter.reset_all_variables()
    model.weights.set(weights)
    names = list(model.train.get_input_details())
    rng = np.random.default_rng(seed)
    n = len(train[1])
    for _ in range(rounds):
        start = time.perf_counter()
        order = rng.permutation(n)
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            model.train(**{k: data[k][idx] for k in names})
        weights = model.weights.get()
        accs.append(model.evaluate(weights, test_data).accuracy)
        model.weights.set(weights)
        times.append(time.perf_counter() - start)
    return accs, times


def federated(content, train, test, rounds, clients, partition, batch_size, seed, **dp):
    start = time.perf_counter()
    r = simulate(content, train, test, clients=clients, rounds=rounds, partition=partition,
                 batch_size=batch_size, seed=seed, **dp)
    total = time.perf_counter() - start
    return ([r.initial_accuracy] + [s.accuracy for s in r.rounds],
            [s.seconds for s in r.rounds], total, [s.train_loss for s in r.rounds])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 clients × 2 rounds on 1,000 "
                    "training digits (a smoke run)")
    ap.add_argument("--repeats", type=int, default=3, help="alternating repeats; totals "
                    "and ratios are their medians (accuracies: the first repeat)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args(argv)
    clients, rounds = (10, 2) if args.quick else (100, 5)
    partition, batch, seed, lr = "dirichlet:0.5", 32, 0, 0.1
    (x, y), test = load_digits()
    if args.quick:
        x, y, test = x[:1000], y[:1000], (test[0][:200], test[1][:200])
    content = litetrain.convert(tutorial_model(learning_rate=lr))

    names = ("centralized", "federated", "federated_dp")
    totals: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    runs = {"centralized": lambda: centralized(content, (x, y), test, rounds, batch, seed),
            "federated": lambda: federated(content, (x, y), test, rounds, clients, partition,
                                           batch, seed),
            "federated_dp": lambda: federated(content, (x, y), test, rounds, clients,
                                              partition, batch, seed, dp_clip=0.3,
                                              dp_noise=0.1)}
    first = {}
    for _ in range(args.repeats):  # alternate the three, so drift hits all alike
        for k in names:
            wall, proc = time.perf_counter(), time.process_time()
            out = runs[k]()
            totals[k].append(time.perf_counter() - wall)
            cpu[k].append(time.process_time() - proc)
            first.setdefault(k, out)
    (c_acc, c_times) = first["centralized"]
    f_acc, f_times, _, f_loss = first["federated"]
    d_acc, d_times, _, _ = first["federated_dp"]
    c_total, f_total, d_total = (float(np.median(totals[k])) for k in names)

    def ratio(seconds: dict[str, list[float]], k: str) -> float:
        return float(np.median(np.array(seconds[k]) / np.array(seconds["centralized"])))

    ratios = {k: ratio(totals, k) for k in names[1:]}
    cpu_ratios = {k: ratio(cpu, k) for k in names[1:]}
    result = {
        "setup": {"clients": clients, "rounds": rounds, "partition": partition,
                  "batch_size": batch, "learning_rate": lr, "examples_per_round": len(y),
                  "test_examples": len(test[1]), "strategy": "FedAvg, all clients per round",
                  "dp": "server-side fixed clipping, clip 0.3, noise multiplier 0.1",
                  "python": sys.version.split()[0], "cpus": os.cpu_count()},
        "centralized": {"accuracy": c_acc, "round_seconds": c_times, "total_seconds": c_total},
        "federated": {"accuracy": f_acc, "round_seconds": f_times, "total_seconds": f_total,
                      "train_loss": f_loss},
        "federated_dp": {"accuracy": d_acc, "round_seconds": d_times,
                         "total_seconds": d_total},
        "repeats": args.repeats, "total_seconds_each": totals, "cpu_seconds_each": cpu,
        "time_ratio_to_centralized": ratios, "cpu_ratio_to_centralized": cpu_ratios,
    }
    text = markdown(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return result


def markdown(r: dict) -> str:
    s = r["setup"]
    rows = ["| round | centralized acc | FedAvg acc | FedAvg + DP acc | centralized s | "
            "FedAvg s | FedAvg + DP s |", "| --- | --- | --- | --- | --- | --- | --- |"]
    c, f, d = r["centralized"], r["federated"], r["federated_dp"]
    for k in range(s["rounds"] + 1):
        secs = ["", "", ""] if k == 0 else [f"{c['round_seconds'][k - 1]:.2f}",
                                             f"{f['round_seconds'][k - 1]:.2f}",
                                             f"{d['round_seconds'][k - 1]:.2f}"]
        rows.append(f"| {k} | {c['accuracy'][k]:.1%} | {f['accuracy'][k]:.1%} | "
                    f"{d['accuracy'][k]:.1%} | " + " | ".join(secs) + " |")
    q, p = r["time_ratio_to_centralized"], r["cpu_ratio_to_centralized"]
    rows.append(f"\nTotal wall time (median of {r['repeats']} alternating repeats): "
                f"centralized {c['total_seconds']:.1f} s, FedAvg {f['total_seconds']:.1f} s "
                f"({q['federated']:.2f}× centralized), FedAvg + DP {d['total_seconds']:.1f} s "
                f"({q['federated_dp']:.2f}×); CPU time (this process, less sensitive to "
                f"other load): FedAvg {p['federated']:.2f}×, FedAvg + DP "
                f"{p['federated_dp']:.2f}× centralized. {s['clients']} clients, "
                f"{s['partition']}, {s['examples_per_round']} examples per round, batch "
                f"{s['batch_size']}, SGD {s['learning_rate']}; DP: {s['dp']}.")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
