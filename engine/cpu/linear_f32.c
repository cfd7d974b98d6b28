/* F32 linear kernels: y[t, r] = sum_k x[t, k] W[r, k].
 *
 * The fast kernel computes 4 rows x 2 tokens at a time with 8-lane vector accumulators (GCC
 * vector extensions; AVX2 with -march=native). Every output's sum runs in the same order —
 * 8 lane partial sums over k, a fixed pairwise reduction, then the tail — whichever block it
 * falls in, so results do not depend on n_tok or the row split. */
#include <string.h>

#include "linear.h"

typedef float v8 __attribute__((vector_size(32)));

static inline v8 load8(const float *p)
{
    v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float reduce8(v8 v)
{
    float a = (v[0] + v[4]) + (v[2] + v[6]);
    float b = (v[1] + v[5]) + (v[3] + v[7]);
    return a + b;
}

/* The tail of one dot product past the last whole 8-lane block. */
static inline float tail_dot(const float *w, const float *x, int k0, int n)
{
    float s = 0;
    for (int k = k0; k < n; k++)
        s += w[k] * x[k];
    return s;
}

static void block_4x2(const float *w0, int n_in, const float *x0, const float *x1, float out[4][2])
{
    const float *w1 = w0 + n_in, *w2 = w1 + n_in, *w3 = w2 + n_in;
    v8 a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
    int k = 0;
    for (; k + 8 <= n_in; k += 8) {
        v8 xa = load8(x0 + k), xb = load8(x1 + k);
        v8 w = load8(w0 + k);
        a00 += w * xa; a01 += w * xb;
        w = load8(w1 + k);
        a10 += w * xa; a11 += w * xb;
        w = load8(w2 + k);
        a20 += w * xa; a21 += w * xb;
        w = load8(w3 + k);
        a30 += w * xa; a31 += w * xb;
    }
    out[0][0] = reduce8(a00) + tail_dot(w0, x0, k, n_in);
    out[0][1] = reduce8(a01) + tail_dot(w0, x1, k, n_in);
    out[1][0] = reduce8(a10) + tail_dot(w1, x0, k, n_in);
    out[1][1] = reduce8(a11) + tail_dot(w1, x1, k, n_in);
    out[2][0] = reduce8(a20) + tail_dot(w2, x0, k, n_in);
    out[2][1] = reduce8(a21) + tail_dot(w2, x1, k, n_in);
    out[3][0] = reduce8(a30) + tail_dot(w3, x0, k, n_in);
    out[3][1] = reduce8(a31) + tail_dot(w3, x1, k, n_in);
}

static float dot1(const float *w, const float *x, int n_in)
{
    v8 acc = {0};
    int k = 0;
    for (; k + 8 <= n_in; k += 8)
        acc += load8(w + k) * load8(x + k);
    return reduce8(acc) + tail_dot(w, x, k, n_in);
}

void qe_linear_f32_rows(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end)
{
    const float *w = lin->weight;
    int n_in = lin->n_in, n_out = lin->n_out;
    int r = row_begin;
    for (; r + 4 <= row_end; r += 4) {
        const float *wr = w + (size_t)r * n_in;
        int t = 0;
        for (; t + 2 <= n_tok; t += 2) {
            float out[4][2];
            block_4x2(wr, n_in, x + (size_t)t * n_in, x + (size_t)(t + 1) * n_in, out);
            for (int i = 0; i < 4; i++) {
                y[(size_t)t * n_out + r + i] = out[i][0];
                y[(size_t)(t + 1) * n_out + r + i] = out[i][1];
            }
        }
        for (; t < n_tok; t++)
            for (int i = 0; i < 4; i++)
                y[(size_t)t * n_out + r + i] = dot1(wr + (size_t)i * n_in, x + (size_t)t * n_in, n_in);
    }
    for (; r < row_end; r++)
        for (int t = 0; t < n_tok; t++)
            y[(size_t)t * n_out + r] = dot1(w + (size_t)r * n_in, x + (size_t)t * n_in, n_in);
}

void qe_linear_f32_rows_ref(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end)
{
    const float *w = lin->weight;
    for (int t = 0; t < n_tok; t++)
        for (int r = row_begin; r < row_end; r++) {
            double s = 0;
            for (int k = 0; k < lin->n_in; k++)
                s += (double)w[(size_t)r * lin->n_in + k] * x[(size_t)t * lin->n_in + k];
            y[(size_t)t * lin->n_out + r] = (float)s;
        }
}
