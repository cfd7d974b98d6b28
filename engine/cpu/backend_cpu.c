/* The CPU backend: host memory, ops split over its own thread pool by rows (tokens, heads).
 * Linears run the SIMD kernels of cpu/linear.h, attention its own float32 loop; the row-wise
 * ops run the reference definitions (ref/ref_ops.h) over each thread's range. Ops allocate
 * nothing: reserve_workspace sizes one scratch slice per thread. prepare_linear moves each
 * weight's bulk array into the backend's huge-page arena (cpu/host_arena.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu/host_arena.h"
#include "cpu/linear.h"
#include "cpu/simd.h"
#include "ref/ref_ops.h"

typedef struct {
    qe_pool *pool;
    char *scratch;              /* [n_threads * scratch_stride] */
    size_t scratch_stride;      /* bytes per thread (a multiple of 64) */
    int max_tokens, max_context, max_n_in; /* what the scratch was sized for */
    qe_host_arena weights;      /* the linears' bulk arrays (huge pages) */
} cpu_state;

static cpu_state *state_of(const qe_backend *be) { return be->impl; }
static const qe_linear *linear_of(const qe_backend_linear *handle) { return (const qe_linear *)handle; }

/* Bytes of one thread's scratch: a thread runs one linear's share or one attention range at a time. */
static size_t cpu_scratch_stride(int max_tokens, int max_context, int max_n_in)
{
    size_t linear = qe_linear_scratch_bytes(max_tokens, max_n_in), scores = (size_t)max_context * sizeof(float);
    return ((linear > scores ? linear : scores) + 63) & ~(size_t)63;
}

uint64_t qe_cpu_workspace_bytes(int n_threads, int max_tokens, int max_context, int max_n_in)
{
    return (uint64_t)cpu_scratch_stride(max_tokens, max_context, max_n_in) * qe_pool_resolve_threads(n_threads);
}

static qe_status cpu_reserve_workspace(qe_backend *be, int max_tokens, int max_context, int n_heads, int max_n_in,
                                       qe_error *err)
{
    cpu_state *s = state_of(be);
    if (max_tokens <= s->max_tokens && max_context <= s->max_context && max_n_in <= s->max_n_in)
        return QE_OK;
    if (max_tokens < s->max_tokens) max_tokens = s->max_tokens;
    if (max_context < s->max_context) max_context = s->max_context;
    if (max_n_in < s->max_n_in) max_n_in = s->max_n_in;
    size_t stride = cpu_scratch_stride(max_tokens, max_context, max_n_in);
    char *scratch = aligned_alloc(64, stride * qe_pool_threads(s->pool));
    if (!scratch)
        return qe_fail(err, QE_ENOMEM, "cpu backend: out of memory for a workspace of %d threads x %zu bytes",
                       qe_pool_threads(s->pool), stride);
    free(s->scratch);
    s->scratch = scratch, s->scratch_stride = stride;
    s->max_tokens = max_tokens, s->max_context = max_context, s->max_n_in = max_n_in;
    return QE_OK;
}

static qe_status cpu_prepare_linear(qe_backend *be, qe_weight *w, qe_dtype compute_dtype, qe_backend_linear **out,
                                    qe_error *err)
{
    qe_linear *lin = malloc(sizeof *lin);
    if (!lin) {
        qe_weight_free(w);
        return qe_fail(err, QE_ENOMEM, "cpu backend: out of memory");
    }
    size_t bulk_bytes;
    qe_weight_bulk(w, &bulk_bytes);
    void *home = bulk_bytes ? qe_host_arena_take(&state_of(be)->weights, bulk_bytes) : NULL;
    if (home) /* else the weight stays where it is, on small pages */
        qe_weight_move_bulk(w, home);
    qe_linear_init(lin, w, compute_dtype);
    *out = (qe_backend_linear *)lin;
    return QE_OK;
}

static void cpu_free_linear(qe_backend *be, qe_backend_linear *handle)
{
    qe_linear *lin = (qe_linear *)handle;
    qe_linear_free(lin);
    free(lin);
}

static uint64_t cpu_linear_bytes(const qe_backend *be, const qe_backend_linear *handle)
{
    return qe_weight_bytes(&linear_of(handle)->w);
}

static void cpu_embed(qe_backend *be, const qe_backend_linear *table, const int32_t *ids, int n_tok, float scale,
                      qe_dtype dtype, float *out)
{
    if (!qe_backend_failed(be))
        qe_embed_ref(&linear_of(table)->w, ids, n_tok, scale, dtype, out);
}

