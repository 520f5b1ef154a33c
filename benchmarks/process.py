"""Figures that need a fresh process or the file system: cold start, peak RSS while
training, installed size. Each probe runs ``python -c`` and prints one JSON line."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

_STATUS = """
def status(key):
    for line in open('/proc/self/status'):
        if line.startswith(key + ':'):
            return int(line.split()[1]) * 1024


def reset_peak():  # start VmHWM again from the current RSS where allowed; say which
    try:
        open('/proc/self/clear_refs', 'w').write('5')
        return 'VmHWM reset at baseline'
    except OSError:
        return 'VmHWM since process start (reset not permitted)'
"""

_COLD = {
    "litetrain": """
import time; t0 = time.perf_counter()
import numpy as np, litetrain
train = litetrain.Interpreter(model_path={path!r}).get_signature_runner("train")
train(x=np.zeros(({b}, 28, 28), np.float32), y=np.zeros(({b}, 10), np.float32))
print(time.perf_counter() - t0)
""",
    "ai-edge-litert": """
import time; t0 = time.perf_counter()
import numpy as np
from ai_edge_litert.interpreter import Interpreter
train = Interpreter(model_path={path!r}).get_signature_runner("train")
train(x=np.zeros(({b}, 28, 28), np.float32), y=np.zeros(({b}, 10), np.float32))
print(time.perf_counter() - t0)
""",
}

_RSS = _STATUS + """
import json, numpy as np, litetrain
it = litetrain.Interpreter(model_path={path!r})
train = it.get_signature_runner("train")
x = np.random.default_rng(0).random(({b}, 28, 28), np.float32)
y = np.eye(10, dtype=np.float32)[np.arange({b}) % 10]
baseline = status('VmRSS')
method = reset_peak()  # the peak (VmHWM) starts again from here
for _ in range(30):
    train(x=x, y=y)
peak = status('VmHWM')
state = sum(v.nbytes for v in it.variables.values.values())
# The step's activations: every tensor a train step computes, with nothing reused
# (a second interpreter that keeps all tensors), except variable reads.
keep = litetrain.Interpreter(model_path={path!r}, experimental_preserve_all_tensors=True)
sig = next(s for s in keep.model.signatures if s.key == 'train')
runner = keep.get_signature_runner('train')
runner(x=x, y=y)
values = keep.run_subgraph(sig.subgraph_index, {{sig.inputs['x']: x, sig.inputs['y']: y}})
sg = keep.model.subgraphs[sig.subgraph_index]
made = {{o for n in sg.nodes if n.op != 'read_variable' for o in n.outputs}}
acts = sum(values[i].nbytes for i in made if getattr(values[i], 'nbytes', None))
print(json.dumps(dict(baseline=baseline, peak=peak, state=state, activations=acts,
                      method=method)))
"""


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"probe failed: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip().splitlines()[-1]


def cold_start(engines: dict[str, Path], batch: int = 100, runs: int = 5) -> dict[str, dict]:
    """Seconds from a new process's first line to a finished train step (import + load +
    first step), median of ``runs`` interleaved runs; ``process_s`` adds Python's start."""
    inner: dict[str, list[float]] = {k: [] for k in engines}
    whole: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(runs):
        for name, path in engines.items():
            t0 = time.perf_counter()
            inner[name].append(float(_run(_COLD[name].format(path=str(path), b=batch))))
            whole[name].append(time.perf_counter() - t0)
    return {k: {"seconds": statistics.median(inner[k]), "process_s": statistics.median(whole[k])}
            for k in engines}


def peak_rss(path: Path, batch: int = 100) -> dict:
    """Peak RSS over 30 train steps above the RSS of the loaded, unused interpreter, and
    the budget the issue sets: 1.5 x (weights + optimizer state + one step's activations)."""
    r = json.loads(_run(_RSS.format(path=str(path), b=batch)))
    r["above_baseline"] = r["peak"] - r["baseline"]
    r["budget"] = 1.5 * (r["state"] + r["activations"])
    return r


def _dist_closure(name: str) -> dict[str, metadata.Distribution]:
    out: dict[str, metadata.Distribution] = {}
    todo = [name]
    while todo:
        dist = metadata.distribution(todo.pop())
        key = dist.metadata["Name"].lower()
        if key in out:
            continue
        out[key] = dist
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            dep = re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0]
            try:
                metadata.distribution(dep)
            except metadata.PackageNotFoundError:
                continue
            todo.append(dep)
    return out


def _dist_bytes(dist: metadata.Distribution) -> int:
    total = 0
    for f in dist.files or []:
        p = Path(f.locate())
        if p.is_file() and "__pycache__" not in p.parts:
            total += p.stat().st_size
    return total


def installed_size(name: str, package_dir: Path | None = None) -> dict:
    """Bytes on disk of a distribution and its runtime dependencies (``__pycache__``
    excluded). ``package_dir`` measures an editable install's source folder instead."""
    sizes = {}
    for key, dist in _dist_closure(name).items():
        if key == name and package_dir is not None:
            sizes[key] = sum(p.stat().st_size for p in package_dir.rglob("*")
                             if p.is_file() and "__pycache__" not in p.parts)
        else:
            sizes[key] = _dist_bytes(dist)
    return {"total": sum(sizes.values()), "parts": sizes}
