"""Ahead-of-time compilation: an MLIR module becomes a shared library.

``build_shared_library(mlir_text, "libmodel.so")`` lowers the module with the
pipeline of its target (``"cpu"``, the default, or ``"gpu"``; see
``moe_mlir.targets``), emits an optimised position-independent object with LLVM, and
links it with the system C compiler. The library exports the
``_mlir_ciface_<name>`` entry point of every public function and depends on
libc and libm only (no libMLIR, no libLLVM). A JSON file next to it
(``libmodel.so.json``) records the functions' signatures, so that
``load("libmodel.so")`` can call them with NumPy through ctypes on a machine
without MLIR (only NumPy and this package's pure-Python files are needed).
"""

import ctypes
import json
import os
import shutil
import subprocess
import tempfile
from typing import Dict, Optional, Sequence

from .compiler import (CompiledFunction, _openmp_libs, _require_native, _translate_errors,
                       check_opt_level, require_status_argument)
from .targets import (DEFAULT_CHIPS, check_target, gpu_pipeline, pipeline_has_device_arguments,
                      pipeline_is_capturable,
                      pipeline_is_gpu)
from .targets import pipeline as target_pipeline

#: The calling convention of the libraries this version builds and loads.
#: 1 (no "abi" in the signature file): run-time errors went to the
#: library's process-global ``moe_runtime_error``; 2: every public function
#: takes a trailing ``int32_t *status`` (0 on entry, the failing op's code
#: after a run-time size error).
ABI_VERSION = 2

__all__ = ["ABI_VERSION", "DEFAULT_CHIPS", "build_shared_library", "cuda_runtime_library",
           "gpu_pipeline", "load", "SharedLibrary"]


def cuda_runtime_library() -> str:
    """The project's CUDA runtime (libmoe_cuda_runtime.so: the mgpu* functions
    that GPU code calls): $MOE_CUDA_RUNTIME, else the build tree's lib/."""
    candidates = [os.environ.get("MOE_CUDA_RUNTIME")]
    native = _require_native()
    build = os.path.dirname(os.path.dirname(os.path.abspath(native.__file__)))
    candidates.append(os.path.join(build, "lib", "libmoe_cuda_runtime.so"))
    for candidate in candidates:
        if candidate and os.path.exists(candidate):
            return candidate
    raise RuntimeError("libmoe_cuda_runtime.so was not built (the CUDA toolkit was not found "
                       "at configure time); set MOE_CUDA_RUNTIME to its path")


def _c_compiler() -> str:
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate):
            return candidate
    raise RuntimeError("no C compiler found to link the shared library (set CC)")


def build_shared_library(mlir_text: str, output: str, *, cpu: str = "native",
                         opt_level: int = 3, instrument_ffn: bool = False,
                         parallel: bool = False, target: str = "cpu",
                         chips=DEFAULT_CHIPS, device_arguments: bool = False,
                         capturable: bool = False,
                         pipeline: Optional[str] = None) -> Dict[str, tuple]:
    """Compiles ``mlir_text`` into the shared library ``output``.

    ``cpu`` is an LLVM CPU name ("native" for the host, "x86-64" for any
    x86-64, "x86-64-v3" for AVX2 machines, "znver3", ...) for the host code;
    the CPU pipeline also chooses its kernels' schedules for it
    (``target-cpu``). ``parallel`` runs the expert FFN on OpenMP
    threads; the library then also depends on the LLVM OpenMP runtime
    (libomp). ``target`` is ``"cpu"`` or ``"gpu"`` (``moe_mlir.targets``):
    ``"gpu"`` compiles the moe ops to NVIDIA kernels for
    ``chips`` (moe-gpu-pipeline); the library then depends on
    libmoe_cuda_runtime.so, found next to it ($ORIGIN) or where it was
    built, and on the CUDA driver at run time. With ``device_arguments``
    the functions take device pointers and return device buffers (call
    them through ``moe_mlir.cuda.DeviceFunction``). With ``capturable``
    they also take the caller's stream and workspace, and a
    ``<name>_workspace_size`` function sizes the workspace (call them
    through ``moe_mlir.cuda.CapturableFunction``; CUDA graphs can capture
    them). An option of another
    target (``instrument_ffn`` or ``parallel`` with ``"gpu"``,
    ``device_arguments`` with ``"cpu"``) is a ``ValueError``, and an explicit
    ``pipeline`` (text) replaces the target's. Returns the signatures
    {name: (argument types, result types, is_public)} that are also written
    to ``output + ".json"``."""
    opt_level = check_opt_level(opt_level)
    target = check_target(target, "build_shared_library")
    if pipeline is None:
        pipeline = target_pipeline(target, instrument_ffn=instrument_ffn, parallel=parallel,
                                   chips=chips, device_arguments=device_arguments,
                                   target_cpu=cpu, capturable=capturable)
    native = _require_native()
    output = os.path.abspath(output)
    with tempfile.TemporaryDirectory(prefix="moe_mlir_aot_") as tmp:
        obj = os.path.join(tmp, "module.o")
        signatures = _translate_errors(native.emit_object, mlir_text, pipeline, obj,
                                       opt_level, cpu)
        command = [_c_compiler(), "-shared", "-o", output, obj, "-lm"]
        for runtime in _openmp_libs(pipeline):
            command += [runtime, f"-Wl,-rpath,{os.path.dirname(runtime)}"]
        if pipeline_is_gpu(pipeline):
            runtime = cuda_runtime_library()
            command += [f"-L{os.path.dirname(runtime)}", "-lmoe_cuda_runtime",
                        "-Wl,-rpath,$ORIGIN", f"-Wl,-rpath,{os.path.dirname(runtime)}"]
        linked = subprocess.run(command, capture_output=True, text=True)
        if linked.returncode != 0:
            raise RuntimeError(f"linking failed ({' '.join(command)}):\n{linked.stderr}")
    signatures = dict(signatures)
    for name, sig in signatures.items():
        if sig[2]:
            require_status_argument(name, sig, f"the pipeline '{pipeline}'")
    signatures = {name: (list(sig[0]), list(sig[1]), bool(sig[2]), list(sig[3]))
                  for name, sig in signatures.items()}
    with open(output + ".json", "w") as f:
        json.dump({"format": "moe_mlir.aot/1", "abi": ABI_VERSION,
                   "target": "gpu" if pipeline_is_gpu(pipeline) else "cpu",
                   "device_arguments": pipeline_has_device_arguments(pipeline),
                   "capturable": pipeline_is_capturable(pipeline),
                   "functions": signatures}, f, indent=1)
    return signatures


