/* quant.c — bitsandbytes' NF4, blockwise-8-bit and LLM.int8() weight formats (quant.h). */
#include "quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "parallel.h"

/* The reference is CUDA arithmetic, one rounding per operation: never fuse a*b+c here. */
#pragma GCC optimize("fp-contract=off")

const float qe_nf4_code[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
};

/* create_dynamic_map(signed=True) exactly as bitsandbytes 0.50.2 returns it under torch 2.11.
 * Its values come from torch's float32 linspace, whose rounding depends on the CPU kernel's
 * vector width, so they are stored rather than recomputed (tests/golden/bnb checks them). */
static const float dynamic_map_signed[256] = {
    -0x1.fc66660000000p-1f, -0x1.f533340000000p-1f, -0x1.ee00000000000p-1f, -0x1.e6cccc0000000p-1f,
    -0x1.df999a0000000p-1f, -0x1.d866660000000p-1f, -0x1.d133340000000p-1f, -0x1.ca00000000000p-1f,
    -0x1.c2cccc0000000p-1f, -0x1.bb999a0000000p-1f, -0x1.b466660000000p-1f, -0x1.ad33340000000p-1f,
    -0x1.a600000000000p-1f, -0x1.9ecccc0000000p-1f, -0x1.97999a0000000p-1f, -0x1.9066660000000p-1f,
    -0x1.8933340000000p-1f, -0x1.8200000000000p-1f, -0x1.7acccc0000000p-1f, -0x1.73999a0000000p-1f,
    -0x1.6c66680000000p-1f, -0x1.6533340000000p-1f, -0x1.5e00000000000p-1f, -0x1.56cccc0000000p-1f,
    -0x1.4f999a0000000p-1f, -0x1.4866680000000p-1f, -0x1.4133340000000p-1f, -0x1.3a00000000000p-1f,
    -0x1.32cccc0000000p-1f, -0x1.2b999a0000000p-1f, -0x1.2466680000000p-1f, -0x1.1d33340000000p-1f,
    -0x1.1600000000000p-1f, -0x1.0ecccc0000000p-1f, -0x1.0799980000000p-1f, -0x1.0066660000000p-1f,
    -0x1.f266640000000p-2f, -0x1.e400000000000p-2f, -0x1.d599980000000p-2f, -0x1.c733340000000p-2f,
    -0x1.b8cccc0000000p-2f, -0x1.aa66660000000p-2f, -0x1.9c00000000000p-2f, -0x1.8d99980000000p-2f,
    -0x1.7f33340000000p-2f, -0x1.70cccc0000000p-2f, -0x1.6266660000000p-2f, -0x1.5400000000000p-2f,
    -0x1.4599980000000p-2f, -0x1.3733340000000p-2f, -0x1.28cccc0000000p-2f, -0x1.1a66680000000p-2f,
    -0x1.0c00000000000p-2f, -0x1.fb33320000000p-3f, -0x1.de66660000000p-3f, -0x1.c1999a0000000p-3f,
    -0x1.a4cccc0000000p-3f, -0x1.8800000000000p-3f, -0x1.6b33340000000p-3f, -0x1.4e66660000000p-3f,
    -0x1.31999a0000000p-3f, -0x1.14cccc0000000p-3f, -0x1.f000000000000p-4f, -0x1.b666680000000p-4f,
    -0x1.93d70a0000000p-4f, -0x1.8851ee0000000p-4f, -0x1.7cccce0000000p-4f, -0x1.7147ae0000000p-4f,
    -0x1.65c2900000000p-4f, -0x1.5a3d700000000p-4f, -0x1.4eb8540000000p-4f, -0x1.4333340000000p-4f,
    -0x1.37ae140000000p-4f, -0x1.2c28f60000000p-4f, -0x1.20a3d60000000p-4f, -0x1.151eba0000000p-4f,
    -0x1.09999a0000000p-4f, -0x1.fc28f60000000p-5f, -0x1.e51eba0000000p-5f, -0x1.ce147a0000000p-5f,
    -0x1.b70a3e0000000p-5f, -0x1.a000000000000p-5f, -0x1.88f5c20000000p-5f, -0x1.71eb860000000p-5f,
    -0x1.5ae1460000000p-5f, -0x1.43d70a0000000p-5f, -0x1.2cccce0000000p-5f, -0x1.15c2900000000p-5f,
    -0x1.fd70a40000000p-6f, -0x1.cf5c2a0000000p-6f, -0x1.a147ae0000000p-6f, -0x1.7333340000000p-6f,
    -0x1.451eba0000000p-6f, -0x1.170a3e0000000p-6f, -0x1.d1eb860000000p-7f, -0x1.75c2900000000p-7f,
    -0x1.3e76c80000000p-7f, -0x1.2c08300000000p-7f, -0x1.19999a0000000p-7f, -0x1.072b020000000p-7f,
    -0x1.e978d40000000p-8f, -0x1.c49ba60000000p-8f, -0x1.9fbe760000000p-8f, -0x1.7ae1480000000p-8f,
    -0x1.56041a0000000p-8f, -0x1.3126e80000000p-8f, -0x1.0c49ba0000000p-8f, -0x1.ced9140000000p-9f,
    -0x1.851eb80000000p-9f, -0x1.3b645a0000000p-9f, -0x1.e353f80000000p-10f, -0x1.4fdf3a0000000p-10f,
    -0x1.eecbfe0000000p-11f, -0x1.b3d07c0000000p-11f, -0x1.78d5000000000p-11f, -0x1.3dd9820000000p-11f,
    -0x1.02de020000000p-11f, -0x1.8fc5060000000p-12f, -0x1.19ce0a0000000p-12f, -0x1.47ae160000000p-13f,
    -0x1.743e960000000p-14f, -0x1.15df660000000p-14f, -0x1.6f00680000000p-15f, -0x1.64840c0000000p-16f,
    -0x1.040bfe0000000p-17f, -0x1.b435280000000p-19f, -0x1.27476e0000000p-21f, 0.0f,
    0x1.27476e0000000p-21f, 0x1.b435280000000p-19f, 0x1.040bfe0000000p-17f, 0x1.64840c0000000p-16f,
    0x1.6f00680000000p-15f, 0x1.15df660000000p-14f, 0x1.743e960000000p-14f, 0x1.47ae160000000p-13f,
    0x1.19ce0a0000000p-12f, 0x1.8fc5060000000p-12f, 0x1.02de020000000p-11f, 0x1.3dd9820000000p-11f,
    0x1.78d5000000000p-11f, 0x1.b3d07c0000000p-11f, 0x1.eecbfe0000000p-11f, 0x1.4fdf3a0000000p-10f,
    0x1.e353f80000000p-10f, 0x1.3b645a0000000p-9f, 0x1.851eb80000000p-9f, 0x1.ced9140000000p-9f,
    0x1.0c49ba0000000p-8f, 0x1.3126e80000000p-8f, 0x1.56041a0000000p-8f, 0x1.7ae1480000000p-8f,
    0x1.9fbe760000000p-8f, 0x1.c49ba60000000p-8f, 0x1.e978d40000000p-8f, 0x1.072b020000000p-7f,
    0x1.19999a0000000p-7f, 0x1.2c08300000000p-7f, 0x1.3e76c80000000p-7f, 0x1.75c2900000000p-7f,
    0x1.d1eb860000000p-7f, 0x1.170a3e0000000p-6f, 0x1.451eba0000000p-6f, 0x1.7333340000000p-6f,
    0x1.a147ae0000000p-6f, 0x1.cf5c2a0000000p-6f, 0x1.fd70a40000000p-6f, 0x1.15c2900000000p-5f,
    0x1.2cccce0000000p-5f, 0x1.43d70a0000000p-5f, 0x1.5ae1460000000p-5f, 0x1.71eb860000000p-5f,
    0x1.88f5c20000000p-5f, 0x1.a000000000000p-5f, 0x1.b70a3e0000000p-5f, 0x1.ce147a0000000p-5f,
    0x1.e51eba0000000p-5f, 0x1.fc28f60000000p-5f, 0x1.09999a0000000p-4f, 0x1.151eba0000000p-4f,
    0x1.20a3d60000000p-4f, 0x1.2c28f60000000p-4f, 0x1.37ae140000000p-4f, 0x1.4333340000000p-4f,
    0x1.4eb8540000000p-4f, 0x1.5a3d700000000p-4f, 0x1.65c2900000000p-4f, 0x1.7147ae0000000p-4f,
    0x1.7cccce0000000p-4f, 0x1.8851ee0000000p-4f, 0x1.93d70a0000000p-4f, 0x1.b666680000000p-4f,
    0x1.f000000000000p-4f, 0x1.14cccc0000000p-3f, 0x1.31999a0000000p-3f, 0x1.4e66660000000p-3f,
    0x1.6b33340000000p-3f, 0x1.8800000000000p-3f, 0x1.a4cccc0000000p-3f, 0x1.c1999a0000000p-3f,
    0x1.de66660000000p-3f, 0x1.fb33320000000p-3f, 0x1.0c00000000000p-2f, 0x1.1a66680000000p-2f,
    0x1.28cccc0000000p-2f, 0x1.3733340000000p-2f, 0x1.4599980000000p-2f, 0x1.5400000000000p-2f,
    0x1.6266660000000p-2f, 0x1.70cccc0000000p-2f, 0x1.7f33340000000p-2f, 0x1.8d99980000000p-2f,
    0x1.9c00000000000p-2f, 0x1.aa66660000000p-2f, 0x1.b8cccc0000000p-2f, 0x1.c733340000000p-2f,
    0x1.d599980000000p-2f, 0x1.e400000000000p-2f, 0x1.f266640000000p-2f, 0x1.0066660000000p-1f,
    0x1.0799980000000p-1f, 0x1.0ecccc0000000p-1f, 0x1.1600000000000p-1f, 0x1.1d33340000000p-1f,
    0x1.2466680000000p-1f, 0x1.2b999a0000000p-1f, 0x1.32cccc0000000p-1f, 0x1.3a00000000000p-1f,
    0x1.4133340000000p-1f, 0x1.4866680000000p-1f, 0x1.4f999a0000000p-1f, 0x1.56cccc0000000p-1f,
    0x1.5e00000000000p-1f, 0x1.6533340000000p-1f, 0x1.6c66680000000p-1f, 0x1.73999a0000000p-1f,
    0x1.7acccc0000000p-1f, 0x1.8200000000000p-1f, 0x1.8933340000000p-1f, 0x1.9066660000000p-1f,
    0x1.97999a0000000p-1f, 0x1.9ecccc0000000p-1f, 0x1.a600000000000p-1f, 0x1.ad33340000000p-1f,
    0x1.b466660000000p-1f, 0x1.bb999a0000000p-1f, 0x1.c2cccc0000000p-1f, 0x1.ca00000000000p-1f,
    0x1.d133340000000p-1f, 0x1.d866660000000p-1f, 0x1.df999a0000000p-1f, 0x1.e6cccc0000000p-1f,
    0x1.ee00000000000p-1f, 0x1.f533340000000p-1f, 0x1.fc66660000000p-1f, 0x1.0000000000000p+0f,
};

