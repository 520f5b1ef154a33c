"""CONV_2D in BLAS's own order (``fast.gemm``, adopted by ``ops/conv_exact.py``) against
today's path (BLAS's GEMM plus the compiled epilogue pass), same process, interleaved
rounds, one BLAS thread, CPU time of this thread (other processes' load counts less).

* Whole MobileNets (the TensorFlow-made float fixtures) at batch 1 and 32: two
  interpreters on the same file, one with the adoption refused (``conv_exact.proven``
  answering False), the other as shipped; their outputs must have the same bits.
* GEMM shape classes of those models' 1×1 convolutions: ``fast.gemm.pointwise`` (GEMM,
  bias, RELU6 in one call) vs ``np.matmul`` + ``fast.conv.bias_activation``.

    python benchmarks/conv_exact.py [--rounds N]

Prints new/old time ratios (median over rounds, with the range): below 1 is faster.
Needs the ``[fast]`` extra (numba).
"""

from __future__ import annotations

import argparse

import numpy as np
from common import FLOAT_MOBILENETS, cpu_ratios, require_kernels, warm_interpreter
from threadpoolctl import threadpool_limits

from litetrain.ops import conv_exact, fast

# (rows, K, output channels) of MobileNetV2/V3 1×1 convolutions at batch 32 and 1
SHAPES = [(73728, 16, 8), (73728, 8, 48), (73728, 16, 96), (18432, 96, 24),
          (18432, 24, 144), (2304, 16, 96), (576, 96, 24), (288, 112, 1280),
          (36, 96, 576), (9, 112, 1280), (9, 56, 336)]


def models(rounds: int) -> None:
    for name, path in FLOAT_MOBILENETS.items():
        for batch in (1, 32):
            x = np.random.default_rng(0).random((batch, 96, 96, 3), np.float32)
            proven = conv_exact.proven
            conv_exact.proven = lambda *args, **kw: False
            try:
                old = warm_interpreter(path, x)
            finally:
                conv_exact.proven = proven
            new = warm_interpreter(path, x)
            a, b = (it.get_tensor(it.get_output_details()[0]["index"]) for it in (old, new))
            same = np.array_equal(a.view(np.uint32), b.view(np.uint32))
            med, lo, hi = cpu_ratios(old.invoke, new.invoke, rounds, max(3, 200 // batch))
            print(f"{name:20s} batch {batch:2d}: new/old {med:.2f} ({lo:.2f}-{hi:.2f}), "
                  f"same bits: {same}")


def _pair(g, c, m: int, k: int, o: int, rng):
    """(old, new, outputs) for one GEMM shape: BLAS + the epilogue pass, the compiled
    kernel (bias and RELU6 fused)."""
    a = rng.standard_normal((m, k), np.float32)
    w = rng.standard_normal((k, o), np.float32)
    b = rng.standard_normal(o, np.float32)
    wp, bp = g.pack(w), g.pack_bias(b, o)
    lo, hi = np.float32(0), np.float32(6)
    outs = np.empty((m, o), np.float32), np.empty((m, o), np.float32)

    def old():
        np.matmul(a, w, out=outs[0])
        c.bias_activation(outs[0], b, True, lo, hi)

    def new():
        g.pointwise(a, wp, outs[1], bp, lo, hi, g.PLAIN, np.float32(1))

    return old, new, outs


def shapes(rounds: int) -> None:
    g, c = conv_exact.module(), fast.kernels("conv").module
    rng = np.random.default_rng(0)
    for m, k, o in SHAPES:
        old, new, (out_old, out_new) = _pair(g, c, m, k, o, rng)
        old()
        new()
        same = np.array_equal(out_old.view(np.uint32), out_new.view(np.uint32))
        med, lo, hi = cpu_ratios(old, new, rounds, max(3, int(4e5 / (m * o))))
        print(f"[{m:5d}, {k:3d}] x [{k:3d}, {o:4d}]: new/old {med:.2f} ({lo:.2f}-{hi:.2f}), "
              f"same bits: {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    rounds = ap.parse_args().rounds
    require_kernels("conv", "gemm")
    with threadpool_limits(1):
        models(rounds)
        shapes(rounds)


if __name__ == "__main__":
    main()
