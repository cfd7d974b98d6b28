/* dtype — the element types a tensor file may hold, their sizes and names, and the float
 * conversions every module shares: BF16/F16 -> F32 upcasts (exact) and F32 -> BF16/F16
 * rounding (round to nearest even, as torch's .to(dtype) does). */
#ifndef QE_DTYPE_H
#define QE_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __F16C__
#include <immintrin.h>
#endif

/* The safetensors dtype names, in that format's spelling. */
typedef enum {
    QE_DTYPE_BOOL, QE_DTYPE_U8, QE_DTYPE_I8, QE_DTYPE_F8_E5M2, QE_DTYPE_F8_E4M3,
    QE_DTYPE_I16, QE_DTYPE_U16, QE_DTYPE_F16, QE_DTYPE_BF16, QE_DTYPE_I32, QE_DTYPE_U32,
    QE_DTYPE_F32, QE_DTYPE_F64, QE_DTYPE_I64, QE_DTYPE_U64,
    QE_DTYPE_COUNT
} qe_dtype;

const char *qe_dtype_name(qe_dtype dtype);
size_t qe_dtype_size(qe_dtype dtype); /* bytes per element */
/* Looks a name up ("BF16"); returns -1 when unknown. */
int qe_dtype_from_name(const char *name);

float qe_bf16_to_f32(uint16_t bits);
float qe_f16_to_f32(uint16_t bits);
uint16_t qe_f32_to_bf16(float value); /* round to nearest even; NaN stays NaN */
uint16_t qe_f32_to_f16(float value);  /* round to nearest even; overflow -> inf */

/* value rounded to bf16 and back: qe_bf16_to_f32(qe_f32_to_bf16(value)). Inline, since the
 * 16-bit variants round every activation after every op. */
static inline float qe_round_bf16(float value)
{
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet, keep the sign */
        bits |= 0x00400000u;
    else
        bits += 0x7fffu + ((bits >> 16) & 1);
    bits &= 0xffff0000u;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/* value rounded to fp16 and back: qe_f16_to_f32(qe_f32_to_f16(value)). With F16C compiled in,
 * the hardware conversion, which rounds identically for every non-NaN float (checked over all
 * 2^32 bit patterns); NaN payloads would differ, so NaN takes the portable path. */
static inline float qe_round_f16(float value)
{
#ifdef __F16C__
    if (value == value)
        return _cvtsh_ss(_cvtss_sh(value, _MM_FROUND_TO_NEAREST_INT));
#endif
    return qe_f16_to_f32(qe_f32_to_f16(value));
}

/* value rounded to dtype (BF16, F16) and back; any other dtype leaves it as it is. */
static inline float qe_round_to(float value, qe_dtype dtype)
{
    if (dtype == QE_DTYPE_BF16)
        return qe_round_bf16(value);
    if (dtype == QE_DTYPE_F16)
        return qe_round_f16(value);
    return value;
}

/* Rounds x[n] in place to dtype (BF16, F16; nothing for any other), as qe_round_bf16/_f16. */
void qe_round_to_dtype(float *x, size_t n, qe_dtype dtype);

/* dst[n] = src[n] converted from F32, BF16 or F16; src may be unaligned. Returns 0, or -1
 * for any other dtype. */
int qe_convert_to_f32(float *dst, const void *src, qe_dtype dtype, size_t n);

#endif
