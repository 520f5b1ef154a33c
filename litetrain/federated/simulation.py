"""A federated run simulated in one process: partition a labelled data set over N nodes,
run Flower's strategy against litetrain's ClientApp through :class:`LocalGrid`, and write
the results (final global weights as a TensorFlow V1 checkpoint, metrics JSON, plot).

The data stays per node: each simulated node's ClientApp sees only its own shard (looked
up by its ``partition-id``), exactly as a deployed node sees only its own folder.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import checkpoint
from .errors import FederatedError
from .flower import FederatedResult, client_app, make_strategy, run_server
from .grid import LocalGrid
from .local import LocalModel
from .partition import split


def feeds_for(model: LocalModel, images: np.ndarray, labels: np.ndarray,
              where: str = "data") -> dict[str, np.ndarray]:
    """Arrays named like ``train``'s inputs from images and class labels: the float input
    of rank >= 2 whose size per example matches gets the images, the other gets the labels
    (one-hot for a float ``[n, classes]`` input, indices for an int ``[n]`` one); plus
    ``labels`` for evaluation."""
    feeds: dict[str, np.ndarray] = {"labels": labels.astype(np.int64)}
    per_image, images_used = int(np.prod(images.shape[1:])), False
    for name, d in model.train.get_input_details().items():
        shape, dtype = tuple(d["shape_signature"]), np.dtype(d["dtype"])
        if dtype.kind == "f" and len(shape) >= 2 and not images_used and \
                all(s > 0 for s in shape[1:]) and int(np.prod(shape[1:])) == per_image:
            feeds[name] = images.reshape(len(images), *shape[1:]).astype(dtype)
            images_used = True
        elif dtype.kind == "f" and len(shape) == 2 and shape[1] > int(labels.max()):
            feeds[name] = np.eye(shape[1], dtype=dtype)[labels]
        elif dtype.kind in "iu" and len(shape) == 1:
            feeds[name] = labels.astype(dtype)
        else:
            raise FederatedError(f"{where}: cannot make '{name}' "
                                 f"({dtype}{list(shape)}) from {list(images.shape)} images "
                                 "and class labels")
    return feeds


def simulate(model_content: bytes, train: tuple[np.ndarray, np.ndarray],
             test: tuple[np.ndarray, np.ndarray] | None = None, clients: int = 10,
             rounds: int = 3, partition: str = "iid", strategy: str = "fedavg",
             fraction: float = 1.0, fraction_evaluate: float = 0.0, local_epochs: int = 1,
             batch_size: int = 32,
             dp_clip: float | None = None, dp_noise: float = 0.0, seed: int = 0,
             fail_nodes: tuple[int, ...] = (), client_shards: list[dict] | None = None,
             verbose: bool = False, learning_rate: float | None = None,
             proximal_mu: float = 0.1) -> FederatedResult:
    """Run ``rounds`` of federated training of ``model_content`` over ``clients`` shards of
    ``train`` = (images, labels); the global model is evaluated on ``test`` each round.

    ``fail_nodes``: partition ids (0-based) whose ClientApp raises (failures are counted).
    ``client_shards``: give each node's arrays directly instead of partitioning ``train``.
    ``fraction_evaluate``: share of nodes that also evaluate the global model on their own
    data each round (``RoundStats.client_accuracy``).
    ``verbose``: keep Flower's INFO log (per-round sampling and aggregation lines).
    ``strategy="fedprox"``: ``proximal_mu`` weighs the proximal term, applied as an SGD step
    of ``learning_rate`` (the model's own SGD rate; required).
    """
    if strategy.lower() == "fedprox" and proximal_mu > 0 and not (learning_rate or 0) > 0:
        raise FederatedError("simulate: FedProx needs the model's SGD rate (learning_rate) "
                             "for its proximal step")
    model = LocalModel(model_content)
    x, y = train
    if client_shards is None:
        shards = split(partition, y, clients, seed)
        client_shards = [feeds_for(model, x[idx], y[idx], f"client {k}")
                         for k, idx in enumerate(shards)]
    elif len(client_shards) != clients:
        raise FederatedError(f"simulate: {len(client_shards)} shards for {clients} clients")
    test_data = feeds_for(model, *test, "test data") if test is not None else None

    def node_data(context) -> dict[str, np.ndarray]:
        if int(context.node_config["partition-id"]) in fail_nodes:
            raise RuntimeError(f"node {context.node_id} crashed (simulated)")
        return client_shards[int(context.node_config["partition-id"])]

    app = client_app(lambda context: model, node_data)
    grid = LocalGrid(app, clients)
    flwr_log = logging.getLogger("flwr")
    level = flwr_log.level
    flwr_log.setLevel(logging.INFO if verbose else logging.ERROR)
    try:
        extra = {"proximal_mu": proximal_mu} if strategy.lower() == "fedprox" else {}
        chosen = make_strategy(strategy, clients, fraction_train=fraction,
                               fraction_evaluate=fraction_evaluate, dp_clip=dp_clip,
                               dp_noise=dp_noise, **extra)
        random.seed(seed)  # Flower samples nodes with the random module
        with grid.active():
            return run_server(grid, model, chosen, rounds, test_data=test_data,
                              local_epochs=local_epochs, batch_size=batch_size, seed=seed,
                              node_timeout=0.0, learning_rate=learning_rate)
    finally:
        flwr_log.setLevel(level)


def write_outputs(result: FederatedResult, out_dir: str | Path, settings: dict | None = None
                  ) -> dict[str, Path]:
    """``global.ckpt`` (the final weights, restorable through the model's ``restore``),
    ``metrics.json`` and, with matplotlib, ``accuracy.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"checkpoint": out / "global.ckpt", "metrics": out / "metrics.json"}
    checkpoint.write(files["checkpoint"], result.weights, format="v1")
    doc = {"settings": settings or {}, "initial_accuracy": result.initial_accuracy,
           "seconds": result.seconds, "rounds": [asdict(r) for r in result.rounds],
           "errors": result.errors}
    files["metrics"].write_text(json.dumps(doc, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return files
    rounds = [0] + [r.round for r in result.rounds]
    acc = [result.initial_accuracy] + [r.accuracy for r in result.rounds]
    if any(a is not None for a in acc):
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(rounds, [np.nan if a is None else a for a in acc], marker="o")
        ax.set_xlabel("round")
        ax.set_ylabel("global test accuracy")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        files["plot"] = out / "accuracy.png"
        fig.savefig(files["plot"], dpi=100)
        plt.close(fig)
    return files


def format_table(result: FederatedResult) -> str:
    """The per-round table the command line prints."""
    lines = [f"{'round':>5}  {'sampled':>7}  {'failed':>6}  {'train loss':>10}  "
             f"{'global acc':>10}  {'seconds':>7}"]
    if result.initial_accuracy is not None:
        lines.append(f"{0:>5}  {'':>7}  {'':>6}  {'':>10}  {result.initial_accuracy:>10.1%}  "
                     f"{'':>7}")
    for r in result.rounds:
        loss = f"{r.train_loss:.4f}" if r.train_loss is not None else "-"
        acc = f"{r.accuracy:.1%}" if r.accuracy is not None else "-"
        lines.append(f"{r.round:>5}  {r.sampled:>7}  {r.failures:>6}  {loss:>10}  {acc:>10}  "
                     f"{r.seconds:>7.2f}")
    return "\n".join(lines)



def write_node_data(model_content: bytes, train: tuple[np.ndarray, np.ndarray],
                    test: tuple[np.ndarray, np.ndarray], out_dir: str | Path, clients: int,
                    partition: str = "iid", seed: int = 0) -> dict[str, Path]:
    """Files for a real deployment: ``model.tflite``, one ``node<k>.npz`` per client (its
    shard, arrays named like ``train``'s inputs plus ``labels``) and ``test.npz``."""
    model = LocalModel(model_content)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"model": out / "model.tflite", "test": out / "test.npz"}
    files["model"].write_bytes(model_content)
    np.savez(files["test"], **feeds_for(model, *test, "test data"))
    x, y = train
    for k, idx in enumerate(split(partition, y, clients, seed)):
        files[f"node{k}"] = out / f"node{k}.npz"
        np.savez(files[f"node{k}"], **feeds_for(model, x[idx], y[idx], f"client {k}"))
    return files
