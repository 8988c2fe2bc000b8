"""Hugging Face checkpoint folders, read lazily (NumPy only, no torch).

A folder holds ``config.json`` and either ``model.safetensors`` or shards
listed by ``model.safetensors.index.json`` (``{"metadata": {...},
"weight_map": {tensor name: shard file name}}``), the layout that
``transformers``' ``save_pretrained`` writes and vLLM/SGLang load. Opening a
folder reads the JSON files and the safetensors headers only; a tensor's
bytes are read when it is asked for. Every problem raises ``HFCheckpointError``
(a ``ValueError``) naming the file and the key or tensor: a missing or
malformed ``config.json`` or index, a shard listed in the index but absent,
a tensor in no shard, a tensor listed in one shard but stored in another.
"""

import json
import os
from collections import OrderedDict
from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from .safetensors import SafetensorsError, SafetensorsFile, TensorInfo

__all__ = ["HFCheckpointError", "HFCheckpoint", "read_json"]

CONFIG = "config.json"
SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"


class HFCheckpointError(ValueError):
    """A Hugging Face checkpoint folder that cannot be read as one."""


def read_json(path: str) -> dict:
    """The JSON object in ``path``, or an error naming the file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as error:
        raise HFCheckpointError(f"{path}: cannot read: {error.strerror}") from None
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise HFCheckpointError(f"{path}: not UTF-8 text: {error}") from None
    except json.JSONDecodeError as error:
        raise HFCheckpointError(f"{path}: malformed JSON: {error.msg} at line {error.lineno} "
                                f"column {error.colno}") from None
    except RecursionError:
        raise HFCheckpointError(f"{path}: JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise HFCheckpointError(f"{path}: the file must hold a JSON object, got "
                                f"{type(value).__name__}")
    return value


class HFCheckpoint:
    """The config and the tensors of a checkpoint folder."""

    def __init__(self, folder: str):
        if not os.path.isdir(folder):
            raise HFCheckpointError(f"{folder}: not a directory (a Hugging Face checkpoint "
                                    f"folder holds {CONFIG} and {SINGLE} or {INDEX})")
        self.folder = folder
        self.config = read_json(os.path.join(folder, CONFIG))
        self._files: "OrderedDict[str, SafetensorsFile]" = OrderedDict()
        self._where: Dict[str, str] = {}
        index_path = os.path.join(folder, INDEX)
        single_path = os.path.join(folder, SINGLE)
        if os.path.exists(index_path):
            self._read_index(index_path)
        elif os.path.exists(single_path):
            f = self._open(SINGLE)
            self._where = {name: SINGLE for name in f.keys()}
        else:
            raise HFCheckpointError(f"{folder}: no weights: neither {SINGLE} nor {INDEX}")

    def _open(self, shard: str) -> SafetensorsFile:
        if shard not in self._files:
            path = os.path.join(self.folder, shard)
            if not os.path.exists(path):
                raise HFCheckpointError(f"{path}: missing: the shard is listed in {INDEX} but "
                                        f"absent")
            try:
                self._files[shard] = SafetensorsFile(path)
            except SafetensorsError as error:
                raise HFCheckpointError(str(error)) from None
        return self._files[shard]

    def _read_index(self, path: str):
        index = read_json(path)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict):
            raise HFCheckpointError(f"{path}: 'weight_map' must be an object of tensor name -> "
                                    f"shard file, got {type(weight_map).__name__}")
        for name, shard in weight_map.items():
            if not isinstance(shard, str) or os.path.basename(shard) != shard or not shard:
                raise HFCheckpointError(f"{path}: weight_map['{name}'] must be a file name in "
                                        f"the folder, got {shard!r}")
        # Every shard's header is read now: a listed shard that is absent or
        # malformed, or a tensor that its shard does not hold, is reported
        # before anything is compiled.
        for shard in dict.fromkeys(weight_map.values()):
            self._open(shard)
        for name, shard in weight_map.items():
            if name not in self._files[shard]:
                raise HFCheckpointError(f"{os.path.join(self.folder, shard)}: no tensor '{name}' "
                                        f"({INDEX} lists it in this shard)")
        self._where = dict(weight_map)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def names(self) -> Iterator[str]:
        return iter(self._where)

    def info(self, name: str) -> TensorInfo:
        return self._files[self._shard(name)].tensors[name]

    def _shard(self, name: str) -> str:
        shard = self._where.get(name)
        if shard is None:
            raise HFCheckpointError(f"{self.folder}: no tensor '{name}' in the checkpoint")
        return shard

    def get(self, name: str, shape: Optional[Tuple[int, ...]] = None,
            bf16_to_f32: bool = True) -> np.ndarray:
        """Tensor ``name``; with ``shape``, an error unless it has that
        shape (the message names the tensor, its file and both shapes)."""
        shard = self._shard(name)
        f = self._files[shard]
        info = f.tensors[name]
        if shape is not None and tuple(info.shape) != tuple(shape):
            raise HFCheckpointError(f"{f.path}: tensor '{name}' has shape {list(info.shape)}, "
                                    f"expected {list(shape)} from {CONFIG}")
        try:
            return f.get(name, bf16_to_f32)
        except SafetensorsError as error:
            raise HFCheckpointError(str(error)) from None

    def total_bytes(self) -> int:
        """The bytes of every tensor, as stored."""
        return sum(self.info(name).nbytes for name in self._where)

    def close(self):
        for f in self._files.values():
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
