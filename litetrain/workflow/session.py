"""``TrainingSession``: a training run a device can trust.

Runs a model's training signature over shuffled mini-batches, in the calling thread
(:meth:`run`) or a background thread (:meth:`start`, :meth:`pause`, :meth:`resume`,
:meth:`stop`, :meth:`wait`), within epochs, a step budget and a time budget, with early
stopping on a validation split, per-step/per-epoch callbacks and a progress bar.

Invariants:

* **Exact resume.** The session snapshot (``snapshot.py``) holds every variable of the
  interpreter, the seeded random ops' streams, the position (epoch, step) and the shuffling
  generator's state at the start of the epoch. A run killed at any moment (even ``kill
  -9``) and resumed from its last snapshot, any number of times, ends with variables
  bit-identical to a run that never stopped: the steps after the snapshot are replayed.
* **Nothing bad is saved.** A step whose loss is not finite is undone (a signature call
  only replaces variable values, so the values before it are kept by reference) and the
  session stops with :class:`TrainingError`, writing nothing. Snapshots and checkpoints are
  written atomically, so a kill during a save leaves the previous one.
* **Ctrl-C stops after the current step and saves** (``control.py``); more Ctrl-Cs never
  interrupt a step or a save.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, LitetrainError, SignatureError
from . import snapshot as snap
from .control import Clock, folder_problem, sigint_deferred, sigint_stops
from .progress import Progress

STOP_REASONS = ("done", "max steps", "time budget", "early stopping", "stopped",
                "interrupted")


class TrainingError(LitetrainError, RuntimeError):
    """Training cannot go on (a non-finite loss, or data the step cannot use)."""


@dataclass
class SessionReport:
    losses: list[float] = field(default_factory=list)  # this run's steps, one per step
    validation_losses: list[float] = field(default_factory=list)  # one per finished epoch
    steps: int = 0  # steps taken by this run
    total_steps: int = 0  # steps of the whole session, across resumes
    epochs: float = 0.0  # epochs of the whole session, fractional mid-epoch
    seconds: float = 0.0  # training time of this run (pauses excluded)
    stopped: str = "done"  # one of STOP_REASONS
    started_from: str = "model file"  # "model file" | "checkpoint" | "snapshot"
    best_validation_loss: float | None = None


def training_step_problem(interpreter, key: str) -> str | None:
    """Why signature ``key`` is not a training step (``None`` if it is one): a training
    step takes no strings and assigns variables."""
    sig = next((s for s in interpreter.model.signatures if s.key == key), None)
    if sig is None:
        names = sorted(s.key for s in interpreter.model.signatures)
        return f"the model has no '{key}' signature; it has {names or 'none'}"
    runner = interpreter.get_signature_runner(key)
    strings = [n for n, d in runner.get_input_details().items()
               if np.dtype(d["dtype"]).kind in "OSU"]
    if strings:
        return f"signature '{key}' takes strings {strings} (a file path?), not training data"
    nodes = interpreter.model.subgraphs[sig.subgraph_index].nodes
    if not any(n.op == "assign_variable" for n in nodes):
        return f"signature '{key}' changes no variable, so it is not a training step"
    return None


def _loss_of(outputs: dict[str, np.ndarray]) -> float | None:
    if "loss" in outputs:
        return float(np.mean(outputs["loss"]))
    scalars = [v for v in outputs.values() if np.asarray(v).size == 1]
    return float(np.asarray(scalars[0]).reshape(())) if len(scalars) == 1 else None


def check_writable(path: str | os.PathLike, what: str) -> None:
    """Fail now, not after an hour of training, if ``path``'s folder cannot be written."""
    problem = folder_problem(path)
    if problem:
        raise TrainingError(f"{what} '{path}': {problem}")


