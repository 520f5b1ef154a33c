"""Signature runners: call one entry point with keyword arrays, get a dict of arrays.

Inputs bind by the signature's alias names, never by position (TF's converter sorts the
aliases, and the subgraph's input order can differ). Every call checks that exactly the
signature's inputs were given, with the right dtype and a shape that fits the shape
signature (``-1`` dims are free); the batch size is whatever the inputs say.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import dtypes
from ..errors import InvokeError, SignatureError
from ..ir import Signature, Tensor
from . import checkpoint_io
from .tensors import InputCheck, tensor_details

if TYPE_CHECKING:
    from .interpreter import Interpreter


class SignatureRunner:
    """Calls one signature of an interpreter; returned arrays are copies the caller owns."""

    def __init__(self, interpreter: Interpreter, signature: Signature):
        self._interpreter = interpreter
        self.signature = signature
        self._where = f"signature '{signature.key}'"
        self._tensors = interpreter.model.subgraphs[signature.subgraph_index].tensors
        self._feed_plan = [(name, i, InputCheck(self._tensors[i],
                                                f"{self._where} input '{name}'"))
                           for name, i in signature.inputs.items()]
        interpreter.plan(signature.subgraph_index, self._where)  # fail early on missing ops

    def _expected(self) -> str:
        return ", ".join(f"{name}: {self._tensors[i].describe()}"
                         for name, i in self.signature.inputs.items())

    def get_input_details(self) -> dict[str, dict]:
        io = self._interpreter.checkpoint_io.get(self.signature.key)
        if io is not None and io["kind"] == "restore":
            # Called with the checkpoint path only; the weight tensors are fed from the file.
            path = Tensor(io["path_input"], dtypes.STRING, (), ())
            return {io["path_input"]: tensor_details(path, -1, ())}
        return {n: tensor_details(self._tensors[i], i, self._tensors[i].shape)
                for n, i in self.signature.inputs.items()}

    def get_output_details(self) -> dict[str, dict]:
        return {n: tensor_details(self._tensors[i], i, self._tensors[i].shape)
                for n, i in self.signature.outputs.items()}

    @property
    def context(self):
        return self._interpreter

    def tensor(self, index: int) -> Tensor:
        return self._tensors[index]

    def __call__(self, **inputs) -> dict[str, np.ndarray]:
        io = self._interpreter.checkpoint_io.get(self.signature.key)
        with self._interpreter.threads(), self._interpreter.run_scope(inputs.values()):
            if io is not None:
                return checkpoint_io.run(self, io, inputs)
            return self.run_graph(inputs)

    def run_graph(self, inputs: dict) -> dict[str, np.ndarray]:
        """Run the signature's subgraph on exactly its declared inputs."""
        sig = self.signature
        if inputs.keys() != sig.inputs.keys():
            given, wanted = set(inputs), set(sig.inputs)
            parts = []
            if wanted - given:
                parts.append(f"missing {sorted(wanted - given)}")
            if given - wanted:
                parts.append(f"unexpected {sorted(given - wanted)}")
            raise SignatureError(f"{self._where}: {' and '.join(parts)}; it takes exactly: "
                                 f"{self._expected() or 'no inputs'}")
        feeds = {i: check(inputs[name]) for name, i, check in self._feed_plan}
        try:
            with self._interpreter.variables.transaction():
                values = self._interpreter.run_subgraph(sig.subgraph_index, feeds, self._where)
        except InvokeError as e:
            if self._batch_sizes_disagree(feeds):
                given_shapes = ", ".join(f"{n}{list(feeds[i].shape)}"
                                         for n, i in sig.inputs.items())
                raise SignatureError(f"{self._where}: the inputs disagree on the batch size "
                                     f"({given_shapes}); expected {self._expected()}. "
                                     f"Failure: {e}") from e
            raise
        try:
            return {name: np.array(values[i], copy=True) for name, i in sig.outputs.items()}
        except MemoryError:
            sizes = ", ".join(f"{name} {values[i].dtype}{list(values[i].shape)}"
                              for name, i in list(sig.outputs.items())[:8])
            raise InvokeError(f"{self._where}: not enough memory to return the outputs "
                              f"({sizes})") from None

    def _batch_sizes_disagree(self, feeds: dict[int, np.ndarray]) -> bool:
        sizes = {feeds[i].shape[0] for i in feeds
                 if self._tensors[i].signature_shape[:1] == (-1,) and feeds[i].ndim}
        return len(sizes) > 1
