"""Sanity tests of the eager PyTorch fixtures (test/python/fixtures/moe_models.py).

The routing of every block is recomputed here independently (NumPy, float64, one token
at a time) and the block output is compared with the dense mixture sum_e w_e * expert_e(x).
"""
import math
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures import moe_models as mm  # noqa: E402

torch.set_num_threads(min(4, torch.get_num_threads()))

T = 12
H = 64


def x_tokens(seed=1, *shape):
    return mm.make_hidden_states(seed, *(shape or (T, H)))


def np64(t):
    return t.detach().double().numpy()


def softmax64(z):
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def expert_outputs(experts, x):
    """[N, E, H] float64: every expert applied to every token."""
    with torch.no_grad():
        return np.stack([np64(e(x)) for e in experts], axis=1)


def mixture(dense_w, expert_out):
    """dense_w [N, E] x expert_out [N, E, H] -> [N, H]."""
    return np.einsum("ne,neh->nh", dense_w, expert_out)


def run(block, x):
    with torch.no_grad():
        out = block(x)
    return out


def assert_close(got, want, rtol=2e-5, atol=2e-5):
    np.testing.assert_allclose(np64(got) if torch.is_tensor(got) else got, want,
                               rtol=rtol, atol=atol)


def topk_dense(p, k):
    """dense [N, E] with p at the k largest entries of each row, 0 elsewhere."""
    w = np.zeros_like(p)
    for n in range(p.shape[0]):
        idx = np.argsort(-p[n], kind="stable")[:k]
        w[n, idx] = p[n, idx]
    return w


# --------------------------------------------------------------------------------------
# Mixtral
# --------------------------------------------------------------------------------------
def test_mixtral_top_all_equals_dense_softmax_mixture():
    block = mm.make_mixtral_moe(0, num_experts=6, top_k=6)
    x = x_tokens()
    out, logits = run(block, x)
    assert out.shape == (T, H) and logits.shape == (T, 6)
    p = softmax64(np64(x) @ np64(block.gate.weight).T)
    assert_close(out, mixture(p, expert_outputs(block.experts, x)))


def test_mixtral_top2_matches_per_token_reference():
    block = mm.make_mixtral_moe(3)
    x = x_tokens(4)
    out, logits = run(block, x)
    assert_close(logits, np64(x) @ np64(block.gate.weight).T, rtol=1e-5, atol=1e-5)
    w = topk_dense(softmax64(np64(logits)), 2)
    w /= w.sum(-1, keepdims=True)
    assert_close(out, mixture(w, expert_outputs(block.experts, x)))
    # not knife-edge: the 2nd and 3rd probabilities are clearly apart for most tokens
    p = np.sort(softmax64(np64(logits)), axis=-1)[:, ::-1]
    assert np.median(p[:, 1] - p[:, 2]) > 1e-3


def test_mixtral_expert_is_swiglu():
    block = mm.make_mixtral_moe(0)
    e = block.experts[0]
    x = x_tokens(2)
    a = np64(x) @ np64(e.w1.weight).T
    want = ((a / (1 + np.exp(-a))) * (np64(x) @ np64(e.w3.weight).T)) @ np64(e.w2.weight).T
    assert_close(run(e, x), want)
    assert (e.w1.bias, e.w2.bias, e.w3.bias, block.gate.bias) == (None,) * 4
    assert (block.hidden_dim, block.ffn_dim, block.num_experts, block.top_k) == (64, 128, 8, 2)


# --------------------------------------------------------------------------------------
# Qwen2-MoE
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", [False, True])
def test_qwen2_moe_reference(norm):
    block = mm.make_qwen2_moe(5, num_experts=8, top_k=4, norm_topk_prob=norm)
    assert block.norm_topk_prob is norm
    x = x_tokens(6)
    out, logits = run(block, x)
    w = topk_dense(softmax64(np64(logits)), 4)
    if norm:
        w /= w.sum(-1, keepdims=True)
    g = 1 / (1 + np.exp(-(np64(x) @ np64(block.shared_expert_gate.weight).T)))
    want = mixture(w, expert_outputs(block.experts, x)) + g * np64(run(block.shared_expert, x))
    assert_close(out, want)