static void cpu_linear(qe_backend *be, const qe_backend_linear *handle, const float *x, int n_tok, qe_dtype out_dtype,
                       float *y)
{
    cpu_state *s = state_of(be);
    const qe_linear *lin = linear_of(handle);
    if (qe_backend_failed(be))
        return;
    if (n_tok > s->max_tokens || lin->w.n_in > s->max_n_in) {
        qe_backend_fail(be, QE_EINVAL, "linear of %d tokens x %d inputs, the workspace holds %d x %d", n_tok,
                        lin->w.n_in, s->max_tokens, s->max_n_in);
        return;
    }
    qe_linear_forward(lin, x, n_tok, y, s->pool, s->scratch, s->scratch_stride);
    qe_round_to_dtype(y, (size_t)n_tok * lin->w.n_out, out_dtype);
}

typedef struct {
    const float *x, *weight;
    float offset, eps;
    int dim;
    qe_dtype dtype;
    float *y;
} rmsnorm_job;

static void rmsnorm_rows(void *p, int begin, int end, int thread)
{
    const rmsnorm_job *j = p;
    qe_rmsnorm_rows_ref(j->x, j->weight, j->offset, j->eps, j->dim, j->dtype, j->y, begin, end);
}

static void cpu_rmsnorm(qe_backend *be, const float *x, const float *weight, float offset, float eps, int n_rows,
                        int dim, qe_dtype dtype, float *y)
{
    if (qe_backend_failed(be))
        return;
    rmsnorm_job job = {x, weight, offset, eps, dim, dtype, y};
    qe_pool_run(qe_pool_for(state_of(be)->pool, 4.0 * n_rows * dim), n_rows, 1, rmsnorm_rows, &job);
}

typedef struct {
    float *x;
    int n_heads, head_dim;
    const float *cos_table, *sin_table;
    qe_dtype dtype;
} rope_job;

static void rope_rows(void *p, int begin, int end, int thread)
{
    const rope_job *j = p;
    qe_rope_rows_ref(j->x, j->n_heads, j->head_dim, j->cos_table, j->sin_table, j->dtype, begin, end);
}

static void cpu_rope(qe_backend *be, float *x, int n_tok, int n_heads, int head_dim, const float *cos_table,
                     const float *sin_table, qe_dtype dtype)
{
    if (qe_backend_failed(be))
        return;
    rope_job job = {x, n_heads, head_dim, cos_table, sin_table, dtype};
    qe_pool_run(qe_pool_for(state_of(be)->pool, 4.0 * n_tok * n_heads * head_dim), n_tok * n_heads, 1, rope_rows,
                &job);
}

typedef struct {
    const qe_attention_args *a;
    qe_dtype dtype;
    const cpu_state *state;
} attention_job;

#define KEYS_AT_ONCE 4  /* dot products in flight: independent FMA chains */
#define ATTENTION_CHUNKS_PER_THREAD 16
#define VALUE_COLUMNS 64 /* output columns a pass over the keys keeps in registers */

/* Query q's dot with the n_keys (<= KEYS_AT_ONCE) rows k[]: each as eight lane chains of fused
 * multiply-adds over d in order, folded by qe_reduce8, then the n % 8 tail terms; several chains
 * in flight. */
static inline void dot_keys(const float *q, const float *const *k, int n_keys, int n, float *out)
{
    qe_v8 acc[KEYS_AT_ONCE] = {{0}};
    int d = 0;
    for (; d + 8 <= n; d += 8) {
        qe_v8 qv = qe_load8(q + d);
        for (int i = 0; i < n_keys; i++)
            acc[i] = qe_fma8(qv, qe_load8(k[i] + d), acc[i]);
    }
    for (int i = 0; i < n_keys; i++) {
        float sum = qe_reduce8(acc[i]);
        for (int e = d; e < n; e++)
            sum += q[e] * k[i][e];
        out[i] = sum;
    }
}

/* acc[d] for d in [d0, d0 + VALUE_COLUMNS) (whole 8-blocks of the head) = the sum over the keys,
 * in position order, of weight x value, rounded after each product and each sum as a plain loop
 * rounds them; the columns stay in registers for the whole pass. */
