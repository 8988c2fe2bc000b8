/*===- GgmlMoE.c - llama.cpp's MoE expert FFN on ggml's CPU backend -------===//
 *
 * Part of the moe-mlir project.
 *
 *===----------------------------------------------------------------------===//
 *
 * A small shared library that bench/llama_cpp.py builds against a ggml
 * checkout (ggml-org/ggml, built CPU-only by the script) and calls through
 * ctypes, in the same process and the same rounds as the compiled layer.
 *
 * It runs the expert FFN of a SwiGLU MoE layer as llama.cpp's
 * build_moe_ffn does it on the CPU backend, on routing ids given by the
 * caller:
 *
 *   x   : [H, 1, T]  f32 (the tokens, one "row" broadcast to every slot)
 *   ids : [K, T]     i32 (the routed experts of each token)
 *   up   = ggml_mul_mat_id(w_up   [H, F, E], x, ids)   -> [F, K, T]
 *   gate = ggml_mul_mat_id(w_gate [H, F, E], x, ids)   -> [F, K, T]
 *   h    = ggml_swiglu_split(gate, up)                 -> silu(gate) * up
 *   down = ggml_mul_mat_id(w_down [F, H, E], h, ids)   -> [H, K, T]
 *
 * (ggml's shapes list the contiguous dimension first: w_up [H, F, E] is
 * E matrices of F rows of H values, i.e. the transpose of each expert of
 * the contract's w_up [E, H, F].) The routing weights and the sum over the
 * K slots (a ggml_mul and views in llama.cpp) are not part of the timed
 * graph; the caller combines the down rows when it checks results.
 *
 * Weights are quantized with ggml's own quantizer (ggml_quantize_chunk)
 * from the caller's f32 weights in the contract layout. With `repack`, the
 * weights go into the CPU backend's first "extra" buffer type that accepts
 * them (CPU_REPACK: Q4_0 as interleaved 8x8 blocks on AVX2/AVX-512 CPUs),
 * as llama.cpp places them by default; where none does (F32, Q8_0 on x86),
 * into a plain CPU buffer. The graph runs on the CPU backend
 * (ggml_backend_graph_compute) with the thread count set by the caller.
 *
 *===----------------------------------------------------------------------===*/

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"

#ifdef _OPENMP
int omp_get_thread_num(void); /* from the OpenMP runtime ggml links */
#endif

typedef struct moe_ggml {
  int H, F, E, K;
  enum ggml_type type;
  ggml_backend_t backend;
  /* Weights: w[0] up, w[1] gate, w[2] down. */
  struct ggml_context *weight_ctx;
  ggml_backend_buffer_t weight_buffer;
  struct ggml_tensor *w[3];
  int repacked;
  /* The graph of one token count. */
  int T;
  struct ggml_context *graph_ctx;
  ggml_backend_buffer_t graph_buffer;
  struct ggml_cgraph *graph;
  struct ggml_tensor *x, *ids, *out;
  char error[256];
} moe_ggml;

static char last_error[256];

static void fail(const char *message) {
  snprintf(last_error, sizeof last_error, "%s", message);
}

/* The message of the last failure (setup returning NULL, or a non-zero
 * status). */
const char *moe_ggml_last_error(void) { return last_error; }

/* ggml's type for a name ("f32", "q8_0", "q4_0", ...), or -1. */
int moe_ggml_type(const char *name) {
  for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
    const char *n = ggml_type_name((enum ggml_type)t);
    if (n && strcmp(n, name) == 0 && ggml_type_size((enum ggml_type)t) > 0)
      return t;
  }
  return -1;
}

/* Quantizes `nrows` rows of `n_per_row` f32 values into `dst` with ggml's
 * quantizer (what the weights of `moe_ggml_setup` go through); returns the
 * bytes written. */
size_t moe_ggml_quantize(int type, const float *src, void *dst, long nrows,
                         long n_per_row) {
  return ggml_quantize_chunk((enum ggml_type)type, src, dst, 0, nrows,
                             n_per_row, NULL);
}

/* A description of the CPU features ggml was compiled for and of the
 * OpenMP runtime its threads come from, into `buffer`. */
void moe_ggml_info(char *buffer, int size) {
  const char *omp = "none (ggml threadpool)";
#ifdef _OPENMP
  Dl_info info;
  if (dladdr((void *)omp_get_thread_num, &info) && info.dli_fname)
    omp = info.dli_fname;
#endif
  snprintf(buffer, size,
           "ggml %s, CPU features compiled in: AVX2=%d FMA=%d F16C=%d "
           "AVX512=%d AVX512_VBMI=%d AVX512_VNNI=%d AVX512_BF16=%d "
           "AVX_VNNI=%d AMX_INT8=%d; OpenMP runtime: %s",
           ggml_version(), ggml_cpu_has_avx2(), ggml_cpu_has_fma(),
           ggml_cpu_has_f16c(), ggml_cpu_has_avx512(),
           ggml_cpu_has_avx512_vbmi(), ggml_cpu_has_avx512_vnni(),
           ggml_cpu_has_avx512_bf16(), ggml_cpu_has_avx_vnni(),
           ggml_cpu_has_amx_int8(), omp);
}

