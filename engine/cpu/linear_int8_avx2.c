/* The INT8 (LLM.int8()) linear's fast kernel (cpu/linear.h, weight.h), chosen at run time.
 *
 * A call prepares its tokens once: fp16 rounding, each token's outlier columns, and its row-wise
 * int8 quantization (bit for bit qe_int8_quantize_row). Then for each block of 4 weight rows: the
 * int32 dot products with every token, and the fp16 epilogue of the 4 rows at once, rounding
 * step by step as the reference twin does. Integer sums are exact, so the instructions that
 * form them cannot change a result: a batch uses AVX-512 VNNI where the CPU has it (a row
 * against 4 tokens, 64 products per instruction); CPUs without it use AVX2. One token (decode)
 * has its own path (the gemv of cpu/linear.h): the token is prepared once per call, then each
 * thread's rows take VNNI's 64 products per instruction too, the +128 offset of the token undone
 * with each row's sum of q, computed once at load (row_sums). Every token's outputs depend on
 * that token alone. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/linear.h"
#include "ref/ref_ops.h"

/* The epilogue rounds like the twin: no implicit fusing. */
#pragma GCC optimize("fp-contract=off")

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vnni")))
#define INLINE inline __attribute__((always_inline))
#define ROWS 4          /* weight rows per block: the epilogue's 4 lanes */
#define VNNI_TOKENS 4   /* 4 x 4 accumulators, 4 token vectors and a weight vector in 32 zmm */
#define VNNI_BYTES 64   /* k per VNNI step; prepared token rows are padded to a multiple */

static bool cpu_has_vnni(void)
{
    static int has = -1;
    if (has < 0) {
        __builtin_cpu_init();
        has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512vnni");
    }
    return has;
}

/* A call's tokens, prepared once for every row. */
typedef struct {
    int n_tok, n_in;
    int x_stride;           /* bytes per row of qx: n_in rounded up to VNNI_BYTES */
    bool is_offset;         /* qx holds q + 128 as unsigned bytes (the VNNI operand), else q */
    int8_t *qx;             /* [n_tok, x_stride] quantized tokens; outlier columns and padding hold 0 (or 128) */
    float *sca;             /* [n_tok] each token's absmax                              */
    int *outliers;          /* outlier columns, token after token                       */
    float *outlier_x;       /* the fp16-rounded x at each of them                       */
    int *n_outliers_before; /* [n_tok + 1] prefix counts                                */
} int8_tokens;

/* dst[n] = src[n] rounded to fp16 (F16C conversion: round to nearest even, as torch) */
AVX2 static void round_f16(const float *src, float *dst, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++) dst[i] = qe_f16_to_f32(qe_f32_to_f16(src[i]));
}

AVX2 static INLINE __m128 round_f16x4(__m128 v) { return _mm_cvtph_ps(_mm_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)); }

/* qe_int8_quantize_row, bit for bit: the absmax of the kept columns (|x| < threshold when
 * there is one; NaN never), compared as integers since non-negative floats order as their bits
 * (-0, the start, below +0), then q = lrintf(x * 127 / absmax), 0 where dropped or NaN. */
