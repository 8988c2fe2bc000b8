"""From a model specification to an MLIR module.

A ``ModelSpec`` is what the frontends (PyTorch modules, JSON + safetensors
checkpoints) extract: a list of layers, each optionally with RMSNorm +
attention before its feed-forward part (a ``moe.layer`` with its dense
neighbours, or a dense MLP), and an optional final norm. ``emit`` builds one
outlined function per distinct layer shape, called once per layer from the
entry function, so a 32-layer model costs about one layer to compile.
"""

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import List, Optional, Tuple, Union

import numpy as np

from .. import ir_text
from .layers import (AttentionSpec, DenseMLPSpec, MoESpec, add, attention, gate_rows,
                     linear, moe_chain, moe_layer, permute_columns, rmsnorm, router_logits,
                     scale_rows, swiglu_mlp, tokens_k)
from .mlir_builder import FunctionBuilder, ModuleBuilder, Value, tensor_type
from .model import ExportedModel, ExportError

__all__ = ["CallSpec", "LayerSpec", "ModelSpec", "emit"]


@dataclass
class NormSpec:
    weight: np.ndarray
    eps: float


@dataclass
class LayerSpec:
    """One layer: ``h = x + attn(norm1(x))`` (when attention is present), then
    ``out = h + ffn(norm2(h))`` (``residual``) or ``ffn(h)``."""
    path: str
    ffn: Union[MoESpec, DenseMLPSpec]
    input_norm: Optional[NormSpec] = None
    attention: Optional[AttentionSpec] = None
    post_norm: Optional[NormSpec] = None
    residual: bool = True
    # The framework module of the feed-forward part (for export-time checks)
    # and its module path (for locations; defaults to the layer's path).
    ffn_source: object = field(default=None, compare=False, repr=False)
    ffn_path: Optional[str] = None

    def weights(self) -> "OrderedDict[str, np.ndarray]":
        named = OrderedDict()
        if self.input_norm is not None:
            named["input_norm"] = self.input_norm.weight
        if self.attention is not None:
            a = self.attention
            named.update([("attn.w_q", a.w_q), ("attn.w_k", a.w_k), ("attn.w_v", a.w_v),
                          ("attn.w_o", a.w_o)])
            for extra in ("b_q", "b_k", "b_v", "b_o", "q_norm", "k_norm"):
                if getattr(a, extra) is not None:
                    named[f"attn.{extra}"] = getattr(a, extra)
        if self.post_norm is not None:
            named["post_norm"] = self.post_norm.weight
        if isinstance(self.ffn, MoESpec):
            named.update((f"moe.{n}", w) for n, w in self.ffn.weights().items())
        else:
            named.update([("mlp.w_gate", self.ffn.w_gate), ("mlp.w_up", self.ffn.w_up),
                          ("mlp.w_down", self.ffn.w_down)])
        return named

    def key(self):
        ffn_key = self.ffn.key() if isinstance(self.ffn, MoESpec) else "dense"
        attn = self.attention
        attn_key = None if attn is None else (attn.num_heads, attn.num_kv_heads,
                                              attn.head_dim, attn.rope_theta, attn.qk_norm,
                                              attn.qk_norm_eps, attn.clip_qkv)
        norms = tuple(n.eps if n is not None else None
                      for n in (self.input_norm, self.post_norm))
        return (ffn_key, attn_key, norms, self.residual,
                tuple((n, w.shape) for n, w in self.weights().items()))


@dataclass
class CallSpec:
    """How the framework module is called and what it returns, for
    export-time verification (the exported function always takes tokens
    ``[T, H]`` and returns ``[T, H]``, then the extra results).

    ``input_rank``: 3 when the module takes ``[B, S, H]`` (and, for the
    exported graph, its B*S tokens are independent), 2 when it takes
    ``[T, H]``. ``extra_inputs``: names of further tensor arguments, passed as
    keywords of those names (``gate_residual``: [T, S] logits).
    ``outputs``: for each result of the exported function (``output``,
    ``router_logits``), its index in the tuple the module returns (None: the
    module returns a bare tensor; ``outputs`` None: the hidden states only,
    the module's tensor or the first element of its tuple)."""
    input_rank: int = 3
    extra_inputs: Tuple[str, ...] = ()
    outputs: Optional[Tuple[Optional[int], ...]] = None


