"""Convnet inference: litetrain vs ai-edge-litert on the same float files (issue 15).

MobileNetV2-0.35 and MobileNetV3Small (96×96, TensorFlow-made, ``tests/fixtures/
tf_quantized``) at batch 1 and 32, with one thread and with the default count (the same
for both engines: litetrain's BLAS threads, LiteRT's ``num_threads``), timed in
interleaved rounds (:func:`common.interleaved`); and the peak RSS while MobileNetV2 runs
(a fresh process) against its bound: weights + the two largest activations.

    python benchmarks/convnets.py [--quick]   (--quick: one thread, fewer rounds, RSS with
                                               the NumPy kernels only)

Targets: ≤ 2× LiteRT at batch 1, ≤ 1.5× at batch 32; peak RSS ≤ 1.5× the bound.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import interleaved, table  # noqa: E402
from process import _STATUS  # noqa: E402

import litetrain  # noqa: E402
from litetrain.ops.fast import FAMILIES, kernels  # noqa: E402
from litetrain.runtime.threads import current_blas_threads  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "tf_quantized"
MODELS = {"MobileNetV2-0.35": FIXTURES / "mobilenet_v2_035" / "float.tflite",
          "MobileNetV3Small": FIXTURES / "mobilenet_v3_small" / "float.tflite"}
RSS_MODEL, RSS_BATCH = "MobileNetV2-0.35", 32

try:
    from ai_edge_litert.interpreter import Interpreter as LiteRT
except ImportError:  # the LiteRT column is left empty
    LiteRT = None


def _invoker(interpreter, x: np.ndarray):
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()  # per-shape preparation happens here
    interpreter.invoke()  # the second run starts loading the [fast] kernels, if installed
    if isinstance(interpreter, litetrain.Interpreter):
        for family in FAMILIES:  # time the steady state
            if kernels(family) is not None:
                kernels(family).wait()
    return interpreter.invoke


def cpu_ratio(candidates: dict, rounds: int, repeats: int) -> tuple[float, float, float]:
    """Median (min, max) over interleaved rounds of litetrain's / LiteRT's per-call CPU
    time of the process (one thread each: the call's own work, which other processes on a
    loaded machine disturb far less than wall time)."""
    ratios = []
    for _ in range(rounds):
        medians = {}
        for name, fn in candidates.items():
            fn()
            times = []
            for _ in range(repeats):
                t0 = time.process_time()
                fn()
                times.append(time.process_time() - t0)
            medians[name] = float(np.median(times))
        ratios.append(medians["litetrain"] / medians["ai-edge-litert"])
    return float(np.median(ratios)), min(ratios), max(ratios)


def latency_rows(batches: list[int], rounds: int, repeats: int,
                 thread_counts: set[int]) -> list[dict]:
    rows = []
    for name, path in MODELS.items():
        shape = litetrain.Interpreter(model_path=path).get_input_details()[0]["shape"][1:]
        for b in batches:
            x = np.random.default_rng(b).uniform(-1, 1, (b, *shape)).astype(np.float32)
            for threads in sorted(thread_counts):
                cands = {"litetrain": _invoker(
                    litetrain.Interpreter(model_path=path, num_threads=threads), x)}
                if LiteRT is not None:
                    cands["ai-edge-litert"] = _invoker(
                        LiteRT(model_path=str(path), num_threads=threads), x)
                r = interleaved(cands, "litetrain", rounds, repeats)
                row = {"model": name, "batch": b, "threads": threads,
                       "litetrain_ms": r["litetrain"]["median_ms"]}
                if "ai-edge-litert" in r:
                    row.update(litert_ms=r["ai-edge-litert"]["median_ms"],
                               x_litert=r["ai-edge-litert"]["ratio"],
                               x_litert_range=(r["ai-edge-litert"]["ratio_min"],
                                               r["ai-edge-litert"]["ratio_max"]))
                    if threads == 1:
                        cpu, lo, hi = cpu_ratio(cands, rounds, repeats)
                        row.update(x_litert_cpu=cpu, x_litert_cpu_range=(lo, hi))
                rows.append(row)
    return rows


_RSS = _STATUS + """
import json, numpy as np, litetrain
from litetrain.ops.fast import FAMILIES, kernels
x = np.random.default_rng(0).uniform(-1, 1, ({b}, 96, 96, 3)).astype(np.float32)
# With the [fast] kernels: numba, LLVM and the compiled code (~110 MB) are loaded first,
# so the peak counts the model's own allocations, as without them.
for family in FAMILIES:
    if kernels(family) is not None:
        kernels(family).wait()
