/* linear_bf16_pairs — the BF16 and NF4 linears of a model that computes in bf16, on CPUs with
 * AVX512_BF16 (Cooper Lake, Zen 4, Sapphire Rapids and later): the weights as bf16 (NF4's
 * codes looked up in each block's 16-entry table of bf16(code * absmax), as bitsandbytes
 * dequantizes), the tokens rounded to bf16 once per call (exact: a bf16 model's activations are
 * bf16 values), and vdpbf16ps taking 32 weights per instruction. Decode was bound by converting
 * weights (NF4's nibble lookups: five 512-bit operations per 16 weights), not by memory; here an
 * NF4 32-weight chunk costs one broadcast load, word shift, word permute and vdpbf16ps, plus a
 * table per block, and decode prefetches rows ahead.
 *
 * The summation order ("pairs order", its scalar definition is qe_linear_bf16_pairs_rows_ref in
 * ref/ref_ops.h): k is cut into 32-chunks, the last padded with zero weights and inputs; lane j
 * (0..15) of one accumulator adds, chunk after chunk, the term at position 2j + 1 of the chunk and
 * then the one at 2j, each a fused multiply-add whose inputs are read as zero when denormal and
 * whose denormal result is flushed to zero (vdpbf16ps's arithmetic); then s_i = l_i + l_(i+8)
 * and y = ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7)). Position p of chunk c is k = 32c + p,
 * except in NF4 rows of whole blocks of whole chunks, which hold k = 32c + 4 (p % 8) + p / 8 there
 * (nf4_positions: the order the packed nibbles unpack in cheapest; the token is rearranged to
 * match). The one-token kernels (gemv) and the batched tile both use the instruction in that
 * order, so a token gets the same bits alone and in a batch; they are not the bits of the 8-lane
 * FMA order of the other CPUs (docs/engine.md). Compiled with target attributes and chosen at run
 * time by qe_linear_bf16_pairs_init. */
#include <immintrin.h>

#include "cpu/dot_tile.h"
#include "cpu/linear.h"
#include "ref/ref_ops.h"

#define PAIRS __attribute__((target("avx2,fma,avx512f,avx512dq,avx512bw,avx512vl,avx512bf16")))
#define INLINE inline __attribute__((always_inline))
#define CHUNK 32      /* weights per vdpbf16ps */
#define GEMV_ROWS 8   /* rows in flight per thread in decode, independent accumulator chains (NF4: 8 beat 4 by ~10%) */
#define TILE_ROWS 4   /* a batch's register block: 4 rows x 6 tokens, 24 accumulators of the 32 zmm */
#define TILE_TOKENS 6

bool qe_cpu_has_avx512_bf16(void)
{
    /* qe_cpu_has_avx512 has initialized the builtins */
    return qe_cpu_has_avx512() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bf16");
}

/* n_in rounded up to whole chunks: the length of a bf16 token or decoded row */
static int padded_len(int n_in) { return (n_in + CHUNK - 1) / CHUNK * CHUNK; }

/* The lane sum of one accumulator, in the pairs order's fixed tree. */
PAIRS static INLINE float pairs_reduce(__m512 acc)
{
    return qe_dot_reduce8(_mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1)));
}

PAIRS static INLINE __m512 dot_chunk(__m512 acc, __m512i w, __m512i x)
{
    return _mm512_dpbf16_ps(acc, (__m512bh)w, (__m512bh)x);
}

/* Position p of a 32-chunk of an NF4 row of whole chunked blocks holds element 4 (p % 8) + p / 8
 * of the chunk (qe_bf16_pairs_is_rearranged): what one broadcast, shift and word permute make
 * of the chunk's packed bytes (nf4_chunk). The token is rearranged to match. */
static const uint16_t nf4_positions[32] = {0, 4, 8,  12, 16, 20, 24, 28, 1, 5, 9,  13, 17, 21, 25, 29,
                                           2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31};

/* x[n_in] as bf16 in xb[padded_len(n_in)], zero padded, each chunk rearranged as nf4_positions
 * says when is_rearranged. vcvtne2ps2bf16 rounds to nearest even and reads denormals as zero, as
 * the reference twin does. */
