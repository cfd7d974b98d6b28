/* linear_quant — the BF16/F16, INT8 (LLM.int8()) and NF4 weight formats of qe_linear, with
 * their CPU kernels: each a plain reference twin (the definition) and an AVX2/FMA fast path
 * chosen at run time when the CPU has it (tests/test_linear_quant.c holds them together).
 *
 * What each computes, following transformers + bitsandbytes on the GPU:
 *   half  y[t, r] = sum_k x[t, k] * W[r, k], W stored as bf16 or fp16, float32 accumulation.
 *   nf4   W[r, k] = bf16(code4 * absmax) (dequantize_4bit to the bf16 compute dtype), then
 *         as half.
 *   int8  per token: x rounded to fp16, columns with |x| >= threshold go through the 16-bit
 *         path (x16 times fp16(CB * SCB / 127)), the rest is quantized row-wise to int8 and
 *         multiplied in int32; y = fp16(fp16((acc * SCA) * SCB * 1/127^2 + bias) + outliers).
 *         bitsandbytes picks outlier columns over the whole batch of a call; here each token
 *         uses its own, so an output never depends on which tokens share the call (the
 *         reference twin can take a batch-wide mask to reproduce bitsandbytes exactly).
 * The int8 format keeps its bias (fused as bitsandbytes does); the others leave it to
 * qe_linear_forward. */
#ifndef QE_LINEAR_QUANT_H
#define QE_LINEAR_QUANT_H

#include <stdbool.h>

#include "dtype.h"
#include "linear.h"
#include "quant.h"

#define QE_INT8_DEQUANT_SCALE 6.200012e-05f         /* bitsandbytes' MM_DEQUANT_CONST, 1 / 127^2 */
#define QE_INT8_WEIGHT_SCALE 7.874015718698502e-3f /* int8_vectorwise_dequant's 1 / 127       */

/* LLM.int8() weight plus what its kernel needs. */
typedef struct {
    qe_int8_weight w;
    float threshold;          /* outlier threshold; 0 = none                      */
    const float *bias;        /* [n_out] fp16 values, or NULL                      */
} qe_int8_linear;

/* Builds lin from w[n_out, n_in] float32 values in the variant's format (BF16 for bf16, INT8
 * for int8, NF4 for nf4 and nf4-nodq), rounding w to the dtype the reference quantizes from.
 * bias (may be NULL) is rounded to the compute dtype and copied. */
qe_status qe_linear_init_quant(qe_linear *lin, const qe_variant *variant, const float *w, const float *bias,
                               int n_out, int n_in, qe_error *err);

/* Makes lin a 16-bit linear (QE_DTYPE_BF16 or QE_DTYPE_F16) holding a rounded copy of w
 * (used for lm_head in the 16-bit variants). */
qe_status qe_linear_init_half(qe_linear *lin, qe_dtype dtype, const float *w, const float *bias, int n_out,
                              int n_in, qe_error *err);

/* The compute dtype transformers runs each variant in. */
qe_dtype qe_variant_compute_dtype(const qe_variant *variant);

/* Kernels (qe_linear_rows_fn). The _ref twins are scalar with double accumulation; the fast
 * ones use AVX2/FMA when present and fall back to the twin otherwise. */
void qe_linear_half_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end);
void qe_linear_half_rows_ref(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end);
void qe_linear_nf4_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end);
void qe_linear_nf4_rows_ref(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end);
void qe_linear_int8_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end);
void qe_linear_int8_rows_ref(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end);

/* The int8 definition with an explicit outlier-column mask shared by all tokens
 * (is_outlier_col[n_in], bitsandbytes' batch-wide choice), or NULL for per-token columns. */
void qe_int8_matmul_ref(const qe_int8_linear *q, const float *x, int n_tok, const bool *is_outlier_col, float *y,
                        int row_begin, int row_end);

/* Whether the fast paths run vectorized on this CPU. */
bool qe_cpu_has_avx2(void);

#endif
