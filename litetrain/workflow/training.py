"""The training loop over a model file's ``train`` signature: epochs of shuffled
mini-batches, an optional time budget, resume from and save to a checkpoint, and Ctrl-C
that stops after the current step and still saves.

The checkpoint moves through the model's own ``save``/``restore`` signatures (TF V1
files, written atomically), so what is saved is exactly what the model says its
weights are. A run that ends for any reason — done, out of time, interrupted — saves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import SignatureError
from .progress import Progress


@dataclass
class TrainReport:
    losses: list[float] = field(default_factory=list)  # one per step
    steps: int = 0
    epochs: float = 0.0  # completed, fractional when stopped mid-epoch
    seconds: float = 0.0
    stopped: str = "done"  # "done" | "time budget" | "interrupted"
    resumed: bool = False
    checkpoint: str | None = None


def _loss_of(outputs: dict[str, np.ndarray]) -> float:
    if "loss" in outputs:
        return float(np.mean(outputs["loss"]))
    scalars = [v for v in outputs.values() if np.asarray(v).size == 1]
    return float(np.asarray(scalars[0]).reshape(())) if scalars else float("nan")


def require_signature(interpreter, key: str, why: str):
    """The runner of signature ``key``, or a ``SignatureError`` saying why it is needed."""
    sigs = interpreter.get_signature_list()
    if key not in sigs:
        raise SignatureError(f"the model has no '{key}' signature ({why}); it has "
                             f"{sorted(sigs) or 'none'}")
    return interpreter.get_signature_runner(key)


def fit(interpreter, data: dict[str, np.ndarray], epochs: int = 1, batch_size: int = 32,
        time_budget: float | None = None, checkpoint: str | Path | None = None,
        signature: str = "train", seed: int = 0, progress: bool = True) -> TrainReport:
    """Train ``interpreter`` on ``data`` (arrays named like the signature's inputs)."""
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    if time_budget is not None and time_budget <= 0:
        raise ValueError(f"time_budget must be positive seconds, got {time_budget}")
    train = require_signature(interpreter, signature, "the step to run")
    names = list(train.get_input_details())
    missing = [n for n in names if n not in data]
    if missing:
        raise SignatureError(f"signature '{signature}' needs inputs {names}; no data for "
                             f"{missing} (have {sorted(data)})")
    n = len(data[names[0]])
    report = TrainReport(checkpoint=str(checkpoint) if checkpoint else None)
    save = restore = None
    if checkpoint is not None:
        save = require_signature(interpreter, "save", "to write the checkpoint")
        restore = require_signature(interpreter, "restore", "to resume from the checkpoint")
        if Path(checkpoint).exists():
            restore(checkpoint_path=str(checkpoint))
            report.resumed = True
    steps_per_epoch = -(-n // batch_size)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    bar = Progress(epochs * steps_per_epoch, "train", enabled=progress)
    try:
        for epoch in range(epochs):
            order = rng.permutation(n)
            for k in range(steps_per_epoch):
                spent = time.perf_counter() - start
                if time_budget is not None and report.steps and \
                        spent + spent / report.steps > time_budget:
                    report.stopped = "time budget"
                    break
                idx = order[k * batch_size:(k + 1) * batch_size]
                loss = _loss_of(train(**{name: data[name][idx] for name in names}))
                report.losses.append(loss)
                report.steps += 1
                report.epochs = epoch + (k + 1) / steps_per_epoch
                bar.update(loss=loss)
            if report.stopped != "done":
                break
    except KeyboardInterrupt:
        report.stopped = "interrupted"
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start
        if save is not None:
            save(checkpoint_path=str(checkpoint))
    return report
