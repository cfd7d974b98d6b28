/* What every backend shares (backend.h): the optional ops' stand-ins, the sticky error and the
 * memory ops of the host backends. (The row-stats definition is engine/logprob.c.) */
#include "backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qe_backend_fail(qe_backend *be, qe_status code, const char *fmt, ...)
{
    if (be->error.code != QE_OK)
        return; /* the first failure is the one that explains the rest */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->error.msg, sizeof be->error.msg, fmt, ap);
    va_end(ap);
    be->error.code = code;
}

qe_status qe_backend_take_error(qe_backend *be, qe_error *err)
{
    qe_status code = be->error.code;
    if (code != QE_OK)
        qe_fail(err, code, "%s backend: %s", be->name, be->error.msg);
    be->error.code = QE_OK;
    be->error.msg[0] = 0;
    return code;
}

void qe_backend_linears(qe_backend *be, int n, const qe_backend_linear *const *lins, const float *x, int n_tok,
                        qe_dtype out_dtype, float *const *ys)
{
    if (be->linears) {
        be->linears(be, n, lins, x, n_tok, out_dtype, ys);
        return;
    }
    for (int i = 0; i < n; i++)
        be->linear(be, lins[i], x, n_tok, out_dtype, ys[i]);
}

void qe_backend_add_rmsnorm(qe_backend *be, float *x, const float *delta, const float *weight, float offset,
                            float eps, int n_rows, int dim, qe_dtype dtype, float *y)
{
    if (be->add_rmsnorm) {
        be->add_rmsnorm(be, x, delta, weight, offset, eps, n_rows, dim, dtype, y);
        return;
    }
    be->add(be, x, delta, (size_t)n_rows * dim, dtype);
    be->rmsnorm(be, x, weight, offset, eps, n_rows, dim, dtype, y);
}

void qe_backend_attend_rows(qe_backend *be, int n, const qe_attention_args *args, float *k_rows, const float *v_rows,
                            const float *cos_table, const float *sin_table, qe_dtype dtype)
{
    if (be->attend_rows) {
        be->attend_rows(be, n, args, k_rows, v_rows, cos_table, sin_table, dtype);
        return;
    }
    for (int i = 0; i < n; i++) {
        size_t kvd = (size_t)args[i].n_kv_heads * args[i].head_dim, row = (size_t)qe_kv_row(&args[i], args[i].pos0);
        if (cos_table) {
            size_t half = (size_t)args[i].head_dim / 2;
            qe_backend_rope_qk(be, (float *)args[i].q, k_rows + i * kvd, 1, args[i].n_heads, args[i].n_kv_heads,
                               args[i].head_dim, cos_table + i * half, sin_table + i * half, dtype);
        }
        be->copy(be, (float *)args[i].k_cache + row * kvd, k_rows + i * kvd, kvd);
        be->copy(be, (float *)args[i].v_cache + row * kvd, v_rows + i * kvd, kvd);
        be->attention(be, &args[i], dtype);
    }
}

void qe_backend_rope_qk(qe_backend *be, float *q, float *k, int n_tok, int n_heads, int n_kv_heads, int head_dim,
                        const float *cos_table, const float *sin_table, qe_dtype dtype)
{
    if (be->rope_qk) {
        be->rope_qk(be, q, k, n_tok, n_heads, n_kv_heads, head_dim, cos_table, sin_table, dtype);
        return;
    }
    be->rope(be, q, n_tok, n_heads, head_dim, cos_table, sin_table, dtype);
    be->rope(be, k, n_tok, n_kv_heads, head_dim, cos_table, sin_table, dtype);
}

void qe_backend_glu_linears(qe_backend *be, qe_activation act, const qe_backend_linear *gate,
                            const qe_backend_linear *up, const float *x, int n_tok, int n_out, qe_dtype dtype,
                            float *gate_y, float *up_y)
{
    if (be->glu_linears) {
        be->glu_linears(be, act, gate, up, x, n_tok, n_out, dtype, gate_y, up_y);
        return;
    }
    qe_backend_linears(be, 2, (const qe_backend_linear *const[]){gate, up}, x, n_tok, dtype,
                       (float *const[]){gate_y, up_y});
    be->glu(be, act, gate_y, up_y, (size_t)n_tok * n_out, dtype, gate_y);
}

float *qe_host_alloc(qe_backend *be, size_t n_floats)
{
    float *buf = malloc((n_floats ? n_floats : 1) * sizeof(float));
    if (!buf)
        qe_backend_fail(be, QE_ENOMEM, "out of memory for %zu floats", n_floats);
    return buf;
}

void qe_host_release(qe_backend *be, float *buf) { free(buf); }

float *qe_host_grow(qe_backend *be, float *buf, size_t n_keep, size_t n_floats)
{
    return realloc(buf, (n_floats ? n_floats : 1) * sizeof(float));
}

/* Host backends keep the values in float32 whatever dtype they are: their kernels read floats. */
float *qe_host_upload_new(qe_backend *be, const float *host, size_t n, qe_dtype dtype)
{
    float *buf = qe_host_alloc(be, n);
    if (buf)
        memcpy(buf, host, n * sizeof *buf);
    return buf;
}

void qe_host_copy(qe_backend *be, float *dst, const float *src, size_t n)
{
    if (!qe_backend_failed(be))
        memcpy(dst, src, n * sizeof(float));
}
