"""GGUF files for the tests: small models written from Hugging Face folders
(hf_fixtures) by moe_mlir's converter, files rewritten with changes (bad
files), the golden file ggml's C writer produced, and ggml's gguf C API
through ctypes (only where MOE_GGML_DIR names a built ggml checkout).

The golden file is SPEC §2.6's (written with ggml-org/ggml's C API at
d99724f2b141fed9e1a9f402213506c081433465): one F32 tensor "w", ne [3, 2],
values 0..5; keys general.architecture = "llama", llama.block_count = 1
(u32).
"""

import ctypes
import os
from typing import Dict, Optional

import numpy as np

from moe_mlir.export.gguf_file import (GGUFFile, GGUFWriter, TENSOR_TYPES, VALUE_TYPE_IDS,
                                       _TYPE_NAMES)

import hf_fixtures as fx

TINY_GGUF = bytes.fromhex(
    "47475546" "03000000" "0100000000000000" "0200000000000000"
    "1400000000000000" + b"general.architecture".hex() + "08000000" "0500000000000000"
    + b"llama".hex()
    + "1100000000000000" + b"llama.block_count".hex() + "04000000" "01000000"
    + "0100000000000000" + b"w".hex() + "02000000" "0300000000000000" "0200000000000000"
    "00000000" "0000000000000000"
    + "00" * 17
    + "00000000" "0000803f" "00000040" "00004040" "00008040" "0000a040"
    + "00" * 8)
assert len(TINY_GGUF) == 192

# Small models of each architecture, with what the GGUF forms can hold:
# hidden 64, 2 layers, 4 experts top-2, vocab 100, expert width 32 (a
# multiple of 32, so experts can be Q8_0/Q4_0), grouped-query attention.
MODELS = {
    "mixtral": dict(intermediate_size=32),
    "qwen2_moe": dict(moe_intermediate_size=32, shared_expert_intermediate_size=24,
                      norm_topk_prob=False, qkv_bias=True),
    # head_dim 8 != 64 / 4: key_length is written and read.
    "qwen3_moe": dict(moe_intermediate_size=32, head_dim=8, norm_topk_prob=True,
                      num_experts=8, num_experts_per_tok=3),
    # llama.cpp's olmoe: k_norm over the full width (kv heads = heads).
    "olmoe": dict(intermediate_size=32, num_key_value_heads=4),
}


def tiny_config(arch: str, **overrides) -> dict:
    fields = dict(hidden_size=64, vocab_size=100)
    fields.update(MODELS[arch])
    fields.update(overrides)
    return fx.tiny_config(arch, **fields)


def build_folder(folder: str, arch: str, dtype: str = "F32", seed: int = 0, **overrides):
    """An HF folder of ``arch``; returns (config, the stored values as f32)."""
    return fx.build(folder, arch, seed=seed, dtype=dtype, config=tiny_config(arch, **overrides))


# ---------------------------------------------------------------------------
# Rewriting files
# ---------------------------------------------------------------------------
_DELETE = object()


def rewrite(src: str, dst: str, kv: Optional[Dict[str, object]] = None,
            tensors: Optional[Dict[str, object]] = None, alignment: Optional[int] = None):
    """Copies GGUF ``src`` to ``dst`` through the reader and the writer,
    with keys changed (``kv``: key -> (value, type[, element type]) or
    None to delete) and tensors changed (``tensors``: name -> None to
    delete, or (ne, type name, bytes))."""
    kv = kv or {}
    tensors = tensors or {}
    with GGUFFile(src) as f:
        w = GGUFWriter(alignment or f.alignment)
        for key, value in f.metadata.items():
            if key == "general.alignment":
                continue
            if key in kv:
                continue
            vtype = f.value_types[key]
            if vtype.startswith("ARRAY["):
                w.add(key, list(value), "ARRAY", vtype[6:-1])
            else:
                w.add(key, value, vtype)
        for key, spec in kv.items():
            if spec is not None:
                w.add(key, *spec)
        for name, info in f.tensors.items():
            if name in tensors:
                continue
            w.add_raw_tensor(name, info.ne, info.type, f.raw(name).tobytes())
        for name, spec in tensors.items():
            if spec is not None:
                w.add_raw_tensor(name, *spec)
    w.write(dst)
    return dst


# ---------------------------------------------------------------------------
# ggml's gguf C API (ctypes)
# ---------------------------------------------------------------------------
def find_ggml() -> Optional[str]:
    """libggml-base.so under $MOE_GGML_DIR (a built ggml checkout), or None."""
    root = os.environ.get("MOE_GGML_DIR")
    if not root or not os.path.isdir(root):
        return None
    for base, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.startswith("libggml-base.so"):
                return os.path.join(base, name)
    return None


