"""GGUF files, read lazily and written (NumPy only, no gguf-py, no torch).

The container format of llama.cpp / ggml (GGUF v3, little-endian), as the
reference C reader and writer implement it: ggml-org/ggml ``include/gguf.h``,
``src/gguf.cpp`` and ``docs/gguf.md`` at
d99724f2b141fed9e1a9f402213506c081433465, and llama.cpp's gguf-py
(ggml-org/llama.cpp ``gguf-py/gguf/gguf_writer.py`` at
0024aa7417efd50a7c2a79e049dfbbbceb0beaaf, ``gguf_reader.py`` at
0b6d22547b4f0085ad22fe885a023300d56e89fc, ``constants.py``)::

    magic "GGUF", version u32 = 3, n_tensors u64, n_kv u64
    n_kv x  { key: string, type: u32, value }
    n_tensors x { name: string, n_dims: u32, ne[n_dims]: i64, type: u32, offset: u64 }
    zero padding to a multiple of the alignment (``general.alignment``, u32, default 32)
    data: tensor t at data_start + offset_t (each offset a multiple of the alignment)

A string is a u64 byte length and UTF-8 bytes (no NUL); an array value is
an element type (u32), a u64 count and the elements without type tags.
``ne[0]`` is the contiguous dimension: a tensor's NumPy shape is ``ne``
reversed, and block-quantized types run their blocks along ``ne[0]``.

``GGUFFile`` reads the header and every tensor's description when opened,
checks them all (offsets in bounds and aligned, tensors that do not
overlap, block sizes), and reads a tensor's bytes through a memory map when
asked: ``get`` (f32, dequantized), ``blocks`` (quantized bytes as they are),
``raw``. Every problem raises ``GGUFError`` naming the file and the key or
tensor. ``GGUFWriter`` writes what gguf-py writes (the caller chooses each
key's type; see ``gguf.py`` for the types llama.cpp's loader expects).
"""

import math
import mmap
import os
import struct
from collections import OrderedDict
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from .. import quant
from .model import ExportError
from .safetensors import close_map

__all__ = ["GGUFError", "GGUFFile", "GGUFWriter", "TensorInfo", "VALUE_TYPES", "TENSOR_TYPES",
           "SUPPORTED_TYPES", "dequantize", "to_bf16_bits", "encode_tensor"]

MAGIC = b"GGUF"
VERSION = 3
DEFAULT_ALIGNMENT = 32
MAX_NAME = 64      # GGML_MAX_NAME: names must be shorter
MAX_DIMS = 4       # GGML_MAX_DIMS


class GGUFError(ExportError):
    """A file that cannot be read as GGUF, or a GGUF model that cannot be
    built; the message names the file and the key or tensor."""


# gguf_type (gguf.h): id -> (name, struct format or None for string/array).
VALUE_TYPES = {
    0: ("UINT8", "<B"), 1: ("INT8", "<b"), 2: ("UINT16", "<H"), 3: ("INT16", "<h"),
    4: ("UINT32", "<I"), 5: ("INT32", "<i"), 6: ("FLOAT32", "<f"), 7: ("BOOL", "<B"),
    8: ("STRING", None), 9: ("ARRAY", None), 10: ("UINT64", "<Q"), 11: ("INT64", "<q"),
    12: ("FLOAT64", "<d"),
}
VALUE_TYPE_IDS = {name: vid for vid, (name, _) in VALUE_TYPES.items()}
_NUMPY_OF_VALUE = {"UINT8": "<u1", "INT8": "<i1", "UINT16": "<u2", "INT16": "<i2",
                   "UINT32": "<u4", "INT32": "<i4", "FLOAT32": "<f4", "BOOL": "<u1",
                   "UINT64": "<u8", "INT64": "<i8", "FLOAT64": "<f8"}

