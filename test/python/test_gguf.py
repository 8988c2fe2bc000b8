"""GGUF files (llama.cpp's format), token ids to logits (moe_mlir.load_gguf).

The conversion tests write a Hugging Face folder (hf_fixtures), convert it
to GGUF the way llama.cpp's convert_hf_to_gguf.py does
(moe_mlir.export.gguf.convert_hf_folder: renamed tensors, stacked experts,
llama's q/k rows permuted for its rotary embedding, the key types its
loader expects), and load both:

* f32/f16/bf16 files give the same exported module and the same weights
  as the folder (so the same logits; one is compiled and compared);
* files with Q8_0/Q4_0 experts run them as tiles and are compared, under
  the contract's conformance rule (per row, |ours - ref| <= 1e-4 *
  max|ref row| + 1e-5), with hf_fixtures' PyTorch f32 model run on the
  values the file holds (dequantised experts, and everything else as
  stored).

The format itself is checked on the golden file ggml's C writer produced
(bytes in gguf_fixtures), and, where MOE_GGML_DIR names a built ggml
checkout, against ggml's C reader and writer through ctypes.
"""

import dataclasses
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import moe_mlir
from moe_mlir import quant
from moe_mlir.export import ExportError
from moe_mlir.export import gguf, hf as hf_module
from moe_mlir.export.gguf_file import GGUFError, GGUFFile, GGUFWriter, dequantize

import gguf_fixtures as gx
import hf_fixtures as fx


def _close(ours, ref):
    return fx.assert_logits_close(ours, ref)


def _same_export(a, b):
    """Two models with the same module and the same weights (bit for bit)."""
    assert a.exported.mlir == b.exported.mlir
    assert list(a.exported.weights) == list(b.exported.weights)
    for name, value in a.exported.weights.items():
        assert value.dtype == b.exported.weights[name].dtype, name
        np.testing.assert_array_equal(value, b.exported.weights[name], err_msg=name)


def _convert(tmp_path, arch, dtype="F32", outtype="f32", expert_type=None, name="m",
             legacy=False, **overrides):
    folder = str(tmp_path / name)
    config, tensors = gx.build_folder(folder, arch, dtype=dtype, **overrides)
    path = gguf.convert_hf_folder(folder, str(tmp_path / f"{name}.gguf"), outtype=outtype,
                                  expert_type=expert_type, legacy_experts=legacy)
    return folder, path, config, tensors


# ---------------------------------------------------------------------------
# The format
# ---------------------------------------------------------------------------
def test_golden_file_of_ggml(tmp_path):
    """SPEC §2.6: 192 bytes written by ggml's C API; read, and written back
    byte for byte."""
    path = tmp_path / "tiny.gguf"
    path.write_bytes(gx.TINY_GGUF)
    with GGUFFile(str(path)) as f:
        assert f.version == 3 and f.alignment == 32 and f.data_start == 160
        assert f.metadata == {"general.architecture": "llama", "llama.block_count": 1}
        assert f.value_types == {"general.architecture": "STRING",
                                 "llama.block_count": "UINT32"}
        info = f.info("w")
        assert (info.ne, info.type, info.offset, info.nbytes) == ((3, 2), "F32", 0, 24)
        np.testing.assert_array_equal(f.get("w"), np.arange(6, dtype=np.float32).reshape(2, 3))
    w = GGUFWriter()
    w.add_str("general.architecture", "llama")
    w.add_u32("llama.block_count", 1)
    w.add_tensor("w", np.arange(6, dtype=np.float32).reshape(2, 3))
    w.write(str(tmp_path / "again.gguf"))
    assert (tmp_path / "again.gguf").read_bytes() == gx.TINY_GGUF


