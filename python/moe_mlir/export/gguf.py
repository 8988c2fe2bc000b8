"""GGUF MoE models (llama.cpp's files) -> a model from token ids to logits.

Architectures (``general.architecture``): ``qwen2moe``, ``qwen3moe``,
``olmoe`` and ``llama`` with experts (Mixtral). A file is read into the same
``HFConfig`` and, through a reader that presents its tensors under the
Hugging Face names, into the same ``ModelSpec`` as a Hugging Face folder
(``hf.build_model``): what is computed is the Hugging Face model's forward
pass, and llama.cpp's conventions are mapped onto it:

* metadata keys, their types and defaults as llama.cpp's loader reads them
  (ggml-org/llama.cpp ``src/llama-arch.cpp`` at
  00395eb285c7c6821ff372e3ca41dae9da33c2c7, ``src/llama-model.cpp`` at
  00342301d01add50835550e8a916f12097d94517: ``load_hparams``,
  ``load_tensors``, ``llama_model_rope_type``);
* tensor names and shapes (``LLM_TENSOR_NAMES``; ``gguf-py/gguf/
  tensor_mapping.py`` for the Hugging Face names), merged expert tensors
  ``blk.N.ffn_{gate,up,down}_exps`` ([in, out, E] in ggml order) and the
  older per-expert ``blk.N.ffn_{gate,up,down}.E`` of Mixtral files;
* ``llama`` files store ``attn_q``/``attn_k`` with the rows of each head
  permuted for llama.cpp's normal (adjacent pairs) rotary embedding
  (``convert_hf_to_gguf.py``'s ``LlamaModel.permute``, ``conversion/
  llama.py`` at 7bca1fd9ca2a681b0182e16f24f832b7be1942af): the reader
  undoes it exactly (rows moved), so the rotate-half attention computes
  what llama.cpp computes; the other three are NeoX-style and stored as is;
* top-k renormalisation as llama.cpp hard-codes it per architecture
  (``src/models/{llama,qwen3moe}.cpp`` at
  069be0ae22f391c64e26e8da4c7da0143ede8cf3, ``src/models/qwen2moe.cpp`` at
  623ac8d30a54433969bdd3e54d4487c3608d047c, ``src/models/olmoe.cpp`` at
  82234e08ad119dbefb31fcc9c304a531016bd502): llama and qwen3moe
  renormalise, qwen2moe and olmoe do not.

Expert tensors in Q8_0 or Q4_0 (all three projections of a layer in the
same format) are not dequantized: their blocks are moved into the kernels'
tiles (``quant.tiles_from_blocks``) and the layer is ``moe.layer ... packed
quant = q8_0|q4_0``. Experts of other types, or of mixed formats, and every
other tensor are dequantized to f32 (exactly).

``convert_hf_folder`` writes a Hugging Face folder as llama.cpp's
``convert_hf_to_gguf.py`` does (``conversion/{llama,olmo,qwen,base}.py``:
``conversion/qwen.py`` at 03173d5e78f8ccd7ccbb385f1f7b4a21266377dc,
``conversion/base.py`` at 2bbcf7fc93a460f04d5709756a48b2408443eecb),
optionally with quantized experts (as ``llama-quantize`` would store them).
"""

import os
import re
from typing import Dict, Optional, Union

import numpy as np

from .. import quant
from . import hf
from .gguf_file import DEFAULT_ALIGNMENT, GGUFError, GGUFFile, GGUFWriter, same_ne
from .hf import ExpertWeights, HFConfig, HFModel, LanguageModel
from .hf_checkpoint import CONFIG, HFCheckpoint, HFCheckpointError
from .model import ExportError

__all__ = ["ARCHITECTURES", "GGUFError", "GGUFFile", "GGUFWriter", "GGUFLanguageModel",
           "read_gguf_config", "read_model", "convert_hf_folder", "gguf_name"]

#: general.architecture -> the Hugging Face architecture it is built as.
ARCHITECTURES = {"llama": "mixtral", "qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe",
                 "olmoe": "olmoe"}
