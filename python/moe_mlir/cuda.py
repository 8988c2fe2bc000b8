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

Libraries built with ``capturable=True`` take the caller's stream and a
workspace instead, and only launch kernels on that stream, so a CUDA graph
can capture a call and replay it:

    f = cuda.CapturableFunction(rt, "liblayer.so", "layer")
    ws = rt.alloc((f.workspace_size(x, *w),), np.uint8)
    s = rt.stream()
    rt.begin_capture(s); (y,) = f(x, *w, stream=s, workspace=ws)
    g = rt.end_capture(s)
    rt.launch_graph(g, s); rt.synchronize(s)   # y (in ws) holds the result
"""
import ctypes
import json
import os
from typing import List, Optional

import numpy as np

from .aot import read_signatures
from .compiler import _ELEMENTS, check_status, descriptor_class, parse_type

__all__ = ["CapturableFunction", "CudaError", "DeviceArray", "DeviceFunction", "Runtime"]


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
        lib.moeCudaEventDestroy.argtypes = [ctypes.c_void_p]
        lib.moeCudaEventElapsedMs.restype = ctypes.c_float
        lib.moeCudaEventElapsedMs.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.mgpuMemset32.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64,
                                     ctypes.c_void_p]
        lib.mgpuStreamCreate.restype = ctypes.c_void_p
        for name in ("mgpuStreamSynchronize", "mgpuStreamDestroy", "moeCudaStreamBeginCapture"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        lib.moeCudaStreamEndCapture.restype = ctypes.c_void_p
        lib.moeCudaStreamEndCapture.argtypes = [ctypes.c_void_p]
        lib.moeCudaGraphLaunch.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.moeCudaGraphDestroy.argtypes = [ctypes.c_void_p]

    def device_count(self) -> int:
        return self.lib.moeCudaDeviceCount()

    def has_wgmma(self) -> bool:
        """Whether calls launch the sm_90a (wgmma) kernels: a compute
        capability 9.0 device, unless ``use_wgmma(False)``."""
        return bool(self.lib.moeCudaHasWgmma())

    def use_wgmma(self, enable: bool):
        """Lets calls launch the sm_90a kernels where the device runs them
        (the default), or only the sm_80 ones (``False``)."""
        self.lib.moeCudaUseWgmma(1 if enable else 0)

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

    def fill32(self, array: DeviceArray, value: int, stream: Optional[int] = None):
        """Sets every 32-bit word of ``array`` to ``value``, on ``stream``."""
        if array.nbytes:
            self.lib.mgpuMemset32(array.pointer, value, array.nbytes // 4, stream)
            self.check()

    # Streams and CUDA graphs (capturable functions).
    def stream(self) -> int:
        stream = self.lib.mgpuStreamCreate()
        self.check()
        return stream

    def synchronize(self, stream: int):
        self.lib.mgpuStreamSynchronize(stream)
        self.check()

    def destroy_stream(self, stream: int):
        self.lib.mgpuStreamDestroy(stream)

    def begin_capture(self, stream: int):
        self.lib.moeCudaStreamBeginCapture(stream)
        self.check()

    def end_capture(self, stream: int) -> int:
        """Ends the capture of ``stream``; the instantiated graph."""
        graph = self.lib.moeCudaStreamEndCapture(stream)
        self.check()
        return graph

    def launch_graph(self, graph: int, stream: int):
        self.lib.moeCudaGraphLaunch(graph, stream)
        self.check()

    def destroy_graph(self, graph: int):
        self.lib.moeCudaGraphDestroy(graph)

    def best_replay_ms(self, graph: int, stream: int, repeat: int) -> float:
        """The best of ``repeat`` replays of ``graph`` on ``stream``, timed
        with events on the stream (no host synchronisation in between)."""
        start, stop = self.event(), self.event()
        try:
            best = float("inf")
            for _ in range(max(1, repeat)):
                self.lib.moeCudaEventRecord(start, stream)
                self.launch_graph(graph, stream)
                self.lib.moeCudaEventRecord(stop, stream)
                best = min(best, self.elapsed_ms(start, stop))
            return best
        finally:
            self.lib.moeCudaEventDestroy(start)
            self.lib.moeCudaEventDestroy(stop)


class DeviceFunction:
    """A public function of a library built with device_arguments=True."""

    capturable = False

    def __init__(self, runtime: Runtime, library: str, name: str):
        self.runtime = runtime
        with open(library + ".json") as f:
            meta = json.load(f)
        if not meta.get("device_arguments"):
            raise ValueError(f"{library} was not built with device_arguments=True")
        if bool(meta.get("capturable")) != self.capturable:
            raise ValueError(f"{library} was built with capturable="
                             f"{bool(meta.get('capturable'))}: call it through "
                             f"{'CapturableFunction' if meta.get('capturable') else 'DeviceFunction'}")
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

    def _arguments(self, arrays) -> list:
        """The memref descriptors of the device arrays (checked against the
        signature), as ctypes pointers; keep the list alive over the call."""
        if len(arrays) != len(self.arg_types):
            raise TypeError(f"{self.name}() takes {len(self.arg_types)} arguments")
        c_args = []
        for t, a in zip(self.arg_types, arrays):
            if len(a.shape) != t.rank or any(d is not None and d != s
                                             for d, s in zip(t.shape, a.shape)):
                raise ValueError(f"{self.name}: argument of shape {a.shape} does not match "
                                 f"{t.describe_shape()}")
            if a.dtype != _ELEMENTS[t.element]:
                raise ValueError(f"{self.name}: argument dtype {a.dtype} is not {t.element}")
            c_args.append(_descriptor(a))
        return c_args

    def _call(self, c_args) -> List[DeviceArray]:
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

    def __call__(self, *arrays: DeviceArray) -> List[DeviceArray]:
        return self._call(self._arguments(arrays))


def _descriptor(a: DeviceArray):
    """A ctypes pointer to a memref descriptor of the dense array ``a``
    (the descriptor is kept alive by the pointer object)."""
    rank = len(a.shape)
    desc = descriptor_class(rank)()
    desc.allocated = desc.aligned = a.pointer
    desc.offset = 0
    stride = 1
    for i in reversed(range(rank)):
        desc.sizes[i] = a.shape[i]
        desc.strides[i] = stride
        stride *= a.shape[i]
    return ctypes.pointer(desc)


class CapturableFunction(DeviceFunction):
    """A public function of a library built with capturable=True: it takes
    the caller's stream and workspace, allocates nothing and does not wait,
    so a CUDA graph can capture a call (Runtime.begin_capture). Its results
    are views into the workspace, valid until the next call with it."""

    capturable = True

    def __init__(self, runtime: Runtime, library: str, name: str):
        super().__init__(runtime, library, name)
        self._size = getattr(self._lib, f"_mlir_ciface_{name}_workspace_size")
        self._size.restype = ctypes.c_int64

    def workspace_size(self, *arrays: DeviceArray) -> int:
        """Bytes of workspace a call with arrays of these shapes needs (only
        the shapes are read)."""
        status = ctypes.c_int32(0)
        size = self._size(*self._arguments(arrays), ctypes.byref(status))
        check_status(self.name + "_workspace_size", status.value)
        return int(size)

    def __call__(self, *arrays: DeviceArray, workspace: DeviceArray,
                 stream: Optional[int] = None) -> List[DeviceArray]:
        if workspace.dtype != np.uint8 or len(workspace.shape) != 1:
            raise ValueError(f"{self.name}: the workspace is a 1-D uint8 device array")
        c_args = self._arguments(arrays)
        c_args += [ctypes.c_void_p(stream or 0), _descriptor(workspace)]
        return self._call(c_args)