void qe_dynamic_map_signed(float code[256])
{
    memcpy(code, dynamic_map_signed, sizeof dynamic_map_signed);
}

/* dQuantizeNF4: bitsandbytes' decision tree over the midpoints between neighbouring code
 * values, where a value equal to a midpoint goes to the lower code. The tree is a search over
 * the sorted midpoints, so its answer is the number of midpoints below x (NaN: none, code 0),
 * counted here without branches so that the loop vectorizes. */
static const float nf4_midpoints[15] = {
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
    0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};

static uint8_t nf4_index(float x)
{
    int code = 0;
    for (int k = 0; k < 15; k++) code += x > nf4_midpoints[k];
    return (uint8_t)code;
}

/* dQuantize<0>: binary search over the 256 ascending code values, then nearest of the two
 * neighbours (a tie at the midpoint keeps the pivot). Followed step by step, since its
 * pivots, not the true nearest value, decide edge cases. */
static uint8_t code8_index(const float code[256], float x)
{
    int pivot = 127, upper_pivot = 255, lower_pivot = 0;
    float lower = -1.0f, upper = 1.0f;
    float val = code[pivot];
    for (int i = 64; i > 0; i >>= 1) {
        if (x > val) {
            lower_pivot = pivot;
            lower = val;
            pivot += i;
        } else {
            upper_pivot = pivot;
            upper = val;
            pivot -= i;
        }
        val = code[pivot];
    }
    if (upper_pivot == 255) upper = code[upper_pivot];
    if (lower_pivot == 0) lower = code[lower_pivot];
    if (x > val) {
        float midpoint = (upper + val) * 0.5f;
        return (uint8_t)(x > midpoint ? upper_pivot : pivot);
    }
    float midpoint = (lower + val) * 0.5f;
    return (uint8_t)(x < midpoint ? lower_pivot : pivot);
}

