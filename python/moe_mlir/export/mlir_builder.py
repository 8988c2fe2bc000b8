"""A small builder of MLIR text for the exporters.

The exporters emit ordinary upstream ops (func, linalg, tensor, arith, math)
plus the moe ops. This module keeps the bookkeeping in one place: SSA names,
tensor types with dynamic sizes, constants, ``linalg.generic`` bodies, and the
location (the framework's module path, e.g. ``model.layers.3.mlp``) attached
to every op so that diagnostics point at the user's code. The syntax of the
ops, types and functions is ``moe_mlir.ir_text``'s: the builder and the
emitters call its functions and format no op text themselves.
"""

import contextlib
from typing import Callable, List, Optional, Sequence, Tuple, Union

from .. import ir_text
from ..ir_text import f32_literal, tensor_type

__all__ = ["Value", "FunctionBuilder", "ModuleBuilder", "tensor_type", "f32_literal"]

Shape = Sequence[Optional[int]]


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
        """Appends a line of the body with the current location."""
        self.lines.append("  " + line + ir_text.location(self._location))

    def op(self, hint: str, op: str, type_: str, shape: Optional[Tuple] = None,
           element: Optional[str] = "f32") -> "Value":
        """Emits ``%<hint>N = op`` (an ``ir_text`` op) and returns its result."""
        name = self.fresh(hint)
        self.emit(ir_text.assign(name, op))
        return Value(name, type_, shape, element)

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
            self.lines.append("  " + ir_text.assign(name, ir_text.constant(literal, type_)))
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
            self.emit(ir_text.assign(name, ir_text.dim(value, self.index(index))))
            self._dims[key] = Value(name, "index")
        return self._dims[key]

    def empty(self, shape: Shape, element: str, sizes_from: Sequence[Value]) -> Value:
        """``tensor.empty`` whose dynamic sizes are given in order."""
        type_ = tensor_type(shape, element)
        return self.op("e", ir_text.empty(sizes_from, type_), type_, shape, element)

    def zeros(self, shape: Shape, sizes_from: Sequence[Value], element: str = "f32") -> Value:
        init = self.empty(shape, element, sizes_from)
        zero = self.f32(0.0) if element == "f32" else self.constant("0", element)
        return self.fill(zero, init)

    def fill(self, value: Value, init: Value) -> Value:
        """``init`` filled with the scalar ``value``."""
        return self.op("z", ir_text.fill(value, init), init.type, init.shape, init.element)

    # -- linalg --------------------------------------------------------------
    def generic(self, inputs: Sequence[Tuple[Value, str]], output: Tuple[Value, str],
                iterators: Sequence[str], dims: int,
                body: Callable[["BodyBuilder", List[str]], str]) -> Value:
        """A ``linalg.generic``. ``inputs`` and ``output`` pair a value with its
        indexing map results (e.g. ``"d0, d1"``); ``body`` gets a BodyBuilder and
        the block argument names (inputs then output) and returns the yielded
        value's name."""
        maps = [ir_text.affine_map(dims, m) for _, m in list(inputs) + [output]]
        out_value = output[0]
        args = [f"%a{i}" for i in range(len(inputs))] + ["%acc"]
        block_types = [v.element or "f32" for v, _ in inputs] + [out_value.element or "f32"]
        builder = BodyBuilder()
        result = body(builder, args)
        name = self.fresh("g")
        header = ir_text.generic(maps, iterators, [v for v, _ in inputs], out_value)
        self.lines.append("  " + ir_text.assign(name, header))
        self.lines.append("  " + ir_text.block(list(zip(args, block_types))))
        for line in builder.lines:
            self.lines.append("    " + line)
        self.lines.append("    " + ir_text.linalg_yield(result, out_value.element or "f32"))
        # The location of an op with a region follows its result types.
        self.emit(ir_text.region_end([out_value.type]))
        return Value(name, out_value.type, out_value.shape, out_value.element)

    # -- text ----------------------------------------------------------------
    def text(self) -> str:
        return ir_text.func(self.name, self.args, self.lines, self.results,
                            private=not self.public)


class BodyBuilder:
    """The scalar body of a ``linalg.generic``."""

    def __init__(self):
        self.lines: List[str] = []
        self._count = 0

    def fresh(self) -> str:
        self._count += 1
        return f"%b{self._count}"

    def op(self, op: str) -> str:
        """Emits ``%bN = op`` (an ``ir_text`` op) and returns ``%bN``."""
        name = self.fresh()
        self.lines.append(ir_text.assign(name, op))
        return name

    def f32(self, value: float) -> str:
        return self.op(ir_text.constant(f32_literal(value), "f32"))

    def constant(self, literal: Union[int, str], type_: str) -> str:
        return self.op(ir_text.constant(str(literal), type_))

    def binary(self, op: str, a: str, b: str, type_: str = "f32") -> str:
        return self.op(ir_text.binary(op, a, b, type_))

    def unary(self, op: str, a: str, type_: str = "f32") -> str:
        return self.op(ir_text.unary(op, a, type_))

    def cast(self, op: str, value: str, from_type: str, to_type: str) -> str:
        return self.op(ir_text.cast(op, value, from_type, to_type))

    def cmpi(self, predicate: str, a: str, b: str, type_: str = "index") -> str:
        return self.op(ir_text.cmpi(predicate, a, b, type_))

    def select(self, condition: str, a: str, b: str, type_: str = "f32") -> str:
        return self.op(ir_text.select(condition, a, b, type_))

    def extract(self, source: Value, indices: Sequence[str]) -> str:
        return self.op(ir_text.extract(source, indices))

    def index(self, dim: int) -> str:
        return self.op(ir_text.linalg_index(dim))

    def index_to_f32(self, index: str) -> str:
        return self.cast("arith.sitofp", self.cast("arith.index_cast", index, "index", "i64"),
                         "i64", "f32")


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
