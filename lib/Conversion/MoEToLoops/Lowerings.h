//===- Lowerings.h - Per-op moe-to-loops lowerings --------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// One file per op lowering; this header lists their populate functions and
// the small kernels they share.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOLOOPS_LOWERINGS_H
#define MOE_LIB_CONVERSION_MOETOLOOPS_LOWERINGS_H

#include "LoopEmitter.h"

#include "moe/Conversion/MoEToLoops/MoEToLoops.h"
#include "moe/Dialect/MoE/IR/MoEOps.h"

#include <functional>

namespace mlir {
namespace moe {
namespace detail {

/// The loop nest of one moe op over buffers (one overload per op, each in
/// its own file). `operands` holds the op's operands as ranked tensors
/// (convert-moe-to-loops: their buffers are taken with
/// bufferization.to_buffer) or as memrefs (one-shot-bufferize gives them).
/// Returns the op's result buffers, new allocations with the identity
/// layout (through LoopEmitter::alloc), or failure when the op cannot be
/// lowered (after a diagnostic where the reason is the input's).
FailureOr<SmallVector<Value>> emitLoops(LoopEmitter &e, GateOp op,
                                        GateOp::Adaptor operands,
                                        const MoEToLoopsOptions &options);
FailureOr<SmallVector<Value>> emitLoops(LoopEmitter &e, RouteOp op,
                                        RouteOp::Adaptor operands,
                                        const MoEToLoopsOptions &options);
FailureOr<SmallVector<Value>> emitLoops(LoopEmitter &e, DispatchOp op,
                                        DispatchOp::Adaptor operands,
                                        const MoEToLoopsOptions &options);
FailureOr<SmallVector<Value>> emitLoops(LoopEmitter &e, DispatchPaddedOp op,
                                        DispatchPaddedOp::Adaptor operands,
                                        const MoEToLoopsOptions &options);
FailureOr<SmallVector<Value>> emitLoops(LoopEmitter &e, RouteDispatchOp op,
                                        RouteDispatchOp::Adaptor operands,
                                        const MoEToLoopsOptions &options);
FailureOr<SmallVector<Value>> emitLoops(LoopEmitter &e, GroupedMatmulOp op,
                                        GroupedMatmulOp::Adaptor operands,
                                        const MoEToLoopsOptions &options);
FailureOr<SmallVector<Value>> emitLoops(LoopEmitter &e, ExpertFFNOp op,
                                        ExpertFFNOp::Adaptor operands,
                                        const MoEToLoopsOptions &options);
FailureOr<SmallVector<Value>> emitLoops(LoopEmitter &e, CombineOp op,
                                        CombineOp::Adaptor operands,
                                        const MoEToLoopsOptions &options);
FailureOr<SmallVector<Value>> emitLoops(LoopEmitter &e, AuxLossOp op,
                                        AuxLossOp::Adaptor operands,
                                        const MoEToLoopsOptions &options);

/// `c[rowOfC(r), 0:n] = a[rowOfA(r), 0:depth] @ b[bPrefix..., 0:depth, 0:n]
/// (+ bias[biasPrefix..., 0:n])` for r in [rowBegin, rowEnd), accumulated in
/// f32 with fused multiply-adds in k order from 0 (MatmulKernel.cpp): the
/// value of every element is independent of the blocking. Rows of `a` and
/// `c` default to r. `b`, `bias` and `c` need a unit innermost stride
/// (LoopEmitter::unitStrideBuffer and alloc give one). `afterBlock(rows,
/// columns, depth)`, when set, runs after each register block with its
/// size (instrumentation: rows * columns * depth multiply-adds were
/// executed).
/// With `bPacked`, `b` is `[bPrefix..., ceil(n/32), depth, 32]`: 32-column
/// panels stored contiguously (`b[p, k, j]` is column `32 p + j`), padding
/// columns in bounds.
struct RowMatmul {
  Value a, b, c;
  /// Optional scratch for the packed rows of A, f32 [32, 256, 8] (allocated
  /// by the kernel when null; pass one to hoist it out of loops).
  Value aPack;
  bool bPacked = false;
  SmallVector<Value> bPrefix;
  Value bias;
  SmallVector<Value> biasPrefix;
  Value rowBegin, rowEnd, depth, n;
  std::function<Value(Value)> rowOfA, rowOfC;
  std::function<void(Value, Value, Value)> afterBlock;
};
void emitRowMatmul(LoopEmitter &e, const RowMatmul &matmul);
/// A scratch buffer for RowMatmul::aPack.
Value allocMatmulPack(LoopEmitter &e);

/// The offsets of a grouped op, sanitised as the contract says: `o[0] = 0`,
/// `o[e+1] = clamp(o[e+1], o[e], numRows)`. Returns an `index` buffer of
/// `numGroups + 1` entries.
Value emitSanitizedOffsets(LoopEmitter &e, Value offsets, Value numGroups,
                           Value numRows);

/// The stable counting sort of moe.dispatch, in pieces that the fused
/// gating-dispatch lowering shares: count each token's compute slots (as it
/// is routed, or in a separate pass), then scan and scatter.
struct DispatchKernel {
  DispatchKernel(LoopEmitter &e, Value ids, Value numTokens, Value k,
                 int64_t numExperts)
      : e(e), ids(ids), numTokens(numTokens), k(k), numExperts(numExperts) {}

