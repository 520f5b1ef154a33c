"""One exception family for everything litetrain raises on purpose.

Every message says what was expected, what was found, and where (file, signature,
node index and op name, tensor name and shape), so a user can act on it without a
debugger. Catch ``LitetrainError`` to handle them all.
"""

from __future__ import annotations

import traceback
from pathlib import Path

_PACKAGE_DIR = str(Path(__file__).resolve().parent)


class LitetrainError(Exception):
    """Base class of every error litetrain raises deliberately."""


class ModelFormatError(LitetrainError, ValueError):
    """The model bytes are not a valid ``.tflite`` FlatBuffer, or the graph is inconsistent."""


class UnsupportedOpError(LitetrainError, NotImplementedError):
    """The model uses an op (builtin, custom or Flex) that has no kernel here."""


class SignatureError(LitetrainError, ValueError):
    """A signature was asked for or called with inputs that do not fit it."""


class InvokeError(LitetrainError, RuntimeError):
    """A kernel failed while running a subgraph (names the node, op and input shapes)."""


class VariableError(LitetrainError, RuntimeError):
    """A resource variable was read before being assigned, or assigned inconsistently."""


class CheckpointError(LitetrainError, ValueError):
    """A checkpoint file is missing, corrupt, foreign, or does not match the model."""


class DatasetError(LitetrainError, OSError):
    """A data set could not be found, downloaded, verified or parsed (says how to fix it)."""


class FederatedError(LitetrainError, ValueError):
    """A federated run cannot go on as configured: the model lacks a signature it needs, a
    node's data does not fit the model, weights do not match, or a strategy is set up so
    that it could never start (says what was expected, what came, and where)."""


class TraceError(LitetrainError, ValueError):
    """Traced Python code did something that cannot become a graph (or be differentiated,
    or exported); the message names the user's line."""


def user_frame() -> str:
    """``file:line`` of the innermost stack frame outside litetrain (the user's code)."""
    for frame in reversed(traceback.extract_stack()):
        if not frame.filename.startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno}"
    return "<unknown>"
