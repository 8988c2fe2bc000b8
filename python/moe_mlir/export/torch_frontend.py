"""Recognising PyTorch modules written in the conventions of public MoE code.

torch 1.13's ``torch.fx`` cannot trace the data-dependent expert loops of MoE
blocks, so blocks are recognised by their structure: class attributes,
submodule names and shapes, configuration fields. Each recogniser extracts a
``MoESpec`` (or raises ``ExportError`` naming the module and what it could
not map); ``export`` then checks numerically that the exported graph
reproduces the module (see ``verify``).

Conventions understood (attribute names as in the public model code):

* Mixtral: ``gate`` (Linear H->E), ``experts`` with ``w1``/``w3``/``w2``
  (SwiGLU), ``top_k``; softmax, top-k, renormalised over the selected experts.
* Qwen-MoE: experts with ``gate_proj``/``up_proj``/``down_proj``,
  ``norm_topk_prob``, a ``shared_expert`` with a sigmoid ``shared_expert_gate``.
* DeepSeek-V3: ``gate`` holding ``weight`` and ``e_score_correction_bias``;
  sigmoid scoring, grouped top-k (``n_group``, ``topk_group``),
  ``routed_scaling_factor``, ``norm_topk_prob``, ``shared_experts``.
* AdaMoE: ``num_null_experts`` null experts in the router, renormalised over
  the real experts.
* MoE++: ``num_zero_experts``, ``num_copy_experts``, ``constant_experts``
  (each with ``wg`` Linear H->2 and ``constant`` [H]).
* Top-p routing: ``top_p`` and ``max_experts``.
* DA-MoE style per-token k: ``k_predictor`` (Linear H->1) and ``max_k``.
* Decoder blocks: ``input_layernorm``/``post_attention_layernorm`` (RMSNorm),
  ``self_attn`` (``q_proj``/``k_proj``/``v_proj``/``o_proj``, rotary),
  ``block_sparse_moe`` or ``mlp``; models with ``layers`` and ``norm``.
"""

from typing import Optional

import numpy as np

from ..routing import RoutingConfig
from .graph import LayerSpec, ModelSpec, NormSpec
from .layers import AttentionSpec, DenseMLPSpec, MoESpec
from .model import ExportError

__all__ = ["extract", "recognize_moe"]

_MISSING = object()


def _torch():
    try:
        import torch
    except ImportError as error:  # pragma: no cover
        raise ExportError("exporting PyTorch modules needs torch (Debian: python3-torch)") \
            from error
    return torch


def _array(tensor) -> np.ndarray:
    return tensor.detach().to(_torch().float32).cpu().numpy().copy()


def _config(module, *names, default=_MISSING, path=""):
    """A configuration value: an attribute of the module or of its ``config``."""
    for holder in (module, getattr(module, "config", None)):
        if holder is None:
            continue
        for name in names:
            if hasattr(holder, name):
                return getattr(holder, name)
    if default is _MISSING:
        raise ExportError(f"{path}: no '{names[0]}' attribute or config field "
                          f"(looked for {', '.join(names)})")
    return default


def _linear(module, name: str, path: str, allow_bias: bool = False):
    """The weight of Linear ``module.<name>`` transposed to [in, out] (and its bias)."""
    torch = _torch()
    layer = getattr(module, name, None)
    where = f"{path}.{name}"
    if layer is None:
        raise ExportError(f"{where}: missing")
    if not isinstance(layer, torch.nn.Linear):
        raise ExportError(f"{where}: expected a torch.nn.Linear, got {type(layer).__name__}")
    if layer.bias is not None and not allow_bias:
        raise ExportError(f"{where}: has a bias, which this convention does not have")
    weight = _array(layer.weight).T.copy()
    bias = _array(layer.bias) if layer.bias is not None else None
    return (weight, bias) if allow_bias else weight


def _is_silu(activation) -> bool:
    torch = _torch()
    return (activation is None or isinstance(activation, torch.nn.SiLU)
            or activation is torch.nn.functional.silu)


