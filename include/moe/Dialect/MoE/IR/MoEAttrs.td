//===- MoEAttrs.td - MoE dialect attributes ----------------*- tablegen -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEATTRS_TD
#define MOE_DIALECT_MOE_IR_MOEATTRS_TD

include "moe/Dialect/MoE/IR/MoEBase.td"
include "moe/Dialect/MoE/IR/MoEEnums.td"
include "moe/Dialect/MoE/IR/MoEInterfaces.td"
include "mlir/IR/AttrTypeBase.td"

//===----------------------------------------------------------------------===//
// Parameters
//===----------------------------------------------------------------------===//

// A float parameter in f32 semantics: it is compared against f32 scores, so
// it is rounded to f32 once, when the attribute is created. Stored as an
// APFloat so that uniquing is bitwise (NaN, -0).
def MoE_F32Param : APFloatParameter<"a 32-bit float"> {
  let parser = "::mlir::moe::detail::parseF32Param($_parser)";
  let printer = "::mlir::moe::detail::printF32Param($_printer, $_self)";
}

// A float parameter in f64 semantics (capacity factors: the contract
// computes capacities from the f64 value, exactly).
def MoE_F64Param : APFloatParameter<"a 64-bit float"> {
  let parser = "::mlir::moe::detail::parseF64Param($_parser)";
  let printer = "::mlir::moe::detail::printF64Param($_printer, $_self)";
}

class MoE_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<MoE_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

//===----------------------------------------------------------------------===//
// Expert space
//===----------------------------------------------------------------------===//

def MoE_ExpertSpaceAttr : MoE_Attr<"ExpertSpace", "experts"> {
  let summary = "the experts a layer routes over, by kind";
  let description = [{
    A layer routes over `S = compute + null + copy + const` experts, indexed
    in that order:

    | indices | kind | contribution of a slot with weight `w` for token `x` |
    |---|---|---|
    | `[0, E)` | compute | `w * FFN_e(x)` |
    | next `null` | null (AdaMoE null / MoE++ zero expert) | `0`, and no work at all |
    | next `copy` | copy (MoE++) | `w * x` |
    | next `const` | constant (MoE++) | `w * (a1 * x + a2 * v_i)`, `[a1, a2] = softmax(x @ Wc_i)` |

    Counts that are zero are omitted in the textual form.

    Example:

    ```mlir
    #moe.experts<compute = 8>                        // plain MoE, S = 8
    #moe.experts<compute = 8, null = 4>              // AdaMoE, S = 12
    #moe.experts<compute = 8, null = 1, copy = 1, const = 2>  // MoE++
    ```
  }];
  let parameters = (ins
    "int64_t":$compute,
    DefaultValuedParameter<"int64_t", "0">:$numNull,
    DefaultValuedParameter<"int64_t", "0">:$numCopy,
    DefaultValuedParameter<"int64_t", "0">:$numConst
  );
  // At least one compute expert, no negative count, and at most 2^31 - 1
  // experts in all (ids are i32): checked wherever the attribute is built.
  let genVerifyDecl = 1;
  // The zero-computation counts are optional keywords in a fixed order; a
  // custom directive parses them because an optional group cannot start
  // with a comma that another group also starts with.
  let assemblyFormat = [{
    `<` `compute` `=` $compute
        `` custom<ZeroComputeCounts>($numNull, $numCopy, $numConst) `>`
  }];
  // The zero-computation counts default to 0: `get(ctx, 8, 4)` is AdaMoE's
  // 8 compute + 4 null experts.
  let skipDefaultBuilders = 1;
  let builders = [
    AttrBuilder<(ins "int64_t":$compute, CArg<"int64_t", "0">:$numNull,
                     CArg<"int64_t", "0">:$numCopy,
                     CArg<"int64_t", "0">:$numConst), [{
      return $_get($_ctxt, compute, numNull, numCopy, numConst);
    }]>
  ];
  let extraClassDeclaration = [{
    /// Number of compute experts, `E`.
    int64_t getNumCompute() const { return getCompute(); }
    /// Router width `S`: all experts, compute and zero-computation.
    int64_t getNumExperts() const {
      return getCompute() + getNumNull() + getNumCopy() + getNumConst();
    }
    /// True when there are only compute experts (`S == E`).
    bool isComputeOnly() const { return getNumExperts() == getCompute(); }
    /// First index of each kind of zero-computation expert.
    int64_t getNullBegin() const { return getCompute(); }
    int64_t getCopyBegin() const { return getNullBegin() + getNumNull(); }
    int64_t getConstBegin() const { return getCopyBegin() + getNumCopy(); }
  }];
}

