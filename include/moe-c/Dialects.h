/*===- moe-c/Dialects.h - C API of the MoE dialect ----------------*- C -*-===*\
|*                                                                            *|
|* Part of the moe-mlir project.                                              *|
|*                                                                            *|
|* Registration entry of the `moe` dialect for the MLIR C API, so that other  *|
|* bindings (Python, Rust, ...) can load the dialect into a context.          *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

#ifndef MOE_C_DIALECTS_H
#define MOE_C_DIALECTS_H

#include "mlir-c/IR.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Declares mlirGetDialectHandle__moe__(). */
MLIR_DECLARE_CAPI_DIALECT_REGISTRATION(MoE, moe);

/* Registers the moe passes (moe-decompose-layer, convert-moe-to-loops, ...)
 * and pipelines (moe-cpu-pipeline) in the global registries, so that textual
 * pipelines can name them. */
MLIR_CAPI_EXPORTED void mlirMoERegisterPasses(void);

#ifdef __cplusplus
}
#endif

#endif /* MOE_C_DIALECTS_H */
