// The transform script of ../tile-and-fuse.mlir: tile each moe.route
// over tokens by 3 and fuse the moe.gate that feeds it into the loop; tile
// each moe.combine over tokens by 3 as a parallel scf.forall; tile each
// moe.expert_ffn and moe.grouped_matmul over its rows by 2.
module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(
      %root: !transform.any_op {transform.readonly}) {
    %routes = transform.structured.match ops{["moe.route"]} in %root
        : (!transform.any_op) -> !transform.any_op
    transform.foreach %routes : !transform.any_op {
    ^bb0(%route: !transform.any_op):
      %gate = transform.get_producer_of_operand %route[0]
          : (!transform.any_op) -> !transform.any_op
      %tiled_route, %loop = transform.structured.tile_using_for %route
          tile_sizes [3] : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
      %fused_gate, %loop2 = transform.structured.fuse_into_containing_op %gate
          into %loop : (!transform.any_op, !transform.any_op)
          -> (!transform.any_op, !transform.any_op)
    }
    %combine = transform.structured.match ops{["moe.combine"]} in %root
        : (!transform.any_op) -> !transform.any_op
    %tiled_combine, %forall = transform.structured.tile_using_forall %combine
        tile_sizes [3] : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    %ffns = transform.structured.match ops{["moe.expert_ffn", "moe.grouped_matmul"]} in %root
        : (!transform.any_op) -> !transform.any_op
    %tiled_ffn, %ffn_loop = transform.structured.tile_using_for %ffns
        tile_sizes [2] : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    transform.yield
  }
}
