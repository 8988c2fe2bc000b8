//===- CPUTarget.cpp - Record the CPU the code is compiled for --*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEAttrs.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/TargetParser/X86TargetParser.h"

#include <map>

#define DEBUG_TYPE "moe-cpu-target"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOECPUTARGETPASS
#include "moe/Dialect/MoE/Transforms/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;
using namespace mlir::moe;

namespace {
struct MoECPUTargetPass
    : moe::impl::MoECPUTargetPassBase<MoECPUTargetPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    // Feature name -> enabled, sorted so that the attribute is stable.
    std::map<std::string, bool> enabled;
    std::string name = cpu;
    if (name == "native") {
      name = llvm::sys::getHostCPUName().str();
      for (const auto &feature : llvm::sys::getHostCPUFeatures())
        enabled[feature.getKey().str()] = feature.getValue();
    } else {
      if (llvm::X86::parseArchX86(name, /*Only64Bit=*/true) ==
          llvm::X86::CK_None) {
        module.emitError() << "moe-cpu-target: unknown x86-64 CPU '" << name
                           << "' (an LLVM CPU name such as znver3, "
                              "sapphirerapids or x86-64-v3, or native)";
        return signalPassFailure();
      }
      SmallVector<StringRef> features;
      llvm::X86::getFeaturesForCPU(name, features, /*NeedPlus=*/false);
      for (StringRef feature : features)
        enabled[feature.str()] = true;
    }
    // The contract keeps subnormals in f32 -> bf16 conversions; AVX512-BF16's
    // vcvtneps2bf16 flushes them, and LLVM turns the exact integer rounding
    // that the pipeline emits into it when the feature is on. Off, unless
    // `features` asks for it.
    if (enabled.count("avx512bf16"))
      enabled["avx512bf16"] = false;
    SmallVector<StringRef> extra;
    StringRef(features).split(extra, ',', -1, /*KeepEmpty=*/false);
    for (StringRef feature : extra) {
      feature = feature.trim();
      if (feature.size() < 2 || (feature[0] != '+' && feature[0] != '-')) {
        module.emitError() << "moe-cpu-target: features must be '+name' or "
                              "'-name' separated by commas, got '"
                           << feature << "'";
        return signalPassFailure();
      }
      enabled[feature.drop_front().str()] = feature[0] == '+';
    }
    std::string list;
    for (const auto &[feature, on] : enabled) {
      if (!list.empty())
        list += ",";
      list += (on ? "+" : "-") + feature;
    }
    module->setAttr(CPUTargetAttr::getAttributeName(),
                    CPUTargetAttr::get(&getContext(), name, list));
  }
};
} // namespace
