//===- FuzzSupport.h - Shared pieces of the moe fuzz targets ----*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The IR fuzz targets (moe-verify-fuzzer, moe-cpu-pipeline-fuzzer,
// moe-gpu-pipeline-fuzzer) take MLIR text, parse and verify it in a fresh
// context with every diagnostic swallowed, then do their own step. libMLIR
// is not instrumented for coverage, so byte mutation of text gets little
// guidance inside the parser: the targets share a custom mutator that parses
// the input and mutates the IR itself (attribute values, shapes, element
// types, operandSegmentSizes, operand lists, function names), then prints it
// back in generic form. Input that does not parse falls back to libFuzzer's
// byte mutation.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TOOLS_FUZZERS_FUZZSUPPORT_H
#define MOE_TOOLS_FUZZERS_FUZZSUPPORT_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstddef>
#include <cstdint>
#include <memory>

namespace mlir {
namespace moe {
namespace fuzz {

/// A context with the dialects and interface models of the moe pipelines,
/// threading off, every diagnostic swallowed.
class FuzzContext {
public:
  FuzzContext();
  ~FuzzContext();
  MLIRContext &get() { return *context; }

  /// Parses `text`; null when it does not parse.
  OwningOpRef<ModuleOp> parse(llvm::StringRef text);

  /// The line of the first error since the last call (0 if none).
  unsigned takeFirstErrorLine();

private:
  std::unique_ptr<MLIRContext> context;
  struct Handler;
  std::unique_ptr<Handler> handler;
};

/// Registers the moe passes and pipelines and initialises the LLVM targets
/// the pipelines translate for (once per process).
void initializeOnce();

/// The custom mutator shared by the IR targets (LLVMFuzzerCustomMutator).
size_t mutateIR(uint8_t *data, size_t size, size_t maxSize, unsigned seed);

} // namespace fuzz
} // namespace moe
} // namespace mlir

#endif // MOE_TOOLS_FUZZERS_FUZZSUPPORT_H
