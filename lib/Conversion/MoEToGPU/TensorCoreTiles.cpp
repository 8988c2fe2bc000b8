//===- TensorCoreTiles.cpp - Grouped matmul on tensor cores -----*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A grouped matmul of bf16 operands with f32 accumulation on the tensor
// cores of sm_80 and later (`mma.sync.aligned.m16n8k16.row.col.f32.bf16`):
// one warp computes a 16-row x 32-column tile of one group (four m16n8k16
// products per 16-deep step, for each of up to three products over the same
// rows: an FFN's gate and up projections), the tile schedule over (group,
// 16-row tile) computed on the device as for the SIMT tiles. Rows past the
// group's end, depths past the contraction and columns past N load zeros
// and are never stored (the epilogue masks at each group's row end).
//
// Each lane loads its own fragment elements as PTX's m16n8k16 definition
// places them (a0..a7: rows g and g + 8, columns 2q and 2q + 8 of the A
// tile; b0..b3: depths 2q and 2q + 8 of column g; c0..c3 like a0..a3 of
// an 8-wide tile; g = lane / 4, q = lane % 4), straight from global memory.
// Not yet here: shared-memory staging with cp.async (multi-stage, zero-fill),
// ldmatrix and swizzling, and the sm_90a wgmma/TMA path.
//
// Emulation (moe-test-gpu-emulation-pipeline) runs the same per-lane index
// math on the host, 32 lanes in lockstep per warp: each lane's fragments are
// written into per-lane register arrays, and the MMA is emulated from PTX's
// definition by reading every A and B element back from the lane and
// register that the definition assigns it to. A wrong lane -> fragment
// mapping in the loads or the epilogue therefore gives a wrong product on
// the host too.
//
//===----------------------------------------------------------------------===//

#include "DeviceEmitter.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