PAIRS static void token_to_bf16(const float *x, int n_in, bool is_rearranged, uint16_t *xb)
{
    const __m512i positions = _mm512_loadu_si512(nf4_positions);
    for (int k = 0; k < n_in; k += CHUNK) {
        int left = n_in - k;
        __mmask16 lo = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
        __mmask16 hi = left >= 32 ? 0xFFFF : left > 16 ? (__mmask16)((1u << (left - 16)) - 1) : 0;
        __m512i v =
            (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, x + k + 16), _mm512_maskz_loadu_ps(lo, x + k));
        _mm512_storeu_si512(xb + k, is_rearranged ? _mm512_permutexvar_epi16(positions, v) : v);
    }
}

/* ---- NF4 blocks as bf16 ----------------------------------------------------------------------- */

/* The smallest block scale whose products code * m vcvtne2ps2bf16 rounds as bitsandbytes does (to
 * nearest even): below it a product can be denormal, which the instruction flushes to zero
 * (|code| >= 0.0796 > 2^-4, so 2^-122 keeps every nonzero product normal). */
#define NF4_CVT_MIN_SCALE 0x1p-122f

/* The block's table bf16(code * m), its 16 entries twice over: a word permute reads 5 index bits,
 * and the fifth is left over from the packed byte. Scales under NF4_CVT_MIN_SCALE (only when
 * may_be_tiny, a constant after inlining: the test costs the decode loop ~10%) round in integers. */
PAIRS static INLINE __m512i nf4_table(__m512 code, float m, bool may_be_tiny)
{
    __m512 v = _mm512_mul_ps(code, _mm512_set1_ps(m));
    if (!may_be_tiny || m >= NF4_CVT_MIN_SCALE)
        return (__m512i)_mm512_cvtne2ps_pbh(v, v);
    __m512i u = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    u = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), lsb)), 16);
    return _mm512_broadcast_i64x4(_mm512_cvtepi32_epi16(u));
}

/* The chunk's 16 packed bytes, broadcast to the four 128-bit lanes, are 8 words of 4 nibbles per
 * lane: word m holds elements 4m + 1, 4m, 4m + 3, 4m + 2 from bit 0 up (even element in the high
 * nibble). Lane q shifts element 4m + q down, so position 8q + m gets it (nf4_positions). */
static const uint16_t nf4_shifts[32] = {4, 4, 4, 4, 4, 4, 4, 4, 0,  0,  0,  0,  0,  0,  0,  0,
                                        12, 12, 12, 12, 12, 12, 12, 12, 8, 8, 8, 8, 8, 8, 8, 8};

/* 32 weights as bf16, rearranged, from their 16 packed bytes: one broadcast load, shift and
 * permute (the nibble above the index lands on the table's copy) */
PAIRS static INLINE __m512i nf4_chunk(const uint8_t *packed, __m512i shifts, __m512i table)
{
    __m512i bytes = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)packed));
    return _mm512_permutexvar_epi16(_mm512_srlv_epi16(bytes, shifts), table);
}

/* Row r of an NF4 weight as bf16 in w[padded_len(n_in)], zero padded */
PAIRS static void nf4_decode_row(const qe_linear *lin, int r, uint16_t *w)
{
    const qe_nf4_weight *q = &lin->w.nf4;
    int n_in = lin->w.n_in, bs = q->block_size;
    int64_t base = (int64_t)r * n_in;
    if (qe_bf16_pairs_is_rearranged(&lin->w)) {
        const __m512 code = _mm512_loadu_ps(qe_nf4_code);
        const __m512i shifts = _mm512_loadu_si512(nf4_shifts);
        for (int k0 = 0; k0 < n_in; k0 += bs) {
            __m512i table = nf4_table(code, qe_nf4_block_absmax(q, (base + k0) / bs), true);
            for (int k = k0; k < k0 + bs; k += CHUNK)
                _mm512_storeu_si512(w + k, nf4_chunk(q->packed + (base + k) / 2, shifts, table));
        }
        return;
    }
    for (int k = 0; k < n_in; k++) { /* rows that cut blocks or bytes: the tests' odd shapes */
        int64_t i = base + k;
        uint8_t byte = q->packed[i / 2];
        w[k] = qe_f32_to_bf16(qe_nf4_code[(i & 1) ? byte & 15 : byte >> 4] * qe_nf4_block_absmax(q, i / bs));
    }
    for (int k = n_in; k < padded_len(n_in); k++) w[k] = 0;
}