# The expert layouts: (gate, up, down) Linear names.
_EXPERT_LAYOUTS = (("w1", "w3", "w2"), ("gate_proj", "up_proj", "down_proj"))


def _swiglu(expert, path: str):
    """(w_gate [H,F], w_up [H,F], w_down [F,H]) of a SwiGLU expert."""
    for gate, up, down in _EXPERT_LAYOUTS:
        if all(hasattr(expert, n) for n in (gate, up, down)):
            activation = getattr(expert, "act_fn", None)
            if not _is_silu(activation):
                raise ExportError(f"{path}.act_fn: activation {activation!r} is not supported "
                                  f"(SwiGLU experts with SiLU are)")
            return (_linear(expert, gate, path), _linear(expert, up, path),
                    _linear(expert, down, path))
    raise ExportError(f"{path}: not a SwiGLU expert: expected w1/w3/w2 or "
                      f"gate_proj/up_proj/down_proj Linear layers, found "
                      f"{', '.join(n for n, _ in expert.named_children()) or 'no submodules'}")


def _experts(module, path: str):
    experts = getattr(module, "experts", None)
    torch = _torch()
    if not isinstance(experts, (torch.nn.ModuleList, list, tuple)) or len(experts) == 0:
        raise ExportError(f"{path}.experts: expected a non-empty ModuleList of experts")
    parts = [_swiglu(e, f"{path}.experts.{i}") for i, e in enumerate(experts)]
    shapes = {tuple(p.shape for p in part) for part in parts}
    if len(shapes) != 1:
        raise ExportError(f"{path}.experts: experts have different shapes {sorted(shapes)}")
    w_gate = np.stack([p[0] for p in parts])
    w_up = np.stack([p[1] for p in parts])
    w_down = np.stack([p[2] for p in parts])
    return w_gate, w_up, w_down


def _dense(module, path: str) -> DenseMLPSpec:
    w_gate, w_up, w_down = _swiglu(module, path)
    return DenseMLPSpec(w_gate, w_up, w_down)


def _router_width(w_router, expected, path):
    if w_router.shape[1] != expected:
        raise ExportError(f"{path}.gate: the router has {w_router.shape[1]} outputs, expected "
                          f"{expected} (all experts, compute and zero-computation)")


def _spec(path, convention, w_router, experts, k, routing_kwargs, **extra) -> MoESpec:
    w_gate, w_up, w_down = experts
    E, H, F = w_up.shape
    try:
        routing = RoutingConfig(num_experts=E, k=k, **routing_kwargs)
    except ValueError as error:
        raise ExportError(f"{path}: unsupported routing configuration: {error}") from None
    _router_width(w_router, routing.S, path)
    return MoESpec(hidden=H, ffn=F, routing=routing, w_router=w_router, w_up=w_up,
                   w_down=w_down, w_gate=w_gate, convention=convention, **extra)


# ---------------------------------------------------------------------------
# Recognisers, most specific first
# ---------------------------------------------------------------------------
def _deepseek_v3(module, path):
    gate = getattr(module, "gate", None)
    if gate is None or not hasattr(gate, "e_score_correction_bias"):
        return None
    g = f"{path}.gate"
    weight = getattr(gate, "weight", None)
    if weight is None or weight.dim() != 2:
        raise ExportError(f"{g}.weight: expected the router weight [E, H]")
    w_router = _array(weight).T.copy()
    bias = _array(gate.e_score_correction_bias)
    n_group = int(_config(gate, "n_group", path=g))
    topk_group = int(_config(gate, "topk_group", path=g))
    k = int(_config(gate, "top_k", "num_experts_per_tok", path=g))
    scoring = _config(gate, "scoring_func", default="sigmoid")
    if scoring != "sigmoid":
        raise ExportError(f"{g}: scoring_func {scoring!r} is not supported here (sigmoid is)")
    routing = dict(scoring="sigmoid", strategy="top_k",
                   normalize="selected" if _config(gate, "norm_topk_prob", path=g) else "none",
                   scale=float(_config(gate, "routed_scaling_factor", default=1.0)),
                   groups=(n_group, topk_group) if n_group > 1 else None)
    shared = getattr(module, "shared_experts", None)
    return _spec(path, "deepseek_v3", w_router, _experts(module, path), k, routing,
                 selection_bias=bias,
                 shared=_dense(shared, f"{path}.shared_experts") if shared is not None else None)


