/* linear_gemv — one token's matrix-vector kernels of the F32, BF16/F16 and NF4 linears
 * (cpu/linear.h; INT8's is in linear_int8_avx2.c, and a bf16-compute model's BF16 and NF4 run
 * linear_bf16_pairs.c where the CPU has AVX512_BF16). Decode reads every weight once per token and
 * does two flops per weight, so these kernels are about streaming the weight at the memory's
 * speed: several rows at once (independent accumulator chains, enough loads in flight), 16-bit
 * weights converted in registers, NF4 codes looked up in registers.
 *
 * Each output keeps the dot tile's summation order (cpu/dot_tile.h): eight lane sums, each a
 * chain of fused multiply-adds over the 8-blocks of k in k order; qe_dot_reduce8; then the
 * n_in % 8 tail terms, multiplied then added. So a token gets the same bits here as in a batch
 * (tests/test_linear_quant.c and test_kernels.c compare them). The AVX-512 NF4 kernel keeps it by
 * holding two rows' eight lanes, interleaved, in one 16-lane register. Compiled with target attributes and
 * chosen at run time by qe_linear_gemv_init. */
#include <immintrin.h>
#include <string.h>

#include "cpu/dot_tile.h"
#include "cpu/linear.h"

/* Tails round like the tile's scalar code: no implicit fusing. */
#pragma GCC optimize("fp-contract=off")

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512dq,avx512bw,avx512vl")))
#define INLINE inline __attribute__((always_inline))
#define ROWS 8 /* rows in flight per thread: 8 accumulator chains hide the FMA latency */

typedef enum { FORMAT_F32, FORMAT_BF16, FORMAT_F16 } float_format;

