"""``moe-run``: compile an exported module and run it on NumPy inputs.

  moe-run model.mlir --weights model.safetensors --input x.npy --output y.npy
          [--entry forward] [--repeat N] [--count-ffn] [--target cpu|gpu-emulated]
  moe-run MODEL_DIR --ids ids.npy --output logits.npy [--repeat N] [--target ...]
  moe-run MODEL.gguf --ids ids.npy --output logits.npy [--repeat N] [--target ...]

A directory is a Hugging Face checkpoint folder (Mixtral, Qwen2-MoE,
Qwen3-MoE, OLMoE), a file ending in ``.gguf`` a llama.cpp GGUF file (llama
with experts, qwen2moe, qwen3moe, olmoe; docs/Export.md): either is compiled
from token ids ``[B, S]`` (an integer .npy) to logits ``[B, S, vocab]``
(float32).

The module is compiled (JIT) with the pipeline of ``--target``: ``cpu``
(the default) or ``gpu-emulated`` (the GPU kernels run on the host), the
target vocabulary of ``moe_mlir.targets``. Arguments whose
``moe.name`` attribute names a tensor of the weights file are bound to it;
the remaining arguments take the ``--input`` files in order. Outputs are
written to the ``--output`` files in order. Timing is printed (compile, and
the median of ``--repeat`` runs); compiles that take more than a second get
a progress line. ``--count-ffn`` (target ``cpu``) compiles with FFN
instrumentation and prints, per expert FFN, the rows it ran.
"""

import argparse
import os
import sys
import threading
import time
from typing import List, Optional

import numpy as np

from .compiler import CompileError, CompiledModule
from .targets import SUPPORT, TARGETS, Target, check_target
from .targets import pipeline as target_pipeline

__all__ = ["main"]


class _Progress:
    """Prints a progress line if the work takes more than a second."""

    def __init__(self, what: str, stream=None):
        self.what = what
        # sys.stderr when the work starts, not when the module was imported
        # (a stream replaced since, e.g. by a test's capture, may be closed).
        self.stream = stream if stream is not None else sys.stderr
        self._done = threading.Event()
        self._start = time.perf_counter()
        self._thread = threading.Thread(target=self._tick, daemon=True)

    def _tick(self):
        waited = 1.0
        while not self._done.wait(waited):
            elapsed = time.perf_counter() - self._start
            print(f"  {self.what} ... {elapsed:.0f} s", file=self.stream, flush=True)
            waited = 2.0

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self.elapsed = time.perf_counter() - self._start


def _load_weights(path: Optional[str]):
    if not path:
        return {}
    from .export import safetensors
    try:
        return safetensors.load(path)
    except safetensors.SafetensorsError as error:
        raise SystemExit(f"moe-run: {error}")


def _is_gguf(path: str) -> bool:
    return path.lower().endswith(".gguf") and not os.path.isdir(path)