AVX2 static float quantize_row(const float *x, int n, float threshold, int8_t *q)
{
    bool is_sparse = threshold > 0.0f;
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)), vthr = _mm256_set1_ps(threshold);
    const __m256i none = _mm256_set1_epi32(INT32_MIN); /* the bits of -0.0f */
    __m256i best = none;
    int k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + k), abs_mask);
        __m256 keep = _mm256_cmp_ps(a, a, _CMP_ORD_Q);
        if (is_sparse) keep = _mm256_and_ps(keep, _mm256_cmp_ps(a, vthr, _CMP_LT_OQ));
        best = _mm256_max_epi32(best, _mm256_blendv_epi8(none, _mm256_castps_si256(a), _mm256_castps_si256(keep)));
    }
    __m128i b = _mm_max_epi32(_mm256_castsi256_si128(best), _mm256_extracti128_si256(best, 1));
    b = _mm_max_epi32(b, _mm_shuffle_epi32(b, 0x4E));
    b = _mm_max_epi32(b, _mm_shuffle_epi32(b, 0xB1));
    float absmax = _mm_cvtss_f32(_mm_castsi128_ps(b));
    for (int c = k; c < n; c++) {
        float a = fabsf(x[c]);
        if (is_sparse && !(a < threshold)) continue;
        if (a > absmax || (a == 0.0f && signbit(absmax))) absmax = a;
    }
    float scale = 127.0f * (1.0f / absmax);
    const __m256 vscale = _mm256_set1_ps(scale);
    for (k = 0; k + 8 <= n; k += 8) {
        __m256 xv = _mm256_loadu_ps(x + k), v = _mm256_mul_ps(xv, vscale);
        __m256 drop = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
        if (is_sparse)
            drop = _mm256_or_ps(drop, _mm256_cmp_ps(_mm256_and_ps(xv, abs_mask), vthr, _CMP_NLT_UQ));
        __m256i i32 = _mm256_andnot_si256(_mm256_castps_si256(drop), _mm256_cvtps_epi32(v)); /* rounds to even */
        __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
        _mm_storel_epi64((__m128i *)(q + k), _mm_packs_epi16(i16, i16));
    }
    for (; k < n; k++) {
        float v = x[k] * scale;
        q[k] = (is_sparse && !(fabsf(x[k]) < threshold)) || isnan(v) ? 0 : (int8_t)lrintf(v);
    }
    return absmax;
}

/* Appends the columns c with |x[c]| >= threshold, and x there, to columns and values; returns
 * the end of columns. Eight at a time: most blocks hold none. */
AVX2 static int *find_outliers(const float *x, int n, float threshold, int *columns, float *values)
{
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF)), vthr = _mm256_set1_ps(threshold);
    int c = 0;
    for (; c + 8 <= n; c += 8) {
        unsigned hits = (unsigned)_mm256_movemask_ps(
            _mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(x + c), abs_mask), vthr, _CMP_GE_OQ));
        for (; hits; hits &= hits - 1) {
            int i = c + __builtin_ctz(hits);
            *columns++ = i;
            *values++ = x[i];
        }
    }
    for (; c < n; c++)
        if (fabsf(x[c]) >= threshold) {
            *columns++ = c;
            *values++ = x[c];
        }
    return columns;
}

/* Fills s for tokens x[n_tok, n_in], its arrays carved from scratch. */
AVX2 static void tokens_prepare(const qe_weight *q, const float *x, int n_tok, int n_in, bool is_offset,
                                int8_tokens *s, void *scratch)
{
    float threshold = q->int8_threshold;
    char *cursor = scratch;
    size_t n_outliers_max = threshold > 0.0f ? (size_t)n_tok * n_in : 1;
    *s = (int8_tokens){.n_tok = n_tok, .n_in = n_in, .is_offset = is_offset};
    s->x_stride = (n_in + VNNI_BYTES - 1) / VNNI_BYTES * VNNI_BYTES;
    s->qx = qe_scratch_take(&cursor, (size_t)n_tok * s->x_stride);
    s->sca = qe_scratch_take(&cursor, (size_t)n_tok * sizeof *s->sca);
    s->outliers = qe_scratch_take(&cursor, n_outliers_max * sizeof *s->outliers);
    s->outlier_x = qe_scratch_take(&cursor, n_outliers_max * sizeof *s->outlier_x);
    s->n_outliers_before = qe_scratch_take(&cursor, ((size_t)n_tok + 1) * sizeof *s->n_outliers_before);
    float *x16 = qe_scratch_take(&cursor, (size_t)n_in * sizeof *x16);
    int j = 0;
    for (int t = 0; t < n_tok; t++) {
        int8_t *qt = s->qx + (size_t)t * s->x_stride;
        round_f16(x + (size_t)t * n_in, x16, n_in);
        s->n_outliers_before[t] = j;
        if (threshold > 0.0f)
            j = find_outliers(x16, n_in, threshold, s->outliers + j, s->outlier_x + j) - s->outliers;
        s->sca[t] = quantize_row(x16, n_in, threshold, qt);
        memset(qt + n_in, 0, (size_t)(s->x_stride - n_in));
        for (int c = 0; is_offset && c < s->x_stride; c++) qt[c] = (int8_t)((uint8_t)qt[c] ^ 0x80);
    }
    s->n_outliers_before[n_tok] = j;
}