/* ---- one token (decode) ----------------------------------------------------------------------- */

/* The token as bf16 chunks, in scratch. */
PAIRS static const void *pairs_prepare(const qe_linear *lin, const float *x, void *scratch)
{
    token_to_bf16(x, lin->w.n_in, qe_bf16_pairs_is_rearranged(&lin->w), scratch);
    return scratch;
}

/* BF16 rows w[0..n_rows) against the bf16 token xb, n_rows (a constant after inlining) <= GEMV_ROWS;
 * the last chunk's weights past n_in are masked to zero. */
PAIRS static INLINE void bf16_rows(const uint16_t *const w[GEMV_ROWS], int n_rows, const uint16_t *xb, int n_in,
                                   float *y)
{
    int k_whole = n_in / CHUNK * CHUNK;
    __m512 acc[GEMV_ROWS];
#pragma GCC unroll 8
    for (int i = 0; i < n_rows; i++) acc[i] = _mm512_setzero_ps();
    for (int k = 0; k < k_whole; k += CHUNK) {
        __m512i xv = _mm512_loadu_si512(xb + k);
#pragma GCC unroll 8
        for (int i = 0; i < n_rows; i++) {
            _mm_prefetch((const char *)(w[i] + k) + QE_GEMV_PREFETCH_BYTES, _MM_HINT_T1);
            acc[i] = dot_chunk(acc[i], _mm512_loadu_si512(w[i] + k), xv);
        }
    }
    if (k_whole < n_in) {
        __mmask32 tail = (__mmask32)((1u << (n_in - k_whole)) - 1);
        __m512i xv = _mm512_loadu_si512(xb + k_whole);
#pragma GCC unroll 8
        for (int i = 0; i < n_rows; i++) acc[i] = dot_chunk(acc[i], _mm512_maskz_loadu_epi16(tail, w[i] + k_whole), xv);
    }
#pragma GCC unroll 8
    for (int i = 0; i < n_rows; i++) y[i] = pairs_reduce(acc[i]);
}

PAIRS static void bf16_gemv(const qe_linear *lin, const void *token, float *y, int row_begin, int row_end)
{
    int n_in = lin->w.n_in, r = row_begin;
    const uint16_t *w[GEMV_ROWS];
    for (; r + GEMV_ROWS <= row_end; r += GEMV_ROWS) {
#pragma GCC unroll 8
        for (int i = 0; i < GEMV_ROWS; i++) w[i] = lin->w.half + (size_t)(r + i) * n_in;
        bf16_rows(w, GEMV_ROWS, token, n_in, y + r);
    }
    for (; r < row_end; r++) {
        w[0] = lin->w.half + (size_t)r * n_in;
        bf16_rows(w, 1, token, n_in, y + r);
    }
}

