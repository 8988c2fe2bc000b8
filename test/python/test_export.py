"""Exporters: every convention exported, compiled and compared with PyTorch
eager under the conformance rule (several seeds and sequence lengths,
including 1); module structure (outlined layers, locations); checkpoints;
errors for what cannot be exported."""
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import moe_mlir  # noqa: E402
from moe_mlir import conformance  # noqa: E402
from moe_mlir import reference as ref  # noqa: E402
from moe_mlir.export import ExportError, export, export_checkpoint, safetensors  # noqa: E402
from moe_mlir.export.layers import MoESpec  # noqa: E402
from moe_mlir.export.torch_frontend import extract  # noqa: E402
from moe_mlir.export.verify import routing_ambiguity  # noqa: E402

from fixtures import moe_models as mm  # noqa: E402


def _eager(module, x):
    """The module's results: a tensor, or the tuple it returns."""
    with torch.no_grad():
        out = module(torch.from_numpy(x))
    if isinstance(out, (tuple, list)):
        return tuple(o.numpy() for o in out)
    return out.numpy()


def _compare_with_eager(module, exported, spec, tokens, seed):
    """Compiled vs eager on fresh inputs; ambiguous tokens (and, with
    attention after them, the later tokens) are excluded as the rule says."""
    run = exported.compile()
    x = mm.make_hidden_states(seed, tokens, spec.hidden).numpy()
    captured = {}
    handles = []
    for i, layer in enumerate(spec.layers):
        if isinstance(layer.ffn, MoESpec):
            def hook(mod, args, out, i=i):
                captured[i] = args[0].detach().numpy().reshape(-1, spec.hidden)
            handles.append(layer.ffn_source.register_forward_hook(hook))
    try:
        expected = _eager(module, x)
    finally:
        for h in handles:
            h.remove()
    got = run(x)
    excluded = set()
    for i, inputs in captured.items():
        ambiguous = np.nonzero(routing_ambiguity(spec.layers[i].ffn, inputs))[0]
        if ambiguous.size:
            if any(l.attention is not None for l in spec.layers[i + 1:]):
                excluded.update(range(int(ambiguous.min()), tokens))
            else:
                excluded.update(ambiguous.tolist())
    # A block that returns (hidden_states, router_logits) keeps both.
    got = got if isinstance(got, tuple) else (got,)
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(got) == len(expected), (len(got), len(expected))
    for value, reference in zip(got, expected):
        result = conformance.compare_rows(value, reference.reshape(value.shape),
                                          exclude_tokens=sorted(excluded))
        assert not result.failures, result.report()
    return len(excluded)


@pytest.mark.parametrize("name", sorted(mm.BLOCK_FACTORIES))
def test_block_conventions_match_eager(name):
    """Each MoE block convention (Mixtral, Qwen-MoE with shared expert,
    DeepSeek-V3, AdaMoE, MoE++, top-p, DA-MoE) exports, verifies at export
    time, and matches eager on new inputs, for 2 seeds and T in {1, 5, 40}."""
    for seed in (0, 1):
        module = mm.BLOCK_FACTORIES[name](seed=seed)
        exported = export(module, probe_tokens=(1, 9))
        spec = extract(module)
        assert "moe.layer" in exported.mlir
        excluded = sum(_compare_with_eager(module, exported, spec, t, seed + 10 * t)
                       for t in (1, 5, 40))
        assert excluded <= 3


@pytest.mark.parametrize("name", sorted(mm.MODEL_FACTORIES))
def test_decoder_models_match_eager(name):
    """Whole decoder models (RMSNorm, causal attention with RoPE (GQA, Qwen's
    q/k/v biases), residuals, MoE or dense FFN) export as one module and
    match eager for T in {1, 16}."""
    module = mm.MODEL_FACTORIES[name](seed=3)
    exported = export(module, probe_tokens=(1, 8))
    spec = extract(module)
    for t in (1, 16):
        _compare_with_eager(module, exported, spec, t, seed=t)


