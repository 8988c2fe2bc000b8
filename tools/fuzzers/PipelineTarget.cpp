//===- PipelineTarget.cpp - A pipeline up to LLVM IR as a target -*- C++ -*-=//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "PipelineTarget.h"

#include "mlir/IR/Verifier.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Export.h"

#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/Module.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

using namespace mlir;

int mlir::moe::fuzz::runPipelineTarget(const uint8_t *data, size_t size,
                                       llvm::StringRef pipeline) {
  initializeOnce();
  FuzzContext context;
  OwningOpRef<ModuleOp> module = context.parse(
      llvm::StringRef(reinterpret_cast<const char *>(data), size));
  if (!module || failed(verify(*module)))
    return 0;
  PassManager pm(&context.get());
  std::string errors;
  llvm::raw_string_ostream os(errors);
  if (failed(parsePassPipeline(pipeline, pm, os))) {
    llvm::errs() << "invalid pipeline '" << pipeline << "': " << errors << "\n";
    std::abort();
  }
  if (failed(pm.run(*module)))
    return 0; // reported with a diagnostic: the expected outcome
  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(*module, llvmContext);
  if (!llvmModule) {
    llvm::errs() << pipeline
                 << " succeeded but its output does not translate to LLVM "
                    "IR\n";
    std::abort();
  }
  return 0;
}
