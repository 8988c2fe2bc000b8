//===- RoutingKernels.cpp - The per-token routing kernel --------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Dialect/MoE/Utils/RoutingKernels.h"

#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <cmath>

using namespace mlir;
using namespace mlir::moe;

using arith::CmpFPredicate;
using arith::CmpIPredicate;

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

/// True when key `a` goes before key `b` in the contract's order (step 4):
/// a non-NaN key beats a NaN key and any smaller key. Equal keys (including
/// -0 and +0) do not beat each other: the earlier index stays first.
static Value emitBeats(LoopEmitter &e, Value a, Value b) {
  Value greaterOrUnordered = e.cmpf(CmpFPredicate::UGT, a, b);
  Value notNaN = e.cmpf(CmpFPredicate::ORD, a, a);
  return e.andi(greaterOrUnordered, notNaN);
}

static PickBuffers allocPicks(LoopEmitter &e, int64_t numPicks) {
  return {e.alloc(e.b.getIndexType(), {numPicks}),
          e.alloc(e.b.getF32Type(), {numPicks}), numPicks};
}

/// Selects the best `picks.numPicks` of `numCandidates` candidates by
/// `keyAt` (contract order), among those `isSelectable` allows.
/// `onPick(j, index, found)` runs for each pick j with the winner; `found`
/// is false when fewer selectable candidates exist (index is then -1).
///
/// One pass over the candidates keeps the picks sorted: a candidate enters
/// only if it beats the current last pick (or fewer than numPicks are held),
/// and goes after every pick it does not beat. `emitBeats` is a strict weak
/// order and candidates come in index order, so this is exactly the first
/// numPicks of the stable sort (ties: lower index first), i.e. the result of
/// picking the best remaining candidate numPicks times, at about one
/// comparison per candidate instead of numPicks.
static void emitSelectBest(LoopEmitter &e, PickBuffers picks,
                           Value numCandidates,
                           function_ref<Value(Value)> keyAt,
                           function_ref<Value(Value)> isSelectable,
                           function_ref<void(Value, Value, Value)> onPick) {
  Value zero = e.index(0);
  Value one = e.index(1);
  Value none = e.index(-1);
  Value capacity = e.index(picks.numPicks);
  Value last = e.index(picks.numPicks - 1);
  Value nan = e.f32(std::nanf(""));
  // Carried: the number of picks held and, once numPicks are held, the key
  // of the last one (the bar a candidate must beat), so that the common
  // case (the candidate does not enter) is one comparison, no memory access.
  SmallVector<Value> state = e.loop(
      zero, numCandidates, ValueRange{zero, nan},
      [&](Value i, ValueRange acc) -> SmallVector<Value> {
        Value count = acc[0];
        Value bar = acc[1];
        Value key = keyAt(i);
        Value full = e.cmpi(CmpIPredicate::eq, count, capacity);
        Value notFull = e.notI1(full);
        Value enters = e.ori(notFull, emitBeats(e, key, bar));
        if (isSelectable)
          enters = e.andi(enters, isSelectable(i));
        auto ifOp = scf::IfOp::create(
            e.b, TypeRange{e.b.getIndexType(), e.b.getF32Type()}, enters,
            /*withElseRegion=*/true);
        OpBuilder::InsertionGuard guard(e.b);
        e.b.setInsertionPointToStart(ifOp.thenBlock());
        // The picks the candidate does not beat are a prefix.
        Value position = e.loop(
            zero, count, ValueRange{zero}, [&](Value q, ValueRange before) {
              Value stays = e.notI1(emitBeats(e, key, e.load(picks.key, q)));
              return SmallVector<Value>{
                  e.select(stays, e.add(before[0], one), before[0])};
            })[0];
        // Shift [position, end) down by one; the last pick falls off when
        // full.
        Value end = e.minSI(count, last);
        e.loop(zero, e.sub(end, position), [&](Value r) {
          Value q = e.sub(end, r);
          Value from = e.sub(q, one);
          Value movedIndex = e.load(picks.index, from);
          Value movedKey = e.load(picks.key, from);
          e.store(movedIndex, picks.index, q);
          e.store(movedKey, picks.key, q);
        });
        e.store(i, picks.index, position);
        e.store(key, picks.key, position);
        Value grown = e.minSI(e.add(count, one), capacity);
        // Meaningful once full (and only read then).
        Value newBar = e.load(picks.key, last);
        scf::YieldOp::create(e.b, ValueRange{grown, newBar});
        e.b.setInsertionPointToStart(ifOp.elseBlock());
        scf::YieldOp::create(e.b, ValueRange{count, bar});
        return SmallVector<Value>(ifOp.getResults());
      });
  Value held = state[0];
  e.loop(zero, capacity, [&](Value j) {
    Value found = e.cmpi(CmpIPredicate::slt, j, held);
    Value safe = e.select(found, j, zero);
    Value index = e.select(found, e.load(picks.index, safe), none);
    onPick(j, index, found);
  });
}

