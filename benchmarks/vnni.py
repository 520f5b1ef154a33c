"""What the AVX-512 VNNI kernels (``litetrain/ops/fast/vnni.py``) change, side by side in
one run: full-int8 models with the ``[fast]`` extra, VNNI on and off (off: planned as on
a CPU without VNNI, so CONV_2D / FULLY_CONNECTED take the float32-BLAS path), and
ai-edge-litert on the same file, the three interleaved.

    python benchmarks/vnni.py [--rounds N] [--threads N]

Prints per model and batch the medians and each litetrain variant's time over LiteRT's
(median of per-round ratios, with their range). Needs numba, ai-edge-litert and a CPU
with AVX-512 VNNI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quantized
from common import interleaved

import litetrain
from litetrain.ops import compiled_vnni


def _runner(path, x, threads: int, vnni: bool):
    """A loaded litetrain runner, its nodes planned with or without VNNI."""
    real = compiled_vnni.host_has_vnni
    if not vnni:
        compiled_vnni.host_has_vnni = lambda: False
    try:
        return quantized._loaded(quantized._runner(litetrain.Interpreter, path, x, threads))
    finally:
        compiled_vnni.host_has_vnni = real


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    litert = quantized._litert()
    if litert is None or not compiled_vnni.host_has_vnni():
        sys.exit("needs ai-edge-litert and a CPU with AVX-512 VNNI")
    for kind in quantized.MODELS:
        for batch in quantized.BATCHES:
            x = quantized._input(kind, batch)
            path = quantized.FIXTURES / kind / "int8.tflite"
            r = interleaved({"litert": quantized._runner(litert, path, x, args.threads),
                             "vnni": _runner(path, x, args.threads, True),
                             "no vnni": _runner(path, x, args.threads, False)},
                            "litert", args.rounds, 10)
            cells = [f"{name} {r[name]['median_ms']:.3f} ms = {1 / r[name]['ratio']:.2f}× "
                     f"[{1 / r[name]['ratio_max']:.2f}–{1 / r[name]['ratio_min']:.2f}]"
                     for name in ("vnni", "no vnni")]
            print(f"{kind} b{batch}: litert {r['litert']['median_ms']:.3f} ms; "
                  + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