def _bad_signatures(path: str, what: str) -> ValueError:
    return ValueError(f"{path}: not a valid moe_mlir AOT signature file: {what}")


def read_signatures(path: str) -> Dict[str, tuple]:
    """Reads and checks the signature file written next to a library.
    Raises ``ValueError`` naming the file and what is wrong (``OSError``
    when it cannot be read)."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise _bad_signatures(path, f"not JSON ({type(error).__name__}: {error})") from None
    if not isinstance(meta, dict) or meta.get("format") != "moe_mlir.aot/1":
        raise _bad_signatures(path, "no \"format\": \"moe_mlir.aot/1\"")
    abi = meta.get("abi", 1)
    if abi != ABI_VERSION:
        if abi == 1:
            raise ValueError(f"{path}: the library was built by an older moe_mlir with ABI 1 "
                             f"(run-time errors in a process-global moe_runtime_error, no "
                             f"status argument); this version calls functions with ABI "
                             f"{ABI_VERSION} (a trailing int32_t* status): rebuild the library")
        raise _bad_signatures(path, f"ABI {abi!r} is not {ABI_VERSION}, the ABI of this version")
    functions = meta.get("functions")
    if not isinstance(functions, dict):
        raise _bad_signatures(path, "'functions' must be an object")
    signatures = {}
    for name, sig in functions.items():
        where = f"function '{name}'"
        if not isinstance(sig, list) or len(sig) not in (3, 4):
            raise _bad_signatures(path, f"{where} must be [arguments, results, public, names]")
        args, results, public = sig[:3]
        for label, types in (("arguments", args), ("results", results)):
            if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
                raise _bad_signatures(path, f"{where}: {label} must be a list of type strings")
        if not isinstance(public, bool):
            raise _bad_signatures(path, f"{where}: 'public' must be true or false")
        names = sig[3] if len(sig) == 4 else [None] * len(args)
        if not isinstance(names, list) or len(names) != len(args) or \
                not all(n is None or isinstance(n, str) for n in names):
            raise _bad_signatures(path, f"{where}: names must be one string or null per "
                                        f"argument")
        signatures[name] = (args, results, public, names)
    return signatures


class SharedLibrary:
    """A library built by build_shared_library: ``lib[name]`` is a callable."""

    def __init__(self, path: str, signatures: Optional[Dict[str, tuple]] = None):
        self.path = os.path.abspath(path)
        if signatures is None:
            signatures = read_signatures(self.path + ".json")
        self.signatures = signatures
        self._lib = ctypes.CDLL(self.path)

    def function(self, name: str, arg_names: Optional[Sequence[str]] = None) -> CompiledFunction:
        if name not in self.signatures:
            raise KeyError(f"no function '{name}' in {self.path}")
        args, results, public = self.signatures[name][:3]
        if not public:
            raise ValueError(f"function '{name}' is not public")
        try:
            symbol = getattr(self._lib, "_mlir_ciface_" + name)
        except AttributeError:
            raise ValueError(f"{self.path}: no symbol _mlir_ciface_{name} (the signature file "
                             f"does not match the library)") from None
        address = ctypes.cast(symbol, ctypes.c_void_p).value
        return CompiledFunction(address, name, args, results, arg_names, keepalive=self)

    def __getitem__(self, name: str) -> CompiledFunction:
        return self.function(name)


def load(path: str) -> SharedLibrary:
    """Loads a library built by build_shared_library (needs its .json)."""
    return SharedLibrary(path)
