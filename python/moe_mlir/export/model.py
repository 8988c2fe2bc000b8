"""Exported models: the MLIR module, its named weights, and how to run it."""

import os
import time
from collections import OrderedDict
from typing import Dict, List, Optional

import numpy as np

from .. import compiler
from . import safetensors

__all__ = ["ExportedModel", "ExportError"]


class ExportError(ValueError):
    """A module, config or checkpoint that cannot be exported, or an exported
    graph that does not reproduce the framework's output. The message names
    the module path and what was not understood or what differs."""


class ExportedModel:
    """An exported model: ``mlir`` (text), ``weights`` (name -> array, in the
    order of the entry function's weight arguments) and ``inputs`` (the names
    of the non-weight arguments, first)."""

    def __init__(self, mlir: str, entry: str, inputs: List[str],
                 weights: "OrderedDict[str, np.ndarray]", info: Optional[Dict] = None):
        self.mlir = mlir
        self.entry = entry
        self.inputs = list(inputs)
        self.weights = weights
        self.info = info or {}
        self._compiled = None

    def compile(self, instrument_ffn: bool = False):
        """The compiled entry function with the weights bound: ``f(*inputs)``."""
        placement = self.info.get("expert_parallel")
        if self._compiled is None or self._compiled[0] != instrument_ffn:
            if placement is not None:
                if instrument_ffn:
                    raise ValueError("instrument_ffn is not available for an expert-parallel "
                                     "model")
                from .. import ep
                function = ep.compile(self.mlir, self.entry, placement=placement,
                                      arg_names=self.inputs + list(self.weights),
                                      weights_from=len(self.inputs))
            else:
                function = compiler.compile(self.mlir, self.entry,
                                            instrument_ffn=instrument_ffn,
                                            arg_names=self.inputs + list(self.weights))
            self._compiled = (instrument_ffn, function)
        function = self._compiled[1]
        weights = list(self.weights.values())

        def run(*inputs):
            """Runs the model on hidden states ``[T, H]`` or ``[..., H]``
            (leading dimensions are flattened into tokens and restored on the
            output; router logits stay ``[T, S]``, as transformers returns
            them) and the further inputs the export has (``self.inputs``).
            Expert-parallel (``info["expert_parallel"]``): this rank's
            tokens (``moe_mlir.ep.split_tokens``)."""
            if len(inputs) != len(self.inputs):
                raise TypeError(f"{self.entry}: expected {len(self.inputs)} input(s) "
                                f"({', '.join(self.inputs)}), got {len(inputs)}")
            arrays = [np.asarray(a) for a in inputs]
            lead = arrays[0].shape[:-1]
            flat = [a.reshape(-1, a.shape[-1]) if a.ndim != 2 else a for a in arrays]
            out = function(*flat, *weights)
            if isinstance(out, tuple):
                return (out[0].reshape(*lead, out[0].shape[-1]),) + tuple(out[1:])
            return out.reshape(*lead, out.shape[-1])
        run.function = function
        return run

    def save(self, directory: str, name: str = "model") -> Dict[str, str]:
        """Writes ``<name>.mlir`` and ``<name>.safetensors`` (the weights under
        the argument names that ``moe-run`` binds them by; the metadata lists
        which layers each stack holds)."""
        os.makedirs(directory, exist_ok=True)
        paths = {"mlir": os.path.join(directory, name + ".mlir"),
                 "weights": os.path.join(directory, name + ".safetensors")}
        with open(paths["mlir"], "w") as f:
            f.write(self.mlir)
        metadata = {"format": "moe-mlir", "entry": self.entry, "inputs": ",".join(self.inputs)}
        for prefix, layers in self.info.get("stacks", {}).items():
            metadata[prefix] = ",".join(layers)
        safetensors.save(paths["weights"], self.weights, metadata=metadata)
        return paths

    def layer_functions(self) -> List[str]:
        """Names of the outlined functions (one per distinct layer shape)."""
        return [line.split("@")[1].split("(")[0] for line in self.mlir.splitlines()
                if line.startswith("func.func private @")]
