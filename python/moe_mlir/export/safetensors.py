"""A small reader and writer of the safetensors format (NumPy only).

Layout: an 8-byte little-endian header length N, N bytes of JSON
``{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]},
"__metadata__": {...}}``, then the data (offsets relative to its start).
Every malformed input raises ``SafetensorsError`` (a ``ValueError``) with the
file and what is wrong, never another exception or a crash: unreadable or
truncated files, bad or deeply nested JSON, entries of the wrong JSON type,
unknown dtypes, offsets outside the data, shapes whose size overflows,
sizes that disagree with the shape.
"""

import json
import math
import os
import struct
from collections import OrderedDict
from typing import Dict, Optional

import numpy as np

__all__ = ["SafetensorsError", "SafetensorsFile", "TensorInfo", "load", "save", "DTYPES", "close_map"]

DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"), "I64": np.dtype("<i8"), "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"), "I8": np.dtype("i1"), "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
_NAMES = {v: k for k, v in DTYPES.items() if k != "BF16"}
_MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    """A malformed safetensors file."""


class TensorInfo:
    """One entry of a header: dtype name, shape, byte range in the data."""
    __slots__ = ("name", "dtype", "shape", "begin", "end")

    def __init__(self, name, dtype, shape, begin, end):
        self.name, self.dtype, self.shape, self.begin, self.end = name, dtype, shape, begin, end

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


class SafetensorsFile:
    """A safetensors file read lazily: the header is read and every entry
    validated when the file is opened; a tensor's bytes are read (through a
    memory map) only when it is asked for, so a folder of shards larger than
    memory can be inspected and read one tensor at a time."""

    def __init__(self, path: str):
        self.path = path
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as f:
                head = f.read(8)
                if len(head) < 8:
                    raise SafetensorsError(f"{path}: truncated: {size} bytes, a safetensors "
                                           f"file starts with an 8-byte header length")
                (header_size,) = struct.unpack("<Q", head)
                if header_size > min(_MAX_HEADER, size - 8):
                    raise SafetensorsError(f"{path}: header length {header_size} exceeds the "
                                           f"file ({size} bytes): truncated or not a "
                                           f"safetensors file")
                header = _parse_header(path, f.read(header_size))
        except OSError as error:
            raise SafetensorsError(f"{path}: cannot read: {error.strerror}") from None
        self._data_start = 8 + header_size
        data_size = size - self._data_start
        meta = header.get("__metadata__", {})
        self.metadata = meta if isinstance(meta, dict) else {}
        self.tensors: "OrderedDict[str, TensorInfo]" = OrderedDict()
        entries = [(k, v) for k, v in header.items() if k != "__metadata__"]
        entries.sort(key=lambda kv: _begin(kv[1]))
        for name, entry in entries:
            self.tensors[name] = _check_entry(path, name, entry, data_size)
        self._map = None

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def keys(self):
        return self.tensors.keys()

    def _buffer(self):
        if self._map is None:
            import mmap
            try:
                with open(self.path, "rb") as f:
                    self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError) as error:
                raise SafetensorsError(f"{self.path}: cannot map: {error}") from None
        return self._map

    def get(self, name: str, bf16_to_f32: bool = True) -> np.ndarray:
        """Tensor ``name`` as a new array. BF16 is widened to float32
        (exactly) unless ``bf16_to_f32`` is False (then uint16 bits)."""
        info = self.tensors.get(name)
        if info is None:
            raise SafetensorsError(f"{self.path}: no tensor '{name}'")
        dtype = DTYPES[info.dtype]
        count = math.prod(info.shape)
        begin = self._data_start + info.begin
        try:
            array = np.frombuffer(self._buffer(), dtype=dtype, count=count,
                                  offset=begin).reshape(info.shape).copy()
        except (ValueError, OverflowError, MemoryError) as error:  # e.g. [0, 2**62]
            raise SafetensorsError(f"{self.path}: tensor '{name}': shape {info.shape} cannot "
                                   f"be represented: {error}") from None
        if info.dtype == "BF16" and bf16_to_f32:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array

    def get_rows(self, name: str, first: int, count: int,
                 bf16_to_f32: bool = True) -> np.ndarray:
        """Rows ``[first, first + count)`` of tensor ``name``'s first
        dimension, reading only their bytes (an expert-parallel rank loads
        only its block of a stacked expert weight)."""
        info = self.tensors.get(name)
        if info is None:
            raise SafetensorsError(f"{self.path}: no tensor '{name}'")
        if not info.shape or not 0 <= first <= first + count <= info.shape[0]:
            raise SafetensorsError(f"{self.path}: tensor '{name}' of shape {info.shape} has "
                                   f"no rows [{first}, {first + count})")
        dtype = DTYPES[info.dtype]
        row = math.prod(info.shape[1:])
        begin = self._data_start + info.begin + first * row * np.dtype(dtype).itemsize
        array = np.frombuffer(self._buffer(), dtype=dtype, count=count * row,
                              offset=begin).reshape((count,) + tuple(info.shape[1:])).copy()
        if info.dtype == "BF16" and bf16_to_f32:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array

    def get_block(self, name: str, dim: int, first: int, count: int,
                  bf16_to_f32: bool = True) -> np.ndarray:
        """Entries ``[first, first + count)`` of dimension ``dim`` of tensor
        ``name`` (a rank's experts of a stack ``[L, E, ...]`` with ``dim =
        1``), copied out of the memory map: only the pages of those entries
        are read."""
        if dim == 0:
            return self.get_rows(name, first, count, bf16_to_f32)
        info = self.tensors.get(name)
        if info is None:
            raise SafetensorsError(f"{self.path}: no tensor '{name}'")
        if len(info.shape) <= dim or not 0 <= first <= first + count <= info.shape[dim]:
            raise SafetensorsError(f"{self.path}: tensor '{name}' of shape {info.shape} has "
                                   f"no entries [{first}, {first + count}) in dimension {dim}")
        dtype = DTYPES[info.dtype]
        whole = np.frombuffer(self._buffer(), dtype=dtype, count=math.prod(info.shape),
                              offset=self._data_start + info.begin).reshape(info.shape)
        index = [slice(None)] * len(info.shape)
        index[dim] = slice(first, first + count)
        array = np.ascontiguousarray(whole[tuple(index)])
        del whole
        if info.dtype == "BF16" and bf16_to_f32:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array

    def close(self):
        self._map = close_map(self._map)


