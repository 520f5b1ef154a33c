"""The ``litetrain`` command line: inspect, train, infer, bench, quantize, demo, transfer,
convert, federated.

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
    from .workflow.session import TrainingSession, training_step_problem

    interp = _interpreter(args.model)
    problem = training_step_problem(interp, args.signature)
    if problem:
        raise LitetrainError(problem + " (--signature names the training step)")
    runner = interp.get_signature_runner(args.signature)
    data = load_inputs(args.data, input_specs(runner), f"signature '{args.signature}'")
    session = TrainingSession(
        interp, data, signature=args.signature, epochs=args.epochs,
        batch_size=args.batch_size, max_steps=args.max_steps, time_budget=args.time_budget,
        validation_split=args.validation_split, patience=args.patience,
        checkpoint=args.checkpoint, keep=args.keep, resume=args.resume,
        snapshot_every=args.snapshot_every, seed=args.seed, progress=not args.quiet)
    report = session.run()
    started = {"snapshot": f"resumed the session in {session.snapshot} at step "
                           f"{report.total_steps - report.steps}",
               "checkpoint": f"started from the weights in {args.checkpoint}",
               "model file": "started from the model file's weights"}
    print(started[report.started_from])
    losses = report.losses
    if losses:
        print(f"{report.steps} steps in {report.seconds:.1f} s (session: {report.total_steps} "
              f"steps, {report.epochs:.2f} epochs); loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    if report.validation_losses:
        print(f"validation loss {report.validation_losses[-1]:.4f} "
              f"(best {report.best_validation_loss:.4f})")
    kept = " (best validation loss)" if args.keep == "best" else ""
    print(f"stopped: {report.stopped}; saved {args.checkpoint}{kept} and {session.snapshot}")
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
    if n == 0:
        raise LitetrainError(f"{args.data} holds no examples")
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
        out_path = args.output if args.output.endswith(".npz") else args.output + ".npz"
        np.savez(out_path, **outputs)  # np.savez appends .npz; say the name it wrote
        print(f"wrote {out_path}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .workflow.bench import bench, format_rows

    try:
        sizes = tuple(int(b) for b in args.batch_sizes.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise LitetrainError(f"--batch-sizes takes positive integers like 1,32,100, got "
                             f"'{args.batch_sizes}'")
    data = Path(args.model).read_bytes()
    _interpreter(args.model)  # a clear error for a bad file before timing anything
    rows = bench(data, [args.signature] if args.signature else None, sizes)
    print(format_rows(rows))
    return 0


def _cmd_quantize(args: argparse.Namespace) -> int:
    from .workflow.quantizing import quantize_file

    output = args.output or f"{Path(args.model).stem}_{args.mode}.tflite"
    r = quantize_file(args.model, args.mode, output, data=args.data,
                      checkpoint=args.checkpoint, signature=args.signature)
    if r.dropped:
        print(f"note: {r.dropped}")
    print(f"wrote {output} ({args.mode}): {r.size_after:,} bytes, "
          f"{r.size_after / r.size_before:.2f}x the {r.size_before:,} of {args.model}")
    if r.accuracy_before is not None:
        print(f"accuracy of '{r.signature}': {r.accuracy_before:.2%} before, "
              f"{r.accuracy_after:.2%} after")
    elif args.data:
        print("no accuracy: the data has no 'labels' (or 'y') array beside the inputs")
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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return value


def _cmd_federated(args: argparse.Namespace) -> int:
    try:
        from .federated import simulation
    except ImportError as e:
        raise LitetrainError(f"federated needs Flower: pip install 'litetrain[federated]' "
                             f"({e})") from None
    from .data import load_digits

    (x, y), test = load_digits()
    if args.model is None:
        from .author.export import convert
        from .workflow.demo import tutorial_model

        content, name = convert(tutorial_model(learning_rate=args.learning_rate)), "tutorial"
    else:
        content, name = Path(args.model).read_bytes(), args.model
    if args.write_node_data:
        files = simulation.write_node_data(content, (x, y), test, args.write_node_data,
                                           args.clients, args.partition, args.seed)
        print(f"wrote {len(files)} files for a deployment into {args.write_node_data} "
              f"(model.tflite, test.npz, node0..{args.clients - 1}.npz)")
        return 0
    settings = {k: v for k, v in vars(args).items() if k not in ("func", "command", "debug")}
    print(f"federated: {name}, {args.clients} clients, {args.rounds} rounds, "
          f"partition {args.partition}, strategy {args.strategy}"
          + (f", DP clip {args.dp_clip} noise {args.dp_noise}" if args.dp_clip else ""))
    result = simulation.simulate(content, (x, y), test, clients=args.clients,
                                 rounds=args.rounds, partition=args.partition,
                                 strategy=args.strategy, fraction=args.fraction,
                                 local_epochs=args.local_epochs, batch_size=args.batch_size,
                                 dp_clip=args.dp_clip, dp_noise=args.dp_noise, seed=args.seed,
                                 verbose=args.verbose, learning_rate=args.learning_rate,
                                 proximal_mu=args.proximal_mu)
    print(simulation.format_table(result))
    for line in result.errors[:5]:
        print(f"  failed: {line}", file=sys.stderr)
    files = simulation.write_outputs(result, args.out, settings)
    for label, path in files.items():
        print(f"  {label:<10} {path}")
    print(f"done in {result.seconds:.1f} s")
    return 0


def _cmd_transfer(args: argparse.Namespace) -> int:
    from .author.export import convert
    from .author.optimizers import Adam
    from .author.transfer import transfer

    module = transfer(args.base, args.classes, optimizer=Adam(args.learning_rate),
                      base_signature=args.signature, base_output=args.output_tensor)
    data = convert(module)
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out} ({len(data):,} bytes): load(feature) -> bottleneck, "
          f"train(bottleneck, label) -> loss, infer(feature) -> output, save, restore; "
          f"{args.classes} classes, builtin ops only")
    return 0


_LOSSES = ("categorical_crossentropy", "sparse_categorical_crossentropy", "mse")


def _cmd_convert(args: argparse.Namespace) -> int:
    from .author import losses, optimizers
    from .author.export import convert
    from .author.trainable import trainable
    from .keras import load_model

    model = load_model(args.model)
    optimizer, loss = model.optimizer, model.loss
    opt_note = f"the file's {type(optimizer).__name__} (its saved state)" if optimizer else ""
    if args.optimizer is not None or optimizer is None:
        spec = args.optimizer or "adam:1e-3"
        name, _, rate = spec.partition(":")
        classes = {"sgd": optimizers.SGD, "adam": optimizers.Adam, "adamw": optimizers.AdamW,
                   "rmsprop": optimizers.RMSprop, "adagrad": optimizers.Adagrad,
                   "nadam": optimizers.Nadam, "lion": optimizers.Lion}
        if name.lower() not in classes:
            raise LitetrainError(f"--optimizer: unknown '{name}'; known: {sorted(classes)}")
        try:
            optimizer = classes[name.lower()](float(rate)) if rate else classes[name.lower()]()
        except ValueError:
            raise LitetrainError(f"--optimizer: '{rate}' is not a learning rate") from None
        opt_note = spec
    loss_note = "the file's compiled loss"
    if args.loss is not None or loss is None:
        last = model.layers[-1]
        softmax_out = getattr(last, "activation", None) is not None and \
            getattr(last.activation, "__name__", "") == "softmax"
        kind = args.loss or "categorical_crossentropy"
        loss = {"categorical_crossentropy": losses.CategoricalCrossentropy(not softmax_out),
                "sparse_categorical_crossentropy": losses.SparseCategoricalCrossentropy(
                    not softmax_out),
                "mse": losses.MeanSquaredError()}[kind]
        loss_note = kind
    kind, _, count = args.trainable.partition(":")
    if args.split:
        from .keras.split import split

        if kind != "last" or not count.isdigit():
            raise LitetrainError(f"--split needs --trainable last:N, got {args.trainable!r}")
        module, names = split(model, int(count), loss, optimizer), "load, train"
    else:
        module, names = trainable(model, loss=loss, optimizer=optimizer,
                                  fine_tune=args.trainable), "train"
    data = convert(module)
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out} ({len(data):,} bytes): {names}, infer, save, restore "
          f"({loss_note}, {opt_note}, trainable {args.trainable}); builtin ops only")
    return 0


def _add_convert(sub) -> None:
    p = sub.add_parser("convert", help="a Keras .keras/.h5 model to a trainable .tflite "
                       "(train/infer/save/restore), without TensorFlow")
    p.add_argument("model", help="a .keras or .h5 file (needs h5py: litetrain[keras])")
    p.add_argument("-o", "--out", default="model.tflite", help="output file "
                   "(default: %(default)s)")
    p.add_argument("--loss", choices=_LOSSES, default=None,
                   help="training loss (default: the file's compiled loss, else "
                   "categorical_crossentropy; on logits unless the model ends in softmax)")
    p.add_argument("--optimizer", default=None, help="NAME[:RATE], e.g. sgd:0.01 (default: "
                   "the file's compiled optimizer with its saved state, else adam:1e-3)")
    p.add_argument("--trainable", default="all", help="all, bias or last:N "
                   "(default: %(default)s)")
    p.add_argument("--split", action="store_true", help="with --trainable last:N: the frozen "
                   "layers become a load(x) -> bottleneck signature and train(bottleneck, y) "
                   "trains the last N (Sequential models)")
    p.set_defaults(func=_cmd_convert)


def _add_transfer(sub) -> None:
    p = sub.add_parser("transfer", help="build the blog's transfer-learning file from a "
                       "float .tflite image model (frozen base + trainable head)")
    p.add_argument("base", help="a float .tflite inference file (the frozen base)")
    p.add_argument("--classes", type=_positive, required=True, help="number of classes")
    p.add_argument("-o", "--out", default="transfer.tflite", help="output file "
                   "(default: %(default)s)")
    p.add_argument("--signature", help="the base's signature (default: its only one)")
    p.add_argument("--output-tensor", help="a tensor of the base to use as the bottleneck "
                   "(default: the signature's output)")
    p.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's learning rate "
                   "(default: %(default)s)")
    p.set_defaults(func=_cmd_transfer)


def _add_federated(sub) -> None:
    p = sub.add_parser("federated", help="simulate federated learning (Flower) of a model "
                       "file on the shipped digits", description="Splits the shipped digits "
                       "over --clients nodes, runs Flower's strategy against litetrain's "
                       "ClientApp in this process, prints a round table and writes the final "
                       "global weights (checkpoint), metrics.json and accuracy.png.")
    p.add_argument("model", nargs="?", help="a .tflite file with a train signature "
                   "(default: the tutorial model, authored and converted on the fly)")
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--partition", default="iid", help="iid or dirichlet:ALPHA (non-IID; "
                   "smaller ALPHA, fewer classes per client)")
    p.add_argument("--strategy", default="fedavg", help="fedavg, fedavgm, fedadam, fedyogi, "
                   "fedadagrad, fedprox, fedmedian, fedtrimmedavg")
    p.add_argument("--fraction", type=float, default=1.0, help="share of clients per round")
    p.add_argument("--local-epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=0.1,
                   help="SGD rate of the tutorial model; with MODEL and fedprox, give the "
                   "model's own SGD rate (the proximal step uses it)")
    p.add_argument("--proximal-mu", type=float, default=0.1, help="FedProx's mu")
    p.add_argument("--dp-clip", type=float, help="server-side DP: clip each update's L2 norm")
    p.add_argument("--dp-noise", type=float, default=0.0, help="DP noise multiplier")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="litetrain-federated", help="output folder")
    p.add_argument("--verbose", action="store_true", help="show Flower's log")
    p.add_argument("--write-node-data", metavar="DIR", help="instead of simulating, write "
                   "model.tflite, test.npz and one node<k>.npz per client for a SuperLink "
                   "deployment (see the README)")
    p.set_defaults(func=_cmd_federated)


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
                       description="Runs epochs of shuffled mini-batches through the training "
                       "signature. Starts from --checkpoint's weights if it exists (--resume: "
                       "continues the interrupted session exactly, from CHECKPOINT.session). "
                       "Saves the checkpoint (through the model's save signature) and the "
                       "session snapshot atomically when done, out of budget, or on Ctrl-C.")
    p.add_argument("model", help="a .tflite file with train/save/restore signatures")
    p.add_argument("--data", required=True, help=".npz with arrays named like the train "
                   "signature's inputs (integer class labels become one-hot when the input "
                   "takes one-hot rows), or an IDX images file (*-images-idx3-ubyte[.gz]) "
                   "with its labels file beside it")
    p.add_argument("--checkpoint", required=True, help="checkpoint file the model's "
                   "save/restore signatures write/read; the session snapshot is "
                   "CHECKPOINT.session")
    p.add_argument("--resume", action="store_true", help="continue the session snapshot "
                   "exactly (weights, optimizer state, position, shuffling) if it exists")
    p.add_argument("--epochs", type=_positive, default=1, help="passes over the training examples "
                   "(default: %(default)s)")
    p.add_argument("--batch-size", type=_positive, default=32,
                   help="examples per step (default: %(default)s)")
    p.add_argument("--max-steps", type=int, metavar="N", help="stop after N steps of the "
                   "session (counted across resumes)")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="stop (and save) before this many seconds of training have passed")
    p.add_argument("--validation-split", type=float, default=0.0, metavar="FRACTION",
                   help="hold out the last FRACTION of the examples; report their loss each "
                   "epoch (default: %(default)s)")
    p.add_argument("--patience", type=int, metavar="EPOCHS", help="early stopping: stop after "
                   "this many epochs without a better validation loss")
    p.add_argument("--keep", choices=["last", "best"], default="last", help="weights the "
                   "checkpoint gets: the last step's, or the best validation loss's "
                   "(default: %(default)s)")
    p.add_argument("--snapshot-every", type=int, metavar="STEPS", help="also write the "
                   "session snapshot every STEPS steps (default: each epoch and each minute)")
    p.add_argument("--signature", default="train",
                   help="the training-step signature (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="shuffling seed (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("infer", help="run a model's 'infer' signature over a data file")
    p.add_argument("model", help="a .tflite file")
    p.add_argument("--data", required=True, help=".npz (arrays named like the inputs; "
                   "'labels' or 'y' for accuracy) or an IDX images file")
    p.add_argument("--checkpoint", help="restore these weights first")
    p.add_argument("--signature", default="infer",
                   help="the signature to run (default: %(default)s)")
    p.add_argument("--batch-size", type=_positive, default=256,
                   help="examples per call (default: %(default)s)")
    p.add_argument("--output", help="write the outputs to this .npz")
    p.set_defaults(func=_cmd_infer)

    p = sub.add_parser("bench", help="latency (median, p90) and peak memory per signature "
                       "and batch size")
    p.add_argument("model", help="a .tflite file")
    p.add_argument("--signature", help="only this signature (default: all without string "
                   "inputs)")
    p.add_argument("--batch-sizes", default="1,32,100", help="comma-separated, e.g. 1,32,100 "
                   "(default: %(default)s)")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser("quantize", help="write a quantized copy of a model for inference; "
                       "print size and accuracy before/after",
                       description="Quantizes the model's inference signatures (training "
                       "and file signatures are dropped) with litetrain.quantize.")
    p.add_argument("model", help="a .tflite file")
    p.add_argument("--mode", required=True, choices=["int8", "dynamic_range", "float16"],
                   help="int8: full integer (needs --data to calibrate); dynamic_range: int8 "
                   "weights, float activations; float16: half-precision weights")
    p.add_argument("--data", help=".npz/IDX examples: int8 calibration, and accuracy before/"
                   "after when a 'labels' (or 'y') array is beside the inputs")
    p.add_argument("--checkpoint", help="restore these (personalised) weights first")
    p.add_argument("--signature", help="the inference signature to measure (default: infer, "
                   "or the model's only signature)")
    p.add_argument("-o", "--output", help="the quantized .tflite to write (default: the "
                   "model's name + _MODE.tflite, in the current folder)")
    p.set_defaults(func=_cmd_quantize)

    p = sub.add_parser("demo", help="the on-device training tutorial end to end, on data "
                       "shipped with litetrain (no network); writes plots")
    p.add_argument("--out", default="litetrain-demo", help="folder for the model, the "
                   "checkpoint and the PNG plots (default: ./litetrain-demo)")
    p.add_argument("--dataset", default="digits", choices=["digits", "mnist", "fashion-mnist"],
                   help="digits: the 5,000 MNIST digits inside the package (default)")
    p.add_argument("--data-dir", help="folder with the data set's IDX files")
    p.add_argument("--epochs", type=int, default=10, help="pre-training epochs")
    p.add_argument("--device-epochs", type=int, default=10, help="on-device epochs")
    p.add_argument("--batch-size", type=_positive, default=100,
                   help="examples per step (default: %(default)s)")
    p.add_argument("--limit", type=int, help="use only this many training images")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_demo)
    _add_transfer(sub)
    _add_convert(sub)
    _add_federated(sub)
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
