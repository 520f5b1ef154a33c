"""One prepared node of a plan: its resolved kernel and everything invoke needs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np


@dataclass(frozen=True)
class Step:
    """``index`` is the node's position in its subgraph (used in error messages); ``op``
    names the op, or the fusion that replaced it (e.g. ``"batch_matmul+add"``).

    ``fresh`` is True when every output is a new array sharing no memory with the
    inputs, the constants or the variables: only such outputs may later be overwritten
    in place.
    """

    index: int
    op: str
    kernel: Callable
    stateful: bool
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    out_dtypes: tuple[np.dtype, ...]
    attrs: MappingProxyType
    fresh: bool = False
