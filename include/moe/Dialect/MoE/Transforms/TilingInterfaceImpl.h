//===- TilingInterfaceImpl.h - Tiling moe ops: tokens or rows ---*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_TRANSFORMS_TILINGINTERFACEIMPL_H
#define MOE_DIALECT_MOE_TRANSFORMS_TILINGINTERFACEIMPL_H

namespace mlir {
class DialectRegistry;

namespace moe {

/// Attaches TilingInterface to the destination-style moe ops whose tokens
/// are independent: `moe.gate`, `moe.route` and `moe.combine`. Their
/// iteration domain is one parallel loop over the tokens `[0, T)`; a tile
/// of tokens `[o, o + n)` reads rows `[o, o + n)` of the per-token operands
/// (x; logits and k_per_token; slot_rows, ids, weights and x) and all of
/// the others (weights, biases, the expert rows `y` of combine), and writes
/// rows `[o, o + n)` of its destinations (slices of the loop's). Upstream
/// drivers (scf::tileUsingSCF, transform.structured.tile_using_for /
/// tile_using_forall, producer fusion into a consumer's loop) tile and fuse
/// them like linalg ops.
///
/// `moe.grouped_matmul` and `moe.expert_ffn` get the interface over two
/// parallel dimensions, their rows `[0, R)` and their experts `[0, E)`. A
/// tile of rows `[o, o + n)` of every expert reads those rows, every
/// expert's weights, and the offsets shifted by the tile (`max(offsets, 0) -
/// o`, a linalg.generic), which the op's own sanitisation of offsets turns
/// into each expert's rows within the tile. A tile of experts `[e0, e0 +
/// n)` computes the rows `[s[e0], s[e0 + n])` of those experts (s: the
/// sanitised offsets, computed by a loop over the raw ones; the tile of the
/// last expert also zeroes the rows past s[E]), reading only their weights
/// and their offsets (shifted); with rows tiled too, the rows in both
/// ranges. The position of such a result tile is data-dependent.
///
/// A route whose strategy decides with every token (expert_choice) or with
/// a capacity is not tileable over tokens: tiling it fails with a
/// diagnostic on the op, and fusing it as a producer fails silently (the
/// drivers then keep it whole). A tile of a result that does not span its
/// dimensions other than the tokens cannot be produced either (the experts,
/// slots and features of a token are computed together).
void registerTilingInterfaceExternalModels(DialectRegistry &registry);

} // namespace moe
} // namespace mlir

#endif // MOE_DIALECT_MOE_TRANSFORMS_TILINGINTERFACEIMPL_H
