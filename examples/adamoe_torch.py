#!/usr/bin/env python3
"""The README's main job: a small AdaMoE-style model in PyTorch, exported,
compiled and run by moe-mlir, and checked against PyTorch eager.

  adamoe_torch.py export --out DIR   build the model (fixed seeds), export it
                                     (verified at export time), write
                                     DIR/model.mlir, DIR/model.safetensors,
                                     DIR/input.npy and DIR/eager.npy
  adamoe_torch.py check --out DIR    compare DIR/output.npy (from moe-run)
                                     with PyTorch eager; report the expert
                                     FFN evaluations the null experts saved
                                     (DIR/ffn_rows.txt from moe-run --count-ffn)

The model: 2 decoder layers (RMSNorm, causal self-attention with rotary
embeddings, AdaMoE FFN), hidden 256, 4 heads, FFN 512, 8 compute experts and
4 null experts (AdaMoE, arXiv 2406.13233), top-4 over all 12, weights
renormalised over the real experts.
"""

import argparse
import math
import os
import sys

import numpy as np
import torch
from torch import nn

HIDDEN, HEADS, FFN, EXPERTS, NULL, TOP_K, LAYERS, TOKENS = 256, 4, 512, 8, 4, 4, 2, 64


class RMSNorm(nn.Module):
    def __init__(self, size, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.variance_epsilon = eps

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)
        return self.weight * (x * torch.rsqrt(variance + self.variance_epsilon))


def rotate_half(x):
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class Attention(nn.Module):
    def __init__(self, hidden, heads, rope_theta=10000.0):
        super().__init__()
        self.num_heads = self.num_key_value_heads = heads
        self.head_dim = hidden // heads
        self.rope_theta = rope_theta
        self.q_proj = nn.Linear(hidden, hidden, bias=False)
        self.k_proj = nn.Linear(hidden, hidden, bias=False)
        self.v_proj = nn.Linear(hidden, hidden, bias=False)
        self.o_proj = nn.Linear(hidden, hidden, bias=False)

    def forward(self, x):
        tokens, d = x.shape[0], self.head_dim
        q = self.q_proj(x).view(tokens, self.num_heads, d).transpose(0, 1)
        k = self.k_proj(x).view(tokens, self.num_heads, d).transpose(0, 1)
        v = self.v_proj(x).view(tokens, self.num_heads, d).transpose(0, 1)
        inv_freq = 1.0 / (self.rope_theta ** (torch.arange(0, d, 2).float() / d))
        angles = torch.outer(torch.arange(tokens).float(), inv_freq)
        emb = torch.cat((angles, angles), dim=-1)
        q = q * emb.cos() + rotate_half(q) * emb.sin()
        k = k * emb.cos() + rotate_half(k) * emb.sin()
        scores = q @ k.transpose(1, 2) / math.sqrt(d)
        causal = torch.triu(torch.ones(tokens, tokens, dtype=torch.bool), diagonal=1)
        probs = torch.softmax(scores.masked_fill(causal, float("-inf")), dim=-1)
        return self.o_proj((probs @ v).transpose(0, 1).reshape(tokens, -1))


class Expert(nn.Module):
    """A SwiGLU expert (Mixtral naming: w1 gate, w3 up, w2 down)."""

    def __init__(self, hidden, ffn):
        super().__init__()
        self.w1 = nn.Linear(hidden, ffn, bias=False)
        self.w3 = nn.Linear(hidden, ffn, bias=False)
        self.w2 = nn.Linear(ffn, hidden, bias=False)
        self.act_fn = nn.SiLU()

    def forward(self, x):
        return self.w2(self.act_fn(self.w1(x)) * self.w3(x))


class AdaMoEBlock(nn.Module):
    """Top-k over real and null experts; null experts cost nothing and output
    zero; the selected real experts' weights are renormalised to sum to 1."""

    def __init__(self, hidden, ffn, num_experts, num_null_experts, top_k):
        super().__init__()
        self.top_k = top_k
        self.num_null_experts = num_null_experts
        self.gate = nn.Linear(hidden, num_experts + num_null_experts, bias=False)
        self.experts = nn.ModuleList(Expert(hidden, ffn) for _ in range(num_experts))

    def forward(self, x):
        probs = torch.softmax(self.gate(x), dim=-1)
        weights, chosen = torch.topk(probs, self.top_k, dim=-1)
        real = chosen < len(self.experts)
        weights = torch.where(real, weights, torch.zeros_like(weights))
        total = weights.sum(-1, keepdim=True)
        weights = torch.where(total > 0, weights / total.clamp_min(1e-30), weights)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            token, slot = torch.where(chosen == e)
            if token.numel():
                out.index_add_(0, token, expert(x[token]) * weights[token, slot, None])
        return out


class DecoderLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.input_layernorm = RMSNorm(HIDDEN)
        self.self_attn = Attention(HIDDEN, HEADS)
        self.post_attention_layernorm = RMSNorm(HIDDEN)
        self.block_sparse_moe = AdaMoEBlock(HIDDEN, FFN, EXPERTS, NULL, TOP_K)

    def forward(self, x):
        h = x + self.self_attn(self.input_layernorm(x))
        return h + self.block_sparse_moe(self.post_attention_layernorm(h))


class AdaMoEModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer() for _ in range(LAYERS))
        self.norm = RMSNorm(HIDDEN)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)


def build_model(seed: int = 0) -> AdaMoEModel:
    torch.manual_seed(seed)
    model = AdaMoEModel().eval()
    with torch.no_grad():
        for layer in model.layers:
            layer.block_sparse_moe.gate.weight.mul_(4.0)   # a decisive router
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["export", "check"])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    torch.set_num_threads(1)
    model = build_model()
    if args.command == "export":
        from moe_mlir.export import export
        exported = export(model, path="model")     # verified against eager at export time
        paths = exported.save(args.out)
        x = np.random.default_rng(0).standard_normal((TOKENS, HIDDEN)).astype(np.float32)
        np.save(os.path.join(args.out, "input.npy"), x)
        with torch.no_grad():
            np.save(os.path.join(args.out, "eager.npy"), model(torch.from_numpy(x)).numpy())
        print(f"exported {paths['mlir']} ({exported.info['layers']} layers, "
              f"{exported.info['layer_functions']} outlined layer function) and "
              f"{paths['weights']} ({len(exported.weights)} tensors)")
        return
    got = np.load(os.path.join(args.out, "output.npy"))
    expected = np.load(os.path.join(args.out, "eager.npy"))
    error = float(np.abs(got - expected).max())
    bound = float((1e-4 * np.abs(expected).max(axis=1) + 1e-5).min())
    print(f"moe-mlir vs PyTorch eager: max |diff| = {error:.3g} over {got.shape[0]} tokens "
          f"(conformance bound per row >= {bound:.3g})")
    rows = int(open(os.path.join(args.out, "ffn_rows.txt")).read())
    dense = LAYERS * TOKENS * TOP_K
    print(f"expert FFN evaluations: {rows} of {dense} for a dense top-{TOP_K} layer stack; "
          f"null experts saved {dense - rows} ({100.0 * (dense - rows) / dense:.1f}%)")
    ok = np.all(np.abs(got - expected) <= 1e-4 * np.abs(expected).max(axis=1, keepdims=True) + 1e-5)
    if not ok:
        print("MISMATCH beyond the conformance rule")
        sys.exit(1)


if __name__ == "__main__":
    main()
