//===- MoEDialect.h - MoE dialect -------------------------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEDIALECT_H
#define MOE_DIALECT_MOE_IR_MOEDIALECT_H

#include "mlir/IR/Dialect.h"

#include "moe/Dialect/MoE/IR/MoEDialect.h.inc"

namespace mlir {
namespace moe {
/// The module global (`memref<i32>`) into which the lowerings store an op's
/// run-time error code; `moe-status-argument` turns it into a per-call
/// status argument.
inline constexpr llvm::StringLiteral kRuntimeErrorGlobal = "moe_runtime_error";
/// The argument attribute that marks a function's status argument.
inline constexpr llvm::StringLiteral kStatusArgAttr = "moe.status";
} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_IR_MOEDIALECT_H
