//===- DeviceEmitter.h - Kernels and device buffers -------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The GPU lowering writes its kernels with the kernel library's LoopEmitter
// and shares its kernel pieces with the CPU lowering (moe/Dialect/MoE/Utils:
// routing, size guards, FFN and combine operands): a kernel is a body over a
// thread index, launched as a one-dimensional `gpu.launch` (or, when emulating,
// run as an host loop over the threads). Inside a kernel, scratch buffers are
// per-thread `memref.alloca`s; on the host, buffers are `gpu.alloc`s.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_CONVERSION_MOETOGPU_DEVICEEMITTER_H
#define MOE_LIB_CONVERSION_MOETOGPU_DEVICEEMITTER_H

#include "moe/Conversion/MoEToGPU/MoEToGPU.h"
#include "moe/Dialect/MoE/Utils/Kernels.h"

#include "mlir/Transforms/DialectConversion.h"

namespace mlir {
namespace moe {
namespace detail {

class DeviceEmitter {
public:
  DeviceEmitter(LoopEmitter &e, const MoEToGPUOptions &options,
                MoEDeviceBuffers &buffers)
      : e(e), options(options), buffers(buffers) {}

  LoopEmitter &e;
  const MoEToGPUOptions &options;
  /// What the lowering records about its buffers (MoEDeviceBuffers).
  MoEDeviceBuffers &buffers;

  /// A device buffer (`gpu.alloc`; `memref.alloc` when emulating) of the
  /// ranked tensor type `type` with the runtime sizes `sizes` (one per
  /// dimension; only the dynamic ones are used).
  Value alloc(RankedTensorType type, ValueRange sizes);
  Value alloc(Type elementType, ArrayRef<int64_t> shape,
              ValueRange dynamicSizes = {});
  /// A result buffer with one row per row of `rows`: it holds an upper
  /// bound of rows when `rows` does.
  Value allocRowsOf(Value rows, RankedTensorType type, ValueRange sizes);
  /// Marks a buffer from alloc() as holding an upper bound of rows.
  void markRowsUpperBound(Value buffer) { buffers.markRowsUpperBound(buffer); }

  /// The device buffer of an operand: the buffer another moe kernel left on
  /// the device, or a device copy of a host tensor.
  Value input(Value tensor);

  /// `body(i)` for every i in [0, n), one thread each, in blocks of
  /// `options.blockSize` threads. Inside `body`, LoopEmitter::alloc gives
  /// per-thread scratch (static shapes only).
  void forAll(Value n, function_ref<void(Value)> body);
  /// `body(r, c)` for every (r, c) in [0, rows) x [0, columns), one thread
  /// each, c fastest (neighbouring threads touch neighbouring elements of a
  /// row-major buffer).
  void forAll2D(Value rows, Value columns,
                function_ref<void(Value, Value)> body);
  /// `body()` on one device thread (short sequential steps: scans).
  void single(function_ref<void()> body);

  /// Launches the kernels that `kernels` emits when every size constraint
  /// holds at runtime; otherwise stores `op`'s code in `moe_runtime_error`
  /// (the results are then not to be read, and the runtime raises).
  void guarded(Operation *op, const SizeConstraints &sizes,
               function_ref<void()> kernels);

