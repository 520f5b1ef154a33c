"""kill -9 during checkpoint saves: the checkpoint stays readable, leftovers stay bounded.

A child process saves two alternating tensor sets (A, B) to one path in a loop; the
parent kills it (SIGKILL) after a random delay, then reads the path: it must hold exactly
A or B. The same folder is reused across kills, so leftovers from killed saves would pile
up if a save did not clean them; the largest number of extra files seen is reported.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import litetrain as lt
from litetrain import checkpoint

_CHILD = """
import os, sys
import numpy as np
from litetrain import checkpoint
path, fmt, parent = sys.argv[1], sys.argv[2], os.getppid()
sets = [{f"w{i}": np.full((256, 256), v + i, np.float32) for i in range(8)} for v in (1.0, 2.0)]
print("ready", flush=True)
k = 0
while os.getppid() == parent:  # never outlive the campaign
    checkpoint.write(path, sets[k % 2], format=fmt)
    k += 1
"""


def _holds_a_set(tensors: dict[str, np.ndarray]) -> bool:
    if sorted(tensors) != [f"w{i}" for i in range(8)]:
        return False
    base = float(tensors["w0"].reshape(-1)[0])
    return base in (1.0, 2.0) and all(
        np.all(tensors[f"w{i}"] == base + i) for i in range(8))


def campaign(kills: int, seed: int = 0, log=print) -> dict:
    rng = random.Random(seed)
    stats = {"kills": 0, "unreadable": 0, "wrong": 0, "max_extra_files": 0}
    with tempfile.TemporaryDirectory(prefix="lt-kill-") as tmp:
        for fmt in ("v1", "v2"):
            folder = Path(tmp) / fmt
            folder.mkdir()
            path = folder / "ckpt"
            # A checkpoint exists before the first kill: "previous or new" is always defined.
            checkpoint.write(path, {f"w{i}": np.full((256, 256), 1.0 + i, np.float32)
                                    for i in range(8)}, format=fmt)
            canonical = {"ckpt"} if fmt == "v1" else {"ckpt.index", "ckpt.data-00000-of-00001"}
            for k in range(kills // 2):
                child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), fmt],
                                         stdout=subprocess.PIPE)
                child.stdout.readline()  # imported and about to save
                time.sleep(rng.uniform(0.0, 0.25))
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
                child.stdout.close()
                stats["kills"] += 1
                extra = len({p.name for p in folder.iterdir()} - canonical)
                stats["max_extra_files"] = max(stats["max_extra_files"], extra)
                try:
                    if not _holds_a_set(checkpoint.read(path)):
                        stats["wrong"] += 1
                        log(f"kill {fmt} #{k}: checkpoint holds neither set")
                except lt.CheckpointError as e:
                    stats["unreadable"] += 1
                    log(f"kill {fmt} #{k}: unreadable: {e}")
    return stats
