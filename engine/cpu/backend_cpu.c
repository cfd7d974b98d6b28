/* The CPU backend: host memory, ops split over the thread pool by rows (tokens, heads). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu/simd.h"

static inline float dot(const float *a, const float *b, int n)
{
    qe_v8 acc = {0};
    int k = 0;
    for (; k + 8 <= n; k += 8)
        acc = qe_fma8(qe_load8(a + k), qe_load8(b + k), acc);
    float s = qe_reduce8(acc);
    for (; k < n; k++)
        s += a[k] * b[k];
    return s;
}

static inline float round1(float x, qe_dtype dtype)
{
    if (dtype == QE_DTYPE_BF16)
        return qe_round_bf16(x);
    if (dtype == QE_DTYPE_F16)
        return qe_round_f16(x);
    return x;
}

void qe_round_to_dtype(float *x, size_t n, qe_dtype dtype)
{
    /* one loop per dtype, so the compiler can vectorize it */
    if (dtype == QE_DTYPE_BF16)
        for (size_t i = 0; i < n; i++)
            x[i] = qe_round_bf16(x[i]);
    else if (dtype == QE_DTYPE_F16) {
        size_t i = 0;
#ifdef __F16C__
        /* 8 at a time, as qe_round_f16 rounds a non-NaN value; from a NaN on, one at a time */
        for (; i + 8 <= n; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i);
            if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)))
                break;
            _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)));
        }
#endif
        for (; i < n; i++)
            x[i] = qe_round_f16(x[i]);
    }
}

static qe_pool *pool_of(qe_backend *be) { return be->impl; }

static float *cpu_alloc(qe_backend *be, size_t n_floats) { return malloc((n_floats ? n_floats : 1) * sizeof(float)); }
static void cpu_release(qe_backend *be, float *buf) { free(buf); }
static float *cpu_grow(qe_backend *be, float *buf, size_t n_keep, size_t n_floats)
{
    return realloc(buf, (n_floats ? n_floats : 1) * sizeof(float));
}

static void cpu_embed(qe_backend *be, const float *table, int dim, const int32_t *ids, int n_tok, float scale,
                      qe_dtype dtype, float *out)
{
    float s = round1(scale, dtype);
    for (int t = 0; t < n_tok; t++) {
        const float *row = table + (size_t)ids[t] * dim;
        float *o = out + (size_t)t * dim;
        if (s == 1.0f)
            memcpy(o, row, dim * sizeof(float));
        else
            for (int i = 0; i < dim; i++)
                o[i] = row[i] * s;
        qe_round_to_dtype(o, dim, dtype);
    }
}

static void cpu_linear(qe_backend *be, const qe_linear *lin, const float *x, int n_tok, float *y)
{
    qe_linear_forward(lin, x, n_tok, y, pool_of(be));
}

typedef struct {
    const float *x, *weight;
    float offset, eps;
    int dim;
    qe_dtype dtype;
    float *y;
} rmsnorm_job;

static void rmsnorm_rows(void *p, int begin, int end)
{
    const rmsnorm_job *j = p;
    for (int r = begin; r < end; r++) {
        const float *x = j->x + (size_t)r * j->dim;
        float *y = j->y + (size_t)r * j->dim;
        double sum_sq = 0;
        for (int i = 0; i < j->dim; i++)
            sum_sq += (double)x[i] * x[i];
        float inv = (float)(1.0 / sqrt(sum_sq / j->dim + j->eps));
        /* Llama-style norms round the normalized value before the weight multiply; the
         * (offset + weight) form (Gemma) multiplies in float32 and rounds once. */
        for (int i = 0; i < j->dim; i++) {
            float n = x[i] * inv;
            y[i] = j->offset != 0 ? round1(n * (j->offset + j->weight[i]), j->dtype)
                                  : round1(j->weight[i] * round1(n, j->dtype), j->dtype);
        }
    }
}

static void cpu_rmsnorm(qe_backend *be, const float *x, const float *weight, float offset, float eps, int n_rows,
                        int dim, qe_dtype dtype, float *y)
{
    rmsnorm_job job = {x, weight, offset, eps, dim, dtype, y};
    qe_pool_run(qe_pool_for(pool_of(be), 4.0 * n_rows * dim), n_rows, 1, rmsnorm_rows, &job);
}

