/* AVX2/FMA kernels of the BF16/F16, NF4 and INT8 linears (linear_quant.h). Compiled with
 * target attributes and chosen at run time, so a build for an older CPU still runs the
 * reference twins. Each output is computed the same way whatever the row range or n_tok:
 * 8-lane partial sums over k, a fixed reduction, then the scalar tail. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "linear_quant.h"

/* Scalar parts (outlier sums, tails) must round like the twins: no implicit fusing. */
#pragma GCC optimize("fp-contract=off")

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INT8_DEQUANT_SCALE 6.200012e-05f
#define INT8_WEIGHT_SCALE 7.874015718698502e-3f

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

AVX2 static float reduce8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static __m256 load_bf16(const uint16_t *p)
{
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

AVX2 static __m256 load_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }

/* y[t * stride] = sum_k w[k] x[t, k] for t < n_tok: four tokens share each weight load; every
 * output keeps one 8-lane accumulator in k order, so blocking never changes a result. */
AVX2 static void dot_tokens(const float *w, const float *x, int n_tok, int n_in, float *y, size_t stride)
{
    int t = 0;
    int k_vec = n_in & ~7;
    for (; t + 4 <= n_tok; t += 4) {
        const float *x0 = x + (size_t)t * n_in, *x1 = x0 + n_in, *x2 = x1 + n_in, *x3 = x2 + n_in;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int k = 0; k < k_vec; k += 8) {
            __m256 wv = _mm256_loadu_ps(w + k);
            a0 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x0 + k), a0);
            a1 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + k), a1);
            a2 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x2 + k), a2);
            a3 = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x3 + k), a3);
        }
        float s0 = reduce8(a0), s1 = reduce8(a1), s2 = reduce8(a2), s3 = reduce8(a3);
        for (int k = k_vec; k < n_in; k++) {
            s0 += w[k] * x0[k];
            s1 += w[k] * x1[k];
            s2 += w[k] * x2[k];
            s3 += w[k] * x3[k];
        }
        y[(size_t)t * stride] = s0;
        y[(size_t)(t + 1) * stride] = s1;
        y[(size_t)(t + 2) * stride] = s2;
        y[(size_t)(t + 3) * stride] = s3;
    }
    for (; t < n_tok; t++) {
        const float *xt = x + (size_t)t * n_in;
        __m256 a = _mm256_setzero_ps();
        for (int k = 0; k < k_vec; k += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(xt + k), a);
        float s0 = reduce8(a);
        for (int k = k_vec; k < n_in; k++) s0 += w[k] * xt[k];
        y[(size_t)t * stride] = s0;
    }
}

/* w[n_in] = row r of a 16-bit weight as float32 */
AVX2 static void half_decode_row(const qe_linear *lin, int r, float *w)
{
    const uint16_t *wr = (const uint16_t *)lin->weight + (size_t)r * lin->n_in;
    bool is_bf16 = lin->format == QE_WEIGHT_BF16;
    int k = 0;
    for (; k + 8 <= lin->n_in; k += 8) _mm256_storeu_ps(w + k, is_bf16 ? load_bf16(wr + k) : load_f16(wr + k));
    for (; k < lin->n_in; k++) w[k] = is_bf16 ? qe_bf16_to_f32(wr[k]) : qe_f16_to_f32(wr[k]);
}

/* One token (decode): convert as it multiplies, in the same lane order as dot_tokens. */
AVX2 static void half_rows_one(const qe_linear *lin, const float *x, float *y, int row_begin, int row_end)
{
    bool is_bf16 = lin->format == QE_WEIGHT_BF16;
    int n_in = lin->n_in, k_vec = n_in & ~7;
    for (int r = row_begin; r < row_end; r++) {
        const uint16_t *wr = (const uint16_t *)lin->weight + (size_t)r * n_in;
        __m256 a = _mm256_setzero_ps();
        if (is_bf16)
            for (int k = 0; k < k_vec; k += 8) a = _mm256_fmadd_ps(load_bf16(wr + k), _mm256_loadu_ps(x + k), a);
        else
            for (int k = 0; k < k_vec; k += 8) a = _mm256_fmadd_ps(load_f16(wr + k), _mm256_loadu_ps(x + k), a);
        float s0 = reduce8(a);
        for (int k = k_vec; k < n_in; k++) s0 += (is_bf16 ? qe_bf16_to_f32(wr[k]) : qe_f16_to_f32(wr[k])) * x[k];
        y[r] = s0;
    }
}

