"""``litetrain.keras.load_model(path)``: a Keras ``.keras`` or legacy ``.h5`` model —
Sequential, or Functional with any number of inputs and outputs, merges (Add,
Concatenate, Multiply), MultiHeadAttention, shared layers and nested models (layers saved
with ``trainable: false`` stay frozen) — as litetrain layers with the file's weights,
usable wherever a litetrain model is (``lt.trainable``, ``litetrain convert``, your own
modules). Needs ``h5py`` (``[keras]``).

A compiled model brings its training setup along (``compiled.py``): ``model.loss`` (one
loss, or a list, one per output), ``model.loss_weights`` and ``model.optimizer`` holding
the file's saved iteration, learning rate and slots; ``lt.trainable(model)`` uses them when
no loss or optimizer is given. A layer, option, loss or optimizer litetrain lacks is a
``ModelFormatError`` naming it.
"""

from __future__ import annotations

import os

import numpy as np

from ..author import nn
from ..errors import ModelFormatError
from .compiled import Compiled, read_compiled
from .files import MODELS, read
from .functional import Functional, calls
from .layers import BUILDERS

__all__ = ["Compiled", "load_model"]


def _dtype(cfg: dict) -> np.dtype:
    dtype = cfg.get("dtype", "float32")
    if isinstance(dtype, dict):
        dtype = dtype.get("config", {}).get("name", "float32")
    return np.dtype(dtype if dtype in ("int32", "int64") else "float32")


def _shape(cfg: dict, where: str) -> tuple[int | None, ...]:
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    if shape is None:
        raise ModelFormatError(f"{where} gives no input shape (save a built model)")
    return tuple(shape[1:])


def _name(layer: dict) -> str:
    return layer.get("name") or layer["config"]["name"]


def _build(spec: dict, path, prefix: str) -> nn.Layer:
    """One layer (a nested model too), named ``prefix + its name``; frozen when the file
    says ``trainable: false``."""
    if spec["class_name"] in MODELS:
        layer = _model(spec, path, prefix, nested=True)
    else:
        builder = BUILDERS.get(spec["class_name"])
        if builder is None:
            raise ModelFormatError(f"layer '{spec['config'].get('name')}' "
                                   f"({spec['class_name']}) is not supported; litetrain "
                                   f"reads {sorted(BUILDERS)} and nested models")
        layer = builder(spec["config"])
        layer.name = prefix + layer.name
    if spec["config"].get("trainable") is False:
        layer.trainable = False
    return layer


def _refs(entries) -> list[tuple[str, int, int]]:
    """``input_layers``/``output_layers``: one ``[name, node, tensor]`` or a list of them."""
    if entries and isinstance(entries[0], str):
        entries = [entries]
    return [(str(e[0]), int(e[1]), int(e[2])) for e in entries]


def _model(config: dict, path, prefix: str = "", nested: bool = False) -> nn.Layer:
    """A Sequential or Functional config as a litetrain layer. A nested model's layers are
    named ``<model name>/<layer name>``, so their variables stay distinct."""
    kind = config.get("class_name")
    if kind not in MODELS:
        raise ModelFormatError(f"'{path}': {kind} models are not supported (Sequential and "
                               "Functional are)")
    name = config["config"].get("name", kind.lower())
    inner = f"{prefix}{name}/" if nested else ""
    layers = config["config"]["layers"]
    specs = [layer for layer in layers if layer["class_name"] != "InputLayer"]
    if kind == "Sequential":
        first = layers[0]["config"] if layers else {}
        build_shape = config["config"].get("build_input_shape")
        cfg = first if (first.get("batch_shape") or first.get("batch_input_shape")) else \
            {"batch_shape": build_shape, "dtype": first.get("dtype")}
        model = nn.Sequential([_build(s, path, inner) for s in specs], name=prefix + name,
                              input_dtype=_dtype(cfg))
        model.layers[0].input_shape = _shape(cfg, f"'{path}'")
        model.build((None, *model.layers[0].input_shape))
        return model
    inputs = {_name(layer): layer["config"] for layer in layers
              if layer["class_name"] == "InputLayer"}
    built = {}
    layer_calls = []
    for spec in specs:
        layer = built[_name(spec)] = _build(spec, path, inner)
        layer_calls += calls(spec, layer)
    ins = _refs(config["config"]["input_layers"])
    model = Functional([(n, _shape(inputs[n], f"input '{n}'"), _dtype(inputs[n]))
                        for n, _, _ in ins], _refs(config["config"]["output_layers"]),
                       built, layer_calls, name=prefix + name)
    shapes = [(None, *s) for _, s, _ in model.inputs]
    model.build(shapes if len(shapes) > 1 else shapes[0])
    return model


def load_model(path: str | os.PathLike) -> nn.Layer:
    """The model in a ``.keras`` or ``.h5`` file, with its weights (and, when compiled,
    ``loss``, ``loss_weights`` and ``optimizer`` with the saved optimizer state)."""
    saved = read(path)
    model = _model(saved.config, path)
    for layer, arrays in zip(model.layers, saved.weights, strict=True):
        if len(arrays) != len(layer.weights):
            raise ModelFormatError(f"layer '{layer.name}': the file holds {len(arrays)} "
                                   f"weights, the layer has {len(layer.weights)}")
        for v, a in zip(layer.weights, arrays, strict=True):
            if tuple(a.shape) != tuple(v.shape):
                raise ModelFormatError(f"weight '{v.name}': the file's is {list(a.shape)}, "
                                       f"the layer's {list(v.shape)}")
            v.initial_value = np.asarray(a, v.dtype)
    names = getattr(model, "output_names", None) or [model.layers[-1].name]
    setup = read_compiled(saved.config, names, model.trainable_weights, saved.optimizer,
                     saved.optimizer_names)
    model.loss = None if setup is None else \
        setup.losses if len(setup.losses) > 1 else setup.losses[0]
    model.loss_weights = None if setup is None else setup.loss_weights
    model.optimizer = None if setup is None else setup.optimizer
    return model