def test_qwen2_moe_norm_only_rescales_routed_part():
    a = mm.make_qwen2_moe(7, norm_topk_prob=False)
    b = mm.make_qwen2_moe(7, norm_topk_prob=True)
    x = x_tokens(8)
    shared = np64(torch.sigmoid(a.shared_expert_gate(x)) * a.shared_expert(x))
    ra, rb = np64(run(a, x)[0]) - shared, np64(run(b, x)[0]) - shared
    s = topk_dense(softmax64(np64(a.gate(x))), a.top_k).sum(-1, keepdims=True)
    assert np.all(s < 1 - 1e-3)
    np.testing.assert_allclose(ra, rb * s, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------
# DeepSeek-V3
# --------------------------------------------------------------------------------------
def deepseek_reference(block, x, bias=None):
    """(chosen sets, kept groups, dense weights) recomputed in float64."""
    r = block.gate
    E, G, kg, k = r.n_routed_experts, r.n_group, r.topk_group, r.top_k
    s = 1 / (1 + np.exp(-(np64(x) @ np64(r.weight).T)))
    b = np64(r.e_score_correction_bias) if bias is None else bias
    sc = s + b
    dense = np.zeros_like(s)
    chosen, kept = [], []
    for n in range(s.shape[0]):
        gs = np.sort(sc[n].reshape(G, -1), axis=-1)[:, -2:].sum(-1)
        groups = set(np.argsort(-gs, kind="stable")[:kg].tolist())
        masked = np.array([sc[n, e] if e // (E // G) in groups else 0.0 for e in range(E)])
        idx = np.argsort(-masked, kind="stable")[:k]
        w = s[n, idx]
        if r.norm_topk_prob:
            w = w / (w.sum() + 1e-20)
        dense[n, idx] = w * r.routed_scaling_factor
        chosen.append(set(idx.tolist()))
        kept.append(groups)
    return chosen, kept, dense


def test_deepseek_v3_matches_reference_and_groups():
    block = mm.make_deepseek_v3_moe(11)
    x = x_tokens(12, 32, H)
    out = run(block, x)
    idx, w = run(block.gate, x)
    chosen, kept, dense = deepseek_reference(block, x)
    gsize = block.gate.n_routed_experts // block.gate.n_group
    for n in range(x.shape[0]):
        assert set(idx[n].tolist()) == chosen[n]
        assert {e // gsize for e in chosen[n]} <= kept[n]  # only experts of kept groups
    np.testing.assert_allclose(w.sum(-1).numpy(), block.gate.routed_scaling_factor, rtol=1e-5)
    want = mixture(dense, expert_outputs(block.experts, x)) + np64(run(block.shared_experts, x))
    assert_close(out, want)


def test_deepseek_v3_bias_changes_picks_not_weights():
    block = mm.make_deepseek_v3_moe(13, bias_std=0.2)
    x = x_tokens(14, 64, H)
    idx_b, w_b = run(block.gate, x)
    saved = block.gate.e_score_correction_bias.clone()
    block.gate.e_score_correction_bias.zero_()
    idx_0, _ = run(block.gate, x)
    block.gate.e_score_correction_bias.copy_(saved)
    changed = [n for n in range(64) if set(idx_b[n].tolist()) != set(idx_0[n].tolist())]
    assert changed, "the correction bias should change some routing decisions"
    # weights come from the unbiased sigmoid scores at the (biased) picks
    with torch.no_grad():
        s = torch.sigmoid(x @ block.gate.weight.T).double()
    g = s.gather(1, idx_b)
    want = g / g.sum(-1, keepdim=True) * block.gate.routed_scaling_factor
    assert_close(w_b, want.numpy())


def test_deepseek_v3_dense_limit():
    block = mm.make_deepseek_v3_moe(15, n_routed_experts=6, num_experts_per_tok=6, n_group=1,
                                    topk_group=1, routed_scaling_factor=1.5)
    x = x_tokens(16)
    s = 1 / (1 + np.exp(-(np64(x) @ np64(block.gate.weight).T)))
    want = mixture(1.5 * s / s.sum(-1, keepdims=True), expert_outputs(block.experts, x))
    assert_close(run(block, x), want + np64(run(block.shared_experts, x)))


def test_deepseek_v3_masks_dropped_groups_with_zero():
    # Kept experts all score below zero and a dropped group is masked with 0.0: with the
    # public implementation's 0.0 fill, a masked expert then wins the top-k.
    cfg = mm.DeepseekV3Config(hidden_size=4, n_routed_experts=4, num_experts_per_tok=1,
                              n_group=2, topk_group=1)
    r = mm.DeepseekV3TopkRouter(cfg)
    with torch.no_grad():
        r.e_score_correction_bias.copy_(torch.tensor([-1.0, -1.0, -3.0, -3.0]))
        scores = torch.full((1, 4), 0.5)
        assert r.get_topk_indices(scores).item() in (2, 3)


# --------------------------------------------------------------------------------------
# AdaMoE
# --------------------------------------------------------------------------------------
def test_adamoe_without_null_experts_equals_mixtral():
    mix = mm.make_mixtral_moe(17, num_experts=8, top_k=3)
    ada = mm.AdaMoEBlock(64, 128, 8, 3, num_null_experts=0).eval()
    ada.load_state_dict(mix.state_dict())
    x = x_tokens(18, 2, 5, H)
    (a, la), (b, lb) = run(mix, x), run(ada, x)
    assert torch.equal(la, lb)
    assert_close(a, np64(b), rtol=1e-6, atol=1e-6)


def test_adamoe_null_experts_reference():
    block = mm.make_adamoe(19, num_experts=8, num_null_experts=4, top_k=4)
    x = x_tokens(20, 48, H)
    out, logits = run(block, x)
    assert logits.shape == (48, 12)
    w = topk_dense(softmax64(np64(logits)), 4)[:, :8]
    s = w.sum(-1, keepdims=True)
    n_real = (w > 0).sum(-1)
    assert (n_real < 4).any() and (n_real > 0).any(), "want tokens that pick null experts"
    w = np.where(s > 0, w / np.where(s > 0, s, 1), 0)
    assert_close(out, mixture(w, expert_outputs(block.experts, x)))


def test_adamoe_all_null_token_outputs_zero():
    block = mm.make_adamoe(21, num_experts=4, num_null_experts=2, top_k=2)
    x = x_tokens(22).abs() + 0.1
    with torch.no_grad():
        block.gate.weight.zero_()
        block.gate.weight[4:] = 1.0  # null logits >> real logits for positive x
    out, _ = run(block, x)
    assert torch.equal(out, torch.zeros_like(out))


# --------------------------------------------------------------------------------------
# MoE++
# --------------------------------------------------------------------------------------
def test_moe_plus_plus_reference():
    block = mm.make_moe_plus_plus(23, num_experts=4, top_k=3, num_zero_experts=1,
                                  num_copy_experts=1, num_constant_experts=2)
    assert block.gate.out_features == 8 and not block.norm_topk_prob
    x = x_tokens(24, 64, H)
    out, logits = run(block, x)
    w = topk_dense(softmax64(np64(logits)), 3)
    xs = np64(x)
    parts = [np64(e(x)) for e in block.experts] + [np.zeros_like(xs), xs]
    for c in block.constant_experts:
        a = softmax64(xs @ np64(c.wg.weight).T)
        parts.append(a[:, :1] * xs + a[:, 1:] * np64(c.constant))
    # every kind of slot is used by some token
    used = {s for n in range(64) for s in np.nonzero(w[n])[0].tolist()}
    assert {4, 5, 6, 7} <= used
    assert_close(out, mixture(w, np.stack(parts, axis=1)))


@pytest.mark.parametrize("norm", [True, False])
def test_moe_plus_plus_copy_expert(norm):
    block = mm.make_moe_plus_plus(25, num_experts=4, top_k=1, norm_topk_prob=norm)
    x = x_tokens(26).abs() + 0.1
    with torch.no_grad():
        block.gate.weight.zero_()
        block.gate.weight[5] = 0.05  # slot 5 = the copy expert: logit ~3, others 0
    out, logits = run(block, x)
    p = torch.softmax(logits, -1)[:, 5:6]
    if norm:
        assert torch.equal(out, x)  # weight exactly 1 -> identity
    else:
        assert (p < 0.99).all() and (p > 0.3).all()
        assert_close(out, np64(p * x), rtol=1e-6, atol=1e-6)


def test_moe_plus_plus_zero_expert():
    block = mm.make_moe_plus_plus(27, num_experts=4, top_k=1, norm_topk_prob=True)
    x = x_tokens(28).abs() + 0.1
    with torch.no_grad():
        block.gate.weight.zero_()
        block.gate.weight[4] = 10.0  # slot 4 = the zero expert
    assert torch.equal(run(block, x)[0], torch.zeros_like(x))


# --------------------------------------------------------------------------------------
# top-p
# --------------------------------------------------------------------------------------
def test_top_p_reference_and_prefix_rule():
    block = mm.make_top_p_moe(29, num_experts=8, top_p=0.5, max_experts=8)
    x = x_tokens(30, 64, H)
    out, logits = run(block, x)
    p = softmax64(np64(logits))
    counts = []
    w = np.zeros_like(p)
    for n in range(p.shape[0]):
        order = np.argsort(-p[n], kind="stable")
        c = int(np.searchsorted(np.cumsum(p[n, order]), 0.5) + 1)  # smallest prefix >= p
        w[n, order[:c]] = p[n, order[:c]]
        counts.append(c)
    assert len(set(counts)) > 1, "top-p should give different tokens different counts"
    assert_close(out, mixture(w, expert_outputs(block.experts, x)))


def test_top_p_one_uses_max_experts():
    block = mm.make_top_p_moe(31, num_experts=8, top_p=1.0, max_experts=3)
    x = x_tokens(32)
    r = block.route(x)
    assert (r.mask.sum(-1) == 3).all()
    w = topk_dense(softmax64(np64(r.router_logits)), 3)  # probabilities, not renormalised
    assert_close(run(block, x)[0], mixture(w, expert_outputs(block.experts, x)))


def test_top_p_tiny_p_is_top1_with_probability_weight():
    block = mm.make_top_p_moe(33, top_p=1e-6)
    x = x_tokens(34)
    out, logits = run(block, x)
    assert (block.route(x).mask.sum(-1) == 1).all()
    w = topk_dense(softmax64(np64(logits)), 1)
    assert_close(out, mixture(w, expert_outputs(block.experts, x)))


# --------------------------------------------------------------------------------------
# per-token k
# --------------------------------------------------------------------------------------
def test_dynamic_k_reference():
    block = mm.make_dynamic_k_moe(35, num_experts=8, max_k=4)
    x = x_tokens(36, 64, H)
    out, logits = run(block, x)
    imp = 1 / (1 + np.exp(-(np64(x) @ np64(block.k_predictor.weight).T
                           + np64(block.k_predictor.bias))))[:, 0]
    k = np.ceil(imp * 4).astype(int)
    assert len(set(k.tolist())) >= 3
    assert np.array_equal(block.token_k(x).numpy(), k)
    p = softmax64(np64(logits))
    w = np.zeros_like(p)
    for n in range(64):
        w[n] = topk_dense(p[n:n + 1], k[n])[0]
    w /= w.sum(-1, keepdims=True)
    assert_close(out, mixture(w, expert_outputs(block.experts, x)))


@pytest.mark.parametrize("bias,k", [(100.0, 4), (-30.0, 1), (-200.0, 0)])
def test_dynamic_k_extremes(bias, k):
    block = mm.make_dynamic_k_moe(37, num_experts=8, max_k=4)
    with torch.no_grad():
        block.k_predictor.bias.fill_(bias)
    x = x_tokens(38)
    assert (block.token_k(x) == k).all()
    out, _ = run(block, x)
    if k == 0:
        assert torch.equal(out, torch.zeros_like(out))
        return
    mix = mm.make_mixtral_moe(0, num_experts=8, top_k=k)
    mix.load_state_dict(block.state_dict(), strict=False)
    assert_close(out, np64(run(mix, x)[0]), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------------------
# shapes, determinism, scale
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(mm.BLOCK_FACTORIES))
def test_block_shapes_and_token_independence(name):
    block = mm.BLOCK_FACTORIES[name](41)
    x = x_tokens(42, 2, 6, H)
    full = run(block, x)
    full_out = full[0] if isinstance(full, tuple) else full
    assert full_out.shape == x.shape and full_out.dtype == torch.float32
    assert 0.05 < full_out.std().item() < 20
    for b in range(2):
        two = run(block, x[b])
        three = run(block, x[b:b + 1])
        two_out = two[0] if isinstance(two, tuple) else two
        three_out = three[0] if isinstance(three, tuple) else three
        assert two_out.shape == (6, H) and three_out.shape == (1, 6, H)
        assert_close(two_out, np64(three_out[0]), rtol=1e-6, atol=1e-6)
        assert_close(two_out, np64(full_out[b]), rtol=1e-5, atol=1e-6)
    if isinstance(full, tuple):
        assert full[1].shape[0] == 12 and full[1].dtype == torch.float32


@pytest.mark.parametrize("name", sorted(mm.BLOCK_FACTORIES))
def test_factories_are_deterministic(name):
    a, b, c = (mm.BLOCK_FACTORIES[name](s) for s in (3, 3, 4))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


# --------------------------------------------------------------------------------------
# decoder pieces
# --------------------------------------------------------------------------------------
def test_rmsnorm_matches_numpy():
    norm = mm.make_rmsnorm(43, eps=1e-5)
    x = x_tokens(44, 3, 5, H) * 3
    xs = np64(x)
    want = xs / np.sqrt((xs ** 2).mean(-1, keepdims=True) + 1e-5) * np64(norm.weight)
    assert_close(run(norm, x), want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(norm.weight, torch.ones(H))


def test_attention_is_causal():
    attn = mm.make_attention(45)
    x = x_tokens(46, 10, H)
    y = x.clone()
    y[6:] += 1.0
    a, b = run(attn, x), run(attn, y)
    assert torch.allclose(a[:6], b[:6], rtol=0, atol=1e-6)
    assert not torch.allclose(a[6:], b[6:], atol=1e-3)
    # position 0 attends only to itself
    v0 = attn.v_proj(x[:1]).repeat_interleave(1, 0)
    v0 = v0.view(1, attn.num_key_value_heads, attn.head_dim).repeat_interleave(
        attn.num_key_value_groups, 1).reshape(1, -1)
    assert_close(a[:1], np64(attn.o_proj(v0)), rtol=1e-5, atol=1e-6)


def test_attention_gqa_equals_mha_with_repeated_kv():
    gqa = mm.make_attention(47, num_heads=4, num_key_value_heads=2)
    mha = mm.Attention(64, 4, 4, gqa.rope_theta).eval()
    d = gqa.head_dim
    with torch.no_grad():
        mha.q_proj.weight.copy_(gqa.q_proj.weight)
        mha.o_proj.weight.copy_(gqa.o_proj.weight)
        for src, dst in ((gqa.k_proj, mha.k_proj), (gqa.v_proj, mha.v_proj)):
            w = src.weight.view(2, d, 64)
            dst.weight.copy_(w.repeat_interleave(2, dim=0).reshape(4 * d, 64))
    x = x_tokens(48, 2, 7, H)
    assert_close(run(gqa, x), np64(run(mha, x)), rtol=1e-5, atol=1e-6)


def test_rope_scores_depend_on_relative_position_only():
    rot = mm.RotaryEmbedding(16, base=10000.0)
    cos, sin = rot(20)
    assert_close(rot.inv_freq, 1.0 / 10000.0 ** (np.arange(0, 16, 2) / 16), rtol=1e-6)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(16, generator=g), torch.randn(16, generator=g)

    def score(m, n):
        qm = q * cos[m] + mm.rotate_half(q) * sin[m]
        kn = k * cos[n] + mm.rotate_half(k) * sin[n]
        return float(qm @ kn)

    assert abs(score(5, 2) - score(15, 12)) < 1e-4
    assert abs(score(5, 2) - score(5, 3)) > 1e-3
    # rotate_half convention: dims i and i + d/2 form a rotation pair
    assert_close(mm.rotate_half(torch.arange(4.0)), np.array([-2.0, -3.0, 0.0, 1.0]))


@pytest.mark.parametrize("name", sorted(mm.MODEL_FACTORIES))
def test_models(name):
    model = mm.MODEL_FACTORIES[name](51)
    assert len(model.layers) == 2 and isinstance(model.norm, mm.RMSNorm)
    attr = "block_sparse_moe" if name in ("mixtral", "adamoe") else "mlp"
    for layer in model.layers:
        assert isinstance(getattr(layer, attr), torch.nn.Module)
        assert layer.self_attn.head_dim == 16 and layer.self_attn.num_heads == 4
    x = x_tokens(52, 2, 8, H)
    out = run(model, x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    for b in range(2):
        assert_close(run(model, x[b]), np64(out[b]), rtol=1e-5, atol=1e-5)
        assert_close(run(model, x[b:b + 1])[0], np64(out[b]), rtol=1e-5, atol=1e-5)
    # the layer composes as h = x + attn(n1(x)); out = h + ffn(n2(h))
    layer = model.layers[-1]
    with torch.no_grad():
        h = x + layer.self_attn(layer.input_layernorm(x))
        f = layer.ffn(layer.post_attention_layernorm(h))
        f = f[0] if isinstance(f, tuple) else f
        assert_close(layer(x), np64(h + f), rtol=1e-6, atol=1e-6)


def test_deepseek_model_has_dense_first_layer_and_qwen_has_qkv_bias():
    ds = mm.make_deepseek_v3_model(0)
    assert isinstance(ds.layers[0].mlp, mm.DeepseekV3MLP)
    assert isinstance(ds.layers[1].mlp, mm.DeepseekV3MoE)
    qw = mm.make_qwen2_moe_model(0)
    a = qw.layers[0].self_attn
    assert a.q_proj.bias is not None and a.o_proj.bias is None
    mx = mm.make_mixtral_model(0)
    assert mx.layers[0].self_attn.q_proj.bias is None
    assert mx.layers[0].self_attn.num_key_value_heads == 2
