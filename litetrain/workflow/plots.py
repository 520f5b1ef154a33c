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


def logits_figure(before: np.ndarray, after: np.ndarray, classes: Sequence[str],
                  image: np.ndarray | None = None, true_label: int | None = None,
                  index: int = 0):
    """The figure of :func:`logits_before_after` (returned for inspection)."""
    plt = _pyplot()
    panels = 3 if image is not None else 2
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels + 1, 3.6),
                             gridspec_kw={"width_ratios": [0.6] * (panels - 2) + [1, 1]})
    truth = f"true label: {classes[true_label]}" if true_label is not None else ""
    if image is not None:
        axes[0].imshow(image, cmap="gray_r")
        axes[0].axis("off")
        axes[0].set_title(f"test image #{index}\n{truth}", fontsize=9)
    short = all(len(c) <= 2 for c in classes)  # digits stay upright; long names are slanted
    for ax, values, title in ((axes[-2], before, "new interpreter (file's weights)"),
                              (axes[-1], after, "after restore (personalised)")):
        colors = ["tab:green" if k == true_label else "tab:blue" for k in range(len(values))]
        ax.bar(np.arange(len(values)), values, color=colors)
        ax.set_xticks(np.arange(len(values)), classes, rotation=0 if short else 45,
                      ha="center" if short else "right", fontsize=8)
        ax.set_xlabel("class (green: the true one)" if true_label is not None else "class")
        ax.set_title(title, fontsize=10)
    axes[-2].set_ylabel("logit")
    fig.suptitle(f"Logits for test image #{index}" + (f" ({truth})" if truth else ""),
                 fontsize=11)
    fig.tight_layout()
    return fig


def logits_before_after(before: np.ndarray, after: np.ndarray, classes: Sequence[str],
                        path: Path, image: np.ndarray | None = None,
                        true_label: int | None = None, index: int = 0) -> Path:
    """One test image (shown, with its true label) and its logits from the file's weights
    and after restoring the checkpoint."""
    fig = logits_figure(before, after, classes, image, true_label, index)
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def prediction_figure(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                      classes: Sequence[str]):
    """The figure of :func:`prediction_grid` (returned for inspection)."""
    plt = _pyplot()
    shown = min(len(images), 25)
    right = int(np.sum(predictions[:shown] == labels[:shown]))
    fig, axes = plt.subplots(5, 5, figsize=(7, 8.2))
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= shown:
            continue
        ax.imshow(images[k], cmap="gray_r")
        ok = predictions[k] == labels[k]
        title = classes[predictions[k]] if ok else \
            f"{classes[predictions[k]]} (true: {classes[labels[k]]})"
        ax.set_title(title, color="black" if ok else "red", fontsize=8)
    fig.suptitle(f"Predictions on {shown} test images: {right}/{shown} right "
                 f"({right / max(shown, 1):.0%})\nred = wrong prediction (true label in "
                 "brackets)", fontsize=10)
    fig.tight_layout()
    return fig


def prediction_grid(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                    classes: Sequence[str], path: Path) -> Path:
    """A 5×5 grid of test images titled with the predicted class (wrong ones in red, with
    the true label), under a title giving the accuracy."""
    fig = prediction_figure(images, labels, predictions, classes)
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path