# ggml_type (ggml.h): id -> name for every id the spec lists (GGML_TYPE_COUNT
# = 43 at ggml d99724f; 4, 5, 31-33 and 36-38 were removed).
_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
    23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
    30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4", 40: "NVFP4", 41: "Q1_0", 42: "Q2_0",
}
#: The tensor types this reader decodes: name -> (ggml id, values per block,
#: bytes per block) (ggml src/ggml-common.h).
TENSOR_TYPES = {
    "F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q8_0": (8, 32, 34),
    "Q4_K": (12, 256, 144), "Q6_K": (14, 256, 210), "BF16": (30, 1, 2),
}
SUPPORTED_TYPES = tuple(TENSOR_TYPES)
_TYPE_IDS = {name: spec[0] for name, spec in TENSOR_TYPES.items()}


class TensorInfo:
    """One tensor's description: name, ``ne`` (ggml order, trailing 1s as
    stored), type name, offset relative to the data section, byte size."""
    __slots__ = ("name", "ne", "type", "offset", "nbytes")

    def __init__(self, name, ne, type_, offset, nbytes):
        self.name, self.ne, self.type, self.offset, self.nbytes = name, ne, type_, offset, nbytes

    @property
    def shape(self) -> Tuple[int, ...]:
        """The NumPy shape (``ne`` reversed)."""
        return tuple(reversed(self.ne))

    def __repr__(self):
        return f"TensorInfo({self.name!r}, ne={list(self.ne)}, {self.type})"


def _strip(ne: Sequence[int]) -> Tuple[int, ...]:
    """``ne`` without trailing 1s (readers pad missing dims with 1)."""
    ne = list(ne)
    while len(ne) > 1 and ne[-1] == 1:
        ne.pop()
    return tuple(ne)


def same_ne(a: Sequence[int], b: Sequence[int]) -> bool:
    """Whether two ``ne`` describe the same tensor (trailing 1s ignored)."""
    return _strip(a) == _strip(b)


class _Cursor:
    """Bounds-checked little-endian reads from the mapped header."""

    def __init__(self, path: str, data, size: int):
        self.path, self.data, self.size, self.pos = path, data, size, 0

    def need(self, count: int, what: str):
        if count < 0 or self.pos + count > self.size:
            raise GGUFError(f"{self.path}: truncated: {what} needs {count} bytes at offset "
                            f"{self.pos}, the file has {self.size}")

    def unpack(self, fmt: str, what: str):
        n = struct.calcsize(fmt)
        self.need(n, what)
        value = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += n
        return value

    def string(self, what: str) -> str:
        length = self.unpack("<Q", what)
        self.need(length, what)
        raw = bytes(self.data[self.pos:self.pos + length])
        self.pos += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise GGUFError(f"{self.path}: {what} is not UTF-8: {error}") from None

    def array(self, fmt: str, count: int, what: str) -> np.ndarray:
        n = np.dtype(fmt).itemsize * count
        self.need(n, what)
        value = np.frombuffer(self.data, dtype=fmt, count=count, offset=self.pos).copy()
        self.pos += n
        return value


