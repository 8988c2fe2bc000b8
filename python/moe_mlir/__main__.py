"""Command line: ``python -m moe_mlir <command>``.

  aot IN.mlir -o OUT.so [--cpu native|x86-64|...] [-O3] [--target cpu|gpu]
      compile a module into a shared library (plus OUT.so.json)
  lower IN.mlir [--llvm-ir]
      print the module after the CPU pipeline (LLVM dialect or LLVM IR)
  run MODEL.mlir --weights W.safetensors --input X.npy --output Y.npy
      compile and run an exported model (also installed as build/bin/moe-run)
"""

import argparse
import sys


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "run":
        from .run import main as run_main
        return run_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m moe_mlir",
                                     description="moe-mlir compiler commands")
    commands = parser.add_subparsers(dest="command", required=True)
    aot = commands.add_parser("aot", help="compile a module into a shared library")
    aot.add_argument("input", help="MLIR file ('-' for stdin)")
    aot.add_argument("-o", "--output", required=True, help="shared library to write")
    aot.add_argument("--cpu", default="native", help="LLVM CPU name (default: the host)")
    aot.add_argument("-O", dest="opt_level", type=int, default=3, choices=range(4))
    aot.add_argument("--instrument-ffn", action="store_true",
                     help="count rows and multiply-adds of every expert FFN")
    aot.add_argument("--target", default="cpu",
                     help="what to compile for: cpu (default) or gpu (moe_mlir.targets)")
    lower = commands.add_parser("lower", help="print the module after the CPU pipeline")
    lower.add_argument("input", help="MLIR file ('-' for stdin)")
    lower.add_argument("--llvm-ir", action="store_true", help="print LLVM IR")
    commands.add_parser("run", help="compile and run an exported model (see run --help)")
    args = parser.parse_args(argv)

    text = sys.stdin.read() if args.input == "-" else open(args.input).read()
    from .compiler import CompileError
    try:
        if args.command == "aot":
            from .aot import build_shared_library
            signatures = build_shared_library(text, args.output, cpu=args.cpu,
                                              opt_level=args.opt_level,
                                              instrument_ffn=args.instrument_ffn,
                                              target=args.target)
            public = [name for name, sig in signatures.items() if sig[2]]
            print(f"wrote {args.output} (entry points: "
                  f"{', '.join('_mlir_ciface_' + n for n in public)})")
        else:
            from .compiler import lower as lower_text
            sys.stdout.write(lower_text(text, llvm_ir=args.llvm_ir))
    except CompileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # an argument, e.g. a target that aot does not support
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
