// Activation functions of moe.expert_ffn through the CPU pipeline
// (Semantics.md 2.5; edge values as in docs/Reference.md choice 13).
// Not gated, Wu = Wd = I and no biases, so y = act(row).
// RUN: moe-opt %s --moe-cpu-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s
// The GPU kernels (convert-moe-to-gpu), run as host loops:
// RUN: moe-opt %s --moe-test-gpu-emulation-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>) attributes { llvm.emit_c_interface }

func.func @main() {
  %r = arith.constant dense<[[2.0, -1.0]]> : tensor<1x2xf32>
  %o = arith.constant dense<[0, 1]> : tensor<2xi32>
  %id = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0]]]> : tensor<1x2x2xf32>

  // gelu (erf): 0.5 x (1 + erf(x / sqrt 2))
  //   gelu(2) = 1.95449974, gelu(-1) = -0.158655254
  %init_g = tensor.empty() : tensor<1x2xf32>
  %g = moe.expert_ffn %r, %o up(%id : tensor<1x2x2xf32>) down(%id : tensor<1x2x2xf32>)
      activation = gelu into(%init_g) : tensor<1x2xf32>, tensor<2xi32> into tensor<1x2xf32>
  %ug = tensor.cast %g : tensor<1x2xf32> to tensor<*xf32>
  call @printMemrefF32(%ug) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [1, 2]
  // CHECK-NEXT: {{\[\[}}1.9545,   -0.158655]]

  // gelu_tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  //   gelu_tanh(2) = 1.95459769, gelu_tanh(-1) = -0.158808009
  %init_gt = tensor.empty() : tensor<1x2xf32>
  %gt = moe.expert_ffn %r, %o up(%id : tensor<1x2x2xf32>) down(%id : tensor<1x2x2xf32>)
      activation = gelu_tanh into(%init_gt) : tensor<1x2xf32>, tensor<2xi32> into tensor<1x2xf32>
  %ugt = tensor.cast %gt : tensor<1x2xf32> to tensor<*xf32>
  call @printMemrefF32(%ugt) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [1, 2]
  // CHECK-NEXT: {{\[\[}}1.9546,   -0.158808]]

  // silu: x / (1 + exp(-x)); silu(2) = 1.76159416, silu(-1) = -0.268941421
  %init_s = tensor.empty() : tensor<1x2xf32>
  %s = moe.expert_ffn %r, %o up(%id : tensor<1x2x2xf32>) down(%id : tensor<1x2x2xf32>)
      activation = silu into(%init_s) : tensor<1x2xf32>, tensor<2xi32> into tensor<1x2xf32>
  %us = tensor.cast %s : tensor<1x2xf32> to tensor<*xf32>
  call @printMemrefF32(%us) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [1, 2]
  // CHECK-NEXT: {{\[\[}}1.76159,   -0.268941]]

  // Edge values with H = F = 1 (one column, so a NaN cannot leak into
  // another column through the matmuls): rows [NaN], [-0], [-3], [+inf], [-inf]
  //   relu: NaN propagates (IEEE maximum), 0, 0, inf, 0
  //   silu: NaN, -0 / (1 + 1) = -0, -3 / (1 + e^3) = -0.142278,
  //         inf / (1 + 0) = inf, -inf / (1 + inf) = NaN
  //   The down projection is a sum of products; the sign of a zero sum
  //   (+0 accumulator + (-0 * 1)) is not fixed by the contract, so the
  //   zero's sign is not checked.
  %e = arith.constant dense<[[0x7FC00000], [-0.0], [-3.0], [0x7F800000], [0xFF800000]]> : tensor<5x1xf32>
  %eo = arith.constant dense<[0, 5]> : tensor<2xi32>
  %one = arith.constant dense<1.0> : tensor<1x1x1xf32>
  %init_er = tensor.empty() : tensor<5x1xf32>
  %er = moe.expert_ffn %e, %eo up(%one : tensor<1x1x1xf32>) down(%one : tensor<1x1x1xf32>)
      activation = relu into(%init_er) : tensor<5x1xf32>, tensor<2xi32> into tensor<5x1xf32>
  %uer = tensor.cast %er : tensor<5x1xf32> to tensor<*xf32>
  call @printMemrefF32(%uer) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [5, 1]
  // CHECK-NEXT: {{\[\[}}{{-?}}nan],
  // CHECK-NEXT: [0],
  // CHECK-NEXT: [0],
  // CHECK-NEXT: [inf],
  // CHECK-NEXT: [0]]
  %init_es = tensor.empty() : tensor<5x1xf32>
  %es = moe.expert_ffn %e, %eo up(%one : tensor<1x1x1xf32>) down(%one : tensor<1x1x1xf32>)
      activation = silu into(%init_es) : tensor<5x1xf32>, tensor<2xi32> into tensor<5x1xf32>
  %ues = tensor.cast %es : tensor<5x1xf32> to tensor<*xf32>
  call @printMemrefF32(%ues) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [5, 1]
  // CHECK-NEXT: {{\[\[}}{{-?}}nan],
  // CHECK-NEXT: [{{-?}}0],
  // CHECK-NEXT: [-0.142278],
  // CHECK-NEXT: [inf],
  // CHECK-NEXT: [{{-?}}nan]]
  return
}