static bool is_bnb_block_size(int block_size)
{
    for (int b = 32; b <= 4096; b *= 2)
        if (block_size == b) return true;
    return false;
}

/* absmax of x[begin, end): padding beyond n counts as 0, as the kernel loads it. */
static float block_absmax(const float *x, int64_t begin, int64_t end)
{
    float m = 0.0f;
    for (int64_t i = begin; i < end; i++) /* fmaxf's answer, NaN skipped, without its call */
        m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

void qe_blockwise8_quantize(const float *x, int64_t n, int block_size, const float code[256],
                            uint8_t *q, float *absmax)
{
    for (int64_t begin = 0, b = 0; begin < n; begin += block_size, b++) {
        int64_t end = begin + block_size < n ? begin + block_size : n;
        float m = block_absmax(x, begin, end);
        float inv = 1.0f / m;
        absmax[b] = m;
        for (int64_t i = begin; i < end; i++) q[i] = code8_index(code, x[i] * inv);
    }
}

/* torch's float32 mean as it comes out of the CUDA reduction: the sum (here exact, in double,
 * then rounded) times the float reciprocal of the count. The GPU's summation order can still
 * move the last bit; the tests say how often. */
static float mean_offset(const float *v, int64_t n)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += v[i];
    float factor = (float)(1.0 / (double)n);
    return (float)sum * factor;
}

