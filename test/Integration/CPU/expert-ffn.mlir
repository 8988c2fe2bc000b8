// moe.expert_ffn through the CPU pipeline (Semantics.md 2.5). For the rows r
// of expert e: gated y = (act(r @ Wg[e]) * (r @ Wu[e])) @ Wd[e]; not gated
// y = act(r @ Wu[e] + bu[e]) @ Wd[e] + bd[e]. Rows at or past offsets[E]
// are 0; an expert with no rows contributes nothing.
// RUN: moe-opt %s --moe-cpu-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s
// The GPU kernels (convert-moe-to-gpu), run as host loops:
// RUN: moe-opt %s --moe-test-gpu-emulation-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>) attributes { llvm.emit_c_interface }

func.func @main() {
  // ---- Not gated, relu, with biases. E = 3, H = F = 2, R = 4,
  //      offsets [0, 2, 2, 3]: rows 0-1 expert 0, expert 1 empty, row 2
  //      expert 2, row 3 past offsets[E] = 3.
  //   expert 0: Wu = I, bu = [0, 1], Wd = [[1, 1], [0, 2]], bd = [10, 0]
  //     r0 [1, 2]:  up [1, 3] -> relu [1, 3] -> [1*1 + 3*0, 1*1 + 3*2] = [1, 7]
  //                 + bd -> [11, 7]
  //     r1 [3, -4]: up [3, -3] -> relu [3, 0] -> [3, 3] + bd -> [13, 3]
  //   expert 1 (no rows): bd = [100, 100] must not show up anywhere
  //   expert 2: Wu = -I, bu = [0.5, -2], Wd = [[2, 0], [1, 1]], bd = [0, -1]
  //     r2 [-1, -1]: up [1, 1] + bu = [1.5, -1] -> relu [1.5, 0]
  //                  -> [3, 0] + bd -> [3, -1]
  //   r3 [9, 9]: past offsets[E] -> [0, 0] (no b_down either)
  %rows = arith.constant dense<[[1.0, 2.0], [3.0, -4.0], [-1.0, -1.0], [9.0, 9.0]]> : tensor<4x2xf32>
  %rowsd = tensor.cast %rows : tensor<4x2xf32> to tensor<?x2xf32>
  %off = arith.constant dense<[0, 2, 2, 3]> : tensor<4xi32>
  %wu = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0]],
                              [[5.0, 5.0], [5.0, 5.0]],
                              [[-1.0, 0.0], [0.0, -1.0]]]> : tensor<3x2x2xf32>
  %bu = arith.constant dense<[[0.0, 1.0], [1.0, 1.0], [0.5, -2.0]]> : tensor<3x2xf32>
  %wd = arith.constant dense<[[[1.0, 1.0], [0.0, 2.0]],
                              [[1.0, 0.0], [0.0, 1.0]],
                              [[2.0, 0.0], [1.0, 1.0]]]> : tensor<3x2x2xf32>
  %bd = arith.constant dense<[[10.0, 0.0], [100.0, 100.0], [0.0, -1.0]]> : tensor<3x2xf32>
  %init_y1_c0 = arith.constant 0 : index
  %init_y1_d0 = tensor.dim %rowsd, %init_y1_c0 : tensor<?x2xf32>
  %init_y1 = tensor.empty(%init_y1_d0) : tensor<?x2xf32>
  %y1 = moe.expert_ffn %rowsd, %off up(%wu : tensor<3x2x2xf32>)
      down(%wd : tensor<3x2x2xf32>) up_bias(%bu : tensor<3x2xf32>)
      down_bias(%bd : tensor<3x2xf32>) activation = relu into(%init_y1)
      : tensor<?x2xf32>, tensor<4xi32> into tensor<?x2xf32>
  %u1 = tensor.cast %y1 : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u1) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: [11,   7],
  // CHECK-NEXT: [13,   3],
  // CHECK-NEXT: [3,   -1],
  // CHECK-NEXT: [0,   0]]

  // ---- Gated silu (SwiGLU). E = 3, H = F = 2, R = 3, offsets [0, 1, 1, 2]:
  //      row 0 expert 0, expert 1 empty, row 1 expert 2, row 2 past the end.
  //      silu(0) = 0; silu(x) = x / (1 + exp(-x)) = x in f32 for x >= 50
  //      (exp(-50) ~ 2e-22); silu(2) = 2 / (1 + exp(-2)) = 1.7615942.
  //   expert 0: Wg = [[0, 100], [0, 0]] (gate [0, 100a]), Wu = I, Wd = I
  //     r0 [1, 3]: gate [0, 100] -> silu [0, 100]; up [1, 3]
  //                -> h = [0, 300] -> y = [0, 300]
  //   expert 1: Wd = 1000 * I, never used
  //   expert 2: Wg = [[2, 0], [0, 100]] (gate [2a, 100b]), Wu = I,
  //             Wd = [[1, 1], [0, 1]] ([h0, h0 + h1])
  //     r1 [1, 0.5]: gate [2, 50] -> silu [1.7615942, 50]; up [1, 0.5]
  //                  -> h = [1.7615942, 25] -> y = [1.76159, 26.7616]
  //   r2 [7, 7]: past offsets[E] -> [0, 0]
  %grows = arith.constant dense<[[1.0, 3.0], [1.0, 0.5], [7.0, 7.0]]> : tensor<3x2xf32>
  %growsd = tensor.cast %grows : tensor<3x2xf32> to tensor<?x2xf32>
  %goff = arith.constant dense<[0, 1, 1, 2]> : tensor<4xi32>
  %gwg = arith.constant dense<[[[0.0, 100.0], [0.0, 0.0]],
                               [[1.0, 1.0], [1.0, 1.0]],
                               [[2.0, 0.0], [0.0, 100.0]]]> : tensor<3x2x2xf32>
  %gwu = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0]],
                               [[1.0, 0.0], [0.0, 1.0]],
                               [[1.0, 0.0], [0.0, 1.0]]]> : tensor<3x2x2xf32>
  %gwd = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0]],
                               [[1000.0, 0.0], [0.0, 1000.0]],
                               [[1.0, 1.0], [0.0, 1.0]]]> : tensor<3x2x2xf32>
  %init_y2_c0 = arith.constant 0 : index
  %init_y2_d0 = tensor.dim %growsd, %init_y2_c0 : tensor<?x2xf32>
  %init_y2 = tensor.empty(%init_y2_d0) : tensor<?x2xf32>
  %y2 = moe.expert_ffn %growsd, %goff up(%gwu : tensor<3x2x2xf32>)
      gate(%gwg : tensor<3x2x2xf32>) down(%gwd : tensor<3x2x2xf32>)
      activation = silu gated into(%init_y2) : tensor<?x2xf32>, tensor<4xi32> into tensor<?x2xf32>
  %u2 = tensor.cast %y2 : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u2) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [3, 2]
  // CHECK-NEXT: [0,   300],
  // CHECK-NEXT: [1.76159,   26.7616],
  // CHECK-NEXT: [0,   0]]

  // ---- Not gated relu without biases, F = 3 != H = 2, one expert,
  //      garbage offsets [5, -1] sanitised to [0, 0]: no rows at all -> all 0.
  //      With offsets [0, 2] (both rows, expert 0):
  //   Wu = [[1, -1, 0], [0, 1, 1]] ([a, b - a, b]), Wd = [[1, 0], [0, 1], [1, 1]]
  //   r0 [2, 1]: up [2, -1, 1] -> relu [2, 0, 1] -> [2 + 1, 0 + 1] = [3, 1]
  //   r1 [1, 4]: up [1, 3, 4] -> relu [1, 3, 4] -> [1 + 4, 3 + 4] = [5, 7]
  %nrows = arith.constant dense<[[2.0, 1.0], [1.0, 4.0]]> : tensor<2x2xf32>
  %nwu = arith.constant dense<[[[1.0, -1.0, 0.0], [0.0, 1.0, 1.0]]]> : tensor<1x2x3xf32>
  %nwd = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]]> : tensor<1x3x2xf32>
  %noff0 = arith.constant dense<[5, -1]> : tensor<2xi32>
  %init_y3 = tensor.empty() : tensor<2x2xf32>
  %y3 = moe.expert_ffn %nrows, %noff0 up(%nwu : tensor<1x2x3xf32>)
      down(%nwd : tensor<1x3x2xf32>) activation = relu into(%init_y3)
      : tensor<2x2xf32>, tensor<2xi32> into tensor<2x2xf32>
  %u3 = tensor.cast %y3 : tensor<2x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u3) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [0,   0],
  // CHECK-NEXT: [0,   0]]
  %noff1 = arith.constant dense<[0, 2]> : tensor<2xi32>
  %init_y4 = tensor.empty() : tensor<2x2xf32>
  %y4 = moe.expert_ffn %nrows, %noff1 up(%nwu : tensor<1x2x3xf32>)
      down(%nwd : tensor<1x3x2xf32>) activation = relu into(%init_y4)
      : tensor<2x2xf32>, tensor<2xi32> into tensor<2x2xf32>
  %u4 = tensor.cast %y4 : tensor<2x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u4) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [3,   1],
  // CHECK-NEXT: [5,   7]]
  return
}
