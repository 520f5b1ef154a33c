"""The package's import surface: authoring loads on first use, not at import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import litetrain


def test_runtime_import_does_not_load_authoring():
    code = ("import sys, litetrain; "
            "print(any(m.startswith('litetrain.author') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


@pytest.mark.parametrize("name", ["Module", "TensorSpec", "Variable", "GradientTape",
                                  "TraceError", "convert", "signature", "trainable", "save",
                                  "restore", "nn", "losses", "optimizers", "quantize",
                                  "Interpreter"])
def test_public_names_resolve(name):
    assert getattr(litetrain, name) is not None
    assert name in dir(litetrain)
    assert name in litetrain.__all__


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Modle'"):
        litetrain.Modle  # noqa: B018


def test_quantize_stays_the_function_after_its_subpackage_is_imported():
    import litetrain.quantize.modes

    assert callable(litetrain.quantize)


def test_import_contract_holds():
    """Layers import only downward and nothing imports in a cycle (pyproject's contract)."""
    from pathlib import Path

    cli = pytest.importorskip("importlinter.cli")
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    assert cli.lint_imports(config_filename=str(pyproject), no_cache=True, no_logo=True) == 0
