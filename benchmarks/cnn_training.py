"""Train-step speed of authored convolutional and recurrent models (``lt.nn``, exported
with builtin ops only), every ratio measured in one run, interleaved:

* **CNN** (conv / BN / max-pool / depthwise / 1×1 conv / strided conv / average-pool /
  dense, 32×32×3 input) and **LSTM** and **GRU** (16 steps of 32 features, 64 units,
  then dense), batch 32, SGD;
* against the step's **GEMM-FLOP limit**: every convolution and dense product of the
  step, forward and backward (input gradients except the first layer's, filter
  gradients), as float32 GEMMs of the same shapes at NumPy's sgemm rate in this process
  (a recurrent layer's input projection and its kernel's gradient as one GEMM over all
  time steps, its recurrent products step by step). Depthwise convolutions, pooling,
  batch-norm and activations are not products: they are what a step costs beyond it;
* against **ai-edge-litert** on the same exported file, same thread count (one by
  default: on a shared machine a second BLAS thread mostly measures the neighbours).

Steps are timed in the steady state of a training loop: with the ``[fast]`` extra, after
the compiled kernels of fused gradient chains have loaded.

    python benchmarks/cnn_training.py [--quick] [--profile] [--threads N] [--model NAME]

``--profile`` also prints, per model, the ten ops the litetrain step spends most in and
the step's minor page faults.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks")]

from common import samples, sgemm_runner, table  # noqa: E402

import litetrain as lt  # noqa: E402
from litetrain.ops.fast import FAMILIES, kernels  # noqa: E402
from litetrain.runtime.threads import blas_threads  # noqa: E402

try:
    from ai_edge_litert.interpreter import Interpreter as LiteRT
except ImportError:  # the comparison column is left empty
    LiteRT = None

BATCH = 32


def cnn() -> lt.nn.Sequential:
    return lt.nn.Sequential([
        lt.nn.Conv2D(16, 3, padding="same", activation="relu", input_shape=(32, 32, 3)),
        lt.nn.BatchNormalization(),
        lt.nn.MaxPool2D(2),
        lt.nn.DepthwiseConv2D(3, padding="same", activation="relu"),
        lt.nn.Conv2D(32, 1, activation="relu"),
        lt.nn.BatchNormalization(),
        lt.nn.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
        lt.nn.AveragePooling2D(2),
        lt.nn.Flatten(),
        lt.nn.Dense(10),
    ])


def recurrent(kind: str) -> lt.nn.Sequential:
    layer = {"lstm": lt.nn.LSTM, "gru": lt.nn.GRU}[kind]
    return lt.nn.Sequential([layer(64, input_shape=(16, 32)), lt.nn.Dense(10)])


MODELS = {"cnn": cnn, "lstm": lambda: recurrent("lstm"), "gru": lambda: recurrent("gru")}


def gemm_limit(model: lt.nn.Sequential, batch: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of every product a train step of ``model`` needs (see the docstring)."""
    shapes: list[tuple[int, int, int]] = []
    shape = (batch, *model.layers[0].input_shape)
    first = True
    for layer in model.layers:
        out = layer.output_shape(shape)
        fwd = None
        if isinstance(layer, lt.nn.Conv2D):  # forward (rows, kh·kw·in, filters)
            kh, kw = layer.kernel_size
            fwd = (int(np.prod(out[:3])), kh * kw * shape[3], out[3])
        elif isinstance(layer, lt.nn.Dense):
            fwd = (int(np.prod(shape[:-1])), shape[-1], out[-1])
        elif isinstance(layer, (lt.nn.LSTM, lt.nn.GRU)):
            (b, t, f), u, gates = shape, layer.units, layer.gates
            shapes += [(b * t, f, gates * u), (f, b * t, gates * u)]  # input projection
            if not first:
                shapes.append((b * t, gates * u, f))
            shapes += [(b, u, gates * u), (b, gates * u, u)] * (t - 1)  # recurrence
            shapes.append((u, b * (t - 1), gates * u))  # recurrent kernel's gradient
            first = False
        if fwd is not None:
            m, k, n = fwd
            shapes += [fwd, (k, m, n)] + ([] if first else [(m, n, k)])
            first = False
        shape = out
    return shapes