typedef struct {
    float *x;
    int n_heads, head_dim;
    const float *cos_table, *sin_table;
    qe_dtype dtype;
} rope_job;

static void rope_rows(void *p, int begin, int end)
{
    const rope_job *j = p;
    int half = j->head_dim / 2;
    for (int row = begin; row < end; row++) {
        int t = row / j->n_heads;
        float *x = j->x + (size_t)row * j->head_dim;
        const float *c = j->cos_table + (size_t)t * half, *s = j->sin_table + (size_t)t * half;
        for (int i = 0; i < half; i++) {
            float a = x[i], b = x[i + half];
            float ci = round1(c[i], j->dtype), si = round1(s[i], j->dtype);
            x[i] = round1(round1(a * ci, j->dtype) - round1(b * si, j->dtype), j->dtype);
            x[i + half] = round1(round1(b * ci, j->dtype) + round1(a * si, j->dtype), j->dtype);
        }
    }
}

static void cpu_rope(qe_backend *be, float *x, int n_tok, int n_heads, int head_dim, const float *cos_table,
                     const float *sin_table, qe_dtype dtype)
{
    rope_job job = {x, n_heads, head_dim, cos_table, sin_table, dtype};
    qe_pool_run(qe_pool_for(pool_of(be), 4.0 * n_tok * n_heads * head_dim), n_tok * n_heads, 1, rope_rows, &job);
}

typedef struct {
    const qe_attention_args *a;
    qe_dtype dtype;
} attention_job;

/* Items are (token, head) pairs; each computes one query's softmax over its visible keys. */
static void attention_items(void *p, int begin, int end)
{
    const attention_job *j = p;
    const qe_attention_args *a = j->a;
    int hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    size_t kv_stride = (size_t)a->n_kv_heads * hd;
    float *scores = malloc((size_t)(a->pos0 + a->n_tok) * sizeof(float));
    float *acc = malloc((size_t)hd * sizeof(float));
    if (!scores || !acc) {
        /* without scratch the op cannot run; the results stay NaN so the caller sees it */
        for (int item = begin; item < end; item++)
            for (int d = 0; d < hd; d++)
                a->out[(size_t)item * hd + d] = NAN;
        free(scores);
        free(acc);
        return;
    }
    for (int item = begin; item < end; item++) {
        int t = item / a->n_heads, h = item % a->n_heads, kvh = h / group;
        int pos = a->pos0 + t;
        int first = a->window > 0 && pos - a->window + 1 > 0 ? pos - a->window + 1 : 0;
        const float *q = a->q + (size_t)item * hd;
        float max_score = -INFINITY;
        for (int s = first; s <= pos; s++) {
            float sc = dot(q, a->k_cache + (size_t)s * kv_stride + (size_t)kvh * hd, hd) * a->scale;
            scores[s] = sc;
            if (sc > max_score)
                max_score = sc;
        }
        double sum = 0;
        for (int s = first; s <= pos; s++) {
            scores[s] = expf(scores[s] - max_score);
            sum += scores[s];
        }
        float inv_sum = (float)(1.0 / sum);
        memset(acc, 0, (size_t)hd * sizeof(float));
        for (int s = first; s <= pos; s++) {
            const float *v = a->v_cache + (size_t)s * kv_stride + (size_t)kvh * hd;
            float w = scores[s];
            for (int d = 0; d < hd; d++)
                acc[d] += w * v[d];
        }
        float *out = a->out + (size_t)item * hd;
        for (int d = 0; d < hd; d++)
            out[d] = round1(acc[d] * inv_sum, j->dtype);
    }
    free(scores);
    free(acc);
}

static void cpu_attention(qe_backend *be, const qe_attention_args *args, qe_dtype dtype)
{
    attention_job job = {args, dtype};
    double work = 2.0 * args->n_tok * args->n_heads * args->head_dim * (args->pos0 + args->n_tok);
    qe_pool_run(qe_pool_for(pool_of(be), work), args->n_tok * args->n_heads, 1, attention_items, &job);
}

