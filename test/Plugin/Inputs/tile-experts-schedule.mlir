// The transform script of ../tile-experts.mlir: the grouped ops marked
// `experts_1` over their experts one by one (scf.forall), those marked
// `rows_experts_2` over rows and experts by 2 (scf.for).
module attributes {transform.with_named_sequence} {
  transform.named_sequence @__transform_main(
      %root: !transform.any_op {transform.readonly}) {
    %one = transform.structured.match ops{["moe.grouped_matmul", "moe.expert_ffn"]}
        attributes {experts_1} in %root : (!transform.any_op) -> !transform.any_op
    %t1, %l1 = transform.structured.tile_using_forall %one tile_sizes [0, 1]
        : (!transform.any_op) -> (!transform.any_op, !transform.any_op)
    %two = transform.structured.match ops{["moe.grouped_matmul", "moe.expert_ffn"]}
        attributes {rows_experts_2} in %root : (!transform.any_op) -> !transform.any_op
    %t2, %l2:2 = transform.structured.tile_using_for %two tile_sizes [2, 2]
        : (!transform.any_op) -> (!transform.any_op, !transform.any_op, !transform.any_op)
    transform.yield
  }
}
