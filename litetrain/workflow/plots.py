"""The tutorial's three figures, as PNG files (needs the optional ``matplotlib``:
``pip install litetrain[plots]``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    return plt


def loss_curve(pre: Sequence[float], device: Sequence[float], path: Path) -> Path:
    """Per-step loss: pre-training on the desktop, then on the device, on one x axis."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(np.arange(len(pre)), pre, label="pre-training (desktop)")
    ax.plot(np.arange(len(pre), len(pre) + len(device)), device, label="on device")
    ax.set(xlabel="step", ylabel="loss", title="Training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def logits_before_after(before: np.ndarray, after: np.ndarray, classes: Sequence[str],
                        path: Path) -> Path:
    """One test image's logits from the file's weights and after restoring the checkpoint."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True)
    for ax, values, title in ((axes[0], before, "new interpreter (file's weights)"),
                              (axes[1], after, "after restore (personalised)")):
        ax.bar(np.arange(len(values)), values)
        ax.set_xticks(np.arange(len(values)), classes, rotation=45, ha="right", fontsize=8)
        ax.set_title(title)
    axes[0].set_ylabel("logit")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def prediction_grid(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                    classes: Sequence[str], path: Path) -> Path:
    """A 5×5 grid of test images titled with the predicted class (wrong ones in red)."""
    plt = _pyplot()
    fig, axes = plt.subplots(5, 5, figsize=(7, 7.6))
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(images):
            continue
        ax.imshow(images[k], cmap="gray_r")
        ok = predictions[k] == labels[k]
        ax.set_title(classes[predictions[k]], color="black" if ok else "red", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
