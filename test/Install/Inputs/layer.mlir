func.func @layer(%x: tensor<?x64xf32>, %wr: tensor<64x12xf32>,
                 %wu: tensor<8x64x128xf32>, %wg: tensor<8x64x128xf32>,
                 %wd: tensor<8x128x64xf32>) -> tensor<?x64xf32> {
  %y = moe.layer %x router(%wr : tensor<64x12xf32>)
      up(%wu : tensor<8x64x128xf32>) gate(%wg : tensor<8x64x128xf32>)
      down(%wd : tensor<8x128x64xf32>)
      experts = <compute = 8, null = 4> k = 4 strategy = top_k
      normalize = non_null activation = silu gated
      : tensor<?x64xf32> -> tensor<?x64xf32>
  return %y : tensor<?x64xf32>
}
