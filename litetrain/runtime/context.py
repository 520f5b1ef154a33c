"""What stateful kernels may touch: the variable store, CALL_ONCE, checkpoint files.

Both an ``Interpreter`` (a model file) and a ``ModuleRuntime`` (a Python module being
authored) are runtime contexts; kernels see only this interface.
"""

from __future__ import annotations

import os

import numpy as np

from .. import checkpoint
from .variables import VariableStore


class RuntimeContext:
    def __init__(self, variables: VariableStore):
        self.variables = variables
        self._checkpoint_cache: tuple[tuple, dict[str, np.ndarray]] | None = None
        self._generators: dict[tuple[int, int], np.random.Generator] = {}

    def random_generator(self, seed: int, seed2: int) -> np.random.Generator:
        """The stream for a random op's seeds: fresh OS entropy when both are zero,
        else one reproducible generator per seed pair, kept for this context's life."""
        if seed == 0 and seed2 == 0:
            return np.random.default_rng()
        key = (int(seed), int(seed2))
        if key not in self._generators:
            self._generators[key] = np.random.default_rng([k & 0xFFFFFFFFFFFFFFFF for k in key])
        return self._generators[key]

    def random_states(self) -> dict[tuple[int, int], dict]:
        """The state of each seeded random op's stream (for session snapshots)."""
        return {key: g.bit_generator.state for key, g in self._generators.items()}

    def set_random_states(self, states: dict[tuple[int, int], dict]) -> None:
        """Put seeded streams back where :meth:`random_states` saw them."""
        for key, state in states.items():
            self.random_generator(*key).bit_generator.state = state

    def call_once(self, subgraph_index: int) -> None:
        """Run an init subgraph the first time it is asked for (none by default)."""

    def call_subgraph(self, subgraph_index: int, args: tuple) -> list:
        """Run a subgraph on ``args`` (its inputs, in order) and return its outputs
        (WHILE and IF bodies). A context without subgraphs cannot."""
        raise ValueError(f"subgraph {subgraph_index} cannot be called here (control flow "
                         "needs a model file's interpreter)")

    def read_checkpoint(self, path: str) -> dict[str, np.ndarray]:
        """Tensors of a checkpoint file; reread only when the file changes, so a restore
        signature with one Restore op per variable parses the file once."""
        try:
            st = os.stat(path)
            key = (path, st.st_mtime_ns, st.st_size)
        except OSError:
            key = None
        if key is not None and self._checkpoint_cache and self._checkpoint_cache[0] == key:
            return self._checkpoint_cache[1]
        tensors = checkpoint.read(path)
        self._checkpoint_cache = (key, tensors) if key is not None else None
        return tensors

    def write_checkpoint(self, path: str, tensors: dict[str, np.ndarray], fmt: str) -> None:
        checkpoint.write(path, tensors, format=fmt)
        self._checkpoint_cache = None
