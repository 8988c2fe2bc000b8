// Tiling and fusion of moe ops by the upstream transform dialect, in the
// stock mlir-opt with the plugin: the routing stage (moe.route, with the
// moe.gate that feeds it fused into the loop) and moe.combine are tiled
// over tokens by 3 (T = 4: a partial last tile), moe.expert_ffn and
// moe.grouped_matmul over rows by 2, then every moe op is bufferized by one-shot-bufferize through the ops' own models and
// the module runs.
//
// The transform script is Inputs/tile-and-fuse-schedule.mlir.
//
// The IR after the transform script (the sizes of the tiled ops' results
// are reified: the untiled gate, needed only for its number of tokens, goes):
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin %s --transform-preload-library=transform-library-paths=%S/Inputs/tile-and-fuse-schedule.mlir --transform-interpreter --resolve-ranked-shaped-type-result-dims --canonicalize | FileCheck %s --check-prefix=IR
//
// Execution, checked against the hand-derived values below:
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin %s --pass-pipeline="builtin.module(transform-preload-library{transform-library-paths=%S/Inputs/tile-and-fuse-schedule.mlir},transform-interpreter,resolve-ranked-shaped-type-result-dims,%stock_cpu_lowering)" > %t.tiled.mlir
// RUN: %mlir_runner %t.tiled.mlir -e main -entry-point-result=void -shared-libs=%runner_libs > %t.tiled.txt
// RUN: FileCheck %s --input-file=%t.tiled.txt
//
// The tiled module prints exactly what the untiled one prints through the
// project's own CPU pipeline (the kernels' values do not depend on the
// tiling: every row is computed on its own):
// RUN: moe-opt %s --moe-cpu-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | grep -v "base@" > %t.untiled.txt
// RUN: grep -v "base@" %t.tiled.txt | diff - %t.untiled.txt

// IR-LABEL: func.func @main
// The routing stage: one loop over tiles of 3 tokens, gate and route inside.
// IR:         scf.for %[[T:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args(%[[IDS:.*]] = %{{.*}}, %[[W:.*]] = %{{.*}})
// IR:           %[[X:.*]] = tensor.extract_slice %{{.*}}[%[[T]], 0] [%[[N:.*]], 2] [1, 1] : tensor<4x2xf32> to tensor<?x2xf32>
// IR:           %[[L:.*]] = moe.gate %[[X]], %{{.*}} into(%{{.*}}) : tensor<?x2xf32>, tensor<2x3xf32> into tensor<?x3xf32>
// IR:           %{{.*}}, %{{.*}} = moe.route %[[L]] experts = <compute = 2, null = 1> k = 2 scoring = none strategy = top_k normalize = non_null into(%{{.*}}) : tensor<?x3xf32> into tensor<?x2xi32>, tensor<?x2xf32>
// IR:           tensor.insert_slice %{{.*}} into %[[IDS]][%[[T]], 0] [%[[N]], 2] [1, 1]
// IR:         moe.dispatch
// The experts: a loop over tiles of 2 rows, with the offsets shifted by the
// tile's first row (max(offsets, 0) - first).
// IR:         scf.for %[[R:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// IR:           %[[ROWS:.*]] = tensor.extract_slice %{{.*}}[%[[R]], 0] [%{{.*}}, 2] [1, 1] : tensor<?x2xf32> to tensor<?x2xf32>
// IR:           %[[FIRST:.*]] = arith.index_cast %[[R]] : index to i32
// IR:           %[[SHIFTED:.*]] = linalg.generic
// IR:             arith.maxsi
// IR:             arith.subi %{{.*}}, %[[FIRST]] : i32
// IR:           moe.expert_ffn %[[ROWS]], %[[SHIFTED]]
// The combine: a parallel loop over tiles of 3 tokens.
// Its destination is a slice of the loop's.
// IR:         scf.forall (%[[C:.*]]) in (2) shared_outs(%[[OUT:.*]] = %{{.*}})
// IR:           %[[DEST:.*]] = tensor.extract_slice %[[OUT]]
// IR:           moe.combine {{.*}} into(%[[DEST]]) : tensor<?x2xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>, tensor<?x2xf32> into tensor<?x2xf32>
// IR:           tensor.parallel_insert_slice
// The second case, T = 7 after the cast is resolved:
// IR-NOT:     moe.gate
// IR:         scf.for {{.*}} -> (tensor<?x2xi32>, tensor<7x2xf32>)
// IR:           moe.gate %{{.*}} into(%{{.*}}) : tensor<?x4xf32>, tensor<4x4xf32> into tensor<?x4xf32>
// IR:           moe.route
// IR:         moe.dispatch
// IR:         moe.expert_ffn
// IR:         scf.forall (%{{.*}}) in (3)
// IR:           moe.combine

func.func private @printMemrefF32(tensor<*xf32>) attributes { llvm.emit_c_interface }

