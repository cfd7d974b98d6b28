/* The reference backend: host memory, one thread, every op the plain definition of ref_ops.h.
 * Slow by design; it is what the other backends are tested against (tests/test_backends.c). */
#include <stdlib.h>
#include <string.h>

#include "ref/ref_ops.h"

typedef struct {
    double *scores;             /* attention workspace [max_context] */
    int max_context;
} ref_state;

typedef struct {
    qe_weight w;
} ref_linear;

static ref_state *state_of(const qe_backend *be) { return be->impl; }

static qe_status ref_reserve_workspace(qe_backend *be, int max_tokens, int max_context, int n_heads, int max_n_in,
                                       qe_error *err)
{
    ref_state *s = state_of(be);
    if (max_context <= s->max_context)
        return QE_OK;
    double *scores = realloc(s->scores, (size_t)max_context * sizeof *scores);
    if (!scores)
        return qe_fail(err, QE_ENOMEM, "ref backend: out of memory for a %d-position workspace", max_context);
    s->scores = scores;
    s->max_context = max_context;
    return QE_OK;
}

static qe_status ref_prepare_linear(qe_backend *be, qe_weight *w, qe_dtype compute_dtype, qe_backend_linear **out,
                                    qe_error *err)
{
    ref_linear *lin = malloc(sizeof *lin);
    if (!lin) {
        qe_weight_free(w);
        return qe_fail(err, QE_ENOMEM, "ref backend: out of memory");
    }
    lin->w = *w;
    memset(w, 0, sizeof *w);
    *out = (qe_backend_linear *)lin;
    return QE_OK;
}

static void ref_free_linear(qe_backend *be, qe_backend_linear *handle)
{
    ref_linear *lin = (ref_linear *)handle;
    if (lin)
        qe_weight_free(&lin->w);
    free(lin);
}

static uint64_t ref_linear_bytes(const qe_backend *be, const qe_backend_linear *handle)
{
    return qe_weight_bytes(&((const ref_linear *)handle)->w);
}

static void ref_embed(qe_backend *be, const qe_backend_linear *table, const int32_t *ids, int n_tok, float scale,
                      qe_dtype dtype, float *out)
{
    if (!qe_backend_failed(be))
        qe_embed_ref(&((const ref_linear *)table)->w, ids, n_tok, scale, dtype, out);
}

static void ref_linear_op(qe_backend *be, const qe_backend_linear *handle, const float *x, int n_tok,
                          qe_dtype out_dtype, float *y)
{
    if (qe_backend_failed(be))
        return;
    const qe_weight *w = &((const ref_linear *)handle)->w;
    qe_linear_rows_ref_for(w->format)(w, x, n_tok, y, 0, w->n_out);
    if (w->bias && w->format != QE_WEIGHT_INT8) /* int8 fuses its bias */
        for (int t = 0; t < n_tok; t++)
            for (int r = 0; r < w->n_out; r++)
                y[(size_t)t * w->n_out + r] += w->bias[r];
    qe_round_to_dtype(y, (size_t)n_tok * w->n_out, out_dtype);
}

static void ref_rmsnorm(qe_backend *be, const float *x, const float *weight, float offset, float eps, int n_rows,
                        int dim, qe_dtype dtype, float *y)
{
    if (!qe_backend_failed(be))
        qe_rmsnorm_rows_ref(x, weight, offset, eps, dim, dtype, y, 0, n_rows);
}

static void ref_rope(qe_backend *be, float *x, int n_tok, int n_heads, int head_dim, const float *cos_table,
                     const float *sin_table, qe_dtype dtype)
{
    if (!qe_backend_failed(be))
        qe_rope_rows_ref(x, n_heads, head_dim, cos_table, sin_table, dtype, 0, n_tok * n_heads);
}

static void ref_attention(qe_backend *be, const qe_attention_args *args, qe_dtype dtype)
{
    if (qe_backend_failed(be))
        return;
    if (args->pos0 + args->n_tok > state_of(be)->max_context) {
        qe_backend_fail(be, QE_EINVAL, "attention over %d positions, the workspace holds %d",
                        args->pos0 + args->n_tok, state_of(be)->max_context);
        return;
    }
    const char *ring_problem = qe_attention_ring_problem(args);
    if (ring_problem) {
        qe_backend_fail(be, QE_EINVAL, "attention over a cache of %d rows at positions %d..%d: %s",
                        args->kv_ring, args->pos0, args->pos0 + args->n_tok - 1, ring_problem);
        return;
    }
    qe_attention_ref(args, dtype, state_of(be)->scores);
}

static void ref_glu(qe_backend *be, qe_activation act, const float *gate, const float *up, size_t n, qe_dtype dtype,
                    float *y)
{
    if (!qe_backend_failed(be))
        qe_glu_ref(act, gate, up, dtype, y, 0, n);
}

static void ref_add(qe_backend *be, float *y, const float *x, size_t n, qe_dtype dtype)
{
    if (!qe_backend_failed(be))
        qe_add_ref(y, x, n, dtype);
}

static void ref_row_stats(qe_backend *be, const float *logits, int n_rows, int n_vocab, const int32_t *targets,
                          qe_row_stats *out)
{
    if (qe_backend_failed(be))
        return;
    for (int r = 0; r < n_rows; r++)
        out[r] = qe_row_stats_of(logits + (size_t)r * n_vocab, n_vocab, targets ? targets[r] : -1);
}

static qe_status ref_sync(qe_backend *be, qe_error *err) { return qe_backend_take_error(be, err); }

static void ref_destroy(qe_backend *be)
{
    if (!be)
        return;
    free(state_of(be)->scores);
    free(be->impl);
    free(be);
}

qe_status qe_backend_ref_create(qe_backend **out, qe_error *err)
{
    *out = NULL;
    qe_backend *be = calloc(1, sizeof *be);
    ref_state *s = calloc(1, sizeof *s);
    if (!be || !s) {
        free(be);
        free(s);
        return qe_fail(err, QE_ENOMEM, "ref backend: out of memory");
    }
    *be = (qe_backend){
        .name = "ref", .impl = s,
        .alloc = qe_host_alloc, .release = qe_host_release, .grow = qe_host_grow, .reserve_workspace = ref_reserve_workspace,
        .prepare_linear = ref_prepare_linear, .free_linear = ref_free_linear, .linear_bytes = ref_linear_bytes,
        .upload_new = qe_host_upload_new,
        .embed = ref_embed, .linear = ref_linear_op, .rmsnorm = ref_rmsnorm, .rope = ref_rope,
        .attention = ref_attention, .glu = ref_glu, .add = ref_add, .copy = qe_host_copy,
        .download = qe_host_copy, .upload = qe_host_copy, .row_stats = ref_row_stats,
        .sync = ref_sync, .destroy = ref_destroy,
    };
    *out = be;
    return QE_OK;
}
