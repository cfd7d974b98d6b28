/* linear_quant.c — building the BF16/F16, INT8 and NF4 linears and their reference kernels
 * (linear_quant.h). The AVX2 kernels are in cpu/linear_quant_avx2.c. */
#include "linear_quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The references mirror GPU arithmetic one rounding at a time. */
#pragma GCC optimize("fp-contract=off")


qe_dtype qe_variant_compute_dtype(const qe_variant *variant)
{
    switch (variant->kind) {
    case QE_VARIANT_BF16:
    case QE_VARIANT_NF4: return QE_DTYPE_BF16; /* bnb_4bit_compute_dtype=torch.bfloat16 */
    case QE_VARIANT_INT8: return QE_DTYPE_F16; /* LLM.int8() runs its 16-bit path in fp16 */
    default: return QE_DTYPE_F32;
    }
}

static float round_to(float v, qe_dtype dtype)
{
    if (dtype == QE_DTYPE_BF16) return qe_bf16_to_f32(qe_f32_to_bf16(v));
    if (dtype == QE_DTYPE_F16) return qe_f16_to_f32(qe_f32_to_f16(v));
    return v;
}

static float half_value(const uint16_t *w, size_t i, bool is_bf16)
{
    return is_bf16 ? qe_bf16_to_f32(w[i]) : qe_f16_to_f32(w[i]);
}

/* A rounded copy of bias in owned[2], or NULL. */
static qe_status copy_bias(qe_linear *lin, const float *bias, int n_out, qe_dtype dtype, qe_error *err)
{
    if (!bias) return QE_OK;
    float *b = malloc((size_t)n_out * sizeof *b);
    if (!b) return qe_fail(err, QE_ENOMEM, "linear: out of memory for a bias of %d", n_out);
    for (int i = 0; i < n_out; i++) b[i] = round_to(bias[i], dtype);
    lin->owned[2] = b;
    return QE_OK;
}

qe_status qe_linear_init_half(qe_linear *lin, qe_dtype dtype, const float *w, const float *bias, int n_out,
                              int n_in, qe_error *err)
{
    memset(lin, 0, sizeof *lin);
    size_t n = (size_t)n_out * n_in;
    uint16_t *h = malloc(n * sizeof *h);
    if (!h) return qe_fail(err, QE_ENOMEM, "linear: out of memory for a [%d, %d] 16-bit weight", n_out, n_in);
    for (size_t i = 0; i < n; i++) h[i] = dtype == QE_DTYPE_BF16 ? qe_f32_to_bf16(w[i]) : qe_f32_to_f16(w[i]);
    lin->format = dtype == QE_DTYPE_BF16 ? QE_WEIGHT_BF16 : QE_WEIGHT_F16;
    lin->n_out = n_out;
    lin->n_in = n_in;
    lin->weight = h;
    lin->owned[0] = h;
    lin->rows = qe_linear_half_rows;
    lin->row_grain = 4;
    qe_status rc = copy_bias(lin, bias, n_out, dtype, err);
    lin->bias = lin->owned[2];
    lin->resident_bytes = n * 2 + (bias ? (size_t)n_out * 2 : 0);
    if (rc != QE_OK) qe_linear_free(lin);
    return rc;
}

/* Moves an NF4 weight and its arrays into one allocation that free() releases whole, as
 * qe_linear_free expects of owned[]. */
static qe_nf4_weight *pack_nf4(qe_nf4_weight *src)
{
    size_t n_packed = (size_t)(src->n_elements + 1) / 2;
    size_t n_absmax = src->absmax ? (size_t)src->n_blocks : 0;
    size_t n_q = src->qabsmax ? (size_t)src->n_blocks : 0;
    size_t n_absmax2 = src->absmax2 ? (size_t)src->n_blocks2 : 0;
    size_t head = (sizeof *src + 15) & ~(size_t)15;
    char *block = malloc(head + (n_absmax + n_absmax2) * sizeof(float) + n_packed + n_q);
    if (!block) return NULL;
    qe_nf4_weight *dst = (qe_nf4_weight *)block;
    *dst = *src;
    char *p = block + head;
    dst->absmax = n_absmax ? memcpy(p, src->absmax, n_absmax * sizeof(float)) : NULL;
    p += n_absmax * sizeof(float);
    dst->absmax2 = n_absmax2 ? memcpy(p, src->absmax2, n_absmax2 * sizeof(float)) : NULL;
    p += n_absmax2 * sizeof(float);
    dst->packed = memcpy(p, src->packed, n_packed);
    p += n_packed;
    dst->qabsmax = n_q ? memcpy(p, src->qabsmax, n_q) : NULL;
    qe_nf4_free(src);
    return dst;
}

