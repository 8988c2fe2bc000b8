"""Compiled routing and layers for a configuration: ``compile_route`` and
``compile_layer``.

Both generate a small module (one ``moe.route`` or ``moe.layer`` with a
dynamic token count; its text is ``ir_text``'s), compile it with the
pipeline of the target (``"cpu"``, the default, or ``"gpu-emulated"``: see
``moe_mlir.targets``), and return a callable that validates and converts
its NumPy inputs. They run compiled code only; they never call the NumPy
reference.
"""

from typing import Optional, Tuple

import numpy as np

from . import ir_text, quant
from .compiler import CompiledModule, _float_to_bf16_bits
from .ir_text import Typed, tensor_type
from .strategies import NAMES as _STRATEGIES, PARAMETERS as _STRATEGY_PARAMETERS
from .targets import check_target
from .targets import pipeline as target_pipeline

__all__ = ["compile_route", "compile_layer", "RoutingConfig", "pack_panels"]

_SCORINGS = ("softmax", "sigmoid", "none")
_NORMALIZE = ("none", "selected", "non_null")
_ACTIVATIONS = ("silu", "gelu", "gelu_tanh", "relu")


class RoutingConfig:
    """The routing arguments shared by compile_route and compile_layer,
    validated, and rendered as moe attribute syntax."""

    def __init__(self, num_experts, k, num_null=0, num_copy=0, num_const=0,
                 scoring="softmax", strategy="top_k", p=None, tau=None, k_min=None,
                 capacity_factor=None, capacity=None, groups=None, normalize="none",
                 scale=1.0):
        def number(name, value):
            if value is None:
                return None
            if isinstance(value, (bool, np.bool_)) or \
                    not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"'{name}' must be a number, got {value!r}")
            return float(value)

        def integer(name, value, minimum):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"'{name}' must be an integer, got {value!r}")
            if value < minimum:
                raise ValueError(f"'{name}' must be >= {minimum}, got {value}")
            return int(value)

        self.E = integer("num_experts", num_experts, 1)
        self.num_null = integer("num_null", num_null, 0)
        self.num_copy = integer("num_copy", num_copy, 0)
        self.num_const = integer("num_const", num_const, 0)
        self.S = self.E + self.num_null + self.num_copy + self.num_const
        self.k = integer("k", k, 1)
        if self.k > self.S:
            raise ValueError(f"'k' must be <= S = {self.S} (all experts), got {self.k}")
        if scoring not in _SCORINGS:
            raise ValueError(f"'scoring' must be one of {_SCORINGS}, got {scoring!r}")
        if strategy not in _STRATEGIES:
            raise ValueError(f"'strategy' must be one of {_STRATEGIES}, got {strategy!r}")
        if normalize not in _NORMALIZE:
            raise ValueError(f"'normalize' must be one of {_NORMALIZE}, got {normalize!r}")
        self.scoring, self.strategy, self.normalize = scoring, strategy, normalize

        uses = set(_STRATEGY_PARAMETERS[strategy])
        given = {name for name, value in (("p", p), ("tau", tau), ("k_min", k_min),
                                          ("capacity_factor", capacity_factor))
                 if value is not None}
        unused = sorted(given - uses)
        if unused:
            raise ValueError(f"strategy {strategy!r} does not use {', '.join(repr(u) for u in unused)}")
        required = sorted((uses - {"k_min"}) - given)
        if required:
            raise ValueError(f"strategy {strategy!r} requires {', '.join(repr(r) for r in required)}")
        p, tau = number("p", p), number("tau", tau)
        capacity_factor = number("capacity_factor", capacity_factor)
        scale = number("scale", scale)
        if scale is None:
            raise ValueError("'scale' must be a number, got None")
        self.p, self.tau, self.capacity_factor = p, tau, capacity_factor
        self.k_min = 1 if k_min is None else k_min
        if strategy == "top_p" and not (0 < np.float32(p) <= 1):
            raise ValueError(f"'p' must satisfy 0 < p <= 1, got {p}")
        if strategy == "adaptive" and not (np.float32(tau) >= 0):
            raise ValueError(f"'tau' must be >= 0 for adaptive, got {tau}")
        if strategy == "threshold":
            if not np.isfinite(np.float32(tau)):
                raise ValueError(f"'tau' must be finite for threshold, got {tau}")
            self.k_min = integer("k_min", self.k_min, 0)
            if self.k_min > self.k:
                raise ValueError(f"'k_min' must be <= k = {self.k}, got {self.k_min}")
        if strategy == "expert_choice" and not (capacity_factor > 0):
            raise ValueError(f"'capacity_factor' must be > 0, got {capacity_factor}")

        self.capacity = None
        if capacity is not None:
            if not (isinstance(capacity, (tuple, list)) and len(capacity) == 2):
                raise ValueError(f"'capacity' must be (factor, 'score'|'position'), got {capacity!r}")
            factor, priority = capacity
            if priority not in ("score", "position"):
                raise ValueError(f"capacity priority must be 'score' or 'position', got {priority!r}")
            factor = number("capacity factor", factor)
            if factor is None or not (factor > 0):
                raise ValueError(f"capacity factor must be > 0, got {factor}")
            self.capacity = (factor, priority)
        self.groups = None
        if groups is not None:
            if not (isinstance(groups, (tuple, list)) and len(groups) in (2, 3)):
                raise ValueError(f"'groups' must be (n, top) or (n, top, score), got {groups!r}")
            score = groups[2] if len(groups) == 3 else "top2_sum"
            if score not in ("top2_sum", "max"):
                raise ValueError(f"groups score must be 'top2_sum' or 'max', got {score!r}")
            # Always (n, top, score): ref.Groups(*config.groups) takes it as is.
            self.groups = (integer("groups n", groups[0], 1), integer("groups top", groups[1], 1),
                           score)
        self.scale = float(scale)
        if strategy == "expert_choice" and (self.capacity or self.groups):
            raise ValueError("strategy 'expert_choice' does not accept 'capacity' or 'groups'")

    @property
    def uses_k_per_token(self) -> bool:
        return self.strategy == "dynamic_k"

    def experts_attr(self) -> str:
        """The expert space as a moe attribute (``<compute = E, null = N>``)."""
        return ir_text.experts_attr(self.E, self.num_null, self.num_copy, self.num_const)

    def strategy_attr(self) -> str:
        """The strategy with its parameters as a moe attribute."""
        return ir_text.strategy_attr(self.strategy, self.p, self.tau, self.k_min,
                                     self.capacity_factor)

    def attributes(self) -> str:
        """The routing attributes of moe.route and moe.layer."""
        return ir_text.routing_attributes(self.experts_attr(), self.k, self.scoring,
                                          self.strategy_attr(), self.normalize, self.scale,
                                          self.capacity, self.groups)


