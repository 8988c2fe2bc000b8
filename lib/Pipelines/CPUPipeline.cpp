//===- CPUPipeline.cpp - moe ops on tensors to the LLVM dialect -*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/Pipelines.h"

#include "Common.h"

#include "moe/Conversion/MoEToLoops/BufferizableOpInterfaceImpl.h"
#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Transforms/TilingInterfaceImpl.h"

#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/BufferizationToMemRef/BufferizationToMemRef.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MathToLibm/MathToLibm.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/OpenMPToLLVM/ConvertOpenMPToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/SCFToOpenMP/SCFToOpenMP.h"
#include "mlir/Conversion/UBToLLVM/UBToLLVM.h"
#include "mlir/Conversion/VectorToLLVM/ConvertVectorToLLVMPass.h"
#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Arith/Transforms/BufferDeallocationOpInterfaceImpl.h"
#include "mlir/Dialect/Arith/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/FuncBufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/ControlFlow/Transforms/BufferDeallocationOpInterfaceImpl.h"
#include "mlir/Dialect/ControlFlow/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/Linalg/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/OpenMP/OpenMPDialect.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SCF/Transforms/BufferDeallocationOpInterfaceImpl.h"
#include "mlir/Dialect/SCF/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tensor/Transforms/BufferizableOpInterfaceImpl.h"
#include "mlir/Dialect/UB/IR/UBOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "mlir/Transforms/Passes.h"

#include <optional>

using namespace mlir;
using namespace mlir::moe;

/// The CPU pipeline; with `emulation` (convert-moe-to-gpu's options, emulate
/// set), the moe ops are lowered by the GPU kernels run as host loops
/// instead (a testing pipeline).
static void buildHostPipeline(
    OpPassManager &pm, const CPUPipelineOptions &options, StringRef name,
    const std::optional<ConvertMoEToGPUPassOptions> &emulation = {}) {
  MoECheckPipelineInputPassOptions input;
  input.pipeline = name.str();
  pm.addPass(createMoECheckPipelineInputPass(input));
  if (!options.targetCPU.empty() || !options.targetFeatures.empty()) {
    MoECPUTargetPassOptions target;
    target.cpu = options.targetCPU.empty() ? std::string("native")
                                           : std::string(options.targetCPU);
    target.features = options.targetFeatures;
    pm.addPass(createMoECPUTargetPass(target));
  }
  // Simplify the routing configurations (exact rewrites), L1 -> L2, again.
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createMoEDecomposeLayerPass());
  pm.addPass(createCanonicalizerPass());
  if (emulation) {
    pm.addPass(createConvertMoEToGPUPass(*emulation));
  } else {
    if (options.fuse)
      pm.addPass(createMoEFuseGatingDispatchPass());
    // The options that change the loop nests (instrument-ffn, parallel) are
    // the conversion pass's: with either, the moe ops become loops before
    // bufferization. Without them, one-shot-bufferize lowers the moe ops
    // where they stand through their BufferizableOpInterface models (the
    // same loop nests, on the buffers it assigns: no to_buffer/to_tensor
    // bridge).
    if (options.instrumentFFN || options.parallel) {
      ConvertMoEToLoopsPassOptions loops;
      loops.instrumentFFN = options.instrumentFFN;
      loops.parallel = options.parallel;
      pm.addPass(createConvertMoEToLoopsPass(loops));
    }
  }
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // The rest of the model, tensors -> buffers (with deallocations), loops.
  moe::detail::addTensorsToLoops(pm, /*deallocate=*/true);
  // On the loops (every f32 math.exp of the module by then, the moe
  // kernels' and the loops of elementwise tensor code alike).
  if (options.approximateMath) {
    pm.addPass(createMoEApproximateMathPass());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
  }

  // Loops -> LLVM.
  if (options.parallel) {
    pm.addPass(createConvertSCFToOpenMPPass());
    pm.addPass(createMoEInlineAllocaFreeScopesPass());
  }
  // The register-blocked kernels' vector loads, stores, broadcasts and FMAs
  // too; OpenMP after the functions (it would convert them too, losing the
  // C interface).
  moe::detail::addHostToLLVM(pm, /*vectors=*/true, options.cInterface,
                             options.statusArgument, [&](OpPassManager &pm) {
                               if (options.parallel)
                                 pm.addPass(createConvertOpenMPToLLVMPass());
                             });
}

void mlir::moe::buildCPUPipeline(OpPassManager &pm,
                                 const CPUPipelineOptions &options) {
  buildHostPipeline(pm, options, "moe-cpu-pipeline");
}

void mlir::moe::buildGPUEmulationPipeline(
    OpPassManager &pm, const GPUEmulationPipelineOptions &options) {
  CPUPipelineOptions cpu;
  cpu.cInterface = options.cInterface;
  cpu.statusArgument = options.statusArgument;
  ConvertMoEToGPUPassOptions kernels;
  kernels.emulate = true;
  kernels.bf16Rows = options.bf16Rows;
  kernels.wgmma = options.wgmma;
  buildHostPipeline(pm, cpu, "moe-test-gpu-emulation-pipeline", kernels);
}

void mlir::moe::registerMoEPipelines() {
  PassPipelineRegistration<CPUPipelineOptions>(
      "moe-cpu-pipeline",
      "Compile moe ops on tensors to the LLVM dialect for CPUs (decompose, "
      "lower to loops, bufferize, lower to LLVM; C interfaces)",
      buildCPUPipeline);
  PassPipelineRegistration<GPUPipelineOptions>(
      "moe-gpu-pipeline",
      "Compile moe ops on tensors to host LLVM code plus a gpu.binary of "
      "NVIDIA kernels (decompose, lower to kernels, bufferize, outline, "
      "NVVM, ptxas per chip, fatbin, gpu-to-llvm)",
      buildGPUPipeline);
  PassPipelineRegistration<GPUEmulationPipelineOptions>(
      "moe-test-gpu-emulation-pipeline",
      "Testing: the CPU pipeline with the moe ops lowered by the GPU kernels "
      "(convert-moe-to-gpu{emulate}) run as host loops, to test the kernels' "
      "bodies without a GPU",
      buildGPUEmulationPipeline);
}

void mlir::moe::registerPipelineDependencies(DialectRegistry &registry) {
  registry.insert<affine::AffineDialect, arith::ArithDialect,
                  bufferization::BufferizationDialect, cf::ControlFlowDialect,
                  func::FuncDialect, linalg::LinalgDialect, LLVM::LLVMDialect,
                  math::MathDialect, memref::MemRefDialect, MoEDialect,
                  scf::SCFDialect, tensor::TensorDialect, omp::OpenMPDialect,
                  ub::UBDialect, vector::VectorDialect>();
  arith::registerBufferizableOpInterfaceExternalModels(registry);
  arith::registerBufferDeallocationOpInterfaceExternalModels(registry);
  bufferization::func_ext::registerBufferizableOpInterfaceExternalModels(
      registry);
  cf::registerBufferizableOpInterfaceExternalModels(registry);
  cf::registerBufferDeallocationOpInterfaceExternalModels(registry);
  linalg::registerBufferizableOpInterfaceExternalModels(registry);
  scf::registerBufferizableOpInterfaceExternalModels(registry);
  scf::registerBufferDeallocationOpInterfaceExternalModels(registry);
  tensor::registerBufferizableOpInterfaceExternalModels(registry);
  moe::registerBufferizableOpInterfaceExternalModels(registry);
  moe::registerTilingInterfaceExternalModels(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerOpenMPDialectTranslation(registry);
  registerGPUPipelineDependencies(registry);
}
