# -*- Python -*-
# lit configuration of the moe-mlir test suite.

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MOE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moe_obj_root, "test")

# Inputs of other tests, the pytest suite (run by pytest, not lit) and the
# downstream project used by Install/ are not tests themselves.
config.excludes = ["Inputs", "python", "CMakeLists.txt", "lit.cfg.py",
                   "lit.site.cfg.py"]

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%shlibext", config.llvm_shlib_ext))
config.substitutions.append(("%moe_src_root", config.moe_src_root))
config.substitutions.append(("%moe_obj_root", config.moe_obj_root))
config.substitutions.append(("%mlir_dir", config.mlir_dir))
config.substitutions.append(("%cmake", config.cmake_command))
config.substitutions.append(("%generator", config.cmake_generator))
config.substitutions.append(("%cxx", config.cxx_compiler))
config.substitutions.append(("%c_compiler", config.c_compiler))
config.substitutions.append(("%python", config.python_executable))
# Flags a downstream build needs to link the project's libraries (non-empty
# in the sanitizer build).
sanitizer_flags = ""
if config.moe_sanitizers.upper() in ("ON", "1", "TRUE", "YES"):
    sanitizer_flags = "-fsanitize=address,undefined -shared-libasan"
    # End-to-end examples whose every step has sanitized unit tests run in
    # the plain build only (time).
    config.available_features.add("sanitizers")
config.substitutions.append(("%sanitizer_flags", sanitizer_flags))
config.substitutions.append(
    ("%moe_plugin", os.path.join(config.moe_lib_dir, "MoEPlugin.so")))

# Execution through mlir-runner with the toolchain's runtime utilities
# (printMemrefF32, ...).
runner_libs = ",".join(
    os.path.join(config.llvm_lib_dir, "lib" + name + config.llvm_shlib_ext)
    for name in ("mlir_runner_utils", "mlir_c_runner_utils"))
config.substitutions.append(
    ("%mlir_runner", os.path.join(config.llvm_tools_dir, "mlir-runner")))
config.substitutions.append(("%runner_libs", runner_libs))

# What a downstream project runs on moe ops with the stock mlir-opt and the
# plugin: the ops' own BufferizableOpInterface models (no moe pass), then
# the upstream lowering to LLVM.
config.substitutions.append(("%stock_cpu_lowering", ",".join([
    "func.func(convert-elementwise-to-linalg)",
    "one-shot-bufferize{bufferize-function-boundaries "
    "function-boundary-type-conversion=identity-layout-map}",
    "buffer-deallocation-pipeline", "scf-forall-to-for",
    "convert-linalg-to-loops", "convert-vector-to-scf",
    "expand-strided-metadata", "lower-affine", "convert-scf-to-cf",
    "convert-vector-to-llvm",
    "finalize-memref-to-llvm", "convert-math-to-llvm", "convert-math-to-libm",
    "convert-arith-to-llvm", "convert-index-to-llvm", "convert-ub-to-llvm",
    "convert-cf-to-llvm", "convert-func-to-llvm",
    "reconcile-unrealized-casts"])))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()

# moe-opt and the test programs come from the build tree; FileCheck, not,
# split-file and the stock mlir-opt from the LLVM toolchain.
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)
tool_dirs = [config.moe_tools_dir, config.llvm_tools_dir]
tools = [
    "moe-opt",
    "moe-capi-test",
    "moe-ep-runtime-test",
    ToolSubst("%mlir_opt", command=os.path.join(config.llvm_tools_dir,
                                                 "mlir-opt")),
]
llvm_config.add_tool_substitutions(tools, tool_dirs)

# GPU: `cuda-toolkit` when ptxas and fatbinary are there (the GPU pipeline can
# assemble kernels), `cuda-runtime` when libmoe_cuda_runtime was built, `gpu`
# when that runtime finds a CUDA device (tests that execute kernels).
cuda_home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
if all(os.access(os.path.join(cuda_home, "bin", tool), os.X_OK)
       for tool in ("ptxas", "fatbinary")):
    config.available_features.add("cuda-toolkit")
cuda_runtime = os.path.join(config.moe_lib_dir, "libmoe_cuda_runtime.so")
if os.path.exists(cuda_runtime):
    config.available_features.add("cuda-runtime")
    try:
        import ctypes
        os.environ.setdefault("MOE_CUDA_RUNTIME_QUIET", "1")
        if ctypes.CDLL(cuda_runtime).moeCudaDeviceCount() > 0:
            config.available_features.add("gpu")
    except OSError:
        pass
