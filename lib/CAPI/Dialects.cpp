//===- Dialects.cpp - C API of the MoE dialect ------------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe-c/Dialects.h"

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Pipelines/Pipelines.h"

#include "mlir/CAPI/Registration.h"

MLIR_DEFINE_CAPI_DIALECT_REGISTRATION(MoE, moe, mlir::moe::MoEDialect)

void mlirMoERegisterPasses(void) {
  mlir::moe::registerMoEPasses();
  mlir::moe::registerMoEConversionPasses();
  mlir::moe::registerMoEPipelines();
}
