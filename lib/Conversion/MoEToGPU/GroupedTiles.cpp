//===- GroupedTiles.cpp - Register-tiled grouped matmul kernel --*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// One thread computes a kTileRows x kTileCols block of a group's product: it
// reads kTileRows values of A and kTileCols values of each B per step of the
// depth loop and keeps the sums in registers (SIMT, f32). Threads of one
// row tile and neighbouring column blocks read the same rows of A
// (broadcast) and neighbouring columns of B (coalesced).
//
//===----------------------------------------------------------------------===//

#include "DeviceEmitter.h"

#include "mlir/Dialect/Math/IR/Math.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

Value mlir::moe::detail::allocTileSchedule(DeviceEmitter &d,
                                           Value numGroups) {
  LoopEmitter &e = d.e;
  Value one = e.index(1);
  Value entries = e.add(numGroups, one);
  return d.alloc(e.b.getIndexType(), {ShapedType::kDynamic}, entries);
}

void mlir::moe::detail::fillTileSchedule(DeviceEmitter &d, Value tileStart,
                                         Value offsets, Value numGroups,
                                         int64_t rows) {
  LoopEmitter &e = d.e;
  Value tileRows = e.index(rows);
  d.single([&] {
    Value zero = e.index(0);
    Value one = e.index(1);
    e.store(zero, tileStart, zero);
    e.loop(zero, numGroups, zero, [&](Value g, ValueRange before) {
      Value end = e.load(offsets, e.add(g, one));
      Value begin = e.load(offsets, g);
      Value rows = e.sub(end, begin);
      Value count = arith::CeilDivUIOp::create(e.b, rows, tileRows);
      Value next = e.add(before[0], count);
      e.store(next, tileStart, e.add(g, one));
      return SmallVector<Value>{next};
    });
  });
}

Value mlir::moe::detail::emitTileSchedule(DeviceEmitter &d, Value offsets,
                                          Value numGroups, int64_t rows) {
  Value tileStart = allocTileSchedule(d, numGroups);
  fillTileSchedule(d, tileStart, offsets, numGroups, rows);
  return tileStart;
}

GroupTile mlir::moe::detail::locateGroupTile(DeviceEmitter &d,
                                             const GroupedProducts &t,
                                             Value tileStart, Value index,
                                             Value colTiles, int64_t rows,
                                             int64_t cols) {
  LoopEmitter &e = d.e;
  Value tile = arith::DivUIOp::create(e.b, index, colTiles);
  Value colTile = arith::RemUIOp::create(e.b, index, colTiles);
  Value total = e.load(tileStart, t.numGroups);
  GroupTile w;
  w.valid = e.cmpi(arith::CmpIPredicate::ult, tile, total);
  // The group: how many groups end at or before this tile.
  Value zero = e.index(0);
  Value one = e.index(1);
  w.group = e.loop(zero, t.numGroups, ValueRange{zero},
                   [&](Value g, ValueRange count) {
                     Value next = e.add(g, one);
                     Value end = e.load(tileStart, next);
                     Value before =
                         e.cmpi(arith::CmpIPredicate::ule, end, tile);
                     Value step = e.select(before, one, zero);
                     return SmallVector<Value>{e.add(count[0], step)};
                   })[0];
  // A tile past the schedule reads group 0's bounds (never used).
  w.group = e.select(w.valid, w.group, zero);
  Value first = e.load(tileStart, w.group);
  Value inGroupTile = e.select(w.valid, tile, first);
  Value inGroup = e.sub(inGroupTile, first);
  Value groupStart = e.load(t.offsets, w.group);
  Value tileRows = e.index(rows);
  Value skipped = e.mul(inGroup, tileRows);
  w.rowStart = e.add(groupStart, skipped);
  Value nextGroup = e.add(w.group, one);
  w.rowEnd = e.load(t.offsets, nextGroup);
  Value tileCols = e.index(cols);
  w.colStart = e.mul(colTile, tileCols);
  return w;
}

