//===- GateLowering.cpp - moe.gate to loops ---------------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// logits[t, :] = x[t, :] @ w (+ b), accumulated in f32 by the shared
// register-blocked kernel (MatmulKernel.cpp).
//
//===----------------------------------------------------------------------===//

#include "Lowerings.h"

#include "moe/Dialect/MoE/IR/MoEOps.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

FailureOr<SmallVector<Value>>
mlir::moe::detail::emitLoops(LoopEmitter &e, GateOp op, GateOp::Adaptor adaptor,
                             const MoEToLoopsOptions &options) {
  Value x = e.buffer(adaptor.getX());
  Value w = e.unitStrideBuffer(adaptor.getW());
  Value bias =
      adaptor.getBias() ? e.unitStrideBuffer(adaptor.getBias()) : Value();
  Value numTokens = e.dim(x, 0);
  Value hidden = e.dim(x, 1);
  Value width = e.dim(w, 1);
  Destination destination = emitDestination(
      e, adaptor.getInit(), /*readsInit=*/false, /*unitStride=*/true);
  Value logits = destination.buffer;
  SizeConstraints sizes;
  sizes.equal(e, x, 1, w, 0);
  if (bias)
    sizes.equal(e, bias, 0, w, 1);
  sizes.equal(e, logits, 0, x, 0);
  sizes.equal(e, logits, 1, w, 1);
  emitGuardedInto(e, op, sizes, logits, [&] {
    RowMatmul matmul;
    matmul.a = x;
    matmul.b = w;
    matmul.c = logits;
    matmul.bias = bias;
    matmul.rowBegin = e.index(0);
    matmul.rowEnd = numTokens;
    matmul.depth = hidden;
    matmul.n = width;
    matmul.schedule = getMatmulSchedule(op, getMatmulShape(matmul));
    emitRowMatmul(e, matmul);
  });
  return SmallVector<Value>{finishDestination(e, destination)};
}
