//===- MoEInterfaces.td - MoE dialect interfaces -----------*- tablegen -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_DIALECT_MOE_IR_MOEINTERFACES_TD
#define MOE_DIALECT_MOE_IR_MOEINTERFACES_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def MoE_RoutingStrategyAttrInterface
    : AttrInterface<"RoutingStrategyAttrInterface"> {
  let cppNamespace = "::mlir::moe";
  let description = [{
    Implemented by every routing strategy attribute (`#moe.top_k`,
    `#moe.top_p`, `#moe.adaptive`, `#moe.threshold`, `#moe.dynamic_k`,
    `#moe.expert_choice`). A strategy decides how many of a token's sorted
    experts it keeps. The interface lets passes and verifiers ask what a
    strategy needs without switching on attribute kinds.
  }];
  let methods = [
    InterfaceMethod<[{
        Checks the strategy's parameters and its constraints on the rest of
        the routing configuration. `emitError` starts a diagnostic on the op
        that uses the strategy.
      }], "::llvm::LogicalResult", "verifyRouting",
      (ins "::llvm::function_ref<::mlir::InFlightDiagnostic()>":$emitError,
           "const ::mlir::moe::RoutingConfig &":$config)>,
    InterfaceMethod<[{
        Returns true if the strategy takes a per-token count operand
        (`k_per_token`).
      }], "bool", "usesKPerToken", (ins), [{}], [{ return false; }]>,
    InterfaceMethod<[{
        Returns true if a token's slots depend on other tokens' scores (the
        strategy must see every token before it decides). Such a strategy
        cannot be computed tile by tile.
      }], "bool", "dependsOnAllTokens", (ins), [{}], [{ return false; }]>,
    InterfaceMethod<[{
        Returns the keyword that names the strategy in the IR.
      }], "::llvm::StringRef", "getStrategyName", (ins), [{}],
      [{ return $_attr.getMnemonic(); }]>,
  ];
}

def MoE_RoutingOpInterface : OpInterface<"RoutingOpInterface"> {
  let cppNamespace = "::mlir::moe";
  let description = [{
    Implemented by ops that route tokens to experts (`moe.route` and the
    composite `moe.layer`). It exposes the routing configuration as one
    `RoutingConfig` value and verifies the rules of the semantics contract
    that concern routing (section 3) in one place for every such op.
  }];
  let methods = [
    InterfaceMethod<"Returns the routing configuration of this op.",
      "::mlir::moe::RoutingConfig", "getRoutingConfig", (ins)>,
  ];
  let verify = [{
    return ::mlir::moe::detail::verifyRoutingOp($_op);
  }];
}

#endif // MOE_DIALECT_MOE_IR_MOEINTERFACES_TD
