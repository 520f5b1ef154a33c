"""``litetrain demo``: the on-device training tutorial, end to end, on data shipped with the
package (no network).

1. build the tutorial's model with litetrain's authoring API and pre-train it ("desktop");
2. convert it to one ``.tflite`` (train/infer/save/restore, builtin ops only) and check the
   converted file's logits against the Python model's;
3. keep training in a fresh interpreter ("device") on the other half of the training data:
   the loss continues where pre-training stopped;
4. save a checkpoint; a new interpreter starts from the file's weights (baseline), restoring
   the checkpoint brings the personalised model back;
5. report test accuracy of both and write the tutorial's three plots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from ..author import losses, nn, optimizers
from ..author.export import convert
from ..author.trainable import trainable
from ..data import batches, class_names, load_dataset, load_digits, one_hot
from ..runtime.interpreter import Interpreter
from . import plots
from .progress import Progress


@dataclass
class DemoReport:
    out_dir: Path
    pretrain_losses: list[float]
    device_losses: list[float]
    convert_max_abs_diff: float
    restore_max_abs_diff: float
    baseline_accuracy: float
    personalised_accuracy: float
    seconds: float
    files: dict[str, Path] = field(default_factory=dict)


def tutorial_model(learning_rate: float = 0.1, shape=(28, 28), classes: int = 10):
    """The tutorial's model (Flatten, Dense 128 relu, Dense 10) with its four signatures."""
    model = nn.Sequential([nn.Flatten(input_shape=shape), nn.Dense(128, activation="relu"),
                           nn.Dense(classes)])
    return trainable(model, loss=losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=optimizers.SGD(learning_rate))


def _load(dataset: str, data_dir: str | None, limit: int | None):
    if dataset == "digits":
        (x, y), (xt, yt) = load_digits()
        names = class_names("mnist")
    else:
        (x, y), (xt, yt) = load_dataset(dataset, data_dir=data_dir)
        names = class_names(dataset)
    if limit:
        x, y, xt, yt = x[:limit], y[:limit], xt[:max(limit // 4, 25)], yt[:max(limit // 4, 25)]
    return x, y, xt, yt, names


def _accuracy(infer, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    hits = sum(int(np.sum(np.argmax(infer(x=xb)["logits"], -1) == yb))
               for xb, yb in batches(x, y, batch_size=batch))
    return hits / len(y)


def run(out_dir: str | Path = "litetrain-demo", dataset: str = "digits",
        data_dir: str | None = None, epochs: int = 10, device_epochs: int = 10,
        batch_size: int = 100, limit: int | None = None, progress: bool = True,
        out: TextIO | None = None) -> DemoReport:
    start = time.perf_counter()
    say = (lambda *a: print(*a, file=out)) if out is not None else (lambda *a: print(*a))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x, y, xt, yt, names = _load(dataset, data_dir, limit)
    half = len(x) // 2
    desktop, device = (x[:half], one_hot(y[:half])), (x[half:], one_hot(y[half:]))
    say(f"data: {dataset}, {half} pre-training / {len(x) - half} on-device / {len(xt)} test "
        f"images")

    m = tutorial_model(shape=x.shape[1:])
    pre_losses: list[float] = []
    steps = epochs * -(-half // batch_size)
    with Progress(steps, "pre-train (desktop)", enabled=progress) as bar:
        for epoch in range(epochs):
            for xb, yb in batches(*desktop, batch_size=batch_size, shuffle=True, seed=epoch):
                pre_losses.append(float(m.train(xb, yb)["loss"]))
                bar.update(loss=pre_losses[-1])

    model_bytes = convert(m)
    model_path = out_dir / "model.tflite"
    model_path.write_bytes(model_bytes)
    interp = Interpreter(model_content=model_bytes)
    probe = xt[:100]
    convert_diff = float(np.max(np.abs(interp.get_signature_runner("infer")(x=probe)["logits"]
                                       - m.infer(probe)["logits"])))
    say(f"converted: {model_path} ({len(model_bytes):,} bytes, signatures "
        f"{sorted(interp.get_signature_list())}); converted vs original logits max |diff| "
        f"{convert_diff:.2e}")

    train = interp.get_signature_runner("train")
    device_losses: list[float] = []
    steps = device_epochs * -(-len(device[0]) // batch_size)
    with Progress(steps, "train (device)     ", enabled=progress) as bar:
        for epoch in range(device_epochs):
            for xb, yb in batches(*device, batch_size=batch_size, shuffle=True,
                                  seed=1000 + epoch):
                device_losses.append(float(train(x=xb, y=yb)["loss"]))
                bar.update(loss=device_losses[-1])
    ckpt = out_dir / "personalised.ckpt"
    interp.get_signature_runner("save")(checkpoint_path=str(ckpt))
    trained_logits = interp.get_signature_runner("infer")(x=probe)["logits"]

    fresh = Interpreter(model_path=str(model_path))
    infer = fresh.get_signature_runner("infer")
    baseline_logits = infer(x=probe)["logits"]
    baseline_acc = _accuracy(infer, xt, yt)
    fresh.get_signature_runner("restore")(checkpoint_path=str(ckpt))
    restored_logits = infer(x=probe)["logits"]
    personal_acc = _accuracy(infer, xt, yt)
    restore_diff = float(np.max(np.abs(restored_logits - trained_logits)))
    say(f"saved {ckpt}; new interpreter: test accuracy {baseline_acc:.1%} (file's weights); "
        f"after restore {personal_acc:.1%} (restored vs trained logits max |diff| "
        f"{restore_diff:.1e})")

    report = DemoReport(out_dir, pre_losses, device_losses, convert_diff, restore_diff,
                        baseline_acc, personal_acc, 0.0, {"model": model_path, "checkpoint": ckpt})
    if plots.available():
        predictions = np.argmax(infer(x=xt[:25])["logits"], -1)
        report.files["loss plot"] = plots.loss_curve(pre_losses, device_losses,
                                                     out_dir / "loss.png")
        report.files["logits plot"] = plots.logits_before_after(
            baseline_logits[0], restored_logits[0], names, out_dir / "logits.png",
            image=xt[0], true_label=int(yt[0]), index=0)
        report.files["predictions plot"] = plots.prediction_grid(
            xt[:25], yt[:25], predictions, names, out_dir / "predictions.png")
    else:
        say("plots skipped: matplotlib is not installed (pip install 'litetrain[plots]')")
    report.seconds = time.perf_counter() - start
    say(f"\nloss: pre-training {pre_losses[0]:.3f} -> {pre_losses[-1]:.3f}, on device "
        f"{device_losses[0]:.3f} -> {device_losses[-1]:.3f}")
    say(f"accuracy on {len(xt)} test images: {personal_acc:.1%} (chance: {1 / len(names):.0%})")
    for label, path in report.files.items():
        say(f"  {label:<17} {path}")
    say(f"done in {report.seconds:.1f} s")
    return report
