//===- DeviceEmitter.cpp - Kernels and device buffers -----------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "DeviceEmitter.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "llvm/ADT/StringExtras.h"

using namespace mlir;
using namespace mlir::moe;
using namespace mlir::moe::detail;

Value MoEDeviceBuffers::lookupHostCopy(Value tensor, Block *block,
                                       Block::iterator point) const {
  auto it = hostCopies.find(tensor);
  if (it == hostCopies.end())
    return nullptr;
  for (auto [copy, device] : it->second)
    if (copy->getBlock() == block &&
        (point == block->end() || copy->isBeforeInBlock(&*point)))
      return device;
  return nullptr;
}

Value DeviceEmitter::alloc(Type elementType, ArrayRef<int64_t> shape,
                           ValueRange dynamicSizes) {
  auto type = MemRefType::get(shape, elementType);
  Operation *allocation;
  if (options.emulate)
    allocation = memref::AllocOp::create(e.b, type, dynamicSizes);
  else
    allocation = gpu::AllocOp::create(e.b, type, /*asyncToken=*/Type(),
                                      ValueRange{}, dynamicSizes, ValueRange{},
                                      /*hostShared=*/false);
  buffers.add(allocation->getResult(0));
  return allocation->getResult(0);
}

Value DeviceEmitter::alloc(RankedTensorType type, ValueRange sizes) {
  SmallVector<Value> dynamicSizes;
  for (auto [index, size] : llvm::enumerate(sizes))
    if (type.isDynamicDim(index))
      dynamicSizes.push_back(size);
  return alloc(type.getElementType(), type.getShape(), dynamicSizes);
}

Value DeviceEmitter::allocRowsOf(Value rows, RankedTensorType type,
                                 ValueRange sizes) {
  Value buffer = alloc(type, sizes);
  if (buffers.hasRowsUpperBound(rows))
    markRowsUpperBound(buffer);
  return buffer;
}

Value DeviceEmitter::input(Value tensor) {
  if (auto toTensor = tensor.getDefiningOp<bufferization::ToTensorOp>())
    if (buffers.contains(toTensor.getBuffer()))
      return toTensor.getBuffer();
  // A host tensor that an earlier op of this block already copied.
  if (Value copy = buffers.lookupHostCopy(tensor, e.b.getInsertionBlock(),
                                          e.b.getInsertionPoint()))
    return copy;
  // A host tensor: its buffer (identity layout, as function arguments have
  // after bufferization), copied to the device.
  auto type = llvm::cast<RankedTensorType>(tensor.getType());
  auto hostType = MemRefType::get(type.getShape(), type.getElementType());
  Value host = bufferization::ToBufferOp::create(e.b, hostType, tensor,
                                                 /*read_only=*/true);
  if (options.emulate)
    return host;
  // Arguments the caller already placed on the device.
  if (auto argument = dyn_cast<BlockArgument>(tensor))
    if (options.deviceArguments &&
        isa<FunctionOpInterface>(argument.getOwner()->getParentOp()))
      return host;
  SmallVector<Value> dynamicSizes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      dynamicSizes.push_back(e.dim(host, d));
  Value device = alloc(type.getElementType(), type.getShape(), dynamicSizes);
  auto copy = gpu::MemcpyOp::create(e.b, /*asyncToken=*/Type(), ValueRange{},
                                    device, host);
  buffers.addHostCopy(tensor, copy, device);
  return device;
}

/// `value` recomputed at `builder`'s insertion point, before `anchor` (a
/// kernel launch): values from outside the kernel are used as they are,
/// pure region-free ops of the kernel are cloned. Null when some op on the
/// way is not such an op.
static Value hoistBefore(Value value, Operation *anchor, OpBuilder &builder,
                         IRMapping &mapping) {
  if (Value mapped = mapping.lookupOrNull(value))
    return mapped;
  Operation *def = value.getDefiningOp();
  Region *kernel = &anchor->getRegion(0);
  if (!kernel->isAncestor(value.getParentRegion()))
    return value;
  if (!def || def->getNumRegions() != 0 || !isPure(def))
    return nullptr;
  for (Value operand : def->getOperands())
    if (!hoistBefore(operand, anchor, builder, mapping))
      return nullptr;
  Operation *clone = builder.clone(*def, mapping);
  return clone->getResult(cast<OpResult>(value).getResultNumber());
}

/// The outlined kernel is named after the enclosing function
/// (`<name>_kernel`), and that name reaches PTX, whose identifiers are
/// `[A-Za-z_$][A-Za-z0-9_$]*`: the NVPTX backend aborts on anything else
/// ("Symbol name with unsupported characters"). A function whose name is not
/// such an identifier (`@"x y"`) gets kernels named after its name with every
/// other character replaced by `_`.
static void nameKernel(gpu::LaunchOp launch) {
  auto function = launch->getParentOfType<FunctionOpInterface>();
  if (!function)
    return;
  StringRef name = function.getName();
  auto isIdentifierChar = [](char c) {
    return llvm::isAlnum(c) || c == '_' || c == '$';
  };
  bool valid = !name.empty() && !llvm::isDigit(name.front()) &&
               llvm::all_of(name, isIdentifierChar);
  if (valid)
    return;
  std::string sanitized = "moe_";
  for (char c : name)
    sanitized += isIdentifierChar(c) ? c : '_';
  sanitized += "_kernel";
  MLIRContext *context = launch.getContext();
  launch.setFunctionAttr(FlatSymbolRefAttr::get(context, sanitized));
  launch.setModuleAttr(FlatSymbolRefAttr::get(context, sanitized));
}

