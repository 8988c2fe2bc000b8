//===- BufferizableOpInterfaceImpl.h - moe ops in bufferization -*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_CONVERSION_MOETOLOOPS_BUFFERIZABLEOPINTERFACEIMPL_H
#define MOE_CONVERSION_MOETOLOOPS_BUFFERIZABLEOPINTERFACEIMPL_H

namespace mlir {
class DialectRegistry;

namespace moe {

/// Attaches BufferizableOpInterface to the compute ops of the moe dialect,
/// so that `one-shot-bufferize` lowers them where they stand, in a module
/// that also holds linalg, tensor and scf ops (a tiled loop nest included).
/// The destination-style ops (gate, route, dispatch_padded, grouped_matmul,
/// expert_ffn, combine, aux_loss) read their other operands and write their
/// destinations, each result aliasing (equivalent to) its destination; no
/// destination is read except rows_init of dispatch_padded. dispatch and
/// route_dispatch read their operands, write none of them and bufferize to
/// new allocations with the identity layout. Bufferizing an op emits the
/// loop nest of convert-moe-to-loops (default options) on the operands'
/// buffers, whose layouts may be any strided layout (a tile of a larger
/// buffer is read, or written, in place). `moe.layer` has no model:
/// decompose it first.
void registerBufferizableOpInterfaceExternalModels(DialectRegistry &registry);

} // namespace moe
} // namespace mlir

#endif // MOE_CONVERSION_MOETOLOOPS_BUFFERIZABLEOPINTERFACEIMPL_H
