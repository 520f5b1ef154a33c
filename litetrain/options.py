"""The one codec for builtin options tables ↔ attr dicts, by reflection over the
``tflite`` schema package (a bottom-layer module: ops, reader and writer all use it).

Each generated options class has one accessor per field (``FusedActivationFunction()``,
``NewShapeAsNumpy()``, ...). Decoding turns them into snake_case attrs; absent tables give
the schema defaults, so kernels always see every attr. Encoding writes attrs back with the
same field list.
"""

from __future__ import annotations

import functools
import importlib
import re

import flatbuffers
import numpy as np
import tflite

_UNION_NAMES: dict[int, str] = {
    v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")
}


def _snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", s).lower()


def options_class(table: str) -> type:
    return getattr(importlib.import_module(f"tflite.{table}"), table)


@functools.cache
def _fields(table: str) -> tuple[tuple[str, str, bool], ...]:
    """(accessor, attr name, is_vector) for each field of the options table."""
    cls = options_class(table)
    names = [n for n in vars(cls) if not n.startswith("_") and callable(getattr(cls, n))]
    out = []
    for n in names:
        if n == "Init" or n.startswith("GetRootAs") or n.endswith(
                ("BufferHasIdentifier", "Length", "IsNone")):
            continue
        if n.endswith("AsNumpy"):
            out.append((n, _snake(n[: -len("AsNumpy")]), True))
        elif f"{n}AsNumpy" not in names and f"{n}Length" not in names:
            out.append((n, _snake(n), False))
    return tuple(out)


def union_table_name(union_type: int) -> str | None:
    name = _UNION_NAMES.get(union_type)
    return None if name in (None, "NONE") else name


def decode(table: str, buf: bytes | bytearray, pos: int) -> dict[str, object]:
    """The attrs of the options table ``table`` found at ``pos`` in ``buf``."""
    obj = options_class(table)()
    obj.Init(buf, pos)
    attrs: dict[str, object] = {}
    for accessor, attr, is_vector in _fields(table):
        value = getattr(obj, accessor)()
        if is_vector:
            missing = isinstance(value, int)  # the accessor returns 0 for an absent vector
            value = np.zeros(0, np.int32) if missing else np.array(value, copy=True)
        attrs[attr] = value
    return attrs


@functools.cache
def _empty_table(table: str) -> bytes:
    b = flatbuffers.Builder(16)
    mod = importlib.import_module(f"tflite.{table}")
    mod.Start(b)
    b.Finish(mod.End(b))
    return bytes(b.Output())


def defaults(table: str) -> dict[str, object]:
    """The schema defaults of every field of ``table`` (what an omitted table means)."""
    buf = _empty_table(table)
    pos = flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0)
    return decode(table, buf, pos)


def encode(b: flatbuffers.Builder, table: str, attrs) -> int:
    """Write ``attrs`` as an options table ``table`` into ``b``; return its offset.
    Attrs the table has no field for are not written (``custom_options`` and the like)."""
    cls_module = importlib.import_module(f"tflite.{table}")
    fields = _fields(table)
    prepared = {}
    for accessor, attr, is_vector in fields:  # strings and vectors come first
        if attr not in attrs or attrs[attr] is None:
            continue
        value = attrs[attr]
        if is_vector:
            arr = np.asarray(value, dtype=np.int32).reshape(-1)
            prepared[accessor] = b.CreateNumpyVector(arr)
        elif isinstance(value, (str, bytes)):
            prepared[accessor] = b.CreateString(value)
    cls_module.Start(b)
    for accessor, attr, is_vector in fields:
        if attr not in attrs or attrs[attr] is None:
            continue
        base = accessor[: -len("AsNumpy")] if is_vector else accessor
        value = prepared.get(accessor, attrs[attr])
        if isinstance(value, (bool, np.bool_)):
            value = bool(value)
        elif isinstance(value, (np.integer, np.floating)):
            value = value.item()
        getattr(cls_module, f"Add{base}")(b, value)
    return cls_module.End(b)
