//===- TestDialect.td - moe_test: IR for testing moe passes -*- tablegen -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A dialect that exists only for the lit tests (registered by moe-opt, not
// by the plugin): attributes that exercise the open ends of the moe
// interfaces, such as a routing strategy that no moe lowering knows.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_TEST_DIALECT_TD
#define MOE_TEST_DIALECT_TD

include "moe/Dialect/MoE/IR/MoEInterfaces.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/DialectBase.td"

def MoETest_Dialect : Dialect {
  let name = "moe_test";
  let summary = "test-only IR for moe-mlir's lit tests";
  let cppNamespace = "::mlir::moe::test";
  let useDefaultAttributePrinterParser = 1;
}

def MoETest_UnloweredStrategyAttr
    : AttrDef<MoETest_Dialect, "UnloweredStrategy", [
          DeclareAttrInterfaceMethods<MoE_RoutingStrategyAttrInterface,
                                      ["verifyRouting"]>]> {
  let mnemonic = "unlowered_strategy";
  let summary = "a routing strategy that verifies but has no lowering";
  let description = [{
    Implements `RoutingStrategyAttrInterface` as a downstream dialect would;
    moe's lowerings must reject it with a diagnostic instead of computing
    some other strategy.
  }];
}

#endif // MOE_TEST_DIALECT_TD
