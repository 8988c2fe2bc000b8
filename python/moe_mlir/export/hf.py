"""Hugging Face MoE checkpoint folders -> a model from token ids to logits.

Architectures (``config.json``'s ``architectures``): ``MixtralForCausalLM``,
``Qwen2MoeForCausalLM``, ``Qwen3MoeForCausalLM``, ``OlmoeForCausalLM``,
following transformers' modeling code (``models/<arch>/modeling_<arch>.py``).
The folder alone is read (``hf_checkpoint``): no torch, no transformers.
Fields that change the arithmetic are honoured (listed per architecture in
docs/Export.md); fields that the export cannot express raise
``ExportError`` naming the field, never a different model.

The forward pass is the full-sequence causal one of ``*ForCausalLM`` without
a KV cache and without a padding mask: ids ``[B, S]`` -> logits
``[B, S, vocab]``, every sequence of length S starting at position 0.
"""

import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..routing import RoutingConfig
from .graph import LayerSpec, ModelSpec, NormSpec
from .hf_checkpoint import CONFIG, HFCheckpoint, HFCheckpointError
from .layers import AttentionSpec, DenseMLPSpec, MoESpec
from .model import ExportError

__all__ = ["ARCHITECTURES", "HFConfig", "HFLanguageModel", "LanguageModel", "ExpertWeights",
           "build_model", "read_config", "read_model"]

ARCHITECTURES = {
    "MixtralForCausalLM": "mixtral",
    "Qwen2MoeForCausalLM": "qwen2_moe",
    "Qwen3MoeForCausalLM": "qwen3_moe",
    "OlmoeForCausalLM": "olmoe",
}

# transformers' defaults (configuration_<arch>.py) for the fields a config
# may leave out.
_DEFAULTS = {
    "mixtral": dict(num_key_value_heads=8, rope_theta=1e6, rms_norm_eps=1e-5,
                    tie_word_embeddings=False, num_local_experts=8, num_experts_per_tok=2,
                    hidden_act="silu"),
    "qwen2_moe": dict(rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
                      decoder_sparse_step=1, norm_topk_prob=False, mlp_only_layers=[],
                      num_experts=60, num_experts_per_tok=4, use_sliding_window=False,
                      qkv_bias=True, hidden_act="silu"),
    "qwen3_moe": dict(rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
                      decoder_sparse_step=1, norm_topk_prob=False, mlp_only_layers=[],
                      num_experts=128, num_experts_per_tok=8, use_sliding_window=False,
                      attention_bias=False, hidden_act="silu"),
    "olmoe": dict(rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
                  norm_topk_prob=False, num_experts=64, num_experts_per_tok=8,
                  attention_bias=False, clip_qkv=None, hidden_act="silu"),
}


@dataclass
class HFConfig:
    """The fields of ``config.json`` that the model is built from."""
    arch: str
    vocab: int
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    eps: float
    rope_theta: float
    tie_embeddings: bool
    experts: int
    top_k: int
    expert_ffn: int
    norm_topk: bool
    dense_ffn: Optional[int] = None          # Qwen's dense layers
    sparse_step: int = 1
    mlp_only_layers: Tuple[int, ...] = ()
    shared_ffn: Optional[int] = None         # Qwen2-MoE's shared expert
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: Optional[str] = None            # "head" (Qwen3) or "full" (OLMoE)
    clip_qkv: Optional[float] = None

    def is_sparse(self, layer: int) -> bool:
        """Qwen's rule (modeling_qwen2_moe.py, Qwen2MoeDecoderLayer): a layer
        is sparse unless listed in mlp_only_layers, when
        (layer + 1) % decoder_sparse_step == 0."""
        if self.arch in ("mixtral", "olmoe"):
            return True
        return (layer not in self.mlp_only_layers and self.experts > 0
                and (layer + 1) % self.sparse_step == 0)


def _field(config: dict, arch: str, name: str, path: str, kind=int, required=True):
    value = config.get(name, _DEFAULTS[arch].get(name))
    if value is None:
        if required:
            raise ExportError(f"{path}: field '{name}' is required for {arch}")
        return None
    ok = (isinstance(value, bool) if kind is bool else
          isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float else
          isinstance(value, int) and not isinstance(value, bool) if kind is int else
          isinstance(value, kind))
    if not ok:
        raise ExportError(f"{path}: field '{name}' must be {kind.__name__}, got {value!r}")
    if kind is int and value < 0:
        raise ExportError(f"{path}: field '{name}' must be >= 0, got {value}")
    return float(value) if kind is float else value