class _InitParams(ctypes.Structure):       # struct ggml_init_params (ggml.h)
    _fields_ = [("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p),
                ("no_alloc", ctypes.c_bool)]


class _GGUFInitParams(ctypes.Structure):   # struct gguf_init_params (gguf.h)
    _fields_ = [("no_alloc", ctypes.c_bool), ("ctx", ctypes.c_void_p)]


class GGML:
    """The few functions of ggml-base the tests call (ggml.h, gguf.h)."""

    def __init__(self, library: str):
        lib = self.lib = ctypes.CDLL(library)
        vp, cp, i64, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64, ctypes.c_size_t
        for name, res, args in [
                ("ggml_init", vp, [_InitParams]), ("ggml_free", None, [vp]),
                ("ggml_tensor_overhead", sz, []),
                ("ggml_new_tensor", vp, [vp, ctypes.c_int, ctypes.c_int,
                                         ctypes.POINTER(i64)]),
                ("ggml_set_name", vp, [vp, cp]),
                ("gguf_init_empty", vp, []), ("gguf_free", None, [vp]),
                ("gguf_init_from_file", vp, [cp, _GGUFInitParams]),
                ("gguf_add_tensor", None, [vp, vp]),
                ("gguf_set_tensor_data", None, [vp, cp, vp]),
                ("gguf_write_to_file", ctypes.c_bool, [vp, cp, ctypes.c_bool]),
                ("gguf_set_val_u32", None, [vp, cp, ctypes.c_uint32]),
                ("gguf_set_val_i32", None, [vp, cp, ctypes.c_int32]),
                ("gguf_set_val_f32", None, [vp, cp, ctypes.c_float]),
                ("gguf_set_val_bool", None, [vp, cp, ctypes.c_bool]),
                ("gguf_set_val_str", None, [vp, cp, cp]),
                ("gguf_set_arr_data", None, [vp, cp, ctypes.c_int, vp, sz]),
                ("gguf_set_arr_str", None, [vp, cp, ctypes.POINTER(cp), sz]),
                ("gguf_get_n_kv", i64, [vp]), ("gguf_get_key", cp, [vp, i64]),
                ("gguf_get_kv_type", ctypes.c_int, [vp, i64]),
                ("gguf_get_n_tensors", i64, [vp]), ("gguf_get_tensor_name", cp, [vp, i64]),
                ("gguf_get_tensor_type", ctypes.c_int, [vp, i64]),
                ("gguf_get_tensor_offset", sz, [vp, i64]),
                ("gguf_get_data_offset", sz, [vp])]:
            function = getattr(lib, name)
            function.restype = res
            function.argtypes = args

    def write(self, f: GGUFFile, path: str):
        """Writes the keys and tensors of ``f`` with ggml's C writer."""
        lib = self.lib
        type_ids = {name: spec[0] for name, spec in TENSOR_TYPES.items()}
        ctx = lib.ggml_init(_InitParams(lib.ggml_tensor_overhead() * (len(f.tensors) + 8),
                                        None, True))
        gctx = lib.gguf_init_empty()
        keep = []
        try:
            for key, value in f.metadata.items():
                vtype, k = f.value_types[key], key.encode()
                if vtype == "UINT32":
                    lib.gguf_set_val_u32(gctx, k, value)
                elif vtype == "INT32":
                    lib.gguf_set_val_i32(gctx, k, value)
                elif vtype == "FLOAT32":
                    lib.gguf_set_val_f32(gctx, k, value)
                elif vtype == "BOOL":
                    lib.gguf_set_val_bool(gctx, k, value)
                elif vtype == "STRING":
                    lib.gguf_set_val_str(gctx, k, value.encode())
                elif vtype == "ARRAY[STRING]":
                    strings = (ctypes.c_char_p * len(value))(*[s.encode() for s in value])
                    keep.append(strings)
                    lib.gguf_set_arr_str(gctx, k, strings, len(value))
                elif vtype.startswith("ARRAY["):
                    array = np.ascontiguousarray(value)
                    keep.append(array)
                    lib.gguf_set_arr_data(gctx, k, VALUE_TYPE_IDS[vtype[6:-1]],
                                          array.ctypes.data, array.size)
                else:
                    raise ValueError(f"key {key}: type {vtype} not handled here")
            for name, info in f.tensors.items():
                ne = (ctypes.c_int64 * len(info.ne))(*info.ne)
                t = lib.ggml_new_tensor(ctx, type_ids[info.type], len(info.ne), ne)
                lib.ggml_set_name(t, name.encode())
                lib.gguf_add_tensor(gctx, t)
                data = f.raw(name)
                keep.append(data)
                lib.gguf_set_tensor_data(gctx, name.encode(), data.ctypes.data)
            if not lib.gguf_write_to_file(gctx, path.encode(), False):
                raise OSError(f"gguf_write_to_file failed for {path}")
        finally:
            lib.gguf_free(gctx)
            lib.ggml_free(ctx)

    def read(self, path: str) -> dict:
        """What ggml's C reader makes of ``path``: keys (name, type id) and
        tensors (name, type name, offset) in order, the data offset."""
        lib = self.lib
        gctx = lib.gguf_init_from_file(path.encode(), _GGUFInitParams(True, None))
        if not gctx:
            raise ValueError(f"ggml's gguf_init_from_file refused {path}")
        try:
            keys = [(lib.gguf_get_key(gctx, i).decode(), lib.gguf_get_kv_type(gctx, i))
                    for i in range(lib.gguf_get_n_kv(gctx))]
            tensors = [(lib.gguf_get_tensor_name(gctx, i).decode(),
                        _TYPE_NAMES[lib.gguf_get_tensor_type(gctx, i)],
                        lib.gguf_get_tensor_offset(gctx, i))
                       for i in range(lib.gguf_get_n_tensors(gctx))]
            return {"keys": keys, "tensors": tensors,
                    "data_offset": lib.gguf_get_data_offset(gctx)}
        finally:
            lib.gguf_free(gctx)