static void free_graph(moe_ggml *m) {
  if (m->graph_buffer)
    ggml_backend_buffer_free(m->graph_buffer);
  if (m->graph_ctx)
    ggml_free(m->graph_ctx);
  m->graph_buffer = NULL;
  m->graph_ctx = NULL;
  m->graph = NULL;
  m->T = 0;
}

void moe_ggml_teardown(moe_ggml *m) {
  if (!m)
    return;
  free_graph(m);
  if (m->weight_buffer)
    ggml_backend_buffer_free(m->weight_buffer);
  if (m->weight_ctx)
    ggml_free(m->weight_ctx);
  if (m->backend)
    ggml_backend_free(m->backend);
  free(m);
}

/* Allocates the three weight tensors in the first extra buffer type of the
 * CPU device that gives all of them a repacked layout (tensor->extra set at
 * allocation), else in a plain CPU buffer. */
static int allocate_weights(moe_ggml *m, int repack) {
  if (repack) {
    ggml_backend_reg_t reg = ggml_backend_cpu_reg();
    ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, 0);
    ggml_backend_dev_get_extra_bufts_t get_extra =
        (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(
            reg, "ggml_backend_dev_get_extra_bufts");
    ggml_backend_buffer_type_t *extra = get_extra ? get_extra(dev) : NULL;
    for (; extra && *extra; ++extra) {
      ggml_backend_buffer_t buffer =
          ggml_backend_alloc_ctx_tensors_from_buft(m->weight_ctx, *extra);
      if (!buffer)
        continue;
      int all = 1;
      for (int i = 0; i < 3; ++i)
        all &= m->w[i]->extra != NULL;
      if (all) {
        m->weight_buffer = buffer;
        m->repacked = 1;
        return 0;
      }
      /* Not for this type: undo the allocation. */
      ggml_backend_buffer_free(buffer);
      for (int i = 0; i < 3; ++i) {
        m->w[i]->buffer = NULL;
        m->w[i]->data = NULL;
        m->w[i]->extra = NULL;
      }
    }
  }
  m->weight_buffer = ggml_backend_alloc_ctx_tensors_from_buft(
      m->weight_ctx, ggml_backend_cpu_buffer_type());
  return m->weight_buffer ? 0 : -1;
}

/* A ggml MoE FFN of E experts (top-K), hidden H, ffn F, weights of type
 * `type` (a ggml type, see moe_ggml_type), run with `threads` threads.
 * Returns NULL on failure (see moe_ggml_last_error). The weights are set
 * afterwards with moe_ggml_set_weight. */
moe_ggml *moe_ggml_setup(int H, int F, int E, int K, int type, int repack,
                         int threads) {
  if (type < 0 || type >= GGML_TYPE_COUNT) {
    fail("unknown ggml type");
    return NULL;
  }
  if (H % ggml_blck_size((enum ggml_type)type) ||
      F % ggml_blck_size((enum ggml_type)type)) {
    fail("H and F must be multiples of the type's block size");
    return NULL;
  }
  moe_ggml *m = calloc(1, sizeof *m);
  if (!m) {
    fail("out of memory");
    return NULL;
  }
  m->H = H, m->F = F, m->E = E, m->K = K, m->type = (enum ggml_type)type;
  m->backend = ggml_backend_cpu_init();
  if (!m->backend) {
    fail("ggml_backend_cpu_init failed");
    moe_ggml_teardown(m);
    return NULL;
  }
  ggml_backend_cpu_set_n_threads(m->backend, threads);
  struct ggml_init_params params = {
      .mem_size = 4 * ggml_tensor_overhead(), .mem_buffer = NULL,
      .no_alloc = true};
  m->weight_ctx = ggml_init(params);
  m->w[0] = ggml_new_tensor_3d(m->weight_ctx, m->type, H, F, E);
  m->w[1] = ggml_new_tensor_3d(m->weight_ctx, m->type, H, F, E);
  m->w[2] = ggml_new_tensor_3d(m->weight_ctx, m->type, F, H, E);
  ggml_set_name(m->w[0], "ffn_up_exps");
  ggml_set_name(m->w[1], "ffn_gate_exps");
  ggml_set_name(m->w[2], "ffn_down_exps");
  if (allocate_weights(m, repack)) {
    fail("cannot allocate the weights");
    moe_ggml_teardown(m);
    return NULL;
  }
  return m;
}

/* 1 when the weights are in a repacked (extra) buffer type. */
int moe_ggml_repacked(const moe_ggml *m) { return m->repacked; }

/* The name of the weights' buffer type (CPU, CPU_REPACK, ...). */
const char *moe_ggml_buffer_type(const moe_ggml *m) {
  return ggml_backend_buffer_name(m->weight_buffer);
}

/* Bytes of one weight tensor (all experts). */
size_t moe_ggml_weight_bytes(const moe_ggml *m, int which) {
  return ggml_nbytes(m->w[which]);
}

/* Sets weight `which` (0 up, 1 gate, 2 down) from f32 weights in the
 * contract layout: up/gate [E, H, F], down [E, F, H] (row-major, the
 * contraction first). Each expert is transposed into ggml's rows (one row
 * per output, along the contraction) and quantized with ggml's quantizer. */
