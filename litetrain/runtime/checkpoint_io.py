"""Checkpoint file I/O that runners add to builtin-format save/restore signatures.

A file exported by ``litetrain.convert(..., save_format="builtin")`` has ``save`` and
``restore`` signatures that move weights as tensors (so stock LiteRT can run them). The
model's metadata entry ``litetrain.checkpoint_io`` describes them; with it, litetrain's
runner takes ``checkpoint_path`` like the tutorial's Flex version and reads or writes a
TensorFlow V1 checkpoint. A restore validates every tensor (present, dtype, shape) before
any variable is assigned.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from .. import dtypes
from ..checkpoint.expect import expect
from ..errors import SignatureError

if TYPE_CHECKING:
    from .signature_runner import SignatureRunner

CHECKPOINT_IO_KEY = "litetrain.checkpoint_io"


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
