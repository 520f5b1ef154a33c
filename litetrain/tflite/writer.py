"""IR → .tflite bytes. Translation only, the mirror of ``reader.py``.

Layout follows TensorFlow's converter: buffer 0 is the empty sentinel, every constant gets
a buffer (identical constants share one, also across subgraphs), operator codes >= 127 put
127 in the deprecated byte field, options tables are written from attrs by reflection over
the schema package, Flex/custom ops keep their ``custom_options`` bytes verbatim.
"""

from __future__ import annotations

import importlib

import flatbuffers
import numpy as np

from .. import dtypes, options
from ..errors import ModelFormatError
from ..ir import Model, Node, Subgraph, Tensor, verify
from ..ops.registry import CUSTOM, lookup
from . import strings

_PLACEHOLDER_FOR_GREATER_OP_CODES = 127
_UNION_CODES = {name: code for code, name in options._UNION_NAMES.items()}


def _fn(table: str, name: str):
    return getattr(importlib.import_module(f"tflite.{table}"), f"{table}{name}")


def _int_vector(b: flatbuffers.Builder, values, dtype=np.int32) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype))


def _offset_vector(b: flatbuffers.Builder, table: str, field: str, offsets: list[int]) -> int:
    _fn(table, f"Start{field}Vector")(b, len(offsets))
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _tensor_bytes(t: Tensor) -> bytes:
    if t.dtype == dtypes.STRING:
        return strings.encode(t.data)
    if t.dtype == dtypes.INT4:
        return dtypes.pack_int4(t.data)
    return np.ascontiguousarray(t.data, dtypes.to_numpy(t.dtype).newbyteorder("<")).tobytes()


