"""Checkpoints from any framework: a JSON config plus safetensors weights.

The config (``format: "moe-mlir-checkpoint/1"``) describes a stack of MoE
layers with the contract's routing fields; the weights use the contract's
layouts. See docs/Export.md for the full format. Every malformed input gives
an ``ExportError`` that names the file, the field or tensor, and what was
expected: missing or unknown fields, unknown values, missing or unexpected
tensors, wrong shapes or dtypes, truncated files.
"""

import json
from typing import Dict, Optional

import numpy as np

from ..routing import RoutingConfig
from . import safetensors
from .graph import LayerSpec, ModelSpec, emit
from .layers import MoESpec
from .model import ExportedModel, ExportError

__all__ = ["export_checkpoint", "load_config", "FORMAT"]

FORMAT = "moe-mlir-checkpoint/1"

# Config fields: name -> (type, required, default).
_TOP = {"format": (str, True, None), "hidden_size": (int, True, None),
        "num_layers": (int, True, None), "residual": (bool, False, True), "moe": (dict, True, None)}
_MOE = {
    "ffn_size": (int, True, None), "num_experts": (int, True, None), "top_k": (int, True, None),
    "num_null_experts": (int, False, 0), "num_copy_experts": (int, False, 0),
    "num_constant_experts": (int, False, 0), "scoring": (str, False, "softmax"),
    "strategy": (str, False, "top_k"), "top_p": (float, False, None), "tau": (float, False, None),
    "k_min": (int, False, None), "capacity_factor": (float, False, None),
    "normalize": (str, False, "none"), "scale": (float, False, 1.0),
    "capacity": (dict, False, None), "groups": (dict, False, None),
    "activation": (str, False, "silu"), "gated": (bool, False, True),
    "router_bias": (bool, False, False), "selection_bias": (bool, False, False),
    "expert_biases": (bool, False, False),
}


def _fields(obj, schema, where, path):
    if not isinstance(obj, dict):
        raise ExportError(f"{path}: {where} must be a JSON object")
    unknown = sorted(set(obj) - set(schema))
    if unknown:
        raise ExportError(f"{path}: unknown field(s) {', '.join(repr(u) for u in unknown)} in "
                          f"{where} (known: {', '.join(sorted(schema))})")
    out = {}
    for name, (type_, required, default) in schema.items():
        if name not in obj:
            if required:
                raise ExportError(f"{path}: missing field '{name}' in {where}")
            out[name] = default
            continue
        value = obj[name]
        ok = (isinstance(value, type_) and not (type_ in (int, float) and isinstance(value, bool))) \
            or (type_ is float and isinstance(value, int) and not isinstance(value, bool)) \
            or value is None and default is None and not required
        if not ok:
            raise ExportError(f"{path}: field '{name}' in {where} must be a "
                              f"{type_.__name__}, got {value!r}")
        out[name] = value
    return out