static inline void weigh_values(const qe_attention_args *a, int t, int first, int pos, const float *weights,
                                size_t kv_offset, int d0, int n_cols, float *acc)
{
    size_t kv_stride = (size_t)a->n_kv_heads * a->head_dim;
    qe_v8 sum[VALUE_COLUMNS / 8] = {{0}};
    int n_blocks = n_cols / 8;
    for (int s = first; s <= pos; s++) {
        const float *v = a->v_cache + (size_t)qe_attention_key_row(a, t, s) * kv_stride + kv_offset + d0;
        qe_v8 w = {weights[s], weights[s], weights[s], weights[s], weights[s], weights[s], weights[s], weights[s]};
        for (int b = 0; b < n_blocks; b++)
            sum[b] += w * qe_load8(v + 8 * b);
    }
    for (int b = 0; b < n_blocks; b++)
        memcpy(acc + d0 + 8 * b, &sum[b], sizeof sum[b]);
}

/* Items are (token, head) pairs; each computes one query's softmax over its visible keys: the
 * scores (dot_keys), their exponentials summed in double in position order, the weighted values
 * (weigh_values, and a plain loop for columns past the last whole 8-block). */
static void attention_items(void *p, int begin, int end, int thread)
{
    const attention_job *j = p;
    const qe_attention_args *a = j->a;
    int hd = a->head_dim, group = a->n_heads / a->n_kv_heads, hd8 = hd / 8 * 8;
    size_t kv_stride = (size_t)a->n_kv_heads * hd;
    float *scores = (float *)(j->state->scratch + thread * j->state->scratch_stride);
    float acc[hd];
    for (int item = begin; item < end; item++) {
        int t = item / a->n_heads, h = item % a->n_heads, kvh = h / group;
        int pos = qe_attention_position(a, t), first = qe_attention_first_of(a, pos);
        size_t kv_offset = (size_t)kvh * hd;
        const float *q = a->q + (size_t)item * hd;
        float max_score = -INFINITY;
        for (int s0 = first; s0 <= pos; s0 += KEYS_AT_ONCE) {
            int n_keys = pos + 1 - s0 < KEYS_AT_ONCE ? pos + 1 - s0 : KEYS_AT_ONCE;
            const float *k[KEYS_AT_ONCE] = {0};
            float dots[KEYS_AT_ONCE];
            for (int i = 0; i < n_keys; i++)
                k[i] = a->k_cache + (size_t)qe_attention_key_row(a, t, s0 + i) * kv_stride + kv_offset;
            if (n_keys == KEYS_AT_ONCE) /* a constant count: the chains stay in registers */
                dot_keys(q, k, KEYS_AT_ONCE, hd, dots);
            else
                dot_keys(q, k, n_keys, hd, dots);
            for (int i = 0; i < n_keys; i++) {
                float sc = dots[i] * a->scale;
                scores[s0 + i] = sc;
                if (sc > max_score)
                    max_score = sc;
            }
        }
        for (int s = first; s <= pos; s++)
            scores[s] = expf(scores[s] - max_score);
        double sum = 0; /* summed apart from the calls, so that it stays in a register */
        for (int s = first; s <= pos; s++)
            sum += scores[s];
        float inv_sum = (float)(1.0 / sum);
        for (int d0 = 0; d0 < hd8; d0 += VALUE_COLUMNS)
            weigh_values(a, t, first, pos, scores, kv_offset, d0, hd8 - d0 < VALUE_COLUMNS ? hd8 - d0 : VALUE_COLUMNS,
                         acc);
        for (int d = hd8; d < hd; d++) { /* a head_dim off the 8-blocks: its last columns */
            acc[d] = 0;
            for (int s = first; s <= pos; s++)
                acc[d] += scores[s] * a->v_cache[(size_t)qe_attention_key_row(a, t, s) * kv_stride + kv_offset + d];
        }
        float *out = a->out + (size_t)item * hd;
        for (int d = 0; d < hd; d++)
            out[d] = qe_round_to(acc[d] * inv_sum, j->dtype);
    }
}

