/* linear — every linear layer of a decoder block: y[t, :] = W x[t, :] (+ bias), with W
 * [n_out, n_in] in some weight format (F32 here; BF16, INT8, NF4 plug in beside it).
 *
 * A format supplies one kernel that computes the output rows [row_begin, row_end) for all
 * n_tok tokens; qe_linear_forward splits the rows (or, for some formats, the tokens) over the
 * thread pool and adds the bias.
 * Kernels accumulate in float32 and must give each output the same value whatever the
 * row range or n_tok (so a KV cache filled in any batching holds the same numbers). Each
 * fast kernel has a plain reference twin (tests/test_linear.c holds them together). */
#ifndef QE_LINEAR_H
#define QE_LINEAR_H

#include <stddef.h>

#include "qe_error.h"
#include "qeval_engine.h"
#include "safetensors.h"
#include "threadpool.h"

typedef enum { QE_WEIGHT_F32, QE_WEIGHT_BF16, QE_WEIGHT_F16, QE_WEIGHT_INT8, QE_WEIGHT_NF4 } qe_weight_format;

typedef struct qe_linear qe_linear;

/* y[t * n_out + r] for t in [0, n_tok), r in [row_begin, row_end); x is [n_tok, n_in]. */
typedef void (*qe_linear_rows_fn)(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin,
                                  int row_end);

struct qe_linear {
    qe_weight_format format;
    int n_out, n_in;
    const void *weight;         /* the format's data; F32: [n_out, n_in] row-major, 32-bit aligned */
    const void *aux;            /* the format's side data (scales, absmax, outlier columns), or NULL */
    const float *bias;          /* [n_out], or NULL */
    void *owned[3];             /* what this linear allocated for weight/aux/bias; freed by qe_linear_free */
    qe_linear_rows_fn rows;     /* the kernel */
    int row_grain;              /* rows per thread range are a multiple of this */
    int token_grain;            /* > 0: the kernel prepares every token it is given (int8 quantizes
                                 * them), so threads rather take whole tokens, in multiples of this,
                                 * when a call has enough of them; 0: threads split rows */
    size_t resident_bytes;      /* bytes of weight + aux + bias this format keeps */
};

/* Builds lin from a [n_out, n_in] weight tensor (F32, BF16 or F16 in the file) and an optional
 * bias [n_out], in the variant's weight format. An F32, aligned weight is borrowed from the
 * mapping (no copy); anything else is converted into memory the linear owns. */
qe_status qe_linear_init(qe_linear *lin, const qe_variant *variant, const qe_tensor_view *weight,
                         const qe_tensor_view *bias, qe_error *err);
void qe_linear_free(qe_linear *lin); /* NULL-safe; leaves lin zeroed */

/* y[n_tok, n_out] = x[n_tok, n_in] W^T + bias; pool may be NULL. */
void qe_linear_forward(const qe_linear *lin, const float *x, int n_tok, float *y, qe_pool *pool);

/* The F32 format: fast kernel and its plain twin (double accumulation). */
void qe_linear_f32_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end);
void qe_linear_f32_rows_ref(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin,
                            int row_end);
/* Makes lin an F32 linear over w[n_out, n_in] (borrowed) and bias (borrowed, may be NULL). */
void qe_linear_wrap_f32(qe_linear *lin, const float *w, const float *bias, int n_out, int n_in);

/* A float32 copy or view of a tensor: *data points at the mapping when the tensor is F32 and
 * aligned, else at a buffer stored in *owned (caller frees). Fails for non-float dtypes. */
qe_status qe_tensor_as_f32(const qe_tensor_view *t, const float **data, float **owned, qe_error *err);

#endif
