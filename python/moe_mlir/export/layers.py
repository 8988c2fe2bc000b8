"""Emitters of the building blocks of exported models, on tensors.

Everything outside the MoE block is ordinary upstream MLIR (linalg, tensor,
arith, math); the MoE block is one ``moe.layer``. Activations are [T, H]
tensors with a dynamic token count T; weights are function arguments in the
layouts documented in docs/Export.md (a Linear's weight enters transposed,
as [in, out]).
"""

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from .. import ir_text
from ..routing import RoutingConfig
from .mlir_builder import FunctionBuilder, Value, tensor_type

__all__ = ["MoESpec", "DenseMLPSpec", "AttentionSpec", "linear", "rmsnorm", "add",
           "attention", "swiglu_mlp", "moe_layer", "moe_chain", "router_logits", "permute_columns", "scale_rows",
           "gate_rows",
           "tokens_k"]


# ---------------------------------------------------------------------------
# Specifications extracted from a framework module
# ---------------------------------------------------------------------------
@dataclass
class DenseMLPSpec:
    """A dense SwiGLU MLP: down(silu(x @ gate) * (x @ up)). Weights [H,F], [H,F], [F,H]."""
    w_gate: np.ndarray
    w_up: np.ndarray
    w_down: np.ndarray


@dataclass
class MoESpec:
    """Everything a moe.layer needs, plus the dense parts that stay beside it."""
    hidden: int
    ffn: int
    routing: RoutingConfig
    w_router: np.ndarray                       # [H, S]
    w_up: np.ndarray                           # [E, H, F]
    w_down: np.ndarray                         # [E, F, H]
    w_gate: Optional[np.ndarray] = None        # [E, H, F]
    # "q8_0" or "q4_0": w_up, w_gate and w_down are the kernels' tiles of
    # those weights in that block format (int8 [E, ceil(N/32), K/32, bytes]
    # for a weight [E, K, N], ``moe_mlir.quant``; H and F multiples of 32),
    # and the moe op takes them ``packed quant = ...``. None: f32 weights.
    weight_quant: Optional[str] = None
    b_router: Optional[np.ndarray] = None      # [S]
    selection_bias: Optional[np.ndarray] = None
    const_proj: Optional[np.ndarray] = None    # [N_const, H, 2]
    const_values: Optional[np.ndarray] = None  # [N_const, H]
    b_up: Optional[np.ndarray] = None          # [E, F] (not gated)
    b_down: Optional[np.ndarray] = None        # [E, H] (not gated)
    activation: str = "silu"
    # Dense parts beside the moe.layer.
    shared: Optional[DenseMLPSpec] = None
    shared_gate: Optional[np.ndarray] = None   # [H, 1]: out += sigmoid(x @ g) * shared(x)
    # A per-token k computed by the model: k = ceil(sigmoid(x @ w + b) * max_k).
    k_predictor: Optional[Tuple[np.ndarray, np.ndarray]] = None   # ([H, 1], [1])
    convention: str = ""
    # A router that is a network rather than one Linear: layers applied in
    # order to x, ("linear", [in, out], bias or None) or ("tanh",), giving
    # [T, S] logits (MoE++'s Linear-Tanh-Linear router). With a network or a
    # gating residual the block is emitted as moe.route + dispatch +
    # expert_ffn + combine on logits computed by ordinary ops.
    router_net: Optional[List[tuple]] = None
    # The gating residual (MoE++): the previous layer's router logits [T, S]
    # are an input of the block; ``residual @ residual_map`` ([S, S], MoE++'s
    # ``gate_map`` transposed; the identity when None) is added to this
    # block's logits.
    gate_residual: bool = False
    residual_map: Optional[np.ndarray] = None
    # The block also returns its router logits [T, S] (transformers' blocks).
    return_logits: bool = False
    # The module's slot order differs from the contract's (compute, null,
    # copy, const): contract slot c is the module's logit column
    # slot_order[c]. Returned logits stay in the module's order.
    slot_order: Optional[List[int]] = None
    # The experts (compute, copy and constant) see ``input_scale * x``; the
    # router sees x (MoE++ multiplies its input by its top-k after routing).
    input_scale: float = 1.0
    # How the module is called when exported on its own (CallSpec fields:
    # input_rank, extra_inputs, outputs), as its recogniser found it.
    interface: dict = field(default_factory=dict, compare=False, repr=False)

    def route_logits(self, x: np.ndarray, residual: Optional[np.ndarray] = None) -> np.ndarray:
        """The logits [T, S] that moe.route sees, in the contract's slot order."""
        logits = self.logits(x, residual)
        return logits if self.slot_order is None else logits[:, self.slot_order]

    def logits(self, x: np.ndarray, residual: Optional[np.ndarray] = None) -> np.ndarray:
        """The router logits [T, S] of tokens x [T, H] in the module's slot
        order, in f32 (as emitted)."""
        h = np.asarray(x, np.float32)
        if self.router_net is None:
            h = (h @ self.w_router).astype(np.float32)
            if self.b_router is not None:
                h = (h + self.b_router).astype(np.float32)
        else:
            for layer in self.router_net:
                if layer[0] == "linear":
                    h = (h @ layer[1]).astype(np.float32)
                    if layer[2] is not None:
                        h = (h + layer[2]).astype(np.float32)
                else:
                    h = np.tanh(h).astype(np.float32)
        if self.gate_residual and residual is not None:
            r = np.asarray(residual, np.float32)
            if self.residual_map is not None:
                r = (r @ self.residual_map).astype(np.float32)
            h = (h + r).astype(np.float32)
        return h

    def weights(self) -> Dict[str, np.ndarray]:
        """The named weights of the block (function arguments), in order."""
        if self.router_net is None:
            named = {"router": self.w_router}
            if self.b_router is not None:
                named["router_bias"] = self.b_router
        else:
            named = {}
            for i, layer in enumerate(self.router_net):
                if layer[0] == "linear":
                    named[f"router.{i}.weight"] = layer[1]
                    if layer[2] is not None:
                        named[f"router.{i}.bias"] = layer[2]
        if self.residual_map is not None:
            named["residual_map"] = self.residual_map
        if self.k_predictor is not None:
            named["k_predictor.weight"], named["k_predictor.bias"] = self.k_predictor
        if self.selection_bias is not None:
            named["selection_bias"] = self.selection_bias
        named["w_up"] = self.w_up
        if self.w_gate is not None:
            named["w_gate"] = self.w_gate
        named["w_down"] = self.w_down
        if self.b_up is not None:
            named["b_up"] = self.b_up
        if self.b_down is not None:
            named["b_down"] = self.b_down
        if self.const_proj is not None:
            named["const_proj"] = self.const_proj
            named["const_values"] = self.const_values
        if self.shared is not None:
            named["shared.w_gate"] = self.shared.w_gate
            named["shared.w_up"] = self.shared.w_up
            named["shared.w_down"] = self.shared.w_down
        if self.shared_gate is not None:
            named["shared_gate"] = self.shared_gate
        return named

    def key(self):
        """What makes two blocks compile to the same function."""
        net = None if self.router_net is None else tuple(l[0] for l in self.router_net)
        return ("moe", self.convention, self.routing.attributes(), self.activation, net,
                self.weight_quant,
                self.gate_residual, self.return_logits,
                None if self.slot_order is None else tuple(self.slot_order), self.input_scale,
                tuple((n, w.shape) for n, w in self.weights().items()))


