//===- PipelineTarget.h - A pipeline up to LLVM IR as a target --*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TOOLS_FUZZERS_PIPELINETARGET_H
#define MOE_TOOLS_FUZZERS_PIPELINETARGET_H

#include "FuzzSupport.h"

namespace mlir {
namespace moe {
namespace fuzz {

/// Parses and verifies the input, runs `pipeline` (a textual module-level
/// pipeline) and translates the result to LLVM IR. Aborts when a pipeline
/// that succeeded leaves IR that does not translate.
int runPipelineTarget(const uint8_t *data, size_t size,
                      llvm::StringRef pipeline);

} // namespace fuzz
} // namespace moe
} // namespace mlir

#endif // MOE_TOOLS_FUZZERS_PIPELINETARGET_H
