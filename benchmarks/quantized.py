"""Quantized inference speed, every ratio measured side by side in one run.

On the TensorFlow-made fixtures in ``tests/fixtures/tf_quantized/`` (MobileNetV3Small at
96×96 and the EfficientNet-like CNN), batch 1 and 32:

* full-int8 models (float input and output, QUANTIZE first and DEQUANTIZE last):
  litetrain vs ai-edge-litert on the same file, same thread count (its default
  interpreter: XNNPACK's int8 kernels), litetrain with the ``[fast]`` extra's compiled
  kernels ("int8 [fast]", when numba is installed) and without ("int8",
  ``LITETRAIN_JIT=0``), the three interleaved. Target: ≤ 3×.
* dynamic-range models (int8 weights, float activations): litetrain vs litetrain's own
  float model, both with the ``[fast]`` extra's compiled kernels (when numba is
  installed) and both NumPy only (``LITETRAIN_JIT=0``). Target: ≤ 1.5×.

    python benchmarks/quantized.py [--quick] [--threads N] [--markdown PATH]

``run.py`` includes it as a section; ratios are medians of per-round ratios
(``common.interleaved``), read them as rough on a shared machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import interleaved, table  # noqa: E402

import litetrain  # noqa: E402
from litetrain.ops import fast  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "tf_quantized"
MODELS = ("mobilenet_v3_small", "efficientnet_like")
BATCHES = (1, 32)
TARGETS = {"int8": 3.0, "int8 [fast]": 3.0, "dynamic_range": 1.5}


def _input(kind: str, batch: int) -> np.ndarray:
    """A recorded input of the fixture, tiled to ``batch`` items."""
    with np.load(FIXTURES / kind / "expected.npz") as f:
        x = f["input/b4/in0"]
    return np.resize(x, (batch, *x.shape[1:]))


def _runner(make, path: Path, x: np.ndarray, threads: int):
    it = make(model_path=str(path), num_threads=threads)
    d = it.get_input_details()[0]
    it.resize_tensor_input(d["index"], list(x.shape))
    it.allocate_tensors()
    it.set_tensor(d["index"], x)
    it.invoke()  # per-shape preparation happens here
    return it.invoke


def _litert():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    return Interpreter


def run(quick: bool = False, threads: int = 1) -> list[dict]:
    """One row per (model, variant, batch): litetrain's median ms, its peer's, the ratio."""
    rounds, repeats = (2, 3) if quick else (5, 10)
    litert = _litert()
    rows = []
    for kind in MODELS:
        for batch in BATCHES:
            x = _input(kind, batch)
            if litert is not None:
                rows += _int8_rows(litert, kind, batch, x, threads, rounds, repeats)
            rows += dynamic_range_rows(kind, batch, x, threads, rounds, repeats)
    return rows


# --- with and without the compiled kernels ---------------------------------------------

def _with_jit(on: bool, make):
    """``make()`` with the ``[fast]`` extra's compiled kernels on or off (``LITETRAIN_JIT``
    is read when a node is prepared: the runners keep their choice)."""
    before = os.environ.get("LITETRAIN_JIT")
    os.environ["LITETRAIN_JIT"] = "1" if on else "0"
    fast.kernels.cache_clear()
    try:
        return make()
    finally:
        if before is None:
            del os.environ["LITETRAIN_JIT"]
        else:
            os.environ["LITETRAIN_JIT"] = before
        fast.kernels.cache_clear()


def _loaded(run):
    """``run`` after its compiled kernels are loaded (the second run starts loading them):
    the timings never include loading."""
    run()
    for family in fast.FAMILIES:
        loader = fast.kernels(family)
        if loader is not None:
            loader.wait()
    return run


def dynamic_range_rows(kind: str, batch: int, x: np.ndarray, threads: int, rounds: int,
                       repeats: int) -> list[dict]:
    """The dynamic-range model vs the float model, both with the ``[fast]`` extra's
    compiled kernels when numba is installed, and both without them (NumPy only); all four
    interleaved in the same rounds."""
    path = FIXTURES / kind
    settings = [("fast", True), ("numpy", False)] if _has_numba() else [("numpy", False)]
    runners = {}
    for name, on in settings:
        for variant in ("dynamic_range", "float"):
            runners[f"{variant}/{name}"] = _with_jit(on, lambda v=variant: _runner(
                litetrain.Interpreter, path / f"{v}.tflite", x, threads))
    for name, on in settings:
        for variant in ("dynamic_range", "float"):
            _with_jit(on, lambda k=f"{variant}/{name}": _loaded(runners[k]))
    rows = []
    for name, _ in settings:
        pair = {k: runners[f"{k}/{name}"] for k in ("dynamic_range", "float")}
        r = interleaved(pair, "dynamic_range", rounds, repeats)
        peer = "litetrain float" + (" ([fast])" if name == "fast" else " (NumPy only)")
        rows.append(_row(kind, "dynamic_range", batch, peer, r["dynamic_range"], r["float"]))
    return rows


def _int8_rows(litert, kind: str, batch: int, x: np.ndarray, threads: int, rounds: int,
               repeats: int) -> list[dict]:
    """int8 vs ai-edge-litert, litetrain with the ``[fast]`` kernels (when numba is
    installed) and without, all three interleaved."""
    path = FIXTURES / kind / "int8.tflite"
    cands = {"litert": _runner(litert, path, x, threads),
             "numpy": _with_jit(False, lambda: _runner(litetrain.Interpreter, path, x,
                                                       threads))}
    if _has_numba():
        cands["fast"] = _with_jit(True, lambda: _loaded(_runner(litetrain.Interpreter, path,
                                                                x, threads)))
    r = interleaved(cands, "litert", rounds, repeats)
    rows = []
    for name, variant in (("fast", "int8 [fast]"), ("numpy", "int8")):
        if name in r:  # the ratios the other way round: litetrain's time / litert's
            inverse = {"ratio": 1 / r[name]["ratio"], "ratio_min": 1 / r[name]["ratio_max"],
                       "ratio_max": 1 / r[name]["ratio_min"]}
            rows.append(_row(kind, variant, batch, "ai-edge-litert int8", r[name],
                             {**r["litert"], **inverse}))
    return rows


def _has_numba() -> bool:
    return importlib.util.find_spec("numba") is not None


def _row(kind, variant, batch, peer, ours, theirs) -> dict:
    return {"model": kind, "variant": variant, "batch": batch, "peer": peer,
            "litetrain_ms": ours["median_ms"], "peer_ms": theirs["median_ms"],
            "ratio": theirs["ratio"], "ratio_range": (theirs["ratio_min"], theirs["ratio_max"]),
            "target": TARGETS[variant]}


def report(rows: list[dict], threads: int = 1) -> str:
    cells = [{"model": r["model"], "variant": r["variant"], "batch": r["batch"],
              "vs": r["peer"], "litetrain ms": f"{r['litetrain_ms']:.2f}",
              "peer ms": f"{r['peer_ms']:.3f}", "ratio": f"{r['ratio']:.2f}×",
              "target": f"≤ {r['target']:g}×"} for r in rows]
    return "\n".join([
        f"Quantized inference ({threads} thread(s) each; ratio = litetrain / peer):", "",
        table(cells, ["model", "variant", "batch", "vs", "litetrain ms", "peer ms", "ratio",
                      "target"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    text = report(run(args.quick, args.threads), args.threads)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
