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

    The ops' BufferizableOpInterface models emit the same loop nests from
    inside `one-shot-bufferize` without this pass (what `moe-cpu-pipeline`
    does unless `instrument-ffn` or `parallel` is set: those options exist
    only here).

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
           "in chunks of the matmul schedule's ffn_rows, 128 by default) as "
           "scf.parallel">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::func::FuncDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def ConvertMoEToGPUPass : Pass<"convert-moe-to-gpu", "::mlir::ModuleOp"> {
  let summary = "Lower moe ops to GPU kernels over device buffers";
  let description = [{
    Rewrites every `moe.gate`, `moe.route`, `moe.dispatch`,
    `moe.grouped_matmul`, `moe.expert_ffn`, `moe.combine` and `moe.aux_loss`
    (run `moe-decompose-layer` first for `moe.layer`) into one-dimensional
    `gpu.launch` kernels over `gpu.alloc` device buffers. Tensors from the
    host are copied to the device where a moe op first reads them; results
    stay on the device for the next moe op and are copied back only where
    they leave moe code; every device buffer is freed at the end of its
    block. Launches and copies are synchronous (`gpu-to-llvm` runs each on
    its own stream).

    Nothing about routing goes back to the host: `moe.dispatch` keeps its
    row count on the device (its rows are allocated for `T * K` rows and the
    expert kernels read the used count from `offsets`), so the host issues
    the same launches whatever the routing decided.

    Kernels, correctness first (see docs/GPU.md): routing runs the CPU
    lowering's routing kernel with one thread per token (capacity limits
    and `expert_choice`, cross-token orderings, on one device thread);
    dispatch is a deterministic counting sort over chunks of slots; the
    expert FFN and grouped matmul use SIMT f32 register tiles scheduled
    over (expert, row tile) on the device. The fused `moe.route_dispatch`
    is rejected with a diagnostic, and the rows of a dynamic-R
    `moe.dispatch` cannot leave moe code (use its padded form).

    With `device-arguments`, the functions' tensor arguments are taken to be
    in device memory already and returned tensors stay there: weights bound
    on the device once, no PCIe traffic per call (benchmarks, serving).

    With `emulate`, kernels become host loops and device buffers
    host buffers: the same kernel bodies then run through the CPU pipeline,
    which is how the tests check them against the reference without a GPU.
  }];
  let options = [
    Option<"emulate", "emulate", "bool", /*default=*/"false",
           "Emit kernels as host loops over host buffers (for testing the "
           "kernels on a CPU)">,
    Option<"blockSize", "block-size", "int64_t", /*default=*/"128",
           "Threads per block of the one-dimensional kernels (1 to 1024)">,
    Option<"deviceArguments", "device-arguments", "bool", /*default=*/"false",
           "Function tensor arguments are device pointers and returned "
           "tensors stay on the device (the caller frees them)">,
    Option<"tensorCores", "tensor-cores", "bool", /*default=*/"true",
           "Expert matmuls of bf16 (or f16) rows and weights on tensor "
           "cores (mma.sync m16n8k16, sm_80 and later; emulated lane by "
           "lane with emulate)">,
    Option<"bf16Rows", "bf16-rows", "bool", /*default=*/"false",
           "With bf16 weights, run f32 rows on tensor cores too, rounding "
           "the rows and the FFN's intermediates to bf16 (the output stays "
           "f32; a documented deviation from f32 semantics)">,
    Option<"wgmma", "wgmma", "bool", /*default=*/"false",
           "Also emit an sm_90a kernel for the tensor-core matmuls "
           "(wgmma m64n64k16 from 128-byte-swizzled shared memory, 64-row "
           "tiles), launched instead of the mma.sync kernel when the device "
           "has compute capability 9.0 (moeCudaHasWgmma); with emulate, the "
           "wgmma kernel is the one emulated">,
  ];
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::bufferization::BufferizationDialect",
    "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::math::MathDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::NVVM::NVVMDialect",
    "::mlir::scf::SCFDialect",
    "::mlir::vector::VectorDialect",
  ];
}

