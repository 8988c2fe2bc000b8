//===- WgmmaTiles.cpp - Grouped matmul on sm_90a warpgroup MMAs -*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The sm_90a form of the tensor-core grouped matmul (TensorCoreTiles.cpp is
// the sm_80 one): one warpgroup (128 threads, one block) computes a 64-row x
// 64-column tile of one group, for each of up to three products over the
// same rows (an FFN's gate and up projections); or two warpgroups (256
// threads) a 128-row tile, each multiplying its 64 rows of the staged A
// tile with the B tiles staged once for the block.
//
// Per 64-deep step, the block stages the A tile (64 rows x 64 depths) and
// each B tile (64 columns x 64 depths, transposed: both operands K-major) in
// shared memory as bf16, each 128-byte row of 64 depths with PTX's 128-byte
// swizzle (16-byte chunk c of row r stored at chunk c ^ (r % 8): the
// address bits [4,7) xor [7,10) of a 1024-byte-aligned tile). Elements
// past the group's rows, the depth or the columns are stored as zeros.
// Then `fence.proxy.async.shared::cta` and a barrier make the stores
// visible to the tensor cores, and four `wgmma.mma_async.m64n64k16` per
// product read the tiles through shared-memory matrix descriptors (start
// address advanced 32 bytes per 16 depths, stride 1024 bytes between
// 8-row groups, 128-byte swizzle mode). The f32 sums stay in registers,
// laid out as PTX's m64nNk16 accumulator fragments; the epilogue masks at
// the group's row end and at N.
//
// Two stages: while the MMAs of a step run (wgmma is asynchronous), the
// threads stage the next step into the other stage; then they wait for
// the MMAs, fence and meet at a barrier.
//
// Not yet here: staging by TMA or cp.async into a deeper mbarrier ring with
// producer and consumer warpgroups (the threads that stage also issue the
// MMAs), tile shapes by each group's own rows.
//
// Emulation (options.emulate) runs the same staging code per thread into a
// host buffer standing for shared memory (address 0, so the same swizzle),
// then emulates each wgmma from the descriptors it would be given: it
// decodes their start address, stride and swizzle mode, reads each A and B
// element from the address PTX's canonical K-major layout gives, and
// accumulates into per-thread registers laid out as PTX's accumulator
// fragments. A wrong swizzle, descriptor field or fragment index therefore
// gives a wrong product on the host too. What it cannot catch: a reading
// of PTX's definitions that differs from the hardware's, and anything
// about timing (fences, barriers, the async proxy).
//
//===----------------------------------------------------------------------===//

#include "DeviceEmitter.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

