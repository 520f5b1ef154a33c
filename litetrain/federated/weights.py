"""Weights in and out of an interpreter as a name → array dict, for any model file.

Three ways, chosen from the file (first that applies):

* ``android``: a ``parameters`` signature with no inputs returning ``a0, a1, …`` and a
  ``restore`` signature taking the same names — Flower's Android layout;
* ``builtin``: ``save``/``restore`` signatures whose weights cross the boundary as tensors
  (files written by ``litetrain.convert``; runners add the checkpoint file I/O, which is
  bypassed here);
* ``variables``: TensorFlow-made files whose ``save`` writes a checkpoint file through
  ``FlexSave``/``FlexSaveV2``: the names it saves and the variables they are read from are
  found in the graph, and values go straight in and out of the interpreter's variable
  store (falls back to the variables ``infer`` reads when there is no ``save``).

Invariants: ``names`` is the fixed order of the weights (checkpoint names where the file
has them, so a checkpoint of these weights restores through the model's ``restore``);
``set`` checks every name, dtype and shape before it changes anything.
"""

from __future__ import annotations

import re

import numpy as np

from .. import dtypes
from ..ir import Subgraph
from ..runtime.interpreter import Interpreter
from ..runtime.variables import variable_key
from .errors import FederatedError

_ANDROID = re.compile(r"a(\d+)$")


def _string_list(data) -> list[str]:
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v)
            for v in np.asarray(data, dtype=object).reshape(-1)]


def _variables_read(sg: Subgraph) -> dict[int, tuple[str, str]]:
    """tensor index → variable key for every READ_VARIABLE output of ``sg``."""
    handles = {n.outputs[0]: variable_key(n.attrs) for n in sg.nodes if n.op == "var_handle"}
    return {n.outputs[0]: handles[n.inputs[0]] for n in sg.nodes
            if n.op == "read_variable" and n.inputs[0] in handles}


