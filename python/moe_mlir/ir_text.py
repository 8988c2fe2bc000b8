"""The syntax of the MLIR text that moe_mlir generates, in one place.

Types, literals and attributes; the ops the generated modules use
(upstream func, arith, tensor, linalg and scf, and the moe dialect);
function signatures, locations and resources. Every function returns text
and keeps no state. An op function returns the op without its results;
``assign`` puts the result names in front, so that the caller picks the
SSA names. ``export.mlir_builder`` (the exporters' builder: SSA names,
types, locations) and ``routing`` (the modules of ``compile_route`` and
``compile_layer``) build on this module and format no op syntax themselves.

Operands are values: anything whose ``str()`` is the SSA name and whose
``type`` is its type text (``Typed`` here, ``mlir_builder.Value``).
"""

import struct
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["Typed", "tensor_type", "f32_literal", "f64_literal", "dense", "dense_resource",
           "resource_blob", "resources", "escape", "location", "affine_map",
           "experts_attr", "strategy_attr", "routing_attributes", "assign", "packed_results",
           "result_at", "func", "func_call", "return_op", "constant", "binary", "unary", "cast",
           "cmpi", "select", "dim", "empty", "extract", "extract_slice", "expand_shape",
           "collapse_shape", "fill", "matmul", "generic", "block", "linalg_index",
           "linalg_yield", "region_end", "scf_for", "scf_yield", "LAYER_OPERANDS",
           "ROUTE_OPERANDS", "EXPERT_FFN_OPERANDS", "COMBINE_OPERANDS", "moe_layer", "moe_route",
           "moe_dispatch", "moe_expert_ffn", "moe_combine"]

Shape = Sequence[Optional[int]]


@dataclass(frozen=True)
class Typed:
    """An SSA value (``%name``) and its type."""
    name: str
    type: str

    def __str__(self) -> str:
        return self.name


def _names(values: Iterable) -> str:
    return ", ".join(str(v) for v in values)


def _types(values: Iterable) -> str:
    return ", ".join(v.type for v in values)


# ---------------------------------------------------------------------------
# Types, literals, attributes, locations
# ---------------------------------------------------------------------------
def tensor_type(shape: Shape, element: str = "f32") -> str:
    """``tensor<?x64xf32>`` for shape (None, 64); None is a dynamic size."""
    dims = "".join(("?" if d is None else str(int(d))) + "x" for d in shape)
    return f"tensor<{dims}{element}>"


def f32_literal(value: float) -> str:
    """The f32 nearest to ``value`` as a hexadecimal literal (reads back
    exactly); beyond the f32 range, an infinity."""
    with np.errstate(over="ignore"):
        rounded = float(np.float32(value))
    bits = struct.unpack("<I", struct.pack("<f", rounded))[0]
    return f"0x{bits:08X}"


def f64_literal(value: float) -> str:
    """An f64 as a hexadecimal literal (reads back exactly)."""
    bits = struct.unpack("<Q", struct.pack("<d", float(value)))[0]
    return f"0x{bits:016X}"


def dense(elements: Sequence[str]) -> str:
    """``dense<[a, b, ...]>`` of element literals (already formatted)."""
    return "dense<[" + ", ".join(elements) + "]>"


def dense_resource(key: str) -> str:
    """A constant that reads the builtin resource ``key`` (see ``resources``)."""
    return f"dense_resource<{key}>"


def resource_blob(array: np.ndarray) -> str:
    """The hex blob of a little-endian f32 array: the 4-byte alignment
    prefix, then the data."""
    return "0x40000000" + np.ascontiguousarray(array, dtype="<f4").tobytes().hex().upper()


def resources(blobs: Mapping[str, np.ndarray]) -> str:
    """The section of builtin dialect resources that ends a module."""
    entries = ",\n".join(f"      {key}: \"{resource_blob(array)}\""
                         for key, array in blobs.items())
    return "\n{-#\n  dialect_resources: {\n    builtin: {\n" + entries + "\n    }\n  }\n#-}\n"