AVX2 static void half_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end,
                           float *w)
{
    for (int r = row_begin; r < row_end; r++) {
        half_decode_row(lin, r, w);
        dot_tokens(w, x, n_tok, lin->n_in, y + r, (size_t)lin->n_out);
    }
}

void qe_linear_half_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end)
{
    if (qe_cpu_has_avx2() && n_tok == 1) {
        half_rows_one(lin, x, y, row_begin, row_end);
        return;
    }
    float *w = qe_cpu_has_avx2() ? malloc((size_t)lin->n_in * sizeof *w) : NULL;
    if (!w) {
        qe_linear_half_rows_ref(lin, x, n_tok, y, row_begin, row_end);
        return;
    }
    half_rows(lin, x, n_tok, y, row_begin, row_end, w);
    free(w);
}

/* bf16 rounding of 8 floats (round to nearest even; weights are finite) */
AVX2 static __m256 round_bf16x8(__m256 v)
{
    __m256i u = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    u = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb));
    return _mm256_castsi256_ps(_mm256_and_si256(u, _mm256_set1_epi32((int)0xFFFF0000u)));
}

/* Decodes row r of an NF4 weight into w[n_in] as bf16(code * absmax). Lookups go through a
 * 16-entry table per absmax block, split into two 8-lane permutes. */
AVX2 static void nf4_decode_row(const qe_nf4_weight *q, int r, int n_in, float *w)
{
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
}

/* One token, rows that start on a block boundary (n_in a multiple of the block size): decode
 * 8 weights and multiply them at once. The lanes see the same k order as dot_tokens, so the
 * result equals the decode-then-dot path bit for bit. */
AVX2 static void nf4_rows_one(const qe_linear *lin, const float *x, float *y, int row_begin, int row_end)
{
    const qe_nf4_weight *q = lin->weight;
    __m256 code_lo = _mm256_loadu_ps(qe_nf4_code), code_hi = _mm256_loadu_ps(qe_nf4_code + 8);
    const __m256i shifts = _mm256_setr_epi32(4, 0, 4, 0, 4, 0, 4, 0);
    const __m128i dup = _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, -1, -1, -1, -1, -1, -1, -1, -1);
    int n_in = lin->n_in, bs = q->block_size;
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
        y[r] = reduce8(acc);
    }
}

AVX2 static void nf4_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end,
                          float *w)
{
    for (int r = row_begin; r < row_end; r++) {
        nf4_decode_row(lin->weight, r, lin->n_in, w);
        dot_tokens(w, x, n_tok, lin->n_in, y + r, (size_t)lin->n_out);
    }
}

void qe_linear_nf4_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end)
{
    const qe_nf4_weight *q = lin->weight;
    if (qe_cpu_has_avx2() && n_tok == 1 && q->block_size % 8 == 0 && lin->n_in % q->block_size == 0) {
        nf4_rows_one(lin, x, y, row_begin, row_end);
        return;
    }
    float *w = qe_cpu_has_avx2() ? malloc((size_t)lin->n_in * sizeof *w) : NULL;
    if (!w) {
        qe_linear_nf4_rows_ref(lin, x, n_tok, y, row_begin, row_end);
        return;
    }
    nf4_rows(lin, x, n_tok, y, row_begin, row_end, w);
    free(w);
}

/* sum_k a[k] b[k] over int8, exact in int32 (|a|, |b| <= 127, n_in < 2^17 per pair sum) */
AVX2 static int32_t dot_i8(const int8_t *a, const int8_t *b, int n)
{
    __m256i acc = _mm256_setzero_si256();
    int k = 0;
    for (; k + 16 <= n; k += 16) {
        __m256i va = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + k)));
        __m256i vb = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + k)));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(va, vb));
    }
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    int32_t sum = _mm_cvtsi128_si32(s);
    for (; k < n; k++) sum += (int32_t)a[k] * b[k];
    return sum;
}

/* Scratch for one call: the tokens' int8 rows, scales, fp16 values and outlier columns. */
typedef struct {
    int8_t *qx;     /* [n_tok, n_in]           */
    float *sca;     /* [n_tok]                  */
    float *x16;     /* [n_tok, n_in]            */
    int *outliers;  /* column lists, all tokens */
    int *n_outliers_before; /* [n_tok + 1] prefix counts */
} int8_scratch;

/* acc[t] = dot_i8(a[t], b) for four tokens sharing each widened weight load */
AVX2 static void dot_i8_x4(const int8_t *a, const int8_t *b, int n, int32_t acc[4])
{
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    int k = 0;
    for (; k + 16 <= n; k += 16) {
        __m256i vb = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + k)));