def test_qwen_norm_topk_prob_both_ways():
    """Qwen-MoE's norm_topk_prob maps to normalize = selected / none."""
    for flag, mode in ((True, "selected"), (False, "none")):
        module = mm.make_qwen2_moe(seed=4, norm_topk_prob=flag)
        exported = export(module, probe_tokens=(3,))
        assert f"normalize = {mode}" in exported.mlir


def test_deepseek_routing_attributes():
    """DeepSeek-V3: sigmoid scoring, the correction bias as a selection bias,
    grouped top-k and the routed scaling factor are carried as attributes."""
    module = mm.make_deepseek_v3_moe(seed=0)
    text = export(module, probe_tokens=(4,)).mlir
    assert "scoring = sigmoid" in text and "bias(" in text
    assert "groups = <n = 4, top = 2>" in text
    assert "normalize = selected" in text
    assert "scale = 0x40200000" in text          # 2.5


def test_layers_outlined_once_and_locations(tmp_path):
    """A 32-layer model has one outlined layer function, run by one loop over
    its 32 stacked weight slices (the loop's location lists every layer's
    module path); it compiles in about the time of a 1-layer model;
    diagnostics inside the layer name the module path."""
    def model(layers):
        return mm.make_mixtral_model(seed=0, num_layers=layers, hidden_size=32,
                                     intermediate_size=32, num_experts=4, top_k=2)
    one = export(model(1), verify=False)
    many = export(model(32), verify=False)
    assert many.layer_functions() == ["layer_0"]
    assert many.mlir.count("func.call @layer_0") == 1
    assert "scf.for" in many.mlir
    assert many.info["stacks"]["model.stack0"] == [f"model.layers.{i}" for i in range(32)]
    assert '"model.layers.0", "model.layers.1"' in many.mlir and '"model.layers.31"]' in many.mlir
    assert many.weights["model.stack0.moe.w_up"].shape[0] == 32
    assert 'loc("model.layers.0.mlp")' in many.mlir or \
        'loc("model.layers.0.block_sparse_moe")' in many.mlir
    timings = []
    for exported in (one, many):
        start = time.perf_counter()
        moe_mlir.compile(exported.mlir, "forward")
        timings.append(time.perf_counter() - start)
    assert timings[1] < 3 * timings[0] + 0.5, timings
    # A diagnostic inside the layer points at the module path.
    broken = many.mlir.replace("k = 2", "k = 99", 1)
    with pytest.raises(moe_mlir.CompileError, match=r"model\.layers\.0\.block_sparse_moe"):
        moe_mlir.compile(broken, "forward")


def test_saved_model_runs_with_moe_run(tmp_path):
    """save() + moe-run: weights bound by name, input from .npy, output to
    .npy equal to the in-process result."""
    module = mm.make_adamoe_model(seed=5, hidden_size=32, intermediate_size=32)
    exported = export(module, probe_tokens=(4,))
    paths = exported.save(str(tmp_path))
    x = mm.make_hidden_states(1, 6, 32).numpy()
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    run = subprocess.run([sys.executable, "-m", "moe_mlir", "run", paths["mlir"], "--weights",
                          paths["weights"], "-i", str(tmp_path / "x.npy"), "-o",
                          str(tmp_path / "y.npy"), "--count-ffn"],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    assert "ran forward in" in run.stdout and "expert FFN 0: rows per expert" in run.stdout
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), exported.compile()(x),
                               rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------
def _write_checkpoint(directory, layers=2, hidden=16, ffn=24, experts=4, null=2, k=2,
                      **moe_fields):
    config = {"format": "moe-mlir-checkpoint/1", "hidden_size": hidden, "num_layers": layers,
              "moe": {"ffn_size": ffn, "num_experts": experts, "num_null_experts": null,
                      "top_k": k, "normalize": "non_null", **moe_fields}}
    rng = np.random.default_rng(0)
    weights = {}
    for i in range(layers):
        weights[f"layers.{i}.router"] = rng.standard_normal((hidden, experts + null)).astype(np.float32)
        weights[f"layers.{i}.w_up"] = rng.standard_normal((experts, hidden, ffn)).astype(np.float32) / 4
        weights[f"layers.{i}.w_gate"] = rng.standard_normal((experts, hidden, ffn)).astype(np.float32) / 4
        weights[f"layers.{i}.w_down"] = rng.standard_normal((experts, ffn, hidden)).astype(np.float32) / 5
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    safetensors.save(os.path.join(directory, "w.safetensors"), weights)
    return config, weights


