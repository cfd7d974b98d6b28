/* ref_ops — the plain single-threaded definitions of the backend ops (backend.h), scalar, in
 * the order of the arithmetic they define. The reference backend (backend_ref.c) is these ops
 * and nothing else; the CPU backend runs the row-wise ones itself over thread ranges (each row
 * is independent, so the split changes no bit) and has SIMD versions of the linears and the
 * attention, which tests hold against these twins.
 *
 * Linear twins: y[t * n_out + r] for tokens t < n_tok and rows [row_begin, row_end), x
 * [n_tok, n_in]; double accumulation (F32, BF16/F16, NF4), the exact integer path (INT8,
 * weight.h) or, for the bf16 pairs kernels, their float32 order bit for bit; without the bias
 * except INT8's fused one. */
#ifndef QE_REF_OPS_H
#define QE_REF_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

typedef void (*qe_linear_rows_ref_fn)(const qe_weight *w, const float *x, int n_tok, float *y, int row_begin,
                                      int row_end);

void qe_linear_f32_rows_ref(const qe_weight *w, const float *x, int n_tok, float *y, int row_begin, int row_end);
void qe_linear_half_rows_ref(const qe_weight *w, const float *x, int n_tok, float *y, int row_begin, int row_end);
void qe_linear_nf4_rows_ref(const qe_weight *w, const float *x, int n_tok, float *y, int row_begin, int row_end);
void qe_linear_int8_rows_ref(const qe_weight *w, const float *x, int n_tok, float *y, int row_begin, int row_end);
/* The bf16 pairs order of the BF16 and NF4 linears under bf16 compute on CPUs with AVX512_BF16
 * (cpu/linear_bf16_pairs.c): weights as bf16 (NF4: bf16(code * absmax)), x rounded to bf16 (a
 * denormal to zero), k cut into 32-chunks (the last padded with zeros); lane j of 16 adds, chunk
 * after chunk, the term at position 2j + 1 of the chunk then at 2j, each fmaf with denormal inputs
 * read as zero and a denormal result flushed to zero; s_i = l_i + l_(i+8); y = ((s0 + s4) +
 * (s2 + s6)) + ((s1 + s5) + (s3 + s7)). Position p of chunk c is k = 32c + p, except where
 * qe_bf16_pairs_is_rearranged(w): there it is k = 32c + 4 (p % 8) + p / 8, the order NF4's packed
 * nibbles unpack in. A float32 definition, not double: the kernels match it bit for bit. */
void qe_linear_bf16_pairs_rows_ref(const qe_weight *w, const float *x, int n_tok, float *y, int row_begin,
                                   int row_end);
/* Whether the pairs order rearranges w's chunks: an NF4 weight whose rows are whole blocks of
 * whole 32-chunks. */
bool qe_bf16_pairs_is_rearranged(const qe_weight *w);
/* The int8 twin for w's format (any format). */
qe_linear_rows_ref_fn qe_linear_rows_ref_for(qe_weight_format format);

/* The int8 definition with an explicit outlier-column mask shared by all tokens
 * (is_outlier_col[n_in], bitsandbytes' batch-wide choice), or NULL for per-token columns. */
void qe_int8_matmul_ref(const qe_weight *w, const float *x, int n_tok, const bool *is_outlier_col, float *y,
                        int row_begin, int row_end);

/* Attention in double, output rounded to dtype; scores: scratch [pos0 + n_tok]. */
void qe_attention_ref(const qe_attention_args *args, qe_dtype dtype, double *scores);

/* Row-wise ops over rows [row_begin, row_end) (rope: rows are token x head; glu: elements). */
void qe_rmsnorm_rows_ref(const float *x, const float *weight, float offset, float eps, int dim, qe_dtype dtype,
                         float *y, int row_begin, int row_end);
void qe_rope_rows_ref(float *x, int n_heads, int head_dim, const float *cos_table, const float *sin_table,
                      qe_dtype dtype, int row_begin, int row_end);
void qe_glu_ref(qe_activation act, const float *gate, const float *up, qe_dtype dtype, float *y, size_t begin,
                size_t end);
void qe_add_ref(float *y, const float *x, size_t n, qe_dtype dtype);
/* out[t, :] = table row ids[t] * round(scale), rounded to dtype (table F32, BF16 or F16). */
void qe_embed_ref(const qe_weight *table, const int32_t *ids, int n_tok, float scale, qe_dtype dtype, float *out);

#endif
