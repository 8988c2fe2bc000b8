//===- Passes.td - MoE dialect transformation passes -------*- tablegen -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
#define MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def MoEDecomposeLayerPass : Pass<"moe-decompose-layer"> {
  let summary = "Expand moe.layer into gate, route, dispatch, expert_ffn and "
                "combine";
  let description = [{
    Rewrites every `moe.layer` into the chain of its parts (level L1 to L2 of
    the architecture):

    ```
    logits              = moe.gate %x, %router (+ router_bias)
    ids, weights        = moe.route %logits (+ k_per_token, selection bias)
    rows, offsets, slot = moe.dispatch %x, %ids
    y                   = moe.expert_ffn %rows, %offsets (weights)
    out                 = moe.combine %y, %slot, %ids, %weights, %x
    ```

    Every routing attribute (expert space, `k`, scoring, strategy, normalize,
    scale, capacity, groups) moves to `moe.route` unchanged, the FFN
    attributes to `moe.expert_ffn`, and the expert space to `moe.combine`.
    The number of rows `R` is dynamic. The pass works on any op and leaves
    everything that is not a `moe.layer` untouched.

    Example:

    ```mlir
    %y = moe.layer %x router(%wr : tensor<64x12xf32>) ...
        experts = <compute = 8, null = 4> k = 4 strategy = top_k ...
    ```

    becomes

    ```mlir
    %logits = moe.gate %x, %wr : ... -> tensor<?x12xf32>
    %ids, %weights = moe.route %logits experts = <compute = 8, null = 4>
        k = 4 strategy = top_k ...
    %rows, %offsets, %slot_rows = moe.dispatch %x, %ids num_experts = 8 ...
    %y = moe.expert_ffn %rows, %offsets ...
    %out = moe.combine %y, %slot_rows, %ids, %weights, %x ...
    ```
  }];
  let dependentDialects = ["::mlir::moe::MoEDialect"];
}

def MoEEmitCInterfacePass
    : Pass<"moe-emit-c-interface", "::mlir::ModuleOp"> {
  let summary = "Give every public function a C interface (_mlir_ciface_)";
  let description = [{
    Sets `llvm.emit_c_interface` on every public `func.func` with a body, so
    that `convert-func-to-llvm` emits a `_mlir_ciface_<name>` wrapper taking
    memref descriptors by pointer. This is the entry point that the Python
    module, the AOT shared libraries and C callers use.
  }];
}

def MoEReadOnlyArgumentsPass
    : Pass<"moe-read-only-arguments", "::mlir::ModuleOp"> {
  let summary = "Forbid bufferization from writing into public functions' "
                "tensor arguments";
  let description = [{
    Sets `bufferization.writable = false` on every tensor argument of every
    public `func.func` with a body. One-shot bufferization then never reuses
    an argument's buffer for a result (it copies instead), so a caller's
    arrays are never modified: the inputs of a compiled function are read
    only, as its tensor semantics promise.
  }];
  let dependentDialects = ["::mlir::bufferization::BufferizationDialect"];
}

#endif // MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
