//===- Backend.h - Transports of the expert-parallel runtime ----*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// What the exchange planner (ExpertParallel.cpp) needs from a transport: the
// rank, the rank count, and one all-to-all-v of bytes with a deadline. The
// planner owns every buffer and sizes; a backend only moves bytes.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_RUNTIME_EP_BACKEND_H
#define MOE_LIB_RUNTIME_EP_BACKEND_H

#include <cstdint>
#include <memory>
#include <string>

namespace moe {
namespace ep {

class Backend {
public:
  virtual ~Backend() = default;
  virtual const char *name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  /// Rank r sends sendBytes[q] bytes at send + sendOffsets[q] to every rank
  /// q, and receives recvBytes[s] bytes from every rank s into recv +
  /// recvOffsets[s] (the counts are known on both sides). Gives up after
  /// `timeoutS` seconds, naming the ranks that did not answer, in `error`.
  /// `what` names the step in messages.
  virtual bool exchange(const char *what, const char *send,
                        const int64_t *sendBytes, const int64_t *sendOffsets,
                        char *recv, const int64_t *recvBytes,
                        const int64_t *recvOffsets, double timeoutS,
                        std::string &error) = 0;

  /// Ends the transport; `failed` after an exchange that failed (MPI then
  /// aborts the job instead of waiting in MPI_Finalize for the others).
  virtual void finalize(bool failed) = 0;
};

/// The backends; each returns null and sets `error` when it cannot start.
std::unique_ptr<Backend> createSelfBackend();
std::unique_ptr<Backend> createMPIBackend(std::string &error);
std::unique_ptr<Backend> createNCCLBackend(std::string &error);

/// Seconds since an arbitrary start (steady clock).
double now();

} // namespace ep
} // namespace moe

#endif // MOE_LIB_RUNTIME_EP_BACKEND_H
