//===- MoETypes.td - MoE dialect operand type constraints --*- tablegen -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The tensor types of the ops' operands and results, as the semantics
// contract writes them: a rank, the allowed element types, and the symbolic
// shape (`T x H`), which the generated docs show. ODS checks rank and element
// type; the C++ verifiers (OperandChecker) check that the symbols agree
// across operands and attributes, naming each operand.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOETYPES_TD
#define MOE_DIALECT_MOE_IR_MOETYPES_TD

include "moe/Dialect/MoE/IR/MoEBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/CommonTypeConstraints.td"

/// A ranked tensor of one of `ranks` with elements in `elements`; `shape` is
/// the contract's symbolic shape and `names` the element types, for the
/// summary (`tensor<T x H x f32/f16/bf16>`).
class MoE_Tensor<list<Type> elements, list<int> ranks, string shape,
                 string names>
    : Type<TensorRankOf<elements, ranks>.predicate,
           "tensor<" # !if(!empty(shape), "", shape # " x ") # names # ">",
           "::mlir::RankedTensorType">;

/// Activations and weights: f32, f16 or bf16.
class MoE_FloatTensor<int rank, string shape>
    : MoE_Tensor<[F32, F16, BF16], [rank], shape, "f32/f16/bf16">;
/// Logits, scores, route weights, selection biases: f32.
class MoE_F32Tensor<int rank, string shape>
    : MoE_Tensor<[F32], [rank], shape, "f32">;
/// Ids, offsets, slot rows, per-token counts: i32.
class MoE_I32Tensor<int rank, string shape>
    : MoE_Tensor<[I32], [rank], shape, "i32">;

/// Expert weights: `[E, H, F]`, or with `packed` `[E, ceil(F/32), H, 32]`,
/// or quantized tiles of bytes `[E, F/32, H/32, B] x i8`.
class MoE_ExpertWeights<string shape, string packedShape, string quantShape>
    : Type<Or<[TensorRankOf<[F32, F16, BF16], [3, 4]>.predicate,
               TensorRankOf<[I8], [4]>.predicate]>,
           "tensor<" # shape # " x f32/f16/bf16> (packed: tensor<" #
               packedShape # " x f32/f16/bf16>; quantized: tensor<" #
               quantShape # " x i8>)",
           "::mlir::RankedTensorType">;

//===----------------------------------------------------------------------===//
// Types of the dialect
//===----------------------------------------------------------------------===//

def MoE_EPPlanType : TypeDef<MoE_Dialect, "EPPlan"> {
  let mnemonic = "ep_plan";
  let summary = "the routes of one expert-parallel exchange";
  let description = [{
    What `moe.ep_dispatch` learned about where each compute slot's row went
    (which rank, which received row), so that `moe.ep_combine` can send the
    experts' outputs back. A run-time handle owned by the exchange runtime;
    it is created by one `moe.ep_dispatch` and consumed by exactly one
    `moe.ep_combine`.
  }];
}

#endif // MOE_DIALECT_MOE_IR_MOETYPES_TD