static qe_int8_linear *pack_int8(qe_int8_weight *src, float threshold, const float *bias)
{
    size_t n = (size_t)src->rows * src->cols;
    size_t head = (sizeof(qe_int8_linear) + 15) & ~(size_t)15;
    size_t n_floats = (size_t)src->rows * (bias ? 2 : 1);
    char *block = malloc(head + n_floats * sizeof(float) + n);
    if (!block) return NULL;
    qe_int8_linear *dst = (qe_int8_linear *)block;
    float *floats = (float *)(block + head);
    dst->w = *src;
    dst->w.scale = memcpy(floats, src->scale, (size_t)src->rows * sizeof(float));
    dst->w.q = memcpy(block + head + n_floats * sizeof(float), src->q, n);
    dst->threshold = threshold;
    dst->bias = NULL;
    if (bias) {
        float *b = floats + src->rows;
        for (int i = 0; i < src->rows; i++) b[i] = round_to(bias[i], QE_DTYPE_F16);
        dst->bias = b;
    }
    qe_int8_free(src);
    return dst;
}

qe_status qe_linear_init_quant(qe_linear *lin, const qe_variant *variant, const float *w, const float *bias,
                               int n_out, int n_in, qe_error *err)
{
    memset(lin, 0, sizeof *lin);
    qe_dtype compute = qe_variant_compute_dtype(variant);
    if (variant->kind == QE_VARIANT_BF16) return qe_linear_init_half(lin, QE_DTYPE_BF16, w, bias, n_out, n_in, err);
    if (variant->kind != QE_VARIANT_INT8 && variant->kind != QE_VARIANT_NF4)
        return qe_fail(err, QE_EINVAL, "linear: variant %s has no quantized format", qe_variant_name(variant));
    size_t n = (size_t)n_out * n_in;
    /* transformers loads the checkpoint in the compute dtype before bitsandbytes quantizes */
    float *rounded = malloc(n * sizeof *rounded);
    if (!rounded) return qe_fail(err, QE_ENOMEM, "linear: out of memory for a [%d, %d] weight", n_out, n_in);
    for (size_t i = 0; i < n; i++) rounded[i] = round_to(w[i], compute);
    qe_status rc;
    lin->n_out = n_out;
    lin->n_in = n_in;
    if (variant->kind == QE_VARIANT_NF4) {
        qe_nf4_weight q;
        int block_size = variant->nf4_block_size > 0 ? variant->nf4_block_size : 64;
        rc = qe_nf4_quantize(rounded, n_out, n_in, block_size, variant->nf4_double_quant, &q, err);
        free(rounded);
        if (rc != QE_OK) return rc;
        uint64_t bytes = qe_nf4_bytes(&q);
        qe_nf4_weight *packed = pack_nf4(&q);
        if (!packed) return qe_fail(err, QE_ENOMEM, "linear: out of memory for a [%d, %d] nf4 weight", n_out, n_in);
        lin->format = QE_WEIGHT_NF4;
        lin->weight = lin->owned[0] = packed;
        lin->rows = qe_linear_nf4_rows;
        lin->row_grain = 4;
        if ((rc = copy_bias(lin, bias, n_out, compute, err)) != QE_OK) {
            qe_linear_free(lin);
            return rc;
        }
        lin->bias = lin->owned[2];
        lin->resident_bytes = bytes + (bias ? (size_t)n_out * 2 : 0);
        return QE_OK;
    }
    qe_int8_weight q;
    rc = qe_int8_quantize(rounded, n_out, n_in, &q, err);
    free(rounded);
    if (rc != QE_OK) return rc;
    uint64_t bytes = qe_int8_bytes(&q);
    qe_int8_linear *packed = pack_int8(&q, variant->int8_threshold, bias);
    if (!packed) return qe_fail(err, QE_ENOMEM, "linear: out of memory for a [%d, %d] int8 weight", n_out, n_in);
    lin->format = QE_WEIGHT_INT8;
    lin->weight = lin->owned[0] = packed;
    lin->rows = qe_linear_int8_rows;
    lin->row_grain = 4;
    lin->token_grain = 4;
    lin->resident_bytes = bytes + (bias ? (size_t)n_out * 2 : 0);
    return QE_OK;
}

