"""Device memory and device-resident calls through libmoe_cuda_runtime, with
ctypes and NumPy only (no MLIR): what a GPU machine needs to call libraries
built with ``aot.build_shared_library(..., target="gpu", device_arguments=True)``,
whose tensor arguments are device pointers and whose results stay on the
device.

    rt = cuda.Runtime("libmoe_cuda_runtime.so")
    w = rt.to_device(weights)                  # once
    f = cuda.DeviceFunction(rt, "liblayer.so", "layer")
    y = f(rt.to_device(x), w, ...)             # DeviceArray, no copy back
    rt.to_host(y); rt.free(y)
"""
import ctypes
import json
import os
from typing import List

import numpy as np

from .aot import read_signatures
from .compiler import _ELEMENTS, check_status, descriptor_class, parse_type

__all__ = ["CudaError", "DeviceArray", "DeviceFunction", "Runtime"]


class CudaError(RuntimeError):
    pass


class DeviceArray:
    """A dense row-major array in device memory."""

    def __init__(self, pointer: int, shape, dtype):
        self.pointer = pointer or 0
        self.shape = tuple(int(s) for s in shape)
        self.dtype = np.dtype(dtype)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize


class Runtime:
    def __init__(self, path: str):
        self.lib = ctypes.CDLL(os.path.abspath(path))
        lib = self.lib
        lib.mgpuMemAlloc.restype = ctypes.c_void_p
        lib.mgpuMemAlloc.argtypes = [ctypes.c_uint64, ctypes.c_void_p, ctypes.c_bool]
        lib.mgpuMemFree.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.mgpuMemcpy.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64,
                                   ctypes.c_void_p]
        lib.moeCudaLastError.restype = ctypes.c_char_p
        lib.moeCudaEventCreate.restype = ctypes.c_void_p
        lib.moeCudaEventRecord.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.moeCudaEventElapsedMs.restype = ctypes.c_float
        lib.moeCudaEventElapsedMs.argtypes = [ctypes.c_void_p, ctypes.c_void_p]

    def device_count(self) -> int:
        return self.lib.moeCudaDeviceCount()

    def check(self):
        error = self.lib.moeCudaLastError()
        if error:
            self.lib.moeCudaClearError()
            raise CudaError(error.decode())

    def alloc(self, shape, dtype) -> DeviceArray:
        array = DeviceArray(0, shape, dtype)
        if array.nbytes:
            array.pointer = self.lib.mgpuMemAlloc(array.nbytes, None, False) or 0
            self.check()
        return array

    def to_device(self, host: np.ndarray) -> DeviceArray:
        host = np.ascontiguousarray(host)
        array = self.alloc(host.shape, host.dtype)
        if array.nbytes:
            self.lib.mgpuMemcpy(array.pointer, host.ctypes.data, array.nbytes, None)
            self.check()
        return array

    def to_host(self, array: DeviceArray) -> np.ndarray:
        host = np.empty(array.shape, array.dtype)
        if array.nbytes:
            self.lib.mgpuMemcpy(host.ctypes.data, array.pointer, array.nbytes, None)
            self.check()
        return host

    def free(self, array: DeviceArray):
        if array.pointer:
            self.lib.mgpuMemFree(array.pointer, None)
            array.pointer = 0

    def event(self) -> int:
        return self.lib.moeCudaEventCreate()

    def record(self, event: int):
        self.lib.moeCudaEventRecord(event, None)

    def elapsed_ms(self, start: int, stop: int) -> float:
        return float(self.lib.moeCudaEventElapsedMs(start, stop))


class DeviceFunction:
    """A public function of a library built with device_arguments=True."""

    def __init__(self, runtime: Runtime, library: str, name: str):
        self.runtime = runtime
        with open(library + ".json") as f:
            meta = json.load(f)
        if not meta.get("device_arguments"):
            raise ValueError(f"{library} was not built with device_arguments=True")
        read_signatures(library + ".json")  # the format and the ABI (aot.ABI_VERSION)
        args, results = meta["functions"][name][:2]
        self.arg_types = [parse_type(t) for t in args]
        self.result_types = [parse_type(t) for t in results]
        if not all(t.is_shaped for t in self.arg_types + self.result_types):
            raise ValueError("device functions take and return tensors only")
        self._lib = ctypes.CDLL(os.path.abspath(library))
        fields = [(f"r{i}", descriptor_class(t.rank)) for i, t in enumerate(self.result_types)]
        self._results = type(f"{name}_results", (ctypes.Structure,), {"_fields_": fields})
        self._fn = getattr(self._lib, "_mlir_ciface_" + name)
        self._fn.restype = None
        self.name = name

    def __call__(self, *arrays: DeviceArray) -> List[DeviceArray]:
        if len(arrays) != len(self.arg_types):
            raise TypeError(f"{self.name}() takes {len(self.arg_types)} arguments")
        keep, c_args = [], []
        for t, a in zip(self.arg_types, arrays):
            if len(a.shape) != t.rank or any(d is not None and d != s
                                             for d, s in zip(t.shape, a.shape)):
                raise ValueError(f"{self.name}: argument of shape {a.shape} does not match "
                                 f"{t.describe_shape()}")
            if a.dtype != _ELEMENTS[t.element]:
                raise ValueError(f"{self.name}: argument dtype {a.dtype} is not {t.element}")
            desc = descriptor_class(t.rank)()
            desc.allocated = desc.aligned = a.pointer
            desc.offset = 0
            stride = 1
            for i in reversed(range(t.rank)):
                desc.sizes[i] = a.shape[i]
                desc.strides[i] = stride
                stride *= a.shape[i]
            keep.append(desc)
            c_args.append(ctypes.cast(ctypes.pointer(desc), ctypes.c_void_p))
        results = self._results()
        status = ctypes.c_int32(0)
        self._fn(ctypes.cast(ctypes.pointer(results), ctypes.c_void_p), *c_args,
                 ctypes.byref(status))
        self.runtime.check()
        check_status(self.name, status.value)
        out = []
        for i, t in enumerate(self.result_types):
            d = getattr(results, f"r{i}")
            shape = [d.sizes[j] for j in range(t.rank)]
            out.append(DeviceArray(d.aligned + d.offset * _ELEMENTS[t.element].itemsize, shape,
                                   _ELEMENTS[t.element]))
        return out
