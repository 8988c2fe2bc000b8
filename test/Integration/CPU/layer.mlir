// A whole moe.layer through the CPU pipeline (Semantics.md 2.7):
// y = combine(expert_ffn(dispatch(x, route(gate(x))))).
// RUN: moe-opt %s --moe-cpu-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s
// The GPU kernels (convert-moe-to-gpu), run as host loops:
// RUN: moe-opt %s --moe-test-gpu-emulation-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s

func.func private @printMemrefF32(tensor<*xf32>) attributes { llvm.emit_c_interface }

func.func @main() {
  // ---- AdaMoE-style: H = F = 2, experts <compute = 2, null = 1>, K = 2,
  //      scoring none, top_k, normalize non_null, relu, not gated, biases.
  //   router [[1, 0, 0], [0, 1, 0]]: logits for x = [a, b] are [a, b, 0]
  //   FFN0(x) = relu(x @ I + [0, 0]) @ I + [1, 0] = relu(x) + [1, 0]
  //   FFN1(x) = relu(x @ [[0, 1], [1, 0]] + [1, 1]) @ 2I + [0, 1]
  //           = 2 * relu([b + 1, a + 1]) + [0, 1]
  //   t0 [3, 1]: logits [3, 1, 0] -> ids [0, 1], raw [3, 1] -> [0.75, 0.25]
  //      FFN0 = [4, 1], FFN1 = 2 * [2, 4] + [0, 1] = [4, 9]
  //      -> 0.75 * [4, 1] + 0.25 * [4, 9] = [3 + 1, 0.75 + 2.25] = [4, 3]
  //   t1 [-1, 2]: logits [-1, 2, 0] -> ids [1, 2 (null)], raw [2, 0]
  //      -> non_null [1, 0]; FFN1 = 2 * relu([3, 0]) + [0, 1] = [6, 1] -> [6, 1]
  //   t2 [-1, -2]: logits [-1, -2, 0] -> ids [2 (null), 0], raw [0, -1]
  //      -> non_null over {e0}: -1 / -1 = 1 -> [0, 1]
  //      FFN0 = relu([-1, -2]) + [1, 0] = [1, 0] -> [1, 0]
  //   t3 [0, 0]: logits [0, 0, 0] -> ids [0, 1] (ties by index), raw [0, 0]
  //      -> zero denominator -> weights [0, 0] -> 0 * [1, 0] + 0 * [2, 3] = [0, 0]
  %x = arith.constant dense<[[3.0, 1.0], [-1.0, 2.0], [-1.0, -2.0], [0.0, 0.0]]> : tensor<4x2xf32>
  %wr = arith.constant dense<[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]> : tensor<2x3xf32>
  %wu = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]]> : tensor<2x2x2xf32>
  %bu = arith.constant dense<[[0.0, 0.0], [1.0, 1.0]]> : tensor<2x2xf32>
  %wd = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 2.0]]]> : tensor<2x2x2xf32>
  %bd = arith.constant dense<[[1.0, 0.0], [0.0, 1.0]]> : tensor<2x2xf32>
  %y = moe.layer %x router(%wr : tensor<2x3xf32>)
      up(%wu : tensor<2x2x2xf32>) down(%wd : tensor<2x2x2xf32>)
      up_bias(%bu : tensor<2x2xf32>) down_bias(%bd : tensor<2x2xf32>)
      experts = <compute = 2, null = 1> k = 2 scoring = none strategy = top_k
      normalize = non_null activation = relu
      : tensor<4x2xf32> -> tensor<4x2xf32>
  %u = tensor.cast %y : tensor<4x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: [4,   3],
  // CHECK-NEXT: [6,   1],
  // CHECK-NEXT: [1,   0],
  // CHECK-NEXT: [0,   0]]

  // ---- MoE++-style copy expert, dynamic T: experts <compute = 1, copy = 1>,
  //      K = 1, scoring none, normalize none, scale 0.5, relu, no biases.
  //   router = I: logits = x; FFN0(x) = relu(x) (Wu = Wd = I)
  //   t0 [1, 2]: top-1 is the copy expert (2), w = 2 * 0.5 = 1 -> 1 * x = [1, 2]
  //   t1 [3, -1]: top-1 is expert 0 (3), w = 3 * 0.5 = 1.5
  //      -> 1.5 * relu([3, -1]) = [4.5, 0]
  %x2 = arith.constant dense<[[1.0, 2.0], [3.0, -1.0]]> : tensor<2x2xf32>
  %x2d = tensor.cast %x2 : tensor<2x2xf32> to tensor<?x2xf32>
  %wr2 = arith.constant dense<[[1.0, 0.0], [0.0, 1.0]]> : tensor<2x2xf32>
  %wi = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0]]]> : tensor<1x2x2xf32>
  %y2 = moe.layer %x2d router(%wr2 : tensor<2x2xf32>)
      up(%wi : tensor<1x2x2xf32>) down(%wi : tensor<1x2x2xf32>)
      experts = <compute = 1, copy = 1> k = 1 scoring = none strategy = top_k
      scale = 0.5 activation = relu
      : tensor<?x2xf32> -> tensor<?x2xf32>
  %u2 = tensor.cast %y2 : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u2) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [1,   2],
  // CHECK-NEXT: [4.5,   0]]
  // ---- Every routing attribute carried by the layer: router_bias, a
  //      selection bias, capacity and the const expert (MoE++).
  //      experts <compute = 1, const = 1>, K = 1, scoring none, normalize none,
  //      capacity <0.25, position>: C = ceil(0.25 * 4 * 1 / 1) = 1.
  //   router = I, router_bias [0, 1]: logits [a, b + 1]
  //   selection bias [0, 0.5]: keys [a, b + 1.5]; weights are the logits
  //   FFN0(x) = relu(x) (Wu = Wd = I); const expert: Wc = 0 -> [a1, a2] =
  //   [0.5, 0.5], v = [10, 20]
  //   t0 [1, 0]: logits [1, 1], keys [1, 1.5] -> const, w 1
  //      -> 1 * (0.5 * [1, 0] + 0.5 * [10, 20]) = [5.5, 10]
  //      (without the selection bias the tie would pick expert 0)
  //   t1 [0, 1]: logits [0, 2], keys [0, 2.5] -> const, w 2
  //      -> 2 * (0.5 * [0, 1] + 0.5 * [10, 20]) = [10, 21]
  //   t2 [2, 0]: logits [2, 1], keys [2, 1.5] -> expert 0, w 2
  //   t3 [3, 1]: logits [3, 2], keys [3, 2.5] -> expert 0, w 3
  //   capacity: expert 0 keeps t2 (token order), drops t3; const not capped
  //   t2 -> 2 * relu([2, 0]) = [4, 0]; t3 -> [0, 0]
  %x3 = arith.constant dense<[[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [3.0, 1.0]]> : tensor<4x2xf32>
  %br3 = arith.constant dense<[0.0, 1.0]> : tensor<2xf32>
  %sb3 = arith.constant dense<[0.0, 0.5]> : tensor<2xf32>
  %wc3 = arith.constant dense<0.0> : tensor<1x2x2xf32>
  %v3 = arith.constant dense<[[10.0, 20.0]]> : tensor<1x2xf32>
  %y3 = moe.layer %x3 router(%wr2 : tensor<2x2xf32>)
      router_bias(%br3 : tensor<2xf32>) bias(%sb3 : tensor<2xf32>)
      up(%wi : tensor<1x2x2xf32>) down(%wi : tensor<1x2x2xf32>)
      const_proj(%wc3 : tensor<1x2x2xf32>) const_values(%v3 : tensor<1x2xf32>)
      experts = <compute = 1, const = 1> k = 1 scoring = none strategy = top_k
      capacity = <factor = 0.25, priority = position> activation = relu
      : tensor<4x2xf32> -> tensor<4x2xf32>
  %u3 = tensor.cast %y3 : tensor<4x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u3) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: [5.5,   10],
  // CHECK-NEXT: [10,   21],
  // CHECK-NEXT: [4,   0],
  // CHECK-NEXT: [0,   0]]

  // ---- groups + dynamic_k + normalize selected + scale, F = 1 != H = 2,
  //      dynamic T. experts <compute = 4>, K = 2, groups <n = 2, top = 1>
  //      ({0, 1}, {2, 3}), k_per_token [2, 1], scale 4, relu.
  //   router [[1, 0, 0, 0], [0, 0, 1, 1]], router_bias [0, 0.5, 0, -0.5]
  //      -> logits [a, 0.5, b, b - 0.5]
  //   FFN0 = [relu(a + b), 0]; FFN1 = [0, relu(a)]; FFN2 = [relu(b), relu(b)];
  //   FFN3 = 100 * [relu(-a - b), relu(-a - b)]
  //   t0 [1.5, 1], k 2: logits [1.5, 0.5, 1, 0.5]; g0 = 2, g1 = 1.5 -> g0
  //      -> ids [0, 1], raw [1.5, 0.5] -> [0.75, 0.25] * 4 = [3, 1]
  //      (plain top-2 would take expert 2)
  //      out = 3 * [2.5, 0] + 1 * [0, 1.5] = [7.5, 1.5]
  //   t1 [0, 2], k 1: logits [0, 0.5, 2, 1.5]; g0 = 0.5, g1 = 3.5 -> g1
  //      -> ids [2, -1], raw [2] -> 1 * 4 = 4; out = 4 * [2, 2] = [8, 8]
  %x4 = arith.constant dense<[[1.5, 1.0], [0.0, 2.0]]> : tensor<2x2xf32>
  %x4d = tensor.cast %x4 : tensor<2x2xf32> to tensor<?x2xf32>
  %k4 = arith.constant dense<[2, 1]> : tensor<2xi32>
  %k4d = tensor.cast %k4 : tensor<2xi32> to tensor<?xi32>
  %wr4 = arith.constant dense<[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]> : tensor<2x4xf32>
  %br4 = arith.constant dense<[0.0, 0.5, 0.0, -0.5]> : tensor<4xf32>
  %wu4 = arith.constant dense<[[[1.0], [1.0]], [[1.0], [0.0]], [[0.0], [1.0]],
                               [[-1.0], [-1.0]]]> : tensor<4x2x1xf32>
  %wd4 = arith.constant dense<[[[1.0, 0.0]], [[0.0, 1.0]], [[1.0, 1.0]],
                               [[100.0, 100.0]]]> : tensor<4x1x2xf32>
  %y4 = moe.layer %x4d router(%wr4 : tensor<2x4xf32>)
      router_bias(%br4 : tensor<4xf32>) k_per_token(%k4d : tensor<?xi32>)
      up(%wu4 : tensor<4x2x1xf32>) down(%wd4 : tensor<4x1x2xf32>)
      experts = <compute = 4> k = 2 scoring = none strategy = dynamic_k
      normalize = selected scale = 4.0 groups = <n = 2, top = 1> activation = relu
      : tensor<?x2xf32> -> tensor<?x2xf32>
  %u4 = tensor.cast %y4 : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u4) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [2, 2]
  // CHECK-NEXT: [7.5,   1.5],
  // CHECK-NEXT: [8,   8]]
  return
}
