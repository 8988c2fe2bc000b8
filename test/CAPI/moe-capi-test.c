/*===- moe-capi-test.c - Load the moe dialect through the C API ----------===*\
|*                                                                            *|
|* Part of the moe-mlir project.                                              *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/

/* RUN lines live in test/CAPI/capi.test. */

#include "moe-c/Dialects.h"

#include "mlir-c/Dialect/Func.h"
#include "mlir-c/IR.h"
#include "mlir-c/Support.h"

#include <stdio.h>
#include <string.h>

static void printToStdout(MlirStringRef str, void *userData) {
  (void)userData;
  fwrite(str.data, 1, str.length, stdout);
}

static const char *kModule =
    "func.func @route(%logits: tensor<?x12xf32>, %ids0: tensor<?x4xi32>,\n"
    "                 %weights0: tensor<?x4xf32>) -> tensor<?x4xi32> {\n"
    "  %ids, %weights = moe.route %logits experts = <compute = 8, null = 4>\n"
    "      k = 4 strategy = top_p<p = 0.5> normalize = non_null\n"
    "      into(%ids0, %weights0)\n"
    "      : tensor<?x12xf32> into tensor<?x4xi32>, tensor<?x4xf32>\n"
    "  return %ids : tensor<?x4xi32>\n"
    "}\n";

int main(void) {
  MlirContext ctx = mlirContextCreate();
  MlirDialectHandle handle = mlirGetDialectHandle__moe__();
  MlirStringRef ns = mlirDialectHandleGetNamespace(handle);
  printf("namespace: %.*s\n", (int)ns.length, ns.data);

  mlirDialectHandleRegisterDialect(handle, ctx);
  MlirDialect moe = mlirContextGetOrLoadDialect(ctx, ns);
  printf("loaded: %s\n", mlirDialectIsNull(moe) ? "no" : "yes");

  /* func is needed for the function around the op. */
  mlirDialectHandleRegisterDialect(mlirGetDialectHandle__func__(), ctx);

  MlirModule module =
      mlirModuleCreateParse(ctx, mlirStringRefCreateFromCString(kModule));
  if (mlirModuleIsNull(module)) {
    printf("parse failed\n");
    mlirContextDestroy(ctx);
    return 1;
  }
  MlirOperation op = mlirModuleGetOperation(module);
  printf("verified: %s\n", mlirOperationVerify(op) ? "yes" : "no");
  mlirOperationPrint(op, printToStdout, NULL);
  printf("\n");
  mlirModuleDestroy(module);
  mlirContextDestroy(ctx);
  return 0;
}
