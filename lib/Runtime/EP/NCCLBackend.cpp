//===- NCCLBackend.cpp - Exchanges over NCCL --------------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Grouped ncclSend/ncclRecv (ncclAllToAll is equal-count only) on device
// staging buffers: the planner's host buffers are copied to the device, sent,
// and copied back. libnccl.so.2 and libcuda.so.1 are loaded with dlopen, so
// the library builds against the CUDA toolkit's headers and loads on
// machines without either (the backend then reports that it cannot start).
// MPI bootstraps the NCCL unique id when the run has several ranks; one
// process is rank 0 of 1 and exchanges with itself (NCCL refuses two ranks
// on one GPU). Timeouts poll the stream and abort the communicator.
//
// Status: built and linked here (no GPU); multi-rank NCCL is untested.
//
//===----------------------------------------------------------------------===//

#include "Backend.h"

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#ifdef MOE_EP_HAVE_NCCL_HEADERS
#include <cuda.h>
#include <dlfcn.h>
#include <nccl.h>
#endif

bool moeEPBroadcastBytes(void *data, int bytes, int &rank, int &size,
                         std::string &error);

using namespace moe::ep;

#ifdef MOE_EP_HAVE_NCCL_HEADERS
namespace {
struct Symbols {
  void *nccl = nullptr, *cuda = nullptr;
  CUresult (*cuInit)(unsigned);
  CUresult (*cuDeviceGet)(CUdevice *, int);
  CUresult (*cuDeviceGetCount)(int *);
  CUresult (*cuDevicePrimaryCtxRetain)(CUcontext *, CUdevice);
  CUresult (*cuCtxSetCurrent)(CUcontext);
  CUresult (*cuMemAlloc)(CUdeviceptr *, size_t);
  CUresult (*cuMemFree)(CUdeviceptr);
  CUresult (*cuMemcpyHtoD)(CUdeviceptr, const void *, size_t);
  CUresult (*cuMemcpyDtoH)(void *, CUdeviceptr, size_t);
  CUresult (*cuStreamCreate)(CUstream *, unsigned);
  CUresult (*cuStreamQuery)(CUstream);
  ncclResult_t (*ncclGetUniqueId)(ncclUniqueId *);
  ncclResult_t (*ncclCommInitRank)(ncclComm_t *, int, ncclUniqueId, int);
  ncclResult_t (*ncclCommAbort)(ncclComm_t);
  ncclResult_t (*ncclCommDestroy)(ncclComm_t);
  ncclResult_t (*ncclGroupStart)();
  ncclResult_t (*ncclGroupEnd)();
  ncclResult_t (*ncclSend)(const void *, size_t, ncclDataType_t, int,
                           ncclComm_t, cudaStream_t);
  ncclResult_t (*ncclRecv)(void *, size_t, ncclDataType_t, int, ncclComm_t,
                           cudaStream_t);
  const char *(*ncclGetErrorString)(ncclResult_t);
};

template <typename F>
bool bind(void *library, const char *name, F &function, std::string &error) {
  function = reinterpret_cast<F>(dlsym(library, name));
  if (!function)
    error = std::string("missing symbol ") + name;
  return function != nullptr;
}

bool load(Symbols &s, std::string &error) {
  s.cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!s.cuda) {
    error = "cannot load libcuda.so.1 (no NVIDIA driver)";
    return false;
  }
  const char *ncclPath = std::getenv("MOE_EP_NCCL_LIBRARY");
  s.nccl = dlopen(ncclPath && *ncclPath ? ncclPath : "libnccl.so.2",
                  RTLD_NOW | RTLD_LOCAL);
  if (!s.nccl) {
    error = "cannot load libnccl.so.2 (set MOE_EP_NCCL_LIBRARY to its path)";
    return false;
  }
  return bind(s.cuda, "cuInit", s.cuInit, error) &&
         bind(s.cuda, "cuDeviceGet", s.cuDeviceGet, error) &&
         bind(s.cuda, "cuDeviceGetCount", s.cuDeviceGetCount, error) &&
         bind(s.cuda, "cuDevicePrimaryCtxRetain", s.cuDevicePrimaryCtxRetain,
              error) &&
         bind(s.cuda, "cuCtxSetCurrent", s.cuCtxSetCurrent, error) &&
         bind(s.cuda, "cuMemAlloc_v2", s.cuMemAlloc, error) &&
         bind(s.cuda, "cuMemFree_v2", s.cuMemFree, error) &&
         bind(s.cuda, "cuMemcpyHtoD_v2", s.cuMemcpyHtoD, error) &&
         bind(s.cuda, "cuMemcpyDtoH_v2", s.cuMemcpyDtoH, error) &&
         bind(s.cuda, "cuStreamCreate", s.cuStreamCreate, error) &&
         bind(s.cuda, "cuStreamQuery", s.cuStreamQuery, error) &&
         bind(s.nccl, "ncclGetUniqueId", s.ncclGetUniqueId, error) &&
         bind(s.nccl, "ncclCommInitRank", s.ncclCommInitRank, error) &&
         bind(s.nccl, "ncclCommAbort", s.ncclCommAbort, error) &&
         bind(s.nccl, "ncclCommDestroy", s.ncclCommDestroy, error) &&
         bind(s.nccl, "ncclGroupStart", s.ncclGroupStart, error) &&
         bind(s.nccl, "ncclGroupEnd", s.ncclGroupEnd, error) &&
         bind(s.nccl, "ncclSend", s.ncclSend, error) &&
         bind(s.nccl, "ncclRecv", s.ncclRecv, error) &&
         bind(s.nccl, "ncclGetErrorString", s.ncclGetErrorString, error);
}

