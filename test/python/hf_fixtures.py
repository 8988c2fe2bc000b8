"""Small Hugging Face checkpoint folders and a PyTorch f32 reference of the
four MoE architectures, written for the tests from transformers' published
modeling code (huggingface/transformers, src/transformers/models/):

* mixtral/modeling_mixtral.py (MixtralRMSNorm, MixtralRotaryEmbedding,
  rotate_half, apply_rotary_pos_emb, repeat_kv, MixtralAttention,
  MixtralBlockSparseTop2MLP, MixtralSparseMoeBlock, MixtralDecoderLayer,
  MixtralForCausalLM) @ 00d4b3d2;
* qwen2_moe/modeling_qwen2_moe.py (Qwen2MoeSparseMoeBlock with the shared
  expert and its sigmoid gate; Qwen2MoeDecoderLayer's sparse-layer rule)
  @ 1c351314;
* qwen3_moe/modeling_qwen3_moe.py (q_norm / k_norm over head_dim) @ 00d4b3d2;
* olmoe/modeling_olmoe.py (q_norm / k_norm over the full projection, then
  clip_qkv on q, k and v) @ 00dcc6dd.

The reference follows those classes' arithmetic in float32 (the checkpoint's
bf16/f16 tensors widened exactly): RMSNorm ``w * (x * rsqrt(mean(x^2) +
eps))``; rotary embeddings with ``inv_freq = 1 / theta^(2i/d)`` and the
half-split ``rotate_half``; attention scaled by ``head_dim**-0.5`` with a
causal mask and GQA by repeating kv heads; routing ``softmax(gate(x))``, top-k,
renormalised (Mixtral always, the others with ``norm_topk_prob``), experts
``down(silu(gate_proj(x)) * up_proj(x))`` summed with ``index_add_``.
The folders hold exactly the published tensor names and shapes (Linear
weights [out, in]) and config fields, as ``save_pretrained`` writes them.
"""

import json
import os
import struct
from typing import Dict, Optional

import numpy as np
import torch

ARCH_NAMES = {"mixtral": "MixtralForCausalLM", "qwen2_moe": "Qwen2MoeForCausalLM",
              "qwen3_moe": "Qwen3MoeForCausalLM", "olmoe": "OlmoeForCausalLM"}


def tiny_config(arch: str, **overrides) -> dict:
    """A small config.json of ``arch`` with the published field names."""
    config = {"architectures": [ARCH_NAMES[arch]], "model_type": arch, "vocab_size": 37,
              "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "hidden_act": "silu", "max_position_embeddings": 64,
              "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
              "torch_dtype": "bfloat16"}
    if arch == "mixtral":
        config.update(intermediate_size=12, num_local_experts=4, num_experts_per_tok=2,
                      sliding_window=None, rope_theta=1e6)
    elif arch == "qwen2_moe":
        config.update(intermediate_size=20, moe_intermediate_size=8,
                      shared_expert_intermediate_size=10, num_experts=4,
                      num_experts_per_tok=2, norm_topk_prob=False, decoder_sparse_step=1,
                      mlp_only_layers=[], use_sliding_window=False, sliding_window=16,
                      qkv_bias=True)
    elif arch == "qwen3_moe":
        config.update(intermediate_size=20, moe_intermediate_size=8, num_experts=4,
                      num_experts_per_tok=2, norm_topk_prob=True, decoder_sparse_step=1,
                      mlp_only_layers=[], head_dim=6, attention_bias=False,
                      use_sliding_window=False, sliding_window=None)
    elif arch == "olmoe":
        config.update(intermediate_size=8, num_experts=4, num_experts_per_tok=2,
                      norm_topk_prob=False, clip_qkv=None, attention_bias=False)
    config.update(overrides)
    return config


def _is_sparse(config: dict, layer: int) -> bool:
    arch = config["model_type"]
    if arch in ("mixtral", "olmoe"):
        return True
    return (layer not in (config.get("mlp_only_layers") or [])
            and config["num_experts"] > 0
            and (layer + 1) % config.get("decoder_sparse_step", 1) == 0)


