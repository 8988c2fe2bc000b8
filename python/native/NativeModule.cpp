//===- NativeModule.cpp - moe_mlir's native extension -----------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The compiler side of the Python package: parse, verify, lower with a
// pipeline, then either JIT-compile (ExecutionEngine) or emit an object file
// for an ahead-of-time shared library. Calling the compiled functions
// (NumPy arrays <-> memref descriptors) is done in Python with ctypes, so
// that JIT and AOT code are called the same way.
//
//===----------------------------------------------------------------------===//

#include "moe/Conversion/Passes.h"
#include "moe/Dialect/MoE/IR/MoEDialect.h"
#include "moe/Dialect/MoE/Transforms/Passes.h"
#include "moe/Pipelines/Pipelines.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace py = pybind11;
using namespace mlir;

namespace {

/// Raised (as moe_mlir.CompileError) when parsing, verification, a pass or
/// code generation fails; carries the diagnostics.
struct CompileFailure {
  std::string message;
};

void initializeOnce() {
  static std::once_flag flag;
  std::call_once(flag, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    registerTransformsPasses();
    moe::registerMoEPasses();
    moe::registerMoEConversionPasses();
    moe::registerMoEPipelines();
  });
}

/// An MLIR context that records every diagnostic as text.
class Session {
public:
  Session() {
    initializeOnce();
    DialectRegistry registry;
    moe::registerPipelineDependencies(registry);
    context = std::make_unique<MLIRContext>(registry,
                                            MLIRContext::Threading::DISABLED);
    handler = std::make_unique<ScopedDiagnosticHandler>(
        context.get(), [this](Diagnostic &diag) {
          llvm::raw_string_ostream os(diagnostics);
          os << diag.getLocation() << ": ";
          switch (diag.getSeverity()) {
          case DiagnosticSeverity::Error:
            os << "error: ";
            break;
          case DiagnosticSeverity::Warning:
            os << "warning: ";
            break;
          case DiagnosticSeverity::Note:
            os << "note: ";
            break;
          case DiagnosticSeverity::Remark:
            os << "remark: ";
            break;
          }
          os << diag << "\n";
          for (Diagnostic &note : diag.getNotes())
            os << note.getLocation() << ": note: " << note << "\n";
          return success();
        });
  }

  [[noreturn]] void fail(const std::string &what) {
    std::string message = what;
    if (!diagnostics.empty())
      message += ":\n" + diagnostics;
    throw CompileFailure{toPrintable(message)};
  }

  /// Diagnostics are turned into Python strings: keep them valid UTF-8 even
  /// if a message carries stray bytes.
  static std::string toPrintable(const std::string &text) {
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text)
      out.push_back(c < 0x80 ? static_cast<char>(c) : '?');
    return out;
  }

  /// Parses and verifies `text`.
  OwningOpRef<ModuleOp> parse(const std::string &text,
                              const std::string &name) {
    auto module = parseSourceString<ModuleOp>(text, context.get(), name);
    if (!module)
      fail("failed to parse the module");
    return module;
  }

  /// Runs a textual pipeline (module-level pass list, no builtin.module()).
  void lower(ModuleOp module, const std::string &pipeline) {
    PassManager pm(context.get());
    std::string errors;
    llvm::raw_string_ostream os(errors);
    if (failed(parsePassPipeline(pipeline, pm, os)))
      throw CompileFailure{"invalid pipeline '" + pipeline + "': " + errors};
    if (failed(pm.run(module)))
      fail("the pipeline '" + pipeline + "' failed");
  }

  std::unique_ptr<MLIRContext> context;
  std::unique_ptr<ScopedDiagnosticHandler> handler;
  std::string diagnostics;
};

std::string typeToString(Type type) {
  std::string text;
  llvm::raw_string_ostream os(text);
  type.print(os);
  return text;
}

/// Argument and result types of every function in the module, as text,
/// whether it can be called, and the arguments' `moe.name` attributes (the
/// names of exported weights; None where absent).
py::dict collectSignatures(ModuleOp module) {
  py::dict signatures;
  for (auto func : module.getOps<func::FuncOp>()) {
    py::list args, results, names;
    for (auto [index, type] : llvm::enumerate(func.getArgumentTypes())) {
      args.append(typeToString(type));
      auto name = func.getArgAttrOfType<StringAttr>(index, "moe.name");
      names.append(name ? py::object(py::str(name.getValue().str()))
                        : py::object(py::none()));
    }
    for (Type type : func.getResultTypes())
      results.append(typeToString(type));
    signatures[py::str(func.getSymName().str())] = py::make_tuple(
        args, results, func.isPublic() && !func.isExternal(), names);
  }
  return signatures;
}