def test_every_value_type_and_a_custom_alignment(tmp_path):
    w = GGUFWriter(alignment=64)
    scalars = {"UINT8": 200, "INT8": -100, "UINT16": 60000, "INT16": -30000,
               "UINT32": 4_000_000_000, "INT32": -2_000_000_000, "FLOAT32": 0.5,
               "BOOL": True, "STRING": "grüße", "UINT64": 2**63 + 5, "INT64": -2**62,
               "FLOAT64": 1e-300}
    for vtype, value in scalars.items():
        w.add(f"s.{vtype.lower()}", value, vtype)
        if vtype != "STRING":
            w.add(f"a.{vtype.lower()}", [value, value], "ARRAY", vtype)
    w.add("a.string", ["x", "", "ÿ"], "ARRAY", "STRING")
    w.add("a.empty", [], "ARRAY", "INT32")
    w.add_tensor("f16", np.array([[1.5, -2.0]], np.float32), "F16")
    w.add_tensor("bf16", np.array([3.0, 0.1], np.float32), "BF16")
    w.add_tensor("q", np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32), "Q8_0")
    w.write(str(tmp_path / "t.gguf"))
    with GGUFFile(str(tmp_path / "t.gguf")) as f:
        assert f.alignment == 64 and f.value_types["general.alignment"] == "UINT32"
        assert f.data_start % 64 == 0 and all(t.offset % 64 == 0 for t in f.tensors.values())
        for vtype, value in scalars.items():
            key = f"s.{vtype.lower()}"
            assert f.value_types[key] == vtype
            assert f.metadata[key] == (np.float32(value) if vtype == "FLOAT32" else value)
            if vtype != "STRING":
                assert f.value_types[f"a.{vtype.lower()}"] == f"ARRAY[{vtype}]"
                assert list(f.metadata[f"a.{vtype.lower()}"]) == [value, value]
        assert f.metadata["a.string"] == ["x", "", "ÿ"] and len(f.metadata["a.empty"]) == 0
        np.testing.assert_array_equal(f.get("f16"), [[1.5, -2.0]])
        np.testing.assert_array_equal(f.get("bf16"), [3.0, fx.from_bf16_bits(
            fx.to_bf16_bits(np.float32([0.1])))[0]])
        x = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
        np.testing.assert_array_equal(f.blocks("q"), quant.quantize_blocks(x, "q8_0"))
        np.testing.assert_array_equal(f.get("q"), quant.dequantize_blocks(
            quant.quantize_blocks(x, "q8_0"), "q8_0"))


def test_q4_k_dequantization_matches_ggml(tmp_path):
    """SPEC §1.9's golden Q4_K block (ggml d99724f's quantize_row_q4_K_ref of
    x[i] = sinf(0.37 i)(1 + i%7) - 0.25) dequantizes as ggml's
    dequantize_row_q4_K."""
    block = bytes.fromhex(
        "d7234a2ff9faf4f6fdf9effcd969ffd438597a7c9daecec8c8b7757351302706"
        "06686a7c9fb9dafa8a9996836735146424037364676a87b9ea9babbac8b69563"
        "726040313636588a9cbecfe7f8e79583b775635130170607686a7d9fb9dafa8a"
        "888673573504644446485879ab8c9dadabbbcac8b79665836252333747699aac"
        "bddef8f8f79694725036150576787a9d")
    y = dequantize(np.frombuffer(block, np.uint8), "Q4_K", (256,))
    # ... and as a tensor of a file ([256, 2]: two rows, the block twice).
    w = GGUFWriter()
    w.add_raw_tensor("k", (256, 2), "Q4_K", block * 2)
    w.write(str(tmp_path / "k.gguf"))
    with GGUFFile(str(tmp_path / "k.gguf")) as f:
        assert f.info("k").nbytes == 288
        np.testing.assert_array_equal(f.get("k"), np.stack([y, y]))
    golden = np.float32(["0.0349731445", "0.90776825", "1.78056335", "3.52615356",
                         "4.39894867", "5.27174377", "5.27174377", "0.0349731445"])
    np.testing.assert_array_equal(y[:8], golden)
    i = np.arange(256, dtype=np.float32)
    x = (np.sin(np.float32(0.37) * i).astype(np.float32) * (1 + np.arange(256) % 7)
         - np.float32(0.25)).astype(np.float32)
    assert abs(np.sqrt(np.mean((y.astype(np.float64) - x) ** 2)) - 0.224078824) < 1e-6


def test_q6_k_dequantization_matches_ggml():
    """A Q6_K block produced by ggml d99724f's quantize_row_q6_K_ref (built
    here, no FMA) from the same input, and what its dequantize_row_q6_K
    returned (first and last 8 values, sum and sum of squares in f64)."""
    block = bytes.fromhex(
        "4f92981f15a9c821801c058d9540cb894791b87c301cb745b64d17d5c6fb51f4"
        "9e04af71669d03a7573180cdd6ae36805fb43491ba81f710dd5aca4e0621fc06"
        "5c55fd36d17bf97b100851dbf36709a7adcc2f3800a71b880faf7f77ae15b061"
        "52c12439e1281dae34a430195017f04d960651886d110ab542c24701bea2b81e"
        "3136767a6b4b9f9ece8d898494a0a171bebaf9f8e4e59191454506171a1e6fab"
        "b5b9e8e89c9d4d4d4a0a0b17166272b6b9faebe6e393974746151519586868b8"
        "846994743f72865e804d7593a385b0856a97")
    y = dequantize(np.frombuffer(block, np.uint8), "Q6_K", (256,))
    np.testing.assert_array_equal(y[:8], np.float32(
        ["-0.224449158", "0.448898315", "1.79559326", "3.36673737", "4.71343231",
         "5.61122894", "5.38677979", "0.224449158"]))
    np.testing.assert_array_equal(y[-8:], np.float32(
        ["-2.67166901", "-4.45278168", "-6.23389435", "-7.12445068", "-1.11319542",
         "-1.3358345", "-1.11319542", "0.222639084"]))
    assert y.astype(np.float64).sum() == -63.184247970581055
    assert (y.astype(np.float64) ** 2).sum() == 2613.0006216190195


