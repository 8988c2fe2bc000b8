"""moe-mlir: variable-k Mixture-of-Experts as first-class MLIR.

Compiler entry points (they need the native extension, built by
``scripts/setup.sh``; put ``build/python_packages`` on ``PYTHONPATH``):

  compile(mlir_text, entry)   -- JIT-compile a module, return a callable
  compile_route(...)          -- a compiled moe.route for a configuration
  compile_layer(...)          -- a compiled moe.layer for a configuration
  load_hf(folder)             -- a Hugging Face MoE checkpoint folder (Mixtral,
                                 Qwen2-MoE, Qwen3-MoE, OLMoE) compiled from
                                 token ids [B, S] to logits [B, S, vocab]
  load_gguf(path)             -- the same from a llama.cpp GGUF file (llama
                                 with experts, qwen2moe, qwen3moe, olmoe;
                                 Q8_0/Q4_0 experts stay quantized)
  CompileError                -- verifier, pass or code generation failures

Each takes a ``target`` of one vocabulary (``targets``: "cpu", "gpu",
"gpu-emulated"); ``aot.build_shared_library`` and ``moe-run`` too.

Pure-NumPy submodules (no compiler needed):

  reference    -- the NumPy reference of every op of the `moe` dialect (the
                  oracle of all numeric tests; it never imports the compiler)
  conformance  -- the contract's comparison rule (section 5)
"""

__version__ = "0.1.0"

from typing import Optional  # noqa: E402

from .compiler import CompileError, compile, lower, set_num_threads  # noqa: E402,F401
from .routing import compile_layer, compile_route  # noqa: E402,F401

__all__ = ["CompileError", "compile", "compile_route", "compile_layer", "load_hf", "load_gguf",
           "set_num_threads", "reference", "conformance"]


def load_hf(folder: str, target: str = "cpu", expert_parallel: Optional[str] = None):
    """A Hugging Face checkpoint folder (``config.json`` and
    ``model.safetensors`` or shards with ``model.safetensors.index.json``)
    as a callable ``model(ids [B, S]) -> logits [B, S, vocab]`` (float32),
    compiled for ``target`` ("cpu" or "gpu-emulated") on the first call.
    Every problem with the folder is a ``ValueError`` naming the file, field
    or tensor (see docs/Export.md). With ``expert_parallel`` (a placement,
    "balanced" or "0,3,8"; every rank of an MPI run calls it), each rank
    reads only its experts and runs its share of the B sequences; every
    rank gets all logits (docs/Distributed.md)."""
    from .export.hf import HFLanguageModel
    return HFLanguageModel(folder, target=target, expert_parallel=expert_parallel)


def load_gguf(path: str, target: str = "cpu"):
    """A llama.cpp GGUF file (``general.architecture`` llama with experts,
    i.e. Mixtral, qwen2moe, qwen3moe or olmoe) as a callable
    ``model(ids [B, S]) -> logits [B, S, vocab]`` (float32), compiled for
    ``target`` on the first call, like ``load_hf``. Expert tensors in Q8_0
    or Q4_0 run quantized (``moe.layer ... quant``); other tensors are
    dequantized to f32. Every problem with the file is a ``ValueError``
    (``GGUFError``) naming the key or tensor (see docs/Export.md)."""
    from .export.gguf import GGUFLanguageModel
    return GGUFLanguageModel(path, target=target)