namespace {
constexpr int64_t kWarp = 32;
constexpr int64_t kTileRows = TensorCoreTiles::kTileRows; // 16
constexpr int64_t kNTiles = TensorCoreTiles::kTileCols / 8; // n8 tiles
constexpr int64_t kDepth = 16;
constexpr int64_t kWarpsPerBlock = 4;

/// PTX m16n8k16 fragment positions (row, column) of register element `i`
/// of lane `lane`, as index values. (Every IR-creating call gets its own
/// statement: argument evaluation order is the compiler's.)
struct Fragments {
  LoopEmitter &e;
  Value g(Value lane) {
    Value four = e.index(4);
    return arith::DivUIOp::create(e.b, lane, four);
  }
  Value q(Value lane) {
    Value four = e.index(4);
    return arith::RemUIOp::create(e.b, lane, four);
  }
  /// 2q + offset.
  Value pairColumn(Value lane, int64_t offset) {
    Value quad = q(lane);
    Value two = e.index(2);
    Value doubled = e.mul(quad, two);
    Value add = e.index(offset);
    return e.add(doubled, add);
  }
  /// g + offset.
  Value groupRow(Value lane, int64_t offset) {
    Value group = g(lane);
    Value add = e.index(offset);
    return e.add(group, add);
  }
  /// a_i, i in [0, 8): row g (+8 for i in {2,3,6,7}), column 2q + (i & 1)
  /// (+8 for i >= 4).
  std::pair<Value, Value> a(Value lane, int64_t i) {
    Value row = groupRow(lane, (i == 2 || i == 3 || i >= 6) ? 8 : 0);
    Value col = pairColumn(lane, (i & 1) + (i >= 4 ? 8 : 0));
    return {row, col};
  }
  /// b_i, i in [0, 4): depth 2q + (i & 1) (+8 for i >= 2), column g.
  std::pair<Value, Value> b(Value lane, int64_t i) {
    Value k = pairColumn(lane, (i & 1) + (i >= 2 ? 8 : 0));
    Value col = g(lane);
    return {k, col};
  }
  /// c_i, i in [0, 4): row g (+8 for i >= 2), column 2q + (i & 1).
  std::pair<Value, Value> c(Value lane, int64_t i) {
    Value row = groupRow(lane, i >= 2 ? 8 : 0);
    Value col = pairColumn(lane, i & 1);
    return {row, col};
  }
};

using WarpTile = GroupTile;

/// Column `col` of n8 tile j of the warp tile.
Value column(LoopEmitter &e, const WarpTile &w, int64_t j, Value col) {
  Value tileOffset = e.index(8 * j);
  Value inTile = e.add(tileOffset, col);
  return e.add(w.colStart, inTile);
}

/// A's element (row, k) of the warp tile for the step at depth k0, as
/// the operand type: zero outside the group's rows or the depth.
Value loadA(LoopEmitter &e, const GroupedProducts &t, const WarpTile &w,
            Value k0, Value row, Value col) {
  Value r = e.add(w.rowStart, row);
  Value k = e.add(k0, col);
  Value rowOk = e.cmpi(arith::CmpIPredicate::ult, r, w.rowEnd);
  Value depthOk = e.cmpi(arith::CmpIPredicate::ult, k, t.depth);
  Value ok = e.andi(rowOk, depthOk);
  Value safeRow = e.select(ok, r, w.rowStart);
  Value zeroIndex = e.index(0);
  Value safeK = e.select(ok, k, zeroIndex);
  Value loaded = t.a(safeRow, safeK);
  Value value = e.castFloat(loaded, t.operand);
  Value zero = e.floatConst(t.operand, 0.0);
  return e.select(ok, value, zero);
}

/// B_p's element (k, column) of n8 tile j, as the operand type: zero past
/// the depth or the columns.
Value loadB(LoopEmitter &e, const GroupedProducts &t, const WarpTile &w,
            size_t p, int64_t j, Value k0, Value kk, Value col) {
  Value k = e.add(k0, kk);
  Value n = column(e, w, j, col);
  Value depthOk = e.cmpi(arith::CmpIPredicate::ult, k, t.depth);
  Value columnOk = e.cmpi(arith::CmpIPredicate::ult, n, t.n);
  Value ok = e.andi(depthOk, columnOk);
  Value zeroIndex = e.index(0);
  Value safeK = e.select(ok, k, zeroIndex);
  Value safeN = e.select(ok, n, zeroIndex);
  Value loaded = t.b[p](w.group, safeK, safeN);
  Value value = e.castFloat(loaded, t.operand);
  Value zero = e.floatConst(t.operand, 0.0);
  return e.select(ok, value, zero);
}

/// The initial accumulator of product p at column `n` (a bias), or 0.
Value initialSum(LoopEmitter &e, const GroupedProducts &t, const WarpTile &w,
                 size_t p, Value n) {
  if (p >= t.init.size() || !t.init[p])
    return e.f32(0.0f);
  Value ok = e.cmpi(arith::CmpIPredicate::ult, n, t.n);
  Value zeroIndex = e.index(0);
  Value safeN = e.select(ok, n, zeroIndex);
  Value bias = t.init[p](w.group, safeN);
  Value zero = e.f32(0.0f);
  return e.select(ok, bias, zero);
}

/// Stores lane `lane`'s results at c_i of n8 tile j, masked.
void storeResults(LoopEmitter &e, Fragments &f, const GroupedProducts &t,
                  const WarpTile &w, Value lane, int64_t j, int64_t i,
                  ValueRange sums) {
  auto [row, col] = f.c(lane, i);
  Value r = e.add(w.rowStart, row);
  Value n = column(e, w, j, col);
  Value rowOk = e.cmpi(arith::CmpIPredicate::ult, r, w.rowEnd);
  Value columnOk = e.cmpi(arith::CmpIPredicate::ult, n, t.n);
  Value ok = e.andi(rowOk, columnOk);
  e.ifThen(ok, [&] { t.epilogue(w.group, r, n, sums); });
}

/// Two operand values as the register that holds them (low half first):
/// an i32 for bf16, a vector<2xf16> for f16 (as nvvm.mma.sync takes them).
Value packPair(LoopEmitter &e, Value low, Value high) {
  Type element = low.getType();
  if (element.isF16()) {
    auto pairType = VectorType::get({2}, element);
    Value pair = LLVM::PoisonOp::create(e.b, pairType);
    Value first = e.i32(0);
    Value withLow = LLVM::InsertElementOp::create(e.b, pair, low, first);
    Value second = e.i32(1);
    return LLVM::InsertElementOp::create(e.b, withLow, high, second);
  }
  Type i16 = e.b.getIntegerType(16);
  Type i32 = e.b.getI32Type();
  auto bits = [&](Value v) {
    Value raw = arith::BitcastOp::create(e.b, i16, v);
    return arith::ExtUIOp::create(e.b, i32, raw).getResult();
  };
  Value lowBits = bits(low);
  Value highBits = bits(high);
  Value shifted = arith::ShLIOp::create(e.b, highBits, e.i32(16));
  return arith::OrIOp::create(e.b, lowBits, shifted);
}

/// The depth loop, in steps of kDepth (`body(k0, accumulators)`).
SmallVector<Value> depthLoop(LoopEmitter &e, Value depth, ValueRange init,
                             function_ref<SmallVector<Value>(Value, ValueRange)>
                                 body) {
  Value stepDepth = e.index(kDepth);
  Value steps = arith::CeilDivUIOp::create(e.b, depth, stepDepth);
  Value zero = e.index(0);
  return e.loop(zero, steps, init, [&](Value step, ValueRange acc) {
    Value k0 = e.mul(step, stepDepth);
    return body(k0, acc);
  });
}

/// Index of product p, n8 tile j, element i in the accumulator list.
int64_t accIndex(int64_t p, int64_t j, int64_t i) {
  return (p * kNTiles + j) * 4 + i;
}

/// The device kernel: 4 warps per block, one warp tile each; each lane's
/// fragments and accumulators are SSA values (registers).
void emitDevice(DeviceEmitter &d, const GroupedProducts &t, Value tileStart,
                Value numWarps, Value colTiles) {
  LoopEmitter &e = d.e;
  OpBuilder::InsertionGuard guard(e.b);
  const int64_t products = static_cast<int64_t>(t.b.size());
  Value one = e.index(1);
  Value threadsPerBlock = e.index(kWarp * kWarpsPerBlock);
  Value atLeastOne = e.maxSI(numWarps, one);
  Value warpsPerBlock = e.index(kWarpsPerBlock);
  Value blocks = arith::CeilDivUIOp::create(e.b, atLeastOne, warpsPerBlock);
  auto launch =
      gpu::LaunchOp::create(e.b, blocks, one, one, threadsPerBlock, one, one);
  Block *block = &launch.getBody().front();
  e.b.setInsertionPointToStart(block);
  Value thread = launch.getThreadIds().x;
  Value warpSize = e.index(kWarp);
  Value lane = arith::RemUIOp::create(e.b, thread, warpSize);
  Value warpInBlock = arith::DivUIOp::create(e.b, thread, warpSize);
  Value perBlock = e.index(kWarpsPerBlock);
  Value firstWarp = e.mul(launch.getBlockIds().x, perBlock);
  Value warp = e.add(firstWarp, warpInBlock);
  // Warp-uniform: a whole warp runs its tile or skips it (mma.sync needs
  // all 32 lanes).
  Value inRange = e.cmpi(arith::CmpIPredicate::ult, warp, numWarps);
  Value zeroWarp = e.index(0);
  Value safeWarp = e.select(inRange, warp, zeroWarp);
  WarpTile w = locateGroupTile(d, t, tileStart, safeWarp, colTiles, kTileRows,
                                 TensorCoreTiles::kTileCols);
  w.valid = e.andi(w.valid, inRange);
  Fragments f{e};
  MLIRContext *context = e.b.getContext();
  Type f32 = e.b.getF32Type();
  auto structType =
      LLVM::LLVMStructType::getLiteral(context, SmallVector<Type>(4, f32));
  NVVM::MMATypes mmaType =
      t.operand.isF16() ? NVVM::MMATypes::f16 : NVVM::MMATypes::bf16;
  e.ifThen(w.valid, [&] {
    SmallVector<Value> init;
    for (int64_t p = 0; p < products; ++p)
      for (int64_t j = 0; j < kNTiles; ++j)
        for (int64_t i = 0; i < 4; ++i) {
          Value col = f.c(lane, i).second;
          Value n = column(e, w, j, col);
          init.push_back(initialSum(e, t, w, p, n));
        }
    SmallVector<Value> sums = depthLoop(
        e, t.depth, init, [&](Value k0, ValueRange acc) {
          // A: 8 bf16 in 4 registers (pairs a0a1, a2a3, a4a5, a6a7).
          SmallVector<Value> aValues;
          for (int64_t i = 0; i < 8; ++i) {
            auto [row, col] = f.a(lane, i);
            aValues.push_back(loadA(e, t, w, k0, row, col));
          }
          SmallVector<Value> aRegs;
          for (int64_t r = 0; r < 4; ++r)
            aRegs.push_back(packPair(e, aValues[2 * r], aValues[2 * r + 1]));
          SmallVector<Value> next(acc.begin(), acc.end());
          for (int64_t p = 0; p < products; ++p)
            for (int64_t j = 0; j < kNTiles; ++j) {
              SmallVector<Value> bValues;
              for (int64_t i = 0; i < 4; ++i) {
                auto [kk, col] = f.b(lane, i);
                bValues.push_back(loadB(e, t, w, p, j, k0, kk, col));
              }
              Value b0 = packPair(e, bValues[0], bValues[1]);
              Value b1 = packPair(e, bValues[2], bValues[3]);
              SmallVector<Value> c;
              for (int64_t i = 0; i < 4; ++i)
                c.push_back(next[accIndex(p, j, i)]);
              auto mma = NVVM::MmaOp::create(
                  e.b, structType, aRegs, ValueRange{b0, b1}, c,
                  ArrayRef<int64_t>{16, 8, 16}, std::nullopt, std::nullopt,
                  std::array<NVVM::MMATypes, 2>{mmaType, mmaType},
                  std::array<NVVM::MMALayout, 2>{NVVM::MMALayout::row,
                                                 NVVM::MMALayout::col});
              for (int64_t i = 0; i < 4; ++i)
                next[accIndex(p, j, i)] = LLVM::ExtractValueOp::create(
                    e.b, mma->getResult(0), ArrayRef<int64_t>{i});
            }
          return next;
        });
    for (int64_t j = 0; j < kNTiles; ++j)
      for (int64_t i = 0; i < 4; ++i) {
        SmallVector<Value> values;
        for (int64_t p = 0; p < products; ++p)
          values.push_back(sums[accIndex(p, j, i)]);
        storeResults(e, f, t, w, lane, j, i, values);
      }
  });
  gpu::TerminatorOp::create(e.b);
}

/// The host emulation: per warp, 32 lanes in lockstep; registers are host
/// arrays indexed by lane, and the MMA follows PTX's fragment definition.
void emitEmulated(DeviceEmitter &d, const GroupedProducts &t, Value tileStart,
                  Value numWarps, Value colTiles) {
  LoopEmitter &e = d.e;
  const int64_t products = static_cast<int64_t>(t.b.size());
  Type f32 = e.b.getF32Type();
  Value zero = e.index(0);
  Value lanes = e.index(kWarp);
  Value accs = d.alloc(f32, {kWarp, products * kNTiles * 4});
  Value aRegs = d.alloc(t.operand, {kWarp, 8});
  Value bRegs = d.alloc(t.operand, {kWarp, products * kNTiles * 4});
  Fragments f{e};
  e.loop(zero, numWarps, [&](Value warp) {
    WarpTile w = locateGroupTile(d, t, tileStart, warp, colTiles, kTileRows,
                                   TensorCoreTiles::kTileCols);
    e.ifThen(w.valid, [&] {
      e.loop(zero, lanes, [&](Value lane) {
        for (int64_t p = 0; p < products; ++p)
          for (int64_t j = 0; j < kNTiles; ++j)
            for (int64_t i = 0; i < 4; ++i) {
              Value col = f.c(lane, i).second;
              Value n = column(e, w, j, col);
              Value sum = initialSum(e, t, w, p, n);
              Value slot = e.index(accIndex(p, j, i));
              e.store(sum, accs, {lane, slot});
            }
      });
      depthLoop(e, t.depth, {}, [&](Value k0, ValueRange) {
        // Every lane loads its fragments, as on the device.
        e.loop(zero, lanes, [&](Value lane) {
          for (int64_t i = 0; i < 8; ++i) {
            auto [row, col] = f.a(lane, i);
            Value value = loadA(e, t, w, k0, row, col);
            Value reg = e.index(i);
            e.store(value, aRegs, {lane, reg});
          }
          for (int64_t p = 0; p < products; ++p)
            for (int64_t j = 0; j < kNTiles; ++j)
              for (int64_t i = 0; i < 4; ++i) {
                auto [kk, col] = f.b(lane, i);
                Value value = loadB(e, t, w, p, j, k0, kk, col);
                Value reg = e.index(accIndex(p, j, i));
                e.store(value, bRegs, {lane, reg});
              }
        });
        // mma.sync: D[row, col] = C + sum over kk of A[row, kk] * B[kk, col],
        // each element read from the lane and register that PTX assigns it:
        // A[row, kk] is a_i of lane 4 (row % 8) + (kk % 8) / 2 with
        // i = (kk & 1) + 2 (row >= 8) + 4 (kk >= 8); B[kk, col] is b_i of
        // lane 4 col + (kk % 8) / 2 with i = (kk & 1) + 2 (kk >= 8).
        e.loop(zero, lanes, [&](Value lane) {
          for (int64_t p = 0; p < products; ++p)
            for (int64_t j = 0; j < kNTiles; ++j)
              for (int64_t i = 0; i < 4; ++i) {
                auto [row, col] = f.c(lane, i);
                Value slot = e.index(accIndex(p, j, i));
                Value start = e.load(accs, {lane, slot});
                Value eight = e.index(8);
                Value two = e.index(2);
                Value four = e.index(4);
                Value rowMod = arith::RemUIOp::create(e.b, row, eight);
                Value rowLane = e.mul(rowMod, four);
                Value rowDiv = arith::DivUIOp::create(e.b, row, eight);
                Value rowHalf = e.mul(rowDiv, two);
                Value colBase = e.mul(col, four);
                Value bBase = e.index(accIndex(p, j, 0));
                Value depth = e.index(kDepth);
                Value sum = e.loop(
                    zero, depth, ValueRange{start},
                    [&](Value kk, ValueRange s) {
                      Value kkMod = arith::RemUIOp::create(e.b, kk, eight);
                      Value pairLane = arith::DivUIOp::create(e.b, kkMod, two);
                      Value low = arith::RemUIOp::create(e.b, kk, two);
                      Value kkDiv = arith::DivUIOp::create(e.b, kk, eight);
                      Value high = e.mul(kkDiv, four);
                      Value aLane = e.add(rowLane, pairLane);
                      Value aLow = e.add(low, rowHalf);
                      Value aIndex = e.add(aLow, high);
                      Value bLane = e.add(colBase, pairLane);
                      Value bHigh = e.mul(kkDiv, two);
                      Value bLow = e.add(low, bHigh);
                      Value bIndex = e.add(bLow, bBase);
                      Value aRaw = e.load(aRegs, {aLane, aIndex});
                      Value aValue = e.toF32(aRaw);
                      Value bRaw = e.load(bRegs, {bLane, bIndex});
                      Value bValue = e.toF32(bRaw);
                      Value next = math::FmaOp::create(e.b, aValue, bValue, s[0]);
                      return SmallVector<Value>{next};
                    })[0];
                e.store(sum, accs, {lane, slot});
              }
        });
        return SmallVector<Value>{};
      });
      e.loop(zero, lanes, [&](Value lane) {
        for (int64_t j = 0; j < kNTiles; ++j)
          for (int64_t i = 0; i < 4; ++i) {
            SmallVector<Value> values;
            for (int64_t p = 0; p < products; ++p) {
              Value slot = e.index(accIndex(p, j, i));
              values.push_back(e.load(accs, {lane, slot}));
            }
            storeResults(e, f, t, w, lane, j, i, values);
          }
      });
    });
  });
}
} // namespace

