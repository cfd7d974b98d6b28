#include "ggml_dequant.h"

#include <string.h>

#include "dtype.h"

/* Sizes as ggml-common.h defines the blocks. Q8_1 and Q8_K are ggml's internal activation
 * formats; they are listed so a file naming them gets a precise "cannot dequantize". */
static const qe_ggml_type_info type_table[] = {
    [QE_GGML_F32] = {"F32", 1, 4, true},          [QE_GGML_F16] = {"F16", 1, 2, true},
    [QE_GGML_Q4_0] = {"Q4_0", 32, 18, true},      [QE_GGML_Q4_1] = {"Q4_1", 32, 20, true},
    [QE_GGML_Q5_0] = {"Q5_0", 32, 22, true},      [QE_GGML_Q5_1] = {"Q5_1", 32, 24, true},
    [QE_GGML_Q8_0] = {"Q8_0", 32, 34, true},      [QE_GGML_Q8_1] = {"Q8_1", 32, 36, false},
    [QE_GGML_Q2_K] = {"Q2_K", 256, 84, false},    [QE_GGML_Q3_K] = {"Q3_K", 256, 110, false},
    [QE_GGML_Q4_K] = {"Q4_K", 256, 144, true},    [QE_GGML_Q5_K] = {"Q5_K", 256, 176, true},
    [QE_GGML_Q6_K] = {"Q6_K", 256, 210, true},    [QE_GGML_Q8_K] = {"Q8_K", 256, 292, false},
    [QE_GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66, false}, [QE_GGML_IQ2_XS] = {"IQ2_XS", 256, 74, false},
    [QE_GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98, false}, [QE_GGML_IQ1_S] = {"IQ1_S", 256, 50, false},
    [QE_GGML_IQ4_NL] = {"IQ4_NL", 32, 18, false}, [QE_GGML_IQ3_S] = {"IQ3_S", 256, 110, false},
    [QE_GGML_IQ2_S] = {"IQ2_S", 256, 82, false},  [QE_GGML_IQ4_XS] = {"IQ4_XS", 256, 136, false},
    [QE_GGML_I8] = {"I8", 1, 1, false},           [QE_GGML_I16] = {"I16", 1, 2, false},
    [QE_GGML_I32] = {"I32", 1, 4, false},         [QE_GGML_I64] = {"I64", 1, 8, false},
    [QE_GGML_F64] = {"F64", 1, 8, false},         [QE_GGML_IQ1_M] = {"IQ1_M", 256, 56, false},
    [QE_GGML_BF16] = {"BF16", 1, 2, true},        [QE_GGML_TQ1_0] = {"TQ1_0", 256, 54, false},
    [QE_GGML_TQ2_0] = {"TQ2_0", 256, 66, false},
};

const qe_ggml_type_info *qe_ggml_type_lookup(uint32_t type)
{
    if (type >= sizeof type_table / sizeof type_table[0] || !type_table[type].name)
        return NULL;
    return &type_table[type];
}

qe_status qe_ggml_n_bytes(uint32_t type, int64_t n_elements, const char *what, uint64_t *n_bytes,
                          qe_error *err)
{
    const qe_ggml_type_info *info = qe_ggml_type_lookup(type);
    if (!info)
        return qe_fail(err, QE_EFORMAT, "%s: unknown ggml type %u", what, type);
    if (n_elements < 0 || n_elements % info->block_elements != 0)
        return qe_fail(err, QE_EFORMAT, "%s: %lld elements is not a whole number of %s blocks of %d",
                       what, (long long)n_elements, info->name, info->block_elements);
    uint64_t n_blocks = (uint64_t)n_elements / (uint64_t)info->block_elements;
    if (n_blocks > UINT64_MAX / (uint64_t)info->block_bytes)
        return qe_fail(err, QE_EFORMAT, "%s: byte size of %lld %s elements overflows", what,
                       (long long)n_elements, info->name);
    *n_bytes = n_blocks * (uint64_t)info->block_bytes;
    return QE_OK;
}

static uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t load_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static float load_f16(const uint8_t *p) { return qe_f16_to_f32(load_u16(p)); }

