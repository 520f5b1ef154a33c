"""``litetrain.quantize``: a quantized copy of a model for inference.

    data = litetrain.quantize(interpreter_or_file, mode="int8",
                              representative_data=[{"x": batch}, ...])

The source may be an :class:`Interpreter` (its *current* variable values are used, so a
model personalised on the device is quantized with its personalised weights), a path or
``.tflite`` bytes. Inference signatures are kept; training and file-I/O signatures
(variable writes, string inputs) are dropped, with a warning naming them. The result is a
schema-valid file that runs in litetrain and in LiteRT.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable

import numpy as np

from ..ir import Model, Signature
from ..runtime.interpreter import Interpreter
from ..tflite.writer import write_model
from . import modes
from .freeze import freeze, inference_signatures

MODES = ("dynamic_range", "float16", "int8")

__all__ = ["MODES", "quantize"]


def _interpreter(source) -> Interpreter:
    if isinstance(source, Interpreter):
        return source
    if isinstance(source, (bytes, bytearray, memoryview)):
        return Interpreter(model_content=bytes(source))
    if isinstance(source, (str, os.PathLike)):
        return Interpreter(model_path=source)
    raise TypeError(f"quantize takes an Interpreter, a path or model bytes, got "
                    f"{type(source).__name__}")


def _calibrate(float_model: Model, data: Iterable[dict[str, np.ndarray]]
               ) -> list[dict[int, tuple[float, float]]]:
    # Every activation's value, as computed (no dropped or in-place reused tensors).
    interp = Interpreter(model_content=write_model(float_model),
                         experimental_preserve_all_tensors=True)
    ranges: list[dict[int, tuple[float, float]]] = [{} for _ in float_model.subgraphs]
    seen = 0
    for feeds in data:
        seen += 1
        for sig in float_model.signatures:
            if not set(sig.inputs) <= set(feeds):
                continue
            values = interp.plan(sig.subgraph_index).run(
                interp, {i: np.asarray(feeds[k], np.float32) for k, i in sig.inputs.items()})
            found = ranges[sig.subgraph_index]
            for k, v in enumerate(values):
                if v is None or v.dtype != np.float32 or v.size == 0:
                    continue
                lo, hi = float(v.min()), float(v.max())
                old = found.get(k)
                found[k] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
    if not seen:
        raise ValueError("int8 quantization needs representative_data: an iterable of "
                         "dicts of input arrays named like the signature's inputs")
    return ranges


def quantize(source, mode: str = "dynamic_range",
             representative_data: Iterable[dict[str, np.ndarray]] | None = None,
             int8_io: bool = False) -> bytes:
    """Quantized ``.tflite`` bytes of ``source``'s inference signatures.

    ``mode``: ``"dynamic_range"`` (int8 weights, float activations), ``"float16"``
    (half-precision weights) or ``"int8"`` (full integer; needs ``representative_data``,
    and ``int8_io=True`` makes the model's inputs and outputs int8 too).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    interp = _interpreter(source)
    keep, dropped = inference_signatures(interp.model)
    if not keep:
        raise ValueError(f"no inference signature to quantize (all of {dropped} write "
                         "variables or take file paths)")
    if dropped:
        warnings.warn(f"quantize: dropped training/file signatures {dropped}; the quantized "
                      "model is for inference", stacklevel=2)
    subgraphs, signatures = [], []
    for sig in keep:
        sg, new_sig = freeze(interp, sig)
        signatures.append(Signature(new_sig.key, len(subgraphs), new_sig.inputs,
                                    new_sig.outputs))
        subgraphs.append(sg)
    frozen = Model(subgraphs, signatures, description="litetrain quantize: " + mode)
    if mode == "float16":
        out = [modes.float16(sg) for sg in subgraphs]
    elif mode == "dynamic_range":
        out = [modes.dynamic_range(sg) for sg in subgraphs]
    else:
        if representative_data is None:
            raise ValueError("mode='int8' needs representative_data (a few hundred inputs)")
        ranges = _calibrate(frozen, representative_data)
        out = [modes.int8(sg, r, int8_io) for sg, r in zip(subgraphs, ranges, strict=True)]
    return write_model(Model(out, signatures, description=frozen.description))
