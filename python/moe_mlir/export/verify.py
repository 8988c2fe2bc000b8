"""Export-time numerical verification against the framework's eager output.

The exported graph is compiled and run on probe inputs next to the module
itself; outputs must agree under the contract's conformance rule (section
5). Tokens whose routing sits on a knife edge are found with the reference's
``route_decisions`` on each MoE block's actual input (captured with forward
hooks) and excluded; with attention after such a block, the later tokens of
the sequence are excluded too (attention mixes them). A mismatch raises
``ExportError`` naming the module and what differs.
"""

from typing import Dict, List, Sequence

import numpy as np

from .. import conformance
from .. import reference as ref
from .graph import ModelSpec
from .layers import MoESpec
from .model import ExportedModel, ExportError

__all__ = ["verify_export", "routing_ambiguity"]


def _strategy(routing):
    return {"top_k": ref.TopK(), "top_p": lambda: ref.TopP(routing.p),
            "adaptive": lambda: ref.Adaptive(routing.tau),
            "threshold": lambda: ref.Threshold(routing.tau, routing.k_min),
            "dynamic_k": ref.DynamicK(),
            "expert_choice": lambda: ref.ExpertChoice(routing.capacity_factor)
            }[routing.strategy]


def routing_ambiguity(spec: MoESpec, inputs: np.ndarray) -> np.ndarray:
    """Which tokens of an MoE block's input have an ambiguous routing."""
    routing = spec.routing
    strategy = _strategy(routing)
    strategy = strategy() if callable(strategy) else strategy
    x = np.asarray(inputs, np.float32).reshape(-1, spec.hidden)
    logits = (x @ spec.w_router).astype(np.float32)
    if spec.b_router is not None:
        logits = (logits + spec.b_router).astype(np.float32)
    k_per_token = None
    if spec.k_predictor is not None:
        w, b = spec.k_predictor
        z = (x @ w).astype(np.float32)[:, 0] + np.float32(b[0])
        k_per_token = np.ceil((np.float32(1) / (1 + np.exp(-z))).astype(np.float32)
                              * np.float32(routing.k)).astype(np.int64)
    decisions = ref.route_decisions(
        logits, ref.ExpertSpace(routing.E, routing.num_null, routing.num_copy, routing.num_const),
        routing.k, scoring=routing.scoring, strategy=strategy, normalize=routing.normalize,
        scale=routing.scale,
        capacity=ref.Capacity(*routing.capacity) if routing.capacity else None,
        groups=ref.Groups(*routing.groups) if routing.groups else None,
        k_per_token=k_per_token, selection_bias=spec.selection_bias)
    return np.asarray(decisions.ambiguous, bool)


def _eager(module, x: np.ndarray, captures):
    """Runs the module; ``captures`` pairs submodules with lists that receive
    their first input."""
    import torch
    handles = []
    for source, store in captures:
        def capture(mod, args, out, store=store):
            store.append(args[0].detach().to(torch.float32).cpu().numpy()
                         .reshape(-1, args[0].shape[-1]))
        handles.append(source.register_forward_hook(capture))
    try:
        with torch.no_grad():
            out = module(torch.from_numpy(x))
    finally:
        for handle in handles:
            handle.remove()
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.detach().to(torch.float32).cpu().numpy().reshape(x.shape)


def verify_export(module, spec: ModelSpec, exported: ExportedModel,
                  tokens: Sequence[int] = (1, 7, 33), seed: int = 0, attempts: int = 3):
    """Runs the module eagerly and the exported graph compiled, on probe inputs
    of each length in ``tokens``; raises ExportError on a mismatch."""
    run = exported.compile()
    has_attention = [layer.attention is not None for layer in spec.layers]
    for count in tokens:
        for attempt in range(attempts):
            rng = np.random.default_rng([seed, count, attempt])
            x = rng.standard_normal((count, spec.hidden)).astype(np.float32)
            hooked = {i: [] for i, layer in enumerate(spec.layers)
                      if isinstance(layer.ffn, MoESpec) and layer.ffn_source is not None}
            expected = _eager(module, x,
                              [(spec.layers[i].ffn_source, store) for i, store in hooked.items()])
            got = run(x)
            excluded = set()
            for i, captured in hooked.items():
                if not captured:
                    continue
                ambiguous = np.nonzero(routing_ambiguity(spec.layers[i].ffn, captured[0]))[0]
                if ambiguous.size == 0:
                    continue
                if any(has_attention[i + 1:]):
                    # Attention in a later layer mixes this token into the later ones.
                    excluded.update(range(int(ambiguous.min()), count))
                else:
                    excluded.update(int(t) for t in ambiguous)
            result = conformance.compare_rows(got, expected, exclude_tokens=sorted(excluded),
                                              what="output")
            if result.badly_chosen and attempt + 1 < attempts:
                continue
            if result.badly_chosen:
                raise ExportError(f"{spec.path}: cannot verify the export: the routing of "
                                  f"{len(excluded)} of {count} probe tokens is ambiguous")
            if not result.ok:
                rows = sorted({m.token for m in result.failures})
                first = result.failures[0]
                raise ExportError(
                    f"{spec.path}: the exported graph does not reproduce the module: with "
                    f"{count} tokens, {len(rows)} token(s) differ beyond the conformance bound "
                    f"(first: token {first.token}, column {first.slot}: exported "
                    f"{first.got:.6g} vs eager {first.expected:.6g}, bound "
                    f"{first.tol:.3g})")
            break
    return True
