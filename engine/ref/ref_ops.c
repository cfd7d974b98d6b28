/* ref_ops.c — the plain definitions of the backend ops (ref_ops.h). */
#include "ref/ref_ops.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* The references mirror GPU arithmetic one rounding at a time. */
#pragma GCC optimize("fp-contract=off")

void qe_linear_f32_rows_ref(const qe_weight *w, const float *x, int n_tok, float *y, int row_begin, int row_end)
{
    for (int t = 0; t < n_tok; t++)
        for (int r = row_begin; r < row_end; r++) {
            double s = 0;
            for (int k = 0; k < w->n_in; k++)
                s += (double)w->f32[(size_t)r * w->n_in + k] * x[(size_t)t * w->n_in + k];
            y[(size_t)t * w->n_out + r] = (float)s;
        }
}

void qe_linear_half_rows_ref(const qe_weight *w, const float *x, int n_tok, float *y, int row_begin, int row_end)
{
    bool is_bf16 = w->format == QE_WEIGHT_BF16;
    for (int t = 0; t < n_tok; t++)
        for (int r = row_begin; r < row_end; r++) {
            double acc = 0;
            for (int k = 0; k < w->n_in; k++) {
                uint16_t bits = w->half[(size_t)r * w->n_in + k];
                acc += (double)x[(size_t)t * w->n_in + k] * (is_bf16 ? qe_bf16_to_f32(bits) : qe_f16_to_f32(bits));
            }
            y[(size_t)t * w->n_out + r] = (float)acc;
        }
}

void qe_linear_nf4_rows_ref(const qe_weight *w, const float *x, int n_tok, float *y, int row_begin, int row_end)
{
    const qe_nf4_weight *q = &w->nf4;
    for (int t = 0; t < n_tok; t++)
        for (int r = row_begin; r < row_end; r++) {
            double acc = 0;
            for (int k = 0; k < w->n_in; k++) {
                int64_t i = (int64_t)r * w->n_in + k;
                uint8_t byte = q->packed[i / 2];
                float m = qe_nf4_block_absmax(q, i / q->block_size);
                float v = qe_round_bf16(qe_nf4_code[(i & 1) ? byte & 15 : byte >> 4] * m);
                acc += (double)x[(size_t)t * w->n_in + k] * v;
            }
            y[(size_t)t * w->n_out + r] = (float)acc;
        }
}

/* v, or a zero of its sign when denormal: vdpbf16ps's reading of its inputs and its results */
static float flush_denormal(float v) { return fabsf(v) < FLT_MIN ? copysignf(0.0f, v) : v; }

/* Weight (r, k) of a BF16 or NF4 weight as bf16 */
static float weight_bf16(const qe_weight *w, int r, int k)
{
    int64_t i = (int64_t)r * w->n_in + k;
    if (w->format == QE_WEIGHT_BF16)
        return qe_bf16_to_f32(w->half[i]);
    const qe_nf4_weight *q = &w->nf4;
    uint8_t byte = q->packed[i / 2];
    return qe_round_bf16(qe_nf4_code[(i & 1) ? byte & 15 : byte >> 4] * qe_nf4_block_absmax(q, i / q->block_size));
}

bool qe_bf16_pairs_is_rearranged(const qe_weight *w)
{
    return w->format == QE_WEIGHT_NF4 && w->nf4.block_size % 32 == 0 && w->n_in % w->nf4.block_size == 0;
}