qe_status qe_nf4_quantize(const float *w, int rows, int cols, int block_size, bool double_quant,
                          qe_nf4_weight *out, qe_error *err)
{
    memset(out, 0, sizeof *out);
    if (!is_bnb_block_size(block_size))
        return qe_fail(err, QE_EINVAL, "nf4: block size %d is not one of bitsandbytes' 32, 64, ..., 4096",
                       block_size);
    if (rows <= 0 || cols <= 0)
        return qe_fail(err, QE_EINVAL, "nf4: weight shape [%d, %d] is empty", rows, cols);
    int64_t n = (int64_t)rows * cols;
    int64_t n_blocks = (n + block_size - 1) / block_size;
    out->rows = rows;
    out->cols = cols;
    out->n_elements = n;
    out->block_size = block_size;
    out->n_blocks = n_blocks;
    out->is_double_quant = double_quant;
    out->packed = calloc((size_t)((n + 1) / 2), 1);
    float *absmax = malloc((size_t)n_blocks * sizeof *absmax);
    if (!out->packed || !absmax) {
        free(absmax);
        qe_nf4_free(out);
        return qe_fail(err, QE_ENOMEM, "nf4: out of memory for a [%d, %d] weight", rows, cols);
    }
    /* a block's codes fill whole bytes (block sizes are even), so blocks run in parallel */
    QE_PARALLEL_FOR(n)
    for (int64_t b = 0; b < n_blocks; b++) {
        int64_t begin = b * block_size;
        int64_t end = begin + block_size < n ? begin + block_size : n;
        float m = block_absmax(w, begin, end);
        float inv = 1.0f / m; /* an all-zero block gives inf, 0 * inf = NaN -> index 0, as on the GPU */
        absmax[b] = m;
        for (int64_t i = begin; i < end; i++) {
            uint8_t code = nf4_index(w[i] * inv);
            out->packed[i / 2] |= (uint8_t)((i & 1) ? code : code << 4);
        }
        if (end == n && (n & 1)) /* the kernel quantizes the zero padding too */
            out->packed[n / 2] |= nf4_index(0.0f * inv);
    }
    if (!double_quant) {
        out->absmax = absmax;
        return QE_OK;
    }
    out->offset = mean_offset(absmax, n_blocks);
    out->n_blocks2 = (n_blocks + QE_NF4_DQ_BLOCK - 1) / QE_NF4_DQ_BLOCK;
    out->qabsmax = malloc((size_t)n_blocks);
    out->absmax2 = malloc((size_t)out->n_blocks2 * sizeof *out->absmax2);
    if (!out->qabsmax || !out->absmax2) {
        free(absmax);
        qe_nf4_free(out);
        return qe_fail(err, QE_ENOMEM, "nf4: out of memory for the double-quant state of [%d, %d]", rows, cols);
    }
    for (int64_t b = 0; b < n_blocks; b++) absmax[b] -= out->offset;
    out->code8 = dynamic_map_signed;
    qe_blockwise8_quantize(absmax, n_blocks, QE_NF4_DQ_BLOCK, dynamic_map_signed, out->qabsmax, out->absmax2);
    free(absmax);
    return QE_OK;
}

void qe_nf4_free(qe_nf4_weight *weight)
{
    if (!weight) return;
    free(weight->packed);
    free(weight->absmax);
    free(weight->qabsmax);
    free(weight->absmax2);
    memset(weight, 0, sizeof *weight);
}

