#include "variant.h"

#include <stdlib.h>
#include <string.h>

#include "quant.h"

static const struct {
    const char *name;
    qe_variant variant;
} variants[] = {
    {"fp32", {QE_VARIANT_FP32, 0, false, 0}},
    {"bf16", {QE_VARIANT_BF16, 0, false, 0}},
    {"int8", {QE_VARIANT_INT8, 0, false, 6.0f}},
    {"nf4", {QE_VARIANT_NF4, 64, true, 0}},
    {"nf4-nodq", {QE_VARIANT_NF4, 64, false, 0}},
};
#define N_VARIANTS (int)(sizeof variants / sizeof variants[0])

/* "nf4-bs128", "nf4-nodq-bs32": the nf4 variants with another block size (32 ... 4096) */
static bool parse_nf4_block(const char *name, qe_variant *out)
{
    bool dq = strncmp(name, "nf4-nodq-bs", 11) != 0;
    const char *digits = dq ? (strncmp(name, "nf4-bs", 6) ? NULL : name + 6) : name + 11;
    if (!digits || !*digits)
        return false;
    char *end;
    long block = strtol(digits, &end, 10);
    if (*end || block < 32 || block > 4096 || (block & (block - 1)))
        return false;
    *out = (qe_variant){QE_VARIANT_NF4, (int)block, dq, 0};
    return true;
}

qe_status qe_variant_parse(const char *name, qe_variant *out, qe_error *err)
{
    for (int i = 0; i < N_VARIANTS; i++)
        if (!strcmp(name, variants[i].name)) {
            *out = variants[i].variant;
            return QE_OK;
        }
    if (parse_nf4_block(name, out))
        return QE_OK;
    return qe_fail(err, QE_EINVAL, "unknown variant '%s' (valid: fp32, bf16, int8, nf4, nf4-nodq)", name);
}

const char *qe_variant_name(const qe_variant *v)
{
    static const char *const dq_names[] = {"nf4-bs32", "nf4", "nf4-bs128", "nf4-bs256", "nf4-bs512",
                                           "nf4-bs1024", "nf4-bs2048", "nf4-bs4096"};
    static const char *const nodq_names[] = {"nf4-nodq-bs32", "nf4-nodq", "nf4-nodq-bs128", "nf4-nodq-bs256",
                                             "nf4-nodq-bs512", "nf4-nodq-bs1024", "nf4-nodq-bs2048",
                                             "nf4-nodq-bs4096"};
    switch (v->kind) {
    case QE_VARIANT_FP32: return "fp32";
    case QE_VARIANT_BF16: return "bf16";
    case QE_VARIANT_INT8: return "int8";
    case QE_VARIANT_NF4:
        for (int i = 0; i < 8; i++)
            if (v->nf4_block_size == 32 << i)
                return v->nf4_double_quant ? dq_names[i] : nodq_names[i];
        return v->nf4_double_quant ? "nf4" : "nf4-nodq";
    }
    return "?";
}

qe_dtype qe_variant_compute_dtype(const qe_variant *variant)
{
    switch (variant->kind) {
    case QE_VARIANT_BF16:
    case QE_VARIANT_NF4: return QE_DTYPE_BF16;
    case QE_VARIANT_INT8: return QE_DTYPE_F16;
    default: return QE_DTYPE_F32;
    }
}

bool qe_variant_is_quantized_tensor(const char *name)
{
    static const char *const suffixes[] = {"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight",
                                           "gate_proj.weight", "up_proj.weight", "down_proj.weight"};
    if (strncmp(name, "model.layers.", 13))
        return false;
    size_t len = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t n = strlen(suffixes[i]);
        if (len > n && !strcmp(name + len - n, suffixes[i]) && name[len - n - 1] == '.')
            return true;
    }
    return false;
}

void qe_variant_stored_form(const qe_variant *variant, const char *name, int n_dims, uint64_t n_elements,
                            int64_t rows, const char **dtype, uint64_t *bytes)
{
    uint64_t n = n_elements;
    bool is_quantized = qe_variant_is_quantized_tensor(name) && n_dims == 2;
    qe_dtype compute = qe_variant_compute_dtype(variant);
    if (is_quantized && variant->kind == QE_VARIANT_INT8 && rows > 0) {
        *dtype = "INT8";
        *bytes = qe_int8_bytes_for((uint64_t)rows, n / (uint64_t)rows);
    } else if (is_quantized && variant->kind == QE_VARIANT_NF4) {
        *dtype = "NF4";
        *bytes = qe_nf4_bytes_for(n, variant->nf4_block_size, variant->nf4_double_quant);
    } else {
        *dtype = qe_dtype_name(compute);
        *bytes = n * qe_dtype_size(compute);
    }
}

uint64_t qe_variant_hf_tensor_bytes(const qe_variant *variant, const char *name, uint64_t n_elements)
{
    bool is_quantized = qe_variant_is_quantized_tensor(name);
    if (is_quantized && variant->kind == QE_VARIANT_INT8)
        return n_elements;
    if (is_quantized && variant->kind == QE_VARIANT_NF4)
        return (n_elements + 1) / 2;
    return n_elements * (qe_variant_compute_dtype(variant) == QE_DTYPE_F32 ? 4 : 2);
}

uint64_t qe_variant_estimate_bytes(const qe_variant *variant, uint64_t n_params)
{
    switch (variant->kind) {
    case QE_VARIANT_BF16: return n_params * 2;
    case QE_VARIANT_INT8: return n_params;
    case QE_VARIANT_NF4: return (n_params + 1) / 2;
    default: return n_params * 4;
    }
}
