/*===- moe/Runtime/CudaRuntime.h - CUDA runtime library -----------*- C -*-===*\
|*                                                                            *|
|* Part of the moe-mlir project.                                              *|
|*                                                                            *|
\*===----------------------------------------------------------------------===*/
/*
 * C interface of libmoe_cuda_runtime.so, the library that compiled moe-mlir
 * programs call into when they run on an NVIDIA GPU.
 *
 * The library has two faces:
 *
 *  1. The `mgpu*` entry points that MLIR 22's `gpu-to-llvm` conversion and the
 *     `#gpu.select_object` offloading handler (gpu.binary / gpu.launch_func
 *     translation to LLVM IR) emit calls to. They have no prototypes here on
 *     purpose: generated code declares them itself. Their C signatures, as
 *     verified against the IR that MLIR 22 emits (`mlir-opt --gpu-to-llvm`,
 *     `mlir-translate --mlir-to-llvmir`, `--convert-nvgpu-to-nvvm`), are:
 *
 *       void *mgpuModuleLoad(void *image, uint64_t imageBytes);
 *       void *mgpuModuleLoadJIT(void *nulTerminatedPtx, int32_t optLevel);
 *       void  mgpuModuleUnload(void *module);
 *       void *mgpuModuleGetFunction(void *module, const char *kernelName);
 *       void  mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
 *                              intptr_t gridZ, intptr_t blockX,
 *                              intptr_t blockY, intptr_t blockZ,
 *                              int32_t dynamicSharedBytes, void *stream,
 *                              void **kernelParams, void **extra,
 *                              uint64_t paramsCount);
 *       void  mgpuLaunchClusterKernel(void *function, intptr_t clusterX,
 *                                     intptr_t clusterY, intptr_t clusterZ,
 *                                     intptr_t gridX, intptr_t gridY,
 *                                     intptr_t gridZ, intptr_t blockX,
 *                                     intptr_t blockY, intptr_t blockZ,
 *                                     int32_t dynamicSharedBytes,
 *                                     void *stream, void **kernelParams,
 *                                     void **extra);
 *       void *mgpuStreamCreate(void);
 *       void  mgpuStreamSynchronize(void *stream);
 *       void  mgpuStreamDestroy(void *stream);
 *       void  mgpuStreamWaitEvent(void *stream, void *event);
 *       void *mgpuEventCreate(void);
 *       void  mgpuEventDestroy(void *event);
 *       void  mgpuEventSynchronize(void *event);
 *       void  mgpuEventRecord(void *event, void *stream);
 *       void *mgpuMemAlloc(uint64_t sizeBytes, void *stream,
 *                          bool isHostShared);        (bool passed as i8)
 *       void  mgpuMemFree(void *ptr, void *stream);
 *       void  mgpuMemcpy(void *dst, void *src, uint64_t sizeBytes,
 *                        void *stream);
 *       void  mgpuMemset32(void *dst, uint32_t value, uint64_t count,
 *                          void *stream);               (count: elements)
 *       void  mgpuMemset16(void *dst, uint16_t value, uint64_t count,
 *                          void *stream);               (count: elements)
 *       void  mgpuMemHostRegisterMemRef(int64_t rank, void *rankedDescriptor,
 *                                       int64_t elementSizeBytes);
 *       void  mgpuMemHostUnregisterMemRef(int64_t rank,
 *                                         void *rankedDescriptor,
 *                                         int64_t elementSizeBytes);
 *       void  mgpuSetDefaultDevice(int32_t device);
 *       void *mgpuTensorMapEncodeTiledMemref(int64_t rank,
 *                                            void *rankedDescriptor,
 *                                            int64_t dataType,
 *                                            int64_t interleave,
 *                                            int64_t swizzle,
 *                                            int64_t l2Promotion,
 *                                            int64_t oobFill,
 *                                            int64_t *boxDims);
 *
 *     plus two helpers that MLIR's own wrappers also provide and that are
 *     handy from hand-written code:
 *
 *       void  mgpuMemHostRegister(void *ptr, uint64_t sizeBytes);
 *       void  mgpuMemHostUnregister(void *ptr);
 *
 *     The cuSPARSE / cuSPARSELt entry points (mgpuCreateCsr, mgpuSpMM, ...)
 *     that `gpu-to-llvm` emits for the sparse gpu ops are NOT provided.
 *
 *  2. The `moeCuda*` helpers declared below, for tests, benchmarks and the
 *     Python bindings: device discovery ("is there a GPU at all?"), error
 *     inspection and event timing.
 *
 * Error contract: no function of this library aborts the process. A failing
 * CUDA driver call records a message (the entry point, the driver function,
 * and the CUresult name and description) as the process-wide last error and
 * prints it to stderr the first time that exact message occurs (set
 * MOE_CUDA_RUNTIME_QUIET=1 to silence stderr). Functions returning a handle
 * return NULL on failure; the caller checks moeCudaLastError().
 *
 * The CUDA driver (libcuda.so.1) is loaded with dlopen on first use unless the
 * library was built with MOE_CUDA_RUNTIME_LINK_DRIVER; MOE_CUDA_DRIVER_LIBRARY
 * names a different driver library to load. Without a driver or a device every
 * entry point fails cleanly and moeCudaDeviceCount() returns 0.
 */