/// Adds to every signature whether the lowered function takes the trailing
/// status argument (`moe-status-argument`: an int32_t* after the others).
void addStatusArguments(py::dict &signatures, ModuleOp lowered) {
  py::dict updated;
  for (auto item : signatures) {
    std::string name = py::cast<std::string>(item.first);
    bool status = false;
    if (auto func = lowered.lookupSymbol<FunctionOpInterface>(name)) {
      unsigned count = func.getNumArguments();
      status = count > 0 && func.getArgAttr(count - 1, moe::kStatusArgAttr);
    }
    py::tuple old = py::cast<py::tuple>(item.second);
    updated[item.first] =
        py::make_tuple(old[0], old[1], old[2], old[3], status);
  }
  signatures = updated;
}

std::string printModule(ModuleOp module) {
  std::string text;
  llvm::raw_string_ostream os(text);
  module.print(os);
  return text;
}

/// The host target machine, or one for `cpu` ("native" for the host).
std::unique_ptr<llvm::TargetMachine> makeTargetMachine(const std::string &cpu,
                                                       int optLevel) {
  auto builder = llvm::orc::JITTargetMachineBuilder::detectHost();
  if (!builder)
    throw CompileFailure{"cannot detect the host target: " +
                         llvm::toString(builder.takeError())};
  if (cpu != "native") {
    builder->setCPU(cpu);
    builder->getFeatures() = llvm::SubtargetFeatures();
  }
  builder->setCodeGenOptLevel(optLevel >= 3   ? llvm::CodeGenOptLevel::Aggressive
                              : optLevel == 2 ? llvm::CodeGenOptLevel::Default
                              : optLevel == 1 ? llvm::CodeGenOptLevel::Less
                                              : llvm::CodeGenOptLevel::None);
  builder->setRelocationModel(llvm::Reloc::PIC_);
  auto machine = builder->createTargetMachine();
  if (!machine)
    throw CompileFailure{"cannot create a target machine: " +
                         llvm::toString(machine.takeError())};
  return std::move(*machine);
}

/// Lets the x86 backend keep the kernels' 16-lane vectors in 512-bit
/// registers: CPUs such as Sapphire Rapids prefer 256-bit vectors by
/// default and would split every vector<16xf32> in two, halving the FMA
/// throughput. Harmless on CPUs without AVX-512 (the vectors are split).
void preferWideVectors(llvm::Module &module) {
  for (llvm::Function &function : module) {
    if (function.isDeclaration())
      continue;
    function.addFnAttr("prefer-vector-width", "512");
    function.addFnAttr("min-legal-vector-width", "512");
  }
}

/// A module compiled in memory by the ExecutionEngine.
class JitModule {
public:
  JitModule(const std::string &text, const std::string &pipeline,
            int optLevel, const std::vector<std::string> &sharedLibs) {
    auto module = session.parse(text, "<moe_mlir.compile>");
    signatures = collectSignatures(*module);
    session.lower(*module, pipeline);
    addStatusArguments(signatures, *module);
    lowered = printModule(*module);

    // The IR optimiser gets the host's target machine so that its cost
    // models (vector width, FMA) are the ones the JIT generates code for.
    // `transformer` is a function_ref: the std::function it refers to must
    // outlive ExecutionEngine::create.
    machine = makeTargetMachine("native", optLevel);
    auto optimizeOnly = makeOptimizingTransformer(
        static_cast<unsigned>(optLevel), /*sizeLevel=*/0, machine.get());
    std::function<llvm::Error(llvm::Module *)> optimize =
        [optimizeOnly](llvm::Module *module) {
          preferWideVectors(*module);
          return optimizeOnly(module);
        };
    ExecutionEngineOptions options;
    options.transformer = optimize;
    options.jitCodeGenOptLevel = machine->getOptLevel();
    std::vector<llvm::StringRef> libs(sharedLibs.begin(), sharedLibs.end());
    options.sharedLibPaths = libs;
    auto engineOrError = ExecutionEngine::create(*module, options);
    if (!engineOrError)
      session.fail("JIT compilation failed: " +
                   llvm::toString(engineOrError.takeError()));
    engine = std::move(*engineOrError);
  }

  uintptr_t lookup(const std::string &name) {
    auto symbol = engine->lookup(name);
    if (!symbol) {
      std::string message = llvm::toString(symbol.takeError());
      // A missing name, or a module that could not be materialised (an
      // unresolved external symbol, ...): say which.
      if (message.find("Symbols not found") != std::string::npos &&
          message.find(name) != std::string::npos)
        throw py::key_error("no symbol '" + name + "' in the compiled module");
      throw py::key_error("cannot look up '" + name + "': " + message);
    }
    return reinterpret_cast<uintptr_t>(*symbol);
  }