void DeviceEmitter::forAll(Value n, function_ref<void(Value)> body) {
  OpBuilder::InsertionGuard guard(e.b);
  auto savedAllocator = e.allocator;
  Location loc = e.b.getLoc();
  // Per-thread scratch at the start of the kernel (static shapes), so that
  // LLVM sees fixed-size allocas it can promote.
  auto scratchIn = [&](Block *block) {
    return
        [this, block, loc](MemRefType type, ValueRange dynamicSizes) -> Value {
          // The kernels' scratch is static; a dynamic size would be allocated
          // where it is asked for.
          if (!dynamicSizes.empty()) {
            if (options.emulate)
              return memref::AllocOp::create(e.b, type, dynamicSizes);
            return memref::AllocaOp::create(e.b, type, dynamicSizes);
          }
          OpBuilder::InsertionGuard atStart(e.b);
          e.b.setInsertionPointToStart(block);
          return memref::AllocaOp::create(e.b, loc, type);
        };
  };
  if (options.emulate) {
    // Threads run one after the other; their scratch is allocated once, at
    // the start of the function (a thread's body never reads scratch it did
    // not write).
    Block *insertion = e.b.getInsertionBlock();
    Operation *function = insertion->getParentOp();
    if (!isa<FunctionOpInterface>(function))
      function = function->getParentOfType<FunctionOpInterface>();
    Block *entry = &function->getRegion(0).front();
    e.allocator = scratchIn(entry);
    e.loop(e.index(0), n, [&](Value i) { body(i); });
    e.allocator = savedAllocator;
    return;
  }
  Value one = e.index(1);
  Value threads = e.index(options.blockSize);
  // At least one block: a launch of zero blocks is an error in CUDA.
  Value blocks = arith::CeilDivUIOp::create(e.b, e.maxSI(n, one), threads);
  auto launch = gpu::LaunchOp::create(e.b, blocks, one, one, threads, one, one);
  nameKernel(launch);
  Block *block = &launch.getBody().front();
  e.b.setInsertionPointToStart(block);
  Value i = e.add(e.mul(launch.getBlockIds().x, launch.getBlockSize().x),
                  launch.getThreadIds().x);
  // Static scratch is per thread; a buffer whose size is only known at run
  // time (the cross-token steps of routing, on one thread) is a device
  // buffer allocated on the host before the launch, its size computed
  // there from the same values.
  auto perThread = scratchIn(block);
  e.allocator = [&, launch](MemRefType type, ValueRange dynamicSizes) -> Value {
    if (dynamicSizes.empty())
      return perThread(type, dynamicSizes);
    OpBuilder::InsertionGuard hoist(e.b);
    e.b.setInsertionPoint(launch);
    IRMapping mapping;
    SmallVector<Value> sizes;
    for (Value size : dynamicSizes) {
      Value hoisted = hoistBefore(size, launch, e.b, mapping);
      if (!hoisted) // not computable on the host: a dynamic alloca
        return perThread(type, dynamicSizes);
      sizes.push_back(hoisted);
    }
    // (DeviceEmitter::alloc does not go through e.allocator.)
    return alloc(type.getElementType(), type.getShape(), sizes);
  };
  e.ifThen(e.cmpi(arith::CmpIPredicate::ult, i, n), [&] { body(i); });
  gpu::TerminatorOp::create(e.b);
  e.allocator = savedAllocator;
}

void DeviceEmitter::forAll2D(Value rows, Value columns,
                             function_ref<void(Value, Value)> body) {
  forAll(e.mul(rows, columns), [&](Value i) {
    Value row = arith::DivUIOp::create(e.b, i, columns);
    Value column = arith::RemUIOp::create(e.b, i, columns);
    body(row, column);
  });
}

void DeviceEmitter::single(function_ref<void()> body) {
  forAll(e.index(1), [&](Value) { body(); });
}

void DeviceEmitter::guarded(Operation *op, const SizeConstraints &sizes,
                            function_ref<void()> kernels) {
  if (sizes.conditions().empty()) {
    kernels();
    return;
  }
  Value ok = e.boolean(true);
  for (Value condition : sizes.conditions())
    ok = e.andi(ok, condition);
  e.ifThenElse(ok, kernels, [&] { emitRuntimeError(e, op); });
}

Value DeviceEmitter::sanitizedOffsets(Value rawOffsets, Value numGroups,
                                      Value numRows) {
  Value offsets = alloc(e.b.getIndexType(), {ShapedType::kDynamic},
                        e.add(numGroups, e.index(1)));
  single([&] {
    Value zero = e.index(0);
    Value one = e.index(1);
    e.store(zero, offsets, zero);
    e.loop(zero, numGroups, zero, [&](Value g, ValueRange previous) {
      Value raw = e.toIndex(e.load(rawOffsets, e.add(g, one)));
      Value clamped = e.minSI(e.maxSI(raw, previous[0]), numRows);
      e.store(clamped, offsets, e.add(g, one));
      return SmallVector<Value>{clamped};
    });
  });
  return offsets;
}

Value DeviceEmitter::groupOfRow(Value offsets, Value numGroups, Value row) {
  Value one = e.index(1);
  Value zero = e.index(0);
  return e.loop(
      one, e.add(numGroups, one), ValueRange{zero},
      [&](Value g, ValueRange count) {
        Value before =
            e.cmpi(arith::CmpIPredicate::sle, e.load(offsets, g), row);
        return SmallVector<Value>{e.add(count[0], e.select(before, one, zero))};
      })[0];
}
