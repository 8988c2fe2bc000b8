//===- ExpertParallel.cpp - Expert-parallel exchange planner ----*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// The exchange behind moe.ep_dispatch / moe.ep_combine, over any Backend.
//
// Dispatch, on rank r with tokens x[T, H] and ids[T, K]:
//   1. each compute slot (t, j) (0 <= id < E) has an owner rank q (the block
//      of the placement that holds id); token t sends one record to each
//      distinct q: its K expert ids local to q (-1 for the slots q does not
//      hold) and its row. Other slots send nothing.
//   2. the record counts are exchanged (8 bytes per peer), then the records
//      (one all-to-all-v).
//   3. the receiver expands the records into rows ordered by local expert,
//      source rank, token, slot: the order of a single-process moe.dispatch
//      over all ranks' tokens (rank 0's first), restricted to its experts.
// Combine: each received slot row goes back to its source, in (record,
// slot) order, which the source maps to its (token, slot) numbering; counts
// are known on both sides, so one all-to-all-v suffices.
//
// Plans live in a table indexed by a positive int64 handle (the generated
// code holds it as a !moe.ep_plan).
//
//===----------------------------------------------------------------------===//

#include "moe/Runtime/ExpertParallel.h"

#include "Backend.h"

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace moe::ep;

double moe::ep::now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {

/// One process's runtime state.
struct Runtime {
  std::mutex mutex;
  std::unique_ptr<Backend> backend;
  bool failed = false;
  std::string lastError;
  int64_t counters[MOE_EP_NUM_COUNTERS] = {};
  double timeoutS = 60.0;
  int hangRank = -1, exitRank = -1;
  int64_t nextPlan = 1;
  struct Plan;
  std::map<int64_t, std::unique_ptr<Plan>> plans;
  // Staging buffers, reused from call to call (grown, never zeroed): the
  // records of the dispatch (send; receive lives in the plan until
  // dispatch_finish) and the rows of the combine.
  struct Scratch {
    std::unique_ptr<char[]> data;
    size_t capacity = 0;
    char *get(size_t bytes) {
      if (bytes > capacity) {
        data.reset(new char[bytes]);
        capacity = bytes;
      }
      return data.get();
    }
  } dispatchSend, dispatchRecv, combineSend, combineRecv;
};

struct Runtime::Plan {
  int64_t hidden = 0, elemBytes = 0, k = 0;
  int64_t rowBytes = 0, recordBytes = 0;
  int64_t localExperts = 0;
  // Per received slot row (expert-major): where its values are (a received
  // record in the dispatch's receive staging, or, for this rank's own
  // tokens, the row of `x` itself: no copy through the exchange), and where
  // its output goes (a position in the return buffer, or, for this rank's
  // own tokens, -1 - the slot index in the combine result).
  std::vector<const char *> rowSource;
  std::vector<int64_t> rowReturn;
  std::vector<int32_t> offsets;
  // Return path: slot rows sent back to each source (receiver side), and,
  // on the source side, the slot index of each row coming back from each
  // destination, in order.
  std::vector<int64_t> returnBytesOut, returnOffsetsOut;
  std::vector<int64_t> returnBytesIn, returnOffsetsIn;
  std::vector<std::vector<int64_t>> returnSlots;
  int64_t returnRows = 0, selfReturns = 0;
};

Runtime &runtime() {
  static Runtime *instance = new Runtime();
  return *instance;
}

int32_t fail(Runtime &rt, int32_t code, const char *format, ...) {
  char buffer[1024];
  va_list args;
  va_start(args, format);
  vsnprintf(buffer, sizeof(buffer), format, args);
  va_end(args);
  rt.lastError = buffer;
  if (code == MOE_EP_ERR_TIMEOUT || code == MOE_EP_ERR_TRANSPORT ||
      code == MOE_EP_ERR_PEER)
    rt.failed = true;
  return code;
}

int envInt(const char *name, int fallback) {
  const char *value = std::getenv(name);
  if (!value || !*value)
    return fallback;
  char *end = nullptr;
  long parsed = std::strtol(value, &end, 10);
  return (end && *end == '\0') ? static_cast<int>(parsed) : fallback;
}

bool launchedByMPI() {
  for (const char *name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMI_RANK",
                           "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(name))
      return true;
  return false;
}

int32_t initLocked(Runtime &rt, const char *requested) {
  if (rt.backend)
    return MOE_EP_OK;
  std::string name = requested && *requested ? requested : "";
  if (name.empty()) {
    const char *env = std::getenv("MOE_EP_BACKEND");
    name = env && *env ? env : "auto";
  }
  if (name == "auto")
    name = launchedByMPI() ? "mpi" : "self";
  const char *timeout = std::getenv("MOE_EP_TIMEOUT_S");
  if (timeout && *timeout) {
    char *end = nullptr;
    double parsed = std::strtod(timeout, &end);
    if (!end || *end != '\0' || !(parsed > 0))
      return fail(rt, MOE_EP_ERR_INIT,
                  "MOE_EP_TIMEOUT_S must be a positive number of seconds, "
                  "got '%s'",
                  timeout);
    rt.timeoutS = parsed;
  }
  rt.hangRank = envInt("MOE_EP_TEST_HANG_RANK", -1);
  rt.exitRank = envInt("MOE_EP_TEST_EXIT_RANK", -1);
  std::string error;
  if (name == "self")
    rt.backend = createSelfBackend();
  else if (name == "mpi")
    rt.backend = createMPIBackend(error);
  else if (name == "nccl")
    rt.backend = createNCCLBackend(error);
  else
    return fail(rt, MOE_EP_ERR_INIT,
                "unknown expert-parallel backend '%s' (expected auto, self, "
                "mpi or nccl)",
                name.c_str());
  if (!rt.backend)
    return fail(rt, MOE_EP_ERR_INIT, "the '%s' backend did not start: %s",
                name.c_str(), error.c_str());
  return MOE_EP_OK;
}

/// The first expert of each rank (size + 1 bounds) for a placement.
int32_t resolvePlacement(Runtime &rt, int64_t numExperts,
                         const int64_t *blocks, int64_t nblocks,
                         std::vector<int64_t> &bounds) {
  int size = rt.backend->size();
  bounds.assign(size + 1, 0);
  if (numExperts < 1)
    return fail(rt, MOE_EP_ERR_ARGUMENT,
                "rank %d: the layer has %lld compute experts (at least 1 "
                "expected)",
                rt.backend->rank(), static_cast<long long>(numExperts));
  if (nblocks == 0) {
    for (int r = 0; r <= size; ++r)
      bounds[r] = numExperts * r / size;
    return MOE_EP_OK;
  }
  if (nblocks != size + 1)
    return fail(rt, MOE_EP_ERR_ARGUMENT,
                "rank %d: the placement has blocks for %lld ranks, but the "
                "run has %d ranks",
                rt.backend->rank(), static_cast<long long>(nblocks - 1), size);
  for (int r = 0; r <= size; ++r) {
    bounds[r] = blocks[r];
    if ((r == 0 && bounds[r] != 0) || (r > 0 && bounds[r] < bounds[r - 1]) ||
        (r == size && bounds[r] != numExperts))
      return fail(rt, MOE_EP_ERR_ARGUMENT,
                  "rank %d: invalid placement bound %d (%lld) for %lld "
                  "experts",
                  rt.backend->rank(), r, static_cast<long long>(bounds[r]),
                  static_cast<long long>(numExperts));
  }
  return MOE_EP_OK;
}

/// Runs one exchange, accounting its time.
int32_t exchange(Runtime &rt, const char *what, const char *send,
                 const std::vector<int64_t> &sendBytes,
                 const std::vector<int64_t> &sendOffsets, char *recv,
                 const std::vector<int64_t> &recvBytes,
                 const std::vector<int64_t> &recvOffsets) {
  std::string error;
  double start = now();
  bool ok = rt.backend->exchange(what, send, sendBytes.data(),
                                 sendOffsets.data(), recv, recvBytes.data(),
                                 recvOffsets.data(), rt.timeoutS, error);
  rt.counters[MOE_EP_EXCHANGE_NS] +=
      static_cast<int64_t>((now() - start) * 1e9);
  if (!ok)
    return fail(rt, error.find("timed out") != std::string::npos
                        ? MOE_EP_ERR_TIMEOUT
                        : MOE_EP_ERR_TRANSPORT,
                "rank %d: %s", rt.backend->rank(), error.c_str());
  return MOE_EP_OK;
}

std::vector<int64_t> prefix(const std::vector<int64_t> &sizes) {
  std::vector<int64_t> offsets(sizes.size(), 0);
  for (size_t i = 1; i < sizes.size(); ++i)
    offsets[i] = offsets[i - 1] + sizes[i - 1];
  return offsets;
}

void testHooks(Runtime &rt) {
  int rank = rt.backend->rank();
  if (rank == rt.exitRank) {
    std::fprintf(stderr,
                 "moe-ep: rank %d exits (MOE_EP_TEST_EXIT_RANK test hook)\n",
                 rank);
    std::fflush(stderr);
    _exit(3);
  }
  if (rank == rt.hangRank) {
    std::fprintf(stderr,
                 "moe-ep: rank %d hangs (MOE_EP_TEST_HANG_RANK test hook)\n",
                 rank);
    std::fflush(stderr);
    for (;;)
      std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

int32_t dispatchBegin(Runtime &rt, const char *x, int64_t tokens,
                      int64_t hidden, int64_t elemBytes, const int32_t *ids,
                      int64_t k, int64_t numExperts, const int64_t *blocks,
                      int64_t nblocks, int32_t *slotRows, int64_t *info) {
  info[0] = info[1] = info[2] = info[3] = 0;
  for (int64_t i = 0; i < tokens * k; ++i)
    slotRows[i] = -1;
  if (int32_t code = initLocked(rt, nullptr))
    return code;
  if (tokens < 0 || hidden < 0 || k < 0 ||
      (elemBytes != 2 && elemBytes != 4))
    return fail(rt, MOE_EP_ERR_ARGUMENT,
                "rank %d: invalid dispatch sizes T=%lld H=%lld K=%lld "
                "element=%lld bytes",
                rt.backend->rank(), static_cast<long long>(tokens),
                static_cast<long long>(hidden), static_cast<long long>(k),
                static_cast<long long>(elemBytes));
  std::vector<int64_t> bounds;
  if (int32_t code = resolvePlacement(rt, numExperts, blocks, nblocks, bounds))
    return code;
  testHooks(rt);
  double start = now();
  const int size = rt.backend->size(), rank = rt.backend->rank();
  auto plan = std::make_unique<Runtime::Plan>();
  plan->hidden = hidden;
  plan->elemBytes = elemBytes;
  plan->k = k;
  plan->rowBytes = hidden * elemBytes;
  plan->recordBytes = 4 * k + plan->rowBytes;
  plan->localExperts = bounds[rank + 1] - bounds[rank];
  auto owner = [&](int64_t expert) {
    return static_cast<int>(std::upper_bound(bounds.begin(), bounds.end(),
                                             expert) -
                            bounds.begin()) -
           1;
  };

  // 1. Records per destination, in token order; slot numbering.
  std::vector<std::vector<int64_t>> sendTokens(size);
  plan->returnSlots.assign(size, {});
  std::vector<int> destinationsOfToken;
  int64_t slot = 0;
  for (int64_t t = 0; t < tokens; ++t) {
    destinationsOfToken.clear();
    for (int64_t j = 0; j < k; ++j) {
      int64_t id = ids[t * k + j];
      if (id < 0 || id >= numExperts)
        continue;
      int q = owner(id);
      if (std::find(destinationsOfToken.begin(), destinationsOfToken.end(),
                    q) == destinationsOfToken.end()) {
        destinationsOfToken.push_back(q);
        sendTokens[q].push_back(t);
      }
      slotRows[t * k + j] = static_cast<int32_t>(slot);
      plan->returnSlots[q].push_back(slot);
      ++slot;
    }
  }
  plan->returnRows = slot;
  rt.counters[MOE_EP_COMPUTE_SLOTS] += slot;

  // 2. Counts, then records.
  std::vector<int64_t> sendCounts(size), recvCounts(size, 0);
  for (int q = 0; q < size; ++q)
    sendCounts[q] = static_cast<int64_t>(sendTokens[q].size());
  std::vector<int64_t> eight(size, 8), eightOffsets(size);
  for (int q = 0; q < size; ++q)
    eightOffsets[q] = 8 * q;
  double planned = now();
  rt.counters[MOE_EP_PLAN_NS] += static_cast<int64_t>((planned - start) * 1e9);
  if (int32_t code = exchange(
          rt, "the counts exchange of moe.ep_dispatch",
          reinterpret_cast<const char *>(sendCounts.data()), eight,
          eightOffsets, reinterpret_cast<char *>(recvCounts.data()), eight,
          eightOffsets)) {
    for (int64_t i = 0; i < tokens * k; ++i)
      slotRows[i] = -1;
    return code;
  }
  rt.counters[MOE_EP_COUNT_BYTES_REMOTE] += 8 * (size - 1);
  start = now();
  // This rank's own records are not exchanged: their rows are read from x
  // (alive until dispatch_finish, which the generated code calls right
  // after) and their metadata is kept here.
  std::vector<int64_t> sendBytes(size), recvBytes(size);
  for (int q = 0; q < size; ++q) {
    sendBytes[q] = q == rank ? 0 : sendCounts[q] * plan->recordBytes;
    if (recvCounts[q] < 0 || (q == rank && recvCounts[q] != sendCounts[q]))
      return fail(rt, MOE_EP_ERR_PEER,
                  "rank %d: rank %d announced %lld rows", rank, q,
                  static_cast<long long>(recvCounts[q]));
    recvBytes[q] = q == rank ? 0 : recvCounts[q] * plan->recordBytes;
  }
  std::vector<int64_t> sendOffsets = prefix(sendBytes);
  std::vector<int64_t> recvOffsets = prefix(recvBytes);
  char *send = rt.dispatchSend.get(sendOffsets.back() + sendBytes.back());
  std::vector<int32_t> selfMeta(sendTokens[rank].size() * k);
  for (int q = 0; q < size; ++q) {
    bool self = q == rank;
    char *record = send + sendOffsets[q];
    int32_t *metaOut = selfMeta.data();
    for (int64_t t : sendTokens[q]) {
      int32_t *meta = self ? metaOut : reinterpret_cast<int32_t *>(record);
      for (int64_t j = 0; j < k; ++j) {
        int64_t id = ids[t * k + j];
        bool here = id >= 0 && id < numExperts && owner(id) == q;
        int32_t local = here ? static_cast<int32_t>(id - bounds[q]) : -1;
        std::memcpy(meta + j, &local, 4);
      }
      if (self) {
        metaOut += k;
        continue;
      }
      std::memcpy(record + 4 * k, x + t * plan->rowBytes, plan->rowBytes);
      record += plan->recordBytes;
    }
    rt.counters[self ? MOE_EP_DISPATCH_ROWS_SELF
                     : MOE_EP_DISPATCH_ROWS_REMOTE] += sendCounts[q];
    rt.counters[self ? MOE_EP_DISPATCH_ROW_BYTES_SELF
                     : MOE_EP_DISPATCH_ROW_BYTES_REMOTE] +=
        sendCounts[q] * plan->rowBytes;
    if (!self)
      rt.counters[MOE_EP_DISPATCH_META_BYTES_REMOTE] += sendCounts[q] * 4 * k;
  }
  char *recv = rt.dispatchRecv.get(recvOffsets.back() + recvBytes.back());
  rt.counters[MOE_EP_PLAN_NS] += static_cast<int64_t>((now() - start) * 1e9);
  if (int32_t code =
          exchange(rt, "the row exchange of moe.ep_dispatch", send, sendBytes,
                   sendOffsets, recv, recvBytes, recvOffsets)) {
    for (int64_t i = 0; i < tokens * k; ++i)
      slotRows[i] = -1;
    return code;
  }
  start = now();

  // The records of source s: metadata and row of record i.
  auto metaOf = [&](int s, int64_t i) -> const int32_t * {
    if (s == rank)
      return selfMeta.data() + i * k;
    return reinterpret_cast<const int32_t *>(recv + recvOffsets[s] +
                                             i * plan->recordBytes);
  };
  auto rowOf = [&](int s, int64_t i) -> const char * {
    if (s == rank)
      return x + sendTokens[rank][i] * plan->rowBytes;
    return recv + recvOffsets[s] + i * plan->recordBytes + 4 * k;
  };

  // 3. Expand: count slot rows per local expert, checking every id.
  const int64_t localExperts = plan->localExperts;
  std::vector<int64_t> perExpert(localExperts + 1, 0);
  std::vector<int64_t> returnCount(size, 0);
  for (int s = 0; s < size; ++s)
    for (int64_t i = 0; i < recvCounts[s]; ++i) {
      const int32_t *meta = metaOf(s, i);
      for (int64_t j = 0; j < k; ++j) {
        int32_t local;
        std::memcpy(&local, meta + j, 4);
        if (local < -1 || local >= localExperts)
          return fail(rt, MOE_EP_ERR_PEER,
                      "rank %d: rank %d sent a row for local expert %d, but "
                      "this rank holds %lld experts (do all ranks run the "
                      "same placement?)",
                      rank, s, local, static_cast<long long>(localExperts));
        if (local >= 0)
          ++perExpert[local + 1];
      }
    }
  plan->offsets.assign(localExperts + 1, 0);
  for (int64_t e = 0; e < localExperts; ++e)
    perExpert[e + 1] += perExpert[e];
  int64_t rows = perExpert[localExperts];
  if (rows > INT32_MAX)
    return fail(rt, MOE_EP_ERR_ARGUMENT,
                "rank %d: %lld received rows exceed the i32 offsets", rank,
                static_cast<long long>(rows));
  for (int64_t e = 0; e <= localExperts; ++e)
    plan->offsets[e] = static_cast<int32_t>(perExpert[e]);
  plan->rowSource.assign(rows, nullptr);
  plan->rowReturn.assign(rows, 0);
  // Return positions: per remote source, (record, slot) order; for this
  // rank's own rows, the slot index itself (encoded -1 - slot).
  std::vector<int64_t> cursor(perExpert.begin(), perExpert.end() - 1);
  int64_t position = 0;
  for (int s = 0; s < size; ++s) {
    int64_t first = position, own = 0;
    for (int64_t i = 0; i < recvCounts[s]; ++i) {
      const int32_t *meta = metaOf(s, i);
      const char *source = rowOf(s, i);
      for (int64_t j = 0; j < k; ++j) {
        int32_t local;
        std::memcpy(&local, meta + j, 4);
        if (local < 0)
          continue;
        int64_t row = cursor[local]++;
        plan->rowSource[row] = source;
        if (s == rank)
          plan->rowReturn[row] = -1 - plan->returnSlots[rank][own++];
        else
          plan->rowReturn[row] = position++;
      }
    }
    returnCount[s] = position - first;
  }
  // Sources are visited in rank order and records in token order, so each
  // expert's rows come out in (source, token, slot) order.
  plan->returnBytesOut.resize(size);
  plan->returnBytesIn.resize(size);
  plan->selfReturns = static_cast<int64_t>(plan->returnSlots[rank].size());
  for (int q = 0; q < size; ++q) {
    plan->returnBytesOut[q] = returnCount[q] * plan->rowBytes;
    plan->returnBytesIn[q] =
        q == rank ? 0
                  : static_cast<int64_t>(plan->returnSlots[q].size()) *
                        plan->rowBytes;
  }
  plan->returnOffsetsOut = prefix(plan->returnBytesOut);
  plan->returnOffsetsIn = prefix(plan->returnBytesIn);
  rt.counters[MOE_EP_DISPATCH_CALLS] += 1;
  rt.counters[MOE_EP_PLAN_NS] += static_cast<int64_t>((now() - start) * 1e9);

  int64_t handle = rt.nextPlan++;
  info[0] = handle;
  info[1] = rows;
  info[2] = localExperts;
  info[3] = plan->returnRows;
  rt.plans[handle] = std::move(plan);
  return MOE_EP_OK;
}

Runtime::Plan *findPlan(Runtime &rt, int64_t handle) {
  auto it = rt.plans.find(handle);
  return it == rt.plans.end() ? nullptr : it->second.get();
}

} // namespace

// The C entry points are the library's interface (the rest is hidden).
#pragma GCC visibility push(default)
extern "C" {

int32_t moe_ep_init(const char *backend) {
  Runtime &rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  return initLocked(rt, backend);
}

int32_t moe_ep_rank(void) {
  Runtime &rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  return rt.backend ? rt.backend->rank() : -1;
}

int32_t moe_ep_size(void) {
  Runtime &rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  return rt.backend ? rt.backend->size() : 0;
}

const char *moe_ep_backend(void) {
  Runtime &rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  return rt.backend ? rt.backend->name() : "";
}

int32_t moe_ep_finalize(void) {
  Runtime &rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  if (rt.backend) {
    rt.backend->finalize(rt.failed);
    rt.backend.reset();
  }
  rt.plans.clear();
  return MOE_EP_OK;
}

int32_t moe_ep_allgather(const void *send, int64_t bytes, void *recv) {
  Runtime &rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  if (int32_t code = initLocked(rt, nullptr))
    return code;
  if (bytes < 0)
    return fail(rt, MOE_EP_ERR_ARGUMENT, "allgather of %lld bytes",
                static_cast<long long>(bytes));
  int size = rt.backend->size();
  std::vector<int64_t> sendBytes(size, bytes), sendOffsets(size, 0),
      recvBytes(size, bytes), recvOffsets(size);
  for (int q = 0; q < size; ++q)
    recvOffsets[q] = q * bytes;
  return exchange(rt, "an allgather", static_cast<const char *>(send),
                  sendBytes, sendOffsets, static_cast<char *>(recv),
                  recvBytes, recvOffsets);
}

int32_t moe_ep_barrier(void) {
  int64_t zero = 0;
  int size = moe_ep_size();
  std::vector<int64_t> all(size > 0 ? size : 1);
  return moe_ep_allgather(&zero, 0, all.data());
}

int32_t moe_ep_counters(int64_t *out, int64_t n) {
  Runtime &rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  for (int64_t i = 0; i < n && i < MOE_EP_NUM_COUNTERS; ++i)
    out[i] = rt.counters[i];
  return MOE_EP_OK;
}

void moe_ep_reset_counters(void) {
  Runtime &rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  std::fill(std::begin(rt.counters), std::end(rt.counters), 0);
}

const char *moe_ep_last_error(void) {
  Runtime &rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  return rt.lastError.c_str();
}

int32_t moe_ep_local_experts(int64_t num_experts, const int64_t *blocks,
                             int64_t nblocks, int32_t rank, int64_t *first,
                             int64_t *count) {
  Runtime &rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  *first = *count = 0;
  if (int32_t code = initLocked(rt, nullptr))
    return code;
  std::vector<int64_t> bounds;
  if (int32_t code =
          resolvePlacement(rt, num_experts, blocks, nblocks, bounds))
    return code;
  if (rank < 0 || rank >= rt.backend->size())
    return fail(rt, MOE_EP_ERR_ARGUMENT, "rank %d is not in [0, %d)", rank,
                rt.backend->size());
  *first = bounds[rank];
  *count = bounds[rank + 1] - bounds[rank];
  return MOE_EP_OK;
}

int32_t moe_ep_dispatch_begin(uintptr_t x, int64_t tokens, int64_t hidden,
                              int64_t elem_bytes, uintptr_t ids, int64_t k,
                              int64_t num_experts, uintptr_t blocks,
                              int64_t nblocks, uintptr_t slot_rows,
                              uintptr_t info) {
  Runtime &rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  return dispatchBegin(rt, reinterpret_cast<const char *>(x), tokens, hidden,
                       elem_bytes, reinterpret_cast<const int32_t *>(ids), k,
                       num_experts, reinterpret_cast<const int64_t *>(blocks),
                       nblocks, reinterpret_cast<int32_t *>(slot_rows),
                       reinterpret_cast<int64_t *>(info));
}

int32_t moe_ep_dispatch_finish(int64_t handle, uintptr_t rows,
                               uintptr_t offsets) {
  Runtime &rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  Runtime::Plan *plan = findPlan(rt, handle);
  if (!plan)
    return handle == 0 ? MOE_EP_ERR_ARGUMENT
                       : fail(rt, MOE_EP_ERR_ARGUMENT,
                              "moe.ep_dispatch: unknown plan %lld",
                              static_cast<long long>(handle));
  double start = now();
  char *out = reinterpret_cast<char *>(rows);
  for (size_t row = 0; row < plan->rowSource.size(); ++row)
    std::memcpy(out + row * plan->rowBytes, plan->rowSource[row],
                plan->rowBytes);
  std::memcpy(reinterpret_cast<int32_t *>(offsets), plan->offsets.data(),
              plan->offsets.size() * sizeof(int32_t));
  rt.counters[MOE_EP_PLAN_NS] += static_cast<int64_t>((now() - start) * 1e9);
  return MOE_EP_OK;
}

int64_t moe_ep_combine_rows(int64_t handle) {
  Runtime &rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  Runtime::Plan *plan = findPlan(rt, handle);
  return plan ? plan->returnRows : 0;
}

int32_t moe_ep_combine(int64_t handle, uintptr_t y_local, int64_t rows_local,
                       int64_t hidden, uintptr_t y) {
  Runtime &rt = runtime();
  std::lock_guard<std::mutex> lock(rt.mutex);
  auto it = rt.plans.find(handle);
  if (it == rt.plans.end())
    return handle == 0 ? MOE_EP_ERR_ARGUMENT
                       : fail(rt, MOE_EP_ERR_ARGUMENT,
                              "moe.ep_combine: unknown plan %lld",
                              static_cast<long long>(handle));
  std::unique_ptr<Runtime::Plan> plan = std::move(it->second);
  rt.plans.erase(it);
  const int size = rt.backend->size(), rank = rt.backend->rank();
  if (rows_local != static_cast<int64_t>(plan->rowSource.size()))
    return fail(rt, MOE_EP_ERR_ARGUMENT,
                "rank %d: moe.ep_combine got %lld rows, but its dispatch "
                "received %lld",
                rank, static_cast<long long>(rows_local),
                static_cast<long long>(plan->rowSource.size()));
  if (hidden != plan->hidden)
    return fail(rt, MOE_EP_ERR_ARGUMENT,
                "rank %d: moe.ep_combine got rows of %lld values, but its "
                "dispatch sent rows of %lld",
                rank, static_cast<long long>(hidden),
                static_cast<long long>(plan->hidden));
  double start = now();
  const int64_t rowBytes = plan->rowBytes;
  const int64_t sendTotal =
      plan->returnOffsetsOut.back() + plan->returnBytesOut.back();
  const int64_t recvTotal =
      plan->returnOffsetsIn.back() + plan->returnBytesIn.back();
  char *send = rt.combineSend.get(static_cast<size_t>(sendTotal));
  char *recv = rt.combineRecv.get(static_cast<size_t>(recvTotal));
  const char *in = reinterpret_cast<const char *>(y_local);
  char *out = reinterpret_cast<char *>(y);
  // Rows of this rank's own tokens go straight to their slots.
  for (int64_t row = 0; row < rows_local; ++row) {
    int64_t to = plan->rowReturn[row];
    if (to < 0)
      std::memcpy(out + (-1 - to) * rowBytes, in + row * rowBytes, rowBytes);
    else
      std::memcpy(send + to * rowBytes, in + row * rowBytes, rowBytes);
  }
  for (int q = 0; q < size; ++q) {
    bool self = q == rank;
    int64_t count = self ? plan->selfReturns
                         : plan->returnBytesOut[q] / (rowBytes ? rowBytes : 1);
    rt.counters[self ? MOE_EP_COMBINE_ROWS_SELF : MOE_EP_COMBINE_ROWS_REMOTE] +=
        count;
    rt.counters[self ? MOE_EP_COMBINE_ROW_BYTES_SELF
                     : MOE_EP_COMBINE_ROW_BYTES_REMOTE] += count * rowBytes;
  }
  rt.counters[MOE_EP_PLAN_NS] += static_cast<int64_t>((now() - start) * 1e9);
  if (int32_t code =
          exchange(rt, "the row exchange of moe.ep_combine", send,
                   plan->returnBytesOut, plan->returnOffsetsOut, recv,
                   plan->returnBytesIn, plan->returnOffsetsIn))
    return code;
  start = now();
  for (int q = 0; q < size; ++q) {
    if (q == rank)
      continue;
    const char *from = recv + plan->returnOffsetsIn[q];
    for (int64_t slot : plan->returnSlots[q]) {
      std::memcpy(out + slot * rowBytes, from, rowBytes);
      from += rowBytes;
    }
  }
  rt.counters[MOE_EP_PLAN_NS] += static_cast<int64_t>((now() - start) * 1e9);
  return MOE_EP_OK;
}

} // extern "C"
#pragma GCC visibility pop
