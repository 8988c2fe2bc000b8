#!/usr/bin/env python3
"""Runs a moe pipeline piece by piece and checks that the pieces reproduce it.

    run-pipeline-pieces.py MOE_OPT INPUT.mlir PIPELINE [--keep DIR]

PIPELINE is a pipeline flag's value as moe-opt takes it, e.g.
`moe-cpu-pipeline` or `moe-cpu-pipeline{parallel=1 status-argument=0}`.
The script asks moe-opt for the pipeline's passes (--dump-pass-pipeline),
splits it into its passes (a nested `func.func(a, b)` into `func.func(a)`
and `func.func(b)`), runs them one moe-opt process each, feeding each the
previous one's output, and compares the last output with the pipeline's
own output. They must be identical: every pass the pipeline runs is
registered in moe-opt and the IR printed between passes loses nothing.
With --keep, the IR after each piece is written to DIR/NN-<pass>.mlir (a
bisection of a pipeline failure starts there).
"""
import argparse
import pathlib
import re
import subprocess
import sys
import tempfile


# What legitimately differs between two runs: gpu-module-to-binary records
# how long the NVPTX back end took.
_TIMING = re.compile(r"(LLVMIRToISATimeInMs = )\d+")


def normalize(ir):
    return _TIMING.sub(r"\g<1>N", ir)


def split_top(text):
    """Splits `a{..}, b(..), c` at the commas outside braces and parens."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "({":
            depth += 1
        elif c in ")}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    tail = text[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def pieces(pipeline, anchors=()):
    """The passes of a textual pipeline, each as a pipeline of one pass
    nested in its anchors (outermost first, the module excluded)."""
    result = []
    for part in split_top(pipeline):
        m = re.fullmatch(r"([\w.]+)\((.*)\)", part, re.S)
        if m and "." in m.group(1):  # a nested pass manager: func.func(...)
            result += pieces(m.group(2), anchors + (m.group(1),))
        else:
            text = part
            for anchor in reversed(anchors):
                text = f"{anchor}({text})"
            result.append(text)
    return result


def run(moe_opt, args, input_text=None):
    done = subprocess.run([moe_opt, *args], input=input_text,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"moe-opt {' '.join(args)} failed:\n{done.stderr}")
    return done


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("moe_opt")
    parser.add_argument("input")
    parser.add_argument("pipeline")
    parser.add_argument("--keep", type=pathlib.Path,
                        help="write the IR after each piece to this folder")
    parser.add_argument("--skip", action="append", default=[],
                        help="leave out the pieces running this pass (to see "
                        "what a pass changes; the output then differs)")
    options = parser.parse_args()

    flag = f"--pass-pipeline=builtin.module({options.pipeline})"
    whole = run(options.moe_opt, [options.input, flag]).stdout
    dump = run(options.moe_opt, [options.input, flag, "--dump-pass-pipeline",
                                 "-o", "/dev/null"]).stderr
    text = dump[dump.index("builtin.module("):].strip()
    steps = pieces(text[len("builtin.module("):-1])
    ir = pathlib.Path(options.input).read_text()
    if options.keep:
        options.keep.mkdir(parents=True, exist_ok=True)
    steps = [s for s in steps
             if re.sub(r"\{.*", "", s).split("(")[-1] not in options.skip]
    for i, step in enumerate(steps):
        ir = run(options.moe_opt, [f"--pass-pipeline=builtin.module({step})"],
                 ir).stdout
        if options.keep:
            name = re.sub(r"\W+", "-", re.sub(r"\{.*", "", step)).strip("-")
            (options.keep / f"{i:02d}-{name}.mlir").write_text(ir)
    if normalize(ir) != normalize(whole):
        with tempfile.NamedTemporaryFile("w", suffix=".mlir", delete=False) as f:
            f.write(ir)
        print(f"the {len(steps)} pieces of {options.pipeline} give other IR "
              f"than the pipeline (pieces' output: {f.name})")
        return 1
    print(f"{options.pipeline}: {len(steps)} pieces reproduce the pipeline's output")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RuntimeError as error:
        print(f"run-pipeline-pieces: {error}", file=sys.stderr)
        sys.exit(2)
