/*===- ExpertParallel.h - Expert-parallel exchange runtime ---------*- C -*-===//
 *
 * Part of the moe-mlir project.
 *
 *===----------------------------------------------------------------------===//
 *
 * The C ABI of libmoe_ep_runtime.so: the token exchange of expert
 * parallelism (each rank holds a block of the compute experts; tokens travel
 * to the ranks of their experts and their outputs back). Code generated from
 * moe.ep_dispatch / moe.ep_combine calls the `moe_ep_dispatch_*` and
 * `moe_ep_combine*` entry points; hosts (the Python package, C programs)
 * call the others. No MLIR is needed at run time.
 *
 * Backends, chosen by moe_ep_init() (or MOE_EP_BACKEND):
 *   "self" - one process, rank 0 of 1 (no communication library);
 *   "mpi"  - MPI point-to-point messages (OpenMPI or MPICH), one process
 *            per rank under mpirun; the default when a launcher is seen;
 *   "nccl" - NCCL grouped send/recv through device staging buffers (libnccl
 *            and libcuda loaded with dlopen; MPI bootstraps the NCCL id).
 *
 * Every entry point returns 0 on success, or a nonzero code after which
 * moe_ep_last_error() says what happened (naming ranks, placements,
 * timeouts). A rank that does not answer within MOE_EP_TIMEOUT_S seconds
 * (default 60) makes the exchange fail on the ranks waiting for it.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOE_RUNTIME_EXPERTPARALLEL_H
#define MOE_RUNTIME_EXPERTPARALLEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes. */
enum {
  MOE_EP_OK = 0,
  MOE_EP_ERR_INIT = 1,      /* no backend, or the backend failed to start */
  MOE_EP_ERR_ARGUMENT = 2,  /* sizes, placement or plan handle invalid */
  MOE_EP_ERR_TIMEOUT = 3,   /* a rank did not answer in time */
  MOE_EP_ERR_TRANSPORT = 4, /* the backend reported an error */
  MOE_EP_ERR_PEER = 5       /* a peer sent data that does not fit the plan */
};

/* Counter indices of moe_ep_counters(). "remote" counts what this rank sent
 * to other ranks; "self" what it moved to itself (a copy, no network). */
enum {
  MOE_EP_DISPATCH_CALLS = 0,
  MOE_EP_DISPATCH_ROWS_REMOTE = 1,  /* (token, rank) rows sent to others */
  MOE_EP_DISPATCH_ROWS_SELF = 2,
  MOE_EP_DISPATCH_ROW_BYTES_REMOTE = 3, /* row payload (H x element size) */
  MOE_EP_DISPATCH_ROW_BYTES_SELF = 4,
  MOE_EP_DISPATCH_META_BYTES_REMOTE = 5, /* K int32 expert ids per row */
  MOE_EP_COMBINE_ROWS_REMOTE = 6,  /* one row per compute slot returned */
  MOE_EP_COMBINE_ROWS_SELF = 7,
  MOE_EP_COMBINE_ROW_BYTES_REMOTE = 8,
  MOE_EP_COMBINE_ROW_BYTES_SELF = 9,
  MOE_EP_COUNT_BYTES_REMOTE = 10,  /* the counts exchange */
  MOE_EP_EXCHANGE_NS = 11,         /* time inside the backend's exchanges */
  MOE_EP_PLAN_NS = 12,             /* time planning, packing and unpacking */
  MOE_EP_COMPUTE_SLOTS = 13,       /* compute slots of this rank's tokens */
  MOE_EP_NUM_COUNTERS = 14
};

/* Host API. */
/* Starts the runtime ("auto", "self", "mpi" or "nccl"; NULL = "auto": MPI
 * when a launcher's environment is seen, else self). Idempotent. */
int32_t moe_ep_init(const char *backend);
int32_t moe_ep_rank(void);
int32_t moe_ep_size(void);
const char *moe_ep_backend(void);
/* Ends the runtime (MPI_Finalize; MPI_Abort after a failed exchange, so
 * that ranks blocked on this one do not wait for ever). */
int32_t moe_ep_finalize(void);
/* Each rank sends `bytes` bytes; recv receives size() * bytes, rank order. */
int32_t moe_ep_allgather(const void *send, int64_t bytes, void *recv);
int32_t moe_ep_barrier(void);
/* Copies up to `n` counters (see above) into `out`. */
int32_t moe_ep_counters(int64_t *out, int64_t n);
void moe_ep_reset_counters(void);
/* The message of the last failure on this rank ("" when none). */
const char *moe_ep_last_error(void);
/* The experts rank `rank` holds under a placement (nblocks = 0: balanced
 * over the run's rank count): [*first, *first + *count). */
int32_t moe_ep_local_experts(int64_t num_experts, const int64_t *blocks,
                             int64_t nblocks, int32_t rank, int64_t *first,
                             int64_t *count);

/* Generated-code ABI (addresses as uintptr_t). */
/* Plans and runs the dispatch exchange: x [T, H] (elem_bytes each), ids
 * [T, K] global expert ids; fills slot_rows [T, K] and info[4] = {plan,
 * R_local, E_local, R}. On failure info holds {0, 0, 0, 0} and slot_rows
 * -1. */
int32_t moe_ep_dispatch_begin(uintptr_t x, int64_t tokens, int64_t hidden,
                              int64_t elem_bytes, uintptr_t ids, int64_t k,
                              int64_t num_experts, uintptr_t blocks,
                              int64_t nblocks, uintptr_t slot_rows,
                              uintptr_t info);
/* Writes the received rows [R_local, H] and offsets [E_local + 1] (i32).
 * Must follow its moe_ep_dispatch_begin before any other dispatch begins,
 * with `x` still alive: this rank's own rows are read from it here. */
int32_t moe_ep_dispatch_finish(int64_t plan, uintptr_t rows,
                               uintptr_t offsets);
/* Rows of the combine result (the rank's compute slots). */
int64_t moe_ep_combine_rows(int64_t plan);
/* Sends y_local [R_local, H] back and writes y [R, H]; frees the plan. */
int32_t moe_ep_combine(int64_t plan, uintptr_t y_local, int64_t rows_local,
                       int64_t hidden, uintptr_t y);

#ifdef __cplusplus
}
#endif

#endif /* MOE_RUNTIME_EXPERTPARALLEL_H */