/// A 32-bit key whose unsigned ascending order is the contract's descending
/// order of `value`: larger values first, -0 equal to +0, NaN last.
static Value emitDescendingKey(LoopEmitter &e, Value value) {
  Type i32 = e.b.getI32Type();
  Value zeroF = e.f32(0.0f);
  // -0 -> +0 (they compare equal, so this selects +0 for both).
  Value v = e.select(e.cmpf(CmpFPredicate::OEQ, value, zeroF), zeroF, value);
  Value bits = arith::BitcastOp::create(e.b, i32, v);
  Value negative = e.cmpi(CmpIPredicate::slt, bits, e.i32(0));
  Value allOnes = e.i32(-1);
  Value flipped = arith::XOrIOp::create(e.b, bits, allOnes);
  Value signed_ = arith::XOrIOp::create(
      e.b, bits, e.i32(static_cast<int32_t>(0x80000000u)));
  Value ascending = e.select(negative, flipped, signed_);
  Value descending = arith::XOrIOp::create(e.b, ascending, allOnes);
  return e.select(e.isNaN(value), allOnes, descending);
}

/// Sorts the `n` items of `items` (index buffer) stably by
/// `emitDescendingKey(valueOf(item))`: an LSD radix sort, 4 passes of 8 bits,
/// ping-ponging with `scratch`; the result is back in `items`.
static void emitRadixSortByValue(LoopEmitter &e, Value items, Value scratch,
                                 Value n, function_ref<Value(Value)> valueOf) {
  Value zero = e.index(0);
  Value one = e.index(1);
  Value buckets = e.index(256);
  Value histogram = e.alloc(e.b.getIndexType(), {256});
  Value src = items, dst = scratch;
  for (int pass = 0; pass < 4; ++pass) {
    auto digitOf = [&](Value item) {
      Value key = emitDescendingKey(e, valueOf(item));
      Value shifted = arith::ShRUIOp::create(e.b, key, e.i32(8 * pass));
      return e.toIndex(arith::AndIOp::create(e.b, shifted, e.i32(255)));
    };
    e.fill(histogram, zero, zero, buckets);
    e.loop(zero, n, [&](Value i) {
      Value d = digitOf(e.load(src, i));
      e.store(e.add(e.load(histogram, d), one), histogram, d);
    });
    e.loop(zero, buckets, zero, [&](Value d, ValueRange start) {
      Value count = e.load(histogram, d);
      e.store(start[0], histogram, d);
      return SmallVector<Value>{e.add(start[0], count)};
    });
    e.loop(zero, n, [&](Value i) {
      Value item = e.load(src, i);
      Value d = digitOf(item);
      Value position = e.load(histogram, d);
      e.store(item, dst, position);
      e.store(e.add(position, one), histogram, d);
    });
    std::swap(src, dst);
  }
}

/// `min(clamp, ceil(factor * numerator / denominator))`, exact: `factor` is
/// split into an integer mantissa and a power of two at compile time and the
/// product is formed in 128-bit integers. `numerator` and `clamp` are index
/// values, `clamp * denominator` must fit in 63 bits.
static Value emitCeilOfScaledRatio(LoopEmitter &e, double factor,
                                   Value numerator, int64_t denominator,
                                   Value clamp) {
  if (std::isinf(factor))
    return clamp;
  int exponent = 0;
  double fraction = std::frexp(factor, &exponent);
  auto mantissa = static_cast<uint64_t>(std::ldexp(fraction, 53));
  exponent -= 53;
  // A factor >= 2^53 makes the capacity exceed any clamp we use.
  if (exponent >= 0)
    return clamp;
  int shift = -exponent;
  Type i128 = e.b.getIntegerType(128);
  Type i64 = e.b.getI64Type();
  auto wide = [&](Value index) {
    return arith::ExtUIOp::create(e.b, i128, e.toI64(index));
  };
  auto constant128 = [&](uint64_t value) {
    return arith::ConstantOp::create(e.b,
                                     IntegerAttr::get(i128, APInt(128, value)));
  };
  Value wideNumerator = wide(numerator);
  Value product = e.mul(wideNumerator, constant128(mantissa));
  Value quotient;
  if (shift >= 127) {
    Value positive = e.cmpi(CmpIPredicate::ugt, product, constant128(0));
    Value one = constant128(1);
    Value zero = constant128(0);
    quotient = e.select(positive, one, zero);
  } else {
    APInt bias = APInt::getLowBitsSet(128, shift);
    Value biased = e.add(
        product, arith::ConstantOp::create(e.b, IntegerAttr::get(i128, bias)));
    quotient = arith::ShRUIOp::create(
        e.b, biased,
        arith::ConstantOp::create(e.b, IntegerAttr::get(i128, shift)));
  }
  // ceil(quotient / denominator) > clamp iff quotient > clamp * denominator.
  Value wideClamp = wide(clamp);
  Value bound = e.mul(wideClamp, constant128(denominator));
  Value saturated = e.cmpi(CmpIPredicate::ugt, quotient, bound);
  Value small = arith::TruncIOp::create(
      e.b, i64, e.select(saturated, constant128(0), quotient));
  Value roundedUp = e.add(small, e.i64(denominator - 1));
  Value ceil = arith::DivUIOp::create(e.b, roundedUp, e.i64(denominator));
  return e.select(saturated, clamp, e.toIndex(ceil));
}

