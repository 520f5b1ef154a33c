"""The error federated learning raises on purpose (defined with the rest of the
``LitetrainError`` family in ``litetrain.errors``)."""

from __future__ import annotations

from ..errors import FederatedError

__all__ = ["FederatedError"]