_GGUF_ARCH = {v: k for k, v in ARCHITECTURES.items()}
# build_moe_ffn's norm_w per architecture (SPEC §3.4: hard-coded in the graphs).
_NORM_TOPK = {"llama": True, "qwen3moe": True, "qwen2moe": False, "olmoe": False}
_REQUIRED = object()
_QUANTIZED_EXPERTS = ("Q8_0", "Q4_0")

# Hugging Face tensor names -> GGUF names (tensor_mapping.py / LLM_TENSOR_NAMES).
_NAMES = [(re.compile(pattern), template) for pattern, template in [
    (r"model\.embed_tokens\.weight", "token_embd.weight"),
    (r"model\.norm\.weight", "output_norm.weight"),
    (r"lm_head\.weight", "output.weight"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", "blk.{0}.attn_norm.weight"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", "blk.{0}.ffn_norm.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", "blk.{0}.attn_{1}.{2}"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.(weight|bias)", "blk.{0}.attn_output.{1}"),
    (r"model\.layers\.(\d+)\.self_attn\.([qk])_norm\.weight", "blk.{0}.attn_{1}_norm.weight"),
    (r"model\.layers\.(\d+)\.(?:mlp|block_sparse_moe)\.gate\.weight",
     "blk.{0}.ffn_gate_inp.weight"),
    (r"model\.layers\.(\d+)\.mlp\.shared_expert\.(gate|up|down)_proj\.weight",
     "blk.{0}.ffn_{1}_shexp.weight"),
    (r"model\.layers\.(\d+)\.mlp\.shared_expert_gate\.weight",
     "blk.{0}.ffn_gate_inp_shexp.weight"),
    (r"model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.weight", "blk.{0}.ffn_{1}.weight"),
]]
_QK = re.compile(r"model\.layers\.\d+\.self_attn\.([qk])_proj\.(weight|bias)")


def gguf_name(hf_name: str) -> Optional[str]:
    """The GGUF name of a Hugging Face tensor name (None: no GGUF tensor)."""
    for pattern, template in _NAMES:
        match = pattern.fullmatch(hf_name)
        if match:
            return template.format(*match.groups())
    return None


def _rope_rows(heads: int, head_dim: int) -> np.ndarray:
    """The row order of llama.cpp's q/k permutation: row ``2k + s`` of a
    head (k < head_dim/2, s in {0, 1}) holds the Hugging Face row
    ``s * head_dim/2 + k``, i.e. the rotate-half pairs (i, i + head_dim/2)
    become adjacent pairs (SPEC §3.3)."""
    half = head_dim // 2
    k = np.arange(half)[:, None]
    s = np.arange(2)[None, :]
    within = (s * half + k).reshape(-1)            # index 2k + s -> s*half + k
    return (np.arange(heads)[:, None] * head_dim + within[None, :]).reshape(-1)


def permute_qk(w: np.ndarray, heads: int, head_dim: int) -> np.ndarray:
    """Hugging Face q/k rows (weight [heads*hd, H] or bias) -> llama.cpp's."""
    return np.ascontiguousarray(np.asarray(w)[_rope_rows(heads, head_dim)])


def unpermute_qk(w: np.ndarray, heads: int, head_dim: int) -> np.ndarray:
    """The inverse of ``permute_qk`` (rows moved back, values unchanged)."""
    out = np.empty_like(w)
    out[_rope_rows(heads, head_dim)] = w
    return out


# ---------------------------------------------------------------------------
# Metadata
# ---------------------------------------------------------------------------
def _key(f: GGUFFile, key: str, kind: str, default=_REQUIRED, why: str = ""):
    """Key ``key`` of type ``kind`` (UINT32, FLOAT32, STRING, BOOL; "count":
    a UINT32 or a per-layer array of (U)INT32 with one value), or
    ``default``; an error naming the key when missing or of another type."""
    if key not in f.metadata:
        if default is _REQUIRED:
            raise GGUFError(f"{f.path}: key '{key}' is missing{why}")
        return default
    value, vtype = f.metadata[key], f.value_types[key]
    if kind == "count" and vtype in ("ARRAY[UINT32]", "ARRAY[INT32]"):
        values = sorted(set(int(v) for v in value))
        if len(values) != 1:
            raise GGUFError(f"{f.path}: key '{key}' gives per-layer values {values[:4]}: "
                            f"layers of different sizes are not supported")
        return values[0]
    expected = "UINT32" if kind == "count" else kind
    if vtype != expected:
        also = " or an array of INT32/UINT32" if kind == "count" else ""
        raise GGUFError(f"{f.path}: key '{key}' has type {vtype}, expected {expected}{also}")
    return value


def read_gguf_config(f: GGUFFile) -> HFConfig:
    """The model's fields from the file's metadata (and the vocabulary from
    ``token_embd.weight``), or an error naming the key."""
    arch = _key(f, "general.architecture", "STRING")
    if arch not in ARCHITECTURES:
        raise GGUFError(f"{f.path}: key 'general.architecture' is {arch!r}; supported: "
                        f"{', '.join(ARCHITECTURES)} (llama with experts: Mixtral)")
    a = arch

    def key(name, kind="UINT32", default=_REQUIRED, why=""):
        return _key(f, f"{a}.{name}", kind, default, why)

    hidden = key("embedding_length")
    layers = key("block_count")
    key("context_length")            # required by llama.cpp; not used by the full forward
    heads = key("attention.head_count", "count")
    if heads == 0:
        raise GGUFError(f"{f.path}: key '{a}.attention.head_count' must be > 0")
    kv_heads = key("attention.head_count_kv", "count", heads)
    if kv_heads == 0 or heads % kv_heads:
        raise GGUFError(f"{f.path}: key '{a}.attention.head_count_kv' ({kv_heads}) must divide "
                        f"'{a}.attention.head_count' ({heads})")
    if f"{a}.attention.key_length" in f.metadata:
        head_dim = key("attention.key_length")
    elif hidden % heads:
        raise GGUFError(f"{f.path}: '{a}.embedding_length' ({hidden}) is not a multiple of "
                        f"'{a}.attention.head_count' ({heads}) and '{a}.attention.key_length' "
                        f"is not given")
    else:
        head_dim = hidden // heads
    value_dim = key("attention.value_length", default=head_dim)
    if value_dim != head_dim:
        raise GGUFError(f"{f.path}: key '{a}.attention.value_length' ({value_dim}) differs from "
                        f"the key length ({head_dim}): not supported")
    rope_dim = key("rope.dimension_count", default=head_dim)
    if rope_dim != head_dim:
        raise GGUFError(f"{f.path}: key '{a}.rope.dimension_count' ({rope_dim}) differs from "
                        f"the head dimension ({head_dim}): partial rotary embeddings are not "
                        f"supported")
    if head_dim % 2:
        raise GGUFError(f"{f.path}: the head dimension ({head_dim}) must be even")
    # Rotary scaling, as llama.cpp reads it for every architecture: type
    # (default linear) and factor (default none).
    scaling = key("rope.scaling.type", "STRING", "none")
    if scaling not in ("none", "linear"):
        raise GGUFError(f"{f.path}: key '{a}.rope.scaling.type' is {scaling!r}: scaled rotary "
                        f"embeddings are not supported")
    for name in ("rope.scaling.factor", "rope.scale_linear"):
        factor = key(name, "FLOAT32", 0.0)
        if factor not in (0.0, 1.0):
            raise GGUFError(f"{f.path}: key '{a}.{name}' is {factor}: scaled rotary embeddings "
                            f"are not supported")
    theta = key("rope.freq_base", "FLOAT32", 10000.0)
    eps = key("attention.layer_norm_rms_epsilon", "FLOAT32")
    experts = key("expert_count", default=0)
    if experts == 0:
        raise GGUFError(f"{f.path}: key '{a}.expert_count' is missing or 0: a dense model "
                        f"(only mixtures of experts are supported)")
    top_k = key("expert_used_count")
    if not 1 <= top_k <= experts:
        raise GGUFError(f"{f.path}: key '{a}.expert_used_count' ({top_k}) must be in "
                        f"[1, {experts}] ('{a}.expert_count')")
    n_ff = key("feed_forward_length", "count", None)
    if arch in ("qwen2moe", "qwen3moe"):
        expert_ffn = key("expert_feed_forward_length", default=None)
        if expert_ffn is None:     # llama.cpp's fallback: n_ff / n_expert_used
            if n_ff is None:
                raise GGUFError(f"{f.path}: key '{a}.expert_feed_forward_length' is missing "
                                f"(and '{a}.feed_forward_length' too)")
            expert_ffn = n_ff // top_k
    else:
        expert_ffn = key("feed_forward_length", "count",
                         why=" (the experts' width for this architecture)")
    embd = f.info("token_embd.weight")
    if len(embd.ne) < 2 or not same_ne(embd.ne, (hidden, embd.ne[1])):
        raise GGUFError(f"{f.path}: tensor 'token_embd.weight' has ne {list(embd.ne)}, "
                        f"expected [{hidden}, n_vocab]")
    vocab = embd.ne[1]
    tokens = f.metadata.get("tokenizer.ggml.tokens")
    if tokens is not None and len(tokens) != vocab:
        raise GGUFError(f"{f.path}: key 'tokenizer.ggml.tokens' has {len(tokens)} tokens but "
                        f"'token_embd.weight' has {vocab} rows")
    size = key("vocab_size", default=None)
    if size is not None and size != vocab:
        raise GGUFError(f"{f.path}: key '{a}.vocab_size' is {size} but 'token_embd.weight' has "
                        f"{vocab} rows")
    cfg = HFConfig(arch=ARCHITECTURES[arch], vocab=vocab, hidden=hidden, layers=layers,
                   heads=heads, kv_heads=kv_heads, head_dim=head_dim, eps=float(eps),
                   rope_theta=float(theta), tie_embeddings="output.weight" not in f,
                   experts=experts, top_k=top_k, expert_ffn=expert_ffn,
                   norm_topk=_NORM_TOPK[arch])
    if arch == "qwen2moe":
        shared = key("expert_shared_feed_forward_length", default=n_ff)
        if shared is None:
            raise GGUFError(f"{f.path}: key '{a}.expert_shared_feed_forward_length' is missing "
                            f"(and '{a}.feed_forward_length' too)")
        cfg.shared_ffn = shared
    if arch in ("qwen2moe", "llama"):
        cfg.qkv_bias = "blk.0.attn_q.bias" in f
    if arch == "llama":
        cfg.o_bias = "blk.0.attn_output.bias" in f
    if arch == "qwen3moe":
        cfg.qk_norm = "head"
    if arch == "olmoe":
        cfg.qk_norm = "full"
    return cfg


# ---------------------------------------------------------------------------
# Tensors
# ---------------------------------------------------------------------------
class _Reader:
    """The tensors of a GGUF file under their Hugging Face names, with the
    interface of ``hf._Reader`` (so ``hf.build_model`` builds the model).
    Remembers which tensors were read (llama.cpp refuses a file with
    tensors it does not use, and so does ``read_model``)."""

    def __init__(self, f: GGUFFile, cfg: HFConfig):
        self.file = f
        self.cfg = cfg
        self.where = f.path
        self.used = set()
        self.permuted = cfg.arch == "mixtral"   # general.architecture llama

    def _name(self, hf_name: str) -> str:
        name = gguf_name(hf_name)
        if name is None:  # pragma: no cover - build_model asks for mapped names only
            raise GGUFError(f"{self.where}: no GGUF tensor for '{hf_name}'")
        return name

    def has(self, hf_name: str) -> bool:
        return self._name(hf_name) in self.file

    def get(self, hf_name: str, shape) -> np.ndarray:
        name = self._name(hf_name)
        info = self.file.info(name)
        expected = tuple(reversed(tuple(shape)))
        if not same_ne(info.ne, expected):
            raise GGUFError(f"{self.where}: tensor '{name}' has ne {list(info.ne)} (ggml order), "
                            f"expected {list(expected)} from the metadata")
        self.used.add(name)
        array = self.file.get(name).reshape(tuple(shape))
        match = _QK.fullmatch(hf_name)
        if self.permuted and match:
            heads = self.cfg.heads if match.group(1) == "q" else self.cfg.kv_heads
            array = unpermute_qk(array, heads, self.cfg.head_dim)
        return array

    def linear(self, hf_name: str, out_features: int, in_features: int) -> np.ndarray:
        return np.ascontiguousarray(self.get(hf_name, (out_features, in_features)).T)

    def experts(self, cfg: HFConfig, layer: int, prefix: str, names) -> ExpertWeights:
        """Merged ``blk.N.ffn_*_exps`` or per-expert ``blk.N.ffn_*.E``
        tensors: tiles when all three are Q8_0 or all Q4_0, else f32."""
        f, h, ff, e = self.file, cfg.hidden, cfg.expert_ffn, cfg.experts
        per_expert_ne = {"gate": (h, ff), "up": (h, ff), "down": (ff, h)}
        merged = {p: f"blk.{layer}.ffn_{p}_exps.weight" for p in per_expert_ne}
        legacy = {p: [f"blk.{layer}.ffn_{p}.{j}.weight" for j in range(e)]
                  for p in per_expert_ne}
        if any(n in f for n in merged.values()) or not any(
                n in f for names_ in legacy.values() for n in names_):
            sources = {p: [n] for p, n in merged.items()}
            expected = {p: ne + (e,) for p, ne in per_expert_ne.items()}
        else:
            sources = legacy
            expected = per_expert_ne
        types = {}
        for p, tensor_names in sources.items():
            for n in tensor_names:
                info = f.info(n)
                if not same_ne(info.ne, expected[p]):
                    raise GGUFError(f"{self.where}: tensor '{n}' has ne {list(info.ne)} (ggml "
                                    f"order), expected {list(expected[p])} from the metadata")
                types.setdefault(p, set()).add(info.type)
                self.used.add(n)
        formats = set().union(*types.values())
        if len(formats) == 1 and next(iter(formats)) in _QUANTIZED_EXPERTS:
            fmt = next(iter(formats)).lower()
            tiles = {}
            for p, tensor_names in sources.items():
                out, inner = per_expert_ne[p][1], per_expert_ne[p][0]
                blocks = np.concatenate([f.blocks(n).reshape(-1, out, inner // quant.QK,
                                                              quant.BLOCK_BYTES[fmt])
                                         for n in tensor_names])
                tiles[p] = quant.tiles_from_blocks(blocks, fmt)
            return ExpertWeights(tiles["gate"], tiles["up"], tiles["down"], fmt)
        weights = {}
        for p, tensor_names in sources.items():
            out, inner = per_expert_ne[p][1], per_expert_ne[p][0]
            stacked = np.concatenate([f.get(n).reshape(-1, out, inner) for n in tensor_names])
            weights[p] = np.ascontiguousarray(stacked.transpose(0, 2, 1))   # [E, in, out]
        return ExpertWeights(weights["gate"], weights["up"], weights["down"])


def _expert_tensor(name: str) -> bool:
    return re.fullmatch(r"blk\.\d+\.ffn_(gate|up|down)(_exps|\.\d+)\.weight", name) is not None


def check_memory(f: GGUFFile):
    """An error, before any tensor is read, when the weights as the model
    keeps them (f32, and Q8_0/Q4_0 experts as stored) would not fit in the
    memory available now."""
    needed = 0
    for t in f.tensors.values():
        if t.type in _QUANTIZED_EXPERTS and _expert_tensor(t.name):
            needed += t.nbytes
        else:
            needed += 4 * int(np.prod(t.ne, dtype=np.int64))
    available = hf._available_bytes()
    if available is not None and needed > available:
        raise GGUFError(f"{f.path}: the weights need {needed / 2**30:.1f} GiB (f32, quantized "
                        f"experts as stored) but only {available / 2**30:.1f} GiB of memory are "
                        f"available")


def read_model(path: str) -> HFModel:
    """Reads a GGUF file into a model specification (every tensor read
    once; quantized experts as tiles, the rest as f32)."""
    with GGUFFile(path) as f:
        cfg = read_gguf_config(f)
        if "rope_freqs.weight" in f:
            raise GGUFError(f"{path}: tensor 'rope_freqs.weight': scaled rotary embeddings "
                            f"(per-frequency factors) are not supported")
        check_memory(f)
        reader = _Reader(f, cfg)
        model = hf.build_model(reader, cfg)
        unused = [n for n in f.tensors if n not in reader.used]
        if unused:
            raise GGUFError(f"{path}: tensor '{unused[0]}' is not part of a "
                            f"{f.metadata['general.architecture']} model as read here"
                            f"{f' (and {len(unused) - 1} more)' if len(unused) > 1 else ''}; "
                            f"llama.cpp refuses unused tensors too")
    return model


class GGUFLanguageModel(LanguageModel):
    """A GGUF file compiled from token ids to logits (``hf.LanguageModel``)."""

    def __init__(self, path: str, target: str = "cpu"):
        from ..targets import Target, check_target
        target = check_target(target, "load_gguf")
        self.path = path
        model = read_model(path)
        quantized = sorted({layer.ffn.weight_quant for layer in model.spec.layers
                            if getattr(layer.ffn, "weight_quant", None)})
        if quantized and target is not Target.CPU:
            raise ValueError(f"{path}: experts in {', '.join(q.upper() for q in quantized)} run "
                             f"on target 'cpu' only (quantized tiles), got target "
                             f"{str(target)!r}")
        super().__init__(model, target, f"the rows of token_embd.weight in {path}")


# ---------------------------------------------------------------------------
# Hugging Face folder -> GGUF (convert_hf_to_gguf.py's rules, SPEC §3.3)
# ---------------------------------------------------------------------------
_FILE_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 7, "BF16": 32}   # LlamaFileType
_WRITABLE = ("F32", "F16", "BF16", "Q8_0", "Q4_0")


