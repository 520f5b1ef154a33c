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
    assert [x["model"] for x in r["cnn_training"]] == ["cnn", "lstm", "gru"]
    for x in r["cnn_training"]:
        assert x["litetrain_ms"] > 0 and x["limit_ms"] > 0 and x["x_limit"] > 0
        assert x["gemm_mflop"] > 0
    conv = r["convnets"]
    assert {(x["model"], x["batch"]) for x in conv["latency"]} == {
        (m, b) for m in ("MobileNetV2-0.35", "MobileNetV3Small") for b in (1, 32)}
    for x in conv["latency"]:
        assert x["litetrain_ms"] > 0 and x.get("x_litert", 1) > 0
    for rss in conv["peak_rss"]:
        assert rss["peak"] >= rss["baseline"] and rss["bound"] > rss["weights"] > 0
    text = out_md.read_text()
    assert "| signature | batch | engine" in text and "Cold start" in text
    assert "| model | batch | step ms" in text
    assert "| model" in text and "Peak RSS running MobileNetV2" in text
    quantized = {(x["model"], x["variant"], x["batch"]) for x in r["quantized"]}
    assert {(m, "dynamic_range", b) for m in ("mobilenet_v3_small", "efficientnet_like")
            for b in (1, 32)} <= quantized
    for x in r["quantized"]:
        assert x["litetrain_ms"] > 0 and x["peer_ms"] > 0 and x["ratio"] > 0
    assert "Quantized inference" in text


def test_quick_training_models_benchmark_runs(tmp_path):
    """benchmarks/training_models.py --quick: a row per model with its GEMM work and ratio
    (TensorFlow's column needs a TF 2.18 Python, which the suite never uses)."""
    out_md = tmp_path / "t.md"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "training_models.py"), "--quick",
                    "--tf-python", str(tmp_path / "no-python"), "--markdown", str(out_md)],
                   check=True, capture_output=True, text=True, timeout=600)
    rows = [line for line in out_md.read_text().splitlines()[2:] if line.startswith("|")]
    assert len(rows) == 3
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert float(cells[1]) > 0 and float(cells[2]) > 0 and float(cells[3]) > 0


def test_cnn_training_profile_times_the_ops_of_a_step():
    """``cnn_training.py --profile`` wraps the kernels the plan runs (it follows the invoke
    loop's compiled program): every op of the step is counted, none twice."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import cnn_training
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    model, content = cnn_training.exported("lstm")
    x, y = cnn_training._data(model, 2)
    rows, faults = cnn_training.profile(content, {"x": x, "y": y}, threads=1, calls=1)
    assert faults >= 0
    assert rows and all(ms >= 0 and nodes >= 1 for _, ms, nodes in rows)
    assert any(op == "batch_matmul" or op == "fully_connected" for op, _, _ in rows)
