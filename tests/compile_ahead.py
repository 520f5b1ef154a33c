"""Compile the ``[fast]`` kernel families in two other processes while the tests run.

numba keeps compiled kernels in a disk cache, so a family compiles once per machine; on a
fresh checkout (CI) that is minutes of CPU, which the suite used to spend on one core
while collecting (test modules waited for their families at import). Now collection
compiles nothing (``needs_kernels`` waits when a test runs), and at the start of the
session two child processes import every family, each its own lane in the order the
tests first need them, saying which are in the disk cache as they go. A family the test
process loads meanwhile (``litetrain.ops.fast.Loader``) waits until a child has it there
and then only reads it, so nothing is compiled twice. With a warm cache the children just
load everything (a second or two). Nothing runs when numba is absent or
``LITETRAIN_JIT=0``.
"""

from __future__ import annotations

import subprocess
import sys
import threading

# Two children, each compiling its families in order; "@family" waits until the other
# child has that one (a family imports those it calls: compiling a dependency twice would
# waste the time this saves). The first lane is what the early tests need (tests/author,
# tests/ops), the second the 8-bit ones (tests/quantized); families named in neither (a
# new one) go at the end of the first.
LANES = (("activations", "reduce", "conv", "@xnnpack", "gemm", "@blas", "float_program",
          "hybrid"),
         ("xnnpack", "int8", "vnni", "train", "rnn", "blas", "@gemm", "int8_program",
          "filter_grad", "transpose_conv", "bnorm", "dwgrad"))
# A family is loaded in-process anyway after this long (a child is stuck or slow).
PATIENCE_S = 900.0

_CHILD = """
import importlib, sys
from litetrain.ops.fast import FAMILIES
said, known = set(), set()
for item in sys.argv[1:]:
    if item.startswith("@"):  # the other child's: wait until it has it in the cache
        while item[1:] not in known:
            line = sys.stdin.readline()
            if not line:
                break
            known.add(line.strip())
        continue
    try:
        importlib.import_module("litetrain.ops.fast." + item)
    except Exception:
        pass  # the test process finds out for itself
    for done in FAMILIES:
        if done not in said and "litetrain.ops.fast." + done in sys.modules:
            said.add(done)
            print(done, flush=True)
"""


class CompileAhead:
    """The children and one event per family (set once it is in the disk cache)."""

    def __init__(self) -> None:
        from litetrain.ops.fast import FAMILIES, Loader

        self.ready = {family: threading.Event() for family in FAMILIES}
        named = {item.lstrip("@") for lane in LANES for item in lane}
        lanes = [LANES[0] + tuple(f for f in FAMILIES if f not in named), *LANES[1:]]
        self.children = [subprocess.Popen([sys.executable, "-c", _CHILD, *lane],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, text=True)
                         for lane in lanes]
        self._running = len(self.children)
        self._lock = threading.Lock()
        for child in self.children:
            threading.Thread(target=self._listen, args=(child,), name="compile-ahead",
                             daemon=True).start()
        load, ready = Loader._load, self.ready

        def load_when_cached(loader: Loader) -> None:
            ready[loader.family].wait(PATIENCE_S)
            load(loader)

        Loader._load = load_when_cached

    def _listen(self, child: subprocess.Popen) -> None:
        """Pass on what ``child`` has compiled (to the tests and to the other children)."""
        assert child.stdout is not None
        for line in child.stdout:
            event = self.ready.get(line.strip())
            if event is not None:
                event.set()
            for other in self.children:
                if other is not child and other.poll() is None:
                    try:
                        other.stdin.write(line)
                        other.stdin.flush()
                    except OSError:  # it has just ended
                        pass
        with self._lock:
            self._running -= 1
            if self._running == 0:  # every child ended (or failed): stop waiting
                for event in self.ready.values():
                    event.set()

    def stop(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait()


def start() -> CompileAhead | None:
    """The compiling child, or ``None`` when compiled kernels are off or unavailable.
    Call it before any loader exists (a loader binds its loading function when made)."""
    from litetrain.ops.fast import enabled

    return CompileAhead() if enabled() else None
