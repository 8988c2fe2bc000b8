//===- MoEBase.td - MoE dialect definition -----------------*- tablegen -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The `moe` dialect: variable-k Mixture-of-Experts routing as first-class IR.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEBASE_TD
#define MOE_DIALECT_MOE_IR_MOEBASE_TD

include "mlir/IR/OpBase.td"

def MoE_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Dynamic (variable-k) Mixture-of-Experts layers";
  let description = [{
    The `moe` dialect models sparse Mixture-of-Experts (MoE) layers whose
    tokens may use a *variable* number of experts: top-p routing, adaptive
    gating, thresholds, per-token k (DA-MoE), expert choice, and the
    zero-computation experts of AdaMoE and MoE++ (null, copy and constant
    experts).

    The semantics of every op are fixed by the project's semantics contract
    (`docs/Semantics.md`): slot order, ties, NaN handling, empty slots and
    bad runtime values. In short:

    * A layer routes over `S = E + N_null + N_copy + N_const` experts, in that
      index order, described by the `#moe.experts` attribute.
    * `moe.route` produces `ids[T,K]` and `weights[T,K]`; each token's valid
      slots come first, empty slots hold id `-1` and weight `0`.
    * `moe.dispatch` materialises only compute slots as rows sorted by expert
      (a stable counting sort), `moe.expert_ffn` runs each expert on its
      dynamic segment of rows, and `moe.combine` gathers the results back in
      slot order.
    * `moe.layer` is the composite op that exporters emit; the
      `moe-decompose-layer` pass expands it into the parts above.

    All ops have value (tensor) semantics and no side effects, except the
    expert-parallel exchange (`moe.ep_dispatch`, `moe.ep_combine`), which
    communicates with the other ranks of the run (docs/Distributed.md).
  }];

  let useDefaultAttributePrinterParser = 1;
  let useDefaultTypePrinterParser = 1;
  // `moe.matmul_schedule` on any op must hold a #moe.matmul_schedule.
  let hasOperationAttrVerify = 1;
  let extraClassDeclaration = [{
    void registerAttributes();
    void registerTypes();
  }];
}

#endif // MOE_DIALECT_MOE_IR_MOEBASE_TD
