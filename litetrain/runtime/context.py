"""What stateful kernels may touch: the variable store, CALL_ONCE, checkpoint files.

Both an ``Interpreter`` (a model file) and a ``ModuleRuntime`` (a Python module being
authored) are runtime contexts; kernels see only this interface.

Checkpoint paths. A model file is untrusted input: a constant filename in its
FlexSave/FlexRestore could write anywhere or read any file. An interpreter therefore
runs in ``checkpoint_paths="inputs"`` mode by default: during a run, a kernel may only
touch a path the caller passed in (a string input of the signature, or the path given
to a builtin-format save/restore), or a file whose name extends it (``PREFIX.index``) or
lies under it. ``checkpoint_paths="any"`` allows whatever the model says, as TensorFlow
does. A Python module being authored is the caller's own code, so it is not restricted.

Reads are cached only within one run (a restore with one Restore op per variable parses
the file once); every new run reads the file again, so a rewritten checkpoint is never
served from a stale cache, whatever its size and modification time.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

from .. import checkpoint
from ..errors import CheckpointError
from ..ops.philox import Philox
from .variables import VariableStore

CHECKPOINT_PATH_MODES = ("inputs", "any")


class RuntimeContext:
    def __init__(self, variables: VariableStore, checkpoint_paths: str = "any"):
        if checkpoint_paths not in CHECKPOINT_PATH_MODES:
            raise ValueError(f"checkpoint_paths must be one of {CHECKPOINT_PATH_MODES}, got "
                             f"{checkpoint_paths!r}")
        self.variables = variables
        self.checkpoint_paths = checkpoint_paths
        self._checkpoint_cache: dict[str, dict[str, np.ndarray]] = {}
        self._caller_paths: tuple[str, ...] | None = None  # set during a run
        self._run_depth = 0
        self._streams: dict[str, Philox] = {}

    def random_stream(self, stream: str, seed: int, seed2: int) -> Philox:
        """A random node's Philox stream, made from its seeds the first time (fresh OS
        entropy when both are zero) and kept for this context's life."""
        rng = self._streams.get(stream)
        if rng is None:
            if seed == 0 and seed2 == 0:
                seed, seed2 = (int(v) for v in np.random.SeedSequence().generate_state(
                    2, np.uint64))
            rng = self._streams[stream] = Philox(seed, seed2)
        return rng

    def restart_random_streams(self, prefix: str) -> None:
        """Forget the streams whose key starts with ``prefix``: their next draw starts
        again from the node's seeds, as TensorFlow Lite's random kernels do when their
        subgraph is prepared again (after an input resize)."""
        for key in [k for k in self._streams if k.startswith(prefix)]:
            del self._streams[key]

    def random_states(self) -> dict[str, dict]:
        """The state of each random node's stream (for session snapshots)."""
        return {key: rng.state() for key, rng in self._streams.items()}

    def set_random_states(self, states: dict[str, dict]) -> None:
        """Put streams back where :meth:`random_states` saw them."""
        for key, state in states.items():
            rng = self._streams.setdefault(key, Philox(0, 0))
            rng.set_state(state)

    def call_once(self, subgraph_index: int) -> None:
        """Run an init subgraph the first time it is asked for (none by default)."""

    def call_subgraph(self, subgraph_index: int, args: tuple) -> list:
        """Run a subgraph on ``args`` (its inputs, in order) and return its outputs
        (WHILE and IF bodies). A context without subgraphs cannot."""
        raise ValueError(f"subgraph {subgraph_index} cannot be called here (control flow "
                         "needs a model file's interpreter)")

    # -- one run: the caller's paths and the read cache ----------------------------------
    def run_scope(self, caller_values: Iterable = ()) -> _RunScope:
        """The context of one top-level run: ``caller_values`` are what the caller passed
        (their strings become the allowed checkpoint paths); the read cache lives as long
        as the outermost scope."""
        return _RunScope(self, caller_values)

    def _check_path(self, path: str, action: str) -> None:
        if self.checkpoint_paths == "any":
            return
        allowed = self._caller_paths or ()
        if any(_within(path, p) for p in allowed):
            return
        shown = path if len(path) <= 200 else path[:200] + "..."
        given = ", ".join(repr(p[:200]) for p in allowed) or "none"
        raise CheckpointError(
            f"the model asks to {action} checkpoint path {shown!r}, which is not a path the "
            f"caller passed (given: {given}); only those, files named after them and files "
            "under them are allowed. Create the Interpreter with checkpoint_paths='any' to "
            "let the model choose paths, as TensorFlow does")

    def read_checkpoint(self, path: str) -> dict[str, np.ndarray]:
        """Tensors of a checkpoint file (parsed once per run)."""
        self._check_path(path, "read")
        if self._run_depth and path in self._checkpoint_cache:
            return self._checkpoint_cache[path]
        tensors = checkpoint.read(path)
        if self._run_depth:
            self._checkpoint_cache[path] = tensors
        return tensors

    def write_checkpoint(self, path: str, tensors: dict[str, np.ndarray], fmt: str) -> None:
        self._check_path(path, "write")
        self._checkpoint_cache.clear()
        checkpoint.write(path, tensors, format=fmt)


class _RunScope:
    __slots__ = ("ctx", "paths", "saved")

    def __init__(self, ctx: RuntimeContext, caller_values: Iterable):
        self.ctx = ctx
        self.paths = tuple(_strings(caller_values))

    def __enter__(self) -> None:
        ctx = self.ctx
        self.saved = ctx._caller_paths
        ctx._caller_paths = (*(ctx._caller_paths or ()), *self.paths)
        ctx._run_depth += 1

    def __exit__(self, *exc) -> bool:
        ctx = self.ctx
        ctx._run_depth -= 1
        ctx._caller_paths = self.saved
        if not ctx._run_depth:
            ctx._checkpoint_cache.clear()
        return False


def _strings(values: Iterable) -> list[str]:
    out = []
    for v in values:
        if v.__class__ is np.ndarray and v.dtype.kind not in "OSU":
            continue  # the common case, numbers: decided before the costlier checks
        if isinstance(v, os.PathLike):
            v = os.fspath(v)
        if isinstance(v, np.ndarray):
            if v.dtype.kind not in "OSU" or v.size > 16:
                continue
            out.extend(_strings(v.reshape(-1).tolist()))
            continue
        if isinstance(v, (bytes, np.bytes_)):
            try:
                v = bytes(v).decode("utf-8")
            except UnicodeDecodeError:
                continue
        if isinstance(v, str) and v:
            out.append(v)
    return out


def _within(path: str, allowed: str) -> bool:
    """``path`` is ``allowed``, lies under it, or is named after it: its first component
    below ``allowed``'s folder extends ``allowed``'s name (``PREFIX.index``, or TF's
    ``PREFIX_temp/part-00000``); compared after resolving ``..`` and symlinks."""
    real, base = os.path.realpath(path), os.path.realpath(allowed)
    if real == base or real.startswith(base.rstrip(os.sep) + os.sep):
        return True
    base_folder, base_name = os.path.split(base)
    if not real.startswith(base_folder.rstrip(os.sep) + os.sep):
        return False
    first = real[len(base_folder.rstrip(os.sep)) + 1:].split(os.sep, 1)[0]
    return bool(base_name) and first.startswith(base_name)
