// RUN: moe-opt %s --split-input-file --convert-moe-to-loops --canonicalize --cse | FileCheck %s

// top_p: per token, softmax scores (max, exp and sum, divide), then one
// selection pass over the S experts that keeps the K best sorted (a
// candidate enters if it beats the last pick, after every pick it does not
// beat: ties keep the earlier index, NaN keys lose), then the running sum decides n_t and the slots from n_t on
// are emptied. non_null normalisation leaves null slots at 0.
// CHECK-LABEL: func.func @top_p
// CHECK-DAG:  %[[P:.*]] = arith.constant 5.000000e-01 : f32
// CHECK-DAG:  %[[NEG_INF:.*]] = arith.constant 0xFF800000 : f32
// CHECK:      %[[T:.*]] = tensor.dim
// CHECK:      %[[IDS:.*]] = memref.alloc(%[[T]]) : memref<?x2xi32>
// CHECK:      %[[W:.*]] = memref.alloc(%[[T]]) : memref<?x2xf32>
// CHECK:      %[[SCORES:.*]] = memref.alloc() : memref<8xf32>
// CHECK:      %[[PICK_IDS:.*]] = memref.alloc() : memref<2xindex>
// CHECK:      %[[PICK_KEYS:.*]] = memref.alloc() : memref<2xf32>
// CHECK:      scf.for %[[TOK:.*]] = %c0 to %[[T]]
// CHECK:        %[[MAX:.*]] = scf.for {{.*}} iter_args({{.*}} = %[[NEG_INF]])
// CHECK:          arith.maximumf
// The exponentials in a loop of their own (it vectorises), then their sum
// in index order.
// CHECK:        scf.for
// CHECK:          math.exp
// CHECK:          memref.store {{.*}}, %[[SCORES]]
// CHECK:        %[[SUM:.*]] = scf.for
// CHECK:          memref.load %[[SCORES]]
// CHECK:          arith.addf
// CHECK:        arith.divf {{.*}}, %[[SUM]]
// One selection pass that carries the number of picks held and the key of
// the last one (the bar): a candidate that does not beat it costs one
// comparison; one that does is inserted after every pick it does not beat.
// CHECK:        %[[HELD:.*]]:2 = scf.for %[[I:.*]] = %c0 to %c8 step %c1 iter_args(%[[N:.*]] = %c0, %[[BAR:.*]] = %[[NAN:.*]]) -> (index, f32)
// CHECK:          %[[KEY:.*]] = memref.load %[[SCORES]][%[[I]]]
// CHECK-DAG:      arith.cmpf ugt, %[[KEY]], %[[BAR]]
// CHECK-DAG:      arith.cmpf ord, %[[KEY]], %[[KEY]]
// CHECK:          scf.if %{{.*}} -> (index, f32)
// CHECK:            %[[POS:.*]] = scf.for {{.*}} = %c0 to %[[N]]
// CHECK:            scf.for
// CHECK:            memref.store %[[I]], %[[PICK_IDS]][%[[POS]]]
// CHECK:            memref.store %[[KEY]], %[[PICK_KEYS]][%[[POS]]]
// CHECK:            %[[NEWBAR:.*]] = memref.load %[[PICK_KEYS]][%c1]
// CHECK:            scf.yield %{{.*}}, %[[NEWBAR]]
// CHECK:          } else {
// CHECK:            scf.yield %[[N]], %[[BAR]]
// CHECK:        scf.for %[[J:.*]] = %c0 to %c2
// CHECK:          arith.cmpi slt, %[[J]], %[[HELD]]#0
// CHECK:          memref.store {{.*}}, %[[IDS]][%[[TOK]], %[[J]]]
// CHECK:          memref.store {{.*}}, %[[W]][%[[TOK]], %[[J]]]
// The count: the first prefix whose running sum reaches p.
// CHECK:        %[[COUNT:.*]]:3 = scf.for {{.*}} iter_args
// CHECK:          arith.addf
// CHECK:          arith.cmpf oge, {{.*}}, %[[P]]
// CHECK:        scf.for {{.*}} = %[[COUNT]]#1 to %c2
// CHECK:          memref.store %c-1_i32, %[[IDS]]
func.func @top_p(%l: tensor<?x8xf32>) -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l experts = <compute = 6, null = 2> k = 2
      strategy = top_p<p = 0.5> normalize = non_null into(%init_ids, %init_w)
      : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// dynamic_k: n_t = clamp(k_per_token[t], 0, K).
