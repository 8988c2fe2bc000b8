//===- CudaRuntime.cpp - mgpu* runtime over the CUDA driver API -*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// libmoe_cuda_runtime.so: the host-side runtime that code produced by MLIR's
// `gpu-to-llvm` conversion and `#gpu.select_object` translation calls. The
// `mgpu*` functions follow the ABI MLIR 22 emits (see
// include/moe/Runtime/CudaRuntime.h for the list of signatures); the `moeCuda*`
// functions are this project's own helpers.
//
// Contract of every entry point:
//
//  * The CUDA driver is reached lazily. The first call loads libcuda (dlopen,
//    unless built with MOE_CUDA_RUNTIME_LINK_DRIVER), resolves the entry
//    points and runs cuInit once for the process. If any of that fails, every
//    later call fails fast with the same recorded reason.
//
//  * All work happens in the primary context of the default device (device 0,
//    or the one chosen with mgpuSetDefaultDevice). The context is retained
//    once, on first use of that device, and made current with cuCtxSetCurrent
//    at the start of every entry point, so callers may use any thread. It is
//    never released: the library lives as long as the process, and modules are
//    unloaded by static destructors of generated code at exit.
//
//  * Nothing aborts. A failing driver call records "<entry point>: <driver
//    call> failed: <CUresult name> (<description>)" as the process-wide last
//    error and prints it to stderr the first time that exact text occurs
//    (MOE_CUDA_RUNTIME_QUIET=1 silences stderr). Entry points returning a
//    handle return nullptr; the others return without doing the rest of their
//    work. Null handles passed in are reported the same way instead of being
//    handed to the driver, except that the destroy, free and unload functions
//    accept nullptr as "nothing to do".
//
//  * Objects whose lifetime could end before late callers (static destructors
//    of JIT-compiled or AOT-linked modules run at exit) are allocated once and
//    never destroyed.
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/CudaRuntime.h"

#include <cuda.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_set>

#ifndef MOE_CUDA_RUNTIME_LINK_DRIVER
#include <dlfcn.h>
#endif

#define MOE_EXPORT extern "C" __attribute__((visibility("default")))

#define MOE_STRINGIFY_IMPL(x) #x
#define MOE_STRINGIFY(x) MOE_STRINGIFY_IMPL(x)