def _data(model: lt.nn.Sequential, batch: int):
    rng = np.random.default_rng(0)
    x = rng.random((batch, *model.layers[0].input_shape), np.float32)
    out = model.output_shape((batch, *model.layers[0].input_shape))
    y = np.eye(out[-1], dtype=np.float32)[rng.integers(0, out[-1], batch)]
    return x, y


def exported(name: str) -> tuple[lt.nn.Sequential, bytes]:
    model = MODELS[name]()
    m = lt.trainable(model, loss=lt.losses.CategoricalCrossentropy(from_logits=True),
                     optimizer=lt.optimizers.SGD(0.01))
    return model, lt.convert(m)


def _runner(interpreter, feeds):
    run = interpreter.get_signature_runner("train")
    run(**feeds)  # the init subgraph and the per-shape preparation happen here
    # Steps with compiled forms start loading them (the [fast] extra) from their second
    # run, and fused steps once the kernels they build on are there: a training loop soon
    # runs them all, so time that — run and wait until a run starts no more loading.
    started = None
    while True:
        run(**feeds)
        loaders = [kernels(family) for family in FAMILIES]
        now = {loader.family for loader in loaders if loader is not None and loader._started}
        for loader in loaders:
            if loader is not None and loader._started:
                loader.wait()
        if now == started:
            return lambda: run(**feeds)
        started = now


