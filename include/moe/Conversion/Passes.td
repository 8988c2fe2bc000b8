//===- Passes.td - MoE conversion passes -------------------*- tablegen -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_PASSES_TD
#define MOE_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def ConvertMoEToLoopsPass : Pass<"convert-moe-to-loops", "::mlir::ModuleOp"> {
  let summary = "Lower moe ops to loops over buffers (scf, memref, arith, math)";
  let description = [{
    Rewrites every `moe.gate`, `moe.route`, `moe.dispatch`,
    `moe.grouped_matmul`, `moe.expert_ffn`, `moe.combine` and `moe.aux_loss`
    (run `moe-decompose-layer` first for `moe.layer`) into loop nests over
    buffers: each op reads its tensor operands through
    `bufferization.to_buffer`, writes freshly allocated buffers with `scf`
    loops, and returns them through `bufferization.to_tensor`, so that
    `one-shot-bufferize` finishes the job.

    Variable-k is realised, not padded:

    * `moe.route` selects each token's experts by its strategy and writes
      empty slots as `-1`;
    * `moe.dispatch` is a stable counting sort (histogram, exclusive scan,
      scatter) that materialises only compute slots: `R` is the number of
      compute slots;
    * `moe.expert_ffn` and `moe.grouped_matmul` loop over experts with the
      (sanitised) bounds of `offsets`: an expert without rows costs nothing
      and its weights are never read;
    * `moe.combine` gathers each token's slots in slot order (no atomics);
      null, empty and invalid slots do no work.

    Bad runtime values (out-of-range ids, `k_per_token` and offsets, NaN)
    follow the semantics contract and never cause an out-of-bounds access.

    With `instrument-ffn`, every `moe.expert_ffn` also counts, per expert,
    the rows it processes and the multiply-adds its inner loops execute, in
    a public global `moe_ffn_counters_<n>` (`memref<E x 2 x i64>`, `n`
    numbering the FFN ops of the module in order).
  }];
  let options = [
    Option<"instrumentFFN", "instrument-ffn", "bool", /*default=*/"false",
           "Count the rows and multiply-adds each expert FFN executes">,
    Option<"parallel", "parallel", "bool", /*default=*/"false",
           "Emit the expert FFN's independent work items (an expert's rows "
           "in chunks of 128) as scf.parallel">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}

#endif // MOE_CONVERSION_PASSES_TD
