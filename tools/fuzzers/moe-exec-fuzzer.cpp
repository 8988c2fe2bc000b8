//===- moe-exec-fuzzer.cpp - Fuzz compiled routing and layers ---*- C++ -*-===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// libFuzzer target over the functions of exec-variants.mlir, compiled ahead
// of time with AddressSanitizer and coverage (build-exec-variants.py). The
// input picks the variant, the number of tokens T (sometimes a different T
// for one argument, to hit the runtime size guards) and every value: logits
// with NaN/Inf/-0/subnormals, ids and k_per_token out of range, garbage
// offsets and slot rows. Each input runs twice, with every buffer the
// generated code allocates filled with 0x00 and then 0xA7: results that
// differ have read uninitialised memory. Then the contract's invariants are
// checked (ids in range, valid slots first, empty slots weigh 0, dispatch
// offsets and rows, inputs never written) and a size mismatch must have been
// reported. ASan reports any access outside a buffer.
//
//===----------------------------------------------------------------------===//

#include "mlir/ExecutionEngine/CRunnerUtils.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

//===----------------------------------------------------------------------===//
// Allocation hooks of the generated code
//===----------------------------------------------------------------------===//

static unsigned char fillByte = 0;

// build-exec-variants.py renames the generated code's malloc/free to these.
extern "C" void *moe_fuzz_malloc(size_t size) {
  void *p = std::malloc(size ? size : 1);
  if (p)
    std::memset(p, fillByte, size);
  return p;
}
extern "C" void *moe_fuzz_aligned_alloc(size_t alignment, size_t size) {
  void *p = std::aligned_alloc(alignment, size ? size : alignment);
  if (p)
    std::memset(p, fillByte, size);
  return p;
}
extern "C" void moe_fuzz_free(void *p) { std::free(p); }

//===----------------------------------------------------------------------===//
// Memref descriptors
//===----------------------------------------------------------------------===//

template <typename T, int N> using Desc = StridedMemRefType<T, N>;

/// A dense array owned by the fuzzer, passed as a descriptor.
template <typename T, int N> struct Array {
  std::vector<T> data;
  int64_t shape[N > 0 ? N : 1] = {};

  int64_t count() const {
    int64_t n = 1;
    for (int i = 0; i < N; ++i)
      n *= shape[i];
    return n;
  }
  Desc<T, N> desc() {
    Desc<T, N> d;
    d.basePtr = d.data = data.empty() ? nullptr : data.data();
    d.offset = 0;
    int64_t stride = 1;
    for (int i = N - 1; i >= 0; --i) {
      d.sizes[i] = shape[i];
      d.strides[i] = stride;
      stride *= shape[i];
    }
    return d;
  }
};

/// A result: its shape and bytes, then freed.
struct Result {
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;
  bool operator==(const Result &other) const {
    return shape == other.shape && bytes == other.bytes;
  }
};

template <typename T, int N> static Result take(Desc<T, N> &d) {
  Result r;
  int64_t count = 1;
  for (int i = 0; i < N; ++i) {
    r.shape.push_back(d.sizes[i]);
    count *= d.sizes[i];
  }
  if (count > 0) {
    // Identity layout: results are fresh, contiguous buffers.
    for (int i = 0; i < N; ++i) {
      int64_t expected = 1;
      for (int j = i + 1; j < N; ++j)
        expected *= d.sizes[j];
      if (d.sizes[i] > 1 && d.strides[i] != expected) {
        std::fprintf(stderr, "moe-exec-fuzzer: a result is not contiguous\n");
        std::abort();
      }
    }
    const auto *begin =
        reinterpret_cast<const unsigned char *>(d.data + d.offset);
    r.bytes.assign(begin, begin + count * sizeof(T));
  }
  std::free(d.basePtr);
  return r;
}

