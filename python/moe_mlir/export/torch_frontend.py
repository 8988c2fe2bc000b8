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
from .graph import CallSpec, LayerSpec, ModelSpec, NormSpec
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
    # transformers v5 keeps top_k and norm_topk_prob on the router (``gate``).
    for holder in (module, getattr(module, "config", None), getattr(module, "gate", None)):
        if holder is None:
            continue
        for name in names:
            if hasattr(holder, name):
                return getattr(holder, name)
    if default is _MISSING:
        raise ExportError(f"{path}: no '{names[0]}' attribute or config field "
                          f"(looked for {', '.join(names)})")
    return default


def _is_linear(layer) -> bool:
    """torch.nn.Linear, or a module of published code that is one by
    structure: a 2-D ``weight`` [out, in], an optional 1-D ``bias``, and no
    quantisation ``scale`` (DeepSeek-V3's own ``Linear`` class in bf16 or
    f32; its fp8 form has a scale and is not supported)."""
    torch = _torch()
    if isinstance(layer, torch.nn.Linear):
        return True
    weight = getattr(layer, "weight", None)
    bias = getattr(layer, "bias", None)
    return (isinstance(layer, torch.nn.Module) and isinstance(weight, torch.Tensor)
            and weight.dim() == 2 and weight.is_floating_point()
            and weight.element_size() > 1
            and (bias is None or (isinstance(bias, torch.Tensor) and bias.dim() == 1))
            and getattr(layer, "scale", None) is None
            and not list(layer.children()))


def _linear(module, name: str, path: str, allow_bias: bool = False):
    """The weight of Linear ``module.<name>`` transposed to [in, out] (and its bias)."""
    layer = getattr(module, name, None)
    where = f"{path}.{name}"
    if layer is None:
        raise ExportError(f"{where}: missing")
    if not _is_linear(layer):
        weight = getattr(layer, "weight", None)
        what = type(layer).__name__
        if weight is not None and getattr(weight, "element_size", lambda: 4)() == 1:
            what += " with 8-bit (fp8) weights, which are not supported"
        raise ExportError(f"{where}: expected a torch.nn.Linear (or a Linear-like module with "
                          f"a 2-D weight), got {what}")
    bias = getattr(layer, "bias", None)
    if bias is not None and not allow_bias:
        raise ExportError(f"{where}: has a bias, which this convention does not have")
    weight = _array(layer.weight).T.copy()
    bias = _array(bias) if bias is not None else None
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
    if hasattr(expert, "up_proj") and hasattr(expert, "down_proj") and \
            not hasattr(expert, "gate_proj"):
        # One Linear H -> 2F with the gate half first (MoE++'s MLPMoE:
        # down(silu(h[:, :F]) * h[:, F:]), h = up_proj(x)); the activation is
        # a closure there, so verification checks it is SiLU.
        up = _linear(expert, "up_proj", path)
        down = _linear(expert, "down_proj", path)
        F = down.shape[0]
        if up.shape[1] == 2 * F:
            return (np.ascontiguousarray(up[:, :F]), np.ascontiguousarray(up[:, F:]), down)
    raise ExportError(f"{path}: not a SwiGLU expert: expected w1/w3/w2 or "
                      f"gate_proj/up_proj/down_proj Linear layers (or a fused up_proj "
                      f"[2F, H] with down_proj), found "
                      f"{', '.join(n for n, _ in expert.named_children()) or 'no submodules'}")


