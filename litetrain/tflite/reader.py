""".tflite bytes → IR. Translation only: no execution logic lives here.

The ``tflite`` schema package does the FlatBuffer decoding. Because its accessors trust
the bytes, every vector length is checked against the file size before it is walked
(a forged length cannot make the reader loop for billions of steps), and every decoding
failure is turned into a :class:`ModelFormatError` that says where it happened.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import tflite

from .. import dtypes, options
from ..errors import ModelFormatError
from ..ir import Model, Node, Quantization, Signature, Subgraph, Tensor, verify
from ..ops.quantized.params import validate as validate_quantization
from ..ops.registry import CUSTOM, has, lookup, op_name_for_code
from . import flex, strings

_DECODE_ERRORS = (struct.error, IndexError, ValueError, TypeError, OverflowError,
                  UnicodeDecodeError, AttributeError, KeyError, MemoryError)


class _Guard:
    """Checks vector lengths against the buffer size so forged lengths fail fast."""

    def __init__(self, size: int):
        self.size = size

    def length(self, n: int, where: str, elem_bytes: int = 4) -> int:
        if n < 0 or n * elem_bytes > self.size:
            raise ModelFormatError(f"{where}: vector length {n} does not fit in a "
                                   f"{self.size}-byte file (corrupt offsets?)")
        return n


def read_model(source: bytes | bytearray | memoryview | str | Path) -> Model:
    """Parse a ``.tflite`` file (path or bytes) into a verified :class:`Model`."""
    origin = "model bytes"
    if isinstance(source, (str, Path)):
        origin = str(source)
        data = _read_file(Path(source))
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        raise ModelFormatError(f"expected a path or bytes for the model, got "
                               f"{type(source).__name__}")
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFormatError(
            f"{origin}: not a .tflite FlatBuffer (expected identifier 'TFL3' at bytes 4..7, "
            f"found {data[4:8]!r} in {len(data)} bytes)")
    where = [origin]
    try:
        model = _read(data, where)
    except ModelFormatError as e:
        raise ModelFormatError(f"{origin}: {e}") from None
    except _DECODE_ERRORS as e:
        raise ModelFormatError(f"{' > '.join(where)}: malformed FlatBuffer "
                               f"({type(e).__name__}: {e})") from None
    try:
        verify(model)
    except ModelFormatError as e:
        raise ModelFormatError(f"{origin}: {e}") from None
    return model


def _read_file(path: Path) -> bytes:
    # Only regular files: a device (/dev/zero) or FIFO would be read until memory runs out.
    try:
        with open(path, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ModelFormatError(f"cannot read model file '{path}': not a regular file")
            return f.read()
    except OSError as e:
        raise ModelFormatError(f"cannot read model file '{path}': {e.strerror or e}") from None
    except MemoryError:
        raise ModelFormatError(f"cannot read model file '{path}': not enough memory") from None


def _read(data: bytes, where: list[str]) -> Model:
    guard = _Guard(len(data))
    root = tflite.Model.GetRootAs(data, 0)
    where.append("buffers")
    buffers = _read_buffers(root, data, guard)
    where[1:] = ["operator codes"]
    codes = []
    for i in range(guard.length(root.OperatorCodesLength(), "operator_codes")):
        oc = root.OperatorCodes(i)
        # Codes >= 127 live in `builtin_code` (the deprecated byte holds 127); old files
        # only fill the deprecated byte. The larger of the two is the real code.
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        custom = oc.CustomCode().decode("utf-8") if oc.CustomCode() is not None else None
        codes.append((code, custom, oc.Version()))
    subgraphs = []
    for s in range(guard.length(root.SubgraphsLength(), "subgraphs")):
        where[1:] = [f"subgraph {s}"]
        subgraphs.append(_read_subgraph(root.Subgraphs(s), s, codes, buffers, guard, where))
    where[1:] = ["signature defs"]
    signatures = [_read_signature(root.SignatureDefs(i), guard)
                  for i in range(guard.length(root.SignatureDefsLength(), "signature_defs"))]
    where[1:] = ["metadata"]
    metadata = {}
    for i in range(guard.length(root.MetadataLength(), "metadata")):
        md = root.Metadata(i)
        b = md.Buffer()
        if b >= len(buffers):
            raise ModelFormatError(f"metadata {i} names buffer {b}, out of range")
        metadata[(md.Name() or b"").decode("utf-8")] = buffers[b].tobytes()
    description = (root.Description() or b"").decode("utf-8", "replace")
    return Model(subgraphs, signatures, description, root.Version(), metadata)


def _read_buffers(root: tflite.Model, data: bytes, guard: _Guard) -> list[np.ndarray]:
    out = []
    for i in range(guard.length(root.BuffersLength(), "buffers")):
        b = root.Buffers(i)
        if b.Offset() > 1:  # weights stored after the FlatBuffer (models over 2 GB)
            start, size = b.Offset(), b.Size()
            if start + size > len(data):
                raise ModelFormatError(f"buffer {i}: external data [{start}, {start + size}) "
                                       f"lies past the end of the {len(data)}-byte file")
            out.append(np.frombuffer(data, np.uint8, size, start))
        elif b.DataLength():
            guard.length(b.DataLength(), f"buffer {i}", 1)
            out.append(b.DataAsNumpy())
        else:
            out.append(np.zeros(0, np.uint8))
    return out


def _int_vector(obj, field: str, guard: _Guard, where: str) -> tuple[int, ...]:
    n = guard.length(getattr(obj, f"{field}Length")(), f"{where} {field}")
    return tuple(int(v) for v in getattr(obj, f"{field}AsNumpy")()) if n else ()


def _read_quantization(t: tflite.Tensor, guard: _Guard, where: str) -> Quantization | None:
    q = t.Quantization()
    if q is None or q.ScaleLength() == 0:
        return None
    scale = np.array(q.ScaleAsNumpy(), np.float32)
    guard.length(q.ZeroPointLength(), f"{where} zero_point", 8)
    zp = np.array(q.ZeroPointAsNumpy(), np.int64) if q.ZeroPointLength() else \
        np.zeros(scale.shape, np.int64)
    return Quantization(scale, zp, q.QuantizedDimension())


def _read_tensor(t: tflite.Tensor, k: int, buffers: list[np.ndarray], guard: _Guard) -> Tensor:
    where = f"tensor {k}"
    name = (t.Name() or b"").decode("utf-8", "replace")
    shape = _int_vector(t, "Shape", guard, where)
    sig = _int_vector(t, "ShapeSignature", guard, where) or None
    if any(d < 0 for d in shape):
        raise ModelFormatError(f"{where} '{name}': negative dim in shape {list(shape)}")
    b = t.Buffer()
    if b >= len(buffers):
        raise ModelFormatError(f"{where} '{name}': buffer index {b} out of range "
                               f"(file has {len(buffers)} buffers)")
    if t.Sparsity() is not None:
        raise ModelFormatError(f"{where} '{name}': sparse tensors are not supported")
    dtype = t.Type()
    data = None
    raw = buffers[b]
    # A buffer with bytes is a constant; so is an empty buffer for a zero-element shape
    # (the converter writes e.g. int32[0] constants that way). Other empty buffers are
    # placeholders for run-time values.
    if b != 0 and (raw.size or (shape and 0 in shape and dtype != dtypes.STRING)):
        data = _constant(raw, dtype, shape, f"{where} '{name}'")
    tensor = Tensor(name, dtype, shape, sig, data, _read_quantization(t, guard, where),
                    bool(t.IsVariable()), b)
    if tensor.quantization is not None:
        validate_quantization(tensor, dtypes.storage(dtype), where)
    return tensor


def _constant(raw: np.ndarray, dtype: int, shape: tuple[int, ...], where: str) -> np.ndarray:
    if dtype == dtypes.STRING:
        arr = strings.decode(raw.tobytes(), where)
        if arr.size != int(np.prod(shape)):
            raise ModelFormatError(f"{where}: {arr.size} strings for shape {list(shape)}")
        return arr.reshape(shape)
    if dtype == dtypes.INT4:
        vals = dtypes.unpack_int4(raw, int(np.prod(shape)))
        if vals is None:
            raise ModelFormatError(f"{where}: {raw.size} bytes too few for int4{list(shape)}")
        return vals.reshape(shape)
    dt = dtypes.to_numpy(dtype)
    n = int(np.prod(shape))
    if raw.size != n * dt.itemsize:
        raise ModelFormatError(f"{where}: buffer holds {raw.size} bytes, but "
                               f"{dtypes.name(dtype)}{list(shape)} needs {n * dt.itemsize}")
    # Copy: buffers are only 4-byte aligned in converter output, and constants must not
    # alias the file bytes.
    return np.frombuffer(raw.tobytes(), dt).reshape(shape)


def _read_subgraph(sg: tflite.SubGraph, s: int, codes, buffers, guard: _Guard,
                   where: list[str]) -> Subgraph:
    name = (sg.Name() or b"").decode("utf-8", "replace")
    tensors = []
    for k in range(guard.length(sg.TensorsLength(), "tensors")):
        where[2:] = [f"tensor {k}"]
        tensors.append(_read_tensor(sg.Tensors(k), k, buffers, guard))
    nodes = []
    for k in range(guard.length(sg.OperatorsLength(), "operators")):
        where[2:] = [f"operator {k}"]
        nodes.append(_read_node(sg.Operators(k), k, codes, guard))
    del where[2:]
    inputs = list(_int_vector(sg, "Inputs", guard, "subgraph"))
    # An empty buffer only makes a zero-element tensor a constant if nothing else defines
    # it: a node's output (FusedBatchNormV3's reserve space) or a subgraph input.
    defined = {i for n in nodes for i in n.outputs} | set(inputs)
    for i in defined:
        t = tensors[i] if 0 <= i < len(tensors) else None
        if t is not None and t.data is not None and t.data.size == 0:
            tensors[i] = replace(t, data=None)
    return Subgraph(name, tensors, inputs, list(_int_vector(sg, "Outputs", guard, "subgraph")),
                    nodes)


def _read_node(op: tflite.Operator, k: int, codes, guard: _Guard) -> Node:
    idx = op.OpcodeIndex()
    if idx >= len(codes):
        raise ModelFormatError(f"operator {k}: opcode index {idx} out of range "
                               f"(file has {len(codes)} operator codes)")
    code, custom, version = codes[idx]
    name = op_name_for_code(code, custom)
    inputs = _int_vector(op, "Inputs", guard, f"operator {k}")
    outputs = _int_vector(op, "Outputs", guard, f"operator {k}")
    attrs: dict[str, object] = {}
    if code == CUSTOM:
        n = guard.length(op.CustomOptionsLength(), f"operator {k} custom_options", 1)
        raw = op.CustomOptionsAsNumpy().tobytes() if n else b""
        if name.startswith(flex.PREFIX):
            attrs = flex.decode_options(raw, f"operator {k} ({name})")
        attrs["custom_options"] = raw  # kept verbatim so a writer reproduces it exactly
    else:
        table = options.union_table_name(op.BuiltinOptionsType())
        holder = op.BuiltinOptions()
        if table is not None and holder is not None:
            attrs = options.decode(table, holder.Bytes, holder.Pos)
        elif has(name) and lookup(name).options is not None:
            attrs = options.defaults(lookup(name).options)  # an omitted table means defaults
    return Node(name, inputs, outputs, attrs, version)


def _read_signature(sd: tflite.SignatureDef, guard: _Guard) -> Signature:
    key = (sd.SignatureKey() or b"").decode("utf-8")

    def maps(n: int, get) -> dict[str, int]:
        out = {}
        for i in range(guard.length(n, f"signature '{key}'")):
            tm = get(i)
            alias = (tm.Name() or b"").decode("utf-8")
            if alias in out:
                raise ModelFormatError(f"signature '{key}': name '{alias}' is used twice")
            out[alias] = tm.TensorIndex()
        return out

    return Signature(key, sd.SubgraphIndex(), maps(sd.InputsLength(), sd.Inputs),
                     maps(sd.OutputsLength(), sd.Outputs))
