//===- MoEGPUCapturable.cpp - Host functions for CUDA graph capture -------===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// After kernel outlining and gpu-async-region, a public host function of the GPU pipeline (with
// device arguments) is a straight sequence of device allocations, kernel
// launches, deallocations and size arithmetic. This pass gives it the form a
// CUDA graph can capture: the caller's stream and workspace come in as two
// extra arguments, allocations become views into the workspace, launches go
// on the stream, nothing waits. A `<name>_workspace_size` function computes
// the workspace's size from the same shapes.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/LoopLikeInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <numeric>

#define DEBUG_TYPE "moe-gpu-capturable"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEGPUCAPTURABLEPASS
#include "moe/Conversion/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;

/// The runtime error code of a workspace smaller than the function needs
/// (python/moe_mlir/compiler.py reports it).
static constexpr int32_t kWorkspaceTooSmall = 11;
/// Alignment of every buffer in the workspace (as cuMemAlloc's).
static constexpr int64_t kWorkspaceAlignment = 256;

/// Bytes of one element of a device buffer (index is 64-bit on the host and
/// in the kernels, i1 is stored in a byte).
static std::optional<int64_t> elementBytes(Type type) {
  if (type.isIndex())
    return 8;
  if (type.isIntOrFloat())
    return llvm::divideCeil(type.getIntOrFloatBitWidth(), 8);
  return std::nullopt;
}

/// Whether `op` stores into the module's runtime error flag (the size
/// guards of the kernels): a host store that a capture may hold.
static bool isErrorFlagStore(Operation *op) {
  auto store = dyn_cast<memref::StoreOp>(op);
  if (!store)
    return false;
  auto global = store.getMemref().getDefiningOp<memref::GetGlobalOp>();
  return global && global.getName() == moe::kRuntimeErrorGlobal;
}

/// Checks that `function` holds only what a captured call may do; reports
/// the first op that is not.
static LogicalResult checkCapturable(func::FuncOp function) {
  WalkResult result = function.walk([&](Operation *op) -> WalkResult {
    if (op == function.getOperation() || isa<func::ReturnOp>(op) ||
        isa<gpu::LaunchFuncOp, gpu::DeallocOp, gpu::WaitOp>(op) ||
        isErrorFlagStore(op))
      return WalkResult::advance();
    if (auto alloc = dyn_cast<gpu::AllocOp>(op)) {
      if (op->getParentOfType<LoopLikeOpInterface>())
        return op->emitOpError()
               << "in a loop cannot be placed in the workspace of a "
                  "capturable function (moe-gpu-capturable)";
      return WalkResult::advance();
    }
    // Control flow on host values (size guards) and pure host arithmetic.
    if (isa<scf::IfOp, scf::ForOp, scf::YieldOp>(op) ||
        (op->getNumRegions() == 0 && isMemoryEffectFree(op)))
      return WalkResult::advance();
    // The chip query that picks the sm_90a or the sm_80 kernels reads a
    // cached device attribute: no stream work.
    if (auto call = dyn_cast<func::CallOp>(op);
        call && call.getCallee() == moe::kHasWgmmaFunction)
      return WalkResult::advance();
    std::string why = "touches memory on the host";
    if (isa<gpu::MemcpyOp, gpu::MemsetOp>(op))
      why = "copies between host and device";
    else if (isa<CallOpInterface>(op))
      why = "calls another function";
    return op->emitOpError()
           << "is not allowed in a capturable function (moe-gpu-capturable): "
              "it "
           << why
           << "; a capturable function takes device arguments and only "
              "launches kernels (move host tensor ops out of the function)";
  });
  return failure(result.wasInterrupted());
}

/// `value` computed at `builder`'s insertion point from the function
/// arguments (mapped by `mapping`) by cloning the memory-effect-free ops
/// that compute it; null when it is not computable so.
static Value cloneSizeComputation(Value value, OpBuilder &builder,
                                  IRMapping &mapping) {
  if (Value mapped = mapping.lookupOrNull(value))
    return mapped;
  Operation *def = value.getDefiningOp();
  if (!def || def->getNumRegions() != 0 || !isMemoryEffectFree(def))
    return nullptr;
  for (Value operand : def->getOperands())
    if (!cloneSizeComputation(operand, builder, mapping))
      return nullptr;
  Operation *clone = builder.clone(*def, mapping);
  return clone->getResult(cast<OpResult>(value).getResultNumber());
}

