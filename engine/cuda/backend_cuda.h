/* backend_cuda — what the CUDA backend tells beyond the backend table (backend.h): the device
 * memory it holds, by class, as its one allocator counts it, and what cudaMemGetInfo says.
 *
 * Every device byte the backend allocates goes through that allocator and is counted in one
 * class, decided by the entry point that asked for it:
 *   linear      prepare_linear (a table used by embed moves to embedding)
 *   embedding   the table of embed
 *   norm        upload_new (norm weights)
 *   kv_cache    grow (the model grows its KV cache, and only that, with grow)
 *   workspace   reserve_workspace (int8 activations), the token-id staging buffer
 *   activations alloc
 * The weight classes (linear, embedding, norm) are packed into one arena of mapped virtual memory,
 * the others are cudaMalloc'd. The CUDA context is not counted: the cudaMemGetInfo figures (free
 * at create, free now, the most used) show it. In a build without CUDA the functions answer
 * "none". */
#ifndef QE_BACKEND_CUDA_H
#define QE_BACKEND_CUDA_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    QE_MEM_LINEAR, QE_MEM_EMBEDDING, QE_MEM_NORM, QE_MEM_KV_CACHE, QE_MEM_WORKSPACE, QE_MEM_ACTIVATIONS,
    QE_MEM_CLASSES
} qe_mem_class;

typedef struct {
    uint64_t current_bytes[QE_MEM_CLASSES];     /* held now, per class                          */
    uint64_t peak_bytes[QE_MEM_CLASSES];        /* the most each class held at once              */
    uint64_t total_current_bytes;
    uint64_t total_peak_bytes;                  /* peak of the sum (not the sum of the peaks)    */
    uint64_t device_total_bytes;                /* cudaMemGetInfo total                           */
    uint64_t device_free_at_create_bytes;       /* cudaMemGetInfo free before the first allocation */
    uint64_t device_free_now_bytes;             /* cudaMemGetInfo free now                        */
    uint64_t device_used_peak_bytes;            /* cudaMemGetInfo total - free, the most seen
                                                   right after an allocation (the context included) */
    char device_name[256];                      /* e.g. "NVIDIA H100 80GB HBM3"                  */
} qe_backend_memory;

const char *qe_mem_class_name(qe_mem_class cls);   /* "linear", "kv_cache", ... */

/* Sizes the backend allocates, here so that the memory estimate (estimate.c, built with or
 * without CUDA) counts what the backend holds. */
#define QE_CUDA_STAGING_ROWS 4096   /* token ids staged per embed call: a workspace buffer of int32 */

/* Whether a linear of this format needs the workspace (int8 activations; an NF4 weight
 * dequantized for a prefill): reserve_workspace holds none while no such linear is prepared. */
static inline bool qe_cuda_format_needs_workspace(qe_weight_format format)
{
    return format == QE_WEIGHT_INT8 || format == QE_WEIGHT_NF4;
}

/* Bytes reserve_workspace holds for max_tokens tokens of max_n_in inputs: per (token, input) the
 * int8 value, an outlier column index (int) and an outlier value (float); per token the row
 * absmax (float) and the outlier count (int); 256 bytes of alignment slack. */
static inline uint64_t qe_cuda_workspace_bytes(int max_tokens, int max_n_in)
{
    return (uint64_t)max_tokens * (uint64_t)max_n_in * (sizeof(int8_t) + sizeof(int) + sizeof(float)) +
           (uint64_t)max_tokens * (sizeof(float) + sizeof(int)) + 256;
}

/* An NF4 linear over at least this many tokens runs from a bf16 copy of its weight in the
 * workspace (dequantized once, not once a 64-token tile). */
#define QE_CUDA_NF4_DEQUANT_MIN_TOKENS 129

/* The workspace for passes of max_tokens tokens when the largest NF4 weight holds
 * nf4_max_elements values (0: none): the int8 rule's bytes, or that weight in bf16 when a pass
 * dequantizes it and it is larger. */
static inline uint64_t qe_cuda_workspace_bytes_nf4(int max_tokens, int max_n_in, uint64_t nf4_max_elements)
{
    uint64_t bytes = qe_cuda_workspace_bytes(max_tokens, max_n_in);
    uint64_t copy = nf4_max_elements * 2; /* bf16 */
    return max_tokens >= QE_CUDA_NF4_DEQUANT_MIN_TOKENS && copy > bytes ? copy : bytes;
}

/* A pass of more than MMA_DECODE_MAX_TOKENS tokens in a 16-bit compute dtype runs its linears on
 * tensor cores from x rounded to 16 bits once per call, in rows padded to a multiple of 8 values
 * (x16_kernel): reserve_workspace holds them for max_tokens tokens of max_n_in inputs. */
#define QE_CUDA_X16_MIN_TOKENS 17
static inline uint64_t qe_cuda_x16_bytes(int max_tokens, int max_n_in, bool is_16bit_compute)
{
    if (!is_16bit_compute || max_tokens < QE_CUDA_X16_MIN_TOKENS)
        return 0;
    return (uint64_t)max_tokens * (uint64_t)((max_n_in + 7) / 8 * 8) * sizeof(uint16_t);
}

/* Device bytes of a linear as the backend uploads it (cuda_prepare_linear): the loader's bytes
 * (qe_weight_format_bytes: a bias in the 16-bit compute dtype beside a 16-bit or quantized
 * weight) without a double-quantized NF4 weight's one float offset, which travels as a kernel
 * argument. NF4's code tables are in __constant__ memory, part of the module image the CUDA
 * context holds, not in the allocator's weights. */
static inline uint64_t qe_cuda_linear_bytes(qe_weight_format format, int n_out, int n_in, int nf4_block_size,
                                            bool nf4_double_quant, bool has_bias)
{
    uint64_t bytes = qe_weight_format_bytes(format, n_out, n_in, nf4_block_size, nf4_double_quant, has_bias);
    if (format == QE_WEIGHT_NF4 && nf4_double_quant)
        bytes -= sizeof(float);
    return bytes;
}

/* Device bytes of a norm vector of n values (upload_new): held in the compute dtype. */
static inline uint64_t qe_cuda_norm_bytes(int n, qe_dtype compute_dtype)
{
    return (uint64_t)n * qe_dtype_size(compute_dtype);
}

/* Fills *out when be is a CUDA backend and returns true; false (out zeroed) for any other. */
bool qe_backend_cuda_memory(const qe_backend *be, qe_backend_memory *out);

/* Whether CUDA backend be replays recorded steps (graph_begin; on unless the environment has
 * QEVAL_CUDA_GRAPHS=0): the GPU tests compare both. Built with CUDA only. */
void qe_backend_cuda_set_graphs(qe_backend *be, bool on);
uint64_t qe_backend_cuda_replays(const qe_backend *be); /* steps replayed so far */

#ifdef __cplusplus
}
#endif

#endif
