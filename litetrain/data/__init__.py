"""Data sets and batching.

``load_digits()`` returns the 5,000 real MNIST digits shipped inside the package (500 per
class; source and license in NOTICE), split deterministically into train and test.
``load_dataset("mnist" | "fashion-mnist", data_dir=...)`` reads the published IDX files
from a folder, or downloads them once into a cache (see ``datasets.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources

import numpy as np

from .datasets import class_names, load_dataset
from .idx import read_idx, write_idx

__all__ = ["batches", "class_names", "load_dataset", "load_digits", "one_hot", "read_idx",
           "write_idx"]


def load_digits(test_fraction: float = 0.2, seed: int = 0
                ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((train_images, train_labels), (test_images, test_labels))``.

    Images are float32 in [0, 1], shape ``[n, 28, 28]``; labels are int64 digits. The
    split is shuffled with ``seed`` and is the same on every machine.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    with resources.files(__package__).joinpath("mnist_5k.npz").open("rb") as f, \
            np.load(f) as z:
        images, labels = z["images"], z["labels"].astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    images = images[order].astype(np.float32) / np.float32(255)
    labels = labels[order]
    n_test = round(len(labels) * test_fraction)
    return (images[n_test:], labels[n_test:]), (images[:n_test], labels[:n_test])


def one_hot(labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes}), got {labels.min()}.."
                         f"{labels.max()}")
    return np.eye(num_classes, dtype=np.float32)[labels]


def batches(*arrays: np.ndarray, batch_size: int, shuffle: bool = False,
            seed: int | None = None) -> Iterator[tuple[np.ndarray, ...]]:
    """Yield aligned mini-batches of ``arrays`` (the last one may be smaller)."""
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"arrays disagree on length: {[len(a) for a in arrays]}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield tuple(a[idx] for a in arrays)
