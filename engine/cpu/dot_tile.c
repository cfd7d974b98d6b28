/* dot_tile.c — register-blocked float32 dot products (dot_tile.h). Compiled with target
 * attributes, so a build for an older CPU still links; callers check the CPU first. */
#include "cpu/dot_tile.h"

#include <stdlib.h>
#include <string.h>


/* Tails round like the twins' scalar code: multiply, then add. */
#pragma GCC optimize("fp-contract=off")

#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx2,fma,avx512f,avx512dq")))
#define INLINE inline __attribute__((always_inline))
/* Register blocks (the fastest measured on a Xeon with AVX-512): AVX2 takes 4 rows x 3 tokens,
 * whose 12 accumulators, 3 token vectors and 1 weight vector fill the 16 ymm registers; AVX-512
 * takes 8 rows x 2 token pairs, 16 accumulators and 8 broadcast weight rows of the 32 zmm. */
#define AVX2_ROWS 4
#define AVX2_TOKENS 3
#define AVX512_PAIRS 2

bool qe_cpu_has_avx512(void)
{
    static int has = -1;
    if (has < 0) {
        __builtin_cpu_init();
        has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
    }
    return has;
}

/* The tokens of one call. With AVX-512 also a copy of their whole 8-blocks interleaved by pairs,
 * pairs[(p * n_blocks + b) * 16 + h * 8 + lane] = x[2p + h, 8b + lane], zero for the missing
 * partner of an odd last token, so one 16-lane load feeds two tokens. */
typedef struct {
    const float *x; /* [n_tok, n_in] */
    int n_tok, n_in;
    int n_blocks;   /* whole 8-blocks of k: n_in / 8 */
    float *pairs;   /* [ceil(n_tok / 2), n_blocks, 2, 8], or NULL: the AVX2 kernel runs */
} tokens;