  /// Allocates and zeroes the per-expert counts.
  void emitInit();
  /// Counts the compute slots of token `t`.
  void emitCountToken(Value t);
  /// Exclusive scan into offsets, then the scatter of x's rows. Returns the
  /// rows, offsets and slot_rows buffers.
  SmallVector<Value> emitScanAndScatter(Value x, RankedTensorType rowsType,
                                        RankedTensorType offsetsType,
                                        RankedTensorType slotRowsType);
  /// The exclusive scan into the `offsets` buffer (E + 1 entries), clamped
  /// to `rowLimit` when it is set (the padded form). Returns the number of
  /// compute slots.
  Value emitScan(Value offsets, Value rowLimit);
  /// The scatter of x's rows into `rows` and of their rows into `slotRows`
  /// (after emitScan); with `rowLimit`, slots whose row does not fit are
  /// not dispatched.
  void emitScatter(Value x, Value rows, Value slotRows, Value rowLimit);

  /// Calls `compute(j, expert)` for token t's compute slots and `other(j)`
  /// for the rest (when given).
  void forEachSlot(Value t, function_ref<void(Value, Value)> compute,
                   function_ref<void(Value)> other);

  LoopEmitter &e;
  Value ids, numTokens, k;
  int64_t numExperts;
  Value cursor;
};

/// Sets rows `[begin, end)` of the 2-D buffer `buffer` to zero.
void emitZeroRows(LoopEmitter &e, Value buffer, Value begin, Value end);

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
/// packed: w_up, w_gate [E,F/32,H,32], w_down [E,H/32,F,32]; offsets E+1.
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
/// The mixing weights [a1, a2] = softmax(x[t] @ Wc[i]) of const expert `i`
/// for token `t`, in f32.
std::pair<Value, Value> emitConstMix(LoopEmitter &e, const CombineOperands &c,
                                     Value t, Value i);

/// Columns of one panel of packed expert weights (the `packed` layout).
inline constexpr int64_t kPanelColumns = 32;

/// Runs `kernel` (which returns the op's result buffers, of `resultTypes`)
/// when every size constraint holds at runtime. Otherwise, instead of
/// reading or writing out of bounds, it stores the op's code in the
/// module's public i32 global `moe_runtime_error` (which the Python runtime
/// checks after every call and turns into a ValueError) and returns results
/// whose dynamic dimensions are 0 and whose elements are 0.
SmallVector<Value> emitGuarded(LoopEmitter &e, Operation *op,
                               const SizeConstraints &constraints,
                               TypeRange resultTypes,
                               function_ref<SmallVector<Value>()> kernel);

/// Where a destination-style op writes the result of destination `init`.
/// For a buffer `init` (one-shot-bufferize), the kernel writes into it in
/// place: `buffer` is `init` with a fully dynamic layout, or with a unit
/// innermost stride when the kernel stores vectors (`unitStride`), then
/// checked at run time: the rare destination with another innermost stride
/// gets a scratch buffer, copied back by finishDestination. For a tensor
/// `init` (convert-moe-to-loops), `buffer` is a new buffer of its shape,
/// holding a copy of it when the op reads its destination (`readsInit`).
struct Destination {
  Value init;
  Value buffer;
  /// The layout-generalised `init` when `buffer` may be a scratch copy of it
  /// (a runtime flag `scratch` says whether it is).
  Value original, scratch;
};
Destination emitDestination(LoopEmitter &e, Value init, bool readsInit,
                            bool unitStride);
/// Copies a scratch destination back into the op's buffer, and returns what
/// the op's emitLoops returns for it: `init` when it is a buffer (written in
/// place), else the new buffer.
Value finishDestination(LoopEmitter &e, const Destination &destination);

/// emitGuarded for a destination-style op: runs `kernel` (which writes into
/// `destinations`) when every size constraint holds; otherwise records the
/// op's error code and sets every element of `destinations` to 0.
void emitGuardedInto(LoopEmitter &e, Operation *op,
                     const SizeConstraints &constraints,
                     ValueRange destinations, function_ref<void()> kernel);

/// The buffer type of a ranked tensor type (identity layout).
inline MemRefType getBufferType(Type tensorType) {
  auto type = llvm::cast<RankedTensorType>(tensorType);
  return MemRefType::get(type.getShape(), type.getElementType());
}

/// The codes stored in `moe_runtime_error` (0: no error).
int32_t getRuntimeErrorCode(Operation *op);
/// Stores `op`'s code in the module's `moe_runtime_error`.
void emitRuntimeError(LoopEmitter &e, Operation *op);

/// The activation of moe.expert_ffn, in f32 (NaN propagates).
Value emitActivation(LoopEmitter &e, Activation activation, Value x);

} // namespace detail
} // namespace moe
} // namespace mlir

#endif // MOE_LIB_CONVERSION_MOETOLOOPS_LOWERINGS_H