@pytest.mark.parametrize("embed", [False, True])
def test_checkpoint_round_trip(tmp_path, embed):
    """JSON + safetensors -> MLIR -> compiled, equal to the reference layer
    stack; weights as arguments or as dense_resource blobs."""
    config, weights = _write_checkpoint(str(tmp_path))
    exported = export_checkpoint(str(tmp_path / "config.json"), str(tmp_path / "w.safetensors"),
                                 embed_weights=embed)
    assert ("dense_resource" in exported.mlir) == embed
    assert (len(exported.weights) == 0) == embed
    x = np.random.default_rng(1).standard_normal((7, 16)).astype(np.float32)
    y = exported.compile()(x)
    h = x
    for i in range(2):
        h = h + ref.layer(h, weights[f"layers.{i}.router"], weights[f"layers.{i}.w_up"],
                          weights[f"layers.{i}.w_down"], ref.ExpertSpace(4, 2), 2,
                          w_gate=weights[f"layers.{i}.w_gate"], normalize="non_null")
    conformance.assert_close_rows(y, h)


def test_safetensors_round_trip(tmp_path):
    """The writer and reader agree on every supported dtype and keep order."""
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3),
               "b": np.array([1.5, -2], np.float16), "c": np.arange(4, dtype=np.int64),
               "d": np.zeros((0, 3), np.float32)}
    safetensors.save(str(tmp_path / "t.safetensors"), tensors, metadata={"k": "v"})
    back = safetensors.load(str(tmp_path / "t.safetensors"))
    assert list(back) == list(tensors)
    for name in tensors:
        np.testing.assert_array_equal(back[name], tensors[name])
        assert back[name].dtype == tensors[name].dtype
    assert safetensors.metadata(str(tmp_path / "t.safetensors")) == {"k": "v"}


@pytest.mark.parametrize("case,match", [
    ("missing_tensor", r"missing tensor 'layers\.1\.w_down' \(expected float \[4, 24, 16\]\)"),
    ("wrong_shape", r"tensor 'layers\.0\.router' has shape \[16, 5\], expected \[16, 6\]"),
    ("wrong_dtype", r"tensor 'layers\.0\.w_up' has dtype int32, expected a float type"),
    ("truncated", r"data_offsets .* lie outside|truncated"),
    ("extra_tensor", r"unexpected tensor\(s\) layers\.0\.typo"),
    ("not_safetensors", r"header length .* exceeds the file|not valid JSON"),
])
def test_malformed_weights(tmp_path, case, match):
    """Malformed weights give a precise ExportError naming the file and the
    tensor, never a crash."""
    _, weights = _write_checkpoint(str(tmp_path))
    path = str(tmp_path / "w.safetensors")
    if case == "missing_tensor":
        del weights["layers.1.w_down"]
    elif case == "wrong_shape":
        weights["layers.0.router"] = weights["layers.0.router"][:, :5].copy()
    elif case == "wrong_dtype":
        weights["layers.0.w_up"] = weights["layers.0.w_up"].astype(np.int32)
    elif case == "extra_tensor":
        weights["layers.0.typo"] = np.zeros(3, np.float32)
    safetensors.save(path, weights)
    if case == "truncated":
        data = open(path, "rb").read()
        open(path, "wb").write(data[:len(data) - 100])
    if case == "not_safetensors":
        open(path, "wb").write(b"\xff" * 64)
    with pytest.raises(ExportError, match=match):
        export_checkpoint(str(tmp_path / "config.json"), path)


