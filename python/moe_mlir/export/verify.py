"""Export-time numerical verification against the framework's eager output.

The exported graph is compiled and run on probe inputs next to the module
itself, the module called in its own convention (``CallSpec``: ``[B, S, H]``
or ``[T, H]`` in, a tensor or a tuple out, further inputs such as a gating
residual) on cloned inputs (some published blocks scale their input in
place). Every result (the hidden states, the router logits where the block
returns them) must agree under the contract's conformance rule (section 5).
Tokens whose routing sits on a knife edge are found with the reference's
``route_decisions`` on each MoE block's actual input (captured with forward
hooks) and excluded; with attention after such a block, the later tokens of
the sequence are excluded too (attention mixes them). A mismatch raises
``ExportError`` naming the module, the probe shape, the token and the max
difference.

Modules in bf16 (or f16) run eagerly in that type; the export computes in
f32 with the weights widened exactly, so the comparison uses the project's
bf16 (f16) bound of ``conformance.MATMUL_TOL`` and a routing decision counts
as ambiguous within the rounding of the logits in that type (2^-8, 2^-11
relative: the difference of two values rounded to that type) instead of
1e-5, and up to half the probe tokens may be ambiguous (5% in f32).
"""

from typing import List, Sequence

import numpy as np

from .. import conformance
from .. import reference as ref
from .graph import ModelSpec
from .layers import MoESpec
from .model import ExportedModel, ExportError

__all__ = ["verify_export", "routing_ambiguity", "DEFAULT_PROBES"]

#: (batch, sequence) shapes of the probe inputs.
DEFAULT_PROBES = ((1, 1), (1, 7), (1, 33), (2, 1), (2, 7), (2, 33))

_EPS = {"f32": ref.AMBIGUITY_EPS, "bf16": 2.0 ** -8, "f16": 2.0 ** -11}
# The share of ambiguous probe tokens above which a probe is drawn again:
# the contract's 5% for f32; in bf16 (f16) knife edges are common (one
# rounding of the scores moves them by 2^-9 relative), so up to half.
_MAX_AMBIGUOUS = {"f32": conformance.MAX_AMBIGUOUS_FRACTION, "bf16": 0.5, "f16": 0.5}


def _strategy(routing):
    return {"top_k": ref.TopK(), "top_p": lambda: ref.TopP(routing.p),
            "adaptive": lambda: ref.Adaptive(routing.tau),
            "threshold": lambda: ref.Threshold(routing.tau, routing.k_min),
            "dynamic_k": ref.DynamicK(),
            "expert_choice": lambda: ref.ExpertChoice(routing.capacity_factor)
            }[routing.strategy]


def routing_ambiguity(spec: MoESpec, inputs: np.ndarray, residual=None,
                      elem_type: str = "f32") -> np.ndarray:
    """Which tokens of an MoE block's input have an ambiguous routing."""
    routing = spec.routing
    strategy = _strategy(routing)
    strategy = strategy() if callable(strategy) else strategy
    x = np.asarray(inputs, np.float32).reshape(-1, spec.hidden)
    logits = spec.route_logits(x, residual)
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
        k_per_token=k_per_token, selection_bias=spec.selection_bias, eps=_EPS[elem_type])
    return np.asarray(decisions.ambiguous, bool)


def _module_dtype(module):
    import torch
    for parameter in module.parameters():
        if parameter.is_floating_point():
            return parameter.dtype
    return torch.float32


def _elem_type(dtype) -> str:
    import torch
    return {torch.bfloat16: "bf16", torch.float16: "f16"}.get(dtype, "f32")


def _eager(module, spec: ModelSpec, x: np.ndarray, extras: List[np.ndarray], captures, dtype):
    """Runs the module on copies of the inputs in its own convention;
    ``captures`` pairs submodules with lists that receive their first input.
    Returns the results in the exported function's order, flattened to
    [T, ...] in f32."""
    import torch
    call = spec.call
    handles = []
    for source, store in captures:
        # Before the forward: a block may change its input in place (MoE++).
        def capture(mod, args, store=store):
            if args and isinstance(args[0], torch.Tensor):
                store.append(args[0].detach().to(torch.float32).cpu().numpy()
                             .reshape(-1, args[0].shape[-1]).copy())
        handles.append(source.register_forward_pre_hook(capture))
    try:
        with torch.no_grad():
            hidden = torch.from_numpy(np.array(x)).to(dtype)
            named = {name: torch.from_numpy(np.array(a)).to(dtype)
                     for name, a in zip(call.extra_inputs, extras)}
            out = module(hidden, **named)
    finally:
        for handle in handles:
            handle.remove()
    results = []
    outputs = call.outputs
    if outputs is None:
        outputs = (0,) if isinstance(out, (tuple, list)) else (None,)
    for index in outputs:
        value = out if index is None else out[index]
        if not isinstance(value, torch.Tensor):
            raise ExportError(f"{spec.path}: result {index} of the module is "
                              f"{type(value).__name__}, not a tensor")
        value = value.detach().to(torch.float32).cpu().numpy()
        results.append(value.reshape(-1, value.shape[-1]))
    return results


def _rounded(array: np.ndarray, dtype) -> np.ndarray:
    import torch
    return torch.from_numpy(array).to(dtype).to(torch.float32).numpy()


