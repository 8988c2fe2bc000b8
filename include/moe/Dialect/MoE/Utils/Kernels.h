//===- Kernels.h - Kernel pieces shared by the moe lowerings ----*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// What the CPU lowering (moe-to-loops) and the GPU lowering (moe-to-gpu)
// share besides the routing kernel (RoutingKernels.h): the runtime size
// guards and error codes, the operands of moe.expert_ffn and moe.combine
// with the sizes the contract requires of them, the const experts' mixing
// weights and the activations. Each lowering keeps its own loop structure
// and calls these from it.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_UTILS_KERNELS_H
#define MOE_DIALECT_MOE_UTILS_KERNELS_H

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Utils/LoopEmitter.h"

#include <utility>

namespace mlir {
namespace moe {

/// A public, zero-initialised global `name` of `type` in `op`'s module
/// (created on first use), read with memref.get_global.
Value getOrCreateZeroGlobal(LoopEmitter &e, Operation *op, StringRef name,
                            MemRefType type);

/// Runtime sizes that the contract requires to agree (a `T` of one operand
/// and the `T` of another, ...). Pairs of static sizes are not listed: the
/// verifier checked them.
class SizeConstraints {
public:
  /// Requires dimension `dimA` of `a` to equal dimension `dimB` of `b` plus
  /// `offset` (both are memrefs).
  void equal(LoopEmitter &e, Value a, int64_t dimA, Value b, int64_t dimB,
             int64_t offset = 0);
  /// Requires dimension `dim` of memref `a` to equal `size`.
  void equal(LoopEmitter &e, Value a, int64_t dim, int64_t size);
  /// Requires dimension `dim` of memref `a` to equal ceil(n / width) (the
  /// panels of packed weights holding n columns).
  void panels(LoopEmitter &e, Value a, int64_t dim, Value n, int64_t width);
  /// Requires `factor` times dimension `dim` of memref `a` to equal `n` (the
  /// blocks of quantized weights along a dimension of n).
  void blocks(LoopEmitter &e, Value a, int64_t dim, Value n, int64_t factor);
  /// Requires every static dimension of the result type `type` to equal the
  /// runtime size the kernel computes for it (`sizes`, one per dimension; a
  /// null entry is not constrained, e.g. the padded `R_max` of dispatch).
  /// The verifier compares static sizes with static ones; a static result
  /// size derived from a dynamic operand size can only be checked here.
  void result(LoopEmitter &e, RankedTensorType type, ArrayRef<Value> sizes);
  ArrayRef<Value> conditions() const { return checks; }

private:
  SmallVector<Value> checks;
};

/// Turns an operand of the op being lowered into the memref its kernels
/// read: a host buffer on the CPU, a device copy on the GPU.
using FetchOperand = function_ref<Value(Value)>;

/// The operands of moe.expert_ffn (buffers; optional ones null) and their
/// runtime sizes.
struct ExpertFFNOperands {
  Value rows, offsets, wUp, wGate, wDown, bUp, bDown;
  bool packed = false;
  /// The block quantization of the weights (quantized tiles), if any.
  std::optional<WeightQuant> quant;
  /// Runtime rows, H, E and F.
  Value numRows, hidden, numExperts, ffn;
};
/// Fetches the rows and offsets of `op` with `fetch`, its weights and biases
/// with `fetchWeight`, and reads their sizes.
ExpertFFNOperands fetchExpertFFNOperands(LoopEmitter &e, ExpertFFNOp op,
                                         ExpertFFNOp::Adaptor adaptor,
                                         FetchOperand fetch,
                                         FetchOperand fetchWeight);
/// w_up [E,H,F], w_gate [E,H,F], w_down [E,F,H], b_up [E,F], b_down [E,H];
/// packed: w_up, w_gate [E,F/32,H,32], w_down [E,H/32,F,32]; quantized:
/// w_up, w_gate [E,F/32,H/32,B], w_down [E,H/32,F/32,B] (H = 32 (H/32),
/// F = 32 (F/32) exactly); offsets E+1.
SizeConstraints expertFFNSizes(LoopEmitter &e, const ExpertFFNOperands &ffn);

/// The operands of moe.combine (buffers; const ones null without const
/// experts) and their runtime sizes.
struct CombineOperands {
  Value y, slotRows, ids, weights, x, constProj, constValues;
  int64_t numConst = 0;
  /// Runtime T, H, K and R.
  Value numTokens, hidden, k, numRows;
};
CombineOperands fetchCombineOperands(LoopEmitter &e, CombineOp op,
                                     CombineOp::Adaptor adaptor,
                                     FetchOperand fetch);
/// slot_rows, ids, weights [T,K]; y [R,H]; Wc [N,H,2]; v [N,H].
SizeConstraints combineSizes(LoopEmitter &e, const CombineOperands &c);
/// The operands of moe.route_dispatch (buffers; optional ones null).
struct RouteDispatchOperands {
  Value x, wRouter, bRouter, kPerToken, selectionBias;
};
/// Fetches x, k_per_token and selection_bias with `fetch`, the router
/// weight and bias with `fetchWeight`.
RouteDispatchOperands
fetchRouteDispatchOperands(RouteDispatchOp::Adaptor adaptor,
                           FetchOperand fetch, FetchOperand fetchWeight);
/// w_router [H,S], b_router [S], k_per_token [T], selection_bias [S];
/// results ids, weights, slot_rows [T,K], rows [R,H] (R data-dependent or
/// the padded R_max).
SizeConstraints routeDispatchSizes(LoopEmitter &e, RouteDispatchOp op,
                                   const RouteDispatchOperands &o);

/// The mixing weights [a1, a2] = softmax(x[t] @ Wc[i]) of const expert `i`
/// for token `t`, in f32.
std::pair<Value, Value> emitConstMix(LoopEmitter &e, const CombineOperands &c,
                                     Value t, Value i);

/// What slot (t, j) of moe.combine contributes, by the contract's rules: a
/// compute expert's row `y[row]` only when `row` is in [0, R) (an invalid
/// row contributes nothing), `x[t]` for a copy expert, the constant mix
/// for a const expert; nothing for null and empty slots and ids of no
/// expert. Both lowerings branch on these predicates and differ only in
/// their loop structure.
struct CombineSlot {
  /// The slot's id (i32) and row of `y` (i32, unchecked).
  Value id, row;
  /// i1 predicates; isCopy / isConst are null when the expert space has no
  /// copy / const experts.
  Value isCompute, isCopy, isConst;
  /// The const expert's index (id - first const id; 0 for other slots), or
  /// null without const experts.
  Value constIndex;
};
CombineSlot emitCombineSlot(LoopEmitter &e, const CombineOperands &c,
                            ExpertSpaceAttr experts, Value t, Value j);

/// Columns of one panel of packed expert weights (the `packed` layout).
inline constexpr int64_t kPanelColumns = 32;

/// The codes stored in `moe_runtime_error` (0: no error).
int32_t getRuntimeErrorCode(Operation *op);
/// Stores `op`'s code in the module's `moe_runtime_error`.
void emitRuntimeError(LoopEmitter &e, Operation *op);

/// The activation of moe.expert_ffn, in f32 (NaN propagates).
Value emitActivation(LoopEmitter &e, Activation activation, Value x);

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_UTILS_KERNELS_H
