"""Crash-safe writes and tolerant reads of a V2 bundle's two files.

A V2 checkpoint is a pair, ``PREFIX.index`` and ``PREFIX.data-00000-of-00001``, and no
single rename replaces two files. Every index entry carries its tensor's size and
CRC32C, so an index can tell which data file belongs to it. The write protocol:

1. write the new data and the new index to temp files and fsync them;
2. move the current data file aside to ``DATA.prev-PID-RANDOM`` (a rename);
3. rename the new data into place;
4. rename the new index into place: the commit point;
5. delete the aside copies and the temp files of saves that were killed.

Invariant: at every instant the canonical index has its data either in the canonical
data file or in an aside copy. So a kill at any moment leaves the previous checkpoint
(killed before step 4) or the new one (after) readable, and the reader looks for the
data in the canonical file first, then in the aside copies, newest first, accepting the
first whose every entry matches. Leftovers are bounded: each save removes those of the
saves before it. One writer per prefix at a time is assumed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from . import v2
from .atomic import fsync_dir, remove_stale_temps, temp_path, write_synced

_ASIDE = ".prev-"


def write(prefix: str, index: bytes, data: bytes) -> None:
    data_file, index_file = Path(v2.data_path(prefix)), Path(v2.index_path(prefix))
    data_tmp, index_tmp = temp_path(data_file), temp_path(index_file)
    try:
        write_synced(data_tmp, data)
        write_synced(index_tmp, index)
        if data_file.exists():
            aside = data_file.with_name(
                f"{data_file.name}{_ASIDE}{os.getpid()}-{secrets.token_hex(4)}")
            os.replace(data_file, aside)
        os.replace(data_tmp, data_file)
        fsync_dir(data_file.parent)
        os.replace(index_tmp, index_file)
    except BaseException:
        for tmp in (data_tmp, index_tmp):
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    fsync_dir(index_file.parent)
    for old in _aside_copies(data_file):
        with contextlib.suppress(OSError):
            old.unlink()
    remove_stale_temps(data_file)
    remove_stale_temps(index_file)


def _aside_copies(data_file: Path) -> list[Path]:
    try:
        found = [p for p in data_file.parent.iterdir()
                 if p.name.startswith(data_file.name + _ASIDE)]
    except OSError:
        return []

    def mtime(p: Path) -> int:
        try:
            return p.stat().st_mtime_ns
        except OSError:
            return 0
    return sorted(found, key=mtime, reverse=True)


def read(prefix: str, read_bytes: Callable[[str], bytes]) -> dict:
    """Tensors of the bundle; the data comes from the first data file the index matches."""
    entries = v2.parse_index(read_bytes(v2.index_path(prefix)))
    data_file = Path(v2.data_path(prefix))
    mismatch: v2.DataMismatch | None = None
    for candidate in [data_file, *_aside_copies(data_file)]:
        if candidate != data_file and not candidate.is_file():
            continue
        if candidate == data_file and not candidate.exists() and mismatch is None:
            mismatch = v2.DataMismatch(f"the data file '{data_file}' does not exist")
            continue
        try:
            return v2.load_data(entries, read_bytes(str(candidate)))
        except v2.DataMismatch as e:
            mismatch = mismatch or e
    assert mismatch is not None
    raise mismatch