static void cpu_attention(qe_backend *be, const qe_attention_args *args, qe_dtype dtype)
{
    cpu_state *s = state_of(be);
    if (qe_backend_failed(be))
        return;
    if (args->pos0 + args->n_tok > s->max_context) {
        qe_backend_fail(be, QE_EINVAL, "attention over %d positions, the workspace holds %d",
                        args->pos0 + args->n_tok, s->max_context);
        return;
    }
    const char *ring_problem = qe_attention_ring_problem(args);
    if (ring_problem) {
        qe_backend_fail(be, QE_EINVAL, "attention over a cache of %d rows at positions %d..%d: %s",
                        args->kv_ring, args->pos0, args->pos0 + args->n_tok - 1, ring_problem);
        return;
    }
    attention_job job = {args, dtype, s};
    double work = 2.0 * args->n_tok * args->n_heads * args->head_dim * (args->pos0 + args->n_tok);
    /* a causal chunk's later queries read more keys: chunks of a few items, claimed as threads
     * come free, keep both cores busy to the end (one contiguous half each left the first half's
     * thread idle for most of a prompt's first chunk) */
    qe_pool_run_chunks(qe_pool_for(s->pool, work), args->n_tok * args->n_heads, 1, ATTENTION_CHUNKS_PER_THREAD,
                       attention_items, &job);
}

typedef struct {
    qe_activation act;
    const float *gate, *up;
    qe_dtype dtype;
    float *y;
} glu_job;

static void glu_items(void *p, int begin, int end, int thread)
{
    const glu_job *j = p;
    qe_glu_ref(j->act, j->gate, j->up, j->dtype, j->y, (size_t)begin, (size_t)end);
}

static void cpu_glu(qe_backend *be, qe_activation act, const float *gate, const float *up, size_t n, qe_dtype dtype,
                    float *y)
{
    if (qe_backend_failed(be))
        return;
    glu_job job = {act, gate, up, dtype, y};
    qe_pool_run(qe_pool_for(state_of(be)->pool, 20.0 * n), (int)n, 1024, glu_items, &job);
}

static void cpu_add(qe_backend *be, float *y, const float *x, size_t n, qe_dtype dtype)
{
    if (!qe_backend_failed(be))
        qe_add_ref(y, x, n, dtype);
}

typedef struct {
    const float *logits;
    int n_vocab;
    const int32_t *targets;
    qe_row_stats *out;
} row_stats_job;

static void row_stats_rows(void *p, int begin, int end, int thread)
{
    const row_stats_job *j = p;
    for (int r = begin; r < end; r++)
        j->out[r] = qe_row_stats_of(j->logits + (size_t)r * j->n_vocab, j->n_vocab, j->targets ? j->targets[r] : -1);
}

static void cpu_row_stats(qe_backend *be, const float *logits, int n_rows, int n_vocab, const int32_t *targets,
                          qe_row_stats *out)
{
    if (qe_backend_failed(be))
        return;
    row_stats_job job = {logits, n_vocab, targets, out};
    qe_pool_run(qe_pool_for(state_of(be)->pool, 20.0 * n_rows * n_vocab), n_rows, 1, row_stats_rows, &job);
}

static qe_status cpu_sync(qe_backend *be, qe_error *err) { return qe_backend_take_error(be, err); }

static void cpu_destroy(qe_backend *be)
{
    if (!be)
        return;
    cpu_state *s = state_of(be);
    qe_pool_free(s->pool);
    free(s->scratch);
    qe_host_arena_free(&s->weights);
    free(s);
    free(be);
}

qe_status qe_backend_cpu_create(int n_threads, qe_backend **out, qe_error *err)
{
    *out = NULL;
    qe_backend *be = calloc(1, sizeof *be);
    cpu_state *s = calloc(1, sizeof *s);
    if (!be || !s) {
        free(be);
        free(s);
        return qe_fail(err, QE_ENOMEM, "cpu backend: out of memory");
    }
    qe_status rc = qe_pool_create(n_threads, &s->pool, err);
    if (rc != QE_OK) {
        free(be);
        free(s);
        return rc;
    }
    *be = (qe_backend){
        .name = "cpu", .impl = s,
        .alloc = qe_host_alloc, .release = qe_host_release, .grow = qe_host_grow, .reserve_workspace = cpu_reserve_workspace,
        .prepare_linear = cpu_prepare_linear, .free_linear = cpu_free_linear, .linear_bytes = cpu_linear_bytes,
        .upload_new = qe_host_upload_new,
        .embed = cpu_embed, .linear = cpu_linear, .rmsnorm = cpu_rmsnorm, .rope = cpu_rope,
        .attention = cpu_attention, .glu = cpu_glu, .add = cpu_add, .copy = qe_host_copy,
        .download = qe_host_copy, .upload = qe_host_copy, .row_stats = cpu_row_stats,
        .sync = cpu_sync, .destroy = cpu_destroy,
    };
    *out = be;
    return QE_OK;
}
