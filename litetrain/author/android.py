"""Flower's Android layout for a model file: ``parameters() -> {a0, a1, …}`` and
``restore(a0=…, a1=…) -> {a0, a1, …}``, beside ``train`` and ``infer``.

Flower's Android example trains a TensorFlow Lite file through exactly those four
signatures, with ``a<i>`` the i-th weight in the model's weight order. :func:`android_layout`
rewrites a file written by ``litetrain.convert`` (builtin save/restore, where weights
already cross the boundary as tensors):

* a new ``parameters`` signature: the ``save`` subgraph without its path input, returning
  the weights as ``a0…`` (in ``save``'s order, which is the module's weight order);
* ``restore``'s weight inputs and outputs renamed ``a0…``; its checkpoint metadata maps them
  back to the checkpoint names, so litetrain's ``restore(checkpoint_path=…)`` still works.

Nothing else changes: the file stays builtin-only, so stock LiteRT runs all of it.
``litetrain.convert(module, flower_android=True)`` writes this layout directly.
"""

from __future__ import annotations

import json
from dataclasses import replace

from ..errors import FederatedError
from ..ir import Model, Signature, Subgraph
from ..runtime.checkpoint_io import CHECKPOINT_IO_KEY
from ..tflite.reader import read_model
from ..tflite.writer import write_model


def _io(model: Model) -> dict:
    raw = model.metadata.get(CHECKPOINT_IO_KEY)
    io = json.loads(raw.rstrip(b"\0")) if raw else {}
    if io.get("save", {}).get("kind") != "save" or \
            io.get("restore", {}).get("kind") != "restore":
        keys = sorted(s.key for s in model.signatures)
        raise FederatedError("android layout: needs 'save'/'restore' signatures that move "
                             "weights as tensors (litetrain.convert's default builtin "
                             f"format); this file's signatures are {keys} without them")
    return io


def android_layout_model(model: Model) -> Model:
    """The model with ``parameters`` added and ``restore`` renamed (see module docstring)."""
    keys = {s.key for s in model.signatures}
    if "parameters" in keys:
        raise FederatedError("android layout: the model already has a 'parameters' signature")
    io = _io(model)
    save, restore = model.signature("save"), model.signature("restore")
    order = list(io["save"]["tensors"].items())  # (save output alias, checkpoint name)
    name_of = {ck: f"a{i}" for i, (_, ck) in enumerate(order)}
    restore_ck = io["restore"]["tensors"]
    if set(restore_ck.values()) != set(name_of):
        raise FederatedError(f"android layout: 'save' writes {sorted(name_of)} but 'restore' "
                             f"reads {sorted(restore_ck.values())}")

    sg = model.subgraphs[save.subgraph_index]
    path = save.inputs[io["save"]["path_input"]]
    if any(path in n.inputs for n in sg.nodes):
        raise FederatedError("android layout: 'save' computes with its checkpoint path")
    outputs = {name_of[ck]: save.outputs[alias] for alias, ck in order}
    params = Subgraph("parameters", list(sg.tensors), [], list(outputs.values()),
                      list(sg.nodes))
    subgraphs = [*model.subgraphs, params]
    parameters = Signature("parameters", len(subgraphs) - 1, {}, outputs)

    def rename(aliases: dict[str, int]) -> dict[str, int]:
        return {name_of.get(restore_ck.get(a, a), a): i for a, i in aliases.items()}

    new_restore = replace(restore, inputs=rename(restore.inputs), outputs=rename(restore.outputs))
    signatures = [new_restore if s.key == "restore" else s for s in model.signatures]
    io["restore"] = {**io["restore"],
                     "tensors": {name_of[ck]: ck for ck in restore_ck.values()}}
    metadata = {**model.metadata, CHECKPOINT_IO_KEY: json.dumps(io).encode()}
    return replace(model, subgraphs=subgraphs, signatures=[*signatures, parameters],
                   metadata=metadata)


def android_layout(model_content: bytes) -> bytes:
    """``.tflite`` bytes with Flower's Android ``parameters``/``restore`` signatures."""
    return write_model(android_layout_model(read_model(model_content)))