/// scores[i] for token t (step 1), written to `out` (1-D f32 of S).
void RouteEmitter::emitScores(Value t, Value out) {
  Value zero = e.index(0);
  auto logitOf = [&](Value i) { return this->logitAt(t, i); };
  switch (config.scoring) {
  case Scoring::none:
    e.loop(zero, width, [&](Value i) { e.store(logitOf(i), out, i); });
    return;
  case Scoring::sigmoid:
    e.loop(zero, width, [&](Value i) {
      Value neg = arith::NegFOp::create(e.b, logitOf(i));
      Value one = e.f32(1.0f);
      e.store(e.div(one, e.add(one, math::ExpOp::create(e.b, neg))), out, i);
    });
    return;
  case Scoring::softmax: {
    // max propagates NaN, so a NaN anywhere makes every score NaN.
    SmallVector<Value> max =
        e.loop(zero, width, e.f32(-INFINITY), [&](Value i, ValueRange acc) {
          return SmallVector<Value>{
              arith::MaximumFOp::create(e.b, acc[0], logitOf(i))};
        });
    // The exponentials first, in a loop of their own that vectorises (no
    // loop-carried value), then their sum in index order.
    e.loop(zero, width, [&](Value i) {
      e.store(math::ExpOp::create(e.b, e.sub(logitOf(i), max[0])), out, i);
    });
    SmallVector<Value> sum =
        e.loop(zero, width, e.f32(0.0f), [&](Value i, ValueRange acc) {
          return SmallVector<Value>{e.add(acc[0], e.load(out, i))};
        });
    e.loop(zero, width,
           [&](Value i) { e.store(e.div(e.load(out, i), sum[0]), out, i); });
    return;
  }
  }
}

/// The group mask of step 3 for one token: selectable[i] for the experts
/// of the `top` groups with the best scores (the sum of their two largest
/// keys, or their largest key with `score = max`).
void RouteEmitter::emitGroupMask(Value keys, Value selectable,
                                 Value groupScores, PickBuffers groupPicks) {
  GroupsAttr groups = config.groups;
  int64_t numGroups = groups.getN();
  int64_t groupSize = numCompute() / numGroups;
  Value zero = e.index(0);
  Value groupSizeV = e.index(groupSize);
  Value minusInf = e.f32(-INFINITY);
  e.loop(zero, e.index(numGroups), [&](Value g) {
    Value begin = e.mul(g, groupSizeV);
    SmallVector<Value> best =
        e.loop(zero, groupSizeV, ValueRange{minusInf, minusInf},
               [&](Value m, ValueRange acc) {
                 Value key = e.load(keys, e.add(begin, m));
                 key = e.select(e.isNaN(key), minusInf, key);
                 Value aboveFirst = e.cmpf(CmpFPredicate::OGT, key, acc[0]);
                 Value aboveSecond = e.cmpf(CmpFPredicate::OGT, key, acc[1]);
                 Value first = e.select(aboveFirst, key, acc[0]);
                 Value second = e.select(aboveFirst, acc[0],
                                         e.select(aboveSecond, key, acc[1]));
                 return SmallVector<Value>{first, second};
               });
    Value score = groups.getScore() == GroupScore::max
                      ? best[0]
                      : e.add(best[0], best[1]);
    e.store(score, groupScores, g);
  });
  e.fill(selectable, e.boolean(false), zero, width);
  emitSelectBest(
      e, groupPicks, e.index(numGroups),
      [&](Value g) { return e.load(groupScores, g); }, nullptr,
      [&](Value, Value g, Value found) {
        e.ifThen(found, [&] {
          Value begin = e.mul(g, groupSizeV);
          Value yes = e.boolean(true);
          e.fill(selectable, yes, begin, e.add(begin, groupSizeV));
        });
      });
}

