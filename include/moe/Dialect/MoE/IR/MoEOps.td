//===- MoEOps.td - MoE dialect operations ------------------*- tablegen -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEOPS_TD
#define MOE_DIALECT_MOE_IR_MOEOPS_TD

include "moe/Dialect/MoE/IR/MoEBase.td"
include "moe/Dialect/MoE/IR/MoEAttrs.td"
include "moe/Dialect/MoE/IR/MoEEnums.td"
include "moe/Dialect/MoE/IR/MoEInterfaces.td"
include "moe/Dialect/MoE/IR/MoETypes.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/OpBase.td"

// No memory effects (CSE and DCE apply), but speculatable only when every
// operand and result type is static: with a dynamic size, the lowering
// checks at run time that the sizes agree (a static result of a dynamic
// input, two dynamic `T`s), and hoisting the op out of a loop or a branch
// could report a mismatch that the program never reaches.
class MoE_Op<string mnemonic, list<Trait> traits = []>
    : Op<MoE_Dialect, mnemonic,
         !listconcat(traits, [NoMemoryEffect,
             DeclareOpInterfaceMethods<ConditionallySpeculatable>])> {
  // ODS checks each operand's rank and element types (MoETypes.td); the C++
  // verifiers check that the symbolic sizes agree, naming the operands.
  let hasVerifier = 1;
}

