"""Session snapshots: everything needed to continue a training run exactly.

A snapshot is one TensorFlow V1 checkpoint (``litetrain.checkpoint``, written atomically)
holding

* every resource variable of the interpreter (weights, optimizer slots, iteration
  counters, the learning rate), under ``variables/<shared_name>``;
* the generators of seeded random ops (dropout masks) as JSON in ``session/random_ops``;
* the session's position and settings as JSON in ``session/state`` (epoch, step, the
  shuffling generator's state at the start of the epoch, best validation loss, ...).

Invariant: restoring a snapshot into a fresh interpreter of the same model and replaying
the remaining steps gives bit-identical variables to a run that never stopped. A restore
validates every tensor (names, dtypes, shapes) before assigning any.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .. import checkpoint
from ..errors import CheckpointError

VARIABLES = "variables/"
STATE = "session/state"
RANDOM_OPS = "session/random_ops"


def _name(key: tuple[str, str]) -> str:
    container, shared_name = key
    return VARIABLES + (f"{container}:{shared_name}" if container else shared_name)


def initialize(interpreter) -> None:
    """Run every CALL_ONCE init subgraph now, so all variables hold values (they would run
    on the first invoke anyway; a restore must come after them, not be undone by them)."""
    for sg in interpreter.model.subgraphs:
        for node in sg.nodes:
            if node.op == "call_once":
                interpreter.call_once(node.attrs["init_subgraph_index"])


def variables(interpreter) -> dict[str, np.ndarray]:
    """The interpreter's variables that hold a value, by snapshot name (no copies: values
    are replaced, never mutated, by the interpreter)."""
    store = interpreter.variables
    return {_name(key): store.values[rid] for key, rid in store.ids.items()
            if rid in store.values}


def non_finite(tensors: dict[str, np.ndarray]) -> list[str]:
    """Names of float tensors holding NaN or infinity."""
    return [k for k, v in tensors.items()
            if v.dtype.kind == "f" and not np.isfinite(v).all()]


def write(path: str | os.PathLike, interpreter, state: dict) -> None:
    """Write the interpreter's variables, random-op generators and ``state`` atomically."""
    tensors = dict(variables(interpreter))
    randoms = {f"{a},{b}": st for (a, b), st in interpreter.random_states().items()}
    tensors[STATE] = np.array(json.dumps(state), dtype=object)
    tensors[RANDOM_OPS] = np.array(json.dumps(randoms), dtype=object)
    checkpoint.write(path, tensors)


def _text(value: np.ndarray, path, name: str) -> dict:
    raw = value.reshape(()).item() if isinstance(value, np.ndarray) else value
    try:
        value = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (ValueError, AttributeError, TypeError, UnicodeDecodeError):
        value = None
    if not isinstance(value, dict):
        raise CheckpointError(f"session snapshot '{path}': '{name}' is not the JSON object "
                              "a session writes")
    return value


def read(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict, dict]:
    """``(variables, state, random_ops)`` of a snapshot file."""
    tensors = checkpoint.read(path)
    missing = [k for k in (STATE, RANDOM_OPS) if k not in tensors]
    if missing:
        raise CheckpointError(f"'{path}' is a checkpoint but not a session snapshot "
                              f"(no {missing}); snapshots are written by TrainingSession")
    values = {k: v for k, v in tensors.items() if k.startswith(VARIABLES)}
    return values, _text(tensors[STATE], path, STATE), _text(tensors[RANDOM_OPS], path,
                                                             RANDOM_OPS)


def restore(interpreter, path: str | os.PathLike) -> dict:
    """Load a snapshot into ``interpreter``; returns the session state. All or nothing."""
    values, state, randoms = read(path)
    initialize(interpreter)
    current = variables(interpreter)
    unknown = sorted(set(values) - set(current))
    missing = sorted(set(current) - set(values))
    if unknown or missing:
        raise CheckpointError(f"session snapshot '{path}' does not fit this model: "
                              f"variables only in the snapshot {unknown[:5]}, only in the "
                              f"model {missing[:5]}")
    for name, value in values.items():
        have = current[name]
        if value.dtype != have.dtype or value.shape != have.shape:
            raise CheckpointError(f"session snapshot '{path}': '{name}' is {value.dtype}"
                                  f"{list(value.shape)} but the model's variable is "
                                  f"{have.dtype}{list(have.shape)}")
    store = interpreter.variables
    for key, rid in store.ids.items():
        if _name(key) in values:
            store.assign(rid, values[_name(key)], copy=False)  # freshly read arrays
    try:
        streams = {tuple(int(s) for s in key.split(",")): st for key, st in randoms.items()}
        interpreter.set_random_states(streams)
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(f"session snapshot '{path}': random-op streams are not what a "
                              f"session writes ({e})") from None
    return state
