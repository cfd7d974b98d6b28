/* AVX2/FMA kernels of the BF16/F16 and NF4 linears (cpu/linear.h, weight.h; INT8 is in
 * linear_int8_avx2.c). Compiled with target attributes and chosen at run time, so a build for
 * an older CPU still runs the reference twins. A batch decodes blocks of weight rows to float32
 * for the dot tile (cpu/dot_tile.h); one token converts weights as it multiplies, in the tile's
 * order, so each output has the same bits whatever the row range or n_tok. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/dot_tile.h"
#include "ref/ref_ops.h"

/* Scalar tails must round like the dot tile's: no implicit fusing. */
#pragma GCC optimize("fp-contract=off")

#define AVX2 __attribute__((target("avx2,fma,f16c")))

bool qe_cpu_has_avx2(void)
{
    static int has = -1;
    if (has < 0) {
        __builtin_cpu_init();
        /* Every CPU with AVX2 has F16C (Intel since Ivy Bridge, AMD since Piledriver), and
         * clang 14 cannot ask for it by name. */
        has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return has;
}

AVX2 static __m256 load_bf16(const uint16_t *p)
{
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

AVX2 static __m256 load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* Row r of a 16-bit weight as float32 in w[n_in] (a qe_dot_row_fn) */
AVX2 static const float *half_decode_row(const qe_linear *lin, int r, float *w)
{
    const uint16_t *wr = lin->w.half + (size_t)r * lin->w.n_in;
    bool is_bf16 = lin->w.format == QE_WEIGHT_BF16;
    int k = 0;
    for (; k + 8 <= lin->w.n_in; k += 8) _mm256_storeu_ps(w + k, is_bf16 ? load_bf16(wr + k) : load_f16(wr + k));
    for (; k < lin->w.n_in; k++) w[k] = is_bf16 ? qe_bf16_to_f32(wr[k]) : qe_f16_to_f32(wr[k]);
    return w;
}

/* One token (decode): convert as it multiplies, in the dot tile's order. */
AVX2 static void half_rows_one(const qe_linear *lin, const float *x, float *y, int row_begin, int row_end)
{
    bool is_bf16 = lin->w.format == QE_WEIGHT_BF16;
    int n_in = lin->w.n_in, k_vec = n_in & ~7;
    for (int r = row_begin; r < row_end; r++) {
        const uint16_t *wr = lin->w.half + (size_t)r * n_in;
        __m256 a = _mm256_setzero_ps();
        if (is_bf16)
            for (int k = 0; k < k_vec; k += 8) a = _mm256_fmadd_ps(load_bf16(wr + k), _mm256_loadu_ps(x + k), a);
        else
            for (int k = 0; k < k_vec; k += 8) a = _mm256_fmadd_ps(load_f16(wr + k), _mm256_loadu_ps(x + k), a);
        float s0 = qe_dot_reduce8(a);
        for (int k = k_vec; k < n_in; k++) s0 += (is_bf16 ? qe_bf16_to_f32(wr[k]) : qe_f16_to_f32(wr[k])) * x[k];
        y[r] = s0;
    }
}

void qe_linear_half_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end,
                         void *scratch)
{
    if (!qe_cpu_has_avx2())
        qe_linear_half_rows_ref(&lin->w, x, n_tok, y, row_begin, row_end);
    else if (n_tok == 1 && lin->gemv)
        qe_linear_gemv_rows(lin, x, y, row_begin, row_end, scratch);
    else if (n_tok == 1)
        half_rows_one(lin, x, y, row_begin, row_end);
    else
        qe_dot_rows(lin, half_decode_row, x, n_tok, y, row_begin, row_end, scratch);
}

/* bf16 rounding of 8 floats (round to nearest even; weights are finite) */
AVX2 static __m256 round_bf16x8(__m256 v)
{
    __m256i u = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    u = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb));
    return _mm256_castsi256_ps(_mm256_and_si256(u, _mm256_set1_epi32((int)0xFFFF0000u)));
}

/* Row r of an NF4 weight as bf16(code * absmax) in w[n_in] (a qe_dot_row_fn). Lookups go through a
 * 16-entry table per absmax block, split into two 8-lane permutes. */
