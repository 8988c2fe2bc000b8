//===- MPIBackend.cpp - Exchanges over MPI ----------------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// One process per rank (MPI_COMM_WORLD). An exchange posts one nonblocking
// receive and one send per peer and polls them with MPI_Testall until they
// complete or the deadline passes: a blocking MPI_Alltoallv could not time
// out on a rank that hangs. Messages larger than INT_MAX bytes travel in
// chunks (MPI counts are int). Built only when CMake finds MPI; without it
// createMPIBackend says so.
//
//===----------------------------------------------------------------------===//

#include "Backend.h"

#ifdef MOE_EP_HAVE_MPI
// The C API only (OpenMPI's and MPICH's mpi.h otherwise pull in the
// deprecated C++ bindings, which need libmpi_cxx).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <thread>
#include <vector>

using namespace moe::ep;

#ifdef MOE_EP_HAVE_MPI
namespace {
std::string mpiError(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, length);
}

class MPIBackend final : public Backend {
public:
  MPIBackend(bool ownsMPI) : ownsMPI(ownsMPI) {
    MPI_Comm_dup(MPI_COMM_WORLD, &comm);
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm, &rankValue);
    MPI_Comm_size(comm, &sizeValue);
  }
  const char *name() const override { return "mpi"; }
  int rank() const override { return rankValue; }
  int size() const override { return sizeValue; }

  bool exchange(const char *what, const char *send, const int64_t *sendBytes,
                const int64_t *sendOffsets, char *recv,
                const int64_t *recvBytes, const int64_t *recvOffsets,
                double timeoutS, std::string &error) override {
    constexpr int64_t kChunk = INT_MAX / 2;
    const int tag = 7000 + static_cast<int>(sequence++ % 1000);
    std::vector<MPI_Request> requests;
    std::vector<int> peerOfRecv;
    // One nonblocking receive (or send) per peer and chunk of at most
    // kChunk bytes (MPI counts are int).
    auto post = [&](bool isSend, int peer, char *buffer, int64_t bytes) {
      int64_t done = 0;
      do {
        int64_t n = std::min(kChunk, bytes - done);
        requests.emplace_back();
        int code =
            isSend ? MPI_Isend(buffer + done, static_cast<int>(n), MPI_BYTE,
                               peer, tag, comm, &requests.back())
                   : MPI_Irecv(buffer + done, static_cast<int>(n), MPI_BYTE,
                               peer, tag, comm, &requests.back());
        if (code != MPI_SUCCESS) {
          error = std::string(what) + (isSend ? ": MPI_Isend" : ": MPI_Irecv") +
                  " failed: " + mpiError(code);
          return false;
        }
        if (!isSend)
          peerOfRecv.push_back(peer);
        done += n;
      } while (done < bytes);
      return true;
    };
    for (int s = 0; s < sizeValue; ++s)
      if (s != rankValue &&
          !post(/*isSend=*/false, s, recv + recvOffsets[s], recvBytes[s]))
        return false;
    size_t receives = requests.size();
    for (int q = 0; q < sizeValue; ++q)
      if (q != rankValue &&
          !post(/*isSend=*/true, q, const_cast<char *>(send + sendOffsets[q]),
                sendBytes[q]))
        return false;
    if (sendBytes[rankValue] != recvBytes[rankValue]) {
      error = std::string(what) + ": sends " +
              std::to_string(sendBytes[rankValue]) +
              " bytes to itself but expects " +
              std::to_string(recvBytes[rankValue]);
      return false;
    }
    if (sendBytes[rankValue])
      std::memcpy(recv + recvOffsets[rankValue], send + sendOffsets[rankValue],
                  sendBytes[rankValue]);
    const double deadline = now() + timeoutS;
    int64_t spins = 0;
    for (;;) {
      int flag = 0;
      int code =
          MPI_Testall(static_cast<int>(requests.size()), requests.data(),
                      &flag, MPI_STATUSES_IGNORE);
      if (code != MPI_SUCCESS) {
        error = std::string(what) + ": MPI_Testall failed: " + mpiError(code);
        return false;
      }
      if (flag)
        return true;
      if (now() > deadline) {
        std::string waiting;
        for (size_t i = 0; i < receives; ++i) {
          int done = 0;
          MPI_Request_get_status(requests[i], &done, MPI_STATUS_IGNORE);
          std::string peer = std::to_string(peerOfRecv[i]);
          if (!done && waiting.find(" " + peer + ",") == std::string::npos)
            waiting += " " + peer + ",";
        }
        if (!waiting.empty())
          waiting.pop_back();
        error = std::string(what) + " timed out after " +
                std::to_string(static_cast<int>(timeoutS)) +
                " s (MOE_EP_TIMEOUT_S) waiting for rank(s)" +
                (waiting.empty() ? std::string(" (its sends)") : waiting) +
                ": a rank died, hangs, or runs a different program";
        return false;
      }
      // Each MPI_Testall also progresses the transfer (shared-memory
      // transports move large messages in fragments, one per progress
      // call), so poll without sleeping; yield the core (ranks may share
      // cores under --oversubscribe), and only sleep after a second of
      // waiting, when a peer is late rather than the data in flight.
      ++spins;
      if (now() > deadline - timeoutS + 1.0)
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      else
        std::this_thread::yield();
    }
  }

  void finalize(bool failed) override {
    if (failed) {
      // Ranks blocked on this one would wait in MPI_Finalize for ever.
      MPI_Abort(MPI_COMM_WORLD, 1);
      return;
    }
    MPI_Comm_free(&comm);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (ownsMPI && !finalized)
      MPI_Finalize();
  }

private:
  MPI_Comm comm = MPI_COMM_NULL;
  int rankValue = 0, sizeValue = 1;
  bool ownsMPI;
  uint64_t sequence = 0;
};
} // namespace

std::unique_ptr<Backend> moe::ep::createMPIBackend(std::string &error) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  bool owns = false;
  if (!initialized) {
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) !=
        MPI_SUCCESS) {
      error = "MPI_Init_thread failed";
      return nullptr;
    }
    owns = true;
  }
  return std::make_unique<MPIBackend>(owns);
}

/// The NCCL backend bootstraps through MPI: rank 0's ncclUniqueId is
/// broadcast to every rank.
bool moeEPBroadcastBytes(void *data, int bytes, int &rank, int &size,
                         std::string &error) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) !=
        MPI_SUCCESS) {
      error = "MPI_Init_thread failed";
      return false;
    }
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (MPI_Bcast(data, bytes, MPI_BYTE, 0, MPI_COMM_WORLD) != MPI_SUCCESS) {
    error = "MPI_Bcast of the NCCL id failed";
    return false;
  }
  return true;
}
#else
std::unique_ptr<Backend> moe::ep::createMPIBackend(std::string &error) {
  error = "this build has no MPI (install libopenmpi-dev or libmpich-dev and "
          "reconfigure)";
  return nullptr;
}

bool moeEPBroadcastBytes(void *, int, int &rank, int &size,
                         std::string &error) {
  rank = 0;
  size = 1;
  return true;
}
#endif