@dataclass
class AttentionSpec:
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: float
    w_q: np.ndarray   # [H, nh*hd]
    w_k: np.ndarray   # [H, nkv*hd]
    w_v: np.ndarray   # [H, nkv*hd]
    w_o: np.ndarray   # [nh*hd, H]
    b_q: Optional[np.ndarray] = None   # q/k/v projection biases (Qwen)
    b_k: Optional[np.ndarray] = None
    b_v: Optional[np.ndarray] = None
    b_o: Optional[np.ndarray] = None   # output projection bias (attention_bias)
    # RMSNorm of q and k (weights q_norm, k_norm): "head" over each head's
    # head_dim after the projection (Qwen3), "full" over the whole
    # projection (OLMoE); before the rotary embedding.
    qk_norm: Optional[str] = None
    q_norm: Optional[np.ndarray] = None
    k_norm: Optional[np.ndarray] = None
    qk_norm_eps: float = 1e-6
    # q, k and v clamped to [-clip_qkv, clip_qkv] after the projections
    # (and the q/k norms) (OLMoE).
    clip_qkv: Optional[float] = None


# ---------------------------------------------------------------------------
# Emitters
# ---------------------------------------------------------------------------
def linear(fb: FunctionBuilder, x: Value, w: Value) -> Value:
    """x [T, IN] @ w [IN, OUT] -> [T, OUT], f32 accumulation."""
    tokens = fb.dim(x, 0)
    out_shape = (x.shape[0], w.shape[1])
    init = fb.zeros(out_shape, [tokens] if x.shape[0] is None else [])
    return fb.op("mm", ir_text.matmul(x, w, init), init.type, out_shape)


