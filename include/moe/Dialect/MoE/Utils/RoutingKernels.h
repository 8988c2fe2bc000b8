//===- RoutingKernels.h - The per-token routing kernel ----------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Section 2.2 of the semantics contract, as loops over buffers, in pieces
// that the CPU lowering (moe.route and the fused moe.route_dispatch, a loop
// over tokens) and the GPU lowering (a thread per token) both call, so that
// a strategy's arithmetic, its tie and NaN rules and its count are written
// once:
//
//   for each token: scores (softmax/sigmoid/none) -> keys (+ selection bias)
//     -> group mask -> the K best selectable experts (one pass keeping the
//     picks sorted, ties to the lower index, NaN last) -> the strategy's
//     count n_t -> slots j >= n_t empty;
//   capacity (cross-token): a counting walk in priority order; the `score`
//     priority orders the compute slots with a stable LSD radix sort on the
//     weights' bits; dropped slots are emptied and each token compacted;
//   for each token: normalize and scale.
//
// Expert choice scores every token first, orders every (token, expert) pair
// with the same radix sort, marks the C best tokens per expert, then gives
// each token the experts that picked it, best first, up to K.
//
// The caller owns the loop structure: it sets the sizes and the ids/weights
// buffers, calls emitPrepare() where per-token scratch may live (once on
// the CPU, inside each thread on the GPU) and emitToken(t) per token.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_UTILS_ROUTINGKERNELS_H
#define MOE_DIALECT_MOE_UTILS_ROUTINGKERNELS_H

#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Utils/LoopEmitter.h"

#include <functional>

namespace mlir {
namespace moe {

/// Scratch of the best-K selection: the picks so far, best first (`index`:
/// index buffer, `key`: f32 buffer, both `numPicks` long).
struct PickBuffers {
  Value index;
  Value key;
  int64_t numPicks = 0;
};

/// The routing of one op (moe.route or moe.route_dispatch) under
/// `config`, writing `ids` [T, K] (i32) and `weights` [T, K] (f32).
class RouteEmitter {
public:
  /// The lowering has checked that `config.strategy` has a kind
  /// (`checkStrategyLowered`) before building the emitter.
  RouteEmitter(LoopEmitter &e, const RoutingConfig &config, Value logits,
               Value kPerToken, Value selectionBias)
      : e(e), config(config), kind(*getStrategyKind(config.strategy)),
        logits(logits), kPerToken(kPerToken), selectionBias(selectionBias) {}

  const RoutingConfig &getConfig() const { return config; }
  /// Sizes (index values): tokens, logits per token (S), slots (K).
  Value numTokens, width, k;
  /// The result buffers.
  Value ids, weights;
  /// Where token t's logit i comes from: the logits buffer, or (fused
  /// gating-dispatch) a tile of logits computed just before.
  std::function<Value(Value, Value)> logitAt = [this](Value t, Value i) {
    return e.load(logits, {t, i});
  };