def _type_name(value: str, what: str) -> str:
    name = str(value).upper()
    if name not in _WRITABLE:
        raise ValueError(f"{what} must be one of {', '.join(t.lower() for t in _WRITABLE)}, "
                         f"got {value!r}")
    return name


def _refuse(path: str, cfg: HFConfig):
    """What llama.cpp's architecture cannot hold: an error, not another model."""
    arch = _GGUF_ARCH[cfg.arch]
    if any(not cfg.is_sparse(i) for i in range(cfg.layers)):
        raise ExportError(f"{path}: dense layers ('mlp_only_layers' / 'decoder_sparse_step'): "
                          f"llama.cpp's {arch} has experts in every layer")
    if cfg.norm_topk != _NORM_TOPK[arch]:
        raise ExportError(f"{path}: field 'norm_topk_prob' is {str(cfg.norm_topk).lower()}: "
                          f"llama.cpp's {arch} {'always' if _NORM_TOPK[arch] else 'never'} "
                          f"renormalises the top-k")
    if arch in ("qwen3moe", "olmoe") and (cfg.qkv_bias or cfg.o_bias):
        raise ExportError(f"{path}: field 'attention_bias' is true: llama.cpp's {arch} has no "
                          f"attention biases")
    if cfg.clip_qkv is not None:
        raise ExportError(f"{path}: field 'clip_qkv' is {cfg.clip_qkv}: llama.cpp's olmoe "
                          f"does not clip q, k and v")
    if arch == "olmoe" and cfg.kv_heads != cfg.heads:
        raise ExportError(f"{path}: field 'num_key_value_heads' ({cfg.kv_heads}) differs from "
                          f"'num_attention_heads': llama.cpp's olmoe normalises k over "
                          f"{cfg.hidden} values")
    if arch == "olmoe" and cfg.eps != 1e-5:
        raise ExportError(f"{path}: field 'rms_norm_eps' is {cfg.eps}: llama.cpp's OLMoE "
                          f"converter writes 1e-5 whatever the config says")


