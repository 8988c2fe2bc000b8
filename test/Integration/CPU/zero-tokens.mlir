// T = 0 through the CPU pipeline (Semantics.md section 4: T = 0 works and
// returns empty results). Dynamic shapes, fed by 0-row constants cast to ?.
// Empty tensors print no data, so only the sizes (and the non-empty offsets
// and loss) are checked.
// RUN: moe-opt %s --moe-cpu-pipeline=status-argument=0 | %mlir_runner -e main -entry-point-result=void -shared-libs=%runner_libs | FileCheck %s

// The printers only read their argument (bufferization.access): the values
// printed here are used again afterwards, and one-shot-bufferize would
// otherwise have to copy an unranked tensor before each call, which it
// cannot do.
func.func private @printMemrefF32(tensor<*xf32> {bufferization.access = "read"}) attributes { llvm.emit_c_interface }
func.func private @printMemrefI32(tensor<*xi32> {bufferization.access = "read"}) attributes { llvm.emit_c_interface }

func.func @main() {
  %x0 = arith.constant dense<> : tensor<0x2xf32>
  %x = tensor.cast %x0 : tensor<0x2xf32> to tensor<?x2xf32>
  %wr = arith.constant dense<[[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0]]> : tensor<2x4xf32>

  // gate: [0, 2] @ [2, 4] -> sizes [0, 4]
  %init_l_c0 = arith.constant 0 : index
  %init_l_d0 = tensor.dim %x, %init_l_c0 : tensor<?x2xf32>
  %init_l = tensor.empty(%init_l_d0) : tensor<?x4xf32>
  %l = moe.gate %x, %wr into(%init_l) : tensor<?x2xf32>, tensor<2x4xf32> into tensor<?x4xf32>
  %ul = tensor.cast %l : tensor<?x4xf32> to tensor<*xf32>
  call @printMemrefF32(%ul) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: rank = 2 offset = 0 sizes = [0, 4]

  // route with capacity over <compute = 3, null = 1>, K = 2:
  // C = ceil(1.0 * 0 * 2 / 3) = 0, nothing to keep -> ids, weights [0, 2]
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x4xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x4xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l experts = <compute = 3, null = 1> k = 2 scoring = softmax
      strategy = top_k normalize = non_null capacity = <factor = 1.0, priority = score> into(%init_ids, %init_w)
      : tensor<?x4xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %ui = tensor.cast %ids : tensor<?x2xi32> to tensor<*xi32>
  %uw = tensor.cast %w : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefI32(%ui) : (tensor<*xi32>) -> ()
  call @printMemrefF32(%uw) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: rank = 2 offset = 0 sizes = [0, 2]
  // CHECK-LABEL: rank = 2 offset = 0 sizes = [0, 2]

  // expert_choice over 4 compute experts: C = min(0, ceil(2 * 0 / 4)) = 0
  %init_eids_c0 = arith.constant 0 : index
  %init_eids_d0 = tensor.dim %l, %init_eids_c0 : tensor<?x4xf32>
  %init_eids = tensor.empty(%init_eids_d0) : tensor<?x2xi32>
  %init_ew_c0 = arith.constant 0 : index
  %init_ew_d0 = tensor.dim %l, %init_ew_c0 : tensor<?x4xf32>
  %init_ew = tensor.empty(%init_ew_d0) : tensor<?x2xf32>
  %eids, %ew = moe.route %l experts = <compute = 4> k = 2 scoring = none
      strategy = expert_choice<capacity_factor = 2.0> into(%init_eids, %init_ew)
      : tensor<?x4xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  %uei = tensor.cast %eids : tensor<?x2xi32> to tensor<*xi32>
  call @printMemrefI32(%uei) : (tensor<*xi32>) -> ()
  // CHECK-LABEL: rank = 2 offset = 0 sizes = [0, 2]

  // dispatch: R = 0 rows, offsets [0, 0, 0, 0], slot_rows [0, 2]
  %rows, %off, %sr = moe.dispatch %x, %ids num_experts = 3
      : tensor<?x2xf32>, tensor<?x2xi32> -> tensor<?x2xf32>, tensor<4xi32>, tensor<?x2xi32>
  %ur = tensor.cast %rows : tensor<?x2xf32> to tensor<*xf32>
  %uo = tensor.cast %off : tensor<4xi32> to tensor<*xi32>
  %us = tensor.cast %sr : tensor<?x2xi32> to tensor<*xi32>
  call @printMemrefF32(%ur) : (tensor<*xf32>) -> ()
  call @printMemrefI32(%uo) : (tensor<*xi32>) -> ()
  call @printMemrefI32(%us) : (tensor<*xi32>) -> ()
  // CHECK-LABEL: rank = 2 offset = 0 sizes = [0, 2]
  // CHECK-LABEL: rank = 1 offset = 0 sizes = [4]
  // CHECK-NEXT: [0,  0,  0,  0]
  // CHECK-LABEL: rank = 2 offset = 0 sizes = [0, 2]

  // expert_ffn on R = 0 rows -> sizes [0, 2]
  %wu = arith.constant dense<1.0> : tensor<3x2x2xf32>
  %wd = arith.constant dense<1.0> : tensor<3x2x2xf32>
  %init_yr_c0 = arith.constant 0 : index
  %init_yr_d0 = tensor.dim %rows, %init_yr_c0 : tensor<?x2xf32>
  %init_yr = tensor.empty(%init_yr_d0) : tensor<?x2xf32>
  %yr = moe.expert_ffn %rows, %off up(%wu : tensor<3x2x2xf32>)
      gate(%wu : tensor<3x2x2xf32>) down(%wd : tensor<3x2x2xf32>)
      activation = silu gated into(%init_yr) : tensor<?x2xf32>, tensor<4xi32> into tensor<?x2xf32>
  %uy = tensor.cast %yr : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%uy) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: rank = 2 offset = 0 sizes = [0, 2]

  // combine -> sizes [0, 2]
  %init_out_c0 = arith.constant 0 : index
  %init_out_d0 = tensor.dim %x, %init_out_c0 : tensor<?x2xf32>
  %init_out = tensor.empty(%init_out_d0) : tensor<?x2xf32>
  %out = moe.combine %yr, %sr, %ids, %w, %x experts = <compute = 3, null = 1> into(%init_out)
      : tensor<?x2xf32>, tensor<?x2xi32>, tensor<?x2xi32>, tensor<?x2xf32>,
        tensor<?x2xf32> into tensor<?x2xf32>
  %uc = tensor.cast %out : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%uc) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: rank = 2 offset = 0 sizes = [0, 2]

  // aux_loss with T = 0: no valid slot, P = 0 / max(1, 0) -> L = 0
  %init_loss = tensor.empty() : tensor<f32>
  %loss = moe.aux_loss %l, %ids into(%init_loss) : tensor<?x4xf32>, tensor<?x2xi32> into tensor<f32>
  %ux = tensor.cast %loss : tensor<f32> to tensor<*xf32>
  call @printMemrefF32(%ux) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: rank = 0
  // CHECK-NEXT: [0]

  // the whole layer with T = 0 -> sizes [0, 2]
  %yl = moe.layer %x router(%wr : tensor<2x4xf32>) up(%wu : tensor<3x2x2xf32>)
      gate(%wu : tensor<3x2x2xf32>) down(%wd : tensor<3x2x2xf32>)
      experts = <compute = 3, null = 1> k = 2 strategy = top_k
      normalize = non_null activation = silu gated
      : tensor<?x2xf32> -> tensor<?x2xf32>
  %uyl = tensor.cast %yl : tensor<?x2xf32> to tensor<*xf32>
  call @printMemrefF32(%uyl) : (tensor<*xf32>) -> ()
  // CHECK-LABEL: rank = 2 offset = 0 sizes = [0, 2]
  return
}