/// A 0-d result (a scalar in a buffer).
template <typename T> static Result take(Desc<T, 0> &d) {
  Result r;
  const auto *begin =
      reinterpret_cast<const unsigned char *>(d.data + d.offset);
  r.bytes.assign(begin, begin + sizeof(T));
  std::free(d.basePtr);
  return r;
}

template <typename T> static const T *view(const Result &r) {
  return reinterpret_cast<const T *>(r.bytes.data());
}

[[noreturn]] static void fail(const std::string &variant,
                              const std::string &what) {
  std::fprintf(stderr, "moe-exec-fuzzer: %s: %s\n", variant.c_str(),
               what.c_str());
  std::abort();
}

//===----------------------------------------------------------------------===//
// Input decoding
//===----------------------------------------------------------------------===//

class Input {
public:
  Input(const uint8_t *data, size_t size) : data(data), size(size) {}

  uint8_t byte() { return pos < size ? data[pos++] : 0; }
  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
      v = (v << 8) | byte();
    return v;
  }
  /// In [0, n).
  unsigned below(unsigned n) { return n ? byte() % n : 0; }

  /// A float: an IEEE special or boundary one time in four, else a small
  /// value from the input.
  float value() {
    uint8_t selector = byte();
    if (selector < 64) {
      const float specials[] = {0.0f,
                                -0.0f,
                                1.0f,
                                -1.0f,
                                std::numeric_limits<float>::quiet_NaN(),
                                -std::numeric_limits<float>::quiet_NaN(),
                                std::numeric_limits<float>::infinity(),
                                -std::numeric_limits<float>::infinity(),
                                std::numeric_limits<float>::min(),
                                std::numeric_limits<float>::denorm_min(),
                                std::numeric_limits<float>::max(),
                                -std::numeric_limits<float>::max(),
                                1e-30f,
                                0.5f,
                                2.0f,
                                88.8f};
      return specials[selector % 16];
    }
    if (selector < 72) {
      uint32_t bits = u32();
      float f;
      std::memcpy(&f, &bits, 4);
      return f;
    }
    return static_cast<int8_t>(byte()) / 16.0f;
  }
  /// An id for an expert space of width `s`: in range mostly, else -1,
  /// one past the end, or far out.
  int32_t id(int32_t s) {
    uint8_t selector = byte();
    if (selector < 200)
      return static_cast<int32_t>(selector % s);
    const int32_t odd[] = {-1,
                           -2,
                           s,
                           s + 1,
                           std::numeric_limits<int32_t>::min(),
                           std::numeric_limits<int32_t>::max(),
                           1 << 20,
                           -7};
    return odd[selector % 8];
  }
  /// An integer around `[lo, hi]`, sometimes far outside.
  int32_t integer(int32_t lo, int32_t hi) {
    uint8_t selector = byte();
    if (selector < 220)
      return lo + static_cast<int32_t>(selector % (hi - lo + 1));
    const int32_t odd[] = {-1,
                           hi + 1,
                           std::numeric_limits<int32_t>::min(),
                           std::numeric_limits<int32_t>::max(),
                           -1000,
                           1000};
    return odd[selector % 6];
  }

  template <int N> Array<float, N> floats(std::initializer_list<int64_t> dims) {
    Array<float, N> a = shaped<float, N>(dims);
    for (float &v : a.data)
      v = value();
    return a;
  }
  template <int N>
  Array<int32_t, N> ids(std::initializer_list<int64_t> dims, int32_t s) {
    Array<int32_t, N> a = shaped<int32_t, N>(dims);
    for (int32_t &v : a.data)
      v = id(s);
    return a;
  }
  template <int N>
  Array<int32_t, N> ints(std::initializer_list<int64_t> dims, int32_t lo,
                         int32_t hi) {
    Array<int32_t, N> a = shaped<int32_t, N>(dims);
    for (int32_t &v : a.data)
      v = integer(lo, hi);
    return a;
  }
  /// bf16 bit patterns of `value()`s (truncated: any pattern is valid).
  template <int N>
  Array<uint16_t, N> bf16(std::initializer_list<int64_t> dims) {
    Array<uint16_t, N> a = shaped<uint16_t, N>(dims);
    for (uint16_t &v : a.data) {
      float f = value();
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      v = static_cast<uint16_t>(bits >> 16);
    }
    return a;
  }

