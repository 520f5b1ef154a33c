"""``TFLiteModel``: a float ``.tflite`` inference file as a layer of an authored module.

The file's graph (one signature, up to one chosen output tensor) is replayed node by node
through the trace, so it becomes part of the module's own graph: the same kernels, shape
rules (a dynamic batch stays dynamic) and gradient rules as every other op. Its weights
are constants — a frozen base, which costs no backward work — or, with ``trainable``,
variables named ``<layer>/<tensor name>`` that the optimizer updates (all of them, or the
tensors whose names are listed). Files that keep their weights in resource variables
(exported by ``litetrain.convert`` or TensorFlow's converter with variables) work too:
a variable read becomes its initial value from the file's init subgraph. A quantized
file, a node that writes state (assignments, random ops, control flow) or an op without a
gradient rule on the path being differentiated is refused, naming it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .. import dtypes
from ..errors import TraceError, user_frame
from ..ir import OMITTED, Model, Subgraph
from ..ops import lookup
from ..ops.variables import variable_key
from ..runtime.simplify import drop_unused
from ..tflite.reader import read_model
from .graph import Value
from .layers import Layer
from .module import Variable


def _load(source) -> Model:
    if isinstance(source, Model):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        return read_model(bytes(source))
    return read_model(os.fspath(source))


class TFLiteModel(Layer):
    """``TFLiteModel(source, signature=None, output=None, trainable=False)``.

    ``source``: a path, the bytes of a ``.tflite`` file, or a read model. ``signature``:
    which signature to take (default: the file's only one, or ``serving_default``).
    ``output``: a signature output name or any tensor name in its subgraph (e.g. the
    penultimate feature map); default: the signature's only output. ``trainable``: False
    (frozen), True (every float weight), or a list of tensor names to train.
    """

    default_name = "tflite_model"

    def __init__(self, source, signature: str | None = None, output: str | None = None,
                 trainable: bool | Sequence[str] = False, name: str | None = None):
        super().__init__(name=name or self.default_name, trainable=bool(trainable))
        self.model = _load(source)
        sig = self._signature(signature)
        self.subgraph: Subgraph = self.model.subgraphs[sig.subgraph_index]
        if len(sig.inputs) != 1:
            raise TraceError(f"TFLiteModel takes files whose signature has one input; "
                             f"'{sig.key}' has {sorted(sig.inputs)}")
        (self.input_index,) = sig.inputs.values()
        self.output_index = self._output(sig, output)
        self.nodes = drop_unused(self.subgraph.nodes, [self.output_index],
                                 keeps=lambda node: False)
        self.initial = self._initial_values()
        self._check_nodes()
        self._variable_reads = self._resolve_reads()
        names = None if isinstance(trainable, bool) else set(trainable)
        self._weights: dict[int, Variable] = {}
        for i in sorted({i for n in self.nodes for i in n.inputs if i != OMITTED}):
            t = self.subgraph.tensors[i]
            data = t.data if t.data is not None else self._variable_reads.get(i)
            is_weight = data is not None and t.dtype == dtypes.FLOAT32 and data.size > 1
            if is_weight and trainable and (names is None or t.name in names):
                v = Variable(np.array(data), f"{self.name}/{t.name}", trainable=True)
                self._weights[i] = v
                self._variables.append(v)
        if names is not None and names - {self.subgraph.tensors[i].name for i in self._weights}:
            missing = sorted(names - {self.subgraph.tensors[i].name for i in self._weights})
            raise TraceError(f"TFLiteModel: no float weight tensor named {missing[:5]} on "
                             f"the path to the output")
        t = self.subgraph.tensors[self.input_index]
        self.input_shape = tuple(None if d == -1 else d for d in t.signature_shape[1:])
        self.built = True

    def _signature(self, key: str | None):
        sigs = self.model.signatures
        if key is None:
            if len(sigs) == 1:
                return sigs[0]
            key = "serving_default"
        for s in sigs:
            if s.key == key:
                return s
        raise TraceError(f"TFLiteModel: no signature '{key}' (the file has "
                         f"{[s.key for s in sigs]})")

    def _output(self, sig, output: str | None) -> int:
        if output is None:
            if len(sig.outputs) != 1:
                raise TraceError(f"TFLiteModel: signature '{sig.key}' has outputs "
                                 f"{sorted(sig.outputs)}; choose one with output=")
            return next(iter(sig.outputs.values()))
        if output in sig.outputs:
            return sig.outputs[output]
        found = [k for k, t in enumerate(self.subgraph.tensors) if t.name == output]
        if not found:
            raise TraceError(f"TFLiteModel: no output or tensor named '{output}' in "
                             f"signature '{sig.key}'")
        return found[0]

    def _initial_values(self) -> dict[tuple[str, str], np.ndarray]:
        """Each variable's value as the file's init subgraphs (VAR_HANDLE + ASSIGN_VARIABLE
        of a constant, reached through CALL_ONCE) set it."""
        out = {}
        for sg in self.model.subgraphs:
            handles = {n.outputs[0]: variable_key(n.attrs) for n in sg.nodes
                       if n.op == "var_handle" and n.outputs}
            for n in sg.nodes:
                if n.op == "assign_variable" and len(n.inputs) == 2 and \
                        n.inputs[0] in handles and sg.tensors[n.inputs[1]].data is not None:
                    out.setdefault(handles[n.inputs[0]], sg.tensors[n.inputs[1]].data)
        return out

    def _resolve_reads(self) -> dict[int, np.ndarray]:
        """READ_VARIABLE outputs on the path → the variables' initial values."""
        handles = {n.outputs[0]: variable_key(n.attrs) for n in self.nodes
                   if n.op == "var_handle"}
        reads = {}
        for n in self.nodes:
            if n.op == "read_variable":
                key = handles.get(n.inputs[0])
                if key not in self.initial:
                    raise TraceError(f"TFLiteModel: variable {key} has no initial value in "
                                     "the file's init subgraph")
                reads[n.outputs[0]] = self.initial[key]
        return reads

    def _check_nodes(self) -> None:
        for k, node in enumerate(self.nodes):
            opdef = lookup(node.op)
            if node.op in ("var_handle", "read_variable"):
                continue
            if opdef.stateful:
                raise TraceError(f"TFLiteModel: node {k} ({node.op}) is stateful; only "
                                 "inference graphs can become layers")
            for i in (*node.inputs, *node.outputs):
                if i != OMITTED and self.subgraph.tensors[i].quantization is not None:
                    raise TraceError(f"TFLiteModel: node {k} ({node.op}) works on quantized "
                                     "tensors; use the float file")

    def output_shape(self, input_shape):
        t = self.subgraph.tensors[self.output_index]
        return (input_shape[0], *(None if d == -1 else d for d in t.signature_shape[1:]))

    def call(self, x: Value, training: bool = False) -> Value:
        g = x.graph
        values: dict[int, Value] = {self.input_index: x}

        def value(i: int):
            if i == OMITTED:
                return None
            if i not in values:
                t = self.subgraph.tensors[i]
                if i in self._weights:
                    values[i] = self._weights[i].read()
                elif t.data is not None:
                    values[i] = g.const(t.data)
                else:
                    raise TraceError(f"{user_frame()}: TFLiteModel: tensor {i} '{t.name}' "
                                     "has no value (is it an input of the file?)")
            return values[i]

        for node in self.nodes:
            if node.op == "var_handle":
                continue
            if node.op == "read_variable":
                i = node.outputs[0]
                values[i] = self._weights[i].read() if i in self._weights else g.const(
                    self._variable_reads[i])
                continue
            attrs = {k: v for k, v in node.attrs.items() if k != "custom_options"}
            out_dtypes = [dtypes.storage(self.subgraph.tensors[i].dtype) for i in node.outputs]
            out = g.op(node.op, *[value(i) for i in node.inputs], out_dtypes=out_dtypes,
                       **attrs)
            outs = out if isinstance(out, tuple) else (out,)
            values.update(zip(node.outputs, outs, strict=True))
        return values[self.output_index]