  /// Allocates the per-token scratch of emitToken.
  void emitPrepare();
  /// Steps 1-6 for token t: ids[t] and the raw weights[t].
  void emitToken(Value t);
  /// emitPrepare, then emitToken for every token in order.
  void emitPerTokenSelection();
  /// Section 2.2.1 (expert choice), every token: the three phases below,
  /// each a loop (the GPU runs each phase as a kernel over its index).
  void emitExpertChoice(double capacityFactor);
  /// The scratch of one thread (or of the loops) of the phases below,
  /// allocated by allocExpertChoiceScratch.
  struct ExpertChoiceScratch {
    Value row;       // S scores
    Value histogram; // 256 counts
    PickBuffers picks;
  };
  ExpertChoiceScratch allocExpertChoiceScratch();
  /// Expert choice, phase 1: token t's scores into row t of `scores`
  /// ([T, S] f32).
  void emitExpertChoiceScores(Value t, Value scores,
                              const ExpertChoiceScratch &scratch);
  /// Phase 2: expert `expert` picks the `capacity` tokens with the best
  /// scores (contract order, ties: lower t) and marks them in `picked`
  /// ([T, S] i1): an exact radix select over the expert's column (4 passes
  /// of 8 bits), then one pass in token order for the ties at the cut.
  void emitExpertChoicePick(Value expert, Value scores, Value picked,
                            Value capacity, const ExpertChoiceScratch &scratch);
  /// Phase 3: token t's slots, the experts that picked it best first (ties:
  /// lower expert), up to K.
  void emitExpertChoiceToken(Value t, Value scores, Value picked,
                             const ExpertChoiceScratch &scratch);
  /// The expert's capacity C = min(T, ceil(cf * T / E)) (exact).
  Value emitExpertChoiceCapacity(double capacityFactor);
  /// Step 7: drops the slots over each compute expert's capacity, then
  /// compacts every token's remaining slots.
  void emitCapacity(CapacityAttr capacity);
  /// Step 7 in parallel phases (the GPU runs each as a kernel). The slots
  /// are cut into chunks of kCapacityChunk in the priority's order
  /// (position: slot-major, q = j * T + t; score: token-major, q = t * K +
  /// j); per (chunk, compute expert) a count of the expert's slots
  /// (emitChunkCount into `counts` [chunks + 1, E_compute] index); per
  /// expert an exclusive prefix over the chunks, its total in the last row
  /// (emitChunkScan). Position: per (chunk, expert) the slots ranked past
  /// the capacity are marked in `dropped` ([T, K] i1, cleared first per
  /// token by emitClearDropped; emitPositionDrop). Score: the experts'
  /// starts in one list of T * K slots (emitListStarts, one thread), per
  /// (chunk, expert) the expert's slots written there in (t, j) order
  /// (emitScatterSlots), per expert the best `capacity` by raw weight kept
  /// and the others marked dropped (emitScoreDrop: an exact radix select,
  /// ties to the lower (t, j)). Then per token the compaction.
  static constexpr int64_t kCapacityChunk = 256;
  Value emitCapacityLimit(CapacityAttr capacity);
  void emitClearDropped(Value t, Value dropped);
  void emitChunkCount(Value chunk, Value expert, Value counts, bool slotMajor);
  void emitChunkScan(Value expert, Value counts, Value numChunks);
  void emitPositionDrop(Value chunk, Value expert, Value counts,
                        Value capacity, Value dropped);
  void emitListStarts(Value counts, Value numChunks, Value starts);
  void emitScatterSlots(Value chunk, Value expert, Value counts, Value starts,
                        Value list);
  void emitScoreDrop(Value expert, Value counts, Value numChunks,
                     Value starts, Value list, Value capacity, Value dropped,
                     Value histogram);
  /// Moves token t's valid slots (not marked in `dropped`, when given) to
  /// the front, in order, and empties the rest.
  void emitCompactToken(Value t, Value dropped = {});
  /// Step 8 and the scale, every token.
  void emitNormalize();
  /// Step 8 and the scale for token t.
  void emitNormalizeToken(Value t);

private:
  int64_t numSlots() const { return config.k; }
  int64_t numExperts() const { return config.experts.getNumExperts(); }
  int64_t numCompute() const { return config.experts.getCompute(); }

  /// scores[i] for token t (step 1), written to `out` (1-D f32 of S).
  void emitScores(Value t, Value out);
  /// The group mask of step 3 for one token.
  void emitGroupMask(Value keys, Value selectable, Value groupScores,
                     PickBuffers groupPicks);
  /// n_t of step 5, from the raw weights of the token's K best slots.
  Value emitCount(Value t);
  /// Length of the all-passing prefix of j in [0, n).
  Value emitPrefix(Value n, function_ref<Value(Value)> passes);
  /// Empties the slots of token t from `begin` on.
  void emitEmptySlots(Value t, Value begin);
  /// Runs `body(t, j, rank)` for the slots of chunk `chunk` (slot-major or
  /// token-major order) whose id is the compute expert `expert`, in order,
  /// `rank` counting them from `init`; returns init plus their number.
  Value emitChunkSlotsOf(Value chunk, Value expert, Value init, bool slotMajor,
                         function_ref<void(Value, Value, Value)> body);

  LoopEmitter &e;
  const RoutingConfig &config;
  StrategyKind kind;
  Value logits, kPerToken, selectionBias;
  /// Per-token scratch (emitPrepare).
  Value scores, keys, selectable, groupScores;
  PickBuffers picks, groupPicks;
};

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_UTILS_ROUTINGKERNELS_H