Type mlir::moe::detail::tensorCoreOperand(const MoEToGPUOptions &options,
                                          Type rowsElement,
                                          Type weightElement) {
  if (!options.tensorCores)
    return nullptr;
  if (weightElement.isBF16() &&
      (rowsElement.isBF16() || (rowsElement.isF32() && options.bf16Rows)))
    return weightElement;
  if (weightElement.isF16() && rowsElement.isF16())
    return weightElement;
  return nullptr;
}

/// Whether the device runs the sm_90a kernels: a call of the runtime's
/// kHasWgmmaFunction (declared in the module on first use), as an i1.
static Value hasWgmma(LoopEmitter &e) {
  Operation *parent = e.b.getInsertionBlock()->getParentOp();
  auto module = parent->getParentOfType<ModuleOp>();
  auto callee = module.lookupSymbol<func::FuncOp>(kHasWgmmaFunction);
  if (!callee) {
    OpBuilder::InsertionGuard guard(e.b);
    e.b.setInsertionPointToStart(module.getBody());
    auto type = e.b.getFunctionType({}, {e.b.getI32Type()});
    callee = func::FuncOp::create(e.b, kHasWgmmaFunction, type);
    callee.setPrivate();
  }
  auto call = func::CallOp::create(e.b, callee, ValueRange{});
  Value zero = e.i32(0);
  return e.cmpi(arith::CmpIPredicate::ne, call.getResult(0), zero);
}