// CHECK-LABEL: func.func @dynamic_k
// CHECK-SAME: %[[KPT:[a-z0-9]+]]: tensor<?xi32>
// CHECK:      %[[REQ:.*]] = tensor.extract %[[KPT]]
// CHECK:      %[[REQI:.*]] = arith.index_cast %[[REQ]]
// CHECK:      %[[LOW:.*]] = arith.maxsi %[[REQI]], %c0
// CHECK:      %[[N:.*]] = arith.minsi %[[LOW]], %c3
// CHECK:      scf.for {{.*}} = %[[N]] to %c3
func.func @dynamic_k(%l: tensor<?x8xf32>, %kpt: tensor<?xi32>)
    -> (tensor<?x3xi32>, tensor<?x3xf32>) {
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x3xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x3xf32>
  %ids, %w = moe.route %l k_per_token(%kpt : tensor<?xi32>)
      experts = <compute = 8> k = 3 scoring = none strategy = dynamic_k into(%init_ids, %init_w)
      : tensor<?x8xf32> into tensor<?x3xi32>, tensor<?x3xf32>
  return %ids, %w : tensor<?x3xi32>, tensor<?x3xf32>
}

// -----

// Capacity by position: a counting walk in (slot, token) order; a slot over
// its expert's capacity is emptied, then every token is compacted.
// C = ceil(factor * T * K / E) is computed exactly in 128-bit integers.
// CHECK-LABEL: func.func @capacity_position
// CHECK:      arith.muli {{.*}} : i128
// CHECK:      arith.shrui {{.*}} : i128
// CHECK:      arith.divui {{.*}} : i64
// CHECK:      scf.for %[[J:.*]] = %c0 to %c2
// CHECK:        scf.for %[[T:.*]] = %c0 to %{{.*}}
// CHECK:          memref.load {{.*}}[%[[T]], %[[J]]]
func.func @capacity_position(%l: tensor<?x8xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k
      capacity = <factor = 1.25, priority = position> into(%init_ids, %init_w)
      : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}

// -----

// Capacity by score and expert choice order slots with a stable LSD radix
// sort (4 passes of 8 bits over a 256-bucket histogram) on the weights'
// bits, so that ties keep the lower token.
// CHECK-LABEL: func.func @capacity_score
// CHECK:      memref.alloc() : memref<256xindex>
// CHECK-COUNT-4: arith.shrui {{.*}} : i32
func.func @capacity_score(%l: tensor<?x8xf32>)
    -> (tensor<?x2xi32>, tensor<?x2xf32>) {
  %init_ids_c0 = arith.constant 0 : index
  %init_ids_d0 = tensor.dim %l, %init_ids_c0 : tensor<?x8xf32>
  %init_ids = tensor.empty(%init_ids_d0) : tensor<?x2xi32>
  %init_w_c0 = arith.constant 0 : index
  %init_w_d0 = tensor.dim %l, %init_w_c0 : tensor<?x8xf32>
  %init_w = tensor.empty(%init_w_d0) : tensor<?x2xf32>
  %ids, %w = moe.route %l experts = <compute = 8> k = 2 strategy = top_k
      capacity = <factor = 1.25, priority = score> into(%init_ids, %init_w)
      : tensor<?x8xf32> into tensor<?x2xi32>, tensor<?x2xf32>
  return %ids, %w : tensor<?x2xi32>, tensor<?x2xf32>
}
