"""The one check a restore makes of each tensor before any variable is assigned."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import CheckpointError


def expect(tensors: Mapping[str, np.ndarray], name: str, dtype, shape: Sequence[int] | None,
           path: str) -> np.ndarray:
    """Checkpoint tensor ``name``, checked against what the model expects: present, of
    ``dtype``, and of ``shape`` (``-1`` dims match any size; ``None``: any shape)."""
    if name not in tensors:
        raise CheckpointError(f"checkpoint '{path}' has no tensor '{name}' (it has: "
                              f"{', '.join(sorted(tensors)) or 'none'})")
    value = tensors[name]
    if value.dtype != np.dtype(dtype):
        raise CheckpointError(f"checkpoint '{path}': tensor '{name}' is {value.dtype}, the "
                              f"model expects {np.dtype(dtype)}")
    if shape is not None and (len(shape) != value.ndim or any(
            s not in (-1, d) for s, d in zip(shape, value.shape, strict=True))):
        raise CheckpointError(f"checkpoint '{path}': tensor '{name}' has shape "
                              f"{list(value.shape)}, the model expects {list(shape)}")
    return value