def read_config(config: dict, path: str = CONFIG) -> HFConfig:
    """The model's fields, or an ``ExportError`` naming the field that is
    missing, malformed or not expressible."""
    architectures = config.get("architectures")
    if (not isinstance(architectures, list) or len(architectures) != 1
            or architectures[0] not in ARCHITECTURES):
        raise ExportError(f"{path}: field 'architectures' is {architectures!r}; supported: one "
                          f"of {', '.join(ARCHITECTURES)}")
    arch = ARCHITECTURES[architectures[0]]
    model_type = config.get("model_type")
    if model_type is not None and model_type != arch:
        raise ExportError(f"{path}: field 'model_type' is {model_type!r} but 'architectures' "
                          f"says {architectures[0]} (model_type {arch!r})")
    # What cannot be expressed: an error, never another model.
    if config.get("rope_scaling") is not None:
        raise ExportError(f"{path}: field 'rope_scaling' is {config['rope_scaling']!r}: scaled "
                          f"rotary embeddings are not supported (only null)")
    rope_parameters = config.get("rope_parameters")   # transformers 5.x
    if rope_parameters is not None:
        if not isinstance(rope_parameters, dict):
            raise ExportError(f"{path}: field 'rope_parameters' must be an object, got "
                              f"{rope_parameters!r}")
        rope_type = rope_parameters.get("rope_type", "default")
        if rope_type != "default":
            raise ExportError(f"{path}: field 'rope_parameters.rope_type' is {rope_type!r}: "
                              f"scaled rotary embeddings are not supported (only 'default')")
        if "rope_theta" in rope_parameters:
            config = dict(config, rope_theta=rope_parameters["rope_theta"])
    if config.get("quantization_config") is not None:
        method = config["quantization_config"]
        method = method.get("quant_method", method) if isinstance(method, dict) else method
        raise ExportError(f"{path}: field 'quantization_config' ({method!r}): quantized "
                          f"(e.g. fp8 block-scaled) weights are not supported")
    for mla in ("kv_lora_rank", "q_lora_rank", "qk_rope_head_dim"):
        if config.get(mla) is not None:
            raise ExportError(f"{path}: field '{mla}': multi-head latent attention (DeepSeek "
                              f"MLA) is not supported")
    if arch == "mixtral":
        if config.get("sliding_window") is not None:
            raise ExportError(f"{path}: field 'sliding_window' is {config['sliding_window']}: "
                              f"sliding-window attention is not supported (only null)")
    elif arch in ("qwen2_moe", "qwen3_moe"):
        if _field(config, arch, "use_sliding_window", path, bool):
            raise ExportError(f"{path}: field 'use_sliding_window' is true: sliding-window "
                              f"attention is not supported")
    act = _field(config, arch, "hidden_act", path, str)
    if act != "silu":
        raise ExportError(f"{path}: field 'hidden_act' is {act!r}: the experts of {arch} are "
                          f"supported with silu only")

    hidden = _field(config, arch, "hidden_size", path)
    heads = _field(config, arch, "num_attention_heads", path)
    if heads == 0:
        raise ExportError(f"{path}: field 'num_attention_heads' must be > 0")
    kv_heads = config.get("num_key_value_heads")
    kv_heads = heads if kv_heads is None else _field(config, arch, "num_key_value_heads", path)
    if kv_heads == 0 or heads % kv_heads:
        raise ExportError(f"{path}: field 'num_key_value_heads' ({kv_heads}) must divide "
                          f"'num_attention_heads' ({heads})")
    head_dim = config.get("head_dim")
    if head_dim is None:
        if hidden % heads:
            raise ExportError(f"{path}: 'hidden_size' ({hidden}) is not a multiple of "
                              f"'num_attention_heads' ({heads}) and 'head_dim' is not given")
        head_dim = hidden // heads
    else:
        head_dim = _field(config, arch, "head_dim", path)
    if head_dim % 2:
        raise ExportError(f"{path}: the head dimension ({head_dim}) must be even (rotary "
                          f"embeddings rotate halves)")
    if arch == "mixtral":
        experts = _field(config, arch, "num_local_experts", path)
        expert_ffn = _field(config, arch, "intermediate_size", path)
        norm_topk = True  # MixtralSparseMoeBlock always renormalises the top-k
    else:
        experts = _field(config, arch, "num_experts", path)
        expert_ffn = _field(config, arch,
                            "intermediate_size" if arch == "olmoe" else "moe_intermediate_size",
                            path)
        norm_topk = _field(config, arch, "norm_topk_prob", path, bool)
    top_k = _field(config, arch, "num_experts_per_tok", path)
    if experts == 0 or not 1 <= top_k <= experts:
        raise ExportError(f"{path}: field 'num_experts_per_tok' ({top_k}) must be in "
                          f"[1, {experts}] (the number of experts)")
    result = HFConfig(
        arch=arch, vocab=_field(config, arch, "vocab_size", path), hidden=hidden,
        layers=_field(config, arch, "num_hidden_layers", path), heads=heads, kv_heads=kv_heads,
        head_dim=head_dim, eps=_field(config, arch, "rms_norm_eps", path, float),
        rope_theta=_field(config, arch, "rope_theta", path, float),
        tie_embeddings=_field(config, arch, "tie_word_embeddings", path, bool),
        experts=experts, top_k=top_k, expert_ffn=expert_ffn, norm_topk=norm_topk)
    if arch in ("qwen2_moe", "qwen3_moe"):
        result.sparse_step = _field(config, arch, "decoder_sparse_step", path)
        if result.sparse_step == 0:
            raise ExportError(f"{path}: field 'decoder_sparse_step' must be >= 1")
        only = config.get("mlp_only_layers", [])
        if not isinstance(only, list) or not all(isinstance(i, int) for i in only):
            raise ExportError(f"{path}: field 'mlp_only_layers' must be a list of layer indices, "
                              f"got {only!r}")
        result.mlp_only_layers = tuple(only)
        if any(not result.is_sparse(i) for i in range(result.layers)):
            result.dense_ffn = _field(config, arch, "intermediate_size", path)
    if arch == "qwen2_moe":
        result.shared_ffn = _field(config, arch, "shared_expert_intermediate_size", path)
        # Qwen2MoeAttention: q/k/v (not o) with bias=config.qkv_bias.
        result.qkv_bias = _field(config, arch, "qkv_bias", path, bool)
    if arch in ("qwen3_moe", "olmoe"):
        # q/k/v and o with bias=config.attention_bias.
        result.o_bias = _field(config, arch, "attention_bias", path, bool)
        result.qkv_bias = result.o_bias
        result.qk_norm = "head" if arch == "qwen3_moe" else "full"
    if arch == "olmoe":
        clip = config.get("clip_qkv")
        result.clip_qkv = None if clip is None else _field(config, arch, "clip_qkv", path, float)
    return result