def add_bias(fb: FunctionBuilder, x: Value, b: Value) -> Value:
    """x [T, N] + b [N]."""
    out = fb.empty(x.shape, "f32", _dyn(fb, x, [0]))
    return fb.generic([(x, "d0, d1"), (b, "d1")], (out, "d0, d1"), ["parallel"] * 2, 2,
                      lambda bb, a: bb.binary("arith.addf", a[0], a[1]))


def _dyn(fb: FunctionBuilder, value: Value, dims) -> List[Value]:
    return [fb.dim(value, d) for d in dims if value.shape[d] is None]


def add(fb: FunctionBuilder, a: Value, b: Value) -> Value:
    """Elementwise a + b of two [T, H] tensors."""
    out = fb.empty(a.shape, "f32", _dyn(fb, a, range(len(a.shape))))
    maps = ", ".join(f"d{i}" for i in range(len(a.shape)))
    return fb.generic([(a, maps), (b, maps)], (out, maps), ["parallel"] * len(a.shape),
                      len(a.shape), lambda bb, args: bb.binary("arith.addf", args[0], args[1]))


def rmsnorm(fb: FunctionBuilder, x: Value, w: Value, eps: float) -> Value:
    """x * rsqrt(mean(x^2) + eps) * w over the last dimension (in f32)."""
    tokens = _dyn(fb, x, [0])
    hidden = x.shape[1]
    sums = fb.zeros((x.shape[0],), tokens)
    sums = fb.generic(
        [(x, "d0, d1")], (sums, "d0"), ["parallel", "reduction"], 2,
        lambda bb, a: bb.binary("arith.addf", a[1], bb.binary("arith.mulf", a[0], a[0])))
    out = fb.empty(x.shape, "f32", tokens)
    return fb.generic([(x, "d0, d1"), (sums, "d0"), (w, "d1")], (out, "d0, d1"),
                      ["parallel", "parallel"], 2, _rms_body(hidden, eps))


def _rms_body(width: int, eps: float):
    """The body x * rsqrt(sum / width + eps) * w of (x, sum of squares, w)."""
    def body(bb, a):
        mean = bb.binary("arith.divf", a[1], bb.f32(float(width)))
        inv = bb.unary("math.rsqrt", bb.binary("arith.addf", mean, bb.f32(eps)))
        return bb.binary("arith.mulf", bb.binary("arith.mulf", a[0], inv), a[2])
    return body


def _silu(bb, v):
    neg = bb.unary("arith.negf", v)
    return bb.binary("arith.divf", v, bb.binary("arith.addf", bb.f32(1.0), bb.unary("math.exp", neg)))


def swiglu_mlp(fb: FunctionBuilder, x: Value, w_gate: Value, w_up: Value, w_down: Value) -> Value:
    """down(silu(x @ gate) * (x @ up))."""
    g = linear(fb, x, w_gate)
    u = linear(fb, x, w_up)
    out = fb.empty(g.shape, "f32", _dyn(fb, g, [0]))
    h = fb.generic([(g, "d0, d1"), (u, "d0, d1")], (out, "d0, d1"), ["parallel"] * 2, 2,
                   lambda bb, a: bb.binary("arith.mulf", _silu(bb, a[0]), a[1]))
    return linear(fb, h, w_down)


def gate_rows(fb: FunctionBuilder, x: Value, gate_logit: Value, y: Value) -> Value:
    """sigmoid(gate_logit[t, 0]) * y[t, :] (Qwen's shared-expert gate)."""
    out = fb.empty(y.shape, "f32", _dyn(fb, y, [0]))

    def body(bb, a):
        neg = bb.unary("arith.negf", a[0])
        sig = bb.binary("arith.divf", bb.f32(1.0),
                        bb.binary("arith.addf", bb.f32(1.0), bb.unary("math.exp", neg)))
        return bb.binary("arith.mulf", sig, a[1])
    return fb.generic([(gate_logit, "d0, 0"), (y, "d0, d1")], (out, "d0, d1"),
                      ["parallel"] * 2, 2, body)


