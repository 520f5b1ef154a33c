"""Float DEPTHWISE_CONV_2D per MobileNet layer: the ``[fast]`` extra's compiled kernel
against the NumPy kernel, through the op as a prepared node runs it (issue 15).

The layers of MobileNetV2-0.35 and MobileNetV3Small at 96×96 (batch 32, or 1 with
``--batch 1``), RELU6 and a bias; per layer the compiled kernel's multiply-adds per
second (process CPU time, best of interleaved rounds) and how many times faster it is
than the NumPy kernel. Results are checked to be the same bits first.

    python benchmarks/depthwise_layers.py [--batch N] [--rounds R]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from litetrain.ops import compiled
from litetrain.ops.common import SAME
from litetrain.ops.conv import depthwise_conv_2d
from litetrain.ops.evaluate import node_info
from litetrain.ops.fast import kernels
from litetrain.ops.registry import lookup

# (input height = width, channels, filter size, stride) of the models' depthwise layers
LAYERS = {
    "MobileNetV2-0.35": [(48, 16, 3, 1), (48, 48, 3, 2), (24, 48, 3, 1), (24, 48, 3, 2),
                         (12, 96, 3, 1), (12, 96, 3, 2), (6, 144, 3, 1), (6, 192, 3, 1),
                         (6, 192, 3, 2), (3, 336, 3, 1)],
    "MobileNetV3Small": [(48, 16, 3, 2), (24, 40, 3, 2), (12, 56, 3, 1), (12, 64, 5, 2),
                         (6, 144, 5, 1), (6, 72, 5, 1), (6, 144, 5, 2), (3, 288, 5, 1)],
}


def _cpu_seconds(fn, repeats: int) -> float:
    t0 = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - t0) / repeats


def _layer(rng, batch: int, rounds: int, size: int, c: int, k: int, stride: int
           ) -> tuple[list[int], float, float]:
    """(input shape, compiled seconds per call, NumPy kernel's seconds per call)."""
    x = rng.standard_normal((batch, size, size, c)).astype(np.float32)
    w = rng.standard_normal((1, k, k, c)).astype(np.float32)
    b = rng.standard_normal(c).astype(np.float32)
    attrs = {"stride_h": stride, "stride_w": stride, "padding": SAME,
             "fused_activation_function": 3, "depth_multiplier": 1}
    s = lookup("depthwise_conv_2d").settings(node_info("depthwise_conv_2d", [x, w, b], attrs))
    assert isinstance(s, compiled.Compiled)
    fast = depthwise_conv_2d(s, x, w, b)
    ref = depthwise_conv_2d(attrs, x, w, b)  # plain attrs: the NumPy kernel
    assert np.array_equal(fast.view(np.uint32), ref.view(np.uint32))
    repeats = max(2, int(3e6 // (fast.size * k * k // 16 + 1000)))
    best_fast = best_ref = np.inf
    for _ in range(rounds):
        best_fast = min(best_fast, _cpu_seconds(lambda: depthwise_conv_2d(s, x, w, b),
                                                repeats))
        best_ref = min(best_ref, _cpu_seconds(lambda: depthwise_conv_2d(attrs, x, w, b),
                                              max(1, repeats // 8)))
    return list(x.shape), best_fast, best_ref


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    loader = kernels("conv")
    if loader is None or loader.wait() is None:
        raise SystemExit("the [fast] extra (numba) is not installed")
    rng = np.random.default_rng(0)
    print("| model | input | filter, stride | compiled µs | GMAC/s | × NumPy kernel |")
    print("| --- | --- | --- | --- | --- | --- |")
    for model, layers in LAYERS.items():
        for size, c, k, stride in layers:
            shape, fast, ref = _layer(rng, args.batch, args.rounds, size, c, k, stride)
            out = shape[0] * ((size + stride - 1) // stride) ** 2 * c
            print(f"| {model} | {shape} | {k}×{k}, {stride} | {fast * 1e6:.1f} | "
                  f"{out * k * k / fast / 1e9:.1f} | {ref / fast:.1f} |")


if __name__ == "__main__":
    main()
