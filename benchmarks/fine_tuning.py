"""Memory-lean fine-tuning: one CNN exported three ways — every weight trains
(``fine_tune="all"``), only biases (``"bias"``, TinyTL's bias-only tuning) or only the last
layer (``"last:1"``) — and for each, the train step's time (interleaved, beside the full
model's) and the peak RSS of 21 train steps (the first one prepares the plan) above the loaded
interpreter (a new process each, VmHWM reset at the baseline).

    python benchmarks/fine_tuning.py [--batch N] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks")]

from common import interleaved, table  # noqa: E402
from process import _STATUS  # noqa: E402

import litetrain as lt  # noqa: E402

MODES = ("all", "bias", "last:1")

_RSS = _STATUS + """
import json, numpy as np, litetrain
train = litetrain.Interpreter(model_path={path!r}).get_signature_runner("train")
rng = np.random.default_rng(0)
x = rng.random(({b}, 32, 32, 3), dtype=np.float32)
y = np.eye(10, dtype=np.float32)[np.arange({b}) % 10]
baseline = status('VmRSS')
reset_peak()
for _ in range(21):
    train(x=x, y=y)
print(json.dumps(dict(peak=status('VmHWM') - baseline)))
"""


def cnn_file(mode: str) -> bytes:
    model = lt.nn.Sequential([
        lt.nn.Conv2D(16, 3, padding="same", activation="relu", input_shape=(32, 32, 3)),
        lt.nn.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        lt.nn.Conv2D(64, 3, strides=2, padding="same", activation="relu"),
        lt.nn.GlobalAveragePooling2D(), lt.nn.Dense(10)])
    return lt.convert(lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(
        from_logits=True), optimizer=lt.optimizers.SGD(0.01), fine_tune=mode))


def run(batch: int) -> list[dict]:
    rng = np.random.default_rng(0)
    x = rng.random((batch, 32, 32, 3), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[np.arange(batch) % 10]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runners, files = {}, {}
        for mode in MODES:
            files[mode] = Path(tmp) / f"{mode.replace(':', '_')}.tflite"
            files[mode].write_bytes(cnn_file(mode))
            train = lt.Interpreter(model_path=str(files[mode])).get_signature_runner("train")
            runners[mode] = lambda t=train: t(x=x, y=y)
        timing = interleaved(runners, "all", rounds=5, repeats=5)
        for mode in MODES:
            done = subprocess.run([sys.executable, "-c", _RSS.format(path=str(files[mode]),
                                                                       b=batch)],
                                  capture_output=True, text=True, check=True)
            peak = json.loads(done.stdout.strip().splitlines()[-1])["peak"]
            rows.append({"fine_tune": mode,
                         "step ms": f"{timing[mode]['median_ms']:.2f}",
                         "× full step": "1.00" if mode == "all" else
                         f"{1 / timing[mode]['ratio']:.2f}",
                         "peak RSS MB": f"{peak / 2**20:.1f}"})
    full = float(rows[0]["peak RSS MB"]) or 1.0
    for row in rows:
        row["× full RSS"] = f"{float(row['peak RSS MB']) / full:.2f}"
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    text = table(run(args.batch), ["fine_tune", "step ms", "× full step", "peak RSS MB",
                                   "× full RSS"])
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
