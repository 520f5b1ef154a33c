"""Progress bars for long loops, drawn by ``tqdm`` (imported on first use, so ``import
litetrain`` stays fast). Disabled bars cost nothing and import nothing."""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    """``with Progress(total, "pre-train") as bar: bar.update(loss=0.3)``."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None,
                 enabled: bool = True, initial: int = 0):
        self.enabled = enabled
        self._bar = None
        if enabled:
            from tqdm import tqdm

            stream = stream if stream is not None else sys.stderr
            live = getattr(stream, "isatty", lambda: False)()
            # Off a terminal (CI logs, pipes) redraw rarely, so logs stay short.
            self._bar = tqdm(total=max(int(total), 1), initial=min(initial, total),
                             desc=label, file=stream, unit="step", dynamic_ncols=True,
                             mininterval=0.1 if live else 30.0, leave=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1, **info: float) -> None:
        if self._bar is None:
            return
        if info:
            self._bar.set_postfix({k: f"{v:.4f}" for k, v in info.items()}, refresh=False)
        self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