def tokens_k(fb: FunctionBuilder, x: Value, w: Value, b: Value, max_k: int) -> Value:
    """k_per_token[t] = ceil(sigmoid(x[t] @ w + b) * max_k) as i32 (DA-MoE style)."""
    logit = linear(fb, x, w)                                  # [T, 1]
    tokens = _dyn(fb, x, [0])
    out = fb.empty((x.shape[0],), "i32", tokens)

    def body(bb, a):
        z = bb.binary("arith.addf", a[0], a[1])
        neg = bb.unary("arith.negf", z)
        sig = bb.binary("arith.divf", bb.f32(1.0),
                        bb.binary("arith.addf", bb.f32(1.0), bb.unary("math.exp", neg)))
        scaled = bb.binary("arith.mulf", sig, bb.f32(float(max_k)))
        up = bb.unary("math.ceil", scaled)
        return bb.cast("arith.fptosi", up, "f32", "i32")
    return fb.generic([(logit, "d0, 0"), (b, "0")], (out, "d0"), ["parallel"], 1, body)


def moe_layer(fb: FunctionBuilder, x: Value, spec: MoESpec, args: Dict[str, Value],
              k_per_token: Optional[Value] = None) -> Value:
    """One moe.layer with the spec's routing and the weights in ``args``."""
    operands = _weight_operands(args, ir_text.LAYER_OPERANDS)
    operands["k_per_token"] = k_per_token
    op = ir_text.moe_layer(x, operands, spec.routing.attributes(), spec.activation,
                           gated=spec.w_gate is not None, packed=spec.weight_quant is not None,
                           quant=spec.weight_quant)
    return fb.op("moe", op, x.type, x.shape)


# The block's weights (MoESpec.weights names) by the moe op operand keyword
# that takes them.
_WEIGHT_OF_OPERAND = {"router": "router", "router_bias": "router_bias",
                      "bias": "selection_bias", "up": "w_up", "gate": "w_gate", "down": "w_down",
                      "up_bias": "b_up", "down_bias": "b_down", "const_proj": "const_proj",
                      "const_values": "const_values"}


def _weight_operands(args: Dict[str, Value], keywords) -> Dict[str, Optional[Value]]:
    """The weights in ``args`` by operand keyword, for the ``keywords`` of an
    op that take weights (None where the block has no such weight)."""
    return {k: args.get(_WEIGHT_OF_OPERAND[k]) for k in keywords if k in _WEIGHT_OF_OPERAND}


def tanh(fb: FunctionBuilder, x: Value) -> Value:
    """Elementwise tanh of a [T, N] tensor."""
    out = fb.empty(x.shape, "f32", _dyn(fb, x, [0]))
    return fb.generic([(x, "d0, d1")], (out, "d0, d1"), ["parallel"] * 2, 2,
                      lambda bb, a: bb.unary("math.tanh", a[0]))


def router_logits(fb: FunctionBuilder, x: Value, spec: MoESpec, args: Dict[str, Value],
                  residual: Optional[Value] = None) -> Value:
    """The block's router logits [T, S] as ordinary ops: its Linear router
    (and bias), or its router network, plus the gating residual."""
    if spec.router_net is None:
        h = linear(fb, x, args["router"])
        if "router_bias" in args:
            h = add_bias(fb, h, args["router_bias"])
    else:
        h = x
        for i, layer in enumerate(spec.router_net):
            if layer[0] == "linear":
                h = linear(fb, h, args[f"router.{i}.weight"])
                if f"router.{i}.bias" in args:
                    h = add_bias(fb, h, args[f"router.{i}.bias"])
            else:
                h = tanh(fb, h)
    if residual is not None:
        if "residual_map" in args:
            residual = linear(fb, residual, args["residual_map"])
        h = add(fb, h, residual)
    return h


def permute_columns(fb: FunctionBuilder, x: Value, order: List[int]) -> Value:
    """y[:, c] = x[:, order[c]] for a [T, N] tensor: a gather through a
    constant index table inside a linalg.generic."""
    table = fb.constant(ir_text.dense([str(int(c)) for c in order]),
                        tensor_type((len(order),), "index"))
    out = fb.empty(x.shape, "f32", _dyn(fb, x, [0]))

    def body(bb, a):
        t, c = bb.index(0), bb.index(1)
        column = bb.extract(table, [c])
        return bb.extract(x, [t, column])
    return fb.generic([], (out, "d0, d1"), ["parallel"] * 2, 2, body)