void mlir::moe::detail::emitTensorCoreTiles(
    DeviceEmitter &d, ArrayRef<const GroupedProducts *> sets) {
  LoopEmitter &e = d.e;
  // Every set covers the same rows: one schedule and one choice of kernel
  // serve them all, in order.
  const GroupedProducts &rows = *sets.front();
  // The sm_80 kernels: 16-row tiles; warps: an upper bound of the tiles
  // (each group adds at most one partial tile) times the 32-column tiles;
  // warps past the schedule's last tile do nothing. The schedule's buffer
  // is allocated outside any branch.
  Value mmaStart = allocTileSchedule(d, rows.numGroups);
  auto mmaSync = [&] {
    fillTileSchedule(d, mmaStart, rows.offsets, rows.numGroups, kTileRows);
    for (const GroupedProducts *t : sets) {
      Value tileCols = e.index(TensorCoreTiles::kTileCols);
      Value colTiles = arith::CeilDivUIOp::create(e.b, t->n, tileCols);
      Value tileRows = e.index(kTileRows);
      Value fullTiles = arith::CeilDivUIOp::create(e.b, t->numRows, tileRows);
      Value rowTiles = e.add(fullTiles, t->numGroups);
      Value numWarps = e.mul(rowTiles, colTiles);
      if (d.options.emulate)
        emitEmulated(d, *t, mmaStart, numWarps, colTiles);
      else
        emitDevice(d, *t, mmaStart, numWarps, colTiles);
    }
  };
  if (!d.options.wgmma)
    return mmaSync();
  // The sm_90a kernels take 64-row tiles (one warpgroup per block), or
  // 128-row tiles (two warpgroups sharing the staged weights) when the
  // groups have kWideRowsPerGroup rows on average (the rows' upper bound
  // is known on the host: no device read).
  Value wgmmaStart = allocTileSchedule(d, rows.numGroups);
  auto wgmmaWith = [&](int64_t warpgroups) {
    fillTileSchedule(d, wgmmaStart, rows.offsets, rows.numGroups,
                     warpgroups * WgmmaTiles::kTileRows);
    for (const GroupedProducts *t : sets)
      emitWgmmaTiles(d, *t, wgmmaStart, warpgroups);
  };
  auto wgmma = [&] {
    Value perGroup = e.index(WgmmaTiles::kWideRowsPerGroup);
    Value wideRows = e.mul(rows.numGroups, perGroup);
    Value wide = e.cmpi(arith::CmpIPredicate::uge, rows.numRows, wideRows);
    e.ifThenElse(
        wide, [&] { wgmmaWith(2); }, [&] { wgmmaWith(1); });
  };
  if (d.options.emulate)
    return wgmma();
  Value useWgmma = hasWgmma(e);
  e.ifThenElse(useWgmma, wgmma, mmaSync);
}