def close_map(mapping):
    """Closes a memory map (None: nothing to close) unless an array still
    views it, which the garbage collector then closes; returns None."""
    if mapping is not None:
        try:
            mapping.close()
        except BufferError:  # an array still views it: the GC closes it
            pass
    return None


def load(path: str, bf16_to_f32: bool = True) -> "OrderedDict[str, np.ndarray]":
    """Reads every tensor of ``path``. BF16 tensors are widened to float32
    (exactly) unless ``bf16_to_f32`` is False (then they are uint16 bits)."""
    f = SafetensorsFile(path)
    try:
        return OrderedDict((name, f.get(name, bf16_to_f32)) for name in f.keys())
    finally:
        f.close()


def _check_entry(path: str, name: str, entry, data_size: int) -> TensorInfo:
    where = f"{path}: tensor '{name}'"
    if not isinstance(entry, dict):
        raise SafetensorsError(f"{where}: entry must be an object")
    dtype_name = entry.get("dtype")
    if not isinstance(dtype_name, str) or dtype_name not in DTYPES:
        raise SafetensorsError(f"{where}: unsupported dtype {dtype_name!r} (supported: "
                               f"{', '.join(DTYPES)})")
    shape = entry.get("shape")
    offsets = entry.get("data_offsets")
    if (not isinstance(shape, list)
            or not all(_is_int(d) and 0 <= d < 2**63 for d in shape)):
        raise SafetensorsError(f"{where}: 'shape' must be a list of non-negative integers, "
                               f"got {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(_is_int(o) for o in offsets)):
        raise SafetensorsError(f"{where}: 'data_offsets' must be [begin, end], got {offsets!r}")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        raise SafetensorsError(f"{where}: data_offsets [{begin}, {end}] lie outside the "
                               f"{data_size} bytes of data (truncated file?)")
    count = math.prod(shape)  # exact (Python integers): no overflow
    if end - begin != count * DTYPES[dtype_name].itemsize:
        raise SafetensorsError(f"{where}: {end - begin} bytes for shape {shape} of "
                               f"{dtype_name} (expected {count * DTYPES[dtype_name].itemsize})")
    return TensorInfo(name, dtype_name, tuple(shape), begin, end)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _begin(entry) -> int:
    """The sort key of an entry: its first data offset where there is one
    (entries are validated after sorting)."""
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    if isinstance(offsets, list) and offsets and _is_int(offsets[0]):
        return offsets[0]
    return 0


def _parse_header(path: str, raw: bytes) -> dict:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SafetensorsError(f"{path}: the header is not valid JSON: {error}") from None
    except RecursionError:
        raise SafetensorsError(f"{path}: the header is JSON nested too deeply") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: the header must be a JSON object")
    return header


def metadata(path: str) -> Dict[str, str]:
    """The ``__metadata__`` of a file (empty if none)."""
    f = SafetensorsFile(path)
    f.close()
    return f.metadata


def save(path: str, tensors: Dict[str, np.ndarray], metadata: Optional[Dict[str, str]] = None):
    """Writes ``tensors`` (NumPy arrays; float32/16/64 and integer dtypes)."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    chunks = []
    offset = 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        if dtype not in _NAMES:
            raise SafetensorsError(f"{path}: tensor '{name}': unsupported dtype {array.dtype}")
        blob = array.astype(dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _NAMES[dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        chunks.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)
