"""Export of MoE blocks as their repositories publish them.

The fixtures in ``fixtures/published/`` are written from the published sources
(repository, path and commit in each docstring) and behave like them: same
attribute names, forward signatures, return values and arithmetic. Each block
is exported unmodified through ``moe_mlir.export.export`` and must match its
eager output under the contract's section-5 rule for B in {1, 2} and S in
{1, 7, 33} (export-time verification does that; a mismatch is an
ExportError). The block's own calling convention is kept: ``[B, S, H]`` in,
and the router logits as a second result where the block returns them.
"""
import numpy as np
import pytest
import torch

from moe_mlir.export import ExportError, export

from fixtures.published import adamoe, deepseek_v3_inference as dsv3, dynamic_moe
from fixtures.published import moe_plus_plus as mpp
from fixtures.published import transformers_moe as hf

BLOCKS = {
    "adamoe": lambda: adamoe.make_adamoe(),
    "dynamic_moe_top_p": lambda: dynamic_moe.make_dynamic_moe(),
    "moe_plus_plus_linear_router": lambda: mpp.make_moe_plus_plus(),
    "moe_plus_plus_tanh_router": lambda: mpp.make_moe_plus_plus(tanh_router=True),
    "moe_plus_plus_mixtral_gating": lambda: mpp.make_moe_plus_plus(moe_use_mixtral_gating=True),
    "moe_plus_plus_no_mul_topk": lambda: mpp.make_moe_plus_plus(moe_feature_no_mul_topk=True),
    "deepseek_v3_dim7168_bias_top2_sum": lambda: dsv3.make_v3_moe(),
    "deepseek_v3_small_no_bias_max": lambda: dsv3.make_small_moe(),
    "deepseek_v3_small_sigmoid_max": lambda: dsv3.make_small_moe(score_func="sigmoid",
                                                                route_scale=2.5),
    "deepseek_v3_dim7168_bf16": lambda: dsv3.make_v3_moe(dtype=torch.bfloat16),
    "transformers_v4_mixtral": lambda: hf.make_mixtral_v4(),
    "transformers_v4_qwen2_moe": lambda: hf.make_qwen2_moe_v4(),
    "transformers_v5_mixtral": lambda: hf.make_mixtral_v5(),
    "transformers_v5_qwen2_moe": lambda: hf.make_qwen2_moe_v5(),
    "transformers_v5_qwen3_moe": lambda: hf.make_qwen3_moe_v5(),
    "transformers_v5_olmoe": lambda: hf.make_olmoe_v5(),
}

#: What each block's export must look like (routing attributes in the IR).
EXPECTED_IR = {
    "adamoe": ["experts = <compute = 8, null = 4>", "normalize = non_null", "moe.layer"],
    "dynamic_moe_top_p": ["strategy = top_p<p = 0x3F000000>", "k = 8", "normalize = none"],
    "moe_plus_plus_linear_router": ["experts = <compute = 8, null = 1, copy = 1, const = 2>",
                                    "normalize = non_null", "moe.route", "moe.combine"],
    "moe_plus_plus_tanh_router": ["math.tanh", "moe.route"],
    "deepseek_v3_dim7168_bias_top2_sum": ["groups = <n = 4, top = 2>", "scoring = sigmoid",
                                          "normalize = selected", "bias("],
    "deepseek_v3_small_no_bias_max": ["groups = <n = 4, top = 2, score = max>",
                                      "scoring = softmax", "normalize = none"],
}

#: The results of each export: the block's own return value (transformers 4.x
#: blocks, AdaMoE and MoE++ return their router logits too; the rest a tensor).
TWO_RESULTS = ("adamoe", "moe_plus_plus", "transformers_v4")


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_published_block_exports_and_matches_eager(name):
    block = BLOCKS[name]()
    exported = export(block)
    results = ["output", "router_logits"] if name.startswith(TWO_RESULTS) else ["output"]
    assert exported.info["results"] == results
    for text in EXPECTED_IR.get(name, []):
        assert text in exported.mlir, text
    bound = 1.6e-2 if "bf16" in name else 1e-4
    assert exported.info["max_relative_difference"] <= bound