/// n_t of step 5, from the raw weights of the token's K best slots.
Value RouteEmitter::emitCount(Value t) {
  Value zero = e.index(0);
  Value one = e.index(1);
  Value kV = e.index(numSlots());
  auto rawAt = [&](Value j) { return e.load(weights, {t, j}); };
  RoutingStrategyAttrInterface strategy = config.strategy;
  switch (kind) {
  case StrategyKind::TopK:
  case StrategyKind::ExpertChoice: // per expert: emitExpertChoice
    return kV;
  case StrategyKind::TopP: {
    float p = llvm::cast<TopPAttr>(strategy).getP().convertToFloat();
    if (p == 1.0f)
      return kV;
    Value pV = e.f32(p);
    SmallVector<Value> state = e.loop(
        zero, kV, ValueRange{e.f32(0.0f), kV, e.boolean(false)},
        [&](Value j, ValueRange acc) {
          Value sum = e.add(acc[0], rawAt(j));
          Value reached = e.cmpf(CmpFPredicate::OGE, sum, pV);
          Value first = e.andi(reached, e.notI1(acc[2]));
          return SmallVector<Value>{sum, e.select(first, e.add(j, one), acc[1]),
                                    e.ori(acc[2], reached)};
        });
    return state[1];
  }
  case StrategyKind::Adaptive: {
    Value tau =
        e.f32(llvm::cast<AdaptiveAttr>(strategy).getTau().convertToFloat());
    Value best = rawAt(zero);
    return emitPrefix(kV, [&](Value j) {
      return e.cmpf(CmpFPredicate::OLE, e.sub(best, rawAt(j)), tau);
    });
  }
  case StrategyKind::Threshold: {
    auto threshold = llvm::cast<ThresholdAttr>(strategy);
    Value tau = e.f32(threshold.getTau().convertToFloat());
    Value prefix = emitPrefix(
        kV, [&](Value j) { return e.cmpf(CmpFPredicate::OGE, rawAt(j), tau); });
    return e.maxSI(prefix, e.index(threshold.getKMin()));
  }
  case StrategyKind::DynamicK: {
    Value requested = e.toIndex(e.load(kPerToken, t));
    return e.minSI(e.maxSI(requested, zero), kV);
  }
  }
  llvm_unreachable("every StrategyKind has a case");
}

/// Length of the all-passing prefix of j in [0, n).
Value RouteEmitter::emitPrefix(Value n, function_ref<Value(Value)> passes) {
  Value zero = e.index(0);
  SmallVector<Value> state =
      e.loop(zero, n, ValueRange{zero, e.boolean(false)},
             [&](Value j, ValueRange acc) {
               Value broken = e.ori(acc[1], e.notI1(passes(j)));
               Value length =
                   e.select(broken, acc[0], e.add(acc[0], e.index(1)));
               return SmallVector<Value>{length, broken};
             });
  return state[0];
}

/// Empties the slots of token t from `begin` on.
void RouteEmitter::emitEmptySlots(Value t, Value begin) {
  Value minusOne = e.i32(-1);
  Value zeroF = e.f32(0.0f);
  e.loop(begin, e.index(numSlots()), [&](Value j) {
    e.store(minusOne, ids, {t, j});
    e.store(zeroF, weights, {t, j});
  });
}

/// Steps 1-6 for the strategies that decide token by token.
/// Allocates the per-token scratch of emitToken.
void RouteEmitter::emitPrepare() {
  Type f32 = e.b.getF32Type();
  Type i1 = e.b.getI1Type();
  int64_t s = numExperts();
  scores = e.alloc(f32, {s});
  keys = selectionBias ? e.alloc(f32, {s}) : scores;
  picks = allocPicks(e, numSlots());
  if (config.groups) {
    selectable = e.alloc(i1, {s});
    groupScores = e.alloc(f32, {config.groups.getN()});
    groupPicks = allocPicks(e, config.groups.getTop());
  }
}

void RouteEmitter::emitPerTokenSelection() {
  emitPrepare();
  e.loop(e.index(0), numTokens, [&](Value t) { emitToken(t); });
}

/// Steps 1-6 for token t: ids[t] and raw weights[t].
void RouteEmitter::emitToken(Value t) {
  Value zero = e.index(0);
  emitScores(t, scores);
  if (selectionBias)
    e.loop(zero, width, [&](Value i) {
      Value score = e.load(scores, i);
      Value bias = e.load(selectionBias, i);
      e.store(e.add(score, bias), keys, i);
    });
  if (config.groups)
    emitGroupMask(keys, selectable, groupScores, groupPicks);
  auto selectableAt = [&](Value i) { return e.load(selectable, i); };
  emitSelectBest(
      e, picks, width, [&](Value i) { return e.load(keys, i); },
      config.groups ? function_ref<Value(Value)>(selectableAt) : nullptr,
      [&](Value j, Value i, Value found) {
        // Enough experts are always selectable (K <= S, and with groups
        // K <= top * E / n); an empty slot is only a safety net.
        Value safe = e.select(found, i, zero);
        Value score = e.load(scores, safe);
        Value raw = e.select(found, score, e.f32(0.0f));
        Value id = e.toI32(i);
        e.store(e.select(found, id, e.i32(-1)), ids, {t, j});
        e.store(raw, weights, {t, j});
      });
  emitEmptySlots(t, emitCount(t));
}