def scale_rows(fb: FunctionBuilder, x: Value, factor: float) -> Value:
    """factor * x, elementwise."""
    out = fb.empty(x.shape, "f32", _dyn(fb, x, [0]))
    return fb.generic([(x, "d0, d1")], (out, "d0, d1"), ["parallel"] * 2, 2,
                      lambda bb, a: bb.binary("arith.mulf", a[0], bb.f32(factor)))


def moe_chain(fb: FunctionBuilder, x: Value, logits: Value, spec: MoESpec,
              args: Dict[str, Value], k_per_token: Optional[Value] = None) -> Value:
    """The block on precomputed logits (in the contract's slot order):
    moe.route, moe.dispatch, moe.expert_ffn and moe.combine (the level below
    moe.layer); the experts see ``x`` (already scaled by the caller)."""
    routing = spec.routing
    E, K, H = routing.E, routing.k, spec.hidden
    ids_type, w_type = tensor_type((None, K), "i32"), tensor_type((None, K))
    ids = Value(fb.fresh("ids"), ids_type, (None, K), "i32")
    weights = Value(fb.fresh("rw"), w_type, (None, K), "f32")
    operands = _weight_operands(args, ir_text.ROUTE_OPERANDS)
    operands["k_per_token"] = k_per_token
    tokens = [fb.dim(logits, 0)]  # the slots' T is dynamic (ids_type)
    ids_init = fb.empty((None, K), "i32", tokens)
    w_init = fb.empty((None, K), "f32", tokens)
    fb.emit(ir_text.assign([ids, weights], ir_text.moe_route(
        logits, operands, routing.attributes(), ids_init, w_init)))
    rows = Value(fb.fresh("rows"), x.type, x.shape, "f32")
    offsets = Value(fb.fresh("off"), tensor_type((E + 1,), "i32"), (E + 1,), "i32")
    slots = Value(fb.fresh("slots"), ids_type, (None, K), "i32")
    fb.emit(ir_text.assign([rows, offsets, slots], ir_text.moe_dispatch(x, ids, E)))

    y = Value(fb.fresh("y"), x.type, x.shape, "f32")
    y_init = fb.empty(x.shape, "f32", _dyn(fb, rows, [0]))
    fb.emit(ir_text.assign(y, ir_text.moe_expert_ffn(
        rows, offsets, _weight_operands(args, ir_text.EXPERT_FFN_OPERANDS), spec.activation,
        spec.w_gate is not None, y_init, packed=spec.weight_quant is not None,
        quant=spec.weight_quant)))
    out = fb.fresh("out")
    out_init = fb.empty(x.shape, "f32", _dyn(fb, x, range(len(x.shape))))
    fb.emit(ir_text.assign(out, ir_text.moe_combine(
        y, slots, ids, weights, x, _weight_operands(args, ir_text.COMBINE_OPERANDS),
        routing.experts_attr(), out_init)))
    return Value(out, x.type, x.shape, "f32")


def _expand(fb: FunctionBuilder, x: Value, shape, reassociation: str) -> Value:
    name = fb.fresh("r")
    sizes = [fb.dim(x, 0) if d is None else d for d in shape]
    type_ = tensor_type(shape)
    fb.emit(ir_text.assign(name, ir_text.expand_shape(x, reassociation, sizes, type_)))
    return Value(name, type_, shape, "f32")


def _collapse(fb: FunctionBuilder, x: Value, shape, reassociation: str) -> Value:
    type_ = tensor_type(shape)
    return fb.op("r", ir_text.collapse_shape(x, reassociation, type_), type_, shape)


def _clamp(fb: FunctionBuilder, x: Value, bound: float) -> Value:
    """x clamped to [-bound, bound] elementwise (NaN stays NaN, as torch.clamp)."""
    out = fb.empty(x.shape, "f32", _dyn(fb, x, range(len(x.shape))))
    maps = ", ".join(f"d{i}" for i in range(len(x.shape)))

    def body(bb, a):
        low = bb.binary("arith.maximumf", a[0], bb.f32(-bound))
        return bb.binary("arith.minimumf", low, bb.f32(bound))
    return fb.generic([(x, maps)], (out, maps), ["parallel"] * len(x.shape), len(x.shape), body)


