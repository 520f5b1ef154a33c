"""``python -m tests.fuzz --cases N [--checkpoints M] [--kills K] [--start S]``.

Runs model cases S..S+N-1, checkpoint cases S..S+M-1 and K kills during saves, prints
every failure with its reproducer and the counts; exits 1 if anything failed.
``--replay model:SEED`` (or ``checkpoint:SEED``) reruns one case. Each case runs under
an address-space limit (so a runaway allocation is a MemoryError, not the OOM killer)
and a per-case alarm (a hang is reported, not waited for).
"""

from __future__ import annotations

import argparse
import collections
import signal
import sys
import time

from . import checkpoints, kills, models


class _Hang(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Hang("case took longer than the per-case limit")


def _limit_memory(gib: float) -> None:
    try:
        import resource
    except ImportError:
        return
    limit = int(gib * (1 << 30))
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def _run(kind: str, fn, seeds, timeout: int) -> tuple[int, list[str]]:
    failures = []
    for n, seed in enumerate(seeds, 1):
        signal.alarm(timeout)
        try:
            result = fn(seed)
        except _Hang as e:
            result = f"{kind}:{seed} HANG {e}"
        except Exception as e:  # the harness itself must not stop the campaign
            result = f"{kind}:{seed} harness error {type(e).__name__}: {e}"
        finally:
            signal.alarm(0)
        if result:
            failures.append(result)
            print(result, flush=True)
        if n % 1000 == 0:
            print(f"  {kind}: {n} cases, {len(failures)} failures", flush=True)
    return len(seeds), failures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz")
    p.add_argument("--cases", type=int, default=1000, help="mutated models")
    p.add_argument("--checkpoints", type=int, help="corrupted checkpoints (default: --cases)")
    p.add_argument("--kills", type=int, default=0, help="kill -9 during saves (V1 and V2)")
    p.add_argument("--start", type=int, default=0, help="first seed")
    p.add_argument("--timeout", type=int, default=20, help="seconds per case")
    p.add_argument("--memory-gib", type=float, default=4.0)
    p.add_argument("--replay", help="one case, e.g. model:123 or checkpoint:45")
    args = p.parse_args(argv)
    signal.signal(signal.SIGALRM, _on_alarm)
    _limit_memory(args.memory_gib)
    if args.replay:
        kind, seed = args.replay.split(":")
        fn = models.case if kind == "model" else checkpoints.case
        print(fn(int(seed)) or f"{args.replay}: passed")
        return 0
    n_ckpt = args.cases if args.checkpoints is None else args.checkpoints
    t0 = time.time()
    counts, failures = {}, []
    for kind, fn, n in (("model", models.case, args.cases),
                        ("checkpoint", checkpoints.case, n_ckpt)):
        done, fails = _run(kind, fn, range(args.start, args.start + n), args.timeout)
        counts[kind] = done
        failures += fails
    if args.kills:
        stats = kills.campaign(args.kills, args.start)
        counts["kills"] = stats["kills"]
        print(f"kills: {stats}")
        if stats["unreadable"] or stats["wrong"] or stats["max_extra_files"] > 4:
            failures.append(f"kills: {stats}")
    kinds = collections.Counter(f.split(")", 1)[-1].split(":")[0].strip()[:60] for f in failures)
    print(f"{counts} in {time.time() - t0:.0f} s; {len(failures)} failures")
    for what, n in kinds.most_common():
        print(f"  {n} x {what}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
