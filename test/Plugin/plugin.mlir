// The stock mlir-opt of the LLVM toolchain loads the moe dialect and passes
// from the plugin library.
//
// Round trip (text and bytecode) and the decomposition on this file:
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin %s | FileCheck %s --check-prefix=ROUNDTRIP
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --emit-bytecode %s | %mlir_opt --load-dialect-plugin=%moe_plugin | FileCheck %s --check-prefix=ROUNDTRIP
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --load-pass-plugin=%moe_plugin --pass-pipeline="builtin.module(moe-decompose-layer)" %s | FileCheck %s --check-prefix=DECOMPOSE
//
// The whole op round-trip suite and the whole decomposition suite give the
// same results through the plugin as through moe-opt (same CHECK lines):
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin %S/../Dialect/MoE/ops.mlir | %mlir_opt --load-dialect-plugin=%moe_plugin | FileCheck %S/../Dialect/MoE/ops.mlir
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --load-pass-plugin=%moe_plugin --pass-pipeline="builtin.module(moe-decompose-layer)" --split-input-file %S/../Dialect/MoE/decompose-layer.mlir | FileCheck %S/../Dialect/MoE/decompose-layer.mlir
//
// The verifier runs inside the stock tool too:
// RUN: %mlir_opt --load-dialect-plugin=%moe_plugin --split-input-file --verify-diagnostics %S/../Dialect/MoE/invalid.mlir
//
// The pass is listed by the stock tool's --help:
// RUN: %mlir_opt --load-pass-plugin=%moe_plugin --help | FileCheck %s --check-prefix=HELP
// HELP: --moe-decompose-layer{{ +}}- Expand moe.layer into gate, route, dispatch, expert_ffn and combine

// ROUNDTRIP-LABEL: func.func @adamoe
// ROUNDTRIP: moe.layer %{{.*}} router(%{{.*}} : tensor<32x6xf32>) up(%{{.*}} : tensor<4x32x16xf32>) gate(%{{.*}} : tensor<4x32x16xf32>) down(%{{.*}} : tensor<4x16x32xf32>) experts = <compute = 4, null = 2> k = 2 strategy = top_p<p = 5.000000e-01> normalize = non_null activation = silu gated : tensor<?x32xf32> -> tensor<?x32xf32>

// DECOMPOSE-LABEL: func.func @adamoe
// DECOMPOSE-SAME: (%[[X:.*]]: tensor<?x32xf32>, %[[WR:.*]]: tensor<32x6xf32>,
// DECOMPOSE:      %[[L:.*]] = moe.gate %[[X]], %[[WR]]
// DECOMPOSE:      %[[IDS:.*]], %[[W:.*]] = moe.route %[[L]] experts = <compute = 4, null = 2> k = 2 strategy = top_p<p = 5.000000e-01> normalize = non_null
// DECOMPOSE:      %[[ROWS:.*]], %[[OFF:.*]], %[[SLOT:.*]] = moe.dispatch %[[X]], %[[IDS]] num_experts = 4
// DECOMPOSE:      %[[Y:.*]] = moe.expert_ffn %[[ROWS]], %[[OFF]]
// DECOMPOSE:      moe.combine %[[Y]], %[[SLOT]], %[[IDS]], %[[W]], %[[X]] experts = <compute = 4, null = 2>
// DECOMPOSE-NOT: moe.layer
func.func @adamoe(%x: tensor<?x32xf32>, %wr: tensor<32x6xf32>,
                  %wu: tensor<4x32x16xf32>, %wg: tensor<4x32x16xf32>,
                  %wd: tensor<4x16x32xf32>) -> tensor<?x32xf32> {
  %y = moe.layer %x router(%wr : tensor<32x6xf32>)
      up(%wu : tensor<4x32x16xf32>) gate(%wg : tensor<4x32x16xf32>)
      down(%wd : tensor<4x16x32xf32>)
      experts = <compute = 4, null = 2> k = 2 strategy = top_p<p = 0.5>
      normalize = non_null activation = silu gated
      : tensor<?x32xf32> -> tensor<?x32xf32>
  return %y : tensor<?x32xf32>
}
