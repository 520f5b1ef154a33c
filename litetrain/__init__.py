"""litetrain: on-device training for ``.tflite`` models, in Python, on NumPy.

Public API: :class:`Interpreter` (drop-in for ``tf.lite.Interpreter``, with training
signatures, resource variables and Flex training ops), ``read_model``, and the error
family rooted at :class:`LitetrainError`.
"""

from . import ops as _ops  # noqa: F401  (registers the op table)
from .errors import (
    CheckpointError,
    InvokeError,
    LitetrainError,
    ModelFormatError,
    SignatureError,
    UnsupportedOpError,
    VariableError,
)
from .runtime.interpreter import Interpreter
from .tflite.reader import read_model

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "Interpreter",
    "InvokeError",
    "LitetrainError",
    "ModelFormatError",
    "SignatureError",
    "UnsupportedOpError",
    "VariableError",
    "__version__",
    "read_model",
]