#define ROW(i, s) s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + (size_t)(i) * n + k))), vb))
        ROW(0, s0);
        ROW(1, s1);
        ROW(2, s2);
        ROW(3, s3);
#undef ROW
    }
    __m256i sums[4] = {s0, s1, s2, s3};
    for (int i = 0; i < 4; i++) {
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(sums[i]), _mm256_extracti128_si256(sums[i], 1));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
        acc[i] = _mm_cvtsi128_si32(h);
        for (int j = k; j < n; j++) acc[i] += (int32_t)a[(size_t)i * n + j] * b[j];
    }
}

AVX2 static void int8_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end,
                           const int8_scratch *s)
{
    const qe_int8_linear *q = lin->weight;
    int n_in = lin->n_in;
    for (int r = row_begin; r < row_end; r++) {
        const int8_t *wr = q->w.q + (size_t)r * n_in;
        float scb = q->w.scale[r], bias = q->bias ? q->bias[r] : 0.0f;
        int32_t acc4[4];
        for (int t = 0; t < n_tok; t++) {
            if (t % 4 == 0 && t + 4 <= n_tok) dot_i8_x4(s->qx + (size_t)t * n_in, wr, n_in, acc4);
            int32_t acc = t + 4 - t % 4 <= n_tok ? acc4[t % 4] : dot_i8(s->qx + (size_t)t * n_in, wr, n_in);
            float acc16 = 0.0f;
            for (int j = s->n_outliers_before[t]; j < s->n_outliers_before[t + 1]; j++) {
                int c = s->outliers[j];
                float wd = qe_f16_to_f32(qe_f32_to_f16((float)wr[c] * scb * INT8_WEIGHT_SCALE));
                acc16 += s->x16[(size_t)t * n_in + c] * wd;
            }
            float v = ((float)acc * s->sca[t]) * scb;
            float out = qe_f16_to_f32(qe_f32_to_f16(fmaf(v, INT8_DEQUANT_SCALE, bias)));
            y[(size_t)t * lin->n_out + r] = qe_f16_to_f32(qe_f32_to_f16(out + acc16));
        }
    }
}

/* dst[n] = src[n] rounded to fp16 (F16C conversion: round to nearest even, as torch) */
AVX2 static void round_f16(const float *src, float *dst, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++) dst[i] = qe_f16_to_f32(qe_f32_to_f16(src[i]));
}

void qe_linear_int8_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end)
{
    const qe_int8_linear *q = lin->weight;
    int n_in = lin->n_in;
    size_t n = (size_t)n_tok * n_in;
    int8_scratch s = {0};
    if (qe_cpu_has_avx2()) {
        s.qx = malloc(n);
        s.sca = malloc((size_t)n_tok * sizeof *s.sca);
        s.x16 = malloc(n * sizeof *s.x16);
        s.n_outliers_before = malloc(((size_t)n_tok + 1) * sizeof *s.n_outliers_before);
    }
    if (!s.qx || !s.sca || !s.x16 || !s.n_outliers_before) {
        free(s.qx), free(s.sca), free(s.x16), free(s.n_outliers_before);
        qe_linear_int8_rows_ref(lin, x, n_tok, y, row_begin, row_end);
        return;
    }
    int n_outliers = 0;
    round_f16(x, s.x16, n);
    for (size_t i = 0; i < n; i++) n_outliers += q->threshold > 0.0f && fabsf(s.x16[i]) >= q->threshold;
    s.outliers = malloc((size_t)(n_outliers ? n_outliers : 1) * sizeof *s.outliers);
    if (!s.outliers) {
        free(s.qx), free(s.sca), free(s.x16), free(s.n_outliers_before);
        qe_linear_int8_rows_ref(lin, x, n_tok, y, row_begin, row_end);
        return;
    }
    int j = 0;
    for (int t = 0; t < n_tok; t++) {
        const float *xt = s.x16 + (size_t)t * n_in;
        s.sca[t] = qe_int8_quantize_row(xt, n_in, q->threshold, s.qx + (size_t)t * n_in);
        s.n_outliers_before[t] = j;
        for (int c = 0; c < n_in && q->threshold > 0.0f; c++)
            if (fabsf(xt[c]) >= q->threshold) s.outliers[j++] = c;
    }
    s.n_outliers_before[n_tok] = j;
    int8_rows(lin, x, n_tok, y, row_begin, row_end, &s);
    free(s.qx), free(s.sca), free(s.x16), free(s.outliers), free(s.n_outliers_before);
}