/* [sum(a), sum(b), sum(c), sum(d)] of four 8-lane int32 vectors */
AVX2 static INLINE __m128i sum4_epi32(__m256i a, __m256i b, __m256i c, __m256i d)
{
    __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* The int32 dots of rows w[0..3] with one token's q (not offset), 16 products per row and step. */
AVX2 static __m128i dots_avx2(const int8_t *const w[ROWS], const int8_t *qt, int n_in)
{
    __m256i acc[ROWS] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                         _mm256_setzero_si256()};
    int k = 0;
    for (; k + 16 <= n_in; k += 16) {
        __m256i xv = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(qt + k)));
        for (int i = 0; i < ROWS; i++)
            acc[i] = _mm256_add_epi32(
                acc[i], _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w[i] + k))), xv));
    }
    int32_t d[ROWS];
    _mm_storeu_si128((__m128i *)d, sum4_epi32(acc[0], acc[1], acc[2], acc[3]));
    for (int i = 0; i < ROWS; i++)
        for (int c = k; c < n_in; c++) d[i] += (int32_t)w[i][c] * qt[c];
    return _mm_loadu_si128((const __m128i *)d);
}

/* y[0, n_rows) of token t from the int32 dots of the block's rows: the twin's roundings, one
 * lane per row. scb and bias hold the rows' scales and fp16 biases. */
AVX2 static INLINE void finish(const int8_tokens *s, int t, const int8_t *const w[ROWS], __m128 scb, __m128 bias,
                               __m128i dots, int n_rows, float *y)
{
    __m128 v = _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(dots), _mm_set1_ps(s->sca[t])), scb);
    __m128 out = round_f16x4(_mm_fmadd_ps(v, _mm_set1_ps(QE_INT8_DEQUANT_SCALE), bias));
    __m128 acc16 = _mm_setzero_ps();
    for (int j = s->n_outliers_before[t]; j < s->n_outliers_before[t + 1]; j++) {
        int c = s->outliers[j];
        __m128 wc = _mm_setr_ps(w[0][c], w[1][c], w[2][c], w[3][c]);
        __m128 wd = round_f16x4(_mm_mul_ps(_mm_mul_ps(wc, scb), _mm_set1_ps(QE_INT8_WEIGHT_SCALE)));
        acc16 = _mm_add_ps(acc16, _mm_mul_ps(_mm_set1_ps(s->outlier_x[j]), wd));
    }
    __m128 res = round_f16x4(_mm_add_ps(out, acc16));
    if (n_rows == ROWS) {
        _mm_storeu_ps(y, res);
        return;
    }
    float lanes[ROWS];
    _mm_storeu_ps(lanes, res);
    for (int i = 0; i < n_rows; i++) y[i] = lanes[i];
}

/* [sum(a), sum(b), sum(c), sum(d)] of four 16-lane int32 vectors */
VNNI static INLINE __m128i sum4_epi32x16(__m512i a, __m512i b, __m512i c, __m512i d)
{
    __m512i ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    __m512i cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    __m512i abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(abcd), _mm512_extracti64x4_epi64(abcd, 1));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/* acc + the dot products of each 4 bytes of u (unsigned) and s (signed), as _mm512_dpbusd_epi32.
 * Written out because GCC 12 copies every accumulator around the intrinsic (about two register
 * moves per product instruction in the loop below); the assembly updates it in place. */
