"""Timing helpers: medians and p90s of repeated runs, measured side by side."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def timeit(fn: Callable[[], object], repeats: int = 30, warmup: int = 3,
           min_seconds: float = 0.0) -> dict[str, float]:
    """Median and p90 wall time of ``fn`` in seconds."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    arr = np.array(times)
    return {"median": float(np.median(arr)), "p90": float(np.percentile(arr, 90)),
            "runs": len(times)}


def side_by_side(ours: Callable[[], object], peer: Callable[[], object], rounds: int = 7,
                 repeats: int = 20) -> dict[str, float]:
    """Time ``ours`` and ``peer`` in alternating rounds; the median of per-round ratios is
    robust to the machine's speed drifting during the run."""
    a, b = [], []
    for _ in range(rounds):
        a.append(timeit(ours, repeats)["median"])
        b.append(timeit(peer, repeats)["median"])
    ratios = np.array(a) / np.array(b)
    return {"ours": float(np.median(a)), "peer": float(np.median(b)),
            "ratio": float(np.median(ratios)), "ratio_min": float(ratios.min()),
            "ratio_max": float(ratios.max())}


def sgemm_runner(shapes: list[tuple[int, int, int]]) -> Callable[[], None]:
    """A function doing these (m, k, n) float32 matmuls back to back with NumPy's BLAS:
    the machine's limit for work made of them."""
    rng = np.random.default_rng(0)
    pairs = [(rng.random((m, k), np.float32), rng.random((k, n), np.float32))
             for m, k, n in shapes]
    out = [np.empty((m, n), np.float32) for m, _, n in shapes]

    def run():
        for (a, b), o in zip(pairs, out, strict=True):
            np.matmul(a, b, out=o)
    return run


def table(rows: list[dict], columns: list[str]) -> str:
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in rows:
        lines.append("  ".join(str(r.get(c, "")).ljust(w)
                               for c, w in zip(columns, widths, strict=True)))
    return "\n".join(lines)
