//===- MoEEnums.td - MoE dialect enumerations --------------*- tablegen -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEENUMS_TD
#define MOE_DIALECT_MOE_IR_MOEENUMS_TD

include "moe/Dialect/MoE/IR/MoEBase.td"
include "mlir/IR/EnumAttr.td"

def MoE_Scoring : I32EnumAttr<"Scoring",
    "how router logits become scores", [
      I32EnumAttrCase<"softmax", 0>,
      I32EnumAttrCase<"sigmoid", 1>,
      I32EnumAttrCase<"none", 2>
    ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::moe";
  let description = [{
    `softmax`: `exp(l - max(l)) / sum` over all `S` entries of a token's row,
    in f32; a NaN anywhere in the row makes every score of the row NaN.
    `sigmoid`: elementwise logistic function. `none`: the identity.
  }];
}
def MoE_ScoringAttr : EnumAttr<MoE_Dialect, MoE_Scoring, "scoring">;

def MoE_Normalize : I32EnumAttr<"Normalize",
    "how the weights of a token's valid slots are normalised", [
      I32EnumAttrCase<"none", 0>,
      I32EnumAttrCase<"selected", 1>,
      I32EnumAttrCase<"non_null", 2>
    ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::moe";
  let description = [{
    `none`: raw scores. `selected`: divide by the sum over the valid slots.
    `non_null` (AdaMoE, MoE++): divide by the sum over the valid slots that are
    not null experts; null slots get weight 0. A zero denominator or an empty
    set gives all-zero weights for the token. `scale` multiplies afterwards.
  }];
}
def MoE_NormalizeAttr : EnumAttr<MoE_Dialect, MoE_Normalize, "normalize">;

def MoE_CapacityPriority : I32EnumAttr<"CapacityPriority",
    "which slots an expert keeps when it is over capacity", [
      I32EnumAttrCase<"score", 0>,
      I32EnumAttrCase<"position", 1>
    ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::moe";
  let description = [{
    `score`: the highest raw weights (NaN last; ties: lower token, then lower
    slot). `position`: by `(slot, token)` ascending, every token's first
    choice before any second choice (GShard; Switch for K = 1).
  }];
}

def MoE_GroupScore : I32EnumAttr<"GroupScore",
    "how group-limited routing scores a group of experts", [
      I32EnumAttrCase<"top2_sum", 0>,
      I32EnumAttrCase<"max", 1>
    ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::moe";
  let description = [{
    `top2_sum`: the sum of the group's two largest selection keys
    (DeepSeek-V3 with its correction bias). `max`: the group's largest key
    (DeepSeek-V3's official inference code without a bias, DeepSeek-V2).
    NaN keys count as -inf in both.
  }];
}

def MoE_Activation : I32EnumAttr<"Activation",
    "the activation function of an expert FFN", [
      I32EnumAttrCase<"silu", 0>,
      I32EnumAttrCase<"gelu", 1>,
      I32EnumAttrCase<"gelu_tanh", 2>,
      I32EnumAttrCase<"relu", 3>
    ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::moe";
  let description = [{
    `silu` (x * sigmoid(x)), `gelu` (exact, with erf), `gelu_tanh` (the tanh
    approximation), `relu`.
  }];
}
def MoE_ActivationAttr : EnumAttr<MoE_Dialect, MoE_Activation, "activation">;

def MoE_WeightQuant : I32EnumAttr<"WeightQuant",
    "the block-quantized storage of packed expert weights", [
      I32EnumAttrCase<"q8_0", 0>,
      I32EnumAttrCase<"q4_0", 1>
    ]> {
  let genSpecializedAttr = 0;
  let cppNamespace = "::mlir::moe";
  let description = [{
    GGUF's block formats: 32 weights along the contraction dimension share
    one f16 scale `d`; `q8_0` stores `q` in int8 (`w = q * d`), `q4_0` in
    4 bits (`w = (q - 8) * d`). Bit-compatible with ggml's blocks, rearranged
    into tiles of 32 columns x 32 depths (see `moe.expert_ffn`).
  }];
}
def MoE_WeightQuantAttr : EnumAttr<MoE_Dialect, MoE_WeightQuant, "quant">;

#endif // MOE_DIALECT_MOE_IR_MOEENUMS_TD
