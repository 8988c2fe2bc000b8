// A two-layer AdaMoE-style model (hidden 256, 8 compute + 4 null experts,
// top-4 over all 12, weights renormalised over the real experts), as an
// exporter emits it: moe.layer plus ordinary ops for the rest (residuals).
// `scripts/run-example.sh` decomposes it with moe-opt and evaluates it with
// the NumPy reference.
func.func @adamoe_model(%x: tensor<?x256xf32>,
    %r0: tensor<256x12xf32>, %u0: tensor<8x256x512xf32>,
    %g0: tensor<8x256x512xf32>, %d0: tensor<8x512x256xf32>,
    %r1: tensor<256x12xf32>, %u1: tensor<8x256x512xf32>,
    %g1: tensor<8x256x512xf32>, %d1: tensor<8x512x256xf32>)
    -> tensor<?x256xf32> {
  %m0 = moe.layer %x router(%r0 : tensor<256x12xf32>)
      up(%u0 : tensor<8x256x512xf32>) gate(%g0 : tensor<8x256x512xf32>)
      down(%d0 : tensor<8x512x256xf32>)
      experts = <compute = 8, null = 4> k = 4 strategy = top_k
      normalize = non_null activation = silu gated
      : tensor<?x256xf32> -> tensor<?x256xf32>
  %h0 = arith.addf %x, %m0 : tensor<?x256xf32>
  %m1 = moe.layer %h0 router(%r1 : tensor<256x12xf32>)
      up(%u1 : tensor<8x256x512xf32>) gate(%g1 : tensor<8x256x512xf32>)
      down(%d1 : tensor<8x512x256xf32>)
      experts = <compute = 8, null = 4> k = 4 strategy = top_k
      normalize = non_null activation = silu gated
      : tensor<?x256xf32> -> tensor<?x256xf32>
  %h1 = arith.addf %h0, %m1 : tensor<?x256xf32>
  return %h1 : tensor<?x256xf32>
}
