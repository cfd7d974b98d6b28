/* weight.c — building device-neutral weights (weight.h): F32 views, 16-bit copies, and the
 * INT8 / NF4 quantization of a block linear. */
#include "weight.h"

#include <stdlib.h>
#include <string.h>

#include "parallel.h"
#include "variant.h"

static void init_shape(qe_weight *w, qe_weight_format format, int n_out, int n_in)
{
    memset(w, 0, sizeof *w);
    w->format = format;
    w->n_out = n_out;
    w->n_in = n_in;
}

void qe_weight_wrap_f32(qe_weight *w, const float *data, float *owned, int n_out, int n_in)
{
    init_shape(w, QE_WEIGHT_F32, n_out, n_in);
    w->f32 = data;
    w->owned[0] = owned;
}

qe_weight_format qe_weight_format_of_dtype(qe_dtype dtype)
{
    return dtype == QE_DTYPE_BF16 ? QE_WEIGHT_BF16 : dtype == QE_DTYPE_F16 ? QE_WEIGHT_F16 : QE_WEIGHT_F32;
}

const char *qe_weight_format_name(qe_weight_format format)
{
    static const char *const names[] = {"F32", "BF16", "F16", "INT8", "NF4"};
    return format >= 0 && format <= QE_WEIGHT_NF4 ? names[format] : "?";
}

qe_status qe_weight_init_half(qe_weight *w, qe_weight_format format, const float *data, int n_out, int n_in,
                              qe_error *err)
{
    init_shape(w, format, n_out, n_in);
    size_t n = (size_t)n_out * n_in;
    uint16_t *h = malloc(n ? n * sizeof *h : 1);
    if (!h) return qe_fail(err, QE_ENOMEM, "weight: out of memory for a [%d, %d] 16-bit weight", n_out, n_in);
    bool is_bf16 = format == QE_WEIGHT_BF16;
    QE_PARALLEL_FOR(n)
    for (size_t i = 0; i < n; i++) h[i] = is_bf16 ? qe_f32_to_bf16(data[i]) : qe_f32_to_f16(data[i]);
    w->half = h;
    w->owned[0] = h;
    return QE_OK;
}

qe_status qe_weight_quantize(qe_weight *w, const qe_variant *variant, const float *data, int n_out, int n_in,
                             qe_error *err)
{
    init_shape(w, QE_WEIGHT_F32, n_out, n_in);
    size_t n = (size_t)n_out * n_in;
    if (variant->kind == QE_VARIANT_BF16) return qe_weight_init_half(w, QE_WEIGHT_BF16, data, n_out, n_in, err);
    if (variant->kind != QE_VARIANT_INT8 && variant->kind != QE_VARIANT_NF4)
        return qe_fail(err, QE_EINVAL, "weight: variant %s has no quantized format", qe_variant_name(variant));
    /* transformers loads the checkpoint in the compute dtype before bitsandbytes quantizes */
    qe_dtype compute = qe_variant_compute_dtype(variant);
    float *rounded = malloc(n ? n * sizeof *rounded : 1);
    if (!rounded) return qe_fail(err, QE_ENOMEM, "weight: out of memory for a [%d, %d] weight", n_out, n_in);
    QE_PARALLEL_FOR(n)
    for (size_t i = 0; i < n; i++) rounded[i] = qe_round_to(data[i], compute);
    qe_status rc;
    if (variant->kind == QE_VARIANT_NF4) {
        int block_size = variant->nf4_block_size > 0 ? variant->nf4_block_size : 64;
        w->format = QE_WEIGHT_NF4;
        rc = qe_nf4_quantize(rounded, n_out, n_in, block_size, variant->nf4_double_quant, &w->nf4, err);
    } else {
        w->format = QE_WEIGHT_INT8;
        w->int8_threshold = variant->int8_threshold;
        rc = qe_int8_quantize(rounded, n_out, n_in, &w->int8, err);
    }
    free(rounded);
    if (rc != QE_OK) qe_weight_free(w);
    return rc;
}

qe_status qe_weight_set_bias(qe_weight *w, const float *bias, qe_dtype dtype, qe_error *err)
{
    float *b = malloc((size_t)w->n_out * sizeof *b);
    if (!b) return qe_fail(err, QE_ENOMEM, "weight: out of memory for a bias of %d", w->n_out);
    for (int i = 0; i < w->n_out; i++) b[i] = qe_round_to(bias[i], dtype);
    free(w->owned[1]);
    w->bias = w->owned[1] = b;
    return QE_OK;
}