class TrainingSession:
    """Train ``interpreter`` on ``data`` (arrays named like the signature's inputs; extra
    arrays are ignored).

    ``checkpoint``: written through the model's ``save`` signature when the run ends (the
    file ``infer``/``restore`` use); with ``keep="best"`` it gets the weights of the best
    validation loss. ``snapshot`` (default ``checkpoint + ".session"``): the full session
    state, written every ``snapshot_every`` steps, every ``snapshot_seconds``, at each
    epoch end and when the run ends; ``<snapshot>.best`` holds the best state.
    ``resume=True`` continues the snapshot exactly when it exists; otherwise an existing
    ``checkpoint`` is restored (weights only) and a new session starts.
    ``validation_split``: the last fraction of the examples is held out; its loss is the
    training signature's loss with the update undone, once per epoch. ``patience``: stop
    after that many epochs without a better validation loss.
    Callbacks: ``on_step(session, loss)`` and ``on_epoch(session, validation_loss)``.
    """

    def __init__(self, interpreter, data: dict[str, np.ndarray], *, signature: str = "train",
                 epochs: int = 1, batch_size: int = 32, max_steps: int | None = None,
                 time_budget: float | None = None, validation_split: float = 0.0,
                 patience: int | None = None, checkpoint: str | os.PathLike | None = None,
                 snapshot: str | os.PathLike | None = None, keep: str = "last",
                 resume: bool = False, snapshot_every: int | None = None,
                 snapshot_seconds: float | None = 60.0, seed: int = 0, progress: bool = False,
                 on_step: Callable | None = None, on_epoch: Callable | None = None):
        if epochs < 1 or batch_size < 1:
            raise TrainingError(f"epochs and batch_size must be >= 1, got {epochs}, "
                                f"{batch_size}")
        if max_steps is not None and max_steps < 1:
            raise TrainingError(f"max_steps must be >= 1, got {max_steps}")
        if time_budget is not None and not time_budget > 0:
            raise TrainingError(f"time_budget must be positive seconds, got {time_budget}")
        if not 0 <= validation_split < 1:
            raise TrainingError(f"validation_split must be in [0, 1), got {validation_split}")
        if keep not in ("best", "last"):
            raise TrainingError(f"keep must be 'best' or 'last', got {keep!r}")
        if keep == "best" and not validation_split:
            raise TrainingError("keep='best' needs a validation_split to know what is best")
        if patience is not None and (patience < 1 or not validation_split):
            raise TrainingError("patience needs validation_split > 0 and is >= 1 epochs")
        problem = training_step_problem(interpreter, signature)
        if problem:
            raise SignatureError(problem + " (give the training signature's name)")
        self.interpreter, self.signature = interpreter, signature
        self._train = interpreter.get_signature_runner(signature)
        self.names = list(self._train.get_input_details())
        self.data = self._check_data(data)
        n = len(self.data[self.names[0]])
        n_val = math.floor(n * validation_split)
        if validation_split and (n_val < 1 or n_val >= n):
            raise TrainingError(f"validation_split {validation_split} of {n} examples leaves "
                                f"{n - n_val} to train on and {n_val} to validate")
        self.n_train, self.n_val = n - n_val, n_val
        self.epochs, self.batch_size, self.max_steps = epochs, batch_size, max_steps
        self.time_budget, self.patience, self.keep, self.seed = time_budget, patience, keep, seed
        self.steps_per_epoch = -(-self.n_train // batch_size)
        self.checkpoint = os.fspath(checkpoint) if checkpoint is not None else None
        if snapshot is None and self.checkpoint is not None:
            snapshot = self.checkpoint + ".session"
        self.snapshot = os.fspath(snapshot) if snapshot is not None else None
        self._save = self._restore = None
        if self.checkpoint is not None:
            check_writable(self.checkpoint, "checkpoint")
            self._save = self._runner("save", "to write the checkpoint")
            self._restore = self._runner("restore", "to read the checkpoint")
        if self.snapshot is not None:
            check_writable(self.snapshot, "session snapshot")
        self._resume_snapshot, self.snapshot_every = resume, snapshot_every
        self.snapshot_seconds = snapshot_seconds
        self.on_step, self.on_epoch, self.progress = on_step, on_epoch, progress
        self.report = SessionReport()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._holding = threading.Event()  # set while a paused run is holding
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        # Position: epoch, step within it, the shuffling stream at the epoch's start.
        self.epoch = self.step_in_epoch = self.total_steps = 0
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._epoch_start = self._rng.bit_generator.state
        self._order: np.ndarray | None = None
        self._best: float | None = None
        self._best_values: dict | None = None
        self._bad_epochs = 0
        self._finished = False
        self._interrupted = False

    # -- set-up ----------------------------------------------------------------------------
    def _runner(self, key: str, why: str):
        if key not in self.interpreter.get_signature_list():
            raise SignatureError(f"the model has no '{key}' signature ({why})")
        return self.interpreter.get_signature_runner(key)

    def _check_data(self, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [k for k in self.names if k not in data]
        if missing:
            raise SignatureError(f"signature '{self.signature}' needs inputs {self.names}; "
                                 f"no data for {missing} (have {sorted(data)})")
        arrays = {k: np.asarray(data[k]) for k in self.names}
        lengths = {k: (len(v) if v.ndim else None) for k, v in arrays.items()}
        if None in lengths.values() or len(set(lengths.values())) != 1:
            raise TrainingError(f"inputs must be arrays with one row per example and agree "
                                f"on the number of examples, got {lengths}")
        if not next(iter(lengths.values())):
            raise TrainingError(f"no examples: the data for {self.names} is empty")
        return arrays

    def _settings(self) -> dict:
        """What a snapshot must share with the session resuming it."""
        return {"signature": self.signature, "batch_size": self.batch_size, "seed": self.seed,
                "n_train": self.n_train, "n_val": self.n_val}

    def _start(self) -> None:
        snap.initialize(self.interpreter)
        if self._resume_snapshot and self.snapshot and Path(self.snapshot).is_file():
            settings = self._settings()  # everything is checked before any variable changes
            state = snap.read(self.snapshot)[1]
            if state.get("settings") != settings:
                raise TrainingError(f"session snapshot '{self.snapshot}' was made with "
                                    f"{state.get('settings')}; this session has {settings} "
                                    "(resume with the same data and settings, or start anew)")
            try:
                self.epoch, self.step_in_epoch = int(state["epoch"]), int(state["step_in_epoch"])
                self.total_steps = int(state["total_steps"])
                self._rng.bit_generator.state = state["epoch_start"]
                self._epoch_start = state["epoch_start"]
                self._best, self._bad_epochs = state["best"], int(state["bad_epochs"])
            except (KeyError, TypeError, ValueError) as e:
                raise CheckpointError(f"session snapshot '{self.snapshot}': its position is "
                                      f"not what a session writes ({e!r})") from None
            snap.restore(self.interpreter, self.snapshot)
            best_file = self.snapshot + ".best"
            if self._best is not None and Path(best_file).is_file():
                self._best_values = snap.read(best_file)[0]
            self.report.started_from = "snapshot"
        elif self.checkpoint and Path(self.checkpoint).exists():
            self._restore(checkpoint_path=self.checkpoint)
            self.report.started_from = "checkpoint"
        self.report.total_steps = self.total_steps
        self.report.best_validation_loss = self._best

    # -- control (any thread) --------------------------------------------------------------
    def start(self) -> TrainingSession:
        """Run in a background thread; :meth:`wait` returns the report."""
        if self._thread is not None:
            raise TrainingError("this session was already started")
        self._thread = threading.Thread(target=self._background, name="litetrain-session",
                                        daemon=True)
        self._thread.start()
        return self

    def _background(self) -> None:
        try:
            self.run()
        except BaseException as e:  # handed to wait()
            self._error = e

    def pause(self) -> None:
        """Hold before the next step (the snapshot is written first)."""
        self._running.clear()

    def resume(self) -> None:
        """Continue after :meth:`pause`."""
        self._running.set()

    def _ctrl_c(self) -> None:
        self._interrupted = True
        self.stop()

    def stop(self) -> None:
        """Stop after the current step; the run saves as it ends."""
        self._stop.set()
        self._running.set()

    def wait(self, timeout: float | None = None) -> SessionReport | None:
        """The report once the background run ended (``None`` if ``timeout`` passed);
        re-raises its error."""
        if self._thread is None:
            raise TrainingError("wait() needs start() first")
        self._thread.join(timeout)
        if self._thread.is_alive():
            return None
        if self._error is not None:
            raise self._error
        return self.report

    @property
    def paused(self) -> bool:
        """True once a paused run is holding between steps (its snapshot written)."""
        return self._holding.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> SessionReport:
        """Train in the calling thread until done, out of budget, stopped or interrupted;
        save; return the report."""
        self._start()
        report = self.report
        total = self.epochs * self.steps_per_epoch
        if self.max_steps is not None:
            total = min(total, self.max_steps)
        bar = Progress(total, "train", enabled=self.progress, initial=self.total_steps)
        clock = Clock()
        last_snapshot = time.monotonic()
        try:
            with sigint_stops(self._ctrl_c):
                while True:
                    reason = self._should_stop(clock)
                    if reason:
                        report.stopped = reason
                        break
                    if not self._running.is_set():
                        self._write_snapshot()
                        last_snapshot = time.monotonic()
                        with clock.paused():
                            self._holding.set()
                            self._running.wait()
                            self._holding.clear()
                        continue
                    loss = self._step()
                    bar.update(**({"loss": loss} if loss is not None else {}))
                    if self.on_step is not None:
                        self.on_step(self, loss)
                    if self.step_in_epoch == self.steps_per_epoch:
                        self._end_epoch()
                        last_snapshot = time.monotonic()
                    elif self._snapshot_due(last_snapshot):
                        self._write_snapshot()
                        last_snapshot = time.monotonic()
        except KeyboardInterrupt:  # only where sigint_stops is not in charge (other handlers)
            report.stopped = "interrupted"
        finally:
            bar.close()
            report.seconds = clock.seconds()
        self._finish()
        return report

    def _should_stop(self, clock: Clock) -> str | None:
        if self._finished:
            return "early stopping"
        if self.epoch >= self.epochs:
            return "done"
        if self.max_steps is not None and self.total_steps >= self.max_steps:
            return "max steps"
        if self._stop.is_set():
            return "interrupted" if self._interrupted else "stopped"
        if self.time_budget is not None and self.report.steps:
            spent = clock.seconds()
            if spent + spent / self.report.steps > self.time_budget:
                return "time budget"
        return None

    def _batch(self, order: np.ndarray, k: int) -> dict[str, np.ndarray]:
        idx = order[k * self.batch_size:(k + 1) * self.batch_size]
        return {name: self.data[name][idx] for name in self.names}

    def _step(self) -> float | None:
        if self._order is None:
            self._rng.bit_generator.state = self._epoch_start
            self._order = self._rng.permutation(self.n_train)
        store = self.interpreter.variables
        before = dict(store.values)
        outputs = self._train(**self._batch(self._order, self.step_in_epoch))
        loss = _loss_of(outputs)
        if loss is not None and not math.isfinite(loss):
            store.values = before  # undo the step; nothing is written
            raise TrainingError(
                f"step {self.total_steps + 1} (epoch {self.epoch + 1}) gave loss {loss}; "
                "training stopped and the step was undone. Check the data for NaN or "
                "infinite values, or lower the learning rate. Nothing was saved: "
                f"{self.snapshot or self.checkpoint or 'the last save'} keeps the last "
                "good state")
        self.step_in_epoch += 1
        self.total_steps += 1
        self.report.steps += 1
        self.report.total_steps = self.total_steps
        self.report.epochs = self.epoch + self.step_in_epoch / self.steps_per_epoch
        if loss is not None:
            self.report.losses.append(loss)
        return loss

    def _end_epoch(self) -> None:
        self.epoch += 1
        self.step_in_epoch = 0
        self._order = None
        self._epoch_start = self._rng.bit_generator.state
        val = self.validation_loss() if self.n_val else None
        if val is not None:
            self.report.validation_losses.append(val)
            if self._best is None or val < self._best:
                self._best, self._bad_epochs = val, 0
                self._best_values = snap.variables(self.interpreter)
                if self.snapshot:
                    snap.write(self.snapshot + ".best", self.interpreter, self._state())
            else:
                self._bad_epochs += 1
                if self.patience is not None and self._bad_epochs >= self.patience:
                    self._finished = True
            self.report.best_validation_loss = self._best
        self._write_snapshot()
        if self.on_epoch is not None:
            self.on_epoch(self, val)

    def validation_loss(self) -> float:
        """Mean training-signature loss over the held-out examples, each step undone
        (variables and random streams as before)."""
        store = self.interpreter.variables
        total = 0.0
        order = np.arange(self.n_train, self.n_train + self.n_val)
        for k in range(-(-self.n_val // self.batch_size)):
            before, streams = dict(store.values), self.interpreter.random_states()
            batch = self._batch(order, k)
            try:
                loss = _loss_of(self._train(**batch))
            finally:
                store.values = before
                self.interpreter.set_random_states(streams)
            total += (loss if loss is not None else math.nan) * len(batch[self.names[0]])
        return total / self.n_val

    def _snapshot_due(self, last: float) -> bool:
        if self.snapshot is None:
            return False
        if self.snapshot_every and self.total_steps % self.snapshot_every == 0:
            return True
        return self.snapshot_seconds is not None and \
            time.monotonic() - last >= self.snapshot_seconds

    def _state(self) -> dict:
        return {"settings": self._settings(), "epoch": self.epoch,
                "step_in_epoch": self.step_in_epoch, "total_steps": self.total_steps,
                "epoch_start": self._epoch_start, "best": self._best,
                "bad_epochs": self._bad_epochs}

    def _write_snapshot(self) -> None:
        if self.snapshot is None:
            return
        bad = snap.non_finite(snap.variables(self.interpreter))
        if bad:
            raise TrainingError(f"variables {bad[:5]} hold NaN or infinity; the snapshot "
                                f"'{self.snapshot}' keeps the last good state")
        with sigint_deferred():
            snap.write(self.snapshot, self.interpreter, self._state())

    def _finish(self) -> None:
        """Write the snapshot, then the checkpoint (best or last weights)."""
        self._write_snapshot()
        if self._save is None:
            return
        store = self.interpreter.variables
        last = dict(store.values)
        best = self._best_values if self.keep == "best" else None
        if best is not None:
            for key, rid in store.ids.items():
                name = snap.VARIABLES + (f"{key[0]}:{key[1]}" if key[0] else key[1])
                if name in best:
                    store.values[rid] = best[name]
        bad = snap.non_finite(snap.variables(self.interpreter))
        if bad:
            store.values = last
            raise TrainingError(f"variables {bad[:5]} hold NaN or infinity; checkpoint "
                                f"'{self.checkpoint}' was not overwritten")
        with sigint_deferred():
            self._save(checkpoint_path=self.checkpoint)
        if best is not None:
            store.values = last  # the interpreter continues from the last state


__all__ = ["STOP_REASONS", "SessionReport", "TrainingError", "TrainingSession",
           "check_writable", "training_step_problem"]
