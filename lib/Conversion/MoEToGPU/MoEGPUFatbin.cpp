//===- MoEGPUFatbin.cpp - Per-chip PTX to one CUDA fatbin -------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

#define DEBUG_TYPE "moe-gpu-fatbin"

namespace mlir {
namespace moe {
#define GEN_PASS_DEF_MOEGPUFATBINPASS
#include "moe/Conversion/Passes.h.inc"
} // namespace moe
} // namespace mlir

using namespace mlir;

namespace {
/// A scratch directory removed with its files.
struct ScratchDirectory {
  SmallString<128> path;
  ~ScratchDirectory() {
    if (!path.empty())
      llvm::sys::fs::remove_directories(path);
  }
  std::string file(StringRef name) const {
    SmallString<128> result(path);
    llvm::sys::path::append(result, name);
    return std::string(result);
  }
};

/// The number in a chip name for fatbinary's `sm=` ("sm_90a" -> "90a").
StringRef smOf(StringRef chip) {
  chip.consume_front("sm_");
  return chip;
}

struct MoEGPUFatbinPass : moe::impl::MoEGPUFatbinPassBase<MoEGPUFatbinPass> {
  using Base::Base;

  std::string toolkit() const {
    if (!cudaPath.empty())
      return cudaPath;
    if (const char *home = std::getenv("CUDA_HOME"))
      return home;
    return "/usr/local/cuda";
  }

  /// Runs `program` with `args`; on failure, reports its output on `op`.
  LogicalResult run(Operation *op, const std::string &program,
                    ArrayRef<std::string> args, const ScratchDirectory &dir) {
    if (!llvm::sys::fs::can_execute(program))
      return op->emitError() << "moe-gpu-fatbin: " << program
                             << " not found (set cuda-path or CUDA_HOME)";
    SmallVector<StringRef> argv{program};
    for (const std::string &arg : args)
      argv.push_back(arg);
    std::string log = dir.file("log.txt");
    std::optional<StringRef> redirects[] = {std::nullopt, StringRef(log),
                                            StringRef(log)};
    std::string message;
    int rc = llvm::sys::ExecuteAndWait(program, argv, std::nullopt, redirects,
                                       /*SecondsToWait=*/0, 0, &message);
    if (rc == 0)
      return success();
    auto output = llvm::MemoryBuffer::getFile(log);
    InFlightDiagnostic diag = op->emitError()
                              << "moe-gpu-fatbin: " << llvm::join(argv, " ")
                              << " failed (" << rc << ")";
    if (!message.empty())
      diag << ": " << message;
    if (output)
      diag << "\n" << (*output)->getBuffer();
    return failure();
  }

  LogicalResult bundle(gpu::BinaryOp binary) {
    ScratchDirectory dir;
    if (llvm::sys::fs::createUniqueDirectory("moe-fatbin", dir.path))
      return binary.emitError("moe-gpu-fatbin: cannot create a scratch "
                              "directory");
    std::string bin = toolkit() + "/bin/";
    SmallVector<std::string> fatbinArgs{"--create=" + dir.file("out.fatbin"),
                                        "-64"};
    gpu::ObjectAttr first;
    for (Attribute attr : binary.getObjects()) {
      auto object = cast<gpu::ObjectAttr>(attr);
      auto target = dyn_cast<NVVM::NVVMTargetAttr>(object.getTarget());
      if (!target || object.getFormat() != gpu::CompilationTarget::Assembly)
        return binary.emitError()
               << "moe-gpu-fatbin: expects PTX objects of NVVM targets "
                  "(gpu-module-to-binary{format=isa}), got "
               << object;
      StringRef chip = target.getChip();
      std::string ptx = dir.file(chip.str() + ".ptx");
      std::string cubin = dir.file(chip.str() + ".cubin");
      {
        std::error_code error;
        llvm::raw_fd_ostream os(ptx, error);
        if (error)
          return binary.emitError() << "moe-gpu-fatbin: " << error.message();
        os << object.getObject().getValue();
      }
      SmallVector<std::string> ptxasArgs{"-arch=" + chip.str()};
      for (StringRef option : llvm::split(ptxasOptions, ' '))
        if (!option.empty())
          ptxasArgs.push_back(option.str());
      ptxasArgs.append({ptx, "-o", cubin});
      if (failed(run(binary, bin + "ptxas", ptxasArgs, dir)))
        return failure();
      fatbinArgs.push_back(
          ("--image3=kind=elf,sm=" + smOf(chip) + ",file=" + cubin).str());
      if (!first) {
        first = object;
        fatbinArgs.push_back(
            ("--image3=kind=ptx,sm=" + smOf(chip) + ",file=" + ptx).str());
      }
    }
    if (!first)
      return success();
    if (failed(run(binary, bin + "fatbinary", fatbinArgs, dir)))
      return failure();
    auto fatbin = llvm::MemoryBuffer::getFile(dir.file("out.fatbin"),
                                              /*IsText=*/false);
    if (!fatbin)
      return binary.emitError("moe-gpu-fatbin: fatbinary wrote no output");
    MLIRContext *context = binary.getContext();
    auto object = gpu::ObjectAttr::get(
        context, first.getTarget(), gpu::CompilationTarget::Fatbin,
        StringAttr::get(context, (*fatbin)->getBuffer()), first.getProperties(),
        first.getKernels());
    binary.setObjectsAttr(ArrayAttr::get(context, {object}));
    return success();
  }

  void runOnOperation() override {
    SmallVector<gpu::BinaryOp> binaries;
    getOperation()->walk([&](gpu::BinaryOp op) { binaries.push_back(op); });
    for (gpu::BinaryOp binary : binaries)
      if (failed(bundle(binary)))
        return signalPassFailure();
  }
};
} // namespace
