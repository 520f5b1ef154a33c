"""The inputs mutations start from: real model files and checkpoints (built once)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@functools.cache
def models() -> tuple[tuple[str, bytes], ...]:
    """(name, .tflite bytes): TF-made inference and training files and two authored
    training files (builtin save/restore with checkpoint-I/O metadata, and Flex)."""
    import litetrain as lt

    out = [(p, (FIXTURES / p).read_bytes()) for p in (
        "inference/float.tflite", "inference/int8.tflite", "inference/dynamic_range.tflite",
        "tutorial/model.tflite", "personalization/model.tflite")]
    for fmt in ("builtin", "flex"):
        net = lt.nn.Sequential([lt.nn.Conv2D(2, 3, input_shape=(6, 6, 1), activation="relu"),
                                lt.nn.Flatten(), lt.nn.Dense(3)])
        module = lt.trainable(net, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                              optimizer=lt.optimizers.Adam(0.01))
        out.append((f"authored-{fmt}", lt.convert(module, save_format=fmt)))
    return tuple(out)


@functools.cache
def checkpoint_model() -> bytes:
    """A small Flex training model whose restore reads V1 checkpoints (the tutorial's)."""
    return dict(models())["authored-flex"]


@functools.cache
def checkpoint_tensors() -> dict[str, np.ndarray]:
    """Tensors a checkpoint for :func:`checkpoint_model` holds, plus every dtype."""
    import litetrain as lt

    it = lt.Interpreter(model_content=checkpoint_model())
    it.get_signature_runner("infer")(x=np.zeros((1, 6, 6, 1), np.float32))
    weights = {f"{k}:0": v for k, v in it.variables.by_name().items()
               if not k.startswith(("adam", "Adam", "iter"))}
    return weights