def _head_rmsnorm(fb: FunctionBuilder, x: Value, heads: int, head_dim: int, w: Value,
                  eps: float) -> Value:
    """RMSNorm of each head of x [T, heads*head_dim] over its head_dim
    (weight w [head_dim]); returns [T, heads*head_dim]."""
    x3 = _expand(fb, x, (None, heads, head_dim), "[[0], [1, 2]]")
    tokens = [fb.dim(x, 0)]
    sums = fb.zeros((None, heads), tokens)
    sums = fb.generic(
        [(x3, "d0, d1, d2")], (sums, "d0, d1"), ["parallel", "parallel", "reduction"], 3,
        lambda bb, a: bb.binary("arith.addf", a[1], bb.binary("arith.mulf", a[0], a[0])))
    out = fb.empty(x3.shape, "f32", tokens)
    normed = fb.generic([(x3, "d0, d1, d2"), (sums, "d0, d1"), (w, "d2")], (out, "d0, d1, d2"),
                        ["parallel"] * 3, 3, _rms_body(head_dim, eps))
    return _collapse(fb, normed, (None, heads * head_dim), "[[0], [1, 2]]")


def _rope(fb: FunctionBuilder, x: Value, heads: int, head_dim: int, theta: float,
          seq_len: Optional[Value] = None) -> Value:
    """Rotary embedding (rotate-half convention) of x [T, heads*hd] at positions
    0..T-1, or ``t mod seq_len`` for T = B * seq_len tokens of B sequences;
    returns [T, heads, hd]."""
    half = head_dim // 2
    x4 = _expand(fb, x, (None, heads, 2, half), "[[0], [1, 2, 3]]")
    inv_freq = [1.0 / (theta ** (2.0 * i / head_dim)) for i in range(half)]
    freq = fb.constant(ir_text.dense([f"{np.float32(f):.9e}" for f in inv_freq]),
                       tensor_type((half,)))
    freq = Value(freq.name, freq.type, (half,), "f32")
    out = fb.empty(x4.shape, "f32", [fb.dim(x, 0)])

    def body(bb, a):
        position = bb.index(0)
        if seq_len is not None:
            position = bb.binary("arith.remui", position, seq_len, "index")
        t = bb.index_to_f32(position)
        part = bb.index(2)
        angle = bb.binary("arith.mulf", t, a[2])
        cos = bb.unary("math.cos", angle)
        sin = bb.unary("math.sin", angle)
        first = bb.binary("arith.subf", bb.binary("arith.mulf", a[0], cos),
                          bb.binary("arith.mulf", a[1], sin))
        second = bb.binary("arith.addf", bb.binary("arith.mulf", a[1], cos),
                           bb.binary("arith.mulf", a[0], sin))
        zero = bb.constant(0, "index")
        is_first = bb.cmpi("eq", part, zero)
        return bb.select(is_first, first, second)
    rotated = fb.generic([(x4, "d0, d1, 0, d3"), (x4, "d0, d1, 1, d3"), (freq, "d3")],
                         (out, "d0, d1, d2, d3"), ["parallel"] * 4, 4, body)
    return _collapse(fb, rotated, (None, heads, head_dim), "[[0], [1], [2, 3]]")


