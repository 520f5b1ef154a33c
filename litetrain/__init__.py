"""litetrain: on-device training for ``.tflite`` models, in Python, on NumPy.

Public API: :class:`Interpreter` (drop-in for ``tf.lite.Interpreter``, with training
signatures, resource variables and Flex training ops), ``read_model``, authoring
(:class:`Module`, :func:`signature`, :class:`TensorSpec`, :class:`Variable`,
:class:`GradientTape`, ``nn``, ``losses``, ``optimizers``), and the error family rooted at
:class:`LitetrainError`.
"""

from . import checkpoint
from . import ops as _ops  # noqa: F401  (registers the op table)
from ._version import __version__
from .author import losses, nn, optimizers
from .author.autodiff import GradientTape
from .author.export import convert
from .author.graph import TraceError
from .author.io import restore, save
from .author.module import Module, TensorSpec, Variable, signature
from .author.trainable import trainable
from .errors import (
    CheckpointError,
    InvokeError,
    LitetrainError,
    ModelFormatError,
    SignatureError,
    UnsupportedOpError,
    VariableError,
)
from .quantize import quantize
from .runtime.interpreter import Interpreter
from .tflite.reader import read_model

__all__ = [
    "CheckpointError",
    "GradientTape",
    "Interpreter",
    "InvokeError",
    "LitetrainError",
    "ModelFormatError",
    "Module",
    "SignatureError",
    "TensorSpec",
    "TraceError",
    "UnsupportedOpError",
    "Variable",
    "VariableError",
    "__version__",
    "checkpoint",
    "convert",
    "losses",
    "nn",
    "optimizers",
    "quantize",
    "read_model",
    "restore",
    "save",
    "signature",
    "trainable",
]