VNNI static INLINE __m512i dpbusd(__m512i acc, __m512i u, __m512i s)
{
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "vm"(s));
    return acc;
}

/* acc[i][j] += the products of rows w[0..3] and tokens ux[j] over the 64 bytes from k; bytes
 * of a row past in_row read as 0 (the tokens are padded) */
VNNI static INLINE void step_vnni(__m512i acc[ROWS][VNNI_TOKENS], const int8_t *const w[ROWS], const int8_t *ux,
                                  int x_stride, int n_tok, int k, __mmask64 in_row)
{
    __m512i xv[VNNI_TOKENS];
#pragma GCC unroll 4
    for (int j = 0; j < n_tok; j++) xv[j] = _mm512_loadu_si512(ux + (size_t)j * x_stride + k);
#pragma GCC unroll 4
    for (int i = 0; i < ROWS; i++) {
        __m512i wv = _mm512_maskz_loadu_epi8(in_row, w[i] + k);
#pragma GCC unroll 4
        for (int j = 0; j < n_tok; j++) acc[i][j] = dpbusd(acc[i][j], xv[j], wv);
    }
}

/* dots[j] = the int32 dots of rows w[0..3] with n_tok (a constant 1..VNNI_TOKENS after
 * inlining) offset tokens from ux on, plus 128 times each row's sum. */
VNNI static INLINE void dots_vnni(const int8_t *const w[ROWS], const int8_t *ux, int x_stride, int n_tok, int n_in,
                                  __m128i dots[VNNI_TOKENS])
{
    __m512i acc[ROWS][VNNI_TOKENS];
#pragma GCC unroll 4
    for (int i = 0; i < ROWS; i++)
#pragma GCC unroll 4
        for (int j = 0; j < n_tok; j++) acc[i][j] = _mm512_setzero_si512();
    int k = 0;
    for (; k + VNNI_BYTES <= n_in; k += VNNI_BYTES)
        step_vnni(acc, w, ux, x_stride, n_tok, k, ~(__mmask64)0);
    if (k < n_in)
        step_vnni(acc, w, ux, x_stride, n_tok, k, ((__mmask64)1 << (n_in - k)) - 1);
#pragma GCC unroll 4
    for (int j = 0; j < n_tok; j++) dots[j] = sum4_epi32x16(acc[0][j], acc[1][j], acc[2][j], acc[3][j]);
}

/* The block's rows w[0..3] against every token with VNNI, finished into y[t * y_stride + i]. */
VNNI static void block_vnni(const int8_tokens *s, const int8_t *const w[ROWS], __m128 scb, __m128 bias, int n_rows,
                            float *y, size_t y_stride)
{
    /* 128 times each row's sum: what the tokens' +128 offset added to the dots */
    __m512i sums[ROWS];
    const __m512i one = _mm512_set1_epi8(1);
    for (int i = 0; i < ROWS; i++) {
        sums[i] = _mm512_setzero_si512();
        for (int k = 0; k < s->n_in; k += VNNI_BYTES) {
            __mmask64 in_row = s->n_in - k >= VNNI_BYTES ? ~(__mmask64)0 : ((__mmask64)1 << (s->n_in - k)) - 1;
            sums[i] = dpbusd(sums[i], one, _mm512_maskz_loadu_epi8(in_row, w[i] + k));
        }
    }
    __m128i offset = _mm_slli_epi32(sum4_epi32x16(sums[0], sums[1], sums[2], sums[3]), 7);
    __m128i dots[VNNI_TOKENS];
    for (int t = 0; t < s->n_tok; t += VNNI_TOKENS) {
        const int8_t *ux = s->qx + (size_t)t * s->x_stride;
        int n = s->n_tok - t < VNNI_TOKENS ? s->n_tok - t : VNNI_TOKENS;
        switch (n) {
        case 4: dots_vnni(w, ux, s->x_stride, 4, s->n_in, dots); break;
        case 3: dots_vnni(w, ux, s->x_stride, 3, s->n_in, dots); break;
        case 2: dots_vnni(w, ux, s->x_stride, 2, s->n_in, dots); break;
        default: dots_vnni(w, ux, s->x_stride, 1, s->n_in, dots); break;
        }
        for (int j = 0; j < n; j++)
            finish(s, t + j, w, scb, bias, _mm_sub_epi32(dots[j], offset), n_rows, y + (size_t)(t + j) * y_stride);
    }
}

