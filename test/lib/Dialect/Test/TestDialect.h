//===- TestDialect.h - moe_test: IR for testing moe passes ------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TEST_LIB_DIALECT_TEST_TESTDIALECT_H
#define MOE_TEST_LIB_DIALECT_TEST_TESTDIALECT_H

#include "moe/Dialect/MoE/IR/MoEAttrs.h"

#include "mlir/IR/Dialect.h"
#include "mlir/IR/DialectRegistry.h"

#include "TestDialect.h.inc"

#define GET_ATTRDEF_CLASSES
#include "TestAttrs.h.inc"

namespace mlir {
namespace moe {
namespace test {
/// Registers the moe_test dialect (moe-opt only).
void registerTestDialect(DialectRegistry &registry);
} // namespace test
} // namespace moe
} // namespace mlir

#endif // MOE_TEST_LIB_DIALECT_TEST_TESTDIALECT_H
