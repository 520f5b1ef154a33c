"""Hostile model files: each is a clear LitetrainError at load or run, never a crash,
a silent wrong output or a long message (issue 17)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import litetrain
from litetrain.ir import Model, Signature
from litetrain.runtime import signature_runner as runner_module
from litetrain.runtime.checkpoint_io import CHECKPOINT_IO_KEY
from litetrain.tflite import flex
from tests.reliability.hostile import RESTORE, call_once_chain, to_bytes, tutorial


def load(model: Model, **kw) -> litetrain.Interpreter:
    return litetrain.Interpreter(model_content=to_bytes(model), **kw)


def test_variable_name_not_utf8_is_a_format_error():
    m = tutorial()
    sg = m.subgraphs[RESTORE]
    k = next(i for i, n in enumerate(sg.nodes) if n.op == "var_handle")
    sg.nodes[k] = dataclasses.replace(sg.nodes[k], attrs={"container": "",
                                                          "shared_name": b"\xff\xfe"})
    with pytest.raises(litetrain.ModelFormatError, match="not UTF-8"):
        load(m)


def test_model_without_subgraphs_is_a_format_error():
    with pytest.raises(litetrain.ModelFormatError, match="no subgraphs"):
        load(Model([], []))


@pytest.mark.parametrize("meta", [
    {"save": {"kind": "save", "path_input": "checkpoint_path",
              "tensors": {"not_an_output": "w"}}},
    {"restore": {"kind": "restore", "path_input": "p", "tensors": {"nope": "w"}}},
    {"save": {"kind": "save", "path_input": "checkpoint_path"}},
    {"save": 3},
    {"unknown": {"kind": "save", "path_input": "p", "tensors": {}}},
    [1, 2],
    "[" * 100_000 + "]" * 100_000,
])
def test_bad_checkpoint_io_metadata_is_a_format_error(meta):
    m = tutorial()
    raw = meta if isinstance(meta, str) else json.dumps(meta)
    m.metadata[CHECKPOINT_IO_KEY] = raw.encode()
    with pytest.raises(litetrain.ModelFormatError, match=CHECKPOINT_IO_KEY):
        load(m)


def test_flex_options_that_break_flexbuffers_are_a_format_error():
    # Found by mutation: flexbuffers raised KeyError / AssertionError on these.
    for raw in ("07526573746f726500171207526573746f72651a001a002a080a02648c120230010002221ad6"
                "140428fc",
                "07526573746f726500171207526573746f72651a001a002a080a026474120230010002221a14"
                "14462801",
                "07526573746f0f6500171107526573da6f72651a001a002a080a026474120230010002221a14"
                "14042801"):
        with pytest.raises(litetrain.ModelFormatError, match="Flex"):
            flex.decode_options(bytes.fromhex(raw), "operator 0")


def test_signature_output_that_is_not_a_subgraph_output_is_refused():
    m = tutorial()
    infer = m.signatures[0]
    hidden = m.subgraphs[0].nodes[3].outputs[0]  # an intermediate, pruned when unused
    m.signatures[0] = dataclasses.replace(infer, outputs={**infer.outputs, "hidden": hidden})
    with pytest.raises(litetrain.ModelFormatError, match=r"output 'hidden'.*not an output"):
        load(m)


def test_signature_input_naming_an_intermediate_is_refused():
    m = tutorial()
    infer = m.signatures[0]
    hidden = m.subgraphs[0].nodes[3].outputs[0]
    m.signatures[0] = dataclasses.replace(infer, inputs={**infer.inputs, "h": hidden})
    with pytest.raises(litetrain.ModelFormatError, match=r"input 'h'.*not an input"):
        load(m)


def test_two_signatures_with_one_key_are_refused():
    m = tutorial()
    m.signatures.append(Signature("infer", 3, {}, {}))
    with pytest.raises(litetrain.ModelFormatError, match="'infer' is defined twice"):
        load(m)


def test_deep_call_once_chain_gives_a_short_error():
    it = load(call_once_chain(1500))
    with pytest.raises(litetrain.LitetrainError) as info:
        it.invoke()
    assert len(str(info.value)) < 1500


def test_out_of_memory_returning_outputs_is_an_invoke_error(monkeypatch, tutorial):
    d, e = tutorial
    it = litetrain.Interpreter(model_path=d / "model.tflite")
    run = it.get_signature_runner("infer")

    class NoMemory:
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def array(*a, **k):
            raise MemoryError

    monkeypatch.setattr(runner_module, "np", NoMemory())
    with pytest.raises(litetrain.InvokeError, match=r"not enough memory.*logits"):
        run(x=e["infer_x"] if "infer_x" in e else np.zeros((1, 28, 28), np.float32))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_reading_a_device_is_refused_quickly():
    # In a child with 1 GiB of address space: a regression must not exhaust the machine.
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
            "import litetrain\n"
            "try:\n    litetrain.Interpreter(model_path='/dev/zero')\n"
            "except litetrain.ModelFormatError as e:\n    print('refused:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert "refused:" in out.stdout and "not a regular file" in out.stdout, out.stderr
