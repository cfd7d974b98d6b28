#include "linear.h"

#include "linear_quant.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

qe_status qe_tensor_as_f32(const qe_tensor_view *t, const float **data, float **owned, qe_error *err)
{
    *data = NULL;
    *owned = NULL;
    if (t->dtype == QE_DTYPE_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *data = t->data;
        return QE_OK;
    }
    if (t->dtype != QE_DTYPE_F32 && t->dtype != QE_DTYPE_BF16 && t->dtype != QE_DTYPE_F16)
        return qe_fail(err, QE_EUNSUPPORTED, "%s: tensor '%s' has dtype %s; weights must be F32, BF16 or F16",
                       t->file_path, t->name, qe_dtype_name(t->dtype));
    float *buf = malloc(t->n_elements ? t->n_elements * sizeof(float) : 1);
    if (!buf)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory converting tensor '%s' (%llu elements)", t->file_path,
                       t->name, (unsigned long long)t->n_elements);
    qe_convert_to_f32(buf, t->data, t->dtype, t->n_elements);
    *data = buf;
    *owned = buf;
    return QE_OK;
}

void qe_linear_wrap_f32(qe_linear *lin, const float *w, const float *bias, int n_out, int n_in)
{
    memset(lin, 0, sizeof *lin);
    lin->format = QE_WEIGHT_F32;
    lin->n_out = n_out;
    lin->n_in = n_in;
    lin->weight = w;
    lin->bias = bias;
    lin->rows = qe_linear_f32_rows;
    lin->row_grain = 4;
    lin->resident_bytes = ((size_t)n_out * n_in + (bias ? n_out : 0)) * sizeof(float);
}

qe_status qe_linear_init(qe_linear *lin, const qe_variant *variant, const qe_tensor_view *weight,
                         const qe_tensor_view *bias, qe_error *err)
{
    memset(lin, 0, sizeof *lin);
    if (weight->n_dims != 2 || weight->shape[0] <= 0 || weight->shape[1] <= 0 || weight->shape[0] > INT32_MAX ||
        weight->shape[1] > INT32_MAX)
        return qe_fail(err, QE_EFORMAT, "%s: tensor '%s' is not a 2-D [out, in] matrix", weight->file_path,
                       weight->name);
    int n_out = (int)weight->shape[0], n_in = (int)weight->shape[1];
    if (bias && (bias->n_dims != 1 || bias->shape[0] != n_out))
        return qe_fail(err, QE_EFORMAT, "%s: bias '%s' has %lld elements, its weight has %d rows", bias->file_path,
                       bias->name, (long long)(bias->n_dims == 1 ? bias->shape[0] : -1), n_out);
    const float *w = NULL, *b = NULL;
    float *w_owned = NULL, *b_owned = NULL;
    qe_status rc = qe_tensor_as_f32(weight, &w, &w_owned, err);
    if (rc == QE_OK && bias)
        rc = qe_tensor_as_f32(bias, &b, &b_owned, err);
    if (rc != QE_OK) {
        free(w_owned);
        return rc;
    }
    if (variant->kind != QE_VARIANT_FP32) { /* the quantized formats copy what they keep */
        rc = qe_linear_init_quant(lin, variant, w, b, n_out, n_in, err);
        free(w_owned);
        free(b_owned);
        if (rc != QE_OK)
            return qe_fail_context(err, "%s: tensor '%s'", weight->file_path, weight->name);
        return QE_OK;
    }
    qe_linear_wrap_f32(lin, w, b, n_out, n_in);
    lin->owned[0] = w_owned;
    lin->owned[2] = b_owned;
    return QE_OK;
}

void qe_linear_free(qe_linear *lin)
{
    if (!lin)
        return;
    for (int i = 0; i < 3; i++)
        free(lin->owned[i]);
    memset(lin, 0, sizeof *lin);
}

typedef struct {
    const qe_linear *lin;
    const float *x;
    int n_tok;
    float *y;
} forward_job;

/* y[t, r] += bias[r] for tokens [t_begin, t_end) and rows [r_begin, r_end) */
static void add_bias(const forward_job *job, int t_begin, int t_end, int r_begin, int r_end)
{
    const qe_linear *lin = job->lin;
    if (lin->bias)
        for (int t = t_begin; t < t_end; t++) {
            float *row = job->y + (size_t)t * lin->n_out;
            for (int r = r_begin; r < r_end; r++)
                row[r] += lin->bias[r];
        }
}

static void forward_rows(void *p, int begin, int end)
{
    const forward_job *job = p;
    job->lin->rows(job->lin, job->x, job->n_tok, job->y, begin, end);
    add_bias(job, 0, job->n_tok, begin, end);
}

static void forward_tokens(void *p, int begin, int end)
{
    const forward_job *job = p;
    const qe_linear *lin = job->lin;
    lin->rows(lin, job->x + (size_t)begin * lin->n_in, end - begin, job->y + (size_t)begin * lin->n_out, 0,
              lin->n_out);
    add_bias(job, begin, end, 0, lin->n_out);
}

void qe_linear_forward(const qe_linear *lin, const float *x, int n_tok, float *y, qe_pool *pool)
{
    forward_job job = {lin, x, n_tok, y};
    pool = qe_pool_for(pool, (double)lin->n_out * lin->n_in * n_tok);
    /* every token's outputs depend on that token alone, so either split gives the same bits */
    if (lin->token_grain > 0 && pool && n_tok >= 2 * lin->token_grain * qe_pool_threads(pool))
        qe_pool_run(pool, n_tok, lin->token_grain, forward_tokens, &job);
    else
        qe_pool_run(pool, lin->n_out, lin->row_grain, forward_rows, &job);
}
