"""The measured side of the cost report: routing statistics, FFN counters of
an instrumented execution, and the rendered image."""
import numpy as np
import pytest

import moe_mlir
from moe_mlir import cost


def test_routing_stats_by_hand():
    # E = 3 compute, 1 null, 1 copy; K = 2.
    ids = np.array([[0, 3], [1, 1], [4, -1], [2, 0], [-1, -1]])
    stats = cost.routing_stats(ids, 3, num_null=1, num_copy=1, slot_flops=10)
    assert stats.expert_load.tolist() == [2, 2, 1]
    assert stats.kind_slots == {"null": 1, "copy": 1, "const": 0, "empty": 3}
    assert stats.tokens_per_k.tolist() == [2, 1, 2]     # tokens with 0, 1, 2 compute slots
    assert stats.compute_slots == 5 and stats.dense_slots == 10
    assert stats.saved_fraction == pytest.approx(0.5)
    assert "5 compute slots of 10 dense top-2 slots (50.0% saved)" in stats.summary()


def test_counters_match_stats_and_render(tmp_path):
    """An instrumented execution's FFN rows per expert equal the compute
    slots of the route's ids; the rendered chart is a PNG."""
    layer = moe_mlir.compile_layer  # noqa: F841 (the API exists)
    text = """
func.func @f(%x: tensor<?x16xf32>, %wr: tensor<16x10xf32>, %wu: tensor<6x16x8xf32>,
             %wd: tensor<6x8x16xf32>) -> (tensor<?x16xf32>, tensor<?x3xi32>) {
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x16xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x10xf32>
  %l = moe.gate %x, %wr into(%init_l) : tensor<?x16xf32>, tensor<16x10xf32> into tensor<?x10xf32>
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x10xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x3xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x10xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x3xf32>
  %ids, %w = moe.route %l experts = <compute = 6, null = 4> k = 3 strategy = top_k
      normalize = non_null into(%init_ids, %init_w) : tensor<?x10xf32> into tensor<?x3xi32>, tensor<?x3xf32>
  %r, %o, %s = moe.dispatch %x, %ids num_experts = 6
      : tensor<?x16xf32>, tensor<?x3xi32> -> tensor<?x16xf32>, tensor<7xi32>, tensor<?x3xi32>
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %r, %init_y_c0 : tensor<?x16xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x16xf32>
  %y = moe.expert_ffn %r, %o up(%wu : tensor<6x16x8xf32>) down(%wd : tensor<6x8x16xf32>)
      activation = relu into(%init_y) : tensor<?x16xf32>, tensor<7xi32> into tensor<?x16xf32>
  %init_out_c0 = arith.constant 0 : index
  %init_out_d0 = tensor.dim %x, %init_out_c0 : tensor<?x16xf32>
  %init_out = tensor.empty(%init_out_d0) : tensor<?x16xf32>
  %out = moe.combine %y, %s, %ids, %w, %x experts = <compute = 6, null = 4> into(%init_out)
      : tensor<?x16xf32>, tensor<?x3xi32>, tensor<?x3xi32>, tensor<?x3xf32>, tensor<?x16xf32> into tensor<?x16xf32>
  return %out, %ids : tensor<?x16xf32>, tensor<?x3xi32>
}"""
    f = moe_mlir.compile(text, "f", instrument_ffn=True)
    (counters,) = cost.ffn_counters(f)
    counters[:] = 0
    rng = np.random.default_rng(0)
    args = [rng.standard_normal((50, 16), dtype=np.float32),
            rng.standard_normal((16, 10), dtype=np.float32),
            rng.standard_normal((6, 16, 8), dtype=np.float32),
            rng.standard_normal((6, 8, 16), dtype=np.float32)]
    _, ids = f(*args)
    stats = cost.routing_stats(ids, 6, num_null=4, slot_flops=2 * 16 * 8 * 2)
    np.testing.assert_array_equal(counters[:, 0], stats.expert_load)
    np.testing.assert_array_equal(counters[:, 1], stats.expert_load * 16 * 8 * 2)
    assert stats.compute_slots < stats.dense_slots          # null experts took slots
    pytest.importorskip("matplotlib")
    path = cost.render(stats, str(tmp_path / "routing.png"), title="test")
    with open(path, "rb") as image:
        assert image.read(8) == b"\x89PNG\r\n\x1a\n"


def test_counters_need_instrumentation():
    f = moe_mlir.compile_route(4, 2)
    with pytest.raises(ValueError):
        cost.ffn_counters(f)
