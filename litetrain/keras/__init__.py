"""``litetrain.keras.load_model(path)``: a Keras ``.keras`` or legacy ``.h5`` model —
Sequential, or Functional with one input and one output (merges: Add, Concatenate,
Multiply) — as litetrain layers with the file's weights, usable wherever a litetrain model
is (``lt.trainable``, ``lt.transfer``, your own modules). Needs ``h5py`` (``[keras]``).

A layer or option litetrain lacks is a ``ModelFormatError`` naming the layer, its class and
the option.
"""

from __future__ import annotations

import os

import numpy as np

from ..author import nn
from ..errors import ModelFormatError
from .files import read
from .functional import Functional, inbound
from .layers import BUILDERS

__all__ = ["load_model"]


def _input_shape(config: dict, layers: list[dict]) -> tuple[tuple[int | None, ...], np.dtype]:
    first = layers[0]["config"] if layers else {}
    shape = first.get("batch_shape") or first.get("batch_input_shape") or \
        config.get("config", {}).get("build_input_shape")
    if shape is None:
        raise ModelFormatError("the Keras model gives no input shape (save a built model)")
    dtype = first.get("dtype", "float32")
    if isinstance(dtype, dict):
        dtype = dtype.get("config", {}).get("name", "float32")
    return tuple(shape[1:]), np.dtype(dtype if dtype in ("int32", "int64") else "float32")


def load_model(path: str | os.PathLike) -> nn.Sequential:
    config, weights = read(path)
    kind = config.get("class_name")
    if kind not in ("Sequential", "Functional", "Model"):
        raise ModelFormatError(f"'{path}': {kind} models are not supported (Sequential and "
                               "Functional are)")
    layers = config["config"]["layers"]
    shape, dtype = _input_shape(config, layers)
    specs = [layer for layer in layers if layer["class_name"] != "InputLayer"]
    built = []
    for spec in specs:
        builder = BUILDERS.get(spec["class_name"])
        if builder is None:
            raise ModelFormatError(f"layer '{spec['config'].get('name')}' "
                                   f"({spec['class_name']}) is not supported; litetrain "
                                   f"reads {sorted(BUILDERS)}")
        built.append(builder(spec["config"]))
    if kind == "Sequential":
        model = nn.Sequential(built, input_dtype=dtype)
        model.layers[0].input_shape = shape
    else:
        ins, outs = config["config"]["input_layers"], config["config"]["output_layers"]
        if isinstance(ins[0], list) or isinstance(outs[0], list):
            if len(ins) != 1 or len(outs) != 1:
                raise ModelFormatError(f"'{path}': Functional models with {len(ins)} inputs "
                                       f"and {len(outs)} outputs are not supported (1 and 1)")
            ins, outs = ins[0], outs[0]
        model = Functional(ins[0], outs[0], [
            (spec["config"]["name"], layer, inbound(spec))
            for spec, layer in zip(specs, built, strict=True)], shape, name="functional")
        model.input_dtype = dtype
    model.build((None, *shape))
    for layer, arrays in zip(model.layers, weights, strict=True):
        if len(arrays) != len(layer.weights):
            raise ModelFormatError(f"layer '{layer.name}': the file holds {len(arrays)} "
                                   f"weights, the layer has {len(layer.weights)}")
        for v, a in zip(layer.weights, arrays, strict=True):
            if tuple(a.shape) != tuple(v.shape):
                raise ModelFormatError(f"weight '{v.name}': the file's is {list(a.shape)}, "
                                       f"the layer's {list(v.shape)}")
            v.initial_value = np.asarray(a, v.dtype)
    return model