@dataclass
class ModelSpec:
    hidden: int
    layers: List[LayerSpec]
    path: str = "model"
    final_norm: Optional[NormSpec] = None
    call: CallSpec = field(default_factory=CallSpec)
    # A language model: token ids [B, S] (i64) in, looked up in
    # ``embedding`` [vocab, H]; logits [B, S, vocab] = final hidden states @
    # ``lm_head`` [H, vocab] out. The B sequences of S tokens are causal on
    # their own (positions restart at 0). None: hidden states [T, H] in and
    # out, one sequence.
    embedding: Optional[np.ndarray] = None
    lm_head: Optional[np.ndarray] = None


def _emit_layer(fb: FunctionBuilder, x: Value, layer: LayerSpec, args,
                extra_inputs=None, extra_results=None, seq_len=None) -> Value:
    """The layer's output; an MoE block that takes a gating residual reads
    it from ``extra_inputs["gate_residual"]``, and one that returns its
    router logits appends them to ``extra_results``."""
    h = x
    if layer.attention is not None:
        with fb.location(layer.path + ".self_attn"):
            normed = rmsnorm(fb, h, args["input_norm"], layer.input_norm.eps) \
                if layer.input_norm is not None else h
            attn_args = {n[len("attn."):]: v for n, v in args.items() if n.startswith("attn.")}
            h = add(fb, h, attention(fb, normed, layer.attention, attn_args, seq_len))
    with fb.location(layer.ffn_path or layer.path):
        inner = rmsnorm(fb, h, args["post_norm"], layer.post_norm.eps) \
            if layer.post_norm is not None else h
        if isinstance(layer.ffn, MoESpec):
            spec = layer.ffn
            moe_args = {n[len("moe."):]: v for n, v in args.items() if n.startswith("moe.")}
            k_per_token = None
            if spec.k_predictor is not None:
                k_per_token = tokens_k(fb, inner, moe_args["k_predictor.weight"],
                                       moe_args["k_predictor.bias"], spec.routing.k)
            residual = (extra_inputs or {}).get("gate_residual") if spec.gate_residual else None
            if (spec.router_net is not None or residual is not None
                    or spec.slot_order is not None or spec.input_scale != 1.0):
                logits = router_logits(fb, inner, spec, moe_args, residual)
                routed = logits if spec.slot_order is None \
                    else permute_columns(fb, logits, spec.slot_order)
                seen = inner if spec.input_scale == 1.0 \
                    else scale_rows(fb, inner, spec.input_scale)
                out = moe_chain(fb, seen, routed, spec, moe_args, k_per_token)
            else:
                out = moe_layer(fb, inner, spec, moe_args, k_per_token)
                if spec.return_logits:
                    # moe.layer computes its logits inside (fused with the
                    # routing); the returned copy costs one T x H x S matmul.
                    logits = router_logits(fb, inner, spec, moe_args)
            if spec.return_logits and extra_results is not None:
                extra_results.append(logits)
            if spec.shared is not None:
                shared = swiglu_mlp(fb, inner, moe_args["shared.w_gate"], moe_args["shared.w_up"],
                                    moe_args["shared.w_down"])
                if spec.shared_gate is not None:
                    shared = gate_rows(fb, inner, linear(fb, inner, moe_args["shared_gate"]), shared)
                out = add(fb, out, shared)
        else:
            out = swiglu_mlp(fb, inner, args["mlp.w_gate"], args["mlp.w_up"], args["mlp.w_down"])
        return add(fb, h, out) if layer.residual else out


