"""Shared test helpers: fixture paths and a way to call one kernel from the op table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from litetrain.ops.evaluate import evaluate

FIXTURES = Path(__file__).parent / "fixtures"


def run_kernel(op: str, *inputs, out_dtypes=(), **attrs):
    """Run ``op``'s float kernel with its schema-default attrs overridden by ``attrs``."""
    return evaluate(op, *inputs, attrs=attrs, out_dtypes=out_dtypes)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tutorial() -> tuple[Path, dict]:
    d = FIXTURES / "tutorial"
    return d, dict(np.load(d / "expected.npz"))


@pytest.fixture(scope="session")
def personalization() -> tuple[Path, dict]:
    d = FIXTURES / "personalization"
    return d, dict(np.load(d / "expected.npz"))
