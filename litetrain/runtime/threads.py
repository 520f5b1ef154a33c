"""``num_threads``: the BLAS thread count NumPy uses while an interpreter runs.

Nearly all of a step's time is in BLAS matmuls, so BLAS's pool is the thread count that
matters. threadpoolctl finds the BLAS libraries NumPy loaded (OpenBLAS, MKL, BLIS);
the count is set on entry and restored on exit, so other code in the process is not
affected. Entering and leaving costs a few microseconds (the count is read once).

The count is process-wide state, not per thread. When interpreters run concurrently in
several threads, the first one to start a run sets the count, later ones run with it
(changing the pool while another thread is inside a BLAS call is unsafe in OpenBLAS,
and OpenBLAS ignores the count for calls made from non-main threads while another call
runs), and the process's own count is restored when the last concurrent run ends. So
``num_threads`` is exact for one interpreter at a time and a best-effort cap under
concurrency; results are correct either way (every kernel is a pure function).
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from functools import cache

_NO_LIMIT = nullcontext()
_LOCK = threading.Lock()
_active = 0  # runs inside _limited right now, in any thread
_original: list[int] = []  # the counts before the first of them started
_owner: int | None = None  # the thread that may change the count (the first to enter)
_stack: list[list[int]] = []  # the owner's nested runs: the counts to go back to


@cache
def _blas_libraries() -> tuple:
    from threadpoolctl import ThreadpoolController

    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


def blas_threads(n: int | None):
    """A context running its body with ``n`` BLAS threads (``None``: as they are)."""
    return _NO_LIMIT if n is None else _Limited(n)


def _set(libs, counts, known=None) -> None:
    """Set each library's count; ``known`` (the counts right now, when the caller has
    just read them) saves asking the libraries again."""
    for k, (lib, n) in enumerate(zip(libs, counts, strict=True)):
        now = lib.get_num_threads() if known is None else known[k]
        if now != n:
            lib.set_num_threads(n)


class _Limited:
    """The context :func:`blas_threads` returns for a count (a plain class: this runs on
    every invoke, and a generator-based context costs more)."""

    __slots__ = ("n", "owner")

    def __init__(self, n: int):
        self.n = n

    def __enter__(self) -> None:
        global _active, _owner
        libs = _blas_libraries()
        me = threading.get_ident()
        with _LOCK:
            now = None
            if _active == 0:
                now = [lib.get_num_threads() for lib in libs]
                _owner, _original[:] = me, now
            owner = self.owner = me == _owner
            if owner:  # nested runs in the owning thread set and restore as a stack
                if now is None:
                    now = [lib.get_num_threads() for lib in libs]
                _stack.append(now)
                _set(libs, [self.n] * len(libs), now)
            _active += 1

    def __exit__(self, *exc) -> bool:
        global _active, _owner
        libs = _blas_libraries()
        with _LOCK:
            _active -= 1
            # the count during the run is the owner's n (kernels never change it): no
            # need to ask the libraries again (each question costs microseconds)
            during = [self.n] * len(libs) if self.owner else None
            if self.owner:
                previous = _stack.pop()
                if _stack:
                    _set(libs, previous, during)
                elif _active:
                    _owner = None  # others still run: leave the count alone until they end
            if _active == 0:
                _owner = None
                _stack.clear()
                _set(libs, _original, during)
        return False


def current_blas_threads() -> int | None:
    """The thread count of NumPy's BLAS right now (``None`` if none was found)."""
    libs = _blas_libraries()
    return libs[0].get_num_threads() if libs else None
