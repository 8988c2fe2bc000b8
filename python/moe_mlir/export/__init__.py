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
           routing=None, probes=None, probe_tokens=None, seed: int = 0) -> ExportedModel:
    """Exports a PyTorch MoE block, decoder layer or model.

    The module is recognised by its structure and the conventions of the
    published code it follows (see ``torch_frontend`` and docs/Export.md).
    ``routing`` overrides what cannot be read from the module (MoE++ keeps
    its top-k in a module-level global): a dict of ``RoutingConfig``
    arguments (``k``, ``normalize``, ``groups``, ...) applied to every MoE
    block. With ``verify`` (the default), the exported graph is compiled and
    checked against the module's eager output, the module called in its own
    convention on cloned inputs, for probe inputs of each (batch, sequence)
    shape in ``probes`` (default B in {1, 2} x S in {1, 7, 33};
    ``probe_tokens`` is the older spelling: sequences of those lengths); the
    largest difference seen is ``exported.info["max_difference"]``.

    Every failure is an ``ExportError`` naming the module path: a structure
    that is not understood, a routing that the contract cannot express, an
    override that disagrees with the module, or a graph that does not
    reproduce it (with the probe shape, the tokens and the max difference)."""
    from .torch_frontend import extract
    from .verify import DEFAULT_PROBES
    if probes is None:
        probes = DEFAULT_PROBES if probe_tokens is None else tuple(probe_tokens)
    try:
        spec = extract(module, path, routing=routing)
        exported = emit(spec, entry)
    except ExportError:
        raise
    except Exception as error:  # a module the recognisers misread
        raise ExportError(f"{path}: cannot export {type(module).__name__}: "
                          f"{type(error).__name__}: {error}") from error
    if verify:
        from .verify import verify_export
        was_training = getattr(module, "training", False)
        try:
            if hasattr(module, "eval"):
                module.eval()
            exported.info["max_difference"] = verify_export(module, spec, exported, probes,
                                                            seed)
        except ExportError:
            raise
        except Exception as error:  # the module or the compiled graph failed to run
            raise ExportError(f"{path}: export-time verification failed: running "
                              f"{type(module).__name__} in its own convention raised "
                              f"{type(error).__name__}: {error}") from error
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
