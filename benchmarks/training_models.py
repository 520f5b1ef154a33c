"""Train-step time of TensorFlow-made training models (one of each kind in
``tests/fixtures/tf_training``) against the step's GEMM-FLOP limit and, where TensorFlow 2.18
is available, against TensorFlow Lite's own interpreter (with its Flex delegate).

* litetrain: the median of repeated ``train`` calls on the fixture's recorded batch;
* limit: the same step's matrix products (matmuls, fully connected layers, convolutions
  and their gradients, in every subgraph the step runs, loop bodies included) as float32
  GEMMs at NumPy's BLAS rate, same shapes — timed interleaved with litetrain;
* TensorFlow 2.18: ``--tf-python PATH`` (default: ``.venv-tf/bin/python`` in the
  repository or beside it, when present) times ``tf.lite.Interpreter`` in a separate
  process on the same files and batches, before and after litetrain's runs.

    python benchmarks/training_models.py [--quick] [--tf-python PATH] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks")]

from common import interleaved, sgemm_runner, table  # noqa: E402

import litetrain  # noqa: E402
from litetrain.ops.common import as_int_tuple  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "tf_training"
KINDS = ["blog_transfer", "batchnorm_train", "dropout_seeded", "embedding", "lstm_flex",
         "gru_flex", "lstm_unrolled", "transformer", "regression_l2", "optimizers/nadam",
         "keras3_cnn", "keras3_mlp"]


class _Recording(litetrain.Interpreter):
    """An interpreter that keeps every subgraph run's values (loop bodies included)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.runs: list[tuple[int, list]] = []

    def run_subgraph(self, subgraph_index, feeds, where=None):
        values = super().run_subgraph(subgraph_index, feeds, where)
        self.runs.append((subgraph_index, values))
        return values


