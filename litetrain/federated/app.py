"""The ClientApp and ServerApp a Flower deployment loads (``flwr run`` against a
SuperLink with ``flower-supernode`` processes): ``litetrain.federated.app:client_app`` and
``litetrain.federated.app:server_app``. ``examples/flower_app/pyproject.toml`` names them.

Node side (``flower-supernode --node-config "data='…/node0.npz' model='…/model.tflite'"``):
each node trains the model file on its own ``.npz`` (arrays named like ``train``'s inputs,
plus ``labels`` for evaluation); only weights and metrics leave the node.

Server side (run config, overridable with ``flwr run … --run-config "k=v …"``): ``model``
(path to the ``.tflite`` whose weights start the run), ``num-rounds``, ``strategy``,
``fraction-train``, ``local-epochs``, ``batch-size``, ``min-nodes`` (the run waits for
that many nodes, at most ``node-timeout`` seconds, then fails), ``round-timeout`` (a node
that has not replied by then — crashed mid-round, say — counts as a failure),
``test-data`` (``.npz`` for the server-side evaluation; empty: none),
``dp-clip``/``dp-noise``, ``proximal-mu`` and ``learning-rate`` (FedProx: the model's SGD
rate), ``out`` (folder for ``global.ckpt``, ``metrics.json``,
``accuracy.png``; empty: none).
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

import numpy as np
from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from .errors import FederatedError
from .flower import client_app as _client_app
from .flower import make_strategy, run_server
from .local import LocalModel
from .simulation import format_table, write_outputs

log = logging.getLogger(__name__)


@cache
def _model(path: str) -> LocalModel:
    p = Path(path)
    if not p.is_file():
        raise FederatedError(f"model file '{path}' not found")
    return LocalModel(p.read_bytes(), where=str(p))


@cache
def _npz(path: str) -> dict[str, np.ndarray]:
    if not Path(path).is_file():
        raise FederatedError(f"data file '{path}' not found")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _setting(context: Context, key: str) -> str:
    value = context.node_config.get(key) or context.run_config.get(key)
    if not value:
        raise FederatedError(f"node {context.node_id}: no '{key}' in the node config (start "
                             f"the SuperNode with --node-config \"{key}='…'\")")
    return str(value)


client_app = _client_app(lambda c: _model(_setting(c, "model")),
                         lambda c: _npz(_setting(c, "data")))

server_app = ServerApp()


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    model = _model(str(cfg["model"]))
    nodes = int(cfg.get("min-nodes", 2))
    dp_clip = float(cfg.get("dp-clip", 0.0)) or None
    name = str(cfg.get("strategy", "fedavg"))
    extra = {"proximal_mu": float(cfg.get("proximal-mu", 0.1))} if name == "fedprox" else {}
    strategy = make_strategy(name, nodes, fraction_train=float(cfg.get("fraction-train", 1.0)),
                             dp_clip=dp_clip, dp_noise=float(cfg.get("dp-noise", 0.0)),
                             **extra)
    test = str(cfg.get("test-data", ""))
    result = run_server(grid, model, strategy, int(cfg.get("num-rounds", 3)),
                        test_data=_npz(test) if test else None,
                        local_epochs=int(cfg.get("local-epochs", 1)),
                        batch_size=int(cfg.get("batch-size", 32)),
                        node_timeout=float(cfg.get("node-timeout", 60.0)),
                        round_timeout=float(cfg.get("round-timeout", 600.0)),
                        learning_rate=float(cfg.get("learning-rate", 0.0)) or None)
    log.warning("litetrain federated run finished:\n%s", format_table(result))
    out = str(cfg.get("out", ""))
    if out:
        write_outputs(result, out, {k: v for k, v in cfg.items()})
