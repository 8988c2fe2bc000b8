// bf16/f16 data through the CPU pipeline (Semantics.md "Element types"): every
// matmul and the combine accumulate in f32; FFN intermediates are rounded to
// the rows' type (round to nearest even); results keep the data type. bf16
// has 8 significant bits: the spacing is 2 in [256, 512), 4 in [512, 1024),
// 256 in [32768, 65536). Results are extended to f32 for printing.
// RUN: moe-opt %s --moe-cpu-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>) attributes { llvm.emit_c_interface }

func.func @main() {
  // ---- expert_ffn, bf16, not gated, relu, H = 2, F = 1, E = 2,
  //      offsets [0, 1, 2]; both rows [256, 1]; Wu = [[1], [1]],
  //      Wd = [[3, 1]] (y = [3h, h]), b_down = 0.
  //   row 0 (e0, b_up 0): h = bf16(256 + 1 = 257) = 256 (tie -> even)
  //      -> relu 256 -> [768, 256] (an f32 intermediate would give
  //      [771, 257] -> bf16 [772, 256])
  //   row 1 (e1, b_up 1): the bias joins the f32 accumulator before rounding:
  //      h = bf16(257 + 1 = 258) = 258 -> [774, 258] -> bf16: 774 is a tie
  //      between 772 and 776 -> even -> 776 -> [776, 258]
  //      (bias added after rounding would give [768, 256])
  %r = arith.constant dense<[[256.0, 1.0], [256.0, 1.0]]> : tensor<2x2xbf16>
  %o = arith.constant dense<[0, 1, 2]> : tensor<3xi32>
  %wu = arith.constant dense<1.0> : tensor<2x2x1xbf16>
  %wd = arith.constant dense<[[[3.0, 1.0]], [[3.0, 1.0]]]> : tensor<2x1x2xbf16>
  %bu = arith.constant dense<[[0.0], [1.0]]> : tensor<2x1xbf16>
  %bd = arith.constant dense<0.0> : tensor<2x2xbf16>
  %init_y = tensor.empty() : tensor<2x2xbf16>
  %y = moe.expert_ffn %r, %o up(%wu : tensor<2x2x1xbf16>) down(%wd : tensor<2x1x2xbf16>)
      up_bias(%bu : tensor<2x1xbf16>) down_bias(%bd : tensor<2x2xbf16>)
      activation = relu into(%init_y) : tensor<2x2xbf16>, tensor<3xi32> into tensor<2x2xbf16>
  %yf = arith.extf %y : tensor<2x2xbf16> to tensor<2x2xf32>
  %uy = tensor.cast %yf : tensor<2x2xf32> to tensor<*xf32>
  call @printMemrefF32(%uy) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [768,   256],
  // CHECK-NEXT: [776,   258]]

  // ---- expert_ffn, bf16, gated silu, H = 2, F = 1, E = 1, row [256, 1]:
  //   gate = r @ [[0.75], [0]] = 192 -> silu(192) = 192 (exp(-192) = 0 in f32)
  //   up = bf16(r @ [[1], [3]] = 259) = 260 (tie between 258 and 260 -> even)
  //   m = 192 * 260 = 49920 (= 195 * 256, exact in bf16)
  //   y = m @ [[1, 0]] = [49920, 0]
  //   (an f32 up = 259 would give 192 * 259 = 49728 -> bf16 49664)
  %gr = arith.constant dense<[[256.0, 1.0]]> : tensor<1x2xbf16>
  %go = arith.constant dense<[0, 1]> : tensor<2xi32>
  %gwg = arith.constant dense<[[[0.75], [0.0]]]> : tensor<1x2x1xbf16>
  %gwu = arith.constant dense<[[[1.0], [3.0]]]> : tensor<1x2x1xbf16>
  %gwd = arith.constant dense<[[[1.0, 0.0]]]> : tensor<1x1x2xbf16>
  %init_gy = tensor.empty() : tensor<1x2xbf16>
  %gy = moe.expert_ffn %gr, %go up(%gwu : tensor<1x2x1xbf16>) gate(%gwg : tensor<1x2x1xbf16>)
      down(%gwd : tensor<1x1x2xbf16>) activation = silu gated into(%init_gy)
      : tensor<1x2xbf16>, tensor<2xi32> into tensor<1x2xbf16>
  %gyf = arith.extf %gy : tensor<1x2xbf16> to tensor<1x2xf32>
  %ugy = tensor.cast %gyf : tensor<1x2xf32> to tensor<*xf32>
  call @printMemrefF32(%ugy) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [1, 2]
  // CHECK-NEXT: {{\[\[}}49920,   0]]

  // ---- combine, bf16 y and x, f32 weights, f32 accumulation, bf16 result.
  //      experts <compute = 1, copy = 1>, K = 3, y = [[256]], x = [[1], [1]]
  //   t0 ids [0, 1, 1], w [1, 1, 1]: 256 + 1 + 1 = 258 (f32) -> bf16 258
  //      (a bf16 accumulator would stay at 256)
  //   t1 ids [0, 1, -1], w [1, 1, 0]: 256 + 1 = 257 -> bf16 256 (tie -> even)
  %cy = arith.constant dense<[[256.0]]> : tensor<1x1xbf16>
  %csr = arith.constant dense<[[0, -1, -1], [0, -1, -1]]> : tensor<2x3xi32>
  %cids = arith.constant dense<[[0, 1, 1], [0, 1, -1]]> : tensor<2x3xi32>
  %cw = arith.constant dense<[[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]]> : tensor<2x3xf32>
  %cx = arith.constant dense<[[1.0], [1.0]]> : tensor<2x1xbf16>
  %init_co = tensor.empty() : tensor<2x1xbf16>
  %co = moe.combine %cy, %csr, %cids, %cw, %cx experts = <compute = 1, copy = 1> into(%init_co)
      : tensor<1x1xbf16>, tensor<2x3xi32>, tensor<2x3xi32>, tensor<2x3xf32>,
        tensor<2x1xbf16> into tensor<2x1xbf16>
  %cof = arith.extf %co : tensor<2x1xbf16> to tensor<2x1xf32>
  %uco = tensor.cast %cof : tensor<2x1xf32> to tensor<*xf32>
  call @printMemrefF32(%uco) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [2, 1]
  // CHECK-NEXT: {{\[\[}}258],
  // CHECK-NEXT: [256]]

  // ---- dispatch keeps x's type (f16): x [[1.5, -2], [0.25, 3]],
  //      ids [[1], [0]], E = 2 -> rows [x1, x0], offsets [0, 1, 2]
  %dx = arith.constant dense<[[1.5, -2.0], [0.25, 3.0]]> : tensor<2x2xf16>
  %dids = arith.constant dense<[[1], [0]]> : tensor<2x1xi32>
  %drows, %doff, %dsr = moe.dispatch %dx, %dids num_experts = 2
      : tensor<2x2xf16>, tensor<2x1xi32> -> tensor<?x2xf16>, tensor<3xi32>, tensor<2x1xi32>
  %drf = arith.extf %drows : tensor<?x2xf16> to tensor<?x2xf32>
  %udr = tensor.cast %drf : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%udr) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [0.25,   3],
  // CHECK-NEXT: [1.5,   -2]]
  return
}
