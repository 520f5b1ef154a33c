"""This checkout's int8 inference against another git revision's and ai-edge-litert's, in
ONE process, interleaved (numbers from separate processes are not comparable on a shared
machine).

The other revision's ``litetrain`` is extracted once into ``/tmp/litetrain-rev-REV`` and
imported as ``litetrain_rev`` (as ``compare_revisions.py`` does; kept there, so its
compiled kernels' disk cache survives: the first run compiles them, minutes). Both run
the TensorFlow-made full-int8 fixtures with their compiled kernels (the ``[fast]`` extra)
loaded, one thread, beside LiteRT's default interpreter; ratios are medians of per-round
ratios (``common.interleaved``).

    python benchmarks/quantized_revisions.py REV [--model efficientnet_like] [--batch 32]
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks")]

import quantized  # noqa: E402
from common import interleaved  # noqa: E402

import litetrain  # noqa: E402


def _revision(rev: str):
    """``rev``'s ``litetrain`` as ``litetrain_rev``, extracted once."""
    into = Path(f"/tmp/litetrain-rev-{rev}")
    if not (into / "litetrain_rev").exists():
        into.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "litetrain"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
        (into / "litetrain").rename(into / "litetrain_rev")
        init = into / "litetrain_rev" / "__init__.py"  # its lazy attribute table
        init.write_text(init.read_text().replace('"litetrain.', '"litetrain_rev.'))
    sys.path.insert(0, str(into))
    return importlib.import_module("litetrain_rev")


def _wait(*packages) -> None:
    for lt in packages:
        fast = importlib.import_module(f"{lt.__name__}.ops.fast")
        for family in fast.FAMILIES:
            loader = fast.kernels(family)
            if loader is not None:
                loader.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev")
    parser.add_argument("--model", action="append", choices=quantized.MODELS)
    parser.add_argument("--batch", action="append", type=int)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    other, litert = _revision(args.rev), quantized._litert()
    for kind in args.model or quantized.MODELS:
        for batch in args.batch or quantized.BATCHES:
            x = quantized._input(kind, batch)
            path = quantized.FIXTURES / kind / "int8.tflite"
            runs = {"this": quantized._runner(litetrain.Interpreter, path, x, 1),
                    args.rev: quantized._runner(other.Interpreter, path, x, 1)}
            if litert is not None:
                runs["litert"] = quantized._runner(litert, path, x, 1)
            for run in runs.values():
                run()  # the second run starts loading the compiled kernels
            _wait(litetrain, other)
            r = interleaved(runs, "this", args.rounds, 10 if batch > 1 else 100)
            line = [f"{kind} b{batch}: this {r['this']['median_ms']:.3f} ms",
                    f"{args.rev} {r[args.rev]['median_ms']:.3f} ms "
                    f"({1 / r[args.rev]['ratio']:.2f}x this)"]
            if litert is not None:
                line.append(f"litert {r['litert']['median_ms']:.3f} ms "
                            f"(this {r['litert']['ratio']:.2f}x litert)")
            print(", ".join(line))


if __name__ == "__main__":
    main()
