"""Transfer learning end to end without TensorFlow, on the digits the package ships.

1. "Desktop": author a small CNN, pre-train it on the digits 0-5, and export its feature
   extractor as a plain float inference .tflite — the kind of pretrained file a model hub
   or vendor SDK ships.
2. "Device": build the blog post's transfer-learning file on that base for a *new* task
   the base never saw (telling 6, 7, 8 and 9 apart), compute bottlenecks with `load`,
   train the head with `train`, and measure accuracy with `infer`.
3. Quantize the personalised model (dynamic range) for inference, and check it agrees.

    python examples/transfer_digits.py [--epochs N] [--head-steps N]
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np

import litetrain as lt
from litetrain.data import load_digits, one_hot


def pretrained_base(x: np.ndarray, labels: np.ndarray, epochs: int) -> bytes:
    """A CNN trained on digits 0-5; returns its feature extractor as a float .tflite."""
    features = lt.nn.Sequential([lt.nn.Conv2D(8, 3, activation="relu", input_shape=(28, 28, 1)),
                                 lt.nn.MaxPool2D(2), lt.nn.Conv2D(16, 3, activation="relu"),
                                 lt.nn.MaxPool2D(2), lt.nn.Flatten()])
    classifier = lt.nn.Sequential([*features.layers, lt.nn.Dense(6)])
    model = lt.trainable(classifier, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                         optimizer=lt.optimizers.Adam(3e-3))
    keep = labels < 6
    xs, ys = x[keep][..., None], one_hot(labels[keep], 6)
    for _ in range(epochs):
        for i in range(0, len(xs) - 63, 64):
            model.train(xs[i:i + 64], ys[i:i + 64])

    class FeatureExtractor(lt.Module):  # inference only: what a pretrained file holds
        def __init__(self):
            self.features = features

        @lt.signature(lt.TensorSpec([None, 28, 28, 1]))
        def serving_default(self, image):
            return {"features": self.features(image)}

    module = FeatureExtractor()
    for layer in features.layers:  # carry the pre-trained weights over
        for v in layer.weights:
            v.initial_value = model.variable_values()[v.name]
    return lt.convert(module)


def main(epochs: int = 2, head_steps: int = 150) -> dict:
    (x, labels), (tx, tlabels) = load_digits()
    base = pretrained_base(x, labels, epochs)
    new_task, test = labels >= 6, tlabels >= 6
    xs, ys = x[new_task][..., None], one_hot(labels[new_task] - 6, 4)
    txs, tys = tx[test][..., None], tlabels[test] - 6

    with tempfile.TemporaryDirectory() as tmp:
        base_file = Path(tmp) / "base.tflite"
        base_file.write_bytes(base)
        device = lt.Interpreter(model_content=lt.convert(lt.transfer(
            base_file, num_classes=4, optimizer=lt.optimizers.Adam(3e-3))))
    infer = device.get_signature_runner("infer")
    before = float(np.mean(infer(feature=txs)["output"].argmax(-1) == tys))
    bottlenecks = device.get_signature_runner("load")(feature=xs)["bottleneck"]
    train = device.get_signature_runner("train")
    rng = np.random.default_rng(0)
    for _ in range(head_steps):
        rows = rng.integers(0, len(xs), 32)
        loss = float(train(bottleneck=bottlenecks[rows], label=ys[rows])["loss"])
    after = float(np.mean(infer(feature=txs)["output"].argmax(-1) == tys))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the quantized copy keeps only `infer`
        small = lt.quantize(device, mode="dynamic_range")
    quantized = lt.Interpreter(model_content=small).get_signature_runner("infer")
    q_acc = float(np.mean(quantized(feature=txs)["output"].argmax(-1) == tys))
    report = {"accuracy_before": before, "accuracy_after": after, "quantized_accuracy": q_acc,
              "last_loss": loss, "base_bytes": len(base), "quantized_bytes": len(small)}
    print(f"new task (6/7/8/9): accuracy {before:.1%} before personalisation, {after:.1%} "
          f"after {head_steps} head steps on the device; quantized model {q_acc:.1%} "
          f"({len(small):,} bytes)")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--head-steps", type=int, default=150)
    args = parser.parse_args()
    main(args.epochs, args.head_steps)