/// The top-level op of `function`'s entry block that holds `op`.
static Operation *topLevelAncestor(func::FuncOp function, Operation *op) {
  return function.getBody().front().findAncestorOpInBlock(*op);
}

/// Every op that uses `buffer` or a memref derived from it (views, casts),
/// but its frees (they go away).
static void collectUsers(Value buffer, SmallVectorImpl<Operation *> &users) {
  for (Operation *user : buffer.getUsers()) {
    if (isa<gpu::DeallocOp>(user))
      continue;
    users.push_back(user);
    for (Value result : user->getResults())
      if (isa<BaseMemRefType>(result.getType()))
        collectUsers(result, users);
  }
}

/// Assigns the allocations to workspace slots: two buffers share a slot
/// when the last op that uses one comes before the first op that uses the
/// other (a buffer is not touched before a kernel uses it). Every kernel
/// runs on one stream in program order, so the kernels of the second buffer
/// start after those of the first have finished. A buffer that the function
/// returns keeps its slot to the end. Positions are those of the top-level
/// ops of the entry block (a buffer used in an scf.if lives over the whole
/// scf.if).
static SmallVector<unsigned> assignSlots(func::FuncOp function,
                                         ArrayRef<gpu::AllocOp> allocations) {
  DenseMap<Operation *, unsigned> position;
  for (auto [index, op] : llvm::enumerate(function.getBody().front()))
    position[&op] = index;
  // The interval of each buffer, in the order of their first use.
  SmallVector<std::pair<unsigned, unsigned>> intervals;
  for (gpu::AllocOp alloc : allocations) {
    unsigned defined = position.lookup(topLevelAncestor(function, alloc));
    unsigned start = ~0u, end = defined;
    SmallVector<Operation *> users;
    collectUsers(alloc.getMemref(), users);
    for (Operation *user : users) {
      Operation *top = topLevelAncestor(function, user);
      unsigned at = isa<func::ReturnOp>(top) ? ~0u : position.lookup(top);
      end = std::max(end, at);
      if (!isa<memref::DimOp, memref::ViewOp, memref::CastOp>(user))
        start = std::min(start, position.lookup(top));
    }
    intervals.push_back({std::min(start, end), end});
  }
  SmallVector<unsigned> order(allocations.size());
  std::iota(order.begin(), order.end(), 0);
  llvm::stable_sort(order, [&](unsigned a, unsigned b) {
    return intervals[a].first < intervals[b].first;
  });
  // Greedy: a slot is free for a buffer when the latest end of its buffers
  // comes before the buffer's start.
  SmallVector<unsigned> slots(allocations.size());
  SmallVector<unsigned> slotEnd;
  for (unsigned index : order) {
    auto [start, end] = intervals[index];
    auto free =
        llvm::find_if(slotEnd, [&](unsigned last) { return last < start; });
    if (free == slotEnd.end()) {
      slots[index] = slotEnd.size();
      slotEnd.push_back(end);
    } else {
      slots[index] = free - slotEnd.begin();
      *free = std::max(*free, end);
    }
  }
  return slots;
}

namespace {
/// The workspace offsets of a function's allocations and its total size,
/// computed at a builder's insertion point.
struct WorkspaceLayout {
  SmallVector<Value> offsets;
  Value size;
};
} // namespace