int moe_ggml_set_weight(moe_ggml *m, int which, const float *w) {
  if (which < 0 || which > 2) {
    fail("weight index must be 0 (up), 1 (gate) or 2 (down)");
    return -1;
  }
  struct ggml_tensor *t = m->w[which];
  const long depth = t->ne[0], outputs = t->ne[1], experts = t->ne[2];
  const size_t expert_bytes = t->nb[2];
  float *rows = malloc(sizeof(float) * depth * outputs);
  /* Repacking buffers take the whole tensor in one set_tensor call. */
  int host = ggml_backend_buffer_is_host(m->weight_buffer) && !m->repacked;
  char *staging = host ? (char *)t->data : malloc(ggml_nbytes(t));
  if (!rows || !staging) {
    free(rows);
    if (!host)
      free(staging);
    fail("out of memory");
    return -1;
  }
  for (long e = 0; e < experts; ++e) {
    const float *src = w + e * depth * outputs; /* [depth, outputs] */
    for (long d = 0; d < depth; ++d)
      for (long o = 0; o < outputs; ++o)
        rows[o * depth + d] = src[d * outputs + o];
    char *dst = staging + e * expert_bytes;
    if (m->type == GGML_TYPE_F32)
      memcpy(dst, rows, sizeof(float) * depth * outputs);
    else
      ggml_quantize_chunk(m->type, rows, dst, 0, outputs, depth, NULL);
  }
  free(rows);
  if (!host) {
    ggml_backend_tensor_set(t, staging, 0, ggml_nbytes(t));
    free(staging);
  }
  return 0;
}

/* Builds the graph for T tokens (replacing the previous one). */
int moe_ggml_prepare(moe_ggml *m, int T) {
  free_graph(m);
  struct ggml_init_params params = {
      .mem_size = 16 * ggml_tensor_overhead() + ggml_graph_overhead(),
      .mem_buffer = NULL,
      .no_alloc = true};
  m->graph_ctx = ggml_init(params);
  struct ggml_context *ctx = m->graph_ctx;
  m->x = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, m->H, 1, T);
  m->ids = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, m->K, T);
  ggml_set_name(m->x, "x");
  ggml_set_name(m->ids, "selected_experts");
  ggml_set_input(m->x);
  ggml_set_input(m->ids);
  struct ggml_tensor *up = ggml_mul_mat_id(ctx, m->w[0], m->x, m->ids);
  struct ggml_tensor *gate = ggml_mul_mat_id(ctx, m->w[1], m->x, m->ids);
  struct ggml_tensor *h = ggml_swiglu_split(ctx, gate, up);
  m->out = ggml_mul_mat_id(ctx, m->w[2], h, m->ids);
  ggml_set_name(up, "ffn_moe_up");
  ggml_set_name(gate, "ffn_moe_gate");
  ggml_set_name(h, "ffn_moe_swiglu");
  ggml_set_name(m->out, "ffn_moe_down");
  ggml_set_output(m->out);
  m->graph = ggml_new_graph(ctx);
  ggml_build_forward_expand(m->graph, m->out);
  m->graph_buffer = ggml_backend_alloc_ctx_tensors(ctx, m->backend);
  if (!m->graph_buffer) {
    free_graph(m);
    fail("cannot allocate the graph's tensors");
    return -1;
  }
  m->T = T;
  return 0;
}

/* Sets the inputs of the prepared graph: x [T, H] f32, ids [T, K] i32
 * (each in [0, E)). */
int moe_ggml_set_input(moe_ggml *m, const float *x, const int32_t *ids) {
  if (!m->graph) {
    fail("no graph: call moe_ggml_prepare first");
    return -1;
  }
  for (long i = 0; i < (long)m->T * m->K; ++i)
    if (ids[i] < 0 || ids[i] >= m->E) {
      fail("expert id out of range");
      return -1;
    }
  ggml_backend_tensor_set(m->x, x, 0, ggml_nbytes(m->x));
  ggml_backend_tensor_set(m->ids, ids, 0, ggml_nbytes(m->ids));
  return 0;
}

/* Sets the thread count of the following runs. */
void moe_ggml_set_threads(moe_ggml *m, int threads) {
  ggml_backend_cpu_set_n_threads(m->backend, threads);
}

/* Runs the graph once: the timed call. */
int moe_ggml_run(moe_ggml *m) {
  if (!m->graph) {
    fail("no graph: call moe_ggml_prepare first");
    return -1;
  }
  if (ggml_backend_graph_compute(m->backend, m->graph) != GGML_STATUS_SUCCESS) {
    fail("ggml_backend_graph_compute failed");
    return -1;
  }
  return 0;
}

/* Copies the down projection of every slot, [T, K, H] f32, into `out`. */
int moe_ggml_output(moe_ggml *m, float *out) {
  if (!m->graph) {
    fail("no graph: call moe_ggml_prepare first");
    return -1;
  }
  ggml_backend_tensor_get(m->out, out, 0, ggml_nbytes(m->out));
  return 0;
}
