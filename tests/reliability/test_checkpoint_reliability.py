"""Corrupt, forged and rewritten checkpoints; crash-safe saves; model-chosen paths (issue 17)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import litetrain
from litetrain import checkpoint
from litetrain import protowire as pw
from litetrain.checkpoint import table
from litetrain.checkpoint.ordered_code import tensor_key
from litetrain.checkpoint.tensor_proto import encode_full_slice, encode_shape
from tests.conftest import FIXTURES
from tests.reliability.hostile import to_bytes, tutorial, with_constant_paths

TRAINED = FIXTURES / "tutorial" / "trained.ckpt"


def _v1(metas: list[bytes], records: list[tuple[bytes, bytes]]) -> bytes:
    meta = b"".join(pw.field_bytes(1, m) for m in metas) + pw.field_bytes(2, pw.field_varint(1, 1))
    return table.build([(b"", pw.field_bytes(1, meta)), *sorted(records)])


def _meta(name: str, shape_proto: bytes, dtype: int = 1) -> bytes:
    return (pw.field_bytes(1, name.encode()) + pw.field_bytes(2, shape_proto)
            + pw.field_varint(3, dtype) + pw.field_bytes(4, encode_full_slice(1)))


def _record(name: str, start: int, length: int, values: np.ndarray, key: bytes):
    extent = pw.field_bytes(1, pw.field_varint(1, start) + pw.field_varint(2, length))
    proto = pw.field_bytes(5, values.astype("<f4").tobytes())
    saved = pw.field_bytes(1, name.encode()) + pw.field_bytes(2, extent) + pw.field_bytes(3, proto)
    return key, pw.field_bytes(2, saved)


def test_wrong_wire_type_in_a_shape_is_a_checkpoint_error(tmp_path):
    bad_shape = pw.field_varint(2, 7)  # `dim` must be a message, here a varint
    (tmp_path / "c").write_bytes(_v1([_meta("w", bad_shape)], []))
    with pytest.raises(litetrain.CheckpointError, match="wrong wire type"):
        checkpoint.read(tmp_path / "c")


def test_huge_claimed_size_is_refused_before_allocating(tmp_path):
    shape = encode_shape((1 << 20, 1 << 20))  # 2^40 float32 values in a few hundred bytes
    (tmp_path / "c").write_bytes(_v1([_meta("w", shape)], []))
    with pytest.raises(litetrain.CheckpointError, match="more values than"):
        checkpoint.read(tmp_path / "c")


def test_overlapping_v1_slices_are_refused(tmp_path):
    # Two records both cover rows [0, 2) of a [4] tensor: 4 values "stored", 2 never written.
    recs = [_record("w", 0, 2, np.ones(2), tensor_key("w", 1) + b"a"),
            _record("w", 0, 2, np.ones(2), tensor_key("w", 1) + b"b")]
    (tmp_path / "c").write_bytes(_v1([_meta("w", encode_shape((4,)))], recs))
    with pytest.raises(litetrain.CheckpointError, match="cover the same elements"):
        checkpoint.read(tmp_path / "c")


def test_disjoint_v1_slices_are_assembled(tmp_path):
    recs = [_record("w", 0, 2, np.array([1, 2]), tensor_key("w", 1) + b"a"),
            _record("w", 2, 2, np.array([3, 4]), tensor_key("w", 1) + b"b")]
    (tmp_path / "c").write_bytes(_v1([_meta("w", encode_shape((4,)))], recs))
    np.testing.assert_array_equal(checkpoint.read(tmp_path / "c")["w"], [1, 2, 3, 4])


def test_rewrite_with_same_size_and_mtime_is_not_served_from_cache(tmp_path):
    it = litetrain.Interpreter(model_path=FIXTURES / "tutorial" / "model.tflite")
    path = tmp_path / "w.ckpt"
    first = checkpoint.read(TRAINED)
    checkpoint.write(path, first)
    restore = it.get_signature_runner("restore")
    a = restore(checkpoint_path=str(path))["dense_2/bias:0"]
    st = os.stat(path)
    second = {k: v + 1 for k, v in first.items()}
    checkpoint.write(path, second)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns
    b = restore(checkpoint_path=str(path))["dense_2/bias:0"]
    np.testing.assert_array_equal(b, a + 1)


def test_error_messages_never_quote_file_bytes(tmp_path):
    secret = b"root:x:0:0:SECRET-PASSWORD-HASH:/root:/bin/bash\n" * 3
    (tmp_path / "passwd").write_bytes(secret)
    with pytest.raises(litetrain.CheckpointError) as info:
        checkpoint.read(tmp_path / "passwd")
    msg = str(info.value)
    assert "SECRET" not in msg and secret[-8:].hex() not in msg
    assert int.from_bytes(secret[-8:], "little").__format__("#x") not in msg


# -- crash safety ---------------------------------------------------------------------------

_KILL_AT = textwrap.dedent("""
    import os, sys
    import numpy as np
    from litetrain import checkpoint
    from litetrain.checkpoint import atomic, bundle
    step, calls = int(sys.argv[2]), [0]
    real = os.replace
    def dying_replace(a, b):
        calls[0] += 1
        if calls[0] == step:
            os._exit(9)  # like kill -9: no cleanup runs
        return real(a, b)
    bundle.os.replace = dying_replace
    atomic.os.replace = dying_replace
    checkpoint.write(sys.argv[1], {"w": np.full(1000, 2.0, np.float32)}, format=sys.argv[3])