uint64_t qe_weight_format_bytes(qe_weight_format format, int n_out, int n_in, int nf4_block_size,
                                bool nf4_double_quant, bool has_bias)
{
    uint64_t n = (uint64_t)n_out * n_in, bytes = 0;
    switch (format) {
    case QE_WEIGHT_F32: bytes = n * 4; break;
    case QE_WEIGHT_BF16:
    case QE_WEIGHT_F16: bytes = n * 2; break;
    case QE_WEIGHT_INT8: bytes = qe_int8_bytes_for((uint64_t)n_out, (uint64_t)n_in); break;
    case QE_WEIGHT_NF4: bytes = qe_nf4_bytes_for(n, nf4_block_size, nf4_double_quant); break;
    }
    /* a bias counts in the 16-bit dtype it holds values of, except next to an F32 weight */
    return bytes + (has_bias ? (uint64_t)n_out * (format == QE_WEIGHT_F32 ? 4 : 2) : 0);
}

uint64_t qe_weight_bytes(const qe_weight *w)
{
    return qe_weight_format_bytes(w->format, w->n_out, w->n_in, w->nf4.block_size, w->nf4.is_double_quant,
                                  w->bias != NULL);
}

qe_weight_format qe_weight_linear_format(const qe_variant *variant)
{
    switch (variant->kind) {
    case QE_VARIANT_BF16: return QE_WEIGHT_BF16;
    case QE_VARIANT_INT8: return QE_WEIGHT_INT8;
    case QE_VARIANT_NF4: return QE_WEIGHT_NF4;
    default: return QE_WEIGHT_F32;
    }
}

void qe_weight_free(qe_weight *w)
{
    if (!w) return;
    if (w->bulk_is_borrowed && w->format == QE_WEIGHT_INT8) w->int8.q = NULL;
    if (w->bulk_is_borrowed && w->format == QE_WEIGHT_NF4) w->nf4.packed = NULL;
    for (int i = 0; i < 4; i++) free(w->owned[i]);
    if (w->format == QE_WEIGHT_INT8) qe_int8_free(&w->int8);
    if (w->format == QE_WEIGHT_NF4) qe_nf4_free(&w->nf4);
    memset(w, 0, sizeof *w);
}

void qe_weight_row_f32(const qe_weight *w, int r, float *out)
{
    size_t base = (size_t)r * w->n_in;
    if (w->format == QE_WEIGHT_F32)
        memcpy(out, w->f32 + base, (size_t)w->n_in * sizeof *out);
    else if (w->format == QE_WEIGHT_BF16)
        for (int i = 0; i < w->n_in; i++) out[i] = qe_bf16_to_f32(w->half[base + i]);
    else
        for (int i = 0; i < w->n_in; i++) out[i] = qe_f16_to_f32(w->half[base + i]);
}

const void *qe_weight_bulk(const qe_weight *w, size_t *n_bytes)
{
    size_t n = (size_t)w->n_out * w->n_in;
    switch (w->format) {
    case QE_WEIGHT_F32: *n_bytes = n * sizeof *w->f32; return w->f32;
    case QE_WEIGHT_BF16:
    case QE_WEIGHT_F16: *n_bytes = n * sizeof *w->half; return w->half;
    case QE_WEIGHT_INT8: *n_bytes = n; return w->int8.q;
    case QE_WEIGHT_NF4: *n_bytes = (n + 1) / 2; return w->nf4.packed;
    }
    *n_bytes = 0;
    return NULL;
}

void qe_weight_move_bulk(qe_weight *w, void *dst)
{
    size_t n_bytes;
    const void *old = qe_weight_bulk(w, &n_bytes);
    memcpy(dst, old, n_bytes);
    for (int i = 0; i < 4; i++) /* F32 and 16-bit data are owned through owned[], or borrowed */
        if (w->owned[i] == old) {
            free(w->owned[i]);
            w->owned[i] = NULL;
        }
    switch (w->format) {
    case QE_WEIGHT_F32: w->f32 = dst; break;
    case QE_WEIGHT_BF16:
    case QE_WEIGHT_F16: w->half = dst; break;
    case QE_WEIGHT_INT8: if (!w->bulk_is_borrowed) free(w->int8.q); w->int8.q = dst; break;
    case QE_WEIGHT_NF4: if (!w->bulk_is_borrowed) free(w->nf4.packed); w->nf4.packed = dst; break;
    }
    w->bulk_is_borrowed = true;
}
