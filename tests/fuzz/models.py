"""Mutated model files through load, prepare and invoke of every signature.

A case is a seed: it picks a corpus model, applies structural mutations to its IR
(operands, ops, attrs, shapes, signatures; written back with litetrain's writer) and/or
byte mutations to the file, then runs everything a user could: every signature runner
with made-up inputs (save before restore, into a temp folder) and the subgraph-0 tensor
API. Result: ``None`` when only LitetrainErrors escaped and every output was a real
array, else a one-line description of the escape.
"""

from __future__ import annotations

import dataclasses
import json
import random
import tempfile
import traceback
from pathlib import Path

import numpy as np

import litetrain as lt
from litetrain import dtypes
from litetrain.ops import all_ops
from litetrain.summary import format_summary, summarize
from litetrain.tflite.reader import read_model
from litetrain.tflite.writer import write_model

from . import corpus

_INTERESTING = (0, 1, 2, 3, 4, 7, 8, 16, 255, 256, 1 << 15, 1 << 16, 1 << 24, (1 << 31) - 1,
                -1, -2, -128, -(1 << 31), 1 << 20)
_DTYPES = (dtypes.FLOAT32, dtypes.INT32, dtypes.INT64, dtypes.STRING, dtypes.BOOL,
           dtypes.RESOURCE, dtypes.INT8, dtypes.UINT8, dtypes.FLOAT16, dtypes.INT16, 99)


def _pick_index(rng: random.Random, n: int) -> int:
    return rng.choice((-1, 0, n - 1, n, rng.randrange(-3, n + 3)) if n else (-1, 0, 1))