class NCCLBackend final : public Backend {
public:
  const char *name() const override { return "nccl"; }
  int rank() const override { return rankValue; }
  int size() const override { return sizeValue; }

  bool start(std::string &error) {
    if (!load(s, error))
      return false;
    ncclUniqueId id;
    std::memset(&id, 0, sizeof(id));
    // Rank 0 makes the id; MPI carries it to the others (a one-process run
    // needs no MPI).
    bool launched = std::getenv("OMPI_COMM_WORLD_SIZE") ||
                    std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
    int mpiRank = 0;
    if (launched) {
      const char *r = std::getenv("OMPI_COMM_WORLD_RANK");
      if (!r)
        r = std::getenv("PMI_RANK");
      mpiRank = r ? std::atoi(r) : 0;
    }
    if (mpiRank == 0 && s.ncclGetUniqueId(&id) != ncclSuccess) {
      error = "ncclGetUniqueId failed";
      return false;
    }
    if (launched &&
        !moeEPBroadcastBytes(&id, sizeof(id), rankValue, sizeValue, error))
      return false;
    int devices = 0;
    if (s.cuInit(0) != CUDA_SUCCESS ||
        s.cuDeviceGetCount(&devices) != CUDA_SUCCESS || devices == 0) {
      error = "no CUDA device";
      return false;
    }
    CUdevice device;
    CUcontext context;
    if (s.cuDeviceGet(&device, rankValue % devices) != CUDA_SUCCESS ||
        s.cuDevicePrimaryCtxRetain(&context, device) != CUDA_SUCCESS ||
        s.cuCtxSetCurrent(context) != CUDA_SUCCESS ||
        s.cuStreamCreate(&stream, 0) != CUDA_SUCCESS) {
      error = "cannot set up CUDA device " + std::to_string(rankValue % devices);
      return false;
    }
    ncclResult_t result = s.ncclCommInitRank(&comm, sizeValue, id, rankValue);
    if (result != ncclSuccess) {
      error = std::string("ncclCommInitRank failed: ") +
              s.ncclGetErrorString(result);
      return false;
    }
    return true;
  }

