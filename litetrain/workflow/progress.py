"""A dependency-free progress bar for long loops (redrawn in place on a terminal, one line
per finished bar elsewhere, so CI logs stay short)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``with Progress(total, "pre-train") as bar: bar.update(loss=0.3)``."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None,
                 enabled: bool = True, width: int = 24):
        self.total, self.label, self.width = max(int(total), 1), label, width
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.live = enabled and getattr(self.stream, "isatty", lambda: False)()
        self.done, self.info, self.start = 0, "", time.perf_counter()
        self._last_draw = 0.0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1, **info: float) -> None:
        self.done = min(self.done + n, self.total)
        if info:
            self.info = " ".join(f"{k} {v:.4f}" for k, v in info.items())
        now = time.perf_counter()
        if self.live and (now - self._last_draw > 0.1 or self.done == self.total):
            self._last_draw = now
            self.stream.write("\r" + self._line())
            self.stream.flush()

    def _line(self) -> str:
        filled = round(self.width * self.done / self.total)
        secs = time.perf_counter() - self.start
        return (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                f"{self.done}/{self.total} {secs:5.1f}s {self.info}")

    def close(self) -> None:
        if not self.enabled:
            return
        self.stream.write(("\r" if self.live else "") + self._line() + "\n")
        self.stream.flush()
        self.enabled = False