def load_config(path: str) -> Dict:
    """Reads and validates a checkpoint config."""
    try:
        with open(path, "rb") as f:
            raw = json.loads(f.read().decode("utf-8"))
    except OSError as error:
        raise ExportError(f"{path}: cannot read: {error.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"{path}: not valid JSON: {error}") from None
    except RecursionError:
        raise ExportError(f"{path}: not valid JSON: nested too deeply") from None
    top = _fields(raw, _TOP, "the config", path)
    if top["format"] != FORMAT:
        raise ExportError(f"{path}: field 'format' must be {FORMAT!r}, got {top['format']!r}")
    for name in ("hidden_size", "num_layers"):
        if top[name] < 1:
            raise ExportError(f"{path}: field '{name}' must be >= 1, got {top[name]}")
    moe = top["moe"] = _fields(top["moe"], _MOE, "'moe'", path)
    # Sizes are checked here, where the field is known, not when a tensor
    # shape built from them fails later.
    for name, minimum in (("ffn_size", 1), ("num_experts", 1), ("top_k", 1),
                          ("num_null_experts", 0), ("num_copy_experts", 0),
                          ("num_constant_experts", 0)):
        if moe[name] < minimum:
            raise ExportError(f"{path}: field '{name}' in 'moe' must be >= {minimum}, "
                              f"got {moe[name]}")
    for name in ("hidden_size", "ffn_size", "num_experts"):
        where = top if name == "hidden_size" else moe
        if where[name] > 2**31 - 1:
            raise ExportError(f"{path}: field '{name}' must be < 2^31, got {where[name]}")
    return top


def _routing(moe: Dict, path: str) -> RoutingConfig:
    capacity = groups = None
    if moe["capacity"] is not None:
        c = moe["capacity"]
        if set(c) != {"factor", "priority"} or not isinstance(c["priority"], str):
            raise ExportError(f"{path}: 'capacity' must be {{\"factor\": f, \"priority\": "
                              f"\"score\"|\"position\"}}, got {c!r}")
        capacity = (c["factor"], c["priority"])
    if moe["groups"] is not None:
        g = moe["groups"]
        if (not {"n", "top"} <= set(g) <= {"n", "top", "score"}
                or not all(isinstance(g[v], int) and not isinstance(g[v], bool)
                           for v in ("n", "top"))
                or g.get("score", "top2_sum") not in ("top2_sum", "max")):
            raise ExportError(f"{path}: 'groups' must be {{\"n\": n, \"top\": top}} with an "
                              f"optional \"score\": \"top2_sum\"|\"max\", got {g!r}")
        groups = (g["n"], g["top"], g.get("score", "top2_sum"))
    try:
        return RoutingConfig(
            num_experts=moe["num_experts"], k=moe["top_k"], num_null=moe["num_null_experts"],
            num_copy=moe["num_copy_experts"], num_const=moe["num_constant_experts"],
            scoring=moe["scoring"], strategy=moe["strategy"], p=moe["top_p"], tau=moe["tau"],
            k_min=moe["k_min"], capacity_factor=moe["capacity_factor"], capacity=capacity,
            groups=groups, normalize=moe["normalize"], scale=moe["scale"])
    except ValueError as error:
        raise ExportError(f"{path}: invalid routing configuration in 'moe': {error}") from None


def _expected(config: Dict, routing: RoutingConfig) -> Dict[str, tuple]:
    """The tensors of one layer and their shapes."""
    moe = config["moe"]
    H, F, E, S = config["hidden_size"], moe["ffn_size"], routing.E, routing.S
    shapes = {"router": (H, S), "w_up": (E, H, F), "w_down": (E, F, H)}
    if moe["gated"]:
        shapes["w_gate"] = (E, H, F)
    if moe["router_bias"]:
        shapes["router_bias"] = (S,)
    if moe["selection_bias"]:
        shapes["selection_bias"] = (S,)
    if moe["expert_biases"]:
        if moe["gated"]:
            raise ExportError("'expert_biases' are only allowed when 'gated' is false")
        shapes["b_up"] = (E, F)
        shapes["b_down"] = (E, H)
    if routing.num_const:
        shapes["const_proj"] = (routing.num_const, H, 2)
        shapes["const_values"] = (routing.num_const, H)
    return shapes


# Weights whose first dimension is the expert index (split by expert
# parallelism).
_EXPERT_ROLES = ("w_up", "w_gate", "w_down", "b_up", "b_down")


def export_checkpoint(config_path: str, weights_path: str, *, entry: str = "forward",
                      embed_weights: bool = False,
                      expert_parallel: Optional[str] = None) -> ExportedModel:
    """Exports ``num_layers`` MoE layers (``y = x + moe(x)`` with ``residual``)
    from a config and its safetensors weights ``layers.<i>.<name>``.

    With ``expert_parallel`` (a placement: "balanced" or "0,3,8"), this
    rank of the run (``moe_mlir.ep``) reads only its block of every expert
    stack, and the model compiles and runs expert-parallel: call it with
    this rank's tokens (``ep.split_tokens``)."""
    config = load_config(config_path)
    moe = config["moe"]
    if moe["activation"] not in ("silu", "gelu", "gelu_tanh", "relu"):
        raise ExportError(f"{config_path}: field 'activation' must be silu, gelu, gelu_tanh "
                          f"or relu, got {moe['activation']!r}")
    if moe["strategy"] == "dynamic_k":
        raise ExportError(f"{config_path}: strategy 'dynamic_k' needs a per-token k computed by "
                          f"the model; export the model from its framework instead")
    routing = _routing(moe, config_path)
    blocks = None
    try:
        if expert_parallel is None:
            tensors = safetensors.load(weights_path)
        else:
            from .. import ep
            blocks = ep.ExpertBlocks()
            first, count = ep.local_experts(moe["num_experts"], expert_parallel)
            tensors = _LazyTensors(safetensors.SafetensorsFile(weights_path), first, count,
                                   blocks, moe["num_experts"])
    except safetensors.SafetensorsError as error:
        raise ExportError(str(error)) from None
    shapes = _expected(config, routing)
    layers = []
    used = set()
    for index in range(config["num_layers"]):
        named = {}
        for role, shape in shapes.items():
            name = f"layers.{index}.{role}"
            if name not in tensors:
                raise ExportError(f"{weights_path}: missing tensor '{name}' (expected float "
                                  f"{list(shape)})")
            array = tensors[name]
            if array.dtype.kind != "f":
                raise ExportError(f"{weights_path}: tensor '{name}' has dtype {array.dtype}, "
                                  f"expected a float type (F32, F16, BF16 or F64)")
            if tuple(array.shape) != shape:
                raise ExportError(f"{weights_path}: tensor '{name}' has shape "
                                  f"{list(array.shape)}, expected {list(shape)}")
            # (An expert-parallel stand-in is f32 already: no copy.)
            named[role] = array if array.dtype == np.float32 else array.astype(np.float32)
            used.add(name)
        spec = MoESpec(hidden=config["hidden_size"], ffn=moe["ffn_size"], routing=routing,
                       w_router=named["router"], w_up=named["w_up"], w_down=named["w_down"],
                       w_gate=named.get("w_gate"), b_router=named.get("router_bias"),
                       selection_bias=named.get("selection_bias"),
                       const_proj=named.get("const_proj"), const_values=named.get("const_values"),
                       b_up=named.get("b_up"), b_down=named.get("b_down"),
                       activation=moe["activation"], convention="checkpoint")
        layers.append(LayerSpec(path=f"layers.{index}", ffn=spec, residual=config["residual"]))
    unexpected = sorted(set(tensors) - used)
    if unexpected:
        raise ExportError(f"{weights_path}: unexpected tensor(s) {', '.join(unexpected[:5])}"
                          + (" ..." if len(unexpected) > 5 else "")
                          + f" (a {config['num_layers']}-layer checkpoint has "
                          f"layers.<i>.{{{', '.join(shapes)}}})")
    exported = emit(ModelSpec(config["hidden_size"], layers, "layers"), entry,
                    embed_weights=embed_weights and blocks is None)
    if blocks is not None:
        blocks.substitute(exported.weights)
        exported.info["expert_parallel"] = expert_parallel
    return exported


class _LazyTensors:
    """The tensors of a safetensors file as a mapping read on access; expert
    stacks (``layers.<i>.w_up`` ...) are read as this rank's block and
    returned as full-shaped stand-ins (``ep.ExpertBlocks``)."""

    def __init__(self, file, first, count, blocks, experts):
        self.file, self.first, self.count = file, first, count
        self.blocks, self.experts = blocks, experts

    def __contains__(self, name):
        return name in self.file

    def __iter__(self):
        return iter(self.file.keys())

    def keys(self):
        return self.file.keys()

    def __getitem__(self, name):
        info = self.file.tensors[name]
        if name.rsplit(".", 1)[-1] in _EXPERT_ROLES and info.shape \
                and info.shape[0] == self.experts:
            local = self.file.get_rows(name, self.first, self.count).astype(np.float32)
            return self.blocks.placeholder(local, self.experts)
        return self.file.get(name)