//===----------------------------------------------------------------------===//
// Routing strategies
//===----------------------------------------------------------------------===//

class MoE_StrategyAttr<string name, string attrMnemonic,
                       list<string> overridden = []>
    : MoE_Attr<name, attrMnemonic, [DeclareAttrInterfaceMethods<
          MoE_RoutingStrategyAttrInterface,
          !listconcat(["verifyRouting"], overridden)>]>;

def MoE_TopKAttr : MoE_StrategyAttr<"TopK", "top_k"> {
  let summary = "every token keeps its K best experts";
  let description = [{
    `n = K` for every token.

    Example: `strategy = top_k`.
  }];
}

def MoE_TopPAttr : MoE_StrategyAttr<"TopP", "top_p"> {
  let summary = "keep the shortest prefix whose scores sum to at least p";
  let description = [{
    Top-p (nucleus) routing (arXiv 2403.07652). The scores of the sorted
    experts are summed sequentially in f32; `n` is the first count at which
    the running sum is `>= p`, or `K` if `p == 1` or the sum never reaches
    `p`. Requires `0 < p <= 1`.

    Example: `strategy = top_p<p = 0.6>`.
  }];
  let parameters = (ins MoE_F32Param:$p);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def MoE_AdaptiveAttr : MoE_StrategyAttr<"Adaptive", "adaptive"> {
  let summary = "keep experts whose score is within tau of the best";
  let description = [{
    Adaptive gating (arXiv 2310.07188, generalised from top-2): the longest
    prefix of the sorted experts whose members pass
    `s[o_1] - s[o_i] <= tau`. `n >= 1` unless the best score is NaN, when
    `n = 0`. Requires `tau >= 0`.

    Example: `strategy = adaptive<tau = 0.1>`.
  }];
  let parameters = (ins MoE_F32Param:$tau);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def MoE_ThresholdAttr : MoE_StrategyAttr<"Threshold", "threshold"> {
  let summary = "keep experts whose score is at least tau, at least k_min";
  let description = [{
    Threshold routing (DynMoE, arXiv 2405.14297; ReMoE-style gating):
    `n = max(k_min, length of the longest prefix with s[o_i] >= tau)`.
    Requires a finite `tau` (it may be negative) and `0 <= k_min <= K`.

    Example: `strategy = threshold<tau = 0.05, k_min = 1>`.
  }];
  let parameters = (ins MoE_F32Param:$tau, "int64_t":$k_min);
  let assemblyFormat = "`<` struct(params) `>`";
  // `k_min <= K` needs the op's `k`: checked by `verifyRouting`.
  let genVerifyDecl = 1;
}

def MoE_DynamicKAttr : MoE_StrategyAttr<"DynamicK", "dynamic_k",
                                        ["usesKPerToken"]> {
  let summary = "a per-token count computed by the model";
  let description = [{
    DA-MoE style (arXiv 2409.06669): `n = clamp(k_per_token[t], 0, K)`. The
    importance computation that produces `k_per_token` stays ordinary tensor
    ops in the graph. The `k_per_token` operand is present if and only if the
    strategy is `dynamic_k`.

    Example: `strategy = dynamic_k`.
  }];
}

def MoE_ExpertChoiceAttr : MoE_StrategyAttr<"ExpertChoice", "expert_choice",
                                            ["dependsOnAllTokens"]> {
  let summary = "every expert picks its best tokens";
  let description = [{
    Expert choice (arXiv 2202.09368): each compute expert picks the
    `C = min(T, ceil(capacity_factor * T / E))` tokens with the highest
    scores; a token's slots are the experts that picked it, ordered by score,
    truncated to `K`. A token may get no expert at all. Requires `S = E`,
    `capacity_factor > 0`, and no `selection_bias`, `capacity` or `groups`.

    Example: `strategy = expert_choice<capacity_factor = 2.0>`.
  }];
  let parameters = (ins MoE_F64Param:$capacity_factor);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

//===----------------------------------------------------------------------===//
// Capacity and groups
//===----------------------------------------------------------------------===//

def MoE_CapacityAttr : MoE_Attr<"Capacity", "capacity"> {
  let summary = "a per-expert limit on the slots it serves";
  let description = [{
    Each compute expert keeps at most `C = ceil(factor * T * K / E)` of the
    slots that chose it (the exact ceiling of the product with `factor` as an
    f64). The priority decides which slots stay; dropped slots become empty
    and each token's remaining slots are compacted to the front, in order.
    Requires `factor > 0`.

    Example: `capacity = <factor = 1.25, priority = score>`.
  }];
  let parameters = (ins MoE_F64Param:$factor,
                        EnumParameter<MoE_CapacityPriority>:$priority);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
}

def MoE_GroupsAttr : MoE_Attr<"Groups", "groups"> {
  let summary = "group-limited routing (DeepSeek-V2/V3)";
  let description = [{
    The `E` experts are split into `n` contiguous groups and scored by
    `score`: `top2_sum` (the default) sums each group's two largest
    selection keys, `max` takes its largest; only the experts of the `top`
    best groups can be selected (ties: lower group index; a NaN group score
    ranks last). Requires `S = E`, `E % n == 0`, `E / n >= 2` for
    `top2_sum` (`E / n >= 1` for `max`), `1 <= top <= n` and
    `K <= top * E / n`. The default score is omitted in the textual form.

    Example:

    ```mlir
    groups = <n = 8, top = 4>                 // DeepSeek-V3 (bias, top2_sum)
    groups = <n = 8, top = 3, score = max>    // DeepSeek-V3 official, no bias
    ```
  }];
  let parameters = (ins "int64_t":$n, "int64_t":$top,
      DefaultValuedParameter<"::mlir::moe::GroupScore",
                             "::mlir::moe::GroupScore::top2_sum">:$score);
  let assemblyFormat = "`<` struct(params) `>`";
  // `n` dividing `E` and `K <= top * E / n` need the op: checked there.
  let genVerifyDecl = 1;
  let builders = [
    AttrBuilder<(ins "int64_t":$n, "int64_t":$top), [{
      return $_get($_ctxt, n, top, ::mlir::moe::GroupScore::top2_sum);
    }]>
  ];
}

//===----------------------------------------------------------------------===//
// CPU kernel schedules
//===----------------------------------------------------------------------===//

// An integer that may be left out (then the schedule chooser decides).
def MoE_OptionalIntParam : OptionalParameter<"std::optional<int64_t>"> {
  let printer = "$_printer << *$_self";
}

def MoE_MatmulScheduleAttr : MoE_Attr<"MatmulSchedule", "matmul_schedule"> {
  let summary = "overrides of the CPU matmul kernel's schedule";
  let description = [{
    The CPU lowering (`convert-moe-to-loops` and the bufferization models
    that `moe-cpu-pipeline` runs) computes the matmuls of `moe.gate`,
    `moe.route_dispatch`, `moe.grouped_matmul` and `moe.expert_ffn` with one
    register-blocked kernel whose schedule a single function chooses from
    the target (the module's `moe.cpu_target`) and the matmul's shape; the
    defaults below are AVX-512's (AVX2: `lanes = 8, cols = 16, rows = 6,
    tail_rows = 3, tail_panels = 1`). Placed as the discardable attribute
    `moe.matmul_schedule` on one of those ops or on any op around them (a
    function, a module), this attribute overrides the fields it names; the
    innermost one wins, and the fields it leaves out keep the chosen values.
    A schedule never changes a value: every output element is the same f32
    fused multiply-add chain over the depth in order, whatever the blocking.

    | field | meaning | default | range |
    |---|---|---|---|
    | `lanes` | f32 lanes of one vector (a panel is 32 columns: `32 / lanes` vectors) | 16 | 4, 8, 16 |
    | `cols` | columns of a register block (at least `lanes`; a panel holds `32 / cols` blocks side by side) | 32 | 4, 8, 16, 32 |
    | `rows` | rows of the main register block (`rows * cols / lanes` accumulators) | 8 | 1 to 16 |
    | `tail_rows` | rows of the one smaller block after the main blocks (0: none) | 4 | 0 to 16 |
    | `tail_panels` | panels that the last rows (blocks of 2 and 1) cover at once | 4 | 1 to 8 |
    | `chunk_rows` | rows per L2 chunk (the rows of A packed together) | 256 | 1 to 4096 |
    | `depth_block` | depth per L1 block, with A packed per block (0: not blocked; only f32 results are blocked) | 256 | 0 to 4096 |
    | `prefetch` | k steps ahead that blocks prefetch packed weights (0: none) | 32 | 0 to 1024 |
    | `prefetch_min_rows` | the fewest rows of a block that prefetches | 4 | 1 to 16 |
    | `ffn_rows` | rows of one `moe.expert_ffn` work item (its f32 scratch) | 128 | 1 to 4096 |

    `chunk_rows * depth_block` may not exceed 2^20 (the pack of A is
    f32 `[ceil(chunk_rows / rows), depth_block, rows]`). The GPU lowering
    ignores the attribute.

    Example:

    ```mlir
    func.func @f(...) attributes {
        moe.matmul_schedule = #moe.matmul_schedule<lanes = 8, rows = 4>} {
      ...
    }
    ```
  }];
  let parameters = (ins
    MoE_OptionalIntParam:$lanes,
    MoE_OptionalIntParam:$cols,
    MoE_OptionalIntParam:$rows,
    MoE_OptionalIntParam:$tail_rows,
    MoE_OptionalIntParam:$tail_panels,
    MoE_OptionalIntParam:$chunk_rows,
    MoE_OptionalIntParam:$depth_block,
    MoE_OptionalIntParam:$prefetch,
    MoE_OptionalIntParam:$prefetch_min_rows,
    MoE_OptionalIntParam:$ffn_rows
  );
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The name of the discardable attribute that carries it.
    static constexpr ::llvm::StringLiteral getAttributeName() {
      return ::llvm::StringLiteral("moe.matmul_schedule");
    }
  }];
}

def MoE_CPUTargetAttr : MoE_Attr<"CPUTarget", "cpu_target"> {
  let summary = "the CPU that the generated code is compiled for";
  let description = [{
    Recorded on a module as the discardable attribute `moe.cpu_target` by
    `moe-cpu-target` (which `moe-cpu-pipeline{target-cpu=...}` runs first):
    the LLVM CPU name and its target features (`+feature` or `-feature`,
    comma separated), as LLVM will target them. The CPU lowering chooses
    its kernels' schedules from it (vector width and registers: AVX-512,
    AVX2 or SSE); without it, the schedules are AVX-512's.

    Example:

    ```mlir
    module attributes {moe.cpu_target = #moe.cpu_target<cpu = "znver3",
        features = "+avx,+avx2,+fma,+sse4.2">} {
      ...
    }
    ```
  }];
  let parameters = (ins StringRefParameter<"the LLVM CPU name">:$cpu,
                        StringRefParameter<"the target features">:$features);
  let assemblyFormat = "`<` struct(params) `>`";
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// The name of the discardable attribute that carries it.
    static constexpr ::llvm::StringLiteral getAttributeName() {
      return ::llvm::StringLiteral("moe.cpu_target");
    }
    /// Whether feature `name` (without its sign) is enabled: the last
    /// `+name` or `-name` wins.
    bool hasFeature(::llvm::StringRef name) const;
  }];
}

//===----------------------------------------------------------------------===//
// Expert placement (expert parallelism)
//===----------------------------------------------------------------------===//

def MoE_EPPlacementAttr : MoE_Attr<"EPPlacement", "ep_placement"> {
  let summary = "which rank holds which compute experts";
  let description = [{
    The expert placement of an expert-parallel layer (`moe.ep_dispatch`):
    each rank holds one contiguous block of the compute experts, in rank
    order. Two forms:

    * `balanced`: the blocks are as even as possible over the rank count of
      the run (known at run time, not in the module): rank `r` of `N` holds
      experts `[floor(r E / N), floor((r + 1) E / N))`. One module serves
      every rank count.
    * `blocks = [b_0, ..., b_N]`: rank `r` holds `[b_r, b_{r+1})`; uneven
      blocks and empty ones are allowed. `b_0 = 0`, the bounds do not
      decrease, and `b_N` is the layer's `E` (checked by the op). The module
      then runs on exactly `N` ranks (a run with another rank count fails
      with an error naming both).

    Example:

    ```mlir
    #moe.ep_placement<balanced>
    #moe.ep_placement<blocks = [0, 3, 8]>   // rank 0: experts 0-2, rank 1: 3-7
    ```
  }];
  let parameters = (ins OptionalArrayRefParameter<"int64_t">:$blocks);
  let genVerifyDecl = 1;
  let assemblyFormat = "`<` custom<EPPlacement>($blocks) `>`";
  let extraClassDeclaration = [{
    /// True for the `balanced` form (no explicit blocks).
    bool isBalanced() const { return getBlocks().empty(); }
    /// The rank count the placement is written for (0 when balanced).
    int64_t getNumRanks() const {
      return isBalanced() ? 0 : static_cast<int64_t>(getBlocks().size()) - 1;
    }
  }];
}

#endif // MOE_DIALECT_MOE_IR_MOEATTRS_TD