/// The layout of `allocations` in their `slots` (assignSlots): each slot as
/// large as its largest buffer, 256-byte aligned, one after the other.
static FailureOr<WorkspaceLayout>
computeLayout(ArrayRef<gpu::AllocOp> allocations, ArrayRef<unsigned> slots,
              OpBuilder &builder, Location loc, IRMapping &mapping) {
  auto constant = [&](int64_t value) -> Value {
    return arith::ConstantIndexOp::create(builder, loc, value);
  };
  Value alignment = constant(kWorkspaceAlignment);
  unsigned numSlots = slots.empty() ? 0 : *llvm::max_element(slots) + 1;
  SmallVector<Value> slotBytes(numSlots, constant(0));
  for (auto [index, slot] : llvm::enumerate(slots)) {
    gpu::AllocOp alloc = allocations[index];
    MemRefType type = alloc.getType();
    std::optional<int64_t> bytes = elementBytes(type.getElementType());
    if (!bytes)
      return alloc.emitOpError()
             << "of " << type.getElementType()
             << " elements cannot be placed in a workspace";
    int64_t staticBytes = *bytes;
    for (int64_t d = 0; d < type.getRank(); ++d)
      if (!type.isDynamicDim(d))
        staticBytes *= type.getDimSize(d);
    Value size = constant(staticBytes);
    for (Value dynamic : alloc.getDynamicSizes()) {
      Value hoisted = cloneSizeComputation(dynamic, builder, mapping);
      if (!hoisted)
        return alloc.emitOpError()
               << "has a size that is not computed from the arguments' "
                  "shapes: it cannot be placed in the workspace of a "
                  "capturable function";
      size = arith::MulIOp::create(builder, loc, size, hoisted);
    }
    Value padded = arith::CeilDivUIOp::create(builder, loc, size, alignment);
    Value aligned = arith::MulIOp::create(builder, loc, padded, alignment);
    slotBytes[slot] =
        arith::MaxUIOp::create(builder, loc, slotBytes[slot], aligned);
  }
  WorkspaceLayout layout;
  SmallVector<Value> slotOffsets;
  Value offset = constant(0);
  for (Value bytes : slotBytes) {
    slotOffsets.push_back(offset);
    offset = arith::AddIOp::create(builder, loc, offset, bytes);
  }
  for (unsigned slot : slots)
    layout.offsets.push_back(slotOffsets[slot]);
  layout.size = offset;
  return layout;
}

/// Adds `@<name>_workspace_size`, which takes `function`'s arguments and
/// returns the workspace bytes.
static LogicalResult addSizeQuery(func::FuncOp function,
                                  ArrayRef<gpu::AllocOp> allocations,
                                  ArrayRef<unsigned> slots,
                                  SymbolTable &symbols) {
  Location loc = function.getLoc();
  OpBuilder builder(function);
  auto type = FunctionType::get(function.getContext(),
                                function.getArgumentTypes(),
                                {builder.getIndexType()});
  std::string name = (function.getName() + "_workspace_size").str();
  auto query = func::FuncOp::create(builder, loc, name, type);
  symbols.insert(query);
  Block *entry = query.addEntryBlock();
  builder.setInsertionPointToStart(entry);
  IRMapping mapping;
  mapping.map(function.getArguments(), entry->getArguments());
  FailureOr<WorkspaceLayout> layout =
      computeLayout(allocations, slots, builder, loc, mapping);
  if (failed(layout))
    return failure();
  func::ReturnOp::create(builder, loc, layout->size);
  return success();
}