def escape(text: str) -> str:
    """``text`` inside a string attribute."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def location(path: Union[None, str, Sequence[str]]) -> str:
    """The location suffix of an op: ``loc("path")``, ``loc(fused[...])``
    for several paths, nothing for none (with a leading space)."""
    if isinstance(path, (list, tuple)):
        return " loc(fused[" + ", ".join(f'"{escape(p)}"' for p in path) + "])"
    if path:
        return f' loc("{escape(path)}")'
    return ""


def affine_map(dims: int, results: str) -> str:
    """``affine_map<(d0, ..., d{dims-1}) -> (results)>``."""
    dvars = ", ".join(f"d{i}" for i in range(dims))
    return f"affine_map<({dvars}) -> ({results})>"


def experts_attr(compute: int, null: int = 0, copy: int = 0, const: int = 0) -> str:
    """The expert space: ``<compute = E, null = N, ...>`` (zero counts left out)."""
    text = f"<compute = {compute}"
    for name, count in (("null", null), ("copy", copy), ("const", const)):
        if count:
            text += f", {name} = {count}"
    return text + ">"


def strategy_attr(strategy: str, p: Optional[float] = None, tau: Optional[float] = None,
                  k_min: Optional[int] = None, capacity_factor: Optional[float] = None) -> str:
    """A routing strategy with its parameters (those it uses)."""
    if strategy == "top_p":
        return f"top_p<p = {f32_literal(p)}>"
    if strategy == "adaptive":
        return f"adaptive<tau = {f32_literal(tau)}>"
    if strategy == "threshold":
        return f"threshold<tau = {f32_literal(tau)}, k_min = {k_min}>"
    if strategy == "expert_choice":
        return f"expert_choice<capacity_factor = {f64_literal(capacity_factor)}>"
    return strategy


def routing_attributes(experts: str, k: int, scoring: str, strategy: str, normalize: str,
                       scale: float, capacity: Optional[Tuple[float, str]] = None,
                       groups: Optional[Tuple[int, int, str]] = None) -> str:
    """The routing attributes of moe.route and moe.layer. ``experts`` and
    ``strategy`` are attributes (``experts_attr``, ``strategy_attr``),
    ``capacity`` is (factor, priority), ``groups`` (n, top, score)."""
    text = (f"experts = {experts} k = {k} scoring = {scoring} strategy = {strategy} "
            f"normalize = {normalize} scale = {f32_literal(scale)}")
    if capacity:
        text += f" capacity = <factor = {f64_literal(capacity[0])}, priority = {capacity[1]}>"
    if groups:
        score = "" if groups[2] == "top2_sum" else f", score = {groups[2]}"
        text += f" groups = <n = {groups[0]}, top = {groups[1]}{score}>"
    return text


# ---------------------------------------------------------------------------
# Results, functions, calls
# ---------------------------------------------------------------------------
def assign(results: Union[str, Sequence], op: str) -> str:
    """``%a, %b = op`` (``results``: one value or several)."""
    if isinstance(results, (list, tuple)):
        return f"{_names(results)} = {op}"
    return f"{results} = {op}"


def packed_results(name: str, count: int) -> str:
    """The result name of an op with ``count`` results, one name for all
    (``%r:2``); ``result_at`` names one of them."""
    return f"{name}:{count}" if count > 1 else name


def result_at(name: str, index: int) -> str:
    """Result ``index`` of the packed results ``name`` (``%r#1``)."""
    return f"{name}#{index}"


def func(name: str, args: Sequence[Tuple[object, Optional[str]]], body: Sequence[str],
         returned: Sequence, private: bool = False) -> str:
    """A ``func.func``: ``args`` are (value, name) pairs (a name becomes the
    argument's ``moe.name``, the name the weights are bound by), ``body``
    the lines of the body (indented), ``returned`` the values returned."""
    def arg_text(value, arg_name):
        attrs = f' {{moe.name = "{escape(arg_name)}"}}' if arg_name else ""
        return f"{value}: {value.type}{attrs}"
    arg_list = ",\n    ".join(arg_text(v, n) for v, n in args)
    results = f" -> ({_types(returned)})" if returned else ""
    visibility = "private " if private else ""
    return (f"func.func {visibility}@{name}(\n    {arg_list}){results} {{\n"
            + "\n".join(body) + "\n  " + return_op(returned) + "\n}\n")


def return_op(values: Sequence) -> str:
    """``return %a, %b : T, U`` (``return`` for no values)."""
    return f"return {_names(values)} : {_types(values)}" if values else "return"


def func_call(callee: str, operands: Sequence, operand_types: Sequence[str],
              result_types: Sequence[str]) -> str:
    """``func.call @callee(operands) : (types) -> (results)``."""
    return (f"func.call @{callee}({_names(operands)}) : ({', '.join(operand_types)}) -> "
            f"({', '.join(result_types)})")


# ---------------------------------------------------------------------------
# arith, tensor
# ---------------------------------------------------------------------------
def constant(literal: str, type_: str) -> str:
    """``arith.constant literal : type``."""
    return f"arith.constant {literal} : {type_}"


def binary(op: str, a, b, type_: str = "f32") -> str:
    """A binary op of the arith or math dialect (``arith.addf a, b : f32``)."""
    return f"{op} {a}, {b} : {type_}"


def unary(op: str, a, type_: str = "f32") -> str:
    """A unary op of the arith or math dialect (``math.exp a : f32``)."""
    return f"{op} {a} : {type_}"


def cast(op: str, value, from_type: str, to_type: str) -> str:
    """A conversion (``arith.index_cast %i : index to i64``)."""
    return f"{op} {value} : {from_type} to {to_type}"


def cmpi(predicate: str, a, b, type_: str = "index") -> str:
    """``arith.cmpi predicate, a, b : type``."""
    return f"arith.cmpi {predicate}, {a}, {b} : {type_}"


def select(condition, a, b, type_: str = "f32") -> str:
    """``arith.select condition, a, b : type``."""
    return f"arith.select {condition}, {a}, {b} : {type_}"


def dim(source, index) -> str:
    """``tensor.dim source, index``."""
    return f"tensor.dim {source}, {index} : {source.type}"


def empty(sizes: Sequence, type_: str) -> str:
    """``tensor.empty(dynamic sizes) : type``."""
    return f"tensor.empty({_names(sizes)}) : {type_}"


def extract(source, indices: Sequence) -> str:
    """``tensor.extract source[indices]``."""
    return f"tensor.extract {source}[{_names(indices)}] : {source.type}"


def extract_slice(source, offsets: Sequence, sizes: Sequence, strides: Sequence,
                  result_type: str) -> str:
    """``tensor.extract_slice`` (offsets, sizes, strides: values or integers)."""
    return (f"tensor.extract_slice {source}[{_names(offsets)}] [{_names(sizes)}] "
            f"[{_names(strides)}] : {source.type} to {result_type}")


def expand_shape(source, reassociation: str, output_shape: Sequence, result_type: str) -> str:
    """``tensor.expand_shape`` (``output_shape``: values or integers)."""
    return (f"tensor.expand_shape {source} {reassociation} output_shape "
            f"[{_names(output_shape)}] : {source.type} into {result_type}")


def collapse_shape(source, reassociation: str, result_type: str) -> str:
    """``tensor.collapse_shape``."""
    return f"tensor.collapse_shape {source} {reassociation} : {source.type} into {result_type}"


# ---------------------------------------------------------------------------
# linalg, scf
# ---------------------------------------------------------------------------
def fill(value, init) -> str:
    """``linalg.fill`` of ``init`` with the scalar ``value``."""
    return f"linalg.fill ins({value} : {value.type}) outs({init} : {init.type}) -> {init.type}"


def matmul(lhs, rhs, init) -> str:
    """``linalg.matmul`` accumulating into ``init``."""
    return (f"linalg.matmul ins({lhs}, {rhs} : {lhs.type}, {rhs.type}) "
            f"outs({init} : {init.type}) -> {init.type}")


def generic(maps: Sequence[str], iterators: Sequence[str], inputs: Sequence, output) -> str:
    """The first line of a ``linalg.generic`` (up to its region's ``{``);
    ``maps`` are affine maps (inputs, then the output). The region is a
    ``block``, its body and ``linalg_yield``, closed by ``region_end``."""
    iterator_list = ", ".join(f'"{it}"' for it in iterators)
    return (f"linalg.generic {{indexing_maps = [{', '.join(maps)}], "
            f"iterator_types = [{iterator_list}]}} "
            + (f"ins({_names(inputs)} : {_types(inputs)}) " if inputs else "")
            + f"outs({output} : {output.type}) {{")


def block(args: Sequence[Tuple[str, str]]) -> str:
    """A block header ``^bb0(%a: f32, ...):`` of (name, type) pairs."""
    return "^bb0(" + ", ".join(f"{a}: {t}" for a, t in args) + "):"


def linalg_index(dim_: int) -> str:
    """``linalg.index dim : index``."""
    return f"linalg.index {dim_} : index"


def linalg_yield(value, type_: str) -> str:
    """``linalg.yield value : type``."""
    return f"linalg.yield {value} : {type_}"


def region_end(result_types: Sequence[str] = ()) -> str:
    """The ``}`` that closes an op's region, with the op's result types
    after it when its syntax puts them there (``linalg.generic``)."""
    return "} -> " + ", ".join(result_types) if result_types else "}"


def scf_for(iv: str, lower, upper, step, iter_args: Sequence[Tuple[str, object]]) -> str:
    """The first line of an ``scf.for`` with loop-carried values
    (``iter_args``: (region name, initial value) pairs), up to its ``{``."""
    carried = ", ".join(f"{name} = {init}" for name, init in iter_args)
    types = ", ".join(init.type for _, init in iter_args)
    return f"scf.for {iv} = {lower} to {upper} step {step} iter_args({carried}) -> ({types}) {{"


def scf_yield(values: Sequence, types: Sequence[str]) -> str:
    """``scf.yield values : types``."""
    return f"scf.yield {_names(values)} : {', '.join(types)}"


# ---------------------------------------------------------------------------
# The moe dialect
# ---------------------------------------------------------------------------
#: The optional operands of moe.layer, by keyword, in the order of its syntax
#: (``router`` and ``up``, ``down`` are required).
LAYER_OPERANDS = ("router", "router_bias", "k_per_token", "bias", "up", "gate", "down",
                  "up_bias", "down_bias", "const_proj", "const_values")
#: The optional operands of moe.route.
ROUTE_OPERANDS = ("k_per_token", "bias")
#: The weight operands of moe.expert_ffn (``up`` and ``down`` are required).
EXPERT_FFN_OPERANDS = ("up", "gate", "down", "up_bias", "down_bias")
#: The optional operands of moe.combine (constant experts).
COMBINE_OPERANDS = ("const_proj", "const_values")


def _keyword_operands(operands: Mapping[str, object], keywords: Sequence[str]) -> str:
    """`` keyword(%v : type)`` for each keyword present (a value that is not
    None), in the order of ``keywords``."""
    unknown = set(operands) - set(keywords)
    if unknown:
        raise ValueError(f"unknown operand keyword(s) {sorted(unknown)} (known: {keywords})")
    return "".join(f" {keyword}({operands[keyword]} : {operands[keyword].type})"
                   for keyword in keywords if operands.get(keyword) is not None)


def _activation(activation: str, gated: bool) -> str:
    return f"activation = {activation}{' gated' if gated else ''}"


def _weight_layout(packed: bool, quant: Optional[str]) -> str:
    """`` packed`` and `` quant = q8_0`` of the expert ops."""
    return (" packed" if packed else "") + (f" quant = {quant}" if quant else "")


def moe_layer(x, operands: Mapping[str, object], attributes: str, activation: str,
              gated: bool, packed: bool = False, quant: Optional[str] = None) -> str:
    """``moe.layer``: ``operands`` by keyword (``LAYER_OPERANDS``),
    ``attributes`` the routing attributes (``routing_attributes``). The
    result has the type of ``x``. ``quant`` (with ``packed``): the weights'
    block format (``q8_0``, ``q4_0``)."""
    return (f"moe.layer {x}{_keyword_operands(operands, LAYER_OPERANDS)} {attributes} "
            f"{_activation(activation, gated)}{_weight_layout(packed, quant)} "
            f": {x.type} -> {x.type}")


def moe_route(logits, operands: Mapping[str, object], attributes: str, ids_init,
              weights_init) -> str:
    """``moe.route`` into ``ids_init`` and ``weights_init`` (its two results
    have their types)."""
    return (f"moe.route {logits}{_keyword_operands(operands, ROUTE_OPERANDS)} {attributes} "
            f"into({ids_init}, {weights_init}) : {logits.type} into {ids_init.type}, "
            f"{weights_init.type}")


def moe_dispatch(x, ids, num_experts: int) -> str:
    """``moe.dispatch``: its results are the rows (the type of ``x``), the
    offsets (``tensor<(E+1)xi32>``) and the slots (the type of ``ids``)."""
    offsets = tensor_type((num_experts + 1,), "i32")
    return (f"moe.dispatch {x}, {ids} num_experts = {num_experts} : {x.type}, {ids.type} -> "
            f"{x.type}, {offsets}, {ids.type}")


def moe_expert_ffn(rows, offsets, operands: Mapping[str, object], activation: str,
                   gated: bool, init, packed: bool = False, quant: Optional[str] = None) -> str:
    """``moe.expert_ffn`` of the dispatched ``rows`` into ``init``
    (``operands``: the weights by keyword, ``EXPERT_FFN_OPERANDS``)."""
    return (f"moe.expert_ffn {rows}, {offsets}"
            f"{_keyword_operands(operands, EXPERT_FFN_OPERANDS)} "
            f"{_activation(activation, gated)}{_weight_layout(packed, quant)} into({init}) "
            f": {rows.type}, {offsets.type} into {init.type}")


def moe_combine(y, slots, ids, weights, x, operands: Mapping[str, object], experts: str,
                init) -> str:
    """``moe.combine`` into ``init`` (``operands``: the constant experts'
    weights by keyword, ``COMBINE_OPERANDS``; ``experts``: ``experts_attr``)."""
    values = (y, slots, ids, weights, x)
    return (f"moe.combine {_names(values)}{_keyword_operands(operands, COMBINE_OPERANDS)} "
            f"experts = {experts} into({init}) : {_types(values)} into {init.type}")
