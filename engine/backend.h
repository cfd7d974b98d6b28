/* backend — the operations a decoder forward pass is made of, as a table of functions, so the
 * model code (model_forward.c) is written once and runs on any device. The CPU backend
 * (engine/cpu/backend_cpu.c) is the first implementation; a CUDA backend fills the same table.
 *
 * Every float buffer an op touches was allocated by the same backend's alloc. Shapes are
 * row-major; "rows" are tokens (or token x head). `dtype` arguments are the model's compute
 * dtype: F32 means no rounding; BF16/F16 round the op's intermediate results the way
 * PyTorch does when a model runs in that dtype (float32 accumulation inside). */
#ifndef QE_BACKEND_H
#define QE_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "linear.h"
#include "model_config.h"

typedef struct {
    const float *q;             /* [n_tok, n_heads, head_dim]                                */
    const float *k_cache;       /* [>= pos0 + n_tok, n_kv_heads, head_dim], filled to pos0+n_tok */
    const float *v_cache;       /* same layout                                               */
    float *out;                 /* [n_tok, n_heads, head_dim]                                */
    int n_tok, pos0;            /* query t sits at position pos0 + t                         */
    int n_heads, n_kv_heads, head_dim;
    int window;                 /* keys at positions > p - window only; 0 = all              */
    float scale;                /* scores = scale * q.k                                      */
} qe_attention_args;

typedef struct qe_backend qe_backend;

struct qe_backend {
    const char *name;
    void *impl;                 /* the backend's own state */

    float *(*alloc)(qe_backend *be, size_t n_floats);   /* NULL when out of memory */
    void (*release)(qe_backend *be, float *buf);         /* NULL-safe */
    /* buf may be reallocated; keeps the first n_keep floats. NULL when out of memory (old kept). */
    float *(*grow)(qe_backend *be, float *buf, size_t n_keep, size_t n_floats);

    /* out[t, :] = table[ids[t], :] * scale; table [n_vocab, dim] in host memory. */
    void (*embed)(qe_backend *be, const float *table, int dim, const int32_t *ids, int n_tok, float scale,
                  qe_dtype dtype, float *out);
    /* y[n_tok, n_out] = x W^T + b */
    void (*linear)(qe_backend *be, const qe_linear *lin, const float *x, int n_tok, float *y);
    /* y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * (offset + weight); in place allowed */
    void (*rmsnorm)(qe_backend *be, const float *x, const float *weight, float offset, float eps, int n_rows,
                    int dim, qe_dtype dtype, float *y);
    /* Rotates x[n_tok, n_heads, head_dim] in place, rotate_half layout (pairs i, i + head_dim/2),
     * with cos/sin [n_tok, head_dim/2]. */
    void (*rope)(qe_backend *be, float *x, int n_tok, int n_heads, int head_dim, const float *cos_table,
                 const float *sin_table, qe_dtype dtype);
    /* Causal (optionally windowed) softmax attention with grouped KV heads. */
    void (*attention)(qe_backend *be, const qe_attention_args *args, qe_dtype dtype);
    /* y[i] = act(gate[i]) * up[i]; y may alias gate */
    void (*glu)(qe_backend *be, qe_activation act, const float *gate, const float *up, size_t n, qe_dtype dtype,
                float *y);
    /* y[i] += x[i] */
    void (*add)(qe_backend *be, float *y, const float *x, size_t n, qe_dtype dtype);
    /* dst[n] = src[n] */
    void (*copy)(qe_backend *be, float *dst, const float *src, size_t n);
    /* Copies n floats to host memory, and from it. */
    void (*download)(qe_backend *be, float *host, const float *src, size_t n);
    void (*upload)(qe_backend *be, float *dst, const float *host, size_t n);
    /* Rounds x[n] to dtype (nothing for F32). */
    void (*round)(qe_backend *be, float *x, size_t n, qe_dtype dtype);
    void (*destroy)(qe_backend *be);
};

/* The CPU backend over a thread pool (borrowed; may be NULL for single-threaded). */
qe_status qe_backend_cpu_create(qe_pool *pool, qe_backend **out, qe_error *err);

/* Plain single-threaded twins of the CPU ops, the definitions the fast ones are tested against. */
void qe_attention_ref(const qe_attention_args *args);
void qe_round_to_dtype(float *x, size_t n, qe_dtype dtype);

#endif
