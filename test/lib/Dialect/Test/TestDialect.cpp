//===- TestDialect.cpp - moe_test: IR for testing moe passes ----*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "TestDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::moe::test;

#include "TestDialect.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "TestAttrs.cpp.inc"

void MoETestDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "TestAttrs.cpp.inc"
      >();
}

LogicalResult UnloweredStrategyAttr::verifyRouting(
    function_ref<InFlightDiagnostic()> emitError,
    const RoutingConfig &config) const {
  return success();
}

void mlir::moe::test::registerTestDialect(DialectRegistry &registry) {
  registry.insert<MoETestDialect>();
}
