"""Reading Keras model files: the model's config and each layer's weights, in order.

* ``.keras`` (Keras 3): a zip of ``config.json`` and ``model.weights.h5``, whose groups are
  named after each layer's *class* in snake case, numbered in layer order
  (``layers/conv2d``, ``layers/conv2d_1``; recurrent layers under ``…/cell``), with the
  variables at ``vars/0…``.
* legacy ``.h5`` (Keras 3's and tf_keras' writers): the config in the root attribute
  ``model_config``, weights under ``model_weights/<layer name>``, listed in order by each
  group's ``weight_names`` (long lists split over ``weight_names0``, ``weight_names1``, …).

Reading HDF5 needs ``h5py`` (the ``[keras]`` extra).
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
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


def _arrays(group) -> list[np.ndarray]:
    """A Keras 3 group's variables, ``vars/0…`` (recursing into ``cell``)."""
    if "vars" in group and len(group["vars"]):
        return [np.array(group["vars"][str(k)]) for k in range(len(group["vars"]))]
    if "cell" in group:
        return _arrays(group["cell"])
    return []


def read(path: str | os.PathLike) -> tuple[dict, list[list[np.ndarray]]]:
    """``(model config, [each layer's weights in order])`` for a ``.keras`` or ``.h5``."""
    path = Path(path)
    h5py = _h5py()
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                config = json.loads(z.read("config.json"))
                weights = h5py.File(io.BytesIO(z.read("model.weights.h5")), "r")
            layers = config.get("config", {}).get("layers", [])
            seen: dict[str, int] = {}
            out = []
            for layer in layers:
                if layer.get("class_name") == "InputLayer":
                    continue
                base = _snake(layer["class_name"])
                k = seen.get(base, 0)
                seen[base] = k + 1
                key = base if k == 0 else f"{base}_{k}"
                group = weights["layers"].get(key) if "layers" in weights else None
                out.append(_arrays(group) if group is not None else [])
            return config, out
        with h5py.File(path, "r") as f:
            config = json.loads(f.attrs["model_config"])
            mw = f.get("model_weights", f)
            out = []
            for layer in config.get("config", {}).get("layers", []):
                if layer.get("class_name") == "InputLayer":
                    continue
                name = layer["config"]["name"]
                group = mw.get(name)
                names = _attr_list(group, "weight_names") if group is not None else []
                out.append([np.array(group[n]) for n in names])
            return config, out
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise ModelFormatError(f"'{path}' is not a Keras model file litetrain can read "
                               f"({type(e).__name__}: {e})") from None
