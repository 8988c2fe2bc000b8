"""A small builder of MLIR text for the exporters.

The exporters emit ordinary upstream ops (func, linalg, tensor, arith, math)
plus ``moe.layer``. This module keeps the bookkeeping in one place: SSA names,
tensor types with dynamic sizes, constants, ``linalg.generic`` bodies, and the
location (the framework's module path, e.g. ``model.layers.3.mlp``) attached
to every op so that diagnostics point at the user's code.
"""

import contextlib
import struct
from typing import Callable, List, Optional, Sequence, Tuple

__all__ = ["Value", "FunctionBuilder", "ModuleBuilder", "tensor_type", "f32_literal"]

Shape = Sequence[Optional[int]]


def tensor_type(shape: Shape, element: str = "f32") -> str:
    """``tensor<?x64xf32>`` for shape (None, 64); None is a dynamic size."""
    dims = "".join(("?" if d is None else str(int(d))) + "x" for d in shape)
    return f"tensor<{dims}{element}>"


def f32_literal(value: float) -> str:
    """An f32 constant that reads back exactly (hexadecimal bit pattern)."""
    bits = struct.unpack("<I", struct.pack("<f", float(value)))[0]
    return f"0x{bits:08X}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class Value:
    """An SSA value of the function being built."""

    def __init__(self, name: str, type_: str, shape: Optional[Tuple] = None,
                 element: Optional[str] = None):
        self.name = name
        self.type = type_
        self.shape = tuple(shape) if shape is not None else None
        self.element = element

    def __str__(self):
        return self.name


class FunctionBuilder:
    """Builds one ``func.func``."""

    def __init__(self, name: str, public: bool = True):
        self.name = name
        self.public = public
        self.args: List[Tuple[Value, Optional[str]]] = []
        self.lines: List[str] = []
        self.results: List[Value] = []
        self._count = 0
        self._location: Optional[str] = None
        self._constants = {}
        self._dims = {}

    # -- naming and locations ------------------------------------------------
    def fresh(self, hint: str = "v") -> str:
        self._count += 1
        return f"%{hint}{self._count}"

    @contextlib.contextmanager
    def location(self, path):
        """Ops emitted inside carry ``loc("path")``; a list of paths gives a
        fused location (an op standing for several modules)."""
        saved = self._location
        if path:
            self._location = path
        try:
            yield
        finally:
            self._location = saved

    def emit(self, line: str):
        if isinstance(self._location, (list, tuple)):
            parts = ", ".join(f'"{_escape(p)}"' for p in self._location)
            line += f" loc(fused[{parts}])"
        elif self._location:
            line += f' loc("{_escape(self._location)}")'
        self.lines.append("  " + line)

    # -- values --------------------------------------------------------------
    def arg(self, shape: Shape, element: str = "f32", name: Optional[str] = None,
            hint: str = "arg") -> Value:
        value = Value(f"%{hint}{len(self.args)}", tensor_type(shape, element), shape, element)
        self.args.append((value, name))
        return value

    def scalar_arg(self, type_: str, name: Optional[str] = None) -> Value:
        value = Value(f"%arg{len(self.args)}", type_)
        self.args.append((value, name))
        return value

    def constant(self, literal: str, type_: str) -> Value:
        key = (literal, type_)
        if key not in self._constants:
            name = self.fresh("c")
            self.lines.append(f"  {name} = arith.constant {literal} : {type_}")
            self._constants[key] = Value(name, type_)
        return self._constants[key]

    def f32(self, value: float) -> Value:
        return self.constant(f32_literal(value), "f32")

    def index(self, value: int) -> Value:
        return self.constant(str(int(value)), "index")

    def dim(self, value: Value, index: int) -> Value:
        """The runtime size of a dimension (static sizes become constants)."""
        size = value.shape[index]
        if size is not None:
            return self.index(size)
        key = (value.name, index)
        if key not in self._dims:
            name = self.fresh("d")
            self.emit(f"{name} = tensor.dim {value}, {self.index(index)} : {value.type}")
            self._dims[key] = Value(name, "index")
        return self._dims[key]

    def empty(self, shape: Shape, element: str, sizes_from: Sequence[Value]) -> Value:
        """``tensor.empty`` whose dynamic sizes are given in order."""
        name = self.fresh("e")
        type_ = tensor_type(shape, element)
        dyn = ", ".join(str(s) for s in sizes_from)
        self.emit(f"{name} = tensor.empty({dyn}) : {type_}")
        return Value(name, type_, shape, element)

    def zeros(self, shape: Shape, sizes_from: Sequence[Value], element: str = "f32") -> Value:
        init = self.empty(shape, element, sizes_from)
        zero = self.f32(0.0) if element == "f32" else self.constant("0", element)
        name = self.fresh("z")
        self.emit(f"{name} = linalg.fill ins({zero} : {zero.type}) outs({init} : {init.type})"
                  f" -> {init.type}")
        return Value(name, init.type, init.shape, element)

    # -- linalg --------------------------------------------------------------
    def generic(self, inputs: Sequence[Tuple[Value, str]], output: Tuple[Value, str],
                iterators: Sequence[str], dims: int,
                body: Callable[["BodyBuilder", List[str]], str]) -> Value:
        """A ``linalg.generic``. ``inputs`` and ``output`` pair a value with its
        indexing map results (e.g. ``"d0, d1"``); ``body`` gets a BodyBuilder and
        the block argument names (inputs then output) and returns the yielded
        value's name."""
        dvars = ", ".join(f"d{i}" for i in range(dims))
        maps = [f"affine_map<({dvars}) -> ({m})>" for _, m in list(inputs) + [output]]
        out_value = output[0]
        args = [f"%a{i}" for i in range(len(inputs))] + ["%acc"]
        block_types = [v.element or "f32" for v, _ in inputs] + [out_value.element or "f32"]
        builder = BodyBuilder()
        result = body(builder, args)
        name = self.fresh("g")
        ins = ", ".join(str(v) for v, _ in inputs)
        in_types = ", ".join(v.type for v, _ in inputs)
        iterator_list = ", ".join(f'"{it}"' for it in iterators)
        header = (f"{name} = linalg.generic {{indexing_maps = [{', '.join(maps)}], "
                  f"iterator_types = [{iterator_list}]}} "
                  + (f"ins({ins} : {in_types}) " if inputs else "")
                  + f"outs({out_value} : {out_value.type}) {{")
        self.lines.append("  " + header)
        block_args = ", ".join(f"{a}: {t}" for a, t in zip(args, block_types))
        self.lines.append(f"  ^bb0({block_args}):")
        for line in builder.lines:
            self.lines.append("    " + line)
        self.lines.append(f"    linalg.yield {result} : {out_value.element or 'f32'}")
        # The location of an op with a region follows its result types.
        self.emit(f"}} -> {out_value.type}")
        return Value(name, out_value.type, out_value.shape, out_value.element)

    # -- text ----------------------------------------------------------------
    def text(self) -> str:
        def arg_text(value, name):
            attrs = f' {{moe.name = "{_escape(name)}"}}' if name else ""
            return f"{value}: {value.type}{attrs}"
        args = ",\n    ".join(arg_text(v, n) for v, n in self.args)
        results = ", ".join(v.type for v in self.results)
        visibility = "" if self.public else "private "
        returns = (f"  return {', '.join(str(v) for v in self.results)} : {results}"
                   if self.results else "  return")
        return (f"func.func {visibility}@{self.name}(\n    {args})"
                + (f" -> ({results})" if self.results else "") + " {\n"
                + "\n".join(self.lines) + "\n" + returns + "\n}\n")


