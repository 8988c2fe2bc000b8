//===- GPUPipeline.cpp - moe ops on tensors to NVIDIA GPU code --*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Pipelines/Pipelines.h"

#include "Common.h"

#include "moe/Conversion/MoEToGPU/MoEToGPU.h"
#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Conversion/AffineToStandard/AffineToStandard.h"
#include "mlir/Conversion/ArithToLLVM/ArithToLLVM.h"
#include "mlir/Conversion/BufferizationToMemRef/BufferizationToMemRef.h"
#include "mlir/Conversion/ControlFlowToLLVM/ControlFlowToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVM.h"
#include "mlir/Conversion/FuncToLLVM/ConvertFuncToLLVMPass.h"
#include "mlir/Conversion/GPUCommon/GPUCommonPass.h"
#include "mlir/Conversion/GPUToNVVM/GPUToNVVM.h"
#include "mlir/Conversion/GPUToNVVM/GPUToNVVMPass.h"
#include "mlir/Conversion/IndexToLLVM/IndexToLLVM.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/MathToLibm/MathToLibm.h"
#include "mlir/Conversion/MemRefToLLVM/MemRefToLLVM.h"
#include "mlir/Conversion/NVVMToLLVM/NVVMToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Conversion/UBToLLVM/UBToLLVM.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/GPU/GPUToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/NVVM/NVVMToLLVMIRTranslation.h"
#include "mlir/Transforms/Passes.h"

#include <cstdlib>

using namespace mlir;

void mlir::moe::buildGPUPipeline(OpPassManager &pm,
                                 const GPUPipelineOptions &options) {
  MoECheckPipelineInputPassOptions input;
  input.pipeline = "moe-gpu-pipeline";
  pm.addPass(createMoECheckPipelineInputPass(input));
  // L1 -> L2, then kernels over device buffers, still on tensors.
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createMoEDecomposeLayerPass());
  pm.addPass(createCanonicalizerPass());
  if (options.fuse)
    pm.addPass(createMoEFuseGatingDispatchPass());
  ConvertMoEToGPUPassOptions kernels;
  kernels.blockSize = options.blockSize;
  kernels.deviceArguments = options.deviceArguments || options.capturable;
  kernels.bf16Rows = options.bf16Rows;
  // The sm_90a kernels (wgmma) when the chips include sm_90a: in gpu.modules
  // of their own (moe-gpu-attach-targets), chosen at run time.
  kernels.wgmma = llvm::is_contained(options.chips, "sm_90a");
  pm.addPass(createConvertMoEToGPUPass(kernels));
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createCSEPass());
  // The rest of the model runs on the host, as in the CPU pipeline. Device
  // buffers are freed by convert-moe-to-gpu; the upstream buffer
  // deallocation frees the host temporaries and leaves the device buffers
  // alone (registerDeviceBufferDeallocationModels).
  detail::addTensorsToLoops(pm, /*deallocate=*/true);

  // Kernels: outline, lower to NVVM for every chip, serialise.
  pm.addPass(createGpuKernelOutliningPass());
  // gpu-to-llvm lowers device allocations and copies in their async form:
  // chain the host's gpu ops on one stream (waits where the host needs a
  // result).
  pm.addNestedPass<func::FuncOp>(createGpuAsyncRegionPass());
  // Or on the caller's stream, into the caller's workspace.
  if (options.capturable)
    pm.addPass(createMoEGPUCapturablePass());
  MoEGPUAttachTargetsPassOptions targets;
  targets.chips.assign(options.chips.begin(), options.chips.end());
  targets.features = options.ptxFeatures;
  targets.optLevel = 3;
  pm.addPass(createMoEGPUAttachTargetsPass(targets));
  OpPassManager &device = pm.nest<gpu::GPUModuleOp>();
  device.addPass(createSCFToControlFlowPass());
  device.addPass(createLowerAffinePass());
  device.addPass(createConvertGpuOpsToNVVMOps());
  // The NVVM ops that have no LLVM intrinsic (wgmma.mma_async) become
  // inline PTX.
  device.addPass(createConvertNVVMToLLVMPass());
  device.addPass(createCanonicalizerPass());
  device.addPass(createReconcileUnrealizedCastsPass());
  // The toolkit also gives libdevice (expf, erff, tanhf, ... in kernels).
  std::string cudaPath = options.cudaPath;
  if (cudaPath.empty()) {
    const char *home = std::getenv("CUDA_HOME");
    cudaPath = home && *home ? home : "/usr/local/cuda";
  }
  GpuModuleToBinaryPassOptions binary;
  binary.toolkitPath = cudaPath;
  binary.compilationTarget = "isa";
  pm.addPass(createGpuModuleToBinaryPass(binary));
  if (options.fatbin) {
    MoEGPUFatbinPassOptions fatbin;
    fatbin.cudaPath = cudaPath;
    pm.addPass(createMoEGPUFatbinPass(fatbin));
  }

  // Host code; gpu-to-llvm after the functions.
  detail::addHostToLLVM(
      pm, /*vectors=*/false, options.cInterface, options.statusArgument,
      [](OpPassManager &pm) { pm.addPass(createGpuToLLVMConversionPass()); });
}

void mlir::moe::registerGPUPipelineDependencies(DialectRegistry &registry) {
  registry.insert<gpu::GPUDialect, NVVM::NVVMDialect>();
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
  // The host temporaries are freed by the upstream buffer deallocation,
  // which must leave the device buffers to convert-moe-to-gpu.
  registerDeviceBufferDeallocationModels(registry);
  // convert-gpu-to-nvvm lowers what the kernels hold through these.
  arith::registerConvertArithToLLVMInterface(registry);
  cf::registerConvertControlFlowToLLVMInterface(registry);
  index::registerConvertIndexToLLVMInterface(registry);
  registerConvertFuncToLLVMInterface(registry);
  NVVM::registerConvertGpuToNVVMInterface(registry);
  registerConvertMathToLLVMInterface(registry);
  registerConvertMemRefToLLVMInterface(registry);
  registerConvertNVVMToLLVMInterface(registry);
  ub::registerConvertUBToLLVMInterface(registry);
  registerGPUDialectTranslation(registry);
  gpu::registerOffloadingLLVMTranslationInterfaceExternalModels(registry);
  registerNVVMDialectTranslation(registry);
}