/* The block of rows from r (n_rows <= ROWS real ones; a short block repeats its last row, whose
 * outputs are dropped): row pointers, scales and biases. */
typedef struct {
    const int8_t *w[ROWS];
    int rows[ROWS];
    __m128 scb, bias;
} int8_block;

AVX2 static INLINE void block_init(const qe_weight *q, int r, int n_rows, int8_block *b)
{
    for (int i = 0; i < ROWS; i++) {
        b->rows[i] = r + (i < n_rows ? i : n_rows - 1);
        b->w[i] = q->int8.q + (size_t)b->rows[i] * q->n_in;
    }
    b->scb = _mm_setr_ps(q->int8.scale[b->rows[0]], q->int8.scale[b->rows[1]], q->int8.scale[b->rows[2]],
                         q->int8.scale[b->rows[3]]);
    b->bias = q->bias ? _mm_setr_ps(q->bias[b->rows[0]], q->bias[b->rows[1]], q->bias[b->rows[2]], q->bias[b->rows[3]])
                      : _mm_setzero_ps();
}

/* ---- one token (decode) ----------------------------------------------------------------------- */

/* The prepared token lives in scratch, its struct first. */
AVX2 static const void *prepare_avx2(const qe_linear *lin, const float *x, void *scratch)
{
    int8_tokens *s = scratch;
    tokens_prepare(&lin->w, x, 1, lin->w.n_in, false, s, (char *)scratch + 64);
    return s;
}

AVX2 static const void *prepare_vnni(const qe_linear *lin, const float *x, void *scratch)
{
    int8_tokens *s = scratch;
    tokens_prepare(&lin->w, x, 1, lin->w.n_in, true, s, (char *)scratch + 64);
    return s;
}

AVX2 static void gemv_avx2(const qe_linear *lin, const void *token, float *y, int row_begin, int row_end)
{
    const int8_tokens *s = token;
    int8_block b;
    for (int r = row_begin; r < row_end; r += ROWS) {
        int n_rows = row_end - r < ROWS ? row_end - r : ROWS;
        block_init(&lin->w, r, n_rows, &b);
        finish(s, 0, b.w, b.scb, b.bias, dots_avx2(b.w, s->qx, s->n_in), n_rows, y + r);
    }
}

/* The int32 dots of rows w[0..3] with the offset token ux, less 128 times each row's sum. */
VNNI static INLINE __m128i dots_one_vnni(const int8_t *const w[ROWS], const int32_t *row_sums, const int8_t *ux,
                                         int n_in)
{
    __m512i acc[ROWS] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                         _mm512_setzero_si512()};
    int k = 0;
    for (; k + VNNI_BYTES <= n_in; k += VNNI_BYTES) {
        __m512i xv = _mm512_loadu_si512(ux + k);
#pragma GCC unroll 4
        for (int i = 0; i < ROWS; i++) {
            _mm_prefetch((const char *)(w[i] + k) + QE_GEMV_PREFETCH_BYTES, _MM_HINT_T1);
            acc[i] = dpbusd(acc[i], xv, _mm512_loadu_si512(w[i] + k));
        }
    }
    if (k < n_in) {
        __mmask64 in_row = ((__mmask64)1 << (n_in - k)) - 1;
        __m512i xv = _mm512_loadu_si512(ux + k);
#pragma GCC unroll 4
        for (int i = 0; i < ROWS; i++) acc[i] = dpbusd(acc[i], xv, _mm512_maskz_loadu_epi8(in_row, w[i] + k));
    }
    __m128i sums = _mm_loadu_si128((const __m128i *)row_sums);
    return _mm_sub_epi32(sum4_epi32x16(acc[0], acc[1], acc[2], acc[3]), _mm_slli_epi32(sums, 7));
}

