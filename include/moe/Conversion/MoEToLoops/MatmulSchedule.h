//===- MatmulSchedule.h - Schedule of the CPU matmul kernel -----*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The register-blocked matmul of the CPU lowering (moe.gate,
// moe.route_dispatch, moe.grouped_matmul, moe.expert_ffn) is generated from a
// schedule: vector width, register blocks, panel grouping, chunk sizes and
// prefetch distance. One function, chooseMatmulSchedule, picks it from the
// target and the matmul's shape; a `moe.matmul_schedule` attribute on the op
// or around it overrides fields (getMatmulSchedule). No schedule changes a
// value: every output element is the same f32 FMA chain over the depth in
// order.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_MOETOLOOPS_MATMULSCHEDULE_H
#define MOE_CONVERSION_MOETOLOOPS_MATMULSCHEDULE_H

#include "moe/Dialect/MoE/IR/MoEAttrs.h"

#include "mlir/IR/BuiltinTypeInterfaces.h"
#include "mlir/IR/Types.h"

#include <array>
#include <cstdint>
#include <string>

namespace mlir {
class Operation;

namespace moe {
class MatmulScheduleAttr;
class CPUTargetAttr;

/// What the generated code will run on, as far as the schedule cares: the
/// module's `moe.cpu_target` (moe-cpu-target, which moe-cpu-pipeline's
/// `target-cpu` adds), or the default below (16 f32 lanes, 32 vector
/// registers: AVX-512) when the module does not say.
struct CPUTarget {
  /// Width of one vector register in bits.
  int64_t vectorBits = 512;
  /// Vector registers the register blocks may use.
  int64_t vectorRegisters = 32;

  /// The target of a `#moe.cpu_target`: AVX-512 (avx512f: 512 bits, 32
  /// registers), AVX/AVX2 (256 bits, 16 registers), else SSE (128, 16).
  static CPUTarget get(CPUTargetAttr attr);
};

/// The matmul being scheduled, as the lowering knows it statically:
/// `c[rows, columns] = a[rows, depth] @ b[depth, columns]`.
struct MatmulShape {
  /// Element types of A, B and C.
  Type a, b, c;
  /// B in 32-column panels (the `packed` weight layout).
  bool bPacked = false;
  /// B in quantized tiles of 32 columns x 32 depths.
  std::optional<WeightQuant> quant;
  /// Static sizes, or ShapedType::kDynamic.
  int64_t depth = ShapedType::kDynamic;
  int64_t columns = ShapedType::kDynamic;
};

/// The parameters of the kernel (MatmulKernel.cpp). The fields and their
/// ranges are those of #moe.matmul_schedule (MoEAttrs.td).
struct MatmulSchedule {
  /// f32 lanes of one vector: a panel of 32 columns is 32 / lanes vectors.
  int64_t lanes = 16;
  /// Columns of a register block (a multiple of `lanes` dividing 32): a
  /// panel is covered by 32 / cols blocks side by side.
  int64_t cols = 32;
  /// Rows of the main register block, then of at most one smaller block
  /// (0: none); the rows left after them go in blocks of 2 and 1 across
  /// `tailPanels` panels at once (single rows outside those groups).
  int64_t rows = 8;
  int64_t tailRows = 4;
  int64_t tailPanels = 4;
  /// Rows per L2 chunk (their rows of A are packed together).
  int64_t chunkRows = 256;
  /// Depth per L1 block: A is packed per chunk and block,
  /// [ceil(chunkRows / rows)][depthBlock][rows], and partial sums go through
  /// C (so only an f32 C is blocked). 0: not blocked, A read in place.
  int64_t depthBlock = 256;
  /// k steps ahead that blocks of at least `prefetchMinRows` rows prefetch
  /// packed weights (0: no prefetch).
  int64_t prefetchDistance = 32;
  int64_t prefetchMinRows = 4;
  /// Rows of one moe.expert_ffn work item (its f32 scratch [ffnRows, F]).
  int64_t ffnRows = 128;

  /// Vectors per 32-column panel.
  int64_t panelVectors() const;
  /// The shape of the f32 pack of A, or all zeros when A is not packed.
  std::array<int64_t, 3> packShape() const;
  /// `lanes = 16, rows = 8, ...`: every field, in the attribute's syntax.
  std::string str() const;
};

/// The schedule for `shape` on `target`: vectors of `target.vectorBits /
/// 32` lanes; register blocks of two vectors and as many rows as the
/// registers hold (accumulators, B's vectors and a broadcast: 8 x 32
/// columns with 32 registers, 6 x 16 with 16); the last rows across as
/// many panels as half the registers hold; an f32 result blocked over the
/// depth (a block no deeper than a static depth, whole tiles of quantized
/// weights), other results not; prefetch only from packed weights.
MatmulSchedule chooseMatmulSchedule(const CPUTarget &target,
                                    const MatmulShape &shape);

/// The innermost `moe.matmul_schedule` attribute on `op` or its ancestors,
/// or null.
MatmulScheduleAttr lookupMatmulScheduleAttr(Operation *op);

/// `schedule` with the fields that `overrides` sets (null: unchanged); an
/// override of `depth_block` does not block a result that is not f32, and
/// is rounded up to whole tiles for quantized weights.
MatmulSchedule applyOverrides(MatmulSchedule schedule,
                              MatmulScheduleAttr overrides,
                              const MatmulShape &shape);

/// The innermost `moe.cpu_target` attribute on `op` or its ancestors (the
/// module's), or null.
CPUTargetAttr lookupCPUTargetAttr(Operation *op);

/// The schedule of a matmul of `shape` that lowers `op`: chooseMatmulSchedule
/// for the module's CPU target (the default without one), then the
/// overrides around `op`.
MatmulSchedule getMatmulSchedule(Operation *op, const MatmulShape &shape);

} // namespace moe
} // namespace mlir

#endif // MOE_CONVERSION_MOETOLOOPS_MATMULSCHEDULE_H
