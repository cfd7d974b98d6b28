/* ggml_dequant — the ggml tensor types GGUF files store, and their dequantization to float32.
 *
 * Every type a GGUF may name has a row in one table (block size in elements, block size in
 * bytes), so the reader can size tensors it cannot decode. Dequantization covers F32, F16,
 * BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K with block layouts exactly as ggml's
 * (ggml-common.h); the output equals gguf-py's numpy dequantize bit for bit. Quantized rows
 * come in whole blocks: a row length that is not a multiple of the block size is rejected. */
#ifndef QE_GGML_DEQUANT_H
#define QE_GGML_DEQUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qe_error.h"

typedef enum {
    QE_GGML_F32 = 0, QE_GGML_F16 = 1, QE_GGML_Q4_0 = 2, QE_GGML_Q4_1 = 3,
    QE_GGML_Q5_0 = 6, QE_GGML_Q5_1 = 7, QE_GGML_Q8_0 = 8, QE_GGML_Q8_1 = 9,
    QE_GGML_Q2_K = 10, QE_GGML_Q3_K = 11, QE_GGML_Q4_K = 12, QE_GGML_Q5_K = 13,
    QE_GGML_Q6_K = 14, QE_GGML_Q8_K = 15, QE_GGML_IQ2_XXS = 16, QE_GGML_IQ2_XS = 17,
    QE_GGML_IQ3_XXS = 18, QE_GGML_IQ1_S = 19, QE_GGML_IQ4_NL = 20, QE_GGML_IQ3_S = 21,
    QE_GGML_IQ2_S = 22, QE_GGML_IQ4_XS = 23, QE_GGML_I8 = 24, QE_GGML_I16 = 25,
    QE_GGML_I32 = 26, QE_GGML_I64 = 27, QE_GGML_F64 = 28, QE_GGML_IQ1_M = 29,
    QE_GGML_BF16 = 30, QE_GGML_TQ1_0 = 34, QE_GGML_TQ2_0 = 35,
} qe_ggml_type;

typedef struct {
    const char *name;          /* "Q4_K" */
    int block_elements;        /* elements per block: 1 for plain types, 32, 256   */
    int block_bytes;           /* bytes per block                                  */
    bool can_dequantize;       /* qe_ggml_dequantize handles it                    */
} qe_ggml_type_info;

/* NULL for an id that is not a ggml type a file may hold. */
const qe_ggml_type_info *qe_ggml_type_lookup(uint32_t type);

/* Bytes of n_elements of type, which must be whole blocks; fails (QE_EFORMAT) on a partial
 * block, an unknown type or overflow. what names the tensor in the message. */
qe_status qe_ggml_n_bytes(uint32_t type, int64_t n_elements, const char *what, uint64_t *n_bytes,
                          qe_error *err);

/* dst[n_elements] = dequantize(src). n_elements must be whole blocks; src holds
 * qe_ggml_n_bytes(type, n_elements) bytes, with no alignment required. */
qe_status qe_ggml_dequantize(uint32_t type, const void *src, float *dst, int64_t n_elements,
                             const char *what, qe_error *err);

#endif
