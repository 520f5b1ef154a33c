"""Atomic file replacement: write a temp file in the same folder, fsync, rename.

A crash at any point leaves either the old file or the complete new one at ``path``,
never a half-written file. Temp files are named ``NAME.tmp-PID-RANDOM``; a process
killed mid-write (``kill -9``, power loss) cannot delete its own, so every successful
write removes those of processes that are no longer running (:func:`remove_stale_temps`):
they never pile up. One writer per path at a time is assumed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path

_TEMP_MARK = ".tmp-"
_STALE_AGE_S = 3600.0  # where process ids cannot be checked, a temp this old is stale


def temp_path(path: Path) -> Path:
    return path.with_name(f"{path.name}{_TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}")


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file and fsync it (no rename)."""
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    tmp = temp_path(path)
    try:
        write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)
    remove_stale_temps(path)


def _writer_gone(temp: Path) -> bool:
    pid_text = temp.name.rsplit(_TEMP_MARK, 1)[-1].split("-", 1)[0]
    if os.name == "posix" and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():
            return False  # ours: another thread may be writing it right now
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False  # alive, owned by someone else
        return False
    try:
        return time.time() - temp.stat().st_mtime > _STALE_AGE_S
    except OSError:
        return False


def remove_stale_temps(path: Path) -> int:
    """Delete ``path``'s temp files left by writers that no longer run; return how many."""
    removed = 0
    try:
        candidates = list(path.parent.glob(f"{_glob_escape(path.name)}{_TEMP_MARK}*"))
    except OSError:
        return 0
    for temp in candidates:
        if _writer_gone(temp):
            with contextlib.suppress(OSError):
                temp.unlink()
                removed += 1
    return removed


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, so best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
