"""int8 inference with plan segments run as one compiled call each
(:mod:`litetrain.runtime.int8_program`) against the same steps one by one (its hook
turned off), interleaved in one run, both with the ``[fast]`` extra's kernels loaded.

    python benchmarks/int8_program.py [--batches 1 32] [--rounds 7]

Prints, per model and batch, each path's median time and ratio = per-step time /
program time (above 1: the program is faster). Read as rough on a shared machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import interleaved, require_kernels  # noqa: E402

import litetrain  # noqa: E402
from litetrain.runtime import plan  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "tf_quantized"
MODELS = ("efficientnet_like", "mobilenet_v3_small")


def _runner(model: str, batch: int, programs: bool):
    with np.load(FIXTURES / model / "expected.npz") as f:
        x = f["input/b4/in0"]
    x = np.resize(x, (batch, *x.shape[1:]))
    it = litetrain.Interpreter(model_path=str(FIXTURES / model / "int8.tflite"),
                               num_threads=1)
    d = it.get_input_details()[0]
    it.resize_tensor_input(d["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(d["index"], x)
    hook = plan.int8_programs
    if not programs:
        plan.int8_programs = lambda steps, *_: steps
    try:
        it.invoke()  # the plan for these shapes is made here
    finally:
        plan.int8_programs = hook
    for _ in range(3):
        it.invoke()
    return it.invoke


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    require_kernels()
    print("| model | batch | per step ms | program ms | per step / program |")
    print("| --- | --- | --- | --- | --- |")
    for model in MODELS:
        for batch in args.batches:
            repeats = 40 if batch == 1 else 4
            r = interleaved({"steps": _runner(model, batch, False),
                             "program": _runner(model, batch, True)}, "steps",
                            rounds=args.rounds, repeats=repeats)
            print(f"| {model} | {batch} | {r['steps']['median_ms']:.3f} | "
                  f"{r['program']['median_ms']:.3f} | {r['program']['ratio']:.2f}× "
                  f"({r['program']['ratio_min']:.2f}–{r['program']['ratio_max']:.2f}) |")


if __name__ == "__main__":
    main()
