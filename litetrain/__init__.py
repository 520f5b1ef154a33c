"""litetrain: on-device training for ``.tflite`` models, in Python, on NumPy.

Public API: :class:`Interpreter` (drop-in for ``tf.lite.Interpreter``, with training
signatures, resource variables and Flex training ops), ``read_model``, authoring
(:class:`Module`, :func:`signature`, :class:`TensorSpec`, :class:`Variable`,
:class:`GradientTape`, ``nn``, ``losses``, ``optimizers``), training runs
(:class:`TrainingSession`, ``workflow``), data sets (``data``), and the error family rooted
at :class:`LitetrainError`.
"""

from importlib import import_module

from . import checkpoint
from . import ops as _ops  # noqa: F401  (registers the op table)
from ._version import __version__
from .errors import (
    CheckpointError,
    InvokeError,
    LitetrainError,
    ModelFormatError,
    SignatureError,
    TraceError,
    UnsupportedOpError,
    VariableError,
)
from .ops.resolver import OpResolverType
from .quantize import quantize  # eager: the name is also a subpackage's
from .runtime.interpreter import Interpreter
from .tflite.reader import read_model

# Authoring loads on first use: a device process that only runs a model should not pay its
# import time (it is most of a cold start's budget).
_LAZY = {
    "GradientTape": ("litetrain.author.autodiff", "GradientTape"),
    "Module": ("litetrain.author.module", "Module"),
    "TensorSpec": ("litetrain.author.module", "TensorSpec"),
    "TrainingError": ("litetrain.workflow.session", "TrainingError"),
    "TrainingSession": ("litetrain.workflow.session", "TrainingSession"),
    "Variable": ("litetrain.author.module", "Variable"),
    "convert": ("litetrain.author.export", "convert"),
    "data": ("litetrain.data", None),
    "losses": ("litetrain.author.losses", None),
    "nn": ("litetrain.author.nn", None),
    "optimizers": ("litetrain.author.optimizers", None),
    "regularizers": ("litetrain.author.regularizers", None),
    "restore": ("litetrain.author.io", "restore"),
    "save": ("litetrain.author.io", "save"),
    "signature": ("litetrain.author.module", "signature"),
    "trainable": ("litetrain.author.trainable", "trainable"),
    "transfer": ("litetrain.author.transfer", "transfer"),
    "workflow": ("litetrain.workflow", None),
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'litetrain' has no attribute '{name}'")
    module, attr = _LAZY[name]
    value = import_module(module) if attr is None else getattr(import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "CheckpointError",
    "GradientTape",
    "Interpreter",
    "InvokeError",
    "LitetrainError",
    "ModelFormatError",
    "Module",
    "OpResolverType",
    "SignatureError",
    "TensorSpec",
    "TraceError",
    "TrainingError",
    "TrainingSession",
    "UnsupportedOpError",
    "Variable",
    "VariableError",
    "__version__",
    "checkpoint",
    "convert",
    "data",
    "losses",
    "nn",
    "optimizers",
    "quantize",
    "read_model",
    "regularizers",
    "restore",
    "save",
    "signature",
    "trainable",
    "transfer",
    "workflow",
]