def _qwen2_moe(module, path):
    if not hasattr(module, "shared_expert_gate") and not hasattr(module, "shared_expert"):
        return None
    k = int(_config(module, "top_k", "num_experts_per_tok", path=path))
    normalize = "selected" if _config(module, "norm_topk_prob", path=path) else "none"
    shared = _dense(module.shared_expert, f"{path}.shared_expert")
    shared_gate = _linear(module, "shared_expert_gate", path)
    return _spec(path, "qwen2_moe", _linear(module, "gate", path), _experts(module, path), k,
                 dict(strategy="top_k", normalize=normalize), shared=shared,
                 shared_gate=shared_gate)


def _moe_plus_plus(module, path):
    if not any(hasattr(module, n) for n in ("constant_experts", "num_zero_experts",
                                            "num_copy_experts")):
        return None
    k = int(_config(module, "top_k", path=path))
    n_zero = int(_config(module, "num_zero_experts", default=0))
    n_copy = int(_config(module, "num_copy_experts", default=0))
    constants = list(getattr(module, "constant_experts", []) or [])
    const_proj = const_values = None
    if constants:
        const_proj = np.stack([_linear(c, "wg", f"{path}.constant_experts.{i}")
                               for i, c in enumerate(constants)])          # [N, H, 2]
        values = []
        for i, c in enumerate(constants):
            vector = getattr(c, "constant", None)
            if vector is None:
                raise ExportError(f"{path}.constant_experts.{i}: no 'constant' vector")
            values.append(_array(vector).reshape(-1))
        const_values = np.stack(values)
    normalize = "selected" if _config(module, "norm_topk_prob", default=False) else "none"
    return _spec(path, "moe_plus_plus", _linear(module, "gate", path), _experts(module, path), k,
                 dict(num_null=n_zero, num_copy=n_copy, num_const=len(constants),
                      strategy="top_k", normalize=normalize),
                 const_proj=const_proj, const_values=const_values)


def _adamoe(module, path):
    if not hasattr(module, "num_null_experts"):
        return None
    k = int(_config(module, "top_k", path=path))
    return _spec(path, "adamoe", _linear(module, "gate", path), _experts(module, path), k,
                 dict(num_null=int(module.num_null_experts), strategy="top_k",
                      normalize="non_null"))


def _top_p(module, path):
    if not hasattr(module, "top_p"):
        return None
    k = int(_config(module, "max_experts", path=path))
    normalize = "selected" if _config(module, "normalize", default=False) else "none"
    return _spec(path, "top_p", _linear(module, "gate", path), _experts(module, path), k,
                 dict(strategy="top_p", p=float(module.top_p), normalize=normalize))


def _dynamic_k(module, path):
    if not hasattr(module, "k_predictor"):
        return None
    k = int(_config(module, "max_k", path=path))
    weight, bias = _linear(module, "k_predictor", path, allow_bias=True)
    if weight.shape[1] != 1:
        raise ExportError(f"{path}.k_predictor: expected a Linear with 1 output, got "
                          f"{weight.shape[1]}")
    if bias is None:
        bias = np.zeros(1, np.float32)
    return _spec(path, "dynamic_k", _linear(module, "gate", path), _experts(module, path), k,
                 dict(strategy="dynamic_k", normalize="selected"), k_predictor=(weight, bias))


def _mixtral(module, path):
    if not (hasattr(module, "gate") and hasattr(module, "experts")):
        return None
    k = int(_config(module, "top_k", "num_experts_per_tok", path=path))
    return _spec(path, "mixtral", _linear(module, "gate", path), _experts(module, path), k,
                 dict(strategy="top_k", normalize="selected"))