class ModelWeights:
    """Read and write one interpreter's trainable weights (see the module docstring)."""

    def __init__(self, interpreter: Interpreter, where: str = "model"):
        self.interpreter = interpreter
        self.where = where
        self._specs: dict[str, tuple[np.dtype, tuple[int, ...]]] | None = None
        sigs = {s.key: s for s in interpreter.model.signatures}
        io = interpreter.checkpoint_io
        params, restore = sigs.get("parameters"), sigs.get("restore")
        if params is not None and restore is not None and not params.inputs and params.outputs \
                and all(_ANDROID.match(k) for k in params.outputs) \
                and set(params.outputs) <= set(restore.inputs):
            self.mode = "android"
            aliases = sorted(params.outputs, key=lambda k: int(k[1:]))
            ck = io.get("restore", {}).get("tensors", {})
            self._aliases = dict(zip([ck.get(a, a) for a in aliases], aliases, strict=True))
        elif io.get("save", {}).get("kind") == "save" and \
                io.get("restore", {}).get("kind") == "restore":
            self.mode = "builtin"
            self._save_alias = {ck: alias for alias, ck in io["save"]["tensors"].items()}
            self._restore_alias = {ck: alias for alias, ck in io["restore"]["tensors"].items()}
            if set(self._save_alias) != set(self._restore_alias):
                raise FederatedError(f"{where}: 'save' writes {sorted(self._save_alias)} but "
                                     f"'restore' reads {sorted(self._restore_alias)}")
            self._aliases = dict(self._save_alias)
        else:
            self.mode = "variables"
            self._keys = self._find_variables(sigs)
            self._aliases = {name: name for name in self._keys}
        self.names: list[str] = list(self._aliases)
        if not self.names:
            raise FederatedError(f"{where}: found no trainable weights (no 'parameters', no "
                                 "'save' signature, and 'infer' reads no variable)")

    def _find_variables(self, sigs) -> dict[str, tuple[str, str]]:
        model = self.interpreter.model
        save = sigs.get("save")
        if save is not None:
            sg = model.subgraphs[save.subgraph_index]
            reads = _variables_read(sg)
            found: dict[str, tuple[str, str]] = {}
            for node in sg.nodes:
                if node.op in ("FlexSave", "FlexSaveV2"):
                    first = 2 if node.op == "FlexSave" else 3
                    names = _string_list(sg.tensors[node.inputs[1]].data)
                    for name, idx in zip(names, node.inputs[first:], strict=True):
                        if idx not in reads:
                            raise FederatedError(f"{self.where}: 'save' writes '{name}' from "
                                                 "a value that is not a variable read")
                        found[name] = reads[idx]
            if found:
                return found
        infer = sigs.get("infer")
        if infer is None:
            return {}
        reads = _variables_read(model.subgraphs[infer.subgraph_index])
        return {key[1]: key for key in dict.fromkeys(reads.values())}

    # -- reading and writing ------------------------------------------------------------
    def _initialize(self) -> None:
        """Run the CALL_ONCE init subgraphs so every variable holds a value."""
        for sg in self.interpreter.model.subgraphs:
            for node in sg.nodes:
                if node.op == "call_once":
                    self.interpreter.call_once(int(node.attrs["init_subgraph_index"]))

    def get(self) -> dict[str, np.ndarray]:
        """The current weights, in ``names`` order (copies the caller owns)."""
        interp = self.interpreter
        if self.mode == "android":
            out = interp.get_signature_runner("parameters").run_graph({})
            return {name: out[alias] for name, alias in self._aliases.items()}
        if self.mode == "builtin":
            runner = interp.get_signature_runner("save")
            path = interp.checkpoint_io["save"]["path_input"]
            out = runner.run_graph({path: np.array(b"", dtype=object)})
            return {name: out[alias] for name, alias in self._aliases.items()}
        self._initialize()
        store = interp.variables
        return {name: store.values[store.ids[key]].copy() for name, key in self._keys.items()}

    def set(self, weights: dict[str, np.ndarray]) -> None:
        """Replace the weights; every name, dtype and shape is checked first."""
        if set(weights) != set(self.names):
            missing, extra = set(self.names) - set(weights), set(weights) - set(self.names)
            raise FederatedError(f"{self.where}: weights do not match the model: missing "
                                 f"{sorted(missing)}, unexpected {sorted(extra)}")
        current = self.specs()
        for name, value in weights.items():
            dtype, shape = current[name]
            value = np.asarray(value)
            if value.dtype != dtype or value.shape != shape:
                raise FederatedError(f"{self.where}: weight '{name}' is {value.dtype}"
                                     f"{list(value.shape)}, the model has {dtype}{list(shape)}")
        interp = self.interpreter
        if self.mode in ("android", "builtin"):
            runner = interp.get_signature_runner("restore")
            feeds = {self._aliases[n] if self.mode == "android" else self._restore_alias[n]:
                     np.asarray(v) for n, v in weights.items()}
            other = set(runner.signature.inputs) - set(feeds)
            if other:
                raise FederatedError(f"{self.where}: 'restore' also takes {sorted(other)}")
            runner.run_graph(feeds)
            return
        self._initialize()
        store = interp.variables
        for name, key in self._keys.items():
            store.assign(store.ids[key], np.asarray(weights[name]), copy=True)

    def specs(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        """name → (dtype, shape) of every weight."""
        if self._specs is None:
            if self.mode == "variables":
                self._specs = {n: (v.dtype, v.shape) for n, v in self.get().items()}
            else:
                sig = self.interpreter.model.signature("restore")
                tensors = self.interpreter.model.subgraphs[sig.subgraph_index].tensors
                alias = self._aliases if self.mode == "android" else self._restore_alias
                inputs = {n: tensors[sig.inputs[alias[n]]] for n in self.names}
                self._specs = {n: (dtypes.to_numpy(t.dtype), tuple(t.shape))
                               for n, t in inputs.items()}
        return self._specs
