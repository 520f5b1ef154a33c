"""Optional compiled kernels (the ``[fast]`` extra: numba) for the few hot float kernels
NumPy cannot run near the machine's speed.

Each compiled kernel is named like the NumPy reference kernel it replaces and computes
the same values bit for bit (same operations in the same order, no fast-math, no fused
multiply-add), so a plan's results do not depend on whether the extra is installed. The
NumPy kernels stay the default and the reference in tests.

Nothing here imports numba until a prepare asks for a compiled kernel (``import
litetrain`` never pays for it); functions are compiled on first use and cached on disk
(``cache=True``). ``LITETRAIN_JIT=0`` in the environment turns the compiled kernels off.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType


@functools.cache
def kernels(family: str) -> ModuleType | None:
    """The compiled kernels of one op family (e.g. ``"conv"``), or ``None`` when numba is
    not installed or ``LITETRAIN_JIT=0``."""
    if os.environ.get("LITETRAIN_JIT", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        import numba  # noqa: F401
    except ImportError:
        return None
    if family == "conv":
        from . import conv
        return conv
    raise ValueError(f"no compiled kernels for op family {family!r}")