void qe_nf4_dequantize(const qe_nf4_weight *weight, float *out)
{
    for (int64_t b = 0; b < weight->n_blocks; b++) {
        float m = qe_nf4_block_absmax(weight, b);
        int64_t begin = b * weight->block_size;
        int64_t end = begin + weight->block_size < weight->n_elements ? begin + weight->block_size
                                                                       : weight->n_elements;
        for (int64_t i = begin; i < end; i++) {
            uint8_t byte = weight->packed[i / 2];
            out[i] = qe_nf4_code[(i & 1) ? byte & 15 : byte >> 4] * m;
        }
    }
}

uint64_t qe_nf4_bytes_for(uint64_t n_elements, int block_size, bool double_quant)
{
    uint64_t block = block_size > 0 ? (uint64_t)block_size : 64;
    uint64_t n_blocks = (n_elements + block - 1) / block, bytes = (n_elements + 1) / 2;
    if (!double_quant) return bytes + n_blocks * 4;
    uint64_t n_blocks2 = (n_blocks + QE_NF4_DQ_BLOCK - 1) / QE_NF4_DQ_BLOCK;
    return bytes + n_blocks + n_blocks2 * 4 + 4;
}

uint64_t qe_nf4_bytes(const qe_nf4_weight *weight)
{
    return qe_nf4_bytes_for((uint64_t)weight->n_elements, weight->block_size, weight->is_double_quant);
}

uint64_t qe_nf4_shared_table_bytes(bool double_quant)
{
    return sizeof qe_nf4_code + (double_quant ? sizeof dynamic_map_signed : 0);
}

/* One row of kInt8VectorQuant. The absmax is a max over fp16 values (exact); the scale is
 * __fdividef(127, absmax), i.e. 127 times an approximate reciprocal: modelled here as the
 * correctly rounded reciprocal, which differs from the GPU's only when x * 127 / absmax is an
 * exact .5 tie (tests count those). A row with no value below the threshold keeps absmax -0.
 * Zero rows give 0 * inf = NaN, which the GPU converts to 0. */
float qe_int8_quantize_row(const float *x, int cols, float threshold, int8_t *q)
{
    bool is_sparse = threshold > 0.0f;
    float absmax = -0.0f;
    for (int c = 0; c < cols; c++) {
        float a = fabsf(x[c]);
        if (is_sparse && !(a < threshold)) continue;
        if (a > absmax || (a == 0.0f && signbit(absmax))) absmax = a;
    }
    float scale = 127.0f * (1.0f / absmax);
    for (int c = 0; c < cols; c++) {
        float v = x[c] * scale;
        if ((is_sparse && !(fabsf(x[c]) < threshold)) || isnan(v)) q[c] = 0;
        else q[c] = (int8_t)lrintf(v);
    }
    return absmax;
}

int qe_int8_outlier_columns(const float *x, int n_tokens, int cols, float threshold, bool *is_outlier_col)
{
    int n_outliers = 0;
    for (int c = 0; c < cols; c++) {
        is_outlier_col[c] = false;
        for (int t = 0; t < n_tokens && threshold > 0.0f; t++)
            if (fabsf(x[(size_t)t * cols + c]) >= threshold) {
                is_outlier_col[c] = true;
                n_outliers++;
                break;
            }
    }
    return n_outliers;
}

qe_status qe_int8_quantize(const float *w, int rows, int cols, qe_int8_weight *out, qe_error *err)
{
    memset(out, 0, sizeof *out);
    if (rows <= 0 || cols <= 0)
        return qe_fail(err, QE_EINVAL, "int8: weight shape [%d, %d] is empty", rows, cols);
    out->rows = rows;
    out->cols = cols;
    out->q = malloc((size_t)rows * cols);
    out->scale = malloc((size_t)rows * sizeof *out->scale);
    if (!out->q || !out->scale) {
        qe_int8_free(out);
        return qe_fail(err, QE_ENOMEM, "int8: out of memory for a [%d, %d] weight", rows, cols);
    }
    QE_PARALLEL_FOR((int64_t)rows * cols)
    for (int r = 0; r < rows; r++)
        out->scale[r] = qe_int8_quantize_row(w + (size_t)r * cols, cols, 0.0f, out->q + (size_t)r * cols);
    return QE_OK;
}

void qe_int8_free(qe_int8_weight *weight)
{
    if (!weight) return;
    free(weight->q);
    free(weight->scale);
    memset(weight, 0, sizeof *weight);
}

uint64_t qe_int8_bytes_for(uint64_t rows, uint64_t cols) { return rows * cols + rows * 4; }

uint64_t qe_int8_bytes(const qe_int8_weight *weight)
{
    return qe_int8_bytes_for((uint64_t)weight->rows, (uint64_t)weight->cols);
}
