//===- moe-verify-fuzzer.cpp - Fuzz parsing and verification ----*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// libFuzzer target: MLIR text -> parse -> verify (moe verifiers, attribute
// parsers and printers, custom assembly formats). A round trip of what
// verifies (print, parse, verify again) checks the printers too.
//
//===----------------------------------------------------------------------===//

#include "FuzzSupport.h"

#include "mlir/IR/SymbolTable.h"
#include "mlir/IR/Verifier.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <vector>

using namespace mlir;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // MOE_FUZZ_MUTATE_SEED=S: run the custom mutator on the input with seed S
  // instead (to reproduce a failure inside the mutator).
  if (const char *seed = std::getenv("MOE_FUZZ_MUTATE_SEED")) {
    std::vector<uint8_t> copy(data, data + size);
    copy.resize(size + (1 << 16));
    moe::fuzz::mutateIR(copy.data(), size, copy.size(),
                        static_cast<unsigned>(std::strtoul(seed, nullptr, 10)));
    return 0;
  }
  moe::fuzz::FuzzContext context;
  OwningOpRef<ModuleOp> module = context.parse(
      llvm::StringRef(reinterpret_cast<const char *>(data), size));
  if (!module || failed(verify(*module)))
    return 0;
  // Upstream MLIR prints an empty symbol name as `@""`, which its parser
  // rejects: such modules are not round-tripped (nothing of moe's).
  bool emptySymbol = false;
  module->walk([&](SymbolOpInterface symbol) {
    emptySymbol |= symbol.getName().empty();
  });
  if (emptySymbol)
    return 0;
  // What verifies prints in custom form and parses back to a valid module.
  std::string text;
  llvm::raw_string_ostream os(text);
  module->print(os);
  context.takeFirstErrorLine();
  OwningOpRef<ModuleOp> again = context.parse(text);
  if (!again || failed(verify(*again))) {
    // Only moe's printers are under test: upstream ops have round-trip
    // limits of their own (arith.addf on tensor<?x8xf32> and tensor<1x8xf32>
    // verifies but prints one type).
    llvm::SmallVector<llvm::StringRef> lines;
    llvm::StringRef(text).split(lines, '\n');
    unsigned line = context.takeFirstErrorLine();
    if (line == 0 || line > lines.size() || !lines[line - 1].contains(" moe."))
      return 0;
    llvm::errs() << "moe-verify-fuzzer: a verified module does not survive "
                    "a round trip through its custom form:\n"
                 << text << "\n";
    std::abort();
  }
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size,
                                          size_t maxSize, unsigned seed) {
  return moe::fuzz::mutateIR(data, size, maxSize, seed);
}
