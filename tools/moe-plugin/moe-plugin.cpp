//===- moe-plugin.cpp - The moe dialect as an mlir-opt plugin ---*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Lets a stock `mlir-opt` (linked to the same libMLIR.so) load the moe
// dialect and passes:
//
//   mlir-opt --load-dialect-plugin=libMoEPlugin.so \
//            --load-pass-plugin=libMoEPlugin.so \
//            --pass-pipeline="builtin.module(moe-decompose-layer)" in.mlir
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/MoEToLoops/BufferizableOpInterfaceImpl.h"
#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Dialect/MoE/Transforms/TilingInterfaceImpl.h"
#include "moe/Pipelines/Pipelines.h"

#include "mlir/Tools/Plugins/DialectPlugin.h"
#include "mlir/Tools/Plugins/PassPlugin.h"
#include "llvm/Config/llvm-config.h"
#include "llvm/Support/Compiler.h"

extern "C" LLVM_ATTRIBUTE_WEAK mlir::DialectPluginLibraryInfo
mlirGetDialectPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "MoE", LLVM_VERSION_STRING,
          [](mlir::DialectRegistry *registry) {
            registry->insert<mlir::moe::MoEDialect>();
            mlir::moe::registerBufferizableOpInterfaceExternalModels(*registry);
            mlir::moe::registerTilingInterfaceExternalModels(*registry);
          }};
}

extern "C" LLVM_ATTRIBUTE_WEAK mlir::PassPluginLibraryInfo
mlirGetPassPluginInfo() {
  return {MLIR_PLUGIN_API_VERSION, "MoEPasses", LLVM_VERSION_STRING,
          []() {
            mlir::moe::registerMoEPasses();
            mlir::moe::registerMoEConversionPasses();
            mlir::moe::registerMoEPipelines();
          }};
}
