/* The expert-parallel runtime's planner on one rank (the self backend):
 * random routings with every kind of slot (compute ids, null/copy/const ids
 * past E, empty -1, garbage far out of range), every K and T including 0,
 * f32 and 16-bit rows. Checks the dispatch against a direct counting sort
 * (rows ordered by expert, token, slot), the slot numbering, the combine's
 * return of each row to its slot, the counters, and the errors for bad
 * placements and plans. Run under AddressSanitizer by the sanitizer build:
 * no read or write outside the buffers for any ids. Prints "ok N cases". */

#include "moe/Runtime/ExpertParallel.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state = 0x9E3779B97F4A7C15ull;
static uint32_t next(void) {
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return (uint32_t)state;
}

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                     \
      fprintf(stderr, __VA_ARGS__);                                            \
      fprintf(stderr, "\n");                                                   \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

static int one_case(int64_t t, int64_t h, int64_t k, int64_t e,
                    int64_t elem) {
  size_t row = (size_t)(h * elem);
  unsigned char *x = malloc(t * row + 1);
  int32_t *ids = malloc(sizeof(int32_t) * (t * k + 1));
  int32_t *slot = malloc(sizeof(int32_t) * (t * k + 1));
  for (size_t i = 0; i < t * row; ++i)
    x[i] = (unsigned char)next();
  for (int64_t i = 0; i < t * k; ++i) {
    uint32_t r = next() % 10;
    ids[i] = r < 6 ? (int32_t)(next() % e)                 /* compute */
             : r < 8 ? (int32_t)(e + next() % 4)          /* null/copy/const */
             : r < 9 ? -1                                  /* empty */
                     : (int32_t)(next() | ((next() & 1) ? 0x80000000u
                                                          : 0x40000000u));
  }
  int64_t info[4];
  int32_t code = moe_ep_dispatch_begin((uintptr_t)x, t, h, elem, (uintptr_t)ids,
                                       k, e, 0, 0, (uintptr_t)slot,
                                       (uintptr_t)info);
  CHECK(code == 0, "dispatch_begin: %s", moe_ep_last_error());
  /* Slot numbering: compute slots in (token, slot) order. */
  int64_t slots = 0;
  for (int64_t i = 0; i < t * k; ++i) {
    int compute = ids[i] >= 0 && ids[i] < e;
    CHECK(slot[i] == (compute ? slots : -1), "slot_rows[%lld] = %d",
          (long long)i, slot[i]);
    slots += compute;
  }
  CHECK(info[1] == slots && info[2] == e && info[3] == slots,
        "sizes %lld %lld %lld (slots %lld)", (long long)info[1],
        (long long)info[2], (long long)info[3], (long long)slots);
  CHECK(moe_ep_combine_rows(info[0]) == slots, "combine_rows");
  unsigned char *rows = malloc(slots * row + 1);
  int32_t *offsets = malloc(sizeof(int32_t) * (e + 1));
  code = moe_ep_dispatch_finish(info[0], (uintptr_t)rows, (uintptr_t)offsets);
  CHECK(code == 0, "dispatch_finish: %s", moe_ep_last_error());
  /* The counting sort: expert, then token, then slot. */
  int64_t r = 0;
  for (int64_t ex = 0; ex < e; ++ex) {
    CHECK(offsets[ex] == r, "offsets[%lld] = %d, expected %lld",
          (long long)ex, offsets[ex], (long long)r);
    for (int64_t tok = 0; tok < t; ++tok)
      for (int64_t j = 0; j < k; ++j)
        if (ids[tok * k + j] == ex) {
          CHECK(memcmp(rows + r * row, x + tok * row, row) == 0,
                "row %lld is not token %lld", (long long)r, (long long)tok);
          ++r;
        }
  }
  CHECK(offsets[e] == slots, "offsets[E]");
  /* The combine returns row i of y_local to the slot it came from. */
  unsigned char *y = malloc(slots * row + 1);
  for (size_t i = 0; i < slots * row; ++i)
    rows[i] ^= 0x5A;
  code = moe_ep_combine(info[0], (uintptr_t)rows, slots, h, (uintptr_t)y);
  CHECK(code == 0, "combine: %s", moe_ep_last_error());
  for (int64_t tok = 0; tok < t; ++tok)
    for (int64_t j = 0; j < k; ++j) {
      int32_t s = slot[tok * k + j];
      if (s < 0)
        continue;
      for (size_t b = 0; b < row; ++b)
        CHECK(y[s * row + b] == (unsigned char)(x[tok * row + b] ^ 0x5A),
              "slot %d byte %zu", s, b);
    }
  /* The plan is gone after the combine. */
  CHECK(moe_ep_combine(info[0], (uintptr_t)rows, slots, h, (uintptr_t)y) != 0,
        "a used plan was accepted");
  free(x), free(ids), free(slot), free(rows), free(offsets), free(y);
  return 0;
}