def test_router_logits_are_the_second_result():
    """AdaMoE returns (hidden_states [B, S, H], router_logits [B*S, E+N]): so
    does the export, and both agree with eager."""
    block = adamoe.make_adamoe()
    exported = export(block)
    assert exported.info["results"] == ["output", "router_logits"]
    x = torch.randn(2, 5, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out, logits = block(x.clone())
    y, got_logits = exported.compile()(x.numpy())
    assert y.shape == (2, 5, 64) and got_logits.shape == (10, 12)
    np.testing.assert_allclose(got_logits, logits.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", [hf.make_mixtral_v4, hf.make_qwen2_moe_v4])
def test_transformers_v4_blocks_return_their_router_logits(make):
    """transformers 4.x blocks return (hidden_states [B, S, H], router_logits
    [B*S, E]); the export learns that from the block's return value and keeps
    both results."""
    block = make()
    exported = export(block)
    hidden = block.gate.in_features
    x = torch.randn(2, 3, hidden, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out, logits = block(x.clone())
    y, got_logits = exported.compile()(x.numpy())
    assert y.shape == tuple(out.shape) and got_logits.shape == tuple(logits.shape)
    np.testing.assert_allclose(got_logits, logits.numpy(), rtol=1e-5, atol=1e-5)


def test_moe_plus_plus_residual_input_and_in_place_scaling():
    """MoE++ takes the previous layer's logits as ``gate_residual`` and scales
    its (contiguous) input in place; the export takes the residual as a second
    input and leaves its inputs alone, and verification ran the module on
    copies."""
    block = mpp.make_moe_plus_plus(tanh_router=True)
    exported = export(block)
    assert exported.inputs == ["input", "gate_residual"]
    x = torch.randn(1, 7, 64, generator=torch.Generator().manual_seed(1))
    residual = mpp.make_gate_residual(7, 12, seed=2)
    x_np, r_np = x.numpy().copy(), residual.numpy().copy()
    with torch.no_grad():
        out, logits = block(x.clone(), gate_residual=residual.clone())
    y, got_logits = exported.compile()(x_np, r_np)
    np.testing.assert_array_equal(x_np, x.numpy())        # the export's input is unchanged
    np.testing.assert_allclose(got_logits, logits.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", [hf.make_mixtral_v4, hf.make_qwen2_moe_v4])
def test_transformers_v4_blocks_return_their_router_logits(make):
    """transformers 4.x blocks return (hidden_states [B, S, H], router_logits
    [B*S, E]); the export learns that from the block's return value and keeps
    both results."""
    block = make()
    exported = export(block)
    hidden = block.gate.in_features
    x = torch.randn(2, 3, hidden, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out, logits = block(x.clone())
    y, got_logits = exported.compile()(x.numpy())
    assert y.shape == tuple(out.shape) and got_logits.shape == tuple(logits.shape)
    np.testing.assert_allclose(got_logits, logits.numpy(), rtol=1e-5, atol=1e-5)
    err = np.abs(y - out.numpy()).max() / np.abs(out.numpy()).max()
    assert err < 1e-4


def test_moe_plus_plus_top_k_comes_from_the_module_global(monkeypatch):
    """MoE++'s top-k is the module-level MOE_TOP_K: the exporter reads it, an
    override that disagrees with the code fails verification, and a missing
    global asks for the override."""
    monkeypatch.setattr(mpp, "MOE_TOP_K", 3)
    assert "k = 3" in export(mpp.make_moe_plus_plus()).mlir
    monkeypatch.setattr(mpp, "MOE_TOP_K", 2)
    with pytest.raises(ExportError, match=r"model.moe: .*does not reproduce the module: 'output'"):
        export(mpp.make_moe_plus_plus(), routing={"k": 3}, path="model.moe")
    monkeypatch.delattr(mpp, "MOE_TOP_K")
    with pytest.raises(ExportError, match=r"MOE_TOP_K .* routing=\{'k': K\}"):
        export(mpp.make_moe_plus_plus(), verify=False)


def test_routing_override_is_checked():
    with pytest.raises(ExportError, match="unknown routing argument"):
        export(dynamic_moe.make_dynamic_moe(), routing={"top_k": 2})
    with pytest.raises(ExportError, match="changes the expert space"):
        export(dynamic_moe.make_dynamic_moe(), routing={"num_experts": 4, "k": 2})
    with pytest.raises(ExportError, match="not valid"):
        export(dynamic_moe.make_dynamic_moe(), routing={"p": 2.0})


def test_adamoe_needs_eight_experts():
    """Its routing counts ids <= 7 as real experts: with other E the contract
    cannot express it, and the exporter says so."""
    with pytest.raises(ExportError, match=r"ids <= 7 .* this block has 4"):
        export(adamoe.make_adamoe(num_local_experts=4))


def test_dense_switch_mlp_layer_exports():
    """Dynamic_MoE's odd layers (use_switch false) are its dense LlamaMLP."""
    exported = export(dynamic_moe.make_dynamic_moe(layer_idx=1))
    assert "moe.layer" not in exported.mlir and "linalg.matmul" in exported.mlir


def test_no_other_exception_escapes_export():
    """A module whose forward fails is reported as an ExportError naming the path."""
    block = dynamic_moe.make_dynamic_moe()
    block.forward = lambda hidden_states: hidden_states[:, :, :1] @ torch.ones(2, 2)
    with pytest.raises(ExportError, match=r"^blk: export-time verification failed"):
        export(block, path="blk")