namespace {

//===----------------------------------------------------------------------===//
// The driver entry points.
//===----------------------------------------------------------------------===//

// X(member, header name, alternative symbol or nullptr).
//
// The header name is what <cuda.h> spells the function; it may be a macro for
// a versioned symbol (cuMemAlloc -> cuMemAlloc_v2). The member's type and the
// looked-up symbol are those of the expansion, i.e. exactly what a program
// linked against libcuda with this header would call. The alternative is tried
// when a driver older than the header lacks the versioned symbol and an older
// symbol with the same signature exists.
#define MOE_CUDA_DRIVER_FUNCTIONS(X)                                           \
  X(init, cuInit, nullptr)                                                     \
  X(getErrorName, cuGetErrorName, nullptr)                                     \
  X(getErrorString, cuGetErrorString, nullptr)                                 \
  X(deviceGetCount, cuDeviceGetCount, nullptr)                                 \
  X(deviceGet, cuDeviceGet, nullptr)                                           \
  X(deviceGetName, cuDeviceGetName, nullptr)                                   \
  X(deviceGetAttribute, cuDeviceGetAttribute, nullptr)                         \
  X(primaryCtxRetain, cuDevicePrimaryCtxRetain, nullptr)                       \
  X(ctxSetCurrent, cuCtxSetCurrent, nullptr)                                   \
  X(ctxSynchronize, cuCtxSynchronize, nullptr)                                 \
  X(moduleLoadDataEx, cuModuleLoadDataEx, nullptr)                             \
  X(moduleUnload, cuModuleUnload, nullptr)                                     \
  X(moduleGetFunction, cuModuleGetFunction, nullptr)                           \
  X(funcSetAttribute, cuFuncSetAttribute, nullptr)                             \
  X(launchKernel, cuLaunchKernel, nullptr)                                     \
  X(launchKernelEx, cuLaunchKernelEx, nullptr)                                 \
  X(streamCreate, cuStreamCreate, nullptr)                                     \
  X(streamSynchronize, cuStreamSynchronize, nullptr)                           \
  X(streamDestroy, cuStreamDestroy, nullptr)                                   \
  X(streamWaitEvent, cuStreamWaitEvent, nullptr)                               \
  X(eventCreate, cuEventCreate, nullptr)                                       \
  X(eventDestroy, cuEventDestroy, nullptr)                                     \
  X(eventRecord, cuEventRecord, nullptr)                                       \
  X(eventSynchronize, cuEventSynchronize, nullptr)                             \
  X(eventElapsedTime, cuEventElapsedTime, "cuEventElapsedTime")                \
  X(memAlloc, cuMemAlloc, nullptr)                                             \
  X(memAllocManaged, cuMemAllocManaged, nullptr)                               \
  X(memFree, cuMemFree, nullptr)                                               \
  X(memcpyAsync, cuMemcpyAsync, nullptr)                                       \
  X(memcpyHtoD, cuMemcpyHtoD, nullptr)                                         \
  X(memsetD32Async, cuMemsetD32Async, nullptr)                                 \
  X(memsetD16Async, cuMemsetD16Async, nullptr)                                 \
  X(memHostRegister, cuMemHostRegister, nullptr)                               \
  X(memHostUnregister, cuMemHostUnregister, nullptr)                           \
  X(tensorMapEncodeTiled, cuTensorMapEncodeTiled, nullptr)                     \
  X(streamBeginCapture, cuStreamBeginCapture, nullptr)                         \
  X(streamEndCapture, cuStreamEndCapture, nullptr)                             \
  X(graphInstantiate, cuGraphInstantiate, nullptr)                             \
  X(graphLaunch, cuGraphLaunch, nullptr)                                       \
  X(graphExecDestroy, cuGraphExecDestroy, nullptr)                             \
  X(graphDestroy, cuGraphDestroy, nullptr)

// One pointer per entry point (nullptr while not loaded or when the driver
// lacks it), plus its names: `<member>Api` for messages, `<member>Symbol` for
// the lookup. Only trivially destructible members: this lives in static
// storage and must stay usable during exit.
struct Driver {
#define MOE_DECLARE_ENTRY(member, name, alternative)                           \
  decltype(&::name) member = nullptr;                                          \
  [[maybe_unused]] static constexpr const char *member##Api = #name;           \
  [[maybe_unused]] static constexpr const char *member##Symbol =               \
      MOE_STRINGIFY(name);
  MOE_CUDA_DRIVER_FUNCTIONS(MOE_DECLARE_ENTRY)
#undef MOE_DECLARE_ENTRY
  void *library = nullptr;
};

Driver driver;

//===----------------------------------------------------------------------===//
// Error recording.
//===----------------------------------------------------------------------===//

std::string formatString(const char *format, ...)
    __attribute__((format(printf, 1, 2)));

std::string formatString(const char *format, ...) {
  va_list args;
  va_start(args, format);
  va_list copy;
  va_copy(copy, args);
  int length = std::vsnprintf(nullptr, 0, format, copy);
  va_end(copy);
  std::string result;
  if (length > 0) {
    result.resize(static_cast<size_t>(length) + 1);
    std::vsnprintf(&result[0], result.size(), format, args);
    result.resize(static_cast<size_t>(length));
  }
  va_end(args);
  return result;
}

struct ErrorState {
  std::mutex mutex;
  bool hasError = false;
  std::string last;
  // Messages already printed to stderr, to print each one once. Bounded so
  // that a long-running process with ever-changing messages cannot grow it
  // without limit.
  std::unordered_set<std::string> printed;
  bool printingStopped = false;
};

constexpr size_t kMaxPrintedMessages = 256;

ErrorState &errorState() {
  static ErrorState *state = new ErrorState();
  return *state;
}

bool quiet() {
  static const bool value = [] {
    const char *env = std::getenv("MOE_CUDA_RUNTIME_QUIET");
    return env && *env && std::strcmp(env, "0") != 0;
  }();
  return value;
}

/// Makes `message` the last error; prints it to stderr unless `print` is
/// false, the same text was printed before, or stderr output is disabled.
void recordError(const std::string &message, bool print = true) {
  ErrorState &state = errorState();
  bool printNow = false, announceStop = false;
  {
    std::lock_guard<std::mutex> lock(state.mutex);
    state.last = message;
    state.hasError = true;
    if (print && !quiet() && !state.printingStopped) {
      if (state.printed.size() < kMaxPrintedMessages) {
        printNow = state.printed.insert(message).second;
      } else {
        state.printingStopped = announceStop = true;
      }
    }
  }
  if (printNow)
    std::fprintf(stderr, "moe-cuda-runtime: %s\n", message.c_str());
  if (announceStop)
    std::fprintf(stderr,
                 "moe-cuda-runtime: too many distinct errors; further ones are "
                 "only available through moeCudaLastError()\n");
}

/// Names for the results a driver may return when cuGetErrorName itself is
/// unusable (e.g. the toolkit's stub libcuda).
const char *fallbackResultName(CUresult result) {
  switch (result) {
  case CUDA_ERROR_INVALID_VALUE:
    return "CUDA_ERROR_INVALID_VALUE";
  case CUDA_ERROR_OUT_OF_MEMORY:
    return "CUDA_ERROR_OUT_OF_MEMORY";
  case CUDA_ERROR_NOT_INITIALIZED:
    return "CUDA_ERROR_NOT_INITIALIZED";
  case CUDA_ERROR_DEINITIALIZED:
    return "CUDA_ERROR_DEINITIALIZED";
  case CUDA_ERROR_STUB_LIBRARY:
    return "CUDA_ERROR_STUB_LIBRARY";
  case CUDA_ERROR_NO_DEVICE:
    return "CUDA_ERROR_NO_DEVICE";
  case CUDA_ERROR_INVALID_DEVICE:
    return "CUDA_ERROR_INVALID_DEVICE";
  case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH:
    return "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH";
  case CUDA_ERROR_NOT_FOUND:
    return "CUDA_ERROR_NOT_FOUND";
  default:
    return nullptr;
  }
}

/// "NAME (description)" of a driver result.
std::string describeResult(CUresult result) {
  const char *name = nullptr, *description = nullptr;
  if (driver.getErrorName && driver.getErrorName(result, &name) != CUDA_SUCCESS)
    name = nullptr;
  if (driver.getErrorString &&
      driver.getErrorString(result, &description) != CUDA_SUCCESS)
    description = nullptr;
  if (!name)
    name = fallbackResultName(result);
  std::string text =
      name ? std::string(name)
           : formatString("CUresult %d", static_cast<int>(result));
  if (description)
    text += formatString(" (%s)", description);
  return text;
}

void recordFailure(const char *where, const char *api, CUresult result,
                   const char *detail = nullptr, bool print = true) {
  std::string message = formatString("%s: %s failed: %s", where, api,
                                     describeResult(result).c_str());
  if (detail && *detail) {
    message += ": ";
    message += detail;
  }
  recordError(message, print);
}

/// Reports an entry point that the loaded driver lacks; returns true when
/// `function` is there.
template <typename Function>
bool provided(const char *where, const char *api, Function *function) {
  if (function)
    return true;
  recordError(formatString(
      "%s: the loaded CUDA driver does not provide %s (too old?)", where, api));
  return false;
}

/// Calls a driver entry point; records a failure (or the absence of the entry
/// point in the loaded driver) and returns false when it does not succeed.
template <typename... Params, typename... Args>
bool call(const char *where, const char *api, CUresult (*function)(Params...),
          Args... args) {
  if (!provided(where, api, function))
    return false;
  CUresult result = function(args...);
  if (result == CUDA_SUCCESS)
    return true;
  recordFailure(where, api, result);
  return false;
}

// CALL(where, member, args...): checked call of a driver entry point.
#define CALL(where, member, ...)                                               \
  call(where, Driver::member##Api, driver.member, __VA_ARGS__)

//===----------------------------------------------------------------------===//
// Driver loading and contexts.
//===----------------------------------------------------------------------===//

struct InitState {
  std::once_flag once;
  bool ready = false;
  std::string failure; // Why the driver is unusable, when !ready.
};

InitState &initState() {
  static InitState *state = new InitState();
  return *state;
}

#ifdef MOE_CUDA_RUNTIME_LINK_DRIVER

bool loadDriver(std::string &failure) {
#define MOE_BIND_ENTRY(member, name, alternative) driver.member = &::name;
  MOE_CUDA_DRIVER_FUNCTIONS(MOE_BIND_ENTRY)
#undef MOE_BIND_ENTRY
  (void)failure;
  return true;
}

#else

/// Resolves `symbol` (or `alternative`) in the loaded driver into `slot`.
template <typename Function>
void resolve(Function &slot, const char *symbol, const char *alternative) {
  void *address = dlsym(driver.library, symbol);
  if (!address && alternative)
    address = dlsym(driver.library, alternative);
  static_assert(sizeof(address) == sizeof(slot), "function pointer size");
  std::memcpy(&slot, &address, sizeof(slot));
}

bool loadDriver(std::string &failure) {
  const char *requested = std::getenv("MOE_CUDA_DRIVER_LIBRARY");
  if (requested && *requested) {
    driver.library = dlopen(requested, RTLD_NOW | RTLD_LOCAL);
    if (!driver.library) {
      const char *reason = dlerror();
      failure = formatString("cannot load the CUDA driver %s (from "
                             "MOE_CUDA_DRIVER_LIBRARY): %s",
                             requested, reason ? reason : "unknown error");
      return false;
    }
  } else {
    // libcuda.so.1 is what the NVIDIA driver installs; the unversioned name
    // only exists with development links (or the toolkit's stub).
    std::string reasons;
    for (const char *name : {"libcuda.so.1", "libcuda.so"}) {
      driver.library = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (driver.library)
        break;
      const char *reason = dlerror();
      if (!reasons.empty())
        reasons += "; ";
      reasons += reason ? reason : name;
    }
    if (!driver.library) {
      failure = "cannot load the CUDA driver: " + reasons;
      return false;
    }
  }
#define MOE_RESOLVE_ENTRY(member, name, alternative)                           \
  resolve(driver.member, Driver::member##Symbol, alternative);
  MOE_CUDA_DRIVER_FUNCTIONS(MOE_RESOLVE_ENTRY)
#undef MOE_RESOLVE_ENTRY
  if (!driver.init) {
    failure = "the loaded CUDA driver library has no cuInit";
    return false;
  }
  return true;
}

#endif // MOE_CUDA_RUNTIME_LINK_DRIVER

/// Loads and initializes the driver once per process; on failure records why
/// (attributed to `where`) and returns false, on every call.
bool driverReady(const char *where, bool print = true) {
  InitState &state = initState();
  std::call_once(state.once, [&state] {
    if (!loadDriver(state.failure))
      return;
    CUresult result = driver.init(0);
    if (result != CUDA_SUCCESS) {
      state.failure = "cuInit failed: " + describeResult(result);
      return;
    }
    state.ready = true;
  });
  if (!state.ready)
    recordError(formatString("%s: CUDA is unavailable: %s", where,
                             state.failure.c_str()),
                print);
  return state.ready;
}

constexpr int kMaxDevices = 64;

// Primary context of each device, retained on first use. Zero-initialized
// static storage, so usable at any point of the process' life.
std::atomic<CUcontext> primaryContexts[kMaxDevices];
std::atomic<int> defaultDevice{0};

std::mutex &contextMutex() {
  static std::mutex *mutex = new std::mutex();
  return *mutex;
}

/// Returns the primary context of the default device, retaining it first if
/// needed; nullptr after recording a failure.
CUcontext defaultContext(const char *where) {
  if (!driverReady(where))
    return nullptr;
  int device = defaultDevice.load(std::memory_order_relaxed);
  if (device < 0 || device >= kMaxDevices) {
    recordError(formatString("%s: invalid default device %d", where, device));
    return nullptr;
  }
  CUcontext context = primaryContexts[device].load(std::memory_order_acquire);
  if (context)
    return context;

  std::lock_guard<std::mutex> lock(contextMutex());
  context = primaryContexts[device].load(std::memory_order_relaxed);
  if (context)
    return context;
  int count = 0;
  if (!CALL(where, deviceGetCount, &count))
    return nullptr;
  if (device >= count) {
    recordError(formatString("%s: the default device %d does not exist (%d "
                             "CUDA device(s))",
                             where, device, count));
    return nullptr;
  }
  CUdevice handle = 0;
  if (!CALL(where, deviceGet, &handle, device) ||
      !CALL(where, primaryCtxRetain, &context, handle))
    return nullptr;
  primaryContexts[device].store(context, std::memory_order_release);
  return context;
}

/// Prepares the calling thread for driver calls: the driver is initialized
/// and the default device's primary context is current. Records a failure
/// and returns false otherwise.
bool enter(const char *where) {
  CUcontext context = defaultContext(where);
  return context && CALL(where, ctxSetCurrent, context);
}

/// The device handle of the default device (no context needed).
bool defaultDeviceHandle(const char *where, CUdevice &handle) {
  if (!driverReady(where))
    return false;
  return CALL(where, deviceGet, &handle,
              defaultDevice.load(std::memory_order_relaxed));
}

//===----------------------------------------------------------------------===//
// Helpers of the entry points.
//===----------------------------------------------------------------------===//

CUdeviceptr devicePointer(const void *pointer) {
  return static_cast<CUdeviceptr>(reinterpret_cast<uintptr_t>(pointer));
}

void *hostPointer(CUdeviceptr pointer) {
  return reinterpret_cast<void *>(static_cast<uintptr_t>(pointer));
}

/// Reports a null handle argument; returns true when `handle` is null.
bool isNull(const void *handle, const char *where, const char *what) {
  if (handle)
    return false;
  recordError(formatString("%s: %s is null", where, what));
  return true;
}

/// Converts a launch dimension; launch dimensions are positive and fit in an
/// unsigned int.
bool launchDim(const char *where, const char *what, intptr_t value,
               unsigned &out) {
  if (value <= 0 || static_cast<uintmax_t>(value) > UINT_MAX) {
    recordError(formatString("%s: invalid %s %lld", where, what,
                             static_cast<long long>(value)));
    return false;
  }
  out = static_cast<unsigned>(value);
  return true;
}

bool launchDims(const char *where, intptr_t gridX, intptr_t gridY,
                intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                intptr_t blockZ, unsigned grid[3], unsigned block[3]) {
  return launchDim(where, "grid x dimension", gridX, grid[0]) &&
         launchDim(where, "grid y dimension", gridY, grid[1]) &&
         launchDim(where, "grid z dimension", gridZ, grid[2]) &&
         launchDim(where, "block x dimension", blockX, block[0]) &&
         launchDim(where, "block y dimension", blockY, block[1]) &&
         launchDim(where, "block z dimension", blockZ, block[2]);
}

// Kernels may use up to 48 KiB of dynamic shared memory without opting in.
constexpr int32_t kDefaultDynamicSharedLimit = 48 * 1024;

/// Validates the dynamic shared memory size of a launch and, above the
/// default limit, opts the function in to that much.
bool prepareSharedMemory(const char *where, CUfunction function,
                         int32_t bytes) {
  if (bytes < 0) {
    recordError(formatString("%s: negative dynamic shared memory size %d",
                             where, static_cast<int>(bytes)));
    return false;
  }
  if (bytes <= kDefaultDynamicSharedLimit)
    return true;
  return CALL(where, funcSetAttribute, function,
              CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
              static_cast<int>(bytes));
}

bool isElf(const unsigned char *bytes, uint64_t size) {
  return size >= 4 && bytes[0] == 0x7f && bytes[1] == 'E' && bytes[2] == 'L' &&
         bytes[3] == 'F';
}

bool isFatbin(const unsigned char *bytes, uint64_t size) {
  if (size < 4)
    return false;
  uint32_t magic;
  std::memcpy(&magic, bytes, sizeof(magic));
  // Magic of a fatbin file, and of the wrapper nvcc embeds in host objects.
  return magic == 0xBA55ED50u || magic == 0x466243B1u;
}

/// Loads a cubin, fatbin or NUL-terminated PTX image into the current
/// context; a non-negative `optLevel` is passed to the PTX JIT.
void *loadModule(const char *where, const void *image, int optLevel) {
  char errorLog[8192];
  errorLog[0] = '\0';
  CUjit_option options[3];
  void *values[3];
  unsigned count = 0;
  options[count] = CU_JIT_ERROR_LOG_BUFFER;
  values[count++] = errorLog;
  options[count] = CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES;
  values[count++] = reinterpret_cast<void *>(sizeof(errorLog));
  if (optLevel >= 0) {
    options[count] = CU_JIT_OPTIMIZATION_LEVEL;
    values[count++] =
        reinterpret_cast<void *>(static_cast<uintptr_t>(std::min(optLevel, 4)));
  }
  if (!provided(where, Driver::moduleLoadDataExApi, driver.moduleLoadDataEx))
    return nullptr;
  CUmodule module = nullptr;
  CUresult result =
      driver.moduleLoadDataEx(&module, image, count, options, values);
  // A module with code only for another chip (the sm_90a kernels on an
  // sm_80 device) is not an error: the host code never launches its
  // kernels there (moeCudaHasWgmma), so it is left unloaded.
  if (result == CUDA_ERROR_NO_BINARY_FOR_GPU)
    return nullptr;
  if (result != CUDA_SUCCESS) {
    errorLog[sizeof(errorLog) - 1] = '\0';
    recordFailure(where, Driver::moduleLoadDataExApi, result, errorLog);
    return nullptr;
  }
  return module;
}

/// The byte range covered by a ranked memref descriptor (allocated pointer,
/// aligned pointer, offset, sizes[rank], strides[rank]) of elements of
/// `elementBytes` bytes. A memref without elements covers nothing.
bool memrefRange(const char *where, int64_t rank, const void *descriptor,
                 int64_t elementBytes, char *&begin, uint64_t &bytes) {
  if (isNull(descriptor, where, "the memref descriptor"))
    return false;
  if (rank < 0 || elementBytes <= 0) {
    recordError(formatString("%s: invalid memref rank %lld or element size "
                             "%lld",
                             where, static_cast<long long>(rank),
                             static_cast<long long>(elementBytes)));
    return false;
  }
  const char *raw = static_cast<const char *>(descriptor);
  char *aligned;
  int64_t offset;
  std::memcpy(&aligned, raw + sizeof(void *), sizeof(aligned));
  std::memcpy(&offset, raw + 2 * sizeof(void *), sizeof(offset));
  const char *shape = raw + 2 * sizeof(void *) + sizeof(int64_t);
  int64_t lowest = 0, highest = 0; // Element indices relative to the offset.
  for (int64_t i = 0; i < rank; ++i) {
    int64_t size, stride;
    std::memcpy(&size, shape + i * sizeof(int64_t), sizeof(size));
    std::memcpy(&stride, shape + (rank + i) * sizeof(int64_t), sizeof(stride));
    if (size <= 0) {
      begin = aligned;
      bytes = 0;
      return true;
    }
    if (stride >= 0)
      highest += (size - 1) * stride;
    else
      lowest += (size - 1) * stride;
  }
  begin = aligned + (offset + lowest) * elementBytes;
  bytes = static_cast<uint64_t>(highest - lowest + 1) *
          static_cast<uint64_t>(elementBytes);
  return true;
}

/// Registers host memory for device access; registering memory twice is not
/// an error.
void registerHostMemory(const char *where, void *pointer, uint64_t bytes) {
  if (bytes == 0)
    return;
  if (isNull(pointer, where, "the host pointer") || !enter(where))
    return;
  if (!provided(where, Driver::memHostRegisterApi, driver.memHostRegister))
    return;
  CUresult result =
      driver.memHostRegister(pointer, static_cast<size_t>(bytes), 0u);
  if (result != CUDA_SUCCESS &&
      result != CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED)
    recordFailure(where, Driver::memHostRegisterApi, result);
}

void unregisterHostMemory(const char *where, void *pointer) {
  if (isNull(pointer, where, "the host pointer") || !enter(where))
    return;
  CALL(where, memHostUnregister, pointer);
}

} // namespace

//===----------------------------------------------------------------------===//
// Modules and kernels.
//===----------------------------------------------------------------------===//

/// Loads a module from `image`, `imageBytes` long: a cubin, a fatbin, or PTX
/// text (JIT-compiled by the driver with default options). PTX need not be
/// NUL-terminated when `imageBytes` is given. Returns the CUmodule or nullptr.
MOE_EXPORT void *mgpuModuleLoad(void *image, uint64_t imageBytes) {
  const char *where = "mgpuModuleLoad";
  if (isNull(image, where, "the module image") || !enter(where))
    return nullptr;
  const auto *bytes = static_cast<const unsigned char *>(image);
  std::string text;
  if (imageBytes > 0 && !isElf(bytes, imageBytes) &&
      !isFatbin(bytes, imageBytes) && bytes[imageBytes - 1] != '\0') {
    // PTX without its terminator: the driver needs one.
    text.assign(reinterpret_cast<const char *>(bytes), imageBytes);
    return loadModule(where, text.c_str(), -1);
  }
  return loadModule(where, image, -1);
}

/// Loads a module from NUL-terminated PTX, JIT-compiled at `optLevel` (0-4).
MOE_EXPORT void *mgpuModuleLoadJIT(void *ptx, int32_t optLevel) {
  const char *where = "mgpuModuleLoadJIT";
  if (isNull(ptx, where, "the PTX image") || !enter(where))
    return nullptr;
  return loadModule(where, ptx, std::max(0, static_cast<int>(optLevel)));
}

/// Unloads a module; nullptr is ignored. Called from static destructors at
/// exit, where a driver that is already shut down is not an error.
MOE_EXPORT void mgpuModuleUnload(void *module) {
  const char *where = "mgpuModuleUnload";
  if (!module || !driverReady(where))
    return;
  CUcontext context = defaultContext(where);
  if (!context || !driver.ctxSetCurrent || !driver.moduleUnload)
    return;
  CUresult result = driver.ctxSetCurrent(context);
  if (result == CUDA_SUCCESS)
    result = driver.moduleUnload(static_cast<CUmodule>(module));
  if (result != CUDA_SUCCESS && result != CUDA_ERROR_DEINITIALIZED)
    recordFailure(where, Driver::moduleUnloadApi, result);
}

/// Returns the kernel `name` of `module`, or nullptr.
MOE_EXPORT void *mgpuModuleGetFunction(void *module, const char *name) {
  const char *where = "mgpuModuleGetFunction";
  if (isNull(module, where, "the module") ||
      isNull(name, where, "the kernel name") || !enter(where))
    return nullptr;
  if (!provided(where, Driver::moduleGetFunctionApi, driver.moduleGetFunction))
    return nullptr;
  CUfunction function = nullptr;
  CUresult result =
      driver.moduleGetFunction(&function, static_cast<CUmodule>(module), name);
  if (result != CUDA_SUCCESS) {
    recordFailure(where, Driver::moduleGetFunctionApi, result,
                  formatString("kernel '%s'", name).c_str());
    return nullptr;
  }
  return function;
}

/// Launches `function` on `stream`. `params` points to one pointer per kernel
/// argument (to the argument's value); `paramsCount` is their number, which
/// the driver does not need. Dynamic shared memory above 48 KiB is opted in
/// per launch.
MOE_EXPORT void mgpuLaunchKernel(void *function, intptr_t gridX, intptr_t gridY,
                                 intptr_t gridZ, intptr_t blockX,
                                 intptr_t blockY, intptr_t blockZ,
                                 int32_t dynamicSharedBytes, void *stream,
                                 void **params, void **extra,
                                 uint64_t paramsCount) {
  (void)paramsCount;
  const char *where = "mgpuLaunchKernel";
  unsigned grid[3], block[3];
  if (isNull(function, where,
             "the kernel function (did mgpuModuleGetFunction fail?)") ||
      !launchDims(where, gridX, gridY, gridZ, blockX, blockY, blockZ, grid,
                  block) ||
      !enter(where))
    return;
  auto kernel = static_cast<CUfunction>(function);
  if (!prepareSharedMemory(where, kernel, dynamicSharedBytes))
    return;
  CALL(where, launchKernel, kernel, grid[0], grid[1], grid[2], block[0],
       block[1], block[2], static_cast<unsigned>(dynamicSharedBytes),
       static_cast<CUstream>(stream), params, extra);
}

/// Launches `function` with thread block clusters of the given shape (sm_90
/// and later); the grid must be a multiple of the cluster shape.
MOE_EXPORT void
mgpuLaunchClusterKernel(void *function, intptr_t clusterX, intptr_t clusterY,
                        intptr_t clusterZ, intptr_t gridX, intptr_t gridY,
                        intptr_t gridZ, intptr_t blockX, intptr_t blockY,
                        intptr_t blockZ, int32_t dynamicSharedBytes,
                        void *stream, void **params, void **extra) {
  const char *where = "mgpuLaunchClusterKernel";
  unsigned grid[3], block[3], cluster[3];
  if (isNull(function, where,
             "the kernel function (did mgpuModuleGetFunction fail?)") ||
      !launchDims(where, gridX, gridY, gridZ, blockX, blockY, blockZ, grid,
                  block) ||
      !launchDim(where, "cluster x dimension", clusterX, cluster[0]) ||
      !launchDim(where, "cluster y dimension", clusterY, cluster[1]) ||
      !launchDim(where, "cluster z dimension", clusterZ, cluster[2]) ||
      !enter(where))
    return;
  auto kernel = static_cast<CUfunction>(function);
  if (!prepareSharedMemory(where, kernel, dynamicSharedBytes))
    return;
  // More than 8 blocks per cluster is a non-portable size the kernel must
  // opt in to.
  uint64_t blocksPerCluster =
      uint64_t(cluster[0]) * uint64_t(cluster[1]) * uint64_t(cluster[2]);
  if (blocksPerCluster > 8 &&
      !CALL(where, funcSetAttribute, kernel,
            CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 1))
    return;

  CUlaunchAttribute attribute;
  std::memset(&attribute, 0, sizeof(attribute));
  attribute.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
  attribute.value.clusterDim.x = cluster[0];
  attribute.value.clusterDim.y = cluster[1];
  attribute.value.clusterDim.z = cluster[2];
  CUlaunchConfig config;
  std::memset(&config, 0, sizeof(config));
  config.gridDimX = grid[0];
  config.gridDimY = grid[1];
  config.gridDimZ = grid[2];
  config.blockDimX = block[0];
  config.blockDimY = block[1];
  config.blockDimZ = block[2];
  config.sharedMemBytes = static_cast<unsigned>(dynamicSharedBytes);
  config.hStream = static_cast<CUstream>(stream);
  config.attrs = &attribute;
  config.numAttrs = 1;
  CALL(where, launchKernelEx, &config, kernel, params, extra);
}

//===----------------------------------------------------------------------===//
// Streams and events.
//===----------------------------------------------------------------------===//

/// Creates a stream that does not synchronize with the legacy default
/// stream; nullptr on failure.
MOE_EXPORT void *mgpuStreamCreate(void) {
  const char *where = "mgpuStreamCreate";
  CUstream stream = nullptr;
  if (!enter(where) ||
      !CALL(where, streamCreate, &stream, unsigned(CU_STREAM_NON_BLOCKING)))
    return nullptr;
  return stream;
}

/// Waits for all work on `stream` (nullptr: the legacy default stream).
MOE_EXPORT void mgpuStreamSynchronize(void *stream) {
  const char *where = "mgpuStreamSynchronize";
  if (enter(where))
    CALL(where, streamSynchronize, static_cast<CUstream>(stream));
}

/// Destroys `stream`; nullptr is ignored.
MOE_EXPORT void mgpuStreamDestroy(void *stream) {
  const char *where = "mgpuStreamDestroy";
  if (stream && enter(where))
    CALL(where, streamDestroy, static_cast<CUstream>(stream));
}

/// Makes later work on `stream` wait for `event`.
MOE_EXPORT void mgpuStreamWaitEvent(void *stream, void *event) {
  const char *where = "mgpuStreamWaitEvent";
  if (!isNull(event, where, "the event") && enter(where))
    CALL(where, streamWaitEvent, static_cast<CUstream>(stream),
         static_cast<CUevent>(event), 0u);
}

/// Creates an event for ordering only (timing disabled); nullptr on failure.
MOE_EXPORT void *mgpuEventCreate(void) {
  const char *where = "mgpuEventCreate";
  CUevent event = nullptr;
  if (!enter(where) ||
      !CALL(where, eventCreate, &event, unsigned(CU_EVENT_DISABLE_TIMING)))
    return nullptr;
  return event;
}

/// Destroys `event`; nullptr is ignored.
MOE_EXPORT void mgpuEventDestroy(void *event) {
  const char *where = "mgpuEventDestroy";
  if (event && enter(where))
    CALL(where, eventDestroy, static_cast<CUevent>(event));
}

/// Waits until `event` has completed.
MOE_EXPORT void mgpuEventSynchronize(void *event) {
  const char *where = "mgpuEventSynchronize";
  if (!isNull(event, where, "the event") && enter(where))
    CALL(where, eventSynchronize, static_cast<CUevent>(event));
}

/// Records `event` on `stream` (nullptr: the legacy default stream).
MOE_EXPORT void mgpuEventRecord(void *event, void *stream) {
  const char *where = "mgpuEventRecord";
  if (!isNull(event, where, "the event") && enter(where))
    CALL(where, eventRecord, static_cast<CUevent>(event),
         static_cast<CUstream>(stream));
}

//===----------------------------------------------------------------------===//
// Memory.
//===----------------------------------------------------------------------===//

/// Allocates `sizeBytes` of device memory, or of managed memory accessible
/// from host and device when `isHostShared` is set. The allocation is
/// synchronous and usable from every stream; `stream` is not needed. A size
/// of 0 returns nullptr without error (mgpuMemFree accepts it). Returns
/// nullptr on failure.
///
/// MLIR passes `isHostShared` as an i8 without zero extension, so only the low
/// byte of the register is read.
MOE_EXPORT void *mgpuMemAlloc(uint64_t sizeBytes, void *stream,
                              uint32_t isHostShared) {
  (void)stream;
  const char *where = "mgpuMemAlloc";
  if (sizeBytes == 0 || !enter(where))
    return nullptr;
  CUdeviceptr pointer = 0;
  bool allocated =
      (isHostShared & 0xffu)
          ? CALL(where, memAllocManaged, &pointer,
                 static_cast<size_t>(sizeBytes), unsigned(CU_MEM_ATTACH_GLOBAL))
          : CALL(where, memAlloc, &pointer, static_cast<size_t>(sizeBytes));
  return allocated ? hostPointer(pointer) : nullptr;
}

/// Frees memory from mgpuMemAlloc; nullptr is ignored. Work queued on
/// `stream` (if not null) is waited for first, so that an asynchronous
/// deallocation cannot overtake the kernels still using the memory.
MOE_EXPORT void mgpuMemFree(void *pointer, void *stream) {
  const char *where = "mgpuMemFree";
  if (!pointer || !enter(where))
    return;
  if (stream)
    CALL(where, streamSynchronize, static_cast<CUstream>(stream));
  CALL(where, memFree, devicePointer(pointer));
}

/// Copies `sizeBytes` between any two of host, device and managed memory,
/// ordered on `stream`.
MOE_EXPORT void mgpuMemcpy(void *destination, void *source, uint64_t sizeBytes,
                           void *stream) {
  const char *where = "mgpuMemcpy";
  if (sizeBytes == 0 || isNull(destination, where, "the destination") ||
      isNull(source, where, "the source") || !enter(where))
    return;
  CALL(where, memcpyAsync, devicePointer(destination), devicePointer(source),
       static_cast<size_t>(sizeBytes), static_cast<CUstream>(stream));
}

/// Sets `count` 32-bit elements at `destination` to `value`, on `stream`.
MOE_EXPORT void mgpuMemset32(void *destination, uint32_t value, uint64_t count,
                             void *stream) {
  const char *where = "mgpuMemset32";
  if (count == 0 || isNull(destination, where, "the destination") ||
      !enter(where))
    return;
  CALL(where, memsetD32Async, devicePointer(destination),
       static_cast<unsigned>(value), static_cast<size_t>(count),
       static_cast<CUstream>(stream));
}

/// Sets `count` 16-bit elements at `destination` to `value`, on `stream`.
/// `value` arrives as an i16 without extension: only its low half is read.
MOE_EXPORT void mgpuMemset16(void *destination, uint32_t value, uint64_t count,
                             void *stream) {
  const char *where = "mgpuMemset16";
  if (count == 0 || isNull(destination, where, "the destination") ||
      !enter(where))
    return;
  CALL(where, memsetD16Async, devicePointer(destination),
       static_cast<unsigned short>(value & 0xffffu), static_cast<size_t>(count),
       static_cast<CUstream>(stream));
}

/// Page-locks `sizeBytes` of host memory at `pointer` and maps it for the
/// device (gpu.host_register on a pointer).
MOE_EXPORT void mgpuMemHostRegister(void *pointer, uint64_t sizeBytes) {
  registerHostMemory("mgpuMemHostRegister", pointer, sizeBytes);
}

MOE_EXPORT void mgpuMemHostUnregister(void *pointer) {
  unregisterHostMemory("mgpuMemHostUnregister", pointer);
}

/// gpu.host_register of a memref: `descriptor` is the ranked descriptor of
/// an unranked memref of rank `rank`. Registers the bytes its elements span.
MOE_EXPORT void mgpuMemHostRegisterMemRef(int64_t rank, void *descriptor,
                                          int64_t elementSizeBytes) {
  const char *where = "mgpuMemHostRegisterMemRef";
  char *begin = nullptr;
  uint64_t bytes = 0;
  if (memrefRange(where, rank, descriptor, elementSizeBytes, begin, bytes))
    registerHostMemory(where, begin, bytes);
}

/// gpu.host_unregister of a memref registered with mgpuMemHostRegisterMemRef.
MOE_EXPORT void mgpuMemHostUnregisterMemRef(int64_t rank, void *descriptor,
                                            int64_t elementSizeBytes) {
  const char *where = "mgpuMemHostUnregisterMemRef";
  char *begin = nullptr;
  uint64_t bytes = 0;
  if (memrefRange(where, rank, descriptor, elementSizeBytes, begin, bytes) &&
      bytes > 0)
    unregisterHostMemory(where, begin);
}

//===----------------------------------------------------------------------===//
// Devices.
//===----------------------------------------------------------------------===//

/// Selects the device whose primary context later calls use. Checked when
/// next used, not here.
MOE_EXPORT void mgpuSetDefaultDevice(int32_t device) {
  if (device < 0 || device >= kMaxDevices) {
    recordError(formatString("mgpuSetDefaultDevice: invalid device %d",
                             static_cast<int>(device)));
    return;
  }
  defaultDevice.store(device, std::memory_order_relaxed);
}

//===----------------------------------------------------------------------===//
// Tensor memory accelerator (sm_90+).
//===----------------------------------------------------------------------===//

/// nvgpu.tma.create.descriptor: encodes a tiled tensor map for the memref
/// described by `descriptor` (ranked, rank 1-5, innermost dimension
/// contiguous) and copies it to device memory, where kernels read it.
/// `dataType`, `interleave`, `swizzle`, `l2Promotion` and `oobFill` are the
/// CUtensorMap* enumerators; `boxDims` holds `rank` box sizes, outermost
/// first. Returns the device address of the 128-byte descriptor (which may be
/// released with mgpuMemFree) or nullptr.
MOE_EXPORT void *mgpuTensorMapEncodeTiledMemref(
    int64_t rank, void *descriptor, int64_t dataType, int64_t interleave,
    int64_t swizzle, int64_t l2Promotion, int64_t oobFill, int64_t *boxDims) {
  const char *where = "mgpuTensorMapEncodeTiledMemref";
  // Bytes per element of CU_TENSOR_MAP_DATA_TYPE_UINT8 ... _TFLOAT32_FTZ; the
  // packed sub-byte types after them have no per-element byte size.
  static const int64_t elementBytes[] = {1, 2, 4, 4, 8, 8, 2, 4, 8, 2, 4, 4, 4};
  constexpr int64_t kTypes = sizeof(elementBytes) / sizeof(elementBytes[0]);
  if (rank < 1 || rank > 5) {
    recordError(formatString("%s: unsupported rank %lld (1 to 5)", where,
                             static_cast<long long>(rank)));
    return nullptr;
  }
  if (dataType < 0 || dataType >= kTypes) {
    recordError(formatString("%s: unsupported tensor map data type %lld", where,
                             static_cast<long long>(dataType)));
    return nullptr;
  }
  if (isNull(descriptor, where, "the memref descriptor") ||
      isNull(boxDims, where, "the box sizes"))
    return nullptr;

  const int64_t elementSize = elementBytes[dataType];
  const char *raw = static_cast<const char *>(descriptor);
  char *aligned;
  int64_t offset, sizes[5], strides[5];
  std::memcpy(&aligned, raw + sizeof(void *), sizeof(aligned));
  std::memcpy(&offset, raw + 2 * sizeof(void *), sizeof(offset));
  const char *shape = raw + 2 * sizeof(void *) + sizeof(int64_t);
  std::memcpy(sizes, shape, rank * sizeof(int64_t));
  std::memcpy(strides, shape + rank * sizeof(int64_t), rank * sizeof(int64_t));
  if (strides[rank - 1] != 1) {
    recordError(formatString("%s: the innermost dimension must be contiguous "
                             "(stride %lld)",
                             where, static_cast<long long>(strides[rank - 1])));
    return nullptr;
  }

  // The driver orders dimensions innermost first; the stride of the
  // innermost dimension is implied.
  cuuint64_t globalDim[5], globalStrides[5];
  cuuint32_t boxDim[5], elementStrides[5];
  for (int64_t i = 0; i < rank; ++i) {
    int64_t dim = rank - 1 - i;
    if (sizes[dim] <= 0 || boxDims[dim] <= 0 || boxDims[dim] > UINT32_MAX) {
      recordError(formatString("%s: invalid size %lld or box size %lld of "
                               "dimension %lld",
                               where, static_cast<long long>(sizes[dim]),
                               static_cast<long long>(boxDims[dim]),
                               static_cast<long long>(dim)));
      return nullptr;
    }
    globalDim[i] = static_cast<cuuint64_t>(sizes[dim]);
    boxDim[i] = static_cast<cuuint32_t>(boxDims[dim]);
    elementStrides[i] = 1;
    if (i + 1 < rank)
      globalStrides[i] =
          static_cast<cuuint64_t>(strides[dim - 1] * elementSize);
  }

  if (!enter(where))
    return nullptr;
  CUtensorMap tensorMap;
  std::memset(&tensorMap, 0, sizeof(tensorMap));
  if (!CALL(where, tensorMapEncodeTiled, &tensorMap,
            static_cast<CUtensorMapDataType>(dataType),
            static_cast<cuuint32_t>(rank),
            static_cast<void *>(aligned + offset * elementSize), globalDim,
            globalStrides, boxDim, elementStrides,
            static_cast<CUtensorMapInterleave>(interleave),
            static_cast<CUtensorMapSwizzle>(swizzle),
            static_cast<CUtensorMapL2promotion>(l2Promotion),
            static_cast<CUtensorMapFloatOOBfill>(oobFill)))
    return nullptr;
  CUdeviceptr deviceMap = 0;
  if (!CALL(where, memAlloc, &deviceMap, sizeof(tensorMap)))
    return nullptr;
  if (!CALL(where, memcpyHtoD, deviceMap, static_cast<const void *>(&tensorMap),
            sizeof(tensorMap))) {
    CALL(where, memFree, deviceMap);
    return nullptr;
  }
  return hostPointer(deviceMap);
}

//===----------------------------------------------------------------------===//
// moe-mlir helpers.
//===----------------------------------------------------------------------===//

const char *moeCudaLastError(void) {
  thread_local std::string copy;
  ErrorState &state = errorState();
  std::lock_guard<std::mutex> lock(state.mutex);
  if (!state.hasError)
    return nullptr;
  copy = state.last;
  return copy.c_str();
}

void moeCudaClearError(void) {
  ErrorState &state = errorState();
  std::lock_guard<std::mutex> lock(state.mutex);
  state.hasError = false;
  state.last.clear();
}

int moeCudaDeviceCount(void) {
  const char *where = "moeCudaDeviceCount";
  if (!driverReady(where, /*print=*/false))
    return 0;
  int count = 0;
  CUresult result = driver.deviceGetCount ? driver.deviceGetCount(&count)
                                          : CUDA_ERROR_NOT_FOUND;
  if (result != CUDA_SUCCESS) {
    recordFailure(where, Driver::deviceGetCountApi, result, nullptr,
                  /*print=*/false);
    return 0;
  }
  return count;
}

int moeCudaDeviceName(char *buffer, int length) {
  const char *where = "moeCudaDeviceName";
  if (!buffer || length <= 0) {
    recordError(formatString("%s: no room for the name", where));
    return -1;
  }
  buffer[0] = '\0';
  CUdevice device = 0;
  if (!defaultDeviceHandle(where, device) ||
      !CALL(where, deviceGetName, buffer, length, device)) {
    buffer[0] = '\0';
    return -1;
  }
  buffer[length - 1] = '\0';
  return 0;
}

int moeCudaComputeCapability(int *major, int *minor) {
  const char *where = "moeCudaComputeCapability";
  int values[2] = {0, 0};
  CUdevice device = 0;
  bool ok = defaultDeviceHandle(where, device) &&
            CALL(where, deviceGetAttribute, &values[0],
                 CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device) &&
            CALL(where, deviceGetAttribute, &values[1],
                 CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device);
  if (!ok)
    values[0] = values[1] = 0;
  if (major)
    *major = values[0];
  if (minor)
    *minor = values[1];
  return ok ? 0 : -1;
}

namespace {
/// moeCudaUseWgmma's setting: 1 (the sm_90a kernels where the device runs
/// them), 0 (the sm_80 kernels everywhere); the environment's
/// MOE_CUDA_WGMMA=0 starts it at 0.
std::atomic<int> useWgmma{[] {
  const char *value = std::getenv("MOE_CUDA_WGMMA");
  return value && std::string(value) == "0" ? 0 : 1;
}()};
} // namespace

int32_t moeCudaHasWgmma(void) {
  // sm_90a code runs on compute capability 9.0 only (the "a" features are
  // not carried forward to later chips).
  static const int32_t answer = [] {
    int major = 0, minor = 0;
    return moeCudaComputeCapability(&major, &minor) == 0 && major == 9 &&
                   minor == 0
               ? 1
               : 0;
  }();
  return answer && useWgmma.load(std::memory_order_relaxed) ? 1 : 0;
}

void moeCudaUseWgmma(int32_t enable) {
  useWgmma.store(enable ? 1 : 0, std::memory_order_relaxed);
}

int moeCudaDeviceSynchronize(void) {
  const char *where = "moeCudaDeviceSynchronize";
  return enter(where) &&
                 call(where, Driver::ctxSynchronizeApi, driver.ctxSynchronize)
             ? 0
             : -1;
}

void *moeCudaEventCreate(void) {
  const char *where = "moeCudaEventCreate";
  CUevent event = nullptr;
  if (!enter(where) ||
      !CALL(where, eventCreate, &event, unsigned(CU_EVENT_DEFAULT)))
    return nullptr;
  return event;
}

void moeCudaEventRecord(void *event, void *stream) {
  const char *where = "moeCudaEventRecord";
  if (!isNull(event, where, "the event") && enter(where))
    CALL(where, eventRecord, static_cast<CUevent>(event),
         static_cast<CUstream>(stream));
}

void moeCudaEventDestroy(void *event) {
  const char *where = "moeCudaEventDestroy";
  if (event && enter(where))
    CALL(where, eventDestroy, static_cast<CUevent>(event));
}

float moeCudaEventElapsedMs(void *start, void *stop) {
  const char *where = "moeCudaEventElapsedMs";
  float milliseconds = 0.0f;
  if (isNull(start, where, "the start event") ||
      isNull(stop, where, "the stop event") || !enter(where) ||
      !CALL(where, eventSynchronize, static_cast<CUevent>(stop)) ||
      !CALL(where, eventElapsedTime, &milliseconds, static_cast<CUevent>(start),
            static_cast<CUevent>(stop)))
    return -1.0f;
  return milliseconds;
}

//===----------------------------------------------------------------------===//
// CUDA graphs: capture of a stream, replay.
//===----------------------------------------------------------------------===//

int moeCudaStreamBeginCapture(void *stream) {
  const char *where = "moeCudaStreamBeginCapture";
  // Global mode: any call of this thread or another one that may not be
  // captured (an allocation, a synchronisation) fails the capture.
  return !isNull(stream, where, "the stream") && enter(where) &&
                 CALL(where, streamBeginCapture, static_cast<CUstream>(stream),
                      CU_STREAM_CAPTURE_MODE_GLOBAL)
             ? 0
             : -1;
}

void *moeCudaStreamEndCapture(void *stream) {
  const char *where = "moeCudaStreamEndCapture";
  CUgraph graph = nullptr;
  CUgraphExec exec = nullptr;
  if (isNull(stream, where, "the stream") || !enter(where) ||
      !CALL(where, streamEndCapture, static_cast<CUstream>(stream), &graph))
    return nullptr;
  bool ok = CALL(where, graphInstantiate, &exec, graph, 0ull);
  CALL(where, graphDestroy, graph);
  return ok ? exec : nullptr;
}

int moeCudaGraphLaunch(void *graph, void *stream) {
  const char *where = "moeCudaGraphLaunch";
  return !isNull(graph, where, "the graph") && enter(where) &&
                 CALL(where, graphLaunch, static_cast<CUgraphExec>(graph),
                      static_cast<CUstream>(stream))
             ? 0
             : -1;
}

void moeCudaGraphDestroy(void *graph) {
  const char *where = "moeCudaGraphDestroy";
  if (graph && enter(where))
    CALL(where, graphExecDestroy, static_cast<CUgraphExec>(graph));
}