def _slice(fb: FunctionBuilder, stacked: Value, index: Value) -> Value:
    """Layer ``index`` of a stacked weight [L, ...] (rank-reducing slice)."""
    shape = stacked.shape[1:]
    element = stacked.element or "f32"
    type_ = tensor_type(shape, element)
    return fb.op("s", ir_text.extract_slice(stacked, [index] + [0] * len(shape),
                                            [1] + list(shape), [1] * (len(shape) + 1), type_),
                 type_, shape, element)


def _weight_array(array) -> np.ndarray:
    """A weight as it enters the module: quantized tiles (int8) as they
    are, everything else as f32."""
    array = np.asarray(array)
    return array if array.dtype == np.int8 else array.astype(np.float32)


def _stack(arrays) -> np.ndarray:
    """The layers' weights of one role stacked along a new first dimension;
    an expert-parallel rank's stand-ins (moe_mlir.ep.stand_in) stack their
    blocks instead, without materialising the full stacks."""
    from .. import ep
    stand_in = ep.stack_blocks(arrays) if ep._STAND_INS else None
    if stand_in is not None:
        return stand_in
    return np.stack([_weight_array(a) for a in arrays])


def _element(array: np.ndarray) -> str:
    return "i8" if array.dtype == np.int8 else "f32"


def _embed(fb: FunctionBuilder, ids: Value, table: Value, vocab: int, hidden: int):
    """Rows ``table[ids]`` of the embedding for the B * S ids, as [T, H], and
    S. An id outside [0, vocab) reads row 0 or vocab - 1 (the callers check
    ids before the call; the clamp only keeps the read in bounds)."""
    # Gathered as [B, S, H], then collapsed: a collapse of the ids argument
    # itself (a buffer of any strides after bufferization) would not be.
    out = fb.empty((None, None, hidden), "f32", [fb.dim(ids, 0), fb.dim(ids, 1)])

    def body(bb, a):
        row = bb.cast("arith.index_cast", a[0], "i64", "index")
        zero = bb.constant(0, "index")
        last = bb.constant(vocab - 1, "index")
        row = bb.binary("arith.maxsi", row, zero, "index")
        row = bb.binary("arith.minsi", row, last, "index")
        column = bb.index(2)
        return bb.extract(table, [row, column])
    rows = fb.generic([(ids, "d0, d1")], (out, "d0, d1, d2"), ["parallel"] * 3, 3, body)
    type_ = tensor_type((None, hidden))
    x = fb.op("x", ir_text.collapse_shape(rows, "[[0, 1], [2]]", type_), type_, (None, hidden))
    return x, fb.dim(ids, 1)


def _logits(fb: FunctionBuilder, h: Value, head: Value, ids: Value) -> Value:
    """h [T, H] @ head [H, vocab], as [B, S, vocab]."""
    flat = linear(fb, h, head)
    vocab = head.shape[1]
    # Copied into [B, S, vocab] element by element: a tensor.expand_shape of
    # [T, vocab] into two dynamic sizes crashes MLIR 22's
    # expand-strided-metadata (memref.expand_shape with two dynamic sizes in
    # one group; reproduced with the stock mlir-opt).
    seq = fb.dim(ids, 1)
    out = fb.empty((None, None, vocab), "f32", [fb.dim(ids, 0), seq])

    def body(bb, a):
        b, s, v = bb.index(0), bb.index(1), bb.index(2)
        row = bb.binary("arith.addi", bb.binary("arith.muli", b, seq, "index"), s, "index")
        return bb.extract(flat, [row, v])
    return fb.generic([], (out, "d0, d1, d2"), ["parallel"] * 3, 3, body)


