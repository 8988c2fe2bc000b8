#!/usr/bin/env python3
"""A small Mixtral checkpoint folder in the Hugging Face layout, compiled from
token ids to logits, checked against PyTorch eager.

  hf_mixtral.py build --out DIR   # DIR/mixtral-tiny: config.json, 2 bf16 shards
                                  # + model.safetensors.index.json; DIR/ids.npy
  hf_mixtral.py check --out DIR   # DIR/logits.npy (from moe-run) vs PyTorch
  hf_mixtral.py gguf --out DIR    # DIR/mixtral-tiny-q8_0.gguf: the folder as
                                  # llama.cpp's converter writes it (arch llama),
                                  # experts quantized to Q8_0
  hf_mixtral.py check-gguf --out DIR   # DIR/logits-gguf.npy vs PyTorch on the
                                  # dequantised experts, and vs the bf16 model

The folder follows transformers' MixtralForCausalLM layout (tensor names,
shapes, config fields; bf16 storage), with fixed seeds. The PyTorch model
is the f32 reference of test/python/hf_fixtures.py, written from
transformers' modeling_mixtral.py and built from the same (bf16-rounded)
tensors.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir,
                                "test", "python"))
import hf_fixtures  # noqa: E402

CONFIG = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
              num_attention_heads=8, num_key_value_heads=2, num_local_experts=8,
              num_experts_per_tok=2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "check", "gguf", "check-gguf"])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    folder = os.path.join(args.out, "mixtral-tiny")
    config = hf_fixtures.tiny_config("mixtral", **CONFIG)
    tensors = hf_fixtures.random_tensors(config, seed=2026)
    ids = np.random.default_rng(7).integers(0, config["vocab_size"], (2, 16))
    if args.command == "build":
        hf_fixtures.write_folder(folder, config, tensors, "BF16", shards=2)
        np.save(os.path.join(args.out, "ids.npy"), ids)
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
        print(f"   {folder}: {config['num_hidden_layers']} layers, "
              f"{config['num_local_experts']} experts top-{config['num_experts_per_tok']}, "
              f"{len(tensors)} tensors, {size / 2**20:.1f} MiB (bf16, 2 shards)")
        return 0
    gguf = os.path.join(args.out, "mixtral-tiny-q8_0.gguf")
    if args.command == "gguf":
        from moe_mlir.export.gguf import convert_hf_folder
        convert_hf_folder(folder, gguf, outtype="bf16", expert_type="q8_0")
        print(f"   {gguf}: arch llama, experts Q8_0, the rest BF16/F32, "
              f"{os.path.getsize(gguf) / 2**20:.2f} MiB")
        return 0
    stored = hf_fixtures.stored_values(tensors, "BF16")
    if args.command == "check-gguf":
        from moe_mlir import quant
        ours = np.load(os.path.join(args.out, "logits-gguf.npy"))
        # The experts as the kernels see them: each row quantized to Q8_0
        # blocks along its input dimension (as llama.cpp stores them), exactly
        # dequantised.
        computed = {name: (quant.dequantize_blocks(quant.quantize_blocks(value, "q8_0"), "q8_0")
                           if ".experts." in name else value)
                    for name, value in stored.items()}
        ref = hf_fixtures.reference_logits(config, computed, ids)
        bf16 = hf_fixtures.reference_logits(config, stored, ids)
        diff = float(np.abs(ours - ref).max())
        bound = 1e-4 * np.abs(ref).max(axis=-1, keepdims=True) + 1e-5
        ok = bool(np.all(np.abs(ours - ref) <= bound))
        rel = float(np.max(np.linalg.norm(ours - bf16, axis=-1) / np.linalg.norm(bf16, axis=-1)))
        print(f"moe-mlir vs PyTorch eager (GGUF file, Q8_0 experts, ids {list(ids.shape)} -> "
              f"logits {list(ours.shape)}): max |diff| = {diff:.3g}, within the conformance "
              f"bound: {ok}; Q8_0 against the bf16 model: relative row error <= {rel:.2%}")
        return 0 if ok else 1
    ours = np.load(os.path.join(args.out, "logits.npy"))
    ref = hf_fixtures.reference_logits(config, stored, ids)
    diff = float(np.abs(ours - ref).max())
    bound = 1e-4 * np.abs(ref).max(axis=-1, keepdims=True) + 1e-5
    ok = bool(np.all(np.abs(ours - ref) <= bound))
    print(f"moe-mlir vs PyTorch eager (Mixtral folder, ids {list(ids.shape)} -> logits "
          f"{list(ours.shape)}): max |diff| = {diff:.3g}, within the conformance bound: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
