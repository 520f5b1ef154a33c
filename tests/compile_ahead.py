"""Compile the ``[fast]`` kernel families in a second process while the first tests run.

numba keeps compiled kernels in a disk cache, so a family compiles once per machine; on a
fresh checkout (CI) that is minutes of CPU, which the suite used to spend inside the
tests that first loaded a family, one family after another, on one core. Here a child
process imports every family once the tests are collected, in the order the tests first
need them, and says which are in the disk cache as it goes; a family the test process
loads meanwhile (``litetrain.ops.fast.Loader``) waits until the child has it there and
then only reads it, so nothing is compiled twice. With a warm cache the child just loads
everything (a second or two). Nothing changes when numba is absent or
``LITETRAIN_JIT=0``: then there is nothing to compile.
"""

from __future__ import annotations

import subprocess
import sys
import threading

# The order the suite first needs them in (tests/author, then ops, then quantized).
ORDER = ("activations", "reduce", "conv", "gemm", "train", "rnn", "blas", "float_program",
         "xnnpack", "int8", "hybrid", "vnni", "int8_program")
# A family is loaded in-process anyway after this long (the child is stuck or slow).
PATIENCE_S = 900.0

_CHILD = """
import importlib, sys
from litetrain.ops.fast import FAMILIES
said = set()
for family in sys.argv[1:] + [f for f in FAMILIES if f not in sys.argv[1:]]:
    try:
        importlib.import_module("litetrain.ops.fast." + family)
    except Exception:
        pass  # the test process finds out for itself
    for done in FAMILIES:
        if done not in said and "litetrain.ops.fast." + done in sys.modules:
            said.add(done)
            print(done, flush=True)
"""


class CompileAhead:
    """The child process and one event per family (set once it is in the disk cache)."""

    def __init__(self) -> None:
        from litetrain.ops.fast import FAMILIES, Loader

        self.ready = {family: threading.Event() for family in FAMILIES}
        self.child = subprocess.Popen([sys.executable, "-c", _CHILD, *ORDER],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True)
        threading.Thread(target=self._listen, name="compile-ahead", daemon=True).start()
        load, ready = Loader._load, self.ready

        def load_when_cached(loader: Loader) -> None:
            ready[loader.family].wait(PATIENCE_S)
            load(loader)

        Loader._load = load_when_cached

    def _listen(self) -> None:
        assert self.child.stdout is not None
        for line in self.child.stdout:
            event = self.ready.get(line.strip())
            if event is not None:
                event.set()
        for event in self.ready.values():  # the child ended (or failed): stop waiting
            event.set()

    def stop(self) -> None:
        if self.child.poll() is None:
            self.child.kill()
        self.child.wait()


def start() -> CompileAhead | None:
    """The compiling child, or ``None`` when compiled kernels are off or unavailable.
    Call it before any loader exists (a loader binds its loading function when made)."""
    from litetrain.ops.fast import enabled

    return CompileAhead() if enabled() else None
