//===- moe-cpu-pipeline-fuzzer.cpp - Fuzz the CPU pipeline ------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// libFuzzer target: MLIR text -> parse -> verify -> moe-cpu-pipeline ->
// LLVM IR. A pass may fail with a diagnostic; it must not crash, abort or
// leave IR that does not translate.
//
//===----------------------------------------------------------------------===//

#include "PipelineTarget.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return mlir::moe::fuzz::runPipelineTarget(data, size, "moe-cpu-pipeline");
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size,
                                          size_t maxSize, unsigned seed) {
  return mlir::moe::fuzz::mutateIR(data, size, maxSize, seed);
}