  bool reserve(CUdeviceptr &buffer, size_t &capacity, size_t bytes) {
    if (bytes <= capacity)
      return true;
    if (buffer)
      s.cuMemFree(buffer);
    buffer = 0;
    capacity = 0;
    if (s.cuMemAlloc(&buffer, bytes ? bytes : 1) != CUDA_SUCCESS)
      return false;
    capacity = bytes;
    return true;
  }

  bool exchange(const char *what, const char *send, const int64_t *sendBytes,
                const int64_t *sendOffsets, char *recv,
                const int64_t *recvBytes, const int64_t *recvOffsets,
                double timeoutS, std::string &error) override {
    size_t sendTotal = sendOffsets[sizeValue - 1] + sendBytes[sizeValue - 1];
    size_t recvTotal = recvOffsets[sizeValue - 1] + recvBytes[sizeValue - 1];
    if (!reserve(sendBuffer, sendCapacity, sendTotal) ||
        !reserve(recvBuffer, recvCapacity, recvTotal)) {
      error = std::string(what) + ": cannot allocate device staging buffers";
      return false;
    }
    if (sendTotal && s.cuMemcpyHtoD(sendBuffer, send, sendTotal) != CUDA_SUCCESS) {
      error = std::string(what) + ": host-to-device copy failed";
      return false;
    }
    s.ncclGroupStart();
    for (int peer = 0; peer < sizeValue; ++peer) {
      if (sendBytes[peer])
        s.ncclSend(reinterpret_cast<const void *>(sendBuffer + sendOffsets[peer]),
                   sendBytes[peer], ncclUint8, peer, comm,
                   reinterpret_cast<cudaStream_t>(stream));
      if (recvBytes[peer])
        s.ncclRecv(reinterpret_cast<void *>(recvBuffer + recvOffsets[peer]),
                   recvBytes[peer], ncclUint8, peer, comm,
                   reinterpret_cast<cudaStream_t>(stream));
    }
    ncclResult_t result = s.ncclGroupEnd();
    if (result != ncclSuccess && result != ncclInProgress) {
      error = std::string(what) + ": NCCL failed: " +
              s.ncclGetErrorString(result);
      return false;
    }
    const double deadline = now() + timeoutS;
    for (;;) {
      CUresult status = s.cuStreamQuery(stream);
      if (status == CUDA_SUCCESS)
        break;
      if (status != CUDA_ERROR_NOT_READY) {
        error = std::string(what) + ": the exchange's stream failed";
        return false;
      }
      if (now() > deadline) {
        s.ncclCommAbort(comm);
        comm = nullptr;
        error = std::string(what) + " timed out after " +
                std::to_string(static_cast<int>(timeoutS)) +
                " s (MOE_EP_TIMEOUT_S): a rank died, hangs, or runs a "
                "different program";
        return false;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
    if (recvTotal && s.cuMemcpyDtoH(recv, recvBuffer, recvTotal) != CUDA_SUCCESS) {
      error = std::string(what) + ": device-to-host copy failed";
      return false;
    }
    return true;
  }

  void finalize(bool failed) override {
    if (comm)
      (failed ? s.ncclCommAbort : s.ncclCommDestroy)(comm);
    comm = nullptr;
  }

private:
  Symbols s;
  ncclComm_t comm = nullptr;
  CUstream stream = nullptr;
  CUdeviceptr sendBuffer = 0, recvBuffer = 0;
  size_t sendCapacity = 0, recvCapacity = 0;
  int rankValue = 0, sizeValue = 1;
};
} // namespace

std::unique_ptr<Backend> moe::ep::createNCCLBackend(std::string &error) {
  auto backend = std::make_unique<NCCLBackend>();
  if (!backend->start(error))
    return nullptr;
  return backend;
}
#else
std::unique_ptr<Backend> moe::ep::createNCCLBackend(std::string &error) {
  error = "this build has no NCCL headers (the CUDA toolkit's nccl.h)";
  return nullptr;
}
#endif
