"""litetrain benchmarks on the tutorial model; every ratio is measured in one run.

For batch 1, 32 and 100, the ``train`` step and ``infer`` of the TensorFlow-made (Flex)
model and of the same model exported by litetrain (builtin ops only), beside:
ai-edge-litert on the exported file (same thread count), the same computation in bare
NumPy, and the machine's limit (the step's matmuls at NumPy's sgemm rate, same shapes).
Also: CNN, LSTM and GRU train steps vs their GEMM-FLOP limit and LiteRT
(``cnn_training.py``), convnet inference vs LiteRT and peak RSS (``convnets.py``),
pre-training throughput (authored model vs a hand-written NumPy loop), BLAS threads
1 vs default, cold start, peak RSS while training, installed size, and quantized
inference (``quantized.py``: int8 vs ai-edge-litert, dynamic-range vs float).

    python benchmarks/run.py [--quick] [--json PATH] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "examples")]

import cnn_training  # noqa: E402
import convnets  # noqa: E402
import process  # noqa: E402
import quantized  # noqa: E402
import reference  # noqa: E402
from common import interleaved, sgemm_runner, table  # noqa: E402

import litetrain  # noqa: E402
from litetrain.runtime.threads import current_blas_threads  # noqa: E402

FLEX_MODEL = ROOT / "tests" / "fixtures" / "tutorial" / "model.tflite"

try:
    from ai_edge_litert.interpreter import Interpreter as LiteRT
except ImportError:  # the comparison columns are left empty
    LiteRT = None


def machine() -> dict:
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from threadpoolctl import threadpool_info
    blas = next((f"{i['internal_api']} {i['version']} ({i.get('architecture', '?')})"
                 for i in threadpool_info() if i["user_api"] == "blas"), "unknown")
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "blas": blas, "blas_threads": current_blas_threads(),
            "litetrain": litetrain.__version__,
            "ai_edge_litert": _version("ai-edge-litert")}


def _version(dist: str) -> str | None:
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _data(b: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(b)
    return (rng.random((b, 28, 28), np.float32),
            np.eye(10, dtype=np.float32)[rng.integers(0, 10, b)])


def latency_rows(exported: bytes, batches: list[int], rounds: int, repeats: int) -> list[dict]:
    """train and infer per batch: litetrain (Flex and exported), LiteRT, NumPy, limit."""
    threads = current_blas_threads() or 1
    flex = litetrain.Interpreter(model_path=FLEX_MODEL)
    ours = litetrain.Interpreter(model_content=exported)
    theirs = LiteRT(model_content=exported, num_threads=threads) if LiteRT else None
    rows = []
    for b in batches:
        x, y = _data(b)
        w = reference.random_weights()
        lr = np.float32(0.01)
        for sig in ("train", "infer"):
            feeds = {"x": x, "y": y} if sig == "train" else {"x": x}
            cands = {"litetrain (Flex model)": _runner(flex, sig, feeds),
                     "litetrain (exported)": _runner(ours, sig, feeds)}
            if theirs is not None:
                cands["ai-edge-litert (exported)"] = _runner(theirs, sig, feeds)
            cands["bare NumPy"] = _numpy_step(sig, w, x, y, lr)
            shapes = (reference.train_matmuls if sig == "train" else reference.infer_matmuls)(b)
            cands["machine limit"] = sgemm_runner(shapes)
            for ref_name in ("litetrain (Flex model)", "litetrain (exported)"):
                r = interleaved(cands, ref_name, rounds, repeats)
                row = {"signature": sig, "batch": b, "engine": ref_name,
                       "median_ms": r[ref_name]["median_ms"], "p90_ms": r[ref_name]["p90_ms"]}
                for peer in ("ai-edge-litert (exported)", "bare NumPy", "machine limit"):
                    if peer in r:
                        row[f"x {peer}"] = r[peer]["ratio"]
                        row[f"{peer} ms"] = r[peer]["median_ms"]
                        row[f"x {peer} range"] = (r[peer]["ratio_min"], r[peer]["ratio_max"])
                rows.append(row)
    return rows


def _numpy_step(sig: str, w: dict, x: np.ndarray, y: np.ndarray, lr: np.float32):
    if sig == "train":
        return lambda: reference.sgd_step(w, x, y, lr)
    return lambda: reference.infer(w, x)


def _runner(interpreter, sig: str, feeds: dict):
    run = interpreter.get_signature_runner(sig)
    run(**feeds)  # the init subgraph and the per-shape preparation happen here
    return lambda: run(**feeds)


def pretraining_row(rounds: int, repeats: int) -> dict:
    """Images/s of the authored tutorial model's train step vs a hand-written NumPy step."""
    from author_tutorial_model import Model

    b = 100
    x, y = _data(b)
    m = Model()
    m.train(x, y)
    w = reference.random_weights()
    lr = np.float32(0.01)
    r = interleaved({"litetrain": lambda: m.train(x, y),
                     "numpy": lambda: reference.sgd_step(w, x, y, lr)}, "litetrain",
                    rounds, repeats)
    return {"batch": b, "litetrain_images_s": b / r["litetrain"]["median_ms"] * 1e3,
            "numpy_images_s": b / r["numpy"]["median_ms"] * 1e3,
            "throughput_ratio": r["numpy"]["ratio"],
            "range": (r["numpy"]["ratio_min"], r["numpy"]["ratio_max"])}


