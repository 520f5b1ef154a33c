"""Training as a device does it: in the background, within a time budget, paused while the
app needs the CPU, stopped at any moment, and resumed later exactly where it left off.

Uses the TensorFlow-made transfer-learning model in tests/fixtures/personalization (a
frozen convolutional base whose `load` signature gives bottleneck features, a trainable
head with Adam) on digits 0-3 shipped with litetrain.

    python examples/training_session.py [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import litetrain as lt

MODEL = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "personalization" / \
    "model.tflite"


def bottlenecks(images: np.ndarray) -> np.ndarray:
    """The frozen base's features, computed once (the blog post's `load` signature)."""
    load = lt.Interpreter(model_path=MODEL).get_signature_runner("load")
    return np.concatenate([load(feature=images[i:i + 100])["bottleneck"]
                           for i in range(0, len(images), 100)])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="folder for the checkpoint (default: a temp folder)")
    args = parser.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp())
    (x, y), (xt, yt) = lt.data.load_digits()
    keep, keep_test = y < 4, yt < 4
    data = {"bottleneck": bottlenecks(x[keep][:800]), "label": lt.data.one_hot(y[keep][:800], 4)}
    settings = dict(epochs=4, batch_size=16, validation_split=0.2,
                    checkpoint=out / "head.ckpt", snapshot_every=10)

    # 1. In the background, until the app wants the CPU back: pause, then stop.
    session = lt.TrainingSession(lt.Interpreter(model_path=MODEL), data, **settings)
    session.start()
    while session.report.total_steps < 30:
        time.sleep(0.001)
    session.pause()  # holds between steps, after writing its snapshot
    while not session.paused:
        time.sleep(0.001)
    print(f"paused at step {session.report.total_steps}")
    session.resume()
    session.stop()
    first = session.wait()
    print(f"stopped at step {first.total_steps} ({first.stopped})")

    # 2. Later (a new process, after a reboot...): continue exactly where it stopped.
    interpreter = lt.Interpreter(model_path=MODEL)
    report = lt.TrainingSession(interpreter, data, resume=True, **settings).run()
    print(f"resumed from the {report.started_from} and finished: {report.total_steps} steps, "
          f"validation loss {report.validation_losses[-1]:.3f}")

    infer = interpreter.get_signature_runner("infer")
    accuracy = float(np.mean(infer(feature=xt[keep_test])["output"].argmax(-1) ==
                             yt[keep_test]))
    print(f"accuracy on {int(keep_test.sum())} test digits 0-3: {accuracy:.1%}")
    return {"first": first, "report": report, "accuracy": accuracy,
            "checkpoint": settings["checkpoint"]}


if __name__ == "__main__":
    main()
