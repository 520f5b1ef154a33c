"""The recurrent rewrites (``litetrain/runtime/rnn_fusion.py``) measured side by side:
the exported LSTM and GRU train steps of ``cnn_training.py`` (64 units, 16 steps of 32
features, batch 32, SGD) with the rewrites, without them, and ai-edge-litert on the same
file, one thread each; interleaved rounds, medians of per-round ratios of thread CPU
time (which a loaded machine disturbs far less than wall time).

    python benchmarks/recurrent_rewrites.py [--rounds N] [--repeats N] [--model lstm|gru]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks")]

from cnn_training import _data, _runner, exported  # noqa: E402

import litetrain as lt  # noqa: E402
from litetrain.runtime import simplify  # noqa: E402

try:
    from ai_edge_litert.interpreter import Interpreter as LiteRT
except ImportError:
    LiteRT = None


def _cpu(fn, repeats: int) -> float:
    t0 = time.thread_time()
    for _ in range(repeats):
        fn()
    return (time.thread_time() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--model", action="append", choices=["lstm", "gru"])
    args = ap.parse_args()
    for name in args.model or ["lstm", "gru"]:
        model, content = exported(name)
        x, y = _data(model, 32)
        feeds = {"x": x, "y": y}
        new = _runner(lt.Interpreter(model_content=content, num_threads=1), feeds)
        original = simplify.fuse_recurrent_steps
        simplify.fuse_recurrent_steps = lambda steps, values, outputs: steps
        try:
            old = _runner(lt.Interpreter(model_content=content, num_threads=1), feeds)
        finally:
            simplify.fuse_recurrent_steps = original
        candidates = {"without": old, "with": new}
        if LiteRT is not None:
            it = LiteRT(model_content=content, num_threads=1)
            run = it.get_signature_runner("train")
            candidates["litert"] = lambda run=run, x=x, y=y: run(x=x, y=y)
        times = {k: [] for k in candidates}
        for _ in range(args.rounds):
            for k, fn in candidates.items():
                times[k].append(_cpu(fn, args.repeats))
        ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        ratio = {k: statistics.median(a / b for a, b in zip(v, times["with"], strict=True))
                 for k, v in times.items()}
        print(f"{name}: " + ", ".join(f"{k} {ms[k]:.2f} ms CPU ({ratio[k]:.2f}x with)"
                                      for k in candidates))


if __name__ == "__main__":
    main()
