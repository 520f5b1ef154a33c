"""Optional compiled kernels (the ``[fast]`` extra: numba) for the few hot float kernels
NumPy cannot run near the machine's speed.

Each compiled kernel is named like the NumPy reference kernel it replaces and computes
the same values bit for bit (same operations in the same order, no fast-math), so results
never depend on whether, or since when, it is used. A fused multiply-add appears only
where the reference's own order has one: the ``xnnpack`` family reproduces XNNPACK's FMA
kernels (the NumPy form emulates them exactly), and the ``gemm`` family OpenBLAS's
sgemm, adopted per GEMM shape only after a bit-pattern check against BLAS itself
(:mod:`litetrain.ops.conv_exact`). The NumPy kernels stay the default and the reference
in tests.

Loading costs about a second (importing numba, loading the machine code cached on disk
by ``cache=True``; compiling it the first time ever takes longer), so it never happens on
``import litetrain`` and never blocks a run: a node whose prepare chose compiled kernels
starts loading them on a background thread when it runs for the second time (a one-shot
run, i.e. the cold start, never pays for it), and uses them once they are there (NumPy
until then). ``LITETRAIN_JIT=0`` in the environment turns them off.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import threading
from types import ModuleType

FAMILIES = ("conv", "activations", "reduce", "int8", "hybrid", "train", "xnnpack", "gemm",
            "int8_program", "vnni", "blas", "float_program", "rnn", "filter_grad", "transpose_conv",
            "bnorm", "dwgrad")


class Loader:
    """One family's compiled kernels, loaded on a background thread once :meth:`start`
    is called. ``module`` is ``None`` until they are ready (and stays so if loading
    failed: ``error`` says why)."""

    def __init__(self, family: str):
        self.family = family
        self.module: ModuleType | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, name=f"litetrain-jit-{family}",
                                        daemon=True)
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                self._thread.start()

    def _load(self) -> None:
        try:
            self.module = importlib.import_module(f"{__name__}.{self.family}")
        except Exception as e:  # numba broken or too old: NumPy keeps running everything
            self.error = e

    def wait(self, timeout: float | None = None) -> ModuleType | None:
        """Start loading if needed; the kernels' module once loaded (``None`` on failure
        or timeout)."""
        self.start()
        self._thread.join(timeout)
        return self.module


@functools.cache
def kernels(family: str) -> Loader | None:
    """The (one) loader of an op family's compiled kernels, or ``None`` when numba is not
    installed or ``LITETRAIN_JIT=0``."""
    if family not in FAMILIES:
        raise ValueError(f"no compiled kernels for op family {family!r}")
    return Loader(family) if enabled() else None


def enabled() -> bool:
    """Whether compiled kernels may be used: numba is installed and ``LITETRAIN_JIT`` does
    not turn them off."""
    if os.environ.get("LITETRAIN_JIT", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return importlib.util.find_spec("numba") is not None


class WithKernels(dict):
    """A node's settings when its prepare chose compiled kernels: the node's attrs (every
    reader of attrs works unchanged) plus the family's loader."""

    def __init__(self, attrs, loader: Loader):
        super().__init__(attrs)
        self.loader = loader
        self.runs = 0

    def ready(self) -> ModuleType | None:
        """The compiled kernels if loaded; the node's second run starts loading them."""
        module = self.loader.module
        if module is None:
            self.runs += 1
            if self.runs == 2:
                self.loader.start()
        return module