// Declares an `AttrSizedOperandSegments` op's operand groups (optional ones
// with a trailing `?`) and checks, before the operand types (a structural
// trait is verified before the op's invariants), that every required group
// holds exactly one value.
class MoE_OperandGroups<string groups>
    : NativeOpTrait<"RequiredOperandSegments", [], [{
        /// The ODS operand groups, in order; optional ones end in `?`.
        static ::llvm::StringRef getOperandGroups() { return "}] # groups #
      [{"; }
      }]>, StructuralOpTrait {
  let cppNamespace = "::mlir::moe::OpTrait";
}

// The routing attributes shared by `moe.route` and `moe.layer`.
defvar MoE_RoutingAttrs = (ins
  MoE_ExpertSpaceAttr:$experts,
  I64Attr:$k,
  DefaultValuedAttr<MoE_ScoringAttr, "::mlir::moe::Scoring::softmax">:$scoring,
  MoE_RoutingStrategyAttrInterface:$strategy,
  DefaultValuedAttr<MoE_NormalizeAttr, "::mlir::moe::Normalize::none">:$normalize,
  DefaultValuedAttr<F32Attr, "1.0f">:$scale,
  OptionalAttr<MoE_CapacityAttr>:$capacity,
  OptionalAttr<MoE_GroupsAttr>:$groups
);

defvar MoE_RoutingFormat = [{
  `experts` `=` $experts `k` `=` $k (`scoring` `=` `` $scoring^)?
  `strategy` `=` custom<Strategy>($strategy)
  (`normalize` `=` `` $normalize^)? (`scale` `=` $scale^)?
  (`capacity` `=` $capacity^)? (`groups` `=` $groups^)?
}];

//===----------------------------------------------------------------------===//
// GateOp
//===----------------------------------------------------------------------===//

def MoE_GateOp : MoE_Op<"gate", [
    DestinationStyleOpInterface, AllTypesMatch<["init", "logits"]>]> {
  let summary = "router projection: logits = x @ w (+ b)";
  let description = [{
    Computes the router logits `logits[T,S] = x[T,H] @ w[H,S] (+ b[S])`,
    accumulating in f32 whatever the input element type.

    * `x`: `tensor<T x H x f32|f16|bf16>`
    * `w`: `tensor<H x S x f32|f16|bf16>`
    * `bias` (optional): `tensor<S x f32|f16|bf16>`
    * `init`: `tensor<T x S x f32>`; the result has its type

    Destination-passing style: the logits are written into `init` (every
    element; its values are not read), in place after one-shot-bufferize.

    Example:

    ```mlir
    %empty = tensor.empty(%t) : tensor<?x12xf32>
    %logits = moe.gate %x, %w bias(%b : tensor<12xf32>) into(%empty)
        : tensor<?x64xf32>, tensor<64x12xf32> into tensor<?x12xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor<2, "T x H">:$x, MoE_FloatTensor<2, "H x S">:$w,
                       Optional<MoE_FloatTensor<1, "S">>:$bias,
                       MoE_F32Tensor<2, "T x S">:$init);
  let results = (outs MoE_F32Tensor<2, "T x S">:$logits);
  let assemblyFormat = [{
    $x `,` $w (`bias` `(` $bias^ `:` type($bias) `)`)? `into` `(` $init `)`
    attr-dict `:` type($x) `,` type($w) `into` type($init)
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return getInitMutable();
    }
  }];
}

//===----------------------------------------------------------------------===//
// RouteOp
//===----------------------------------------------------------------------===//

defvar MoE_RoutingCanonicalizationDoc = [{

    Canonicalization (`-canonicalize`) rewrites the routing configuration to
    a simpler one that computes exactly the same ids and weights for every
    input, NaN rows, empty slots and `scale` included:

    * `top_p<p = 1.0>` becomes `top_k` (the contract gives `n = K` when
      `p == 1`);
    * `top_p` with `k = 1` becomes `top_k` (`n` is 1 whether or not the sum
      reaches `p`);
    * `threshold<tau, k_min = K>` becomes `top_k` (`n = max(K, prefix)`
      capped at `K`);
    * `dynamic_k` whose `k_per_token` is a constant with every value `>= K`
      becomes `top_k` and the operand is dropped (`clamp(k, 0, K) = K`);
    * `capacity` that cannot bind is dropped: with a static `T`, when
      `C = ceil(cf * T * K / E) >= T` (an expert receives at most one slot
      per token, so at most `T` slots);
    * `groups<n, top = n>` is dropped (every group is kept);
    * `normalize = non_null` without null experts becomes `selected`.
  }];

def MoE_RouteOp : MoE_Op<"route", [
    AttrSizedOperandSegments,
    MoE_OperandGroups<"logits k_per_token? selection_bias? ids_init weights_init">,
    DestinationStyleOpInterface, AllTypesMatch<["ids_init", "ids"]>,
    AllTypesMatch<["weights_init", "weights"]>,
    DeclareOpInterfaceMethods<MoE_RoutingOpInterface>]> {
  let summary = "choose each token's experts and their weights";
  let description = !strconcat([{
    Routes every token over the expert space `experts` and returns, per
    token, up to `K` slots: `ids[T,K]` (i32) and `weights[T,K]` (f32). For
    each token:

    1. scores `s = scoring(logits[t])` in f32 (`softmax`, `sigmoid`, `none`);
    2. selection keys `u = s + selection_bias` (the bias changes *which*
       experts are picked, never their weights);
    3. with `groups`, only experts of the best groups are selectable;
    4. the selectable experts are sorted by `u` descending (ties: lower index
       first; NaN keys last, among themselves by index; `-0 == +0`);
    5. the strategy decides the count `n_t <= K` (`top_k`, `top_p`,
       `adaptive`, `threshold`, `dynamic_k`, `expert_choice`);
    6. slot `j < n_t` holds the `j`-th expert and its score; the other slots
       are empty (`id = -1`, weight `0`): valid slots always come first;
    7. with `capacity`, each compute expert keeps at most `C` slots, dropped
       slots become empty and each token's slots are compacted;
    8. weights are normalised (`none`, `selected`, `non_null`) and multiplied
       by `scale`.

    Operands: `logits: tensor<T x S x f32>`; `k_per_token: tensor<T x i32>`
    (present if and only if the strategy is `dynamic_k`);
    `selection_bias: tensor<S x f32>` (optional, not with `expert_choice`);
    destinations `ids_init: tensor<T x K x i32>`, `weights_init: tensor<T x
    K x f32>`. Results: `ids` and `weights`, of their destinations' types.

    Destination-passing style: the slots are written into `ids_init` and
    `weights_init` (every element; their values are not read), in place
    after one-shot-bufferize.

    Example (AdaMoE: 8 compute and 4 null experts, top-4, weights
    renormalised over the real experts):

    ```mlir
    %ids0 = tensor.empty(%t) : tensor<?x4xi32>
    %weights0 = tensor.empty(%t) : tensor<?x4xf32>
    %ids, %weights = moe.route %logits
        experts = <compute = 8, null = 4> k = 4 strategy = top_k
        normalize = non_null into(%ids0, %weights0)
        : tensor<?x12xf32> into tensor<?x4xi32>, tensor<?x4xf32>
    ```

    Top-p routing with a DeepSeek-style selection bias:

    ```mlir
    %ids, %weights = moe.route %logits bias(%b : tensor<16xf32>)
        experts = <compute = 16> k = 4 scoring = sigmoid
        strategy = top_p<p = 0.7> normalize = selected scale = 2.5
        into(%ids0, %weights0)
        : tensor<?x16xf32> into tensor<?x4xi32>, tensor<?x4xf32>
    ```
  }], MoE_RoutingCanonicalizationDoc);
  let hasCanonicalizer = 1;
  let arguments = !con((ins MoE_F32Tensor<2, "T x S">:$logits,
                            Optional<MoE_I32Tensor<1, "T">>:$k_per_token,
                            Optional<MoE_F32Tensor<1, "S">>:$selection_bias,
                            MoE_I32Tensor<2, "T x K">:$ids_init,
                            MoE_F32Tensor<2, "T x K">:$weights_init),
                       MoE_RoutingAttrs);
  let results = (outs MoE_I32Tensor<2, "T x K">:$ids, MoE_F32Tensor<2, "T x K">:$weights);
  let assemblyFormat = !strconcat([{
    $logits (`k_per_token` `(` $k_per_token^ `:` type($k_per_token) `)`)?
    (`bias` `(` $selection_bias^ `:` type($selection_bias) `)`)?
  }], MoE_RoutingFormat, [{
    `into` `(` $ids_init `,` $weights_init `)` attr-dict `:` type($logits)
    `into` type($ids_init) `,` type($weights_init)
  }]);
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      // ids_init and weights_init, the last two operands.
      return ::mlir::MutableOperandRange(
          getOperation(), getOperation()->getNumOperands() - 2, 2);
    }
  }];
}

//===----------------------------------------------------------------------===//
// RouteDispatchOp
//===----------------------------------------------------------------------===//

def MoE_RouteDispatchOp : MoE_Op<"route_dispatch", [
    AttrSizedOperandSegments,
    MoE_OperandGroups<"x w_router b_router? k_per_token? selection_bias?">,
    DeclareOpInterfaceMethods<MoE_RoutingOpInterface>]> {
  let summary = "fused gating, routing and dispatch";
  let description = [{
    `moe.gate` + `moe.route` + `moe.dispatch` as one op (level L3 of the
    architecture), created by `moe-fuse-gating-dispatch`. Its results are
    exactly those of the three ops: `ids` and `weights` of the route, and
    `rows`, `offsets`, `slot_rows` of the dispatch (over the `E` compute
    experts of `experts`).

    It exists so that the lowering can walk the tokens in tiles of `tile`
    tokens: the router matmul of a tile, scoring, selection, normalisation
    and the per-expert counts in one pass, then the scan and the scatter. The
    `[T, S]` logits and scores are never materialised, only a `[tile, S]`
    buffer.

    Only strategies that decide token by token can be fused: the verifier
    rejects `expert_choice` and `capacity`, which need every token before
    deciding (the fusion pass leaves those unfused).

    Example:

    ```mlir
    %ids, %weights, %rows, %offsets, %slot_rows = moe.route_dispatch %x
        router(%wr : tensor<64x12xf32>)
        experts = <compute = 8, null = 4> k = 4 strategy = top_k
        normalize = non_null tile = 32
        : tensor<?x64xf32> -> tensor<?x4xi32>, tensor<?x4xf32>,
          tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>
    ```
  }];
  let arguments = !con((ins MoE_FloatTensor<2, "T x H">:$x,
                            MoE_FloatTensor<2, "H x S">:$w_router,
                            Optional<MoE_FloatTensor<1, "S">>:$b_router,
                            Optional<MoE_I32Tensor<1, "T">>:$k_per_token,
                            Optional<MoE_F32Tensor<1, "S">>:$selection_bias),
                       MoE_RoutingAttrs,
                       (ins DefaultValuedAttr<I64Attr, "32">:$tile));
  let results = (outs MoE_I32Tensor<2, "T x K">:$ids, MoE_F32Tensor<2, "T x K">:$weights,
                      MoE_FloatTensor<2, "R x H">:$rows, MoE_I32Tensor<1, "E+1">:$offsets,
                      MoE_I32Tensor<2, "T x K">:$slot_rows);
  let assemblyFormat = !strconcat([{
    $x `router` `(` $w_router `:` type($w_router) `)`
    (`router_bias` `(` $b_router^ `:` type($b_router) `)`)?
    (`k_per_token` `(` $k_per_token^ `:` type($k_per_token) `)`)?
    (`bias` `(` $selection_bias^ `:` type($selection_bias) `)`)?
  }], MoE_RoutingFormat, [{
    (`tile` `=` $tile^)? attr-dict
    `:` type($x) `->` type($ids) `,` type($weights) `,` type($rows) `,`
    type($offsets) `,` type($slot_rows)
  }]);
}

//===----------------------------------------------------------------------===//
// DispatchOp
//===----------------------------------------------------------------------===//

def MoE_DispatchOp : MoE_Op<"dispatch"> {
  let summary = "gather the compute slots' tokens into rows sorted by expert";
  let description = [{
    A stable counting sort of the compute slots. Only slots whose id is a
    compute expert (`0 <= id < num_experts`) are dispatched; every other id
    (null, copy, constant, empty, or out of range) dispatches nothing. Rows
    are ordered by expert, then token, then slot.

    * `x: tensor<T x H x f32|f16|bf16>`, `ids: tensor<T x K x i32>`
    * `rows: tensor<R x H>` (same element type as `x`): `R` is normally
      dynamic (`R = offsets[E]`, data dependent); a static `R_max` gives the
      padded form, where rows past `offsets[E]` are unspecified and slots that
      do not fit are not dispatched
    * `offsets: tensor<(E+1) x i32>`: expert `e` owns rows
      `[offsets[e], offsets[e+1])`
    * `slot_rows: tensor<T x K x i32>`: the row of each slot, or `-1`

    Example:

    ```mlir
    %rows, %offsets, %slot_rows = moe.dispatch %x, %ids num_experts = 8
        : tensor<?x64xf32>, tensor<?x4xi32>
        -> tensor<?x64xf32>, tensor<9xi32>, tensor<?x4xi32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor<2, "T x H">:$x, MoE_I32Tensor<2, "T x K">:$ids,
                       I64Attr:$num_experts);
  let results = (outs MoE_FloatTensor<2, "R x H">:$rows, MoE_I32Tensor<1, "E+1">:$offsets,
                      MoE_I32Tensor<2, "T x K">:$slot_rows);
  let assemblyFormat = [{
    $x `,` $ids `num_experts` `=` $num_experts attr-dict
    `:` type($x) `,` type($ids) `->` type($rows) `,` type($offsets) `,`
    type($slot_rows)
  }];
}

//===----------------------------------------------------------------------===//
// DispatchPaddedOp
//===----------------------------------------------------------------------===//

def MoE_DispatchPaddedOp : MoE_Op<"dispatch_padded", [
    DestinationStyleOpInterface,
    AllTypesMatch<["rows_init", "rows"]>,
    AllTypesMatch<["offsets_init", "offsets"]>,
    AllTypesMatch<["slot_rows_init", "slot_rows"]>]> {
  let summary = "the padded moe.dispatch, in destination-passing style";
  let description = [{
    `moe.dispatch` into given destinations: the same stable counting sort of
    the compute slots, written into `rows_init` (`R_max` rows, static or
    dynamic), `offsets_init` and `slot_rows_init`, whose values are the
    results. As in the padded form of `moe.dispatch`, `offsets` are clamped
    to `R_max` and slots whose row would not fit are not dispatched
    (`slot_rows` is `-1` there). Rows at or past `offsets[E]` keep the
    values of `rows_init` (the contract leaves them unspecified; nothing
    downstream reads them); every entry of `offsets` and `slot_rows` is
    written.

    One-shot-bufferize writes the results into the destinations' buffers in
    place (an `R_max x H` workspace allocated once, a slice of a larger
    buffer), where `moe.dispatch` allocates new ones. The GPU lowering does
    not take this op yet.

    * `x: tensor<T x H x f32|f16|bf16>`, `ids: tensor<T x K x i32>`
    * `rows_init: tensor<R_max x H>` (the element type of `x`),
      `offsets_init: tensor<(E+1) x i32>`, `slot_rows_init: tensor<T x K x
      i32>`; the results have their types

    Example:

    ```mlir
    %rows, %offsets, %slot_rows = moe.dispatch_padded %x, %ids
        num_experts = 8 into(%r0, %o0, %s0)
        : tensor<?x64xf32>, tensor<?x2xi32>
        into tensor<256x64xf32>, tensor<9xi32>, tensor<?x2xi32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor<2, "T x H">:$x, MoE_I32Tensor<2, "T x K">:$ids,
                       MoE_FloatTensor<2, "R_max x H">:$rows_init,
                       MoE_I32Tensor<1, "E+1">:$offsets_init,
                       MoE_I32Tensor<2, "T x K">:$slot_rows_init,
                       I64Attr:$num_experts);
  let results = (outs MoE_FloatTensor<2, "R_max x H">:$rows, MoE_I32Tensor<1, "E+1">:$offsets,
                      MoE_I32Tensor<2, "T x K">:$slot_rows);
  let assemblyFormat = [{
    $x `,` $ids `num_experts` `=` $num_experts
    `into` `(` $rows_init `,` $offsets_init `,` $slot_rows_init `)` attr-dict
    `:` type($x) `,` type($ids) `into` type($rows_init) `,`
    type($offsets_init) `,` type($slot_rows_init)
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return ::mlir::MutableOperandRange(getOperation(), /*start=*/2,
                                         /*length=*/3);
    }
  }];
}

//===----------------------------------------------------------------------===//
// GroupedMatmulOp
//===----------------------------------------------------------------------===//

def MoE_GroupedMatmulOp : MoE_Op<"grouped_matmul", [
    DestinationStyleOpInterface, AllTypesMatch<["init", "out"]>]> {
  let summary = "ragged dot: each row segment times its expert's matrix";
  let description = [{
    `out[r] = lhs[r, :] @ rhs[e(r), :, :]` where
    `offsets[e(r)] <= r < offsets[e(r) + 1]`. Rows at or past `offsets[E]` are
    zero. An empty group is legal and costs nothing. Offsets are sanitised
    before use (`o[0] = 0`, `o[e+1] = clamp(o[e+1], o[e], R)`), so no input
    values can make it read or write out of bounds. Accumulates in f32.

    Destination-passing style: the result is written into `init` (every
    element of it; its values are not read), in place after
    one-shot-bufferize.

    * `lhs: tensor<R x Kd x f32|f16|bf16>`, `rhs: tensor<E x Kd x N x
      f32|f16|bf16>`, `offsets: tensor<(E+1) x i32>`
    * `init: tensor<R x N>` with the element type of `lhs`; the result has
      its type

    Example:

    ```mlir
    %empty = tensor.empty(%r) : tensor<?x128xf32>
    %h = moe.grouped_matmul %rows, %w_up, %offsets into(%empty)
        : tensor<?x64xf32>, tensor<8x64x128xf32>, tensor<9xi32>
        into tensor<?x128xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor<2, "R x Kd">:$lhs,
                       MoE_FloatTensor<3, "E x Kd x N">:$rhs,
                       MoE_I32Tensor<1, "E+1">:$offsets,
                       MoE_FloatTensor<2, "R x N">:$init);
  let results = (outs MoE_FloatTensor<2, "R x N">:$out);
  let assemblyFormat = [{
    $lhs `,` $rhs `,` $offsets `into` `(` $init `)` attr-dict
    `:` type($lhs) `,` type($rhs) `,` type($offsets) `into` type($init)
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return getInitMutable();
    }
  }];
}

//===----------------------------------------------------------------------===//
// ExpertFFNOp
//===----------------------------------------------------------------------===//

def MoE_ExpertFFNOp : MoE_Op<"expert_ffn", [AttrSizedOperandSegments,
    MoE_OperandGroups<"rows offsets w_up w_gate? w_down b_up? b_down? init">,
    DestinationStyleOpInterface, AllTypesMatch<["init", "y"]>]> {
  let summary = "each expert's feed-forward network on its segment of rows";
  let description = [{
    For the rows `r` of expert `e` (`offsets[e] <= r < offsets[e+1]`):

    * gated (SwiGLU family):
      `y = (act(r @ w_gate[e]) * (r @ w_up[e])) @ w_down[e]`
    * not gated: `y = act(r @ w_up[e] + b_up[e]) @ w_down[e] + b_down[e]`

    Rows at or past `offsets[E]` are zero; an expert with no rows costs
    nothing. `w_gate` is present if and only if `gated`; the biases only when
    not gated. Defined as (and decomposable into) `moe.grouped_matmul` plus
    elementwise ops; intermediates are rounded to the rows' element type.

    * `rows: tensor<R x H x f32|f16|bf16>`, `offsets: tensor<(E+1) x i32>`
    * `w_up`, `w_gate`: `tensor<E x H x F>`, `w_down: tensor<E x F x H>`
    * `b_up: tensor<E x F>`, `b_down: tensor<E x H>`
    * `init: tensor<R x H>` with the element type of `rows`; the result has
      its type

    Destination-passing style: the result is written into `init` (every
    element; its values are not read), in place after one-shot-bufferize.

    With `packed`, the weights come pre-packed in 32-column panels, the
    layout the CPU kernels stream (packing happens once, when weights are
    bound, not on every call): `w_up`, `w_gate`:
    `tensor<E x ceil(F/32) x H x 32>` with
    `packed[e, p, h, j] = w[e, h, 32 p + j]`, `w_down`:
    `tensor<E x ceil(H/32) x F x 32>` likewise; columns past `F` (or `H`)
    in the last panel are padding (any value; never read into a result).

    With `packed` and `quant = q8_0` or `quant = q4_0`, the weights are
    GGUF-compatible quantized blocks in tiles of 32 columns x 32 depths, as
    bytes: a weight `w[e, k, n]` (contraction `k`) is
    `tensor<E x ceil(N/32) x K/32 x B x i8>`, `B = 1088` (q8_0) or `576`
    (q4_0), so `w_up`, `w_gate`: `tensor<E x F/32 x H/32 x B x i8>`,
    `w_down`: `tensor<E x H/32 x F/32 x B x i8>`; `H` and `F` must be
    multiples of 32. Tile `[e, p, b]` holds columns `n = 32 p + j` and
    depths `k = 32 b + i`: bytes `[2j, 2j+2)` are the f16 scale `d[j]` of
    the block (column `n`, depths `32b .. 32b+31`), then row `i` of the
    quants: q8_0 `q = int8 at 64 + 32 i + j`, `w = q * d[j]`; q4_0
    `u = byte 64 + 16 i + (j mod 16)`, its low nibble for `j < 16`, high
    nibble otherwise, `w = (u - 8) * d[j]`. The bytes of ggml's block
    (column `n`, block `b`) are moved, never re-quantised. The kernels
    dequantise in registers (exactly: `q * d` is an f32 product without
    rounding) and compute in f32 as for f32 weights.

    Example:

    ```mlir
    %empty = tensor.empty(%r) : tensor<?x64xf32>
    %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<8x64x128xf32>)
        gate(%wg : tensor<8x64x128xf32>) down(%wd : tensor<8x128x64xf32>)
        activation = silu gated into(%empty)
        : tensor<?x64xf32>, tensor<9xi32> into tensor<?x64xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor<2, "R x H">:$rows, MoE_I32Tensor<1, "E+1">:$offsets,
                       MoE_ExpertWeights<"E x H x F", "E x ceil(F/32) x H x 32", "E x F/32 x H/32 x B">:$w_up,
                       Optional<MoE_ExpertWeights<"E x H x F", "E x ceil(F/32) x H x 32", "E x F/32 x H/32 x B">>:$w_gate,
                       MoE_ExpertWeights<"E x F x H", "E x ceil(H/32) x F x 32", "E x H/32 x F/32 x B">:$w_down,
                       Optional<MoE_FloatTensor<2, "E x F">>:$b_up,
                       Optional<MoE_FloatTensor<2, "E x H">>:$b_down,
                       MoE_FloatTensor<2, "R x H">:$init,
                       DefaultValuedAttr<MoE_ActivationAttr,
                           "::mlir::moe::Activation::silu">:$activation,
                       UnitAttr:$gated, UnitAttr:$packed,
                       OptionalAttr<MoE_WeightQuantAttr>:$quant);
  let results = (outs MoE_FloatTensor<2, "R x H">:$y);
  let assemblyFormat = [{
    $rows `,` $offsets
    `up` `(` $w_up `:` type($w_up) `)`
    (`gate` `(` $w_gate^ `:` type($w_gate) `)`)?
    `down` `(` $w_down `:` type($w_down) `)`
    (`up_bias` `(` $b_up^ `:` type($b_up) `)`)?
    (`down_bias` `(` $b_down^ `:` type($b_down) `)`)?
    `activation` `=` `` $activation (`gated` $gated^)? (`packed` $packed^)?
    (`quant` `=` `` $quant^)?
    `into` `(` $init `)` attr-dict `:` type($rows) `,` type($offsets) `into`
    type($init)
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return getInitMutable();
    }
  }];
}

//===----------------------------------------------------------------------===//
// CombineOp
//===----------------------------------------------------------------------===//

def MoE_CombineOp : MoE_Op<"combine", [AttrSizedOperandSegments,
    MoE_OperandGroups<"y slot_rows ids weights x const_proj? const_values? init">,
    DestinationStyleOpInterface, AllTypesMatch<["init", "out"]>]> {
  let summary = "weighted sum of each token's slots, in slot order";
  let description = [{
    `out[t] = sum over j = 0 .. K-1, in that order, of weights[t,j] * c(t,j)`
    accumulated in f32 from +0.0, where `c` is

    * `y[slot_rows[t,j]]` for a compute slot,
    * `x[t]` for a copy expert,
    * `a1 * x[t] + a2 * v[i]` with `[a1, a2] = softmax(x[t] @ Wc[i])` for
      constant expert `i`,
    * nothing for null and empty slots, out-of-range ids, and compute slots
      whose `slot_rows` is outside `[0, R)` (so a NaN weight on them never
      reaches the output).

    The order is fixed, so the result is deterministic (no atomics).

    Destination-passing style: the result is written into `init` (every
    element; its values are not read), in place after one-shot-bufferize.

    * `y: tensor<R x H>`, `slot_rows`, `ids: tensor<T x K x i32>`,
      `weights: tensor<T x K x f32>`, `x: tensor<T x H>`
    * `const_proj` (`Wc: tensor<N_const x H x 2>`) and `const_values`
      (`v: tensor<N_const x H>`): present if and only if the expert space has
      constant experts
    * `init: tensor<T x H>` with the element type of `x`; the result has its
      type

    Example:

    ```mlir
    %empty = tensor.empty(%t) : tensor<?x64xf32>
    %out = moe.combine %y, %slot_rows, %ids, %weights, %x
        experts = <compute = 8, copy = 1> into(%empty)
        : tensor<?x64xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>,
          tensor<?x64xf32> into tensor<?x64xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor<2, "R x H">:$y, MoE_I32Tensor<2, "T x K">:$slot_rows,
                       MoE_I32Tensor<2, "T x K">:$ids, MoE_F32Tensor<2, "T x K">:$weights,
                       MoE_FloatTensor<2, "T x H">:$x,
                       Optional<MoE_FloatTensor<3, "N_const x H x 2">>:$const_proj,
                       Optional<MoE_FloatTensor<2, "N_const x H">>:$const_values,
                       MoE_FloatTensor<2, "T x H">:$init,
                       MoE_ExpertSpaceAttr:$experts);
  let results = (outs MoE_FloatTensor<2, "T x H">:$out);
  let assemblyFormat = [{
    $y `,` $slot_rows `,` $ids `,` $weights `,` $x
    (`const_proj` `(` $const_proj^ `:` type($const_proj) `)`)?
    (`const_values` `(` $const_values^ `:` type($const_values) `)`)?
    `experts` `=` $experts `into` `(` $init `)` attr-dict
    `:` type($y) `,` type($slot_rows) `,` type($ids) `,` type($weights) `,`
    type($x) `into` type($init)
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return getInitMutable();
    }
  }];
}

//===----------------------------------------------------------------------===//
// LayerOp
//===----------------------------------------------------------------------===//

def MoE_LayerOp : MoE_Op<"layer", [
    AttrSizedOperandSegments,
    MoE_OperandGroups<"x w_router b_router? k_per_token? selection_bias? w_up w_gate? w_down b_up? b_down? const_proj? const_values?">,
    DeclareOpInterfaceMethods<MoE_RoutingOpInterface>]> {
  let summary = "a whole sparse MoE block";
  let description = !strconcat([{
    `y = combine(expert_ffn(dispatch(x, route(gate(x)))))`, carrying every
    attribute of its parts. Exporters emit this op; `moe-decompose-layer`
    expands it into `moe.gate`, `moe.route`, `moe.dispatch`,
    `moe.expert_ffn` and `moe.combine`. Shared (always-on) experts stay
    ordinary dense ops beside it.

    Operands (`T` tokens, hidden size `H`, FFN size `F`, `E` compute
    experts, router width `S`):

    | operand | type | |
    |---|---|---|
    | `x` | `tensor<T x H>` | |
    | `router` | `tensor<H x S>` | router weights |
    | `router_bias` | `tensor<S>` | optional |
    | `k_per_token` | `tensor<T x i32>` | iff `dynamic_k` |
    | `bias` | `tensor<S x f32>` | optional selection bias |
    | `up`, `gate` | `tensor<E x H x F>` | `gate` iff `gated` |
    | `down` | `tensor<E x F x H>` | |
    | `up_bias`, `down_bias` | `tensor<E x F>`, `tensor<E x H>` | only when not gated |
    | `const_proj`, `const_values` | `tensor<N_const x H x 2>`, `tensor<N_const x H>` | iff constant experts |

    The result has the type of `x`. With `packed`, `up`, `gate` and `down`
    are pre-packed in 32-column panels, as for `moe.expert_ffn`, and with
    `quant = q8_0 | q4_0` they are quantized tiles as there.

    Example (AdaMoE layer):

    ```mlir
    %y = moe.layer %x router(%wr : tensor<64x12xf32>)
        up(%wu : tensor<8x64x128xf32>) gate(%wg : tensor<8x64x128xf32>)
        down(%wd : tensor<8x128x64xf32>)
        experts = <compute = 8, null = 4> k = 4 strategy = top_k
        normalize = non_null activation = silu gated
        : tensor<?x64xf32> -> tensor<?x64xf32>
    ```
  }], MoE_RoutingCanonicalizationDoc);
  let hasCanonicalizer = 1;
  let arguments = !con((ins MoE_FloatTensor<2, "T x H">:$x,
                            MoE_FloatTensor<2, "H x S">:$w_router,
                            Optional<MoE_FloatTensor<1, "S">>:$b_router,
                            Optional<MoE_I32Tensor<1, "T">>:$k_per_token,
                            Optional<MoE_F32Tensor<1, "S">>:$selection_bias,
                            MoE_ExpertWeights<"E x H x F", "E x ceil(F/32) x H x 32", "E x F/32 x H/32 x B">:$w_up,
                            Optional<MoE_ExpertWeights<"E x H x F", "E x ceil(F/32) x H x 32", "E x F/32 x H/32 x B">>:$w_gate,
                            MoE_ExpertWeights<"E x F x H", "E x ceil(H/32) x F x 32", "E x H/32 x F/32 x B">:$w_down,
                            Optional<MoE_FloatTensor<2, "E x F">>:$b_up,
                            Optional<MoE_FloatTensor<2, "E x H">>:$b_down,
                            Optional<MoE_FloatTensor<3, "N_const x H x 2">>:$const_proj,
                            Optional<MoE_FloatTensor<2, "N_const x H">>:$const_values),
                       MoE_RoutingAttrs,
                       (ins DefaultValuedAttr<MoE_ActivationAttr,
                                "::mlir::moe::Activation::silu">:$activation,
                            UnitAttr:$gated, UnitAttr:$packed,
                            OptionalAttr<MoE_WeightQuantAttr>:$quant));
  let results = (outs MoE_FloatTensor<2, "T x H">:$y);
  let assemblyFormat = !strconcat([{
    $x `router` `(` $w_router `:` type($w_router) `)`
    (`router_bias` `(` $b_router^ `:` type($b_router) `)`)?
    (`k_per_token` `(` $k_per_token^ `:` type($k_per_token) `)`)?
    (`bias` `(` $selection_bias^ `:` type($selection_bias) `)`)?
    `up` `(` $w_up `:` type($w_up) `)`
    (`gate` `(` $w_gate^ `:` type($w_gate) `)`)?
    `down` `(` $w_down `:` type($w_down) `)`
    (`up_bias` `(` $b_up^ `:` type($b_up) `)`)?
    (`down_bias` `(` $b_down^ `:` type($b_down) `)`)?
    (`const_proj` `(` $const_proj^ `:` type($const_proj) `)`)?
    (`const_values` `(` $const_values^ `:` type($const_values) `)`)?
  }], MoE_RoutingFormat, [{
    `activation` `=` `` $activation (`gated` $gated^)? (`packed` $packed^)?
    (`quant` `=` `` $quant^)?
    attr-dict `:` type($x) `->` type($y)
  }]);
}

//===----------------------------------------------------------------------===//
// AuxLossOp
//===----------------------------------------------------------------------===//

def MoE_AuxLossOp : MoE_Op<"aux_loss", [
    DestinationStyleOpInterface, AllTypesMatch<["init", "loss"]>]> {
  let summary = "Switch load-balancing loss over all experts";
  let description = [{
    For training graphs: `L = S * sum_i f_i * P_i` over all `S` experts, where
    `f_i = count_i / max(1, number of valid slots)` and
    `P_i = (sum_t scores[t,i]) / max(1, T)`. A slot is valid, and counted,
    when `0 <= id < S`. This is how AdaMoE balances the use of null experts.

    Destination-passing style: the loss is written into `init` (its value
    is not read), in place after one-shot-bufferize.

    * `scores: tensor<T x S x f32>`, `ids: tensor<T x K x i32>`
    * `init: tensor<f32>`; the result has its type

    Example:

    ```mlir
    %empty = tensor.empty() : tensor<f32>
    %loss = moe.aux_loss %scores, %ids into(%empty)
        : tensor<?x12xf32>, tensor<?x4xi32> into tensor<f32>
    ```
  }];
  let arguments = (ins MoE_F32Tensor<2, "T x S">:$scores, MoE_I32Tensor<2, "T x K">:$ids,
                       MoE_F32Tensor<0, "">:$init);
  let results = (outs MoE_F32Tensor<0, "">:$loss);
  let assemblyFormat = [{
    $scores `,` $ids `into` `(` $init `)` attr-dict `:` type($scores) `,`
    type($ids) `into` type($init)
  }];
  let extraClassDeclaration = [{
    ::mlir::MutableOperandRange getDpsInitsMutable() {
      return getInitMutable();
    }
  }];
}

//===----------------------------------------------------------------------===//
// Expert parallelism
//===----------------------------------------------------------------------===//

def MoE_EPExchange : Resource<"::mlir::moe::EPExchangeResource">;

// The exchange ops communicate with the other ranks: every rank must run
// them in the same order, so they write the exchange resource (no DCE, no
// CSE, no reordering among themselves) and are never speculated.
class MoE_EPOp<string mnemonic, list<Trait> traits = []>
    : Op<MoE_Dialect, mnemonic,
         !listconcat(traits, [MemoryEffects<[MemRead<MoE_EPExchange>,
                                             MemWrite<MoE_EPExchange>]>])> {
  let hasVerifier = 1;
}

def MoE_EPDispatchOp : MoE_EPOp<"ep_dispatch"> {
  let summary = "send the compute slots' rows to the ranks of their experts";
  let description = [{
    The expert-parallel `moe.dispatch`: each rank routes its own tokens
    (`x`, `ids` with global expert ids) and holds the compute experts its
    block of `placement` names. The op exchanges, in one step each way on
    every rank of the run:

    1. the counts: how many rows each rank sends to each other rank;
    2. the rows: a token's row travels once per (token, rank) pair that
       holds at least one of its compute experts, with the token's slot
       expert ids (`K` i32 per row); null, copy, constant and empty slots
       and ids outside `[0, num_experts)` send nothing (they are computed
       where the token lives, by `moe.combine`).

    Results, on each rank:

    * `rows: tensor<R_local x H>`: the rows its experts receive, ordered by
      local expert, then source rank, then token, then slot; this is the
      order a single-process `moe.dispatch` of all ranks' tokens (rank 0's
      first) gives for these experts, so `moe.expert_ffn` on them computes
      what one process computes
    * `offsets: tensor<(E_local+1) x i32>`: local expert `e` (global expert
      `first + e`) owns rows `[offsets[e], offsets[e+1])`
    * `slot_rows: tensor<T x K x i32>`: for each of this rank's compute
      slots, its row in the result of the `moe.ep_combine` of `plan`
      (slots numbered in token, then slot order), or `-1`
    * `plan`: what `moe.ep_combine` needs to send the outputs back

    `R_local` and `E_local` are known at run time only (the rank and rank
    count are the run's), so both are dynamic. Errors at run time (an
    invalid placement for the run's rank count, a rank that does not answer
    within `MOE_EP_TIMEOUT_S` seconds) set the op's error code; the message
    names the ranks.

    Example:

    ```mlir
    %rows, %offsets, %slot_rows, %plan = moe.ep_dispatch %x, %ids
        num_experts = 8 placement = <balanced>
        : tensor<?x64xf32>, tensor<?x2xi32>
        -> tensor<?x64xf32>, tensor<?xi32>, tensor<?x2xi32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor<2, "T x H">:$x, MoE_I32Tensor<2, "T x K">:$ids,
                       I64Attr:$num_experts, MoE_EPPlacementAttr:$placement);
  let results = (outs MoE_FloatTensor<2, "R_local x H">:$rows,
                      MoE_I32Tensor<1, "E_local+1">:$offsets,
                      MoE_I32Tensor<2, "T x K">:$slot_rows,
                      MoE_EPPlanType:$plan);
  let assemblyFormat = [{
    $x `,` $ids `num_experts` `=` $num_experts `placement` `=` $placement
    attr-dict `:` type($x) `,` type($ids) `->` type($rows) `,`
    type($offsets) `,` type($slot_rows)
  }];
}

def MoE_EPCombineOp : MoE_EPOp<"ep_combine"> {
  let summary = "send the experts' outputs back to the ranks of their tokens";
  let description = [{
    The return half of the exchange that `plan`'s `moe.ep_dispatch` began:
    row `i` of `y_local` (the output for row `i` of that op's `rows`) goes
    back to the rank of its token. Each compute slot's output travels on
    its own (not summed per rank), so that `moe.combine` sums every token's
    slots in slot order wherever the rows were computed: the result is the
    single-process result, bit for bit.

    * `y_local: tensor<R_local x H>`, the rows of the dispatch, in its order
    * `y: tensor<R x H>`: one row per compute slot of this rank's tokens, in
      token, then slot order (the dispatch's `slot_rows` index it)

    Example:

    ```mlir
    %y = moe.ep_combine %y_local, %plan : tensor<?x64xf32> -> tensor<?x64xf32>
    ```
  }];
  let arguments = (ins MoE_FloatTensor<2, "R_local x H">:$y_local,
                       MoE_EPPlanType:$plan);
  let results = (outs MoE_FloatTensor<2, "R x H">:$y);
  let assemblyFormat = [{
    $y_local `,` $plan attr-dict `:` type($y_local) `->` type($y)
  }];
}

#endif // MOE_DIALECT_MOE_IR_MOEOPS_TD