void qe_linear_bf16_pairs_rows_ref(const qe_weight *w, const float *x, int n_tok, float *y, int row_begin,
                                   int row_end)
{
    int n_in = w->n_in;
    bool is_rearranged = qe_bf16_pairs_is_rearranged(w);
    for (int t = 0; t < n_tok; t++)
        for (int r = row_begin; r < row_end; r++) {
            float lane[16] = {0};
            for (int c = 0; c < n_in; c += 32)
                for (int j = 0; j < 16; j++)
                    for (int p = 2 * j + 1; p >= 2 * j; p--) { /* the odd position first */
                        int k = c + (is_rearranged ? 4 * (p % 8) + p / 8 : p);
                        float wk = k < n_in ? weight_bf16(w, r, k) : 0.0f;
                        float xk = k < n_in ? qe_round_bf16(flush_denormal(x[(size_t)t * n_in + k])) : 0.0f;
                        lane[j] = flush_denormal(fmaf(flush_denormal(wk), xk, lane[j]));
                    }
            float s[8];
            for (int i = 0; i < 8; i++) s[i] = lane[i] + lane[i + 8];
            y[(size_t)t * w->n_out + r] = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
        }
}

void qe_int8_matmul_ref(const qe_weight *w, const float *x, int n_tok, const bool *is_outlier_col, float *y,
                        int row_begin, int row_end)
{
    int n_in = w->n_in, n_out = w->n_out;
    float threshold = w->int8_threshold;
    float x16[n_in]; /* one token's worth, on the stack: the definition allocates nothing */
    int8_t qx[n_in];
    bool is_outlier[n_in];
    for (int t = 0; t < n_tok; t++) {
        for (int c = 0; c < n_in; c++) x16[c] = qe_round_to(x[(size_t)t * n_in + c], QE_DTYPE_F16);
        float sca = qe_int8_quantize_row(x16, n_in, threshold, qx);
        for (int c = 0; c < n_in; c++) {
            is_outlier[c] = is_outlier_col ? is_outlier_col[c] : threshold > 0.0f && fabsf(x16[c]) >= threshold;
            if (is_outlier[c]) qx[c] = 0;
        }
        for (int r = row_begin; r < row_end; r++) {
            const int8_t *wr = w->int8.q + (size_t)r * n_in;
            int32_t acc = 0;
            float acc16 = 0.0f;
            for (int c = 0; c < n_in; c++) {
                acc += (int32_t)qx[c] * wr[c];
                if (is_outlier[c]) {
                    float wd = qe_round_to((float)wr[c] * w->int8.scale[r] * QE_INT8_WEIGHT_SCALE, QE_DTYPE_F16);
                    acc16 += x16[c] * wd;
                }
            }
            float v = ((float)acc * sca) * w->int8.scale[r];
            float out = qe_round_to(fmaf(v, QE_INT8_DEQUANT_SCALE, w->bias ? w->bias[r] : 0.0f), QE_DTYPE_F16);
            y[(size_t)t * n_out + r] = qe_round_to(out + acc16, QE_DTYPE_F16);
        }
    }
}

void qe_linear_int8_rows_ref(const qe_weight *w, const float *x, int n_tok, float *y, int row_begin, int row_end)
{
    qe_int8_matmul_ref(w, x, n_tok, NULL, y, row_begin, row_end);
}

qe_linear_rows_ref_fn qe_linear_rows_ref_for(qe_weight_format format)
{
    switch (format) {
    case QE_WEIGHT_BF16:
    case QE_WEIGHT_F16: return qe_linear_half_rows_ref;
    case QE_WEIGHT_INT8: return qe_linear_int8_rows_ref;
    case QE_WEIGHT_NF4: return qe_linear_nf4_rows_ref;
    default: return qe_linear_f32_rows_ref;
    }
}

