"""Latency and peak memory of a model's signatures over batch sizes ("measure training time
for a variety of inputs"). Each signature runs on a fresh interpreter from the same bytes,
so ``train`` steps never leak into another signature's numbers."""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass

import numpy as np

from ..errors import SignatureError
from ..runtime.interpreter import Interpreter


@dataclass
class BenchRow:
    signature: str
    batch: int
    median_ms: float
    p90_ms: float
    runs: int
    peak_mib: float  # peak Python/NumPy allocation during one call (tracemalloc)
    first_call_ms: float  # includes planning the signature for this input shape


def random_inputs(details: dict[str, dict], batch: int, rng: np.random.Generator
                  ) -> dict[str, np.ndarray] | None:
    """Plausible inputs for a signature: ``None`` if it takes strings (save/restore)."""
    feeds = {}
    for name, d in details.items():
        dtype = np.dtype(d["dtype"])
        if dtype.kind in "OSU":
            return None
        shape = [batch if i == 0 and s < 0 else (s if s > 0 else 1)
                 for i, s in enumerate(d["shape_signature"])]
        if dtype.kind == "f":
            feeds[name] = rng.random(shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[name] = rng.random(shape) > 0.5
        else:
            feeds[name] = rng.integers(0, 2, shape).astype(dtype)
    return feeds


def bench(model_content: bytes, signatures: list[str] | None = None,
          batch_sizes: tuple[int, ...] = (1, 32, 100), min_seconds: float = 0.3,
          min_runs: int = 5, max_runs: int = 200) -> list[BenchRow]:
    keys = list(Interpreter(model_content=model_content).get_signature_list())
    chosen = signatures or keys
    unknown = [s for s in chosen if s not in keys]
    if unknown:
        raise SignatureError(f"no signature {unknown}; the model has {keys}")
    if min(batch_sizes, default=0) < 1:
        raise ValueError(f"batch sizes must be >= 1, got {list(batch_sizes)}")
    rng = np.random.default_rng(0)
    rows = []
    for key in chosen:
        for batch in batch_sizes:
            runner = Interpreter(model_content=model_content).get_signature_runner(key)
            feeds = random_inputs(runner.get_input_details(), batch, rng)
            if feeds is None:
                if signatures:
                    raise SignatureError(f"signature '{key}' takes strings (a file path); "
                                         "bench times signatures with numeric inputs")
                break  # string inputs: file I/O signatures are not benchmarked
            t0 = time.perf_counter()
            runner(**feeds)
            first = time.perf_counter() - t0
            times: list[float] = []
            begin = time.perf_counter()
            while len(times) < max_runs and (len(times) < min_runs or
                                              time.perf_counter() - begin < min_seconds):
                t0 = time.perf_counter()
                runner(**feeds)
                times.append(time.perf_counter() - t0)
            tracemalloc.start()  # one more run, traced apart: tracing slows allocation
            try:
                runner(**feeds)
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            ms = np.array(times) * 1e3
            rows.append(BenchRow(key, batch, float(np.median(ms)), float(np.percentile(ms, 90)),
                                 len(times), peak / 2**20, first * 1e3))
    return rows


def format_rows(rows: list[BenchRow]) -> str:
    lines = [f"{'signature':<12} {'batch':>5} {'median ms':>10} {'p90 ms':>9} {'runs':>5} "
             f"{'peak MiB':>9} {'first ms':>9}"]
    lines += [f"{r.signature:<12} {r.batch:>5} {r.median_ms:>10.3f} {r.p90_ms:>9.3f} "
              f"{r.runs:>5} {r.peak_mib:>9.2f} {r.first_call_ms:>9.2f}" for r in rows]
    return "\n".join(lines)
