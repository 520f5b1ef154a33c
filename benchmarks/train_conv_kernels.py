"""What the ``[fast]`` extra's compiled conv kernels give a CNN train step when they also
run on filters that are not constants of the file (filters read from variables, the
depthwise input gradient's reversed filter, TRANSPOSE_CONV's taps): the
``cnn_training.py`` CNN's step (batch 32, one thread) with them, against the same step
with the compiled conv kernels limited to constant filters (what they covered before),
both in one process, interleaved, in the steady state (every compiled family loaded).

    python benchmarks/train_conv_kernels.py [--rounds N]

Prints each setting's median step time and the median over rounds of the ratio
(``x faster``), in wall and process CPU time (on a shared machine, with one thread, CPU
time measures the work rather than the neighbours). Results are the same bits either
way (``tests/ops/test_convnet_fast_train.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks")]

import cnn_training as ct  # noqa: E402

import litetrain as lt  # noqa: E402
from litetrain.ops import compiled, fast  # noqa: E402
from litetrain.runtime.threads import blas_threads  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if fast.kernels("conv") is None:
        sys.exit("needs the [fast] extra (numba) and LITETRAIN_JIT not 0")
    applies, col2im = compiled.applies, compiled.col2im
    every = {"on": True}
    # Constant filters only (settings.filter set), no compiled TRANSPOSE_CONV taps.
    compiled.applies = lambda s, x, w: applies(s, x, w) and (every["on"]
                                                              or s.filter is not None)
    compiled.col2im = lambda *a: every["on"] and col2im(*a)

    model, content = ct.exported("cnn")
    x, y = ct._data(model, ct.BATCH)

    def step(on: bool):
        run = lt.Interpreter(model_content=content, num_threads=1).get_signature_runner(
            "train")
        for _ in range(3):
            run(x=x, y=y)

        def one():
            every["on"] = on
            with blas_threads(1):
                run(x=x, y=y)
        return one

    cands = {"constant filters only": step(False), "every float32 filter": step(True)}
    for family in fast.FAMILIES:
        fast.kernels(family).wait()
    for fn in cands.values():
        fn()
        fn()
    r = ct.timed(cands, "constant filters only", args.rounds, 10)
    for name, v in r.items():
        print(f"{name:22s} {v['median_ms']:7.2f} ms  CPU {v['cpu_ms']:7.2f} ms  "
              f"x faster {v['ratio']:.2f} (CPU {v['cpu_ratio']:.2f})")


if __name__ == "__main__":
    main()
