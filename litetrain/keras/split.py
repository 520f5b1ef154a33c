"""``split(model, last, loss, optimizer)``: a Sequential model's frozen base split off into
a ``load`` signature, as the transfer-learning blog's file does, so a device computes each
example's bottleneck once and trains only the last ``last`` layers on them:

* ``load(x) -> {"bottleneck"}``: the frozen layers (inference mode: BatchNormalization
  uses its moving statistics, Dropout is off);
* ``train(bottleneck, y) -> {"loss"}``: one optimizer step of the last layers;
* ``infer(x) -> {"output", "logits"}``: base, then head (``output`` is softmax(logits) for
  a cross-entropy on logits, else the model's output);
* ``save(checkpoint_path)`` / ``restore(checkpoint_path)``: the trained layers' weights.

Invariant: ``infer(x)`` equals the whole model's output, and ``head(load(x))`` too.
"""

from __future__ import annotations

import numpy as np

from ..author import nn
from ..author.autodiff import GradientTape
from ..author.io import restore, save
from ..author.losses import CategoricalCrossentropy, Loss, SparseCategoricalCrossentropy
from ..author.module import Module, TensorSpec, signature
from ..author.optimizers import Optimizer
from ..errors import ModelFormatError


def split(model: nn.Layer, last: int, loss: Loss, optimizer: Optimizer) -> Module:
    if not isinstance(model, nn.Sequential):
        raise ModelFormatError(f"splitting off a frozen base needs a Sequential model, got "
                               f"{type(model).__name__}")
    if not 1 <= last < len(model.layers):
        raise ValueError(f"last must be 1..{len(model.layers) - 1} (the model has "
                         f"{len(model.layers)} layers), got {last}")
    shape = tuple(model.layers[0].input_shape)
    base = nn.Sequential(model.layers[:-last], name="base", input_dtype=model.input_dtype)
    head = nn.Sequential(model.layers[-last:], name="head")
    base.trainable = False
    for layer in base.layers:
        layer.trainable = False
    features = tuple(base.output_shape((None, *shape))[1:])
    out = tuple(head.output_shape((None, *features))[1:])
    x_spec = TensorSpec([None, *shape], model.input_dtype, name="x")
    b_spec = TensorSpec([None, *features], name="bottleneck")
    y_spec = TensorSpec([None], np.int32, name="y") \
        if isinstance(loss, SparseCategoricalCrossentropy) else TensorSpec([None, *out], name="y")
    probabilities = isinstance(loss, CategoricalCrossentropy) and loss.from_logits

    class Split(Module):
        def __init__(self) -> None:
            self.base, self.head, self.loss, self.optimizer = base, head, loss, optimizer

        @signature(x_spec)
        def load(self, x):
            return {"bottleneck": self.base(x)}

        @signature(b_spec, y_spec)
        def train(self, bottleneck, y):
            with GradientTape() as tape:
                value = self.loss(y, self.head(bottleneck, training=True))
                for penalty in self.head.regularization_losses():
                    value = value + penalty
            variables = self.head.trainable_variables
            grads = tape.gradient(value, variables)
            self.optimizer.apply_gradients(zip(grads, variables, strict=True))
            return {"loss": value}

        @signature(x_spec)
        def infer(self, x):
            logits = self.head(self.base(x))
            return {"output": nn.softmax(logits) if probabilities else logits,
                    "logits": logits}

        @signature(TensorSpec([], np.bytes_))
        def save(self, checkpoint_path):
            return {"checkpoint_path": save(checkpoint_path, self.head.weights)}

        @signature(TensorSpec([], np.bytes_))
        def restore(self, checkpoint_path):
            return restore(checkpoint_path, self.head.weights)

    return Split()
