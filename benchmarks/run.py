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
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=ROOT / "benchmarks" / "results" / "latest.json")
    args = parser.parse_args()
    results = run()
    rows = [{k: f"{v:.3f}" if isinstance(v, float) else v for k, v in r.items()}
            for r in results["rows"]]
    print(table(rows, ["what", "litetrain_ms", "peer", "peer_ms", "ratio", "ratio_range"]))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