def _fused_experts(experts, path: str):
    """transformers v5's fused experts (``MixtralExperts``,
    ``Qwen2MoeExperts``, ``Qwen3MoeExperts``, ``OlmoeExperts``):
    ``gate_up_proj [E, 2F, H]`` (the gate half first) and ``down_proj
    [E, H, F]``, applied as ``F.linear`` per expert with ``act_fn``."""
    torch = _torch()
    gate_up = getattr(experts, "gate_up_proj", None)
    down = getattr(experts, "down_proj", None)
    if not (isinstance(gate_up, torch.Tensor) and isinstance(down, torch.Tensor)):
        return None
    if gate_up.dim() != 3 or down.dim() != 3 or gate_up.shape[1] % 2:
        raise ExportError(f"{path}: fused experts expect gate_up_proj [E, 2F, H] and "
                          f"down_proj [E, H, F], got {tuple(gate_up.shape)} and "
                          f"{tuple(down.shape)}")
    E, two_f, H = gate_up.shape
    F = two_f // 2
    if tuple(down.shape) != (E, H, F):
        raise ExportError(f"{path}.down_proj: expected [E, H, F] = {[E, H, F]}, got "
                          f"{list(down.shape)}")
    if getattr(experts, "gate_up_proj_bias", None) is not None or \
            getattr(experts, "down_proj_bias", None) is not None:
        raise ExportError(f"{path}: fused experts with biases (gpt-oss's layout) are not "
                          f"supported")
    activation = getattr(experts, "act_fn", None)
    if not _is_silu(activation):
        raise ExportError(f"{path}.act_fn: activation {activation!r} is not supported "
                          f"(SwiGLU experts with SiLU are)")
    w = _array(gate_up)                                   # [E, 2F, H]
    w_gate = np.ascontiguousarray(w[:, :F, :].transpose(0, 2, 1))
    w_up = np.ascontiguousarray(w[:, F:, :].transpose(0, 2, 1))
    w_down = np.ascontiguousarray(_array(down).transpose(0, 2, 1))
    return w_gate, w_up, w_down


def _experts(module, path: str):
    experts = getattr(module, "experts", None)
    torch = _torch()
    if isinstance(experts, torch.nn.Module) and not isinstance(experts, torch.nn.ModuleList):
        fused = _fused_experts(experts, f"{path}.experts")
        if fused is not None:
            return fused
    if not isinstance(experts, (torch.nn.ModuleList, list, tuple)) or len(experts) == 0:
        raise ExportError(f"{path}.experts: expected a non-empty ModuleList of experts or "
                          f"fused experts (gate_up_proj, down_proj)")
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


def _deepseek_v3_official(module, path):
    """DeepSeek-V3's official inference code (deepseek-ai/DeepSeek-V3 @
    9b4e978, ``inference/model.py``, ``MoE``/``Gate``): the routing lives on
    ``gate`` (``topk``, ``n_groups``, ``topk_groups``, ``score_func``,
    ``route_scale``, ``weight`` [E, dim], ``bias`` [E] or None). Scores are
    softmax or sigmoid; the bias is added for selection only; groups are
    scored by the sum of their two best biased scores with a bias and by
    their best score without one, dropped groups masked with -inf; the
    weights are the unbiased scores, renormalised for sigmoid only, times
    ``route_scale``. ``shared_experts`` is added with weight 1."""
    gate = getattr(module, "gate", None)
    if gate is None or not all(hasattr(gate, n) for n in ("topk", "n_groups", "topk_groups",
                                                          "score_func", "route_scale")):
        return None
    g = f"{path}.gate"
    weight = getattr(gate, "weight", None)
    if weight is None or weight.dim() != 2:
        raise ExportError(f"{g}.weight: expected the router weight [E, dim]")
    if weight.element_size() == 1:
        raise ExportError(f"{g}.weight: fp8 weights are not supported (export the bf16 "
                          f"checkpoint)")
    score_func = gate.score_func
    if score_func not in ("softmax", "sigmoid"):
        raise ExportError(f"{g}: score_func {score_func!r} is not supported (softmax and "
                          f"sigmoid are)")
    bias = getattr(gate, "bias", None)
    n_groups, top_groups = int(gate.n_groups), int(gate.topk_groups)
    groups = None
    if n_groups > 1:
        groups = (n_groups, top_groups, "top2_sum" if bias is not None else "max")
    routing = dict(scoring=score_func, strategy="top_k",
                   normalize="selected" if score_func == "sigmoid" else "none",
                   scale=float(gate.route_scale), groups=groups)
    shared = getattr(module, "shared_experts", None)
    spec = _spec(path, "deepseek_v3_official", _array(weight).T.copy(),
                 _experts(module, path), int(gate.topk), routing,
                 selection_bias=_array(bias) if bias is not None else None,
                 shared=_dense(shared, f"{path}.shared_experts") if shared is not None else None)
    spec.interface = dict(input_rank=3, outputs=(None,))
    return spec


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


