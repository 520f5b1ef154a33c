"""The on-device training tutorial's model, written with litetrain instead of TensorFlow.

Pre-train on the desktop, convert to one .tflite file with train/infer/save/restore, then
keep training "on the device" in a fresh interpreter (the loss continues the pre-training
curve), save a checkpoint, restore it into another interpreter, and check the logits.
The exported file uses builtin ops only, so it also trains in the official LiteRT runtime.

    python examples/author_tutorial_model.py [--epochs N] [--device-epochs N] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import litetrain as lt
from litetrain.data import batches, load_digits, one_hot


class Model(lt.Module):
    """The tutorial's tf.Module, line for line."""

    def __init__(self):
        self.model = lt.nn.Sequential([
            lt.nn.Flatten(input_shape=(28, 28), name="flatten"),
            lt.nn.Dense(128, activation="relu", name="dense_1"),
            lt.nn.Dense(10, name="dense_2"),
        ])
        self.loss = lt.losses.CategoricalCrossentropy(from_logits=True)
        self.optimizer = lt.optimizers.SGD(learning_rate=0.1)

    @lt.signature(lt.TensorSpec([None, 28, 28]), lt.TensorSpec([None, 10]))
    def train(self, x, y):
        with lt.GradientTape() as tape:
            prediction = self.model(x)
            loss = self.loss(y, prediction)
        gradients = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables,
                                           strict=True))
        return {"loss": loss}

    @lt.signature(lt.TensorSpec([None, 28, 28]))
    def infer(self, x):
        logits = self.model(x)
        probabilities = lt.nn.softmax(logits, axis=-1)
        return {"output": probabilities, "logits": logits}

    @lt.signature(lt.TensorSpec([], str))
    def save(self, checkpoint_path):
        return {"checkpoint_path": lt.save(checkpoint_path, self.model.weights)}

    @lt.signature(lt.TensorSpec([], str))
    def restore(self, checkpoint_path):
        return lt.restore(checkpoint_path, self.model.weights)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="pre-training epochs")
    parser.add_argument("--device-epochs", type=int, default=5)
    parser.add_argument("--out", default=tempfile.mkdtemp(prefix="litetrain-"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    (train_x, train_y), (test_x, test_y) = load_digits()
    train_y = one_hot(train_y)
    pretrain_x, pretrain_y = train_x[:2000], train_y[:2000]   # the desktop's data
    device_x, device_y = train_x[2000:], train_y[2000:]       # the user's own data

    m = Model()
    pre_losses = []
    for _ in range(args.epochs):
        for x, y in batches(pretrain_x, pretrain_y, batch_size=100):
            result = m.train(x, y)
        pre_losses.append(float(result["loss"]))
    print("pre-training losses:", np.round(pre_losses, 3))

    model_path = out / "model.tflite"
    model_path.write_bytes(lt.convert(m))
    interpreter = lt.Interpreter(model_path=model_path)
    same = np.abs(interpreter.get_signature_runner("infer")(x=test_x[:10])["logits"]
                  - m.infer(test_x[:10])["logits"]).max()
    print(f"converted vs original logits: max difference {same:.2e}")

    train = interpreter.get_signature_runner("train")
    device_losses = []
    for _ in range(args.device_epochs):
        for x, y in batches(device_x, device_y, batch_size=100):
            result = train(x=x, y=y)
        device_losses.append(float(result["loss"]))
    print("on-device losses:   ", np.round(device_losses, 3))

    checkpoint = out / "model.ckpt"
    interpreter.get_signature_runner("save")(checkpoint_path=str(checkpoint))
    fresh = lt.Interpreter(model_path=model_path)
    baseline = fresh.get_signature_runner("infer")(x=test_x)["output"]
    fresh.get_signature_runner("restore")(checkpoint_path=str(checkpoint))
    restored = fresh.get_signature_runner("infer")(x=test_x)
    trained = interpreter.get_signature_runner("infer")(x=test_x)
    accuracy = float(np.mean(restored["output"].argmax(1) == test_y))
    print(f"accuracy: file weights {np.mean(baseline.argmax(1) == test_y):.3f}, "
          f"after restore {accuracy:.3f}")
    print(f"model: {model_path}  checkpoint: {checkpoint}")
    return {"pre_losses": pre_losses, "device_losses": device_losses,
            "converted_max_diff": float(same), "accuracy": accuracy,
            "restored_logits": restored["logits"], "trained_logits": trained["logits"],
            "model_path": model_path}


if __name__ == "__main__":
    main()
