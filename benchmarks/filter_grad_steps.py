"""The CNN train step of ``cnn_training.py`` with and without the filter gradients in
OpenBLAS's own order (``runtime/row_filter_grad.py``, ``runtime/filter_grad.py``'s taps
read in place, ``runtime/transposed_product.py``), in one process, interleaved, against
the step's GEMM-FLOP limit; then each rewritten step alone against what it replaces.

    python benchmarks/filter_grad_steps.py [--rounds N]

Both interpreters run the same exported file with one thread; "without" has the two
passes replaced by the identity and no compiled ``filter_grad`` family for
``runtime/filter_grad.py`` while it prepares (everything else as usual). Ratios are
medians of per-round ratios of the process's CPU time (one thread: the work, not the
neighbours) and of wall time. Needs the ``[fast]`` extra.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

import cnn_training as ct  # noqa: E402
from common import cpu_ratios, require_kernels, sgemm_runner  # noqa: E402

import litetrain as lt  # noqa: E402
import litetrain.runtime.filter_grad as filter_grad  # noqa: E402
import litetrain.runtime.simplify as simplify  # noqa: E402
from litetrain.runtime import plan as planmod  # noqa: E402
from litetrain.runtime.filter_grad import run_chain  # noqa: E402
from litetrain.runtime.threads import blas_threads  # noqa: E402

_STEPS = ("sum[row_filter_grad]", "pack[row_filter_grad]", "pack[filter_grad_taps]",
          "batch_matmul[blocked]")


def _without(content: bytes, feeds: dict):
    saved = (simplify.fuse_row_filter_grads, simplify.block_transposed_products,
             filter_grad.kernels)
    simplify.fuse_row_filter_grads = lambda steps, *_: steps
    simplify.block_transposed_products = lambda steps, *_: steps
    filter_grad.kernels = lambda family: None if family == "filter_grad" else saved[2](
        family)
    try:
        return ct._runner(lt.Interpreter(model_content=content, num_threads=1), feeds)
    finally:
        (simplify.fuse_row_filter_grads, simplify.block_transposed_products,
         filter_grad.kernels) = saved


def _captured(run) -> dict:
    """op -> (kernel, arguments) of the rewritten steps of one run of ``run``."""
    got, original = {}, planmod.Plan._execute

    def capture(self, program, *rest, **kw):
        def wrap(ins):
            step, kernel = ins[0], ins[1]
            if step.op not in _STEPS:
                return ins

            def k(*a):
                got[step.op] = (kernel, a)
                return kernel(*a)
            return (step, k, *ins[2:])
        return original(self, [wrap(i) for i in program], *rest, **kw)
    planmod.Plan._execute = capture
    try:
        run()
    finally:
        planmod.Plan._execute = original
    return got


def _replaced(op: str, kernel, args):
    """What the step ``op`` replaces, on the same operands."""
    s = args[0]
    if op.endswith("[row_filter_grad]"):
        return lambda: run_chain(s.subs, s.inputs, args[1:], s.result)
    if op == "batch_matmul[blocked]":
        return lambda: s.kernel(s.attrs, *args[1:])
    gathered = dataclasses.replace(s, blocked=None)
    return lambda: kernel(gathered, *args[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    require_kernels("filter_grad", "train")
    model, content = ct.exported("cnn")
    x, y = ct._data(model, ct.BATCH)
    feeds = {"x": x, "y": y}
    with_ = ct._runner(lt.Interpreter(model_content=content, num_threads=1), feeds)
    cands = {"without": _without(content, feeds), "with": with_,
             "limit": ct._limited(sgemm_runner(ct.gemm_limit(model, ct.BATCH)), 1)}
    r = ct.timed(cands, "without", args.rounds, 10)
    for name, v in r.items():
        print(f"{name:8s} CPU {v['cpu_ms']:6.2f} ms  wall {v['median_ms']:6.2f} ms  "
              f"without/this: CPU {v['cpu_ratio']:.2f}, wall {v['ratio']:.2f}")
    limit = r["limit"]["cpu_ms"]
    print(f"x limit (CPU): without {r['without']['cpu_ms'] / limit:.2f}, "
          f"with {r['with']['cpu_ms'] / limit:.2f}")
    with blas_threads(1):
        for op, (kernel, a) in _captured(with_).items():
            ratio, lo, hi = cpu_ratios(_replaced(op, kernel, a),
                                       lambda kernel=kernel, a=a: kernel(*a),
                                       args.rounds * 4, 10)
            print(f"{op:24s} CPU time / the steps it replaces: {ratio:.3f} "
                  f"({lo:.3f}-{hi:.3f})")


if __name__ == "__main__":
    main()
