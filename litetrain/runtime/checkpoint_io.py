"""Checkpoint file I/O that runners add to builtin-format save/restore signatures.

A file exported by ``litetrain.convert(..., save_format="builtin")`` has ``save`` and
``restore`` signatures that move weights as tensors (so stock LiteRT can run them). The
model's metadata entry ``litetrain.checkpoint_io`` describes them; with it, litetrain's
runner takes ``checkpoint_path`` like the tutorial's Flex version and reads or writes a
TensorFlow V1 checkpoint. A restore validates every tensor (present, dtype, shape) before
any variable is assigned.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import numpy as np

from .. import dtypes
from ..checkpoint.expect import expect
from ..errors import ModelFormatError, SignatureError
from ..ir import Model

if TYPE_CHECKING:
    from .signature_runner import SignatureRunner

CHECKPOINT_IO_KEY = "litetrain.checkpoint_io"


def parse_metadata(raw: bytes | None, model: Model) -> dict[str, dict]:
    """The checkpoint I/O entries of a model's metadata, checked against its signatures.

    Shape: ``{signature key: {"kind": "save" | "restore", "path_input": alias,
    "tensors": {alias: checkpoint tensor name}}}``. A save signature takes only the path
    and its ``tensors`` are among its outputs; a restore signature's inputs are exactly
    its ``tensors``. Anything else is a :class:`ModelFormatError` at load, so a runner
    never meets a name it cannot find.
    """
    if not raw:
        return {}
    where = f"metadata '{CHECKPOINT_IO_KEY}'"
    try:
        meta = json.loads(raw.rstrip(b"\0"))
    except (ValueError, RecursionError):
        raise ModelFormatError(f"{where} is not valid JSON (or nests too deeply)") from None
    if not isinstance(meta, dict):
        raise ModelFormatError(f"{where}: expected an object keyed by signature, got "
                               f"{type(meta).__name__}")
    signatures = {s.key: s for s in model.signatures}
    for key, io in meta.items():
        at = f"{where}, entry {key[:80]!r}"
        if key not in signatures:
            raise ModelFormatError(f"{at}: the model has no such signature")
        if not (isinstance(io, dict) and io.get("kind") in ("save", "restore")
                and isinstance(io.get("path_input"), str)
                and isinstance(io.get("tensors"), dict)
                and all(isinstance(v, str) and v for v in io["tensors"].values())):
            raise ModelFormatError(f'{at}: expected {{"kind": "save" or "restore", '
                                   '"path_input": str, "tensors": {alias: name}}')
        sig, aliases = signatures[key], set(io["tensors"])
        if io["kind"] == "save":
            ok = set(sig.inputs) == {io["path_input"]} and aliases <= set(sig.outputs)
            want = "the path as its only input and the tensors among its outputs"
        else:
            ok = set(sig.inputs) == aliases
            want = "the tensors as exactly its inputs"
        if not ok:
            raise ModelFormatError(f"{at}: a {io['kind']} signature needs {want}; it has "
                                   f"inputs {sorted(sig.inputs)[:20]}, outputs "
                                   f"{sorted(sig.outputs)[:20]}")
    return meta


def _path(value, where: str) -> str:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    arr = np.asarray(value, dtype=object).reshape(-1)
    if arr.size != 1:
        raise SignatureError(f"{where}: expected one checkpoint path, got {arr.size} values")
    item = arr[0]
    item = os.fspath(item) if isinstance(item, os.PathLike) else item
    return item.decode("utf-8") if isinstance(item, bytes) else str(item)


def run(runner: SignatureRunner, io: dict, inputs: dict) -> dict[str, np.ndarray]:
    sig, where = runner.signature, f"signature '{runner.signature.key}'"
    path_name = io["path_input"]
    if set(inputs) != {path_name}:
        raise SignatureError(f"{where}: takes exactly '{path_name}' (a checkpoint path), got "
                             f"{sorted(inputs)}")
    path = _path(inputs[path_name], f"{where} input '{path_name}'")
    if io["kind"] == "save":
        outputs = runner.run_graph({path_name: np.array(path.encode(), dtype=object)})
        runner.context.write_checkpoint(path, {ck: outputs[alias] for alias, ck in
                                               io["tensors"].items()}, "v1")
        return {k: v for k, v in outputs.items() if k not in io["tensors"]}
    tensors = runner.context.read_checkpoint(path)
    feeds = {}
    for alias, ck in io["tensors"].items():
        t = runner.tensor(sig.inputs[alias])
        feeds[alias] = expect(tensors, ck, dtypes.to_numpy(t.dtype), t.signature_shape, path)
    return runner.run_graph(feeds)