void qe_attention_ref(const qe_attention_args *a)
{
    int hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    size_t kv_stride = (size_t)a->n_kv_heads * hd;
    double *weights = malloc((size_t)(a->pos0 + a->n_tok) * sizeof *weights);
    double *acc = malloc((size_t)hd * sizeof *acc);
    for (int t = 0; weights && acc && t < a->n_tok; t++)
        for (int h = 0; h < a->n_heads; h++) {
            int pos = a->pos0 + t, kvh = h / group;
            const float *q = a->q + ((size_t)t * a->n_heads + h) * hd;
            double max_score = -INFINITY, sum = 0;
            for (int s = 0; s <= pos; s++) {
                double sc = 0;
                for (int d = 0; d < hd; d++)
                    sc += (double)q[d] * a->k_cache[s * kv_stride + (size_t)kvh * hd + d];
                weights[s] = a->window > 0 && pos - s >= a->window ? -INFINITY : sc * a->scale;
                if (weights[s] > max_score)
                    max_score = weights[s];
            }
            for (int d = 0; d < hd; d++)
                acc[d] = 0;
            for (int s = 0; s <= pos; s++) {
                double w = exp(weights[s] - max_score);
                sum += w;
                for (int d = 0; d < hd; d++)
                    acc[d] += w * a->v_cache[s * kv_stride + (size_t)kvh * hd + d];
            }
            float *out = a->out + ((size_t)t * a->n_heads + h) * hd;
            for (int d = 0; d < hd; d++)
                out[d] = (float)(acc[d] / sum);
        }
    free(weights);
    free(acc);
}

typedef struct {
    qe_activation act;
    const float *gate, *up;
    qe_dtype dtype;
    float *y;
} glu_job;

static void glu_items(void *p, int begin, int end)
{
    const glu_job *j = p;
    for (int i = begin; i < end; i++) {
        float g = j->gate[i], a;
        if (j->act == QE_ACT_SILU)
            a = g / (1.0f + expf(-g));
        else /* gelu, tanh approximation */
            a = 0.5f * g * (1.0f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
        j->y[i] = round1(round1(a, j->dtype) * j->up[i], j->dtype);
    }
}

static void cpu_glu(qe_backend *be, qe_activation act, const float *gate, const float *up, size_t n, qe_dtype dtype,
                    float *y)
{
    glu_job job = {act, gate, up, dtype, y};
    qe_pool_run(qe_pool_for(pool_of(be), 20.0 * n), (int)n, 1024, glu_items, &job);
}

static void cpu_add(qe_backend *be, float *y, const float *x, size_t n, qe_dtype dtype)
{
    for (size_t i = 0; i < n; i++)
        y[i] = round1(y[i] + x[i], dtype);
}

static void cpu_copy(qe_backend *be, float *dst, const float *src, size_t n) { memcpy(dst, src, n * sizeof(float)); }

static void cpu_round(qe_backend *be, float *x, size_t n, qe_dtype dtype) { qe_round_to_dtype(x, n, dtype); }

static void cpu_destroy(qe_backend *be) { free(be); }

qe_status qe_backend_cpu_create(qe_pool *pool, qe_backend **out, qe_error *err)
{
    qe_backend *be = calloc(1, sizeof *be);
    if (!be)
        return qe_fail(err, QE_ENOMEM, "CPU backend: out of memory");
    be->name = "cpu";
    be->impl = pool;
    be->alloc = cpu_alloc;
    be->release = cpu_release;
    be->grow = cpu_grow;
    be->embed = cpu_embed;
    be->linear = cpu_linear;
    be->rmsnorm = cpu_rmsnorm;
    be->rope = cpu_rope;
    be->attention = cpu_attention;
    be->glu = cpu_glu;
    be->add = cpu_add;
    be->copy = cpu_copy;
    be->download = cpu_copy;
    be->upload = cpu_copy;
    be->round = cpu_round;
    be->destroy = cpu_destroy;
    *out = be;
    return QE_OK;
}