void mlir::moe::detail::emitGroupedTiles(DeviceEmitter &d,
                                         const GroupedProducts &tiles) {
  LoopEmitter &e = d.e;
  constexpr int64_t kRows = GroupedTiles::kTileRows;
  constexpr int64_t kCols = GroupedTiles::kTileCols;
  int64_t numProducts = tiles.b.size();
  Value tileRows = e.index(kRows);
  Value tileCols = e.index(kCols);

  Value numGroups = tiles.numGroups;
  Value tileStart = tiles.tileStart
                        ? tiles.tileStart
                        : emitTileSchedule(d, tiles.offsets, numGroups);

  // At most ceil(R / kRows) + G tiles (one partial tile per group).
  Value maxTiles = e.add(
      arith::CeilDivUIOp::create(e.b, tiles.numRows, tileRows), numGroups);
  Value columnBlocks = arith::CeilDivUIOp::create(e.b, tiles.n, tileCols);
  d.forAll2D(maxTiles, columnBlocks, [&](Value tile, Value block) {
    Value used = e.load(tileStart, numGroups);
    e.ifThen(e.cmpi(arith::CmpIPredicate::ult, tile, used), [&] {
      Value one = e.index(1);
      Value g = d.groupOfRow(tileStart, numGroups, tile);
      Value groupBegin = e.load(tiles.offsets, g);
      Value tileInGroup = e.sub(tile, e.load(tileStart, g));
      Value first = e.add(groupBegin, e.mul(tileInGroup, tileRows));
      Value tileEnd = e.add(first, tileRows);
      Value groupEnd = e.load(tiles.offsets, e.add(g, one));
      Value end = e.minSI(tileEnd, groupEnd);
      Value firstColumn = e.mul(block, tileCols);
      // Rows and columns past the end repeat the last valid one (their sums
      // are not stored).
      SmallVector<Value> rows, columns;
      Value lastRow = e.sub(end, one);
      Value lastColumn = e.sub(tiles.n, one);
      for (int64_t m = 0; m < kRows; ++m)
        rows.push_back(e.minSI(e.add(first, e.index(m)), lastRow));
      for (int64_t j = 0; j < kCols; ++j)
        columns.push_back(e.minSI(e.add(firstColumn, e.index(j)), lastColumn));
      // acc[(p * kRows + m) * kCols + j].
      SmallVector<Value> inits;
      for (int64_t p = 0; p < numProducts; ++p)
        for (int64_t m = 0; m < kRows; ++m)
          for (int64_t j = 0; j < kCols; ++j)
            inits.push_back(p < static_cast<int64_t>(tiles.init.size()) &&
                                    tiles.init[p]
                                ? tiles.init[p](g, columns[j])
                                : e.f32(0.0f));
      SmallVector<Value> sums =
          e.loop(e.index(0), tiles.depth, inits, [&](Value k, ValueRange acc) {
            SmallVector<Value> a, next;
            for (int64_t m = 0; m < kRows; ++m)
              a.push_back(tiles.a(rows[m], k));
            for (int64_t p = 0; p < numProducts; ++p) {
              SmallVector<Value> b;
              for (int64_t j = 0; j < kCols; ++j)
                b.push_back(tiles.b[p](g, k, columns[j]));
              for (int64_t m = 0; m < kRows; ++m)
                for (int64_t j = 0; j < kCols; ++j)
                  next.push_back(math::FmaOp::create(
                      e.b, a[m], b[j], acc[(p * kRows + m) * kCols + j]));
            }
            return next;
          });
      for (int64_t m = 0; m < kRows; ++m) {
        Value row = e.add(first, e.index(m));
        for (int64_t j = 0; j < kCols; ++j) {
          Value column = e.add(firstColumn, e.index(j));
          Value rowInside = e.cmpi(arith::CmpIPredicate::slt, row, end);
          Value columnInside =
              e.cmpi(arith::CmpIPredicate::slt, column, tiles.n);
          Value inside = e.andi(rowInside, columnInside);
          e.ifThen(inside, [&] {
            SmallVector<Value> values;
            for (int64_t p = 0; p < numProducts; ++p)
              values.push_back(sums[(p * kRows + m) * kCols + j]);
            tiles.epilogue(g, row, column, values);
          });
        }
      }
    });
  });
}
