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
    %out = moe.combine %y, %slot_rows, %ids, %weights, %x ... into(%empty)
    ```

    The destinations of the destination-style parts are new `tensor.empty`
    ops, sized from the operands.
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect",
                           "::mlir::moe::MoEDialect",
                           "::mlir::tensor::TensorDialect"];
}

def MoEFuseGatingDispatchPass : Pass<"moe-fuse-gating-dispatch"> {
  let summary = "Fuse moe.gate + moe.route + moe.dispatch into "
                "moe.route_dispatch";
  let description = [{
    Rewrites a chain `moe.gate` -> `moe.route` -> `moe.dispatch` on the same
    tokens into one `moe.route_dispatch`, whose lowering walks the tokens in
    tiles (router matmul, scoring, selection, normalisation and per-expert
    counts per tile, then the scan and the scatter): the `[T, S]` logits are
    never materialised.

    The chain is fused when the gate's logits feed only the route, the
    dispatch dispatches the gate's input with the route's ids over the
    route's compute experts, and the routing decides token by token. Routes
    with `expert_choice` or `capacity` need every token before deciding:
    they stay unfused (the unfused lowering computes them exactly).

    Example:

    ```mlir
    %l = moe.gate %x, %wr : ...
    %ids, %w = moe.route %l experts = <compute = 8, null = 4> k = 4 ...
    %rows, %off, %slots = moe.dispatch %x, %ids num_experts = 8 : ...
    ```

    becomes

    ```mlir
    %ids, %w, %rows, %off, %slots = moe.route_dispatch %x router(%wr : ...)
        experts = <compute = 8, null = 4> k = 4 ... tile = 32 : ...
    ```
  }];
  let options = [
    Option<"tile", "tile", "int64_t", /*default=*/"32",
           "Tokens per tile of the fused lowering">,
  ];
  let dependentDialects = ["::mlir::moe::MoEDialect"];
}

def MoECostReportPass : Pass<"moe-cost-report"> {
  let summary = "Annotate and print the routing cost of every MoE layer";
  let description = [{
    For every `moe.layer`, and every `moe.route` or `moe.route_dispatch`
    whose dispatch feeds a `moe.expert_ffn`, computes from the attributes and
    static shapes (contract section 6):

    * `slot_flops`: the FLOPs of one compute slot, `2 * H * F * (gated ? 3 : 2)`;
    * `dense_slots`: the compute slots per token of a dense top-K layer (`K`);
    * `min_slots`, `max_slots`: the static bounds on a token's compute slots
      under this routing (null, copy and constant experts take slots without
      FLOPs; variable-k strategies may use fewer slots);
    * `expert_weight_bytes`: the bytes of one expert's FFN weights, read at
      most once per call for an expert with rows, never for one without.

    The numbers are attached to the op as a `moe.cost` dictionary and, with
    `print` (the default), printed as a table on standard output. Measured
    compute slots per expert come from an execution with the CPU pipeline's
    `instrument-ffn` option (`moe_mlir.cost` reads and plots them).
  }];
  let options = [
    Option<"print", "print", "bool", /*default=*/"true",
           "Print the report on standard output">,
  ];
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

def MoEStatusArgumentPass
    : Pass<"moe-status-argument", "::mlir::ModuleOp"> {
  let summary = "Report run-time errors through a per-call i32* status "
                "argument instead of a process-global flag";
  let description = [{
    The moe lowerings record a run-time size error (operands whose run-time
    sizes disagree; the op then does not run and its results are zero) by
    storing the op's code (docs/Semantics.md) into the module's
    `moe_runtime_error` global. That global is process state: two threads
    calling the module race on it. This pass replaces it with a status the
    caller owns:

    * every public `func.func` with a body gets a trailing `!llvm.ptr`
      argument marked `moe.status` (an `int32_t *` in C, also in its
      `_mlir_ciface_` wrapper), whether or not it can fail, so that all
      entry points have one ABI;
    * a private function gets it when it stores an error code or calls a
      function that has it; calls pass the caller's status on;
    * each store of a code into `moe_runtime_error` becomes a store through
      the status pointer, and the global is erased.

    The callee writes the status only on an error (the last failing op's
    code wins); the caller sets it to 0 before the call. Run after the moe
    lowerings and bufferization, before the conversion of functions to the
    LLVM dialect (both moe pipelines do). A function that has to get the
    argument but is used other than by `func.call`, or a use of the global
    other than a store of a code inside a `func.func`, is an error.

    Example:

    ```mlir
    memref.global "public" @moe_runtime_error : memref<i32> = dense<0>
    func.func @f(%ok: i1) {
      scf.if %ok {} else {
        %flag = memref.get_global @moe_runtime_error : memref<i32>
        %c3 = arith.constant 3 : i32
        memref.store %c3, %flag[] : memref<i32>
      }
      return
    }
    // becomes
    func.func @f(%ok: i1, %status: !llvm.ptr {moe.status}) {
      scf.if %ok {} else {
        %c3 = arith.constant 3 : i32
        llvm.store %c3, %status : i32, !llvm.ptr
      }
      return
    }
    ```
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
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

def MoECheckPipelineInputPass
    : Pass<"moe-check-pipeline-input", "::mlir::ModuleOp"> {
  let summary = "Reject input that the moe pipelines would not compile";
  let description = [{
    The first pass of `moe-cpu-pipeline` and `moe-gpu-pipeline`. The
    pipelines compile the functions of the top-level module (function-level
    passes such as bufferization run on its `func.func`s, and the result is
    translated to one LLVM module). A nested `builtin.module` would be left
    half lowered (moe ops converted, the rest not bufferized) or silently
    not compiled at all, so it is reported with its location instead:

    ```
    error: moe-cpu-pipeline compiles the functions of the top-level module;
           nested module @inner is not supported (move its functions to the
           top level)
    ```
  }];
  let options = [
    Option<"pipeline", "pipeline", "std::string", /*default=*/"\"moe pipelines\"",
           "The pipeline named in the diagnostics">,
  ];
}

def MoECPUTargetPass : Pass<"moe-cpu-target", "::mlir::ModuleOp"> {
  let summary = "Record the CPU the code is compiled for in the module";
  let description = [{
    Sets the module attribute `moe.cpu_target = #moe.cpu_target<cpu = ...,
    features = ...>`: the CPU that LLVM will generate code for, so that the
    CPU lowering chooses its kernels' schedules for it (vector width,
    register blocks). `cpu` is an x86 CPU name as LLVM spells it (`znver3`,
    `sapphirerapids`, `x86-64-v3`, ...), its features LLVM's; `native` is
    the host, with the host's features. `features` adds or removes features
    (`+avx512f,-avx2`). An unknown CPU name is an error. `avx512bf16` is
    recorded off (unless `features` turns it on): its f32 -> bf16
    conversion flushes subnormals, which the contract keeps, and LLVM would
    otherwise use it for the pipeline's exact integer rounding.

    `moe-cpu-pipeline{target-cpu=... target-features=...}` runs this pass
    first; the Python JIT passes `native`, ahead-of-time builds their `cpu`,
    so the schedule matches the code LLVM emits.

    Example:

    ```
    moe-opt --moe-cpu-target="cpu=znver3" model.mlir
    ```
  }];
  let options = [
    Option<"cpu", "cpu", "std::string", /*default=*/"\"native\"",
           "LLVM CPU name, or native for the host">,
    Option<"features", "features", "std::string", /*default=*/"\"\"",
           "Features to add (+name) or remove (-name), comma separated">,
  ];
  let dependentDialects = ["::mlir::moe::MoEDialect"];
}

def MoEApplyCPUTargetPass
    : Pass<"moe-apply-cpu-target", "::mlir::ModuleOp"> {
  let summary = "Give the LLVM functions the module's recorded CPU target";
  let description = [{
    Moves the module's `moe.cpu_target` (moe-cpu-target) onto every
    `llvm.func` with a body as LLVM's per-function `target_cpu` and
    `target_features` (those a function already has are kept), and removes
    the module attribute, so that the LLVM module says which CPU it was
    scheduled for (LLVM generates code for it whatever the default target
    machine) and stock tools (`mlir-translate`) need not know the moe
    dialect. The last pass of `moe-cpu-pipeline`; nothing without the
    attribute.
  }];
  let dependentDialects = ["::mlir::LLVM::LLVMDialect"];
}

def MoEApproximateMathPass : Pass<"moe-approximate-math"> {
  let summary = "Replace f32 math.exp by a polynomial approximation that "
                "vectorises";
  let description = [{
    Rewrites every f32 `math.exp` (scalar or vector) into MLIR's polynomial
    approximation (`populateMathPolynomialApproximationPatterns`: range
    reduction by ln 2, a polynomial, reconstruction through the exponent
    bits). Loops that evaluate `exp` (the softmax and sigmoid of a router,
    SiLU in an expert FFN) then contain only arithmetic and vectorise,
    instead of calling libm's `expf` once per element.

    The CPU pipeline runs it on the loops, after bufferization (every f32
    `math.exp` of the module by then: the moe kernels' and those of
    elementwise tensor code); `moe-cpu-pipeline{approximate-math=false}`
    keeps libm's `expf`.
    Accuracy, measured by test/python/test_approximate_math.py against exp
    in float64: at most 1e-6 relative error where the result is a normal f32
    (measured 3.2e-7, about 5 ulp; libm: 0.5 ulp); results in the subnormal
    range may flush to 0; 0, infinities, NaN and overflow are exact. The
    contract's bound for route weights is 1e-5 relative (section 5). Other
    element types (f16, f64) and other functions are left alone.

    Example: `%e = math.exp %x : f32` becomes arithmetic on `%x`
    (`arith.mulf`, `math.fma`, `arith.bitcast`, ...) with no `math.exp` left.
  }];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::math::MathDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def MoEInlineAllocaFreeScopesPass
    : Pass<"moe-inline-alloca-free-scopes", "::mlir::ModuleOp"> {
  let summary = "Inline memref.alloca_scope ops that hold no memref.alloca";
  let description = [{
    `convert-scf-to-openmp` wraps every parallel body in a
    `memref.alloca_scope` (to release its allocas each iteration), and
    `convert-scf-to-cf` then splits the body into blocks, which an
    `alloca_scope` does not allow. The bodies that the moe lowerings make
    parallel allocate on the heap only, so the CPU pipeline (with
    `parallel=1`) inlines every scope with no `memref.alloca` inside it
    (anywhere in its region); a scope with an alloca is left alone.

    Example:

    ```mlir
    memref.alloca_scope {
      %b = memref.alloc() : memref<4xf32>
      memref.dealloc %b : memref<4xf32>
    }
    ```

    becomes the two ops without the scope. A scope that returns values is
    replaced by them.
  }];
  let dependentDialects = ["::mlir::memref::MemRefDialect"];
}

def MoEExpertParallelPass
    : Pass<"moe-expert-parallel", "::mlir::ModuleOp"> {
  let summary = "Split every layer's compute experts over the ranks of the "
                "run (expert parallelism)";
  let description = [{
    Rewrites each `moe.dispatch` -> `moe.expert_ffn` -> `moe.combine` chain
    (run `moe-decompose-layer` first) into its expert-parallel form:

    ```
    rows, offsets, slot, plan = moe.ep_dispatch %x, %ids placement = ...
    y_local                   = moe.expert_ffn rows, offsets (local weights)
    y                         = moe.ep_combine y_local, plan
    out                       = moe.combine y, slot, %ids, %weights, %x
    ```

    Routing, the zero-computation experts and the combine stay where the
    tokens are; only compute slots travel. The expert weights become the
    rank's own block: their first dimension (`E`) becomes dynamic
    (`E_local`), in the function that uses them and in every function that
    passes them down through `func.call`, so one module serves every rank
    and rank count. Such arguments get the attribute
    `moe.ep_experts = E` (the layer's expert count), which hosts use to
    pass each rank's block. Weights that are not function arguments (a
    constant, a computed tensor) are an error: each rank must pass its own.

    After the pass, the rest of the CPU pipeline is unchanged; the exchange
    ops become calls of the expert-parallel runtime (libmoe_ep_runtime).

    Example: `--moe-expert-parallel="placement=0,3,8"` puts experts 0-2 on
    rank 0 and 3-7 on rank 1 (runs on 2 ranks only); the default,
    `balanced`, splits evenly over the run's rank count.
  }];
  let options = [
    Option<"placement", "placement", "std::string", /*default=*/"\"balanced\"",
           "Expert placement: 'balanced' (even contiguous blocks over the "
           "run's ranks) or the block bounds 'b0,b1,...,bN' (rank r holds "
           "experts [b_r, b_r+1); b0 = 0, bN = E)">
  ];
  let dependentDialects = ["::mlir::moe::MoEDialect",
                           "::mlir::tensor::TensorDialect"];
}

#endif // MOE_DIALECT_MOE_TRANSFORMS_PASSES_TD