PANEL = 32  # columns of one panel of packed expert weights (the `packed` layout)


def pack_panels(w: np.ndarray) -> np.ndarray:
    """``[E, D, N] -> [E, ceil(N/32), D, 32]`` (zero padded): the ``packed``
    layout of ``moe.expert_ffn`` / ``moe.layer`` weights, ``out[e, p, d, j] =
    w[e, d, 32 p + j]``."""
    w = np.asarray(w)
    experts, depth, n = w.shape
    panels = -(-n // PANEL)
    padded = np.zeros((experts, depth, panels * PANEL), w.dtype)
    padded[:, :, :n] = w
    return np.ascontiguousarray(padded.reshape(experts, depth, panels, PANEL).transpose(0, 2, 1, 3))


def _float32(name: str, value, shape: Tuple[Optional[int], ...]) -> np.ndarray:
    """Converts to a float32 array and checks the shape (None: any size)."""
    array = np.asarray(value)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"argument '{name}' must be numeric, got dtype {array.dtype}")
    if array.ndim != len(shape) or any(d is not None and d != s for d, s in zip(shape, array.shape)):
        expected = "[" + ", ".join("T" if d is None else str(d) for d in shape) + "]"
        raise ValueError(f"argument '{name}' must have shape {expected}, got {tuple(array.shape)}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _int32(name: str, value, shape) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "iu" and not (array.size == 0 and array.dtype.kind == "f"):
        raise ValueError(f"argument '{name}' must hold integers, got dtype {array.dtype}")
    if array.ndim != len(shape) or any(d is not None and d != s for d, s in zip(shape, array.shape)):
        expected = "[" + ", ".join("T" if d is None else str(d) for d in shape) + "]"
        raise ValueError(f"argument '{name}' must have shape {expected}, got {tuple(array.shape)}")
    # Values outside i32 saturate: k_per_token is clamped to [0, K] anyway.
    return np.ascontiguousarray(np.clip(array, -2**31, 2**31 - 1), dtype=np.int32)


def _same_tokens(arrays):
    counts = {name: a.shape[0] for name, a in arrays if a is not None}
    if len(set(counts.values())) > 1:
        listing = ", ".join(f"'{n}' has {c}" for n, c in counts.items())
        raise ValueError(f"all per-token arguments must have the same number of tokens T: {listing}")


# The moe.layer operand keyword of each compile_layer argument.
_LAYER_KEYWORDS = {"w_router": "router", "b_router": "router_bias", "k_per_token": "k_per_token",
                   "selection_bias": "bias", "w_up": "up", "w_gate": "gate", "w_down": "down",
                   "b_up": "up_bias", "b_down": "down_bias", "wc": "const_proj",
                   "v": "const_values"}


class _Variants:
    """Compiles one module per combination of optional arguments, on first
    use, and caches it (with the pipeline of ``target``, checked)."""

    def __init__(self, build, target):
        self._build = build
        self._cache = {}
        self._pipeline = target_pipeline(target)

    def get(self, key):
        if key not in self._cache:
            text, entry, names = self._build(key)
            module = CompiledModule(text, self._pipeline)
            self._cache[key] = module.function(entry, names)
        return self._cache[key]


def compile_route(num_experts: int, k: int, num_null: int = 0, num_copy: int = 0,
                  num_const: int = 0, scoring: str = "softmax", strategy: str = "top_k",
                  p: Optional[float] = None, tau: Optional[float] = None,
                  k_min: Optional[int] = None, capacity_factor: Optional[float] = None,
                  capacity=None, groups=None, normalize: str = "none", scale: float = 1.0,
                  target: str = "cpu"):
    """A compiled ``moe.route``: ``f(logits, k_per_token=None, selection_bias=None)
    -> (ids int32 [T,k], weights float32 [T,k])``.

    ``num_experts`` is E (compute experts); S = E + num_null + num_copy +
    num_const. ``p`` is required by top_p, ``tau`` by adaptive and threshold,
    ``capacity_factor`` by expert_choice; ``k_min`` (threshold only) defaults
    to 1. ``capacity`` is ``(factor, "score"|"position")``, ``groups`` is
    ``(n, top)`` or ``(n, top, score)`` with ``score`` ``"top2_sum"`` (the
    default) or ``"max"``. A parameter the strategy does not use is a ``ValueError``.
    ``target`` is ``"cpu"`` or ``"gpu-emulated"`` (``moe_mlir.targets``)."""
    target = check_target(target, "compile_route")
    cfg = RoutingConfig(num_experts, k, num_null, num_copy, num_const, scoring, strategy, p,
                        tau, k_min, capacity_factor, capacity, groups, normalize, scale)
    S, K = cfg.S, cfg.k

    def build(with_bias):
        logits = Typed("%logits", tensor_type((None, S)))
        args = [logits]
        operands = {}
        if cfg.uses_k_per_token:
            operands["k_per_token"] = Typed("%k_per_token", tensor_type((None,), "i32"))
            args.append(operands["k_per_token"])
        if with_bias:
            operands["bias"] = Typed("%selection_bias", tensor_type((S,)))
            args.append(operands["bias"])
        c0, t = Typed("%c0", "index"), Typed("%t", "index")
        ids0 = Typed("%ids0", tensor_type((None, K), "i32"))
        weights0 = Typed("%weights0", tensor_type((None, K)))
        ids, weights = Typed("%ids", ids0.type), Typed("%weights", weights0.type)
        body = [ir_text.assign(c0, ir_text.constant("0", "index")),
                ir_text.assign(t, ir_text.dim(logits, c0)),
                ir_text.assign(ids0, ir_text.empty([t], ids0.type)),
                ir_text.assign(weights0, ir_text.empty([t], weights0.type)),
                ir_text.assign([ids, weights], ir_text.moe_route(logits, operands,
                                                                 cfg.attributes(), ids0,
                                                                 weights0))]
        text = ir_text.func("route", [(a, None) for a in args], ["  " + b for b in body],
                            [ids, weights])
        return text, "route", [a.name[1:] for a in args]

    variants = _Variants(build, target)
    variants.get(False)  # compile eagerly: configuration errors surface here

    def route(logits, k_per_token=None, selection_bias=None):
        x = _float32("logits", logits, (None, S))
        args = [x]
        if cfg.uses_k_per_token:
            if k_per_token is None:
                raise ValueError("argument 'k_per_token' is required by strategy 'dynamic_k'")
            kpt = _int32("k_per_token", k_per_token, (None,))
            _same_tokens([("logits", x), ("k_per_token", kpt)])
            args.append(kpt)
        elif k_per_token is not None:
            raise ValueError(f"argument 'k_per_token' is only accepted with strategy 'dynamic_k', "
                             f"got {cfg.strategy!r}")
        if selection_bias is not None:
            if cfg.strategy == "expert_choice":
                raise ValueError("strategy 'expert_choice' does not accept 'selection_bias'")
            args.append(_float32("selection_bias", selection_bias, (S,)))
        return variants.get(selection_bias is not None)(*args)

    route.config = cfg
    return route


def compile_layer(hidden: int, ffn: int, num_experts: int, k: int, num_null: int = 0,
                  num_copy: int = 0, num_const: int = 0, scoring: str = "softmax",
                  strategy: str = "top_k", p: Optional[float] = None,
                  tau: Optional[float] = None, k_min: Optional[int] = None,
                  capacity_factor: Optional[float] = None, capacity=None, groups=None,
                  normalize: str = "none", scale: float = 1.0, activation: str = "silu",
                  gated: bool = True, target: str = "cpu"):
    """A compiled ``moe.layer``: ``g(x, w_router, w_up, w_down, w_gate=None,
    b_router=None, b_up=None, b_down=None, k_per_token=None,
    selection_bias=None, wc=None, v=None) -> y`` (float32 [T, hidden]).

    Weights use the contract's layouts: ``w_router`` [hidden, S], ``w_up``
    and ``w_gate`` [E, hidden, ffn], ``w_down`` [E, ffn, hidden], ``b_up``
    [E, ffn], ``b_down`` [E, hidden], ``wc`` [num_const, hidden, 2], ``v``
    [num_const, hidden]. The routing arguments are those of compile_route.

    ``g.bind(w_router, w_up, w_down, w_gate=None, ..., weight_dtype="f32")``
    binds the weights once (packing the expert weights into the kernels'
    panel layout, optionally storing them as bf16) and returns
    ``f(x, k_per_token=None) -> y``: the fast path for repeated calls.
    ``target`` is ``"cpu"`` or ``"gpu-emulated"`` (``moe_mlir.targets``)."""
    target = check_target(target, "compile_layer")
    cfg = RoutingConfig(num_experts, k, num_null, num_copy, num_const, scoring, strategy, p,
                        tau, k_min, capacity_factor, capacity, groups, normalize, scale)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"'activation' must be one of {_ACTIVATIONS}, got {activation!r}")
    for name, value in (("hidden", hidden), ("ffn", ffn)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"'{name}' must be a positive integer, got {value!r}")
    H, F, E, S = int(hidden), int(ffn), cfg.E, cfg.S
    gated = bool(gated)
    shapes = {
        "x": (None, H), "w_router": (H, S), "w_up": (E, H, F), "w_down": (E, F, H),
        "w_gate": (E, H, F), "b_router": (S,), "b_up": (E, F), "b_down": (E, H),
        "selection_bias": (S,), "wc": (cfg.num_const, H, 2), "v": (cfg.num_const, H),
    }
    optional = ("b_router", "selection_bias", "b_up", "b_down")
    packed_shapes = {"w_up": (E, -(-F // PANEL), H, PANEL), "w_gate": (E, -(-F // PANEL), H, PANEL),
                     "w_down": (E, -(-H // PANEL), F, PANEL)}
    quant_shapes = {"w_up": (E, H, F), "w_gate": (E, H, F), "w_down": (E, F, H)}

    def build(key):
        present, packed, weight_type = key
        order = ["x", "w_router"]
        if "b_router" in present:
            order.append("b_router")
        if cfg.uses_k_per_token:
            order.append("k_per_token")
        if "selection_bias" in present:
            order.append("selection_bias")
        order += ["w_up"] + (["w_gate"] if gated else []) + ["w_down"]
        order += [n for n in ("b_up", "b_down") if n in present]
        if cfg.num_const:
            order += ["wc", "v"]

        def ttype(name):
            if name == "k_per_token":
                return tensor_type((None,), "i32")
            shape = shapes[name]
            element = "f32"
            if name in ("w_up", "w_gate", "w_down"):
                element = weight_type
                if weight_type in quant.FORMATS:
                    return tensor_type(quant.tile_shape(*quant_shapes[name], weight_type), "i8")
                if packed:
                    shape = packed_shapes[name]
            return tensor_type(shape, element)

        values = {n: Typed("%" + n, ttype(n)) for n in order}
        operands = {_LAYER_KEYWORDS[n]: values[n] for n in order if n != "x"}
        y = Typed("%y", values["x"].type)
        body = ["  " + ir_text.assign(y, ir_text.moe_layer(
            values["x"], operands, cfg.attributes(), activation, gated, packed,
            weight_type if weight_type in quant.FORMATS else None))]
        text = ir_text.func("layer", [(values[n], None) for n in order], body, [y])
        return text, "layer", order

    variants = _Variants(build, target)
    variants.get((frozenset(), False, "f32"))  # compile eagerly: configuration errors surface here

    def check_arguments(w_gate, b_up, b_down, wc, v, k_per_token, selection_bias):
        if gated and w_gate is None:
            raise ValueError("argument 'w_gate' is required by a gated layer")
        if not gated and w_gate is not None:
            raise ValueError("argument 'w_gate' is only accepted by a gated layer (gated=True)")
        if gated and (b_up is not None or b_down is not None):
            raise ValueError("arguments 'b_up' and 'b_down' are only accepted when gated=False")
        if cfg.num_const and (wc is None or v is None):
            raise ValueError(f"arguments 'wc' and 'v' are required: the layer has "
                             f"{cfg.num_const} constant expert(s)")
        if not cfg.num_const and (wc is not None or v is not None):
            raise ValueError("arguments 'wc' and 'v' are only accepted with constant experts")
        if cfg.uses_k_per_token and k_per_token is None:
            raise ValueError("argument 'k_per_token' is required by strategy 'dynamic_k'")
        if not cfg.uses_k_per_token and k_per_token is not None:
            raise ValueError(f"argument 'k_per_token' is only accepted with strategy 'dynamic_k', "
                             f"got {cfg.strategy!r}")
        if selection_bias is not None and cfg.strategy == "expert_choice":
            raise ValueError("strategy 'expert_choice' does not accept 'selection_bias'")

    def convert(function, given, k_per_token, prepared=None):
        arrays = []
        for name in function.arg_names:
            if prepared is not None and name in prepared:
                arrays.append(prepared[name])
            elif name == "k_per_token":
                arrays.append(_int32(name, k_per_token, (None,)))
            else:
                arrays.append(_float32(name, given[name], shapes[name]))
        per_token = [(n, a) for n, a in zip(function.arg_names, arrays) if n in ("x", "k_per_token")]
        _same_tokens(per_token)
        return arrays

    def layer(x, w_router, w_up, w_down, w_gate=None, b_router=None, b_up=None, b_down=None,
              k_per_token=None, selection_bias=None, wc=None, v=None):
        check_arguments(w_gate, b_up, b_down, wc, v, k_per_token, selection_bias)
        given = dict(x=x, w_router=w_router, w_up=w_up, w_down=w_down, w_gate=w_gate,
                     b_router=b_router, b_up=b_up, b_down=b_down,
                     selection_bias=selection_bias, wc=wc, v=v)
        present = frozenset(n for n in optional if given[n] is not None)
        function = variants.get((present, False, "f32"))
        return function(*convert(function, given, k_per_token))

    def bind(w_router, w_up, w_down, w_gate=None, b_router=None, b_up=None, b_down=None,
             selection_bias=None, wc=None, v=None, weight_dtype: str = "f32"):
        """Binds the weights once and returns ``f(x, k_per_token=None) -> y``.

        The expert weights are packed here, once, into the 32-column panels
        the CPU kernels stream (the ``packed`` layout), and stored as
        ``weight_dtype``: "f32"; "bf16" (half the bytes to read, computed
        in f32; rounded to nearest even here); "q8_0" or "q4_0" (GGUF's
        block formats, quantized here as ggml's reference does, in tiles:
        about 1/3.8 and 1/7 of the f32 bytes; hidden and ffn must be
        multiples of 32; computed in f32 on the dequantised values). Shapes
        and dtypes are checked here too, so a call only converts ``x``."""
        if weight_dtype not in ("f32", "bf16") + quant.FORMATS:
            raise ValueError(f"'weight_dtype' must be one of 'f32', 'bf16', "
                             f"{', '.join(repr(f) for f in quant.FORMATS)}, got {weight_dtype!r}")
        if weight_dtype in quant.FORMATS and (H % quant.QK or F % quant.QK):
            raise ValueError(f"weight_dtype={weight_dtype!r} needs hidden and ffn to be multiples "
                             f"of {quant.QK} (its blocks of {quant.QK} run along both contraction "
                             f"dimensions), got hidden={H}, ffn={F}")
        if weight_dtype in quant.FORMATS and target != "cpu":
            raise ValueError(f"weight_dtype={weight_dtype!r} is supported by target 'cpu' only, "
                             f"got target {str(target)!r}")
        check_arguments(w_gate, b_up, b_down, wc, v,
                        np.zeros(0, np.int32) if cfg.uses_k_per_token else None, selection_bias)
        given = dict(w_router=w_router, w_up=w_up, w_down=w_down, w_gate=w_gate,
                     b_router=b_router, b_up=b_up, b_down=b_down,
                     selection_bias=selection_bias, wc=wc, v=v)
        present = frozenset(n for n in optional if given[n] is not None)
        function = variants.get((present, True, weight_dtype))
        prepared = {}
        for name in function.arg_names:
            if name in ("x", "k_per_token"):
                continue
            array = _float32(name, given[name], shapes[name])
            if name in ("w_up", "w_gate", "w_down"):
                if weight_dtype in quant.FORMATS:
                    array = quant.quantize_weights(array, weight_dtype)
                else:
                    array = pack_panels(array)
                if weight_dtype == "bf16":
                    array = _float_to_bf16_bits(array)
            else:
                # Bound means owned: a float32 caller array would otherwise
                # be kept by reference, and changing it would change later
                # results.
                array = array.copy()
            array.setflags(write=False)
            prepared[name] = array

        def bound(x, k_per_token=None):
            if cfg.uses_k_per_token and k_per_token is None:
                raise ValueError("argument 'k_per_token' is required by strategy 'dynamic_k'")
            if not cfg.uses_k_per_token and k_per_token is not None:
                raise ValueError(f"argument 'k_per_token' is only accepted with strategy "
                                 f"'dynamic_k', got {cfg.strategy!r}")
            return function(*convert(function, {"x": x}, k_per_token, prepared))

        bound.function = function
        bound.weights = prepared
        return bound

    def module_text(optional=(), packed=False, weight_dtype="f32"):
        """(MLIR text, entry name, argument names) of the variant that takes
        the optional arguments ``optional`` (for ahead-of-time builds)."""
        return build((frozenset(optional), packed, weight_dtype))

    layer.bind = bind
    layer.config = cfg
    layer.module_text = module_text
    return layer