@pytest.mark.parametrize("change,match", [
    ({"format": "other"}, r"field 'format' must be 'moe-mlir-checkpoint/1'"),
    ({"hidden_size": "big"}, r"field 'hidden_size' in the config must be a int"),
    ({"extra": 1}, r"unknown field\(s\) 'extra' in the config"),
    ({"moe": {"num_experts": 4}}, r"missing field 'ffn_size' in 'moe'"),
    ({"moe_fields": {"strategy": "top_q"}}, r"'strategy' must be one of"),
    ({"moe_fields": {"strategy": "top_p"}}, r"strategy 'top_p' requires 'p'"),
    ({"moe_fields": {"top_k": 9}}, r"'k' must be <= S = 6"),
    ({"moe_fields": {"activation": "swish"}}, r"field 'activation' must be silu"),
])
def test_malformed_config(tmp_path, change, match):
    """Malformed configs name the field and what was expected."""
    moe_fields = change.pop("moe_fields", {})
    if "top_p" in str(moe_fields):
        moe_fields = dict(moe_fields)
    _write_checkpoint(str(tmp_path), **moe_fields)
    path = tmp_path / "config.json"
    config = json.load(open(path))
    config.update(change)
    json.dump(config, open(path, "w"))
    with pytest.raises(ExportError, match=match):
        export_checkpoint(str(path), str(tmp_path / "w.safetensors"))


def test_unreadable_config(tmp_path):
    (tmp_path / "config.json").write_text("{ not json")
    with pytest.raises(ExportError, match=r"config\.json: not valid JSON"):
        export_checkpoint(str(tmp_path / "config.json"), str(tmp_path / "w.safetensors"))


# ---------------------------------------------------------------------------
# Modules that cannot be exported
# ---------------------------------------------------------------------------
class _GeluExpert(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w1 = torch.nn.Linear(8, 16, bias=False)
        self.w3 = torch.nn.Linear(8, 16, bias=False)
        self.w2 = torch.nn.Linear(16, 8, bias=False)
        self.act_fn = torch.nn.GELU()


class _Block(torch.nn.Module):
    def __init__(self, expert):
        super().__init__()
        self.gate = torch.nn.Linear(8, 2, bias=False)
        self.experts = torch.nn.ModuleList([expert(), expert()])
        self.top_k = 1


class _Unknown(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 8)


class _ConvExpert(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(8, 8, 1)


def test_unsupported_activation_is_named():
    with pytest.raises(ExportError, match=r"model\.experts\.0\.act_fn: activation GELU"):
        export(_Block(_GeluExpert))


def test_unknown_block_is_named():
    with pytest.raises(ExportError, match=r"model: not understood as a feed-forward block.*"
                                          r"found proj \(_Unknown\)"):
        export(_Unknown())


def test_unknown_expert_is_named():
    with pytest.raises(ExportError, match=r"model\.experts\.0: not a SwiGLU expert.*found conv"):
        export(_Block(_ConvExpert))


def test_biased_router_is_refused():
    block = mm.make_mixtral_moe(seed=0)
    block.gate = torch.nn.Linear(block.gate.in_features, block.gate.out_features, bias=True)
    with pytest.raises(ExportError, match=r"model\.gate: has a bias"):
        export(block)


def test_mismatch_is_reported_with_the_module_path():
    """If the module computes something else than its structure says (here:
    a Mixtral block that forgets to renormalise), export-time verification
    fails and names the module and what differs."""
    class NoRenorm(type(mm.make_mixtral_moe(seed=0))):
        def forward(self, hidden_states):
            x = hidden_states.reshape(-1, hidden_states.shape[-1])
            logits = self.gate(x)
            p = torch.softmax(logits, -1)
            w, i = torch.topk(p, self.top_k, -1)
            out = torch.zeros_like(x)
            for e, expert in enumerate(self.experts):
                t, j = torch.where(i == e)
                out.index_add_(0, t, expert(x[t]) * w[t, j, None])
            return out.reshape(hidden_states.shape), logits
    block = mm.make_mixtral_moe(seed=0)
    block.__class__ = NoRenorm
    with pytest.raises(ExportError, match=r"model: the exported graph does not reproduce the "
                                          r"module: 'output' for a probe input \[1, 1, 64\] "
                                          r"differs in 1 token\(s\) \(tokens \[0\]\), "
                                          r"max \|difference\| [0-9.e+-]+"):
        export(block)
