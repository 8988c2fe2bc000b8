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

from .layers import (AttentionSpec, DenseMLPSpec, MoESpec, add, attention, gate_rows,
                     linear, moe_layer, rmsnorm, swiglu_mlp, tokens_k)
from .mlir_builder import FunctionBuilder, ModuleBuilder, Value, tensor_type
from .model import ExportedModel

__all__ = ["LayerSpec", "ModelSpec", "emit"]


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
    # The framework module of the feed-forward part (for export-time checks).
    ffn_source: object = field(default=None, compare=False, repr=False)

    def weights(self) -> "OrderedDict[str, np.ndarray]":
        named = OrderedDict()
        if self.input_norm is not None:
            named["input_norm"] = self.input_norm.weight
        if self.attention is not None:
            a = self.attention
            named.update([("attn.w_q", a.w_q), ("attn.w_k", a.w_k), ("attn.w_v", a.w_v),
                          ("attn.w_o", a.w_o)])
            for bias in ("b_q", "b_k", "b_v"):
                if getattr(a, bias) is not None:
                    named[f"attn.{bias}"] = getattr(a, bias)
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
                                              attn.head_dim, attn.rope_theta)
        norms = tuple(n.eps if n is not None else None
                      for n in (self.input_norm, self.post_norm))
        return (ffn_key, attn_key, norms, self.residual,
                tuple((n, w.shape) for n, w in self.weights().items()))


@dataclass
class ModelSpec:
    hidden: int
    layers: List[LayerSpec]
    path: str = "model"
    final_norm: Optional[NormSpec] = None


def _emit_layer(fb: FunctionBuilder, x: Value, layer: LayerSpec, args) -> Value:
    h = x
    if layer.attention is not None:
        with fb.location(layer.path + ".self_attn"):
            normed = rmsnorm(fb, h, args["input_norm"], layer.input_norm.eps) \
                if layer.input_norm is not None else h
            attn_args = {n[len("attn."):]: v for n, v in args.items() if n.startswith("attn.")}
            h = add(fb, h, attention(fb, normed, layer.attention, attn_args))
    ffn_path = layer.path + (".mlp" if layer.attention is not None else "")
    with fb.location(ffn_path):
        inner = rmsnorm(fb, h, args["post_norm"], layer.post_norm.eps) \
            if layer.post_norm is not None else h
        if isinstance(layer.ffn, MoESpec):
            spec = layer.ffn
            moe_args = {n[len("moe."):]: v for n, v in args.items() if n.startswith("moe.")}
            k_per_token = None
            if spec.k_predictor is not None:
                k_per_token = tokens_k(fb, inner, moe_args["k_predictor.weight"],
                                       moe_args["k_predictor.bias"], spec.routing.k)
            out = moe_layer(fb, inner, spec, moe_args, k_per_token)
            if spec.shared is not None:
                shared = swiglu_mlp(fb, inner, moe_args["shared.w_gate"], moe_args["shared.w_up"],
                                    moe_args["shared.w_down"])
                if spec.shared_gate is not None:
                    shared = gate_rows(fb, inner, linear(fb, inner, moe_args["shared_gate"]), shared)
                out = add(fb, out, shared)
        else:
            out = swiglu_mlp(fb, inner, args["mlp.w_gate"], args["mlp.w_up"], args["mlp.w_down"])
        return add(fb, h, out) if layer.residual else out


def _resource_hex(array: np.ndarray) -> str:
    """A builtin dialect resource blob: 4-byte alignment prefix, then data."""
    return "0x40000000" + np.ascontiguousarray(array, dtype="<f4").tobytes().hex().upper()


def emit(spec: ModelSpec, entry: str = "forward", embed_weights: bool = False) -> ExportedModel:
    """Builds the module: outlined layer functions and the entry function
    ``entry(x [T, hidden], weights...) -> [T, hidden]``. With
    ``embed_weights`` the weights become ``dense_resource`` constants in the
    module instead (for small models): the entry function then takes ``x``
    only."""
    resources = OrderedDict()

    def weight(fb, name, array):
        if not embed_weights:
            return fb.arg(array.shape, name=name, hint="w")
        key = "w_" + "".join(c if c.isalnum() else "_" for c in name)
        resources[key] = array
        return fb.constant(f"dense_resource<{key}>", tensor_type(array.shape))
    module = ModuleBuilder()
    main = FunctionBuilder(entry, public=True)
    x = main.arg((None, spec.hidden), name="input", hint="x")
    weights = OrderedDict()
    h = x
    for index, layer in enumerate(spec.layers):
        named = layer.weights()

        def build(layer=layer, named=named, number=len(module._outlined)):
            fb = FunctionBuilder(f"layer_{number}", public=False)
            fx = fb.arg((None, spec.hidden), hint="x")
            fargs = OrderedDict((n, fb.arg(w.shape, hint="w")) for n, w in named.items())
            with fb.location(layer.path):
                fb.results = [_emit_layer(fb, fx, layer, fargs)]
            return fb

        callee = module.outlined(layer.key(), build)
        call_args = [h]
        for role, array in named.items():
            name = f"{layer.path}.{role}"
            value = weight(main, name, array)
            call_args.append(Value(value.name, tensor_type(array.shape), array.shape, "f32"))
            if not embed_weights:
                weights[name] = np.ascontiguousarray(array, dtype=np.float32)
        result = main.fresh("h")
        types = ", ".join(v.type for v in call_args)
        with main.location(layer.path):
            main.emit(f"{result} = func.call @{callee.name}({', '.join(str(v) for v in call_args)})"
                      f" : ({types}) -> {h.type}")
        h = Value(result, h.type, h.shape, "f32")
    if spec.final_norm is not None:
        name = f"{spec.path}.norm"
        w = weight(main, name, spec.final_norm.weight)
        w = Value(w.name, tensor_type((spec.hidden,)), (spec.hidden,), "f32")
        if not embed_weights:
            weights[name] = np.ascontiguousarray(spec.final_norm.weight, dtype=np.float32)
        with main.location(name):
            h = rmsnorm(main, h, w, spec.final_norm.eps)
    main.results = [h]
    module.add(main)
    info = {"layers": len(spec.layers), "layer_functions": len(module._outlined)}
    text = module.text()
    if resources:
        blobs = ",\n".join(f"      {k}: \"{_resource_hex(v)}\"" for k, v in resources.items())
        text += "\n{-#\n  dialect_resources: {\n    builtin: {\n" + blobs + "\n    }\n  }\n#-}\n"
    return ExportedModel(text, entry, ["input"], weights, info)