def _mutate_ir(model, rng: random.Random) -> None:
    ops = sorted(all_ops())
    sg = rng.choice(model.subgraphs)
    n = len(sg.tensors)
    kind = rng.randrange(14)
    if kind <= 4 and sg.nodes:
        k = rng.randrange(len(sg.nodes))
        node = sg.nodes[k]
        ins, outs = list(node.inputs), list(node.outputs)
        if kind == 0 and ins:
            ins[rng.randrange(len(ins))] = _pick_index(rng, n)
        elif kind == 1 and ins:
            del ins[rng.randrange(len(ins))]
        elif kind == 2 and outs:
            del outs[rng.randrange(len(outs))]
        elif kind == 3:
            ins.append(_pick_index(rng, n))
        else:
            node = dataclasses.replace(node, op=rng.choice(ops))
        sg.nodes[k] = dataclasses.replace(node, inputs=tuple(ins), outputs=tuple(outs))
    elif kind == 5 and len(sg.nodes) > 1:
        i, j = rng.randrange(len(sg.nodes)), rng.randrange(len(sg.nodes))
        sg.nodes[i], sg.nodes[j] = sg.nodes[j], sg.nodes[i]
    elif kind == 6 and sg.nodes:
        del sg.nodes[rng.randrange(len(sg.nodes))]
    elif kind == 7 and sg.nodes:
        k = rng.randrange(len(sg.nodes))
        node = sg.nodes[k]
        attrs = dict(node.attrs)
        if attrs:
            key = rng.choice(sorted(attrs))
            attrs[key] = rng.choice([rng.choice(_INTERESTING), b"\xff\xfe", "", (1, 2),
                                     np.array([rng.choice(_INTERESTING)], np.int32), True])
            sg.nodes[k] = dataclasses.replace(node, attrs=attrs)
    elif kind == 8 and sg.tensors:
        i = rng.randrange(n)
        t = sg.tensors[i]
        if t.data is None:
            sg.tensors[i] = dataclasses.replace(t, dtype=rng.choice(_DTYPES))
        else:
            sg.tensors[i] = dataclasses.replace(t, data=t.data.reshape(-1)[::-1].reshape(t.shape)
                                                if t.data.dtype != object else t.data)
    elif kind == 9 and sg.tensors:
        i = rng.randrange(n)
        t = sg.tensors[i]
        if t.data is None:
            shape = list(t.shape) or [1]
            shape[rng.randrange(len(shape))] = rng.choice((0, 1, 2, 3, 1 << 20))
            sig = tuple(rng.choice((-1, d)) for d in shape)
            sg.tensors[i] = dataclasses.replace(t, shape=tuple(shape), shape_signature=sig)
    elif kind == 10 and model.signatures:
        k = rng.randrange(len(model.signatures))
        sig = model.signatures[k]
        which = rng.choice(("inputs", "outputs"))
        m = dict(getattr(sig, which))
        m[rng.choice([*m, "extra"]) if m else "extra"] = _pick_index(rng, n)
        model.signatures[k] = dataclasses.replace(sig, **{which: m})
    elif kind == 11 and model.signatures:
        k = rng.randrange(len(model.signatures))
        model.signatures[k] = dataclasses.replace(
            model.signatures[k], subgraph_index=_pick_index(rng, len(model.subgraphs)))
    elif kind == 12:
        lst = rng.choice((sg.inputs, sg.outputs))
        if lst and rng.random() < 0.5:
            del lst[rng.randrange(len(lst))]
        else:
            lst.append(_pick_index(rng, n))
    else:
        key = rng.choice([*model.metadata, "litetrain.checkpoint_io"])
        value = model.metadata.get(key, b"{}")
        model.metadata[key] = rng.choice((b"[]", b"{\"save\": 1}", b"", value[: len(value) // 2],
                                          b"{\"infer\": {\"kind\": \"restore\", \"path_input\": "
                                          b"\"x\", \"tensors\": {\"x\": \"w\"}}}"))


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        kind = rng.randrange(5)
        if not b:
            break
        pos = rng.randrange(len(b))
        if kind == 0:
            b[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:
            b[pos] = rng.randrange(256)
        elif kind == 2 and pos + 4 <= len(b):
            b[pos & ~3:(pos & ~3) + 4] = (rng.choice(_INTERESTING) & 0xFFFFFFFF).to_bytes(
                4, "little")
        elif kind == 3:
            del b[pos:pos + rng.randrange(1, 64)]
        else:
            b[pos:pos] = b[rng.randrange(len(b)):][:rng.randrange(1, 64)]
    if rng.random() < 0.05:
        b = b[: rng.randrange(len(b) + 1)]
    return bytes(b)


def mutated_model(seed: int) -> tuple[str, bytes]:
    """(description, bytes) of case ``seed``."""
    rng = random.Random(seed)
    name, data = rng.choice(corpus.models())
    how = rng.random()
    steps = []
    if how < 0.7:
        model = _copy(_parsed(name, data))
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            _mutate_ir(model, rng)
        try:
            data = write_model(model)
            steps.append("ir")
        except Exception:  # the writer may refuse IR no reader would produce
            steps.append("ir-unwritable")
    if how >= 0.5:
        data = _mutate_bytes(data, rng)
        steps.append("bytes")
    return f"{name} {'+'.join(steps)}", data


def _copy(model):
    """A copy whose lists and dicts may be changed (tensors and nodes are replaced, never
    mutated, by the mutations)."""
    return dataclasses.replace(
        model, subgraphs=[dataclasses.replace(sg, tensors=list(sg.tensors),
                                              inputs=list(sg.inputs), outputs=list(sg.outputs),
                                              nodes=list(sg.nodes))
                          for sg in model.subgraphs],
        signatures=[dataclasses.replace(s, inputs=dict(s.inputs), outputs=dict(s.outputs))
                    for s in model.signatures],
        metadata=dict(model.metadata))


_PARSED: dict[str, object] = {}


def _parsed(name: str, data: bytes):
    if name not in _PARSED:
        _PARSED[name] = read_model(data)
    return _PARSED[name]


def _input(details: dict, folder: Path, rng: np.random.Generator) -> np.ndarray:
    shape = [2 if d < 0 else d for d in details["shape_signature"]]
    if details["dtype"] is np.bytes_:
        return np.array(str(folder / "ckpt"), object).reshape(shape) if not shape else \
            np.full(shape, str(folder / "ckpt").encode(), object)
    if int(np.prod(shape)) > 1 << 22:
        shape = [min(d, 4) for d in shape]  # keep inputs small; a wrong shape is fine
    dt = np.dtype(details["dtype"])
    if dt.kind == "f":
        return rng.standard_normal(shape).astype(dt)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(0, 3, shape).astype(dt)


def _check_outputs(out: dict, runner) -> str | None:
    details = runner.get_output_details()
    for name, value in out.items():
        if not isinstance(value, np.ndarray):
            return f"output '{name}' is {type(value).__name__}, not an array"
        is_string = name in details and details[name]["dtype"] is np.bytes_
        if value.dtype == object and not is_string:
            return f"output '{name}' is an object array ({value!r:.60})"
    return None


def run_model(data: bytes, seed: int = 0) -> str | None:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="lt-fuzz-") as tmp:
        folder = Path(tmp)
        try:
            it = lt.Interpreter(model_content=data)
        except lt.LitetrainError:
            return None
        except Exception as e:
            return _escape("load", e)
        try:  # what `litetrain inspect` does
            summary = summarize(it.model, len(data))
            format_summary(summary, "model")
            json.dumps(summary)
        except Exception as e:
            return _escape("inspect", e)
        order = sorted(it.get_signature_list(), key=lambda k: (k != "save", k == "restore", k))
        for key in order:
            try:
                runner = it.get_signature_runner(key)
                inputs = {n: _input(d, folder, rng)
                          for n, d in runner.get_input_details().items()}
                bad = _check_outputs(runner(**inputs), runner)
                if bad:
                    return f"signature '{key}': silent wrong output: {bad}"
            except lt.LitetrainError:
                continue
            except Exception as e:
                return _escape(f"signature '{key}'", e)
        try:
            it.allocate_tensors()
            for d in it.get_input_details():
                it.set_tensor(d["index"], _input({**d, "shape_signature": d["shape"]}, folder,
                                                 rng))
            it.invoke()
            for d in it.get_output_details():
                it.get_tensor(d["index"])
        except lt.LitetrainError:
            pass
        except Exception as e:
            return _escape("invoke", e)
    return None


def _escape(stage: str, e: BaseException) -> str:
    frame = traceback.extract_tb(e.__traceback__)[-1]
    where = f"{Path(frame.filename).name}:{frame.lineno} {frame.name}"
    return f"{stage}: {type(e).__name__} at {where}: {str(e)[:120]}"


def case(seed: int) -> str | None:
    """Run model case ``seed``; ``None`` if it passed, else what escaped."""
    what, data = mutated_model(seed)
    result = run_model(data, seed)
    return None if result is None else f"model:{seed} ({what}) {result}"
