"""Float programs (issue 15): the float MobileNets at batch 1 run step by step, as float
programs (:mod:`litetrain.runtime.float_program`) and by ai-edge-litert, interleaved.

``steps`` is an interpreter whose plans were specialised without float programs (every
other rewrite as usual), ``program`` one with them; both one BLAS thread, LiteRT
``num_threads=1``. Ratios are taken within each round (:func:`.common.interleaved`);
say the machine's load (``uptime``) with them.

    .venv/bin/python benchmarks/float_program.py [--quick] [--batch N]
"""

from __future__ import annotations

import argparse
import os
import sys
from unittest import mock

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import litetrain
from benchmarks.common import FLOAT_MOBILENETS, interleaved, table
from litetrain.ops.fast import FAMILIES, kernels
from litetrain.runtime import plan

try:
    from ai_edge_litert.interpreter import Interpreter as LiteRT
except ImportError:  # the LiteRT column is left empty
    LiteRT = None


def _invoker(interpreter, x: np.ndarray, programs: bool = True):
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    if programs:
        interpreter.invoke()  # per-shape preparation (and the programs) happen here
    else:
        with mock.patch.object(plan, "float_programs", lambda steps, *_: steps):
            interpreter.invoke()
    interpreter.invoke()  # the second run starts loading the [fast] kernels
    if isinstance(interpreter, litetrain.Interpreter):
        for family in FAMILIES:  # time the steady state
            if kernels(family) is not None:
                kernels(family).wait()
        interpreter.invoke()  # the programs are encoded here
    return interpreter.invoke


def run(batch: int, rounds: int, repeats: int) -> list[dict]:
    rows = []
    for name, path in FLOAT_MOBILENETS.items():
        shape = litetrain.Interpreter(model_path=str(path)).get_input_details()[0]["shape"]
        x = np.random.default_rng(0).random((batch, *shape[1:]), np.float32)
        cands = {"steps": _invoker(litetrain.Interpreter(model_path=str(path), num_threads=1),
                                   x, programs=False),
                 "program": _invoker(litetrain.Interpreter(model_path=str(path),
                                                           num_threads=1), x)}
        if LiteRT is not None:
            cands["litert"] = _invoker(LiteRT(model_path=str(path), num_threads=1), x)
        r = interleaved(cands, "steps", rounds, repeats)
        row = {"model": name, "batch": batch, "steps ms": f"{r['steps']['median_ms']:.3f}",
               "program ms": f"{r['program']['median_ms']:.3f}",
               "steps/program": f"{r['program']['ratio']:.2f} "
                                f"({r['program']['ratio_min']:.2f}-{r['program']['ratio_max']:.2f})"}
        if "litert" in r:
            lite = np.array([r["litert"]["median_ms"]])
            row.update({"LiteRT ms": f"{lite[0]:.3f}",
                        "program/LiteRT": f"{r['program']['median_ms'] / lite[0]:.2f}",
                        "steps/LiteRT": f"{r['steps']['median_ms'] / lite[0]:.2f}"})
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    rounds, repeats = (5, 50) if args.quick else (9, 200)
    if args.batch > 1:
        repeats = max(5, repeats // (4 * args.batch))
    print(f"load: {os.getloadavg()[0]:.2f} (1 min)")
    print(table(run(args.batch, rounds, repeats),
                ["model", "batch", "steps ms", "program ms", "steps/program", "LiteRT ms",
                 "program/LiteRT", "steps/LiteRT"]))


if __name__ == "__main__":
    main()
