"""A Keras Functional model as a litetrain layer: any number of inputs and outputs, merge
layers (Add, Concatenate, Multiply: a list of tensors), MultiHeadAttention (``query``,
``value``, ``key``), and shared layers — a layer called more than once keeps one set of
weights and runs once per call (Keras' ``inbound_nodes``, one entry per call).

Tensors are named as Keras names them, ``(layer name, node index, tensor index)``; the
model's inputs are ``(input name, 0, 0)``. Calls run in an order where every tensor a call
reads was made before it (computed once, at construction), so the file's layer order does
not matter. Invariants: each call reads only tensors that exist (else ``ModelFormatError``
naming the layer), every layer makes one tensor per call (tensor index 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..author import nn
from ..author.graph import Value
from ..author.layers import Layer
from ..author.module import Variable
from ..errors import ModelFormatError

Ref = tuple[str, int, int]
_ATTENTION_ARGS = ("query", "value", "key")


def _is_ref(x) -> bool:
    return (isinstance(x, dict) and x.get("class_name") == "__keras_tensor__") or \
        (isinstance(x, list) and len(x) in (3, 4) and isinstance(x[0], str)
         and isinstance(x[1], int))


def _ref(x) -> Ref:
    """Keras 3's ``__keras_tensor__`` (its ``keras_history``) or a legacy
    ``[name, node, tensor(, kwargs)]``."""
    history = x["config"]["keras_history"] if isinstance(x, dict) else x[:3]
    return (str(history[0]), int(history[1]), int(history[2]))


def _structure(x):
    if _is_ref(x):
        return _ref(x)
    if isinstance(x, list):
        return [_structure(a) for a in x]
    raise ModelFormatError(f"an inbound node litetrain cannot follow: {str(x)[:200]}")


@dataclass(frozen=True)
class Call:
    """One call of a layer: ``inputs`` is a ``Ref``, a list of them (merges) or a dict
    (``query``/``value``/``key`` for attention)."""

    name: str
    node: int
    inputs: object


def _call_kwargs(name: str, items, kwargs: dict) -> None:
    """Tensor keyword arguments into ``kwargs``; inference-time ``training``/``mask`` of
    None/False are dropped; any other non-tensor argument is refused by name."""
    for key, value in items:
        if _is_ref(value):
            kwargs[key] = _ref(value)
        elif key in ("training", "mask") and value in (None, False):
            continue
        elif value is not None:
            raise ModelFormatError(f"layer '{name}': call argument {key}={value!r} is "
                                   "not supported")


def _node_args(name: str, node) -> tuple[list, dict]:
    """Positional and keyword tensor arguments of one inbound node (Keras 3 or legacy)."""
    kwargs: dict = {}
    if isinstance(node, dict):  # Keras 3: {"args": [...], "kwargs": {...}}
        args = [_structure(a) for a in node.get("args", [])]
        _call_kwargs(name, node.get("kwargs", {}).items(), kwargs)
        return args, kwargs
    # legacy: [[name, node_index, tensor_index, kwargs], ...]
    args = [_ref(entry) for entry in node]
    for entry in node:
        _call_kwargs(name, (entry[3] if len(entry) > 3 else {}).items(), kwargs)
    return ([args] if len(args) > 1 else args), kwargs


def calls(layer_config: dict, layer: Layer) -> list[Call]:
    """The calls a layer's ``inbound_nodes`` describe, with their inputs bound the way the
    layer takes them."""
    name = layer_config.get("name") or layer_config["config"]["name"]
    out = []
    for index, node in enumerate(layer_config.get("inbound_nodes", [])):
        args, kwargs = _node_args(name, node)
        if isinstance(layer, nn.MultiHeadAttention):
            bound = dict(zip(_ATTENTION_ARGS, args, strict=False))
            for key, ref in kwargs.items():
                if key not in _ATTENTION_ARGS:
                    raise ModelFormatError(f"layer '{name}' (MultiHeadAttention): call "
                                           f"argument '{key}' is not supported")
                bound[key] = ref
            if "query" not in bound or not all(isinstance(r, tuple) for r in bound.values()):
                raise ModelFormatError(f"layer '{name}' (MultiHeadAttention): a call "
                                       "without a query tensor")
            inputs = bound
        elif kwargs:
            raise ModelFormatError(f"layer '{name}': tensor call arguments {sorted(kwargs)} "
                                   "are not supported")
        elif hasattr(layer, "merged_shape"):
            inputs = args[0] if len(args) == 1 and isinstance(args[0], list) else args
        elif len(args) == 1 and isinstance(args[0], tuple):
            inputs = args[0]
        else:
            raise ModelFormatError(f"layer '{name}' ({type(layer).__name__}) is called with "
                                   f"{len(args)} tensors; it takes one")
        out.append(Call(name, index, inputs))
    return out


def _refs_of(inputs) -> list[Ref]:
    if isinstance(inputs, tuple):
        return [inputs]
    return list(inputs.values()) if isinstance(inputs, dict) else list(inputs)


def _order(inputs: list[Ref], layer_calls: list[Call]) -> list[Call]:
    ready, pending, order = set(inputs), list(layer_calls), []
    while pending:
        runnable = [c for c in pending if all(r in ready for r in _refs_of(c.inputs))]
        if not runnable:
            c = pending[0]
            missing = [r for r in _refs_of(c.inputs) if r not in ready]
            raise ModelFormatError(f"layer '{c.name}' (call {c.node}) reads {missing}, "
                                   "which no layer of the model makes")
        for c in runnable:
            ready.add((c.name, c.node, 0))
            order.append(c)
        pending = [c for c in pending if c not in runnable]
    return order


class Functional(Layer):
    """``inputs``: ``(name, shape without batch, dtype)`` per model input; ``outputs``: the
    tensors the model returns; ``layers``: each layer once, by its Keras name."""

    default_name = "functional"

    def __init__(self, inputs: list[tuple[str, tuple, np.dtype]], outputs: list[Ref],
                 layers: dict[str, Layer], layer_calls: list[Call], name: str | None = None):
        super().__init__(name=name)
        self.inputs = [(n, tuple(s), np.dtype(d)) for n, s, d in inputs]
        self.outputs = list(outputs)
        self.by_name = dict(layers)
        self.layers = list(layers.values())
        self.order = _order([(n, 0, 0) for n, _, _ in self.inputs], layer_calls)
        made = {(c.name, c.node, 0) for c in self.order} | {(n, 0, 0) for n, _, _ in inputs}
        for ref in self.outputs:
            if ref not in made:
                raise ModelFormatError(f"the model's output {list(ref)} is made by no layer")
        self.output_names = [ref[0] for ref in self.outputs]
        self.input_shape = self.inputs[0][1] if len(self.inputs) == 1 else None
        self.input_dtype = self.inputs[0][2]

    def _walk(self, starts: list, apply) -> list:
        if len(starts) != len(self.inputs):
            raise ValueError(f"the model takes {len(self.inputs)} inputs "
                             f"({[n for n, _, _ in self.inputs]}), got {len(starts)}")
        values = {(n, 0, 0): s for (n, _, _), s in zip(self.inputs, starts, strict=True)}
        for c in self.order:
            i = c.inputs
            args = values[i] if isinstance(i, tuple) else \
                {k: values[r] for k, r in i.items()} if isinstance(i, dict) else \
                [values[r] for r in i]
            values[(c.name, c.node, 0)] = apply(self.by_name[c.name], args)
        return [values[ref] for ref in self.outputs]

    def _many(self, x) -> list:
        return list(x) if len(self.inputs) > 1 else [x]

    def _one(self, results: list):
        return results if len(self.outputs) > 1 else results[0]

    def _shapes(self, input_shape, build: bool):
        def shape_of(layer, args):
            if isinstance(args, dict):  # attention: query, value, key
                if build and not layer.built:
                    layer.build(args["query"], args.get("value"), args.get("key"))
                return layer.output_shape(args["query"])
            if isinstance(args, list):
                return layer.merged_shape(args)
            if build and not layer.built:
                layer.build(args)
                layer.built = True
            return layer.output_shape(args)
        starts = [tuple(s) for s in self._many(input_shape)]
        return self._one(self._walk(starts, shape_of))

    def build(self, input_shape):
        self._shapes(input_shape, build=True)
        self.built = True

    def output_shape(self, input_shape):
        return self._shapes(input_shape, build=False)

    @property
    def weights(self) -> list[Variable]:
        return [v for layer in self.layers for v in layer.weights]

    @property
    def trainable_weights(self) -> list[Variable]:
        if not self.trainable:
            return []
        return [v for layer in self.layers for v in layer.trainable_weights]

    def regularization_losses(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.regularization_losses()]

    def __call__(self, x, training: bool = False):
        if not self.built:
            self.build(tuple((None, *v.shape[1:]) for v in self._many(x))
                       if len(self.inputs) > 1 else (None, *x.shape[1:]))
        return self.call(x, training=training)

    def call(self, x, training=False):
        def run(layer, args):
            if isinstance(args, dict):
                return layer(args["query"], args.get("value"), key=args.get("key"),
                             training=training)
            return layer(args, training=training)
        return self._one(self._walk(self._many(x), run))