def _router_network(router, path: str):
    """The layers of a router that is a Linear or a Sequential of Linear
    and Tanh layers (MoE++'s ``moe_2layer_gate``), for ``MoESpec.router_net``."""
    torch = _torch()
    layers = list(router) if isinstance(router, torch.nn.Sequential) else [router]
    net = []
    for i, layer in enumerate(layers):
        where = path if len(layers) == 1 else f"{path}.{i}"
        if isinstance(layer, torch.nn.Tanh):
            net.append(("tanh",))
        elif _is_linear(layer):
            weight = _array(layer.weight).T.copy()
            bias = _array(layer.bias) if getattr(layer, "bias", None) is not None else None
            net.append(("linear", weight, bias))
        else:
            raise ExportError(f"{where}: router layer {type(layer).__name__} is not supported "
                              f"(Linear and Tanh layers are)")
    return net


def _expert_kind(expert, path: str, hidden: int):
    """MoE++'s expert kinds by structure and behaviour: 'compute' (a SwiGLU
    FFN), 'const' (``wg`` Linear H->2 and a ``constant`` [H]), and, for
    experts without parameters, 'null' or 'copy' by what they return for a
    probe input (zeros, or the input itself)."""
    torch = _torch()
    if hasattr(expert, "constant") and hasattr(expert, "wg"):
        return "const"
    if not list(expert.parameters()):
        probe = torch.linspace(-1.0, 1.0, 3 * hidden).reshape(3, hidden)
        with torch.no_grad():
            out = expert(probe.clone())
        if isinstance(out, torch.Tensor) and out.shape == probe.shape:
            if bool((out == 0).all()):
                return "null"
            if bool((out == probe).all()):
                return "copy"
        raise ExportError(f"{path}: an expert without parameters that returns neither zeros "
                          f"nor its input ({type(expert).__name__})")
    return "compute"


def _module_global(module, name: str):
    """A global of the Python module that defines the class of ``module``
    (MoE++ keeps its top-k in ``MOE_TOP_K`` there)."""
    import sys
    defining = sys.modules.get(type(module).__module__)
    return getattr(defining, name, None)


def _moe_plus_plus_published(module, path):
    """MoE++ as published (SkyworkAI/MoE-plus-plus @ 7f43967,
    ``moe_plus_plus_layer.py``): ``MOE.moe`` (``MOELayer``) holds ``gate``
    (``Router``: ``wg`` Linear or Linear-Tanh-Linear in f32, ``gate_map``
    for the gating residual) and ``experts.experts`` (FFN, constant, copy and
    zero experts in one list). The top-k is the module-level ``MOE_TOP_K``."""
    layer = getattr(module, "moe", module)
    router = getattr(layer, "gate", None)
    experts = getattr(getattr(layer, "experts", None), "experts", None)
    if router is None or not hasattr(router, "gate_map") or experts is None:
        return None
    lpath = f"{path}.moe" if layer is not module else path
    g = f"{lpath}.gate"
    if getattr(router, "moe_use_logits_norm", False):
        raise ExportError(f"{g}: moe_use_logits_norm (logits divided by their standard "
                          f"deviation) is not supported yet")
    mixtral = bool(getattr(router, "moe_use_mixtral_gating", False))
    no_mul = bool(getattr(layer, "moe_feature_no_mul_topk", False))
    k = _module_global(module, "MOE_TOP_K")
    if k is None:
        raise ExportError(f"{path}: MoE++ reads its top-k from the module-level MOE_TOP_K of "
                          f"{type(module).__module__}, which is missing: pass "
                          f"export(..., routing={{'k': K}})")
    net = _router_network(router.wg, f"{g}.wg")
    hidden = net[0][1].shape[0]
    kinds = [_expert_kind(e, f"{lpath}.experts.experts.{i}", hidden)
             for i, e in enumerate(experts)]
    order = [i for kind in ("compute", "null", "copy", "const")
             for i, k_ in enumerate(kinds) if k_ == kind]
    compute = [i for i in order if kinds[i] == "compute"]
    consts = [i for i in order if kinds[i] == "const"]
    if not compute:
        raise ExportError(f"{lpath}.experts.experts: no FFN expert")
    parts = [_swiglu(experts[i], f"{lpath}.experts.experts.{i}") for i in compute]
    if len({tuple(w.shape for w in p) for p in parts}) != 1:
        raise ExportError(f"{lpath}.experts.experts: FFN experts have different shapes")
    stacked = tuple(np.stack([p[j] for p in parts]) for j in range(3))
    const_proj = const_values = None
    if consts:
        const_proj = np.stack([_linear(experts[i], "wg", f"{lpath}.experts.experts.{i}")
                               for i in consts])
        const_values = np.stack([_array(experts[i].constant).reshape(-1) for i in consts])
    # Default gating: softmax over all slots, top-k, the zero experts'
    # weights set to 0, renormalised over the k (copy and constant count):
    # normalize = non_null. Mixtral gating: top-k of the logits, softmax over
    # the k = softmax scores renormalised over the selected slots.
    routing = dict(num_null=kinds.count("null"), num_copy=kinds.count("copy"),
                   num_const=len(consts), strategy="top_k",
                   normalize="selected" if mixtral else "non_null")
    spec = _spec(lpath, "moe_plus_plus", net[-1][1], stacked, int(k), routing,
                 const_proj=const_proj, const_values=const_values)
    spec.router_net = net
    spec.w_router = None
    spec.gate_residual = True
    spec.residual_map = _linear(router, "gate_map", g)
    spec.return_logits = True
    spec.slot_order = order if order != list(range(len(order))) else None
    spec.input_scale = 1.0 if (mixtral or no_mul) else float(k)
    spec.interface = dict(input_rank=3, extra_inputs=("gate_residual",), outputs=(0, 1))
    return spec


