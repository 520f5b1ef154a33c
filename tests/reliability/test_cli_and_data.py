"""``litetrain inspect`` on hostile files, the CLI's last-resort errors, IDX gzip bombs."""

from __future__ import annotations

import dataclasses
import gzip
import struct
import subprocess
import sys

import numpy as np
import pytest

from litetrain import cli
from litetrain.data import idx
from litetrain.errors import DatasetError
from litetrain.ir import Node
from tests.reliability.hostile import RESTORE, to_bytes, tutorial


def test_inspect_a_model_with_an_operandless_var_handle(tmp_path, capsys):
    m = tutorial()
    sg = m.subgraphs[RESTORE]
    handle = next(n for n in sg.nodes if n.op == "var_handle")
    sg.nodes += [dataclasses.replace(handle, outputs=()),
                 Node("assign_variable", handle.outputs, ())]  # value operand missing
    (tmp_path / "m.tflite").write_bytes(to_bytes(m))
    assert cli.main(["inspect", str(tmp_path / "m.tflite")]) == 0
    assert "dense_1/kernel" in capsys.readouterr().out


def test_inspect_escapes_terminal_control_sequences(tmp_path, capsys):
    m = tutorial()
    m.description = "\x1b[2J\x1b]0;pwned\x07title\r\nnext"
    (tmp_path / "m.tflite").write_bytes(to_bytes(m))
    assert cli.main(["inspect", str(tmp_path / "m.tflite")]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert "\\x1b[2J" in out and "title\\r\\nnext" in out


def test_memory_error_is_one_line_and_exit_2(monkeypatch, capsys):
    def no_memory(*a, **k):
        raise MemoryError
    monkeypatch.setattr("litetrain.summary.summarize", no_memory)
    from tests.reliability.hostile import TUTORIAL

    assert cli.main(["inspect", str(TUTORIAL)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not enough memory" in err


def test_closed_pipe_exits_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "litetrain", "inspect", "--ops"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(10)
    proc.stdout.close()  # like `| head -c 10`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 141) and err == "", err


def test_idx_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    header = bytes([0, 0, 0x08, 2]) + struct.pack(">2I", 10, 10)  # promises 100 bytes
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(bomb, "wb") as f:
        f.write(header)
        for _ in range(16):
            f.write(bytes(1 << 20))  # 16 MiB of zeros follow
    assert bomb.stat().st_size < 1 << 16
    with pytest.raises(DatasetError, match="more than the 112 bytes"):
        idx.read_idx(bomb)


def test_idx_header_claiming_petabytes_is_refused(tmp_path):
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(bytes([0, 0, 0x08, 3]) + struct.pack(">3I", *[1 << 31] * 3)))
    with pytest.raises(DatasetError, match="claims"):
        idx.read_idx(path)


def test_idx_round_trip_still_works(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    idx.write_idx(tmp_path / "a-idx3-ubyte.gz", a)
    np.testing.assert_array_equal(idx.read_idx(tmp_path / "a-idx3-ubyte.gz"), a)
