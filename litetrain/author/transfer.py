"""``transfer(base, num_classes)``: the on-device training blog post's transfer-learning
file, built from any float ``.tflite`` image model without TensorFlow.

* ``load(feature) -> {"bottleneck"}``: the frozen base's features (run once per image);
* ``train(bottleneck, label) -> {"loss"}``: one optimizer step of the head on bottlenecks;
* ``infer(feature) -> {"output"}``: base, then head, then softmax;
* ``save(checkpoint_path)`` / ``restore(checkpoint_path)``: the head's weights.

Exported with ``litetrain.convert`` it is builtin-only, so stock LiteRT trains it too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .autodiff import GradientTape
from .io import restore, save
from .layers import Dense, Layer, Sequential
from .losses import CategoricalCrossentropy, Loss
from .module import Module, TensorSpec, signature
from .nn import softmax
from .optimizers import Adam, Optimizer
from .tflite_layer import TFLiteModel


def transfer(base, num_classes: int, head: Sequence[Layer] | Sequential | None = None,
             optimizer: Optimizer | None = None, loss: Loss | None = None,
             base_signature: str | None = None, base_output: str | None = None) -> Module:
    """A :class:`Module` with the blog's five signatures over ``base`` (a path, bytes or
    a :class:`TFLiteModel`). ``head`` defaults to one Dense layer of ``num_classes``
    logits; ``optimizer`` to Adam(1e-3); ``loss`` to categorical cross-entropy on logits
    with one-hot labels of ``num_classes``."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    frozen = base if isinstance(base, TFLiteModel) else TFLiteModel(
        base, signature=base_signature, output=base_output, name="base")
    features = frozen.output_shape((None, *frozen.input_shape))[1:]
    if any(d is None for d in features):
        raise ValueError(f"the base's output {list(features)} needs a static shape")
    if head is None:
        head = Sequential([Dense(num_classes, name="head")])
    elif not isinstance(head, Sequential):
        head = Sequential(list(head))
    if not head.built:
        head.build((None, *features))
    loss = loss or CategoricalCrossentropy(from_logits=True)
    optimizer = optimizer or Adam(1e-3)
    image, bottleneck = TensorSpec([None, *frozen.input_shape]), TensorSpec([None, *features])

    class Transfer(Module):
        def __init__(self) -> None:
            self.base, self.head, self.loss, self.optimizer = frozen, head, loss, optimizer

        @signature(image)
        def load(self, feature):
            return {"bottleneck": self.base(feature)}

        @signature(bottleneck, TensorSpec([None, num_classes]))
        def train(self, bottleneck, label):
            with GradientTape() as tape:
                value = self.loss(label, self.head(bottleneck, training=True))
            variables = self.head.trainable_variables
            grads = tape.gradient(value, variables)
            self.optimizer.apply_gradients(zip(grads, variables, strict=True))
            return {"loss": value}

        @signature(image)
        def infer(self, feature):
            return {"output": softmax(self.head(self.base(feature)))}

        @signature(TensorSpec([], np.bytes_))
        def save(self, checkpoint_path):
            return {"checkpoint_path": save(checkpoint_path, self.head.weights)}

        @signature(TensorSpec([], np.bytes_))
        def restore(self, checkpoint_path):
            return restore(checkpoint_path, self.head.weights)

    return Transfer()
