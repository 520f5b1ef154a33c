"""``litetrain demo`` end to end with small settings: files, valid PNGs, accuracy."""

from __future__ import annotations

import io

import pytest

from litetrain.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def test_demo_runs_end_to_end(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["demo", "--out", str(tmp_path), "--epochs", "3", "--device-epochs", "2",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    for name in ("loss.png", "logits.png", "predictions.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG and data[12:16] == b"IHDR" and len(data) > 5000
        assert str(tmp_path / name) in out
    assert (tmp_path / "model.tflite").is_file() and (tmp_path / "personalised.ckpt").is_file()
    acc = float(out.split("accuracy on 1000 test images: ")[1].split("%")[0])
    assert acc > 70  # chance is 10 %
    diff = float(out.split("converted vs original logits max |diff| ")[1].split()[0])
    assert diff < 1e-4


def test_demo_report_numbers(tmp_path):
    from litetrain.workflow import demo

    r = demo.run(tmp_path, epochs=8, device_epochs=2, limit=1000, progress=False,
                 out=io.StringIO())
    assert r.restore_max_abs_diff == 0.0  # restored weights are exactly the trained ones
    # on-device training continues pre-training: its first loss is nearer the last
    # pre-training losses than the first ones
    first, last = r.pretrain_losses[0], sum(r.pretrain_losses[-3:]) / 3
    assert abs(r.device_losses[0] - last) < abs(r.device_losses[0] - first)
    assert r.personalised_accuracy > 0.5


def test_plots_say_what_they_show():
    pytest.importorskip("matplotlib")
    import numpy as np

    from litetrain.workflow import plots

    digits = [str(k) for k in range(10)]
    fig = plots.logits_figure(np.arange(10.0), np.arange(10.0)[::-1], digits,
                              image=np.zeros((28, 28)), true_label=3, index=0)
    assert "test image #0" in fig._suptitle.get_text() and "true label: 3" in \
        fig._suptitle.get_text()
    bars = fig.axes[-1]
    assert bars.get_xlabel().startswith("class") and fig.axes[-2].get_ylabel() == "logit"
    assert all(t.get_rotation() == 0 for t in bars.get_xticklabels())  # digits upright
    labels = np.array([1, 2, 3, 4])
    fig = plots.prediction_figure(np.zeros((4, 28, 28)), labels, np.array([1, 2, 0, 4]),
                                  digits)
    title = fig._suptitle.get_text()
    assert "3/4 right (75%)" in title and "red = wrong" in title
    wrong = [ax.get_title() for ax in fig.axes if ax.get_title().startswith("0")]
    assert wrong == ["0 (true: 3)"] and fig.axes[2].title.get_color() == "red"