_RECOGNIZERS = (_deepseek_v3, _qwen2_moe, _moe_plus_plus, _adamoe, _top_p, _dynamic_k, _mixtral)


def recognize_moe(module, path: str) -> Optional[MoESpec]:
    """The MoESpec of an MoE block, or None if the module is not one."""
    for recognizer in _RECOGNIZERS:
        spec = recognizer(module, path)
        if spec is not None:
            return spec
    return None


def _norm(module, path) -> NormSpec:
    weight = getattr(module, "weight", None)
    if weight is None:
        raise ExportError(f"{path}: expected an RMSNorm with a 'weight'")
    eps = _config(module, "variance_epsilon", "eps", path=path)
    return NormSpec(_array(weight), float(eps))


def _attention(module, path) -> AttentionSpec:
    heads = int(_config(module, "num_heads", "num_attention_heads", path=path))
    kv_heads = int(_config(module, "num_key_value_heads", "num_kv_heads", default=heads))
    w_q, b_q = _linear(module, "q_proj", path, allow_bias=True)
    w_k, b_k = _linear(module, "k_proj", path, allow_bias=True)
    w_v, b_v = _linear(module, "v_proj", path, allow_bias=True)
    hidden = w_q.shape[0]
    head_dim = int(_config(module, "head_dim", default=w_q.shape[1] // heads))
    if head_dim % 2 or heads % kv_heads:
        raise ExportError(f"{path}: unsupported head layout (heads {heads}, kv heads "
                          f"{kv_heads}, head_dim {head_dim})")
    theta = float(_config(module, "rope_theta", default=10000.0))
    spec = AttentionSpec(heads, kv_heads, head_dim, theta, w_q, w_k, w_v,
                         _linear(module, "o_proj", path), b_q, b_k, b_v)
    expected = {"q_proj": (hidden, heads * head_dim), "k_proj": (hidden, kv_heads * head_dim),
                "v_proj": (hidden, kv_heads * head_dim), "o_proj": (heads * head_dim, hidden)}
    for name, array in zip(expected, (spec.w_q, spec.w_k, spec.w_v, spec.w_o)):
        if array.shape != expected[name]:
            raise ExportError(f"{path}.{name}: weight shape {array.shape[::-1]} does not fit "
                              f"{heads} heads of {head_dim} ({kv_heads} kv heads)")
    return spec


def _ffn(module, path):
    spec = recognize_moe(module, path)
    if spec is not None:
        return spec
    if all(hasattr(module, n) for n in ("gate_proj", "up_proj", "down_proj")):
        return _dense(module, path)
    raise ExportError(f"{path}: not understood as a feed-forward block: it is neither an MoE "
                      f"block of a known convention (Mixtral, Qwen-MoE, DeepSeek-V3, AdaMoE, "
                      f"MoE++, top-p, dynamic-k) nor a SwiGLU MLP; found "
                      f"{', '.join(n for n, _ in module.named_children()) or 'no submodules'} "
                      f"({type(module).__name__})")


def _decoder_layer(module, path) -> LayerSpec:
    ffn_name = "block_sparse_moe" if hasattr(module, "block_sparse_moe") else "mlp"
    if not hasattr(module, ffn_name):
        raise ExportError(f"{path}: decoder layer without 'block_sparse_moe' or 'mlp'")
    return LayerSpec(path=path, ffn=_ffn(getattr(module, ffn_name), f"{path}.{ffn_name}"),
                     ffn_source=getattr(module, ffn_name), ffn_path=f"{path}.{ffn_name}",
                     input_norm=_norm(module.input_layernorm, f"{path}.input_layernorm"),
                     attention=_attention(module.self_attn, f"{path}.self_attn"),
                     post_norm=_norm(module.post_attention_layernorm,
                                     f"{path}.post_attention_layernorm"),
                     residual=True)


_ROUTING_FIELDS = ("num_experts", "k", "num_null", "num_copy", "num_const", "scoring",
                   "strategy", "p", "tau", "k_min", "capacity_factor", "capacity", "groups",
                   "normalize", "scale")


def _routing_arguments(routing: RoutingConfig) -> dict:
    strategy_params = {"top_p": ("p",), "adaptive": ("tau",), "threshold": ("tau", "k_min"),
                       "expert_choice": ("capacity_factor",)}.get(routing.strategy, ())
    args = dict(num_experts=routing.E, k=routing.k, num_null=routing.num_null,
                num_copy=routing.num_copy, num_const=routing.num_const,
                scoring=routing.scoring, strategy=routing.strategy, capacity=routing.capacity,
                groups=routing.groups, normalize=routing.normalize, scale=routing.scale)
    args.update({name: getattr(routing, name) for name in strategy_params})
    return args


def _override(spec: MoESpec, overrides, path: str) -> MoESpec:
    """The spec with ``export(routing=...)`` applied: a dict of RoutingConfig
    arguments (or a RoutingConfig) replacing what the module gave. The
    expert counts must still match the module's weights."""
    if overrides is None:
        return spec
    if isinstance(overrides, RoutingConfig):
        overrides = _routing_arguments(overrides)
    if not isinstance(overrides, dict):
        raise ExportError(f"{path}: 'routing' must be a dict of routing arguments or a "
                          f"RoutingConfig, got {type(overrides).__name__}")
    unknown = sorted(set(overrides) - set(_ROUTING_FIELDS))
    if unknown:
        raise ExportError(f"{path}: unknown routing argument(s) {', '.join(unknown)} "
                          f"(known: {', '.join(_ROUTING_FIELDS)})")
    args = _routing_arguments(spec.routing)
    if "strategy" in overrides:  # the old strategy's parameters do not carry over
        for name in ("p", "tau", "k_min", "capacity_factor"):
            args.pop(name, None)
    args.update(overrides)
    try:
        routing = RoutingConfig(**args)
    except (TypeError, ValueError) as error:
        raise ExportError(f"{path}: the routing override {overrides!r} is not valid: "
                          f"{error}") from None
    for name in ("E", "num_null", "num_copy", "num_const"):
        if getattr(routing, name) != getattr(spec.routing, name):
            raise ExportError(f"{path}: the routing override changes the expert space "
                              f"({name} {getattr(spec.routing, name)} -> "
                              f"{getattr(routing, name)}), which the module's weights fix")
    spec.routing = routing
    return spec


def extract(module, path: str = "model", routing=None) -> ModelSpec:
    """The ModelSpec of a model (``layers`` + ``norm``), a decoder layer
    (``self_attn`` + norms + FFN) or an MoE block. ``routing`` overrides
    routing arguments of every MoE block (see ``export``)."""
    spec = _extract(module, path)
    for layer in spec.layers:
        if isinstance(layer.ffn, MoESpec):
            layer.ffn = _override(layer.ffn, routing, layer.ffn_path or layer.path)
    return spec


def _extract(module, path: str) -> ModelSpec:
    if hasattr(module, "layers") and hasattr(module, "norm"):
        layers = [_decoder_layer(layer, f"{path}.layers.{i}")
                  for i, layer in enumerate(module.layers)]
        if not layers:
            raise ExportError(f"{path}.layers: the model has no layers")
        hidden = layers[0].attention.w_q.shape[0]
        return ModelSpec(hidden, layers, path, _norm(module.norm, f"{path}.norm"))
    if hasattr(module, "self_attn"):
        layer = _decoder_layer(module, path)
        return ModelSpec(layer.attention.w_q.shape[0], [layer], path)
    spec = _ffn(module, path)
    hidden = spec.hidden if isinstance(spec, MoESpec) else spec.w_up.shape[0]
    return ModelSpec(hidden, [LayerSpec(path=path, ffn=spec, residual=False, ffn_source=module)],
                     path)
