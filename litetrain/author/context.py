"""Where traced code runs: the module's variables, and the trace being recorded.

``ModuleRuntime`` is the context a module's signatures run against on the desktop (the
same role an ``Interpreter`` plays for a file). While a signature is traced, kernels see
a ``TraceContext`` whose variable writes land in an overlay, so tracing never changes the
module's real weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from ..errors import VariableError
from ..ops.philox import Philox
from ..runtime.context import RuntimeContext
from ..runtime.variables import VariableStore
from .graph import Graph, TraceError, user_frame

_ACTIVE: list[Graph] = []


def current_graph(what: str = "this operation") -> Graph:
    if not _ACTIVE:
        raise TraceError(f"{user_frame()}: {what} only works inside a @litetrain.signature "
                         "method (while its graph is traced)")
    return _ACTIVE[-1]


def tracing() -> bool:
    return bool(_ACTIVE)


@contextlib.contextmanager
def recording(graph: Graph) -> Iterator[Graph]:
    _ACTIVE.append(graph)
    try:
        yield graph
    finally:
        _ACTIVE.pop()


class ModuleRuntime(RuntimeContext):
    """Variables of one module, shared by all its signatures (like an interpreter's).
    Variables are created with their values, so there is no init subgraph to run."""

    def __init__(self) -> None:
        super().__init__(VariableStore())
        self.owners: dict[str, object] = {}  # variable name -> the Variable that owns it


class _OverlayStore:
    """Reads fall through to the real store; writes stay here (the trace's scratch)."""

    def __init__(self, base: VariableStore):
        self.base = base
        self.values: dict[int, np.ndarray] = {}

    def resource_id(self, container: str, shared_name: str) -> int:
        return self.base.resource_id(container, shared_name)

    def read(self, rid: int, dtype: np.dtype) -> np.ndarray:
        if rid in self.values:
            return self.values[rid]
        try:
            return self.base.read(rid, dtype)
        except VariableError as e:
            raise TraceError(f"{user_frame()}: {e}") from None

    def assign(self, rid: int, value: np.ndarray, copy: bool = True) -> None:
        self.values[rid] = np.array(value, copy=True)


class TraceContext:
    def __init__(self, runtime: ModuleRuntime):
        self.runtime = runtime
        self.variables = _OverlayStore(runtime.variables)

    def call_once(self, subgraph_index: int) -> None:
        pass

    def random_stream(self, stream: str, seed: int, seed2: int) -> Philox:
        """A throwaway stream: tracing must not advance the module's real ones."""
        return Philox(seed, seed2)
