//===- moe-gpu-pipeline-fuzzer.cpp - Fuzz the GPU pipeline ------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// libFuzzer target: MLIR text -> parse -> verify ->
// moe-gpu-pipeline{fatbin=false chips=sm_90a} (kernels lowered to NVVM and
// PTX, no ptxas; one chip: the lowering under test is the same for every
// chip) -> host LLVM IR. Without the CUDA toolkit (libdevice) the pipeline
// fails with a diagnostic, which is not a finding.
//
//===----------------------------------------------------------------------===//

#include "PipelineTarget.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  return mlir::moe::fuzz::runPipelineTarget(
      data, size, "moe-gpu-pipeline{fatbin=false chips=sm_90a}");
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size,
                                          size_t maxSize, unsigned seed) {
  return mlir::moe::fuzz::mutateIR(data, size, maxSize, seed);
}