baseline = status('VmRSS')
method = reset_peak()  # the peak (VmHWM) starts again from here
it = litetrain.Interpreter(model_path={path!r})
index = it.get_input_details()[0]['index']
it.resize_tensor_input(index, list(x.shape))
it.allocate_tensors()
it.set_tensor(index, x)
for _ in range(10):
    it.invoke()
peak = status('VmHWM')
sg = it.model.subgraphs[0]
weights = sum(t.data.nbytes for t in sg.tensors if t.data is not None)
# Every tensor a run computes (a second interpreter that keeps them all).
keep = litetrain.Interpreter(model_path={path!r}, experimental_preserve_all_tensors=True)
keep.resize_tensor_input(index, list(x.shape))
keep.allocate_tensors()
values = keep.run_subgraph(0, {{index: x}})
made = sorted((values[o].nbytes for n in sg.nodes for o in n.outputs
               if getattr(values[o], 'nbytes', None)), reverse=True)
print(json.dumps(dict(baseline=baseline, peak=peak, weights=weights,
                      two_largest=sum(made[:2]), method=method)))
"""


def peak_rss(name: str = RSS_MODEL, batch: int = RSS_BATCH, jit: bool = False) -> dict:
    """Peak RSS above the process's RSS before loading (imports done) while running
    ``name`` 10 times at ``batch``, and the bound: weights + the two largest activations.
    ``jit``: with the ``[fast]`` extra's compiled kernels (numba, LLVM and the kernels are
    loaded before the baseline is taken: what is measured is the model's allocations)."""
    env = {**os.environ, "LITETRAIN_JIT": "1" if jit else "0"}
    done = subprocess.run([sys.executable, "-c", _RSS.format(path=str(MODELS[name]), b=batch)],
                          capture_output=True, text=True, check=True, env=env)
    r = json.loads(done.stdout.strip().splitlines()[-1])
    r.update(model=name, batch=batch, kernels="[fast] (numba)" if jit else "NumPy",
             above_baseline=r["peak"] - r["baseline"], bound=r["weights"] + r["two_largest"])
    r["x_bound"] = r["above_baseline"] / r["bound"]
    return r


def run(quick: bool = False) -> dict:
    rounds, repeats = (2, 3) if quick else (7, 10)
    threads = {1} if quick else {1, current_blas_threads() or 1}
    jit = [False, True] if kernels("conv") is not None and not quick else [False]
    return {"latency": latency_rows([1, 32], rounds, repeats, threads),
            "peak_rss": [peak_rss(jit=j) for j in jit]}


def report(results: dict) -> str:
    def f(v, fmt="{:.2f}"):
        return "" if v is None else fmt.format(v)
    rows = [{"model": r["model"], "batch": r["batch"], "threads": r["threads"],
             "litetrain ms": f(r["litetrain_ms"], "{:.3f}"),
             "LiteRT ms": f(r.get("litert_ms"), "{:.3f}"), "× LiteRT": f(r.get("x_litert")),
             "× LiteRT (CPU)": f(r.get("x_litert_cpu"))}
            for r in results["latency"]]
    lines = ["Convnet inference (float files, litetrain vs ai-edge-litert, same threads):", "",
             table(rows, ["model", "batch", "threads", "litetrain ms", "LiteRT ms",
                          "× LiteRT", "× LiteRT (CPU)"]),
             "", "× LiteRT = litetrain's time / LiteRT's, median of per-round ratios (wall "
             "time; CPU: the process's CPU time, one thread); targets ≤ 2 at batch 1, "
             "≤ 1.5 at batch 32."]
    for p in results["peak_rss"]:
        lines.append(
            f"Peak RSS running {p['model']} (batch {p['batch']}, {p['kernels']} kernels): "
            f"{p['above_baseline'] / 1e6:.1f} MB above the process before loading; bound "
            f"weights {p['weights'] / 1e6:.1f} MB + two largest activations "
            f"{p['two_largest'] / 1e6:.1f} MB = {p['bound'] / 1e6:.1f} MB → "
            f"{p['x_bound']:.2f}× it (target ≤ 1.5).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args()
    print(report(run(args.quick)))


if __name__ == "__main__":
    main()
