/* quant — the weight formats of qeval's quantized variants, bit-faithful to bitsandbytes 0.50
 * (the CUDA kernels behind transformers' load_in_8bit / load_in_4bit).
 *
 * NF4 (quantize_4bit, quant_type="nf4"): the flat weight is cut into blocks of block_size
 * values; each block keeps absmax = max |w| (fp32) and every value becomes the index of the
 * NF4 code value nearest to w / absmax, decided by bitsandbytes' threshold tree (ties go
 * down). Two codes per byte, the even element in the HIGH nibble; an odd tail is padded with
 * the code of 0.0. Double quant (compress_statistics): offset = mean(absmax); absmax - offset
 * is quantized again, 256 values per block, to 8-bit indices into the signed dynamic map
 * (create_dynamic_map(signed=True)) with an fp32 absmax per 256-block. A weight is then
 * code4[q] * (code8[qabsmax[b]] * absmax2[b / 256] + offset).
 *
 * INT8 (int8_vectorwise_quant, LLM.int8()): each row keeps its fp16 absmax (SCB, stored as
 * fp32) and q = round-half-even(x * 127 / absmax), with the CUDA kernel's reciprocal
 * arithmetic. Activations use the same rule per token, with columns holding any |x| >=
 * threshold zeroed (they go through the 16-bit path) and excluded from the absmax.
 *
 * All functions are pure and deterministic; inputs are fp32 arrays already rounded to the
 * dtype the reference quantizes from (bf16 for nf4 loads, fp16 for int8 loads). */
#ifndef QE_QUANT_H
#define QE_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qe_error.h"

#define QE_NF4_DQ_BLOCK 256 /* values per block of the double-quantized absmax */

/* The 16 NF4 code values (bitsandbytes get_4bit_type("nf4")), ascending, in [-1, 1]. */
extern const float qe_nf4_code[16];

/* create_dynamic_map(signed=True) as torch builds it in float32: 256 ascending values. */
void qe_dynamic_map_signed(float code[256]);

/* One NF4 weight [rows, cols] (row-major, as PyTorch's [out_features, in_features]). */
typedef struct {
    int64_t n_elements;        /* rows * cols                                          */
    int rows, cols;
    int block_size;            /* values per absmax block: 32, 64, ..., 4096           */
    int64_t n_blocks;          /* ceil(n_elements / block_size)                        */
    uint8_t *packed;           /* [ceil(n_elements / 2)], even element in high nibble  */
    bool is_double_quant;
    float *absmax;             /* [n_blocks]; NULL when is_double_quant                */
    uint8_t *qabsmax;          /* [n_blocks] dynamic-map indices; NULL otherwise       */
    int64_t n_blocks2;         /* ceil(n_blocks / 256); 0 otherwise                    */
    float *absmax2;            /* [n_blocks2] fp32 absmax of (absmax - offset)         */
    float offset;              /* mean of the fp32 absmax values                       */
    const float *code8;        /* [256] the dynamic map qabsmax indexes (static table) */
} qe_nf4_weight;

/* Quantizes w[rows * cols]. block_size must be one of bitsandbytes' sizes. */
qe_status qe_nf4_quantize(const float *w, int rows, int cols, int block_size, bool double_quant,
                          qe_nf4_weight *out, qe_error *err);
void qe_nf4_free(qe_nf4_weight *weight); /* NULL-safe; leaves *weight zeroed */

/* The fp32 scale of block b, as dequantize_4bit reconstructs it. Inline: the kernels call it once
 * per block, and an absmax block is as short as 32 weights. */
static inline float qe_nf4_block_absmax(const qe_nf4_weight *weight, int64_t block)
{
    if (!weight->is_double_quant)
        return weight->absmax[block];
    /* block >= 0: unsigned division by the power of two is a shift */
    float scaled = weight->code8[weight->qabsmax[block]] * weight->absmax2[(uint64_t)block / QE_NF4_DQ_BLOCK];
    return scaled + weight->offset;
}
/* out[n_elements] = code4 * absmax in fp32 (dequantize_4bit before the cast to its dtype). */
void qe_nf4_dequantize(const qe_nf4_weight *weight, float *out);
/* Bytes the weight keeps resident: packed codes, absmax (fp32) or qabsmax + absmax2 + offset.
 * The shared code tables are not included (qe_nf4_shared_table_bytes). */
uint64_t qe_nf4_bytes(const qe_nf4_weight *weight);
/* The same for a weight of n_elements not yet quantized: (n + 1) / 2 packed bytes, then 4 per
 * block of block_size (fp32 absmax), or with double quant 1 per block (qabsmax), 4 per 256
 * blocks (absmax2) and 4 (offset). The one definition: qe_nf4_bytes and the memory estimate
 * (estimate.c) both call it. */
uint64_t qe_nf4_bytes_for(uint64_t n_elements, int block_size, bool double_quant);
uint64_t qe_nf4_shared_table_bytes(bool double_quant);

/* bitsandbytes quantize_blockwise (General8bit, not stochastic): absmax[ceil(n/block)] and
 * q[n] indices into code[256], nearest by the kernel's binary search. */
void qe_blockwise8_quantize(const float *x, int64_t n, int block_size, const float code[256],
                            uint8_t *q, float *absmax);

/* One LLM.int8() weight [rows, cols]: q row-major, scale = fp16 absmax of each row. */
typedef struct {
    int rows, cols;
    int8_t *q;                 /* [rows * cols] */
    float *scale;              /* [rows] SCB    */
} qe_int8_weight;

/* w holds fp16-representable values (the weight after .to(float16)). */
qe_status qe_int8_quantize(const float *w, int rows, int cols, qe_int8_weight *out, qe_error *err);
void qe_int8_free(qe_int8_weight *weight); /* NULL-safe */
uint64_t qe_int8_bytes(const qe_int8_weight *weight);
/* rows * cols int8 values + rows fp32 scales (SCB): what qe_int8_bytes says of such a weight. */
uint64_t qe_int8_bytes_for(uint64_t rows, uint64_t cols);

/* int8_vectorwise_quant of one row x[cols] (fp16-representable values): q[cols], returns the
 * row absmax. With threshold > 0, values with |x| >= threshold are left out of the absmax and
 * quantized to 0; the caller zeroes whole outlier columns (is_outlier_col) across rows. */
float qe_int8_quantize_row(const float *x, int cols, float threshold, int8_t *q);

/* Marks is_outlier_col[c] when any |x[t, c]| >= threshold; returns how many columns. */
int qe_int8_outlier_columns(const float *x, int n_tokens, int cols, float threshold, bool *is_outlier_col);

#endif