/* NF4 rows r0 .. r0 + n_rows - 1 (whole blocks of whole chunks) against the rearranged bf16 token xb. */
PAIRS static INLINE void nf4_rows(const qe_linear *lin, int r0, int n_rows, const uint16_t *xb, bool may_be_tiny,
                                  float *y)
{
    const qe_nf4_weight *q = &lin->w.nf4;
    int n_in = lin->w.n_in, bs = q->block_size, blocks_per_row = n_in / bs;
    const __m512 code = _mm512_loadu_ps(qe_nf4_code);
    const __m512i shifts = _mm512_loadu_si512(nf4_shifts);
    const uint8_t *rows[GEMV_ROWS];
    const int64_t block0 = (int64_t)r0 * blocks_per_row;
    __m512 acc[GEMV_ROWS];
#pragma GCC unroll 8
    for (int i = 0; i < n_rows; i++) {
        rows[i] = q->packed + (size_t)(r0 + i) * (n_in / 2);
        acc[i] = _mm512_setzero_ps();
    }
    for (int j = 0; j < blocks_per_row; j++) {
        __m512i table[GEMV_ROWS];
#pragma GCC unroll 8
        for (int i = 0; i < n_rows; i++)
            table[i] = nf4_table(code, qe_nf4_block_absmax(q, block0 + (int64_t)i * blocks_per_row + j), may_be_tiny);
        for (int k = j * bs; k < (j + 1) * bs; k += CHUNK) {
            __m512i xv = _mm512_loadu_si512(xb + k);
#pragma GCC unroll 8
            for (int i = 0; i < n_rows; i++) {
                if (k % 128 == 0) /* once per 64-byte line */
                    _mm_prefetch((const char *)(rows[i] + k / 2) + QE_GEMV_PREFETCH_BYTES, _MM_HINT_T1);
                acc[i] = dot_chunk(acc[i], nf4_chunk(rows[i] + k / 2, shifts, table[i]), xv);
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < n_rows; i++) y[i] = pairs_reduce(acc[i]);
}

PAIRS static INLINE void nf4_gemv_rows(const qe_linear *lin, const void *token, float *y, int row_begin, int row_end,
                                       bool may_be_tiny)
{
    int r = row_begin;
    for (; r + GEMV_ROWS <= row_end; r += GEMV_ROWS) nf4_rows(lin, r, GEMV_ROWS, token, may_be_tiny, y + r);
    for (; r < row_end; r++) nf4_rows(lin, r, 1, token, may_be_tiny, y + r);
}

/* A weight without tiny block scales (every real one) */
PAIRS static void nf4_gemv(const qe_linear *lin, const void *token, float *y, int row_begin, int row_end)
{
    nf4_gemv_rows(lin, token, y, row_begin, row_end, false);
}

PAIRS static void nf4_gemv_tiny(const qe_linear *lin, const void *token, float *y, int row_begin, int row_end)
{
    nf4_gemv_rows(lin, token, y, row_begin, row_end, true);
}

/* Whether a block's scale is under NF4_CVT_MIN_SCALE (or NaN) */
static bool nf4_has_tiny_scale(const qe_nf4_weight *q)
{
    for (int64_t b = 0; b < q->n_blocks; b++)
        if (!(qe_nf4_block_absmax(q, b) >= NF4_CVT_MIN_SCALE))
            return true;
    return false;
}

/* ---- a batch ---------------------------------------------------------------------------------- */

/* Rows w[0..TILE_ROWS) (bf16, n_rows of them real) against n_tok (a constant 1..TILE_TOKENS after
 * inlining) bf16 tokens from xb, each padded_len(n_in) long; y[t * y_stride + i]. */
PAIRS static INLINE void tile(const uint16_t *const w[TILE_ROWS], int n_rows, const uint16_t *xb, int n_tok,
                              int n_in, float *y, size_t y_stride)
{
    int k_whole = n_in / CHUNK * CHUNK, len = padded_len(n_in);
    __m512 acc[TILE_ROWS][TILE_TOKENS];
#pragma GCC unroll 4
    for (int i = 0; i < TILE_ROWS; i++)
#pragma GCC unroll 6
        for (int t = 0; t < n_tok; t++) acc[i][t] = _mm512_setzero_ps();
    for (int k = 0; k < len; k += CHUNK) {
        __mmask32 live = k < k_whole ? ~(__mmask32)0 : (__mmask32)((1u << (n_in - k)) - 1);
        __m512i wv[TILE_ROWS];
#pragma GCC unroll 4
        for (int i = 0; i < TILE_ROWS; i++) wv[i] = _mm512_maskz_loadu_epi16(live, w[i] + k);
#pragma GCC unroll 6
        for (int t = 0; t < n_tok; t++) {
            __m512i xv = _mm512_loadu_si512(xb + (size_t)t * len + k);
#pragma GCC unroll 4
            for (int i = 0; i < TILE_ROWS; i++) acc[i][t] = dot_chunk(acc[i][t], wv[i], xv);
        }
    }
#pragma GCC unroll 6
    for (int t = 0; t < n_tok; t++)
#pragma GCC unroll 4
        for (int i = 0; i < TILE_ROWS; i++)
            if (i < n_rows)
                y[(size_t)t * y_stride + i] = pairs_reduce(acc[i][t]);
}

/* Rows w[0..TILE_ROWS) against every token. */
PAIRS static void tiles(const uint16_t *const w[TILE_ROWS], int n_rows, const uint16_t *xb, int n_tok, int n_in,
                        float *y, size_t y_stride)
{
    size_t len = (size_t)padded_len(n_in);
    int t = 0;
    for (; t + TILE_TOKENS <= n_tok; t += TILE_TOKENS)
        tile(w, n_rows, xb + t * len, TILE_TOKENS, n_in, y + t * y_stride, y_stride);
    const uint16_t *xt = xb + t * len;
    float *yt = y + t * y_stride;
    switch (n_tok - t) { /* a constant token count per copy of the tile */
    case 5: tile(w, n_rows, xt, 5, n_in, yt, y_stride); break;
    case 4: tile(w, n_rows, xt, 4, n_in, yt, y_stride); break;
    case 3: tile(w, n_rows, xt, 3, n_in, yt, y_stride); break;
    case 2: tile(w, n_rows, xt, 2, n_in, yt, y_stride); break;
    case 1: tile(w, n_rows, xt, 1, n_in, yt, y_stride); break;
    default: break;
    }
}

/* The qe_linear_rows_fn of both formats. */
PAIRS static void pairs_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end,
                             void *scratch)
{
    if (n_tok == 1 && lin->gemv) {
        qe_linear_gemv_rows(lin, x, y, row_begin, row_end, scratch);
        return;
    }
    int n_in = lin->w.n_in;
    size_t len = (size_t)padded_len(n_in);
    char *cursor = scratch;
    uint16_t *xb = qe_scratch_take(&cursor, (size_t)n_tok * len * sizeof *xb);
    uint16_t *buf = qe_scratch_take(&cursor, TILE_ROWS * len * sizeof *buf);
    bool is_nf4 = lin->w.format == QE_WEIGHT_NF4, is_rearranged = qe_bf16_pairs_is_rearranged(&lin->w);
    for (int t = 0; t < n_tok; t++) token_to_bf16(x + (size_t)t * n_in, n_in, is_rearranged, xb + t * len);
    for (int r = row_begin; r < row_end; r += TILE_ROWS) {
        int n_rows = row_end - r < TILE_ROWS ? row_end - r : TILE_ROWS;
        const uint16_t *w[TILE_ROWS];
        for (int i = 0; i < TILE_ROWS; i++) { /* a short block repeats its last row; those sums are dropped */
            if (i >= n_rows)
                w[i] = w[n_rows - 1];
            else if (is_nf4) {
                nf4_decode_row(lin, r + i, buf + i * len);
                w[i] = buf + i * len;
            } else
                w[i] = lin->w.half + (size_t)(r + i) * n_in;
        }
        tiles(w, n_rows, xb, n_tok, n_in, y + r, (size_t)lin->w.n_out);
    }
}

bool qe_linear_bf16_pairs_init(qe_linear *lin, qe_dtype compute_dtype)
{
    if (compute_dtype != QE_DTYPE_BF16 || !qe_cpu_has_avx512_bf16())
        return false;
    if (lin->w.format == QE_WEIGHT_BF16)
        lin->gemv = bf16_gemv;
    else if (lin->w.format == QE_WEIGHT_NF4)
        lin->gemv = !qe_bf16_pairs_is_rearranged(&lin->w) ? NULL /* the tile runs one token */
                    : nf4_has_tiny_scale(&lin->w.nf4)     ? nf4_gemv_tiny
                                                          : nf4_gemv;
    else
        return false;
    lin->rows = pairs_rows;
    lin->prepare = lin->gemv ? pairs_prepare : NULL;
    return true;
}