/// Rewrites `function` into its capturable form (the pass description).
static LogicalResult makeCapturable(func::FuncOp function,
                                    SymbolTable &symbols) {
  if (failed(checkCapturable(function)))
    return failure();
  SmallVector<gpu::AllocOp> allocations;
  function.walk([&](gpu::AllocOp alloc) { allocations.push_back(alloc); });
  SmallVector<unsigned> slots = assignSlots(function, allocations);
  if (failed(addSizeQuery(function, allocations, slots, symbols)))
    return failure();

  MLIRContext *context = function.getContext();
  Location loc = function.getLoc();
  Block &entry = function.getBody().front();
  auto streamType = LLVM::LLVMPointerType::get(context);
  auto workspaceType =
      MemRefType::get({ShapedType::kDynamic}, IntegerType::get(context, 8));
  if (failed(function.insertArguments(
          {function.getNumArguments(), function.getNumArguments()},
          {streamType, workspaceType}, {}, {loc, loc})))
    return failure();
  unsigned numArguments = function.getNumArguments();
  function.setArgAttr(numArguments - 2, "moe.stream", UnitAttr::get(context));
  function.setArgAttr(numArguments - 1, "moe.workspace",
                      UnitAttr::get(context));
  Value stream = entry.getArgument(numArguments - 2);
  Value workspace = entry.getArgument(numArguments - 1);

  // The layout at the start, then the body under a workspace size check.
  auto terminator = cast<func::ReturnOp>(entry.getTerminator());
  SmallVector<Operation *> body;
  for (Operation &op : entry.without_terminator())
    body.push_back(&op);
  OpBuilder builder = OpBuilder::atBlockBegin(&entry);
  IRMapping mapping;
  mapping.map(entry.getArguments(), entry.getArguments());
  FailureOr<WorkspaceLayout> layout =
      computeLayout(allocations, slots, builder, loc, mapping);
  if (failed(layout))
    return failure();
  Value zero = arith::ConstantIndexOp::create(builder, loc, 0);
  Value available = memref::DimOp::create(builder, loc, workspace, zero);
  Value fits = arith::CmpIOp::create(builder, loc, arith::CmpIPredicate::uge,
                                     available, layout->size);
  auto token = UnrealizedConversionCastOp::create(
      builder, loc, gpu::AsyncTokenType::get(context), stream);
  auto guard = scf::IfOp::create(builder, loc, terminator.getOperandTypes(),
                                 fits, /*addThenBlock=*/true,
                                 /*addElseBlock=*/true);
  Block *then = guard.thenBlock();
  for (Operation *op : body)
    op->moveBefore(then, then->end());
  builder.setInsertionPointToEnd(then);
  scf::YieldOp::create(builder, loc, terminator.getOperands());
  // Too small: the error, and empty views as results (not to be read).
  builder.setInsertionPointToStart(guard.elseBlock());
  auto flagType = MemRefType::get({}, builder.getI32Type());
  if (!symbols.lookup(moe::kRuntimeErrorGlobal)) {
    OpBuilder atModule(function->getParentOfType<ModuleOp>().getBodyRegion());
    auto zeros = DenseElementsAttr::get(
        RankedTensorType::get({}, builder.getI32Type()),
        builder.getI32IntegerAttr(0).getValue());
    auto global = memref::GlobalOp::create(
        atModule, loc, moe::kRuntimeErrorGlobal,
        atModule.getStringAttr("public"), flagType, zeros,
        /*constant=*/false, /*alignment=*/IntegerAttr());
    symbols.insert(global);
  }
  Value flag = memref::GetGlobalOp::create(builder, loc, flagType,
                                           moe::kRuntimeErrorGlobal);
  Value code =
      arith::ConstantIntOp::create(builder, loc, kWorkspaceTooSmall, 32);
  memref::StoreOp::create(builder, loc, code, flag, ValueRange{});
  SmallVector<Value> empty;
  for (Type type : terminator.getOperandTypes()) {
    auto memref = dyn_cast<MemRefType>(type);
    if (!memref || !memref.getLayout().isIdentity())
      return terminator.emitOpError()
             << "returns a " << type
             << ": a capturable function returns identity-layout memrefs";
    SmallVector<Value> sizes(memref.getNumDynamicDims(), zero);
    empty.push_back(
        memref::ViewOp::create(builder, loc, memref, workspace, zero, sizes));
  }
  scf::YieldOp::create(builder, loc, empty);
  terminator->setOperands(guard.getResults());

  // Every stream of the function is the caller's: the tokens that
  // gpu-async-region threaded through the ops all become `token`, its
  // waits (stream creation, synchronisation) and the frees go away.
  Value onStream = token.getResult(0);
  SmallVector<Operation *> erased;
  function.walk([&](Operation *op) {
    if (op == token.getOperation())
      return;
    for (Value result : op->getResults())
      if (isa<gpu::AsyncTokenType>(result.getType()))
        result.replaceAllUsesWith(onStream);
    if (isa<gpu::WaitOp, gpu::DeallocOp>(op))
      erased.push_back(op);
    if (auto launch = dyn_cast<gpu::LaunchFuncOp>(op);
        launch && launch.getAsyncToken())
      launch.getAsyncDependenciesMutable().assign(onStream);
  });
  for (Operation *op : erased)
    op->erase();
  // Allocations in the workspace.
  for (auto [alloc, offset] : llvm::zip_equal(allocations, layout->offsets)) {
    builder.setInsertionPoint(alloc);
    Value view =
        memref::ViewOp::create(builder, alloc.getLoc(), alloc.getType(),
                               workspace, offset, alloc.getDynamicSizes());
    alloc.getMemref().replaceAllUsesWith(view);
    alloc.erase();
  }
  return success();
}

namespace {
struct MoEGPUCapturablePass
    : moe::impl::MoEGPUCapturablePassBase<MoEGPUCapturablePass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<func::FuncOp> functions;
    for (auto function : module.getOps<func::FuncOp>())
      if (function.isPublic() && !function.isExternal())
        functions.push_back(function);
    for (func::FuncOp function : functions) {
      std::string query = (function.getName() + "_workspace_size").str();
      if (symbols.lookup(query)) {
        function.emitOpError()
            << "cannot be made capturable: the module already has a symbol "
               "named '"
            << query << "'";
        return signalPassFailure();
      }
      if (failed(makeCapturable(function, symbols)))
        return signalPassFailure();
    }
  }
};
} // namespace
