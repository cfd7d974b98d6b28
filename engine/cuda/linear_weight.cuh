// engine/cuda/linear_weight.cuh — a linear as the CUDA kernels read it (qe_backend_linear) and
// the values they take from it: 16-bit bits as float, norm and bias vectors held in the compute
// dtype, NF4 elements as bf16(code4 * absmax). Shared by backend_cuda.cu and the kernels'
// emulation on the CPU (tests/test_linear_emu.cpp); the includer declares the code tables
// c_nf4_code and c_code8.
#pragma once

#include "cuda/kernel_math.cuh"

struct qe_backend_linear {
    qe_weight_format format;
    int n_out, n_in;
    void *data;                   // F32 [n_out, n_in] | BF16/F16 bits | INT8 q | NF4 packed codes
    float *scale;                 // INT8: SCB [n_out]
    float threshold;              // INT8: outlier threshold
    float *absmax;                // NF4 without double quant: [n_blocks]
    uint8_t *qabsmax;             // NF4 double quant: [n_blocks]
    float *absmax2;               // NF4 double quant: [n_blocks2]
    float offset;
    int block_size;
    void *bias;                   // [n_out] in bias_dtype (the compute dtype), or NULL
    int bias_dtype;
    int compute_dtype;            // the model's: which linears may run on tensor cores
    int out_dtype;                // set per call: what the epilogue rounds y to (backend.h)
    uint64_t bytes;               // what the format keeps (qe_weight_bytes)
    bool is_embedding;
};

__device__ __forceinline__ float half_bits_to_f32(uint16_t bits, bool is_bf16)
{
    return is_bf16 ? __uint_as_float((uint32_t)bits << 16) : __half2float(__ushort_as_half(bits));
}

// Element i of a vector held in dtype: float32, or the 16-bit bits of a BF16 / F16 value (norm
// weights and biases are held in the model's compute dtype, as transformers holds them).
__device__ __forceinline__ float dtype_value(const void *v, int64_t i, int dtype)
{
    if (dtype == QE_DTYPE_F32)
        return ((const float *)v)[i];
    return half_bits_to_f32(((const uint16_t *)v)[i], dtype == QE_DTYPE_BF16);
}

__device__ __forceinline__ float bias_value(const qe_backend_linear &w, int r)
{
    return w.bias ? dtype_value(w.bias, r, w.bias_dtype) : 0.0f;
}

// Output r of a 16-bit, NF4 or fp32 linear from its sum: + the bias where there is one, rounded
// to the call's out_dtype (the kernels' epilogues).
__device__ __forceinline__ float linear_output(const qe_backend_linear &w, int r, float sum)
{
    return round_to(w.bias ? sum + bias_value(w, r) : sum, w.out_dtype);
}

__device__ __forceinline__ float nf4_block_absmax(const qe_backend_linear &w, int64_t block)
{
    if (!w.qabsmax)
        return w.absmax[block];
    return c_code8[w.qabsmax[block]] * w.absmax2[block / QE_NF4_DQ_BLOCK] + w.offset;
}

// bf16(code4 * absmax) of flat element i, as dequantize_4bit to the bf16 compute dtype.
__device__ __forceinline__ float nf4_value(const qe_backend_linear &w, int64_t i)
{
    uint8_t byte = ((const uint8_t *)w.data)[i / 2];
    return round_bf16(c_nf4_code[(i & 1) ? byte & 15 : byte >> 4] * nf4_block_absmax(w, i / w.block_size));
}