def _adamoe_published(module, path):
    """AdaMoE as published (CengZihao/AdaMoE @ 180f122,
    ``adaptive_moe_utils.py``, ``CustomMixtralSparseMoeBlock``): real experts
    routed by ``gate`` (H -> E), null experts by ``gate2`` (H -> N), logits
    concatenated; softmax over all, top-k, the weights of slots with ids
    ``<= 7`` renormalised over themselves (the literal 7: E must be 8)."""
    if not (hasattr(module, "gate2") and hasattr(module, "num_null_experts")):
        return None
    w_real = _linear(module, "gate", path)
    w_null = _linear(module, "gate2", path)
    experts = _experts(module, path)
    E = experts[0].shape[0]
    if E != 8:
        raise ExportError(f"{path}: AdaMoE's published routing counts the slots with ids <= 7 "
                          f"as real experts (a literal in adaptive_moe_utils.py), which is the "
                          f"contract's non_null only with 8 experts; this block has {E}")
    n_null = int(module.num_null_experts)
    if w_null.shape[1] != n_null:
        raise ExportError(f"{path}.gate2: {w_null.shape[1]} outputs, but num_null_experts = "
                          f"{n_null}")
    k = int(_config(module, "top_k", "num_experts_per_tok", path=path))
    spec = _spec(path, "adamoe", np.concatenate([w_real, w_null], axis=1), experts, k,
                 dict(num_null=n_null, strategy="top_k", normalize="non_null"))
    spec.return_logits = True
    spec.interface = dict(input_rank=3, outputs=(0, 1))
    return spec


def _switch_mlp(module, path):
    """Top-p routing as published (ZhenweiAn/Dynamic_MoE @ f56bc20,
    ``modeling/modeling_moe.py``, ``SwitchMLP``): ``router`` (H -> E),
    softmax, experts kept while the running sum before them is <= p
    (``top_p_threshold``; the first always), raw probabilities as weights, no
    cap on the count (K = E)."""
    if not (hasattr(module, "router") and hasattr(module, "top_p_threshold")):
        return None
    w_router = _linear(module, "router", path)
    experts = _experts(module, path)
    E = experts[0].shape[0]
    p = float(module.top_p_threshold)
    # The published rule keeps o_1 always and stops after the first count
    # whose running sum is > p; the contract stops at the first >= p. They
    # differ only when a running sum equals p exactly, which the contract's
    # conformance rule counts as ambiguous (docs/Export.md).
    if p <= 0.0:
        routing = dict(strategy="top_k", normalize="none")
        k = 1
    else:
        routing = dict(strategy="top_p", p=min(p, 1.0), normalize="none")
        k = E
    spec = _spec(path, "top_p", w_router, experts, k, routing)
    spec.interface = dict(input_rank=3, outputs=(None,))
    return spec


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
    # Mixtral always renormalises; Qwen3-MoE and OLMoE say so in norm_topk_prob.
    normalize = "selected" if _config(module, "norm_topk_prob", default=True) else "none"
    return _spec(path, "mixtral", _linear(module, "gate", path), _experts(module, path), k,
                 dict(strategy="top_k", normalize=normalize))


