"""A Keras file's compiled training setup as litetrain objects: the loss (one per output),
the loss weights, and the optimizer *with its saved state*, so the first step litetrain
takes is the step Keras would take next.

Where it is: ``compile_config`` in a ``.keras`` config, ``training_config`` in a legacy
``.h5``. The optimizer's variables are saved as ``iteration``, ``learning_rate`` (Keras 3
only), then the slots: per trainable variable in ``model.trainable_variables`` order, one
per slot kind, interleaved when the optimizer builds its kinds together (Adam's momentum and
velocity), one kind after another when it builds them apart (RMSprop's velocities, then
momentums). A loss, optimizer or option litetrain lacks is a ``ModelFormatError`` naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..author import losses, optimizers
from ..author.module import Variable
from ..errors import ModelFormatError

_LOSSES = {
    "categorical_crossentropy": losses.CategoricalCrossentropy,
    "sparse_categorical_crossentropy": losses.SparseCategoricalCrossentropy,
    "binary_crossentropy": losses.BinaryCrossentropy,
    "mean_squared_error": losses.MeanSquaredError, "mse": losses.MeanSquaredError,
    "huber": losses.Huber, "huber_loss": losses.Huber,
    "kl_divergence": losses.KLDivergence, "kld": losses.KLDivergence,
    "kullback_leibler_divergence": losses.KLDivergence,
}
# loss option → the values litetrain implements (None: any value, passed on)
_LOSS_OPTIONS = {"from_logits": None, "delta": None, "name": None, "dtype": None,
                 "reduction": ("sum_over_batch_size", "auto"), "label_smoothing": (0, 0.0),
                 "ignore_class": (None,), "axis": (-1,), "fn": None}


@dataclass
class Compiled:
    """``losses``: one per model output; ``loss_weights``: one per output (1.0 when the
    file gives none); ``optimizer``: holding the file's iteration, learning rate and
    slots, or ``None`` when the file has no optimizer."""

    losses: list[losses.Loss]
    loss_weights: list[float]
    optimizer: optimizers.Optimizer | None


def _snake(name: str) -> str:
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def _loss(spec) -> losses.Loss:
    if isinstance(spec, str):
        name, cfg = spec, {}
    elif isinstance(spec, dict) and "class_name" in spec:
        name, cfg = spec["class_name"], dict(spec.get("config") or {})
    else:
        raise ModelFormatError(f"compiled loss {spec!r} is not one litetrain reads")
    key = _snake(name.split(">")[-1])
    if key == "loss_function_wrapper" and isinstance(cfg.get("fn"), str):
        key = cfg["fn"]
    if key not in _LOSSES:
        raise ModelFormatError(f"compiled loss '{name}' is not supported (litetrain has "
                               f"{sorted(set(_LOSSES))})")
    for option, value in cfg.items():
        allowed = _LOSS_OPTIONS.get(option, ())
        if allowed is not None and value not in allowed:
            raise ModelFormatError(f"compiled loss '{name}': option {option}={value!r} is "
                                   "not supported")
    kind = _LOSSES[key]
    if kind in (losses.CategoricalCrossentropy, losses.SparseCategoricalCrossentropy,
                losses.BinaryCrossentropy):
        return kind(from_logits=bool(cfg.get("from_logits", False)))
    if kind is losses.Huber:
        return kind(delta=float(cfg.get("delta", 1.0)))
    return kind()


def _per_output(value, names: list[str], what: str) -> list:
    """Keras' forms: one for every output, a list in output order, a dict by output name."""
    if isinstance(value, dict) and "class_name" not in value:
        missing = [n for n in names if n not in value]
        if missing:
            raise ModelFormatError(f"compiled {what} names no entry for outputs {missing}")
        return [value[n] for n in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ModelFormatError(f"compiled {what}: {len(value)} entries for "
                                   f"{len(names)} outputs {names}")
        return list(value)
    return [value] * len(names)


_COMMON = {"name", "learning_rate", "weight_decay", "clipnorm", "global_clipnorm",
           "clipvalue", "use_ema", "ema_momentum", "ema_overwrite_frequency",
           "loss_scale_factor", "gradient_accumulation_steps", "is_legacy_optimizer",
           "jit_compile", "decay"}
# Keras class → (litetrain class, its options, {option: the one value supported},
#                slot kinds in Keras' saved order, interleaved?)
_OPTIMIZERS = {
    "SGD": (optimizers.SGD, {"momentum", "nesterov"}, {}, ("m",), True),
    "Adam": (optimizers.Adam, {"beta_1", "beta_2", "epsilon"}, {"amsgrad": False},
             ("m", "v"), True),
    "AdamW": (optimizers.AdamW, {"beta_1", "beta_2", "epsilon"}, {"amsgrad": False},
              ("m", "v"), True),
    "Lion": (optimizers.Lion, {"beta_1", "beta_2"}, {}, ("momentum",), True),
    "RMSprop": (optimizers.RMSprop, {"rho", "momentum", "epsilon"}, {"centered": False},
                ("velocity", "momentum"), False),
    "Adagrad": (optimizers.Adagrad, {"initial_accumulator_value", "epsilon"}, {},
                ("accumulator",), True),
}


def _optimizer(spec: dict, trainable: list[Variable], state: list[np.ndarray],
               names: list[str]) -> optimizers.Optimizer:
    kind = str(spec.get("class_name", "")).split(">")[-1]
    cfg = dict(spec.get("config") or {})
    if kind not in _OPTIMIZERS:
        raise ModelFormatError(f"compiled optimizer '{kind}' is not supported (litetrain "
                               f"carries over {sorted(_OPTIMIZERS)})")
    cls, options, fixed, kinds, interleaved = _OPTIMIZERS[kind]
    for key, value in cfg.items():
        if key in fixed and value != fixed[key]:
            raise ModelFormatError(f"compiled optimizer '{kind}': option {key}={value!r} is "
                                   f"not supported (litetrain implements {fixed[key]!r})")
        if key not in options and key not in fixed and key not in _COMMON:
            raise ModelFormatError(f"compiled optimizer '{kind}': option '{key}' is not "
                                   "supported")
    for key in ("use_ema", "gradient_accumulation_steps", "loss_scale_factor", "decay"):
        if cfg.get(key) not in (None, False, 0, 0.0):
            raise ModelFormatError(f"compiled optimizer '{kind}': option "
                                   f"{key}={cfg[key]!r} is not supported")
    rate = cfg.get("learning_rate", 0.001)
    if isinstance(rate, dict):
        raise ModelFormatError(f"compiled optimizer '{kind}': a learning-rate schedule "
                               f"({rate.get('class_name')}) is not carried over")
    kwargs = {k: cfg[k] for k in options if k in cfg}
    kwargs |= {k: cfg[k] for k in ("clipnorm", "global_clipnorm", "clipvalue")
               if cfg.get(k) is not None}
    if kind == "AdamW" and cfg.get("weight_decay") is not None:
        kwargs["weight_decay"] = cfg["weight_decay"]
    elif cfg.get("weight_decay"):
        if kind != "Adam":
            raise ModelFormatError(f"compiled optimizer '{kind}': option weight_decay is "
                                   "not supported")
        kwargs["weight_decay"] = cfg["weight_decay"]
    optimizer = cls(float(rate), **kwargs)
    if state:
        _restore_state(optimizer, kind, kinds, interleaved, trainable, state, names)
    return optimizer


def _restore_state(optimizer: optimizers.Optimizer, kind: str, kinds: tuple[str, ...],
                   interleaved: bool, trainable: list[Variable], state: list[np.ndarray],
                   names: list[str]) -> None:
    """Put the saved iteration, learning rate and slots into ``optimizer``'s variables."""
    arrays = list(state)
    has_rate = not names or any(n.split("/")[-1].startswith("learning_rate") for n in names)
    iteration = arrays.pop(0)
    rate = arrays.pop(0) if has_rate else None
    if kind in ("SGD", "RMSprop") and not optimizer.momentum:
        kinds = tuple(k for k in kinds if k not in ("m", "momentum"))
    if len(arrays) != len(kinds) * len(trainable):
        raise ModelFormatError(f"the saved {kind} state holds {len(arrays)} slots; the "
                               f"model's {len(trainable)} trainable variables need "
                               f"{len(kinds) * len(trainable)} ({', '.join(kinds) or 'none'})")
    optimizer.iterations.initial_value = np.asarray(iteration, np.int64).reshape(())
    if rate is not None:
        optimizer.learning_rate.initial_value = np.asarray(rate, np.float32).reshape(())
    for i, var in enumerate(trainable):
        for j, slot_kind in enumerate(kinds):
            at = i * len(kinds) + j if interleaved else j * len(trainable) + i
            saved = arrays[at]
            if tuple(saved.shape) != tuple(var.shape):
                raise ModelFormatError(f"the saved {kind} slot {at} is "
                                       f"{list(saved.shape)}; variable '{var.name}' is "
                                       f"{list(var.shape)}")
            optimizer.slot(var, slot_kind).initial_value = np.asarray(saved, var.dtype)


def read_compiled(config: dict, output_names: list[str], trainable: list[Variable],
             state: list[np.ndarray], state_names: list[str]) -> Compiled | None:
    """The file's compiled setup, or ``None`` when the model was saved uncompiled."""
    setup = config.get("compile_config") or config.get("training_config")
    if not setup:
        return None
    loss = setup.get("loss")
    if loss is None:
        raise ModelFormatError("the model was compiled without a loss")
    per = [_loss(s) for s in _per_output(loss, output_names, "loss")]
    weights = setup.get("loss_weights")
    weights = [1.0] * len(per) if weights is None else \
        [float(w) for w in _per_output(weights, output_names, "loss_weights")]
    spec = setup.get("optimizer") or setup.get("optimizer_config")
    if isinstance(spec, str):
        spec = {"class_name": {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "lion": "Lion",
                               "rmsprop": "RMSprop", "adagrad": "Adagrad"}.get(spec.lower(),
                                                                               spec),
                "config": {}}
    optimizer = _optimizer(spec, trainable, state, state_names) if spec else None
    return Compiled(per, weights, optimizer)