# ---------------------------------------------------------------------------
# Hugging Face folder -> GGUF -> the same model
# ---------------------------------------------------------------------------
# The key types llama.cpp's loader insists on (SPEC §3.1).
_KEY_TYPES = {"general.architecture": "STRING", "general.file_type": "UINT32",
              "{a}.context_length": "UINT32", "{a}.embedding_length": "UINT32",
              "{a}.block_count": "UINT32", "{a}.feed_forward_length": "UINT32",
              "{a}.attention.head_count": "UINT32", "{a}.attention.head_count_kv": "UINT32",
              "{a}.rope.freq_base": "FLOAT32", "{a}.attention.layer_norm_rms_epsilon": "FLOAT32",
              "{a}.expert_count": "UINT32", "{a}.expert_used_count": "UINT32",
              "tokenizer.ggml.model": "STRING"}
_ARCH_KEYS = {"llama": {"{a}.vocab_size": "UINT32", "{a}.rope.dimension_count": "UINT32"},
              "qwen2moe": {"{a}.expert_feed_forward_length": "UINT32",
                           "{a}.expert_shared_feed_forward_length": "UINT32"},
              "qwen3moe": {"{a}.expert_feed_forward_length": "UINT32",
                           "{a}.attention.key_length": "UINT32",
                           "{a}.attention.value_length": "UINT32"},
              "olmoe": {}}