/// Section 2.2.1, in three phases (see the header).
void RouteEmitter::emitExpertChoice(double capacityFactor) {
  Type f32 = e.b.getF32Type();
  Type i1 = e.b.getI1Type();
  int64_t s = numExperts();
  Value zero = e.index(0);
  Value scores = e.alloc(f32, {ShapedType::kDynamic, s}, numTokens);
  Value picked = e.alloc(i1, {ShapedType::kDynamic, s}, numTokens);
  ExpertChoiceScratch scratch = allocExpertChoiceScratch();
  e.loop(zero, numTokens,
         [&](Value t) { emitExpertChoiceScores(t, scores, scratch); });
  Value capacity = emitExpertChoiceCapacity(capacityFactor);
  e.loop(zero, e.index(s), [&](Value expert) {
    emitExpertChoicePick(expert, scores, picked, capacity, scratch);
  });
  e.loop(zero, numTokens,
         [&](Value t) { emitExpertChoiceToken(t, scores, picked, scratch); });
}

RouteEmitter::ExpertChoiceScratch RouteEmitter::allocExpertChoiceScratch() {
  return {e.alloc(e.b.getF32Type(), {numExperts()}),
          e.alloc(e.b.getIndexType(), {256}), allocPicks(e, numSlots())};
}

void RouteEmitter::emitExpertChoiceScores(Value t, Value scores,
                                          const ExpertChoiceScratch &scratch) {
  emitScores(t, scratch.row);
  Value zero = e.index(0);
  Value width = e.index(numExperts());
  e.loop(zero, width,
         [&](Value i) { e.store(e.load(scratch.row, i), scores, {t, i}); });
}

Value RouteEmitter::emitExpertChoiceCapacity(double capacityFactor) {
  return emitCeilOfScaledRatio(e, capacityFactor, numTokens, numExperts(),
                               numTokens);
}

/// Keeps the best `capacity` of `count` items by their keys `keyAt(i)`
/// (emitDescendingKey: ascending unsigned is best first; ties: lower i):
/// `onItem(i, kept)` runs for every item in index order. An exact radix
/// select of the capacity-th key, most significant byte first (4 passes of
/// 8 bits over the items, `histogram` 256 index counts), then one pass for
/// the keys at the cut. A capacity of 0 keeps nothing; one of `count` or
/// more keeps everything.
static void emitKeepBest(LoopEmitter &e, Value histogram, Value count,
                         Value capacity, function_ref<Value(Value)> keyAt,
                         function_ref<void(Value, Value)> onItem) {
  Type i32 = e.b.getI32Type();
  Value zero = e.index(0);
  Value one = e.index(1);
  Value buckets = e.index(256);
  // `prefix` holds the bytes of the cut found so far, `rank` the 1-based
  // rank of the cut among the keys that share them.
  Value prefix = e.i32(0);
  Value rank = capacity;
  for (int pass = 3; pass >= 0; --pass) {
    int shift = 8 * pass;
    // Only the bytes above this one are compared.
    Value highMask =
        e.i32(pass == 3 ? 0 : static_cast<int32_t>(~0u << (shift + 8)));
    e.fill(histogram, zero, zero, buckets);
    e.loop(zero, count, [&](Value i) {
      Value key = keyAt(i);
      Value high = arith::AndIOp::create(e.b, key, highMask);
      e.ifThen(e.cmpi(CmpIPredicate::eq, high, prefix), [&] {
        Value shiftV = e.i32(shift);
        Value shifted = arith::ShRUIOp::create(e.b, key, shiftV);
        Value byteMask = e.i32(255);
        Value digit =
            e.toIndex(arith::AndIOp::create(e.b, shifted, byteMask));
        e.store(e.add(e.load(histogram, digit), one), histogram, digit);
      });
    });
    // The bucket where the cumulative count reaches `rank`: carried are
    // the count before the current bucket and the bucket found (256 while
    // not found), with the count before it. Not found (fewer keys than
    // `rank`): the last bucket, and every key stays below or at the cut.
    SmallVector<Value> found = e.loop(
        zero, buckets, ValueRange{zero, buckets, zero},
        [&](Value d, ValueRange acc) {
          Value upTo = e.add(acc[0], e.load(histogram, d));
          Value notYet = e.cmpi(CmpIPredicate::eq, acc[1], buckets);
          Value reaches = e.andi(notYet, e.cmpi(CmpIPredicate::sge, upTo, rank));
          return SmallVector<Value>{upTo, e.select(reaches, d, acc[1]),
                                    e.select(reaches, acc[0], acc[2])};
        });
    Value digit = e.minSI(found[1], e.index(255));
    Value digit32 = arith::IndexCastUIOp::create(e.b, i32, digit);
    Value shiftV = e.i32(shift);
    Value placed = arith::ShLIOp::create(e.b, digit32, shiftV);
    prefix = arith::OrIOp::create(e.b, prefix, placed);
    rank = e.sub(rank, found[2]);
  }
  // Keys below the cut are kept; of the keys equal to it, the first `rank`
  // in index order.
  Value none = e.cmpi(CmpIPredicate::eq, capacity, zero);
  Value some = e.notI1(none);
  e.loop(zero, count, zero, [&](Value i, ValueRange ties) {
    Value key = keyAt(i);
    Value below = e.cmpi(CmpIPredicate::ult, key, prefix);
    Value atCut = e.cmpi(CmpIPredicate::eq, key, prefix);
    Value tieTaken = e.andi(atCut, e.cmpi(CmpIPredicate::slt, ties[0], rank));
    Value kept = e.andi(some, e.ori(below, tieTaken));
    onItem(i, kept);
    return SmallVector<Value>{e.add(ties[0], e.select(atCut, one, zero))};
  });
}