def convert_hf_folder(folder: str, path: str, outtype: str = "f32",
                      expert_type: Union[None, str, Dict[str, str]] = None,
                      legacy_experts: bool = False, alignment: int = DEFAULT_ALIGNMENT):
    """Writes the Hugging Face folder ``folder`` as the GGUF file ``path``,
    as llama.cpp's ``convert_hf_to_gguf.py`` does: the keys of SPEC §3.3
    with the types llama.cpp's loader expects, ``general.architecture``
    first; the tensors renamed, experts stacked into ``ffn_*_exps`` ([in,
    out, E]) in expert order, ``attn_q``/``attn_k`` rows permuted for llama;
    norms, biases and the router in F32, the other matrices in ``outtype``
    (f32, f16, bf16 or q8_0; q8_0 falls back to f16 when a row is not a
    multiple of 32). ``expert_type`` (a format, or one per projection
    ``{"gate": .., "up": .., "down": ..}``) stores the expert tensors in
    another type, quantized with ggml's reference quantizers (what
    llama-quantize stores); ``legacy_experts`` writes Mixtral's older
    per-expert tensors ``blk.N.ffn_{gate,up,down}.E``. No tokenizer is
    written (``tokenizer.ggml.model = "no_vocab"`` and
    ``{arch}.vocab_size``). Returns the path."""
    outtype = _type_name(outtype, "outtype")
    projections = ("gate", "up", "down")
    if isinstance(expert_type, dict):
        if set(expert_type) != set(projections):
            raise ValueError(f"expert_type must give 'gate', 'up' and 'down', got "
                             f"{sorted(expert_type)}")
        expert_types = {p: _type_name(expert_type[p], f"expert_type['{p}']")
                        for p in projections}
    else:
        t = outtype if expert_type is None else _type_name(expert_type, "expert_type")
        expert_types = {p: t for p in projections}
    try:
        checkpoint = HFCheckpoint(folder)
    except HFCheckpointError as error:
        raise ExportError(str(error)) from None
    config_path = os.path.join(folder, CONFIG)
    with checkpoint:
        cfg = hf.read_config(checkpoint.config, config_path)
        _refuse(config_path, cfg)
        arch = _GGUF_ARCH[cfg.arch]
        if legacy_experts and arch != "llama":
            raise ValueError("legacy_experts: per-expert tensors are Mixtral's (llama) only")
        context = checkpoint.config.get("max_position_embeddings")
        if not isinstance(context, int) or isinstance(context, bool):
            raise ExportError(f"{config_path}: field 'max_position_embeddings' is required "
                              f"(GGUF's {arch}.context_length)")
        r = hf._Reader(checkpoint)
        w = GGUFWriter(alignment)
        w.add_str("general.architecture", arch)
        w.add_str("general.type", "model")
        w.add_str("general.name", os.path.basename(os.path.normpath(folder)))
        w.add_u32(f"{arch}.block_count", cfg.layers)
        w.add_u32(f"{arch}.context_length", context)
        w.add_u32(f"{arch}.embedding_length", cfg.hidden)
        n_ff = checkpoint.config.get("intermediate_size")
        if isinstance(n_ff, int):
            w.add_u32(f"{arch}.feed_forward_length", n_ff)
        w.add_u32(f"{arch}.attention.head_count", cfg.heads)
        w.add_u32(f"{arch}.attention.head_count_kv", cfg.kv_heads)
        w.add_f32(f"{arch}.rope.freq_base", cfg.rope_theta)
        w.add_f32(f"{arch}.attention.layer_norm_rms_epsilon", cfg.eps)
        w.add_u32(f"{arch}.expert_count", cfg.experts)
        w.add_u32(f"{arch}.expert_used_count", cfg.top_k)
        if checkpoint.config.get("head_dim") is not None:
            w.add_u32(f"{arch}.attention.key_length", cfg.head_dim)
            w.add_u32(f"{arch}.attention.value_length", cfg.head_dim)
        if arch == "llama":
            w.add_u32(f"{arch}.rope.dimension_count", cfg.head_dim)
        if arch in ("qwen2moe", "qwen3moe"):
            w.add_u32(f"{arch}.expert_feed_forward_length", cfg.expert_ffn)
            if cfg.shared_ffn is not None:
                w.add_u32(f"{arch}.expert_shared_feed_forward_length", cfg.shared_ffn)
        main = expert_types["gate"] if expert_types["gate"] in ("Q8_0", "Q4_0") else outtype
        w.add_u32("general.file_type", _FILE_TYPES[main])
        w.add_u32("general.quantization_version", 2)
        w.add_u32(f"{arch}.vocab_size", cfg.vocab)
        w.add_str("tokenizer.ggml.model", "no_vocab")

        def add(hf_name: str, shape):
            value = r.get(hf_name, shape)
            name = gguf_name(hf_name)
            match = _QK.fullmatch(hf_name)
            if arch == "llama" and match:
                heads = cfg.heads if match.group(1) == "q" else cfg.kv_heads
                value = permute_qk(value, heads, cfg.head_dim)
            if value.ndim == 1 or name.endswith("_norm.weight") or not name.endswith(".weight") \
                    or name.endswith(".ffn_gate_inp.weight"):
                type_name = "F32"
            else:
                type_name = outtype
                if type_name == "Q8_0" and value.shape[-1] % quant.QK:
                    type_name = "F16"
            w.add_tensor(name, value, type_name)

        h, nh, nkv, hd = cfg.hidden, cfg.heads, cfg.kv_heads, cfg.head_dim
        add("model.embed_tokens.weight", (cfg.vocab, h))
        for i in range(cfg.layers):
            p = f"model.layers.{i}"
            a = f"{p}.self_attn"
            add(f"{p}.input_layernorm.weight", (h,))
            add(f"{a}.q_proj.weight", (nh * hd, h))
            add(f"{a}.k_proj.weight", (nkv * hd, h))
            add(f"{a}.v_proj.weight", (nkv * hd, h))
            add(f"{a}.o_proj.weight", (h, nh * hd))
            if cfg.qkv_bias:
                add(f"{a}.q_proj.bias", (nh * hd,))
                add(f"{a}.k_proj.bias", (nkv * hd,))
                add(f"{a}.v_proj.bias", (nkv * hd,))
            if cfg.o_bias:
                add(f"{a}.o_proj.bias", (h,))
            if cfg.qk_norm == "head":
                add(f"{a}.q_norm.weight", (hd,))
                add(f"{a}.k_norm.weight", (hd,))
            elif cfg.qk_norm == "full":
                add(f"{a}.q_norm.weight", (nh * hd,))
                add(f"{a}.k_norm.weight", (nkv * hd,))
            add(f"{p}.post_attention_layernorm.weight", (h,))
            if arch == "llama":
                block = f"{p}.block_sparse_moe" if r.has(f"{p}.block_sparse_moe.gate.weight") \
                    else f"{p}.mlp"
                names = ("w1", "w3", "w2")
            else:
                block, names = f"{p}.mlp", ("gate_proj", "up_proj", "down_proj")
            add(f"{block}.gate.weight", (cfg.experts, h))
            experts = r.experts(cfg, i, f"{block}.experts", names)
            # GGUF's expert tensors hold [E, out, in] (NumPy order).
            stacked = {"gate": experts.w_gate.transpose(0, 2, 1),
                       "up": experts.w_up.transpose(0, 2, 1),
                       "down": experts.w_down.transpose(0, 2, 1)}
            order = ("gate", "down", "up") if arch == "llama" else ("down", "gate", "up")
            for proj in order:
                if legacy_experts:
                    for j in range(cfg.experts):
                        w.add_tensor(f"blk.{i}.ffn_{proj}.{j}.weight", stacked[proj][j],
                                     expert_types[proj])
                else:
                    w.add_tensor(f"blk.{i}.ffn_{proj}_exps.weight", stacked[proj],
                                 expert_types[proj])
            if cfg.shared_ffn is not None:
                s = cfg.shared_ffn
                add(f"{block}.shared_expert.gate_proj.weight", (s, h))
                add(f"{block}.shared_expert.up_proj.weight", (s, h))
                add(f"{block}.shared_expert.down_proj.weight", (h, s))
                add(f"{block}.shared_expert_gate.weight", (1, h))
        add("model.norm.weight", (h,))
        if not cfg.tie_embeddings:
            add("lm_head.weight", (cfg.vocab, h))
    w.write(path)
    return path
