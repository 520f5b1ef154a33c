"""Builders of hostile models: the tutorial model's IR with one thing changed, as bytes."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from litetrain import dtypes
from litetrain.ir import Model, Node, Subgraph, Tensor
from litetrain.tflite.reader import read_model
from litetrain.tflite.writer import write_model
from tests.conftest import FIXTURES

TUTORIAL = FIXTURES / "tutorial" / "model.tflite"
RESTORE, SAVE = 1, 2  # subgraph indices in the tutorial model


@functools.cache
def _tutorial_bytes() -> bytes:
    return TUTORIAL.read_bytes()


def tutorial() -> Model:
    """A fresh copy of the tutorial model's IR (safe to change)."""
    return read_model(_tutorial_bytes())


def to_bytes(model: Model) -> bytes:
    return write_model(model)


def string_constant(sg: Subgraph, value: bytes, name: str = "hostile") -> int:
    """Add a scalar STRING constant to ``sg``; return its index."""
    sg.tensors.append(Tensor(name, dtypes.STRING, (), (), np.array(value, object),
                             buffer=0))
    return len(sg.tensors) - 1


def with_constant_paths(model: Model, path: bytes) -> Model:
    """FlexSave/FlexRestore use the constant ``path`` instead of the caller's path."""
    for s in (RESTORE, SAVE):
        sg = model.subgraphs[s]
        k = string_constant(sg, path)
        sg.nodes = [dataclasses.replace(n, inputs=(k, *n.inputs[1:]))
                    if n.op in ("FlexSave", "FlexRestore") else n for n in sg.nodes]
    return model


def call_once_chain(depth: int) -> Model:
    """Subgraph k CALL_ONCEs subgraph k + 1; the last one reads a variable never set."""
    subgraphs = []
    for k in range(depth):
        subgraphs.append(Subgraph(f"s{k}", [], [], [],
                                  [Node("call_once", (), (), {"init_subgraph_index": k + 1})]))
    last = Subgraph("last", [Tensor("h", dtypes.RESOURCE, ()), Tensor("v", dtypes.FLOAT32, ())],
                    [], [1], [Node("var_handle", (), (0,), {"container": "",
                                                             "shared_name": "never_set"}),
                              Node("read_variable", (0,), (1,))])
    subgraphs.append(last)
    return Model(subgraphs, [])