void RouteEmitter::emitExpertChoicePick(Value expert, Value scores,
                                        Value picked, Value capacity,
                                        const ExpertChoiceScratch &scratch) {
  emitKeepBest(
      e, scratch.histogram, numTokens, capacity,
      [&](Value t) {
        return emitDescendingKey(e, e.load(scores, {t, expert}));
      },
      [&](Value t, Value kept) { e.store(kept, picked, {t, expert}); });
}

void RouteEmitter::emitExpertChoiceToken(Value t, Value scores, Value picked,
                                         const ExpertChoiceScratch &scratch) {
  Value zero = e.index(0);
  emitSelectBest(
      e, scratch.picks, e.index(numExperts()),
      [&](Value i) { return e.load(scores, {t, i}); },
      [&](Value i) { return e.load(picked, {t, i}); },
      [&](Value j, Value i, Value found) {
        Value safe = e.select(found, i, zero);
        Value score = e.load(scores, {t, safe});
        Value raw = e.select(found, score, e.f32(0.0f));
        Value id = e.toI32(i);
        e.store(e.select(found, id, e.i32(-1)), ids, {t, j});
        e.store(raw, weights, {t, j});
      });
}

/// Step 7: drops the slots over each compute expert's capacity, then
/// compacts every token's remaining slots.
void RouteEmitter::emitCapacity(CapacityAttr capacityAttr) {
  Type indexType = e.b.getIndexType();
  Value zero = e.index(0);
  Value one = e.index(1);
  Value kV = e.index(numSlots());
  int64_t numComputeExperts = numCompute();
  Value capacity = emitCapacityLimit(capacityAttr);
  Value used = e.alloc(indexType, {numComputeExperts});
  e.fill(used, zero, zero, e.index(numComputeExperts));
  Value zeroI32 = e.i32(0);
  Value computeEnd = e.i32(numComputeExperts);
  // Counts slot (t, j) against its expert; empties it when over capacity.
  auto admit = [&](Value t, Value j) {
    Value id = e.load(ids, {t, j});
    e.ifThen(e.inRange(id, zeroI32, computeEnd), [&] {
      Value expert = e.toIndex(id);
      Value rank = e.load(used, expert);
      e.store(e.add(rank, one), used, expert);
      e.ifThen(e.cmpi(CmpIPredicate::sge, rank, capacity), [&] {
        e.store(e.i32(-1), ids, {t, j});
        e.store(e.f32(0.0f), weights, {t, j});
      });
    });
  };
  if (capacityAttr.getPriority() == CapacityPriority::position) {
    // (slot, token) order: every first choice before any second choice.
    e.loop(zero, kV, [&](Value j) {
      e.loop(zero, numTokens, [&](Value t) { admit(t, j); });
    });
  } else {
    // Compute slots in (token, slot) order, stably sorted by weight
    // (descending, NaN last): ties keep the lower token, then slot.
    Value numItems = e.mul(numTokens, kV);
    Value items = e.alloc(indexType, {ShapedType::kDynamic}, numItems);
    Value scratch = e.alloc(indexType, {ShapedType::kDynamic}, numItems);
    SmallVector<Value> count =
        e.loop(zero, numTokens, zero, [&](Value t, ValueRange outer) {
          return e.loop(zero, kV, outer, [&](Value j, ValueRange inner) {
            Value id = e.load(ids, {t, j});
            Value isCompute = e.inRange(id, zeroI32, computeEnd);
            e.ifThen(isCompute,
                     [&] { e.store(e.add(e.mul(t, kV), j), items, inner[0]); });
            return SmallVector<Value>{
                e.add(inner[0], e.select(isCompute, one, zero))};
          });
        });
    auto split = [&](Value item) {
      Value t = arith::DivUIOp::create(e.b, item, kV);
      Value j = arith::RemUIOp::create(e.b, item, kV);
      return std::make_pair(t, j);
    };
    emitRadixSortByValue(e, items, scratch, count[0], [&](Value item) {
      auto [t, j] = split(item);
      return e.load(weights, {t, j});
    });
    e.loop(zero, count[0], [&](Value i) {
      auto [t, j] = split(e.load(items, i));
      admit(t, j);
    });
  }
  // Compaction: each token's remaining slots move to the front, in order.
  e.loop(zero, numTokens, [&](Value t) { emitCompactToken(t); });
}

