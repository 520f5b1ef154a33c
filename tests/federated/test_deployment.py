"""A real Flower deployment on loopback: ``flower-superlink`` + 2 × ``flower-supernode``
(each with its own data file) running litetrain's ClientApp, started by ``flwr run`` with
the example Flower App — the README's walk-through, as a test."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("flwr")

from litetrain.cli import main

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def _stop(procs: list[subprocess.Popen]) -> None:
    """End the processes this test started, with the children they spawned (each was
    started in its own session, so its process group is exactly its own tree)."""
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@pytest.mark.skipif(shutil.which("flower-superlink", path=str(BIN)) is None,
                    reason="Flower's command-line tools are not installed beside Python")
def test_superlink_supernodes_and_flwr_run_on_loopback(tmp_path):
    nodes = tmp_path / "nodes"
    assert main(["federated", "--clients", "2", "--partition", "dirichlet:1.0",
                 "--write-node-data", str(nodes)]) == 0
    home = tmp_path / "flwr-home"
    home.mkdir()
    link = _free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "local"\n\n[superlink.local]\n'
        f'address = "127.0.0.1:{link}"\ninsecure = true\n')
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "FLWR_HOME": str(home), "FLWR_TELEMETRY_ENABLED": "0",
           "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_start([str(BIN / "flower-superlink"), "--insecure", "--host",
                             "127.0.0.1", "--port", str(link), "--database",
                             ":flwr-in-memory:"], tmp_path / "superlink.log", env))
        _wait_port(link)
        for k in range(2):
            procs.append(_start(
                [str(BIN / "flower-supernode"), "--insecure", "--superlink",
                 f"127.0.0.1:{link}", "--port", str(_free_port()), "--node-config",
                 f"data='{nodes / f'node{k}.npz'}' model='{nodes / 'model.tflite'}'"],
                tmp_path / f"node{k}.log", env))
        out = tmp_path / "out"
        run = subprocess.run(
            [str(BIN / "flwr"), "run", str(ROOT / "examples" / "flower_app"), "local",
             "--stream", "--run-config",
             f"model='{nodes / 'model.tflite'}' test-data='{nodes / 'test.npz'}' "
             f"out='{out}' num-rounds=1 node-timeout=60.0"],
            env=env, capture_output=True, text=True, timeout=180)
        log = run.stdout + run.stderr
        # `flwr run` exits 0 even when the run fails: judge by what the ServerApp wrote.
        assert (out / "metrics.json").exists(), log[-3000:]
        metrics = json.loads((out / "metrics.json").read_text())
        (r1,) = metrics["rounds"]
        assert (r1["sampled"], r1["failures"]) == (2, 0)
        assert r1["accuracy"] > metrics["initial_accuracy"] + 0.3
        assert (out / "global.ckpt").exists()
    finally:
        _stop(procs)
