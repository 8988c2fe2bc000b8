//===- MoETraits.h - MoE dialect op traits ----------------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOETRAITS_H
#define MOE_DIALECT_MOE_IR_MOETRAITS_H

#include "mlir/IR/OpDefinition.h"

namespace mlir {
namespace moe {
namespace detail {
/// Checks the segment sizes of an op with `AttrSizedOperandSegments`: ODS
/// checks that they sum to the operand count and that optional groups hold
/// at most one value, but not that a required group holds exactly one.
/// `groups` names the ODS operand groups in order, separated by spaces,
/// optional ones with a trailing `?`: `"logits k_per_token? selection_bias?"`.
LogicalResult verifyOperandSegments(Operation *op,
                                    llvm::ArrayRef<int32_t> sizes,
                                    llvm::StringRef groups);
} // namespace detail

namespace OpTrait {
/// Every required operand group of an `AttrSizedOperandSegments` op holds
/// exactly one value. Verified before the op's invariants (operand types are
/// checked group by group: an empty required group would shift the values
/// into the wrong groups' checks). The op declares its groups with
/// `getOperandGroups()` (see `MoE_OperandGroups` in MoEOps.td).
template <typename ConcreteType>
class RequiredOperandSegments
    : public ::mlir::OpTrait::TraitBase<ConcreteType, RequiredOperandSegments> {
public:
  static LogicalResult verifyTrait(Operation *op) {
    return detail::verifyOperandSegments(
        op, llvm::cast<ConcreteType>(op).getProperties().operandSegmentSizes,
        ConcreteType::getOperandGroups());
  }
};
} // namespace OpTrait
} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_IR_MOETRAITS_H
