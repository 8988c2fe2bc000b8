#!/usr/bin/env python3
"""Flags C++ calls whose argument list has two or more arguments that each
create IR (a builder call, `Op::create`, an `emit...` helper).

C++ leaves the evaluation order of function arguments unspecified (gcc
evaluates them right to left on x86-64, clang left to right), so
`e.add(e.load(a), e.load(b))` emits its two loads in an order that depends
on the compiler, and the gcc and clang builds of moe-opt print different IR.
Every lowering names such values first. Braced lists (`{x, y}`,
`SmallVector<Value>{...}`) are evaluated in order and are fine as a whole,
but one braced argument next to another emitting argument is not.

Usage: check-emission-order.py FILE...   (exit 1 and a list when any is found)
"""
import re
import sys

# Calls through these objects create IR unless the method is a pure getter.
BUILDERS = r"(?:\be|\bd|\bd\.e|\bb|\be\.b|\brewriter|\bbuilder|\broute|\bdevice)"
EMITS = [
    re.compile(BUILDERS + r"\s*\.\s*(?!get|set|has|isa\b|dyn_cast|cast|b\b)(\w+)\s*\("),
    re.compile(r"::create\s*\("),
    re.compile(r"\bemit[A-Z]\w*\s*\("),
    re.compile(r"\b(?:fetch|input|alloc|buffer|allocLike|allocShaped)\s*\("),
]


def strip(text):
    """Removes comments, string and character literals (keeps line breaks)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            out.append("\n" * text.count("\n", i, j))
            i = j + 2
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        elif text.startswith("#", i) and (i == 0 or text[i - 1] == "\n"):
            j = text.find("\n", i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


OPEN, CLOSE = "([{", ")]}"


def arguments(text, start):
    """The top-level arguments of the call whose '(' is at `start`, with the
    offset of each, and the offset after the closing ')'."""
    depth, args, begin, i = 0, [], start + 1, start + 1
    while i < len(text):
        c = text[i]
        if c in OPEN:
            depth += 1
        elif c in CLOSE:
            if depth == 0:
                args.append((begin, text[begin:i]))
                return args, i + 1
            depth -= 1
        elif c == "," and depth == 0:
            args.append((begin, text[begin:i]))
            begin = i + 1
        i += 1
    return args, len(text)


def emits(arg, local):
    arg = arg.strip()
    if arg.startswith("[") or not arg:  # a lambda: runs later, in the callee
        return False
    # Lambdas nested inside the argument do not run at evaluation either.
    arg = re.sub(r"\[[^\]]*\]\s*\([^)]*\)\s*(->\s*[\w:<>]+\s*)?\{.*\}", "", arg,
                 flags=re.S)
    return any(p.search(arg) for p in EMITS) or bool(local and local.search(arg))


CALL = re.compile(r"[\w>)\]]\s*\(")
KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "catch"}


# The emitters' own methods that create IR (those returning a Value), read
# from their headers: inside the emitters' member functions they are called
# unqualified (`loop(index(0), dim(x, 0), ...)`).
EMITTER_HEADERS = ["include/moe/Dialect/MoE/Utils/LoopEmitter.h",
                   "lib/Conversion/MoEToGPU/DeviceEmitter.h"]
_ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def emitter_methods():
    names = set()
    for header in EMITTER_HEADERS:
        text = strip((_ROOT / header).read_text(encoding="utf-8"))
        names.update(re.findall(r"\bValue\s+(\w+)\s*\(", text))
    return names


def check(path):
    text = strip(open(path, encoding="utf-8").read())
    # Lambdas and functions of this file that create IR: a lambda defined
    # with `auto name = [...]` whose body uses a builder, and every function
    # taking an emitter.
    names = set()
    if re.search(r"\b(?:Loop|Device)Emitter::\w+\s*\(", text):
        names |= emitter_methods()
    for m in re.finditer(r"auto\s+(\w+)\s*=\s*\[", text):
        brace = text.find("{", m.end())
        body, _ = arguments(text, brace) if brace >= 0 else ([], 0)
        if body and any(p.search(",".join(a[1] for a in body)) for p in EMITS):
            names.add(m.group(1))
    for m in re.finditer(r"(\w+)\s*\((?:const\s+)?(?:Loop|Device)Emitter\s*&", text):
        names.add(m.group(1))
    names.discard("auto")
    local = re.compile(r"(?<![\w.])(?:this->)?(?:%s)\s*\(" % "|".join(sorted(names))) if names else None
    found = []
    for m in CALL.finditer(text):
        paren = m.end() - 1
        word = re.search(r"(\w+)\s*$", text[: paren])
        if word and word.group(1) in KEYWORDS:
            continue
        args, _ = arguments(text, paren)
        if len(args) < 2:
            continue
        emitting = [a for a in args if emits(a[1], local)]
        if len(emitting) >= 2:
            line = text.count("\n", 0, paren) + 1
            found.append((path, line, text[m.start(): paren].strip()))
    return found


def main(paths):
    found = [f for p in paths for f in check(p)]
    for path, line, _ in found:
        print(f"{path}:{line}: two or more arguments of this call create IR; "
              "name them first (their order would depend on the compiler)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
