"""This checkout's train steps against another git revision's, in ONE process, interleaved.

Numbers taken in separate processes a minute apart are not comparable on a shared machine,
so the other revision's ``litetrain`` is extracted (``git archive``) under the package name
``litetrain_rev`` and imported beside this one. Each revision authors and exports the
``cnn_training.py`` models with its own layers and gradient rules and runs them with its
own kernels; once both revisions' compiled kernels (the ``[fast]`` extra) are loaded,
calls alternate in rounds, and the medians of wall and CPU time (the calling
thread's: a background compilation does not count) are compared (one BLAS thread).

    python benchmarks/compare_revisions.py REV [--model cnn --model lstm ...]
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks")]

import cnn_training  # noqa: E402

import litetrain  # noqa: E402


def load_revision(rev: str, into: Path):
    """The ``litetrain`` package of ``rev``, importable as ``litetrain_rev``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "litetrain"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    (into / "litetrain").rename(into / "litetrain_rev")
    init = into / "litetrain_rev" / "__init__.py"  # its lazy attribute table names modules
    init.write_text(init.read_text().replace('"litetrain.', '"litetrain_rev.'))
    sys.path.insert(0, str(into))
    import litetrain_rev
    return litetrain_rev


def _runner(lt, name: str):
    """Build ``name`` with the layers of package ``lt``, export it, and return its model
    and a ready ``train`` runner (same definitions as cnn_training.py)."""
    nn_backup = cnn_training.lt
    cnn_training.lt = lt  # the model builders use the module-level ``lt``
    try:
        model, content = cnn_training.exported(name)
    finally:
        cnn_training.lt = nn_backup
    return model, lt.Interpreter(model_content=content, num_threads=1).get_signature_runner(
        "train")


def _wait_for_kernels(*packages) -> None:
    """Load every compiled-kernel family of each package (the ``[fast]`` extra) and wait
    for them: the steady state a training loop runs in, with no compilation running
    beside the timed calls (the other revision's kernels compile on their first load:
    their on-disk cache is in the extracted copy)."""
    for lt in packages:
        fast = importlib.import_module(f"{lt.__name__}.ops.fast")
        for family in fast.FAMILIES:
            loader = fast.kernels(family)
            if loader is not None:
                loader.wait()


def compare(other, names, rounds: int = 8, repeats: int = 5) -> list[dict]:
    rows = []
    for name in names:
        model, this = _runner(litetrain, name)
        _, that = _runner(other, name)
        x, y = cnn_training._data(model, cnn_training.BATCH)
        for _ in range(2):  # per-shape preparation; the second run starts the loaders
            this(x=x, y=y)
            that(x=x, y=y)
        _wait_for_kernels(litetrain, other)
        this(x=x, y=y)
        that(x=x, y=y)
        wall = {"this": [], "rev": []}
        cpu = {"this": [], "rev": []}
        for _ in range(rounds):
            for key, run in (("rev", that), ("this", this)):
                for _ in range(repeats):
                    c, w = time.thread_time(), time.perf_counter()
                    run(x=x, y=y)
                    cpu[key].append(time.thread_time() - c)
                    wall[key].append(time.perf_counter() - w)
        med = {k: float(np.median(v)) * 1e3 for k, v in cpu.items()}
        medw = {k: float(np.median(v)) * 1e3 for k, v in wall.items()}
        rows.append({"model": name, "rev CPU ms": f"{med['rev']:.2f}",
                     "this CPU ms": f"{med['this']:.2f}",
                     "speed-up (CPU)": f"{med['rev'] / med['this']:.2f}",
                     "speed-up (wall)": f"{medw['rev'] / medw['this']:.2f}"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="a git revision (e.g. main, HEAD~3, a commit)")
    parser.add_argument("--model", action="append", choices=list(cnn_training.MODELS))
    args = parser.parse_args()
    # (a loader still writing its on-disk cache must not fail the run when it ends)
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        other = load_revision(args.rev, Path(tmp))
        rows = compare(other, args.model or list(cnn_training.MODELS))
    print(cnn_training.table(rows, list(rows[0])))
    print(f"\nspeed-up: {args.rev}'s median step time / this checkout's, batch "
          f"{cnn_training.BATCH}, one thread, calls alternating in one process.")


if __name__ == "__main__":
    main()