private:
  template <typename T, int N>
  static Array<T, N> shaped(std::initializer_list<int64_t> dims) {
    Array<T, N> a;
    int i = 0;
    for (int64_t d : dims)
      a.shape[i++] = d;
    a.data.resize(a.count());
    return a;
  }

  const uint8_t *data;
  size_t size;
  size_t pos = 0;
};

//===----------------------------------------------------------------------===//
// The compiled variants (exec-variants.mlir)
//===----------------------------------------------------------------------===//

template <typename A, typename B> struct Pair {
  A a;
  B b;
};
template <typename A, typename B, typename C> struct Triple {
  A a;
  B b;
  C c;
};
using IdsWeights = Pair<Desc<int32_t, 2>, Desc<float, 2>>;
using Dispatched = Triple<Desc<float, 2>, Desc<int32_t, 1>, Desc<int32_t, 2>>;
using F1 = Desc<float, 1>;
using F2 = Desc<float, 2>;
using F3 = Desc<float, 3>;
using I1 = Desc<int32_t, 1>;
using I2 = Desc<int32_t, 2>;
using H2 = Desc<uint16_t, 2>;
using H3 = Desc<uint16_t, 3>;

extern "C" {
void _mlir_ciface_route_top_k(IdsWeights *, F2 *, int32_t *);
void _mlir_ciface_route_top_p(IdsWeights *, F2 *, int32_t *);
void _mlir_ciface_route_adaptive(IdsWeights *, F2 *, int32_t *);
void _mlir_ciface_route_threshold(IdsWeights *, F2 *, F1 *, int32_t *);
void _mlir_ciface_route_dynamic_k(IdsWeights *, F2 *, I1 *, int32_t *);
void _mlir_ciface_route_expert_choice(IdsWeights *, F2 *, int32_t *);
void _mlir_ciface_route_capacity_score(IdsWeights *, F2 *, int32_t *);
void _mlir_ciface_route_capacity_position_groups(IdsWeights *, F2 *, F1 *,
                                                 int32_t *);
void _mlir_ciface_route_static_tokens(IdsWeights *, F2 *, int32_t *);
void _mlir_ciface_dispatch(Dispatched *, F2 *, I2 *, int32_t *);
void _mlir_ciface_dispatch_padded(Dispatched *, F2 *, I2 *, int32_t *);
void _mlir_ciface_grouped_matmul(F2 *, F2 *, F3 *, I1 *, int32_t *);
void _mlir_ciface_expert_ffn_gated(F2 *, F2 *, I1 *, F3 *, F3 *, F3 *,
                                   int32_t *);
void _mlir_ciface_expert_ffn_bf16(H2 *, H2 *, I1 *, H3 *, H3 *, H2 *, H2 *,
                                  int32_t *);
void _mlir_ciface_combine(F2 *, F2 *, I2 *, I2 *, F2 *, F2 *, F3 *, F2 *,
                          int32_t *);
void _mlir_ciface_aux_loss(Desc<float, 0> *, F2 *, I2 *, int32_t *);
void _mlir_ciface_layer(F2 *, F2 *, F2 *, F3 *, F3 *, F3 *, F3 *, F2 *,
                        int32_t *);
void _mlir_ciface_layer_dynamic_k(F2 *, F2 *, F2 *, I1 *, F3 *, F3 *, F2 *,
                                  F2 *, int32_t *);
void _mlir_ciface_layer_expert_choice(F2 *, F2 *, F2 *, F3 *, F3 *, int32_t *);
}

/// What one call returned.
struct Outcome {
  int32_t error = 0;
  std::vector<Result> results;
  bool operator==(const Outcome &other) const {
    return error == other.error && results == other.results;
  }
};

