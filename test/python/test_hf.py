"""Hugging Face checkpoint folders, token ids to logits (moe_mlir.load_hf).

The folders are written in exactly the published layout (tensor names and
shapes, config fields, bf16 storage, a sharded index) by hf_fixtures, whose
PyTorch f32 reference follows transformers' modeling code (cited there).
Logits are compared with the conformance rule of the contract (section 5):
per row, |ours - reference| <= 1e-4 * max|reference row| + 1e-5.
"""

import json
import os

import numpy as np
import pytest

import moe_mlir
from moe_mlir.export import ExportError
from moe_mlir.export import hf as hf_module
from moe_mlir.export.hf import read_config

import hf_fixtures as fx


def _close(ours, ref):
    fx.assert_logits_close(ours, ref)


def _run(tmp_path, arch, ids_shape=(2, 5), seed=0, **kwargs):
    folder = str(tmp_path / arch)
    config, tensors = fx.build(folder, arch, seed=seed, **kwargs)
    ids = np.random.default_rng(seed + 1).integers(0, config["vocab_size"], ids_shape)
    model = moe_mlir.load_hf(folder)
    ours = model(ids)
    ref = fx.reference_logits(config, tensors, ids)
    _close(ours, ref)
    return model, ours, ref


# One folder per architecture, each exercising its own fields.
CASES = {
    # Mixtral: always renormalised top-2, tied embeddings, a sharded index.
    "mixtral": dict(shards=3, tie_word_embeddings=True),
    # Qwen2-MoE: shared expert with its sigmoid gate, q/k/v biases, no
    # renormalisation, layer 0 dense (mlp_only_layers) and a sparse step of 1,
    # an rms_norm_eps large enough to matter.
    "qwen2_moe": dict(mlp_only_layers=[0], norm_topk_prob=False, rms_norm_eps=0.05),
    # Qwen3-MoE: head_dim 6 != hidden / heads, q/k norms per head,
    # renormalised top-k, attention biases (q, k, v and o), f16 storage.
    "qwen3_moe": dict(attention_bias=True, norm_topk_prob=True, dtype="F16"),
    # OLMoE: full-width q/k norms, clip_qkv small enough to clip.
    "olmoe": dict(clip_qkv=0.3, rope_theta=500.0),
}


@pytest.mark.parametrize("arch", list(CASES))
def test_logits_match_the_pytorch_reference(tmp_path, arch):
    model, ours, _ = _run(tmp_path, arch, **CASES[arch])
    assert ours.dtype == np.float32 and ours.shape == (2, 5, 37)
    # B and S are dynamic: one token of one sequence through the same model.
    ids = np.array([[3]])
    assert model(ids).shape == (1, 1, 37)


def test_sequences_of_a_batch_are_independent(tmp_path):
    """Each sequence of [B, S] starts at position 0 and attends to itself only."""
    folder = str(tmp_path / "m")
    config, tensors = fx.build(folder, "mixtral")
    model = moe_mlir.load_hf(folder)
    ids = np.random.default_rng(3).integers(0, config["vocab_size"], (3, 4))
    together = model(ids)
    for b in range(3):
        np.testing.assert_allclose(together[b], model(ids[b:b + 1])[0], rtol=1e-5, atol=1e-5)


def test_qwen2_sparse_step_and_dense_layers(tmp_path):
    """decoder_sparse_step = 2: layers 0 and 2 dense, 1 and 3 sparse."""
    _run(tmp_path, "qwen2_moe", num_hidden_layers=4, decoder_sparse_step=2,
         qkv_bias=False, dtype="F32")


def test_fused_expert_tensors_of_transformers_5(tmp_path):
    """transformers 5.x stores experts fused: gate_up_proj [E, 2F, H] (gate
    first) and down_proj [E, H, F]."""
    folder = str(tmp_path / "fused")
    config = fx.tiny_config("qwen3_moe")
    tensors = fx.random_tensors(config)
    fused = {}
    for name, value in tensors.items():
        if ".experts." not in name:
            fused[name] = value
    e, f = config["num_experts"], config["moe_intermediate_size"]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}.mlp.experts"
        fused[f"{p}.gate_up_proj"] = np.stack([np.concatenate(
            [tensors[f"{p}.{j}.gate_proj.weight"], tensors[f"{p}.{j}.up_proj.weight"]])
            for j in range(e)])
        fused[f"{p}.down_proj"] = np.stack([tensors[f"{p}.{j}.down_proj.weight"]
                                            for j in range(e)])
    assert fused[f"model.layers.0.mlp.experts.gate_up_proj"].shape == (e, 2 * f, 16)
    fx.write_folder(folder, config, fused, "F32")
    ids = np.array([[1, 2, 3, 4]])
    _close(moe_mlir.load_hf(folder)(ids), fx.reference_logits(config, tensors, ids))


