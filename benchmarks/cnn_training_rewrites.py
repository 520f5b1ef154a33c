"""The CNN train step of ``cnn_training.py`` with and without the rewrites of issue 15's
train-step work (``runtime/filter_grad.py``'s gathered tap windows,
``runtime/product_sum.py``'s sums of products without the product, MAX_POOL_2D's
compiled kernel), in one process, interleaved, against the step's GEMM-FLOP limit.

    python benchmarks/cnn_training_rewrites.py [--rounds N]

Both interpreters run the same exported file with one thread; "without" has the two
passes replaced by the identity and no compiled MAX_POOL_2D while it prepares (its
other compiled kernels as usual). Ratios are medians of per-round ratios of the
process's CPU time (one thread: the work, not the neighbours) and of wall time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent)]

import cnn_training as ct  # noqa: E402
from common import sgemm_runner  # noqa: E402

import litetrain as lt  # noqa: E402
import litetrain.ops.pool as pool  # noqa: E402
import litetrain.runtime.simplify as simplify  # noqa: E402


def _without(content: bytes, feeds: dict):
    saved = simplify.fuse_filter_grad_taps, simplify.fuse_product_sums, pool.kernels
    simplify.fuse_filter_grad_taps = simplify.fuse_product_sums = lambda steps, *_: steps
    pool.kernels = lambda family: None
    try:
        return ct._runner(lt.Interpreter(model_content=content, num_threads=1), feeds)
    finally:
        simplify.fuse_filter_grad_taps, simplify.fuse_product_sums, pool.kernels = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model, content = ct.exported("cnn")
    x, y = ct._data(model, ct.BATCH)
    feeds = {"x": x, "y": y}
    cands = {"without": _without(content, feeds),
             "with": ct._runner(lt.Interpreter(model_content=content, num_threads=1), feeds),
             "limit": ct._limited(sgemm_runner(ct.gemm_limit(model, ct.BATCH)), 1)}
    r = ct.timed(cands, "without", args.rounds, 10)
    for name, v in r.items():
        print(f"{name:8s} CPU {v['cpu_ms']:6.2f} ms  wall {v['median_ms']:6.2f} ms  "
              f"without/this: CPU {v['cpu_ratio']:.2f}, wall {v['ratio']:.2f} "
              f"({v['ratio_range'][0]:.2f}-{v['ratio_range'][1]:.2f})")
    limit = r["limit"]["cpu_ms"]
    print(f"x limit (CPU): without {r['without']['cpu_ms'] / limit:.2f}, "
          f"with {r['with']['cpu_ms'] / limit:.2f}")


if __name__ == "__main__":
    main()
