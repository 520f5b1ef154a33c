"""A one-shot run (the cold start) never starts loading the ``[fast]`` extra's compiled
kernels, whichever kernels a model's nodes prepared: every family counts a node's runs,
not its kernel's calls into the compiled module (a kernel asking twice in one run once
started loading during the first invoke)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"

pytest.importorskip("numba")

_CODE = """
import sys, numpy as np, litetrain
from litetrain.ops.fast import FAMILIES, kernels

def started():
    return [f for f in FAMILIES if kernels(f) is not None and kernels(f)._started]

def ones(d):
    return np.ones([max(int(n), 1) for n in d["shape"]], d["dtype"])

for path in sys.argv[1:]:
    it = litetrain.Interpreter(model_path=path)
    signatures = list(it.get_signature_list())
    if not signatures:
        it.allocate_tensors()
        for d in it.get_input_details():
            it.set_tensor(d["index"], ones(d))
        it.invoke()
    for key in signatures:  # each entry point once (not save/restore: they take a path)
        runner = it.get_signature_runner(key)
        inputs = runner.get_input_details()
        if all(np.dtype(d["dtype"]).kind in "biuf" for d in inputs.values()):
            runner(**{name: ones(d) for name, d in inputs.items()})
    if started():
        print(path, started())
        break
else:
    print("none")
"""


def _models() -> list[str]:
    quantized = sorted((FIXTURES / "tf_quantized").glob("*/*.tflite"))
    training = [FIXTURES / "tf_training" / kind / "model.tflite"
                for kind in ("keras3_cnn", "batchnorm_train", "lstm_unrolled", "gru_unrolled")]
    return [str(p) for p in quantized + training if p.exists()]


def test_no_compiled_family_starts_loading_in_a_one_shot_run():
    done = subprocess.run([sys.executable, "-c", _CODE, *_models()], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "none"