""")


# Each os.replace of a save is a step: V1 has one, V2 three (aside, data, index).
@pytest.mark.parametrize(("fmt", "step"), [("v1", 1), ("v2", 1), ("v2", 2), ("v2", 3)])
def test_a_save_killed_at_any_step_leaves_old_or_new(tmp_path, fmt, step):
    prefix = tmp_path / "ckpt"
    checkpoint.write(prefix, {"w": np.full(1000, 1.0, np.float32)}, format=fmt)
    out = subprocess.run([sys.executable, "-c", _KILL_AT, str(prefix), str(step), fmt],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 9, out.stderr
    value = checkpoint.read(prefix)["w"]
    assert value.shape == (1000,) and np.all(value == value[0]) and value[0] in (1.0, 2.0)
    # The next save cleans up what the killed one left behind.
    checkpoint.write(prefix, {"w": np.full(1000, 3.0, np.float32)}, format=fmt)
    assert np.all(checkpoint.read(prefix)["w"] == 3.0)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == (["ckpt"] if fmt == "v1" else ["ckpt.data-00000-of-00001", "ckpt.index"])


# -- paths chosen by the model ---------------------------------------------------------------

def test_model_cannot_choose_what_restore_reads(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"TOP-SECRET-CONTENT" * 10)
    model = to_bytes(with_constant_paths(tutorial(), str(secret).encode()))
    it = litetrain.Interpreter(model_content=model)
    with pytest.raises(litetrain.CheckpointError, match="not a path the caller passed") as info:
        it.get_signature_runner("restore")(checkpoint_path=str(tmp_path / "mine.ckpt"))
    assert "TOP-SECRET" not in str(info.value)
    # Opting in gives TensorFlow's behaviour: the model's path is read (and is no checkpoint).
    it = litetrain.Interpreter(model_content=model, checkpoint_paths="any")
    with pytest.raises(litetrain.CheckpointError, match="corrupt") as info:
        it.get_signature_runner("restore")(checkpoint_path=str(tmp_path / "mine.ckpt"))
    assert "TOP-SECRET" not in str(info.value)


def test_model_cannot_choose_where_save_writes(tmp_path):
    target = tmp_path / "elsewhere" / ".." / "planted.ckpt"
    (tmp_path / "elsewhere").mkdir()
    it = litetrain.Interpreter(model_content=to_bytes(
        with_constant_paths(tutorial(), str(target).encode())))
    with pytest.raises(litetrain.CheckpointError, match="not a path the caller passed"):
        it.get_signature_runner("save")(checkpoint_path=str(tmp_path / "mine.ckpt"))
    assert not (tmp_path / "planted.ckpt").exists()


def test_paths_under_or_named_after_the_callers_are_allowed(tmp_path):
    from litetrain.runtime.context import _within

    base = str(tmp_path / "ckpt")
    assert _within(base + ".index", base) and _within(base + "/variables", base)
    assert _within(base + "_temp_1234/part-00000-of-00001", base)
    assert not _within(base + "/../../etc/passwd", base)
    assert not _within(str(tmp_path / "other"), base)
    assert not _within(str(tmp_path / "other" / "ckpt"), base)
    assert not _within("/etc/passwd", base)
