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

/// Options of the CPU pipeline.
struct CPUPipelineOptions : public PassPipelineOptions<CPUPipelineOptions> {
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
  PassOptions::Option<bool> cInterface{
      *this, "c-interface",
      llvm::cl::desc("Give public functions a _mlir_ciface_ entry point"),
      llvm::cl::init(true)};
};

/// Adds the passes that take a module whose `func.func`s use moe ops (and
/// upstream tensor/linalg/arith/math ops) on tensors down to the LLVM
/// dialect: decompose layers, lower moe ops to loops, bufferize (function
/// boundaries included, identity layouts), insert deallocations, lower to
/// LLVM. Public functions get C interfaces. The result translates with
/// `mlir-translate --mlir-to-llvmir` and runs with `mlir-runner`.
void buildCPUPipeline(OpPassManager &pm, const CPUPipelineOptions &options);

/// Registers `moe-cpu-pipeline` (and later pipelines) with the global
/// pipeline registry.
void registerMoEPipelines();

/// Inserts the dialects and external interface models that the pipelines
/// need into `registry` (bufferization and deallocation models of arith, scf,
/// tensor, linalg, func, cf; LLVM translation interfaces).
void registerPipelineDependencies(DialectRegistry &registry);

} // namespace moe
} // namespace mlir

#endif // MOE_PIPELINES_PIPELINES_H
