"""TensorFlow checkpoints: byte-exact V1, round trips V1/V2, corrupt and foreign files."""

from __future__ import annotations

import numpy as np
import pytest

import litetrain
from litetrain import checkpoint
from litetrain.checkpoint import table
from tests.conftest import FIXTURES

TENSORS = {
    "f32": np.arange(12, dtype=np.float32).reshape(3, 4) / 3,
    "f64": np.array(-2.5),
    "i32": np.array([-7, 0, 2**31 - 1], np.int32),
    "i64": np.array(-(2**40), np.int64),
    "i8": np.array([[-128, 127]], np.int8),
    "u8": np.array([0, 255], np.uint8),
    "bool": np.array([True, False, True]),
    "str": np.array([b"ab", b"", "unicode \u00e9".encode()], object),
    "scalar_str": np.array(b"one", object),
    "f16": np.array([1.5, -0.25], np.float16),
    "empty": np.zeros((0, 3), np.float32),
    "name/with:odd\x00chars": np.ones(2, np.float32),
}


@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_round_trip_every_dtype(tmp_path, fmt):
    checkpoint.write(tmp_path / "c", TENSORS, format=fmt)
    back = checkpoint.read(tmp_path / "c")
    assert set(back) == set(TENSORS)
    for name, value in TENSORS.items():
        assert back[name].dtype == value.dtype and back[name].shape == value.shape, name
        np.testing.assert_array_equal(back[name], value)
    assert checkpoint.list_variables(tmp_path / "c")[0] == ("bool", [3])


@pytest.mark.parametrize("model", ["tutorial", "personalization"])
def test_tensorflow_written_files_round_trip_byte_for_byte(tmp_path, model):
    src = FIXTURES / model / "trained.ckpt"
    checkpoint.write(tmp_path / "again.ckpt", checkpoint.read(src))
    assert (tmp_path / "again.ckpt").read_bytes() == src.read_bytes()


def test_large_tensors_span_several_blocks(tmp_path):
    big = {f"w{i}": np.full((300, 300), i, np.float32) for i in range(4)}
    checkpoint.write(tmp_path / "big", big)
    assert len(list(table.parse((tmp_path / "big").read_bytes()))) == 5
    back = checkpoint.read(tmp_path / "big")
    assert all(np.array_equal(back[k], v) for k, v in big.items())


def test_v2_reads_index_path_too(tmp_path):
    checkpoint.write(tmp_path / "p", TENSORS, format="v2")
    assert (tmp_path / "p.index").is_file() and (tmp_path / "p.data-00000-of-00001").is_file()
    assert set(checkpoint.read(tmp_path / "p.index")) == set(TENSORS)


def _corrupt(path, pos):
    raw = bytearray(path.read_bytes())
    raw[pos] ^= 0x5A
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("where", [10, 3000, -60, -47, -3])  # data, index, footer, magic
def test_v1_corruption_is_detected(tmp_path, where):
    p = tmp_path / "c"
    checkpoint.write(p, {"w": np.arange(1000, dtype=np.float32)})
    _corrupt(p, where)
    with pytest.raises(litetrain.CheckpointError, match=str(p)):
        checkpoint.read(p)


def test_v2_data_corruption_is_detected(tmp_path):
    checkpoint.write(tmp_path / "c", TENSORS, format="v2")
    _corrupt(tmp_path / "c.data-00000-of-00001", 5)
    with pytest.raises(litetrain.CheckpointError, match="CRC32C"):
        checkpoint.read(tmp_path / "c")


def test_truncated_foreign_and_missing_files(tmp_path):
    src = (FIXTURES / "tutorial" / "trained.ckpt").read_bytes()
    for n in (0, 10, 47, 1000, len(src) // 2, len(src) - 1):
        (tmp_path / "t").write_bytes(src[:n])
        with pytest.raises(litetrain.CheckpointError):
            checkpoint.read(tmp_path / "t")
    (tmp_path / "m.tflite").write_bytes((FIXTURES / "tutorial" / "model.tflite").read_bytes())
    with pytest.raises(litetrain.CheckpointError, match="not a TensorFlow"):
        checkpoint.read(tmp_path / "m.tflite")
    with pytest.raises(litetrain.CheckpointError, match="no checkpoint"):
        checkpoint.read(tmp_path / "absent")


def test_write_errors(tmp_path):
    with pytest.raises(litetrain.CheckpointError, match="does not exist"):
        checkpoint.write(tmp_path / "no" / "dir" / "c", TENSORS)
    with pytest.raises(litetrain.CheckpointError, match="format"):
        checkpoint.write(tmp_path / "c", TENSORS, format="v3")
    with pytest.raises(litetrain.CheckpointError, match="cannot be stored"):
        checkpoint.write(tmp_path / "c", {"c": np.array([1j])})
    assert list(tmp_path.iterdir()) == []


def test_masked_crc_matches_leveldb_definition():
    # LevelDB's reference: Mask(Value("foo")) round-trips and differs from the raw CRC.
    crc = table.crc32c(b"foo")
    assert table.mask(crc) != crc and table.unmask(table.mask(crc)) == crc
    assert table.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
