"""The .tflite reader: fixtures parse into a verified IR; corrupt bytes give
ModelFormatError (never another exception, never a hang)."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain
from litetrain import ir
from tests.conftest import FIXTURES

MODELS = sorted(FIXTURES.glob("*/*.tflite"))


@pytest.mark.parametrize("path", MODELS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixtures_parse_and_print(path):
    model = litetrain.read_model(path)
    ir.verify(model)
    text = ir.format_model(model)
    assert "signature" in text and len(text.splitlines()) > len(model.subgraphs)


def test_tutorial_structure_matches_the_documented_layout(tutorial):
    d, _ = tutorial
    m = litetrain.read_model(d / "model.tflite")
    assert [sg.name for sg in m.subgraphs] == ["infer", "restore", "save", "train", "NoOp"]
    train = m.subgraphs[3]
    assert len(train.nodes) == 102 and train.nodes[0].op == "call_once"
    assert m.signature("train").inputs == {"x": 1, "y": 0}
    assert train.tensors[1].shape_signature == (-1, 28, 28)
    names = m.subgraphs[2].tensors[1].data.tolist()
    assert names == [b"dense_1/kernel:0", b"dense_1/bias:0", b"dense_2/kernel:0",
                     b"dense_2/bias:0"]
    assert m.metadata["min_runtime_version"].rstrip(b"\0") == b"2.6.0"


def _expect_format_error(data: bytes) -> None:
    try:
        litetrain.read_model(data)
    except litetrain.ModelFormatError as e:
        assert str(e)
    # Parsing successfully is fine too: not every byte matters.


def test_not_a_model():
    with pytest.raises(litetrain.ModelFormatError, match=r"not a \.tflite FlatBuffer"):
        litetrain.read_model(b"hello")
    with pytest.raises(litetrain.ModelFormatError, match="identifier 'TFL3'"):
        litetrain.read_model(np.random.default_rng(1).bytes(4096))
    with pytest.raises(litetrain.ModelFormatError, match="expected a path or bytes"):
        litetrain.read_model(1234)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_truncated_models(path):
    data = path.read_bytes()
    for n in np.linspace(8, len(data) - 1, 25).astype(int):
        with pytest.raises(litetrain.ModelFormatError):
            litetrain.read_model(data[:n])


@pytest.mark.parametrize("path", MODELS[:2], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_corrupted_bytes_never_crash(path):
    data = path.read_bytes()
    rng = np.random.default_rng(7)
    # The FlatBuffer's structure (offsets, vtables, vector lengths) sits mostly outside
    # the big weight buffers: corrupt offsets near the start and the end most.
    positions = np.concatenate([rng.integers(4, 2000, 150),
                                rng.integers(len(data) - 6000, len(data), 150)])
    for pos in positions:
        bad = bytearray(data)
        bad[pos:pos + 4] = rng.bytes(4)
        _expect_format_error(bytes(bad))


def test_flipped_root_offset():
    data = bytearray((FIXTURES / "inference" / "float.tflite").read_bytes())
    data[0:4] = (len(data) + 100).to_bytes(4, "little")
    with pytest.raises(litetrain.ModelFormatError, match="malformed"):
        litetrain.read_model(bytes(data))


def _tiny_model(nodes, inputs=(0,), outputs=(1,)) -> ir.Model:
    t = [ir.Tensor("a", 0, (2,)), ir.Tensor("b", 0, (2,)), ir.Tensor("c", 0, (2,))]
    return ir.Model([ir.Subgraph("main", t, list(inputs), list(outputs), nodes)], [])


def test_verify_catches_cycles_and_double_writes():
    cyc = _tiny_model([ir.Node("add", (0, 2), (1,)), ir.Node("neg", (1,), (2,))])
    with pytest.raises(litetrain.ModelFormatError, match="later node writes it"):
        ir.verify(cyc)
    twice = _tiny_model([ir.Node("neg", (0,), (1,)), ir.Node("neg", (0,), (1,))])
    with pytest.raises(litetrain.ModelFormatError, match="single-assignment"):
        ir.verify(twice)
    oob = _tiny_model([ir.Node("neg", (5,), (1,))])
    with pytest.raises(litetrain.ModelFormatError, match="out of range"):
        ir.verify(oob)
    loop = _tiny_model([ir.Node("call_once", (), (), {"init_subgraph_index": 0})])
    with pytest.raises(litetrain.ModelFormatError, match="not another subgraph"):
        ir.verify(loop)