/// Checks on a variant's results (no runtime error).
using Check = std::function<void(const std::string &, const Outcome &)>;

template <typename... Arrays>
static std::vector<std::vector<unsigned char>> bytesOf(Arrays &...arrays) {
  std::vector<std::vector<unsigned char>> out;
  (out.push_back(std::vector<unsigned char>(
       reinterpret_cast<const unsigned char *>(arrays.data.data()),
       reinterpret_cast<const unsigned char *>(arrays.data.data()) +
           arrays.data.size() * sizeof(arrays.data[0]))),
   ...);
  return out;
}

/// Runs `call` twice (allocations filled with 0x00, then 0xA7) and checks
/// that nothing depended on the fill, that the inputs `arrays` were not
/// written, and that a size mismatch was reported.
template <typename... Arrays>
static Outcome runTwice(const std::string &variant, bool mismatch,
                        const std::function<Outcome()> &call,
                        Arrays &...arrays) {
  std::vector<std::vector<unsigned char>> inputs = bytesOf(arrays...);
  fillByte = 0x00;
  Outcome first = call();
  fillByte = 0xA7;
  Outcome second = call();
  if (!(first == second))
    fail(variant, "results depend on the contents of fresh allocations "
                  "(uninitialised memory reached a result)");
  if (bytesOf(arrays...) != inputs)
    fail(variant, "an input buffer was written");
  if (mismatch && first.error == 0)
    fail(variant, "argument sizes that disagree were not reported");
  return first;
}

/// Routing results: ids in [-1, S), valid slots first and distinct, empty
/// slots weigh 0, at most `maxValid[t]` valid slots (when given).
static void checkRoute(const std::string &variant, const Outcome &o, int64_t T,
                       int64_t K, int32_t S,
                       const std::vector<int64_t> &maxValid = {}) {
  const Result &ids = o.results[0], &weights = o.results[1];
  if (ids.shape != std::vector<int64_t>{T, K} || weights.shape != ids.shape)
    fail(variant, "route results have the wrong shape");
  const int32_t *id = view<int32_t>(ids);
  const float *w = view<float>(weights);
  for (int64_t t = 0; t < T; ++t) {
    bool empty = false;
    int64_t valid = 0;
    for (int64_t j = 0; j < K; ++j) {
      int32_t e = id[t * K + j];
      if (e < -1 || e >= S)
        fail(variant, "an id outside [-1, S)");
      if (e == -1) {
        empty = true;
        if (w[t * K + j] != 0.0f)
          fail(variant, "an empty slot with a non-zero weight");
        continue;
      }
      if (empty)
        fail(variant, "a valid slot after an empty one");
      ++valid;
      for (int64_t i = 0; i < j; ++i)
        if (id[t * K + i] == e)
          fail(variant, "an expert chosen twice by one token");
    }
    if (!maxValid.empty() && valid > maxValid[t])
      fail(variant, "more valid slots than k_per_token allows");
  }
}

