"""``litetrain quantize``: a quantized copy of a model file (optionally with a checkpoint's
weights) for inference, with its size and, given labelled data, its accuracy before and
after. The quantization itself is :func:`litetrain.quantize`."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..checkpoint.atomic import atomic_write
from ..errors import LitetrainError, SignatureError
from ..quantize import MODES, quantize
from ..runtime.interpreter import Interpreter
from .inputs import input_specs, load_inputs

LABEL_NAMES = ("labels", "y", "label")


@dataclass
class QuantizeReport:
    signature: str  # the inference signature measured
    size_before: int
    size_after: int
    accuracy_before: float | None = None
    accuracy_after: float | None = None
    dropped: str = ""  # the warning about dropped training signatures, if any


def _scores(runner, data: dict[str, np.ndarray], names: list[str],
            batch_size: int = 256) -> np.ndarray | None:
    parts = []
    for start in range(0, len(data[names[0]]), batch_size):
        out = runner(**{k: data[k][start:start + batch_size] for k in names})
        scores = out.get("logits", out.get("output", next(iter(out.values()))))
        if scores.ndim != 2:
            return None
        parts.append(scores.astype(np.float32))
    return np.concatenate(parts)


def accuracy(runner, data: dict[str, np.ndarray], names: list[str],
             labels: np.ndarray) -> float | None:
    """Top-1 accuracy of a signature's 2-D scores against labels (indices or one-hot)."""
    scores = _scores(runner, data, names)
    if scores is None:
        return None
    truth = labels.argmax(-1) if labels.ndim == 2 else labels
    return float(np.mean(scores.argmax(-1) == truth))


def quantize_file(model: str | os.PathLike, mode: str, out: str | os.PathLike,
                  data: str | os.PathLike | None = None,
                  checkpoint: str | os.PathLike | None = None,
                  signature: str | None = None, calibration_examples: int = 500
                  ) -> QuantizeReport:
    if mode not in MODES:
        raise LitetrainError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "int8" and data is None:
        raise LitetrainError("mode int8 calibrates activation ranges on examples: give --data")
    if Path(out).resolve() == Path(model).resolve():
        raise LitetrainError(f"the output {out} is the model itself: give another -o")
    interp = Interpreter(model_path=model)
    if checkpoint is not None:
        if not Path(checkpoint).exists():
            raise LitetrainError(f"checkpoint {checkpoint} does not exist")
        if "restore" not in interp.get_signature_list():
            raise SignatureError("the model has no 'restore' signature to load --checkpoint")
        interp.get_signature_runner("restore")(checkpoint_path=os.fspath(checkpoint))
    sigs = interp.get_signature_list()
    only = next(iter(sigs)) if len(sigs) == 1 else None  # e.g. a converter's serving_default
    key = signature or ("infer" if "infer" in sigs else only)
    if key is None or key not in sigs:
        raise SignatureError(f"no inference signature '{signature or 'infer'}' to measure; "
                             f"the model has {sorted(sigs)} (choose with --signature)")
    runner = interp.get_signature_runner(key)
    specs = input_specs(runner)
    names = list(specs)
    arrays = load_inputs(data, specs, f"signature '{key}'") if data is not None else None
    if arrays is not None and not len(arrays[names[0]]):
        raise LitetrainError(f"{data} holds no examples")
    representative = None
    if mode == "int8":
        feeds = {k: arrays[k][:calibration_examples] for k in names}
        representative = [{k: v[i:i + 50] for k, v in feeds.items()}
                          for i in range(0, len(feeds[names[0]]), 50)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = quantize(interp, mode, representative_data=representative)
        except (ValueError, TypeError) as e:
            raise LitetrainError(f"cannot quantize {model}: {e}") from None
    atomic_write(out, result)
    report = QuantizeReport(key, Path(model).stat().st_size, len(result),
                            dropped="; ".join(str(w.message) for w in caught))
    labels = None
    if arrays is not None:
        labels = next((arrays[k] for k in LABEL_NAMES if k in arrays and k not in specs), None)
    if labels is not None:
        quantized = Interpreter(model_content=result)
        if key in quantized.get_signature_list():
            report.accuracy_before = accuracy(runner, arrays, names, labels)
            report.accuracy_after = accuracy(quantized.get_signature_runner(key), arrays,
                                             names, labels)
    return report
