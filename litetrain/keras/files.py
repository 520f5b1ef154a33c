"""Reading Keras model files: the model's config and each layer's weights, in order.

* ``.keras`` (Keras 3): a zip of ``config.json`` and ``model.weights.h5``, whose groups are
  named after each layer's *class* in snake case, numbered in layer order
  (``layers/conv2d``, ``layers/conv2d_1``; recurrent layers under ``…/cell``), with the
  variables at ``vars/0…``.
* legacy ``.h5`` (Keras 3's and tf_keras' writers): the config in the root attribute
  ``model_config``, weights under ``model_weights/<layer name>``, listed in order by each
  group's ``weight_names`` (long lists split over ``weight_names0``, ``weight_names1``, …).

A compiled model's optimizer state comes along: ``optimizer/vars/0…`` in a ``.keras``,
``optimizer_weights`` (in ``weight_names`` order) in a ``.h5`` — the iteration count, the
learning rate (Keras 3), then the slots (see ``compiled.py`` for their order).

Reading HDF5 needs ``h5py`` (the ``[keras]`` extra).
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelFormatError


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ModelFormatError("reading Keras weights needs h5py: pip install "
                               "'litetrain[keras]'") from None
    return h5py


def _snake(name: str) -> str:
    """Keras' own conversion: ``Conv2D`` → ``conv2d``, ``DepthwiseConv2D`` →
    ``depthwise_conv2d``, ``LSTM`` → ``lstm``."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def _attr_list(group, key: str) -> list[str]:
    if key in group.attrs:
        values = list(group.attrs[key])
    else:
        values, k = [], 0
        while f"{key}{k}" in group.attrs:
            values += list(group.attrs[f"{key}{k}"])
            k += 1
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


# Layers whose weights Keras 3 keeps in sub-layers, in the layer's weight order.
_PARTS = {"multi_head_attention": ("query_dense", "key_dense", "value_dense", "output_dense")}


def _arrays(group, base: str = "") -> list[np.ndarray]:
    """A Keras 3 group's variables, ``vars/0…`` (recursing into ``cell`` and the parts
    ``_PARTS`` names)."""
    if "vars" in group and len(group["vars"]):
        return [np.array(group["vars"][str(k)]) for k in range(len(group["vars"]))]
    if "cell" in group:
        return _arrays(group["cell"])
    if base in _PARTS:
        return [a for part in _PARTS[base] if part in group for a in _arrays(group[part])]
    return []


@dataclass
class KerasFile:
    """What a Keras file holds: the model config (with ``compile_config`` /
    ``training_config`` when compiled), each non-input layer's weights in config order, and
    the optimizer's saved variables (``names`` only for ``.h5``)."""

    config: dict
    weights: list[list[np.ndarray]]
    optimizer: list[np.ndarray] = field(default_factory=list)
    optimizer_names: list[str] = field(default_factory=list)


MODELS = ("Sequential", "Functional", "Model")


def _layer_arrays(parent, layers: list[dict]) -> list[list[np.ndarray]]:
    """Each non-input layer's variables under ``parent`` (a model's group), in config
    order; a nested model's are its layers', flattened in order."""
    seen: dict[str, int] = {}
    out = []
    for layer in layers:
        base = _snake(layer["class_name"])
        k = seen.get(base, 0)
        seen[base] = k + 1
        if layer.get("class_name") == "InputLayer":
            continue
        key = base if k == 0 else f"{base}_{k}"
        group = parent["layers"].get(key) if "layers" in parent else None
        if layer["class_name"] in MODELS:
            inner = _layer_arrays(group, layer["config"]["layers"]) if group is not None \
                else []
            out.append([a for arrays in inner for a in arrays])
        else:
            out.append(_arrays(group, base) if group is not None else [])
    return out


def _keras3(path: Path, h5py) -> KerasFile:
    with zipfile.ZipFile(path) as z:
        config = json.loads(z.read("config.json"))
        weights = h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
    out = _layer_arrays(weights, config.get("config", {}).get("layers", []))
    optimizer = []
    if "optimizer" in weights and "vars" in weights["optimizer"]:
        group = weights["optimizer"]["vars"]
        optimizer = [np.array(group[str(k)]) for k in range(len(group))]
    return KerasFile(config, out, optimizer)


def _legacy(path: Path, h5py) -> KerasFile:
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
        if "training_config" in f.attrs:
            config["training_config"] = json.loads(f.attrs["training_config"])
        mw = f.get("model_weights", f)
        out = []
        for layer in config.get("config", {}).get("layers", []):
            if layer.get("class_name") == "InputLayer":
                continue
            name = layer.get("name") or layer["config"]["name"]
            group = mw.get(name)
            names = _attr_list(group, "weight_names") if group is not None else []
            out.append([np.array(group[n]) for n in names])
        names, optimizer = [], []
        if "optimizer_weights" in f:
            group = f["optimizer_weights"]
            names = _attr_list(group, "weight_names")
            optimizer = [np.array(group[n]) for n in names]
        return KerasFile(config, out, optimizer, names)


def read(path: str | os.PathLike) -> KerasFile:
    """The model config, each layer's weights and the optimizer state of a ``.keras`` or
    ``.h5`` file."""
    path = Path(path)
    h5py = _h5py()
    try:
        return _keras3(path, h5py) if zipfile.is_zipfile(path) else _legacy(path, h5py)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise ModelFormatError(f"'{path}' is not a Keras model file litetrain can read "
                               f"({type(e).__name__}: {e})") from None
