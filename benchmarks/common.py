"""Timing helpers: every figure is measured in interleaved rounds beside its peers.

This machine's speed drifts by 2x within a minute, so two numbers taken a minute apart
cannot be compared; numbers taken in the same round can. :func:`interleaved` times each
candidate in turn, round after round, and ratios are taken within a round.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import litetrain

# The TensorFlow-made float MobileNets the convnet kernel benchmarks run.
FLOAT_MOBILENETS = {
    m: Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "tf_quantized" / m
    / "float.tflite" for m in ("mobilenet_v2_035", "mobilenet_v3_small")}


def samples(fn: Callable[[], object], repeats: int, warmup: int = 2) -> list[float]:
    """Wall times in seconds of ``repeats`` calls of ``fn`` after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def interleaved(candidates: dict[str, Callable[[], object]], reference: str,
                rounds: int = 7, repeats: int = 20) -> dict[str, dict]:
    """Time each candidate in alternating rounds.

    Per candidate: ``median_ms``/``p90_ms`` over all calls and, for all but the reference,
    ``ratio`` = the median over rounds of (reference's round median / candidate's round
    median), i.e. how many times the candidate's time the reference takes, with its range.
    """
    per_round: dict[str, list[float]] = {k: [] for k in candidates}
    every: dict[str, list[float]] = {k: [] for k in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            t = samples(fn, repeats)
            per_round[name].append(float(np.median(t)))
            every[name] += t
    out = {}
    ref = np.array(per_round[reference])
    for name in candidates:
        allt = np.array(every[name]) * 1e3
        entry = {"median_ms": float(np.median(allt)), "p90_ms": float(np.percentile(allt, 90))}
        if name != reference:
            r = ref / np.array(per_round[name])
            entry.update(ratio=float(np.median(r)), ratio_min=float(r.min()),
                         ratio_max=float(r.max()))
        out[name] = entry
    return out


def sgemm_runner(shapes: list[tuple[int, int, int]]) -> Callable[[], None]:
    """A function doing these (m, k, n) float32 matmuls back to back with NumPy's BLAS
    into preallocated outputs: the machine's limit for work made of them. (Depth-1
    products go through ``np.dot``: ``np.matmul`` does not hand them to BLAS.)"""
    rng = np.random.default_rng(0)
    pairs = [(rng.random((m, k), np.float32), rng.random((k, n), np.float32))
             for m, k, n in shapes]
    out = [np.empty((m, n), np.float32) for m, _, n in shapes]

    def run():
        for (a, b), o in zip(pairs, out, strict=True):
            if a.shape[1] == 1:
                np.dot(a, b, out=o)
            else:
                np.matmul(a, b, out=o)
    return run


def table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table (also valid Markdown) of ``rows`` in ``columns``."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[k]) for row in cells)) for k, c in enumerate(columns)]
    def line(values):
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"
    return "\n".join([line(columns), line(["-" * w for w in widths]),
                      *(line(row) for row in cells)])


def cpu_ratios(old: Callable[[], object], new: Callable[[], object], rounds: int,
               repeats: int) -> tuple[float, float, float]:
    """``new``'s CPU time over ``old``'s, per round (each ``repeats`` calls, one after the
    other): (median, min, max)."""
    r = []
    for _ in range(rounds):
        t0 = time.thread_time()
        for _ in range(repeats):
            old()
        t1 = time.thread_time()
        for _ in range(repeats):
            new()
        t2 = time.thread_time()
        r.append((t2 - t1) / max(t1 - t0, 1e-9))
    return float(np.median(r)), min(r), max(r)


def warm_interpreter(path: Path, x: np.ndarray) -> litetrain.Interpreter:
    """A one-thread interpreter of ``path`` sized for ``x``, holding it, after three runs
    (the compiled kernels load and the nodes make their prepare-time choices)."""
    it = litetrain.Interpreter(model_path=str(path), num_threads=1)
    index = it.get_input_details()[0]["index"]
    it.resize_tensor_input(index, list(x.shape))
    it.allocate_tensors()
    it.set_tensor(index, x)
    for _ in range(3):
        it.invoke()
    return it


def require_kernels(*families: str) -> None:
    """Load these ``[fast]`` families (all of them when none are named), or exit saying
    the benchmark needs them."""
    from litetrain.ops import fast

    for family in families or fast.FAMILIES:
        loader = fast.kernels(family)
        if loader is None or loader.wait() is None:
            raise SystemExit("needs the [fast] extra (numba) and LITETRAIN_JIT not 0")