# ---------------------------------------------------------------------------
# What cannot be expressed: an error naming the field
# ---------------------------------------------------------------------------
REFUSED = [
    ("mixtral", dict(rope_scaling={"rope_type": "linear", "factor": 2.0}), "'rope_scaling'"),
    ("qwen3_moe", dict(rope_parameters={"rope_type": "yarn", "rope_theta": 1e6, "factor": 4}),
     "'rope_parameters.rope_type' is 'yarn'"),
    ("mixtral", dict(sliding_window=4096), "'sliding_window' is 4096"),
    ("qwen2_moe", dict(use_sliding_window=True), "'use_sliding_window' is true"),
    ("qwen3_moe", dict(quantization_config={"quant_method": "fp8",
                                            "weight_block_size": [128, 128]}),
     "'quantization_config' ('fp8')"),
    ("qwen3_moe", dict(kv_lora_rank=512), "multi-head latent attention"),
    ("mixtral", dict(architectures=["DeepseekV3ForCausalLM"]), "'architectures'"),
    ("olmoe", dict(hidden_act="gelu"), "'hidden_act' is 'gelu'"),
    ("olmoe", dict(num_experts_per_tok=9), "'num_experts_per_tok' (9)"),
    ("mixtral", dict(num_key_value_heads=3), "'num_key_value_heads' (3)"),
    ("qwen2_moe", dict(model_type="mixtral"), "'model_type' is 'mixtral'"),
]


@pytest.mark.parametrize("arch,overrides,message", REFUSED,
                         ids=[m.split("'")[1] if "'" in m else m for _, _, m in REFUSED])
def test_inexpressible_config_is_an_error(arch, overrides, message):
    with pytest.raises(ExportError, match=None) as info:
        read_config(fx.tiny_config(arch, **overrides), "some/config.json")
    assert message in str(info.value) and "some/config.json" in str(info.value)


def test_rope_parameters_theta_is_read(tmp_path):
    """transformers 5.x's rope_parameters {"rope_type": "default",
    "rope_theta": ...} replaces rope_theta."""
    config = fx.tiny_config("mixtral", rope_parameters={"rope_type": "default",
                                                        "rope_theta": 123.0})
    del config["rope_theta"]
    assert read_config(config).rope_theta == 123.0


# ---------------------------------------------------------------------------
# Bad folders: an error naming the file and the key or tensor
# ---------------------------------------------------------------------------
@pytest.fixture
def folder(tmp_path):
    path = str(tmp_path / "model")
    fx.build(path, "mixtral", shards=2, dtype="F32")
    return path


def _expect(folder, *needles):
    with pytest.raises(ValueError) as info:
        moe_mlir.load_hf(folder)
    for needle in needles:
        assert needle in str(info.value), str(info.value)