@pytest.mark.parametrize("arch", list(gx.MODELS))
def test_f32_file_is_the_folders_model(tmp_path, arch):
    folder, path, config, tensors = _convert(tmp_path, arch)
    a = gguf._GGUF_ARCH[arch]
    with GGUFFile(path) as f:
        assert next(iter(f.metadata)) == "general.architecture" and f.metadata[
            "general.architecture"] == a
        for key, vtype in dict(_KEY_TYPES, **_ARCH_KEYS[a]).items():
            assert f.value_types[key.format(a=a)] == vtype, key
        assert f.info("blk.0.ffn_up_exps.weight").ne == (64, 32, config.get(
            "num_experts", config.get("num_local_experts")))
        assert f.info("blk.1.ffn_down_exps.weight").ne[:2] == (32, 64)
        assert f.info("blk.0.ffn_gate_inp.weight").type == "F32"
        # llama's q/k rows within each head: row 2k + s holds row s*hd/2 + k.
        nh, nkv = config["num_attention_heads"], config["num_key_value_heads"]
        hd = config.get("head_dim") or 64 // nh
        for proj, heads in (("q", nh), ("k", nkv)):
            stored = f.get(f"blk.0.attn_{proj}.weight")
            hf_rows = tensors[f"model.layers.0.self_attn.{proj}_proj.weight"]
            if a != "llama":
                np.testing.assert_array_equal(stored, hf_rows)
                continue
            for h in range(heads):
                for k in range(hd // 2):
                    for s in (0, 1):
                        np.testing.assert_array_equal(stored[h * hd + 2 * k + s],
                                                      hf_rows[h * hd + s * hd // 2 + k])
    from_gguf = moe_mlir.load_gguf(path)
    from_hf = moe_mlir.load_hf(folder)
    # The same fields (GGUF holds the norms' epsilon as f32).
    assert np.float32(from_gguf.config.eps) == np.float32(from_hf.config.eps)
    assert dataclasses.replace(from_gguf.config, eps=from_hf.config.eps) == from_hf.config
    _same_export(from_gguf, from_hf)
    if arch == "mixtral":   # the permuted one, compiled: the same logits as the folder's
        ids = np.random.default_rng(1).integers(0, 100, (2, 5))
        ours = from_gguf(ids)
        np.testing.assert_array_equal(ours, from_hf(ids))
        _close(ours, fx.reference_logits(config, tensors, ids))


@pytest.mark.parametrize("arch,dtype", [("mixtral", "BF16"), ("qwen2_moe", "F16")])
def test_f16_and_bf16_files(tmp_path, arch, dtype):
    """Matrices stored as the folder's 16-bit type, norms and the router
    in F32 (the converter's rule); tied embeddings: no output.weight."""
    folder, path, _, _ = _convert(tmp_path, arch, dtype=dtype, outtype=dtype.lower(),
                                  tie_word_embeddings=True)
    with GGUFFile(path) as f:
        assert "output.weight" not in f
        assert f.info("blk.0.attn_q.weight").type == dtype
        assert f.info("blk.0.ffn_gate_exps.weight").type == dtype
        assert f.info("blk.0.attn_norm.weight").type == "F32"
        assert f.info("blk.0.ffn_gate_inp.weight").type == "F32"
    _same_export(moe_mlir.load_gguf(path), moe_mlir.load_hf(folder))


def _stored(name: str, value: np.ndarray, outtype: str, expert_type) -> np.ndarray:
    """What a file written with ``outtype``/``expert_type`` holds for the HF
    tensor ``name``, as f32 (the converter's rule, written out here)."""
    if ".experts." in name:
        kind = expert_type
    elif value.ndim == 1 or name.endswith("norm.weight") or name.endswith(".bias") \
            or name.endswith(".gate.weight"):
        kind = "f32"
    else:
        kind = outtype
        if kind == "q8_0" and value.shape[-1] % 32:
            kind = "f16"
    if kind in ("q8_0", "q4_0"):
        return quant.dequantize_blocks(quant.quantize_blocks(value, kind), kind)
    return fx.stored_values({name: value}, kind.upper())[name]


QUANTIZED = [("mixtral", "q8_0", "q4_0"), ("qwen2_moe", "f32", "q8_0"),
             ("qwen3_moe", "bf16", "q4_0"), ("olmoe", "f16", "q8_0")]


@pytest.mark.parametrize("arch,outtype,expert_type", QUANTIZED)
def test_quantized_experts_run_as_tiles(tmp_path, arch, outtype, expert_type):
    folder, path, config, tensors = _convert(tmp_path, arch, outtype=outtype,
                                             expert_type=expert_type)
    model = moe_mlir.load_gguf(path)
    assert f"packed quant = {expert_type}" in model.exported.mlir
    e = config.get("num_experts", config.get("num_local_experts"))
    tile = quant.TILE_BYTES[expert_type]
    up = [v for n, v in model.exported.weights.items() if n.endswith(".moe.w_up")]
    down = [v for n, v in model.exported.weights.items() if n.endswith(".moe.w_down")]
    assert up[0].dtype == np.int8 and up[0].shape == (2, e, 1, 2, tile)      # [L, E, F/32, H/32, B]
    assert down[0].shape == (2, e, 2, 1, tile)
    held = {n: _stored(n, v, outtype, expert_type) for n, v in tensors.items()}
    ids = np.random.default_rng(2).integers(0, 100, (2, 6))
    ours = model(ids)
    _close(ours, fx.reference_logits(config, held, ids))
    if arch == "qwen3_moe":
        # The kernel on the tiles equals the f32 model on the dequantised
        # weights bit for bit.
        fx.write_folder(str(tmp_path / "held"), config, held, "F32")
        np.testing.assert_array_equal(ours, moe_mlir.load_hf(str(tmp_path / "held"))(ids))


def test_mixed_expert_formats_are_dequantized(tmp_path):
    """Q4_0 gate/up with Q8_0 down (one quant attribute per moe op): all
    three dequantized to f32, nothing re-quantised."""
    types = {"gate": "q4_0", "up": "q4_0", "down": "q8_0"}
    folder, path, config, tensors = _convert(tmp_path, "qwen2_moe", expert_type=types)
    with GGUFFile(path) as f:
        assert [f.info(f"blk.0.ffn_{p}_exps.weight").type for p in types] == \
            ["Q4_0", "Q4_0", "Q8_0"]
    model = moe_mlir.load_gguf(path)
    assert "quant =" not in model.exported.mlir
    held = {}
    for name, value in tensors.items():
        kind = next((t for p, t in types.items() if f".{p}_proj." in name and ".experts." in name),
                    None)
        held[name] = _stored(name, value, "f32", kind) if kind else value
    fx.write_folder(str(tmp_path / "held"), config, held, "F32")
    _same_export(model, moe_mlir.load_hf(str(tmp_path / "held")))


@pytest.mark.parametrize("expert_type", [None, "q8_0"])
def test_legacy_per_expert_mixtral_tensors(tmp_path, expert_type):
    """Older Mixtral files: blk.N.ffn_{gate,up,down}.E.weight, one per expert."""
    _, merged, _, _ = _convert(tmp_path, "mixtral", expert_type=expert_type, name="merged")
    _, legacy, _, _ = _convert(tmp_path, "mixtral", expert_type=expert_type, name="legacy",
                               legacy=True)
    with GGUFFile(legacy) as f:
        assert "blk.1.ffn_down.3.weight" in f and "blk.1.ffn_down_exps.weight" not in f
        assert f.info("blk.1.ffn_down.3.weight").ne == (32, 64)
    _same_export(moe_mlir.load_gguf(legacy), moe_mlir.load_gguf(merged))


def test_per_layer_head_count_arrays(tmp_path):
    """head_count as a per-layer INT32 array (gguf-py's default int type)."""
    _, path, _, _ = _convert(tmp_path, "olmoe")
    gx.rewrite(path, str(tmp_path / "b.gguf"),
               kv={"olmoe.attention.head_count": ([4, 4], "ARRAY", "INT32")})
    _same_export(moe_mlir.load_gguf(str(tmp_path / "b.gguf")), moe_mlir.load_gguf(path))


def test_quantized_moe_spec_compiles_on_its_own():
    """MoESpec.weight_quant in general: layers of two formats (two layer
    functions), the moe.route/dispatch/expert_ffn/combine form
    (input_scale) and weights embedded as resources; equal to the f32
    spec on the dequantised weights."""
    from moe_mlir.export.graph import LayerSpec, ModelSpec, emit
    from moe_mlir.export.layers import MoESpec
    from moe_mlir.routing import RoutingConfig
    rng = np.random.default_rng(5)
    H, F, E = 64, 32, 4

    def spec(fmt, scale):
        w = {n: rng.standard_normal(s).astype(np.float32) / 8
             for n, s in (("up", (E, H, F)), ("gate", (E, H, F)), ("down", (E, F, H)))}
        tiles = {n: quant.quantize_weights(v, fmt) for n, v in w.items()}
        f32 = {n: quant.dequantize_tiles(tiles[n], fmt, v.shape[2]) for n, v in w.items()}
        router = rng.standard_normal((H, E)).astype(np.float32)
        moe = lambda weights, q: MoESpec(  # noqa: E731
            hidden=H, ffn=F, routing=RoutingConfig(E, 2, normalize="selected"), w_router=router,
            w_up=weights["up"], w_gate=weights["gate"], w_down=weights["down"],
            weight_quant=q, input_scale=scale)
        return moe(tiles, fmt), moe(f32, None)

    a, a_f32 = spec("q8_0", 1.0)
    b, b_f32 = spec("q4_0", 0.5)
    layers = lambda x, y: [LayerSpec("l0", x), LayerSpec("l1", y)]  # noqa: E731
    quantized = emit(ModelSpec(H, layers(a, b)), embed_weights=True)
    assert "quant = q8_0" in quantized.mlir and "quant = q4_0" in quantized.mlir
    assert "dense_resource" in quantized.mlir and not quantized.weights
    x = rng.standard_normal((9, H)).astype(np.float32)
    np.testing.assert_array_equal(quantized.compile()(x),
                                  emit(ModelSpec(H, layers(a_f32, b_f32))).compile()(x))


# ---------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------
def test_moe_run_takes_a_gguf_file(tmp_path, capsys):
    from moe_mlir.run import main
    _, path, config, tensors = _convert(tmp_path, "olmoe", expert_type="q8_0")
    ids = np.array([[0, 5, 9], [99, 2, 2]])
    np.save(tmp_path / "ids.npy", ids)
    out = str(tmp_path / "logits.npy")
    assert main([path, "--ids", str(tmp_path / "ids.npy"), "-o", out]) == 0
    held = {n: _stored(n, v, "f32", "q8_0") for n, v in tensors.items()}
    _close(np.load(out), fx.reference_logits(config, held, ids))
    assert main([path]) == 2
    assert "is a GGUF file: give the token ids with --ids" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.array([[100]]))
    assert main([path, "--ids", str(tmp_path / "bad.npy")]) == 2
    assert "token id 100 is outside [0, 100) (the rows of token_embd.weight" in \
        capsys.readouterr().err
    assert main([str(tmp_path / "absent.gguf"), "--ids", str(tmp_path / "ids.npy")]) == 2
    assert "absent.gguf: cannot read" in capsys.readouterr().err


def test_quantized_experts_need_the_cpu_target(tmp_path):
    _, path, _, _ = _convert(tmp_path, "mixtral", expert_type="q4_0")
    with pytest.raises(ValueError, match="Q4_0 run on target 'cpu' only"):
        moe_mlir.load_gguf(path, target="gpu-emulated")


def test_reading_needs_no_torch(tmp_path):
    _, path, _, _ = _convert(tmp_path, "qwen3_moe", expert_type="q4_0")
    code = ("import sys, moe_mlir; m = moe_mlir.load_gguf(sys.argv[1]); "
            "assert 'torch' not in sys.modules, sorted(k for k in sys.modules if 'torch' in k)")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    subprocess.run([sys.executable, "-c", code, path], check=True, env=env)


def test_larger_than_memory_is_refused_before_reading(tmp_path, monkeypatch):
    _, path, _, _ = _convert(tmp_path, "mixtral", expert_type="q8_0")
    monkeypatch.setattr(hf_module, "_available_bytes", lambda: 1000)
    with pytest.raises(GGUFError, match="GiB .f32, quantized experts as stored. but only"):
        moe_mlir.load_gguf(path)


# ---------------------------------------------------------------------------
# Bad files: a GGUFError naming the key or tensor
# ---------------------------------------------------------------------------
def _expect(path, *needles):
    with pytest.raises(GGUFError) as info:
        moe_mlir.load_gguf(str(path))
    assert isinstance(info.value, ExportError) and isinstance(info.value, ValueError)
    for needle in needles:
        assert needle in str(info.value), str(info.value)
    return str(info.value)


def _tiny(tmp_path, patch=None, cut=None):
    data = bytearray(gx.TINY_GGUF)
    for offset, raw in (patch or {}).items():
        data[offset:offset + len(raw)] = raw
    path = tmp_path / "bad.gguf"
    path.write_bytes(bytes(data[:cut]))
    return path


_U32 = lambda v: struct.pack("<I", v)   # noqa: E731
_U64 = lambda v: struct.pack("<Q", v)   # noqa: E731
# Offsets in the golden file (SPEC §2.6).
_VERSION, _KEY1_TYPE = 4, 0x5E
_T_NDIMS, _T_NE0, _T_TYPE, _T_OFFSET = 0x6F, 0x73, 0x83, 0x87

FORMAT_ERRORS = [
    ({0: b"GGUX"}, None, ["bad magic", "not a GGUF file"]),
    ({_VERSION: _U32(1)}, None, ["GGUF version 1 is not supported"]),
    ({_VERSION: struct.pack(">I", 3)}, None, ["big-endian"]),
    ({}, 2, ["truncated", "the magic"]),
    ({}, 30, ["truncated", "the key of metadata pair #0"]),
    ({}, 0x60, ["truncated", "the type of key 'llama.block_count'"]),
    ({}, 0x70, ["truncated", "tensor 'w'"]),
    ({}, 0xB0, ["tensor 'w' (F32, ne = [3, 2]: 24 bytes at data offset 0) extends past the end"]),
    ({0x38: _U64(10**6)}, None, ["truncated", "the value of key 'general.architecture'"]),
    ({0x40: b"\xff"}, None, ["the value of key 'general.architecture' is not UTF-8"]),
    ({_KEY1_TYPE: _U32(13)}, None, ["key 'llama.block_count' has unknown value type 13"]),
    ({_T_TYPE: _U32(99)}, None, ["tensor 'w' has unknown type 99"]),
    ({_T_TYPE: _U32(13)}, None, ["tensor 'w' has type Q5_K, which is not supported"]),
    ({_T_TYPE: _U32(8)}, None, ["tensor 'w': ne[0] = 3 is not a multiple of 32, the block "
                                "size of Q8_0"]),
    ({_T_OFFSET: _U64(4)}, None, ["tensor 'w': offset 4 is not a multiple of the alignment 32"]),
    ({_T_OFFSET: _U64(64)}, None, ["tensor 'w'", "extends past the end of the file"]),
    ({_T_NE0: _U64(300)}, None, ["tensor 'w'", "extends past the end of the file"]),
    ({_T_NDIMS: _U32(5)}, None, ["tensor 'w' has 5 dimensions"]),
    ({0x10: _U64(2**40)}, None, ["header declares 1099511627776 metadata pairs"]),
]


@pytest.mark.parametrize("patch,cut,needles", FORMAT_ERRORS,
                         ids=[n[0].split("'")[1] if "'" in n[0] else n[0][:24]
                              for _, _, n in FORMAT_ERRORS])
def test_malformed_files(tmp_path, patch, cut, needles):
    _expect(_tiny(tmp_path, patch, cut), "bad.gguf", *needles)


def _written(tmp_path, build):
    w = GGUFWriter()
    build(w)
    path = str(tmp_path / "w.gguf")
    w.write(path)
    return path, bytearray(open(path, "rb").read())


def test_duplicates_nesting_alignment_and_names(tmp_path):
    # A key twice (written as "a.x", "a.y", then renamed in place).
    path, data = _written(tmp_path, lambda w: (w.add_u32("a.x", 1), w.add_u32("a.y", 2)))
    at = data.rindex(b"a.y")
    data[at:at + 3] = b"a.x"
    open(path, "wb").write(data)
    _expect(path, "key 'a.x' appears twice")
    # A tensor twice.
    z = np.zeros(2, np.float32)
    path, data = _written(tmp_path, lambda w: (w.add_tensor("t1", z), w.add_tensor("t2", z)))
    at = data.rindex(b"t2")
    data[at:at + 2] = b"t1"
    open(path, "wb").write(data)
    _expect(path, "tensor 't1' appears twice")
    # Two tensors overlapping: the first one's shape says more bytes than
    # its slot holds.
    path, data = _written(tmp_path, lambda w: (w.add_tensor("t1", np.zeros(8, np.float32)),
                                               w.add_tensor("t2", np.zeros(8, np.float32))))
    at = data.index(b"t1") + 2 + 4
    data[at:at + 8] = _U64(16)          # ne[0] of t1: 16 values = 64 bytes, slot of 32
    open(path, "wb").write(data)
    _expect(path, "tensor 't1' (F32, ne = [16]: 64 bytes at data offset 0) overlaps tensor 't2'")
    # An array of arrays.
    path, data = _written(tmp_path, lambda w: w.add("a.n", [1], "ARRAY", "UINT8"))
    at = data.index(b"a.n") + 3 + 4
    data[at:at + 4] = _U32(9)
    open(path, "wb").write(data)
    _expect(path, "key 'a.n' is an array of arrays")
    # general.alignment: u32, a power of two.
    path, _ = _written(tmp_path, lambda w: w.add("general.alignment", 32, "INT32"))
    _expect(path, "key 'general.alignment' has type INT32, expected UINT32")
    path, _ = _written(tmp_path, lambda w: w.add("general.alignment", 48, "UINT32"))
    _expect(path, "key 'general.alignment' is 48: must be a power of two")
    # A name longer than ggml allows.
    path, _ = _written(tmp_path, lambda w: w.add_tensor("n" * 64, z))
    _expect(path, f"tensor '{'n' * 64}': name of 64 bytes")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A valid Mixtral (llama) file with Q8_0 experts to break."""
    tmp = tmp_path_factory.mktemp("gguf")
    _, path, _, _ = _convert(tmp, "mixtral", expert_type="q8_0")
    return path


_F32 = lambda n: ((n,), "F32", np.zeros(n, np.float32).tobytes())   # noqa: E731
MODEL_ERRORS = [
    (dict(kv={"llama.block_count": None}), ["key 'llama.block_count' is missing"]),
    (dict(kv={"llama.block_count": (2, "INT32")}),
     ["key 'llama.block_count' has type INT32, expected UINT32"]),
    (dict(kv={"llama.attention.layer_norm_rms_epsilon": (1e-5, "FLOAT64")}),
     ["key 'llama.attention.layer_norm_rms_epsilon' has type FLOAT64, expected FLOAT32"]),
    (dict(kv={"llama.attention.head_count": ([4, 8], "ARRAY", "INT32")}),
     ["key 'llama.attention.head_count' gives per-layer values [4, 8]"]),
    (dict(kv={"llama.attention.head_count_kv": (3, "UINT32")}),
     ["key 'llama.attention.head_count_kv' (3) must divide"]),
    (dict(kv={"llama.rope.dimension_count": (8, "UINT32")}),
     ["key 'llama.rope.dimension_count' (8)", "partial rotary"]),
    (dict(kv={"general.architecture": ("deepseek2", "STRING")}),
     ["key 'general.architecture' is 'deepseek2'"]),
    (dict(kv={"llama.expert_count": (0, "UINT32")}),
     ["key 'llama.expert_count' is missing or 0: a dense model"]),
    (dict(kv={"llama.expert_used_count": (5, "UINT32")}),
     ["key 'llama.expert_used_count' (5) must be in [1, 4]"]),
    (dict(kv={"llama.rope.scaling.type": ("yarn", "STRING")}),
     ["key 'llama.rope.scaling.type' is 'yarn'"]),
    (dict(kv={"llama.rope.scaling.factor": (4.0, "FLOAT32")}),
     ["key 'llama.rope.scaling.factor' is 4.0"]),
    (dict(kv={"tokenizer.ggml.tokens": (["a", "b"], "ARRAY", "STRING")}),
     ["key 'tokenizer.ggml.tokens' has 2 tokens but 'token_embd.weight' has 100 rows"]),
    (dict(kv={"llama.vocab_size": (99, "UINT32")}), ["key 'llama.vocab_size' is 99"]),
    (dict(tensors={"blk.1.ffn_down_exps.weight": None}),
     ["tensor 'blk.1.ffn_down_exps.weight' is missing"]),
    (dict(tensors={"token_embd.weight": None}), ["tensor 'token_embd.weight' is missing"]),
    (dict(tensors={"blk.0.ffn_norm.weight": _F32(32)}),
     ["tensor 'blk.0.ffn_norm.weight' has ne [32] (ggml order), expected [64]"]),
    (dict(tensors={"blk.0.ffn_up_exps.weight": ((64, 32, 3), "Q8_0", bytes(34 * 2 * 32 * 3))}),
     ["tensor 'blk.0.ffn_up_exps.weight' has ne [64, 32, 3] (ggml order), expected "
      "[64, 32, 4]"]),
    (dict(tensors={"blk.0.extra.weight": _F32(4)}),
     ["tensor 'blk.0.extra.weight' is not part of a llama model"]),
    (dict(tensors={"rope_freqs.weight": _F32(8)}), ["tensor 'rope_freqs.weight'"]),
]


@pytest.mark.parametrize("change,needles", MODEL_ERRORS,
                         ids=[n[0].split("'")[1] for _, n in MODEL_ERRORS])
def test_bad_model_files(tmp_path, model_file, change, needles):
    path = gx.rewrite(model_file, str(tmp_path / "bad.gguf"), **change)
    _expect(path, "bad.gguf", *needles)


def test_the_intact_file_loads(model_file, tmp_path):
    """The rewriting itself changes nothing."""
    again = gx.rewrite(model_file, str(tmp_path / "same.gguf"))
    assert open(again, "rb").read() == open(model_file, "rb").read()
    moe_mlir.load_gguf(again)


CONVERTER_REFUSALS = [
    ("qwen2_moe", dict(norm_topk_prob=True), "'norm_topk_prob' is true"),
    ("qwen3_moe", dict(attention_bias=True), "'attention_bias' is true"),
    ("olmoe", dict(clip_qkv=0.5), "'clip_qkv' is 0.5"),
    ("qwen3_moe", dict(mlp_only_layers=[0]), "dense layers"),
]


@pytest.mark.parametrize("arch,overrides,needle", CONVERTER_REFUSALS)
def test_what_llama_cpp_cannot_hold_is_not_converted(tmp_path, arch, overrides, needle):
    with pytest.raises(ExportError, match=None) as info:
        _convert(tmp_path, arch, **overrides)
    assert needle in str(info.value) and "config.json" in str(info.value)


# ---------------------------------------------------------------------------
# ggml's own reader and writer (MOE_GGML_DIR)
# ---------------------------------------------------------------------------
_GGML = gx.find_ggml()


@pytest.mark.skipif(_GGML is None, reason="MOE_GGML_DIR does not name a built ggml checkout "
                                          "(with libggml-base.so): ggml's gguf C API not "
                                          "available")
@pytest.mark.parametrize("arch,expert_type", [("mixtral", "q8_0"), ("qwen2_moe", "q4_0")])
def test_ggml_reads_our_files_and_we_read_its(tmp_path, arch, expert_type):
    ggml = gx.GGML(_GGML)
    _, ours, _, _ = _convert(tmp_path, arch, expert_type=expert_type)
    seen = ggml.read(ours)
    with GGUFFile(ours) as f:
        assert seen["keys"] == [(k, _type_id(f.value_types[k])) for k in f.metadata]
        assert seen["tensors"] == [(n, t.type, t.offset) for n, t in f.tensors.items()]
        assert seen["data_offset"] == f.data_start
        theirs = str(tmp_path / "ggml.gguf")
        ggml.write(f, theirs)
    with GGUFFile(ours) as a, GGUFFile(theirs) as b:
        assert list(a.metadata) == list(b.metadata) and a.value_types == b.value_types
        for key, value in a.metadata.items():
            assert np.array_equal(value, b.metadata[key]) if isinstance(value, np.ndarray) \
                else value == b.metadata[key], key
        for name, t in a.tensors.items():
            u = b.tensors[name]
            assert (u.type, u.offset, u.nbytes) == (t.type, t.offset, t.nbytes)
            assert gguf.same_ne(u.ne, t.ne)
            np.testing.assert_array_equal(a.raw(name), b.raw(name))
    if arch == "mixtral":   # no trailing 1s in any shape: the same bytes
        assert open(theirs, "rb").read() == open(ours, "rb").read()
    _same_export(moe_mlir.load_gguf(theirs), moe_mlir.load_gguf(ours))


@pytest.mark.skipif(_GGML is None, reason="MOE_GGML_DIR does not name a built ggml checkout "
                                          "(with libggml-base.so): ggml's dequantizers not "
                                          "available")
@pytest.mark.parametrize("type_name,block_bytes", [("Q4_K", 144), ("Q6_K", 210),
                                                   ("Q8_0", 34), ("Q4_0", 18)])
def test_dequantization_matches_ggml_on_random_blocks(type_name, block_bytes):
    import ctypes
    lib = gx.GGML(_GGML).lib
    rng = np.random.default_rng(7)
    count = 64 * (256 // (256 if type_name.endswith("K") else 32))
    raw = rng.integers(0, 256, (count, block_bytes), dtype=np.uint8)
    scales = {"Q4_K": slice(0, 4), "Q6_K": slice(208, 210)}.get(type_name, slice(0, 2))
    halves = rng.uniform(-2, 2, raw[:, scales].size // 2).astype("<f2")
    raw[:, scales] = np.frombuffer(halves.tobytes(), np.uint8).reshape(count, -1)
    values = 256 * 64
    out = np.zeros(values, np.float32)
    getattr(lib, f"dequantize_row_{type_name.lower().replace('_k', '_K')}")(
        ctypes.c_void_p(raw.ctypes.data), ctypes.c_void_p(out.ctypes.data),
        ctypes.c_int64(values))
    np.testing.assert_array_equal(dequantize(raw.reshape(-1), type_name, (values,)), out)


def _type_id(name: str) -> int:
    from moe_mlir.export.gguf_file import VALUE_TYPE_IDS
    return VALUE_TYPE_IDS["ARRAY" if name.startswith("ARRAY") else name]
