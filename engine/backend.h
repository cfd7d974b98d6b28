/* backend — the operations a decoder forward pass is made of, as a table of functions, so the
 * model code (model_forward.c) is written once and runs on any device. Backends:
 *   engine/ref/backend_ref.c     plain single-threaded twins, the definitions (double
 *                                accumulation where the old _ref twins had it)
 *   engine/cpu/backend_cpu.c     threaded, SIMD; owns its thread pool and kernel choice
 *   engine/cuda/backend_cuda.cu  device memory, cuBLAS(Lt) + own kernels
 *
 * Buffers: every float buffer an op touches was allocated by the same backend's alloc
 * (device memory on a GPU; host code never dereferences it). Shapes are row-major; "rows" are
 * tokens (or token x head). `dtype` is the model's compute dtype: F32 means no rounding;
 * BF16/F16 round each op's result the way PyTorch does in that dtype (fp32 accumulation).
 *
 * Errors: ops return void. A failing op (out of memory, a too small workspace, a kernel launch
 * error) records the first error in be->error (qe_backend_fail) and the following ops become
 * no-ops (qe_backend_failed); sync() waits for the device, returns that status with its
 * message in err, and clears it (qe_backend_take_error). No op exits or prints. */
#ifndef QE_BACKEND_H
#define QE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "logprob.h" /* qe_row_stats, qe_row_stats_of: what row_stats reduces a row to */
#include "model_config.h"
#include "qe_error.h"
#include "weight.h"

/* A linear weight (or embedding table) prepared for one backend: the CPU backend keeps the host
 * data and its kernel choice and thread split; a GPU backend holds device copies. Opaque: each
 * backend casts it to its own struct. */
typedef struct qe_backend_linear qe_backend_linear;

/* The cache rows [., n_kv_heads, head_dim] hold position s in row s % kv_ring (kv_ring 0: row s),
 * filled for every position a query reads: those of (pos0 + t - window, pos0 + t] for each query
 * t (from 0 without a window). A sliding-window layer's ring (model_config.h, qe_kv_ring) keeps
 * kv_ring >= window + n_tok - 1, so the keys of one call never share a row; the ops refuse a
 * smaller ring. Keys are visited in position order whatever the ring, so the bits are those
 * of a flat cache.
 *
 * Packed segments (seg_row != NULL; qe_model_forward_packed): the call's tokens are several
 * independent continuations of one shared prefix of shared_len positions. Query t, in cache row
 * pos0 + t, belongs to the segment whose first token is in row seg_row[t]; it sits at position
 * shared_len + (pos0 + t - seg_row[t]) and reads the shared positions below shared_len from
 * rows s, its own segment's from rows seg_row[t] + (s - shared_len). Its numbers are those it
 * gets alone after the shared prefix. Only where the call's rows do not wrap around a ring. */
typedef struct {
    const float *q;             /* [n_tok, n_heads, head_dim]                                */
    const float *k_cache;       /* [rows, n_kv_heads, head_dim], see above                   */
    const float *v_cache;       /* same layout                                               */
    float *out;                 /* [n_tok, n_heads, head_dim]                                */
    int n_tok, pos0;            /* query t sits in cache row pos0 + t (unpacked: position too) */
    int n_heads, n_kv_heads, head_dim;
    int window;                 /* keys at positions > p - window only; 0 = all              */
    int kv_ring;                /* rows the positions cycle through; 0 = none (row = position) */
    float scale;                /* scores = scale * q.k                                      */
    const int32_t *seg_row;     /* [n_tok] int32 in a backend buffer, or NULL: see above     */
    int shared_len;             /* packed: positions of the shared prefix                    */
    const int32_t *pos_buf;     /* attend_rows: NULL, or pos0 again in a backend buffer (one
                                   int32), read there by a recorded step (graph_begin)        */
} qe_attention_args;

/* The cache row of position pos. */
static inline int qe_kv_row(const qe_attention_args *args, int pos)
{
    return args->kv_ring > 0 ? pos % args->kv_ring : pos;
}

/* First position a query at position pos reads. */
static inline int qe_attention_first_of(const qe_attention_args *args, int pos)
{
    return args->window > 0 && pos - args->window + 1 > 0 ? pos - args->window + 1 : 0;
}

