//===- MoEGPUAttachTargets.cpp - NVVM targets per gpu.module ----*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Attaches one #nvvm.target per chip to every gpu.module, except that a
// module holding sm_90a-only instructions (the wgmma kernels) gets only the
// sm_90a target: ptxas rejects wgmma for any other chip, and the NVVM
// verifier rejects a wgmma op in a module with such a target. The decision
// comes from the ops in the module, not from names or attributes.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"

#define DEBUG_TYPE "moe-gpu-attach-targets"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEGPUATTACHTARGETSPASS
#include "moe/Conversion/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;

/// The chip the wgmma instructions need (PTX's sm_90a features are not
/// carried to later chips).
static constexpr llvm::StringLiteral kWgmmaChip = "sm_90a";

/// Whether `module` holds an instruction only sm_90a runs.
static bool needsSM90a(gpu::GPUModuleOp module) {
  return module
      .walk([](Operation *op) {
        return isa<NVVM::WgmmaMmaAsyncOp, NVVM::WgmmaFenceAlignedOp,
                   NVVM::WgmmaGroupSyncAlignedOp, NVVM::WgmmaWaitGroupSyncOp>(
                   op)
                   ? WalkResult::interrupt()
                   : WalkResult::advance();
      })
      .wasInterrupted();
}

namespace {
struct MoEGPUAttachTargetsPass
    : moe::impl::MoEGPUAttachTargetsPassBase<MoEGPUAttachTargetsPass> {
  using Base::Base;

  void runOnOperation() override {
    MLIRContext *context = &getContext();
    if (chips.empty()) {
      getOperation().emitError()
          << "moe-gpu-attach-targets: 'chips' names no chip";
      return signalPassFailure();
    }
    for (auto module : getOperation().getOps<gpu::GPUModuleOp>()) {
      bool sm90aOnly = needsSM90a(module);
      SmallVector<Attribute> targets;
      if (ArrayAttr existing = module.getTargetsAttr())
        targets.append(existing.begin(), existing.end());
      for (const std::string &chip : chips) {
        if (sm90aOnly && chip != kWgmmaChip)
          continue;
        targets.push_back(NVVM::NVVMTargetAttr::get(
            context, optLevel, "nvptx64-nvidia-cuda", chip, features));
      }
      if (sm90aOnly && targets.empty()) {
        module.emitError()
            << "uses wgmma, which only " << kWgmmaChip
            << " runs, but 'chips' has no " << kWgmmaChip
            << " (lower without convert-moe-to-gpu{wgmma}, or add "
            << kWgmmaChip << ")";
        return signalPassFailure();
      }
      module.setTargetsAttr(ArrayAttr::get(context, targets));
    }
  }
};
} // namespace
