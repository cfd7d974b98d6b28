#include "dtype.h"

#include <string.h>

#include "parallel.h"

static const struct {
    const char *name;
    size_t size;
} dtype_table[QE_DTYPE_COUNT] = {
    [QE_DTYPE_BOOL] = {"BOOL", 1}, [QE_DTYPE_U8] = {"U8", 1},   [QE_DTYPE_I8] = {"I8", 1},
    [QE_DTYPE_F8_E5M2] = {"F8_E5M2", 1}, [QE_DTYPE_F8_E4M3] = {"F8_E4M3", 1},
    [QE_DTYPE_I16] = {"I16", 2},   [QE_DTYPE_U16] = {"U16", 2}, [QE_DTYPE_F16] = {"F16", 2},
    [QE_DTYPE_BF16] = {"BF16", 2}, [QE_DTYPE_I32] = {"I32", 4}, [QE_DTYPE_U32] = {"U32", 4},
    [QE_DTYPE_F32] = {"F32", 4},   [QE_DTYPE_F64] = {"F64", 8}, [QE_DTYPE_I64] = {"I64", 8},
    [QE_DTYPE_U64] = {"U64", 8},
};

const char *qe_dtype_name(qe_dtype dtype)
{
    return (unsigned)dtype < QE_DTYPE_COUNT ? dtype_table[dtype].name : "?";
}

size_t qe_dtype_size(qe_dtype dtype)
{
    return (unsigned)dtype < QE_DTYPE_COUNT ? dtype_table[dtype].size : 0;
}

int qe_dtype_from_name(const char *name)
{
    for (int i = 0; i < QE_DTYPE_COUNT; i++)
        if (!strcmp(name, dtype_table[i].name))
            return i;
    return -1;
}

static float bits_to_f32(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t f32_to_bits(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

float qe_bf16_to_f32(uint16_t bits) { return bits_to_f32((uint32_t)bits << 16); }

float qe_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    if (exponent == 0x1f) /* inf / nan */
        return bits_to_f32(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) { /* zero / subnormal: mantissa * 2^-24 */
        float magnitude = (float)mantissa * (1.0f / 16777216.0f);
        return sign ? -magnitude : magnitude;
    }
    return bits_to_f32(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t qe_f32_to_bf16(float value) { return (uint16_t)(f32_to_bits(qe_round_bf16(value)) >> 16); }

uint16_t qe_f32_to_f16(float value)
{
    uint32_t bits = f32_to_bits(value);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    uint32_t abs_bits = bits & 0x7fffffffu;
    if (abs_bits > 0x7f800000u)
        return sign | 0x7e00;
    if (abs_bits >= 0x477ff000u) /* rounds to >= 65520: inf */
        return sign | 0x7c00;
    if (abs_bits < 0x38800000u) { /* below the smallest normal 2^-14: subnormal or zero */
        /* value * 2^24 rounded to nearest even integer is the subnormal mantissa */
        float scaled = bits_to_f32(abs_bits) * 16777216.0f;
        uint32_t m = (uint32_t)scaled;
        float rest = scaled - (float)m;
        if (rest > 0.5f || (rest == 0.5f && (m & 1)))
            m++;
        return sign | (uint16_t)m;
    }
    /* normal: drop 13 mantissa bits with round to nearest even, rebias exponent 127 -> 15 */
    uint32_t rounded = abs_bits + 0xfffu + ((abs_bits >> 13) & 1);
    return sign | (uint16_t)((rounded - (112u << 23)) >> 13);
}

int qe_convert_to_f32(float *dst, const void *src, qe_dtype dtype, size_t n)
{
    const unsigned char *bytes = src;
    switch (dtype) {
    case QE_DTYPE_F32:
        memcpy(dst, src, n * sizeof(float));
        return 0;
    case QE_DTYPE_BF16:
    case QE_DTYPE_F16:
        QE_PARALLEL_FOR(n)
        for (size_t i = 0; i < n; i++) {
            uint16_t bits;
            memcpy(&bits, bytes + 2 * i, 2);
            dst[i] = dtype == QE_DTYPE_BF16 ? qe_bf16_to_f32(bits) : qe_f16_to_f32(bits);
        }
        return 0;
    default:
        return -1;
    }
}

void qe_round_to_dtype(float *x, size_t n, qe_dtype dtype)
{
    /* one loop per dtype, so the compiler can vectorize it */
    if (dtype == QE_DTYPE_BF16)
        for (size_t i = 0; i < n; i++)
            x[i] = qe_round_bf16(x[i]);
    else if (dtype == QE_DTYPE_F16) {
        size_t i = 0;
#ifdef __F16C__
        /* 8 at a time, as qe_round_f16 rounds a non-NaN value; from a NaN on, one at a time */
        for (; i + 8 <= n; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i);
            if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)))
                break;
            _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT)));
        }
#endif
        for (; i < n; i++)
            x[i] = qe_round_f16(x[i]);
    }
}
