//===- MoEOps.h - MoE dialect operations ------------------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEOPS_H
#define MOE_DIALECT_MOE_IR_MOEOPS_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "moe/Dialect/MoE/IR/MoEAttrs.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/IR/MoETraits.h"

namespace mlir {
namespace moe {
/// The largest `tile` of moe.route_dispatch (and of moe-fuse-gating-dispatch):
/// a tile's `[tile, S]` logits are meant to stay in cache, and the bound keeps
/// every size computation of the tiled lowering far from overflow.
inline constexpr int64_t kMaxRouteDispatchTile = int64_t(1) << 16;

namespace detail {
/// Verifies the routing rules of the semantics contract (section 3) for any
/// op that implements RoutingOpInterface.
LogicalResult verifyRoutingOp(Operation *op);
} // namespace detail
} // namespace moe
} // namespace mlir

#include "moe/Dialect/MoE/IR/MoEOpInterfaces.h.inc"

#define GET_OP_CLASSES
#include "moe/Dialect/MoE/IR/MoEOps.h.inc"

#endif // MOE_DIALECT_MOE_IR_MOEOPS_H
