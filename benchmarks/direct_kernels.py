"""The stem's direct-read CONV_2D (``fast.gemm.conv_2d_direct``) and the strided depthwise
tiles (``fast.depthwise``) against the kernels they replace, same process, interleaved
rounds, one BLAS thread, CPU time of this thread (other processes' load counts less).

* Whole MobileNets (the TensorFlow-made float fixtures) at batch 32 and 1: two
  interpreters on the same file, one with both choices refused (``conv_exact.direct``
  and ``compiled.strided_tiles`` answering False: the gathering kernel and the ring
  kernel), the other as shipped; their outputs must have the same bits.
* Layers: the MobileNet stem ([n, 96, 96, 3], 3×3 stride 2 SAME, 16 out, input
  rescaling and HARD_SWISH fused) direct vs gathering; MobileNetV2/V3's strided
  depthwise layers, tiles vs ring.

    python benchmarks/direct_kernels.py [--rounds N]

Prints new/old time ratios (median over rounds, with the range): below 1 is faster.
Needs the ``[fast]`` extra (numba).
"""

from __future__ import annotations

import argparse
import functools

import numpy as np
from common import FLOAT_MOBILENETS, cpu_ratios, require_kernels, warm_interpreter
from threadpoolctl import threadpool_limits

from litetrain.ops import compiled, conv_exact
from litetrain.ops.common import SAME
from litetrain.ops.evaluate import node_info
from litetrain.ops.registry import lookup

# (batch, size, channels, window, stride, HARD_SWISH fused) of strided depthwise layers
DEPTHWISE = [(32, 48, 16, 3, 2, False), (32, 24, 40, 3, 2, False), (32, 48, 48, 3, 2, False),
             (32, 12, 96, 3, 2, False), (32, 12, 64, 5, 2, True), (32, 6, 144, 5, 2, True),
             (1, 48, 16, 3, 2, False), (1, 12, 64, 5, 2, True)]


def _refused():
    """Patches refusing both choices; call the result to restore them."""
    saved = conv_exact.direct, compiled.strided_tiles
    conv_exact.direct = lambda channels: False
    compiled.strided_tiles = lambda g, images: False

    def restore():
        conv_exact.direct, compiled.strided_tiles = saved
    return restore


def models(rounds: int) -> None:
    for name, path in FLOAT_MOBILENETS.items():
        for batch in (32, 1):
            x = np.random.default_rng(0).random((batch, 96, 96, 3), np.float32)
            restore = _refused()
            try:
                old = warm_interpreter(path, x)
            finally:
                restore()
            new = warm_interpreter(path, x)
            a, b = (it.get_tensor(it.get_output_details()[0]["index"]) for it in (old, new))
            same = np.array_equal(a.view(np.uint32), b.view(np.uint32))
            med, lo, hi = cpu_ratios(old.invoke, new.invoke, rounds, max(3, 60 // batch))
            print(f"{name:20s} batch {batch:2d}: new/old {med:.2f} ({lo:.2f}-{hi:.2f}), "
                  f"same bits: {same}")


def stem(rounds: int) -> None:
    g = conv_exact.module()
    rng = np.random.default_rng(0)
    for n in (32, 1):
        x = rng.uniform(0, 255, (n, 96, 96, 3)).astype(np.float32)
        wp = g.pack(rng.standard_normal((27, 16)).astype(np.float32))
        bp = g.pack_bias(rng.standard_normal(16).astype(np.float32), 16)
        outs = [np.empty((n * 48 * 48, 16), np.float32) for _ in range(2)]
        args = (g.HARD_SWISH, np.float32(1), 3, 3, 2, 2, 1, 1, 0, 0, 48, True,
                np.float32(1 / 127.5), np.float32(-1))
        inf = np.float32(np.inf)
        old = functools.partial(g.conv_2d, x, wp, outs[0], bp, -inf, inf, *args)
        new = functools.partial(g.conv_2d_direct, x, wp, outs[1], bp, -inf, inf, *args)
        old()
        new()
        same = np.array_equal(outs[0].view(np.uint32), outs[1].view(np.uint32))
        med, lo, hi = cpu_ratios(old, new, rounds, max(2, 64 // n))
        print(f"stem [{n:2d}, 96, 96, 3] direct/gathering {med:.2f} ({lo:.2f}-{hi:.2f}), "
              f"same bits: {same}")


def depthwise(rounds: int) -> None:
    rng = np.random.default_rng(0)
    for n, h, c, k, s, hs in DEPTHWISE:
        x = rng.standard_normal((n, h, h, c)).astype(np.float32)
        w = rng.standard_normal((1, k, k, c)).astype(np.float32)
        b = rng.standard_normal(c).astype(np.float32)
        attrs = {"stride_h": s, "stride_w": s, "dilation_h_factor": 1,
                 "dilation_w_factor": 1, "padding": SAME, "fused_activation_function": 3,
                 "depth_multiplier": 1}
        swish = {"fused_activation_function": 0} if hs else None
        runs = []
        for refuse in (True, False):  # each node keeps the kernel of its first call
            st = lookup("depthwise_conv_2d").settings(
                node_info("depthwise_conv_2d", [x, w, b], attrs))
            st.loader.wait()
            st.ready()
            restore = _refused() if refuse else (lambda: None)
            try:
                compiled.run_depthwise(st, x, w, b, swish)
            finally:
                restore()
            runs.append(functools.partial(compiled.run_depthwise, st, x, w, b, swish))
        same = np.array_equal(runs[0]().view(np.uint32), runs[1]().view(np.uint32))
        med, lo, hi = cpu_ratios(*runs, rounds, max(2, int(2e6 // (n * h * h * c // s // s))))
        print(f"depthwise [{n:2d}, {h:2d}, {h:2d}, {c:3d}] {k}x{k} stride {s}"
              f"{' +hard_swish' if hs else ''}: tiles/ring {med:.2f} ({lo:.2f}-{hi:.2f}), "
              f"same bits: {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    rounds = ap.parse_args().rounds
    require_kernels("conv", "gemm")
    with threadpool_limits(1):
        models(rounds)
        stem(rounds)
        depthwise(rounds)


if __name__ == "__main__":
    main()