namespace {
/// Threads and rows of one warpgroup (wgmma's m64).
constexpr int64_t kWarpgroupThreads = 128;
constexpr int64_t kWarpgroupRows = 64;
constexpr int64_t kCols = WgmmaTiles::kTileCols;
/// Depth of one staged step: one 128-byte swizzle row of bf16.
constexpr int64_t kDepth = 64;
/// Depth of one wgmma (k16).
constexpr int64_t kStep = 16;
/// The 128-byte swizzle repeats every 8 rows of 128 bytes.
constexpr int64_t kSwizzleAtomBytes = 1024;
/// f32 accumulators per thread and product (64 x 64 / 128).
constexpr int64_t kRegisters = kWarpgroupRows * kCols / kWarpgroupThreads;

/// A block of `groups` warpgroups (1 or 2) over `groups` x 64 rows: each
/// warpgroup multiplies its 64 rows of the staged A tile with the B tiles
/// that the block stages once for all its rows.
struct Blocking {
  int64_t groups;
  int64_t rows() const { return kWarpgroupRows * groups; }
  int64_t threads() const { return kWarpgroupThreads * groups; }
  /// Elements of the staged A tile and of each B tile.
  int64_t aElements() const { return rows() * kDepth; }
  static constexpr int64_t kBElements = kCols * kDepth;
  /// Elements of one stage: the A tile and every B tile.
  int64_t stageElements(int64_t products) const {
    return aElements() + products * kBElements;
  }
  /// Elements of the staging buffer: two stages (the MMAs of one step read
  /// one while the threads fill the other with the next step), plus room
  /// to align the first tile to the swizzle atom.
  int64_t stagingElements(int64_t products) const {
    return 2 * stageElements(products) + kSwizzleAtomBytes / 2;
  }
};

/// Offset (bf16 elements) of element (row, depth) in a staged tile: the
/// 16-byte chunk depth / 8 of the row goes to chunk (depth / 8) ^ (row % 8).
Value swizzled(LoopEmitter &e, Value row, Value depth) {
  Value eight = e.index(8);
  Value rowBytes = e.index(kDepth);
  Value chunk = arith::DivUIOp::create(e.b, depth, eight);
  Value phase = arith::RemUIOp::create(e.b, row, eight);
  Value within = arith::RemUIOp::create(e.b, depth, eight);
  Value moved = arith::XOrIOp::create(e.b, chunk, phase);
  Value rowStart = e.mul(row, rowBytes);
  Value chunkStart = e.mul(moved, eight);
  Value inRow = e.add(chunkStart, within);
  return e.add(rowStart, inRow);
}

/// `loaded` as the operand type where `ok`, else 0 (the load reads a
/// clamped, in-bounds position when not ok).
Value masked(LoopEmitter &e, const GroupedProducts &t, Value ok, Value loaded) {
  Value value = e.castFloat(loaded, t.operand);
  Value zero = e.floatConst(t.operand, 0.0);
  return e.select(ok, value, zero);
}

/// Thread `thread`'s share of staging the step at depth k0: its elements
/// of the A tile and of every B tile, into `smem` from element `base` on.
void stage(LoopEmitter &e, const Blocking &k, const GroupedProducts &t,
           const GroupTile &w, Value smem, Value base, Value k0, Value thread) {
  const int64_t products = static_cast<int64_t>(t.b.size());
  Value zero = e.index(0);
  Value threads = e.index(k.threads());
  Value width = e.index(kDepth);
  // `body(outer, inner)` for this thread's elements of a tile of `elements`
  // (row-major, kDepth or kCols wide): neighbouring threads take
  // neighbouring elements of a row.
  auto share = [&](int64_t elements, function_ref<void(Value, Value)> body) {
    Value perThread = e.index(elements / k.threads());
    e.loop(zero, perThread, [&](Value i) {
      Value strided = e.mul(i, threads);
      Value element = e.add(thread, strided);
      Value outer = arith::DivUIOp::create(e.b, element, width);
      Value inner = arith::RemUIOp::create(e.b, element, width);
      body(outer, inner);
    });
  };
  // A: row `outer`, depth `inner`.
  share(k.aElements(), [&](Value outer, Value inner) {
    Value r = e.add(w.rowStart, outer);
    Value depth = e.add(k0, inner);
    Value rowOk = e.cmpi(arith::CmpIPredicate::ult, r, w.rowEnd);
    Value depthOk = e.cmpi(arith::CmpIPredicate::ult, depth, t.depth);
    Value ok = e.andi(rowOk, depthOk);
    Value safeRow = e.select(ok, r, w.rowStart);
    Value safeDepth = e.select(ok, depth, zero);
    Value loaded = t.a(safeRow, safeDepth);
    Value value = masked(e, t, ok, loaded);
    Value at = swizzled(e, outer, inner);
    Value slot = e.add(base, at);
    e.store(value, smem, {slot});
  });
  // B_p: depth `outer`, column `inner` (neighbouring threads read
  // neighbouring columns), stored transposed (column-major rows).
  for (int64_t p = 0; p < products; ++p)
    share(Blocking::kBElements, [&](Value outer, Value inner) {
      Value depth = e.add(k0, outer);
      Value n = e.add(w.colStart, inner);
      Value depthOk = e.cmpi(arith::CmpIPredicate::ult, depth, t.depth);
      Value columnOk = e.cmpi(arith::CmpIPredicate::ult, n, t.n);
      Value ok = e.andi(depthOk, columnOk);
      Value safeDepth = e.select(ok, depth, zero);
      Value safeN = e.select(ok, n, zero);
      Value loaded = t.b[p](w.group, safeDepth, safeN);
      Value value = masked(e, t, ok, loaded);
      Value at = swizzled(e, inner, outer);
      Value tileOffset = e.index(k.aElements() + p * Blocking::kBElements);
      Value inTile = e.add(tileOffset, at);
      Value slot = e.add(base, inTile);
      e.store(value, smem, {slot});
    });
}

/// The shared-memory matrix descriptor (PTX ISA, "Matrix Descriptor
/// Format") of a K-major bf16 tile with 128-byte swizzle whose step starts
/// at byte `address` (an i64): bits [0,14) address >> 4, [16,30) leading
/// byte offset >> 4 (unused by swizzled K-major layouts: 1), [32,46)
/// stride byte offset >> 4 (1024 bytes between 8-row groups), [49,52)
/// base offset (0: tiles 1024-byte aligned), [62,64) swizzle mode (1:
/// 128 bytes).
Value descriptor(LoopEmitter &e, Value address) {
  Value mask = e.i64(0x3FFFF);
  Value masked = arith::AndIOp::create(e.b, address, mask);
  Value four = e.i64(4);
  Value start = arith::ShRUIOp::create(e.b, masked, four);
  int64_t fields = (int64_t{1} << 16) | ((kSwizzleAtomBytes >> 4) << 32) |
                   (int64_t{1} << 62);
  Value constant = e.i64(fields);
  return arith::OrIOp::create(e.b, start, constant);
}

/// Byte address (i64) of wgmma step `s`'s slice of warpgroup `warpgroup`'s
/// 64 rows of the A tile, from the stage's base `base` (bytes, 1024-byte
/// aligned).
Value aAddress(LoopEmitter &e, Value base, Value warpgroup, int64_t s) {
  Value wide = arith::IndexCastUIOp::create(e.b, e.b.getI64Type(), warpgroup);
  Value rowsBytes = e.i64(2 * kWarpgroupRows * kDepth);
  Value rows = arith::MulIOp::create(e.b, wide, rowsBytes);
  Value step = e.i64(s * 2 * kStep);
  Value offset = arith::AddIOp::create(e.b, rows, step);
  return arith::AddIOp::create(e.b, base, offset);
}

/// Byte address (i64) of wgmma step `s`'s slice of the B_p tile.
Value bAddress(LoopEmitter &e, const Blocking &k, Value base, int64_t p,
               int64_t s) {
  Value offset =
      e.i64(2 * (k.aElements() + p * Blocking::kBElements) + s * 2 * kStep);
  return arith::AddIOp::create(e.b, base, offset);
}

/// The warpgroup of thread `thread`.
Value warpgroupOf(LoopEmitter &e, Value thread) {
  Value size = e.index(kWarpgroupThreads);
  return arith::DivUIOp::create(e.b, thread, size);
}

/// PTX m64nNk16 f32 accumulator fragment: register i of thread `thread`
/// holds row 16 (thread / 32) + (lane / 4) + 8 ((i % 4) / 2), column
/// 8 (i / 4) + 2 (lane % 4) + i % 2.
std::pair<Value, Value> fragment(LoopEmitter &e, Value thread, Value i) {
  Value two = e.index(2);
  Value four = e.index(4);
  Value eight = e.index(8);
  Value sixteen = e.index(16);
  Value warpSize = e.index(32);
  Value warp = arith::DivUIOp::create(e.b, thread, warpSize);
  Value lane = arith::RemUIOp::create(e.b, thread, warpSize);
  Value g = arith::DivUIOp::create(e.b, lane, four);
  Value q = arith::RemUIOp::create(e.b, lane, four);
  Value j = arith::DivUIOp::create(e.b, i, four);
  Value r = arith::RemUIOp::create(e.b, i, four);
  Value half = arith::DivUIOp::create(e.b, r, two);
  Value low = arith::RemUIOp::create(e.b, r, two);
  Value warpRow = e.mul(warp, sixteen);
  Value halfRow = e.mul(half, eight);
  Value rowInWarp = e.add(g, halfRow);
  Value row = e.add(warpRow, rowInWarp);
  Value blockColumn = e.mul(j, eight);
  Value pair = e.mul(q, two);
  Value inBlock = e.add(pair, low);
  Value column = e.add(blockColumn, inBlock);
  return {row, column};
}

/// The bias of product p at column n (< N), or null without one.
Value bias(LoopEmitter &e, const GroupedProducts &t, const GroupTile &w,
           size_t p, Value n) {
  if (p >= t.init.size() || !t.init[p])
    return nullptr;
  return t.init[p](w.group, n);
}

/// The epilogue of register i of thread `thread` (sums of every product,
/// plus their biases: the MMAs start from zero), masked at the group's row
/// end and at N.
void storeResults(LoopEmitter &e, const GroupedProducts &t, const GroupTile &w,
                  Value thread, Value i, ValueRange sums) {
  auto [row, col] = fragment(e, thread, i);
  Value r = e.add(w.rowStart, row);
  Value n = e.add(w.colStart, col);
  Value rowOk = e.cmpi(arith::CmpIPredicate::ult, r, w.rowEnd);
  Value columnOk = e.cmpi(arith::CmpIPredicate::ult, n, t.n);
  Value ok = e.andi(rowOk, columnOk);
  e.ifThen(ok, [&] {
    SmallVector<Value> values(sums.begin(), sums.end());
    for (size_t p = 0; p < values.size(); ++p)
      if (Value b = bias(e, t, w, p, n))
        values[p] = e.add(values[p], b);
    t.epilogue(w.group, r, n, values);
  });
}

/// The number of kDepth-deep steps of `depth`.
Value stepCount(LoopEmitter &e, Value depth) {
  Value stepDepth = e.index(kDepth);
  return arith::CeilDivUIOp::create(e.b, depth, stepDepth);
}

/// The steps in order, the first one peeled: `first()` gives the carried
/// values, `body(step, carried)` the next ones for every further step.
/// (Depths past the contraction are staged as zeros, so a first step
/// exists even for an empty depth.)
SmallVector<Value>
stepLoop(LoopEmitter &e, Value steps, function_ref<SmallVector<Value>()> first,
         function_ref<SmallVector<Value>(Value, ValueRange)> body) {
  Value one = e.index(1);
  SmallVector<Value> init = first();
  Value rest = e.maxSI(steps, one);
  return e.loop(one, rest, init, body);
}

/// The stage of step `step` (0 or 1, as index).
Value stageOf(LoopEmitter &e, Value step) {
  Value two = e.index(2);
  return arith::RemUIOp::create(e.b, step, two);
}

/// Thread `thread`'s share of staging step `step` into its stage, the
/// stages starting at element `first` of `smem`.
void stageStep(LoopEmitter &e, const Blocking &k, const GroupedProducts &t,
               const GroupTile &w, Value smem, Value first, Value step,
               Value thread) {
  const int64_t products = static_cast<int64_t>(t.b.size());
  Value stepDepth = e.index(kDepth);
  Value k0 = e.mul(step, stepDepth);
  Value which = stageOf(e, step);
  Value stride = e.index(k.stageElements(products));
  Value offset = e.mul(which, stride);
  Value base = e.add(first, offset);
  stage(e, k, t, w, smem, base, k0, thread);
}

/// Byte address (i64) of the stage of step `step`, the stages starting at
/// byte `base`.
Value stageAddress(LoopEmitter &e, const Blocking &k, const GroupedProducts &t,
                   Value base, Value step) {
  const int64_t products = static_cast<int64_t>(t.b.size());
  Value stage = stageOf(e, step);
  Value wide = arith::IndexCastUIOp::create(e.b, e.b.getI64Type(), stage);
  Value stride = e.i64(2 * k.stageElements(products));
  Value offset = arith::MulIOp::create(e.b, wide, stride);
  return arith::AddIOp::create(e.b, base, offset);
}

/// The device kernel: one block (warpgroup) per tile of the schedule.
void emitDevice(DeviceEmitter &d, const Blocking &k, const GroupedProducts &t,
                Value tileStart, Value numBlocks, Value colTiles) {
  LoopEmitter &e = d.e;
  OpBuilder::InsertionGuard guard(e.b);
  MLIRContext *context = e.b.getContext();
  const int64_t products = static_cast<int64_t>(t.b.size());
  Type f32 = e.b.getF32Type();
  Type i64 = e.b.getI64Type();
  // The staging buffer is the launch's dynamic shared memory (a workgroup
  // attribution would be a block argument, which the host's buffer
  // deallocation would rewrite), viewed as bf16.
  auto workgroup =
      gpu::AddressSpaceAttr::get(context, gpu::AddressSpace::Workgroup);
  const int64_t elements = k.stagingElements(products);
  auto bytesType = MemRefType::get({ShapedType::kDynamic}, e.b.getI8Type(),
                                   MemRefLayoutAttrInterface{}, workgroup);
  auto stagingType = MemRefType::get({elements}, t.operand,
                                     MemRefLayoutAttrInterface{}, workgroup);
  Value one = e.index(1);
  Value threads = e.index(k.threads());
  Value blocks = e.maxSI(numBlocks, one);
  Value sharedBytes = e.i32(2 * elements);
  auto launch = gpu::LaunchOp::create(e.b, blocks, one, one, threads, one, one,
                                      sharedBytes);
  e.b.setInsertionPointToStart(&launch.getBody().front());
  Value dynamicShared = gpu::DynamicSharedMemoryOp::create(e.b, bytesType);
  Value zeroOffset = e.index(0);
  Value smem = memref::ViewOp::create(e.b, stagingType, dynamicShared,
                                      zeroOffset, ValueRange{});
  Value thread = launch.getThreadIds().x;
  Value blockIndex = launch.getBlockIds().x;
  Value inRange = e.cmpi(arith::CmpIPredicate::ult, blockIndex, numBlocks);
  Value zero = e.index(0);
  Value safeBlock = e.select(inRange, blockIndex, zero);
  GroupTile w =
      locateGroupTile(d, t, tileStart, safeBlock, colTiles, k.rows(), kCols);
  // Block-uniform: the whole warpgroup runs the tile or skips it.
  w.valid = e.andi(w.valid, inRange);
  auto structType = LLVM::LLVMStructType::getLiteral(
      context, SmallVector<Type>(kRegisters, f32));
  e.ifThen(w.valid, [&] {
    // The first 1024-byte boundary in the staging buffer.
    Value pointer = memref::ExtractAlignedPointerAsIndexOp::create(e.b, smem);
    Value address = arith::IndexCastUIOp::create(e.b, i64, pointer);
    Value atom = e.i64(kSwizzleAtomBytes);
    Value misalignment = arith::RemUIOp::create(e.b, address, atom);
    Value toBoundary = arith::SubIOp::create(e.b, atom, misalignment);
    Value padBytes = arith::RemUIOp::create(e.b, toBoundary, atom);
    Value base = arith::AddIOp::create(e.b, address, padBytes);
    Value padIndex =
        arith::IndexCastUIOp::create(e.b, e.b.getIndexType(), padBytes);
    Value two = e.index(2);
    Value firstElement = arith::DivUIOp::create(e.b, padIndex, two);
    auto operandType = NVVM::WGMMATypesAttr::get(
        context,
        t.operand.isF16() ? NVVM::WGMMATypes::f16 : NVVM::WGMMATypes::bf16);
    auto f32Type = NVVM::WGMMATypesAttr::get(context, NVVM::WGMMATypes::f32);
    auto shape = NVVM::MMAShapeAttr::get(context, kWarpgroupRows, kCols, kStep);
    Value warpgroup = warpgroupOf(e, thread);
    auto positive =
        NVVM::WGMMAScaleInAttr::get(context, NVVM::WGMMAScaleIn::one);
    auto kMajorA = NVVM::MMALayoutAttr::get(context, NVVM::MMALayout::row);
    auto kMajorB = NVVM::MMALayoutAttr::get(context, NVVM::MMALayout::col);
    // Generic-proxy stores made visible to the tensor cores (async proxy)
    // and to the whole warpgroup.
    auto publish = [&] {
      NVVM::FenceProxyOp::create(
          e.b, NVVM::ProxyKind::async_shared,
          NVVM::SharedSpaceAttr::get(context, NVVM::SharedSpace::shared_cta));
      gpu::BarrierOp::create(e.b);
    };
    Value steps = stepCount(e, t.depth);
    // One 64-deep step: the MMAs of every product on the step's stage;
    // while they run, the threads stage the next step into the other
    // stage (whose MMAs, a step earlier, every thread has waited for
    // before the last barrier); then wait, publish. The first MMA of all
    // (scale-d zero) ignores its accumulator input, which is left
    // undefined: constants there would be copied into the accumulator
    // registers after wgmma.fence, and ptxas would serialise the MMAs
    // (C7517/C7519).
    auto step = [&](Value index, ValueRange acc, bool first) {
      Value stage = stageAddress(e, k, t, base, index);
      NVVM::WgmmaFenceAlignedOp::create(e.b);
      SmallVector<Value> next(acc.begin(), acc.end());
      for (int64_t p = 0; p < products; ++p)
        for (int64_t s = 0; s < kDepth / kStep; ++s) {
          Value aStart = aAddress(e, stage, warpgroup, s);
          Value descA = descriptor(e, aStart);
          Value bStart = bAddress(e, k, stage, p, s);
          Value descB = descriptor(e, bStart);
          auto scaleD = NVVM::WGMMAScaleOutAttr::get(
              context, first && s == 0 ? NVVM::WGMMAScaleOut::zero
                                       : NVVM::WGMMAScaleOut::one);
          next[p] = NVVM::WgmmaMmaAsyncOp::create(
              e.b, structType, next[p], descA, descB, shape, operandType,
              operandType, f32Type, scaleD, positive, positive, kMajorA,
              kMajorB,
              /*satfinite=*/nullptr);
        }
      NVVM::WgmmaGroupSyncAlignedOp::create(e.b);
      Value one = e.index(1);
      Value following = e.add(index, one);
      Value more = e.cmpi(arith::CmpIPredicate::ult, following, steps);
      e.ifThen(more, [&] {
        stageStep(e, k, t, w, smem, firstElement, following, thread);
      });
      NVVM::WgmmaWaitGroupSyncOp::create(e.b, 0);
      publish();
      return next;
    };
    Value zero = e.index(0);
    stageStep(e, k, t, w, smem, firstElement, zero, thread);
    publish();
    SmallVector<Value> sums = stepLoop(
        e, steps,
        [&] {
          SmallVector<Value> undefined;
          for (int64_t p = 0; p < products; ++p)
            undefined.push_back(LLVM::PoisonOp::create(e.b, structType));
          return step(zero, undefined, /*first=*/true);
        },
        [&](Value index, ValueRange acc) {
          return step(index, acc, /*first=*/false);
        });
    for (int64_t i = 0; i < kRegisters; ++i) {
      SmallVector<Value> values;
      for (int64_t p = 0; p < products; ++p)
        values.push_back(
            LLVM::ExtractValueOp::create(e.b, sums[p], ArrayRef<int64_t>{i}));
      Value reg = e.index(i);
      storeResults(e, t, w, thread, reg, values);
    }
  });
  gpu::TerminatorOp::create(e.b);
}

/// Byte address of element (row, kk) of one wgmma step's operand, as PTX's
/// K-major canonical layout places it for the descriptor `desc` (i64):
/// start + (row / 8) stride + (row % 8) 128 + 2 kk, with the 128-byte
/// swizzle (bits [4,7) xor bits [7,10)) when the mode field says so; any
/// other mode reads unswizzled (and the product comes out wrong).
Value emulatedAddress(LoopEmitter &e, Value desc, Value row, Value kk) {
  Type index = e.b.getIndexType();
  auto field = [&](int64_t shift, int64_t mask) {
    Value amount = e.i64(shift);
    Value shifted = arith::ShRUIOp::create(e.b, desc, amount);
    Value bits = e.i64(mask);
    Value masked = arith::AndIOp::create(e.b, shifted, bits);
    return arith::IndexCastUIOp::create(e.b, index, masked).getResult();
  };
  Value sixteen = e.index(16);
  Value startField = field(0, 0x3FFF);
  Value start = e.mul(startField, sixteen);
  Value strideField = field(32, 0x3FFF);
  Value stride = e.mul(strideField, sixteen);
  Value mode = field(62, 3);
  Value eight = e.index(8);
  Value group = arith::DivUIOp::create(e.b, row, eight);
  Value inGroup = arith::RemUIOp::create(e.b, row, eight);
  Value rowBytes = e.index(128);
  Value two = e.index(2);
  Value groupOffset = e.mul(group, stride);
  Value rowOffset = e.mul(inGroup, rowBytes);
  Value depthOffset = e.mul(kk, two);
  Value rowStart = e.add(groupOffset, rowOffset);
  Value inTile = e.add(rowStart, depthOffset);
  Value linear = e.add(start, inTile);
  Value seven = e.index(7);
  Value phaseBits = arith::ShRUIOp::create(e.b, linear, seven);
  Value phase = arith::RemUIOp::create(e.b, phaseBits, eight);
  Value four = e.index(4);
  Value xorMask = arith::ShLIOp::create(e.b, phase, four);
  Value swizzledAddress = arith::XOrIOp::create(e.b, linear, xorMask);
  Value one = e.index(1);
  Value is128B = e.cmpi(arith::CmpIPredicate::eq, mode, one);
  return e.select(is128B, swizzledAddress, linear);
}

/// The host emulation: blocks in turn; per block, the 128 threads stage in
/// turn, then every wgmma is emulated from its descriptors.
void emitEmulated(DeviceEmitter &d, const Blocking &k, const GroupedProducts &t,
                  Value tileStart, Value numBlocks, Value colTiles) {
  LoopEmitter &e = d.e;
  const int64_t products = static_cast<int64_t>(t.b.size());
  Type f32 = e.b.getF32Type();
  Value smem = d.alloc(t.operand, {k.stagingElements(products)});
  Value accs = d.alloc(f32, {k.threads(), products * kRegisters});
  Value zero = e.index(0);
  Value threads = e.index(k.threads());
  Value registers = e.index(kRegisters);
  // The host buffer stands for shared memory at address 0 (aligned).
  Value base = e.i64(0);
  e.loop(zero, numBlocks, [&](Value block) {
    GroupTile w =
        locateGroupTile(d, t, tileStart, block, colTiles, k.rows(), kCols);
    e.ifThen(w.valid, [&] {
      // The first MMA (scale-d zero) starts every sum at 0.
      e.loop(zero, threads, [&](Value thread) {
        e.loop(zero, registers, [&](Value i) {
          for (int64_t p = 0; p < products; ++p) {
            Value sum = e.f32(0.0f);
            Value offset = e.index(p * kRegisters);
            Value slot = e.add(offset, i);
            e.store(sum, accs, {thread, slot});
          }
        });
      });
      Value steps = stepCount(e, t.depth);
      auto stageAll = [&](Value index) {
        e.loop(zero, threads, [&](Value thread) {
          stageStep(e, k, t, w, smem, zero, index, thread);
        });
      };
      // As on the device: the MMAs of a step read its stage, then the next
      // step is staged into the other stage.
      auto step = [&](Value index) {
        Value stage = stageAddress(e, k, t, base, index);
        e.loop(zero, threads, [&](Value thread) {
          for (int64_t p = 0; p < products; ++p)
            for (int64_t s = 0; s < kDepth / kStep; ++s) {
              Value warpgroup = warpgroupOf(e, thread);
              Value aStart = aAddress(e, stage, warpgroup, s);
              Value descA = descriptor(e, aStart);
              Value bStart = bAddress(e, k, stage, p, s);
              Value descB = descriptor(e, bStart);
              e.loop(zero, registers, [&](Value i) {
                auto [row, col] = fragment(e, thread, i);
                // The row within the warpgroup's 64 (its A descriptor).
                Value groupRows = e.index(kWarpgroupRows);
                Value rowInGroup = arith::RemUIOp::create(e.b, row, groupRows);
                Value offset = e.index(p * kRegisters);
                Value slot = e.add(offset, i);
                Value start = e.load(accs, {thread, slot});
                Value depth = e.index(kStep);
                Value two = e.index(2);
                Value sum = e.loop(
                    zero, depth, ValueRange{start},
                    [&](Value kk, ValueRange acc) {
                      Value aByte = emulatedAddress(e, descA, rowInGroup, kk);
                      Value aSlot = arith::DivUIOp::create(e.b, aByte, two);
                      Value bByte = emulatedAddress(e, descB, col, kk);
                      Value bSlot = arith::DivUIOp::create(e.b, bByte, two);
                      Value aRaw = e.load(smem, {aSlot});
                      Value aValue = e.toF32(aRaw);
                      Value bRaw = e.load(smem, {bSlot});
                      Value bValue = e.toF32(bRaw);
                      Value next =
                          math::FmaOp::create(e.b, aValue, bValue, acc[0]);
                      return SmallVector<Value>{next};
                    })[0];
                e.store(sum, accs, {thread, slot});
              });
            }
        });
        Value one = e.index(1);
        Value following = e.add(index, one);
        Value more = e.cmpi(arith::CmpIPredicate::ult, following, steps);
        e.ifThen(more, [&] { stageAll(following); });
        return SmallVector<Value>{};
      };
      stageAll(zero);
      stepLoop(
          e, steps, [&] { return step(zero); },
          [&](Value index, ValueRange) { return step(index); });
      e.loop(zero, threads, [&](Value thread) {
        e.loop(zero, registers, [&](Value i) {
          SmallVector<Value> values;
          for (int64_t p = 0; p < products; ++p) {
            Value offset = e.index(p * kRegisters);
            Value slot = e.add(offset, i);
            values.push_back(e.load(accs, {thread, slot}));
          }
          storeResults(e, t, w, thread, i, values);
        });
      });
    });
  });
}
} // namespace

void mlir::moe::detail::emitWgmmaTiles(DeviceEmitter &d,
                                       const GroupedProducts &t,
                                       Value tileStart, int64_t warpgroups) {
  LoopEmitter &e = d.e;
  Blocking k{warpgroups};
  // Blocks: an upper bound of the row tiles (each group adds at most one
  // partial tile) times the 64-column tiles.
  Value tileCols = e.index(kCols);
  Value colTiles = arith::CeilDivUIOp::create(e.b, t.n, tileCols);
  Value tileRows = e.index(k.rows());
  Value fullTiles = arith::CeilDivUIOp::create(e.b, t.numRows, tileRows);
  Value rowTiles = e.add(fullTiles, t.numGroups);
  Value numBlocks = e.mul(rowTiles, colTiles);
  if (d.options.emulate)
    emitEmulated(d, k, t, tileStart, numBlocks, colTiles);
  else
    emitDevice(d, k, t, tileStart, numBlocks, colTiles);
}
