/* linear (CPU) — the CPU backend's prepared linear: a qe_weight (weight.h) plus the kernel chosen
 * for its format and the way threads split it. y[t, :] = W x[t, :] (+ bias).
 *
 * A format's kernel computes the output rows [row_begin, row_end) for all n_tok tokens;
 * qe_linear_forward splits the rows (or, for int8, the tokens) over the thread pool and adds
 * the bias. One token (decode) has its own matrix-vector kernel (gemv, cpu/linear_gemv.c,
 * linear_int8_avx2.c and linear_bf16_pairs.c) that streams the weight once: the token is
 * prepared once per call (int8 quantizes it, bf16 pairs rounds it to bf16), then the rows go
 * to the threads as one contiguous run each, claimed from the pool's ticket, so both cores
 * stream and one the OS has descheduled does not hold the other up. It gives each output the bits of the batched kernel (same summation
 * order), and the format's rows kernel runs it too when called with one token. Kernels
 * accumulate in float32 and give each output the same value whatever the row range or n_tok
 * (so a KV cache filled in any batching holds the same numbers); they allocate nothing: each
 * call gets scratch of qe_linear_scratch_bytes(n_tok, n_in) bytes. Each fast kernel has a
 * plain reference twin (ref/ref_ops.h); tests/test_linear_quant.c holds them together. */
#ifndef QE_CPU_LINEAR_H
#define QE_CPU_LINEAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu/threadpool.h"
#include "weight.h"

typedef struct qe_linear qe_linear;

/* y[t * n_out + r] for t in [0, n_tok), r in [row_begin, row_end); x is [n_tok, n_in]. */
typedef void (*qe_linear_rows_fn)(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin,
                                  int row_end, void *scratch);

/* One token: y[r] for r in [row_begin, row_end), from the token as prepare left it. */
typedef void (*qe_linear_gemv_fn)(const qe_linear *lin, const void *token, float *y, int row_begin, int row_end);
/* What gemv reads of the token x[n_in], made in scratch (qe_linear_scratch_bytes(1, n_in)). */
typedef const void *(*qe_linear_prepare_fn)(const qe_linear *lin, const float *x, void *scratch);

struct qe_linear {
    qe_weight w;                /* owned */
    qe_linear_rows_fn rows;     /* the kernel */
    qe_linear_gemv_fn gemv;     /* one token's kernel, or NULL (rows runs it) */
    qe_linear_prepare_fn prepare; /* NULL: gemv reads x itself */
    int32_t *row_sums;          /* INT8 with VNNI: each row's sum of q [n_out] (owned), or NULL */
    int row_grain;              /* rows per thread range are a multiple of this */
    int token_grain;            /* > 0: the kernel prepares every token it is given (int8 quantizes
                                 * them), so threads rather take whole tokens, in multiples of this,
                                 * when a call has enough of them; 0: threads split rows */
};

/* Takes w (left zeroed) and picks its kernel; compute_dtype is the model's (its activations are
 * values of that dtype), which lets BF16 and NF4 take bf16 products (linear_bf16_pairs.c). */
void qe_linear_init(qe_linear *lin, qe_weight *w, qe_dtype compute_dtype);
void qe_linear_free(qe_linear *lin); /* NULL-safe; leaves lin zeroed */

/* Scratch bytes one kernel call over n_tok tokens of n_in inputs may use (one thread's share). */
size_t qe_linear_scratch_bytes(int n_tok, int n_in);

/* y[n_tok, n_out] = x[n_tok, n_in] W^T + bias; pool may be NULL. Thread i of the pool uses
 * scratch + i * scratch_stride, scratch_stride >= qe_linear_scratch_bytes(n_tok, n_in). */
void qe_linear_forward(const qe_linear *lin, const float *x, int n_tok, float *y, qe_pool *pool, char *scratch,
                       size_t scratch_stride);

/* The fast kernels (qe_linear_rows_fn); without AVX2 they run the reference twins. */
void qe_linear_f32_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end,
                        void *scratch);
void qe_linear_half_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end,
                         void *scratch);
void qe_linear_nf4_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end,
                        void *scratch);
void qe_linear_int8_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end,
                         void *scratch);

/* The gemv kernels and their prepare steps, chosen by qe_linear_init (NULL where the CPU
 * lacks what they need). */
void qe_linear_gemv_init(qe_linear *lin);
void qe_linear_int8_gemv_init(qe_linear *lin);
/* BF16 and NF4 under a bf16 compute dtype on a CPU with AVX512_BF16 (and BW, VL, DQ): sets rows,
 * gemv and prepare to the bf16 pairs kernels and returns true; otherwise changes nothing. */
bool qe_linear_bf16_pairs_init(qe_linear *lin, qe_dtype compute_dtype);

/* Rows [row_begin, row_end) of one token through lin->gemv (prepared in scratch). */
static inline void qe_linear_gemv_rows(const qe_linear *lin, const float *x, float *y, int row_begin, int row_end,
                                       void *scratch)
{
    lin->gemv(lin, lin->prepare ? lin->prepare(lin, x, scratch) : x, y, row_begin, row_end);
}

/* Decode kernels ask for each row's weights this many bytes ahead, into L2: one core (AMD EPYC)
 * streamed a bf16 head at 12 GB/s on the hardware prefetchers alone, 23 GB/s so (NF4: 9 -> 13). */
#define QE_GEMV_PREFETCH_BYTES 9216

/* Whether the fast paths run vectorized on this CPU; whether it has what the bf16 pairs kernels need. */
bool qe_cpu_has_avx2(void);
bool qe_cpu_has_avx512_bf16(void);

/* Carves bytes (64-byte aligned) off a scratch cursor. */
static inline void *qe_scratch_take(char **cursor, size_t bytes)
{
    void *p = *cursor;
    *cursor += (bytes + 63) & ~(size_t)63;
    return p;
}

#endif
