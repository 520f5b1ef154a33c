"""The TensorFlow on-device training tutorial's Python code, run by litetrain.

This is the tutorial's "train, save, restore, infer" part unchanged except for the
interpreter import (and ``np.string_`` → ``np.bytes_``, its NumPy 2 name; the tutorial's
``tf.data`` batching is a NumPy loop here). It runs the model that TensorFlow's converter
produced (``tests/fixtures/tutorial/model.tflite``), which needs the Flex delegate that no
current Google Python package has. The data are the MNIST digits litetrain ships.

    python examples/tutorial_tflite_model.py [--model PATH] [--epochs N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

import litetrain
from litetrain.data import batches, load_digits, one_hot

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=HERE.parent / "tests/fixtures/tutorial/model.tflite")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--checkpoint", default=os.path.join(tempfile.gettempdir(),
                                                             "model.ckpt"))
    args = parser.parse_args(argv)

    (train_images, train_labels), (test_images, test_labels) = load_digits()
    train_labels, test_labels = one_hot(train_labels), one_hot(test_labels)
    tflite_model = Path(args.model).read_bytes()

    # --- the tutorial, with `tf.lite.Interpreter` → `litetrain.Interpreter` ---
    interpreter = litetrain.Interpreter(model_content=tflite_model)
    interpreter.allocate_tensors()
    train = interpreter.get_signature_runner("train")

    NUM_EPOCHS = args.epochs
    BATCH_SIZE = 100
    more_epochs = np.zeros([NUM_EPOCHS])
    for epoch in range(NUM_EPOCHS):
        for x, y in batches(train_images, train_labels, batch_size=BATCH_SIZE):
            result = train(x=x, y=y)
        more_epochs[epoch] = result["loss"]
        if (epoch + 1) % 5 == 0 or epoch + 1 == NUM_EPOCHS:
            print(f"Finished {epoch + 1} epochs")
            print(f"  loss: {more_epochs[epoch]:.3f}")

    save = interpreter.get_signature_runner("save")
    save(checkpoint_path=np.array(args.checkpoint, dtype=np.bytes_))

    another_interpreter = litetrain.Interpreter(model_content=tflite_model)
    another_interpreter.allocate_tensors()

    infer = another_interpreter.get_signature_runner("infer")
    restore = another_interpreter.get_signature_runner("restore")
    logits_before = infer(x=train_images[:1])["logits"][0]

    # Restore the trained weights from the checkpoint
    restore(checkpoint_path=np.array(args.checkpoint, dtype=np.bytes_))

    logits_after = infer(x=train_images[:1])["logits"][0]
    print("Logits before restore:", np.round(logits_before, 2))
    print("Logits after restore: ", np.round(logits_after, 2))

    result = infer(x=test_images)
    predictions = np.argmax(result["output"], axis=1)
    true_labels = np.argmax(test_labels, axis=1)
    accuracy = float(np.mean(predictions == true_labels))
    print(f"Test accuracy after on-device training: {accuracy:.3f}")
    return {"losses": more_epochs, "accuracy": accuracy, "logits_before": logits_before,
            "logits_after": logits_after}


if __name__ == "__main__":
    main()
