"""``benchmarks/run.py --quick`` runs end to end and reports every figure the README
table is built from (the figures themselves are measured, never asserted: see
benchmarks/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_benchmark_reports_every_figure(tmp_path):
    out_json, out_md = tmp_path / "b.json", tmp_path / "b.md"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick",
                    "--json", str(out_json), "--markdown", str(out_md)],
                   check=True, capture_output=True, text=True, timeout=600)
    r = json.loads(out_json.read_text())
    rows = {(x["signature"], x["batch"], x["engine"]) for x in r["latency"]}
    assert rows == {(s, b, e) for s in ("train", "infer") for b in (1, 32, 100)
                    for e in ("litetrain (Flex model)", "litetrain (exported)")}
    for x in r["latency"]:
        assert 0 < x["median_ms"] <= x["p90_ms"]
        assert x["x bare NumPy"] > 0 and x["x machine limit"] > 0
    assert r["cold_start"]["litetrain"]["seconds"] > 0
    for rss in r["peak_rss"].values():
        assert rss["state"] > 0 and rss["activations"] > 0 and rss["peak"] >= rss["baseline"]
    assert r["installed"]["litetrain"]["parts"]["numpy"] > 0
    assert r["pretraining"]["litetrain_images_s"] > 0
    text = out_md.read_text()
    assert "| signature | batch | engine" in text and "Cold start" in text
