// Parses a module with a moe.layer, decomposes it with the library's pass,
// and prints the result.
#include "moe/Dialect/MoE/IR/MoEOps.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/raw_ostream.h"

int main() {
  mlir::MLIRContext context;
  context.loadDialect<mlir::moe::MoEDialect, mlir::func::FuncDialect>();

  auto experts = mlir::moe::ExpertSpaceAttr::get(&context, 8, 4);
  llvm::outs() << "experts attribute: " << mlir::Attribute(experts) << "\n";

  mlir::OwningOpRef<mlir::ModuleOp> module =
      mlir::parseSourceFile<mlir::ModuleOp>(LAYER_MLIR, &context);
  if (!module)
    return 1;
  mlir::PassManager pm(&context);
  pm.addPass(mlir::moe::createMoEDecomposeLayerPass());
  if (mlir::failed(pm.run(*module)))
    return 1;
  module->print(llvm::outs());
  llvm::outs() << "\n";
  return 0;
}