/// Dispatch results against x and ids (E compute experts).
static void checkDispatch(const std::string &variant, const Outcome &o,
                          const Array<float, 2> &x,
                          const Array<int32_t, 2> &ids, int32_t E,
                          int64_t rowLimit) {
  const Result &rows = o.results[0], &offsets = o.results[1],
               &slotRows = o.results[2];
  int64_t T = x.shape[0], H = x.shape[1], K = ids.shape[1];
  const int32_t *off = view<int32_t>(offsets);
  if (offsets.shape != std::vector<int64_t>{E + 1} || off[0] != 0)
    fail(variant, "offsets[0] != 0");
  for (int32_t e = 0; e < E; ++e)
    if (off[e + 1] < off[e])
      fail(variant, "offsets decrease");
  int64_t R = rows.shape[0];
  if ((rowLimit < 0 && off[E] != R) ||
      (rowLimit >= 0 && (R != rowLimit || off[E] > R)))
    fail(variant, "offsets[E] does not match the rows");
  if (slotRows.shape != std::vector<int64_t>{T, K})
    fail(variant, "slot_rows has the wrong shape");
  const int32_t *slot = view<int32_t>(slotRows);
  const float *r = view<float>(rows);
  int64_t dispatched = 0;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < K; ++j) {
      int32_t e = ids.data[t * K + j], s = slot[t * K + j];
      bool compute = e >= 0 && e < E;
      if (s < -1 || s >= R || (!compute && s != -1) ||
          (rowLimit < 0 && compute && s == -1))
        fail(variant, "a slot row that does not match its id");
      if (s < 0)
        continue;
      ++dispatched;
      if (s < off[e] || s >= off[e + 1])
        fail(variant, "a row outside its expert's segment");
      if (std::memcmp(r + s * H, x.data.data() + t * H, H * sizeof(float)))
        fail(variant, "a dispatched row differs from its token");
    }
  if (dispatched != off[E])
    fail(variant, "rows and dispatched slots disagree");
  for (int64_t i = off[E] * H; i < R * H; ++i)
    if (r[i] != 0.0f)
      fail(variant, "a padding row is not zero");
}

/// A variant's results as an Outcome (each buffer copied, then freed).
static void takeAll(Outcome &o, IdsWeights &r) {
  o.results.push_back(take(r.a));
  o.results.push_back(take(r.b));
}
static void takeAll(Outcome &o, Dispatched &r) {
  o.results.push_back(take(r.a));
  o.results.push_back(take(r.b));
  o.results.push_back(take(r.c));
}
template <typename T, int N> static void takeAll(Outcome &o, Desc<T, N> &r) {
  o.results.push_back(take(r));
}

/// Calls a variant on the descriptors of `arrays` (and a status of its
/// own, the trailing argument of every entry point) and collects its
/// results and error code.
template <typename R, typename... Params, typename... Arrays>
static Outcome invoke(void (*fn)(R *, Params...), Arrays &...arrays) {
  R results;
  std::memset(&results, 0, sizeof(results));
  auto descs = std::make_tuple(arrays.desc()...);
  int32_t status = 0;
  std::apply([&](auto &...d) { fn(&results, &d..., &status); }, descs);
  Outcome o;
  o.error = status;
  takeAll(o, results);
  return o;
}

/// Runs a variant twice on `arrays` (see runTwice) and returns its outcome.
template <typename Fn, typename... Arrays>
static Outcome run(const char *name, bool mismatch, Fn fn, Arrays &...arrays) {
  return runTwice(
      name, mismatch, [&] { return invoke(fn, arrays...); }, arrays...);
}