def MoEGPUFatbinPass : Pass<"moe-gpu-fatbin", "::mlir::ModuleOp"> {
  let summary = "Bundle a gpu.binary's per-chip PTX into one CUDA fatbin";
  let description = [{
    Takes every `gpu.binary` whose objects are PTX for NVVM targets (the
    output of `gpu-module-to-binary{format=isa}` after one
    `nvvm-attach-target` per chip), assembles each with `ptxas` for its
    chip, and replaces the objects with a single fatbin object (made by the
    toolkit's `fatbinary`) that holds one cubin per chip plus the PTX of the
    first chip. The CUDA driver then picks the cubin of the device it runs
    on, or JIT-compiles the PTX for a newer one: one library serves sm_80
    and sm_90a devices.

    A chip that `ptxas` rejects fails the pass with `ptxas`'s message. The
    toolkit is `cuda-path`, else `$CUDA_HOME`, else `/usr/local/cuda`.

    Example:

    ```
    moe-opt --moe-gpu-pipeline="chips=sm_80,sm_90a" model.mlir
    ```
  }];
  let options = [
    Option<"cudaPath", "cuda-path", "std::string", /*default=*/"\"\"",
           "CUDA toolkit holding bin/ptxas and bin/fatbinary">,
    Option<"ptxasOptions", "ptxas-options", "std::string",
           /*default=*/"\"-O3\"", "Options passed to ptxas">,
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

def MoEGPUAttachTargetsPass : Pass<"moe-gpu-attach-targets",
                                   "::mlir::ModuleOp"> {
  let summary = "Attach an NVVM target per chip to each gpu.module that "
                "can run on it";
  let description = [{
    Like one `nvvm-attach-target` per chip, except that a `gpu.module`
    holding sm_90a-only instructions (`nvvm.wgmma.*`, which `ptxas` rejects
    for any other chip) gets only the `sm_90a` target: the wgmma kernels of
    `convert-moe-to-gpu{wgmma}` sit in modules of their own, which the host
    code launches only on a compute capability 9.0 device. Every other
    module gets every chip. A module with wgmma when `chips` has no
    `sm_90a` is an error (run `convert-moe-to-gpu` without `wgmma`).

    Example:

    ```
    moe-opt --moe-gpu-attach-targets="chips=sm_80,sm_90a" kernels.mlir
    ```
  }];
  let options = [
    ListOption<"chips", "chips", "std::string",
               "Chips to compile for (e.g. sm_80,sm_90a)">,
    Option<"features", "features", "std::string", /*default=*/"\"+ptx80\"",
           "PTX features of every target">,
    Option<"optLevel", "O", "unsigned", /*default=*/"3",
           "Optimisation level of the NVVM targets">,
  ];
  let dependentDialects = ["::mlir::gpu::GPUDialect",
                           "::mlir::NVVM::NVVMDialect"];
}

def MoEGPUCapturablePass : Pass<"moe-gpu-capturable", "::mlir::ModuleOp"> {
  let summary = "Make the public host functions capturable in a CUDA graph: "
                "the caller's stream and workspace, no allocation, no "
                "synchronisation";
  let description = [{
    Runs on the host code of the GPU pipeline after kernel outlining and
    `gpu-async-region`, on functions whose tensor arguments are
    device buffers (`convert-moe-to-gpu{device-arguments}`). Every public
    function `@f` with a body is rewritten so that a call only launches
    kernels on the caller's stream, which is what CUDA graph capture
    (`cuStreamBeginCapture` ... `cuStreamEndCapture`) can record:

    * two arguments are appended: the stream (`!llvm.ptr`, a `CUstream`)
      and the workspace (`memref<?xi8>`, device memory the caller owns);
    * every `gpu.alloc` becomes a `memref.view` into the workspace at an
      offset computed from the arguments' shapes (256-byte aligned, no
      reuse), and every `gpu.dealloc` is dropped: the results are views
      into the workspace too, valid until the next call with it;
    * every `gpu.launch_func` runs on the caller's stream: the streams
      that `gpu-async-region` created and the waits on them are removed;
    * a function `@f_workspace_size` with `@f`'s original arguments returns
      the bytes the workspace needs (it reads only the shapes);
    * a workspace smaller than that sets the runtime error of `@f`
      (code 11, reported by the caller's status argument), launches
      nothing and returns empty views.

    Host code that would touch memory (host tensor ops around the layer,
    copies between host and device), allocate in a loop or call another
    function is rejected with an error at the op: such a function cannot be
    captured. A replay of a captured graph runs the kernels with the
    shapes, buffers and workspace of the captured call.

    Example:

    ```
    moe-opt --moe-gpu-pipeline="capturable" model.mlir
    ```
  }];
  let dependentDialects = [
    "::mlir::gpu::GPUDialect",
    "::mlir::LLVM::LLVMDialect",
    "::mlir::memref::MemRefDialect",
    "::mlir::scf::SCFDialect",
  ];
}

#endif // MOE_CONVERSION_PASSES_TD
