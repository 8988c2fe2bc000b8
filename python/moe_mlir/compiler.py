"""Compile MLIR modules that use the moe dialect and call them with NumPy.

``compile(mlir_text, entry)`` lowers the module with the pipeline of its
target (``moe_mlir.targets``; by default the CPU pipeline,
``moe-cpu-pipeline``), JIT-compiles it, and returns a callable. Calls go
through the function's C interface (``_mlir_ciface_<entry>``) with ctypes:
ranked tensor arguments become memref descriptors of NumPy arrays, results
come back as NumPy arrays with their runtime shapes. The same calling code
serves ahead-of-time shared libraries (``moe_mlir.aot``).
"""

import ctypes
import re
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from .targets import check_target, cpu_pipeline, pipeline_needs_openmp
from .targets import pipeline as target_pipeline
from .toolchain import LLVM_MAJOR, llvm_tool, openmp_runtime

try:
    import _moe_mlir_native as _native
except ImportError as error:  # pragma: no cover - depends on the build
    _native = None
    _native_error = error

__all__ = ["CompileError", "CompiledFunction", "compile", "cpu_pipeline", "openmp_runtime",
           "set_num_threads",
           "lower"]


def _require_native():
    if _native is None:
        raise ImportError(
            "the moe_mlir compiler (_moe_mlir_native) is not built or not on "
            "the path; build with scripts/setup.sh and set "
            "PYTHONPATH=<repo>/build/python_packages") from _native_error
    return _native


class CompileError(RuntimeError):
    """A verifier, pass or code generation failure; ``str()`` carries the
    diagnostics."""


def _translate_errors(fn, *args, **kwargs):
    native = _require_native()
    try:
        return fn(*args, **kwargs)
    except native.CompileError as error:
        raise CompileError(str(error)) from None