/// A result of the expected shape and no runtime error (sizes consistent).
static void expectShape(const char *name, const Outcome &o,
                        std::vector<int64_t> shape) {
  if (o.error)
    fail(name, "a runtime error with consistent sizes");
  if (o.results[0].shape != shape)
    fail(name, "a result of the wrong shape");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Input in(data, size);
  unsigned variant = in.byte();
  uint8_t tokens = in.byte();
  // Mostly small batches; sometimes past the kernels' 256-row chunks.
  int64_t T = tokens < 240 ? tokens % 40 : 200 + (tokens - 240) * 8;
  // One time in eight, one per-token argument gets another T.
  bool mismatch = in.below(8) == 0;
  int64_t T2 = mismatch ? (T == 0 ? 3 : T + 1 + in.below(3)) : T;

  auto route = [&](const char *name, int64_t K, int32_t S, auto fn) {
    Array<float, 2> logits = in.floats<2>({T, S});
    Outcome o = run(name, false, fn, logits);
    if (o.error)
      fail(name, "a runtime error with consistent sizes");
    checkRoute(name, o, T, K, S);
  };
  auto routeWithBias = [&](const char *name, int64_t K, int32_t S, auto fn) {
    Array<float, 2> logits = in.floats<2>({T, S});
    Array<float, 1> bias = in.floats<1>({S});
    Outcome o = run(name, false, fn, logits, bias);
    if (o.error)
      fail(name, "a runtime error with consistent sizes");
    checkRoute(name, o, T, K, S);
  };

  switch (variant % 19) {
  case 0:
    route("route_top_k", 3, 10, _mlir_ciface_route_top_k);
    break;
  case 1:
    route("route_top_p", 4, 10, _mlir_ciface_route_top_p);
    break;
  case 2:
    route("route_adaptive", 4, 10, _mlir_ciface_route_adaptive);
    break;
  case 3:
    routeWithBias("route_threshold", 4, 10, _mlir_ciface_route_threshold);
    break;
  case 4:
    routeWithBias("route_capacity_position_groups", 3, 8,
                  _mlir_ciface_route_capacity_position_groups);
    break;
  case 5: {
    const char *name = "route_dynamic_k";
    Array<float, 2> logits = in.floats<2>({T, 10});
    Array<int32_t, 1> k = in.ints<1>({T2}, 0, 4);
    Outcome o = run(name, mismatch, _mlir_ciface_route_dynamic_k, logits, k);
    if (!mismatch) {
      if (o.error)
        fail(name, "a runtime error with consistent sizes");
      std::vector<int64_t> limit;
      for (int32_t v : k.data)
        limit.push_back(std::min<int64_t>(std::max<int32_t>(v, 0), 4));
      checkRoute(name, o, T, 4, 10, limit);
    }
    break;
  }
  case 6:
    route("route_expert_choice", 3, 8, _mlir_ciface_route_expert_choice);
    break;
  case 7:
    route("route_capacity_score", 2, 8, _mlir_ciface_route_capacity_score);
    break;
  case 8: {
    // Static result T = 5: any other T must be reported.
    const char *name = "route_static_tokens";
    Array<float, 2> logits = in.floats<2>({T, 8});
    Outcome o = run(name, T != 5, _mlir_ciface_route_static_tokens, logits);
    if (T == 5) {
      if (o.error)
        fail(name, "a runtime error with consistent sizes");
      checkRoute(name, o, 5, 2, 8);
    }
    break;
  }
  case 9:
  case 10: {
    bool padded = variant % 19 == 10;
    const char *name = padded ? "dispatch_padded" : "dispatch";
    int64_t K = padded ? 3 : 1 + in.below(4);
    Array<float, 2> x = in.floats<2>({T2, 4});
    Array<int32_t, 2> ids = in.ids<2>({T, K}, 8);
    Outcome o = run(
        name, mismatch,
        padded ? _mlir_ciface_dispatch_padded : _mlir_ciface_dispatch, x, ids);
    if (!mismatch) {
      if (o.error)
        fail(name, "a runtime error with consistent sizes");
      checkDispatch(name, o, x, ids, 6, padded ? 9 : -1);
    }
    break;
  }
  case 11: {
    const char *name = "grouped_matmul";
    int64_t G = 1 + in.below(4), Kd = 1 + in.below(40), N = 1 + in.below(40);
    Array<float, 2> lhs = in.floats<2>({T, Kd});
    Array<float, 3> rhs = in.floats<3>({G, mismatch ? Kd + 1 : Kd, N});
    Array<int32_t, 1> offsets = in.ints<1>({G + 1}, 0, static_cast<int32_t>(T));
    Outcome o =
        run(name, mismatch, _mlir_ciface_grouped_matmul, lhs, rhs, offsets);
    if (!mismatch)
      expectShape(name, o, {T, N});
    break;
  }
  case 12: {
    Array<float, 2> rows = in.floats<2>({T, 40});
    Array<int32_t, 1> offsets = in.ints<1>({4}, 0, static_cast<int32_t>(T));
    Array<float, 3> up = in.floats<3>({3, 40, 36}),
                    gate = in.floats<3>({3, 40, 36}),
                    down = in.floats<3>({3, 36, 40});
    expectShape("expert_ffn_gated",
                run("expert_ffn_gated", false, _mlir_ciface_expert_ffn_gated,
                    rows, offsets, up, gate, down),
                {T, 40});
    break;
  }
  case 13: {
    Array<uint16_t, 2> rows = in.bf16<2>({T, 8});
    Array<int32_t, 1> offsets = in.ints<1>({3}, 0, static_cast<int32_t>(T));
    Array<uint16_t, 3> up = in.bf16<3>({2, 8, 5}), down = in.bf16<3>({2, 5, 8});
    Array<uint16_t, 2> bu = in.bf16<2>({2, 5}), bd = in.bf16<2>({2, 8});
    expectShape("expert_ffn_bf16",
                run("expert_ffn_bf16", false, _mlir_ciface_expert_ffn_bf16,
                    rows, offsets, up, down, bu, bd),
                {T, 8});
    break;
  }
  case 14: {
    const char *name = "combine";
    int64_t R = in.below(50);
    Array<float, 2> y = in.floats<2>({R, 4});
    Array<int32_t, 2> slots = in.ints<2>({T, 3}, -1, static_cast<int32_t>(R));
    Array<int32_t, 2> ids = in.ids<2>({T, 3}, 10);
    Array<float, 2> w = in.floats<2>({T, 3});
    Array<float, 2> x = in.floats<2>({T2, 4});
    Array<float, 3> wc = in.floats<3>({1, 4, 2});
    Array<float, 2> v = in.floats<2>({1, 4});
    Outcome o =
        run(name, mismatch, _mlir_ciface_combine, y, slots, ids, w, x, wc, v);
    if (!mismatch)
      expectShape(name, o, {T, 4});
    break;
  }
  case 15: {
    const char *name = "aux_loss";
    Array<float, 2> scores = in.floats<2>({T, 10});
    Array<int32_t, 2> ids = in.ids<2>({T2, 3}, 10);
    Outcome o = run(name, mismatch, _mlir_ciface_aux_loss, scores, ids);
    if (!mismatch && o.error)
      fail(name, "a runtime error with consistent sizes");
    break;
  }
  case 16: {
    Array<float, 2> x = in.floats<2>({T, 8});
    Array<float, 2> wr = in.floats<2>({8, 10});
    Array<float, 3> up = in.floats<3>({6, 8, 5}),
                    gate = in.floats<3>({6, 8, 5}),
                    down = in.floats<3>({6, 5, 8}),
                    wc = in.floats<3>({1, 8, 2});
    Array<float, 2> v = in.floats<2>({1, 8});
    expectShape(
        "layer",
        run("layer", false, _mlir_ciface_layer, x, wr, up, gate, down, wc, v),
        {T, 8});
    break;
  }
  case 17: {
    const char *name = "layer_dynamic_k";
    Array<float, 2> x = in.floats<2>({T, 8});
    Array<float, 2> wr = in.floats<2>({8, 8});
    Array<int32_t, 1> k = in.ints<1>({T2}, 0, 4);
    Array<float, 3> up = in.floats<3>({6, 8, 5}),
                    down = in.floats<3>({6, 5, 8});
    Array<float, 2> bu = in.floats<2>({6, 5}), bd = in.floats<2>({6, 8});
    Outcome o = run(name, mismatch, _mlir_ciface_layer_dynamic_k, x, wr, k, up,
                    down, bu, bd);
    if (!mismatch)
      expectShape(name, o, {T, 8});
    break;
  }
  default: {
    Array<float, 2> x = in.floats<2>({T, 8});
    Array<float, 2> wr = in.floats<2>({8, 6});
    Array<float, 3> up = in.floats<3>({6, 8, 5}),
                    down = in.floats<3>({6, 5, 8});
    expectShape("layer_expert_choice",
                run("layer_expert_choice", false,
                    _mlir_ciface_layer_expert_choice, x, wr, up, down),
                {T, 8});
    break;
  }
  }
  return 0;
}