class BodyBuilder:
    """The scalar body of a ``linalg.generic``."""

    def __init__(self):
        self.lines: List[str] = []
        self._count = 0

    def fresh(self) -> str:
        self._count += 1
        return f"%b{self._count}"

    def op(self, text: str) -> str:
        """Emits ``%bN = <text>`` and returns ``%bN``."""
        name = self.fresh()
        self.lines.append(f"{name} = {text}")
        return name

    def f32(self, value: float) -> str:
        return self.op(f"arith.constant {f32_literal(value)} : f32")

    def binary(self, op: str, a: str, b: str, type_: str = "f32") -> str:
        return self.op(f"{op} {a}, {b} : {type_}")

    def unary(self, op: str, a: str, type_: str = "f32") -> str:
        return self.op(f"{op} {a} : {type_}")

    def index(self, dim: int) -> str:
        return self.op(f"linalg.index {dim} : index")

    def index_to_f32(self, index: str) -> str:
        as_int = self.op(f"arith.index_cast {index} : index to i64")
        return self.op(f"arith.sitofp {as_int} : i64 to f32")


class ModuleBuilder:
    """A module of functions; outlined functions are deduplicated by key."""

    def __init__(self):
        self.functions: List[FunctionBuilder] = []
        self._outlined = {}

    def add(self, function: FunctionBuilder) -> FunctionBuilder:
        self.functions.append(function)
        return function

    def outlined(self, key, build: Callable[[], FunctionBuilder]) -> FunctionBuilder:
        """The function for ``key``, built once (one function per distinct
        layer shape)."""
        if key not in self._outlined:
            function = build()
            self._outlined[key] = function
            self.functions.insert(0, function)
        return self._outlined[key]

    def text(self) -> str:
        return "\n".join(f.text() for f in self.functions)