/* First position query t of an unpacked call reads. */
static inline int qe_attention_first(const qe_attention_args *args, int t)
{
    return qe_attention_first_of(args, args->pos0 + t);
}

/* Host backends (seg_row in host memory): query t's position, and the cache row its key at
 * position s is read from. */
static inline int qe_attention_position(const qe_attention_args *args, int t)
{
    return args->seg_row ? args->shared_len + args->pos0 + t - args->seg_row[t] : args->pos0 + t;
}

static inline int qe_attention_key_row(const qe_attention_args *args, int t, int s)
{
    if (args->seg_row && s >= args->shared_len)
        return args->seg_row[t] + s - args->shared_len;
    return qe_kv_row(args, s);
}

/* NULL when the cache's ring holds every key the call reads; else what is wrong, for the
 * sticky error (the rows would alias and the result would silently change). */
static inline const char *qe_attention_ring_problem(const qe_attention_args *args)
{
    if (args->kv_ring < 0)
        return "a negative ring";
    if (args->kv_ring > 0 && args->seg_row && args->pos0 + args->n_tok > args->kv_ring)
        return "packed segments past the ring's rows";
    if (args->kv_ring > 0 && args->pos0 + args->n_tok - qe_attention_first(args, 0) > args->kv_ring)
        return "a ring smaller than the positions one call reads";
    return NULL;
}

typedef struct qe_backend qe_backend;

#define QE_LINEARS_MAX 3 /* linears of one input in one linears call: q, k, v */

struct qe_backend {
    const char *name;           /* "ref", "cpu", "cuda"                                      */
    void *impl;                 /* the backend's own state                                   */
    qe_error error;             /* first failure since the last sync; error.code == QE_OK when none */

    /* --- memory ------------------------------------------------------------------------- */
    float *(*alloc)(qe_backend *be, size_t n_floats);   /* NULL (and sticky error) when out of memory */
    void (*release)(qe_backend *be, float *buf);         /* NULL-safe */
    /* buf may be reallocated; keeps the first n_keep floats. NULL when out of memory (old kept). */
    float *(*grow)(qe_backend *be, float *buf, size_t n_keep, size_t n_floats);
    /* Scratch the ops may use during one forward pass (int8 activation quantization, attention
     * scores, cuBLASLt workspace): the model calls it once per pass with the largest n_tok per
     * op call, the largest pos0 + n_tok, n_heads and the largest n_in of any linear it will
     * run; ops never allocate. Keeps what it has when that is enough. */
    qe_status (*reserve_workspace)(qe_backend *be, int max_tokens, int max_context, int n_heads,
                                   int max_n_in, qe_error *err);

    /* --- weights ------------------------------------------------------------------------ */
    /* Takes w (its owned buffers move to the backend or are freed once copied; *w is left
     * zeroed, also on failure), returns the backend's handle. compute_dtype is the model's. */
    qe_status (*prepare_linear)(qe_backend *be, qe_weight *w, qe_dtype compute_dtype,
                                qe_backend_linear **out, qe_error *err);
    void (*free_linear)(qe_backend *be, qe_backend_linear *lin);              /* NULL-safe */
    uint64_t (*linear_bytes)(const qe_backend *be, const qe_backend_linear *lin); /* resident */
    /* A norm weight vector copied into a new backend buffer; its values are dtype values (the
     * model's compute dtype) and the backend may hold them in dtype (the CUDA backend does: 2
     * bytes each in a 16-bit model, as transformers holds them). Pass it only to rmsnorm with the
     * same dtype. NULL (and sticky error) on failure. Free it with release. */
    float *(*upload_new)(qe_backend *be, const float *host, size_t n, qe_dtype dtype);