def test_truncated_config(folder):
    path = os.path.join(folder, "config.json")
    text = open(path).read()
    open(path, "w").write(text[:len(text) // 2])
    _expect(folder, path, "malformed JSON")


def test_config_not_an_object(folder):
    open(os.path.join(folder, "config.json"), "w").write("[1, 2]")
    _expect(folder, "config.json", "JSON object")


def test_missing_config(folder):
    os.remove(os.path.join(folder, "config.json"))
    _expect(folder, "config.json", "cannot read")


def test_shard_listed_but_absent(folder):
    os.remove(os.path.join(folder, "model-00002-of-00002.safetensors"))
    _expect(folder, "model-00002-of-00002.safetensors", "listed in model.safetensors.index.json")


def test_tensor_missing(folder):
    index_path = os.path.join(folder, "model.safetensors.index.json")
    index = json.load(open(index_path))
    del index["weight_map"]["model.layers.1.block_sparse_moe.experts.3.w2.weight"]
    json.dump(index, open(index_path, "w"))
    _expect(folder, "'model.layers.1.block_sparse_moe.experts.3.w2.weight' is missing")


def test_tensor_of_the_wrong_shape(tmp_path):
    path = str(tmp_path / "m")
    config = fx.tiny_config("olmoe")
    tensors = fx.random_tensors(config)
    tensors["model.layers.0.self_attn.k_norm.weight"] = np.ones(16, np.float32)
    fx.write_folder(path, config, tensors, "F32")
    _expect(path, "model.safetensors", "'model.layers.0.self_attn.k_norm.weight'",
            "shape [16], expected [8]")


def test_unreadable_dtype(tmp_path):
    path = str(tmp_path / "m")
    config = fx.tiny_config("mixtral")
    tensors = fx.random_tensors(config)
    fx.write_folder(path, config, tensors, "F32")
    # Rewrite the file with one weight stored as I32.
    from moe_mlir.export import safetensors
    stored = safetensors.load(os.path.join(path, "model.safetensors"))
    stored["model.norm.weight"] = np.ones(16, np.int32)
    safetensors.save(os.path.join(path, "model.safetensors"), stored)
    _expect(path, "'model.norm.weight'", "dtype I32")


def test_unsupported_storage_dtype(tmp_path):
    """An fp8 tensor (F8_E4M3, what block-scaled checkpoints store): the shard
    and the tensor are named."""
    path = str(tmp_path / "m")
    config = fx.tiny_config("mixtral")
    fx.write_folder(path, config, fx.random_tensors(config), "F32")
    shard = os.path.join(path, "model.safetensors")
    data = bytearray(open(shard, "rb").read())
    size = int(np.frombuffer(bytes(data[:8]), "<u8")[0])
    header = json.loads(bytes(data[8:8 + size]))
    header["model.norm.weight"]["dtype"] = "F8_E4M3"
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    open(shard, "wb").write(np.uint64(len(text)).tobytes() + text + bytes(data[8 + size:]))
    _expect(path, shard, "'model.norm.weight'", "unsupported dtype 'F8_E4M3'")


def test_reading_needs_no_torch(tmp_path):
    """load_hf reads and builds the model with NumPy only."""
    import subprocess
    import sys
    path = str(tmp_path / "m")
    fx.build(path, "olmoe")
    code = ("import sys, moe_mlir; m = moe_mlir.load_hf(sys.argv[1]); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, "
            "sorted(k for k in sys.modules if 'torch' in k)[:3]")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", code, path], check=True, env=env)


def test_truncated_shard(folder):
    shard = os.path.join(folder, "model-00001-of-00002.safetensors")
    data = open(shard, "rb").read()
    open(shard, "wb").write(data[:len(data) - 100])
    _expect(folder, shard, "truncated")


def test_no_weights(folder):
    for name in os.listdir(folder):
        if name != "config.json":
            os.remove(os.path.join(folder, name))
    _expect(folder, "neither model.safetensors nor model.safetensors.index.json")


def test_larger_than_memory_is_refused_before_reading(folder, monkeypatch):
    monkeypatch.setattr(hf_module, "_available_bytes", lambda: 1000)
    _expect(folder, "GiB as f32", "available")


def test_bad_ids(tmp_path):
    path = str(tmp_path / "m")
    fx.build(path, "mixtral")
    model = moe_mlir.load_hf(path)
    with pytest.raises(ValueError, match=r"token id 37 is outside \[0, 37\)"):
        model(np.array([[1, 37]]))
    with pytest.raises(ValueError, match="token id -1"):
        model(np.array([[-1]]))
    with pytest.raises(ValueError, match=r"ids must be \[B, S\]"):
        model(np.array([1, 2]))
    with pytest.raises(ValueError, match="integers"):
        model(np.array([[1.0]]))


def test_moe_run_takes_a_checkpoint_folder(tmp_path, capsys):
    """moe-run MODEL_DIR --ids ids.npy -o logits.npy."""
    from moe_mlir.run import main
    path = str(tmp_path / "m")
    config, tensors = fx.build(path, "olmoe")
    ids = np.array([[0, 5, 9], [36, 2, 2]])
    np.save(tmp_path / "ids.npy", ids)
    out = str(tmp_path / "logits.npy")
    assert main([path, "--ids", str(tmp_path / "ids.npy"), "-o", out]) == 0
    _close(np.load(out), fx.reference_logits(config, tensors, ids))
    assert main([path]) == 2
    assert "give the token ids with --ids" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.array([[99]]))
    assert main([path, "--ids", str(tmp_path / "bad.npy")]) == 2
    assert "token id 99 is outside [0, 37)" in capsys.readouterr().err
