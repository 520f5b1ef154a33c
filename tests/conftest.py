"""Shared test helpers: fixture paths and a way to call one kernel from the op table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from litetrain.ops.evaluate import evaluate
from litetrain.ops.fast import kernels

from .compile_ahead import start as start_compiling_ahead

FIXTURES = Path(__file__).parent / "fixtures"


def run_kernel(op: str, *inputs, out_dtypes=(), **attrs):
    """Run ``op``'s float kernel with its schema-default attrs overridden by ``attrs``."""
    return evaluate(op, *inputs, attrs=attrs, out_dtypes=out_dtypes)


def same_losses_in_litert(data: bytes, batches) -> list[float]:
    """Run the file's ``train`` on each batch (a dict of inputs) in litetrain and in stock
    LiteRT (its reference kernels, no XNNPACK); every loss must agree within 1e-4. Returns
    litetrain's losses. Skipped without ai-edge-litert."""
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    import litetrain as lt

    ours = lt.Interpreter(model_content=data).get_signature_runner("train")
    theirs = litert.Interpreter(
        model_content=data,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    ).get_signature_runner("train")
    losses = []
    for feeds in batches:
        a, b = float(ours(**feeds)["loss"]), float(theirs(**feeds)["loss"])
        assert a == pytest.approx(b, rel=1e-4)
        losses.append(a)
    return losses


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


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers", "needs_kernels(*loaders): skip unless these [fast] families load "
        "(family names or their loaders); waited for when the test runs, not at import, "
        "so collecting the suite never compiles")


def pytest_sessionstart(session) -> None:
    """Start compiling the [fast] kernels in a second process (see ``compile_ahead``)."""
    session.config._compile_ahead = start_compiling_ahead()


def pytest_runtest_setup(item) -> None:
    for mark in item.iter_markers("needs_kernels"):
        for wanted in mark.args:
            loader = kernels(wanted) if isinstance(wanted, str) else wanted
            if loader is None or loader.wait() is None:
                pytest.skip("the [fast] extra (numba) is not installed")


def pytest_sessionfinish(session) -> None:
    ahead = getattr(session.config, "_compile_ahead", None)
    if ahead is not None:
        ahead.stop()
