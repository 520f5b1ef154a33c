"""``benchmarks/federated.py --quick`` runs end to end and reports every figure the README
table is built from (measured, never asserted beyond being there and sane)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("flwr")

ROOT = Path(__file__).resolve().parents[2]


def test_quick_federated_benchmark(tmp_path):
    out = tmp_path / "f.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "federated.py"), "--quick",
                    "--repeats", "1", "--json", str(out)], check=True, capture_output=True,
                   text=True, timeout=600)
    r = json.loads(out.read_text())
    for run in ("centralized", "federated", "federated_dp"):
        assert len(r[run]["accuracy"]) == r["setup"]["rounds"] + 1
        assert all(0 <= a <= 1 for a in r[run]["accuracy"])
        assert len(r[run]["round_seconds"]) == r["setup"]["rounds"]
        assert r[run]["total_seconds"] > 0
    assert r["time_ratio_to_centralized"]["federated"] > 0
    assert r["cpu_ratio_to_centralized"]["federated_dp"] > 0
