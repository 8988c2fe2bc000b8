//===- Lowerings.h - Per-op moe-to-loops lowerings --------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// One file per op lowering; this private header lists their entry points and
// the CPU-only kernels they share (the register-blocked matmul, the counting
// sort of dispatch, destinations). What the GPU lowering shares too lives in
// the kernel library (moe/Dialect/MoE/Utils).
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOLOOPS_LOWERINGS_H
#define MOE_LIB_CONVERSION_MOETOLOOPS_LOWERINGS_H

#include "moe/Dialect/MoE/Utils/Kernels.h"

#include "moe/Conversion/MoEToLoops/MatmulSchedule.h"
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
/// The exchange ops: calls of the expert-parallel runtime (EPLowering.cpp).
FailureOr<SmallVector<Value>> emitLoops(LoopEmitter &e, EPDispatchOp op,
                                        EPDispatchOp::Adaptor operands,
                                        const MoEToLoopsOptions &options);
FailureOr<SmallVector<Value>> emitLoops(LoopEmitter &e, EPCombineOp op,
                                        EPCombineOp::Adaptor operands,
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
/// columns in bounds. `schedule` says how the loops are blocked (set it with
/// getMatmulSchedule(op, getMatmulShape(matmul)) once the buffers are set).
struct RowMatmul {
  Value a, b, c;
  MatmulSchedule schedule;
  /// Optional scratch for the packed rows of A, f32 of at least the
  /// schedule's packShape() (allocated by the kernel when null; pass one to
  /// hoist it out of loops).
  Value aPack;
  bool bPacked = false;
  /// With `quant` (and `bPacked`), `b` is `[bPrefix..., ceil(n/32),
  /// depth/32, tile bytes] x i8`: quantized tiles (moe.expert_ffn's
  /// `quant`), dequantised in registers; `depth` is a multiple of 32.
  std::optional<WeightQuant> quant;
  SmallVector<Value> bPrefix;
  Value bias;
  SmallVector<Value> biasPrefix;
  Value rowBegin, rowEnd, depth, n;
  std::function<Value(Value)> rowOfA, rowOfC;
  std::function<void(Value, Value, Value)> afterBlock;
};
void emitRowMatmul(LoopEmitter &e, const RowMatmul &matmul);
/// A scratch buffer for RowMatmul::aPack of `schedule`.
Value allocMatmulPack(LoopEmitter &e, const MatmulSchedule &schedule);
/// The element types and static sizes of `matmul` (its buffers, `depth` and
/// `n` must be set), for choosing its schedule.
MatmulShape getMatmulShape(const RowMatmul &matmul);
/// The static value of an index `size` (a constant, or a memref.dim of a
/// static dimension), or ShapedType::kDynamic.
int64_t getStaticSize(Value size);

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

/// Runs `kernel` (which returns the op's result buffers, of `resultTypes`)
/// when every size constraint holds at runtime. Otherwise, instead of
/// reading or writing out of bounds, it stores the op's code in the
/// module's public i32 global `moe_runtime_error` (moe-status-argument turns
/// the store into one through the functions' status argument, which the
/// Python runtime checks after every call and turns into a ValueError) and
/// returns results
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

} // namespace detail
} // namespace moe
} // namespace mlir

#endif // MOE_LIB_CONVERSION_MOETOLOOPS_LOWERINGS_H