Value RouteEmitter::emitCapacityLimit(CapacityAttr capacityAttr) {
  Value kV = e.index(numSlots());
  Value slots = e.mul(numTokens, kV);
  return emitCeilOfScaledRatio(e, capacityAttr.getFactor().convertToDouble(),
                               slots, numCompute(), numTokens);
}

void RouteEmitter::emitCompactToken(Value t, Value dropped) {
  Value zero = e.index(0);
  Value one = e.index(1);
  Value kV = e.index(numSlots());
  Value zeroI32 = e.i32(0);
  SmallVector<Value> kept =
      e.loop(zero, kV, zero, [&](Value j, ValueRange acc) {
        Value id = e.load(ids, {t, j});
        Value valid = e.cmpi(CmpIPredicate::sge, id, zeroI32);
        if (dropped) {
          Value isDropped = e.load(dropped, {t, j});
          valid = e.andi(valid, e.notI1(isDropped));
        }
        e.ifThen(valid, [&] {
          Value w = e.load(weights, {t, j});
          e.store(id, ids, {t, acc[0]});
          e.store(w, weights, {t, acc[0]});
        });
        return SmallVector<Value>{e.add(acc[0], e.select(valid, one, zero))};
      });
  emitEmptySlots(t, kept[0]);
}

void RouteEmitter::emitClearDropped(Value t, Value dropped) {
  Value zero = e.index(0);
  Value kV = e.index(numSlots());
  Value no = e.boolean(false);
  e.loop(zero, kV, [&](Value j) { e.store(no, dropped, {t, j}); });
}

Value RouteEmitter::emitChunkSlotsOf(
    Value chunk, Value expert, Value init, bool slotMajor,
    function_ref<void(Value, Value, Value)> body) {
  Value zero = e.index(0);
  Value one = e.index(1);
  Value kV = e.index(numSlots());
  Value total = e.mul(numTokens, kV);
  Value chunkSize = e.index(kCapacityChunk);
  Value begin = e.mul(chunk, chunkSize);
  Value end = e.minSI(e.add(begin, chunkSize), total);
  Value expertId = e.toI32(expert);
  Value minor = slotMajor ? numTokens : kV;
  return e.loop(begin, end, init, [&](Value q, ValueRange acc) {
    Value major = arith::DivUIOp::create(e.b, q, minor);
    Value rest = arith::RemUIOp::create(e.b, q, minor);
    Value t = slotMajor ? rest : major;
    Value j = slotMajor ? major : rest;
    Value id = e.load(ids, {t, j});
    Value match = e.cmpi(CmpIPredicate::eq, id, expertId);
    if (body)
      e.ifThen(match, [&] { body(t, j, acc[0]); });
    return SmallVector<Value>{e.add(acc[0], e.select(match, one, zero))};
  })[0];
}

void RouteEmitter::emitChunkCount(Value chunk, Value expert, Value counts,
                                  bool slotMajor) {
  Value zero = e.index(0);
  Value count = emitChunkSlotsOf(chunk, expert, zero, slotMajor, nullptr);
  e.store(count, counts, {chunk, expert});
}

void RouteEmitter::emitChunkScan(Value expert, Value counts, Value numChunks) {
  Value zero = e.index(0);
  Value total =
      e.loop(zero, numChunks, zero, [&](Value c, ValueRange before) {
        Value count = e.load(counts, {c, expert});
        e.store(before[0], counts, {c, expert});
        return SmallVector<Value>{e.add(before[0], count)};
      })[0];
  e.store(total, counts, {numChunks, expert});
}

