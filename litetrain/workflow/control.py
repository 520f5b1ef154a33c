"""What a session needs from the process around it: a clock that leaves pauses out,
Ctrl-C turned into "stop after this step", Ctrl-C ignored while a file is being saved, and
a check that a folder can be written before any training time is spent.

Why Ctrl-C never raises inside a step: a ``KeyboardInterrupt`` landing between a step's
update and the session's step counter would make the next snapshot one step off, and the
resume inexact. Steps are short; ``kill -9`` is always safe (the last snapshot stays).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path


class Clock:
    """Training seconds, pauses excluded."""

    def __init__(self) -> None:
        self.start, self.paused_for = time.perf_counter(), 0.0

    def seconds(self) -> float:
        return time.perf_counter() - self.start - self.paused_for

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.paused_for += time.perf_counter() - t0


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def sigint_stops(stop: Callable[[], None]) -> Iterator[None]:
    """In the main thread, while the default handler is in place: Ctrl-C calls ``stop``
    (the loop ends after the current step and saves); repeated Ctrl-Cs only say so."""
    if not _main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    count = 0

    def handler(signum, frame) -> None:
        nonlocal count
        count += 1
        if count > 1:
            print("litetrain: stopping after this step and saving (kill -9 is safe too: "
                  "the last snapshot stays)", file=sys.stderr)
        stop()

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Ctrl-C while a file is being written is ignored until it is on disk."""
    if not _main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def folder_problem(path: str | os.PathLike) -> str | None:
    """Why ``path``'s folder cannot take a new file (``None`` if it can)."""
    folder = Path(path).parent
    if not folder.is_dir():
        return f"folder '{folder}' does not exist"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        return f"cannot write in folder '{folder}' ({e.strerror or e})"
    return None
