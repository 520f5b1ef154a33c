"""litetrain benchmarks on the tutorial model, every figure a ratio measured in this run.

* infer at batch 1 and 100: litetrain vs the same computation in bare NumPy;
* train step at batch 100: litetrain vs the machine's limit (the step's matmuls at the
  NumPy sgemm rate for the same shapes).

Each pair is timed in alternating rounds and the median per-round ratio is reported, with
the range over rounds: this machine's speed drifts, ratios measured together do not.

    python benchmarks/run.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from common import sgemm_runner, side_by_side, table  # noqa: E402

import litetrain  # noqa: E402

MODEL = ROOT / "tests" / "fixtures" / "tutorial" / "model.tflite"


def bare_numpy_infer(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    h = x.reshape(len(x), -1) @ weights["dense_1/kernel"] + weights["dense_1/bias"]
    np.maximum(h, 0, out=h)
    logits = h @ weights["dense_2/kernel"] + weights["dense_2/bias"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def train_step_matmuls(b: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of the tutorial train step's matmuls: forward, input grad, weight grads."""
    return [(b, 784, 128), (b, 128, 10), (b, 10, 128), (784, b, 128), (128, b, 10)]


def run() -> dict:
    rng = np.random.default_rng(0)
    it = litetrain.Interpreter(model_path=MODEL)
    infer, train = it.get_signature_runner("infer"), it.get_signature_runner("train")
    infer(x=np.zeros((1, 28, 28), np.float32))  # runs the init subgraph
    weights = it.variables.by_name()
    results = {"machine": {"python": platform.python_version(), "numpy": np.__version__,
                           "cpu": platform.processor() or platform.machine()}, "rows": []}
    def row(what: str, peer: str, r: dict) -> dict:
        return {"what": what, "litetrain_ms": r["ours"] * 1e3, "peer": peer,
                "peer_ms": r["peer"] * 1e3, "ratio": r["ratio"],
                "ratio_range": f"{r['ratio_min']:.2f}-{r['ratio_max']:.2f}"}

    for b in (1, 100):
        x = rng.random((b, 28, 28), np.float32)
        r = side_by_side(lambda x=x: infer(x=x), lambda x=x: bare_numpy_infer(weights, x),
                         repeats=100 if b == 1 else 30)
        results["rows"].append(row(f"infer batch {b}", "bare NumPy", r))
    b = 100
    x = rng.random((b, 28, 28), np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, b)]
    r = side_by_side(lambda: train(x=x, y=y), sgemm_runner(train_step_matmuls(b)))
    results["rows"].append(row("train step batch 100 (Flex model)", "machine limit (sgemm)", r))
    results["rows"] += authored_rows(row, x, y)
    return results


def numpy_sgd_step(w: dict, x: np.ndarray, y: np.ndarray, lr: np.float32) -> None:
    """The tutorial model's SGD step written by hand in NumPy (float32, in place)."""
    h0 = x.reshape(len(x), -1)
    z1 = h0 @ w["k1"] + w["b1"]
    h1 = np.maximum(z1, 0)
    logits = h1 @ w["k2"] + w["b2"]
    e = np.exp(logits - logits.max(1, keepdims=True))
    d_logits = (e / e.sum(1, keepdims=True) - y) / np.float32(len(x))
    d_h1 = (d_logits @ w["k2"].T) * (z1 > 0)
    w["k2"] -= lr * (h1.T @ d_logits)
    w["b2"] -= lr * d_logits.sum(0)
    w["k1"] -= lr * (h0.T @ d_h1)
    w["b1"] -= lr * d_h1.sum(0)


def authored_rows(row, x: np.ndarray, y: np.ndarray) -> list[dict]:
    """The tutorial model written in litetrain: pre-training step vs hand-written NumPy,
    and its exported file's train step vs ai-edge-litert on the same file."""
    sys.path.insert(0, str(ROOT / "examples"))
    from author_tutorial_model import Model

    m = Model()
    m.train(x, y)
    v = m.variable_values()
    w = {"k1": v["dense_1/kernel"], "b1": v["dense_1/bias"], "k2": v["dense_2/kernel"],
         "b2": v["dense_2/bias"]}
    rows = [row("pre-training step batch 100 (authored)", "hand-written NumPy step",
                side_by_side(lambda: m.train(x, y),
                             lambda: numpy_sgd_step(w, x, y, np.float32(0.1))))]
    rows[-1]["note"] = f"{100 / (rows[-1]['litetrain_ms'] / 1e3):,.0f} images/s"
    data = litetrain.convert(m)
    ours = litetrain.Interpreter(model_content=data).get_signature_runner("train")
    try:
        from ai_edge_litert.interpreter import Interpreter as LiteRT
    except ImportError:
        return rows
    # NumPy's BLAS uses every core by default; give LiteRT the same thread count.
    theirs = LiteRT(model_content=data, num_threads=os.cpu_count() or 1
                    ).get_signature_runner("train")
    rows.append(row("exported train step batch 100", "ai-edge-litert, same file",
                    side_by_side(lambda: ours(x=x, y=y), lambda: theirs(x=x, y=y))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=ROOT / "benchmarks" / "results" / "latest.json")
    args = parser.parse_args()
    results = run()
    rows = [{k: f"{v:.3f}" if isinstance(v, float) else v for k, v in r.items()}
            for r in results["rows"]]
    print(table(rows, ["what", "litetrain_ms", "peer", "peer_ms", "ratio", "ratio_range",
                       "note"]))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
