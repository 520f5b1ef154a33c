"""What glibc's heap trimming costs a CNN train step: the ``cnn_training.py`` CNN's step
run in child processes that alternate between the default allocator and one that keeps
freed memory (``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456``).

With the default, freeing the step's 2 MB arrays often left more than the trim
threshold free at the top of the heap, so glibc gave it back to the OS and the next
step faulted it in again, page by page (some 4,400 faults a step); the plan now writes
such results into buffers it keeps (``litetrain/runtime/arena.py``), and this checks that
the allocator setting no longer matters (a ratio near 1, a few faults a step). Per round
and setting: process CPU time per step, minor page faults per step, and peak RSS; then
the median over rounds of the CPU-time ratio (allocator settings are per process, so
rounds alternate processes).

    python benchmarks/page_faults.py [--rounds N] [--model cnn|lstm|gru]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEEP = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "268435456"}


def child(name: str, steps: int = 20) -> dict:
    """One process: the model's train step, warmed up, then ``steps`` timed steps."""
    sys.path[:0] = [str(ROOT / "benchmarks")]
    import cnn_training as ct

    import litetrain as lt
    from litetrain.ops.fast import kernels

    model, content = ct.exported(name)
    x, y = ct._data(model, ct.BATCH)
    run = lt.Interpreter(model_content=content, num_threads=1).get_signature_runner("train")
    for _ in range(3):
        run(x=x, y=y)
    if kernels("train") is not None:
        kernels("train").wait()
    before, cpu = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
    for _ in range(steps):
        run(x=x, y=y)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu_ms": (time.process_time() - cpu) / steps * 1e3,
            "faults": (after.ru_minflt - before.ru_minflt) / steps,
            "peak_mb": after.ru_maxrss / 1024}


def measure(name: str, keep: bool) -> dict:
    env = {**os.environ, **(KEEP if keep else {})}
    out = subprocess.run([sys.executable, __file__, "--child", name], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--model", default="cnn", choices=["cnn", "lstm", "gru"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    ratios = []
    for r in range(args.rounds):
        default, kept = measure(args.model, False), measure(args.model, True)
        ratios.append(default["cpu_ms"] / kept["cpu_ms"])
        print(f"round {r + 1}: default {default['cpu_ms']:.2f} ms/step "
              f"{default['faults']:.0f} faults/step {default['peak_mb']:.1f} MB peak; "
              f"memory kept {kept['cpu_ms']:.2f} ms/step {kept['faults']:.0f} faults/step "
              f"{kept['peak_mb']:.1f} MB peak; ratio {ratios[-1]:.2f}")
    ratios.sort()
    print(f"{args.model}: CPU time per step, default / memory kept: median "
          f"{ratios[len(ratios) // 2]:.2f} (range {ratios[0]:.2f}-{ratios[-1]:.2f}) over "
          f"{args.rounds} alternating pairs of processes")


if __name__ == "__main__":
    main()
