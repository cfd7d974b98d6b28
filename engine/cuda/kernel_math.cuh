// engine/cuda/kernel_math.cuh — the roundings and the warp sum that the kernels share with their
// CPU emulation (tests/test_attention_emu.cpp): engine/dtype.h's roundings one value at a time,
// the GLU of two rounded values, a rope pair, and a warp's sum by one fixed butterfly (every lane
// gets the same bits).
#pragma once

__device__ __forceinline__ float round_bf16(float v)
{
    uint32_t bits = __float_as_uint(v);
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        bits |= 0x00400000u;
    else
        bits += 0x7fffu + ((bits >> 16) & 1);
    return __uint_as_float(bits & 0xffff0000u);
}

__device__ __forceinline__ float round_to(float v, int dtype)
{
    if (dtype == QE_DTYPE_BF16)
        return round_bf16(v);
    if (dtype == QE_DTYPE_F16)
        return __half2float(__float2half_rn(v));
    return v;
}

// act(gate) * up, each product rounded to dtype as the CPU's glu: the glu kernel's and the fused
// gate/up GEMV's (both on gate and up already rounded by their linears).
__device__ __forceinline__ float glu_value(int act, float gate, float up, int dtype)
{
    float a;
    if (act == QE_ACT_SILU)
        a = gate / (1.0f + expf(-gate));
    else
        a = 0.5f * gate * (1.0f + tanhf(0.7978845608028654f * (gate + 0.044715f * gate * gate * gate)));
    return round_to(round_to(a, dtype) * up, dtype);
}

// Pair i of a head's row x [head_dim] rotated into y (may be x) as the CPU's rope: elements i and
// i + half, cos and sin of the token's table rows rounded to dtype, each product rounded. The
// rope kernel's, and the decode attention's (attention_rows_kernel) on its query and new key.
__device__ __forceinline__ void rope_pair(const float *x, float *y, int i, int half, const float *cos_row,
                                          const float *sin_row, int dtype)
{
    float a = x[i], b = x[i + half];
    float c = round_to(cos_row[i], dtype), s = round_to(sin_row[i], dtype);
    y[i] = round_to(round_to(a * c, dtype) - round_to(b * s, dtype), dtype);
    y[i + half] = round_to(round_to(b * c, dtype) + round_to(a * s, dtype), dtype);
}

template <typename T> __device__ __forceinline__ T warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
