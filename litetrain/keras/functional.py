"""A Keras Functional model (one input, one output) as a litetrain layer: its layers run in
the file's order, each on the outputs of the layers its ``inbound_nodes`` name; merge
layers (Add, Concatenate, Multiply) take lists. Each layer is applied once (layers shared
between several calls are refused)."""

from __future__ import annotations

from ..author.graph import Value
from ..author.layers import Layer
from ..author.module import Variable
from ..errors import ModelFormatError


def _refs(args) -> list[str] | str:
    """The layer names an inbound node's arguments come from (a list for merges)."""
    if isinstance(args, dict) and args.get("class_name") == "__keras_tensor__":
        return args["config"]["keras_history"][0]
    if isinstance(args, list) and args and isinstance(args[0], list) and len(args) == 1:
        return [_refs(a) for a in args[0]]
    if isinstance(args, list) and len(args) == 1:
        return _refs(args[0])
    if isinstance(args, list):
        return [_refs(a) for a in args]
    raise ModelFormatError(f"an inbound node litetrain cannot follow: {str(args)[:200]}")


def inbound(layer_config: dict) -> list[str] | str:
    nodes = layer_config.get("inbound_nodes", [])
    if len(nodes) != 1:
        raise ModelFormatError(f"layer '{layer_config['config'].get('name')}' is called "
                               f"{len(nodes)} times; shared layers are not supported")
    node = nodes[0]
    if isinstance(node, dict):  # Keras 3
        return _refs(node.get("args", []))
    # legacy: [[name, node_index, tensor_index, kwargs], ...]
    names = [entry[0] for entry in node]
    return names if len(names) > 1 else names[0]


class Functional(Layer):
    """``layers``: ``(name, layer, inputs)`` in order, ``inputs`` a name or a list."""

    default_name = "functional"

    def __init__(self, input_name: str, output_name: str,
                 layers: list[tuple[str, Layer, list[str] | str]],
                 input_shape: tuple[int | None, ...], name: str | None = None):
        super().__init__(name=name)
        self.input_name, self.output_name = input_name, output_name
        self.nodes = layers
        self.layers = [layer for _, layer, _ in layers]
        self.input_shape = tuple(input_shape)

    def _walk(self, start, apply):
        values = {self.input_name: start}
        for name, layer, refs in self.nodes:
            args = [values[r] for r in refs] if isinstance(refs, list) else values[refs]
            values[name] = apply(layer, args)
        return values[self.output_name]

    def build(self, input_shape):
        def build_one(layer, shape):
            if isinstance(shape, list):
                return layer.merged_shape(shape)
            if not layer.built:
                layer.build(shape)
                layer.built = True
            return layer.output_shape(shape)
        self._walk(tuple(input_shape), build_one)
        self.built = True

    def output_shape(self, input_shape):
        def shape_of(layer, shape):
            return layer.merged_shape(shape) if isinstance(shape, list) else \
                layer.output_shape(shape)
        return self._walk(tuple(input_shape), shape_of)

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

    def call(self, x, training=False):
        return self._walk(x, lambda layer, args: layer(args, training=training))