class GGUFFile:
    """A GGUF file: ``metadata`` (key -> value: int, float, bool, str, a
    NumPy array for numeric arrays, a list for string arrays),
    ``value_types`` (key -> type name, ``"ARRAY[INT32]"`` for arrays),
    ``tensors`` (name -> TensorInfo, in file order), ``alignment``,
    ``data_start``. Tensor bytes are read when asked for."""

    def __init__(self, path: str):
        self.path = path
        self._map = None
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as f:
                if size == 0:
                    raise GGUFError(f"{path}: empty file (a GGUF file starts with 'GGUF')")
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as error:
            raise GGUFError(f"{path}: cannot read: {error.strerror}") from None
        try:
            self._parse(size)
        except BaseException:
            self.close()
            raise

    # -- header ---------------------------------------------------------------
    def _parse(self, size: int):
        path = self.path
        c = _Cursor(path, self._map, size)
        c.need(4, "the magic")
        magic = bytes(self._map[0:4])
        if magic != MAGIC:
            raise GGUFError(f"{path}: bad magic {magic!r}: not a GGUF file (expected b'GGUF')")
        c.pos = 4
        version = c.unpack("<I", "the version")
        if version & 0xFFFF == 0 and version:
            raise GGUFError(f"{path}: version {version:#x}: a big-endian GGUF file (only "
                            f"little-endian files are supported)")
        if version not in (2, 3):
            raise GGUFError(f"{path}: GGUF version {version} is not supported (versions 2 and "
                            f"3; version 1 used 32-bit counts)")
        self.version = version
        n_tensors = c.unpack("<Q", "the tensor count")
        n_kv = c.unpack("<Q", "the metadata count")
        # Each pair takes at least 12 bytes, each tensor info at least 24.
        if n_kv * 12 > size or n_tensors * 24 > size:
            raise GGUFError(f"{path}: truncated or corrupt: header declares {n_kv} metadata "
                            f"pairs and {n_tensors} tensors in a file of {size} bytes")
        self.metadata: "OrderedDict[str, object]" = OrderedDict()
        self.value_types: Dict[str, str] = {}
        for index in range(n_kv):
            key = c.string(f"the key of metadata pair #{index}")
            if not key:
                raise GGUFError(f"{path}: metadata pair #{index} has an empty key")
            if key in self.metadata:
                raise GGUFError(f"{path}: key '{key}' appears twice")
            vtype = c.unpack("<I", f"the type of key '{key}'")
            self.metadata[key], self.value_types[key] = self._value(c, key, vtype)
        self.alignment = DEFAULT_ALIGNMENT
        if "general.alignment" in self.metadata:
            align = self.metadata["general.alignment"]
            if self.value_types["general.alignment"] != "UINT32":
                raise GGUFError(f"{path}: key 'general.alignment' has type "
                                f"{self.value_types['general.alignment']}, expected UINT32")
            if align <= 0 or align & (align - 1):
                raise GGUFError(f"{path}: key 'general.alignment' is {align}: must be a power "
                                f"of two")
            self.alignment = align
        infos = []
        names = set()
        for index in range(n_tensors):
            name = c.string(f"the name of tensor #{index}")
            if name in names:
                raise GGUFError(f"{path}: tensor '{name}' appears twice")
            names.add(name)
            if len(name.encode("utf-8")) >= MAX_NAME:
                raise GGUFError(f"{path}: tensor '{name}': name of {len(name.encode())} bytes "
                                f"(ggml allows at most {MAX_NAME - 1})")
            n_dims = c.unpack("<I", f"the rank of tensor '{name}'")
            if not 1 <= n_dims <= MAX_DIMS:
                raise GGUFError(f"{path}: tensor '{name}' has {n_dims} dimensions (1 to "
                                f"{MAX_DIMS})")
            ne = tuple(c.unpack("<q", f"the shape of tensor '{name}'") for _ in range(n_dims))
            if any(d < 0 for d in ne):
                raise GGUFError(f"{path}: tensor '{name}' has a negative dimension: ne = "
                                f"{list(ne)}")
            type_id = c.unpack("<I", f"the type of tensor '{name}'")
            offset = c.unpack("<Q", f"the offset of tensor '{name}'")
            infos.append((name, ne, type_id, offset))
        self.data_start = c.pos + (-c.pos % self.alignment)
        data_size = size - self.data_start
        self.tensors: "OrderedDict[str, TensorInfo]" = OrderedDict()
        for name, ne, type_id, offset in infos:
            self.tensors[name] = self._check_tensor(name, ne, type_id, offset, data_size)
        spans = sorted((t.offset, t.offset + t.nbytes, t.name) for t in self.tensors.values()
                       if t.nbytes)
        for (b0, e0, n0), (b1, _, n1) in zip(spans, spans[1:]):
            if b1 < e0:
                t = self.tensors[n0]
                raise GGUFError(f"{path}: tensor '{n0}' ({t.type}, ne = {list(t.ne)}: {t.nbytes} "
                                f"bytes at data offset {b0}) overlaps tensor '{n1}' (at {b1}): "
                                f"its size does not match its shape and type, or the offsets "
                                f"are corrupt")

    def _value(self, c: _Cursor, key: str, vtype: int):
        if vtype not in VALUE_TYPES:
            raise GGUFError(f"{self.path}: key '{key}' has unknown value type {vtype} (0 to "
                            f"{max(VALUE_TYPES)})")
        name, fmt = VALUE_TYPES[vtype]
        what = f"the value of key '{key}'"
        if name == "STRING":
            return c.string(what), name
        if name != "ARRAY":
            value = c.unpack(fmt, what)
            if name == "BOOL":
                if value > 1:
                    raise GGUFError(f"{self.path}: key '{key}': BOOL value {value} (0 or 1)")
                value = bool(value)
            return value, name
        etype = c.unpack("<I", f"the element type of key '{key}'")
        if etype not in VALUE_TYPES:
            raise GGUFError(f"{self.path}: key '{key}' is an array of unknown value type "
                            f"{etype}")
        ename = VALUE_TYPES[etype][0]
        if ename == "ARRAY":
            raise GGUFError(f"{self.path}: key '{key}' is an array of arrays (not allowed)")
        count = c.unpack("<Q", f"the length of key '{key}'")
        if ename == "STRING":
            if count * 8 > c.size - c.pos:
                c.need(count * 8, what)
            return [c.string(f"element {i} of key '{key}'") for i in range(count)], \
                f"ARRAY[{ename}]"
        values = c.array(_NUMPY_OF_VALUE[ename], count, what)
        if ename == "BOOL":
            if values.size and values.max() > 1:
                raise GGUFError(f"{self.path}: key '{key}': BOOL array with a value other "
                                f"than 0 or 1")
            values = values.astype(bool)
        return values, f"ARRAY[{ename}]"

    def _check_tensor(self, name, ne, type_id, offset, data_size) -> TensorInfo:
        path = self.path
        if type_id not in _TYPE_NAMES:
            raise GGUFError(f"{path}: tensor '{name}' has unknown type {type_id} (ggml types "
                            f"0 to {max(_TYPE_NAMES)})")
        type_name = _TYPE_NAMES[type_id]
        if type_name not in TENSOR_TYPES:
            raise GGUFError(f"{path}: tensor '{name}' has type {type_name}, which is not "
                            f"supported (supported: {', '.join(SUPPORTED_TYPES)})")
        _, block, block_bytes = TENSOR_TYPES[type_name]
        if ne[0] % block:
            raise GGUFError(f"{path}: tensor '{name}': ne[0] = {ne[0]} is not a multiple of "
                            f"{block}, the block size of {type_name}")
        nbytes = ne[0] // block * block_bytes * math.prod(ne[1:])
        if offset % self.alignment:
            raise GGUFError(f"{path}: tensor '{name}': offset {offset} is not a multiple of the "
                            f"alignment {self.alignment}")
        if data_size < 0 or offset + nbytes > data_size:
            raise GGUFError(f"{path}: tensor '{name}' ({type_name}, ne = {list(ne)}: {nbytes} "
                            f"bytes at data offset {offset}) extends past the end of the file "
                            f"({max(data_size, 0)} bytes of data): truncated file?")
        return TensorInfo(name, ne, type_name, offset, nbytes)

    # -- tensors ----------------------------------------------------------------
    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def info(self, name: str) -> TensorInfo:
        info = self.tensors.get(name)
        if info is None:
            raise GGUFError(f"{self.path}: tensor '{name}' is missing")
        return info

    def raw(self, name: str) -> np.ndarray:
        """The tensor's bytes (uint8, a copy)."""
        info = self.info(name)
        if self._map is None:
            raise GGUFError(f"{self.path}: the file is closed")
        start = self.data_start + info.offset
        return np.frombuffer(self._map, np.uint8, count=info.nbytes, offset=start).copy()

    def blocks(self, name: str) -> np.ndarray:
        """A block-quantized tensor's blocks as stored: uint8 ``[*shape[:-1],
        ne[0] / block, block_bytes]`` (NumPy order)."""
        info = self.info(name)
        _, block, block_bytes = TENSOR_TYPES[info.type]
        if block == 1:
            raise GGUFError(f"{self.path}: tensor '{name}' has type {info.type}, not a block "
                            f"format")
        return self.raw(name).reshape(info.shape[:-1] + (info.ne[0] // block, block_bytes))

    def get(self, name: str) -> np.ndarray:
        """The tensor as float32 in its NumPy shape (``ne`` reversed),
        dequantized exactly as ggml's ``dequantize_row_*`` do."""
        info = self.info(name)
        return dequantize(self.raw(name), info.type, info.shape)

    def close(self):
        self._map = close_map(self._map)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------
# Element formats
# ---------------------------------------------------------------------------
def _q4_k(raw: np.ndarray) -> np.ndarray:
    """Q4_K super-blocks [n, 144] -> f32 [n, 256] (ggml's ``dequantize_row_q4_K``
    and ``get_scale_min_k4``, src/ggml-quants.c at d99724f; values
    ``d * sc * q - dmin * m`` per sub-block of 32, in f32)."""
    d = np.ascontiguousarray(raw[:, 0:2]).view("<f2")[:, 0].astype(np.float32)
    dmin = np.ascontiguousarray(raw[:, 2:4]).view("<f2")[:, 0].astype(np.float32)
    q = raw[:, 4:16].astype(np.uint8)
    sc = np.empty((raw.shape[0], 8), np.uint8)
    m = np.empty((raw.shape[0], 8), np.uint8)
    sc[:, :4] = q[:, 0:4] & 63
    m[:, :4] = q[:, 4:8] & 63
    sc[:, 4:] = (q[:, 8:12] & 0xF) | ((q[:, 0:4] >> 6) << 4)
    m[:, 4:] = (q[:, 8:12] >> 4) | ((q[:, 4:8] >> 6) << 4)
    scale = (d[:, None] * sc.astype(np.float32)).astype(np.float32)     # [n, 8]
    offset = (dmin[:, None] * m.astype(np.float32)).astype(np.float32)
    qs = raw[:, 16:144].reshape(-1, 4, 32)
    nibbles = np.stack([qs & 0xF, qs >> 4], axis=2).reshape(-1, 8, 32).astype(np.float32)
    values = (scale[:, :, None] * nibbles).astype(np.float32) - offset[:, :, None]
    return values.astype(np.float32).reshape(-1, 256)


def _q6_k(raw: np.ndarray) -> np.ndarray:
    """Q6_K super-blocks [n, 210] -> f32 [n, 256] (ggml's ``dequantize_row_q6_K``,
    src/ggml-quants.c, and ``block_q6_K``, src/ggml-common.h, at d99724f:
    ``ql[128]`` low nibbles, ``qh[64]`` high 2-bit pairs, ``scales[16]``
    int8, ``d`` f16; value ``d * scale * (q - 32)`` in f32, 16 values per
    scale)."""
    ql = raw[:, 0:128].reshape(-1, 2, 2, 32)       # [n, half, ql[l] / ql[l + 32], l]
    qh = raw[:, 128:192].reshape(-1, 2, 1, 32)     # [n, half, -, l]
    scales = np.ascontiguousarray(raw[:, 192:208]).view(np.int8).astype(np.float32)
    d = np.ascontiguousarray(raw[:, 208:210]).view("<f2")[:, 0].astype(np.float32)
    low = np.stack([ql & 0xF, ql >> 4], axis=2)     # [n, half, nibble, ql part, l]
    # Quarter j = 2 * nibble + ql part of each half of 128 takes bits 2j of qh.
    shifts = (2 * np.arange(4)).reshape(1, 1, 2, 2, 1).astype(np.uint8)
    high = (qh[:, :, None, :, :] >> shifts) & 3
    q = ((low | (high << 4)).astype(np.int16) - 32).astype(np.float32)  # [n, 2, 2, 2, 32]
    q = q.reshape(-1, 2, 4, 2, 16)                  # [n, half, quarter, l // 16, l % 16]
    sc = scales.reshape(-1, 2, 4, 2)                # scales[8 * half + 2 * quarter + l // 16]
    scale = (d[:, None, None, None] * sc).astype(np.float32)
    return (scale[..., None] * q).astype(np.float32).reshape(-1, 256)


def dequantize(raw: np.ndarray, type_name: str, shape: Sequence[int]) -> np.ndarray:
    """Bytes of a tensor of ``type_name`` -> float32 of NumPy ``shape``."""
    shape = tuple(shape)
    raw = np.ascontiguousarray(raw, np.uint8)
    if type_name == "F32":
        return raw.view("<f4").astype(np.float32).reshape(shape)
    if type_name == "F16":
        return raw.view("<f2").astype(np.float32).reshape(shape)
    if type_name == "BF16":
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    _, block, block_bytes = TENSOR_TYPES[type_name]
    blocks = raw.reshape(-1, block_bytes)
    if type_name in ("Q8_0", "Q4_0"):
        values = quant.dequantize_blocks(blocks[:, None, :], type_name.lower())
    elif type_name == "Q4_K":
        values = _q4_k(blocks)
    elif type_name == "Q6_K":
        values = _q6_k(blocks)
    else:  # pragma: no cover - TENSOR_TYPES lists what is decoded
        raise GGUFError(f"tensor type {type_name} cannot be decoded")
    return values.reshape(shape)


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """f32 -> bf16 bits, round to nearest even, NaN kept quiet (ggml's
    ``ggml_compute_fp32_to_bf16``, src/ggml-impl.h at d99724f)."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(np.asarray(x, np.float32))
    return np.where(nan, ((bits >> 16) | 64).astype(np.uint16), rounded)


def encode_tensor(array: np.ndarray, type_name: str) -> bytes:
    """A float array (NumPy order) as the bytes of a GGUF tensor of
    ``type_name`` (F32, F16, BF16, Q8_0, Q4_0; the quantized formats as
    ggml's reference quantizers, ``moe_mlir.quant``)."""
    a = np.asarray(array, np.float32)
    if type_name == "F32":
        return a.astype("<f4").tobytes()
    if type_name == "F16":
        return a.astype("<f2").tobytes()
    if type_name == "BF16":
        return to_bf16_bits(a).astype("<u2").tobytes()
    if type_name in ("Q8_0", "Q4_0"):
        return quant.quantize_blocks(a, type_name.lower()).tobytes()
    raise ValueError(f"cannot encode tensor type {type_name!r} (F32, F16, BF16, Q8_0, Q4_0)")


# ---------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------
def _pack_scalar(name: str, value) -> bytes:
    if name == "STRING":
        raw = str(value).encode("utf-8")
        return struct.pack("<Q", len(raw)) + raw
    if name == "BOOL":
        return struct.pack("<B", 1 if value else 0)
    return struct.pack(VALUE_TYPES[VALUE_TYPE_IDS[name]][1], value)


class GGUFWriter:
    """Writes a GGUF v3 file as gguf-py's ``GGUFWriter`` does: the pairs in
    the order added (put ``general.architecture`` first), the tensor infos
    in the order added with offsets ``offset_k+1 = offset_k +
    align_up(nbytes_k)``, zero padding to the alignment before the data and
    after every tensor (the last one too). Types are explicit: ``add(key,
    value, "UINT32")``, ``add(key, [..], "ARRAY", "INT32")``; a non-default
    ``alignment`` is written as ``general.alignment`` (u32), like
    gguf-py's ``add_custom_alignment``."""

    def __init__(self, alignment: int = DEFAULT_ALIGNMENT):
        if alignment <= 0 or alignment & (alignment - 1):
            raise ValueError(f"alignment must be a power of two, got {alignment}")
        self.alignment = alignment
        self.kv: "OrderedDict[str, Tuple[str, object, Optional[str]]]" = OrderedDict()
        self.tensors: "OrderedDict[str, Tuple[Tuple[int, ...], str, bytes]]" = OrderedDict()
        if alignment != DEFAULT_ALIGNMENT:
            self.add("general.alignment", alignment, "UINT32")

    def add(self, key: str, value, vtype: str, element: Optional[str] = None):
        """A pair; replacing a key keeps its first position."""
        if vtype not in VALUE_TYPE_IDS:
            raise ValueError(f"unknown value type {vtype!r}")
        if vtype == "ARRAY" and element not in VALUE_TYPE_IDS or element == "ARRAY":
            raise ValueError(f"key {key!r}: an array needs a scalar element type")
        self.kv[key] = (vtype, value, element)

    def add_u32(self, key: str, value: int):
        self.add(key, int(value), "UINT32")

    def add_f32(self, key: str, value: float):
        self.add(key, float(value), "FLOAT32")

    def add_str(self, key: str, value: str):
        self.add(key, value, "STRING")

    def add_bool(self, key: str, value: bool):
        self.add(key, bool(value), "BOOL")

    def add_array(self, key: str, values: Iterable, element: str):
        self.add(key, list(values), "ARRAY", element)

    def add_tensor(self, name: str, array: np.ndarray, type_name: str = "F32"):
        """A tensor from a float array in NumPy order (``ne`` = its shape
        reversed), encoded as ``type_name``."""
        array = np.asarray(array)
        self.add_raw_tensor(name, tuple(reversed(array.shape)), type_name,
                            encode_tensor(array, type_name))

    def add_raw_tensor(self, name: str, ne: Sequence[int], type_name: str, data: bytes):
        """A tensor from its bytes (``ne`` in ggml order)."""
        if name in self.tensors:
            raise ValueError(f"tensor {name!r} added twice")
        if type_name not in _TYPE_IDS:
            raise ValueError(f"unknown tensor type {type_name!r}")
        self.tensors[name] = (tuple(int(d) for d in ne), type_name, bytes(data))

    def _header(self) -> bytes:
        out = [MAGIC, struct.pack("<IQQ", VERSION, len(self.tensors), len(self.kv))]
        for key, (vtype, value, element) in self.kv.items():
            out.append(_pack_scalar("STRING", key))
            out.append(struct.pack("<I", VALUE_TYPE_IDS[vtype]))
            if vtype == "ARRAY":
                values = list(value)
                out.append(struct.pack("<IQ", VALUE_TYPE_IDS[element], len(values)))
                out.extend(_pack_scalar(element, v) for v in values)
            else:
                out.append(_pack_scalar(vtype, value))
        offset = 0
        for name, (ne, type_name, data) in self.tensors.items():
            out.append(_pack_scalar("STRING", name))
            out.append(struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}q", *ne))
            out.append(struct.pack("<IQ", _TYPE_IDS[type_name], offset))
            offset += len(data) + (-len(data) % self.alignment)
        header = b"".join(out)
        return header + b"\0" * (-len(header) % self.alignment)

    def write(self, path: str):
        with open(path, "wb") as f:
            f.write(self._header())
            for ne, type_name, data in self.tensors.values():
                f.write(data)
                f.write(b"\0" * (-len(data) % self.alignment))