def _probes(spec: ModelSpec, probes):
    shapes = []
    attention = any(layer.attention is not None for layer in spec.layers)
    for probe in probes:
        shape = (1, int(probe)) if np.isscalar(probe) else tuple(int(d) for d in probe)
        # The exported graph treats its tokens as one sequence: attention
        # models are probed one sequence at a time.
        if attention and shape[0] != 1:
            continue
        if shape not in shapes:
            shapes.append(shape)
    return shapes


def verify_export(module, spec: ModelSpec, exported: ExportedModel,
                  probes: Sequence = DEFAULT_PROBES, seed: int = 0, attempts: int = 3):
    """Runs the module eagerly and the exported graph compiled, on probe inputs
    of each (batch, sequence) shape in ``probes`` (an int is one sequence of
    that length); raises ExportError on a mismatch. Returns the largest
    |exported - eager| of the hidden-state output on non-ambiguous tokens."""
    run = exported.compile()
    dtype = _module_dtype(module)
    elem = _elem_type(dtype)
    rtol, atol = conformance.matmul_tolerance(elem)
    has_attention = [layer.attention is not None for layer in spec.layers]
    names = exported.info.get("results", ["output"])
    worst = worst_relative = 0.0
    for batch, length in _probes(spec, probes):
        count = batch * length
        for attempt in range(attempts):
            rng = np.random.default_rng([seed, batch, length, attempt])
            shape = (batch, length, spec.hidden) if spec.call.input_rank == 3 \
                else (count, spec.hidden)
            x = rng.standard_normal(shape).astype(np.float32)
            # The only extra input so far is a gating residual: [T, S] logits.
            extras = [rng.standard_normal((count, spec.layers[0].ffn.routing.S))
                      .astype(np.float32) for _ in spec.call.extra_inputs]
            if elem != "f32":
                # The module sees the inputs in its type, the export the same values.
                x, extras = _rounded(x, dtype), [_rounded(a, dtype) for a in extras]
            hooked = {i: [] for i, layer in enumerate(spec.layers)
                      if isinstance(layer.ffn, MoESpec) and layer.ffn_source is not None}
            expected = _eager(module, spec, x, extras,
                              [(spec.layers[i].ffn_source, store) for i, store in hooked.items()],
                              dtype)
            got = run(x.reshape(count, spec.hidden), *extras)
            got = list(got) if isinstance(got, tuple) else [got]
            if len(got) != len(expected):
                raise ExportError(f"{spec.path}: the module returns {len(expected)} result(s), "
                                  f"the export {len(got)}")
            excluded = set()
            for i, captured in hooked.items():
                if not captured:
                    continue
                residual = extras[0] if spec.layers[i].ffn.gate_residual and extras else None
                ambiguous = np.nonzero(routing_ambiguity(spec.layers[i].ffn, captured[0],
                                                         residual, elem))[0]
                if ambiguous.size == 0:
                    continue
                if any(has_attention[i + 1:]):
                    # Attention in a later layer mixes this token into the later ones.
                    excluded.update(range(int(ambiguous.min()), count))
                else:
                    excluded.update(int(t) for t in ambiguous)
            keep = np.ones(count, bool)            # the tokens the output is compared on
            keep[sorted(excluded)] = False
            results = []
            for name, g, e in zip(names, got, expected):
                g = np.asarray(g, np.float32).reshape(e.shape) if g.size == e.size else g
                if g.shape != e.shape:
                    raise ExportError(f"{spec.path}: result '{name}' has shape {e.shape} in "
                                      f"eager and {g.shape} exported (probe [{batch}, {length}])")
                # The router logits do not depend on routing decisions.
                skip = sorted(excluded) if name == "output" else []
                results.append((name, g, e, conformance.compare_rows(
                    g, e, rtol_row=rtol, atol=atol, exclude_tokens=skip, what=name,
                    max_ambiguous_fraction=_MAX_AMBIGUOUS[elem])))
            if any(r.badly_chosen for *_, r in results) and attempt + 1 < attempts:
                continue
            for name, g, e, result in results:
                if result.badly_chosen:
                    raise ExportError(f"{spec.path}: cannot verify the export: the routing of "
                                      f"{len(excluded)} of {count} probe tokens is ambiguous")
                if not result.ok:
                    rows = sorted({m.token for m in result.failures})
                    first = result.failures[0]
                    rows_compared = keep if name == "output" else slice(None)
                    diff = float(np.nanmax(np.abs(g[rows_compared] - e[rows_compared])))
                    raise ExportError(
                        f"{spec.path}: the exported graph does not reproduce the module: "
                        f"'{name}' for a probe input [{batch}, {length}, {spec.hidden}] "
                        f"differs in {len(rows)} token(s) (tokens {rows[:8]}"
                        f"{'...' if len(rows) > 8 else ''}), max |difference| {diff:.3g}; first: "
                        f"token {first.token}, column {first.slot}: exported {first.got:.6g} vs "
                        f"eager {first.expected:.6g}, bound {first.tol:.3g} ({elem})")
            name, g, e, _ = results[0]
            if keep.any():
                diff = np.abs(g[keep] - e[keep])
                worst = max(worst, float(np.max(diff)))
                scale = np.maximum(np.max(np.abs(e[keep]), axis=1, keepdims=True), 1e-30)
                worst_relative = max(worst_relative, float(np.max(diff / scale)))
            break
    exported.info["max_relative_difference"] = worst_relative
    return worst