class _Reader:
    """Tensors of a checkpoint folder with the shapes the config implies
    (f32). The model is built (``build_model``) from any reader with this
    interface, by Hugging Face tensor names: ``where`` (for messages),
    ``has(name)``, ``get(name, shape)``, ``linear(name, out, in)`` and
    ``experts(cfg, layer, prefix, names)``; the GGUF reader (``gguf.py``)
    is the other one."""

    def __init__(self, checkpoint: HFCheckpoint, expert_parallel: Optional[str] = None):
        self.checkpoint = checkpoint
        self.where = checkpoint.folder
        # Expert parallelism: the placement, and the stand-ins of the expert
        # stacks of which this rank reads only its block.
        self.expert_parallel = expert_parallel
        self.blocks = None
        if expert_parallel is not None:
            from .. import ep
            self.blocks = ep.ExpertBlocks()

    def has(self, name: str) -> bool:
        return name in self.checkpoint

    def get(self, name: str, shape) -> np.ndarray:
        if name not in self.checkpoint:
            raise ExportError(f"{self.checkpoint.folder}: tensor '{name}' is missing")
        info = self.checkpoint.info(name)
        if info.dtype not in ("F32", "F16", "BF16", "F64"):
            raise ExportError(f"{self.checkpoint.folder}: tensor '{name}' has dtype "
                              f"{info.dtype}; floating-point weights expected (F32, F16, BF16)")
        try:
            array = self.checkpoint.get(name, tuple(shape))
        except HFCheckpointError as error:
            raise ExportError(str(error)) from None
        return np.ascontiguousarray(array, dtype=np.float32)

    def linear(self, name: str, out_features: int, in_features: int) -> np.ndarray:
        """A Linear's weight [out, in], transposed to the [in, out] that the
        exported graph takes."""
        return np.ascontiguousarray(self.get(name, (out_features, in_features)).T)

    def experts(self, cfg: "HFConfig", layer: int, prefix: str,
                names: Tuple[str, str, str]) -> "ExpertWeights":
        """Stacked expert weights [E, H, F] (gate, up) and [E, F, H] (down):
        from one tensor per expert and projection (what checkpoints on the
        Hub hold), or from transformers 5.x's fused ``experts.gate_up_proj``
        [E, 2F, H] (gate first) and ``experts.down_proj`` [E, H, F]."""
        gate_name, up_name, down_name = names
        h, f, e = cfg.hidden, cfg.expert_ffn, cfg.experts
        first, count = 0, e
        if self.expert_parallel is not None:
            from .. import ep
            first, count = ep.local_experts(e, self.expert_parallel)
        if f"{prefix}.gate_up_proj" in self.checkpoint:
            gate_up = self.get(f"{prefix}.gate_up_proj", (e, 2 * f, h))
            down = self.get(f"{prefix}.down_proj", (e, h, f))
            # (Fused tensors are read whole, then cut to the rank's block.)
            gate_up = gate_up[first:first + count]
            down = down[first:first + count]
            return self._stacks(
                e, np.ascontiguousarray(gate_up[:, :f, :].transpose(0, 2, 1)),
                np.ascontiguousarray(gate_up[:, f:, :].transpose(0, 2, 1)),
                np.ascontiguousarray(down.transpose(0, 2, 1)))
        local = range(first, first + count)
        w_gate = np.stack([self.linear(f"{prefix}.{j}.{gate_name}.weight", f, h)
                           for j in local]) if count else np.zeros((0, h, f), np.float32)
        w_up = np.stack([self.linear(f"{prefix}.{j}.{up_name}.weight", f, h)
                         for j in local]) if count else np.zeros((0, h, f), np.float32)
        w_down = np.stack([self.linear(f"{prefix}.{j}.{down_name}.weight", h, f)
                           for j in local]) if count else np.zeros((0, f, h), np.float32)
        return self._stacks(e, w_gate, w_up, w_down)

    def _stacks(self, experts: int, w_gate, w_up, w_down) -> "ExpertWeights":
        """The stacks, or with expert parallelism full-shaped stand-ins for
        the rank's blocks (ep.ExpertBlocks)."""
        if self.blocks is None:
            return ExpertWeights(w_gate, w_up, w_down)
        return ExpertWeights(*(self.blocks.placeholder(w, experts)
                               for w in (w_gate, w_up, w_down)))