int main(void) {
  CHECK(moe_ep_init("self") == 0, "init: %s", moe_ep_last_error());
  CHECK(moe_ep_size() == 1 && moe_ep_rank() == 0, "self is rank 0 of 1");
  int cases = 0;
  static const int64_t ts[] = {0, 1, 7, 64};
  static const int64_t ks[] = {1, 2, 4, 8};
  static const int64_t es[] = {1, 3, 8};
  for (size_t a = 0; a < sizeof ts / sizeof *ts; ++a)
    for (size_t b = 0; b < sizeof ks / sizeof *ks; ++b)
      for (size_t c = 0; c < sizeof es / sizeof *es; ++c)
        for (int64_t elem = 2; elem <= 4; elem += 2) {
          one_case(ts[a], 5, ks[b], es[c], elem);
          ++cases;
        }
  /* Errors: a placement for 3 ranks on a 1-rank run, a bad first bound, a
   * bad element size, an unknown plan. Outputs stay valid. */
  int32_t ids[2] = {0, 1};
  int32_t slot[2];
  int64_t info[4] = {7, 7, 7, 7};
  float x[8] = {0};
  int64_t three[4] = {0, 1, 2, 4};
  CHECK(moe_ep_dispatch_begin((uintptr_t)x, 1, 4, 4, (uintptr_t)ids, 2, 4,
                              (uintptr_t)three, 4, (uintptr_t)slot,
                              (uintptr_t)info) == MOE_EP_ERR_ARGUMENT,
        "placement for 3 ranks accepted");
  CHECK(strstr(moe_ep_last_error(), "blocks for 3 ranks, but the run has 1"),
        "message: %s", moe_ep_last_error());
  CHECK(info[0] == 0 && info[1] == 0 && slot[0] == -1 && slot[1] == -1,
        "outputs after an error");
  int64_t bad[2] = {1, 4};
  CHECK(moe_ep_dispatch_begin((uintptr_t)x, 1, 4, 4, (uintptr_t)ids, 2, 4,
                              (uintptr_t)bad, 2, (uintptr_t)slot,
                              (uintptr_t)info) == MOE_EP_ERR_ARGUMENT,
        "first bound 1 accepted");
  CHECK(moe_ep_dispatch_begin((uintptr_t)x, 1, 4, 3, (uintptr_t)ids, 2, 4, 0,
                              0, (uintptr_t)slot, (uintptr_t)info) ==
            MOE_EP_ERR_ARGUMENT,
        "3-byte elements accepted");
  CHECK(moe_ep_dispatch_finish(12345, (uintptr_t)x, (uintptr_t)slot) ==
            MOE_EP_ERR_ARGUMENT,
        "unknown plan accepted");
  CHECK(strstr(moe_ep_last_error(), "unknown plan 12345"), "message: %s",
        moe_ep_last_error());
  int64_t counters[MOE_EP_NUM_COUNTERS];
  moe_ep_counters(counters, MOE_EP_NUM_COUNTERS);
  CHECK(counters[MOE_EP_DISPATCH_CALLS] == cases, "dispatch calls %lld",
        (long long)counters[MOE_EP_DISPATCH_CALLS]);
  CHECK(counters[MOE_EP_COMBINE_ROWS_SELF] == counters[MOE_EP_COMPUTE_SLOTS],
        "returned rows %lld != compute slots %lld",
        (long long)counters[MOE_EP_COMBINE_ROWS_SELF],
        (long long)counters[MOE_EP_COMPUTE_SLOTS]);
  CHECK(counters[MOE_EP_DISPATCH_ROWS_REMOTE] == 0, "remote rows on 1 rank");
  moe_ep_finalize();
  printf("ok %d cases\n", cases);
  return 0;
}
