"""Corrupted checkpoints through ``checkpoint.read`` and a model's restore signature.

A case is a seed: it takes a real V1 or V2 checkpoint of a small training model and
corrupts it, either as raw bytes (CRCs then catch most changes) or below the CRCs (a
record's protobuf is mutated and the table rebuilt with valid checksums, which reaches
the parsers), then reads it and restores it through the model. Properties: only
LitetrainErrors escape; a read that succeeds returns real arrays; a restore that fails
leaves every variable exactly as it was, and one that succeeds sets the variables to
exactly what ``checkpoint.read`` returns.
"""

from __future__ import annotations

import functools
import random
import tempfile
from pathlib import Path

import numpy as np

import litetrain as lt
from litetrain import checkpoint
from litetrain.checkpoint import table, v2

from . import corpus
from .models import _escape, _mutate_bytes


@functools.cache
def originals() -> dict[str, tuple[bytes, ...]]:
    """{"v1": (file,), "v2": (index, data)} written by the model's own save signature
    (V1) and by ``checkpoint.write`` (V2)."""
    with tempfile.TemporaryDirectory() as tmp:
        it = lt.Interpreter(model_content=corpus.checkpoint_model())
        it.get_signature_runner("save")(checkpoint_path=f"{tmp}/c1")
        tensors = checkpoint.read(f"{tmp}/c1")
        tensors["strings"] = np.array([b"a", b"bc", b""], object)
        tensors["i64"] = np.arange(5, dtype=np.int64) - 2
        checkpoint.write(f"{tmp}/c1", tensors, format="v1")
        checkpoint.write(f"{tmp}/c2", tensors, format="v2")
        return {"v1": (Path(f"{tmp}/c1").read_bytes(),),
                "v2": (Path(v2.index_path(f"{tmp}/c2")).read_bytes(),
                       Path(v2.data_path(f"{tmp}/c2")).read_bytes())}


def _below_crc(data: bytes, rng: random.Random) -> bytes:
    entries = list(table.parse(data))
    k = rng.randrange(len(entries))
    key, value = entries[k]
    entries[k] = (key, _mutate_bytes(value, rng) if value else bytes([rng.randrange(256)]))
    if rng.random() < 0.1 and len(entries) > 1:  # duplicate or drop a record
        j = rng.randrange(1, len(entries))
        if rng.random() < 0.5:
            del entries[j]
        else:
            entries.insert(j + 1, (entries[j][0] + b"\x01", entries[j][1]))
    entries.sort()
    return table.build(entries)


def corrupted(seed: int) -> tuple[str, str, tuple[bytes, ...]]:
    rng = random.Random(seed)
    fmt = rng.choice(("v1", "v2"))
    files = list(originals()[fmt])
    which = rng.randrange(len(files))
    if which == 0 and rng.random() < 0.7:
        files[0] = _below_crc(files[0], rng)
        how = "record"
    else:
        files[which] = _mutate_bytes(files[which], rng)
        how = "bytes"
    return fmt, f"{fmt} {how} file {which}", tuple(files)


@functools.cache
def _fresh(kind: str) -> tuple[lt.Interpreter, dict[int, np.ndarray]]:
    it = lt.Interpreter(model_content=dict(corpus.models())[f"authored-{kind}"])
    it.get_signature_runner("infer")(x=np.zeros((1, 6, 6, 1), np.float32))  # init variables
    return it, dict(it.variables.values)


def _interpreter(kind: str) -> lt.Interpreter:
    """The model with its initial weights (values are replaced, never mutated in place):
    ``flex`` restores with FlexRestore ops, ``builtin`` through litetrain's checkpoint I/O."""
    it, initial = _fresh(kind)
    it.variables.values = dict(initial)
    return it


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equality (NaN equals NaN)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return a.tolist() == b.tolist() if a.dtype == object else a.tobytes() == b.tobytes()


def run_checkpoint(fmt: str, files: tuple[bytes, ...], kind: str = "flex") -> str | None:
    with tempfile.TemporaryDirectory(prefix="lt-fuzz-") as tmp:
        prefix = f"{tmp}/ckpt"
        if fmt == "v1":
            Path(prefix).write_bytes(files[0])
        else:
            Path(v2.index_path(prefix)).write_bytes(files[0])
            Path(v2.data_path(prefix)).write_bytes(files[1])
        try:
            tensors = checkpoint.read(prefix)
        except lt.LitetrainError:
            tensors = None
        except Exception as e:
            return _escape("read", e)
        if tensors is not None:
            for name, value in tensors.items():
                if not isinstance(value, np.ndarray):
                    return f"read: tensor '{name}' is {type(value).__name__}"
        it = _interpreter(kind)
        before = it.variables.by_name()
        try:
            it.get_signature_runner("restore")(checkpoint_path=prefix)
            ok = True
        except lt.LitetrainError:
            ok = False
        except Exception as e:
            return _escape("restore", e)
        after = it.variables.by_name()
        if not ok:
            changed = [k for k in before if not _same(before[k], after[k])]
            if changed:
                return f"restore failed but changed {changed[:3]}"
            return None
        if tensors is None:
            return "restore succeeded on a checkpoint read() refuses"
        for k, v in after.items():
            if f"{k}:0" in tensors and not _same(v, tensors[f"{k}:0"]):
                return f"restore set '{k}' to something else than the file holds"
    return None


def case(seed: int) -> str | None:
    fmt, what, files = corrupted(seed)
    kind = "flex" if seed % 2 else "builtin"
    result = run_checkpoint(fmt, files, kind)
    return None if result is None else f"checkpoint:{seed} ({what}, {kind}) {result}"