class _Writer:
    def __init__(self) -> None:
        self.b = flatbuffers.Builder(1 << 16)
        self.buffers: list[bytes] = [b""]
        self.buffer_index: dict[bytes, int] = {}
        self.codes: list[tuple[int, str | None, int]] = []

    def buffer(self, data: bytes | None) -> int:
        if data is None:
            return 0
        if data not in self.buffer_index:
            self.buffer_index[data] = len(self.buffers)
            self.buffers.append(data)
        return self.buffer_index[data]

    def code(self, node: Node) -> int:
        opdef = lookup(node.op) if not node.op.startswith(("builtin_", "custom")) else None
        builtin = opdef.builtin_code if opdef else CUSTOM
        key = (builtin, node.op if builtin == CUSTOM else None, node.version)
        if key not in self.codes:
            self.codes.append(key)
        return self.codes.index(key)

    # -- tables ------------------------------------------------------------------------
    def quantization(self, t: Tensor) -> int | None:
        q = t.quantization
        if q is None:
            return None
        b = self.b
        scale = _int_vector(b, q.scale, np.float32)
        zp = _int_vector(b, q.zero_point, np.int64)
        _fn("QuantizationParameters", "Start")(b)
        _fn("QuantizationParameters", "AddScale")(b, scale)
        _fn("QuantizationParameters", "AddZeroPoint")(b, zp)
        _fn("QuantizationParameters", "AddQuantizedDimension")(b, q.axis)
        return _fn("QuantizationParameters", "End")(b)

    def tensor(self, t: Tensor, buffer: int) -> int:
        b = self.b
        name = b.CreateString(t.name)
        shape = _int_vector(b, t.shape)
        sig = _int_vector(b, t.shape_signature) if t.shape_signature is not None else None
        quant = self.quantization(t)
        _fn("Tensor", "Start")(b)
        _fn("Tensor", "AddShape")(b, shape)
        _fn("Tensor", "AddType")(b, t.dtype)
        _fn("Tensor", "AddBuffer")(b, buffer)
        _fn("Tensor", "AddName")(b, name)
        if quant is not None:
            _fn("Tensor", "AddQuantization")(b, quant)
        if t.is_variable:
            _fn("Tensor", "AddIsVariable")(b, True)
        if sig is not None:
            _fn("Tensor", "AddShapeSignature")(b, sig)
        return _fn("Tensor", "End")(b)

    def operator(self, node: Node, k: int) -> int:
        b = self.b
        code = self.code(node)
        inputs = _int_vector(b, node.inputs)
        outputs = _int_vector(b, node.outputs)
        opts = custom = None
        table = None
        if self.codes[code][0] == CUSTOM:
            raw = node.attrs.get("custom_options", b"")
            custom = b.CreateNumpyVector(np.frombuffer(raw, np.uint8)) if raw else None
        else:
            table = lookup(node.op).options
            if table is not None and table in _UNION_CODES:
                opts = options.encode(b, table, node.attrs)
        _fn("Operator", "Start")(b)
        _fn("Operator", "AddOpcodeIndex")(b, code)
        _fn("Operator", "AddInputs")(b, inputs)
        _fn("Operator", "AddOutputs")(b, outputs)
        if opts is not None:
            _fn("Operator", "AddBuiltinOptionsType")(b, _UNION_CODES[table])
            _fn("Operator", "AddBuiltinOptions")(b, opts)
        if custom is not None:
            _fn("Operator", "AddCustomOptions")(b, custom)
        return _fn("Operator", "End")(b)

    def subgraph(self, sg: Subgraph) -> int:
        b = self.b
        tensors = [self.tensor(t, self.buffer(None if t.data is None else _tensor_bytes(t)))
                   for t in sg.tensors]
        ops = [self.operator(n, k) for k, n in enumerate(sg.nodes)]
        tvec = _offset_vector(b, "SubGraph", "Tensors", tensors)
        ovec = _offset_vector(b, "SubGraph", "Operators", ops)
        ins, outs = _int_vector(b, sg.inputs), _int_vector(b, sg.outputs)
        name = b.CreateString(sg.name)
        _fn("SubGraph", "Start")(b)
        _fn("SubGraph", "AddTensors")(b, tvec)
        _fn("SubGraph", "AddInputs")(b, ins)
        _fn("SubGraph", "AddOutputs")(b, outs)
        _fn("SubGraph", "AddOperators")(b, ovec)
        _fn("SubGraph", "AddName")(b, name)
        return _fn("SubGraph", "End")(b)

    def signature(self, key: str, subgraph_index: int, inputs, outputs) -> int:
        b = self.b

        def maps(items) -> list[int]:
            out = []
            for name, idx in items:
                s = b.CreateString(name)
                _fn("TensorMap", "Start")(b)
                _fn("TensorMap", "AddName")(b, s)
                _fn("TensorMap", "AddTensorIndex")(b, idx)
                out.append(_fn("TensorMap", "End")(b))
            return out

        ivec = _offset_vector(b, "SignatureDef", "Inputs", maps(inputs.items()))
        ovec = _offset_vector(b, "SignatureDef", "Outputs", maps(outputs.items()))
        k = b.CreateString(key)
        _fn("SignatureDef", "Start")(b)
        _fn("SignatureDef", "AddInputs")(b, ivec)
        _fn("SignatureDef", "AddOutputs")(b, ovec)
        _fn("SignatureDef", "AddSignatureKey")(b, k)
        _fn("SignatureDef", "AddSubgraphIndex")(b, subgraph_index)
        return _fn("SignatureDef", "End")(b)

    def model(self, m: Model) -> bytes:
        b = self.b
        subgraphs = [self.subgraph(sg) for sg in m.subgraphs]
        sigs = [self.signature(s.key, s.subgraph_index, s.inputs, s.outputs)
                for s in m.signatures]
        meta_offsets = []
        for name, data in m.metadata.items():
            buf = self.buffer(bytes(data)) if data else self.buffer_for_empty()
            s = b.CreateString(name)
            _fn("Metadata", "Start")(b)
            _fn("Metadata", "AddName")(b, s)
            _fn("Metadata", "AddBuffer")(b, buf)
            meta_offsets.append(_fn("Metadata", "End")(b))
        codes = []
        for builtin, custom, version in self.codes:
            c = b.CreateString(custom) if custom is not None else None
            _fn("OperatorCode", "Start")(b)
            _fn("OperatorCode", "AddDeprecatedBuiltinCode")(
                b, min(builtin, _PLACEHOLDER_FOR_GREATER_OP_CODES))
            if c is not None:
                _fn("OperatorCode", "AddCustomCode")(b, c)
            _fn("OperatorCode", "AddVersion")(b, version)
            _fn("OperatorCode", "AddBuiltinCode")(b, builtin)
            codes.append(_fn("OperatorCode", "End")(b))
        buffers = []
        for data in self.buffers:
            vec = None
            if data:
                b.StartVector(1, len(data), 16)  # the schema's force_align: 16
                b.head = b.Head() - len(data)
                b.Bytes[b.Head():b.Head() + len(data)] = data
                vec = b.EndVector()
            _fn("Buffer", "Start")(b)
            if vec is not None:
                _fn("Buffer", "AddData")(b, vec)
            buffers.append(_fn("Buffer", "End")(b))
        code_vec = _offset_vector(b, "Model", "OperatorCodes", codes)
        sub_vec = _offset_vector(b, "Model", "Subgraphs", subgraphs)
        buf_vec = _offset_vector(b, "Model", "Buffers", buffers)
        sig_vec = _offset_vector(b, "Model", "SignatureDefs", sigs)
        meta_vec = _offset_vector(b, "Model", "Metadata", meta_offsets) if meta_offsets else None
        desc = b.CreateString(m.description)
        _fn("Model", "Start")(b)
        _fn("Model", "AddVersion")(b, m.version)
        _fn("Model", "AddOperatorCodes")(b, code_vec)
        _fn("Model", "AddSubgraphs")(b, sub_vec)
        _fn("Model", "AddDescription")(b, desc)
        _fn("Model", "AddBuffers")(b, buf_vec)
        if meta_vec is not None:
            _fn("Model", "AddMetadata")(b, meta_vec)
        _fn("Model", "AddSignatureDefs")(b, sig_vec)
        b.Finish(_fn("Model", "End")(b), file_identifier=b"TFL3")
        return bytes(b.Output())

    def buffer_for_empty(self) -> int:
        self.buffers.append(b"")
        return len(self.buffers) - 1


def write_model(model: Model) -> bytes:
    """Serialize a verified IR model to ``.tflite`` bytes."""
    verify(model)
    try:
        return _Writer().model(model)
    except (TypeError, ValueError, KeyError) as e:
        raise ModelFormatError(f"cannot write the model: {e}") from None