@dataclass
class ExpertWeights:
    """One layer's experts: f32 ``w_gate``/``w_up`` [E, H, F] and ``w_down``
    [E, F, H], or, with ``quant`` ("q8_0"/"q4_0"), the kernels' tiles of
    those weights (``moe_mlir.quant``: int8 [E, ceil(N/32), K/32, bytes])."""
    w_gate: np.ndarray
    w_up: np.ndarray
    w_down: np.ndarray
    quant: Optional[str] = None


def _attention(r: _Reader, cfg: HFConfig, prefix: str) -> AttentionSpec:
    nh, nkv, hd, h = cfg.heads, cfg.kv_heads, cfg.head_dim, cfg.hidden
    spec = AttentionSpec(
        num_heads=nh, num_kv_heads=nkv, head_dim=hd, rope_theta=cfg.rope_theta,
        w_q=r.linear(f"{prefix}.q_proj.weight", nh * hd, h),
        w_k=r.linear(f"{prefix}.k_proj.weight", nkv * hd, h),
        w_v=r.linear(f"{prefix}.v_proj.weight", nkv * hd, h),
        w_o=r.linear(f"{prefix}.o_proj.weight", h, nh * hd))
    if cfg.qkv_bias:
        spec.b_q = r.get(f"{prefix}.q_proj.bias", (nh * hd,))
        spec.b_k = r.get(f"{prefix}.k_proj.bias", (nkv * hd,))
        spec.b_v = r.get(f"{prefix}.v_proj.bias", (nkv * hd,))
    if cfg.o_bias:
        spec.b_o = r.get(f"{prefix}.o_proj.bias", (h,))
    if cfg.qk_norm == "head":
        spec.q_norm = r.get(f"{prefix}.q_norm.weight", (hd,))
        spec.k_norm = r.get(f"{prefix}.k_norm.weight", (hd,))
    elif cfg.qk_norm == "full":
        spec.q_norm = r.get(f"{prefix}.q_norm.weight", (nh * hd,))
        spec.k_norm = r.get(f"{prefix}.k_norm.weight", (nkv * hd,))
    spec.qk_norm = cfg.qk_norm
    spec.qk_norm_eps = cfg.eps
    spec.clip_qkv = cfg.clip_qkv
    return spec