/* The sums of rows w[0..3] for one token, lane i = qe_dot_reduce8(acc_i) + the tail of row i. */
AVX2 static INLINE __m128 finish_rows4(__m256 a, __m256 b, __m256 c, __m256 d, const float *const w[AVX2_ROWS],
                                        const float *xt, int k_vec, int n_in)
{
    __m256 ab = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
    __m256 cd = _mm256_add_ps(_mm256_permute2f128_ps(c, d, 0x20), _mm256_permute2f128_ps(c, d, 0x31));
    /* per 128-bit half, [s0 + s2, s1 + s3] of a (or b) then of c (or d) */
    __m256 g = _mm256_add_ps(_mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
    g = _mm256_hadd_ps(g, g); /* lanes [a, c, a, c | b, d, b, d] */
    __m128 s = _mm_unpacklo_ps(_mm256_castps256_ps128(g), _mm256_extractf128_ps(g, 1));
    for (int k = k_vec; k < n_in; k++)
        s = _mm_add_ps(s, _mm_mul_ps(_mm_setr_ps(w[0][k], w[1][k], w[2][k], w[3][k]), _mm_set1_ps(xt[k])));
    return s;
}

/* y[0, n_rows) = the first n_rows lanes of s (n_rows <= 0 stores nothing) */
static INLINE void store_rows(float *y, __m128 s, int n_rows)
{
    float v[AVX2_ROWS];
    if (n_rows >= AVX2_ROWS) {
        _mm_storeu_ps(y, s);
        return;
    }
    _mm_storeu_ps(v, s);
    for (int i = 0; i < n_rows; i++) y[i] = v[i];
}

/* Rows w[0..3] against n_tok (a constant 1..AVX2_TOKENS after inlining) tokens from x. */
AVX2 static INLINE void tile_avx2(const float *const w[AVX2_ROWS], int n_rows, const float *x, int n_tok, int n_in,
                                  float *y, size_t y_stride)
{
    int k_vec = n_in & ~7;
    __m256 acc[AVX2_ROWS][AVX2_TOKENS];
#pragma GCC unroll 4
    for (int i = 0; i < AVX2_ROWS; i++)
#pragma GCC unroll 4
        for (int j = 0; j < n_tok; j++) acc[i][j] = _mm256_setzero_ps();
    for (int k = 0; k < k_vec; k += 8) {
        __m256 xv[AVX2_TOKENS];
#pragma GCC unroll 4
        for (int j = 0; j < n_tok; j++) xv[j] = _mm256_loadu_ps(x + (size_t)j * n_in + k);
#pragma GCC unroll 4
        for (int i = 0; i < AVX2_ROWS; i++) {
            __m256 wv = _mm256_loadu_ps(w[i] + k);
#pragma GCC unroll 4
            for (int j = 0; j < n_tok; j++) acc[i][j] = _mm256_fmadd_ps(wv, xv[j], acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < n_tok; j++)
        store_rows(y + (size_t)j * y_stride,
                   finish_rows4(acc[0][j], acc[1][j], acc[2][j], acc[3][j], w, x + (size_t)j * n_in, k_vec, n_in),
                   n_rows);
}

/* Rows w[0..3] (n_rows of them real) against every token. */
AVX2 static void tiles_avx2(const tokens *tok, const float *const w[AVX2_ROWS], int n_rows, float *y, size_t y_stride)
{
    int t = 0, n_in = tok->n_in;
    for (; t + AVX2_TOKENS <= tok->n_tok; t += AVX2_TOKENS)
        tile_avx2(w, n_rows, tok->x + (size_t)t * n_in, AVX2_TOKENS, n_in, y + (size_t)t * y_stride, y_stride);
    if (tok->n_tok - t == 2)
        tile_avx2(w, n_rows, tok->x + (size_t)t * n_in, 2, n_in, y + (size_t)t * y_stride, y_stride);
    else if (tok->n_tok - t == 1)
        tile_avx2(w, n_rows, tok->x + (size_t)t * n_in, 1, n_in, y + (size_t)t * y_stride, y_stride);
}

/* Rows w[0..7] against n_pairs (a constant 1..AVX512_PAIRS after inlining) token pairs from
 * pair p0 on; each 16-lane accumulator holds two tokens' 8-lane ones side by side. */
AVX512 static INLINE void tile_avx512(const tokens *tok, const float *const w[QE_TILE_ROWS], int p0, int n_pairs,
                                      float *y, size_t y_stride)
{
    int n_in = tok->n_in, n_blocks = tok->n_blocks;
    const float *xp = tok->pairs + (size_t)p0 * n_blocks * 16;
    __m512 acc[QE_TILE_ROWS][AVX512_PAIRS];
#pragma GCC unroll 8
    for (int i = 0; i < QE_TILE_ROWS; i++)
#pragma GCC unroll 8
        for (int p = 0; p < n_pairs; p++) acc[i][p] = _mm512_setzero_ps();
    for (int b = 0; b < n_blocks; b++) {
        __m512 wv[QE_TILE_ROWS];
#pragma GCC unroll 8
        for (int i = 0; i < QE_TILE_ROWS; i++) wv[i] = _mm512_broadcast_f32x8(_mm256_loadu_ps(w[i] + 8 * b));
#pragma GCC unroll 8
        for (int p = 0; p < n_pairs; p++) {
            __m512 xv = _mm512_loadu_ps(xp + ((size_t)p * n_blocks + b) * 16);
#pragma GCC unroll 8
            for (int i = 0; i < QE_TILE_ROWS; i++) acc[i][p] = _mm512_fmadd_ps(wv[i], xv, acc[i][p]);
        }
    }
    int k_vec = 8 * n_blocks;
#pragma GCC unroll 8
    for (int p = 0; p < n_pairs; p++) {
        int t = 2 * (p0 + p);
        const float *xt = tok->x + (size_t)t * n_in;
        float *yt = y + (size_t)t * y_stride;
#pragma GCC unroll 2
        for (int i = 0; i < QE_TILE_ROWS; i += AVX2_ROWS) {
            store_rows(yt + i,
                       finish_rows4(_mm512_castps512_ps256(acc[i][p]), _mm512_castps512_ps256(acc[i + 1][p]),
                                    _mm512_castps512_ps256(acc[i + 2][p]), _mm512_castps512_ps256(acc[i + 3][p]),
                                    w + i, xt, k_vec, n_in),
                       AVX2_ROWS);
            if (t + 1 < tok->n_tok)
                store_rows(yt + y_stride + i,
                           finish_rows4(_mm512_extractf32x8_ps(acc[i][p], 1), _mm512_extractf32x8_ps(acc[i + 1][p], 1),
                                        _mm512_extractf32x8_ps(acc[i + 2][p], 1),
                                        _mm512_extractf32x8_ps(acc[i + 3][p], 1), w + i, xt + n_in, k_vec, n_in),
                           AVX2_ROWS);
        }
    }
}

/* Eight whole rows w[0..7] against every token. */
AVX512 static void tiles_avx512(const tokens *tok, const float *const w[QE_TILE_ROWS], float *y, size_t y_stride)
{
    int n_pairs = (tok->n_tok + 1) / 2, p = 0;
    for (; p + AVX512_PAIRS <= n_pairs; p += AVX512_PAIRS)
        tile_avx512(tok, w, p, AVX512_PAIRS, y, y_stride);
    if (p < n_pairs)
        tile_avx512(tok, w, p, 1, y, y_stride);
}

/* Fills tok, the pairs carved from *cursor. One token runs the AVX2 kernel: a pair would be
 * half padding. */
static void tokens_init(tokens *tok, const float *x, int n_tok, int n_in, char **cursor)
{
    *tok = (tokens){.x = x, .n_tok = n_tok, .n_in = n_in, .n_blocks = n_in / 8};
    if (n_tok < 2 || tok->n_blocks == 0 || !qe_cpu_has_avx512())
        return;
    int n_pairs = (n_tok + 1) / 2;
    tok->pairs = qe_scratch_take(cursor, (size_t)n_pairs * tok->n_blocks * 16 * sizeof *tok->pairs);
    for (int t = 0; t < 2 * n_pairs; t++)
        for (int b = 0; b < tok->n_blocks; b++) {
            float *dst = tok->pairs + ((size_t)(t / 2) * tok->n_blocks + b) * 16 + (t % 2) * 8;
            if (t < n_tok)
                memcpy(dst, x + (size_t)t * n_in + 8 * b, 8 * sizeof *dst);
            else
                memset(dst, 0, 8 * sizeof *dst);
        }
}

void qe_dot_rows(const qe_linear *lin, qe_dot_row_fn row, const float *x, int n_tok, float *y, int row_begin,
                 int row_end, void *scratch)
{
    int n_in = lin->w.n_in;
    char *cursor = scratch;
    float *buf = qe_scratch_take(&cursor, (size_t)QE_TILE_ROWS * n_in * sizeof *buf);
    tokens tok;
    tokens_init(&tok, x, n_tok, n_in, &cursor);
    for (int r = row_begin; r < row_end; r += QE_TILE_ROWS) {
        int n_rows = row_end - r < QE_TILE_ROWS ? row_end - r : QE_TILE_ROWS;
        const float *w[QE_TILE_ROWS];
        for (int i = 0; i < QE_TILE_ROWS; i++) /* a short block repeats its last row; those sums are dropped */
            w[i] = i < n_rows ? row(lin, r + i, buf + (size_t)i * n_in) : w[n_rows - 1];
        if (tok.pairs && n_rows == QE_TILE_ROWS)
            tiles_avx512(&tok, w, y + r, (size_t)lin->w.n_out);
        else
            for (int i = 0; i < n_rows; i += AVX2_ROWS)
                tiles_avx2(&tok, w + i, n_rows - i, y + r + i, (size_t)lin->w.n_out);
    }
}
