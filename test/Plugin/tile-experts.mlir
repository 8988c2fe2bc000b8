// Tiling the grouped ops over their experts (and over rows and experts) with
// the upstream transform dialect, in the stock mlir-opt with the plugin. A
// tile of experts [e0, e0 + n) computes their rows [s[e0], s[e0 + n)) (s:
// the sanitised offsets, found by a loop over the raw ones), plus, in the
// tile of the last expert, the rows past s[E], which are zero; it reads
// those experts' weights and offsets only. With rows tiled too, a tile
// computes the rows of both ranges.
//
// The transform script is Inputs/tile-experts-schedule.mlir.
//
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin %s --transform-preload-library=transform-library-paths=%S/Inputs/tile-experts-schedule.mlir --transform-interpreter --canonicalize | FileCheck %s --check-prefix=IR
//
// Execution, checked against the hand-derived values below:
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin %s --pass-pipeline="builtin.module(transform-preload-library{transform-library-paths=%S/Inputs/tile-experts-schedule.mlir},transform-interpreter,%stock_cpu_lowering)" > %t.tiled.mlir
// RUN: %mlir_runner %t.tiled.mlir -e main -entry-point-result=void -shared-libs=%runner_libs > %t.tiled.txt
// RUN: FileCheck %s --input-file=%t.tiled.txt
//
// The untiled module prints the same through the project's CPU pipeline:
// RUN: moe-opt %s --moe-cpu-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | grep -v "base@" > %t.untiled.txt
// RUN: grep -v "base@" %t.tiled.txt | diff - %t.untiled.txt

// IR-LABEL: func.func @main
// One expert per tile: a parallel loop over the 3 experts; the tile's first
// row is the sanitised offset of its expert (a loop over the raw offsets),
// its weights the expert's matrix, its offsets the expert's two entries.
// IR:         scf.forall (%[[E:.*]]) in (3) shared_outs(%[[OUT:.*]] = %{{.*}})
// IR:           scf.for
// IR:             tensor.extract
// IR:             arith.maxsi
// IR:           %[[RHS:.*]] = tensor.extract_slice %{{.*}}[%[[E]], 0, 0] [1, 2, 2] [1, 1, 1] : tensor<3x2x2xf32> to tensor<1x2x2xf32>
// IR:           %[[OFF:.*]] = tensor.extract_slice %{{.*}}[%[[E]]] [2] [1] : tensor<4xi32> to tensor<2xi32>
// IR:           moe.grouped_matmul %{{.*}}, %[[RHS]], %{{.*}} into(%{{.*}}) {experts_1} : tensor<?x2xf32>, tensor<1x2x2xf32>, tensor<2xi32> into tensor<?x2xf32>
// IR:           tensor.parallel_insert_slice %{{.*}} into %[[OUT]]
// Rows and experts by 2: two nested loops.
// IR:         scf.for
// IR:           scf.for
// IR:             moe.grouped_matmul {{.*}} : tensor<?x2xf32>, tensor<?x2x2xf32>, tensor<?xi32> into tensor<?x2xf32>
// The FFN, one expert per tile.
// IR:         scf.forall (%{{.*}}) in (2)
// IR:           moe.expert_ffn {{.*}} up(%{{.*}} : tensor<1x2x3xf32>) down(%{{.*}} : tensor<1x3x2xf32>)

func.func private @printMemrefF32(tensor<*xf32>) attributes { llvm.emit_c_interface }