def _moe(r: _Reader, cfg: HFConfig, layer: int) -> MoESpec:
    base = f"model.layers.{layer}"
    if cfg.arch == "mixtral":
        # transformers 4.x names the block block_sparse_moe (the checkpoints'
        # names), 5.x mlp.
        block = (f"{base}.block_sparse_moe"
                 if r.has(f"{base}.block_sparse_moe.gate.weight") else f"{base}.mlp")
        names = ("w1", "w3", "w2")   # w1: gate, w3: up, w2: down
    else:
        block = f"{base}.mlp"
        names = ("gate_proj", "up_proj", "down_proj")
    experts = r.experts(cfg, layer, f"{block}.experts", names)
    routing = RoutingConfig(cfg.experts, cfg.top_k, scoring="softmax", strategy="top_k",
                            normalize="selected" if cfg.norm_topk else "none")
    spec = MoESpec(hidden=cfg.hidden, ffn=cfg.expert_ffn, routing=routing,
                   w_router=r.linear(f"{block}.gate.weight", cfg.experts, cfg.hidden),
                   w_up=experts.w_up, w_down=experts.w_down, w_gate=experts.w_gate,
                   activation="silu", weight_quant=experts.quant)
    if cfg.shared_ffn is not None:
        s, h = cfg.shared_ffn, cfg.hidden
        spec.shared = DenseMLPSpec(
            w_gate=r.linear(f"{block}.shared_expert.gate_proj.weight", s, h),
            w_up=r.linear(f"{block}.shared_expert.up_proj.weight", s, h),
            w_down=r.linear(f"{block}.shared_expert.down_proj.weight", h, s))
        spec.shared_gate = r.linear(f"{block}.shared_expert_gate.weight", 1, h)
    return spec


def _dense(r: _Reader, cfg: HFConfig, layer: int) -> DenseMLPSpec:
    prefix, f, h = f"model.layers.{layer}.mlp", cfg.dense_ffn, cfg.hidden
    return DenseMLPSpec(w_gate=r.linear(f"{prefix}.gate_proj.weight", f, h),
                        w_up=r.linear(f"{prefix}.up_proj.weight", f, h),
                        w_down=r.linear(f"{prefix}.down_proj.weight", h, f))


@dataclass
class HFModel:
    config: HFConfig
    spec: ModelSpec
    embedding: np.ndarray   # [vocab, H]
    lm_head: np.ndarray     # [H, vocab]
    # Expert parallelism: this rank's expert blocks behind the spec's
    # full-shaped stand-ins (ep.ExpertBlocks), or None.
    blocks: Optional[object] = None


def read_model(folder: str, expert_parallel: Optional[str] = None) -> HFModel:
    """Reads a checkpoint folder into a model specification (every tensor
    read once, as f32). With ``expert_parallel`` (a placement), only this
    rank's experts are read (``HFModel.blocks`` holds them)."""
    try:
        checkpoint = HFCheckpoint(folder)
    except HFCheckpointError as error:
        raise ExportError(str(error)) from None
    with checkpoint:
        cfg = read_config(checkpoint.config, os.path.join(folder, CONFIG))
        if expert_parallel is None:
            check_memory(checkpoint, folder)
        reader = _Reader(checkpoint, expert_parallel)
        model = build_model(reader, cfg)
        model.blocks = reader.blocks
        return model


def build_model(r, cfg: HFConfig) -> HFModel:
    """The model of ``cfg`` from the tensors of reader ``r`` (``_Reader``'s
    interface, Hugging Face tensor names): what the Hugging Face and the
    GGUF readers share."""
    embedding = r.get("model.embed_tokens.weight", (cfg.vocab, cfg.hidden))
    layers: List[LayerSpec] = []
    for i in range(cfg.layers):
        base = f"model.layers.{i}"
        ffn = _moe(r, cfg, i) if cfg.is_sparse(i) else _dense(r, cfg, i)
        ffn_path = f"{base}.mlp"
        if cfg.arch == "mixtral" and r.has(f"{base}.block_sparse_moe.gate.weight"):
            ffn_path = f"{base}.block_sparse_moe"
        layers.append(LayerSpec(
            path=base, ffn=ffn,
            input_norm=NormSpec(r.get(f"{base}.input_layernorm.weight", (cfg.hidden,)), cfg.eps),
            attention=_attention(r, cfg, f"{base}.self_attn"),
            post_norm=NormSpec(r.get(f"{base}.post_attention_layernorm.weight", (cfg.hidden,)),
                               cfg.eps),
            ffn_path=ffn_path))
    final = NormSpec(r.get("model.norm.weight", (cfg.hidden,)), cfg.eps)
    if cfg.tie_embeddings:
        lm_head = np.ascontiguousarray(embedding.T)
    else:
        lm_head = r.linear("lm_head.weight", cfg.vocab, cfg.hidden)
    spec = ModelSpec(hidden=cfg.hidden, layers=layers, path="model", final_norm=final)
    return HFModel(cfg, spec, embedding, lm_head)