VNNI static void gemv_vnni(const qe_linear *lin, const void *token, float *y, int row_begin, int row_end)
{
    const int8_tokens *s = token;
    int8_block b;
    int32_t sums[ROWS];
    for (int r = row_begin; r < row_end; r += ROWS) {
        int n_rows = row_end - r < ROWS ? row_end - r : ROWS;
        block_init(&lin->w, r, n_rows, &b);
        for (int i = 0; i < ROWS; i++) sums[i] = lin->row_sums[b.rows[i]];
        finish(s, 0, b.w, b.scb, b.bias, dots_one_vnni(b.w, sums, s->qx, s->n_in), n_rows, y + r);
    }
}

void qe_linear_int8_gemv_init(qe_linear *lin)
{
    lin->gemv = NULL;
    lin->prepare = NULL;
    if (!qe_cpu_has_avx2())
        return;
    const qe_weight *q = &lin->w;
    if (cpu_has_vnni() && (lin->row_sums = malloc((size_t)q->n_out * sizeof *lin->row_sums))) {
        for (int r = 0; r < q->n_out; r++) {
            const int8_t *row = q->int8.q + (size_t)r * q->n_in;
            int32_t sum = 0;
            for (int k = 0; k < q->n_in; k++) sum += row[k];
            lin->row_sums[r] = sum;
        }
        lin->prepare = prepare_vnni;
        lin->gemv = gemv_vnni;
    } else {
        lin->prepare = prepare_avx2;
        lin->gemv = gemv_avx2;
    }
}

/* ---- the rows kernel ------------------------------------------------------------------------ */

void qe_linear_int8_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end,
                         void *scratch)
{
    const qe_weight *q = &lin->w;
    int n_in = q->n_in;
    bool is_vnni = n_tok > 1 && cpu_has_vnni();
    if (!qe_cpu_has_avx2()) {
        qe_linear_int8_rows_ref(q, x, n_tok, y, row_begin, row_end);
        return;
    }
    if (n_tok == 1 && lin->gemv) {
        qe_linear_gemv_rows(lin, x, y, row_begin, row_end, scratch);
        return;
    }
    int8_tokens s;
    tokens_prepare(q, x, n_tok, n_in, is_vnni, &s, scratch);
    for (int r = row_begin; r < row_end; r += ROWS) {
        int n_rows = row_end - r < ROWS ? row_end - r : ROWS, rows[ROWS];
        const int8_t *w[ROWS];
        for (int i = 0; i < ROWS; i++) { /* a short block repeats its last row; those outputs are dropped */
            rows[i] = r + (i < n_rows ? i : n_rows - 1);
            w[i] = q->int8.q + (size_t)rows[i] * n_in;
        }
        __m128 scb = _mm_setr_ps(q->int8.scale[rows[0]], q->int8.scale[rows[1]], q->int8.scale[rows[2]], q->int8.scale[rows[3]]);
        __m128 bias = q->bias ? _mm_setr_ps(q->bias[rows[0]], q->bias[rows[1]], q->bias[rows[2]], q->bias[rows[3]])
                              : _mm_setzero_ps();
        if (is_vnni)
            block_vnni(&s, w, scb, bias, n_rows, y + r, (size_t)q->n_out);
        else
            for (int t = 0; t < n_tok; t++)
                finish(&s, t, w, scb, bias, dots_avx2(w, s.qx + (size_t)t * s.x_stride, n_in), n_rows,
                       y + (size_t)t * q->n_out + r);
    }
}
