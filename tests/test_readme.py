"""Every README snippet runs as written: the Python blocks and the shell commands, in
order, in one empty folder that sees ``tests/fixtures`` (as the repository folder does).
Only the set-up block (``pip install``) is left to the reader: it installs this package."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from litetrain.cli import main

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, str]]:
    return BLOCK.findall((ROOT / "README.md").read_text())


def commands(script: str) -> list[list[str]]:
    joined = script.replace("\\\n", " ")
    return [argv for line in joined.splitlines() if (argv := shlex.split(line, comments=True))]


def test_the_readme_has_the_snippets_we_run():
    kinds = [kind for kind, _ in blocks()]
    assert kinds.count("python") >= 3 and kinds.count("bash") >= 2


def test_every_readme_snippet_runs(tmp_path, monkeypatch, capsys):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "fixtures").symlink_to(ROOT / "tests" / "fixtures")
    monkeypatch.chdir(tmp_path)
    ran = 0
    for kind, code in blocks():
        if "pip install" in code:
            continue
        if kind == "python":
            exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
            ran += 1
            continue
        for argv in commands(code):
            if argv[0] == "litetrain":
                assert main(argv[1:]) == 0, (argv, capsys.readouterr().err)
            elif argv[0] == "python":
                r = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True)
                assert r.returncode == 0, (argv, r.stderr)
            else:
                pytest.fail(f"README command not covered by this test: {argv}")
            ran += 1
    out = capsys.readouterr().out
    assert ran >= 10
    assert "resumed the session" in out and "a third epoch" not in out
    for name in ("model.tflite", "model.ckpt", "me.ckpt", "me.ckpt.session", "out.npz",
                 "int8.tflite"):
        assert (tmp_path / name).is_file(), name
