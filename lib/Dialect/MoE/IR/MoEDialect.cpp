//===- MoEDialect.cpp - MoE dialect -----------------------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

using namespace mlir;
using namespace mlir::moe;

#include "moe/Dialect/MoE/IR/MoEDialect.cpp.inc"

#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

#define GET_TYPEDEF_CLASSES
#include "moe/Dialect/MoE/IR/MoETypes.cpp.inc"

void MoEDialect::registerTypes() {
  addTypes<
#define GET_TYPEDEF_LIST
#include "moe/Dialect/MoE/IR/MoETypes.cpp.inc"
      >();
}

void MoEDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "moe/Dialect/MoE/IR/MoEOps.cpp.inc"
      >();
  registerAttributes();
  registerTypes();
}

LogicalResult MoEDialect::verifyOperationAttribute(Operation *op,
                                                   NamedAttribute attribute) {
  // Only the attributes that users write are checked here; the markers of
  // the lowerings (`moe.ep_experts`, `moe.stream`, ...) are theirs.
  if (attribute.getName() == MatmulScheduleAttr::getAttributeName() &&
      !llvm::isa<MatmulScheduleAttr>(attribute.getValue()))
    return op->emitError() << "'" << MatmulScheduleAttr::getAttributeName()
                           << "' expects a #moe.matmul_schedule attribute, got "
                           << attribute.getValue();
  if (attribute.getName() == CPUTargetAttr::getAttributeName() &&
      !llvm::isa<CPUTargetAttr>(attribute.getValue()))
    return op->emitError() << "'" << CPUTargetAttr::getAttributeName()
                           << "' expects a #moe.cpu_target attribute, got "
                           << attribute.getValue();
  return success();
}
