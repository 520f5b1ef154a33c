"""Input data for a signature, from ``.npz`` files (arrays named like the signature's
inputs) or IDX files (images, with labels found beside them)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..data import one_hot, read_idx
from ..errors import DatasetError, SignatureError

_IDX = re.compile(r"idx\d-ubyte(\.gz)?$")


def input_specs(runner) -> dict[str, dict]:
    """``name -> {"shape_signature", "dtype"}`` of a signature runner's inputs."""
    return {name: {"shape_signature": tuple(d["shape_signature"]), "dtype": np.dtype(d["dtype"])}
            for name, d in runner.get_input_details().items()}


def _labels_path(images: Path) -> Path:
    name = images.name.replace("images-idx3", "labels-idx1")
    if name == images.name:
        raise DatasetError(f"{images}: an IDX images file is named '*-images-idx3-ubyte[.gz]' "
                           "so its labels file can be found beside it")
    return images.with_name(name)


def _from_idx(path: Path, specs: dict[str, dict], where: str) -> dict[str, np.ndarray]:
    images = read_idx(path).astype(np.float32) / np.float32(255)
    labels_file = _labels_path(path)
    labels = read_idx(labels_file).astype(np.int64) if labels_file.exists() else None
    feeds: dict[str, np.ndarray] = {}
    images_used = False
    for name, spec in specs.items():
        rank = len(spec["shape_signature"])
        if not images_used and spec["dtype"].kind == "f" and rank >= 2 and (
                int(np.prod(images.shape[1:])) == int(np.prod(spec["shape_signature"][1:]))):
            feeds[name] = images.reshape(len(images), *spec["shape_signature"][1:])
            images_used = True
        elif labels is not None:
            if spec["dtype"].kind == "f" and rank == 2:
                feeds[name] = one_hot(labels, spec["shape_signature"][1])
            elif spec["dtype"].kind == "i" and rank == 1:
                feeds[name] = labels.astype(spec["dtype"])
    missing = sorted(set(specs) - set(feeds))
    if missing:
        raise SignatureError(f"{where}: IDX data {path} gives no value for input(s) {missing} "
                             f"(labels file {labels_file} "
                             f"{'found' if labels is not None else 'missing'})")
    return feeds


def load_inputs(path: str | Path, specs: dict[str, dict], where: str,
                optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Arrays for the inputs in ``specs`` from ``path``; extra arrays in an npz are kept
    under their own names (e.g. labels for accuracy)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"data file {path} does not exist")
    if _IDX.search(path.name):
        return _from_idx(path, specs, where)
    if path.suffix != ".npz":
        raise DatasetError(f"{path}: expected a .npz file (arrays named like the inputs of "
                           f"{where}: {sorted(specs)}) or an IDX file (*-idx3-ubyte[.gz])")
    arrays = _read_npz(path, where, specs)
    missing = sorted(set(specs) - set(arrays) - set(optional))
    if missing:
        raise SignatureError(f"{path}: {where} needs arrays named {sorted(specs)}; missing "
                             f"{missing}, the file has {sorted(arrays)}")
    lengths = {k: len(v) for k, v in arrays.items() if k in specs and v.ndim > 0}
    if len(set(lengths.values())) > 1:
        raise SignatureError(f"{path}: arrays disagree on the number of examples: {lengths}")
    for name, spec in specs.items():  # float64 -> float32, int64 -> int32; never across kinds
        if name in arrays and arrays[name].dtype.kind == spec["dtype"].kind:
            arrays[name] = arrays[name].astype(spec["dtype"], copy=False)
        elif name in arrays:
            arrays[name] = _class_labels_to_one_hot(arrays[name], spec, name, path)
    return arrays


def _read_npz(path: Path, where: str, specs: dict[str, dict]) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] != b"PK":  # an .npz is a zip archive; anything else is not one
        raise DatasetError(f"{path}: not a .npz file (a zip of arrays, as np.savez writes; "
                           f"this file starts with {magic!r}); {where} needs arrays named "
                           f"{sorted(specs)}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, RuntimeError) as e:
        raise DatasetError(f"{path}: not a readable .npz file ({e})") from None
    return arrays


def _class_labels_to_one_hot(values: np.ndarray, spec: dict, name: str,
                             path: Path) -> np.ndarray:
    """Integer class labels for a float one-hot input become one-hot rows; other kind
    mismatches are left for the signature to report."""
    shape = spec["shape_signature"]
    if values.dtype.kind in "iu" and spec["dtype"].kind == "f" and values.ndim == 1 \
            and len(shape) == 2 and shape[1] > 1:
        if values.size and (values.min() < 0 or values.max() >= shape[1]):
            raise DatasetError(f"{path}: '{name}' holds class labels {values.min()}.."
                               f"{values.max()} but the input takes one-hot rows of "
                               f"{shape[1]} classes")
        return one_hot(values, shape[1]).astype(spec["dtype"], copy=False)
    return values