// The first case of test/Integration/CPU/layer.mlir, decomposed (AdaMoE
// style: experts <compute = 2, null = 1>, K = 2, scoring none, top_k,
// normalize non_null, relu, biases); the values are derived there.
func.func @main() {
  %x = arith.constant dense<[[3.0, 1.0], [-1.0, 2.0], [-1.0, -2.0], [0.0, 0.0]]> : tensor<4x2xf32>
  %wr = arith.constant dense<[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]> : tensor<2x3xf32>
  %wu = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]]> : tensor<2x2x2xf32>
  %bu = arith.constant dense<[[0.0, 0.0], [1.0, 1.0]]> : tensor<2x2xf32>
  %wd = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 2.0]]]> : tensor<2x2x2xf32>
  %bd = arith.constant dense<[[1.0, 0.0], [0.0, 1.0]]> : tensor<2x2xf32>
  %init_logits = tensor.empty() : tensor<4x3xf32>
  %logits = moe.gate %x, %wr into(%init_logits) : tensor<4x2xf32>, tensor<2x3xf32> into tensor<4x3xf32>
  %init_ids = tensor.empty() : tensor<4x2xi32>
  %init_weights = tensor.empty() : tensor<4x2xf32>
  %ids, %weights = moe.route %logits experts = <compute = 2, null = 1> k = 2
      scoring = none strategy = top_k normalize = non_null into(%init_ids, %init_weights)
      : tensor<4x3xf32> into tensor<4x2xi32>, tensor<4x2xf32>
  %rows, %offsets, %slot_rows = moe.dispatch %x, %ids num_experts = 2
      : tensor<4x2xf32>, tensor<4x2xi32>
      -> tensor<?x2xf32>, tensor<3xi32>, tensor<4x2xi32>
  %init_y_c0 = arith.constant 0 : index
  %init_y_d0 = tensor.dim %rows, %init_y_c0 : tensor<?x2xf32>
  %init_y = tensor.empty(%init_y_d0) : tensor<?x2xf32>
  %y = moe.expert_ffn %rows, %offsets up(%wu : tensor<2x2x2xf32>)
      down(%wd : tensor<2x2x2xf32>) up_bias(%bu : tensor<2x2xf32>)
      down_bias(%bd : tensor<2x2xf32>) activation = relu into(%init_y)
      : tensor<?x2xf32>, tensor<3xi32> into tensor<?x2xf32>
  %init_out = tensor.empty() : tensor<4x2xf32>
  %out = moe.combine %y, %slot_rows, %ids, %weights, %x
      experts = <compute = 2, null = 1> into(%init_out)
      : tensor<?x2xf32>, tensor<4x2xi32>, tensor<4x2xi32>, tensor<4x2xf32>,
        tensor<4x2xf32> into tensor<4x2xf32>
  %u = tensor.cast %out : tensor<4x2xf32> to tensor<*xf32>
  call @printMemrefF32(%u) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [4, 2]
  // CHECK-NEXT: [4,   3],
  // CHECK-NEXT: [6,   1],
  // CHECK-NEXT: [1,   0],
  // CHECK-NEXT: [0,   0]]

  // Softmax top-p over <compute = 3, null = 1> with a dynamic T = 7 (tiles
  // of 3, 3 and 1), gated silu experts: checked by the comparison with the
  // untiled run above.
  %x2s = arith.constant dense<[[0.25, 0.79, 0.55, -0.55], [-0.40, 0.75, -0.99, 0.64], [0.59, -0.06, -0.39, -0.44], [-0.49, -0.11, 0.01, 0.11], [0.99, 0.59, 0.24, 0.98], [-0.57, -0.68, 0.23, -0.91], [-0.93, 0.03, -0.07, 0.83]]> : tensor<7x4xf32>
  %x2 = tensor.cast %x2s : tensor<7x4xf32> to tensor<?x4xf32>
  %wr2 = arith.constant dense<[[0.26, 0.03, -0.01, -0.50], [-0.98, -0.62, 0.38, -0.60], [-0.26, -0.99, 0.66, -0.69], [-0.46, 0.76, 0.02, 0.69]]> : tensor<4x4xf32>
  %wu2 = arith.constant dense<[[[0.28, 0.48], [-0.82, 0.08], [0.02, 0.74], [-0.28, 0.20]], [[-0.88, -0.22], [-0.35, -0.70], [0.63, -0.24], [0.96, 0.18]], [[0.21, 0.28], [0.35, -0.70], [-0.12, -0.52], [-0.20, -0.81]]]> : tensor<3x4x2xf32>
  %wg2 = arith.constant dense<[[[0.94, -0.57], [0.34, -0.40], [0.75, 0.32], [-0.74, 0.69]], [[0.89, 0.81], [0.14, -0.71], [-0.62, 0.86], [0.10, -0.64]], [[0.77, 0.28], [0.14, -0.25], [-0.18, -0.52], [-0.92, 0.75]]]> : tensor<3x4x2xf32>
  %wd2 = arith.constant dense<[[[-0.06, 0.10, -0.36, 0.50], [-0.95, -0.26, -0.94, -0.75]], [[0.93, 0.32, -0.14, 0.05], [0.75, -0.31, 0.18, 0.37]], [[-0.29, 0.04, 0.53, 0.82], [-0.70, 0.87, -0.99, 0.51]]]> : tensor<3x2x4xf32>
  %init_logits2_c0 = arith.constant 0 : index
  %init_logits2_d0 = tensor.dim %x2, %init_logits2_c0 : tensor<?x4xf32>
  %init_logits2 = tensor.empty(%init_logits2_d0) : tensor<?x4xf32>
  %logits2 = moe.gate %x2, %wr2 into(%init_logits2) : tensor<?x4xf32>, tensor<4x4xf32> into tensor<?x4xf32>
  %init_ids2_c0 = arith.constant 0 : index
  %init_ids2_d0 = tensor.dim %logits2, %init_ids2_c0 : tensor<?x4xf32>
  %init_ids2 = tensor.empty(%init_ids2_d0) : tensor<?x2xi32>
  %init_weights2_c0 = arith.constant 0 : index
  %init_weights2_d0 = tensor.dim %logits2, %init_weights2_c0 : tensor<?x4xf32>
  %init_weights2 = tensor.empty(%init_weights2_d0) : tensor<?x2xf32>
  %ids2, %weights2 = moe.route %logits2 experts = <compute = 3, null = 1> k = 2
      strategy = top_p<p = 0.6> normalize = non_null into(%init_ids2, %init_weights2)
      : tensor<?x4xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %rows2, %offsets2, %slot_rows2 = moe.dispatch %x2, %ids2 num_experts = 3
      : tensor<?x4xf32>, tensor<?x2xi32>
      -> tensor<?x4xf32>, tensor<4xi32>, tensor<?x2xi32>
  %init_y2_c0 = arith.constant 0 : index
  %init_y2_d0 = tensor.dim %rows2, %init_y2_c0 : tensor<?x4xf32>
  %init_y2 = tensor.empty(%init_y2_d0) : tensor<?x4xf32>
  %y2 = moe.expert_ffn %rows2, %offsets2 up(%wu2 : tensor<3x4x2xf32>)
      gate(%wg2 : tensor<3x4x2xf32>) down(%wd2 : tensor<3x2x4xf32>)
      activation = silu gated into(%init_y2) : tensor<?x4xf32>, tensor<4xi32> into tensor<?x4xf32>
  %init_out2_c0 = arith.constant 0 : index
  %init_out2_d0 = tensor.dim %x2, %init_out2_c0 : tensor<?x4xf32>
  %init_out2 = tensor.empty(%init_out2_d0) : tensor<?x4xf32>
  %out2 = moe.combine %y2, %slot_rows2, %ids2, %weights2, %x2
      experts = <compute = 3, null = 1> into(%init_out2)
      : tensor<?x4xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>,
        tensor<?x4xf32> into tensor<?x4xf32>
  %u2 = tensor.cast %out2 : tensor<?x4xf32> to tensor<*xf32>
  call @printMemrefF32(%u2) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: sizes = [7, 4]

  // grouped_matmul on R = 5 rows with offsets that need sanitising
  // (Semantics.md: o[0] = 0, o[e+1] = clamp(o[e+1], o[e], R)): a negative
  // start, a decreasing entry, one past R. Sanitised [0, 2, 2, 5]: rows 0-1
  // use expert 0, rows 2-4 expert 2. rhs[e] = (e + 1) * [[1, 0], [0, 1]]
  // plus [[0, 1], [0, 0]] for e = 2; tiles of 2 rows cut expert 2's rows.
  %lhs = arith.constant dense<[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]> : tensor<5x2xf32>
  %lhsd = tensor.cast %lhs : tensor<5x2xf32> to tensor<?x2xf32>
  %rhs = arith.constant dense<[[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 2.0]], [[3.0, 1.0], [0.0, 3.0]]]> : tensor<3x2x2xf32>
  %goff = arith.constant dense<[-7, 2, 1, 9]> : tensor<4xi32>
  %gc0 = arith.constant 0 : index
  %gr = tensor.dim %lhsd, %gc0 : tensor<?x2xf32>
  %ginit = tensor.empty(%gr) : tensor<?x2xf32>
  %g = moe.grouped_matmul %lhsd, %rhs, %goff into(%ginit)
      : tensor<?x2xf32>, tensor<3x2x2xf32>, tensor<4xi32> into tensor<?x2xf32>
  %ug = tensor.cast %g : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%ug) : (tensor<*xf32>) -> ()
  //   rows 0-1 (expert 0, identity): [1, 2], [3, 4]
  //   row r in 2-4 (expert 2): [3 a, a + 3 b] for [a, b]:
  //   [15, 23], [21, 31], [27, 39]
  // CHECK-LABEL: sizes = [5, 2]
  // CHECK-NEXT: [1,   2],
  // CHECK-NEXT: [3,   4],
  // CHECK-NEXT: [15,   23],
  // CHECK-NEXT: [21,   31],
  // CHECK-NEXT: [27,   39]]
  return
}