#ifndef MOE_RUNTIME_CUDARUNTIME_H
#define MOE_RUNTIME_CUDARUNTIME_H

#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define MOE_CUDA_RUNTIME_API __attribute__((visibility("default")))
#else
#define MOE_CUDA_RUNTIME_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The message of the most recent failure in any thread, or NULL when there
 * was none since the start or the last moeCudaClearError(). The returned
 * string is a copy owned by the calling thread; it stays valid until that
 * thread calls moeCudaLastError() again. */
MOE_CUDA_RUNTIME_API const char *moeCudaLastError(void);

/* Forgets the last error. */
MOE_CUDA_RUNTIME_API void moeCudaClearError(void);

/* Number of CUDA devices; 0 when the driver cannot be loaded, cuInit fails
 * (no device, the toolkit's stub libcuda, ...) or no device is present. Never
 * prints: this is how tests find out whether a GPU is there. */
MOE_CUDA_RUNTIME_API int moeCudaDeviceCount(void);

/* Writes the NUL-terminated name of the default device (see
 * mgpuSetDefaultDevice, device 0 unless changed) into buf[0..len). Returns 0
 * on success, -1 on failure (buf then holds "" when len > 0). */
MOE_CUDA_RUNTIME_API int moeCudaDeviceName(char *buf, int len);

/* Stores the compute capability of the default device (e.g. 9 and 0 for an
 * H100). Returns 0 on success, -1 on failure (outputs then set to 0). */
MOE_CUDA_RUNTIME_API int moeCudaComputeCapability(int *major, int *minor);

/* 1 when the default device runs sm_90a code (compute capability 9.0:
 * H100, H200), else 0 (also without a device). Read once and cached: the
 * generated host code calls it to choose between the sm_90a (wgmma) and the
 * sm_80 (mma.sync) kernels, also inside a CUDA graph capture. */
MOE_CUDA_RUNTIME_API int32_t moeCudaHasWgmma(void);

/* With 0, moeCudaHasWgmma answers 0 from then on (the sm_80 kernels run on
 * an H100 too: to compare the two, or to rule one out); 1 restores the
 * default. The environment's MOE_CUDA_WGMMA=0 sets 0 at load time. Calls
 * already captured in a CUDA graph keep the kernels they captured. */
MOE_CUDA_RUNTIME_API void moeCudaUseWgmma(int32_t enable);

/* Waits for all work on the default device's primary context. Returns 0 on
 * success, -1 on failure. */
MOE_CUDA_RUNTIME_API int moeCudaDeviceSynchronize(void);

/* Timing events. Unlike mgpuEventCreate() (which creates events without
 * timing, for stream ordering only), these events record timestamps.
 * moeCudaEventCreate returns NULL on failure. */
MOE_CUDA_RUNTIME_API void *moeCudaEventCreate(void);

/* Records `event` on `stream` (NULL: the legacy default stream). */
MOE_CUDA_RUNTIME_API void moeCudaEventRecord(void *event, void *stream);

/* Destroys an event from moeCudaEventCreate(); NULL is ignored. */
MOE_CUDA_RUNTIME_API void moeCudaEventDestroy(void *event);

/* Waits for `stop` to complete, then returns the milliseconds between the
 * two recorded events, or a negative value on failure. */
MOE_CUDA_RUNTIME_API float moeCudaEventElapsedMs(void *start, void *stop);

/* CUDA graphs, for the capturable functions of
 * `moe-gpu-pipeline{capturable}`. moeCudaStreamBeginCapture starts capturing
 * `stream` (a stream from mgpuStreamCreate(), not the legacy default stream)
 * in the global mode: a call that may not be captured (an allocation, a
 * synchronisation) fails the capture. moeCudaStreamEndCapture ends it and
 * returns the instantiated graph (a CUgraphExec), or NULL on failure;
 * moeCudaGraphLaunch replays it on `stream`; moeCudaGraphDestroy frees it
 * (NULL is ignored). The int functions return 0 on success, -1 on failure. */
MOE_CUDA_RUNTIME_API int moeCudaStreamBeginCapture(void *stream);
MOE_CUDA_RUNTIME_API void *moeCudaStreamEndCapture(void *stream);
MOE_CUDA_RUNTIME_API int moeCudaGraphLaunch(void *graph, void *stream);
MOE_CUDA_RUNTIME_API void moeCudaGraphDestroy(void *graph);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOE_RUNTIME_CUDARUNTIME_H */
