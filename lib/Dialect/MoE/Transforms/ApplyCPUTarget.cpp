//===- ApplyCPUTarget.cpp - The recorded CPU onto LLVM functions -*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEAttrs.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/IR/BuiltinOps.h"

#define DEBUG_TYPE "moe-apply-cpu-target"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEAPPLYCPUTARGETPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {
struct MoEApplyCPUTargetPass
    : moe::impl::MoEApplyCPUTargetPassBase<MoEApplyCPUTargetPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto target = module->getAttrOfType<CPUTargetAttr>(
        CPUTargetAttr::getAttributeName());
    if (!target)
      return;
    MLIRContext *context = &getContext();
    auto cpu = StringAttr::get(context, target.getCpu());
    auto features = LLVM::TargetFeaturesAttr::get(context, target.getFeatures());
    module.walk([&](LLVM::LLVMFuncOp func) {
      if (func.isExternal())
        return;
      if (!func.getTargetCpuAttr())
        func.setTargetCpuAttr(cpu);
      if (!func.getTargetFeaturesAttr())
        func.setTargetFeaturesAttr(features);
    });
    module->removeAttr(CPUTargetAttr::getAttributeName());
  }
};
} // namespace