/* Q4_0: {f16 d; u8 qs[16]}; low nibbles are elements 0..15, high nibbles 16..31, value (q-8)*d. */
static void dequant_q4_0(const uint8_t *b, float *y)
{
    float d = load_f16(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 0x0f) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

/* Q4_1: {f16 d; f16 m; u8 qs[16]}; value q*d + m. */
static void dequant_q4_1(const uint8_t *b, float *y)
{
    float d = load_f16(b), m = load_f16(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(qs[j] & 0x0f) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

/* Q5_0/Q5_1: the fifth bit of element j is bit j of the little-endian u32 qh. */
static void dequant_q5(const uint8_t *qh_bytes, const uint8_t *qs, float d, float m, bool has_min,
                       float *y)
{
    uint32_t qh = load_u32(qh_bytes);
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 0x0f) | (int)(((qh >> j) & 1) << 4);
        int hi = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
        if (has_min) {
            y[j] = (float)lo * d + m;
            y[j + 16] = (float)hi * d + m;
        } else {
            y[j] = (float)(lo - 16) * d;
            y[j + 16] = (float)(hi - 16) * d;
        }
    }
}

/* Q8_0: {f16 d; i8 qs[32]}. */
static void dequant_q8_0(const uint8_t *b, float *y)
{
    float d = load_f16(b);
    for (int j = 0; j < 32; j++)
        y[j] = (float)(int8_t)b[2 + j] * d;
}

/* K-quant 6-bit scale and min of sub-block j (0..7) from the 12 packed scale bytes: sub-blocks
 * 0..3 keep theirs in the low 6 bits of bytes j and j+4; 4..7 put 4 low bits in byte j+4 and
 * the 2 high bits in the top of bytes j-4 and j. */
static void k_scale_min(const uint8_t *scales, int j, int *scale, int *min)
{
    if (j < 4) {
        *scale = scales[j] & 63;
        *min = scales[j + 4] & 63;
    } else {
        *scale = (scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4);
        *min = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
    }
}

/* Q4_K: {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}; 8 sub-blocks of 32, each 64 elements
 * share 32 bytes of qs (low nibbles first). value = d*scale*q - dmin*min. */
static void dequant_q4_k(const uint8_t *b, float *y)
{
    float d = load_f16(b), dmin = load_f16(b + 2);
    const uint8_t *scales = b + 4, *q = b + 16;
    for (int sub = 0; sub < 8; sub += 2, q += 32, y += 64) {
        int sc0, m0, sc1, m1;
        k_scale_min(scales, sub, &sc0, &m0);
        k_scale_min(scales, sub + 1, &sc1, &m1);
        float d0 = d * (float)sc0, dm0 = dmin * (float)m0, d1 = d * (float)sc1, dm1 = dmin * (float)m1;
        for (int l = 0; l < 32; l++) {
            y[l] = d0 * (float)(q[l] & 0x0f) - dm0;
            y[l + 32] = d1 * (float)(q[l] >> 4) - dm1;
        }
    }
}

/* Q5_K: {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}; the fifth bit of element l
 * in sub-block s is bit s of qh[l]. */
static void dequant_q5_k(const uint8_t *b, float *y)
{
    float d = load_f16(b), dmin = load_f16(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *q = b + 48;
    for (int sub = 0; sub < 8; sub += 2, q += 32, y += 64) {
        int sc0, m0, sc1, m1;
        k_scale_min(scales, sub, &sc0, &m0);
        k_scale_min(scales, sub + 1, &sc1, &m1);
        float d0 = d * (float)sc0, dm0 = dmin * (float)m0, d1 = d * (float)sc1, dm1 = dmin * (float)m1;
        for (int l = 0; l < 32; l++) {
            int lo = (q[l] & 0x0f) | (((qh[l] >> sub) & 1) << 4);
            int hi = (q[l] >> 4) | (((qh[l] >> (sub + 1)) & 1) << 4);
            y[l] = d0 * (float)lo - dm0;
            y[l + 32] = d1 * (float)hi - dm1;
        }
    }
}

/* Q6_K: {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}; two halves of 128 elements, each with
 * 64 ql bytes (4 low bits), 32 qh bytes (2 high bits x4) and 8 scales of 16 elements. */
static void dequant_q6_k(const uint8_t *b, float *y)
{
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *scales = (const int8_t *)(b + 192);
    float d = load_f16(b + 208);
    for (int half = 0; half < 2; half++, ql += 64, qh += 32, scales += 8, y += 128) {
        for (int l = 0; l < 32; l++) {
            int s = l / 16;
            int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)scales[s] * (float)q1;
            y[l + 32] = d * (float)scales[s + 2] * (float)q2;
            y[l + 64] = d * (float)scales[s + 4] * (float)q3;
            y[l + 96] = d * (float)scales[s + 6] * (float)q4;
        }
    }
}

qe_status qe_ggml_dequantize(uint32_t type, const void *src, float *dst, int64_t n_elements,
                             const char *what, qe_error *err)
{
    uint64_t n_bytes;
    qe_status rc = qe_ggml_n_bytes(type, n_elements, what, &n_bytes, err);
    if (rc != QE_OK)
        return rc;
    const qe_ggml_type_info *info = qe_ggml_type_lookup(type);
    if (!info->can_dequantize)
        return qe_fail(err, QE_EUNSUPPORTED, "%s: tensor type %s cannot be dequantized (supported: "
                       "F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K)", what, info->name);
    const uint8_t *b = src;
    int64_t n_blocks = n_elements / info->block_elements;
    for (int64_t i = 0; i < n_blocks; i++, b += info->block_bytes, dst += info->block_elements) {
        switch ((qe_ggml_type)type) {
        case QE_GGML_F32: memcpy(dst, b, 4); break;
        case QE_GGML_F16: dst[0] = load_f16(b); break;
        case QE_GGML_BF16: dst[0] = qe_bf16_to_f32(load_u16(b)); break;
        case QE_GGML_Q4_0: dequant_q4_0(b, dst); break;
        case QE_GGML_Q4_1: dequant_q4_1(b, dst); break;
        case QE_GGML_Q5_0: dequant_q5(b + 2, b + 6, load_f16(b), 0.0f, false, dst); break;
        case QE_GGML_Q5_1: dequant_q5(b + 4, b + 8, load_f16(b), load_f16(b + 2), true, dst); break;
        case QE_GGML_Q8_0: dequant_q8_0(b, dst); break;
        case QE_GGML_Q4_K: dequant_q4_k(b, dst); break;
        case QE_GGML_Q5_K: dequant_q5_k(b, dst); break;
        case QE_GGML_Q6_K: dequant_q6_k(b, dst); break;
        default: break; /* can_dequantize is false for every other type */
        }
    }
    return QE_OK;
}