def _gemms(node, v) -> list[tuple[int, int, int]]:
    """(m, k, n) of the products a node does, from its run-time operand shapes."""
    ins = [None if i < 0 else v[i] for i in node.inputs]
    outs = [v[i] for i in node.outputs]
    op, a = node.op, node.attrs
    if op == "batch_matmul":
        x, w = ins[0], ins[1]
        m = x.shape[-1] if a.get("adj_x") else x.shape[-2]
        k = x.shape[-2] if a.get("adj_x") else x.shape[-1]
        n = w.shape[-2] if a.get("adj_y") else w.shape[-1]
        return [(m, k, n)] * int(np.prod(outs[0].shape[:-2], dtype=np.int64))
    if op == "fully_connected":
        units, depth = ins[1].shape
        return [(ins[0].size // depth, depth, units)]
    if op in ("conv_2d", "transpose_conv"):
        o, kh, kw, ci = ins[1].shape
        rows = outs[0].size // outs[0].shape[-1] if op == "conv_2d" else \
            ins[2].size // ins[2].shape[-1]
        return [(rows, kh * kw * ci, o)]
    if op in ("FlexConv2DBackpropInput", "FlexConv2DBackpropFilter"):
        dy = ins[2]
        kh, kw, ci, co = ins[1].shape if op.endswith("Input") else as_int_tuple(ins[1])
        return [(dy.size // co, co, kh * kw * ci)]
    return []


def step_shapes(path: Path, feeds: dict) -> list[tuple[int, int, int]]:
    it = _Recording(model_path=str(path), experimental_preserve_all_tensors=True)
    it.get_signature_runner("train")(**feeds)
    shapes = []
    for index, values in it.runs:
        for node in it.model.subgraphs[index].nodes:
            if all(i < 0 or values[i] is not None for i in (*node.inputs, *node.outputs)):
                shapes += _gemms(node, values)
    return shapes


def _feeds(kind: str) -> dict:
    meta = json.loads((FIXTURES / kind / "meta.json").read_text())
    exp = np.load(FIXTURES / kind / "expected.npz")
    return {n: exp[f"train_{n}_0"] for n in meta["protocol"]["train_inputs"]}


_TF_TIMER = r"""
import json, sys, time, numpy as np, tensorflow as tf
out = {}
for kind, path, feed_file in json.loads(sys.argv[1]):
    feeds = dict(np.load(feed_file))
    it = tf.lite.Interpreter(model_path=path)
    train = it.get_signature_runner("train")
    for _ in range(3):
        train(**feeds)
    times = []
    for _ in range(int(sys.argv[2])):
        t = time.perf_counter(); train(**feeds); times.append(time.perf_counter() - t)
    out[kind] = float(np.median(times)) * 1e3
print(json.dumps(out))
"""


def tensorflow_times(tf_python: Path | None, kinds: list[str], repeats: int,
                     tmp: Path) -> dict[str, float] | None:
    if tf_python is None or not tf_python.exists():
        return None
    jobs = []
    for kind in kinds:
        feed_file = tmp / f"{kind.replace('/', '_')}.npz"
        np.savez(feed_file, **_feeds(kind))
        jobs.append((kind, str(FIXTURES / kind / "model.tflite"), str(feed_file)))
    r = subprocess.run([str(tf_python), "-c", _TF_TIMER, json.dumps(jobs), str(repeats)],
                       capture_output=True, text=True, env={"TF_CPP_MIN_LOG_LEVEL": "3",
                                                             "PATH": "/usr/bin:/bin"})
    if r.returncode:
        print(f"TensorFlow timing failed: {r.stderr.strip().splitlines()[-1:]}",
              file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def run(quick: bool, tf_python: Path | None) -> list[dict]:
    import tempfile

    kinds = KINDS[:3] if quick else KINDS
    rounds, repeats = (2, 3) if quick else (5, 10)
    with tempfile.TemporaryDirectory() as tmp:
        tf_before = tensorflow_times(tf_python, kinds, repeats * rounds, Path(tmp))
        rows = []
        for kind in kinds:
            path, feeds = FIXTURES / kind / "model.tflite", _feeds(kind)
            shapes = step_shapes(path, feeds)
            train = litetrain.Interpreter(model_path=str(path)).get_signature_runner("train")
            cands = {"litetrain": lambda t=train, f=feeds: t(**f),
                     "limit": sgemm_runner(shapes)}
            r = interleaved(cands, "litetrain", rounds, repeats)
            flops = 2 * sum(m * k * n for m, k, n in shapes)
            rows.append({"model": kind, "step ms": f"{r['litetrain']['median_ms']:.2f}",
                         "GEMM MFLOP": f"{flops / 1e6:.1f}",
                         "× limit": f"{r['limit']['ratio']:.2f}"})
        tf_after = tensorflow_times(tf_python, kinds, repeats * rounds, Path(tmp))
    for row in rows:
        if tf_before and tf_after:
            tf_ms = (tf_before[row["model"]] + tf_after[row["model"]]) / 2
            row["TF 2.18 ms"] = f"{tf_ms:.2f}"
            row["× TF 2.18"] = f"{float(row['step ms']) / tf_ms:.2f}"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three models, few repeats")
    default_tf = next((p for p in (ROOT / ".venv-tf/bin/python",
                                   ROOT.parent / ".venv-tf/bin/python") if p.exists()), None)
    parser.add_argument("--tf-python", type=Path, default=default_tf,
                        help="a Python with TensorFlow 2.18 (default: .venv-tf if present)")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    rows = run(args.quick, args.tf_python)
    columns = ["model", "step ms", "GEMM MFLOP", "× limit", "TF 2.18 ms", "× TF 2.18"]
    text = table(rows, columns)
    print(text)
    print("\n× limit: litetrain's step time / the step's GEMMs at NumPy's sgemm rate (same "
          "run, interleaved). × TF 2.18: litetrain / TensorFlow Lite's interpreter "
          "(separate process, timed before and after).")
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