void RouteEmitter::emitPositionDrop(Value chunk, Value expert, Value counts,
                                    Value capacity, Value dropped) {
  // The rank of the expert's next slot starts at the slots of the chunks
  // before this one.
  Value first = e.load(counts, {chunk, expert});
  emitChunkSlotsOf(chunk, expert, first, /*slotMajor=*/true,
                   [&](Value t, Value j, Value rank) {
                     Value over = e.cmpi(CmpIPredicate::sge, rank, capacity);
                     e.store(over, dropped, {t, j});
                   });
}

void RouteEmitter::emitListStarts(Value counts, Value numChunks,
                                  Value starts) {
  Value zero = e.index(0);
  e.loop(zero, e.index(numCompute()), zero, [&](Value expert, ValueRange at) {
    e.store(at[0], starts, expert);
    Value total = e.load(counts, {numChunks, expert});
    return SmallVector<Value>{e.add(at[0], total)};
  });
}

void RouteEmitter::emitScatterSlots(Value chunk, Value expert, Value counts,
                                    Value starts, Value list) {
  Value kV = e.index(numSlots());
  Value start = e.load(starts, expert);
  Value before = e.load(counts, {chunk, expert});
  Value first = e.add(start, before);
  emitChunkSlotsOf(chunk, expert, first, /*slotMajor=*/false,
                   [&](Value t, Value j, Value at) {
                     Value q = e.add(e.mul(t, kV), j);
                     e.store(q, list, at);
                   });
}

void RouteEmitter::emitScoreDrop(Value expert, Value counts, Value numChunks,
                                 Value starts, Value list, Value capacity,
                                 Value dropped, Value histogram) {
  Value kV = e.index(numSlots());
  Value start = e.load(starts, expert);
  Value count = e.load(counts, {numChunks, expert});
  auto slotAt = [&](Value i) {
    Value q = e.load(list, e.add(start, i));
    Value t = arith::DivUIOp::create(e.b, q, kV);
    Value j = arith::RemUIOp::create(e.b, q, kV);
    return std::make_pair(t, j);
  };
  emitKeepBest(
      e, histogram, count, capacity,
      [&](Value i) {
        auto [t, j] = slotAt(i);
        return emitDescendingKey(e, e.load(weights, {t, j}));
      },
      [&](Value i, Value kept) {
        auto [t, j] = slotAt(i);
        e.store(e.notI1(kept), dropped, {t, j});
      });
}

/// Step 8 and the scale.
void RouteEmitter::emitNormalize() {
  if (config.normalize == Normalize::none && config.scale == 1.0f)
    return;
  e.loop(e.index(0), numTokens, [&](Value t) { emitNormalizeToken(t); });
}

/// Step 8 and the scale for token t.
void RouteEmitter::emitNormalizeToken(Value t) {
  Normalize mode = config.normalize;
  float scale = config.scale;
  if (mode == Normalize::none && scale == 1.0f)
    return;
  Value zero = e.index(0);
  Value kV = e.index(numSlots());
  Value zeroI32 = e.i32(0);
  Value zeroF = e.f32(0.0f);
  Value nullBegin = e.i32(config.experts.getNullBegin());
  Value nullEnd = e.i32(config.experts.getCopyBegin());
  Value scaleV = e.f32(scale);
  {
    auto isValid = [&](Value id) {
      return e.cmpi(CmpIPredicate::sge, id, zeroI32);
    };
    auto isMember = [&](Value id) {
      Value valid = isValid(id);
      if (mode == Normalize::non_null)
        valid = e.andi(valid, e.notI1(e.inRange(id, nullBegin, nullEnd)));
      return valid;
    };
    Value den, zeroDen;
    if (mode != Normalize::none) {
      SmallVector<Value> sum =
          e.loop(zero, kV, ValueRange{zeroF, e.boolean(false)},
                 [&](Value j, ValueRange acc) {
                   Value member = isMember(e.load(ids, {t, j}));
                   Value next = e.add(acc[0], e.load(weights, {t, j}));
                   return SmallVector<Value>{e.select(member, next, acc[0]),
                                             e.ori(acc[1], member)};
                 });
      den = sum[0];
      Value isZero = e.cmpf(CmpFPredicate::OEQ, den, zeroF);
      zeroDen = e.ori(isZero, e.notI1(sum[1]));
    }
    e.loop(zero, kV, [&](Value j) {
      Value id = e.load(ids, {t, j});
      Value w = e.load(weights, {t, j});
      if (mode != Normalize::none) {
        Value member = isMember(id);
        Value normalized = e.select(member, e.div(w, den), zeroF);
        w = e.select(zeroDen, zeroF, normalized);
      }
      if (scale != 1.0f)
        w = e.mul(w, scaleV);
      e.store(e.select(isValid(id), w, zeroF), weights, {t, j});
    });
  }
}