def _head_dim(config: dict) -> int:
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def random_tensors(config: dict, seed: int = 0) -> Dict[str, np.ndarray]:
    """Every tensor of the checkpoint, by its published name, as float32."""
    rng = np.random.default_rng(seed)
    arch = config["model_type"]
    h, v = config["hidden_size"], config["vocab_size"]
    nh, nkv, hd = config["num_attention_heads"], config["num_key_value_heads"], _head_dim(config)

    def w(*shape, scale=None):
        scale = scale if scale is not None else 1.0 / np.sqrt(shape[-1])
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    t = {"model.embed_tokens.weight": w(v, h, scale=1.0), "model.norm.weight": 1 + w(h, scale=0.1)}
    if not config.get("tie_word_embeddings"):
        t["lm_head.weight"] = w(v, h)
    experts = config.get("num_local_experts", config.get("num_experts"))
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}"
        t[f"{p}.input_layernorm.weight"] = 1 + w(h, scale=0.1)
        t[f"{p}.post_attention_layernorm.weight"] = 1 + w(h, scale=0.1)
        a = f"{p}.self_attn"
        t[f"{a}.q_proj.weight"] = w(nh * hd, h)
        t[f"{a}.k_proj.weight"] = w(nkv * hd, h)
        t[f"{a}.v_proj.weight"] = w(nkv * hd, h)
        t[f"{a}.o_proj.weight"] = w(h, nh * hd)
        if (arch == "qwen2_moe" and config.get("qkv_bias", True)) or config.get("attention_bias"):
            t[f"{a}.q_proj.bias"] = w(nh * hd, scale=0.1)
            t[f"{a}.k_proj.bias"] = w(nkv * hd, scale=0.1)
            t[f"{a}.v_proj.bias"] = w(nkv * hd, scale=0.1)
            if arch != "qwen2_moe":
                t[f"{a}.o_proj.bias"] = w(h, scale=0.1)
        if arch == "qwen3_moe":
            t[f"{a}.q_norm.weight"] = 1 + w(hd, scale=0.1)
            t[f"{a}.k_norm.weight"] = 1 + w(hd, scale=0.1)
        if arch == "olmoe":
            t[f"{a}.q_norm.weight"] = 1 + w(nh * hd, scale=0.1)
            t[f"{a}.k_norm.weight"] = 1 + w(nkv * hd, scale=0.1)
        if not _is_sparse(config, i):
            f = config["intermediate_size"]
            t[f"{p}.mlp.gate_proj.weight"] = w(f, h)
            t[f"{p}.mlp.up_proj.weight"] = w(f, h)
            t[f"{p}.mlp.down_proj.weight"] = w(h, f)
            continue
        if arch == "mixtral":
            b, f = f"{p}.block_sparse_moe", config["intermediate_size"]
            t[f"{b}.gate.weight"] = w(experts, h, scale=1.0)
            for j in range(experts):
                t[f"{b}.experts.{j}.w1.weight"] = w(f, h)
                t[f"{b}.experts.{j}.w3.weight"] = w(f, h)
                t[f"{b}.experts.{j}.w2.weight"] = w(h, f)
            continue
        b = f"{p}.mlp"
        f = config["intermediate_size"] if arch == "olmoe" else config["moe_intermediate_size"]
        t[f"{b}.gate.weight"] = w(experts, h, scale=1.0)
        for j in range(experts):
            t[f"{b}.experts.{j}.gate_proj.weight"] = w(f, h)
            t[f"{b}.experts.{j}.up_proj.weight"] = w(f, h)
            t[f"{b}.experts.{j}.down_proj.weight"] = w(h, f)
        if arch == "qwen2_moe":
            s = config["shared_expert_intermediate_size"]
            t[f"{b}.shared_expert.gate_proj.weight"] = w(s, h)
            t[f"{b}.shared_expert.up_proj.weight"] = w(s, h)
            t[f"{b}.shared_expert.down_proj.weight"] = w(h, s)
            t[f"{b}.shared_expert_gate.weight"] = w(1, h)
    return t


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bits, round to nearest even (as torch does)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def from_bf16_bits(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def stored_values(tensors: Dict[str, np.ndarray], dtype: str) -> Dict[str, np.ndarray]:
    """The float32 values the checkpoint holds after rounding to ``dtype``."""
    if dtype == "BF16":
        return {k: from_bf16_bits(to_bf16_bits(v)) for k, v in tensors.items()}
    if dtype == "F16":
        return {k: v.astype(np.float16).astype(np.float32) for k, v in tensors.items()}
    return dict(tensors)


def write_safetensors(path: str, tensors: Dict[str, np.ndarray], dtype: str = "BF16"):
    """A safetensors file in ``dtype`` (BF16, F16 or F32), as torch's
    safetensors writes it (header padded with spaces to 8 bytes)."""
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, value in tensors.items():
        if dtype == "BF16":
            blob = to_bf16_bits(value).astype("<u2").tobytes()
        else:
            blob = np.ascontiguousarray(value, dtype="<f2" if dtype == "F16" else "<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(value.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        chunks.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)


def write_folder(folder: str, config: dict, tensors: Dict[str, np.ndarray],
                 dtype: str = "BF16", shards: int = 1):
    """config.json plus model.safetensors, or ``shards`` files
    model-0000k-of-0000n.safetensors with model.safetensors.index.json."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if shards == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), tensors, dtype)
        return
    names = list(tensors)
    weight_map, total = {}, 0
    for k in range(shards):
        part = names[k::shards]
        shard = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        write_safetensors(os.path.join(folder, shard), {n: tensors[n] for n in part}, dtype)
        for n in part:
            weight_map[n] = shard
            total += tensors[n].size * (4 if dtype == "F32" else 2)
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


# ---------------------------------------------------------------------------
# The PyTorch reference (float32)
# ---------------------------------------------------------------------------
def _rms(x, weight, eps):
    variance = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


def _rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def _rope(x, theta, head_dim):
    # x [B, heads, S, hd]; positions 0..S-1 (no cache).
    seq = x.shape[2]
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float()
                                / head_dim))
    freqs = torch.arange(seq, dtype=torch.float32)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return x * emb.cos() + _rotate_half(x) * emb.sin()


def _linear(x, t, name):
    y = x @ t[name + ".weight"].T
    bias = t.get(name + ".bias")
    return y + bias if bias is not None else y


def _attention(x, t, p, config):
    arch = config["model_type"]
    bsz, seq, _ = x.shape
    nh, nkv, hd = config["num_attention_heads"], config["num_key_value_heads"], _head_dim(config)
    eps = config["rms_norm_eps"]
    q, k, v = (_linear(x, t, f"{p}.{n}_proj") for n in "qkv")
    if arch == "olmoe":
        q = _rms(q, t[f"{p}.q_norm.weight"], eps)
        k = _rms(k, t[f"{p}.k_norm.weight"], eps)
        clip = config.get("clip_qkv")
        if clip is not None:
            q, k, v = (z.clamp(min=-clip, max=clip) for z in (q, k, v))
    q = q.view(bsz, seq, nh, hd)
    k = k.view(bsz, seq, nkv, hd)
    v = v.view(bsz, seq, nkv, hd)
    if arch == "qwen3_moe":
        q = _rms(q, t[f"{p}.q_norm.weight"], eps)
        k = _rms(k, t[f"{p}.k_norm.weight"], eps)
    q, k, v = (z.transpose(1, 2) for z in (q, k, v))
    theta = config["rope_theta"]
    q, k = _rope(q, theta, hd), _rope(k, theta, hd)
    rep = nh // nkv
    k = k.repeat_interleave(rep, dim=1)   # repeat_kv: kv head g serves heads g*rep..
    v = v.repeat_interleave(rep, dim=1)
    scores = (q @ k.transpose(2, 3)) * hd ** -0.5
    mask = torch.triu(torch.ones(seq, seq, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(mask, torch.finfo(torch.float32).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
    out = (probs @ v).transpose(1, 2).reshape(bsz, seq, nh * hd)
    return _linear(out, t, f"{p}.o_proj")


def _mlp(x, t, p, names=("gate_proj", "up_proj", "down_proj")):
    g, u, d = names
    return _linear(torch.nn.functional.silu(_linear(x, t, f"{p}.{g}")) * _linear(x, t, f"{p}.{u}"),
                   t, f"{p}.{d}")


def _moe(x, t, p, config):
    arch = config["model_type"]
    tokens = x.reshape(-1, x.shape[-1])
    logits = tokens @ t[f"{p}.gate.weight"].T
    weights = torch.softmax(logits, dim=1, dtype=torch.float32)
    weights, selected = torch.topk(weights, config["num_experts_per_tok"], dim=-1)
    if arch == "mixtral" or config.get("norm_topk_prob"):
        weights = weights / weights.sum(dim=-1, keepdim=True)
    out = torch.zeros_like(tokens)
    experts = config.get("num_local_experts", config.get("num_experts"))
    names = ("w1", "w3", "w2") if arch == "mixtral" else ("gate_proj", "up_proj", "down_proj")
    for e in range(experts):
        token, slot = torch.where(selected == e)
        if token.numel() == 0:
            continue
        y = _mlp(tokens[token], t, f"{p}.experts.{e}", names) * weights[token, slot, None]
        out.index_add_(0, token, y)
    if arch == "qwen2_moe":
        shared = _mlp(tokens, t, f"{p}.shared_expert")
        out = out + torch.sigmoid(tokens @ t[f"{p}.shared_expert_gate.weight"].T) * shared
    return out.reshape(x.shape)


def reference_logits(config: dict, tensors: Dict[str, np.ndarray], ids: np.ndarray) -> np.ndarray:
    """Logits [B, S, vocab] of the causal LM in float32."""
    t = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in tensors.items()}
    eps = config["rms_norm_eps"]
    with torch.no_grad():
        h = t["model.embed_tokens.weight"][torch.from_numpy(ids.astype(np.int64))]
        for i in range(config["num_hidden_layers"]):
            p = f"model.layers.{i}"
            h = h + _attention(_rms(h, t[f"{p}.input_layernorm.weight"], eps), t,
                               f"{p}.self_attn", config)
            normed = _rms(h, t[f"{p}.post_attention_layernorm.weight"], eps)
            if not _is_sparse(config, i):
                h = h + _mlp(normed, t, f"{p}.mlp")
            elif config["model_type"] == "mixtral":
                h = h + _moe(normed, t, f"{p}.block_sparse_moe", config)
            else:
                h = h + _moe(normed, t, f"{p}.mlp", config)
        h = _rms(h, t["model.norm.weight"], eps)
        head = t["model.embed_tokens.weight"] if config.get("tie_word_embeddings") \
            else t["lm_head.weight"]
        return (h @ head.T).numpy()


def build(folder: str, arch: str, seed: int = 0, dtype: str = "BF16", shards: int = 1,
          config: Optional[dict] = None, **overrides):
    """Writes a folder; returns (config, the stored values as float32)."""
    config = config or tiny_config(arch, **overrides)
    tensors = random_tensors(config, seed)
    write_folder(folder, config, tensors, dtype, shards)
    return config, stored_values(tensors, dtype)


def assert_logits_close(ours, ref):
    """Logits within the conformance bound of each row (1e-4 of its largest
    magnitude, plus 1e-5); returns the max |diff|."""
    assert ours.shape == ref.shape
    bound = 1e-4 * np.abs(ref).max(axis=-1, keepdims=True) + 1e-5
    worst = np.abs(ours - ref) - bound
    assert np.all(worst <= 0), f"max excess {worst.max():.3g} (max |diff| " \
                               f"{np.abs(ours - ref).max():.3g})"
    return float(np.abs(ours - ref).max())
