"""The interpreter-wide variable store shared by every signature of one interpreter.

Ids are assigned as TFLite does: each distinct ``(container, shared_name)`` gets the next
integer the first time a VAR_HANDLE naming it is seen, walking subgraphs and nodes in
order at load time. Values are replaced, never mutated in place, so an array handed out
by :meth:`read` stays valid after later assignments.
"""

from __future__ import annotations

import numpy as np

from ..errors import VariableError
from ..ir import Model
from ..ops.variables import variable_key


class VariableStore:
    def __init__(self, model: Model | None = None):
        self.ids: dict[tuple[str, str], int] = {}
        for sg in model.subgraphs if model is not None else ():
            for node in sg.nodes:
                if node.op == "var_handle":
                    self.ids.setdefault(variable_key(node.attrs), len(self.ids))
        self.names = {i: name for (_, name), i in self.ids.items()}
        self.values: dict[int, np.ndarray] = {}
        self.initialized: set[int] = set()  # init subgraphs CALL_ONCE has run

    def resource_id(self, container: str, shared_name: str) -> int:
        rid = self.ids.setdefault((container, shared_name), len(self.ids))
        self.names.setdefault(rid, shared_name)
        return rid

    def read(self, rid: int, dtype: np.dtype) -> np.ndarray:
        try:
            value = self.values[rid]
        except KeyError:
            raise VariableError(f"variable '{self.names.get(rid, rid)}' is read before any "
                                "value was assigned to it (does the model lack an init "
                                "subgraph or a CALL_ONCE?)") from None
        if value.dtype != dtype:
            raise VariableError(f"variable '{self.names.get(rid, rid)}' holds {value.dtype} "
                                f"but the model reads it as {dtype}")
        return value

    def assign(self, rid: int, value: np.ndarray, copy: bool = True) -> None:
        """Store ``value``. ``copy=False`` is for arrays produced during this invoke, which
        nobody mutates afterwards; anything that may alias a caller's array is copied."""
        self.values[rid] = np.array(value, copy=True) if copy else value

    def transaction(self) -> _Transaction:
        """All or nothing: if the body raises, every variable keeps its value from before.

        Cheap because values are replaced, never mutated: the snapshot is a dict copy.
        """
        return _Transaction(self)

    def by_name(self) -> dict[str, np.ndarray]:
        """Copies of the current values keyed by shared name (the container is '' in
        converter output)."""
        return {self.names[i]: v.copy() for i, v in self.values.items()}


class _Transaction:
    """The context :meth:`VariableStore.transaction` returns (a plain class: this runs on
    every invoke, and a generator-based context costs more)."""

    __slots__ = ("initialized", "store", "values")

    def __init__(self, store: VariableStore):
        self.store = store

    def __enter__(self) -> None:
        self.values, self.initialized = dict(self.store.values), set(self.store.initialized)

    def __exit__(self, kind, error, trace) -> bool:
        if kind is not None:
            self.store.values, self.store.initialized = self.values, self.initialized
        return False
