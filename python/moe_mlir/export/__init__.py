"""Exporters: framework models -> MLIR with ``moe.layer``.

  export(torch_module)                 -> ExportedModel   (PyTorch, by structure)
  export_checkpoint(config, weights)   -> ExportedModel   (JSON + safetensors)

An ExportedModel holds the MLIR text (one outlined function per distinct
layer shape, locations carrying the module paths), the named weights in the
order of the entry function's arguments, and can ``compile()`` itself or
``save()`` to ``.mlir`` + ``.safetensors`` for ``moe-run``. See docs/Export.md.
"""

from .graph import LayerSpec, ModelSpec, emit
from .model import ExportError, ExportedModel

__all__ = ["export", "export_checkpoint", "ExportError", "ExportedModel", "ModelSpec",
           "LayerSpec", "emit"]


def export(module, *, path: str = "model", entry: str = "forward", verify: bool = True,
           probe_tokens=(1, 7, 33), seed: int = 0) -> ExportedModel:
    """Exports a PyTorch MoE block, decoder layer or model.

    The module is recognised by its structure (see ``torch_frontend``). With
    ``verify`` (the default), the exported graph is compiled and checked
    against the module's eager output on probe inputs of each length in
    ``probe_tokens``; any difference beyond the conformance rule raises
    ``ExportError`` naming the module and what differs."""
    from .torch_frontend import extract
    spec = extract(module, path)
    exported = emit(spec, entry)
    if verify:
        from .verify import verify_export
        was_training = getattr(module, "training", False)
        if hasattr(module, "eval"):
            module.eval()
        try:
            verify_export(module, spec, exported, probe_tokens, seed)
        finally:
            if was_training:
                module.train()
    return exported


def export_checkpoint(config_path: str, weights_path: str, *, entry: str = "forward",
                      embed_weights: bool = False) -> ExportedModel:
    """Exports a checkpoint: a JSON config of the routing fields plus
    safetensors weights (see ``checkpoint``)."""
    from .checkpoint import export_checkpoint as _export
    return _export(config_path, weights_path, entry=entry, embed_weights=embed_weights)
