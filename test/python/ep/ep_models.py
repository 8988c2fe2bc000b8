"""One rank of the expert-parallel model tests (test_expert_parallel.py): a
moe-mlir-checkpoint/1 model (export_checkpoint(expert_parallel=...)) and a
Hugging Face Mixtral folder (load_hf(expert_parallel=...)), each rank
reading only its experts; outputs bit-equal to one process. The folders are
written under $EP_DIR by rank 0."""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import hf_fixtures  # noqa: E402
from moe_mlir import ep, load_hf  # noqa: E402
from moe_mlir.export import safetensors  # noqa: E402
from moe_mlir.export.checkpoint import FORMAT, export_checkpoint  # noqa: E402


def main():
    rank, size = ep.init()
    base = os.environ["EP_DIR"]
    ckpt = os.path.join(base, "ckpt")
    hf = os.path.join(base, "hf")
    config = {"format": FORMAT, "hidden_size": 32, "num_layers": 2, "residual": True,
              "moe": {"ffn_size": 48, "num_experts": 8, "num_null_experts": 4, "top_k": 4,
                      "normalize": "non_null"}}
    hf_config = hf_fixtures.tiny_config("mixtral")
    if rank == 0:
        os.makedirs(ckpt, exist_ok=True)
        with open(os.path.join(ckpt, "config.json"), "w") as f:
            json.dump(config, f)
        rng = np.random.default_rng(5)
        tensors = {}
        for i in range(2):
            tensors[f"layers.{i}.router"] = rng.standard_normal((32, 12)).astype(np.float32)
            tensors[f"layers.{i}.w_up"] = (rng.standard_normal((8, 32, 48)) * 0.2).astype(np.float32)
            tensors[f"layers.{i}.w_gate"] = (rng.standard_normal((8, 32, 48)) * 0.2).astype(np.float32)
            tensors[f"layers.{i}.w_down"] = (rng.standard_normal((8, 48, 32)) * 0.2).astype(np.float32)
        safetensors.save(os.path.join(ckpt, "weights.safetensors"), tensors)
        hf_fixtures.write_folder(hf, hf_config, hf_fixtures.random_tensors(hf_config))
    ep.barrier() if hasattr(ep, "barrier") else ep.allgather(b"b")

    status = 0
    # moe-mlir-checkpoint/1: tokens split over the ranks.
    x = np.random.default_rng(9).standard_normal((23, 32)).astype(np.float32)
    one = export_checkpoint(os.path.join(ckpt, "config.json"),
                            os.path.join(ckpt, "weights.safetensors")).compile()(x)
    model = export_checkpoint(os.path.join(ckpt, "config.json"),
                              os.path.join(ckpt, "weights.safetensors"),
                              expert_parallel="balanced")
    first, count = ep.local_experts(8)
    held = min(w.shape[1] if ".stack" in k else w.shape[0]
               for k, w in model.weights.items() if k.endswith("w_up"))
    t0, n = ep.split_tokens(x.shape[0])
    got = ep.gather_rows(model.compile()(x[t0:t0 + n]))
    same = np.array_equal(got, one)
    print(f"rank {rank}/{size} checkpoint: holds {held} of 8 experts "
          f"({first}..{first + count - 1}); {'bit-equal' if same else 'DIFFERENT'}", flush=True)
    status |= 0 if same and held == count else 1

    # Hugging Face folder: sequences split over the ranks.
    ids = np.random.default_rng(3).integers(0, hf_config["vocab_size"], size=(3, 5))
    ref = load_hf(hf)(ids)
    par = load_hf(hf, expert_parallel="balanced")
    logits = par(ids)
    same = np.array_equal(logits, ref)
    print(f"rank {rank}/{size} hf: B=3 over {size} ranks; "
          f"{'bit-equal' if same else 'DIFFERENT max ' + str(np.abs(logits - ref).max())}",
          flush=True)
    status |= 0 if same else 1
    return status


if __name__ == "__main__":
    sys.exit(main())
