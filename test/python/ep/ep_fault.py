"""One rank of the expert-parallel fault tests (test_expert_parallel.py):
MODE=run (plain), placement (rank 1 asks for another placement), weights
(rank 1 holds another router), plus the runtime's MOE_EP_TEST_HANG_RANK /
MOE_EP_TEST_EXIT_RANK hooks. Prints 'EPError: ...' and exits 1 on an
EPError."""

import os
import sys

import numpy as np

from moe_mlir import ep

TEXT = """
func.func @forward(%x: tensor<?x16xf32>, %wr: tensor<16x4xf32>, %wu: tensor<4x16x8xf32>,
                   %wd: tensor<4x8x16xf32>) -> tensor<?x16xf32> {
  %y = moe.layer %x router(%wr : tensor<16x4xf32>) up(%wu : tensor<4x16x8xf32>)
      down(%wd : tensor<4x8x16xf32>) experts = <compute = 4> k = 2 strategy = top_k
      activation = relu : tensor<?x16xf32> -> tensor<?x16xf32>
  return %y : tensor<?x16xf32>
}"""


def main():
    mode = os.environ.get("MODE", "run")
    rank, size = ep.init()
    rng = np.random.default_rng(0)
    wr = rng.standard_normal((16, 4)).astype(np.float32)
    wu = rng.standard_normal((4, 16, 8)).astype(np.float32)
    wd = rng.standard_normal((4, 8, 16)).astype(np.float32)
    placement = "balanced"
    if mode == "placement" and rank == 1:
        placement = "0,1,4"
    if mode == "weights" and rank == 1:
        wr = wr + 1.0
    try:
        f = ep.compile(TEXT, "forward", placement=placement, weights_from=1,
                       arg_names=["x", "router", "w_up", "w_down"])
        y = f(rng.standard_normal((5, 16)).astype(np.float32), wr, wu, wd)
    except ep.EPError as error:
        print(f"rank {rank}: EPError: {error}", flush=True)
        return 1
    print(f"rank {rank}: ok {y.shape}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
