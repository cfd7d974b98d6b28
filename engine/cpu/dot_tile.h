/* dot_tile — the float32 dot products under the F32, BF16/F16 and NF4 linears: a block of up to
 * QE_TILE_ROWS weight rows, as float32 (the F32 weight itself, or rows decoded into a buffer),
 * against every token of a call, with register blocking over rows and tokens (AVX2/FMA; AVX-512
 * where the CPU has it). Chosen at run time: callers check qe_cpu_has_avx2() first.
 *
 * Every output is summed in one order, whichever kernel, block or token position computes it:
 * eight lane sums over the whole 8-blocks of k, each a chain of fused multiply-adds in k order;
 * the lanes reduced as ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)) (qe_dot_reduce8); then
 * the n_in % 8 remaining terms added in k order, each multiplied then added. The AVX-512 kernel
 * keeps that order by holding two tokens' eight lanes in each 16-lane register. So a token gives
 * the same bits alone and in a batch, and the one-token kernels that convert weights as they
 * multiply (linear_quant_avx2.c) match the decode-then-tile path bit for bit. */
#ifndef QE_DOT_TILE_H
#define QE_DOT_TILE_H

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>

#include "cpu/linear.h"

#define QE_TILE_ROWS 8 /* weight rows per block */

/* The lane sum of one accumulator, in the order every path shares. */
__attribute__((target("avx2,fma"))) static inline float qe_dot_reduce8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); /* l_i + l_(i+4) */
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Row r of lin as float32: a pointer into the weight, or row r decoded into buf[n_in]. */
typedef const float *(*qe_dot_row_fn)(const qe_linear *lin, int r, float *buf);

/* y[t * n_out + r] = sum_k row(r)[k] x[t, k] for rows [row_begin, row_end), tokens t < n_tok
 * (the qe_linear_rows_fn contract, scratch of qe_linear_scratch_bytes(n_tok, n_in)). */
void qe_dot_rows(const qe_linear *lin, qe_dot_row_fn row, const float *x, int n_tok, float *y, int row_begin,
                 int row_end, void *scratch);

/* Whether the CPU runs the AVX-512 kernel (the tests report it). */
bool qe_cpu_has_avx512(void);

#endif