def _available_bytes() -> Optional[int]:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(checkpoint: HFCheckpoint, folder: str):
    """An error, before anything is read, when the weights as f32 (what the
    model computes with) would not fit in the memory available now."""
    elements = 0
    for name in checkpoint.names():
        info = checkpoint.info(name)
        elements += int(np.prod(info.shape, dtype=np.int64)) if info.shape else 1
    needed = 4 * elements
    available = _available_bytes()
    if available is not None and needed > available:
        raise ExportError(f"{folder}: the weights need {needed / 2**30:.1f} GiB as f32 but "
                          f"only {available / 2**30:.1f} GiB of memory are available")


class LanguageModel:
    """A model from token ids to logits: ``model(ids)`` with ids ``[B, S]``
    (integers in [0, vocab)) returns logits ``[B, S, vocab]`` (float32),
    compiled for ``target`` ("cpu" or "gpu-emulated", ``moe_mlir.targets``)
    on the first call. ``exported`` is the ExportedModel (MLIR text and
    weights), ``config`` the fields it was built from. ``vocab_source``
    says where the vocabulary size came from (for error messages)."""

    def __init__(self, model: HFModel, target, vocab_source: str,
                 expert_parallel: Optional[str] = None):
        from .graph import emit
        self.target = target
        self.config = model.config
        self.vocab_source = vocab_source
        self.expert_parallel = expert_parallel
        model.spec.embedding = model.embedding
        model.spec.lm_head = model.lm_head
        self.exported = emit(model.spec, "forward")
        if getattr(model, "blocks", None) is not None:
            model.blocks.substitute(self.exported.weights)
        self._function = None

    def __call__(self, ids) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"ids must be [B, S], got shape {list(ids.shape)}")
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"ids must be integers, got {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.config.vocab):
            bad = ids[(ids < 0) | (ids >= self.config.vocab)][0]
            raise ValueError(f"token id {int(bad)} is outside [0, {self.config.vocab}) "
                             f"({self.vocab_source})")
        if self.expert_parallel is not None:
            return self._call_expert_parallel(ids)
        if self._function is None:
            from .. import compiler
            self._function = compiler.compile(
                self.exported.mlir, self.exported.entry, self.target,
                arg_names=self.exported.inputs + list(self.exported.weights))
        return self._function(np.ascontiguousarray(ids, dtype=np.int64),
                              *self.exported.weights.values())

    def _call_expert_parallel(self, ids: np.ndarray) -> np.ndarray:
        """Every rank passes the same ids [B, S]; rank r runs its share of
        the B sequences (ep.split_tokens), its experts serve every rank's
        tokens, and the logits of all sequences are gathered on every
        rank."""
        from .. import ep
        if self._function is None:
            self._function = ep.compile(
                self.exported.mlir, self.exported.entry, placement=self.expert_parallel,
                arg_names=self.exported.inputs + list(self.exported.weights),
                weights_from=len(self.exported.inputs))
        ep.check_replicated("ids", np.asarray(ids, np.int64))
        first, count = ep.split_tokens(ids.shape[0])
        local = np.ascontiguousarray(ids[first:first + count], dtype=np.int64)
        logits = self._function(local, *self.exported.weights.values())
        return ep.gather_rows(logits)


class HFLanguageModel(LanguageModel):
    """A checkpoint folder compiled from token ids to logits (``LanguageModel``)."""

    def __init__(self, folder: str, target: str = "cpu",
                 expert_parallel: Optional[str] = None):
        from ..targets import check_target
        target = check_target(target, "load_hf")
        if expert_parallel is not None and str(target) != "cpu":
            raise ValueError(f"load_hf: expert_parallel needs target 'cpu', got '{target}'")
        self.folder = folder
        super().__init__(read_model(folder, expert_parallel), target,
                         f"vocab_size of {os.path.join(folder, CONFIG)}", expert_parallel)
