"""``trainable(model, loss=..., optimizer=...)``: the four standard signatures for a
Sequential model, as the on-device training tutorial writes them by hand.

* ``train(x, y) -> {"loss"}``: one optimizer step;
* ``infer(x) -> {"output", "logits"}``: ``output`` is softmax(logits) for classifiers
  (losses ``from_logits``), else the model's output itself;
* ``save(checkpoint_path)`` / ``restore(checkpoint_path)``: the model's weights.

The loss differentiated includes the model's weight penalties (``kernel_regularizer``).
``fine_tune`` picks what trains, for memory-lean fine-tuning on a device: ``"all"``,
``"bias"`` (only biases — TinyTL's bias-only tuning), or ``"last:N"`` (only the last N
layers). Frozen weights get no backward work at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .autodiff import GradientTape
from .io import restore, save
from .losses import CategoricalCrossentropy, Loss, SparseCategoricalCrossentropy
from .module import Module, TensorSpec, signature
from .nn import Sequential, softmax
from .optimizers import Optimizer


def _freeze(model: Sequential, fine_tune: str) -> None:
    if fine_tune == "all":
        return
    if fine_tune == "bias":
        for v in model.weights:
            v.trainable = v.trainable and v.name.endswith(("/bias", "/beta"))
        return
    kind, _, count = fine_tune.partition(":")
    if kind != "last" or not count.isdigit() or int(count) < 1:
        raise ValueError(f"fine_tune must be 'all', 'bias' or 'last:N', got {fine_tune!r}")
    for layer in model.layers[:-int(count)]:
        layer.trainable = False


def trainable(model: Sequential, loss: Loss, optimizer: Optimizer,
              input_shape: Sequence[int] | None = None,
              label_shape: Sequence[int] | None = None, fine_tune: str = "all",
              input_dtype=None) -> Module:
    """A :class:`Module` with train/infer/save/restore for ``model``.

    ``input_shape`` (without the batch dim) defaults to the first layer's
    ``input_shape``; ``label_shape`` defaults to the model's output shape; ``input_dtype``
    to the model's ``input_dtype`` (set by ``litetrain.keras.load_model``) or float32.
    """
    shape = tuple(input_shape or getattr(model, "input_shape", None) or
                  model.layers[0].input_shape or ())
    if not shape:
        raise ValueError("give input_shape, or input_shape= on the model's first layer")
    if not model.built:
        model.build((None, *shape))
    _freeze(model, fine_tune)
    out_shape = model.output_shape((None, *shape))
    labels = tuple(label_shape) if label_shape is not None else tuple(out_shape[1:])
    probabilities = isinstance(loss, CategoricalCrossentropy) and loss.from_logits
    dtype = input_dtype or getattr(model, "input_dtype", np.float32)  # token ids: int32
    x_spec, y_spec = TensorSpec([None, *shape], dtype), TensorSpec([None, *labels])
    if isinstance(loss, SparseCategoricalCrossentropy) and label_shape is None:
        y_spec = TensorSpec([None], np.int32)  # class indices

    class Trainable(Module):
        def __init__(self) -> None:
            self.model, self.loss, self.optimizer = model, loss, optimizer

        @signature(x_spec, y_spec)
        def train(self, x, y):
            with GradientTape() as tape:
                value = self.loss(y, self.model(x, training=True))
                for penalty in self.model.regularization_losses():
                    value = value + penalty
            variables = self.model.trainable_variables
            grads = tape.gradient(value, variables)
            self.optimizer.apply_gradients(zip(grads, variables, strict=True))
            return {"loss": value}

        @signature(x_spec)
        def infer(self, x):
            logits = self.model(x)
            return {"output": softmax(logits) if probabilities else logits, "logits": logits}

        @signature(TensorSpec([], np.bytes_))
        def save(self, checkpoint_path):
            return {"checkpoint_path": save(checkpoint_path, self.model.weights)}

        @signature(TensorSpec([], np.bytes_))
        def restore(self, checkpoint_path):
            return restore(checkpoint_path, self.model.weights)

    return Trainable()
