"""The ``litetrain`` command line. Errors print one line (no traceback unless --debug)
and exit non-zero."""

from __future__ import annotations

import argparse
import json
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
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary, str(path)))
    return 0


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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (LitetrainError, OSError) as e:
        if args.debug:
            raise
        print(f"litetrain {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"litetrain {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