def _run_tokens(args) -> int:
    """A Hugging Face checkpoint folder or a GGUF file: ids in, logits out."""
    from . import load_gguf, load_hf
    gguf = _is_gguf(args.module)
    load = load_gguf if gguf else load_hf
    what = "a GGUF file" if gguf else "a checkpoint folder"
    if not args.ids:
        print(f"moe-run: {args.module} is {what}: give the token ids with --ids "
              f"ids.npy", file=sys.stderr)
        return 2
    try:
        ids = np.load(args.ids)
    except (OSError, ValueError, EOFError) as error:
        print(f"moe-run: cannot read {args.ids}: {error}", file=sys.stderr)
        return 2
    rank = 0
    if args.expert_parallel:
        if gguf:
            print("moe-run: --expert-parallel takes an exported module or a checkpoint "
                  "folder; GGUF files are not split over ranks yet", file=sys.stderr)
            return 2
        from . import ep
        rank, _ = ep.init()
    try:
        with _Progress(f"reading {args.module}") as progress:
            if args.expert_parallel:
                model = load_hf(args.module, target=args.target,
                                expert_parallel=args.expert_parallel)
            else:
                model = load(args.module, target=args.target)
        print(f"read {args.module} ({model.config.arch}, {model.config.layers} layers) in "
              f"{progress.elapsed:.2f} s")
        with _Progress(f"compiling {args.module}") as progress:
            logits = model(ids)
        print(f"compiled and ran in {progress.elapsed:.2f} s")
        times = []
        for _ in range(max(0, args.repeat - 1)):
            start = time.perf_counter()
            logits = model(ids)
            times.append(time.perf_counter() - start)
        if times:
            print(f"ran in {1e3 * float(np.median(times)):.2f} ms (median of {len(times)})")
    except (CompileError, ValueError, RuntimeError) as error:
        print(f"moe-run: {error}", file=sys.stderr)
        return 2
    for path in (args.output[:1] if rank == 0 else []):
        try:
            with open(path, "wb") as f:
                np.save(f, logits)
        except OSError as error:
            print(f"moe-run: cannot write {path}: {error.strerror}", file=sys.stderr)
            return 2
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="moe-run", description=__doc__.splitlines()[0])
    parser.add_argument("module", help="MLIR file of an exported model, a Hugging Face "
                                       "checkpoint folder, or a GGUF file (*.gguf)")
    parser.add_argument("--ids", help="with a checkpoint folder or a GGUF file: .npy file of "
                                      "token ids [B, S]")
    parser.add_argument("--weights", help="safetensors file with the named weights")
    parser.add_argument("--input", "-i", action="append", default=[],
                        help=".npy file for the next non-weight argument (repeatable)")
    parser.add_argument("--output", "-o", action="append", default=[],
                        help=".npy file for the next result (repeatable)")
    parser.add_argument("--entry", default="forward", help="function to run (default: forward)")
    parser.add_argument("--repeat", type=int, default=1, help="runs to time (median)")
    parser.add_argument("--expert-parallel", metavar="PLACEMENT",
                        help="run an exported module or a checkpoint folder with its experts "
                             "split over the ranks of an MPI run (mpirun -np N moe-run ...): "
                             "'balanced' or block bounds '0,3,8'; each rank reads only its "
                             "experts' weights and runs its share of the tokens (a module's "
                             "first input) or sequences (a folder's ids); rank 0 writes the "
                             "outputs")
    parser.add_argument("--count-ffn", action="store_true",
                        help="count the rows each expert FFN runs (instrumented build)")
    parser.add_argument("--ffn-rows-to", metavar="FILE",
                        help="with --count-ffn: also write the total row count to FILE")
    parser.add_argument("--target", default="cpu",
                        help=f"what to compile for (targets: {', '.join(TARGETS)}; moe-run "
                             f"supports {', '.join(str(t) for t in SUPPORT['moe-run'])}; "
                             f"default: cpu)")
    args = parser.parse_args(argv)
    try:
        args.target = check_target(args.target, "moe-run")
    except ValueError as error:
        print(f"moe-run: {error}", file=sys.stderr)
        return 2
    if args.count_ffn and args.target is not Target.CPU:
        print(f"moe-run: --count-ffn needs --target cpu (FFN instrumentation is an option of "
              f"the CPU pipeline), got --target {args.target}", file=sys.stderr)
        return 2
    if os.path.isdir(args.module) or _is_gguf(args.module):
        return _run_tokens(args)
    if args.ids:
        print(f"moe-run: --ids is for a checkpoint folder or a .gguf file, and {args.module} is "
              f"neither", file=sys.stderr)
        return 2

    try:
        with open(args.module, "rb") as f:
            text = f.read().decode("utf-8")
    except OSError as error:
        print(f"moe-run: cannot read {args.module}: {error.strerror}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as error:
        print(f"moe-run: {args.module} is not MLIR text (not UTF-8: byte {error.start})",
              file=sys.stderr)
        return 2
    if args.expert_parallel:
        from . import ep_run
        return ep_run.run(args, text)
    weights = _load_weights(args.weights)

    try:
        with _Progress(f"compiling {args.module}") as progress:
            module = CompiledModule(text, target_pipeline(args.target,
                                                          instrument_ffn=args.count_ffn))
    except CompileError as error:
        print(f"moe-run: {error}", file=sys.stderr)
        return 1
    if args.entry not in module.signatures:
        print(f"moe-run: no function '{args.entry}' in {args.module} (functions: "
              f"{', '.join(sorted(module.signatures))})", file=sys.stderr)
        return 2
    arg_types, result_types, _, names = module.signatures[args.entry][:4]
    print(f"compiled {args.module} in {progress.elapsed:.2f} s")

    values, labels = [], []
    inputs = list(args.input)
    used = set()
    for index, name in enumerate(names):
        if name is not None and name in weights:
            values.append(weights[name])
            labels.append(name)
            used.add(name)
            continue
        if not inputs:
            print(f"moe-run: argument #{index} ({name or 'unnamed'}, {arg_types[index]}) needs "
                  f"an --input file or a weight named '{name}'", file=sys.stderr)
            return 2
        path = inputs.pop(0)
        try:
            values.append(np.load(path))
        except (OSError, ValueError, EOFError) as error:
            print(f"moe-run: cannot read {path}: {error}", file=sys.stderr)
            return 2
        labels.append(name or f"#{index}")
    if inputs:
        print(f"moe-run: {len(inputs)} unused --input file(s): {', '.join(inputs)}",
              file=sys.stderr)
        return 2
    unused = sorted(set(weights) - used)
    if unused:
        print(f"moe-run: note: {len(unused)} weight(s) not used by '{args.entry}': "
              f"{', '.join(unused[:3])}{' ...' if len(unused) > 3 else ''}", file=sys.stderr)

    try:
        function = module.function(args.entry, labels)
    except (CompileError, ValueError) as error:
        print(f"moe-run: {error}", file=sys.stderr)
        return 2
    times = []
    try:
        for _ in range(max(1, args.repeat)):
            start = time.perf_counter()
            outputs = function(*values)
            times.append(time.perf_counter() - start)
    except ValueError as error:
        print(f"moe-run: {error}", file=sys.stderr)
        return 2
    outputs = list(outputs) if isinstance(outputs, tuple) else [outputs]
    print(f"ran {args.entry} in {1e3 * float(np.median(times)):.2f} ms"
          + (f" (median of {len(times)})" if len(times) > 1 else ""))
    for path, output in zip(args.output, outputs):
        # Through an open file: np.save(path) would append ".npy" to a path
        # without it, and the file written would not be the one named.
        try:
            with open(path, "wb") as f:
                np.save(f, np.asarray(output))
        except OSError as error:
            print(f"moe-run: cannot write {path}: {error.strerror}", file=sys.stderr)
            return 2
        print(f"wrote {path} {np.asarray(output).dtype} {list(np.shape(output))}")
    if args.count_ffn:
        index = 0
        total = 0
        while True:
            try:
                counters = module.counters(index)
            except KeyError:
                break
            print(f"expert FFN {index}: rows per expert {counters[:, 0].tolist()} "
                  f"(total {int(counters[:, 0].sum())}, per run)"
                  if args.repeat == 1 else
                  f"expert FFN {index}: rows per expert (summed over {args.repeat} runs) "
                  f"{counters[:, 0].tolist()}")
            total += int(counters[:, 0].sum())
            index += 1
        if args.ffn_rows_to:
            with open(args.ffn_rows_to, "w") as f:
                f.write(f"{total}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
