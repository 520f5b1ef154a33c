"""``num_threads``: the BLAS thread count NumPy uses while an interpreter runs.

Nearly all of a step's time is in BLAS matmuls, so BLAS's pool is the thread count that
matters. threadpoolctl finds the BLAS libraries NumPy loaded (OpenBLAS, MKL, BLIS);
the count is set on entry and restored on exit, so other code in the process is not
affected. Setting it costs about a microsecond.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import cache

_NO_LIMIT = nullcontext()


@cache
def _blas_libraries() -> tuple:
    from threadpoolctl import ThreadpoolController

    return tuple(ThreadpoolController().select(user_api="blas").lib_controllers)


def blas_threads(n: int | None):
    """A context running its body with ``n`` BLAS threads (``None``: as they are)."""
    return _NO_LIMIT if n is None else _limited(n)


@contextmanager
def _limited(n: int) -> Iterator[None]:
    libs = _blas_libraries()
    before = [lib.get_num_threads() for lib in libs]
    for lib, was in zip(libs, before, strict=True):
        if was != n:
            lib.set_num_threads(n)
    try:
        yield
    finally:
        for lib, was in zip(libs, before, strict=True):
            if was != n:
                lib.set_num_threads(was)


def current_blas_threads() -> int | None:
    """The thread count of NumPy's BLAS right now (``None`` if none was found)."""
    libs = _blas_libraries()
    return libs[0].get_num_threads() if libs else None
