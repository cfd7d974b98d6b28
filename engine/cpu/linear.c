/* The CPU prepared linear (cpu/linear.h): kernel choice and the thread split. */
#include "cpu/linear.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void qe_linear_init(qe_linear *lin, qe_weight *w, qe_dtype compute_dtype)
{
    memset(lin, 0, sizeof *lin);
    lin->w = *w;
    memset(w, 0, sizeof *w);
    lin->row_grain = 4;
    switch (lin->w.format) {
    case QE_WEIGHT_F32: lin->rows = qe_linear_f32_rows; break;
    case QE_WEIGHT_BF16:
    case QE_WEIGHT_F16: lin->rows = qe_linear_half_rows; break;
    case QE_WEIGHT_NF4: lin->rows = qe_linear_nf4_rows; break;
    case QE_WEIGHT_INT8:
        lin->rows = qe_linear_int8_rows;
        lin->token_grain = 4;
        break;
    }
    if (lin->w.format == QE_WEIGHT_INT8)
        qe_linear_int8_gemv_init(lin);
    else if (!qe_linear_bf16_pairs_init(lin, compute_dtype))
        qe_linear_gemv_init(lin);
}

void qe_linear_free(qe_linear *lin)
{
    if (!lin)
        return;
    qe_weight_free(&lin->w);
    free(lin->row_sums);
    memset(lin, 0, sizeof *lin);
}

size_t qe_linear_scratch_bytes(int n_tok, int n_in)
{
    /* the largest of the dot tile's (8 decoded rows + token pairs), int8's (a prepared token's
     * struct for gemv; quantized tokens padded to 64 bytes, scales, outlier columns and values,
     * prefix counts, one fp16 row) and the bf16 pairs tile's (bf16 tokens and 4 decoded rows,
     * each k padded to 32), each piece rounded up to 64 bytes */
    size_t t = (size_t)n_tok, k = (size_t)n_in;
    size_t dot = 4 * (8 * k) + 4 * ((t + 1) * k) + 2 * 64;
    size_t int8 = 64 + t * (k + 64) + 4 * t + 2 * 4 * t * k + 4 * (t + 1) + 4 * k + 6 * 64;
    size_t pairs = 2 * (t + 4) * (k + 32) + 2 * 64;
    size_t most = dot > int8 ? dot : int8;
    return most > pairs ? most : pairs;
}

typedef struct {
    const qe_linear *lin;
    const float *x;
    const void *token;          /* one token: what gemv reads */
    int n_tok;
    float *y;
    char *scratch;
    size_t scratch_stride;
} forward_job;

/* y[t, r] += bias[r] for tokens [t_begin, t_end) and rows [r_begin, r_end); int8 fuses its own */
static void add_bias(const forward_job *job, int t_begin, int t_end, int r_begin, int r_end)
{
    const qe_weight *w = &job->lin->w;
    if (w->bias && w->format != QE_WEIGHT_INT8)
        for (int t = t_begin; t < t_end; t++) {
            float *row = job->y + (size_t)t * w->n_out;
            for (int r = r_begin; r < r_end; r++)
                row[r] += w->bias[r];
        }
}

static void forward_rows(void *p, int begin, int end, int thread)
{
    const forward_job *job = p;
    job->lin->rows(job->lin, job->x, job->n_tok, job->y, begin, end, job->scratch + thread * job->scratch_stride);
    add_bias(job, 0, job->n_tok, begin, end);
}

static void forward_tokens(void *p, int begin, int end, int thread)
{
    const forward_job *job = p;
    const qe_weight *w = &job->lin->w;
    job->lin->rows(job->lin, job->x + (size_t)begin * w->n_in, end - begin, job->y + (size_t)begin * w->n_out, 0,
                   w->n_out, job->scratch + thread * job->scratch_stride);
    add_bias(job, begin, end, 0, w->n_out);
}

static void forward_gemv(void *p, int begin, int end, int thread)
{
    const forward_job *job = p;
    job->lin->gemv(job->lin, job->token, job->y, begin, end);
    add_bias(job, 0, 1, begin, end);
}

/* Decode splits the rows into one contiguous run per thread (in blocks of 16), claimed from the
 * pool's ticket, so a late thread's run still goes to the other: one long stream per core is
 * what the prefetch (QE_GEMV_PREFETCH_BYTES) feeds best; 8 shorter chunks a thread gave bf16 /
 * int8 / nf4 decode 12% / 15% / 35% fewer tokens/s here (A/B alternated three times). */
#define GEMV_GRAIN 16
#define GEMV_CHUNKS_PER_THREAD 1

void qe_linear_forward(const qe_linear *lin, const float *x, int n_tok, float *y, qe_pool *pool, char *scratch,
                       size_t scratch_stride)
{
    forward_job job = {lin, x, NULL, n_tok, y, scratch, scratch_stride};
    pool = qe_pool_for(pool, (double)lin->w.n_out * lin->w.n_in * n_tok);
    if (n_tok == 1 && lin->gemv) {
        /* the token is prepared once, in thread 0's scratch, which gemv does not otherwise use */
        job.token = lin->prepare ? lin->prepare(lin, x, scratch) : x;
        qe_pool_run_chunks(pool, lin->w.n_out, GEMV_GRAIN, GEMV_CHUNKS_PER_THREAD, forward_gemv, &job);
        return;
    }
    /* every token's outputs depend on that token alone, so either split gives the same bits */
    if (lin->token_grain > 0 && pool && n_tok >= 2 * lin->token_grain * qe_pool_threads(pool))
        qe_pool_run(pool, n_tok, lin->token_grain, forward_tokens, &job);
    else
        qe_pool_run(pool, lin->w.n_out, lin->row_grain, forward_rows, &job);
}
