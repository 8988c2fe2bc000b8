//===- SelfBackend.cpp - One process, no transport --------------*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// Rank 0 of 1: every exchange is a copy to itself. Lets an expert-parallel
// module run (and be tested) without a communication library.
//
//===----------------------------------------------------------------------===//

#include "Backend.h"

#include <cstring>

namespace {
class SelfBackend final : public moe::ep::Backend {
public:
  const char *name() const override { return "self"; }
  int rank() const override { return 0; }
  int size() const override { return 1; }
  bool exchange(const char *, const char *send, const int64_t *sendBytes,
                const int64_t *sendOffsets, char *recv,
                const int64_t *recvBytes, const int64_t *recvOffsets, double,
                std::string &error) override {
    if (sendBytes[0] != recvBytes[0]) {
      error = "sends " + std::to_string(sendBytes[0]) +
              " bytes to itself but expects " + std::to_string(recvBytes[0]);
      return false;
    }
    if (sendBytes[0])
      std::memcpy(recv + recvOffsets[0], send + sendOffsets[0], sendBytes[0]);
    return true;
  }
  void finalize(bool) override {}
};
} // namespace

std::unique_ptr<moe::ep::Backend> moe::ep::createSelfBackend() {
  return std::make_unique<SelfBackend>();
}