def emit(spec: ModelSpec, entry: str = "forward", embed_weights: bool = False) -> ExportedModel:
    """Builds the module. Layers with the same shape share one outlined
    function ``layer_<n>(x, stacked weights..., i)``; their weights are
    stacked along a new first dimension in layer order (argument
    ``<path>.stack<n>.<role>``), and a run of consecutive layers of one
    function is an ``scf.for`` over ``i``: the entry function
    ``entry(x [T, hidden], weights...) -> [T, hidden]`` stays small whatever
    the depth, so a 32-layer model compiles about as fast as one layer. With
    ``embed_weights`` the weights become ``dense_resource`` constants (for
    small models) and the entry function takes ``x`` only."""
    resources = OrderedDict()

    def weight(fb, name, array):
        element = _element(array)
        if not embed_weights:
            return fb.arg(array.shape, element=element, name=name, hint="w")
        key = "w_" + "".join(c if c.isalnum() else "_" for c in name)
        # The blob holds the array's bytes; int8 tiles (whose last
        # dimension, the tile bytes, is a multiple of 4) go through a float32
        # view of the same bytes, which the f32 blob writer copies as they are.
        resources[key] = array if element == "f32" else array.view(np.float32)
        value = fb.constant(ir_text.dense_resource(key), tensor_type(array.shape, element))
        return Value(value.name, value.type, array.shape, element)

    # Layers grouped by shape, in order of first appearance.
    groups = OrderedDict()
    position = []
    for layer in spec.layers:
        members = groups.setdefault(layer.key(), [])
        position.append((list(groups).index(layer.key()), len(members)))
        members.append(layer)

    # A lone MoE block keeps its own interface: a gating residual input
    # (MoE++) and its router logits as a second result (transformers).
    weights = OrderedDict()
    block = spec.layers[0].ffn if len(spec.layers) == 1 else None
    block = block if isinstance(block, MoESpec) and spec.layers[0].attention is None else None
    for layer in spec.layers:
        if isinstance(layer.ffn, MoESpec) and layer.ffn.gate_residual and block is None:
            raise ExportError(f"{layer.ffn_path or layer.path}: a gating residual (the previous "
                              f"layer's router logits) is supported for a single exported "
                              f"block, not yet inside a model")
    residual_in = block is not None and block.gate_residual
    logits_out = block is not None and block.return_logits

    token_model = spec.embedding is not None
    if token_model and (residual_in or logits_out):
        raise ExportError(f"{spec.path}: a model from token ids has no gating residual input "
                          f"and returns its logits only")
    module = ModuleBuilder()
    main = FunctionBuilder(entry, public=True)
    seq = None
    if token_model:
        ids = main.arg((None, None), element="i64", name="input_ids", hint="ids")
        inputs = ["input_ids"]
        vocab = spec.embedding.shape[0]
        table = weight(main, f"{spec.path}.embed_tokens", spec.embedding.astype(np.float32))
        if not embed_weights:
            weights[f"{spec.path}.embed_tokens"] = np.ascontiguousarray(spec.embedding,
                                                                        dtype=np.float32)
        with main.location(f"{spec.path}.embed_tokens"):
            x, seq = _embed(main, ids, table, vocab, spec.hidden)
    else:
        x = main.arg((None, spec.hidden), name="input", hint="x")
        inputs = ["input"]
    residual = None
    if residual_in:
        residual = main.arg((None, block.routing.S), name="gate_residual", hint="res")
        inputs.append("gate_residual")
    stacks = OrderedDict()
    functions = []
    stacked_args = []
    for number, members in enumerate(groups.values()):
        first = members[0]
        roles = first.weights()
        stacked = OrderedDict((role, _stack([m.weights()[role] for m in members]))
                              for role in roles)
        fb = FunctionBuilder(f"layer_{number}", public=False)
        fx = fb.arg((None, spec.hidden), hint="x")
        extra_inputs = {}
        if residual_in:
            extra_inputs["gate_residual"] = fb.arg((None, block.routing.S), hint="res")
        fstacked = OrderedDict((r, fb.arg(a.shape, element=_element(a), hint="w"))
                               for r, a in stacked.items())
        index = fb.scalar_arg("index")
        seq_len = fb.scalar_arg("index") if token_model else None
        with fb.location(first.path):
            per_layer = OrderedDict((r, _slice(fb, v, index)) for r, v in fstacked.items())
            extra_results = [] if logits_out else None
            fb.results = [_emit_layer(fb, fx, first, per_layer, extra_inputs, extra_results,
                                      seq_len)]
            fb.results += extra_results or []
        module.outlined(("layer", number), lambda fb=fb: fb)
        functions.append(fb)
        prefix = f"{spec.path}.stack{number}"
        stacks[prefix] = [m.path for m in members]
        args = []
        for role, array in stacked.items():
            args.append(weight(main, f"{prefix}.{role}", array))
            if not embed_weights:
                weights[f"{prefix}.{role}"] = array
        stacked_args.append(args)

    h = x
    i = 0
    while i < len(spec.layers):
        number, start = position[i]
        run = 1
        while i + run < len(spec.layers) and position[i + run][0] == number:
            run += 1
        callee = functions[number]
        paths = [layer.path for layer in spec.layers[i:i + run]]
        leading = [h] + ([residual] if residual is not None else [])
        trailing = [seq] if seq is not None else []
        weights_in = stacked_args[number]
        operand_types = ([v.type for v in leading] + [v.type for v in weights_in] + ["index"]
                         + ["index"] * len(trailing))
        result = main.fresh("h")
        with main.location(paths if run > 1 else paths[0]):
            if run == 1:
                results = [r.type for r in callee.results]
                call = ir_text.func_call(callee.name,
                                         leading + weights_in + [main.index(start)] + trailing,
                                         operand_types, results)
                main.emit(ir_text.assign(ir_text.packed_results(result, len(results)), call))
                if len(results) > 1:
                    extras = [Value(ir_text.result_at(result, j), r.type, r.shape, "f32")
                              for j, r in enumerate(callee.results) if j > 0]
                    result = ir_text.result_at(result, 0)
            else:
                iv, acc, inner = main.fresh("i"), main.fresh("acc"), main.fresh("y")
                lower, upper, step = main.index(start), main.index(start + run), main.index(1)
                main.lines.append("  " + ir_text.assign(
                    result, ir_text.scf_for(iv, lower, upper, step, [(acc, h)])))
                main.lines.append("    " + ir_text.assign(inner, ir_text.func_call(
                    callee.name, [acc] + weights_in + [iv] + trailing, operand_types, [h.type])))
                main.lines.append("    " + ir_text.scf_yield([inner], [h.type]))
                main.emit(ir_text.region_end())
        h = Value(result, h.type, h.shape, "f32")
        i += run
    if spec.final_norm is not None:
        name = f"{spec.path}.norm"
        w = weight(main, name, spec.final_norm.weight.astype(np.float32))
        w = Value(w.name, tensor_type((spec.hidden,)), (spec.hidden,), "f32")
        if not embed_weights:
            weights[name] = np.ascontiguousarray(spec.final_norm.weight, dtype=np.float32)
        with main.location(name):
            h = rmsnorm(main, h, w, spec.final_norm.eps)
    if token_model:
        name = "lm_head"
        head = weight(main, name, spec.lm_head.astype(np.float32))
        if not embed_weights:
            weights[name] = np.ascontiguousarray(spec.lm_head, dtype=np.float32)
        with main.location(name):
            h = _logits(main, h, head, ids)
    main.results = [h] + (extras if logits_out else [])
    module.add(main)
    info = {"layers": len(spec.layers), "layer_functions": len(functions), "stacks": stacks}
    text = module.text()
    if resources:
        text += ir_text.resources(resources)
    info["results"] = ["output"] + (["router_logits"] if logits_out else [])
    return ExportedModel(text, entry, inputs, weights, info)