def profile(content: bytes, feeds: dict, threads: int, calls: int = 5
            ) -> tuple[list[tuple], float]:
    """(op, ms per step, nodes) of the ten ops a litetrain step spends most in, and the
    minor page faults per step (memory the step gets from the OS again each time)."""
    from litetrain.runtime import plan as planmod

    spent, nodes = Counter(), Counter()
    original = planmod.Plan._execute

    def timed(self, program, *rest, **kw):
        """Plan._execute on the same program, each instruction's kernel timed."""
        def wrap(instruction):
            step, kernel = instruction[0], instruction[1]

            def timed_kernel(*args):
                t = time.perf_counter()
                out = kernel(*args)
                spent[step.op] += time.perf_counter() - t
                nodes[step.op] += 1
                return out
            return (step, timed_kernel, *instruction[2:])
        return original(self, [wrap(i) for i in program], *rest, **kw)

    run = _runner(lt.Interpreter(model_content=content, num_threads=threads), feeds)
    for _ in range(calls):  # the kept buffers and every kernel's first-time memory
        run()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        run()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / calls
    planmod.Plan._execute = timed
    try:
        for _ in range(calls):
            run()
    finally:
        planmod.Plan._execute = original
    return [(op, t / calls * 1e3, nodes[op] // calls) for op, t in spent.most_common(10)], \
        faults


def _cpu_samples(fn, repeats: int) -> list[float]:
    """CPU seconds of the process per call (one thread: the call's own work, not the
    time other processes held the core)."""
    out = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        out.append(time.process_time() - t0)
    return out


def timed(candidates: dict, reference: str, rounds: int, repeats: int) -> dict[str, dict]:
    """Interleaved rounds (as ``common.interleaved``): per candidate the median wall time
    and the median over rounds of the reference's time / its time, in wall time and in
    the process's CPU time (which a loaded machine disturbs far less: with one thread it
    leaves out the time other processes held the core)."""
    wall: dict[str, list[float]] = {k: [] for k in candidates}
    cpu: dict[str, list[float]] = {k: [] for k in candidates}
    every: dict[str, list[float]] = {k: [] for k in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            t = samples(fn, repeats)
            wall[name].append(float(np.median(t)))
            every[name] += t
            cpu[name].append(float(np.median(_cpu_samples(fn, repeats))))
    out = {}
    for name in candidates:
        r = np.array(wall[reference]) / np.array(wall[name])
        rc = np.array(cpu[reference]) / np.array(cpu[name])
        out[name] = {"median_ms": float(np.median(every[name])) * 1e3,
                     "cpu_ms": float(np.median(cpu[name])) * 1e3, "ratio": float(np.median(r)),
                     "ratio_range": (float(r.min()), float(r.max())),
                     "cpu_ratio": float(np.median(rc))}
    return out


def _limited(fn, threads: int):
    def run():
        with blas_threads(threads):
            fn()
    return run


def run(quick: bool = False, names=tuple(MODELS), with_profile: bool = False,
        threads: int = 1) -> list[dict]:
    rounds, repeats = (2, 3) if quick else (7, 10)
    rows = []
    for name in names:
        model, content = exported(name)
        x, y = _data(model, BATCH)
        feeds = {"x": x, "y": y}
        cands = {"litetrain": _runner(lt.Interpreter(model_content=content,
                                                      num_threads=threads), feeds),
                 "limit": _limited(sgemm_runner(gemm_limit(model, BATCH)), threads)}
        if LiteRT is not None:
            cands["litert"] = _runner(LiteRT(model_content=content, num_threads=threads),
                                      feeds)
        r = timed(cands, "litetrain", rounds, repeats)
        flops = 2 * sum(m * k * n for m, k, n in gemm_limit(model, BATCH))
        row = {"model": name, "batch": BATCH, "threads": threads,
               "litetrain_ms": r["litetrain"]["median_ms"], "limit_ms": r["limit"]["median_ms"],
               "litetrain_cpu_ms": r["litetrain"]["cpu_ms"], "limit_cpu_ms": r["limit"]["cpu_ms"],
               "gemm_mflop": flops / 1e6, "x_limit": r["limit"]["ratio"],
               "x_limit_range": r["limit"]["ratio_range"], "x_limit_cpu": r["limit"]["cpu_ratio"]}
        if "litert" in r:
            row.update(litert_ms=r["litert"]["median_ms"], x_litert=r["litert"]["ratio"],
                       x_litert_cpu=r["litert"]["cpu_ratio"])
        if with_profile:
            row["profile"] = profile(content, feeds, threads)
        rows.append(row)
    return rows


def report(rows: list[dict]) -> str:
    def f(v, fmt="{:.2f}"):
        return "" if v is None else fmt.format(v)
    lines = [table([{"model": r["model"], "batch": r["batch"],
                     "step ms": f(r["litetrain_ms"]), "CPU ms": f(r["litetrain_cpu_ms"]),
                     "GEMM MFLOP": f(r["gemm_mflop"], "{:.1f}"),
                     "limit ms": f(r["limit_ms"]), "× limit": f(r["x_limit"]),
                     "× limit (CPU)": f(r["x_limit_cpu"]),
                     "LiteRT ms": f(r.get("litert_ms")), "× LiteRT": f(r.get("x_litert")),
                     "× LiteRT (CPU)": f(r.get("x_litert_cpu"))}
                    for r in rows],
                   ["model", "batch", "step ms", "CPU ms", "GEMM MFLOP", "limit ms", "× limit",
                    "× limit (CPU)", "LiteRT ms", "× LiteRT", "× LiteRT (CPU)"]),
             "", "× limit: the train step's time / its convolution and dense products (forward "
             "and backward) as float32 GEMMs at NumPy's sgemm rate; × LiteRT: / "
             "ai-edge-litert on the same exported file. Same run, interleaved, "
             f"{rows[0]['threads'] if rows else 1} thread(s); medians of per-round ratios of "
             "wall times and (CPU) of the process's CPU times, which on a shared machine "
             "measure the work rather than the neighbours (with one thread)."]
    for r in rows:
        if "profile" in r:
            ops, faults = r["profile"]
            lines.append(f"\n{r['model']} ({faults:.0f} page faults a step): " + ", ".join(
                f"{op} {ms:.2f} ms ×{n}" for op, ms, n in ops))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds (a smoke run)")
    parser.add_argument("--profile", action="store_true", help="per-op time of each step")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/LiteRT threads")
    parser.add_argument("--model", action="append", choices=list(MODELS),
                        help="only these models (default: all)")
    args = parser.parse_args()
    print(report(run(args.quick, tuple(args.model or MODELS), args.profile, args.threads)))


if __name__ == "__main__":
    main()