  Session session;
  py::dict signatures;
  std::string lowered;
  std::unique_ptr<llvm::TargetMachine> machine;
  std::unique_ptr<ExecutionEngine> engine;
};

/// Lowers `text` with `pipeline`, translates to LLVM IR, optimises and writes
/// a relocatable object (position independent) to `path`. Returns the
/// signatures of the module's functions.
py::dict emitObject(const std::string &text, const std::string &pipeline,
                    const std::string &path, int optLevel,
                    const std::string &cpu) {
  Session session;
  auto module = session.parse(text, "<moe_mlir.aot>");
  py::dict signatures = collectSignatures(*module);
  session.lower(*module, pipeline);
  addStatusArguments(signatures, *module);

  llvm::LLVMContext llvmContext;
  auto llvmModule = translateModuleToLLVMIR(*module, llvmContext);
  if (!llvmModule)
    session.fail("translation to LLVM IR failed");
  auto machine = makeTargetMachine(cpu, optLevel);
  llvmModule->setDataLayout(machine->createDataLayout());
  llvmModule->setTargetTriple(machine->getTargetTriple());
  auto optimize = makeOptimizingTransformer(static_cast<unsigned>(optLevel),
                                            /*sizeLevel=*/0, machine.get());
  preferWideVectors(*llvmModule);
  if (llvm::Error error = optimize(llvmModule.get()))
    throw CompileFailure{"LLVM optimisation failed: " +
                         llvm::toString(std::move(error))};

  std::error_code ec;
  llvm::raw_fd_ostream out(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    throw CompileFailure{"cannot open '" + path + "': " + ec.message()};
  llvm::legacy::PassManager codegen;
  if (machine->addPassesToEmitFile(codegen, out, nullptr,
                                   llvm::CodeGenFileType::ObjectFile))
    throw CompileFailure{"the target cannot emit object files"};
  codegen.run(*llvmModule);
  out.flush();
  return signatures;
}

/// Lowers `text` with `pipeline` and returns the result: LLVM dialect text,
/// or LLVM IR with `llvm_ir`.
std::string lowerToText(const std::string &text, const std::string &pipeline,
                        bool llvmIR) {
  Session session;
  auto module = session.parse(text, "<moe_mlir.lower>");
  session.lower(*module, pipeline);
  if (!llvmIR)
    return printModule(*module);
  llvm::LLVMContext llvmContext;
  auto llvmModule = translateModuleToLLVMIR(*module, llvmContext);
  if (!llvmModule)
    session.fail("translation to LLVM IR failed");
  std::string out;
  llvm::raw_string_ostream os(out);
  llvmModule->print(os, nullptr);
  return out;
}

} // namespace

PYBIND11_MODULE(_moe_mlir_native, m) {
  m.doc() = "moe-mlir's compiler: parse, lower, JIT or emit objects";
  static py::exception<CompileFailure> compileError(m, "CompileError",
                                                     PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p)
        std::rethrow_exception(p);
    } catch (const CompileFailure &failure) {
      compileError(failure.message.c_str());
    }
  });

  py::class_<JitModule>(m, "JitModule")
      .def(py::init<const std::string &, const std::string &, int,
                    const std::vector<std::string> &>(),
           py::arg("text"), py::arg("pipeline"), py::arg("opt_level") = 3,
           py::arg("shared_libs") = std::vector<std::string>{})
      .def("lookup", &JitModule::lookup, py::arg("name"),
           "Address of a symbol of the compiled module.")
      .def_property_readonly(
          "signatures", [](JitModule &self) { return self.signatures; },
          "{name: (argument types, result types, is_public)} of the input "
          "module's functions.")
      .def_property_readonly(
          "lowered", [](JitModule &self) { return self.lowered; },
          "The module after the pipeline (LLVM dialect).");

  m.def("emit_object", &emitObject, py::arg("text"), py::arg("pipeline"),
        py::arg("path"), py::arg("opt_level") = 3, py::arg("cpu") = "native",
        "Lower, optimise and write a PIC object file; returns the input "
        "module's function signatures.");
  m.def("lower", &lowerToText, py::arg("text"), py::arg("pipeline"),
        py::arg("llvm_ir") = false,
        "Lower a module with a pipeline and return the result as text.");
  m.def(
      "signatures",
      [](const std::string &text) {
        Session session;
        auto module = session.parse(text, "<moe_mlir.signatures>");
        return collectSignatures(*module);
      },
      py::arg("text"),
      "Parse and verify a module; return its function signatures.");
  m.def("host_cpu", [] { return llvm::sys::getHostCPUName().str(); });
}