def set_num_threads(threads: int) -> None:
    """Sets the number of threads of parallel compiled code (the OpenMP
    runtime's; OMP_NUM_THREADS sets it at start-up)."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"'threads' must be a positive integer, got {threads!r}")
    path = openmp_runtime()
    if path is None:
        raise RuntimeError("the LLVM OpenMP runtime (libomp) is not installed: compiled code "
                           "runs on one thread")
    ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL).omp_set_num_threads(threads)


def _openmp_libs(pipeline: str) -> list:
    """The shared libraries code from `pipeline` needs at run time."""
    if not pipeline_needs_openmp(pipeline):
        return []
    path = openmp_runtime()
    if path is None:
        raise CompileError(f"the pipeline asks for parallel code, but the LLVM OpenMP runtime "
                           f"(libomp-{LLVM_MAJOR}-dev) is not installed")
    return [path]


def _ep_libs(mlir_text: str) -> list:
    """The expert-parallel runtime, for a module with exchange ops (loaded
    first so that the runtime's state is the one moe_mlir.ep talks to)."""
    if "moe.ep_dispatch" not in mlir_text:
        return []
    from . import ep
    ep._library()
    return [ep.runtime_library()]


def lower(mlir_text: str, pipeline: Optional[str] = None, llvm_ir: bool = False) -> str:
    """Lowers a module and returns the text (LLVM dialect, or LLVM IR)."""
    native = _require_native()
    return _translate_errors(native.lower, mlir_text, pipeline or cpu_pipeline(), llvm_ir)


# ---------------------------------------------------------------------------
# Types and memref descriptors
# ---------------------------------------------------------------------------
_SCALARS = {
    "f32": (ctypes.c_float, np.float32),
    "f64": (ctypes.c_double, np.float64),
    "i1": (ctypes.c_bool, np.bool_),
    "i8": (ctypes.c_int8, np.int8),
    "i16": (ctypes.c_int16, np.int16),
    "i32": (ctypes.c_int32, np.int32),
    "i64": (ctypes.c_int64, np.int64),
    "index": (ctypes.c_int64, np.int64),
}
# Element types of tensors: NumPy storage dtype. bf16 is stored as uint16.
_ELEMENTS = {
    "f32": np.dtype(np.float32), "f64": np.dtype(np.float64), "f16": np.dtype(np.float16),
    "bf16": np.dtype(np.uint16), "i1": np.dtype(np.bool_), "i8": np.dtype(np.int8),
    "i16": np.dtype(np.int16), "i32": np.dtype(np.int32), "i64": np.dtype(np.int64),
    "index": np.dtype(np.int64),
}
_SHAPED = re.compile(r"^(tensor|memref)<(.*)>$")


@dataclass(frozen=True)
class ValueType:
    """An argument or result type of a compiled function."""
    text: str
    shape: Optional[Tuple[Optional[int], ...]]   # None for scalars; None entries are dynamic
    element: str

    @property
    def is_shaped(self) -> bool:
        return self.shape is not None

    @property
    def rank(self) -> int:
        return len(self.shape) if self.shape is not None else 0

    def describe_shape(self) -> str:
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


def parse_type(text: str) -> ValueType:
    match = _SHAPED.match(text)
    if not match:
        if text not in _SCALARS:
            raise CompileError(f"unsupported argument or result type '{text}' (supported: ranked "
                               f"tensors and memrefs of {sorted(_ELEMENTS)}, scalars "
                               f"{sorted(_SCALARS)})")
        return ValueType(text, None, text)
    body = match.group(2)
    if "," in body or "*" in body:
        raise CompileError(f"unsupported type '{text}': only ranked, identity-layout "
                           f"tensors and memrefs are supported")
    parts = body.split("x")
    element = parts[-1]
    if element not in _ELEMENTS:
        raise CompileError(f"unsupported element type in '{text}' (supported: "
                           f"{sorted(_ELEMENTS)})")
    shape = tuple(None if d == "?" else int(d) for d in parts[:-1])
    return ValueType(text, shape, element)


_DESCRIPTORS = {}


def descriptor_class(rank: int):
    """The ctypes struct of a ranked memref descriptor."""
    if rank not in _DESCRIPTORS:
        fields = [("allocated", ctypes.c_void_p), ("aligned", ctypes.c_void_p),
                  ("offset", ctypes.c_int64)]
        if rank:
            fields += [("sizes", ctypes.c_int64 * rank), ("strides", ctypes.c_int64 * rank)]
        _DESCRIPTORS[rank] = type(f"MemRef{rank}D", (ctypes.Structure,), {"_fields_": fields})
    return _DESCRIPTORS[rank]


def _ctype_of(value_type: ValueType):
    if value_type.is_shaped:
        return descriptor_class(value_type.rank)
    return _SCALARS[value_type.element][0]


def _float_to_bf16_bits(values: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bit patterns (uint16), round to nearest even, NaN kept."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounding = ((bits >> 16) & 1) + np.uint32(0x7FFF)
    rounded = ((bits + rounding) >> 16).astype(np.uint16)
    nan = np.isnan(values)
    return np.where(nan, ((bits >> 16) | 0x40).astype(np.uint16), rounded)


def _bf16_bits_to_float(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


# Codes stored by the generated code in a call's status argument when an
# op's operands have runtime sizes that disagree.
_RUNTIME_ERRORS = {1: "moe.gate", 2: "moe.route", 3: "moe.dispatch", 4: "moe.grouped_matmul",
                   5: "moe.expert_ffn", 6: "moe.combine", 7: "moe.aux_loss",
                   8: "moe.route_dispatch", 9: "moe.ep_dispatch", 10: "moe.ep_combine"}
# Code of a capturable GPU function (moe-gpu-capturable) called with a
# workspace smaller than its <name>_workspace_size.
_WORKSPACE_TOO_SMALL = 11

_LIBC = ctypes.CDLL(None)
_LIBC.free.argtypes = [ctypes.c_void_p]
_LIBC.free.restype = None


# ---------------------------------------------------------------------------
# Calling compiled functions
# ---------------------------------------------------------------------------
def _scalar_argument(function: str, name: str, t: ValueType, value):
    """A scalar argument as its ctypes value: integers must be integral and
    in range (no wrapping, no truncation), floats real."""
    ctype, dtype = _SCALARS[t.element]
    where = f"{function}: argument '{name}'"
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise ValueError(f"{where} must be a scalar {t.text}, got an array of shape "
                             f"{value.shape}")
        value = value[()]
    if dtype is np.bool_:
        if not isinstance(value, (bool, np.bool_, int, np.integer)) or value not in (0, 1):
            raise ValueError(f"{where} must be a boolean ({t.text}), got {value!r}")
        return ctype(bool(value))
    if np.dtype(dtype).kind in "iu":
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{where} must be an integer ({t.text}), got {value!r}")
        info = np.iinfo(dtype)
        if not info.min <= int(value) <= info.max:
            raise ValueError(f"{where} must lie in [{info.min}, {info.max}] ({t.text}), got "
                             f"{value}; it would wrap")
        return ctype(int(value))
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise ValueError(f"{where} must be a real number ({t.text}), got {value!r}")
    return ctype(float(value))


class CompiledFunction:
    """A compiled function, called with NumPy arrays and Python numbers.

    Tensor arguments are converted to the function's element type (any float
    dtype to a float element type, any integer dtype to an integer one) and
    made contiguous; their rank and static sizes are checked (``ValueError``
    names the argument and the expected shape). Results are NumPy arrays
    (bf16 results are returned as float32), one or a tuple."""

    def __init__(self, address: int, name: str, arg_types: Sequence[str],
                 result_types: Sequence[str], arg_names: Optional[Sequence[str]] = None,
                 keepalive=None):
        self.name = name
        self.arg_types = [parse_type(t) for t in arg_types]
        self.result_types = [parse_type(t) for t in result_types]
        self.arg_names = list(arg_names) if arg_names else [f"#{i}" for i in range(len(arg_types))]
        self._keepalive = keepalive
        results = self.result_types
        # The C interface returns a single scalar directly; any other result
        # list is written through a pointer passed as the first argument.
        self._direct = len(results) == 1 and not results[0].is_shaped
        self._packed = len(results) > 0 and not self._direct
        argtypes = []
        if self._packed:
            fields = [(f"r{i}", _ctype_of(t)) for i, t in enumerate(results)]
            self._result_struct = type(f"{name}_results", (ctypes.Structure,),
                                       {"_fields_": fields})
            argtypes.append(ctypes.c_void_p)
        for t in self.arg_types:
            argtypes.append(ctypes.c_void_p if t.is_shaped else _ctype_of(t))
        # The trailing int32_t* status (moe-status-argument): each call has
        # its own, so any number of threads can call at once.
        argtypes.append(ctypes.POINTER(ctypes.c_int32))
        restype = _ctype_of(results[0]) if self._direct else None
        self._fn = ctypes.CFUNCTYPE(restype, *argtypes)(address)

    def _argument(self, index: int, value, keep: list):
        t = self.arg_types[index]
        name = self.arg_names[index]
        if not t.is_shaped:
            return _scalar_argument(self.name, name, t, value)
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise ValueError(f"{self.name}: argument '{name}' must hold real numbers "
                             f"({t.element}), got dtype {array.dtype}")
        if array.ndim != t.rank or any(d is not None and d != s
                                       for d, s in zip(t.shape, array.shape)):
            raise ValueError(f"{self.name}: argument '{name}' must have shape "
                             f"{t.describe_shape()}, got {tuple(array.shape)}")
        storage = _ELEMENTS[t.element]
        if t.element == "bf16":
            if array.dtype == np.uint16:
                data = np.ascontiguousarray(array)
            else:
                data = _float_to_bf16_bits(np.asarray(array, np.float32))
        else:
            kind_ok = (array.dtype.kind in "fc") == (storage.kind == "f") or array.size == 0 \
                or array.dtype.kind == "b" or storage.kind == "b"
            if not kind_ok and array.dtype.kind == "f" and storage.kind in "iu":
                raise ValueError(f"{self.name}: argument '{name}' must hold integers "
                                 f"({t.element}), got {array.dtype}")
            # An array of the storage dtype itself cannot wrap: no scan (the
            # quantized weights' bytes are bound once and passed every call).
            if storage.kind in "iu" and array.dtype.kind in "iu" and array.size \
                    and array.dtype != storage and array.dtype.itemsize >= storage.itemsize:
                info = np.iinfo(storage)
                low, high = array.min(), array.max()
                if low < info.min or high > info.max:
                    raise ValueError(f"{self.name}: argument '{name}' holds values outside the "
                                     f"range of {t.element} ([{low}, {high}]); they would wrap")
            data = np.ascontiguousarray(array, dtype=storage)
        keep.append(data)
        desc = descriptor_class(t.rank)()
        pointer = data.ctypes.data if data.size else 0
        desc.allocated = pointer
        desc.aligned = pointer
        desc.offset = 0
        if t.rank:
            for i, (size, stride) in enumerate(zip(data.shape, data.strides)):
                desc.sizes[i] = size
                desc.strides[i] = stride // data.itemsize if data.itemsize else 0
        keep.append(desc)
        return ctypes.cast(ctypes.pointer(desc), ctypes.c_void_p)

    def _result(self, t: ValueType, desc):
        storage = _ELEMENTS[t.element]
        shape = tuple(desc.sizes[i] for i in range(t.rank))
        strides = tuple(desc.strides[i] for i in range(t.rank))
        count = int(np.prod(shape)) if shape else 1
        if count == 0 or not desc.aligned:
            out = np.empty(shape, storage)
        else:
            extent = 1 + sum((s - 1) * abs(st) for s, st in zip(shape, strides))
            base = desc.aligned + desc.offset * storage.itemsize
            buffer = (ctypes.c_char * (extent * storage.itemsize)).from_address(base)
            flat = np.frombuffer(buffer, dtype=storage, count=extent)
            out = np.lib.stride_tricks.as_strided(
                flat, shape=shape, strides=tuple(st * storage.itemsize for st in strides)).copy()
        if t.element == "bf16":
            out = _bf16_bits_to_float(out)
        return out

    def __call__(self, *args):
        if len(args) != len(self.arg_types):
            raise TypeError(f"{self.name}() takes {len(self.arg_types)} arguments "
                            f"({', '.join(self.arg_names)}), got {len(args)}")
        keep = []
        c_args = [self._argument(i, a, keep) for i, a in enumerate(args)]
        status = ctypes.c_int32(0)
        c_args.append(ctypes.byref(status))
        if self._direct:
            value = self._fn(*c_args)
            self._check_status(status.value)
            return _SCALARS[self.result_types[0].element][1](value)
        if not self._packed:
            self._fn(*c_args)
            self._check_status(status.value)
            return None
        results = self._result_struct()
        self._fn(ctypes.cast(ctypes.pointer(results), ctypes.c_void_p), *c_args)
        fields = [getattr(results, f"r{i}") for i in range(len(self.result_types))]
        # The caller owns every returned buffer. Two results may share one
        # (`return %a, %a`): copy everything first, then free each buffer once.
        # After a runtime error the results are not read at all (their sizes
        # are whatever the failed op's types say).
        buffers = [f.allocated for f, t in zip(fields, self.result_types) if t.is_shaped]
        try:
            self._check_status(status.value)
            outputs = [self._result(t, f) if t.is_shaped else _SCALARS[t.element][1](f)
                       for t, f in zip(self.result_types, fields)]
        finally:
            for pointer in dict.fromkeys(p for p in buffers if p):
                _LIBC.free(pointer)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _check_status(self, code: int):
        """Raises the error the generated code recorded in this call's status,
        if any (operands whose runtime sizes disagree: the op did not run)."""
        check_status(self.name, code)


def check_status(function: str, code: int):
    """Raises ``ValueError`` for a nonzero status ``code`` that a call of
    ``function`` returned (its failing op by name)."""
    if code == 0:
        return
    if code in (9, 10):
        from . import ep
        raise ep.EPError(f"{function}: the expert-parallel exchange failed: "
                         f"{ep.last_error() or _RUNTIME_ERRORS[code]}")
    if code == _WORKSPACE_TOO_SMALL:
        raise ValueError(f"{function}: the workspace is smaller than "
                         f"{function}_workspace_size() bytes for these shapes; nothing ran")
    op = _RUNTIME_ERRORS.get(code, f"op code {code}")
    raise ValueError(f"{function}: the runtime sizes of the arguments of a {op} disagree "
                     f"with each other or with the static sizes of its results (e.g. a "
                     f"different number of tokens T in two arguments); the op did not run")


def require_status_argument(function: str, signature, where: str):
    """Raises ``CompileError`` unless the compiled ``function`` takes the
    trailing status argument (``signature[4]``) that every call passes."""
    if len(signature) < 5 or not signature[4]:
        raise CompileError(f"function '{function}' in {where} takes no status argument (was "
                           f"it lowered with status-argument=0?); moe_mlir passes an int32_t* "
                           f"status to every public function (moe-status-argument)")


class _SanitizedModule:
    """The JitModule interface over a library compiled with AddressSanitizer
    (MOE_MLIR_SANITIZE=1): the lowered LLVM IR is compiled by clang with
    ``-fsanitize=address`` (every function marked ``sanitize_address``), so
    that any out-of-bounds access of the generated code is reported. The
    process must have the ASan runtime loaded (scripts/sanitize.sh)."""

    def __init__(self, mlir_text: str, pipeline: str, opt_level: int):
        import os
        import subprocess
        import tempfile
        native = _require_native()
        self.signatures = _translate_errors(native.signatures, mlir_text)
        self.lowered = _translate_errors(native.lower, mlir_text, pipeline, False)
        # Whether each lowered function takes the status argument, as the
        # JIT's signatures say (native.signatures reads the input module).
        for name, sig in dict(self.signatures).items():
            header = re.search(r"^\s*llvm\.func @" + re.escape(name) + r"\((.*)$",
                               self.lowered, flags=re.M)
            status = bool(header) and "{moe.status})" in header.group(1)
            self.signatures[name] = tuple(sig[:4]) + (status,)
        llvm_ir = _translate_errors(native.lower, mlir_text, pipeline, True)
        # Mark every defined function for instrumentation.
        llvm_ir = re.sub(r"^(define [^\n]*\)[^\n{]*)\{$", r"\1 sanitize_address {",
                         llvm_ir, flags=re.M)
        # clang builds for its default x86-64 (no FMA, no AVX-512): the
        # functions' recorded host CPU (moe-apply-cpu-target) becomes that
        # generic one, so every sanitized module of a test computes alike
        # whatever pipeline options it was lowered with.
        llvm_ir = re.sub(r'"target-cpu"="[^"]*"', '"target-cpu"="x86-64"', llvm_ir)
        llvm_ir = re.sub(r' "target-features"="[^"]*"', "", llvm_ir)
        clang = os.environ.get("MOE_MLIR_SANITIZE_CLANG") or llvm_tool("clang")
        self._dir = tempfile.TemporaryDirectory(prefix="moe_mlir_asan_")
        source = os.path.join(self._dir.name, "module.ll")
        library = os.path.join(self._dir.name, "module.so")
        with open(source, "w") as f:
            f.write(llvm_ir)
        # compiler-rt's builtins: instrumented code keeps some bf16 values in
        # FP registers, which x86 lowers through __truncsfbf2.
        command = [clang, "-O1", "-fPIC", "-shared", "-fsanitize=address",
                   "-fno-omit-frame-pointer", "-Wno-override-module", source, "-o", library,
                   "-rtlib=compiler-rt", "-lm"]
        for runtime in _openmp_libs(pipeline):
            command += [runtime, f"-Wl,-rpath,{os.path.dirname(runtime)}"]
        built = subprocess.run(command, capture_output=True, text=True)
        if built.returncode != 0:
            raise CompileError(f"sanitized build failed ({' '.join(command)}):\n{built.stderr}")
        # Lazy binding, as the JIT resolves functions: a function that needs
        # a runtime library (memrefCopy for unranked results) fails when it
        # is looked up or called, not the whole module at load time.
        try:
            self._lib = ctypes.CDLL(library, mode=os.RTLD_LAZY)
        except OSError as error:
            raise CompileError(f"the sanitized module does not load: {error}") from None

    def lookup(self, name: str) -> int:
        try:
            symbol = getattr(self._lib, name)
        except AttributeError:
            raise KeyError(f"no symbol '{name}' in the compiled module") from None
        return ctypes.cast(symbol, ctypes.c_void_p).value


class CompiledModule:
    """A JIT-compiled module: ``module[name]`` is a CompiledFunction."""

    def __init__(self, mlir_text: str, pipeline: Optional[str] = None, opt_level: int = 3):
        import os
        native = _require_native()
        check_opt_level(opt_level)
        if not isinstance(mlir_text, str):
            raise TypeError(f"the module must be MLIR text (str), got {type(mlir_text).__name__}")
        self.pipeline = pipeline or cpu_pipeline()
        if os.environ.get("MOE_MLIR_SANITIZE"):
            self._jit = _SanitizedModule(mlir_text, self.pipeline, opt_level)
        else:
            self._jit = _translate_errors(native.JitModule, mlir_text, self.pipeline,
                                          opt_level, _openmp_libs(self.pipeline)
                                          + _ep_libs(mlir_text))
        self.signatures = dict(self._jit.signatures)

    @property
    def lowered(self) -> str:
        return self._jit.lowered

    def lookup(self, symbol: str) -> int:
        return self._jit.lookup(symbol)

    def function(self, name: str, arg_names: Optional[Sequence[str]] = None) -> CompiledFunction:
        if name not in self.signatures:
            raise KeyError(f"no function '{name}' in the module (functions: "
                           f"{', '.join(sorted(self.signatures))})")
        args, results, public = self.signatures[name][:3]
        if not public:
            raise ValueError(f"function '{name}' is not public or has no body; only public "
                             f"functions with bodies can be called")
        for kind, types in (("argument", args), ("result", results)):
            for index, text in enumerate(types):
                try:
                    parse_type(text)
                except CompileError as error:
                    raise CompileError(f"function '{name}' cannot be called: {kind} #{index}: "
                                       f"{error}") from None
        try:
            address = self._jit.lookup("_mlir_ciface_" + name)
        except KeyError as error:
            raise CompileError(f"function '{name}' cannot be called: "
                               f"{error.args[0] if error.args else error}") from None
        require_status_argument(name, self.signatures[name], "the compiled module")
        return CompiledFunction(address, name, args, results, arg_names, keepalive=self)

    def __getitem__(self, name: str) -> CompiledFunction:
        return self.function(name)

    def counters(self, index: int = 0) -> np.ndarray:
        """The FFN counters of an instrumented module (``instrument_ffn``):
        an int64 array [E, 2] of (rows, multiply-adds) per expert for the
        ``index``-th moe.expert_ffn of the module."""
        name = f"moe_ffn_counters_{index}"
        address = self._jit.lookup(name)
        for line in self.lowered.splitlines():
            if f"@{name}(" in line and "llvm.mlir.global" in line:
                match = re.search(r"!llvm\.array<(\d+) x array<2 x i64>>", line)
                if match:
                    experts = int(match.group(1))
                    buffer = (ctypes.c_int64 * (experts * 2)).from_address(address)
                    return np.ctypeslib.as_array(buffer).reshape(experts, 2)
        raise KeyError(f"no counters '{name}' (compile with instrument_ffn=True)")


def check_opt_level(opt_level) -> int:
    """LLVM's optimisation level: an integer 0..3."""
    if isinstance(opt_level, bool) or not isinstance(opt_level, (int, np.integer)) \
            or not 0 <= opt_level <= 3:
        raise ValueError(f"'opt_level' must be an integer in [0, 3], got {opt_level!r}")
    return int(opt_level)


def compile(mlir_text: str, entry: str, target: str = "cpu", *, opt_level: int = 3,
            instrument_ffn: bool = False, arg_names: Optional[Sequence[str]] = None,
            pipeline: Optional[str] = None) -> CompiledFunction:
    """Compiles ``mlir_text`` and returns the function ``entry`` as a callable.

    ``target`` is ``"cpu"`` or ``"gpu-emulated"`` (the GPU kernels run on
    the host; see ``moe_mlir.targets``); ``instrument_ffn`` is an option of
    ``"cpu"``. An explicit ``pipeline`` (text) replaces the target's.
    Raises ``ValueError`` for a target that ``compile`` does not support,
    ``CompileError`` (with the diagnostics) when parsing, verification or
    lowering fails, and ``KeyError`` when ``entry`` does not exist."""
    target = check_target(target, "compile")
    if pipeline is None:
        pipeline = target_pipeline(target, instrument_ffn=instrument_ffn)
    module = CompiledModule(mlir_text, pipeline, opt_level)
    function = module.function(entry, arg_names)
    function.module = module
    return function