  /// Sanitised offsets (section 2.4) of `numGroups + 1` raw i32 offsets, in
  /// a new device `index` buffer, computed on the device.
  Value sanitizedOffsets(Value rawOffsets, Value numGroups, Value numRows);
  /// Inside a kernel: the group of row r, that is the number of groups g in
  /// [1, numGroups] with offsets[g] <= r (offsets sanitised).
  Value groupOfRow(Value offsets, Value numGroups, Value row);
};

/// One to three grouped matmuls over the same rows (an FFN's gate and up
/// projections): what the SIMT tiles (GroupedTiles.cpp) and the tensor-core
/// tiles (TensorCoreTiles.cpp) both compute. The schedule of tiles over
/// (group, row tile) is computed on the device from the sanitised offsets:
/// `tileStart[g]` counts the tiles of the groups before g, a thread (warp)
/// finds its group from it, threads past the last tile exit. An empty group
/// has no tile and reads no weight.
struct GroupedProducts {
  GroupedProducts(Value offsets, Value numGroups, Value numRows, Value n,
                  Value depth)
      : offsets(offsets), numGroups(numGroups), numRows(numRows), n(n),
        depth(depth) {}
  /// Sanitised offsets (numGroups + 1, index) and the number of rows.
  Value offsets, numGroups, numRows;
  /// The schedule (emitTileSchedule with the kernel's tile rows); computed
  /// by the kernel when unset. Products over the same rows share one.
  Value tileStart;
  /// Columns and depth of the products.
  Value n, depth;
  /// A(row, k) in f32 (the tensor-core tiles round it to bf16).
  std::function<Value(Value, Value)> a;
  /// B_i(group, k, column) in f32 (rounded to bf16 likewise).
  SmallVector<std::function<Value(Value, Value, Value)>> b;
  /// Initial value of product i at (group, column) (a bias); 0 when unset.
  SmallVector<std::function<Value(Value, Value)>> init;
  /// Consumes the sums of every product at (group, row, column).
  std::function<void(Value, Value, Value, ValueRange)> epilogue;
  /// The tensor-core kernels' operand type (bf16 or f16; tensorCoreOperand
  /// gives it): A and B are rounded to it. Unused by the SIMT tiles.
  Type operand;
};

/// SIMT register tiles: one thread computes kTileRows rows (of one group)
/// by kTileCols columns of every product, f32 FMAs.
struct GroupedTiles {
  static constexpr int64_t kTileRows = 4;
  static constexpr int64_t kTileCols = 4;
};
void emitGroupedTiles(DeviceEmitter &d, const GroupedProducts &products);

/// Tensor cores (sm_80 and later): bf16 or f16 operands, f32 sums, one warp per
/// kTileRows x kTileCols tile of one group (mma.sync m16n8k16; emulated
/// lane by lane on the host when emulating). Exact for bf16 rows and
/// weights.
struct TensorCoreTiles {
  static constexpr int64_t kTileRows = 16;
  static constexpr int64_t kTileCols = 32;
};
/// Several sets of products over the same rows (an FFN's gate and up, then
/// its down projection) share one tile schedule and one run-time choice
/// between the sm_90a and sm_80 kernels, and run in order. Their own
/// `tileStart` is not used.
void emitTensorCoreTiles(DeviceEmitter &d,
                         ArrayRef<const GroupedProducts *> sets);

/// Where tile `index` of a schedule lies (tiles of `rows` x `cols`, the
/// column tile fastest: index = rowTile * colTiles + colTile), computed
/// alike by every thread of the warp (block) that owns it.
struct GroupTile {
  Value valid; // i1: the index is a tile of the schedule
  Value group, rowStart, rowEnd, colStart;
};
GroupTile locateGroupTile(DeviceEmitter &d, const GroupedProducts &products,
                          Value tileStart, Value index, Value colTiles,
                          int64_t rows, int64_t cols);

/// The sm_90a tiles (WgmmaTiles.cpp): one block of one or two warpgroups
/// per (64 or 128) x 64 tile of one group, 16-bit operands staged in
/// 128-byte-swizzled shared memory, `wgmma.mma_async.m64n64k16` into f32
/// (emulated on the host when emulating, from the descriptors and PTX's
/// fragment layout).
struct WgmmaTiles {
  /// Rows of a tile per warpgroup, and columns of a tile.
  static constexpr int64_t kTileRows = 64;
  static constexpr int64_t kTileCols = 64;
  /// A group needs this many rows on average for the 128-row tiles (two
  /// warpgroups sharing the staged weights) to be chosen over the 64-row
  /// ones (more blocks for few rows per group).
  static constexpr int64_t kWideRowsPerGroup = 128;
};
/// Launches (or emulates) the sm_90a kernel with `warpgroups` (1 or 2)
/// warpgroups per block over `tileStart`, a schedule of
/// `warpgroups` x WgmmaTiles::kTileRows-row tiles.
void emitWgmmaTiles(DeviceEmitter &d, const GroupedProducts &products,
                    Value tileStart, int64_t warpgroups);

/// `tileStart[g]`: the `tileRows`-row tiles of the groups before g
/// (numGroups + 1 entries), computed by one device thread.
Value emitTileSchedule(DeviceEmitter &d, Value offsets, Value numGroups,
                       int64_t tileRows = GroupedTiles::kTileRows);
/// The same in two steps: the buffer (numGroups + 1 entries), then the
/// kernel that fills it (which may sit in a branch the buffer does not).
Value allocTileSchedule(DeviceEmitter &d, Value numGroups);
void fillTileSchedule(DeviceEmitter &d, Value tileStart, Value offsets,
                      Value numGroups, int64_t tileRows);

/// The operand type with which a grouped matmul of `rowsElement` rows and
/// `weightElement` weights runs on tensor cores, or null when it keeps the
/// SIMT tiles: bf16 for bf16 weights with bf16 rows, or with f32 rows when
/// `bf16Rows` lets the kernels round them; f16 for f16 weights with f16
/// rows; null for f32 weights, mixed 16-bit types, or `tensorCores` off.
Type tensorCoreOperand(const MoEToGPUOptions &options, Type rowsElement,
                       Type weightElement);

/// A conversion pattern of the GPU lowering (with its options and the
/// record of its buffers).
template <typename Op> struct GPUPattern : OpConversionPattern<Op> {
  GPUPattern(MLIRContext *context, const MoEToGPUOptions &options,
             MoEDeviceBuffers &buffers)
      : OpConversionPattern<Op>(context), options(options), buffers(buffers) {}
  const MoEToGPUOptions &options;
  MoEDeviceBuffers &buffers;
};

/// Adds one op family's patterns (RoutingToGPU.cpp, ExpertsToGPU.cpp).
void populateRoutingToGPU(RewritePatternSet &patterns,
                          const MoEToGPUOptions &options,
                          MoEDeviceBuffers &buffers);
void populateExpertsToGPU(RewritePatternSet &patterns,
                          const MoEToGPUOptions &options,
                          MoEDeviceBuffers &buffers);

} // namespace detail
} // namespace moe
} // namespace mlir

#endif // MOE_LIB_CONVERSION_MOETOGPU_DEVICEEMITTER_H