def attention(fb: FunctionBuilder, x: Value, spec: AttentionSpec, args: Dict[str, Value],
              seq_len: Optional[Value] = None) -> Value:
    """Causal multi-head (grouped-query) self-attention with rotary embeddings.
    With ``seq_len``, the T tokens are B = T / seq_len sequences one after the
    other: positions restart at each sequence and a token attends to the
    tokens of its own sequence only (a block-diagonal causal mask; the T x T
    scores are computed whole)."""
    nh, nkv, hd = spec.num_heads, spec.num_kv_heads, spec.head_dim
    group = nh // nkv
    tokens = fb.dim(x, 0)

    def project(name):
        y = linear(fb, x, args["w_" + name])
        bias = args.get("b_" + name)
        y = add_bias(fb, y, bias) if bias is not None else y
        if name != "v" and spec.qk_norm == "full":
            y = rmsnorm(fb, y, args[name + "_norm"], spec.qk_norm_eps)
        if spec.clip_qkv is not None:
            y = _clamp(fb, y, spec.clip_qkv)
        if name != "v" and spec.qk_norm == "head":
            y = _head_rmsnorm(fb, y, nh if name == "q" else nkv, hd, args[name + "_norm"],
                              spec.qk_norm_eps)
        return y
    q = _rope(fb, project("q"), nh, hd, spec.rope_theta, seq_len)
    k = _rope(fb, project("k"), nkv, hd, spec.rope_theta, seq_len)
    v = _expand(fb, project("v"), (None, nkv, hd), "[[0], [1, 2]]")
    kv_head = "d0" if group == 1 else f"d0 floordiv {group}"
    # scores[h, t, u] = sum_d q[t, h, d] * k[u, h / group, d]
    scores = fb.zeros((nh, None, None), [tokens, tokens])
    scores = fb.generic(
        [(q, "d1, d0, d3"), (k, f"d2, {kv_head}, d3")], (scores, "d0, d1, d2"),
        ["parallel", "parallel", "parallel", "reduction"], 4,
        lambda bb, a: bb.binary("arith.addf", a[2], bb.binary("arith.mulf", a[0], a[1])))
    # Scale, causal mask (u > t is -inf), and the row max.
    scale = 1.0 / math.sqrt(hd)
    masked_init = fb.empty((nh, None, None), "f32", [tokens, tokens])

    def mask_body(bb, a):
        t, u = bb.index(1), bb.index(2)
        future = bb.cmpi("ugt", u, t)
        if seq_len is not None:
            # u before the first token of t's sequence: another sequence.
            start = bb.binary("arith.subi", t, bb.binary("arith.remui", t, seq_len, "index"),
                              "index")
            earlier = bb.cmpi("ult", u, start)
            future = bb.binary("arith.ori", future, earlier, "i1")
        scaled = bb.binary("arith.mulf", a[0], bb.f32(scale))
        return bb.select(future, bb.f32(-math.inf), scaled)
    masked = fb.generic([(scores, "d0, d1, d2")], (masked_init, "d0, d1, d2"),
                        ["parallel"] * 3, 3, mask_body)
    row_max = fb.empty((nh, None), "f32", [tokens])
    neg_inf = fb.f32(-math.inf)
    row_max = fb.fill(neg_inf, row_max)
    row_max = fb.generic([(masked, "d0, d1, d2")], (row_max, "d0, d1"),
                         ["parallel", "parallel", "reduction"], 3,
                         lambda bb, a: bb.binary("arith.maximumf", a[1], a[0]))
    exp_init = fb.empty((nh, None, None), "f32", [tokens, tokens])
    exps = fb.generic([(masked, "d0, d1, d2"), (row_max, "d0, d1")], (exp_init, "d0, d1, d2"),
                      ["parallel"] * 3, 3,
                      lambda bb, a: bb.unary("math.exp", bb.binary("arith.subf", a[0], a[1])))
    sums = fb.zeros((nh, None), [tokens])
    sums = fb.generic([(exps, "d0, d1, d2")], (sums, "d0, d1"),
                      ["parallel", "parallel", "reduction"], 3,
                      lambda bb, a: bb.binary("arith.addf", a[1], a[0]))
    probs_init = fb.empty((nh, None, None), "f32", [tokens, tokens])
    probs = fb.generic([(exps, "d0, d1, d2"), (sums, "d0, d1")], (probs_init, "d0, d1, d2"),
                       ["parallel"] * 3, 3, lambda bb, a: bb.binary("arith.divf", a[0], a[1]))
    # out[t, h, d] = sum_u probs[h, t, u] * v[u, h / group, d]
    kv_head_out = "d1" if group == 1 else f"d1 floordiv {group}"
    out = fb.zeros((None, nh, hd), [tokens])
    out = fb.generic([(probs, "d1, d0, d3"), (v, f"d3, {kv_head_out}, d2")], (out, "d0, d1, d2"),
                     ["parallel", "parallel", "parallel", "reduction"], 4,
                     lambda bb, a: bb.binary("arith.addf", a[2], bb.binary("arith.mulf", a[0], a[1])))
    merged = _collapse(fb, out, (None, nh * hd), "[[0], [1, 2]]")
    y = linear(fb, merged, args["w_o"])
    return add_bias(fb, y, args["b_o"]) if args.get("b_o") is not None else y