    /* --- ops ---------------------------------------------------------------------------- */
    /* out[t, :] = table row ids[t] (as float) * scale, rounded to dtype; the table is a
     * prepared linear of [n_vocab, dim] (F32, BF16 or F16), ids in host memory. */
    void (*embed)(qe_backend *be, const qe_backend_linear *table, const int32_t *ids, int n_tok, float scale,
                  qe_dtype dtype, float *out);
    /* y[n_tok, n_out] = x W^T + b (INT8: the fused fp16 epilogue of weight.h), then rounded to
     * out_dtype (F32: as computed): the model's linears feed 16-bit activations, and a GPU
     * rounds in the kernel's epilogue instead of a launch of its own */
    void (*linear)(qe_backend *be, const qe_backend_linear *lin, const float *x, int n_tok, qe_dtype out_dtype,
                   float *y);
    /* Optional (NULL: linear n times; call qe_backend_linears): ys[i] = linear(lins[i], x) for
     * i < n <= QE_LINEARS_MAX, the linears that share an input (q, k, v; gate, up), with the
     * very bits linear gives; a GPU decodes them in one launch. */
    void (*linears)(qe_backend *be, int n, const qe_backend_linear *const *lins, const float *x, int n_tok,
                    qe_dtype out_dtype, float *const *ys);
    /* y[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * (offset + weight); in place allowed;
     * weight from upload_new with this dtype */
    void (*rmsnorm)(qe_backend *be, const float *x, const float *weight, float offset, float eps, int n_rows,
                    int dim, qe_dtype dtype, float *y);
    /* Optional (NULL: add, then rmsnorm; call qe_backend_add_rmsnorm): x += delta as add does,
     * then y = rmsnorm(x) as rmsnorm does (y not x): a residual add and the next norm in one
     * launch. */
    void (*add_rmsnorm)(qe_backend *be, float *x, const float *delta, const float *weight, float offset, float eps,
                        int n_rows, int dim, qe_dtype dtype, float *y);
    /* Rotates x[n_tok, n_heads, head_dim] in place, rotate_half layout (pairs i, i + head_dim/2),
     * with cos/sin [n_tok, head_dim/2]. */
    void (*rope)(qe_backend *be, float *x, int n_tok, int n_heads, int head_dim, const float *cos_table,
                 const float *sin_table, qe_dtype dtype);
    /* Optional (NULL: rope of q, then of k; call qe_backend_rope_qk): the queries q[n_tok, n_heads,
     * head_dim] and the keys k[n_tok, n_kv_heads, head_dim] rotated with the same tables, each as
     * rope does it; a GPU does both in one launch. */
    void (*rope_qk)(qe_backend *be, float *q, float *k, int n_tok, int n_heads, int n_kv_heads, int head_dim,
                    const float *cos_table, const float *sin_table, qe_dtype dtype);
    /* Causal (optionally windowed) softmax attention with grouped KV heads; out rounded to dtype. */
    void (*attention)(qe_backend *be, const qe_attention_args *args, qe_dtype dtype);
    /* Optional (NULL: rope, a copy of each row, then attention; call qe_backend_attend_rows): the
     * decode step of n sequences, each in its own cache. For i < n: where cos_table is not NULL,
     * args[i].q and row i of k_rows rotated as rope does with row i of cos_table and sin_table
     * [n, head_dim / 2] (both are scratch after the call); row i of k_rows and v_rows [n,
     * n_kv_heads * head_dim] into args[i]'s caches at row qe_kv_row(args[i], pos0), then
     * attention of args[i], one unpacked token; the args differ only in q, out, caches, pos0 and
     * kv_ring. A GPU runs them in one launch. */
    void (*attend_rows)(qe_backend *be, int n, const qe_attention_args *args, float *k_rows, const float *v_rows,
                        const float *cos_table, const float *sin_table, qe_dtype dtype);
    /* y[i] = act(gate[i]) * up[i]; y may alias gate */
    void (*glu)(qe_backend *be, qe_activation act, const float *gate, const float *up, size_t n, qe_dtype dtype,
                float *y);
    /* Optional (NULL: linears of gate and up into gate_y and up_y, then glu into gate_y; call
     * qe_backend_glu_linears): gate_y[n_tok, n_out] = glu(act, linear(gate, x), linear(up, x)),
     * each linear rounded to dtype, with the very bits of those ops; up_y is scratch the backend
     * may leave untouched. A GPU decodes it in one launch. */
    void (*glu_linears)(qe_backend *be, qe_activation act, const qe_backend_linear *gate, const qe_backend_linear *up,
                        const float *x, int n_tok, int n_out, qe_dtype dtype, float *gate_y, float *up_y);
    void (*add)(qe_backend *be, float *y, const float *x, size_t n, qe_dtype dtype);   /* y += x */
    void (*copy)(qe_backend *be, float *dst, const float *src, size_t n);
    void (*download)(qe_backend *be, float *host, const float *src, size_t n);
    void (*upload)(qe_backend *be, float *dst, const float *host, size_t n);
    /* Per row r of logits[n_rows, n_vocab]: argmax, max, log-sum-exp and row[targets[r]]
     * (targets in host memory, may be NULL), written to host out[n_rows]. */
    void (*row_stats)(qe_backend *be, const float *logits, int n_rows, int n_vocab, const int32_t *targets,
                      qe_row_stats *out);