def threads_row(exported: bytes, rounds: int, repeats: int) -> list[dict]:
    """The exported train step with 1 BLAS thread vs the default, per batch size."""
    out = []
    for b in (1, 32, 100):
        x, y = _data(b)
        one = _runner(litetrain.Interpreter(model_content=exported, num_threads=1), "train",
                      {"x": x, "y": y})
        default = _runner(litetrain.Interpreter(model_content=exported), "train",
                          {"x": x, "y": y})
        r = interleaved({"default": default, "one": one}, "default", rounds, repeats)
        out.append({"batch": b, "default_threads": current_blas_threads(),
                    "default_ms": r["default"]["median_ms"], "one_thread_ms": r["one"]["median_ms"],
                    "default_speedup": 1 / r["one"]["ratio"]})
    return out


def run(quick: bool = False) -> dict:
    rounds, repeats = (3, 10) if quick else (7, 20)
    from author_tutorial_model import Model

    exported = litetrain.convert(Model())
    results = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        exported_path = Path(tmp) / "exported.tflite"
        exported_path.write_bytes(exported)
        results["latency"] = latency_rows(exported, [1, 32, 100], rounds, repeats)
        results["pretraining"] = pretraining_row(rounds, repeats)
        results["cnn_training"] = cnn_training.run(quick)
        results["threads"] = threads_row(exported, rounds, repeats)
        engines = {"litetrain": FLEX_MODEL}
        if LiteRT is not None:
            engines["ai-edge-litert"] = exported_path
        results["cold_start"] = process.cold_start(engines, runs=3 if quick else 5)
        results["cold_start_exported"] = process.cold_start({"litetrain": exported_path},
                                                            runs=3 if quick else 5)
        results["peak_rss"] = {"flex": process.peak_rss(FLEX_MODEL),
                               "exported": process.peak_rss(exported_path)}
    results["convnets"] = convnets.run(quick)
    results["quantized"] = quantized.run(quick, threads=1)
    results["installed"] = {"litetrain": process.installed_size(
        "litetrain", Path(litetrain.__file__).parent)}
    if LiteRT is not None:
        results["installed"]["ai-edge-litert"] = process.installed_size("ai-edge-litert")
    return results


def report(results: dict) -> str:
    """The benchmark as Markdown: machine, latency table, then the other figures."""
    m = results["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, NumPy "
             f"{m['numpy']}, BLAS {m['blas']} with {m['blas_threads']} threads; "
             f"ai-edge-litert {m['ai_edge_litert'] or 'not installed'} with the same "
             "thread count.", ""]
    def f(v, fmt="{:.3f}"):
        return "" if v is None else fmt.format(v)
    rows = [{"signature": r["signature"], "batch": r["batch"], "engine": r["engine"],
             "median ms": f(r["median_ms"]), "p90 ms": f(r["p90_ms"]),
             "× LiteRT": f(r.get("x ai-edge-litert (exported)"), "{:.2f}"),
             "× NumPy": f(r.get("x bare NumPy"), "{:.2f}"),
             "× limit": f(r.get("x machine limit"), "{:.2f}")}
            for r in results["latency"]]
    lines.append(table(rows, ["signature", "batch", "engine", "median ms", "p90 ms",
                              "× LiteRT", "× NumPy", "× limit"]))
    lines.append("")
    lines.append("× peer = litetrain's time / the peer's time, median of per-round ratios.")
    lines += ["", "Convolutional and recurrent train steps (authored, exported, batch "
              f"{cnn_training.BATCH}):", "", cnn_training.report(results["cnn_training"])]
    p = results["pretraining"]
    lines.append(f"\nPre-training (authored model, batch {p['batch']}): "
                 f"{p['litetrain_images_s']:,.0f} images/s vs {p['numpy_images_s']:,.0f} for "
                 f"hand-written NumPy = {1 / p['throughput_ratio']:.2f}× its throughput.")
    t = results["threads"]
    lines.append("BLAS threads, exported train step, default vs 1 thread: " + ", ".join(
        f"batch {r['batch']} {r['default_speedup']:.2f}× faster" for r in t) + ".")
    c = results["cold_start"]
    lines.append("Cold start (new process: import + load + first train step, batch 100): "
                 + ", ".join(f"{k} {v['seconds']:.3f} s ({v['process_s']:.3f} s with "
                             "Python's own start)" for k, v in c.items())
                 + f"; litetrain on the exported file "
                 f"{results['cold_start_exported']['litetrain']['seconds']:.3f} s.")
    for name, r in results["peak_rss"].items():
        lines.append(f"Peak RSS while training ({name}, batch 100): "
                     f"{r['above_baseline'] / 1e6:.2f} MB above the loaded interpreter; "
                     f"budget 1.5 × (state {r['state'] / 1e6:.2f} MB + activations "
                     f"{r['activations'] / 1e6:.2f} MB) = {r['budget'] / 1e6:.2f} MB "
                     f"→ {r['above_baseline'] / r['budget']:.2f} of it.")
    lines.append("Installed size with runtime dependencies: " + "; ".join(
        f"{k} {v['total'] / 1e6:.1f} MB ("
        + ", ".join(f"{n} {b / 1e6:.1f}" for n, b in v["parts"].items()) + ")"
        for k, v in results["installed"].items()) + ".")
    lines += ["", convnets.report(results["convnets"])]
    lines += ["", quantized.report(results["quantized"])]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--json", type=Path,
                        default=ROOT / "benchmarks" / "results" / "latest.json")
    parser.add_argument("--markdown", type=Path,
                        default=ROOT / "benchmarks" / "results" / "latest.md")
    args = parser.parse_args()
    results = run(args.quick)
    text = report(results)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    args.markdown.write_text(text + "\n")
    print(f"\nwrote {args.json} and {args.markdown}")


if __name__ == "__main__":
    main()