/* 8 weights of row `row` from k, as float32 */
AVX2 static INLINE __m256 load8(const void *row, int k, float_format f)
{
    if (f == FORMAT_F32)
        return _mm256_loadu_ps((const float *)row + k);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + k));
    if (f == FORMAT_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

/* one weight as float32 */
static INLINE float load1(const void *row, int k, float_format f)
{
    if (f == FORMAT_F32)
        return ((const float *)row)[k];
    uint16_t h = ((const uint16_t *)row)[k];
    return f == FORMAT_BF16 ? qe_bf16_to_f32(h) : qe_f16_to_f32(h);
}

/* y[0, n_rows) = rows w[0..n_rows) . x, n_rows (a constant after inlining) <= ROWS */
AVX2 static INLINE void dot_rows(const void *const w[ROWS], int n_rows, const float *x, int n_in, float_format f,
                                 float *y)
{
    int k_vec = n_in & ~7;
    __m256 acc[ROWS];
#pragma GCC unroll 8
    for (int i = 0; i < n_rows; i++) acc[i] = _mm256_setzero_ps();
    for (int k = 0; k < k_vec; k += 8) {
        __m256 xv = _mm256_loadu_ps(x + k);
#pragma GCC unroll 8
        for (int i = 0; i < n_rows; i++) {
            /* once per 16 weights (a line of float32). Float32 asks for the same column of the
             * next ROWS rows, whatever n_in: 18 KB ahead on smollm2's 576-wide rows, as before,
             * and 48 KB on its 1536-wide down projection (fp32 tg32 +7% median over five A/B
             * pairs here) */
            if (k % 16 == 0)
                _mm_prefetch((const char *)w[i] + (size_t)k * (f == FORMAT_F32 ? 4 : 2) +
                                 (f == FORMAT_F32 ? (size_t)ROWS * n_in * 4 : QE_GEMV_PREFETCH_BYTES),
                             _MM_HINT_T1);
            acc[i] = _mm256_fmadd_ps(load8(w[i], k, f), xv, acc[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < n_rows; i++) {
        float s = qe_dot_reduce8(acc[i]);
        for (int k = k_vec; k < n_in; k++) s += load1(w[i], k, f) * x[k];
        y[i] = s;
    }
}

AVX2 static INLINE void float_gemv(const qe_linear *lin, const float *x, float *y, int row_begin, int row_end,
                                   float_format f)
{
    int n_in = lin->w.n_in;
    size_t row_bytes = (size_t)n_in * (f == FORMAT_F32 ? 4 : 2);
    const char *base = f == FORMAT_F32 ? (const char *)lin->w.f32 : (const char *)lin->w.half;
    const void *w[ROWS];
    int r = row_begin;
    for (; r + ROWS <= row_end; r += ROWS) {
#pragma GCC unroll 8
        for (int i = 0; i < ROWS; i++) w[i] = base + (size_t)(r + i) * row_bytes;
        dot_rows(w, ROWS, x, n_in, f, y + r);
    }
    for (; r < row_end; r++) {
        w[0] = base + (size_t)r * row_bytes;
        dot_rows(w, 1, x, n_in, f, y + r);
    }
}

AVX2 static void f32_gemv(const qe_linear *lin, const void *token, float *y, int row_begin, int row_end)
{
    float_gemv(lin, token, y, row_begin, row_end, FORMAT_F32);
}

AVX2 static void bf16_gemv(const qe_linear *lin, const void *token, float *y, int row_begin, int row_end)
{
    float_gemv(lin, token, y, row_begin, row_end, FORMAT_BF16);
}

AVX2 static void f16_gemv(const qe_linear *lin, const void *token, float *y, int row_begin, int row_end)
{
    float_gemv(lin, token, y, row_begin, row_end, FORMAT_F16);
}

/* ---- NF4 ------------------------------------------------------------------------------------ */

/* bf16(code * m) for the 16 codes (round to nearest even; weights are finite) */
AVX512 static INLINE __m512 nf4_table(__m512 code, float m)
{
    __m512i u = _mm512_castps_si512(_mm512_mul_ps(code, _mm512_set1_ps(m)));
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    u = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), lsb));
    return _mm512_castsi512_ps(_mm512_and_si512(u, _mm512_set1_epi32((int)0xFFFF0000u)));
}

#define NF4_PAIRS 4 /* row pairs in flight: 8 rows */

/* The token with each value twice, x2[2k] = x2[2k + 1] = x[k]: one 16-lane load per 8-block. */
AVX512 static const void *nf4_prepare(const qe_linear *lin, const float *x, void *scratch)
{
    float *x2 = scratch;
    int n_in = lin->w.n_in, k = 0;
    const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    for (; k + 8 <= n_in; k += 8)
        _mm512_storeu_ps(x2 + 2 * k, _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(x + k))));
    for (; k < n_in; k++) x2[2 * k] = x2[2 * k + 1] = x[k];
    return x2;
}

/* Rows r0 .. r0 + 2 * n_pairs - 1 (whole rows of whole blocks) against the doubled token x2;
 * accumulator p holds rows r0 + 2p (even lanes) and r0 + 2p + 1 (odd lanes), lane 2m or
 * 2m + 1 summing element m of each 8-block. Per 8-block, the four packed bytes of the first
 * row and those of the second make one 64-bit word, broadcast: even lanes see the first row's
 * bytes, odd lanes the second's. A per-lane shift brings the lane's nibble (even element: high
 * nibble) to the bottom; ternary logic keeps those 4 bits and sets bit 4 in odd lanes, which
 * picks the second row's table in the 32-entry permute. */