func.func @main() {
  // R = 6 rows, offsets [-7, 2, 1, 4] sanitised to [0, 2, 2, 4]: rows 0-1
  // expert 0, none for expert 1, rows 2-3 expert 2, rows 4-5 past s[E]
  // (zero, although the destination holds 7s). rhs[e] = (e + 1) * identity
  // plus [[0, 1], [0, 0]] for e = 2.
  %lhs = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [9.0, 10.0], [11.0, 12.0]]> : tensor<6x2xf32>
  %lhsd = tensor.cast %lhs : tensor<6x2xf32> to tensor<?x2xf32>
  %rhs = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 2.0]], [[3.0, 1.0], [0.0, 3.0]]]> : tensor<3x2x2xf32>
  %off = arith.constant dense<[-7, 2, 1, 4]> : tensor<4xi32>
  %sevens = arith.constant dense<7.0> : tensor<6x2xf32>
  %dest = tensor.cast %sevens : tensor<6x2xf32> to tensor<?x2xf32>
  %g1 = moe.grouped_matmul %lhsd, %rhs, %off into(%dest) {experts_1}
      : tensor<?x2xf32>, tensor<3x2x2xf32>, tensor<4xi32> into tensor<?x2xf32>
  %u1 = tensor.cast %g1 : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u1) : (tensor<*xf32>) -> ()
  // rows 0-1: [1, 2], [3, 4]; rows 2-3 (expert 2): [3 a, a + 3 b]; rows 4-5: 0.
  // CHECK-LABEL: sizes = [6, 2]
  // CHECK-NEXT: {{\[\[}}1,   2],
  // CHECK-NEXT: [3,   4],
  // CHECK-NEXT: [15,   23],
  // CHECK-NEXT: [21,   31],
  // CHECK-NEXT: [0,   0],
  // CHECK-NEXT: [0,   0]]

  // The same by 2 rows and 2 experts (tiles cut expert 2's rows and hold
  // experts {0, 1} or {2}).
  %g2 = moe.grouped_matmul %lhsd, %rhs, %off into(%dest) {rows_experts_2}
      : tensor<?x2xf32>, tensor<3x2x2xf32>, tensor<4xi32> into tensor<?x2xf32>
  %u2 = tensor.cast %g2 : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u2) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [6, 2]
  // CHECK-NEXT: {{\[\[}}1,   2],
  // CHECK-NEXT: [3,   4],
  // CHECK-NEXT: [15,   23],
  // CHECK-NEXT: [21,   31],
  // CHECK-NEXT: [0,   0],
  // CHECK-NEXT: [0,   0]]

  // expert_ffn (relu, biases) on 4 rows, offsets [0, 3, 9] sanitised to
  // [0, 3, 4]: rows 0-2 expert 0, row 3 expert 1. w_up[e] = [[1, 0, 1],
  // [0, 1, 1]] * (e + 1), b_up = 0 and -2, w_down[e] = [[1, 0], [0, 1],
  // [1, 1]], b_down = [0.5, 0] for both:
  //   expert 0, row [a, b]: h = relu([a, b, a + b]), y = [2a + b, a + 2b] + [0.5, 0]
  //   expert 1, row [a, b]: h = relu(2 [a, b, a + b] - 2)
  %rows = arith.constant dense<[[1.0, 2.0], [-1.0, 0.5], [0.0, 3.0], [2.0, 1.0]]> : tensor<4x2xf32>
  %rowsd = tensor.cast %rows : tensor<4x2xf32> to tensor<?x2xf32>
  %foff = arith.constant dense<[0, 3, 9]> : tensor<3xi32>
  %wu = arith.constant dense<[[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], [[2.0, 0.0, 2.0], [0.0, 2.0, 2.0]]]> : tensor<2x2x3xf32>
  %bu = arith.constant dense<[[0.0, 0.0, 0.0], [-2.0, -2.0, -2.0]]> : tensor<2x3xf32>
  %wd = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]]> : tensor<2x3x2xf32>
  %bd = arith.constant dense<[[0.5, 0.0], [0.5, 0.0]]> : tensor<2x2xf32>
  %fdest = tensor.empty() : tensor<4x2xf32>
  %fdestd = tensor.cast %fdest : tensor<4x2xf32> to tensor<?x2xf32>
  %y = moe.expert_ffn %rowsd, %foff up(%wu : tensor<2x2x3xf32>)
      down(%wd : tensor<2x3x2xf32>) up_bias(%bu : tensor<2x3xf32>)
      down_bias(%bd : tensor<2x2xf32>) activation = relu into(%fdestd) {experts_1}
      : tensor<?x2xf32>, tensor<3xi32> into tensor<?x2xf32>
  %u3 = tensor.cast %y : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u3) : (tensor<*xf32>) -> ()
  //   [1, 2] (e0): h = [1, 2, 3] -> [4.5, 5]
  //   [-1, 0.5] (e0): h = [0, 0.5, 0] -> [0.5, 0.5]
  //   [0, 3] (e0): h = [0, 3, 3] -> [3.5, 6]
  //   [2, 1] (e1): h = relu([2, 0, 4]) = [2, 0, 4] -> [6.5, 4]
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: {{\[\[}}4.5,   5],
  // CHECK-NEXT: [0.5,   0.5],
  // CHECK-NEXT: [3.5,   6],
  // CHECK-NEXT: [6.5,   4]]
  return
}