_RECOGNIZERS = (_deepseek_v3_official, _deepseek_v3, _qwen2_moe, _moe_plus_plus_published, _moe_plus_plus,
                _adamoe_published, _adamoe, _switch_mlp, _top_p, _dynamic_k, _mixtral)


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
    if getattr(module, "use_switch", None) is False and hasattr(module, "mlp"):
        return _dense(module.mlp, f"{path}.mlp")     # Dynamic_MoE's dense layers
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


def _probe_results(module, spec: MoESpec, path: str):
    """What a block whose recogniser does not fix its interface returns, read
    from one call on two tokens: transformers' 4.x blocks return
    ``(hidden_states, router_logits)``, its 5.x blocks the hidden states
    alone. A second element of the router's shape ([T, S] logits) becomes a
    second result of the export; verification then checks that it is them."""
    torch = _torch()
    rank = spec.interface.get("input_rank", 3)
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()),
                 torch.float32)
    shape = (1, 2, spec.hidden) if rank == 3 else (2, spec.hidden)
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(shape, generator=generator).to(dtype)
    was_training = getattr(module, "training", False)
    try:
        module.eval()
        with torch.no_grad():
            out = module(probe)
    except Exception as error:
        raise ExportError(f"{path}: calling {type(module).__name__} on a [{', '.join(map(str, shape))}] "
                          f"input raised {type(error).__name__}: {error}") from error
    finally:
        if was_training:
            module.train()
    outputs = (None,)
    if isinstance(out, (tuple, list)):
        outputs = (0,)
        second = out[1] if len(out) > 1 else None
        if isinstance(second, torch.Tensor) and second.numel() == 2 * spec.routing.S \
                and second.shape[-1] == spec.routing.S:
            outputs = (0, 1)
            spec.return_logits = True
    spec.interface = dict(spec.interface, outputs=outputs)


def _probe_input_rank(module, hidden: int, path: str) -> int:
    """How a model or decoder layer takes its hidden states, read from calls
    on two tokens: ``[B, S, H]`` (transformers' convention: rank 3) when a
    ``[1, 2, H]`` input runs, else ``[T, H]`` (one sequence of tokens: rank
    2) when that runs. Verification then calls it the same way."""
    torch = _torch()
    dtype = next((p.dtype for p in module.parameters() if p.is_floating_point()),
                 torch.float32)
    generator = torch.Generator().manual_seed(0)
    errors = []
    was_training = getattr(module, "training", False)
    try:
        module.eval()
        for rank, shape in ((3, (1, 2, hidden)), (2, (2, hidden))):
            probe = torch.randn(shape, generator=generator).to(dtype)
            try:
                with torch.no_grad():
                    module(probe)
                return rank
            except Exception as error:
                errors.append(f"[{', '.join(map(str, shape))}]: "
                              f"{type(error).__name__}: {error}")
    finally:
        if was_training:
            module.train()
    raise ExportError(f"{path}: {type(module).__name__} runs on neither a [B, S, H] nor a "
                      f"[T, H] input ({'; '.join(errors)})")


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
        return ModelSpec(hidden, layers, path, _norm(module.norm, f"{path}.norm"),
                         call=CallSpec(input_rank=_probe_input_rank(module, hidden, path)))
    if hasattr(module, "self_attn"):
        layer = _decoder_layer(module, path)
        hidden = layer.attention.w_q.shape[0]
        return ModelSpec(hidden, [layer], path,
                         call=CallSpec(input_rank=_probe_input_rank(module, hidden, path)))
    spec = _ffn(module, path)
    hidden = spec.hidden if isinstance(spec, MoESpec) else spec.w_up.shape[0]
    if isinstance(spec, MoESpec) and "outputs" not in spec.interface:
        _probe_results(module, spec, path)
    call = CallSpec(**spec.interface) if isinstance(spec, MoESpec) else CallSpec()
    return ModelSpec(hidden, [LayerSpec(path=path, ffn=spec, residual=False, ffn_source=module)],
                     path, call=call)
