//===- Pipelines.h - moe-mlir compilation pipelines -------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_PIPELINES_PIPELINES_H
#define MOE_PIPELINES_PIPELINES_H

#include "mlir/Pass/PassOptions.h"

namespace mlir {
class DialectRegistry;
class OpPassManager;

namespace moe {

/// The options of both pipelines that fix the ABI of the host functions.
template <typename Derived>
struct HostABIOptions : public PassPipelineOptions<Derived> {
  mlir::detail::PassOptions::Option<bool> cInterface{
      *this, "c-interface",
      llvm::cl::desc("Give public functions a _mlir_ciface_ entry point"),
      llvm::cl::init(true)};
  mlir::detail::PassOptions::Option<bool> statusArgument{
      *this, "status-argument",
      llvm::cl::desc("Report run-time errors through a trailing i32* status "
                     "argument of every public function (moe-status-argument);"
                     " off keeps the module's public global moe_runtime_error, "
                     "for drivers such as mlir-runner that call functions "
                     "without arguments"),
      llvm::cl::init(true)};
};

/// Options of the CPU pipeline.
struct CPUPipelineOptions : public HostABIOptions<CPUPipelineOptions> {
  PassOptions::Option<bool> instrumentFFN{
      *this, "instrument-ffn",
      llvm::cl::desc("Count the rows and multiply-adds of every expert FFN "
                     "(globals moe_ffn_counters_<n>)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> fuse{
      *this, "fuse",
      llvm::cl::desc("Fuse gating with dispatch (moe-fuse-gating-dispatch); "
                     "turn off to debug the unfused path"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> approximateMath{
      *this, "approximate-math",
      llvm::cl::desc("Replace f32 math.exp by a polynomial that vectorises "
                     "(moe-approximate-math); off keeps libm's expf"),
      llvm::cl::init(true)};
  PassOptions::Option<bool> parallel{
      *this, "parallel",
      llvm::cl::desc("Run the expert FFN's work items on OpenMP threads "
                     "(scf.parallel -> omp; the code then needs the LLVM "
                     "OpenMP runtime, libomp, at run time)"),
      llvm::cl::init(false)};
  PassOptions::Option<std::string> targetCPU{
      *this, "target-cpu",
      llvm::cl::desc("The x86-64 CPU that LLVM will generate code for (an "
                     "LLVM CPU name, or native for the host): recorded in "
                     "the module (moe-cpu-target), the kernels' schedules "
                     "are chosen for it; empty: AVX-512 schedules"),
      llvm::cl::init("")};
  PassOptions::Option<std::string> targetFeatures{
      *this, "target-features",
      llvm::cl::desc("Features added (+name) or removed (-name) from "
                     "target-cpu's, comma separated"),
      llvm::cl::init("")};
};

/// Options of moe-test-gpu-emulation-pipeline: the host ABI only (the rest
/// is the CPU pipeline's defaults).
struct GPUEmulationPipelineOptions
    : public HostABIOptions<GPUEmulationPipelineOptions> {
  PassOptions::Option<bool> bf16Rows{
      *this, "bf16-rows",
      llvm::cl::desc("As moe-gpu-pipeline's bf16-rows: f32 rows with bf16 "
                     "weights on the (emulated) tensor cores, rounded to "
                     "bf16"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> wgmma{
      *this, "wgmma",
      llvm::cl::desc("Emulate the sm_90a (wgmma) tensor-core kernels instead "
                     "of the sm_80 (mma.sync) ones"),
      llvm::cl::init(false)};
};

/// Options of the GPU pipeline.
struct GPUPipelineOptions : public HostABIOptions<GPUPipelineOptions> {
  PassOptions::ListOption<std::string> chips{
      *this, "chips",
      llvm::cl::desc("NVIDIA targets to compile the kernels for (one cubin "
                     "each; the first one's PTX is the fallback)"),
      llvm::cl::list_init<std::string>({"sm_80", "sm_90a"})};
  PassOptions::Option<std::string> ptxFeatures{
      *this, "ptx-features",
      llvm::cl::desc("NVPTX features of the targets (PTX ISA version)"),
      llvm::cl::init("+ptx80")};
  PassOptions::Option<int64_t> blockSize{
      *this, "block-size", llvm::cl::desc("Threads per block of the kernels"),
      llvm::cl::init(128)};
  PassOptions::Option<bool> deviceArguments{
      *this, "device-arguments",
      llvm::cl::desc("Tensor arguments are device pointers and results stay "
                     "on the device (convert-moe-to-gpu{device-arguments})"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> fuse{
      *this, "fuse",
      llvm::cl::desc("Fuse gating with dispatch (moe-fuse-gating-dispatch): "
                     "each token's thread computes its logits and routes "
                     "from them, no [T, S] logits buffer; off by default "
                     "until measured on a device (docs/GPU.md)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> capturable{
      *this, "capturable",
      llvm::cl::desc("Public functions take the caller's stream and a "
                     "workspace, allocate nothing and do not synchronise, "
                     "so that a CUDA graph can capture them; implies "
                     "device-arguments (moe-gpu-capturable)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> bf16Rows{
      *this, "bf16-rows",
      llvm::cl::desc("With bf16 weights, run f32 rows on tensor cores too, "
                     "rounded to bf16 with the FFN's intermediates "
                     "(convert-moe-to-gpu{bf16-rows}; docs/GPU.md)"),
      llvm::cl::init(false)};
  PassOptions::Option<bool> fatbin{
      *this, "fatbin",
      llvm::cl::desc("Assemble the kernels with ptxas and bundle the cubins "
                     "and PTX in one fatbin (moe-gpu-fatbin); off keeps one "
                     "PTX object per chip (no ptxas needed)"),
      llvm::cl::init(true)};
  PassOptions::Option<std::string> cudaPath{
      *this, "cuda-path",
      llvm::cl::desc("CUDA toolkit with ptxas and fatbinary (default: "
                     "$CUDA_HOME, else /usr/local/cuda)"),
      llvm::cl::init("")};
};

/// Adds the passes that take a module whose `func.func`s use moe ops (and
/// upstream tensor/linalg/arith/math ops) on tensors down to the LLVM
/// dialect: decompose layers, lower moe ops to loops, bufferize (function
/// boundaries included, identity layouts), insert deallocations, lower to
/// LLVM. Public functions get C interfaces. The result translates with
/// `mlir-translate --mlir-to-llvmir` and runs with `mlir-runner`.
void buildCPUPipeline(OpPassManager &pm, const CPUPipelineOptions &options);

/// Adds the passes that take the same input as the CPU pipeline to host
/// LLVM code that launches NVIDIA GPU kernels: decompose layers, lower moe
/// ops to kernels (convert-moe-to-gpu), bufferize, outline the kernels,
/// lower them to NVVM for every chip, serialise them (PTX, then a fatbin
/// with one cubin per chip), lower the host code with gpu-to-llvm. The
/// result calls the `mgpu*` runtime functions (libmoe_cuda_runtime).
void buildGPUPipeline(OpPassManager &pm, const GPUPipelineOptions &options);

/// A testing pipeline: the CPU pipeline with the moe ops lowered by the GPU
/// kernels (convert-moe-to-gpu{emulate}) run as host loops, one thread after
/// the other, which is how the kernels' bodies are tested without a GPU.
void buildGPUEmulationPipeline(OpPassManager &pm,
                               const GPUEmulationPipelineOptions &options);

/// Registers `moe-cpu-pipeline`, `moe-gpu-pipeline` and the testing
/// pipeline `moe-test-gpu-emulation-pipeline` with the global pipeline
/// registry.
void registerMoEPipelines();

/// Registers every upstream pass that the moe pipelines use (and the
/// generic IR passes: canonicalize, cse, ...), so that a pipeline can be
/// run piece by piece.
void registerPipelinePasses();

/// Inserts the dialects and external interface models that the pipelines
/// need into `registry` (bufferization and deallocation models of arith, scf,
/// tensor, linalg, func, cf; LLVM translation interfaces).
void registerPipelineDependencies(DialectRegistry &registry);
/// The GPU pipeline's part of the above (gpu, nvvm, NVVM target, GPU
/// translation to LLVM IR).
void registerGPUPipelineDependencies(DialectRegistry &registry);

} // namespace moe
} // namespace mlir

#endif // MOE_PIPELINES_PIPELINES_H
