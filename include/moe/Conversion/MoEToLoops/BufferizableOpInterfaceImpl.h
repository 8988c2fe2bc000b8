//===- BufferizableOpInterfaceImpl.h - moe ops in one-shot-bufferize -*- C++
//-*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_MOETOLOOPS_BUFFERIZABLEOPINTERFACEIMPL_H
#define MOE_CONVERSION_MOETOLOOPS_BUFFERIZABLEOPINTERFACEIMPL_H

namespace mlir {
class DialectRegistry;

namespace moe {

/// Attaches BufferizableOpInterface to the compute ops of the moe dialect
/// (gate, route, dispatch, route_dispatch, grouped_matmul, expert_ffn,
/// combine, aux_loss), so that `one-shot-bufferize` lowers them where they
/// stand, in a module that also holds linalg, tensor and scf ops (a tiled
/// loop nest included). Each op reads its tensor operands, writes none of
/// them and bufferizes to new allocations with the identity layout: its
/// results alias nothing. Bufferizing an op emits the loop nest of
/// convert-moe-to-loops (default options) on the operands' buffers, whose
/// layouts may be any strided layout (a tile of a larger buffer is read in
/// place). `moe.layer` has no model: decompose it first.
void registerBufferizableOpInterfaceExternalModels(DialectRegistry &registry);

} // namespace moe
} // namespace mlir

#endif // MOE_CONVERSION_MOETOLOOPS_BUFFERIZABLEOPINTERFACEIMPL_H
