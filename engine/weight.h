/* weight — a linear layer's (or embedding table's) weight as loading and quantization leave
 * it, on no device: format, shape, host data, the format's constants, bias. No kernel: a
 * backend's prepare_linear (backend.h) turns it into what that backend runs.
 *
 * What each format means, following transformers + bitsandbytes on the GPU:
 *   F32   plain float32 (the fp32 variant).
 *   BF16 / F16  y[t, r] = sum_k x[t, k] * W[r, k], W stored as 16-bit bit patterns, float32
 *         accumulation (the bf16 variant's linears; the 16-bit variants' embedding and head).
 *   NF4   W[r, k] = bf16(code4 * absmax) (dequantize_4bit to the bf16 compute dtype), then
 *         as BF16. Packing and double quantization: quant.h.
 *   INT8  per token: x rounded to fp16, columns with |x| >= threshold go through the 16-bit
 *         path (x16 times fp16(CB * SCB / 127)), the rest is quantized row-wise to int8 and
 *         multiplied in int32; y = fp16(fp16((acc * SCA) * SCB * 1/127^2 + bias) + outliers).
 *         bitsandbytes picks outlier columns over the whole batch of a call; here each token
 *         uses its own, so an output never depends on which tokens share the call. The bias
 *         is fused into that epilogue; every other format adds it after the product.
 * The builders below round the float32 input to the dtype the reference quantizes from (the
 * compute dtype) first, as transformers loads the checkpoint in that dtype. */
#ifndef QE_WEIGHT_H
#define QE_WEIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "qe_error.h"
#include "qeval_engine.h"
#include "quant.h"

#define QE_INT8_DEQUANT_SCALE 6.200012e-05f         /* bitsandbytes' MM_DEQUANT_CONST, 1 / 127^2 */
#define QE_INT8_WEIGHT_SCALE 7.874015718698502e-3f /* int8_vectorwise_dequant's 1 / 127       */

typedef enum { QE_WEIGHT_F32, QE_WEIGHT_BF16, QE_WEIGHT_F16, QE_WEIGHT_INT8, QE_WEIGHT_NF4 } qe_weight_format;

typedef struct {
    qe_weight_format format;
    int n_out, n_in;            /* rows, cols ([n_vocab, hidden] for an embedding table)            */
    const float *f32;           /* F32: [n_out, n_in] (may borrow the file mapping)                 */
    const uint16_t *half;       /* BF16 / F16: [n_out, n_in] bit patterns                            */
    qe_int8_weight int8;        /* INT8: q [n_out, n_in] row-major, scale (SCB) [n_out]; quant.h     */
    float int8_threshold;       /* INT8: LLM.int8() outlier threshold (6.0), 0 = none                */
    qe_nf4_weight nf4;          /* NF4: packed codes, absmax or qabsmax+absmax2+offset; quant.h      */
    const float *bias;          /* [n_out] values already rounded to the compute dtype, or NULL      */
    void *owned[4];             /* host buffers this weight owns besides int8 / nf4 (freed by qe_weight_free) */
    bool bulk_is_borrowed;      /* the bulk array (qe_weight_bulk) lives elsewhere: qe_weight_move_bulk */
} qe_weight;

/* Makes w an F32 weight over data[n_out, n_in] (borrowed); owned (may be NULL, may equal data)
 * is freed with the weight. */
void qe_weight_wrap_f32(qe_weight *w, const float *data, float *owned, int n_out, int n_in);

/* Makes w a 16-bit weight (format QE_WEIGHT_BF16 or QE_WEIGHT_F16) holding data rounded to it. */
qe_status qe_weight_init_half(qe_weight *w, qe_weight_format format, const float *data, int n_out, int n_in,
                              qe_error *err);

/* Makes w a block linear in the variant's format (BF16, INT8, NF4) from float32 data (copied;
 * the caller keeps it). fp32 has no such format (QE_EINVAL): its weights are wrapped as they are. */
qe_status qe_weight_quantize(qe_weight *w, const qe_variant *variant, const float *data, int n_out, int n_in,
                             qe_error *err);

/* Copies bias[n_out] rounded to dtype into w. */
qe_status qe_weight_set_bias(qe_weight *w, const float *bias, qe_dtype dtype, qe_error *err);

/* The 16-bit (or F32) format that holds values of a compute dtype: embedding tables, heads. */
qe_weight_format qe_weight_format_of_dtype(qe_dtype dtype);
const char *qe_weight_format_name(qe_weight_format format);

uint64_t qe_weight_bytes(const qe_weight *w); /* bytes the format keeps: data + constants + bias */
/* The same for a weight of that format and shape that is not built yet (the memory estimate):
 * qe_weight_bytes is this function of the weight's fields, so the two cannot disagree. */
uint64_t qe_weight_format_bytes(qe_weight_format format, int n_out, int n_in, int nf4_block_size,
                                bool nf4_double_quant, bool has_bias);
/* The format the variant gives a decoder block's linears (qe_weight_quantize's, or F32 wrapped
 * for fp32); embedding tables and heads take qe_weight_format_of_dtype(compute dtype). */
qe_weight_format qe_weight_linear_format(const qe_variant *variant);
void qe_weight_free(qe_weight *w);            /* NULL-safe; leaves *w zeroed */

/* The bulk array, the one a matrix-vector product streams (F32 values, BF16 / F16 bits, INT8 q,
 * NF4 packed codes), and its bytes; the constants (scales, absmax) and bias are not in it. */
const void *qe_weight_bulk(const qe_weight *w, size_t *n_bytes);
/* Copies the bulk array to dst (qe_weight_bulk's bytes), frees the weight's own copy (a
 * borrowed view is left alone) and makes the weight borrow dst, which must outlive it. */
void qe_weight_move_bulk(qe_weight *w, void *dst);

/* Row r of a F32 / BF16 / F16 weight as float32 into out[n_in] (embedding lookups). */
void qe_weight_row_f32(const qe_weight *w, int r, float *out);

#endif
