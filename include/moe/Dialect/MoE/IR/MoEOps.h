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

#define GET_TYPEDEF_CLASSES
#include "moe/Dialect/MoE/IR/MoETypes.h.inc"

namespace mlir {
namespace moe {
/// The largest `tile` of moe.route_dispatch (and of moe-fuse-gating-dispatch):
/// a tile's `[tile, S]` logits are meant to stay in cache, and the bound keeps
/// every size computation of the tiled lowering far from overflow.
inline constexpr int64_t kMaxRouteDispatchTile = int64_t(1) << 16;

/// Weights (columns, and depths) per tile of quantized expert weights.
inline constexpr int64_t kQuantTileSize = 32;
/// Bytes of the f16 scales at the start of a tile (one per column).
inline constexpr int64_t kQuantScaleBytes = 2 * kQuantTileSize;
/// Bytes of one depth row of quants in a tile.
inline int64_t getQuantRowBytes(WeightQuant quant) {
  switch (quant) {
  case WeightQuant::q8_0:
    return kQuantTileSize;
  case WeightQuant::q4_0:
    return kQuantTileSize / 2;
  }
  llvm_unreachable("every WeightQuant has a case");
}
/// Bytes of one tile: the scales, then 32 rows of quants (1088 for q8_0,
/// 576 for q4_0).
inline int64_t getQuantTileBytes(WeightQuant quant) {
  return kQuantScaleBytes + kQuantTileSize * getQuantRowBytes(quant);
}

/// The side-effect resource of the expert-parallel exchange: the ops that
/// communicate with other ranks write it, so they are neither removed,
/// merged nor reordered with respect to each other.
struct EPExchangeResource
    : public SideEffects::Resource::Base<EPExchangeResource> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(EPExchangeResource)
  StringRef getName() final { return "moe.ep_exchange"; }
};

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
