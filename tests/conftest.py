"""Shared test helpers: fixture paths and a way to call one kernel from the op table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from litetrain.ops import lookup
from litetrain.tflite import options

FIXTURES = Path(__file__).parent / "fixtures"


def run_kernel(op: str, *inputs, **attrs):
    """Call ``op``'s kernel with its schema-default attrs overridden by ``attrs``."""
    opdef = lookup(op)
    full = options.defaults(opdef.options) if opdef.options else {}
    full.update(attrs)
    return opdef.kernel(full, *inputs)


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
