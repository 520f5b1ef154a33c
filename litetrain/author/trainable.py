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

A model with several inputs (``model.inputs``: name, shape, dtype) takes them by name; one
with several outputs (``model.output_names``) takes a label per output (``y_<name>``) and
minimises the ``loss_weights``-weighted sum of one loss per output, as Keras'
``compile(loss=[...], loss_weights=[...])`` (``litetrain.keras.load_model`` sets these, and
the model's compiled ``loss``/``loss_weights``/``optimizer`` are the defaults).
"""

from __future__ import annotations

import inspect
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


def _specs(model, input_shape, input_dtype) -> list[TensorSpec]:
    """One spec per model input: ``model.inputs`` (name, shape, dtype) when it has several,
    else ``x`` shaped ``input_shape`` or the model's first layer's."""
    inputs = getattr(model, "inputs", None)
    if inputs and len(inputs) > 1:
        if input_shape is not None:
            raise ValueError(f"the model takes {len(inputs)} inputs, each with its own "
                             "shape; leave input_shape out")
        return [TensorSpec([None, *shape], input_dtype or dtype, name=name)
                for name, shape, dtype in inputs]
    shape = tuple(input_shape or getattr(model, "input_shape", None) or
                  model.layers[0].input_shape or ())
    if not shape:
        raise ValueError("give input_shape, or input_shape= on the model's first layer")
    dtype = input_dtype or getattr(model, "input_dtype", np.float32)  # token ids: int32
    return [TensorSpec([None, *shape], dtype, name="x")]


def trainable(model: Sequential, loss: Loss | Sequence[Loss] | None = None,
              optimizer: Optimizer | None = None,
              input_shape: Sequence[int] | None = None,
              label_shape: Sequence[int] | None = None, fine_tune: str = "all",
              input_dtype=None, loss_weights: Sequence[float] | None = None) -> Module:
    """A :class:`Module` with train/infer/save/restore for ``model``.

    ``input_shape`` (without the batch dim) defaults to the first layer's
    ``input_shape``; ``label_shape`` defaults to the model's output shape; ``input_dtype``
    to the model's ``input_dtype`` (set by ``litetrain.keras.load_model``) or float32.
    ``loss`` and ``optimizer`` default to the model's own ``loss``/``optimizer`` (a
    compiled Keras file's). A model with several outputs (``model.output_names``) takes
    one loss per output (or one for all) and ``loss_weights``, as Keras'
    ``compile(loss=[...], loss_weights=[...])``: ``train`` minimises the weighted sum,
    takes the labels as ``y_<output name>`` and returns ``loss`` and
    ``<output name>_loss``; ``infer`` returns each output by its name. Several inputs
    are arguments named after the model's inputs.
    """
    loss = loss if loss is not None else getattr(model, "loss", None)
    optimizer = optimizer if optimizer is not None else getattr(model, "optimizer", None)
    if loss is None or optimizer is None:
        raise ValueError("give loss= and optimizer= (the model carries no compiled "
                         f"{'loss' if loss is None else 'optimizer'})")
    if loss_weights is None and loss is getattr(model, "loss", None):
        loss_weights = getattr(model, "loss_weights", None)
    x_specs = _specs(model, input_shape, input_dtype)
    shapes = [tuple(s.shape) for s in x_specs]
    if not model.built:
        model.build(shapes if len(shapes) > 1 else shapes[0])
    _freeze(model, fine_tune)
    out_shapes = model.output_shape(shapes if len(shapes) > 1 else shapes[0])
    names = list(getattr(model, "output_names", None) or ["output"])
    several = len(names) > 1
    out_shapes = list(out_shapes) if several else [out_shapes]
    per = list(loss) if isinstance(loss, (list, tuple)) else [loss] * len(names)
    weights = [1.0] * len(names) if loss_weights is None else [float(w) for w in loss_weights]
    if len(per) != len(names) or len(weights) != len(names):
        raise ValueError(f"the model has {len(names)} outputs {names}: give one loss (or "
                         f"one for all) and one loss weight per output, got {len(per)} and "
                         f"{len(weights)}")
    if label_shape is not None and several:
        raise ValueError("label_shape is for one-output models")
    y_specs = []
    for name, lo, shape in zip(names, per, out_shapes, strict=True):
        label = tuple(label_shape) if label_shape is not None else tuple(shape[1:])
        spec_name = f"y_{name}" if several else "y"
        y_specs.append(TensorSpec([None], np.int32, name=spec_name)
                       if isinstance(lo, SparseCategoricalCrossentropy) and label_shape is None
                       else TensorSpec([None, *label], name=spec_name))
    probabilities = isinstance(per[0], CategoricalCrossentropy) and per[0].from_logits
    n_in = len(x_specs)

    def _args(values):
        return list(values) if n_in > 1 else values[0]

    def _outputs(result):
        return list(result) if several else [result]

    def train(self, *args):
        with GradientTape() as tape:
            preds = _outputs(self.model(_args(args[:n_in]), training=True))
            parts = [lo(y, p) for lo, y, p in zip(per, args[n_in:], preds, strict=True)]
            value = None
            for part, w in zip(parts, weights, strict=True):
                term = part if w == 1.0 else part * float(w)
                value = term if value is None else value + term
            for penalty in self.model.regularization_losses():
                value = value + penalty
        variables = self.model.trainable_variables
        grads = tape.gradient(value, variables)
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        if not several:
            return {"loss": value}
        return {"loss": value, **{f"{n}_loss": p for n, p in zip(names, parts, strict=True)}}

    def infer(self, *args):
        outs = _outputs(self.model(_args(args)))
        if several:
            return dict(zip(names, outs, strict=True))
        logits = outs[0]
        return {"output": softmax(logits) if probabilities else logits, "logits": logits}

    def save_weights(self, checkpoint_path):
        return {"checkpoint_path": save(checkpoint_path, self.model.weights)}

    def restore_weights(self, checkpoint_path):
        return restore(checkpoint_path, self.model.weights)

    def _named(fn, params: list[str]):
        fn.__signature__ = inspect.Signature(
            [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD)
             for p in ["self", *params]])
        return fn

    def __init__(self) -> None:
        self.model, self.loss, self.optimizer = model, loss, optimizer

    path = TensorSpec([], np.bytes_)
    body = {
        "__init__": __init__,
        "train": signature(*x_specs, *y_specs)(
            _named(train, [s.name for s in [*x_specs, *y_specs]])),
        "infer": signature(*x_specs)(_named(infer, [s.name for s in x_specs])),
        "save": signature(path)(_named(save_weights, ["checkpoint_path"])),
        "restore": signature(path)(_named(restore_weights, ["checkpoint_path"])),
    }
    return type("Trainable", (Module,), body)()