void qe_attention_ref(const qe_attention_args *a, qe_dtype dtype, double *weights)
{
    int hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    size_t kv_stride = (size_t)a->n_kv_heads * hd;
    double acc[hd];
    for (int t = 0; t < a->n_tok; t++)
        for (int h = 0; h < a->n_heads; h++) {
            int pos = qe_attention_position(a, t), kvh = h / group, first = qe_attention_first_of(a, pos);
            const float *q = a->q + ((size_t)t * a->n_heads + h) * hd;
            double max_score = -INFINITY, sum = 0;
            for (int s = first; s <= pos; s++) {
                const float *k = a->k_cache + (size_t)qe_attention_key_row(a, t, s) * kv_stride + (size_t)kvh * hd;
                double sc = 0;
                for (int d = 0; d < hd; d++)
                    sc += (double)q[d] * k[d];
                weights[s] = sc * a->scale;
                if (weights[s] > max_score)
                    max_score = weights[s];
            }
            for (int d = 0; d < hd; d++)
                acc[d] = 0;
            for (int s = first; s <= pos; s++) {
                const float *v = a->v_cache + (size_t)qe_attention_key_row(a, t, s) * kv_stride + (size_t)kvh * hd;
                double w = exp(weights[s] - max_score);
                sum += w;
                for (int d = 0; d < hd; d++)
                    acc[d] += w * v[d];
            }
            float *out = a->out + ((size_t)t * a->n_heads + h) * hd;
            for (int d = 0; d < hd; d++)
                out[d] = qe_round_to((float)(acc[d] / sum), dtype);
        }
}

void qe_rmsnorm_rows_ref(const float *x, const float *weight, float offset, float eps, int dim, qe_dtype dtype,
                         float *y, int row_begin, int row_end)
{
    for (int r = row_begin; r < row_end; r++) {
        const float *xr = x + (size_t)r * dim;
        float *yr = y + (size_t)r * dim;
        double sum_sq = 0;
        for (int i = 0; i < dim; i++)
            sum_sq += (double)xr[i] * xr[i];
        float inv = (float)(1.0 / sqrt(sum_sq / dim + eps));
        /* Llama-style norms round the normalized value before the weight multiply; the
         * (offset + weight) form (Gemma) multiplies in float32 and rounds once. */
        for (int i = 0; i < dim; i++) {
            float n = xr[i] * inv;
            yr[i] = offset != 0 ? qe_round_to(n * (offset + weight[i]), dtype)
                                : qe_round_to(weight[i] * qe_round_to(n, dtype), dtype);
        }
    }
}

void qe_rope_rows_ref(float *x, int n_heads, int head_dim, const float *cos_table, const float *sin_table,
                      qe_dtype dtype, int row_begin, int row_end)
{
    int half = head_dim / 2;
    for (int row = row_begin; row < row_end; row++) {
        int t = row / n_heads;
        float *xr = x + (size_t)row * head_dim;
        const float *c = cos_table + (size_t)t * half, *s = sin_table + (size_t)t * half;
        for (int i = 0; i < half; i++) {
            float a = xr[i], b = xr[i + half];
            float ci = qe_round_to(c[i], dtype), si = qe_round_to(s[i], dtype);
            xr[i] = qe_round_to(qe_round_to(a * ci, dtype) - qe_round_to(b * si, dtype), dtype);
            xr[i + half] = qe_round_to(qe_round_to(b * ci, dtype) + qe_round_to(a * si, dtype), dtype);
        }
    }
}

void qe_glu_ref(qe_activation act, const float *gate, const float *up, qe_dtype dtype, float *y, size_t begin,
                size_t end)
{
    for (size_t i = begin; i < end; i++) {
        float g = gate[i], a;
        if (act == QE_ACT_SILU)
            a = g / (1.0f + expf(-g));
        else /* gelu, tanh approximation */
            a = 0.5f * g * (1.0f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
        y[i] = qe_round_to(qe_round_to(a, dtype) * up[i], dtype);
    }
}

void qe_add_ref(float *y, const float *x, size_t n, qe_dtype dtype)
{
    for (size_t i = 0; i < n; i++)
        y[i] = qe_round_to(y[i] + x[i], dtype);
}

void qe_embed_ref(const qe_weight *table, const int32_t *ids, int n_tok, float scale, qe_dtype dtype, float *out)
{
    int dim = table->n_in;
    float s = qe_round_to(scale, dtype);
    for (int t = 0; t < n_tok; t++) {
        float *o = out + (size_t)t * dim;
        qe_weight_row_f32(table, ids[t], o);
        if (s != 1.0f)
            for (int i = 0; i < dim; i++)
                o[i] *= s;
        qe_round_to_dtype(o, dim, dtype);
    }
}
