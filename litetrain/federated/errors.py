"""The error federated learning raises on purpose (part of the ``LitetrainError`` family)."""

from __future__ import annotations

from ..errors import LitetrainError


class FederatedError(LitetrainError, ValueError):
    """A federated run cannot go on as configured: the model lacks a signature it needs, a
    node's data does not fit the model, weights do not match, or a strategy is set up so
    that it could never start (says what was expected, what came, and where)."""