void qe_linear_half_rows_ref(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end)
{
    const uint16_t *w = lin->weight;
    bool is_bf16 = lin->format == QE_WEIGHT_BF16;
    for (int t = 0; t < n_tok; t++)
        for (int r = row_begin; r < row_end; r++) {
            double acc = 0;
            for (int k = 0; k < lin->n_in; k++)
                acc += (double)x[(size_t)t * lin->n_in + k] * half_value(w, (size_t)r * lin->n_in + k, is_bf16);
            y[(size_t)t * lin->n_out + r] = (float)acc;
        }
}

void qe_linear_nf4_rows_ref(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end)
{
    const qe_nf4_weight *q = lin->weight;
    for (int t = 0; t < n_tok; t++)
        for (int r = row_begin; r < row_end; r++) {
            double acc = 0;
            for (int k = 0; k < lin->n_in; k++) {
                int64_t i = (int64_t)r * lin->n_in + k;
                uint8_t byte = q->packed[i / 2];
                float m = qe_nf4_block_absmax(q, i / q->block_size);
                float w = round_to(qe_nf4_code[(i & 1) ? byte & 15 : byte >> 4] * m, QE_DTYPE_BF16);
                acc += (double)x[(size_t)t * lin->n_in + k] * w;
            }
            y[(size_t)t * lin->n_out + r] = (float)acc;
        }
}

void qe_int8_matmul_ref(const qe_int8_linear *q, const float *x, int n_tok, const bool *is_outlier_col, float *y,
                        int row_begin, int row_end)
{
    int n_in = q->w.cols, n_out = q->w.rows;
    float *x16 = malloc((size_t)n_in * sizeof *x16);
    int8_t *qx = malloc((size_t)n_in);
    bool *is_outlier = malloc((size_t)n_in);
    if (!x16 || !qx || !is_outlier) { /* no memory: say so in the outputs rather than crash */
        for (int t = 0; t < n_tok; t++)
            for (int r = row_begin; r < row_end; r++) y[(size_t)t * n_out + r] = NAN;
        free(x16), free(qx), free(is_outlier);
        return;
    }
    for (int t = 0; t < n_tok; t++) {
        for (int c = 0; c < n_in; c++) x16[c] = round_to(x[(size_t)t * n_in + c], QE_DTYPE_F16);
        float sca = qe_int8_quantize_row(x16, n_in, q->threshold, qx);
        for (int c = 0; c < n_in; c++) {
            is_outlier[c] = is_outlier_col ? is_outlier_col[c] : q->threshold > 0.0f && fabsf(x16[c]) >= q->threshold;
            if (is_outlier[c]) qx[c] = 0;
        }
        for (int r = row_begin; r < row_end; r++) {
            const int8_t *wr = q->w.q + (size_t)r * n_in;
            int32_t acc = 0;
            float acc16 = 0.0f;
            for (int c = 0; c < n_in; c++) {
                acc += (int32_t)qx[c] * wr[c];
                if (is_outlier[c]) {
                    float wd = round_to((float)wr[c] * q->w.scale[r] * QE_INT8_WEIGHT_SCALE, QE_DTYPE_F16);
                    acc16 += x16[c] * wd;
                }
            }
            float v = ((float)acc * sca) * q->w.scale[r];
            float out = round_to(fmaf(v, QE_INT8_DEQUANT_SCALE, q->bias ? q->bias[r] : 0.0f), QE_DTYPE_F16);
            y[(size_t)t * n_out + r] = round_to(out + acc16, QE_DTYPE_F16);
        }
    }
    free(x16);
    free(qx);
    free(is_outlier);
}

void qe_linear_int8_rows_ref(const qe_linear *lin, const float *x, int n_tok, float *y, int row_begin, int row_end)
{
    qe_int8_matmul_ref(lin->weight, x, n_tok, NULL, y, row_begin, row_end);
}
