"""``moe-run --expert-parallel PLACEMENT``: an exported model's module on
every rank of an MPI run (``mpirun -np N moe-run model.mlir --weights
model.safetensors --expert-parallel balanced -i x.npy -o y.npy``).

Each rank compiles the module made expert-parallel, reads from the weights
file only the replicated tensors and its own block of every expert stack,
takes its contiguous share of the tokens (the rows of each --input whose
first dimension is the first input's T), runs, and rank 0 gathers the
outputs in token order and writes them. The result is bit-equal to a
single-process run for token-local routing (docs/Distributed.md)."""

import sys
import time
from typing import List

import numpy as np

from . import ep
from .compiler import CompileError, CompiledModule, cpu_pipeline


def run(args, text: str) -> int:
    from .export import safetensors
    rank, size = ep.init()
    say = print if rank == 0 else (lambda *a, **k: None)
    try:
        ep_text = ep.expert_parallel(text, args.expert_parallel)
        start = time.perf_counter()
        module = CompiledModule(ep_text, cpu_pipeline())
    except (CompileError, ValueError) as error:
        print(f"moe-run: rank {rank}: {error}", file=sys.stderr)
        return 1
    if args.entry not in module.signatures:
        print(f"moe-run: no function '{args.entry}' in {args.module}", file=sys.stderr)
        return 2
    arg_types, _, _, names = module.signatures[args.entry][:4]
    experts = ep._expert_arguments(ep_text, args.entry)
    say(f"compiled {args.module} for {size} rank(s) ({ep.backend()}, placement "
        f"{args.expert_parallel}) in {time.perf_counter() - start:.2f} s")

    weights = safetensors.SafetensorsFile(args.weights) if args.weights else None
    inputs = [np.load(path) for path in args.input]
    tokens = inputs[0].shape[0] if inputs else 0
    first, count = ep.split_tokens(tokens)
    # Arguments split by token: the first, and those the module types with
    # the first's dynamic T (e.g. k_per_token).
    token_args = {i for i, t in enumerate(arg_types) if t.startswith("tensor<?x")
                  or t == "tensor<?xi32>"}
    values: List[np.ndarray] = []
    labels: List[str] = []
    loaded = 0
    try:
        for index, name in enumerate(names):
            if weights is not None and name is not None and name in weights:
                if index in experts:
                    count_e, dim = experts[index]
                    e0, n = ep.local_experts(count_e, args.expert_parallel)
                    value = weights.get_block(name, dim, e0, n)
                    ep.check_replicated(f"{name} (shape of one expert)",
                                        (value.dtype.str, value.shape[:dim] + value.shape[dim + 1:]))
                else:
                    value = weights.get(name)
                    ep.check_replicated(name, value)
                loaded += value.nbytes
                values.append(value)
                labels.append(name)
                continue
            if not inputs:
                print(f"moe-run: argument #{index} ({name or 'unnamed'}, {arg_types[index]}) "
                      f"needs an --input file or a weight named '{name}'", file=sys.stderr)
                return 2
            value = inputs.pop(0)
            if index in experts:
                # A full expert stack given as an input: this rank's block.
                count_e, dim = experts[index]
                if value.shape[dim] != count_e:
                    print(f"moe-run: argument #{index}: expected all {count_e} experts, "
                          f"got {value.shape[dim]}", file=sys.stderr)
                    return 2
                value = ep.take_block(value, count_e, dim, args.expert_parallel)
                loaded += value.nbytes
            elif index == 0 or (value.ndim and value.shape[0] == tokens and index in token_args):
                value = np.ascontiguousarray(value[first:first + count])
            else:
                ep.check_replicated(name or f"argument #{index}", value)
            values.append(value)
            labels.append(name or f"#{index}")
        function = module.function(args.entry, labels)
        say(f"rank 0: {count} of {tokens} tokens, {loaded / 2**20:.1f} MiB of weights "
            f"(its experts only)")
        ep.reset_counters()
        times = []
        for _ in range(max(1, args.repeat)):
            start = time.perf_counter()
            outputs = function(*values)
            times.append(time.perf_counter() - start)
        counters = ep.counters()
        outputs = list(outputs) if isinstance(outputs, tuple) else [outputs]
        gathered = [ep.gather_rows(o) if o.ndim and o.shape[0] == count else o for o in outputs]
    except (ValueError, ep.EPError, safetensors.SafetensorsError) as error:
        print(f"moe-run: rank {rank}: {error}", file=sys.stderr)
        return 1
    calls = max(1, len(times))
    sent = (counters["dispatch_row_bytes_remote"] + counters["dispatch_meta_bytes_remote"]
            + counters["combine_row_bytes_remote"]) / calls
    summary = ep.allgather(np.array([sent, counters["exchange_ns"] / calls / 1e6,
                                     float(np.median(times)) * 1e3], np.float64).tobytes())
    for r, raw in enumerate(summary):
        b, ms_exchange, ms = np.frombuffer(raw, np.float64)
        say(f"rank {r}: ran {args.entry} in {ms:.2f} ms; sent {b / 2**20:.3f} MiB to other "
            f"ranks per call, {ms_exchange:.2f} ms in exchanges")
    if rank == 0:
        for path, output in zip(args.output, gathered):
            with open(path, "wb") as f:
                np.save(f, output)
    return 0
