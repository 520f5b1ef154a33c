"""Shared models and data for the federated tests: the tutorial model authored with
litetrain (builtin save/restore), TensorFlow's own tutorial file (Flex save/restore), and
the shipped digits."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain as lt
from litetrain.data import load_digits

from ..conftest import FIXTURES


@pytest.fixture(scope="session")
def authored() -> bytes:
    from litetrain.workflow.demo import tutorial_model

    return lt.convert(tutorial_model(learning_rate=0.1))


@pytest.fixture(scope="session")
def tf_made() -> bytes:
    return (FIXTURES / "tutorial" / "model.tflite").read_bytes()


@pytest.fixture(scope="session")
def digits():
    (x, y), (xt, yt) = load_digits()
    return (x, y), (xt, yt)


def feeds(x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    return {"x": x, "y": np.eye(10, dtype=np.float32)[y], "labels": y}


@pytest.fixture(scope="session")
def android_file(authored) -> bytes:
    from litetrain.author.android import android_layout

    return android_layout(authored)