AVX512 static INLINE void nf4_pairs(const qe_nf4_weight *q, int n_in, int r0, int n_pairs, const float *x2, float *y)
{
    int bs = q->block_size, blocks_per_row = n_in / bs;
    const __m512 code = _mm512_loadu_ps(qe_nf4_code);
    const __m512i shifts = _mm512_setr_epi32(4, 4, 0, 0, 12, 12, 8, 8, 20, 20, 16, 16, 28, 28, 24, 24);
    const __m512i second = _mm512_setr_epi32(0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16);
    const __m512i nibble = _mm512_set1_epi32(15);
    const uint8_t *rows[2 * NF4_PAIRS];
    __m512 acc[NF4_PAIRS];
#pragma GCC unroll 8
    for (int i = 0; i < 2 * n_pairs; i++) rows[i] = q->packed + (size_t)(r0 + i) * (n_in / 2);
#pragma GCC unroll 4
    for (int p = 0; p < n_pairs; p++) acc[p] = _mm512_setzero_ps();
    for (int j = 0; j < blocks_per_row; j++) {
        __m512 t_first[NF4_PAIRS], t_second[NF4_PAIRS];
#pragma GCC unroll 4
        for (int p = 0; p < n_pairs; p++) {
            int64_t block = (int64_t)(r0 + 2 * p) * blocks_per_row + j;
            t_first[p] = nf4_table(code, qe_nf4_block_absmax(q, block));
            t_second[p] = nf4_table(code, qe_nf4_block_absmax(q, block + blocks_per_row));
        }
        int k0 = j * bs;
        for (int k = k0; k < k0 + bs; k += 8) {
            __m512 xv = _mm512_loadu_ps(x2 + 2 * k);
#pragma GCC unroll 4
            for (int p = 0; p < n_pairs; p++) {
                uint32_t a, b;
                memcpy(&a, rows[2 * p] + k / 2, 4);
                memcpy(&b, rows[2 * p + 1] + k / 2, 4);
                __m512i v = _mm512_set1_epi64((long long)((uint64_t)b << 32 | a));
                __m512i idx = _mm512_ternarylogic_epi32(_mm512_srlv_epi32(v, shifts), nibble, second, 0xEA); /* (A & B) | C */
                acc[p] = _mm512_fmadd_ps(_mm512_permutex2var_ps(t_first[p], idx, t_second[p]), xv, acc[p]);
            }
        }
    }
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
#pragma GCC unroll 4
    for (int p = 0; p < n_pairs; p++) {
        __m512 rows_apart = _mm512_permutexvar_ps(even, acc[p]); /* first row's lanes, then the second's */
        y[2 * p] = qe_dot_reduce8(_mm512_castps512_ps256(rows_apart));
        y[2 * p + 1] = qe_dot_reduce8(_mm512_extractf32x8_ps(rows_apart, 1));
    }
}

AVX512 static void nf4_gemv(const qe_linear *lin, const void *token, float *y, int row_begin, int row_end)
{
    const qe_nf4_weight *q = &lin->w.nf4;
    const float *x2 = token;
    int n_in = lin->w.n_in, r = row_begin;
    for (; r + 2 * NF4_PAIRS <= row_end; r += 2 * NF4_PAIRS)
        nf4_pairs(q, n_in, r, NF4_PAIRS, x2, y + r);
    for (; r + 2 <= row_end; r += 2)
        nf4_pairs(q, n_in, r, 1, x2, y + r);
    if (r < row_end) { /* an odd last row: pair it with a neighbour (n_out >= 2), keep its sum alone */
        float two[2];
        nf4_pairs(q, n_in, r > 0 ? r - 1 : r, 1, x2, two);
        y[r] = two[r > 0];
    }
}

static bool cpu_has_avx512_nf4(void)
{
    static int has = -1;
    if (has < 0) {
        __builtin_cpu_init();
        has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
              __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    }
    return has;
}

void qe_linear_gemv_init(qe_linear *lin)
{
    lin->gemv = NULL;
    lin->prepare = NULL;
    if (!qe_cpu_has_avx2())
        return;
    switch (lin->w.format) {
    case QE_WEIGHT_F32: lin->gemv = f32_gemv; break;
    case QE_WEIGHT_BF16: lin->gemv = bf16_gemv; break;
    case QE_WEIGHT_F16: lin->gemv = f16_gemv; break;
    case QE_WEIGHT_NF4: {
        /* whole blocks per row, whole 8-blocks per absmax block, and (for the odd last row)
         * at least two rows; otherwise the rows kernel runs one token as before */
        const qe_nf4_weight *q = &lin->w.nf4;
        if (cpu_has_avx512_nf4() && q->block_size % 8 == 0 && lin->w.n_in % q->block_size == 0 && lin->w.n_out >= 2) {
            lin->gemv = nf4_gemv;
            lin->prepare = nf4_prepare;
        }
        break;
    }
    case QE_WEIGHT_INT8: break;
    }
}