AVX2 static const float *nf4_decode_row(const qe_linear *lin, int r, float *w)
{
    const qe_nf4_weight *q = &lin->w.nf4;
    int n_in = lin->w.n_in;
    __m256 code_lo = _mm256_loadu_ps(qe_nf4_code), code_hi = _mm256_loadu_ps(qe_nf4_code + 8);
    const __m256i shifts = _mm256_setr_epi32(4, 0, 4, 0, 4, 0, 4, 0);
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1, -1, -1, -1, -1);
    int64_t base = (int64_t)r * n_in;
    int k = 0;
    while (k < n_in) {
        int64_t i = base + k;
        int64_t block = i / q->block_size;
        int seg_end = (int)((block + 1) * q->block_size - base);
        if (seg_end > n_in) seg_end = n_in;
        float m = qe_nf4_block_absmax(q, block);
        __m256 vm = _mm256_set1_ps(m);
        __m256 t_lo = round_bf16x8(_mm256_mul_ps(code_lo, vm)), t_hi = round_bf16x8(_mm256_mul_ps(code_hi, vm));
        for (; k < seg_end && ((base + k) & 1); k++) { /* to a byte boundary */
            uint8_t byte = q->packed[(base + k) / 2];
            w[k] = qe_bf16_to_f32(qe_f32_to_bf16(qe_nf4_code[byte & 15] * m));
        }
        for (; k + 8 <= seg_end; k += 8) {
            uint32_t four;
            memcpy(&four, q->packed + (base + k) / 2, 4);
            __m256i idx = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(_mm_cvtsi32_si128((int)four), dup));
            idx = _mm256_and_si256(_mm256_srlv_epi32(idx, shifts), _mm256_set1_epi32(15));
            __m256 lo = _mm256_permutevar8x32_ps(t_lo, idx), hi = _mm256_permutevar8x32_ps(t_hi, idx);
            __m256 is_hi = _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7)));
            _mm256_storeu_ps(w + k, _mm256_blendv_ps(lo, hi, is_hi));
        }
        for (; k < seg_end; k++) {
            int64_t j = base + k;
            uint8_t byte = q->packed[j / 2];
            w[k] = qe_bf16_to_f32(qe_f32_to_bf16(qe_nf4_code[(j & 1) ? byte & 15 : byte >> 4] * m));
        }
    }
    return w;
}

/* One token, rows that start on a block boundary (n_in a multiple of the block size): decode
 * 8 weights and multiply them at once. The lanes see the dot tile's k order, so the
 * result equals the decode-then-dot path bit for bit. */
AVX2 static void nf4_rows_one(const qe_linear *lin, const float *x, float *y, int row_begin, int row_end)
{
    const qe_nf4_weight *q = &lin->w.nf4;
    __m256 code_lo = _mm256_loadu_ps(qe_nf4_code), code_hi = _mm256_loadu_ps(qe_nf4_code + 8);
    const __m256i shifts = _mm256_setr_epi32(4, 0, 4, 0, 4, 0, 4, 0);
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1, -1, -1, -1, -1);
    int n_in = lin->w.n_in, bs = q->block_size;
    for (int r = row_begin; r < row_end; r++) {
        int64_t base = (int64_t)r * n_in;
        __m256 acc = _mm256_setzero_ps();
        for (int k0 = 0; k0 < n_in; k0 += bs) {
            __m256 vm = _mm256_set1_ps(qe_nf4_block_absmax(q, (base + k0) / bs));
            __m256 t_lo = round_bf16x8(_mm256_mul_ps(code_lo, vm)), t_hi = round_bf16x8(_mm256_mul_ps(code_hi, vm));
            const uint8_t *bytes = q->packed + (base + k0) / 2;
            for (int k = 0; k < bs; k += 8) {
                uint32_t four;
                memcpy(&four, bytes + k / 2, 4);
                __m256i idx = _mm256_cvtepu8_epi32(_mm_shuffle_epi8(_mm_cvtsi32_si128((int)four), dup));
                idx = _mm256_and_si256(_mm256_srlv_epi32(idx, shifts), _mm256_set1_epi32(15));
                __m256 lo = _mm256_permutevar8x32_ps(t_lo, idx), hi = _mm256_permutevar8x32_ps(t_hi, idx);
                __m256 is_hi = _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7)));
                acc = _mm256_fmadd_ps(_mm256_blendv_ps(lo, hi, is_hi), _mm256_loadu_ps(x + k0 + k), acc);
            }
        }
        y[r] = qe_dot_reduce8(acc);
    }
}

void qe_linear_nf4_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end,
                        void *scratch)
{
    const qe_nf4_weight *q = &lin->w.nf4;
    if (!qe_cpu_has_avx2())
        qe_linear_nf4_rows_ref(&lin->w, x, n_tok, y, row_begin, row_end);
    else if (n_tok == 1 && lin->gemv)
        qe_linear_gemv_rows(lin, x, y, row_begin, row_end, scratch);
    else if (n_tok == 1 && q->block_size % 8 == 0 && lin->w.n_in % q->block_size == 0)
        nf4_rows_one(lin, x, y, row_begin, row_end);
    else
        qe_dot_rows(lin, nf4_decode_row, x, n_tok, y, row_begin, row_end, scratch);
}
