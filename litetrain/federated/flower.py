"""Flower glue: a ClientApp that trains a model file on the node's data, strategies by
name (with differential privacy), and the server loop a ServerApp runs.

Records: weights travel as one ``ArrayRecord`` under ``"arrays"`` (keys = the weight names
of :class:`~litetrain.federated.weights.ModelWeights`); replies carry a ``MetricRecord``
under ``"metrics"`` with ``num-examples`` (FedAvg's weight), ``train_loss`` or
``eval_loss``/``eval_acc``. Config keys: ``local-epochs``, ``batch-size``, ``seed``,
``learning-rate`` (the model's SGD rate, for FedProx's proximal step), ``server-round`` and
``proximal-mu`` (set by the strategy).

No wait is unbounded: :func:`run_server` waits for the nodes it needs for at most
``node_timeout`` seconds, refuses strategies whose minimums exceed the nodes there are,
and gives every round a ``round_timeout``. A ClientApp that raises becomes an error reply
that the round counts as a failure; the round aggregates the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.serverapp import strategy as strategies

from .errors import FederatedError
from .local import LocalModel

STRATEGIES: dict[str, type] = {
    "fedavg": strategies.FedAvg,
    "fedavgm": strategies.FedAvgM,
    "fedadam": strategies.FedAdam,
    "fedyogi": strategies.FedYogi,
    "fedadagrad": strategies.FedAdagrad,
    "fedprox": strategies.FedProx,
    "fedmedian": strategies.FedMedian,
    "fedtrimmedavg": strategies.FedTrimmedAvg,
}


# -- records -------------------------------------------------------------------------------
def to_record(weights: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in weights.items()})


def from_record(record: ArrayRecord, model: LocalModel, where: str) -> dict[str, np.ndarray]:
    """Weights for ``model`` from a record: names and shapes must match; float arrays are
    cast to the model's dtype (a DP strategy's noise arrives as float64)."""
    specs = model.weights.specs()
    if set(record.keys()) != set(specs):
        raise FederatedError(f"{where}: the arrays {sorted(record.keys())} do not match the "
                             f"model's weights {sorted(specs)}")
    out = {}
    for name, (dtype, shape) in specs.items():
        value = record[name].numpy()
        if value.shape != shape:
            raise FederatedError(f"{where}: array '{name}' has shape {list(value.shape)}, the "
                                 f"model has {list(shape)}")
        if value.dtype != dtype and value.dtype.kind == "f" and dtype.kind == "f":
            value = value.astype(dtype)
        out[name] = value
    return out


# -- the ClientApp -------------------------------------------------------------------------
ModelSource = Callable[[Context], LocalModel]
DataSource = Callable[[Context], dict[str, np.ndarray]]


def client_app(model: ModelSource, data: DataSource) -> ClientApp:
    """A ClientApp training ``model(context)`` on ``data(context)``: the node's own arrays,
    which never leave it (only weights and metrics are sent back)."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        where = f"node {context.node_id}"
        local = model(context)
        config = msg.content.config_records.get("config", ConfigRecord())
        weights = from_record(msg.content["arrays"], local, where)
        rate = float(config.get("learning-rate", 0.0)) or None
        result = local.fit(weights, data(context), epochs=int(config.get("local-epochs", 1)),
                           batch_size=int(config.get("batch-size", 32)),
                           seed=int(config.get("seed", 0)) * 100003 + context.node_id % 100003
                           + int(config.get("server-round", 0)), where=where,
                           proximal_mu=float(config.get("proximal-mu", 0.0)),
                           proximal_lr=rate)
        metrics = MetricRecord({"train_loss": result.loss, "num-examples": result.num_examples})
        return Message(RecordDict({"arrays": to_record(result.weights), "metrics": metrics}),
                       reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        where = f"node {context.node_id}"
        local = model(context)
        weights = from_record(msg.content["arrays"], local, where)
        result = local.evaluate(weights, data(context), where=where)
        metrics = MetricRecord({"eval_loss": result.loss, "eval_acc": result.accuracy,
                                "num-examples": result.num_examples})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    return app


# -- strategies ----------------------------------------------------------------------------
def make_strategy(name: str, nodes: int, fraction_train: float = 1.0,
                  fraction_evaluate: float = 0.0, dp_clip: float | None = None,
                  dp_noise: float = 0.0, **options):
    """A Flower strategy by name, sampling ``fraction_train`` of ``nodes`` (at least one)
    per round; with ``dp_clip``, wrapped in server-side fixed-clipping DP (clip each
    update's L2 norm to ``dp_clip``, add Gaussian noise ``dp_noise × dp_clip / sampled``)."""
    cls = STRATEGIES.get(name.lower())
    if cls is None:
        raise FederatedError(f"strategy: unknown {name!r}; choose one of "
                             f"{', '.join(sorted(STRATEGIES))}")
    if not 0 < fraction_train <= 1 or not 0 <= fraction_evaluate <= 1:
        raise FederatedError(f"strategy: fractions must be in (0, 1], got train "
                             f"{fraction_train}, evaluate {fraction_evaluate}")
    if nodes < 1:
        raise FederatedError(f"strategy: need at least one node, got {nodes}")
    sampled = max(1, int(nodes * fraction_train))
    evaluated = int(nodes * fraction_evaluate)
    strategy = cls(fraction_train=fraction_train, fraction_evaluate=fraction_evaluate,
                   min_train_nodes=sampled, min_evaluate_nodes=evaluated,
                   min_available_nodes=nodes, **options)
    if dp_clip is not None:
        if dp_clip <= 0 or dp_noise < 0:
            raise FederatedError(f"strategy: DP needs clip > 0 and noise >= 0, got clip "
                                 f"{dp_clip}, noise {dp_noise}")
        strategy = strategies.DifferentialPrivacyServerSideFixedClipping(
            strategy, noise_multiplier=dp_noise, clipping_norm=dp_clip,
            num_sampled_clients=sampled)
    return strategy


def _minimums(strategy) -> dict[str, int]:
    inner = getattr(strategy, "strategy", strategy)  # DP wrappers hold the real one
    return {k: int(getattr(inner, k, 0)) for k in
            ("min_available_nodes", "min_train_nodes", "min_evaluate_nodes")}


# -- the server loop -----------------------------------------------------------------------
@dataclass
class RoundStats:
    round: int
    sampled: int = 0
    failures: int = 0
    train_loss: float | None = None
    accuracy: float | None = None  # server-side, on the held-out split
    loss: float | None = None
    client_accuracy: float | None = None  # the nodes' own data (when fraction_evaluate > 0)
    seconds: float = 0.0


@dataclass
class FederatedResult:
    weights: dict[str, np.ndarray]
    rounds: list[RoundStats] = field(default_factory=list)
    initial_accuracy: float | None = None
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def wait_for_nodes(grid: Grid, count: int, timeout: float, poll: float = 0.2) -> list[int]:
    """The grid's node ids once at least ``count`` are there; ``FederatedError`` after
    ``timeout`` seconds (Flower's own sampling would wait forever)."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = list(grid.get_node_ids())
        if len(nodes) >= count:
            return nodes
        if time.monotonic() >= deadline:
            raise FederatedError(f"server: {len(nodes)} node(s) connected after {timeout:g} s, "
                                 f"{count} needed")
        time.sleep(poll)


def _instrument(strategy, stats: dict[int, RoundStats], errors: list[str],
                need: int, node_timeout: float) -> None:
    """Record per round how many nodes were sampled and how many replied with an error.

    Before each sampling, wait (at most ``node_timeout``) for the ``need`` nodes Flower's
    sampler would otherwise wait for forever, e.g. after a node left mid-run."""
    configure, aggregate = strategy.configure_train, strategy.aggregate_train
    configure_eval = strategy.configure_evaluate

    def configure_evaluate(server_round, arrays, config, grid):
        wait_for_nodes(grid, need, node_timeout)
        return configure_eval(server_round, arrays, config, grid)

    def configure_train(server_round, arrays, config, grid):
        wait_for_nodes(grid, need, node_timeout)
        messages = list(configure(server_round, arrays, config, grid))
        s = stats.setdefault(server_round, RoundStats(server_round))
        s.sampled = len(messages)
        return messages

    def aggregate_train(server_round, replies):
        replies = list(replies)
        s = stats.setdefault(server_round, RoundStats(server_round))
        bad = [r for r in replies if r.has_error()]
        s.failures = s.sampled - (len(replies) - len(bad))
        errors.extend(f"round {server_round}, node {r.metadata.src_node_id}: "
                      f"{r.error.reason}" for r in bad)
        return aggregate(server_round, replies)

    strategy.configure_train, strategy.aggregate_train = configure_train, aggregate_train
    strategy.configure_evaluate = configure_evaluate


def run_server(grid: Grid, model: LocalModel, strategy, rounds: int,
               test_data: dict[str, np.ndarray] | None = None,
               initial: dict[str, np.ndarray] | None = None, local_epochs: int = 1,
               batch_size: int = 32, seed: int = 0, node_timeout: float = 60.0,
               round_timeout: float = 600.0, learning_rate: float | None = None
               ) -> FederatedResult:
    """Run ``rounds`` of ``strategy`` over the nodes of ``grid`` from the model file's
    weights (or ``initial``); evaluate the global model on ``test_data`` after each."""
    if rounds < 1:
        raise FederatedError(f"server: rounds must be >= 1, got {rounds}")
    start = time.perf_counter()
    need = _minimums(strategy)
    nodes = wait_for_nodes(grid, need["min_available_nodes"], node_timeout)
    too_many = {k: v for k, v in need.items() if v > len(nodes)}
    if too_many:
        raise FederatedError(f"server: the strategy needs {too_many} but only {len(nodes)} "
                             "nodes are connected; it would wait forever")
    initial = model.initial_weights() if initial is None else initial
    stats: dict[int, RoundStats] = {}
    errors: list[str] = []
    _instrument(strategy, stats, errors, need["min_available_nodes"], node_timeout)

    done_at: dict[int, float] = {}

    def evaluate(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
        metrics = None
        if test_data is not None:
            r = model.evaluate(from_record(arrays, model, "server"), test_data, where="server")
            metrics = MetricRecord({"accuracy": r.accuracy, "loss": r.loss})
        done_at[server_round] = time.perf_counter()
        return metrics

    config = ConfigRecord({"local-epochs": local_epochs, "batch-size": batch_size,
                           "seed": seed, "learning-rate": float(learning_rate or 0.0)})
    result = strategy.start(grid=grid, initial_arrays=to_record(initial), num_rounds=rounds,
                            timeout=round_timeout, train_config=config,
                            evaluate_fn=evaluate)
    out = FederatedResult(from_record(result.arrays, model, "server") if len(result.arrays)
                          else initial, errors=errors)
    served = result.evaluate_metrics_serverapp
    if 0 in served:
        out.initial_accuracy = float(served[0]["accuracy"])
    for r in range(1, rounds + 1):
        s = stats.get(r, RoundStats(r))
        if r in done_at and r - 1 in done_at:
            s.seconds = done_at[r] - done_at[r - 1]
        train = result.train_metrics_clientapp.get(r)
        if train is not None and "train_loss" in train:
            s.train_loss = float(train["train_loss"])
        if r in served:
            s.accuracy, s.loss = float(served[r]["accuracy"]), float(served[r]["loss"])
        at_nodes = result.evaluate_metrics_clientapp.get(r)
        if at_nodes is not None and "eval_acc" in at_nodes:
            s.client_accuracy = float(at_nodes["eval_acc"])
        out.rounds.append(s)
    out.seconds = time.perf_counter() - start
    return out