    /* --- recorded steps (optional; NULL: every op is issued as it is called) ------------- */
    /* A run of ops recorded once and replayed, for passes whose ops repeat with the same host
     * arguments (a decode step: only the token, the rope tables and the positions change, and
     * they travel in backend buffers written before the run: pos_buf). graph_begin(key): true
     * when a recording under these key bytes is still valid: it has been issued, and the caller
     * skips the ops; false: the ops the caller issues until graph_end are recorded under key (and
     * run). A recording is dropped once the backend allocates or frees memory, since its ops
     * hold the buffers' addresses; the key names whatever else they hold (which caches). */
    bool (*graph_begin)(qe_backend *be, const void *key, size_t key_bytes);
    void (*graph_end)(qe_backend *be);

    /* Waits for the device; returns the first error since the last sync (and clears it). */
    qe_status (*sync)(qe_backend *be, qe_error *err);
    void (*destroy)(qe_backend *be);     /* NULL-safe; frees the table itself */
};

/* What the CPU backend's reserve_workspace allocates for these arguments with n_threads threads
 * (<= 0: the machine's cores), for the memory estimate. */
uint64_t qe_cpu_workspace_bytes(int n_threads, int max_tokens, int max_context, int max_n_in);

/* Constructors. n_threads <= 0: the machine's cores. */
qe_status qe_backend_ref_create(qe_backend **out, qe_error *err);
qe_status qe_backend_cpu_create(int n_threads, qe_backend **out, qe_error *err);
/* device_index: CUDA ordinal; QE_EUNSUPPORTED in a build without CUDA; a clear error when the
 * machine has no such GPU. */
qe_status qe_backend_cuda_create(int device_index, qe_backend **out, qe_error *err);

/* The optional ops, or what they stand for where a backend has none. */
void qe_backend_linears(qe_backend *be, int n, const qe_backend_linear *const *lins, const float *x, int n_tok,
                        qe_dtype out_dtype, float *const *ys);
void qe_backend_add_rmsnorm(qe_backend *be, float *x, const float *delta, const float *weight, float offset,
                            float eps, int n_rows, int dim, qe_dtype dtype, float *y);
void qe_backend_attend_rows(qe_backend *be, int n, const qe_attention_args *args, float *k_rows, const float *v_rows,
                            const float *cos_table, const float *sin_table, qe_dtype dtype);
void qe_backend_rope_qk(qe_backend *be, float *q, float *k, int n_tok, int n_heads, int n_kv_heads, int head_dim,
                        const float *cos_table, const float *sin_table, qe_dtype dtype);
void qe_backend_glu_linears(qe_backend *be, qe_activation act, const qe_backend_linear *gate,
                            const qe_backend_linear *up, const float *x, int n_tok, int n_out, qe_dtype dtype,
                            float *gate_y, float *up_y);

/* The sticky error (engine/backend.c), for backends to share. qe_backend_fail records the
 * first failure only; qe_backend_take_error returns it (QE_OK when none) into err and clears it. */
void qe_backend_fail(qe_backend *be, qe_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline bool qe_backend_failed(const qe_backend *be) { return be->error.code != QE_OK; }
qe_status qe_backend_take_error(qe_backend *be, qe_error *err);

/* Memory ops of the backends that run in host memory (ref, cpu): malloc'd float buffers, copies
 * by memcpy (copy, download and upload alike). */
float *qe_host_alloc(qe_backend *be, size_t n_floats);
void qe_host_release(qe_backend *be, float *buf);
float *qe_host_grow(qe_backend *be, float *buf, size_t n_keep, size_t n_floats);
float *qe_host_upload_new(qe_backend *be, const float *host, size_t n, qe_dtype dtype);
void qe_host_copy(qe_backend *be, float *dst, const float *src, size_t n);

#endif
