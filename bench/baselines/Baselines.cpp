//===- Baselines.cpp - Machine limits and the OpenBLAS expert loop -------===//
//
// Part of the moe-mlir project.
//
//===----------------------------------------------------------------------===//
//
// A small shared library that bench/cpu_layer.py calls through ctypes, in the
// same process and the same run as the compiled layer it compares with:
//
//  * moe_fma_peak: GFLOP/s of an FMA loop with 12 independent accumulator
//    chains per thread (enough to cover the FMA latency of two pipes), with
//    the widest vectors the compiler targets (-march=native);
//  * moe_triad: GB/s of a[i] = b[i] + s * c[i] over arrays far larger than
//    the caches (24 bytes moved per element: two reads and one write);
//  * moe_expert_loop: the per-expert OpenBLAS baseline of an MoE FFN on
//    exactly the dispatched rows: for each expert with rows, sgemm (sgemv for
//    a single row) for the up and gate projections, SiLU(gate) * up, sgemm
//    (sgemv) for the down projection into the output rows.
//
//===----------------------------------------------------------------------===//

#include <cblas.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

extern "C" void openblas_set_num_threads(int);

namespace {
double now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// 12 independent chains of 16-lane FMAs (vectorised by the compiler).
double fmaWork(long iterations) {
  constexpr int kChains = 12, kLanes = 16;
  alignas(64) float acc[kChains][kLanes];
  for (int c = 0; c < kChains; ++c)
    for (int l = 0; l < kLanes; ++l)
      acc[c][l] = static_cast<float>(c + l);
  const float mul = 0.999999f, add = 1e-7f;
  for (long i = 0; i < iterations; ++i)
    for (int c = 0; c < kChains; ++c)
#pragma omp simd
      for (int l = 0; l < kLanes; ++l)
        acc[c][l] = std::fma(acc[c][l], mul, add);
  double sum = 0;
  for (int c = 0; c < kChains; ++c)
    for (int l = 0; l < kLanes; ++l)
      sum += acc[c][l];
  return sum;
}
} // namespace

extern "C" {

/// FMA peak in GFLOP/s with `threads` threads (best of 3 runs).
double moe_fma_peak(int threads) {
  const long iterations = 20000000;
  double best = 0;
  for (int run = 0; run < 3; ++run) {
    std::vector<std::thread> pool;
    std::vector<double> sink(threads);
    double start = now();
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] { sink[t] = fmaWork(iterations); });
    for (auto &thread : pool)
      thread.join();
    double seconds = now() - start;
    double flops = 2.0 * 12 * 16 * iterations * threads;
    if (sink[0] == 42.0)
      flops += 1; // keep the result alive
    best = std::max(best, flops / seconds / 1e9);
  }
  return best;
}

/// Stream triad bandwidth in GB/s with `threads` threads over arrays of
/// `elements` floats each (best of 5 runs).
double moe_triad(int threads, long elements) {
  std::vector<float> a(elements), b(elements, 1.0f), c(elements, 2.0f);
  double best = 0;
  for (int run = 0; run < 5; ++run) {
    std::vector<std::thread> pool;
    double start = now();
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        long begin = elements * t / threads, end = elements * (t + 1) / threads;
        float *pa = a.data(), *pb = b.data(), *pc = c.data();
#pragma omp simd
        for (long i = begin; i < end; ++i)
          pa[i] = pb[i] + 0.5f * pc[i];
      });
    for (auto &thread : pool)
      thread.join();
    double seconds = now() - start;
    best = std::max(best, 3.0 * 4.0 * elements / seconds / 1e9);
  }
  return best + (a[elements / 2] == 42.0f ? 1e-9 : 0.0);
}

/// Sets the OpenBLAS thread count.
void moe_blas_threads(int threads) { openblas_set_num_threads(threads); }

/// The per-expert OpenBLAS FFN (SwiGLU) on dispatched rows:
/// rows [R, H], offsets [E+1] (row segments per expert), w_up / w_gate
/// [E, H, F], w_down [E, F, H] (row-major), out [R, H]. `scratch` holds
/// 2 * R * F floats.
void moe_expert_loop(const float *rows, const int32_t *offsets, int experts,
                     int hidden, int ffn, const float *wUp, const float *wGate,
                     const float *wDown, float *out, float *scratch,
                     long rowsTotal) {
  float *up = scratch;
  float *gate = scratch + rowsTotal * ffn;
  for (int e = 0; e < experts; ++e) {
    int begin = offsets[e], count = offsets[e + 1] - offsets[e];
    if (count <= 0)
      continue;
    const float *a = rows + static_cast<long>(begin) * hidden;
    const float *wu = wUp + static_cast<long>(e) * hidden * ffn;
    const float *wg = wGate + static_cast<long>(e) * hidden * ffn;
    const float *wd = wDown + static_cast<long>(e) * ffn * hidden;
    float *u = up + static_cast<long>(begin) * ffn;
    float *g = gate + static_cast<long>(begin) * ffn;
    float *y = out + static_cast<long>(begin) * hidden;
    if (count == 1) {
      // y = x @ W  <=>  W^T x for row-major W [hidden, ffn].
      cblas_sgemv(CblasRowMajor, CblasTrans, hidden, ffn, 1.0f, wu, ffn, a, 1,
                  0.0f, u, 1);
      cblas_sgemv(CblasRowMajor, CblasTrans, hidden, ffn, 1.0f, wg, ffn, a, 1,
                  0.0f, g, 1);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, count, ffn, hidden,
                  1.0f, a, hidden, wu, ffn, 0.0f, u, ffn);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, count, ffn, hidden,
                  1.0f, a, hidden, wg, ffn, 0.0f, g, ffn);
    }
    for (long i = 0; i < static_cast<long>(count) * ffn; ++i)
      u[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
    if (count == 1)
      cblas_sgemv(CblasRowMajor, CblasTrans, ffn, hidden, 1.0f, wd, hidden, u,
                  1, 0.0f, y, 1);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, count, hidden, ffn,
                  1.0f, u, ffn, wd, hidden, 0.0f, y, hidden);
  }
}
}
