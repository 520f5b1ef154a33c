"""The ``litetrain`` command line: inspect, train, infer, bench, demo.

Exit codes: 0 success, 2 bad input, a failed model or not enough memory (one line on
stderr, no traceback unless --debug), 130 interrupted (``train`` saves its checkpoint
first). A closed output pipe (``litetrain inspect m.tflite | head``) ends quietly with
141, the shell's code for SIGPIPE.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from .errors import LitetrainError


def _cmd_inspect(args: argparse.Namespace) -> int:
    from .ops import all_ops
    from .summary import format_summary, summarize
    from .tflite.reader import read_model

    if args.ops:
        for name in sorted(all_ops(), key=lambda n: (n[0].isupper(), n)):
            print(name)
        return 0
    if args.model is None:
        raise LitetrainError("inspect needs a MODEL path (or --ops)")
    path = Path(args.model)
    model = read_model(path)
    summary = summarize(model, path.stat().st_size)
    text = json.dumps(summary, indent=2) if args.json else format_summary(summary, str(path))
    print(text)
    return 0


def _interpreter(path: str):
    from .runtime.interpreter import Interpreter

    return Interpreter(model_path=path)


def _cmd_train(args: argparse.Namespace) -> int:
    from .workflow.inputs import input_specs, load_inputs
    from .workflow.training import fit, require_signature

    interp = _interpreter(args.model)
    runner = require_signature(interp, args.signature, "the step to run")
    data = load_inputs(args.data, input_specs(runner), f"signature '{args.signature}'")
    report = fit(interp, data, epochs=args.epochs, batch_size=args.batch_size,
                 time_budget=args.time_budget, checkpoint=args.checkpoint,
                 signature=args.signature, seed=args.seed, progress=not args.quiet)
    losses = report.losses
    print(f"resumed from {args.checkpoint}" if report.resumed
          else "started from the model file's weights")
    if losses:
        print(f"{report.steps} steps ({report.epochs:.2f} epochs) in {report.seconds:.1f} s; "
              f"loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    print(f"stopped: {report.stopped}; saved {args.checkpoint}")
    return 130 if report.stopped == "interrupted" else 0


def _cmd_infer(args: argparse.Namespace) -> int:
    import numpy as np

    from .workflow.inputs import input_specs, load_inputs
    from .workflow.training import require_signature

    interp = _interpreter(args.model)
    runner = require_signature(interp, args.signature, "to run inference")
    if args.checkpoint:
        if not Path(args.checkpoint).exists():
            raise LitetrainError(f"checkpoint {args.checkpoint} does not exist")
        restore = require_signature(interp, "restore", "to load --checkpoint")
        restore(checkpoint_path=args.checkpoint)
    specs = input_specs(runner)
    data = load_inputs(args.data, specs, f"signature '{args.signature}'")
    names = list(specs)
    n = len(data[names[0]])
    parts: dict[str, list] = {}
    for start in range(0, n, args.batch_size):
        out = runner(**{k: data[k][start:start + args.batch_size] for k in names})
        for k, v in out.items():
            parts.setdefault(k, []).append(v)
    outputs = {k: np.concatenate(v) if v[0].ndim else np.stack(v) for k, v in parts.items()}
    print(f"{n} examples; outputs: " + ", ".join(f"{k} {list(v.shape)}"
                                                 for k, v in outputs.items()))
    labels = next((data[k] for k in ("labels", "y", "label") if k in data and k not in specs),
                  None)
    scores = outputs.get("logits", outputs.get("output"))
    if labels is not None and scores is not None and scores.ndim == 2:
        truth = labels.argmax(-1) if labels.ndim == 2 else labels
        print(f"accuracy: {np.mean(scores.argmax(-1) == truth):.2%}")
    if args.output:
        np.savez(args.output, **outputs)
        print(f"wrote {args.output}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .workflow.bench import bench, format_rows

    try:
        sizes = tuple(int(b) for b in args.batch_sizes.split(","))
    except ValueError:
        raise LitetrainError(f"--batch-sizes takes integers like 1,32,100, got "
                             f"'{args.batch_sizes}'") from None
    data = Path(args.model).read_bytes()
    _interpreter(args.model)  # a clear error for a bad file before timing anything
    try:
        rows = bench(data, [args.signature] if args.signature else None, sizes)
    except KeyError as e:
        raise LitetrainError(e.args[0]) from None
    print(format_rows(rows))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .workflow import demo

    if args.dataset != "digits" and args.data_dir is None:
        print("note: no --data-dir; the files are downloaded once into the cache",
              file=sys.stderr)
    report = demo.run(args.out, dataset=args.dataset, data_dir=args.data_dir,
                      epochs=args.epochs, device_epochs=args.device_epochs,
                      batch_size=args.batch_size, limit=args.limit, progress=not args.quiet)
    return 0 if report.personalised_accuracy > 0 else 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="litetrain", description="On-device training for "
                                     ".tflite models, in Python on NumPy.")
    parser.add_argument("--version", action="version", version=f"litetrain {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="describe a .tflite model: signatures, ops, variables")
    p.add_argument("model", nargs="?", help="path to a .tflite file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--ops", action="store_true", help="list every op litetrain can run")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("train", help="train a model file's 'train' signature on a data file",
                       description="Runs epochs of shuffled mini-batches through the train "
                       "signature. Resumes from --checkpoint if it exists; saves it (through the "
                       "model's save signature, atomically) when done, out of time, or on Ctrl-C.")
    p.add_argument("model", help="a .tflite file with train/save/restore signatures")
    p.add_argument("--data", required=True, help=".npz with arrays named like the train "
                   "signature's inputs, or an IDX images file (*-images-idx3-ubyte[.gz]) with "
                   "its labels file beside it")
    p.add_argument("--checkpoint", required=True, help="checkpoint file to resume from / save to")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="stop (and save) before this many seconds of training have passed")
    p.add_argument("--signature", default="train")
    p.add_argument("--seed", type=int, default=0, help="shuffling seed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("infer", help="run a model's 'infer' signature over a data file")
    p.add_argument("model")
    p.add_argument("--data", required=True, help=".npz (arrays named like the inputs; "
                   "'labels' or 'y' for accuracy) or an IDX images file")
    p.add_argument("--checkpoint", help="restore these weights first")
    p.add_argument("--signature", default="infer")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--output", help="write the outputs to this .npz")
    p.set_defaults(func=_cmd_infer)

    p = sub.add_parser("bench", help="latency (median, p90) and peak memory per signature "
                       "and batch size")
    p.add_argument("model")
    p.add_argument("--signature", help="only this signature (default: all without string "
                   "inputs)")
    p.add_argument("--batch-sizes", default="1,32,100", help="comma-separated, e.g. 1,32,100")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("demo", help="the on-device training tutorial end to end, on data "
                       "shipped with litetrain (no network); writes plots")
    p.add_argument("--out", default="litetrain-demo", help="folder for the model, the "
                   "checkpoint and the PNG plots (default: ./litetrain-demo)")
    p.add_argument("--dataset", default="digits", choices=["digits", "mnist", "fashion-mnist"],
                   help="digits: the 5,000 MNIST digits inside the package (default)")
    p.add_argument("--data-dir", help="folder with the data set's IDX files")
    p.add_argument("--epochs", type=int, default=10, help="pre-training epochs")
    p.add_argument("--device-epochs", type=int, default=10, help="on-device epochs")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--limit", type=int, help="use only this many training images")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        _silence_stdout()
        return 141
    except MemoryError:
        if args.debug:
            raise
        print(f"litetrain {args.command}: error: not enough memory (the input or a "
              "setting such as a batch size is too large)", file=sys.stderr)
        return 2
    except (LitetrainError, OSError, ValueError) as e:
        if args.debug:
            raise
        print(f"litetrain {args.command}: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"litetrain {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(message: str, limit: int = 2000) -> str:
    from .summary import printable

    message = printable(message)
    return message if len(message) <= limit else message[:limit] + " ..."


def _silence_stdout() -> None:
    # Python flushes stdout at exit; with the reader gone that would raise again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
